/* addr — HOST:PORT and Redis URLs (see presenced/codec/addr.h). */
#include "presenced/codec/addr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t whylen, const char *fmt,
                                                      ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool is_ctl_or_space(char ch)
{
    return (unsigned char)ch <= 0x20 || ch == 0x7f;
}

/* A decimal number s[0..n) within [min, max]; `what` names it in the reason. */
static int parse_decimal(const char *s, size_t n, uint32_t min, uint32_t max, const char *what,
                         uint32_t *out, char *why, size_t whylen)
{
    if (n == 0)
        return fail(why, whylen, "empty %s, expected an integer %u..%u", what, min, max);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(why, whylen, "%s is not a decimal integer", what);
        /* Past max v stops growing, so it cannot overflow. */
        if (v <= max)
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return fail(why, whylen, "%s is out of range %u..%u", what, min, max);
    *out = (uint32_t)v;
    return 0;
}

/* Host names and IPv4 literals; IPv6 literals need brackets because of the port's colon. */
static int check_host(const char *h, size_t n, bool bracketed, char *why, size_t whylen)
{
    if (n == 0)
        return fail(why, whylen, "empty host");
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        if (is_alnum(ch) || ch == '.' || ch == '-' || ch == '_' ||
            (bracketed && (ch == ':' || ch == '%')))
            continue;
        if (!bracketed && ch == ':')
            return fail(why, whylen, "IPv6 addresses need brackets, e.g. [::1]:3000");
        return fail(why, whylen, "invalid character in host");
    }
    if (bracketed && !memchr(h, ':', n))
        return fail(why, whylen, "brackets are only for IPv6 addresses");
    return 0;
}

int addr_hostport_parse(const char *s, char *host, size_t hostlen, uint16_t *port,
                        bool port_optional, char *why, size_t whylen)
{
    const char *h = s, *rest;
    size_t hn;
    bool bracketed = *s == '[';
    if (bracketed) {
        const char *close = strchr(s, ']');
        if (!close)
            return fail(why, whylen, "missing ']' after IPv6 address");
        h = s + 1;
        hn = (size_t)(close - h);
        rest = close + 1;
    } else {
        rest = strrchr(s, ':');
        if (!rest)
            rest = s + strlen(s);
        hn = (size_t)(rest - s);
    }
    if (check_host(h, hn, bracketed, why, whylen) < 0)
        return -1;
    if (hn >= hostlen)
        return fail(why, whylen, "host is longer than %zu characters", hostlen - 1);
    uint32_t p = 0;
    if (*rest == '\0') {
        if (!port_optional)
            return fail(why, whylen, "missing ':PORT'");
    } else if (*rest != ':') {
        return fail(why, whylen, "expected ':PORT' after the host");
    } else if (parse_decimal(rest + 1, strlen(rest + 1), 1, 65535, "port", &p, why, whylen) < 0) {
        return -1;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static int parse_unix(const char *path, addr_redis *out, char *why, size_t whylen)
{
    size_t n = strlen(path);
    if (n < 2 || path[0] != '/')
        return fail(why, whylen, "unix:// needs an absolute socket path, e.g. unix:///run/r.sock");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
            return fail(why, whylen, "control character in socket path");
    if (n >= sizeof(out->path))
        return fail(why, whylen, "socket path longer than %zu characters", sizeof(out->path) - 1);
    memcpy(out->path, path, n + 1);
    return 0;
}

/* ":PASSWORD@" at the start of `*rest` (the last '@' ends it: host, port and db never hold one,
 * a password may). Moves *rest past it. */
static int parse_password(const char **rest, addr_redis *out, char *why, size_t whylen)
{
    const char *p = *rest, *at = strrchr(p, '@');
    if (!at)
        return 0;
    size_t pn = (size_t)(at - p);
    if (p[0] != ':')
        return fail(why, whylen, "user names are not supported, use redis://:PASSWORD@HOST:PORT");
    if (pn < 2)
        return fail(why, whylen, "empty password");
    if (pn - 1 >= sizeof(out->password))
        return fail(why, whylen, "password longer than %zu characters", sizeof(out->password) - 1);
    for (size_t i = 1; i < pn; i++)
        if (is_ctl_or_space(p[i]))
            return fail(why, whylen, "space or control character in password");
    memcpy(out->password, p + 1, pn - 1);
    out->password[pn - 1] = '\0';
    *rest = at + 1;
    return 0;
}

int addr_redis_parse(const char *url, addr_redis *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    out->db = -1;
    if (!url || !*url)
        return fail(why, whylen, "no URL given");
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, out, why, whylen);
    if (strncmp(url, "redis://", 8) != 0)
        return fail(why, whylen, "expected redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH");
    const char *rest = url + 8;
    if (parse_password(&rest, out, why, whylen) < 0)
        return -1;
    const char *slash = strchr(rest, '/');
    size_t hn = slash ? (size_t)(slash - rest) : strlen(rest);
    char hostport[ADDR_HOST_MAX + 8];
    if (hn >= sizeof(hostport))
        return fail(why, whylen, "host is longer than %d characters", ADDR_HOST_MAX - 1);
    memcpy(hostport, rest, hn);
    hostport[hn] = '\0';
    if (addr_hostport_parse(hostport, out->host, sizeof(out->host), &out->port, true, why, whylen) <
        0)
        return -1;
    if (!out->port)
        out->port = ADDR_REDIS_PORT;
    uint32_t db;
    if (slash && slash[1]) {
        if (parse_decimal(slash + 1, strlen(slash + 1), 0, INT32_MAX, "database", &db, why,
                          whylen) < 0)
            return -1;
        out->db = (int32_t)db;
    }
    return 0;
}

/* "HOST[:PORT],HOST[:PORT]..." from s[0..n) into out->nodes, `port` for the ones without. */
static int parse_nodes(const char *s, size_t n, uint16_t port, addr_redis_url *out, char *why,
                       size_t whylen)
{
    const char *end = s + n;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        char hostport[ADDR_HOST_MAX + 8];
        size_t len = (size_t)(stop - s);
        if (len == 0)
            return fail(why, whylen, "empty address in the list");
        if (len >= sizeof(hostport))
            return fail(why, whylen, "host is longer than %d characters", ADDR_HOST_MAX - 1);
        if (out->nnodes == ADDR_REDIS_NODES_MAX)
            return fail(why, whylen, "more than %d addresses", ADDR_REDIS_NODES_MAX);
        memcpy(hostport, s, len);
        hostport[len] = '\0';
        addr_redis_node *node = &out->nodes[out->nnodes];
        if (addr_hostport_parse(hostport, node->host, sizeof(node->host), &node->port, true, why,
                                whylen) < 0)
            return -1;
        if (!node->port)
            node->port = port;
        for (size_t i = 0; i < out->nnodes; i++)
            if (out->nodes[i].port == node->port && strcmp(out->nodes[i].host, node->host) == 0)
                return fail(why, whylen, "address %zu repeats address %zu", out->nnodes + 1, i + 1);
        out->nnodes++;
        if (!comma)
            break;
        s = comma + 1;
    }
    return 0;
}

