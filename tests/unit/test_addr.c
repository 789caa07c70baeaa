/* Unit tests for addr: HOST:PORT and Redis URLs, one set of rules for the configuration and the
 * Redis client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/addr.h"

struct url_vec {
    const char *url;
    const char *host;
    int port;
    const char *path;
    const char *password;
    int db;
};

static const struct url_vec valid[] = {
    {"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", -1},
    /* Without a port, the redis URI scheme's default. */
    {"redis://localhost", "localhost", 6379, "", "", -1},
    {"redis://h", "h", 6379, "", "", -1},
    {"redis://localhost/", "localhost", 6379, "", "", -1},
    {"redis://h:1/0", "h", 1, "", "", 0},
    {"redis://h:65535/15", "h", 65535, "", "", 15},
    {"redis://h/2147483647", "h", 6379, "", "", 2147483647},
    {"redis://:s3cret@10.0.0.5:6379/0", "10.0.0.5", 6379, "", "s3cret", 0},
    /* The password is taken literally, up to the last '@'. */
    {"redis://:p@ss:w/rd@h:7000", "h", 7000, "", "p@ss:w/rd", -1},
    {"redis://:p@ss@db.local:6380/5", "db.local", 6380, "", "p@ss", 5},
    {"redis://:pa#ss@host:6379", "host", 6379, "", "pa#ss", -1},
    {"redis://[::1]:6380/2", "::1", 6380, "", "", 2},
    {"redis://[::1]", "::1", 6379, "", "", -1},
    {"unix:///run/redis/redis.sock", "", 0, "/run/redis/redis.sock", "", -1},
};

/* Each with a word of the reason it must give. */
static const struct {
    const char *url, *why;
} invalid[] = {
    {"", "no URL"},
    {"redis://", "empty host"},
    {"redis://:6379", "empty host"},
    {"redis://h:0", "out of range"},
    {"redis://h:65536", "out of range"},
    {"redis://h:63x9", "not a decimal"},
    {"redis://h:", "empty port"},
    {"redis://h/x", "not a decimal"},
    {"redis://h/-1", "not a decimal"},
    {"redis://h/2147483648", "out of range"},
    {"redis://user:pass@h:6379", "user names"},
    {"redis://:@h:1", "empty password"},
    {"redis://:a b@h:1", "space"},
    {"redis://[::1", "']'"},
    {"redis://[::1]x", "expected ':PORT'"},
    {"redis://::1:6379", "brackets"},
    {"redis://[1.2.3.4]:1", "only for IPv6"},
    {"redis://a b:1", "invalid character"},
    {"rediss://h:6379", "expected redis://"},
    {"http://h:6379", "expected redis://"},
    {"unix://relative/path", "absolute"},
    {"unix://", "absolute"},
    {"unix:///", "absolute"},
    {"unix:///tmp/a\tb", "control character"},
};

static void test_redis_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        addr_redis a;
        char why[128] = "";
        if (addr_redis_parse(valid[i].url, &a, why, sizeof(why)) != 0)
            fail_msg("refused \"%s\": %s", valid[i].url, why);
        assert_string_equal(a.host, valid[i].host);
        assert_int_equal(a.port, valid[i].port);
        assert_string_equal(a.path, valid[i].path);
        assert_string_equal(a.password, valid[i].password);
        assert_int_equal(a.db, valid[i].db);
    }
}

static void test_redis_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        addr_redis a;
        char why[128] = "";
        if (addr_redis_parse(invalid[i].url, &a, why, sizeof(why)) != -1)
            fail_msg("accepted \"%s\"", invalid[i].url);
        if (!strstr(why, invalid[i].why))
            fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", invalid[i].url, why,
                     invalid[i].why);
    }
    addr_redis a;
    assert_int_equal(addr_redis_parse(NULL, &a, NULL, 0), -1);
}

