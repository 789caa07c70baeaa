/* Request-line validation for the HTTP API (include/presenced/codec/http_args.h). */
#include "presenced/codec/http_args.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "presenced/codec/pres_cmd.h"

int http_path_split(const char *path, http_path *out)
{
    out->n = 0;
    size_t len = strlen(path);
    if (len >= sizeof(out->buf))
        return HTTP_ARGS_TOO_LONG;
    if (len == 0 || path[0] != '/')
        return HTTP_ARGS_INVALID;
    memcpy(out->buf, path + 1, len);
    if (len > 1 && out->buf[len - 2] == '/')
        out->buf[len - 2] = 0;
    if (!out->buf[0])
        return HTTP_ARGS_OK;
    char *p = out->buf;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = 0;
        if (!*p)
            return HTTP_ARGS_INVALID;
        if (out->n == HTTP_SEGMENTS_MAX)
            return HTTP_ARGS_TOO_MANY;
        out->seg[out->n++] = p;
        if (!slash)
            return HTTP_ARGS_OK;
        p = slash + 1;
    }
}

bool http_route_matches(const char *const *pattern, size_t n, const http_path *p)
{
    if (n != p->n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(pattern[i], "*") != 0 && strcmp(pattern[i], p->seg[i]) != 0)
            return false;
    return true;
}

int http_query_get(const char *const *args, size_t nargs, const char *name, const char **value)
{
    size_t nl = strlen(name);
    *value = NULL;
    for (size_t i = 0; i < nargs; i++) {
        const char *a = args[i];
        if (strncmp(a, name, nl) != 0 || (a[nl] != '=' && a[nl] != 0))
            continue;
        if (*value)
            return HTTP_ARGS_TWICE;
        *value = a[nl] == '=' ? a + nl + 1 : a + nl;
    }
    return HTTP_ARGS_OK;
}

int http_uint_parse(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return HTTP_ARGS_INVALID;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || p - s >= 10)
            return HTTP_ARGS_INVALID;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max)
        return HTTP_ARGS_INVALID;
    *out = (uint32_t)v;
    return HTTP_ARGS_OK;
}

int http_ids_split(char *list, size_t max, const char ***ids, size_t *n, size_t *bad_index)
{
    *ids = NULL;
    *n = 0;
    *bad_index = 0;
    if (!*list)
        return HTTP_ARGS_EMPTY;
    size_t count = 1;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    if (count > max)
        return HTTP_ARGS_TOO_MANY;
    const char **v = malloc(count * sizeof(*v));
    if (!v)
        return HTTP_ARGS_NOMEM;
    char *p = list;
    for (size_t i = 0; i < count; i++) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        if (!pres_name_valid(p, strlen(p))) {
            free(v);
            *bad_index = i;
            return HTTP_ARGS_INVALID;
        }
        v[i] = p;
        p = comma ? comma + 1 : p + strlen(p);
    }
    *ids = v;
    *n = count;
    return HTTP_ARGS_OK;
}

bool http_key_match(const char *token, const char *key)
{
    /* Hashing first makes the comparison constant-time whatever the lengths. */
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), a);
    SHA256((const unsigned char *)key, strlen(key), b);
    return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

int http_head_check(const char *p, size_t n, size_t max)
{
    const char *lf = memchr(p, '\n', n < max ? n : max);
    if (!lf)
        return n >= max ? HTTP_HEAD_URI_LONG : HTTP_HEAD_NEED_MORE;
    for (const char *c = p; c < lf; c++) {
        if (*c == 0)
            return HTTP_HEAD_BAD;
        if (*c != '%')
            continue;
        if (lf - c <= 2 || !isxdigit((unsigned char)c[1]) || !isxdigit((unsigned char)c[2]) ||
            (c[1] == '0' && c[2] == '0'))
            return HTTP_HEAD_BAD;
    }
    /* The head ends at the first empty line ("\r\n\r\n", or bare "\n\n"). */
    size_t lim = n < max ? n : max;
    for (const char *c = lf; c < p + lim; c++) {
        const char *nl = memchr(c, '\n', (size_t)(p + lim - c));
        if (!nl)
            break;
        const char *next = nl + 1;
        if (next < p + lim && *next == '\n')
            return HTTP_HEAD_OK;
        if (next + 1 < p + lim && next[0] == '\r' && next[1] == '\n')
            return HTTP_HEAD_OK;
        c = nl;
    }
    return n >= max ? HTTP_HEAD_TOO_LARGE : HTTP_HEAD_NEED_MORE;
}

/* Split "host[:port]" or "[v6]:port" into the host (without brackets) and the port, `dflt` when
 * absent. Returns false when malformed. */
static bool hostport_split(const char *s, size_t len, const char **host, size_t *hlen,
                           uint32_t *port, uint32_t dflt)
{
    const char *end = s + len, *colon = NULL;
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return false;
        *host = s + 1;
        *hlen = (size_t)(close - s - 1);
        if (close + 1 < end && close[1] != ':')
            return false;
        colon = close + 1 < end ? close + 1 : NULL;
    } else {
        colon = memchr(s, ':', len);
        *host = s;
        *hlen = colon ? (size_t)(colon - s) : len;
    }
    if (!*hlen)
        return false;
    if (!colon) {
        *port = dflt;
        return true;
    }
    char digits[8];
    size_t n = (size_t)(end - colon - 1);
    if (!n || n >= sizeof(digits))
        return false;
    memcpy(digits, colon + 1, n);
    digits[n] = 0;
    return http_uint_parse(digits, 1, 65535, port) == HTTP_ARGS_OK;
}

bool http_same_origin(const char *origin, const char *host, const char *scheme)
{
    size_t slen = strlen(scheme);
    if (strncasecmp(origin, scheme, slen) != 0 || strncmp(origin + slen, "://", 3) != 0)
        return false;
    uint32_t dflt = strcmp(scheme, "https") == 0 ? 443 : 80;
    const char *o = origin + slen + 3, *oh, *hh;
    size_t ohl, hhl;
    uint32_t op, hp;
    if (strpbrk(o, "/?#@") || !hostport_split(o, strlen(o), &oh, &ohl, &op, dflt) ||
        !hostport_split(host, strlen(host), &hh, &hhl, &hp, dflt))
        return false;
    return ohl == hhl && strncasecmp(oh, hh, ohl) == 0 && op == hp;
}

bool http_bearer_match(const char *authorization, const char *key)
{
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    return http_key_match(token, key);
}
