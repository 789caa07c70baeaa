/* Unit tests for cfg: key parsing, the file format, environment, flags, presets, help, and that
 * config/presenced.conf, docs/configuration.md and the man page still describe every key of the
 * table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "presenced/app/cfg.h"

/* --- helpers --- */

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static char tmp_paths[16][64];
static int tmp_count;

/* Writes `text` to a new temporary file; the path lives until teardown removes it. */
static const char *tmp_file(const char *text)
{
    char *path = tmp_paths[tmp_count++];
    strcpy(path, "/tmp/test_cfg_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static int teardown_tmp(void **state)
{
    (void)state;
    for (int i = 0; i < tmp_count; i++)
        unlink(tmp_paths[i]);
    tmp_count = 0;
    return 0;
}

static void get_value(const cfg *c, const char *key, char *buf, size_t len)
{
    assert_int_equal(cfg_get(c, key, buf, len), 0);
}

static int args(cfg *c, cfg_action *action, char *err, char *const *envp, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    argv[argc++] = "presenced";
    va_start(ap, envp);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return cfg_from_args(c, argc, argv, envp, action, err);
}

/* --- defaults and the key table --- */

static void test_defaults(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 3000);
    assert_int_equal(c.store, CFG_STORE_MEMORY);
    assert_string_equal(c.redis, "");
    assert_int_equal(c.workers, 1);
    assert_string_equal(c.path, "/socket.io/");
    assert_int_equal(c.ping_interval, 25000);
    assert_int_equal(c.ping_timeout, 20000);
    assert_int_equal(c.max_payload, 1000000);
    assert_int_equal(c.connect_timeout, 45000);
    assert_string_equal(c.allowed_origins, "");
    assert_string_equal(c.namespaces, "");
    assert_int_equal(c.max_connections, 10000);
    assert_int_equal(c.send_queue_max, 1000);
    assert_int_equal(c.attachment_timeout, 10000);
    assert_int_equal(c.http_timeout, 10);
    assert_int_equal(c.log_level, CFG_LOG_INFO);
    assert_int_equal(c.conformance, CFG_CONFORMANCE_OFF);
    assert_int_equal(cfg_validate(&c, err), 0);
}

static const char *const expected_keys[] = {
    "listen",
    "store",
    "redis",
    "redis_partitions",
    "redis_sentinel_password",
    "workers",
    "path",
    "ping_interval",
    "ping_timeout",
    "max_payload",
    "connect_timeout",
    "allowed_origins",
    "namespaces",
    "max_connections",
    "send_queue_max",
    "send_queue_bytes",
    "attachment_timeout",
    "ws_message_gap",
    "http_timeout",
    "broadcast",
    "anonymous_reads",
    "offline_grace",
    "last_seen_retention",
    "instance_lease",
    "ttl",
    "max_metadata_bytes",
    "max_bulk_ids",
    "stream_maxlen",
    "redis_prefix",
    "max_http_body",
    "api_key",
    "api_key_file",
    "admin_listen",
    "dashboard",
    "stats_interval",
    "webhook_url",
    "webhook_secret",
    "webhook_retry_for",
    "auth",
    "jwt_secret",
    "jwt_secret_file",
    "jwt_public_key_file",
    "jwt_audience",
    "jwt_issuer",
    "jwt_leeway",
    "max_connections_per_ip",
    "max_sessions_per_ip",
    "trusted_proxies",
    "proxy_protocol",
    "max_sockets_per_user",
    "max_rooms_per_socket",
    "max_subscriptions_per_socket",
    "rate_limit",
    "rate_burst",
    "auth_failures_per_ip",
    "tls_cert",
    "tls_key",
    "shutdown_timeout",
    "log_level",
    "conformance",
};
#define NKEYS (sizeof(expected_keys) / sizeof(expected_keys[0]))

static void test_key_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < NKEYS; i++) {
        assert_non_null(cfg_key_name(i));
        assert_string_equal(cfg_key_name(i), expected_keys[i]);
    }
    assert_null(cfg_key_name(NKEYS));
}

/* cfg_get prints what cfg_set reads back, so every key survives a round trip unchanged. */
static void test_get_set_roundtrip(void **state)
{
    (void)state;
    cfg a, b;
    char err[CFG_ERR_MAX], text[CFG_STR_MAX + 8];

    cfg_init(&a);
    assert_int_equal(cfg_set(&a, "listen", "[::1]:8080", err), 0);
    assert_int_equal(cfg_set(&a, "redis", "redis://:p@ss@h:1/2", err), 0);
    assert_int_equal(cfg_set(&a, "allowed_origins", "http://a.test,https://b.test:8443", err), 0);
    assert_int_equal(cfg_set(&a, "log_level", "debug", err), 0);
    cfg_init(&b);
    for (size_t i = 0; cfg_key_name(i) != NULL; i++) {
        get_value(&a, cfg_key_name(i), text, sizeof(text));
        assert_int_equal(cfg_set(&b, cfg_key_name(i), text, err), 0);
    }
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(cfg_get(&a, "nope", text, sizeof(text)), -1);
    assert_int_equal(cfg_get(&a, "listen", text, 5), -1); /* too small */
}

