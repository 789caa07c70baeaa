/* cfg — presenced configuration: defaults, a `key = value` file, PRESENCED_<KEY> environment
 * variables and command-line flags, applied in that order (later wins).
 *
 * Every key is described once in a table in src/app/cfg.c (name, type, default, range, help);
 * config/presenced.conf documents the same keys for operators.
 */
#ifndef PRESENCED_CFG_H
#define PRESENCED_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cfg_store { CFG_STORE_MEMORY = 0, CFG_STORE_REDIS = 1 } cfg_store;

/* Who receives presence:online/offline/update: every socket, or only sockets that share a room
 * with the user or subscribed to them. */
typedef enum cfg_broadcast { CFG_BROADCAST_ALL = 0, CFG_BROADCAST_SCOPED = 1 } cfg_broadcast;

/* How a socket's identity is established: the userId it sends (trusted), or a verified JWT. */
typedef enum cfg_auth { CFG_AUTH_INSECURE = 0, CFG_AUTH_JWT = 1 } cfg_auth;

/* A feature switch ("off" | "on"). */
typedef enum cfg_onoff { CFG_OFF = 0, CFG_ON = 1 } cfg_onoff;

typedef enum cfg_conformance {
    CFG_CONFORMANCE_OFF = 0,
    CFG_CONFORMANCE_SOCKETIO = 1, /* socket.io-protocol test-suite server behaviour */
    CFG_CONFORMANCE_ENGINEIO = 2, /* engine.io-protocol test-suite server behaviour */
} cfg_conformance;

typedef enum cfg_log_level {
    CFG_LOG_ERROR = 0,
    CFG_LOG_WARN = 1,
    CFG_LOG_INFO = 2,
    CFG_LOG_DEBUG = 3,
} cfg_log_level;

#define CFG_STR_MAX 1024
#define CFG_ERR_MAX 512

/* All settings. Strings are fixed-size, NUL-terminated, so the struct can be copied freely. */
typedef struct cfg {
    char listen_host[256]; /* key "listen" = HOST:PORT (IPv6 as [::1]:3000, stored as "::1") */
    uint16_t listen_port;
    cfg_store store;          /* "store" = memory | redis */
    char redis[CFG_STR_MAX];  /* "redis" = redis://[:pass@]HOST:PORT[/DB] or unix:///path */
    uint32_t workers;         /* processes serving `listen` (1: this process serves) */
    char path[256];           /* "path", Engine.IO endpoint, starts and ends with '/' */
    uint32_t ping_interval;   /* ms */
    uint32_t ping_timeout;    /* ms */
    uint32_t max_payload;     /* bytes */
    uint32_t connect_timeout; /* ms: Socket.IO CONNECT must arrive within this */
    char allowed_origins[CFG_STR_MAX]; /* comma-separated origins, "*" for any, "" for none */
    char namespaces[CFG_STR_MAX];      /* comma-separated namespaces besides "/" */
    uint32_t max_connections;          /* concurrent Engine.IO sessions */
    uint32_t send_queue_max;      /* queued outgoing packets per session before it is dropped */
    uint32_t send_queue_bytes;    /* queued outgoing bytes per session before it is dropped */
    uint32_t attachment_timeout;  /* ms to wait for the binary attachments of a packet */
    uint32_t ws_message_gap;      /* us between two WebSocket messages to one client, 0 = none */
    uint32_t http_timeout;        /* s: idle HTTP / header timeout */
    cfg_broadcast broadcast;      /* "broadcast" = all | scoped */
    cfg_onoff anonymous_reads;    /* anonymous sockets may query and hear presence events */
    uint32_t offline_grace;       /* s a user may be gone before presence:offline */
    uint32_t last_seen_retention; /* s an offline user's lastSeen is kept */
    uint32_t instance_lease;      /* s: lease of an instance in Redis */
    uint32_t ttl;                 /* s: TTL bounding anything left behind in Redis */
    uint32_t max_metadata_bytes;  /* bytes of a user's metadata JSON */
    uint32_t max_bulk_ids;        /* ids in one presence:query */
    uint32_t stream_maxlen;       /* approximate length of the Redis event stream */
    char redis_prefix[64];        /* prefix of every Redis key */
    uint32_t shutdown_timeout;    /* s: SIGTERM to exit at most */
    uint32_t max_http_body;       /* bytes of an HTTP API request body */
    char api_key[256];            /* "" = /v1 open */
    char api_key_file[CFG_STR_MAX];
    char admin_listen[CFG_STR_MAX]; /* "" = none, else HOST:PORT */
    cfg_onoff dashboard;            /* "dashboard" = on | off: the live page at GET / */
    uint32_t stats_interval;        /* s between two samples of the live page's history */
    char webhook_url[CFG_STR_MAX];  /* "" = no webhooks */
    char webhook_secret[256];
    uint32_t webhook_retry_for; /* s */
    cfg_auth auth;              /* "auth" = insecure | jwt */
    char jwt_secret[512];       /* HS256 secret */
    char jwt_secret_file[CFG_STR_MAX];
    char jwt_public_key_file[CFG_STR_MAX]; /* RS256 / ES256 public key (PEM) */
    char jwt_audience[256];                /* "" = aud not checked */
    char jwt_issuer[256];                  /* "" = iss not checked */
    uint32_t jwt_leeway;                   /* s */
    uint32_t max_connections_per_ip;       /* TCP connections from one address */
    uint32_t max_sessions_per_ip;          /* Engine.IO sessions of one client address */
    char trusted_proxies[CFG_STR_MAX];     /* CIDR list whose forwarding headers are believed */
    cfg_onoff proxy_protocol;              /* PROXY protocol header on every connection */
    uint32_t max_sockets_per_user;         /* local sockets of one user */
    uint32_t max_rooms_per_socket;
    uint32_t max_subscriptions_per_socket;
    uint32_t rate_limit;           /* messages per second per connection (token bucket refill) */
    uint32_t rate_burst;           /* token bucket size */
    uint32_t auth_failures_per_ip; /* failed token checks per minute from one address (0: any) */
    char tls_cert[CFG_STR_MAX];
    char tls_key[CFG_STR_MAX];
    char redis_sentinel_password[256];
    uint32_t redis_partitions;
    cfg_log_level log_level;     /* "log_level" = error | warn | info | debug */
    cfg_conformance conformance; /* "conformance" = off | socketio | engineio */
} cfg;

