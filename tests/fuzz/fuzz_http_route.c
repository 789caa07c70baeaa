/* Fuzz the HTTP API router's pure part: http_path_split (the request path into segments, 414 for
 * a long one) and http_route_matches (a split path against a route pattern, "*" for any one
 * segment). Input: "<pattern>\n<path>", the pattern written like a path (v1/users/ then a star).
 *
 * Properties:
 *   - the split is exact: HTTP_ARGS_TOO_LONG iff the path has HTTP_PATH_MAX bytes or more;
 *     otherwise HTTP_ARGS_OK iff it starts with '/' and has no empty segment and at most
 *     HTTP_SEGMENTS_MAX of them (else the first problem from the left), and then "/" + the
 *     segments joined by "/" is the path without its one trailing '/';
 *   - a match is a path with the pattern's wildcards filled in: the pattern matches iff it has
 *     as many segments and writing each "*" as the path's segment there gives the path back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/http_args.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "/" + segments joined by "/", into out (which has room for all of them). */
static void join(const char *const *seg, size_t n, char *out)
{
    size_t len = 0;
    out[len++] = '/';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(seg[i]);
        memcpy(out + len, seg[i], l);
        len += l;
        if (i + 1 < n)
            out[len++] = '/';
    }
    out[len] = 0;
}

/* What the split should say of `path`, from its text alone: read left to right, the first
 * empty segment is INVALID and a segment past HTTP_SEGMENTS_MAX is TOO_MANY. */
static int expected_split(const char *path)
{
    size_t len = strlen(path);
    if (len >= HTTP_PATH_MAX)
        return HTTP_ARGS_TOO_LONG;
    if (len == 0 || path[0] != '/')
        return HTTP_ARGS_INVALID;
    size_t end = len > 1 && path[len - 1] == '/' ? len - 1 : len; /* one trailing '/' */
    if (end == 1)
        return HTTP_ARGS_OK; /* "/" */
    size_t segs = 0, start = 1;
    for (size_t i = 1; i <= end; i++) {
        if (i < end && path[i] != '/')
            continue;
        if (i == start)
            return HTTP_ARGS_INVALID;
        if (++segs > HTTP_SEGMENTS_MAX)
            return HTTP_ARGS_TOO_MANY;
        start = i + 1;
    }
    return HTTP_ARGS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 3 * HTTP_PATH_MAX)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *nl = strchr(text, '\n');
    const char *path = nl ? nl + 1 : text;
    if (nl)
        *nl = 0;

    /* A filled-in pattern is at most the pattern plus the path. */
    static char joined[2 * HTTP_PATH_MAX + 16], filled[2 * HTTP_PATH_MAX + 16];
    http_path p;
    int rc = http_path_split(path, &p);
    FUZZ_CHECK(rc == expected_split(path));
    if (rc == HTTP_ARGS_OK) {
        FUZZ_CHECK(p.n <= HTTP_SEGMENTS_MAX);
        for (size_t i = 0; i < p.n; i++)
            FUZZ_CHECK(p.seg[i][0] && !strchr(p.seg[i], '/'));
        join(p.seg, p.n, joined);
        size_t len = strlen(path);
        size_t want = len > 1 && path[len - 1] == '/' ? len - 1 : len;
        FUZZ_CHECK(strlen(joined) == want && memcmp(joined, path, want) == 0);
    }

    /* The pattern, split the same way (it is written without the leading '/'). */
    if (nl && rc == HTTP_ARGS_OK && strlen(text) + 1 < HTTP_PATH_MAX) {
        char pat_path[HTTP_PATH_MAX + 1];
        pat_path[0] = '/';
        strcpy(pat_path + 1, text);
        http_path pat;
        if (http_path_split(pat_path, &pat) == HTTP_ARGS_OK) {
            bool match = http_route_matches(pat.seg, pat.n, &p);
            bool same = pat.n == p.n;
            if (same) {
                const char *seg[HTTP_SEGMENTS_MAX];
                for (size_t i = 0; i < pat.n; i++)
                    seg[i] = strcmp(pat.seg[i], "*") == 0 ? p.seg[i] : pat.seg[i];
                join(seg, pat.n, filled);
                join(p.seg, p.n, joined);
                same = strcmp(filled, joined) == 0;
            }
            FUZZ_CHECK(match == same);
        }
    }
    free(text);
    return 0;
}
