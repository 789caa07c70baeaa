/* Unit tests for b64: RFC 4648 §10 vectors, strictness, in-place decoding, prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/b64.h"

struct b64_vec {
    const char *plain;
    const char *encoded;
};

/* RFC 4648 §10 test vectors, plus a few with high bytes. */
static const struct b64_vec valid[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
    {"\x01\x02\x03\x04", "AQIDBA=="},
    {"\xff\xfe\xfd", "//79"},
    {"\xfb\xff", "+/8="},
};

static void test_b64_encode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        size_t n = strlen(valid[i].plain);
        char out[64];
        memset(out, '#', sizeof(out));
        assert_int_equal(b64_encoded_len(n), strlen(valid[i].encoded));
        size_t w = b64_encode((const uint8_t *)valid[i].plain, n, out);
        assert_int_equal(w, strlen(valid[i].encoded));
        assert_memory_equal(out, valid[i].encoded, w);
        assert_int_equal(out[w], '#'); /* nothing written past the end, no NUL */
    }
}

static void test_b64_decode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const char *enc = valid[i].encoded;
        size_t n = strlen(enc);
        uint8_t out[64];
        memset(out, '#', sizeof(out));
        long w = b64_decode(enc, n, out);
        assert_int_equal(w, (long)strlen(valid[i].plain));
        assert_memory_equal(out, valid[i].plain, (size_t)w);

        /* In place, from an exact-size heap copy so ASan sees any overrun. */
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, enc, n);
        w = b64_decode(copy, n, (uint8_t *)copy);
        assert_int_equal(w, (long)strlen(valid[i].plain));
        assert_memory_equal(copy, valid[i].plain, (size_t)w);
        free(copy);
    }
}

static const char *const invalid[] = {
    "Zg",       /* no padding */
    "Zg=",      /* short padding */
    "Z===",     /* too much padding */
    "====",     /* only padding */
    "=Zg=",     /* padding first */
    "Z=g=",     /* padding in the middle of a quantum */
    "Zg=a",     /* data after padding */
    "Zg==Zg==", /* padding before the last quantum */
    "Zh==",     /* non-zero bits under "==" */
    "Zm9=",     /* non-zero bits under "=" */
    "Zm-v",     /* base64url alphabet */
    "Zm_v",     /* base64url alphabet */
    "Zm9v\n",   /* whitespace */
    "Zm 9",     /* space */
    "Zm9\xc3",  /* non-ASCII */
    "Zm9\0",    /* NUL (length given explicitly below) */
};

static void test_b64_decode_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        size_t n = strlen(invalid[i]);
        if (i == sizeof(invalid) / sizeof(invalid[0]) - 1)
            n = 4;
        uint8_t out[64];
        long w = b64_decode(invalid[i], n, out);
        if (w != -1)
            fail_msg("accepted invalid vector %zu \"%s\"", i, invalid[i]);
    }
}

/* Every strict prefix of a valid encoding decodes cleanly or is refused; nothing outside the
 * prefix is read (exact-size copies) or written (guard bytes). */
static void test_b64_decode_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const char *enc = valid[i].encoded;
        size_t n = strlen(enc);
        for (size_t k = 0; k < n; k++) {
            char *copy = malloc(k ? k : 1);
            assert_non_null(copy);
            memcpy(copy, enc, k);
            uint8_t out[64];
            memset(out, '#', sizeof(out));
            long w = b64_decode(copy, k, out);
            if (k % 4 != 0) {
                assert_int_equal(w, -1);
            } else {
                assert_int_equal(w, (long)(k / 4 * 3));
                assert_memory_equal(out, valid[i].plain, (size_t)w);
            }
            for (size_t g = k / 4 * 3; g < sizeof(out); g++)
                assert_int_equal(out[g], '#');
            free(copy);
        }
    }
}

/* Every length 0..300 and every byte value survive encode → decode, in place and not. */
static void test_b64_roundtrip(void **state)
{
    (void)state;
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t elen = b64_encoded_len(n);
        assert_int_equal(elen % 4, 0);
        char *enc = malloc(elen ? elen : 1);
        assert_non_null(enc);
        assert_int_equal(b64_encode(in, n, enc), elen);
        uint8_t out[300];
        assert_int_equal(b64_decode(enc, elen, out), (long)n);
        assert_memory_equal(out, in, n);
        assert_int_equal(b64_decode(enc, elen, (uint8_t *)enc), (long)n);
        assert_memory_equal(enc, in, n);
        free(enc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_encode_vectors), cmocka_unit_test(test_b64_decode_vectors),
        cmocka_unit_test(test_b64_decode_invalid), cmocka_unit_test(test_b64_decode_prefixes),
        cmocka_unit_test(test_b64_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
