/* Fuzz the cluster codec: any bytes as an error reply must parse as a redirection or be refused,
 * without a crash or a leak; an accepted one names a slot below 16384, a non-zero port and a
 * NUL-terminated host without spaces. Any bytes as a key get a slot below 16384, the same as the
 * key wrapped in a hash tag's surroundings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/redis_slot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    redis_redirect r;
    if (redis_redirect_parse(s, size, &r) == 0) {
        FUZZ_CHECK(r.kind == REDIS_REDIRECT_MOVED || r.kind == REDIS_REDIRECT_ASK);
        FUZZ_CHECK(r.slot < REDIS_SLOTS && r.port > 0);
        FUZZ_CHECK(memchr(r.host, 0, sizeof(r.host)) && !strchr(r.host, ' '));
    }
    uint16_t slot = redis_slot(s, size);
    FUZZ_CHECK(slot < REDIS_SLOTS);
    /* A key without braces is its own hash tag. */
    if (size > 0 && size < 4096 && !memchr(s, '{', size) && !memchr(s, '}', size)) {
        char *k = malloc(size + 6);
        if (!k)
            return 0;
        memcpy(k, "a{", 2);
        memcpy(k + 2, s, size);
        memcpy(k + 2 + size, "}b{c", 4);
        FUZZ_CHECK(redis_slot(k, size + 6) == slot);
        free(k);
    }
    return 0;
}