/* --- cfg_set: good and bad values --- */

typedef struct kv_case {
    const char *key;
    const char *value;
    const char *expect; /* good: value read back by cfg_get; bad: text the error must contain */
} kv_case;

static const kv_case good_cases[] = {
    {"listen", "0.0.0.0:1", "0.0.0.0:1"},
    {"listen", "localhost:65535", "localhost:65535"},
    {"listen", "[::1]:3000", "[::1]:3000"},
    {"listen", "[::]:80", "[::]:80"},
    {"listen", "  10.0.0.1:8080\t", "10.0.0.1:8080"},
    {"listen", "\"127.0.0.1:9\"", "127.0.0.1:9"},
    {"store", "redis", "redis"},
    {"store", "memory", "memory"},
    {"redis", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379"},
    {"redis", "redis://:secret@db.example:6380/3", "redis://:secret@db.example:6380/3"},
    {"redis", "redis://[::1]:6379/0", "redis://[::1]:6379/0"},
    {"redis", "unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock"},
    {"redis", "redis://localhost", "redis://localhost"},
    {"redis", "redis://h:1/", "redis://h:1/"},
    {"redis", "", ""},
    {"redis", "\"\"", ""},
    {"path", "/", "/"},
    {"path", "/engine.io/", "/engine.io/"},
    {"path", "/a/b-c_d/", "/a/b-c_d/"},
    {"ping_interval", "1", "1"},
    {"ping_interval", "3600000", "3600000"},
    {"ping_interval", "007", "7"},
    {"ping_timeout", " 20000 ", "20000"},
    {"max_payload", "100000000", "100000000"},
    {"connect_timeout", "1", "1"},
    {"allowed_origins", "*", "*"},
    {"allowed_origins", "", ""},
    {"allowed_origins", "http://localhost:3000", "http://localhost:3000"},
    {"allowed_origins", " https://a.example , http://[::1]:8080 ",
     "https://a.example,http://[::1]:8080"},
    {"namespaces", "/custom", "/custom"},
    {"namespaces", "/a, /b ,/c", "/a,/b,/c"},
    {"max_connections", "1000000", "1000000"},
    {"send_queue_max", "1", "1"},
    {"attachment_timeout", "10000", "10000"},
    {"http_timeout", "3600", "3600"},
    {"log_level", "error", "error"},
    {"log_level", "warn", "warn"},
    {"log_level", "debug", "debug"},
    {"conformance", "engineio", "engineio"},
    {"conformance", "socketio", "socketio"},
};

static const kv_case bad_cases[] = {
    {"listen", "127.0.0.1", "missing ':PORT'"},
    {"listen", "127.0.0.1:0", "out of range"},
    {"listen", "127.0.0.1:65536", "out of range"},
    {"listen", "127.0.0.1:-1", "not a decimal"},
    {"listen", "::1:3000", "brackets"},
    {"listen", "[::1:3000", "']'"},
    {"listen", "[1.2.3.4]:80", "only for IPv6"},
    {"listen", ":3000", "empty host"},
    {"listen", "a b:3000", "invalid character"},
    {"listen", "", "empty host"},
    {"store", "Memory", "not one of"},
    {"store", "", "not one of"},
    {"redis", "http://x:1", "expected redis://"},
    {"redis", "redis://localhost:0", "out of range"},
    {"redis", "redis://user:pw@h:1", "user names"},
    {"redis", "redis://:@h:1", "empty password"},
    {"redis", "redis://h:1/x", "not a decimal"},
    {"redis", "unix://relative.sock", "absolute"},
    {"redis", "unix:///", "absolute"},
    {"path", "socket.io/", "start and end"},
    {"path", "/socket.io", "start and end"},
    {"path", "", "start and end"},
    {"path", "/a b/", "spaces"},
    {"path", "/a?b/", "'?'"},
    {"ping_interval", "0", "out of range"},
    {"ping_interval", "3600001", "out of range"},
    {"ping_interval", "-5", "not a decimal"},
    {"ping_interval", "+5", "not a decimal"},
    {"ping_interval", "0x10", "not a decimal"},
    {"ping_interval", "1e3", "not a decimal"},
    {"ping_interval", "25s", "not a decimal"},
    {"ping_interval", "1 000", "not a decimal"},
    {"ping_interval", "", "empty value"},
    {"ping_interval", "4294967296", "out of range"},
    {"ping_interval", "99999999999999999999999999", "out of range"},
    {"ping_timeout", "0", "out of range"},
    {"max_payload", "100000001", "out of range"},
    {"max_payload", "0", "out of range"},
    {"connect_timeout", "0", "out of range"},
    {"allowed_origins", "*,http://a.test", "only entry"},
    {"allowed_origins", "http://a.test/", "path"},
    {"allowed_origins", "a.test", "scheme://"},
    {"allowed_origins", "http://A.test", "lower case"},
    {"allowed_origins", "http://a.test,,http://b.test", "empty entry"},
    {"allowed_origins", "http://a.test,", "empty entry"},
    {"allowed_origins", "http://a.test:99999", "out of range"},
    {"namespaces", "custom", "start with '/'"},
    {"namespaces", "/", "start with '/'"},
    {"namespaces", "/a,/b c", "spaces"},
    {"max_connections", "0", "out of range"},
    {"max_connections", "1000001", "out of range"},
    {"send_queue_max", "1000001", "out of range"},
    {"attachment_timeout", "0", "out of range"},
    {"http_timeout", "3601", "out of range"},
    {"http_timeout", "0", "out of range"},
    {"log_level", "verbose", "not one of"},
    {"conformance", "on", "not one of"},
    {"ping_interval", "\"25000", "closing"},
};

static void test_set_good(void **state)
{
    (void)state;
    char err[CFG_ERR_MAX], text[CFG_STR_MAX + 8];

    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        const kv_case *t = &good_cases[i];
        cfg c;
        cfg_init(&c);
        err[0] = '\0';
        if (cfg_set(&c, t->key, t->value, err) != 0)
            fail_msg("%s = '%s' rejected: %s", t->key, t->value, err);
        get_value(&c, t->key, text, sizeof(text));
        if (strcmp(text, t->expect) != 0)
            fail_msg("%s = '%s' read back as '%s', want '%s'", t->key, t->value, text, t->expect);
    }
}

