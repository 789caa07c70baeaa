/* addr — the network addresses presenced is configured with: HOST:PORT (listeners, origins) and
 * Redis URLs. Pure: text in, parts out, or a reason. One set of rules serves the configuration,
 * which checks what it is given, and the Redis client, which connects to it.
 */
#ifndef PRESENCED_ADDR_H
#define PRESENCED_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ADDR_HOST_MAX 256     /* with the NUL */
#define ADDR_PATH_MAX 108     /* sun_path, with the NUL */
#define ADDR_PASSWORD_MAX 512 /* with the NUL */
#define ADDR_REDIS_PORT 6379  /* the port of a Redis URL without one */

/* Split HOST:PORT, IPv6 literals in brackets ([::1]:3000). A host is letters, digits, '.', '-'
 * and '_' (and ':' and '%' inside brackets, for IPv6 scopes); the port 1..65535. With
 * `port_optional` a missing ":PORT" gives *port = 0. Writes the host without brackets into
 * `host` (`hostlen` bytes with the NUL). Returns 0, or -1 with a reason in `why` (`whylen`
 * bytes; the reason never quotes the input). */
int addr_hostport_parse(const char *s, char *host, size_t hostlen, uint16_t *port,
                        bool port_optional, char *why, size_t whylen);

/* Where Redis is. */
typedef struct addr_redis {
    char host[ADDR_HOST_MAX];         /* TCP host (IPv6 without brackets); "" for a unix socket */
    uint16_t port;                    /* TCP port; 0 for a unix socket */
    char path[ADDR_PATH_MAX];         /* unix socket path, or "" */
    char password[ADDR_PASSWORD_MAX]; /* AUTH password, or "" for none */
    int32_t db;                       /* SELECT db, or -1 for none */
} addr_redis;

/* Parse `redis://[:PASSWORD@]HOST[:PORT][/DB]` or `unix:///PATH`. The port defaults to 6379
 * (the redis URI scheme's default) and the database to none ("/" alone is none too). The
 * password is everything between "redis://:" and the last '@', without spaces or control
 * characters; user names (Redis ACLs) are refused. The unix path is absolute, without control
 * characters. Returns 0, or -1 with a reason in `why`. */
int addr_redis_parse(const char *url, addr_redis *out, char *why, size_t whylen);

#define ADDR_REDIS_NODES_MAX 16  /* sentinels or seed nodes in one URL */
#define ADDR_MASTER_MAX 65       /* a Sentinel master name, with the NUL */
#define ADDR_SENTINEL_PORT 26379 /* the port of a sentinel without one */

/* How presenced finds its Redis. */
typedef enum addr_redis_mode {
    ADDR_REDIS_DIRECT,   /* one address: redis:// or unix:// */
    ADDR_REDIS_SENTINEL, /* ask the sentinels for the primary of a master name */
    ADDR_REDIS_CLUSTER,  /* learn a Redis Cluster's slot map from seed nodes */
} addr_redis_mode;

typedef struct addr_redis_node {
    char host[ADDR_HOST_MAX]; /* IPv6 without brackets */
    uint16_t port;
} addr_redis_node;

/* A Redis URL of any of the three forms. */
typedef struct addr_redis_url {
    addr_redis_mode mode;
    /* DIRECT: the address. SENTINEL and CLUSTER: only `password` (the data nodes') and `db`
     * (SENTINEL only; -1 for none) are set; the host and port come from the sentinels or the
     * slot map. */
    addr_redis data;
    addr_redis_node nodes[ADDR_REDIS_NODES_MAX]; /* the sentinels, or the seed nodes */
    size_t nnodes;
    char master[ADDR_MASTER_MAX]; /* SENTINEL: the master name */
} addr_redis_url;

/* Parse any Redis URL presenced accepts:
 *   redis://[:PASSWORD@]HOST[:PORT][/DB] and unix:///PATH, as addr_redis_parse;
 *   redis-sentinel://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER_NAME[/DB]: the sentinels
 *     (port 26379 by default), the master name (1-64 of letters, digits, '.', '-', '_') and the
 *     database; PASSWORD is the data nodes' (a sentinel's own password is configured apart);
 *   redis-cluster://[:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]: seed nodes of a Redis Cluster
 *     (port 6379 by default); a cluster has no databases, so no /DB.
 * At most ADDR_REDIS_NODES_MAX addresses, each given once. Returns 0, or -1 with a reason in
 * `why` (which never quotes the input). */
int addr_redis_url_parse(const char *url, addr_redis_url *out, char *why, size_t whylen);

#endif
