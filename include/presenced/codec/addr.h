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

#endif
