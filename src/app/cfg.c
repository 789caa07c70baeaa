/* cfg — configuration: one table of keys drives defaults, parsing, the environment, --help and
 * validation, so that a key cannot be known to one of them and missing from another.
 */
#include "presenced/app/cfg.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/addr.h"

#ifndef PRESENCED_VERSION
#define PRESENCED_VERSION "unknown"
#endif

/* Enum fields are written through an int; that is only sound while the enums are int-sized. */
_Static_assert(sizeof(cfg_store) == sizeof(int), "cfg_store must be int-sized");
_Static_assert(sizeof(cfg_log_level) == sizeof(int), "cfg_log_level must be int-sized");
_Static_assert(sizeof(cfg_conformance) == sizeof(int), "cfg_conformance must be int-sized");
_Static_assert(sizeof(cfg_broadcast) == sizeof(int), "cfg_broadcast must be int-sized");
_Static_assert(sizeof(cfg_auth) == sizeof(int), "cfg_auth must be int-sized");
_Static_assert(sizeof(cfg_onoff) == sizeof(int), "cfg_onoff must be int-sized");

#define CFG_ENV_PREFIX "PRESENCED_"
/* Longest value text accepted before parsing: a full string field plus two quotes. */
#define CFG_VALUE_MAX (CFG_STR_MAX + 2)

typedef enum cfg_type {
    CFG_TYPE_STRING,   /* checked and normalised by the key's check function */
    CFG_TYPE_UINT,     /* uint32_t, decimal, within [min, max] */
    CFG_TYPE_ENUM,     /* int-sized enum, value = index in `names` */
    CFG_TYPE_HOSTPORT, /* char[] host at `offset`, uint16_t port at `offset2` */
} cfg_type;

/* Validates `in` and writes its normalised form (at most `outlen` bytes with the NUL) to `out`.
 * Returns 0, or -1 with a reason (without the key name) in `why`. */
typedef int (*cfg_check_fn)(const char *in, char *out, size_t outlen, char *why, size_t whylen);

typedef struct cfg_key {
    const char *name;
    cfg_type type;
    const char *def;          /* default, as text accepted by cfg_set */
    uint32_t min, max;        /* CFG_TYPE_UINT */
    const char *const *names; /* CFG_TYPE_ENUM, NULL-terminated */
    size_t offset;
    size_t offset2; /* CFG_TYPE_HOSTPORT: the port */
    size_t size;    /* CFG_TYPE_STRING / HOSTPORT: size of the char array */
    cfg_check_fn check;
    const char *syntax; /* shown in --help, e.g. "HOST:PORT" */
    const char *help;
} cfg_key;