/* A rejected value names the key, says why, and leaves the struct as it was. */
static void test_set_bad(void **state)
{
    (void)state;
    char err[CFG_ERR_MAX];

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const kv_case *t = &bad_cases[i];
        cfg c, before;
        cfg_init(&c);
        before = c;
        err[0] = '\0';
        if (cfg_set(&c, t->key, t->value, err) != -1)
            fail_msg("%s = '%s' accepted", t->key, t->value);
        assert_memory_equal(&c, &before, sizeof(c));
        if (strncmp(err, t->key, strlen(t->key)) != 0 || strstr(err, t->expect) == NULL)
            fail_msg("%s = '%s': error \"%s\" should name the key and contain \"%s\"", t->key,
                     t->value, err, t->expect);
    }
}

static void test_set_unknown_key(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    assert_int_equal(cfg_set(&c, "ping_intervall", "1", err), -1);
    assert_contains(err, "unknown key 'ping_intervall'");
    assert_int_equal(cfg_set(&c, "PING_INTERVAL", "1", err), -1);
    assert_contains(err, "PING_INTERVAL");
    assert_int_equal(cfg_set(&c, "", "1", err), -1);
    assert_contains(err, "unknown key");
    /* Whitespace around the key is trimmed like around the value. */
    assert_int_equal(cfg_set(&c, " ping_interval\t", "42", err), 0);
    assert_int_equal(c.ping_interval, 42);
}

static void test_set_control_chars_quoted_in_error(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    assert_int_equal(cfg_set(&c, "log_level", "x\x1b[31m", err), -1);
    assert_null(strchr(err, '\x1b'));
}

static void test_listen_ipv6_host_stored_bare(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    assert_int_equal(cfg_set(&c, "listen", "[fe80::1%eth0]:4000", err), 0);
    assert_string_equal(c.listen_host, "fe80::1%eth0");
    assert_int_equal(c.listen_port, 4000);
}

/* --- conformance presets --- */

static void test_conformance_presets(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    cfg_apply_conformance(&c, CFG_CONFORMANCE_SOCKETIO);
    assert_int_equal(c.ping_interval, 300);
    assert_int_equal(c.ping_timeout, 200);
    assert_int_equal(c.max_payload, 1000000);
    assert_int_equal(c.connect_timeout, 1000);
    assert_string_equal(c.allowed_origins, "*");
    assert_string_equal(c.namespaces, "/custom");
    assert_string_equal(c.path, "/socket.io/");
    assert_int_equal(c.conformance, CFG_CONFORMANCE_SOCKETIO);
    assert_int_equal(c.ws_message_gap, 2000);
    assert_int_equal(cfg_validate(&c, err), 0);

    cfg_init(&c);
    cfg_apply_conformance(&c, CFG_CONFORMANCE_ENGINEIO);
    assert_string_equal(c.path, "/engine.io/");
    assert_int_equal(c.ping_interval, 300);
    assert_int_equal(c.ping_timeout, 200);
    assert_int_equal(c.max_payload, 1000000);
    assert_string_equal(c.allowed_origins, "*");
    assert_string_equal(c.namespaces, "");
    assert_int_equal(c.connect_timeout, 45000);
    assert_int_equal(c.conformance, CFG_CONFORMANCE_ENGINEIO);
    assert_int_equal(cfg_validate(&c, err), 0);
}

/* --- files --- */