/* A master name as Sentinel's configuration can hold it without quoting. */
static int parse_master(const char *s, size_t n, addr_redis_url *out, char *why, size_t whylen)
{
    if (n == 0)
        return fail(why, whylen, "missing master name: redis-sentinel://HOST:PORT/MASTER_NAME");
    if (n >= sizeof(out->master))
        return fail(why, whylen, "master name longer than %zu characters", sizeof(out->master) - 1);
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return fail(why, whylen, "master name: only letters, digits, '.', '-' and '_'");
    memcpy(out->master, s, n);
    out->master[n] = '\0';
    return 0;
}

static int parse_sentinel(const char *rest, addr_redis_url *out, char *why, size_t whylen)
{
    const char *slash = strchr(rest, '/');
    if (!slash)
        return fail(why, whylen, "missing master name: redis-sentinel://HOST:PORT/MASTER_NAME");
    if (parse_nodes(rest, (size_t)(slash - rest), ADDR_SENTINEL_PORT, out, why, whylen) < 0)
        return -1;
    const char *name = slash + 1, *db = strchr(name, '/');
    if (parse_master(name, db ? (size_t)(db - name) : strlen(name), out, why, whylen) < 0)
        return -1;
    uint32_t v;
    if (db && db[1]) {
        if (parse_decimal(db + 1, strlen(db + 1), 0, INT32_MAX, "database", &v, why, whylen) < 0)
            return -1;
        out->data.db = (int32_t)v;
    }
    return 0;
}

int addr_redis_url_parse(const char *url, addr_redis_url *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    out->data.db = -1;
    if (!url || !*url)
        return fail(why, whylen, "no URL given");
    bool sentinel = strncmp(url, "redis-sentinel://", 17) == 0;
    bool cluster = strncmp(url, "redis-cluster://", 16) == 0;
    if (!sentinel && !cluster) {
        out->mode = ADDR_REDIS_DIRECT;
        if (strncmp(url, "redis://", 8) != 0 && strncmp(url, "unix://", 7) != 0)
            return fail(why, whylen,
                        "expected redis://, unix://, redis-sentinel:// or redis-cluster://");
        return addr_redis_parse(url, &out->data, why, whylen);
    }
    const char *rest = url + (sentinel ? 17 : 16);
    if (parse_password(&rest, &out->data, why, whylen) < 0)
        return -1;
    if (sentinel) {
        out->mode = ADDR_REDIS_SENTINEL;
        return parse_sentinel(rest, out, why, whylen);
    }
    out->mode = ADDR_REDIS_CLUSTER;
    if (strchr(rest, '/'))
        return fail(why, whylen, "a Redis Cluster has no databases: no /DB after the nodes");
    return parse_nodes(rest, strlen(rest), ADDR_REDIS_PORT, out, why, whylen);
}