static int cfg_check_path(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_redis(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_origins(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_namespaces(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_prefix(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_secret(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_file(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_admin(const char *in, char *out, size_t outlen, char *why, size_t whylen);
static int cfg_check_webhook(const char *in, char *out, size_t outlen, char *why, size_t whylen);

static const char *const cfg_store_names[] = {"memory", "redis", NULL};
static const char *const cfg_log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const cfg_conformance_names[] = {"off", "socketio", "engineio", NULL};
static const char *const cfg_broadcast_names[] = {"all", "scoped", NULL};
static const char *const cfg_auth_names[] = {"insecure", "jwt", NULL};
static const char *const cfg_onoff_names[] = {"off", "on", NULL};

#define CFG_MS_MAX 3600000u

/* The one description of every key. Order is the order of --help and the docs. */
static const cfg_key cfg_keys[] = {
    {"listen", CFG_TYPE_HOSTPORT, "127.0.0.1:3000", 0, 0, NULL, offsetof(cfg, listen_host),
     offsetof(cfg, listen_port), sizeof(((cfg *)0)->listen_host), NULL, "HOST:PORT",
     "Address to listen on; IPv6 as [::1]:3000, port 1-65535."},
    {"store", CFG_TYPE_ENUM, "memory", 0, 0, cfg_store_names, offsetof(cfg, store), 0, 0, NULL,
     "memory|redis", "Where presence state lives: this process only, or Redis (shared)."},
    {"redis", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, redis), 0, sizeof(((cfg *)0)->redis),
     cfg_check_redis, "URL",
     "Redis server: redis://[:PASSWORD@]HOST[:PORT][/DB] (port 6379 by default) or "
     "unix:///PATH; needed by store=redis."},
    {"workers", CFG_TYPE_UINT, "1", 1, 64, NULL, offsetof(cfg, workers), 0, 0, NULL, "N",
     "Processes serving the listen address, one core each; more than 1 needs store=redis. Each "
     "client address sticks to one of them."},
    {"path", CFG_TYPE_STRING, "/socket.io/", 0, 0, NULL, offsetof(cfg, path), 0,
     sizeof(((cfg *)0)->path), cfg_check_path, "PATH",
     "Engine.IO endpoint; starts and ends with '/', at most 255 characters, no spaces."},
    {"ping_interval", CFG_TYPE_UINT, "25000", 1, CFG_MS_MAX, NULL, offsetof(cfg, ping_interval), 0,
     0, NULL, "MS", "Milliseconds between server pings (Engine.IO pingInterval)."},
    {"ping_timeout", CFG_TYPE_UINT, "20000", 1, CFG_MS_MAX, NULL, offsetof(cfg, ping_timeout), 0, 0,
     NULL, "MS", "Milliseconds to wait for a pong before closing (Engine.IO pingTimeout)."},
    {"max_payload", CFG_TYPE_UINT, "1000000", 1, 100000000, NULL, offsetof(cfg, max_payload), 0, 0,
     NULL, "BYTES", "Largest HTTP body or WebSocket message accepted (Engine.IO maxPayload)."},
    {"connect_timeout", CFG_TYPE_UINT, "45000", 1, CFG_MS_MAX, NULL, offsetof(cfg, connect_timeout),
     0, 0, NULL, "MS",
     "Milliseconds a client has to send its Socket.IO CONNECT after the handshake."},
    {"allowed_origins", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, allowed_origins), 0,
     sizeof(((cfg *)0)->allowed_origins), cfg_check_origins, "LIST",
     "Comma-separated origins (scheme://host[:port]) allowed to connect; \"*\" allows any; with "
     "\"\""
     " only requests without an Origin header are accepted."},
    {"namespaces", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, namespaces), 0,
     sizeof(((cfg *)0)->namespaces), cfg_check_namespaces, "LIST",
     "Comma-separated Socket.IO namespaces served besides \"/\", each starting with '/'."},
    {"max_connections", CFG_TYPE_UINT, "10000", 1, 1000000, NULL, offsetof(cfg, max_connections), 0,
     0, NULL, "N", "Most concurrent Engine.IO sessions; further handshakes are refused."},
    {"send_queue_max", CFG_TYPE_UINT, "1000", 1, 1000000, NULL, offsetof(cfg, send_queue_max), 0, 0,
     NULL, "PACKETS", "Outgoing packets queued per session before that session is dropped."},
    {"send_queue_bytes", CFG_TYPE_UINT, "4194304", 65536, 1073741824, NULL,
     offsetof(cfg, send_queue_bytes), 0, 0, NULL, "BYTES",
     "Outgoing bytes queued per session before that session is dropped (a client that does not "
     "read its answers)."},
    {"attachment_timeout", CFG_TYPE_UINT, "10000", 1, CFG_MS_MAX, NULL,
     offsetof(cfg, attachment_timeout), 0, 0, NULL, "MS",
     "Milliseconds to wait for the binary attachments of a Socket.IO packet."},
    {"ws_message_gap", CFG_TYPE_UINT, "0", 0, 1000000, NULL, offsetof(cfg, ws_message_gap), 0, 0,
     NULL, "US",
     "Least microseconds between two WebSocket messages to one client (0: none); the conformance "
     "presets set 2000 because the protocol test suites lose messages that share a TCP read."},
    {"http_timeout", CFG_TYPE_UINT, "10", 1, 3600, NULL, offsetof(cfg, http_timeout), 0, 0, NULL,
     "SECONDS", "Seconds an HTTP connection may stay idle or take to send its headers."},
    {"broadcast", CFG_TYPE_ENUM, "all", 0, 0, cfg_broadcast_names, offsetof(cfg, broadcast), 0, 0,
     NULL, "all|scoped",
     "Who receives presence:online/offline/update: every socket, or the sockets that share a "
     "room with the user or subscribed to them."},
    {"anonymous_reads", CFG_TYPE_ENUM, "on", 0, 0, cfg_onoff_names, offsetof(cfg, anonymous_reads),
     0, 0, NULL, "on|off",
     "Whether sockets without an identity may query presence and receive presence events (off: "
     "they get not_identified and hear nothing)."},
    {"offline_grace", CFG_TYPE_UINT, "0", 0, 3600, NULL, offsetof(cfg, offline_grace), 0, 0, NULL,
     "SECONDS",
     "Seconds a user whose last socket closed may take to come back before presence:offline "
     "(a page reload then does not flap)."},
    {"last_seen_retention", CFG_TYPE_UINT, "2592000", 60, 315360000, NULL,
     offsetof(cfg, last_seen_retention), 0, 0, NULL, "SECONDS",
     "Seconds an offline user's lastSeen, status and metadata are kept (default 30 days)."},
    {"instance_lease", CFG_TYPE_UINT, "10", 3, 3600, NULL, offsetof(cfg, instance_lease), 0, 0,
     NULL, "SECONDS",
     "Redis store: lease of this instance, refreshed every third of it; another instance reaps "
     "the sockets of an instance whose lease expired."},
    {"ttl", CFG_TYPE_UINT, "30", 10, 86400, NULL, offsetof(cfg, ttl), 0, 0, NULL, "SECONDS",
     "Redis store: TTL that bounds per-instance keys left behind when every instance is gone."},
    {"max_metadata_bytes", CFG_TYPE_UINT, "4096", 2, 1048576, NULL,
     offsetof(cfg, max_metadata_bytes), 0, 0, NULL, "BYTES",
     "Largest metadata JSON object a user may carry."},
    {"max_bulk_ids", CFG_TYPE_UINT, "10000", 1, 1000000, NULL, offsetof(cfg, max_bulk_ids), 0, 0,
     NULL, "N", "Most user ids in one presence:query."},
    {"stream_maxlen", CFG_TYPE_UINT, "100000", 100, 100000000, NULL, offsetof(cfg, stream_maxlen),
     0, 0, NULL, "N",
     "Redis store: events kept in the stream, i.e. how long an instance may lose Redis and "
     "still deliver what it missed."},
    {"redis_prefix", CFG_TYPE_STRING, "presenced:", 0, 0, NULL, offsetof(cfg, redis_prefix), 0,
     sizeof(((cfg *)0)->redis_prefix), cfg_check_prefix, "PREFIX",
     "Redis store: prefix of every key (letters, digits, ':', '_', '-', '.'; at most 63)."},
    {"max_http_body", CFG_TYPE_UINT, "1048576", 1, 104857600, NULL, offsetof(cfg, max_http_body), 0,
     0, NULL, "BYTES", "Largest HTTP API request body; larger ones get 413."},
    {"api_key", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, api_key), 0,
     sizeof(((cfg *)0)->api_key), cfg_check_secret, "KEY",
     "When set, every /v1 request needs 'Authorization: Bearer KEY' (401 otherwise)."},
    {"api_key_file", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, api_key_file), 0,
     sizeof(((cfg *)0)->api_key_file), cfg_check_file, "PATH",
     "File holding api_key (first line), read at start; overrides api_key."},
    {"admin_listen", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, admin_listen), 0,
     sizeof(((cfg *)0)->admin_listen), cfg_check_admin, "HOST:PORT",
     "Separate listener for /healthz, /readyz and /metrics (which then leave the main one); "
     "\"\" for none."},
    {"dashboard", CFG_TYPE_ENUM, "on", 0, 0, cfg_onoff_names, offsetof(cfg, dashboard), 0, 0, NULL,
     "on|off",
     "The live presence page at GET / of the main listener (behind api_key when set); off: 404."},
    {"webhook_url", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, webhook_url), 0,
     sizeof(((cfg *)0)->webhook_url), cfg_check_webhook, "URL",
     "http(s) URL that presence events are POSTed to in batches; \"\" for none."},
    {"webhook_secret", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, webhook_secret), 0,
     sizeof(((cfg *)0)->webhook_secret), cfg_check_secret, "SECRET",
     "Key of the HMAC-SHA256 signature of each webhook body (X-Presenced-Signature)."},
    {"webhook_retry_for", CFG_TYPE_UINT, "300", 1, 86400, NULL, offsetof(cfg, webhook_retry_for), 0,
     0, NULL, "SECONDS",
     "How long a failed webhook batch is retried, with exponential backoff, before it is dropped."},
    {"auth", CFG_TYPE_ENUM, "insecure", 0, 0, cfg_auth_names, offsetof(cfg, auth), 0, 0, NULL,
     "insecure|jwt",
     "How sockets prove who they are: insecure trusts the userId they send; jwt needs a signed "
     "token (docs/security.md)."},
    {"jwt_secret", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, jwt_secret), 0,
     sizeof(((cfg *)0)->jwt_secret), cfg_check_secret, "SECRET",
     "auth=jwt: HS256 secret, at least 32 bytes of printable ASCII."},
    {"jwt_secret_file", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, jwt_secret_file), 0,
     sizeof(((cfg *)0)->jwt_secret_file), cfg_check_file, "PATH",
     "auth=jwt: file whose first line is the HS256 secret; read at start and on SIGHUP."},
    {"jwt_public_key_file", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, jwt_public_key_file), 0,
     sizeof(((cfg *)0)->jwt_public_key_file), cfg_check_file, "PATH",
     "auth=jwt: PEM public key (RSA >= 2048 bits for RS256, P-256 for ES256); read at start and "
     "on SIGHUP."},
    {"jwt_audience", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, jwt_audience), 0,
     sizeof(((cfg *)0)->jwt_audience), cfg_check_secret, "AUD",
     "auth=jwt: when set, tokens must name this audience in \"aud\"."},
    {"jwt_issuer", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, jwt_issuer), 0,
     sizeof(((cfg *)0)->jwt_issuer), cfg_check_secret, "ISS",
     "auth=jwt: when set, tokens must carry this \"iss\"."},
    {"jwt_leeway", CFG_TYPE_UINT, "30", 0, 3600, NULL, offsetof(cfg, jwt_leeway), 0, 0, NULL,
     "SECONDS", "auth=jwt: clock skew allowed on exp, nbf and iat."},
    {"max_connections_per_ip", CFG_TYPE_UINT, "100", 1, 1000000, NULL,
     offsetof(cfg, max_connections_per_ip), 0, 0, NULL, "N",
     "Most TCP connections from one IP address; further ones are closed at once."},
    {"max_sockets_per_user", CFG_TYPE_UINT, "100", 1, 1000000, NULL,
     offsetof(cfg, max_sockets_per_user), 0, 0, NULL, "N",
     "Most sockets one user may have on this instance; further ones get CONNECT_ERROR."},
    {"max_rooms_per_socket", CFG_TYPE_UINT, "100", 1, 1000000, NULL,
     offsetof(cfg, max_rooms_per_socket), 0, 0, NULL, "N",
     "Most rooms one socket may be in; further joins fail with limit_exceeded."},
    {"max_subscriptions_per_socket", CFG_TYPE_UINT, "1000", 1, 1000000, NULL,
     offsetof(cfg, max_subscriptions_per_socket), 0, 0, NULL, "N",
     "Most users one socket may subscribe to; further subscriptions fail with limit_exceeded."},
    {"rate_limit", CFG_TYPE_UINT, "20", 1, 1000000, NULL, offsetof(cfg, rate_limit), 0, 0, NULL,
     "PER_SECOND",
     "Messages per second one connection may send on average (commands, namespace connects and "
     "disconnects, any event; token bucket); more get rate_limited."},
    {"rate_burst", CFG_TYPE_UINT, "50", 1, 1000000, NULL, offsetof(cfg, rate_burst), 0, 0, NULL,
     "N",
     "Messages one connection may send at once (bucket size); a connection with more than this "
     "many refused within 10 s is closed."},
    {"auth_failures_per_ip", CFG_TYPE_UINT, "30", 0, 1000000, NULL,
     offsetof(cfg, auth_failures_per_ip), 0, 0, NULL, "PER_MINUTE",
     "Failed token checks (auth=jwt) one IP address may cause per minute; beyond, its tokens are "
     "refused unchecked with rate_limited (0: no limit)."},
    {"tls_cert", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, tls_cert), 0,
     sizeof(((cfg *)0)->tls_cert), cfg_check_file, "PATH",
     "PEM certificate chain: with tls_key the main listener serves HTTPS and WSS (TLS 1.2+, "
     "HTTP/1.1)."},
    {"tls_key", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, tls_key), 0,
     sizeof(((cfg *)0)->tls_key), cfg_check_file, "PATH", "PEM private key of tls_cert."},
    {"shutdown_timeout", CFG_TYPE_UINT, "10", 1, 600, NULL, offsetof(cfg, shutdown_timeout), 0, 0,
     NULL, "SECONDS",
     "Seconds SIGTERM may take: marking this instance's users offline, closing connections."},
    {"log_level", CFG_TYPE_ENUM, "info", 0, 0, cfg_log_level_names, offsetof(cfg, log_level), 0, 0,
     NULL, "error|warn|info|debug", "Least severe log messages written."},
    {"conformance", CFG_TYPE_ENUM, "off", 0, 0, cfg_conformance_names, offsetof(cfg, conformance),
     0, 0, NULL, "off|socketio|engineio",
     "Protocol test-suite behaviour; this key sets the mode only, the --conformance flag also "
     "applies the preset values."},
};

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))