static void test_file_parse(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];
    const char *p = tmp_file("\xEF\xBB\xBF# presenced test config\n"
                             "\n"
                             "   # indented comment\n"
                             "listen = 0.0.0.0:8080\r\n"
                             "ping_interval=1234   # trailing comment\n"
                             "\t path \t=\t \"/rt/\" \n"
                             "redis = redis://:pa#ss@h:1\n"
                             "namespaces = \"/a #b\"\n");

    cfg_init(&c);
    /* Inside quotes '#' is not a comment: the whole "/a #b" arrives and its space is rejected
     * (cutting the comment would leave an unterminated quote instead). */
    assert_int_equal(cfg_load_file(&c, p, err), -1);
    assert_contains(err, ":8: namespaces: namespace '/a #b' must not contain spaces");

    p = tmp_file("\xEF\xBB\xBF# presenced test config\n"
                 "\n"
                 "   # indented comment\n"
                 "listen = 0.0.0.0:8080\r\n"
                 "ping_interval=1234   # trailing comment\n"
                 "\t path \t=\t \"/rt/\" \n"
                 "redis = redis://:pa#ss@h:1\n"
                 "namespaces = /a,/b"); /* no final newline */
    cfg_init(&c);
    assert_int_equal(cfg_load_file(&c, p, err), 0);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.ping_interval, 1234);
    assert_string_equal(c.path, "/rt/");
    assert_string_equal(c.redis, "redis://:pa#ss@h:1");
    assert_string_equal(c.namespaces, "/a,/b");
    assert_int_equal(c.ping_timeout, 20000); /* untouched keys keep their value */
}

typedef struct file_err_case {
    const char *text;
    const char *expect; /* after "PATH" */
} file_err_case;

static const file_err_case file_err_cases[] = {
    {"# ok\nping_interval = 1\n\nbogus = 3\n", ":4: unknown key 'bogus'"},
    {"listen = 1.2.3.4:5\nthis line has no equals\n", ":2: expected KEY = VALUE"},
    {"\n\n\nping_timeout = 0\n", ":4: ping_timeout: "},
    {"store = memory\n# x\nstore = redis\n", ":3: store: already set on line 1"},
    {"= 5\n", ":1: unknown key ''"},
    {"path = \"/x/\n", ":1: path: missing closing"},
};

static void test_file_errors(void **state)
{
    (void)state;
    char err[CFG_ERR_MAX], want[256];

    for (size_t i = 0; i < sizeof(file_err_cases) / sizeof(file_err_cases[0]); i++) {
        cfg c, before;
        const char *p = tmp_file(file_err_cases[i].text);
        cfg_init(&c);
        before = c;
        assert_int_equal(cfg_load_file(&c, p, err), -1);
        snprintf(want, sizeof(want), "%s%s", p, file_err_cases[i].expect);
        if (strncmp(err, want, strlen(want)) != 0)
            fail_msg("case %zu: error \"%s\", want prefix \"%s\"", i, err, want);
        /* All or nothing: the good lines before the bad one are not applied. */
        assert_memory_equal(&c, &before, sizeof(c));
    }
}

static void test_file_missing_and_nul(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    assert_int_equal(cfg_load_file(&c, "/nonexistent/presenced.conf", err), -1);
    assert_contains(err, "/nonexistent/presenced.conf: cannot open");

    char path[] = "/tmp/test_cfg_nul_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "path = /a/\nlog_level = de\0bug\n", 30), 30);
    close(fd);
    assert_int_equal(cfg_load_file(&c, path, err), -1);
    unlink(path);
    assert_contains(err, ":2: NUL byte");
}

/* --- environment --- */

static void test_env(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];
    char *env[] = {"HOME=/root",
                   "PRESENCED_PING_INTERVAL=777",
                   "PATH=/bin",
                   "PRESENCED_LISTEN= [::1]:99 ",
                   "PRESENCED_ALLOWED_ORIGINS=*",
                   NULL};

    cfg_init(&c);
    assert_int_equal(cfg_load_env(&c, env, err), 0);
    assert_int_equal(c.ping_interval, 777);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 99);
    assert_string_equal(c.allowed_origins, "*");
    assert_string_equal(c.path, "/socket.io/"); /* PATH is not PRESENCED_PATH */

    assert_int_equal(cfg_load_env(&c, NULL, err), 0);
}

static void test_env_errors(void **state)
{
    (void)state;
    cfg c, before;
    char err[CFG_ERR_MAX];
    char *unknown[] = {"PRESENCED_PING_INTERVAL=5", "PRESENCED_BOGUS=1", NULL};
    char *lower[] = {"PRESENCED_ping_interval=5", NULL};
    char *bad[] = {"PRESENCED_MAX_PAYLOAD=lots", NULL};
    char *empty[] = {"PRESENCED_=1", NULL};

    cfg_init(&c);
    before = c;
    assert_int_equal(cfg_load_env(&c, unknown, err), -1);
    assert_contains(err, "PRESENCED_BOGUS");
    assert_memory_equal(&c, &before, sizeof(c)); /* PING_INTERVAL before it is not kept */
    assert_int_equal(cfg_load_env(&c, lower, err), -1);
    assert_contains(err, "PRESENCED_ping_interval");
    assert_int_equal(cfg_load_env(&c, bad, err), -1);
    assert_contains(err, "PRESENCED_MAX_PAYLOAD");
    assert_contains(err, "max_payload: 'lots' is not a decimal integer");
    assert_int_equal(cfg_load_env(&c, empty, err), -1);
    assert_contains(err, "PRESENCED_");
}

