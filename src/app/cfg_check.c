/* cfg_check — the syntax of configuration values: numbers, hosts, paths, URLs and lists, and the
 * texts that say what is wrong with one (see cfg_impl.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/addr.h"
#include "presenced/codec/fwd.h"
#include "cfg_impl.h"

/* Formats into `err` when the caller gave one. A function rather than snprintf at each site so
 * that nested messages ("FILE:LINE: key: reason") can be truncated without warnings. */
__attribute__((format(printf, 3, 4))) void cfg_errf(char *err, size_t len, const char *fmt, ...)
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
const char *cfg_quote(const char *s, char *buf, size_t len)
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

int cfg_is_space(char ch)
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
void cfg_trim(const char **s, size_t *n)
{
    while (*n > 0 && cfg_is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && cfg_is_space((*s)[*n - 1]))
        (*n)--;
}

/* Decimal only: a sign, "0x", spaces or a unit suffix are typos we should report, not guess at. */
int cfg_parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out, char *why,
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

int cfg_check_path(const char *in, char *out, size_t outlen, char *why, size_t whylen)
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

int cfg_check_redis(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    /* Empty means "not configured"; cfg_validate insists on a URL only when store=redis. */
    if (in[0] != '\0') {
        addr_redis_url *u = malloc(sizeof(*u));
        if (!u) {
            cfg_errf(why, whylen, "out of memory");
            return -1;
        }
        int rc = addr_redis_url_parse(in, u, why, whylen);
        free(u);
        if (rc < 0)
            return -1;
    }
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

int cfg_check_origins(const char *in, char *out, size_t outlen, char *why, size_t whylen)
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

int cfg_check_namespaces(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    return cfg_list_normalize(in, out, outlen, cfg_namespace_check, why, whylen);
}

/* Secrets: printable ASCII without spaces, so that they survive headers and config files. */
int cfg_check_secret(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    for (const char *p = in; *p; p++)
        if (cfg_is_ctl_or_space(*p) || (unsigned char)*p >= 0x80) {
            cfg_errf(why, whylen, "only printable ASCII without spaces is allowed");
            return -1;
        }
    return cfg_copy_out(in, out, outlen, why, whylen);
}

int cfg_check_file(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    for (const char *p = in; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            cfg_errf(why, whylen, "control character in path");
            return -1;
        }
    return cfg_copy_out(in, out, outlen, why, whylen);
}

int cfg_check_admin(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    char host[256];
    uint16_t port;
    if (in[0] != '\0' && addr_hostport_parse(in, host, sizeof(host), &port, false, why, whylen) < 0)
        return -1;
    return cfg_copy_out(in, out, outlen, why, whylen);
}

int cfg_check_webhook(const char *in, char *out, size_t outlen, char *why, size_t whylen)
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

int cfg_check_proxies(const char *in, char *out, size_t outlen, char *why, size_t whylen)
{
    fwd_cidrs l;
    switch (fwd_cidrs_parse(in, &l)) {
    case FWD_OK:
        return cfg_copy_out(in, out, outlen, why, whylen);
    case FWD_TOO_MANY:
        cfg_errf(why, whylen, "more than %d ranges", FWD_CIDRS_MAX);
        return -1;
    default:
        cfg_errf(why, whylen, "not a list of addresses or ranges such as 10.0.0.0/8, ::1");
        return -1;
    }
}

int cfg_hostport(const char *s, char *host, size_t hostlen, uint16_t *port, char err[CFG_ERR_MAX])
{
    return addr_hostport_parse(s, host, hostlen, port, false, err, CFG_ERR_MAX);
}

int cfg_check_prefix(const char *in, char *out, size_t outlen, char *why, size_t whylen)
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