/* Formats into `err` when the caller gave one. A function rather than snprintf at each site so
 * that nested messages ("FILE:LINE: key: reason") can be truncated without warnings. */
__attribute__((format(printf, 3, 4))) static void cfg_errf(char *err, size_t len, const char *fmt,
                                                           ...)
{
    va_list ap;

    if (err == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* A value fit for an error message: peer- or operator-supplied text may be long or hold control
 * characters, which must not reach a terminal or log verbatim. */
static const char *cfg_quote(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    const size_t keep = len > 4 ? len - 4 : 0;

    for (; *s != '\0' && i < keep; s++)
        buf[i++] = (*s < 0x20 || *s == 0x7f) ? '?' : *s;
    if (*s != '\0' && len >= 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int cfg_is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static int cfg_is_ctl_or_space(char ch)
{
    return (unsigned char)ch <= 0x20 || ch == 0x7f;
}

static int cfg_is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* Trims [*s, *s + *n) in place (pointer and length), so no copy is needed. */
static void cfg_trim(const char **s, size_t *n)
{
    while (*n > 0 && cfg_is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && cfg_is_space((*s)[*n - 1]))
        (*n)--;
}

static const cfg_key *cfg_key_find(const char *name, size_t n)
{
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (strlen(cfg_keys[i].name) == n && memcmp(cfg_keys[i].name, name, n) == 0)
            return &cfg_keys[i];
    return NULL;
}

/* Decimal only: a sign, "0x", spaces or a unit suffix are typos we should report, not guess at. */
static int cfg_parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out, char *why,
                          size_t whylen)
{
    char q[80];
    uint64_t v = 0;
    int too_big = 0;

    if (*s == '\0') {
        cfg_errf(why, whylen, "empty value, expected an integer %u..%u", min, max);
        return -1;
    }
    for (const char *p = s; *p != '\0'; p++)
        if (*p < '0' || *p > '9') {
            cfg_errf(why, whylen, "'%s' is not a decimal integer", cfg_quote(s, q, sizeof(q)));
            return -1;
        }
    /* Stop accumulating once past max: v stays below 10 * 2^32, so it cannot overflow. */
    for (const char *p = s; *p != '\0' && !too_big; p++) {
        v = v * 10 + (uint64_t)(*p - '0');
        too_big = v > max;
    }
    if (too_big || v < min) {
        cfg_errf(why, whylen, "%s is out of range %u..%u", cfg_quote(s, q, sizeof(q)), min, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Copies `in` to `out` when it fits; the common tail of the string checks. */
static int cfg_copy_out(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    size_t n = strlen(in);

    if (n >= outlen) {
        cfg_errf(why, whylen, "longer than %zu characters", outlen - 1);
        return -1;
    }
    memcpy(out, in, n + 1);
    return 0;
}

static int cfg_check_path(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    size_t n = strlen(in);

    if (n == 0 || in[0] != '/' || in[n - 1] != '/') {
        cfg_errf(why, whylen, "must start and end with '/'");
        return -1;
    }
    /* '?' and '#' would end the path part of a request URI, so such a path could never match. */
    for (size_t i = 0; i < n; i++)
        if (cfg_is_ctl_or_space(in[i]) || in[i] == '?' || in[i] == '#') {
            cfg_errf(why, whylen, "must not contain spaces, control characters, '?' or '#'");
            return -1;
        }
    return cfg_copy_out(in, out, outlen, why, whylen);
}

static int cfg_check_redis(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    addr_redis u;

    /* Empty means "not configured"; cfg_validate insists on a URL only when store=redis. */
    if (in[0] != '\0' && addr_redis_parse(in, &u, why, whylen) < 0)
        return -1;
    return cfg_copy_out(in, out, outlen, why, whylen);
}

typedef int (*cfg_item_fn)(const char *item, char *why, size_t whylen);

/* Splits `in` at commas, trims each entry, checks it with `item` and writes the entries joined by
 * bare commas, so consumers split on ',' without trimming. "" stays "" (an empty list). */
static int cfg_list_normalize(const char *in, char *out, size_t outlen, cfg_item_fn item, char *why,
                              size_t whylen)
{
    char buf[CFG_VALUE_MAX];
    size_t o = 0;
    const char *p = in;

    out[0] = '\0';
    if (in[0] == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *s = p;
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        cfg_trim(&s, &n);
        if (n == 0) {
            cfg_errf(why, whylen, "empty entry in the list");
            return -1;
        }
        if (n >= sizeof(buf) || o + n + (o > 0) >= outlen) {
            cfg_errf(why, whylen, "longer than %zu characters", outlen - 1);
            return -1;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (item(buf, why, whylen) < 0)
            return -1;
        if (o > 0)
            out[o++] = ',';
        memcpy(out + o, buf, n + 1);
        o += n;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

/* Browsers send Origin as lower-case scheme://host[:port] with no path (RFC 6454 section 6.1),
 * and origins are compared exactly, so anything else in the list could never match. */
static int cfg_origin_check(const char *o, char *why, size_t whylen)
{
    char q[80], host[256];
    uint16_t port;
    const char *sep = strstr(o, "://");

    if (strcmp(o, "*") == 0)
        return 0;
    if (sep == NULL || sep == o || !(o[0] >= 'a' && o[0] <= 'z')) {
        cfg_errf(why, whylen, "origin '%s' is not scheme://host[:port]",
                 cfg_quote(o, q, sizeof(q)));
        return -1;
    }
    for (const char *p = o; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z') {
            cfg_errf(why, whylen, "origin '%s' must be lower case", cfg_quote(o, q, sizeof(q)));
            return -1;
        }
    for (const char *p = o; p < sep; p++)
        if (!cfg_is_alnum(*p) && *p != '+' && *p != '-' && *p != '.') {
            cfg_errf(why, whylen, "origin '%s' has an invalid scheme", cfg_quote(o, q, sizeof(q)));
            return -1;
        }
    if (strchr(sep + 3, '/') != NULL) {
        cfg_errf(why, whylen, "origin '%s' must not have a path (not even a trailing '/')",
                 cfg_quote(o, q, sizeof(q)));
        return -1;
    }
    char inner[CFG_ERR_MAX];
    if (addr_hostport_parse(sep + 3, host, sizeof(host), &port, true, inner, sizeof(inner)) < 0) {
        cfg_errf(why, whylen, "origin '%s': %s", cfg_quote(o, q, sizeof(q)), inner);
        return -1;
    }
    return 0;
}

static int cfg_check_origins(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    if (cfg_list_normalize(in, out, outlen, cfg_origin_check, why, whylen) < 0)
        return -1;
    /* "*" mixed with origins is almost certainly a mistake about what the list means. */
    if (strchr(out, '*') != NULL && strcmp(out, "*") != 0) {
        cfg_errf(why, whylen, "'*' must be the only entry");
        return -1;
    }
    return 0;
}

/* A namespace travels inside Socket.IO packets, where ',' ends it; "/" is always served. */
static int cfg_namespace_check(const char *ns, char *why, size_t whylen)
{
    char q[80];

    if (ns[0] != '/' || ns[1] == '\0') {
        cfg_errf(why, whylen, "namespace '%s' must start with '/' and not be \"/\" itself",
                 cfg_quote(ns, q, sizeof(q)));
        return -1;
    }
    for (const char *p = ns; *p != '\0'; p++)
        if (cfg_is_ctl_or_space(*p) || *p == '?' || *p == '#') {
            cfg_errf(why, whylen,
                     "namespace '%s' must not contain spaces, control characters, '?' or '#'",
                     cfg_quote(ns, q, sizeof(q)));
            return -1;
        }
    return 0;
}

static int cfg_check_namespaces(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    return cfg_list_normalize(in, out, outlen, cfg_namespace_check, why, whylen);
}

/* Secrets: printable ASCII without spaces, so that they survive headers and config files. */
static int cfg_check_secret(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    for (const char *p = in; *p; p++)
        if (cfg_is_ctl_or_space(*p) || (unsigned char)*p >= 0x80) {
            cfg_errf(why, whylen, "only printable ASCII without spaces is allowed");
            return -1;
        }
    return cfg_copy_out(in, out, outlen, why, whylen);
}

static int cfg_check_file(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    for (const char *p = in; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            cfg_errf(why, whylen, "control character in path");
            return -1;
        }
    return cfg_copy_out(in, out, outlen, why, whylen);
}

static int cfg_check_admin(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    char host[256];
    uint16_t port;
    if (in[0] != '\0' && addr_hostport_parse(in, host, sizeof(host), &port, false, why, whylen) < 0)
        return -1;
    return cfg_copy_out(in, out, outlen, why, whylen);
}

static int cfg_check_webhook(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    if (in[0] != '\0' && strncmp(in, "http://", 7) != 0 && strncmp(in, "https://", 8) != 0) {
        cfg_errf(why, whylen, "must start with http:// or https://");
        return -1;
    }
    for (const char *p = in; *p; p++)
        if (cfg_is_ctl_or_space(*p)) {
            cfg_errf(why, whylen, "space or control character in URL");
            return -1;
        }
    return cfg_copy_out(in, out, outlen, why, whylen);
}

int cfg_hostport(const char *s, char *host, size_t hostlen, uint16_t *port, char err[CFG_ERR_MAX])
{
    return addr_hostport_parse(s, host, hostlen, port, false, err, CFG_ERR_MAX);
}

static int cfg_check_prefix(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    size_t n = strlen(in);
    if (n + 1 > outlen) {
        snprintf(why, whylen, "longer than %zu characters", outlen - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == ':' || ch == '_' || ch == '-' || ch == '.')) {
            snprintf(why, whylen, "only letters, digits, ':', '_', '-' and '.' are allowed");
            return -1;
        }
    }
    memcpy(out, in, n + 1);
    return 0;
}

static int cfg_enum_parse(const cfg_key *k, const char *v, int *out, char *why, size_t whylen)
{
    char q[80];

    for (int i = 0; k->names[i] != NULL; i++)
        if (strcmp(k->names[i], v) == 0) {
            *out = i;
            return 0;
        }
    cfg_errf(why, whylen, "'%s' is not one of %s", cfg_quote(v, q, sizeof(q)), k->syntax);
    return -1;
}

/* Parses `v` (already trimmed and unquoted) for key `k` and stores it in `c` only on success. */
static int cfg_key_set(cfg *c, const cfg_key *k, const char *v, char *why, size_t whylen)
{
    char *field = (char *)c + k->offset;

    switch (k->type) {
    case CFG_TYPE_UINT: {
        uint32_t n;
        if (cfg_parse_uint(v, k->min, k->max, &n, why, whylen) < 0)
            return -1;
        memcpy(field, &n, sizeof(n));
        return 0;
    }
    case CFG_TYPE_ENUM: {
        int e;
        if (cfg_enum_parse(k, v, &e, why, whylen) < 0)
            return -1;
        memcpy(field, &e, sizeof(e));
        return 0;
    }
    case CFG_TYPE_HOSTPORT: {
        char host[CFG_STR_MAX];
        uint16_t port;
        if (addr_hostport_parse(v, host, k->size, &port, false, why, whylen) < 0)
            return -1;
        memcpy(field, host, strlen(host) + 1);
        memcpy((char *)c + k->offset2, &port, sizeof(port));
        return 0;
    }
    case CFG_TYPE_STRING: {
        char out[CFG_STR_MAX];
        assert(k->size <= sizeof(out));
        if (k->check(v, out, k->size, why, whylen) < 0)
            return -1;
        memcpy(field, out, strlen(out) + 1);
        return 0;
    }
    }
    assert(0 && "unknown key type");
    return -1;
}

/* cfg_set on a key/value given as (pointer, length) pairs: the file reader passes slices of a
 * line, the other callers whole strings. */
static int cfg_set_n(cfg *c, const char *key, size_t kn, const char *value, size_t vn, char *err)
{
    char q[80], kbuf[64], vbuf[CFG_VALUE_MAX], why[CFG_ERR_MAX];
    const cfg_key *k;

    cfg_trim(&key, &kn);
    cfg_trim(&value, &vn);
    k = cfg_key_find(key, kn);
    if (k == NULL) {
        size_t n = kn < sizeof(kbuf) - 1 ? kn : sizeof(kbuf) - 1;
        memcpy(kbuf, key, n);
        kbuf[n] = '\0';
        cfg_errf(err, CFG_ERR_MAX, "unknown key '%s'", cfg_quote(kbuf, q, sizeof(q)));
        return -1;
    }
    if (vn >= 1 && value[0] == '"') {
        if (vn < 2 || value[vn - 1] != '"') {
            cfg_errf(err, CFG_ERR_MAX, "%s: missing closing '\"'", k->name);
            return -1;
        }
        value++;
        vn -= 2;
    }
    if (vn >= sizeof(vbuf)) {
        cfg_errf(err, CFG_ERR_MAX, "%s: value longer than %zu characters", k->name,
                 sizeof(vbuf) - 1);
        return -1;
    }
    if (memchr(value, '\0', vn) != NULL) {
        cfg_errf(err, CFG_ERR_MAX, "%s: NUL byte in value", k->name);
        return -1;
    }
    memcpy(vbuf, value, vn);
    vbuf[vn] = '\0';
    if (cfg_key_set(c, k, vbuf, why, sizeof(why)) < 0) {
        cfg_errf(err, CFG_ERR_MAX, "%s: %s", k->name, why);
        return -1;
    }
    return 0;
}

int cfg_set(cfg *c, const char *key, const char *value, char err[CFG_ERR_MAX])
{
    assert(c != NULL);
    if (key == NULL || value == NULL) {
        cfg_errf(err, CFG_ERR_MAX, "%s: missing value", key != NULL ? key : "(null)");
        return -1;
    }
    return cfg_set_n(c, key, strlen(key), value, strlen(value), err);
}

void cfg_init(cfg *c)
{
    char err[CFG_ERR_MAX];

    /* Zero first so that padding and unused string bytes compare equal across copies. */
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        int rc = cfg_set(c, cfg_keys[i].name, cfg_keys[i].def, err);
        assert(rc == 0 && "a default in cfg_keys does not parse");
        (void)rc;
    }
}

void cfg_apply_conformance(cfg *c, cfg_conformance mode)
{
    /* Values the protocol test suites expect of the server they drive (short timers so that the
     * heartbeat tests finish quickly, the namespaces and path they connect to, any origin). */
    switch (mode) {
    case CFG_CONFORMANCE_SOCKETIO:
        c->ping_interval = 300;
        c->ping_timeout = 200;
        c->max_payload = 1000000;
        c->connect_timeout = 1000;
        strcpy(c->allowed_origins, "*");
        strcpy(c->namespaces, "/custom");
        strcpy(c->path, "/socket.io/");
        c->ws_message_gap = 2000;
        break;
    case CFG_CONFORMANCE_ENGINEIO:
        strcpy(c->path, "/engine.io/");
        c->ping_interval = 300;
        c->ping_timeout = 200;
        c->max_payload = 1000000;
        strcpy(c->allowed_origins, "*");
        c->ws_message_gap = 2000;
        break;
    case CFG_CONFORMANCE_OFF:
        break;
    }
    c->conformance = mode;
}

int cfg_load_file(cfg *c, const char *path, char err[CFG_ERR_MAX])
{
    char inner[CFG_ERR_MAX];
    unsigned seen[CFG_NKEYS] = {0}; /* line where each key was set, 0 = not yet */
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    int rc = 0;
    cfg tmp = *c; /* all-or-nothing: a bad line leaves `c` as it was */
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        cfg_errf(err, CFG_ERR_MAX, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        const char *s = line;
        size_t n = (size_t)len;
        int quoted = 0;

        lineno++;
        if (strlen(line) != n) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        /* Editors on some systems start UTF-8 files with a byte order mark. */
        if (lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
        /* '#' starts a comment at the start of a line or after whitespace, outside quotes, so a
         * password like "pa#ss" in a URL needs no quoting. */
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"')
                quoted = !quoted;
            else if (s[i] == '#' && !quoted && (i == 0 || cfg_is_space(s[i - 1]))) {
                n = i;
                break;
            }
        }
        cfg_trim(&s, &n);
        if (n == 0)
            continue;
        const char *eq = memchr(s, '=', n);
        if (eq == NULL) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: expected KEY = VALUE", path, lineno);
            rc = -1;
            break;
        }
        const char *key = s;
        size_t kn = (size_t)(eq - s);
        cfg_trim(&key, &kn);
        const cfg_key *k = cfg_key_find(key, kn);
        if (k != NULL && seen[k - cfg_keys] != 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: %s: already set on line %u", path, lineno, k->name,
                     seen[k - cfg_keys]);
            rc = -1;
            break;
        }
        if (cfg_set_n(&tmp, key, kn, eq + 1, n - (size_t)(eq + 1 - s), inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: %s", path, lineno, inner);
            rc = -1;
            break;
        }
        seen[k - cfg_keys] = lineno;
    }
    if (rc == 0 && ferror(f)) {
        cfg_errf(err, CFG_ERR_MAX, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc == 0)
        *c = tmp;
    return rc;
}

int cfg_load_env(cfg *c, char *const *envp, char err[CFG_ERR_MAX])
{
    const size_t plen = strlen(CFG_ENV_PREFIX);
    char inner[CFG_ERR_MAX], q[80], name[64];
    cfg tmp = *c;

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *var = envp[i];
        const char *eq = strchr(var, '=');
        const cfg_key *k = NULL;

        if (eq == NULL || strncmp(var, CFG_ENV_PREFIX, plen) != 0)
            continue;
        size_t n = (size_t)(eq - var) - plen;
        /* Only the upper-case spelling names a key, the way shells and unit files write it. */
        if (n < sizeof(name)) {
            int upper = 1;
            for (size_t j = 0; j < n; j++) {
                char ch = var[plen + j];
                upper = upper && !(ch >= 'a' && ch <= 'z');
                name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
            }
            name[n] = '\0';
            k = upper ? cfg_key_find(name, n) : NULL;
        }
        if (k == NULL) {
            size_t vn = (size_t)(eq - var);
            char vname[80];
            memcpy(vname, var, vn < sizeof(vname) - 1 ? vn : sizeof(vname) - 1);
            vname[vn < sizeof(vname) - 1 ? vn : sizeof(vname) - 1] = '\0';
            cfg_errf(err, CFG_ERR_MAX, "environment variable %s does not name a key",
                     cfg_quote(vname, q, sizeof(q)));
            return -1;
        }
        if (cfg_set(&tmp, k->name, eq + 1, inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "environment variable %.*s: %s", (int)(eq - var), var,
                     inner);
            return -1;
        }
    }
    *c = tmp;
    return 0;
}

int cfg_validate(const cfg *c, char err[CFG_ERR_MAX])
{
    char text[CFG_STR_MAX + 8], inner[CFG_ERR_MAX];
    cfg check;

    /* Every field must be a value cfg_set would accept: callers may have filled the struct by
     * hand, and re-parsing the printed value checks ranges, syntax and enum values alike. */
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (cfg_get(c, cfg_keys[i].name, text, sizeof(text)) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s: invalid value", cfg_keys[i].name);
            return -1;
        }
        check = *c;
        if (cfg_set(&check, cfg_keys[i].name, text, inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s", inner);
            return -1;
        }
    }
    if (c->store == CFG_STORE_REDIS && c->redis[0] == '\0') {
        cfg_errf(err, CFG_ERR_MAX, "store: redis needs a redis URL (key redis, --redis)");
        return -1;
    }
    if (c->workers > 1 && c->store != CFG_STORE_REDIS) {
        cfg_errf(err, CFG_ERR_MAX,
                 "workers: more than 1 needs store = redis (the worker processes share presence "
                 "through Redis)");
        return -1;
    }
    if (c->workers > 1 && c->conformance != CFG_CONFORMANCE_OFF) {
        cfg_errf(err, CFG_ERR_MAX, "workers: more than 1 is not available with conformance");
        return -1;
    }
    if (c->workers > 1 && c->admin_listen[0] != '\0') {
        char host[256];
        uint16_t port = 0;
        if (cfg_hostport(c->admin_listen, host, sizeof(host), &port, NULL) == 0 &&
            (uint32_t)port + c->workers - 1 > 65535) {
            cfg_errf(err, CFG_ERR_MAX,
                     "admin_listen: with workers = %u the ports %u..%u are needed (worker i "
                     "listens on the port + i)",
                     c->workers, port, (uint32_t)port + c->workers - 1);
            return -1;
        }
    }
    if (c->auth == CFG_AUTH_JWT) {
        int nkeys = (c->jwt_secret[0] != '\0') + (c->jwt_secret_file[0] != '\0') +
                    (c->jwt_public_key_file[0] != '\0');
        if (nkeys != 1) {
            cfg_errf(err, CFG_ERR_MAX,
                     "auth: jwt needs exactly one of jwt_secret, jwt_secret_file, "
                     "jwt_public_key_file");
            return -1;
        }
    }
    if (c->jwt_secret[0] != '\0' && strlen(c->jwt_secret) < 32) {
        cfg_errf(err, CFG_ERR_MAX, "jwt_secret: must be at least 32 bytes");
        return -1;
    }
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
        cfg_errf(err, CFG_ERR_MAX, "tls_cert and tls_key: set both or neither");
        return -1;
    }
    if (c->ping_interval == 0 || c->ping_timeout == 0) {
        cfg_errf(err, CFG_ERR_MAX, "%s: must be greater than 0",
                 c->ping_interval == 0 ? "ping_interval" : "ping_timeout");
        return -1;
    }
    return 0;
}

const char *cfg_key_name(size_t i)
{
    return i < CFG_NKEYS ? cfg_keys[i].name : NULL;
}

int cfg_get(const cfg *c, const char *key, char *buf, size_t len)
{
    const cfg_key *k = key != NULL ? cfg_key_find(key, strlen(key)) : NULL;
    const char *field;
    int n;

    if (k == NULL || buf == NULL || len == 0)
        return -1;
    field = (const char *)c + k->offset;
    switch (k->type) {
    case CFG_TYPE_UINT: {
        uint32_t v;
        memcpy(&v, field, sizeof(v));
        n = snprintf(buf, len, "%u", v);
        break;
    }
    case CFG_TYPE_ENUM: {
        int e, count = 0;
        memcpy(&e, field, sizeof(e));
        while (k->names[count] != NULL)
            count++;
        if (e < 0 || e >= count)
            return -1;
        n = snprintf(buf, len, "%s", k->names[e]);
        break;
    }
    case CFG_TYPE_HOSTPORT: {
        uint16_t port;
        memcpy(&port, (const char *)c + k->offset2, sizeof(port));
        n = snprintf(buf, len,
                     memchr(field, ':', strnlen(field, k->size)) != NULL ? "[%.*s]:%u" : "%.*s:%u",
                     (int)strnlen(field, k->size), field, port);
        break;
    }
    case CFG_TYPE_STRING: {
        /* cfg_set trims whitespace and strips one pair of outer quotes: a value that starts with
         * a quote or has whitespace at either end reads back only when quoted. */
        int vlen = (int)strnlen(field, k->size);
        bool quote = vlen > 0 && (field[0] == '"' || field[0] == ' ' || field[0] == '\t' ||
                                  field[vlen - 1] == ' ' || field[vlen - 1] == '\t');
        n = snprintf(buf, len, quote ? "\"%.*s\"" : "%.*s", vlen, field);
        break;
    }
    default:
        return -1;
    }
    return n >= 0 && (size_t)n < len ? 0 : -1;
}

/* Flags of cfg_from_args; F_NONE marks an argument that is not a flag we know. */
typedef enum cfg_flag {
    F_NONE,
    F_CONFIG,
    F_LISTEN,
    F_STORE,
    F_REDIS,
    F_SET,
    F_CONFORMANCE,
    F_CHECK,
    F_VERSION,
    F_HELP,
} cfg_flag;

typedef struct cfg_flag_def {
    const char *name;
    cfg_flag flag;
    int value; /* 1: requires a value, 0: takes none, 2: optional (only as --flag=VALUE or FILE) */
} cfg_flag_def;

static const cfg_flag_def cfg_flags[] = {
    {"--config", F_CONFIG, 1},
    {"--listen", F_LISTEN, 1},
    {"--store", F_STORE, 1},
    {"--redis", F_REDIS, 1},
    {"--set", F_SET, 1},
    {"--conformance", F_CONFORMANCE, 2},
    {"--check-config", F_CHECK, 2},
    {"--version", F_VERSION, 0},
    {"--help", F_HELP, 0},
    {"-h", F_HELP, 0},
};

typedef struct cfg_op {
    cfg_flag flag;
    const char *name; /* as spelled, for messages */
    const char *value;
} cfg_op;

/* First pass over argv: recognise every flag and find its value, without applying anything, so
 * that --help works even when the rest of the configuration is broken. */
static int cfg_args_scan(int argc, char *const *argv, cfg_op *ops, size_t *nops, char *err)
{
    char q[80];

    *nops = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const cfg_flag_def *d = NULL;

        for (size_t j = 0; j < sizeof(cfg_flags) / sizeof(cfg_flags[0]); j++)
            if (strlen(cfg_flags[j].name) == nlen && strncmp(cfg_flags[j].name, arg, nlen) == 0)
                d = &cfg_flags[j];
        if (d == NULL) {
            if (arg[0] == '-')
                cfg_errf(err, CFG_ERR_MAX, "unknown flag '%s' (see --help)",
                         cfg_quote(arg, q, sizeof(q)));
            else
                cfg_errf(err, CFG_ERR_MAX, "unexpected argument '%s' (see --help)",
                         cfg_quote(arg, q, sizeof(q)));
            return -1;
        }
        cfg_op *op = &ops[(*nops)++];
        op->flag = d->flag;
        op->name = d->name;
        op->value = eq != NULL ? eq + 1 : NULL;
        if (d->value == 0 && eq != NULL) {
            cfg_errf(err, CFG_ERR_MAX, "%s takes no value", d->name);
            return -1;
        }
        if (d->value == 1 && eq == NULL) {
            if (i + 1 >= argc) {
                cfg_errf(err, CFG_ERR_MAX, "%s needs a value", d->name);
                return -1;
            }
            op->value = argv[++i];
        }
        /* `--check-config FILE` is the natural way to check a file, so it takes one too; a
         * following flag is not mistaken for it. */
        if (d->flag == F_CHECK && eq == NULL && i + 1 < argc && argv[i + 1][0] != '-')
            op->value = argv[++i];
    }
    return 0;
}

/* Whether a --set KEY=VALUE argument sets "store" (it then counts as --store for --redis). */
static int cfg_set_names_store(const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t n = eq != NULL ? (size_t)(eq - kv) : 0;

    cfg_trim(&kv, &n);
    return n == 5 && memcmp(kv, "store", 5) == 0;
}

int cfg_from_args(cfg *c, int argc, char *const *argv, char *const *envp, cfg_action *action,
                  char err[CFG_ERR_MAX])
{
    char inner[CFG_ERR_MAX];
    cfg tmp;
    cfg_op *ops;
    size_t nops;
    const char *config = NULL;
    cfg_conformance preset = CFG_CONFORMANCE_OFF;
    int help = 0, version = 0, check = 0, store_given = 0, redis_given = 0, rc = -1;

    *action = CFG_ACTION_RUN;
    cfg_init(&tmp);
    ops = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*ops));
    if (ops == NULL) {
        cfg_errf(err, CFG_ERR_MAX, "out of memory");
        return -1;
    }
    if (cfg_args_scan(argc, argv, ops, &nops, err) < 0)
        goto out;

    for (size_t i = 0; i < nops; i++) {
        const char *v = ops[i].value;
        switch (ops[i].flag) {
        case F_HELP:
            help = 1;
            break;
        case F_VERSION:
            version = 1;
            break;
        case F_CHECK:
        case F_CONFIG:
            check = check || ops[i].flag == F_CHECK;
            /* --check-config FILE names the file just like --config FILE; two files would
             * leave it unclear which one is meant. */
            if (v == NULL)
                break;
            if (config != NULL) {
                char q[80];
                cfg_errf(err, CFG_ERR_MAX, "%s: a configuration file is already given (%s)",
                         ops[i].name, cfg_quote(config, q, sizeof(q)));
                goto out;
            }
            config = v;
            break;
        case F_CONFORMANCE:
            if (v == NULL || strcmp(v, "socketio") == 0) {
                preset = CFG_CONFORMANCE_SOCKETIO;
            } else if (strcmp(v, "engineio") == 0) {
                preset = CFG_CONFORMANCE_ENGINEIO;
            } else {
                char q[80];
                cfg_errf(err, CFG_ERR_MAX, "--conformance: '%s' is not one of socketio|engineio",
                         cfg_quote(v, q, sizeof(q)));
                goto out;
            }
            break;
        case F_STORE:
            store_given = 1;
            break;
        case F_REDIS:
            redis_given = 1;
            break;
        case F_SET:
            if (cfg_set_names_store(v))
                store_given = 1;
            break;
        case F_LISTEN:
        case F_NONE:
            break;
        }
    }
    if (help || version) {
        *c = tmp;
        *action = help ? CFG_ACTION_HELP : CFG_ACTION_VERSION;
        rc = 0;
        goto out;
    }

    if (preset != CFG_CONFORMANCE_OFF)
        cfg_apply_conformance(&tmp, preset);
    if (config != NULL && cfg_load_file(&tmp, config, err) < 0)
        goto out;
    if (cfg_load_env(&tmp, envp, err) < 0)
        goto out;
    for (size_t i = 0; i < nops; i++) {
        const char *v = ops[i].value;
        const char *key = NULL;
        switch (ops[i].flag) {
        case F_LISTEN:
            key = "listen";
            break;
        case F_STORE:
            key = "store";
            break;
        case F_REDIS:
            key = "redis";
            break;
        case F_SET: {
            const char *eq = strchr(v, '=');
            if (eq == NULL) {
                cfg_errf(err, CFG_ERR_MAX, "--set expects KEY=VALUE");
                goto out;
            }
            if (cfg_set_n(&tmp, v, (size_t)(eq - v), eq + 1, strlen(eq + 1), inner) < 0) {
                cfg_errf(err, CFG_ERR_MAX, "--set: %s", inner);
                goto out;
            }
            break;
        }
        default:
            break;
        }
        if (key != NULL && cfg_set(&tmp, key, v, inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s: %s", ops[i].name, inner);
            goto out;
        }
    }
    /* Giving a Redis URL on the command line says which store is wanted. */
    if (redis_given && !store_given)
        tmp.store = CFG_STORE_REDIS;
    if (cfg_validate(&tmp, err) < 0)
        goto out;
    *c = tmp;
    *action = check ? CFG_ACTION_CHECK : CFG_ACTION_RUN;
    rc = 0;
out:
    free(ops);
    return rc;
}

/* Prints `text` indented by `indent` spaces, wrapped at spaces to stay within `width` columns,
 * so that help strings in the table can be written without thinking about line length. */
static void cfg_print_wrapped(FILE *f, const char *text, int indent, int width)
{
    int col = 0;

    while (*text != '\0') {
        int n = (int)strcspn(text, " ");
        if (col > indent && col + 1 + n > width) {
            fputc('\n', f);
            col = 0;
        }
        if (col == 0)
            col = fprintf(f, "%*s", indent, "");
        else
            col += fprintf(f, " ");
        col += fprintf(f, "%.*s", n, text);
        text += n;
        while (*text == ' ')
            text++;
    }
    fputc('\n', f);
}

void cfg_print_help(void *out)
{
    FILE *f = out;

    fprintf(f,
            "presenced " PRESENCED_VERSION
            " - presence daemon (Engine.IO v4 / Socket.IO v5 server)\n"
            "\n"
            "Usage: presenced [OPTIONS]\n"
            "\n"
            "Options:\n"
            "  --config FILE           read KEY = VALUE settings from FILE ('#' starts a comment)\n"
            "  --listen HOST:PORT      same as --set listen=HOST:PORT\n"
            "  --store memory|redis    same as --set store=...\n"
            "  --redis URL             same as --set redis=URL; also sets store=redis unless\n"
            "                          --store or --set store=... is given\n"
            "  --set KEY=VALUE         set any key below (repeatable)\n"
            "  --conformance[=MODE]    apply the protocol test-suite preset first; MODE is\n"
            "                          socketio (the default) or engineio\n"
            "  --check-config [FILE]   load and validate the configuration (FILE as with\n"
            "                          --config), then exit\n"
            "  --version               print the version and exit\n"
            "  -h, --help              print this help and exit\n"
            "Flags with a value also accept --flag=VALUE.\n"
            "\n"
            "Settings are applied in this order, later wins: defaults, the --conformance preset,\n"
            "the --config file, PRESENCED_<KEY> environment variables (e.g. "
            "PRESENCED_PING_INTERVAL),\n"
            "then --listen, --store, --redis and --set in command-line order.\n"
            "\n"
            "Keys (file: KEY = VALUE, environment: PRESENCED_<KEY>, flag: --set KEY=VALUE):\n");
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        fprintf(f, "  %-19s %-22s default \"%s\"\n", k->name, k->syntax, k->def);
        char text[512];
        if (k->type == CFG_TYPE_UINT)
            snprintf(text, sizeof(text), "%s Range %u..%u.", k->help, k->min, k->max);
        else
            snprintf(text, sizeof(text), "%s", k->help);
        cfg_print_wrapped(f, text, 6, 80);
    }
}