/* --- command line --- */

static void test_args_defaults(void **state)
{
    (void)state;
    cfg c, d;
    cfg_action a = CFG_ACTION_HELP;
    char err[CFG_ERR_MAX];

    assert_int_equal(args(&c, &a, err, NULL, NULL), 0);
    assert_int_equal(a, CFG_ACTION_RUN);
    cfg_init(&d);
    assert_memory_equal(&c, &d, sizeof(c));
}

/* defaults < preset < file < environment < flags, and flags apply left to right. */
static void test_args_precedence(void **state)
{
    (void)state;
    cfg c;
    cfg_action a;
    char err[CFG_ERR_MAX];
    const char *p = tmp_file("ping_interval = 1000\n"
                             "ping_timeout = 1001\n"
                             "max_payload = 1002\n"
                             "listen = 10.0.0.1:1\n"
                             "namespaces = /fromfile\n");
    char *env[] = {"PRESENCED_PING_TIMEOUT=2001", "PRESENCED_MAX_PAYLOAD=2002",
                   "PRESENCED_LISTEN=10.0.0.2:2", NULL};

    assert_int_equal(args(&c, &a, err, env, "--conformance", "--config", p, "--set",
                          "max_payload=3002", "--listen=10.0.0.3:3", "--set", "max_payload=3003",
                          NULL),
                     0);
    assert_int_equal(a, CFG_ACTION_RUN);
    assert_int_equal(c.connect_timeout, 1000); /* preset only */
    assert_string_equal(c.namespaces, "/fromfile");
    assert_int_equal(c.ping_interval, 1000); /* file over preset */
    assert_int_equal(c.ping_timeout, 2001);  /* environment over file */
    assert_int_equal(c.max_payload, 3003);   /* last flag over environment */
    assert_string_equal(c.listen_host, "10.0.0.3");
    assert_int_equal(c.listen_port, 3);
    assert_int_equal(c.conformance, CFG_CONFORMANCE_SOCKETIO);
}

static void test_args_forms(void **state)
{
    (void)state;
    cfg c;
    cfg_action a;
    char err[CFG_ERR_MAX];

    assert_int_equal(args(&c, &a, err, NULL, "--listen", "[::1]:81", "--store=memory", "--set",
                          " log_level = debug ", "--set=path=/p/", NULL),
                     0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 81);
    assert_int_equal(c.log_level, CFG_LOG_DEBUG);
    assert_string_equal(c.path, "/p/");

    assert_int_equal(args(&c, &a, err, NULL, "--conformance=engineio", NULL), 0);
    assert_string_equal(c.path, "/engine.io/");
    assert_int_equal(c.conformance, CFG_CONFORMANCE_ENGINEIO);
    assert_int_equal(args(&c, &a, err, NULL, "--conformance=socketio", NULL), 0);
    assert_string_equal(c.namespaces, "/custom");
    /* A preset is a starting point: flags still override it. */
    assert_int_equal(args(&c, &a, err, NULL, "--set", "ping_interval=5", "--conformance", NULL), 0);
    assert_int_equal(c.ping_interval, 5);
    assert_int_equal(c.ping_timeout, 200);
}

static void test_args_redis_implies_store(void **state)
{
    (void)state;
    cfg c;
    cfg_action a;
    char err[CFG_ERR_MAX];

    assert_int_equal(args(&c, &a, err, NULL, "--redis", "redis://127.0.0.1:6379", NULL), 0);
    assert_int_equal(c.store, CFG_STORE_REDIS);
    assert_string_equal(c.redis, "redis://127.0.0.1:6379");
    assert_int_equal(
        args(&c, &a, err, NULL, "--store", "memory", "--redis=redis://127.0.0.1:6379", NULL), 0);
    assert_int_equal(c.store, CFG_STORE_MEMORY);
    assert_int_equal(
        args(&c, &a, err, NULL, "--redis=redis://127.0.0.1:6379", "--set", "store=memory", NULL),
        0);
    assert_int_equal(c.store, CFG_STORE_MEMORY);
    /* The key alone does not pick the store. */
    assert_int_equal(args(&c, &a, err, NULL, "--set", "redis=redis://127.0.0.1:6379", NULL), 0);
    assert_int_equal(c.store, CFG_STORE_MEMORY);
}

