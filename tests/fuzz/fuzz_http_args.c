/* Fuzz the HTTP API's request-line validation with arbitrary text as a path, an id list, a query
 * argument list and an Authorization header: no crash, no leak, and what is accepted satisfies
 * the contract (segments non-empty, ids valid names). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/http_args.h"
#include "presenced/codec/pres_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;

    http_path p;
    if (http_path_split(s, &p) == HTTP_ARGS_OK) {
        FUZZ_CHECK(p.n <= HTTP_SEGMENTS_MAX);
        for (size_t i = 0; i < p.n; i++)
            FUZZ_CHECK(p.seg[i][0] != 0 && !strchr(p.seg[i], '/'));
    }

    const char *args[4] = {s, "ids=a", s, "limit=5"};
    const char *v;
    if (http_query_get(args, 4, "ids", &v) == HTTP_ARGS_OK && v)
        FUZZ_CHECK(v == args[1] + 4 || (v >= s && v <= s + size));
    uint32_t n32;
    if (http_uint_parse(s, 1, 1000, &n32) == HTTP_ARGS_OK)
        FUZZ_CHECK(n32 >= 1 && n32 <= 1000);

    (void)http_bearer_match(s, "key");
    int head = http_head_check((const char *)data, size, 64);
    FUZZ_CHECK(head == HTTP_HEAD_OK || head == HTTP_HEAD_NEED_MORE || head == HTTP_HEAD_BAD ||
               head == HTTP_HEAD_URI_LONG || head == HTTP_HEAD_TOO_LARGE);

    char *list = strdup(s);
    const char **ids;
    size_t n, bad;
    if (list && http_ids_split(list, 50, &ids, &n, &bad) == HTTP_ARGS_OK) {
        FUZZ_CHECK(n >= 1 && n <= 50);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(pres_name_valid(ids[i], strlen(ids[i])));
        free(ids);
    }
    free(list);
    free(s);
    return 0;
}