static void test_redis_too_long(void **state)
{
    (void)state;
    char url[1200] = "unix:///";
    memset(url + 8, 'a', 200);
    addr_redis a;
    char why[128];
    assert_int_equal(addr_redis_parse(url, &a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 600);
    strcpy(url + 609, "@h:1");
    assert_int_equal(addr_redis_parse(url, &a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
    strcpy(url, "redis://");
    memset(url + 8, 'h', 300);
    strcpy(url + 308, ":1");
    assert_int_equal(addr_redis_parse(url, &a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
}

static void test_hostport(void **state)
{
    (void)state;
    char host[64], why[128];
    uint16_t port = 1;
    assert_int_equal(addr_hostport_parse("[fe80::1%eth0]:4000", host, sizeof(host), &port, false,
                                         why, sizeof(why)),
                     0);
    assert_string_equal(host, "fe80::1%eth0");
    assert_int_equal(port, 4000);
    /* An origin may leave its port out; a listener may not. */
    assert_int_equal(
        addr_hostport_parse("a.test", host, sizeof(host), &port, true, why, sizeof(why)), 0);
    assert_int_equal(port, 0);
    assert_int_equal(
        addr_hostport_parse("a.test", host, sizeof(host), &port, false, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "missing ':PORT'"));
    assert_int_equal(addr_hostport_parse("abcdefgh:1", host, 8, &port, false, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "longer than 7"));
}

/* ---- redis-sentinel:// and redis-cluster:// ---- */

struct topo_vec {
    const char *url;
    addr_redis_mode mode;
    const char *nodes; /* "host port;host port" as parsed */
    const char *master;
    const char *password;
    int db;
};

static const struct topo_vec topo_valid[] = {
    {"redis-sentinel://127.0.0.1:26379/mymaster", ADDR_REDIS_SENTINEL, "127.0.0.1 26379",
     "mymaster", "", -1},
    /* A sentinel without a port has Sentinel's default. */
    {"redis-sentinel://a,b:26380,[::1]/m-1.x_y", ADDR_REDIS_SENTINEL, "a 26379;b 26380;::1 26379",
     "m-1.x_y", "", -1},
    {"redis-sentinel://:pw@s1:1,s2:2/main/3", ADDR_REDIS_SENTINEL, "s1 1;s2 2", "main", "pw", 3},
    {"redis-sentinel://:p@s/w@s1:1/main/", ADDR_REDIS_SENTINEL, "s1 1", "main", "p@s/w", -1},
    {"redis-cluster://127.0.0.1:7000", ADDR_REDIS_CLUSTER, "127.0.0.1 7000", "", "", -1},
    {"redis-cluster://:s3@n1,n2:7001,[::1]:7002", ADDR_REDIS_CLUSTER, "n1 6379;n2 7001;::1 7002",
     "", "s3", -1},
    {"redis://h:1/2", ADDR_REDIS_DIRECT, "", "", "", 2},
    {"unix:///run/r.sock", ADDR_REDIS_DIRECT, "", "", "", -1},
};

static const struct {
    const char *url, *why;
} topo_invalid[] = {
    {"redis-sentinel://h:1", "missing master name"},
    {"redis-sentinel://h:1/", "missing master name"},
    {"redis-sentinel://h:1//2", "missing master name"},
    {"redis-sentinel://h:1/a b", "master name"},
    {"redis-sentinel://h:1/a:b", "master name"},
    {"redis-sentinel://h:1/m/x", "not a decimal"},
    {"redis-sentinel://h:1/m/2147483648", "out of range"},
    {"redis-sentinel:///m", "empty address"},
    {"redis-sentinel://h:1,/m", "empty address"},
    {"redis-sentinel://,h:1/m", "empty address"},
    {"redis-sentinel://h:1,h:1/m", "repeats address 1"},
    {"redis-sentinel://h,h:26379/m", "repeats address 1"},
    {"redis-sentinel://h:0/m", "out of range"},
    {"redis-sentinel://user:pw@h:1/m", "user names"},
    {"redis-sentinel://::1:1/m", "brackets"},
    {"redis-cluster://", "empty address"},
    {"redis-cluster://h:1/0", "no databases"},
    {"redis-cluster://h:1,,g:2", "empty address"},
    {"redis-cluster://h:1,h:1", "repeats"},
    {"redis-cluster://h:x", "not a decimal"},
    {"redis-cluster://:@h:1", "empty password"},
    {"rediss://h", "expected redis://, unix://, redis-sentinel:// or redis-cluster://"},
    {"redis-sentinel:/h/m", "expected redis://"},
    {"", "no URL"},
};

/* "host port;host port" of the parsed nodes. */
static void nodes_text(const addr_redis_url *u, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < u->nnodes && o < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%s%s %u", i ? ";" : "", u->nodes[i].host,
                              u->nodes[i].port);
}

static void test_url_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(topo_valid) / sizeof(topo_valid[0]); i++) {
        const struct topo_vec *v = &topo_valid[i];
        addr_redis_url u;
        char why[128] = "", nodes[512];
        if (addr_redis_url_parse(v->url, &u, why, sizeof(why)) != 0)
            fail_msg("refused \"%s\": %s", v->url, why);
        assert_int_equal(u.mode, v->mode);
        nodes_text(&u, nodes, sizeof(nodes));
        assert_string_equal(nodes, v->nodes);
        assert_string_equal(u.master, v->master);
        assert_string_equal(u.data.password, v->password);
        assert_int_equal(u.data.db, v->db);
        /* Only a direct URL says where the data is. */
        if (v->mode != ADDR_REDIS_DIRECT)
            assert_true(u.data.host[0] == '\0' && u.data.port == 0 && u.data.path[0] == '\0');
    }
}

static void test_url_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(topo_invalid) / sizeof(topo_invalid[0]); i++) {
        addr_redis_url u;
        char why[128] = "";
        if (addr_redis_url_parse(topo_invalid[i].url, &u, why, sizeof(why)) != -1)
            fail_msg("accepted \"%s\"", topo_invalid[i].url);
        if (!strstr(why, topo_invalid[i].why))
            fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", topo_invalid[i].url, why,
                     topo_invalid[i].why);
    }
}