static void test_args_actions(void **state)
{
    (void)state;
    cfg c;
    cfg_action a;
    char err[CFG_ERR_MAX];
    const char *good = tmp_file("ping_interval = 99\n");
    const char *broken = tmp_file("nonsense\n");

    assert_int_equal(args(&c, &a, err, NULL, "--check-config", NULL), 0);
    assert_int_equal(a, CFG_ACTION_CHECK);
    assert_int_equal(args(&c, &a, err, NULL, "--check-config", good, NULL), 0);
    assert_int_equal(a, CFG_ACTION_CHECK);
    assert_int_equal(c.ping_interval, 99);
    assert_int_equal(args(&c, &a, err, NULL, "--config", good, "--check-config", NULL), 0);
    assert_int_equal(a, CFG_ACTION_CHECK);
    assert_int_equal(c.ping_interval, 99);
    assert_int_equal(args(&c, &a, err, NULL, "--check-config", broken, NULL), -1);
    assert_contains(err, ":1: expected KEY = VALUE");
    assert_int_equal(args(&c, &a, err, NULL, "--check-config", "--set", "store=redis", NULL), -1);
    assert_contains(err, "store");

    /* --help and --version answer even when the configuration is broken. */
    char *badenv[] = {"PRESENCED_NOPE=1", NULL};
    assert_int_equal(args(&c, &a, err, badenv, "--config", broken, "--help", NULL), 0);
    assert_int_equal(a, CFG_ACTION_HELP);
    assert_int_equal(args(&c, &a, err, NULL, "-h", NULL), 0);
    assert_int_equal(a, CFG_ACTION_HELP);
    assert_int_equal(args(&c, &a, err, badenv, "--version", NULL), 0);
    assert_int_equal(a, CFG_ACTION_VERSION);
    assert_int_equal(args(&c, &a, err, badenv, NULL), -1);
    assert_contains(err, "PRESENCED_NOPE");
}

typedef struct args_err_case {
    const char *argv[4];
    const char *expect;
} args_err_case;

static const args_err_case args_err_cases[] = {
    {{"--listne", "1.2.3.4:5"}, "unknown flag '--listne'"},
    {{"-x"}, "unknown flag '-x'"},
    {{"--"}, "unknown flag '--'"},
    {{"extra"}, "unexpected argument 'extra'"},
    {{"--conformance", "socketio"}, "unexpected argument 'socketio'"},
    {{"--conformance=off"}, "--conformance: 'off'"},
    {{"--listen"}, "--listen needs a value"},
    {{"--listen", "nohost"}, "--listen: listen: missing ':PORT'"},
    {{"--store", "disk"}, "--store: store: 'disk' is not one of"},
    {{"--redis=ftp://x:1"}, "--redis: redis:"},
    {{"--set", "frobnicate=1"}, "--set: unknown key 'frobnicate'"},
    {{"--set", "ping_interval"}, "--set expects KEY=VALUE"},
    {{"--set", "ping_timeout=0"}, "--set: ping_timeout: "},
    {{"--help=yes"}, "--help takes no value"},
    {{"--store", "redis"}, "store: redis needs a redis URL"},
    {{"--set", "auth=jwt"}, "auth: jwt needs exactly one of jwt_secret, jwt_secret_file"},
    {{"--set", "jwt_secret=tooshort"}, "jwt_secret: must be at least 32 bytes"},
    {{"--set", "tls_cert=/a.pem"}, "tls_cert and tls_key: set both or neither"},
    {{"--set", "auth=bearer"}, "auth: 'bearer' is not one of"},
    {{"--config", "/nonexistent.conf"}, "/nonexistent.conf: cannot open"},
    {{"--config=/a", "--config=/b"}, "--config: a configuration file is already given (/a)"},
};

static void test_args_errors(void **state)
{
    (void)state;
    char err[CFG_ERR_MAX];

    for (size_t i = 0; i < sizeof(args_err_cases) / sizeof(args_err_cases[0]); i++) {
        const args_err_case *t = &args_err_cases[i];
        char *argv[6] = {"presenced"};
        int argc = 1;
        cfg c, before;
        cfg_action a;
        for (int j = 0; j < 4 && t->argv[j] != NULL; j++)
            argv[argc++] = (char *)t->argv[j];
        cfg_init(&c);
        c.ping_interval = 4242;
        before = c;
        err[0] = '\0';
        if (cfg_from_args(&c, argc, argv, NULL, &a, err) != -1)
            fail_msg("case %zu (%s) accepted", i, t->argv[0]);
        if (strstr(err, t->expect) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, t->expect);
        assert_memory_equal(&c, &before, sizeof(c)); /* untouched on failure */
    }
}

/* --- validation --- */

