/* Fuzz b64: the input is decoded as base64 text and also encoded as raw bytes.
 * Properties: decoding never overruns; an accepted text is the canonical encoding of what it
 * decodes to (encode(decode(x)) == x); in-place decoding equals out-of-place decoding;
 * decode(encode(x)) == x. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/b64.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Decode: out holds exactly the documented minimum. */
    size_t cap = size / 4 * 3;
    uint8_t *out = malloc(cap ? cap : 1);
    FUZZ_CHECK(out);
    long n = b64_decode((const char *)data, size, out);
    if (n >= 0) {
        FUZZ_CHECK((size_t)n <= cap && (size_t)n + 2 >= cap);
        FUZZ_CHECK(b64_encoded_len((size_t)n) == size);
        char *enc = malloc(size ? size : 1);
        FUZZ_CHECK(enc);
        FUZZ_CHECK(b64_encode(out, (size_t)n, enc) == size);
        FUZZ_CHECK(memcmp(enc, data, size) == 0);
        free(enc);
    }
    uint8_t *copy = malloc(size ? size : 1);
    FUZZ_CHECK(copy);
    memcpy(copy, data, size);
    long m = b64_decode((const char *)copy, size, copy);
    FUZZ_CHECK(m == n);
    if (n > 0)
        FUZZ_CHECK(memcmp(copy, out, (size_t)n) == 0);
    free(copy);
    free(out);

    /* Encode the raw input, then decode it back. */
    size_t elen = b64_encoded_len(size);
    char *enc = malloc(elen ? elen : 1);
    FUZZ_CHECK(enc);
    FUZZ_CHECK(b64_encode(data, size, enc) == elen);
    uint8_t *back = malloc(elen / 4 * 3 + 1);
    FUZZ_CHECK(back);
    FUZZ_CHECK(b64_decode(enc, elen, back) == (long)size);
    FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
    free(back);
    free(enc);
    return 0;
}