/* Fill `c` with the defaults. */
void cfg_init(cfg *c);

/* Apply the conformance preset of `mode` to `c` (see the README's "Conformance" section). */
void cfg_apply_conformance(cfg *c, cfg_conformance mode);

/* Set one key from its text value. Returns 0, or -1 with a message naming the key in `err`
 * (unknown key, bad value, out of range). */
int cfg_set(cfg *c, const char *key, const char *value, char err[CFG_ERR_MAX]);

/* Read a `key = value` file (`#` starts a comment; blank lines ignored). Returns 0, or -1 with
 * "FILE:LINE: message" in `err`. */
int cfg_load_file(cfg *c, const char *path, char err[CFG_ERR_MAX]);

/* Apply PRESENCED_<KEY> variables from `envp` (KEY upper-case, e.g. PRESENCED_PING_INTERVAL).
 * An unknown PRESENCED_* variable is an error. Returns 0 or -1 with `err`. */
int cfg_load_env(cfg *c, char *const *envp, char err[CFG_ERR_MAX]);

/* What the command line asks for besides settings. */
typedef enum cfg_action {
    CFG_ACTION_RUN = 0,
    CFG_ACTION_CHECK, /* --check-config: validate and exit */
    CFG_ACTION_VERSION,
    CFG_ACTION_HELP,
} cfg_action;

/* Parse argv completely: finds --config, loads defaults, the preset (--conformance[=MODE]), the
 * file, the environment, then the other flags (--listen, --store, --redis, --set KEY=VALUE...),
 * and finally validates the combination (cfg_validate). Returns 0 with `*action` set, or -1 with
 * `err`. */
int cfg_from_args(cfg *c, int argc, char *const *argv, char *const *envp, cfg_action *action,
                  char err[CFG_ERR_MAX]);

/* Check cross-key rules (e.g. store=redis needs redis, ping_timeout > 0). Returns 0 or -1. */
int cfg_validate(const cfg *c, char err[CFG_ERR_MAX]);

/* Print --help text to `out` (a FILE *, typed void * to keep stdio out of this header). */
void cfg_print_help(void *out);

/* --- Additions (beyond the original contract) --- */

/* Name of the i-th key of the table (0-based, table order), or NULL past the end. The string has
 * static storage. Lets tests, logging and docs walk every key. */
const char *cfg_key_name(size_t i);
/* Split HOST:PORT (IPv6 as [::1]:9090) as the listen key does. Returns 0 or -1 with `err`. */
int cfg_hostport(const char *s, char *host, size_t hostlen, uint16_t *port, char err[CFG_ERR_MAX]);

/* Write the current value of `key` as text that cfg_set accepts (e.g. "127.0.0.1:3000") into
 * `buf` (caller-owned, `len` bytes). Returns 0, or -1 for an unknown key or a too small buffer. */
int cfg_get(const cfg *c, const char *key, char *buf, size_t len);

#endif