static void test_validate(void **state)
{
    (void)state;
    cfg c;
    char err[CFG_ERR_MAX];

    cfg_init(&c);
    c.store = CFG_STORE_REDIS;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "redis");
    strcpy(c.redis, "redis://localhost:6379");
    assert_int_equal(cfg_validate(&c, err), 0);

    cfg_init(&c);
    c.ping_timeout = 0;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "ping_timeout");
    cfg_init(&c);
    c.ping_interval = 0;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "ping_interval");
    cfg_init(&c);
    strcpy(c.path, "nope");
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "path");
    cfg_init(&c);
    c.listen_port = 0;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "listen");
    cfg_init(&c);
    c.log_level = (cfg_log_level)9;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "log_level");
    cfg_init(&c);
    strcpy(c.redis, "redis://nohost:0");
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "redis");

    /* Worker processes share presence only through Redis. */
    cfg_init(&c);
    c.workers = 2;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "workers");
    assert_contains(err, "store = redis");
    c.store = CFG_STORE_REDIS;
    strcpy(c.redis, "redis://localhost:6379");
    assert_int_equal(cfg_validate(&c, err), 0);
    c.workers = 65;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "workers");
    c.workers = 64;
    strcpy(c.admin_listen, "127.0.0.1:65472");
    assert_int_equal(cfg_validate(&c, err), 0);
    strcpy(c.admin_listen, "127.0.0.1:65473");
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "admin_listen");
    c.admin_listen[0] = '\0';
    c.conformance = CFG_CONFORMANCE_SOCKETIO;
    assert_int_equal(cfg_validate(&c, err), -1);
    assert_contains(err, "conformance");
    c.workers = 1;
    assert_int_equal(cfg_validate(&c, err), 0);
}

/* --- help and the documents that mirror the table --- */

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cfg c;
    char def[CFG_STR_MAX + 8], want[CFG_STR_MAX + 64];
    static const char *const flags[] = {"--config FILE",  "--listen HOST:PORT", "--store",
                                        "--redis URL",    "--set KEY=VALUE",    "--conformance",
                                        "--check-config", "--version",          "-h, --help"};

    assert_non_null(f);
    cfg_print_help(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        assert_contains(text, flags[i]);
    assert_contains(text, "PRESENCED_");
    cfg_init(&c);
    for (size_t i = 0; cfg_key_name(i) != NULL; i++) {
        get_value(&c, cfg_key_name(i), def, sizeof(def));
        snprintf(want, sizeof(want), "  %s ", cfg_key_name(i));
        assert_contains(text, want);
        snprintf(want, sizeof(want), "default \"%s\"", def);
        assert_contains(text, want);
    }
    /* Every key's default starts in the same column, however long the key's name. */
    long column = -1;
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *d = strstr(line, " default \"");
        const char *eol = strchr(line, '\n');
        if (!d || (eol && d > eol) || strncmp(line, "  ", 2) != 0 || line[2] == ' ' ||
            line[2] == '-')
            continue;
        if (column < 0)
            column = d - line;
        if (d - line != column)
            fail_msg("misaligned: %.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
    }
    assert_true(column > 0);
    free(text);
}

