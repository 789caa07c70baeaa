/* cfg — configuration: one table of keys drives defaults, parsing, the environment, --help and
 * validation, so that a key cannot be known to one of them and missing from another.
 */
#include "presenced/app/cfg.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "presenced/codec/addr.h"
#include "cfg_impl.h"

/* Enum fields are written through an int; that is only sound while the enums are int-sized. */
_Static_assert(sizeof(cfg_store) == sizeof(int), "cfg_store must be int-sized");
_Static_assert(sizeof(cfg_log_level) == sizeof(int), "cfg_log_level must be int-sized");
_Static_assert(sizeof(cfg_conformance) == sizeof(int), "cfg_conformance must be int-sized");
_Static_assert(sizeof(cfg_broadcast) == sizeof(int), "cfg_broadcast must be int-sized");
_Static_assert(sizeof(cfg_auth) == sizeof(int), "cfg_auth must be int-sized");
_Static_assert(sizeof(cfg_onoff) == sizeof(int), "cfg_onoff must be int-sized");

static const char *const cfg_store_names[] = {"memory", "redis", NULL};
static const char *const cfg_log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const cfg_conformance_names[] = {"off", "socketio", "engineio", NULL};
static const char *const cfg_broadcast_names[] = {"all", "scoped", NULL};
static const char *const cfg_auth_names[] = {"insecure", "jwt", NULL};
static const char *const cfg_onoff_names[] = {"off", "on", NULL};

#define CFG_MS_MAX 3600000u

/* The one description of every key. Order is the order of --help and the docs. */
const cfg_key cfg_keys[] = {
    {"listen", CFG_TYPE_HOSTPORT, "127.0.0.1:3000", 0, 0, NULL, offsetof(cfg, listen_host),
     offsetof(cfg, listen_port), sizeof(((cfg *)0)->listen_host), NULL, "HOST:PORT",
     "Address to listen on; IPv6 as [::1]:3000, port 1-65535."},
    {"store", CFG_TYPE_ENUM, "memory", 0, 0, cfg_store_names, offsetof(cfg, store), 0, 0, NULL,
     "memory|redis", "Where presence state lives: this process only, or Redis (shared)."},
    {"redis", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, redis), 0, sizeof(((cfg *)0)->redis),
     cfg_check_redis, "URL",
     "Redis: redis://[:PASSWORD@]HOST[:PORT][/DB] (port 6379 by default), unix:///PATH, "
     "redis-sentinel://[:PASSWORD@]HOST[:PORT][,...]/MASTER[/DB] or "
     "redis-cluster://[:PASSWORD@]HOST[:PORT][,...]; needed by store=redis."},
    {"redis_partitions", CFG_TYPE_UINT, "12", 1, 1024, NULL, offsetof(cfg, redis_partitions), 0, 0,
     NULL, "N",
     "With redis-cluster://: partitions of the keys, each under one hash tag; the same on every "
     "instance, and fixed while Redis holds presenced's data."},
    {"redis_sentinel_password", CFG_TYPE_STRING, "", 0, 0, NULL,
     offsetof(cfg, redis_sentinel_password), 0, sizeof(((cfg *)0)->redis_sentinel_password),
     cfg_check_secret, "PASSWORD",
     "With redis-sentinel://: the sentinels' own password (the URL's is the data nodes')."},
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
     "Comma-separated origins (scheme://host[:port]) allowed to connect besides the server's own "
     "(same scheme, host and port as the request); \"*\" allows any; \"\": only the own origin "
     "and requests without an Origin header."},
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
    {"stats_interval", CFG_TYPE_UINT, "10", 1, 3600, NULL, offsetof(cfg, stats_interval), 0, 0,
     NULL, "SECONDS",
     "Seconds between two samples of the history the live page charts (GET /v1/stats/history "
     "keeps the last 360: an hour at 10)."},
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
    {"max_connections_per_ip", CFG_TYPE_UINT, "2000", 1, 1000000, NULL,
     offsetof(cfg, max_connections_per_ip), 0, 0, NULL, "N",
     "Most TCP connections from one IP address (not counted for trusted_proxies); further ones "
     "are closed at once."},
    {"max_sessions_per_ip", CFG_TYPE_UINT, "1000", 1, 1000000, NULL,
     offsetof(cfg, max_sessions_per_ip), 0, 0, NULL, "N",
     "Most Engine.IO sessions (polling or WebSocket) of one client address, the one behind "
     "trusted_proxies; further handshakes are refused (HTTP 429)."},
    {"trusted_proxies", CFG_TYPE_STRING, "", 0, 0, NULL, offsetof(cfg, trusted_proxies), 0,
     sizeof(((cfg *)0)->trusted_proxies), cfg_check_proxies, "CIDRS",
     "Comma-separated addresses or ranges (10.0.0.0/8, ::1) of reverse proxies whose "
     "X-Forwarded-For / Forwarded name the client; \"\": none."},
    {"proxy_protocol", CFG_TYPE_ENUM, "off", 0, 0, cfg_onoff_names, offsetof(cfg, proxy_protocol),
     0, 0, NULL, "on|off",
     "Every connection to the main listener starts with a PROXY protocol v1/v2 header (HAProxy, "
     "nginx stream, cloud load balancers) naming the client."},
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

const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);
_Static_assert(sizeof(cfg_keys) / sizeof(cfg_keys[0]) <= CFG_KEYS_MAX, "raise CFG_KEYS_MAX");

const cfg_key *cfg_key_find(const char *name, size_t n)
{
    for (size_t i = 0; i < cfg_nkeys; i++)
        if (strlen(cfg_keys[i].name) == n && memcmp(cfg_keys[i].name, name, n) == 0)
            return &cfg_keys[i];
    return NULL;
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

int cfg_set_n(cfg *c, const char *key, size_t kn, const char *value, size_t vn, char *err)
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
    for (size_t i = 0; i < cfg_nkeys; i++) {
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

int cfg_validate(const cfg *c, char err[CFG_ERR_MAX])
{
    char text[CFG_STR_MAX + 8], inner[CFG_ERR_MAX];
    cfg check;

    /* Every field must be a value cfg_set would accept: callers may have filled the struct by
     * hand, and re-parsing the printed value checks ranges, syntax and enum values alike. */
    for (size_t i = 0; i < cfg_nkeys; i++) {
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
    return i < cfg_nkeys ? cfg_keys[i].name : NULL;
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
