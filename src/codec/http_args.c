/* Request-line validation for the HTTP API (include/presenced/codec/http_args.h). */
#include "presenced/codec/http_args.h"

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

bool http_bearer_match(const char *authorization, const char *key)
{
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    return http_key_match(token, key);
}