/* The repository root, from this file's path (CMake compiles it by absolute path). */
static void repo_file(char *out, size_t len, const char *rel)
{
    const char *marker = strstr(__FILE__, "tests/unit/test_cfg.c");
    assert_non_null(marker);
    snprintf(out, len, "%.*s%s", (int)(marker - __FILE__), __FILE__, rel);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* What the shipped example sets apart from the defaults: JWT authentication and the HTTP API key,
 * from the key files the .deb generates. Nothing else may differ. */
static const char *const shipped_overrides[][2] = {
    {"auth", "jwt"},
    {"jwt_secret_file", "/etc/presenced/jwt.key"},
    {"api_key_file", "/etc/presenced/api.key"},
    {"anonymous_reads", "off"},
};

/* The example file sets every key to its default except shipped_overrides, and names each key. */
static void test_example_config(void **state)
{
    (void)state;
    char path[4096], err[CFG_ERR_MAX], val[CFG_STR_MAX + 8], def[CFG_STR_MAX + 8];
    char want[CFG_STR_MAX + 64];
    cfg c, d, defaults;
    cfg_action a;

    repo_file(path, sizeof(path), "config/presenced.conf");
    cfg_init(&c);
    if (cfg_load_file(&c, path, err) != 0)
        fail_msg("%s", err);
    cfg_init(&defaults);
    cfg_init(&d);
    for (size_t i = 0; i < sizeof(shipped_overrides) / sizeof(shipped_overrides[0]); i++)
        assert_int_equal(cfg_set(&d, shipped_overrides[i][0], shipped_overrides[i][1], err), 0);
    assert_memory_equal(&c, &d, sizeof(c));

    char *text = slurp(path);
    size_t differing = 0;
    for (size_t i = 0; cfg_key_name(i) != NULL; i++) {
        get_value(&d, cfg_key_name(i), val, sizeof(val));
        get_value(&defaults, cfg_key_name(i), def, sizeof(def));
        differing += strcmp(val, def) != 0;
        snprintf(want, sizeof(want), "\n%s = %s%s%s\n", cfg_key_name(i), val[0] ? "" : "\"", val,
                 val[0] ? "" : "\"");
        assert_contains(text, want);
    }
    assert_int_equal(differing, sizeof(shipped_overrides) / sizeof(shipped_overrides[0]));
    free(text);

    char *argv[] = {"presenced", "--check-config", path, NULL};
    assert_int_equal(cfg_from_args(&c, 3, argv, NULL, &a, err), 0);
    assert_int_equal(a, CFG_ACTION_CHECK);
}

static void test_docs_table(void **state)
{
    (void)state;
    char path[4096], def[CFG_STR_MAX + 8], want[CFG_STR_MAX + 64], env[64];
    cfg d;

    repo_file(path, sizeof(path), "docs/configuration.md");
    char *text = slurp(path);
    cfg_init(&d);
    for (size_t i = 0; cfg_key_name(i) != NULL; i++) {
        const char *k = cfg_key_name(i);
        size_t j = 0;
        get_value(&d, k, def, sizeof(def));
        snprintf(want, sizeof(want), "| `%s` |", k);
        assert_contains(text, want);
        snprintf(want, sizeof(want), def[0] ? "| `%s` |" : "| `\"\"`%s |", def);
        assert_contains(text, want);
        for (; k[j] != '\0' && j < sizeof(env) - 1; j++)
            env[j] = (k[j] >= 'a' && k[j] <= 'z') ? (char)(k[j] - 'a' + 'A') : k[j];
        env[j] = '\0';
        snprintf(want, sizeof(want), "`PRESENCED_%s`", env);
        assert_contains(text, want);
    }
    free(text);
}

/* Whether a line of the man page's key list names a key: ".B key" or ".BR key ," / ".BR key ."
 * (values and headings use other forms: .RB, capitals, quotes). Writes the name to out. */
static bool man_key_line(const char *line, size_t len, char *out, size_t cap)
{
    size_t skip = len > 4 && strncmp(line, ".BR ", 4) == 0  ? 4
                  : len > 3 && strncmp(line, ".B ", 3) == 0 ? 3
                                                            : 0;
    size_t n = 0;
    if (skip == 0)
        return false;
    while (skip + n < len &&
           ((line[skip + n] >= 'a' && line[skip + n] <= 'z') ||
            (line[skip + n] >= '0' && line[skip + n] <= '9') || line[skip + n] == '_'))
        n++;
    const char *rest = line + skip + n;
    size_t rest_len = len - skip - n;
    bool list_item =
        rest_len == 0 ||
        (rest_len == 2 && (strncmp(rest, " ,", 2) == 0 || strncmp(rest, " .", 2) == 0));
    if (n == 0 || n >= cap || !list_item)
        return false;
    memcpy(out, line + skip, n);
    out[n] = '\0';
    return true;
}

/* The man page's key list (CONFIGURATION, from "The keys, in brief" to the next paragraph)
 * names every key of the table, and nothing else in it is taken for a key. */
static void test_man_page_keys(void **state)
{
    (void)state;
    char path[4096], name[64];
    repo_file(path, sizeof(path), "docs/presenced.8");
    char *text = slurp(path);
    char *start = strstr(text, ".PP\nThe keys, in brief");
    assert_non_null(start);
    char *end = strstr(start + 1, "\n.PP\n");
    assert_non_null(end);
    size_t nkeys = 0;
    while (cfg_key_name(nkeys) != NULL)
        nkeys++;
    bool *seen = calloc(nkeys, sizeof(*seen));
    assert_non_null(seen);
    for (char *line = start; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        if (man_key_line(line, len, name, sizeof(name))) {
            size_t i = 0;
            while (i < nkeys && strcmp(cfg_key_name(i), name) != 0)
                i++;
            if (i == nkeys)
                fail_msg("docs/presenced.8 lists \"%s\", which is no configuration key", name);
            seen[i] = true;
        }
        line += len + 1;
    }
    for (size_t i = 0; i < nkeys; i++)
        if (!seen[i])
            fail_msg("docs/presenced.8 does not list the key \"%s\"", cfg_key_name(i));
    free(seen);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_get_set_roundtrip),
        cmocka_unit_test(test_set_good),
        cmocka_unit_test(test_set_bad),
        cmocka_unit_test(test_set_unknown_key),
        cmocka_unit_test(test_set_control_chars_quoted_in_error),
        cmocka_unit_test(test_listen_ipv6_host_stored_bare),
        cmocka_unit_test(test_conformance_presets),
        cmocka_unit_test_teardown(test_file_parse, teardown_tmp),
        cmocka_unit_test_teardown(test_file_errors, teardown_tmp),
        cmocka_unit_test(test_file_missing_and_nul),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_args_defaults),
        cmocka_unit_test_teardown(test_args_precedence, teardown_tmp),
        cmocka_unit_test(test_args_forms),
        cmocka_unit_test(test_args_redis_implies_store),
        cmocka_unit_test_teardown(test_args_actions, teardown_tmp),
        cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_docs_table),
        cmocka_unit_test(test_man_page_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
