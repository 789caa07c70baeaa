/* http_args — validation of what the HTTP API reads from a request line: path segments and the
 * route they match, query arguments, id lists and the bearer token (docs/http-api.md). Ids
 * follow the Socket.IO rules (pres_name_valid: 1..128 bytes of UTF-8, no control characters).
 *
 * Pure code: no I/O, no globals. Inputs are NUL-terminated strings that libwebsockets has
 * already %-decoded; returned pointers point into the caller's strings.
 */
#ifndef PRESENCED_HTTP_ARGS_H
#define PRESENCED_HTTP_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    HTTP_ARGS_OK = 0,
    HTTP_ARGS_INVALID = -1,  /* malformed, or an id that is not a valid name */
    HTTP_ARGS_EMPTY = -2,    /* an id list without ids */
    HTTP_ARGS_TOO_MANY = -3, /* more ids, or segments, than allowed */
    HTTP_ARGS_TWICE = -4,    /* a query argument given twice */
    HTTP_ARGS_NOMEM = -5,
    HTTP_ARGS_TOO_LONG = -6, /* a path of HTTP_PATH_MAX bytes or more (414) */
};

#define HTTP_SEGMENTS_MAX 8
#define HTTP_PATH_MAX 2048 /* a path this long or longer is refused (414) */

/* A path split at '/': "/v1/users/bob" gives {"v1", "users", "bob"}. */
typedef struct http_path {
    char buf[HTTP_PATH_MAX];
    const char *seg[HTTP_SEGMENTS_MAX];
    size_t n;
} http_path;

/* Split `path` (must start with '/'; a trailing '/' is ignored). Returns HTTP_ARGS_OK,
 * HTTP_ARGS_TOO_LONG (HTTP_PATH_MAX bytes or more), HTTP_ARGS_INVALID (no leading '/', an empty
 * segment) or HTTP_ARGS_TOO_MANY. `out` borrows nothing from `path`. */
int http_path_split(const char *path, http_path *out);

/* Whether the split path `p` has the shape of the route pattern pattern[0..n): as many
 * segments, each equal to the pattern's, or anything where the pattern has "*". The router of
 * the HTTP API (src/app/api.c) takes the first route whose pattern matches. Borrows both. */
bool http_route_matches(const char *const *pattern, size_t n, const http_path *p);

/* The value of query argument `name` among `args` ("name=value" or "name"; a bare name has the
 * value ""). *value is NULL when absent. Returns HTTP_ARGS_OK or HTTP_ARGS_TWICE. */
int http_query_get(const char *const *args, size_t nargs, const char *name, const char **value);

/* A decimal integer in [min, max], no sign, no spaces. Returns HTTP_ARGS_OK or
 * HTTP_ARGS_INVALID. */
int http_uint_parse(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* Split a comma-separated id list in place (commas become NULs) into *ids (malloc'd array of
 * pointers into `list`, caller frees the array) and *n. Every id must be a valid name; at most
 * `max` ids. Returns HTTP_ARGS_OK, HTTP_ARGS_EMPTY, HTTP_ARGS_TOO_MANY, HTTP_ARGS_INVALID, or
 * HTTP_ARGS_NOMEM. On error *ids is NULL and *bad_index says which id was invalid. */
int http_ids_split(char *list, size_t max, const char ***ids, size_t *n, size_t *bad_index);

/* Whether `token` is exactly `key`. The comparison takes the same time whatever the key and the
 * token are (both are hashed, then the digests compared with CRYPTO_memcmp), so it reveals
 * neither content nor length. For a key given as a ?key= query argument. */
bool http_key_match(const char *token, const char *key);

/* Whether the Authorization header value is "Bearer <key>" with exactly this key, compared as
 * http_key_match does. */
bool http_bearer_match(const char *authorization, const char *key);

enum {
    HTTP_HEAD_OK = 0,          /* a complete request head within the limits */
    HTTP_HEAD_NEED_MORE = 1,   /* not complete yet, within the limits so far */
    HTTP_HEAD_BAD = 400,       /* a NUL, %00 or a malformed %-escape in the request line */
    HTTP_HEAD_URI_LONG = 414,  /* the request line is longer than `max` */
    HTTP_HEAD_TOO_LARGE = 431, /* the head (line and headers) is longer than `max` */
};

/* The first `n` bytes of an HTTP/1.1 request: whether its head (request line and headers, up to
 * the empty line) is complete and within `max` bytes, and its request line free of NUL bytes,
 * raw or %-encoded (a NUL would cut the decoded path or query short), and of %-escapes that are
 * not two hex digits. Returns one of
 * HTTP_HEAD_*: the status to answer with, or OK / NEED_MORE. Bytes after the head are not
 * looked at. */
int http_head_check(const char *p, size_t n, size_t max);

/* Whether `origin` (an Origin header: scheme://host[:port], RFC 6454 section 7) names the origin
 * the request was sent to: scheme equal to `scheme` ("http" or "https": the listener's, or what
 * a trusted proxy says), host equal to the Host header's (ASCII case-insensitive), and the same
 * port, a missing one being the scheme's default. Anything malformed is not the same origin. */
bool http_same_origin(const char *origin, const char *host, const char *scheme);

#endif