/* Sixteen addresses fit, seventeen do not; a master name of 64 characters fits, 65 do not. */
static void test_url_limits(void **state)
{
    (void)state;
    char url[1024] = "redis-cluster://";
    for (int i = 0; i < ADDR_REDIS_NODES_MAX; i++)
        snprintf(url + strlen(url), sizeof(url) - strlen(url), "%sh%d:1", i ? "," : "", i);
    addr_redis_url u;
    char why[128];
    assert_int_equal(addr_redis_url_parse(url, &u, why, sizeof(why)), 0);
    assert_int_equal(u.nnodes, ADDR_REDIS_NODES_MAX);
    strcat(url, ",extra:1");
    assert_int_equal(addr_redis_url_parse(url, &u, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "more than 16"));

    char name[ADDR_MASTER_MAX + 1];
    memset(name, 'm', ADDR_MASTER_MAX - 1);
    name[ADDR_MASTER_MAX - 1] = '\0';
    snprintf(url, sizeof(url), "redis-sentinel://s/%s", name);
    assert_int_equal(addr_redis_url_parse(url, &u, why, sizeof(why)), 0);
    assert_string_equal(u.master, name);
    snprintf(url, sizeof(url), "redis-sentinel://s/%sm", name);
    assert_int_equal(addr_redis_url_parse(url, &u, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than 64"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_valid),    cmocka_unit_test(test_redis_invalid),
        cmocka_unit_test(test_redis_too_long), cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_url_valid),      cmocka_unit_test(test_url_invalid),
        cmocka_unit_test(test_url_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
