/* Unit tests for utf8_valid: a table of edge cases plus an exhaustive comparison with an
 * independent decode-then-check reference for every sequence of up to three bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/utf8.h"

struct utf8_vec {
    const char *s;
    size_t len; /* 0: use strlen */
    bool valid;
};

static const struct utf8_vec vectors[] = {
    {"", 0, true},
    {"abc", 0, true},
    {"a\0b", 3, true},             /* NUL is well-formed */
    {"\xc2\x80", 0, true},         /* U+0080 */
    {"\xc3\xa9", 0, true},         /* U+00E9 */
    {"\xdf\xbf", 0, true},         /* U+07FF */
    {"\xe0\xa0\x80", 0, true},     /* U+0800 */
    {"\xe2\x82\xac", 0, true},     /* U+20AC */
    {"\xed\x9f\xbf", 0, true},     /* U+D7FF */
    {"\xee\x80\x80", 0, true},     /* U+E000 */
    {"\xef\xbf\xbf", 0, true},     /* U+FFFF */
    {"\xf0\x90\x80\x80", 0, true}, /* U+10000 */
    {"\xf0\x9f\x98\x80", 0, true}, /* U+1F600 */
    {"\xf4\x8f\xbf\xbf", 0, true}, /* U+10FFFF */
    {"\x80", 0, false},            /* lone continuation */
    {"\xbf", 0, false},
    {"\xc0\x80", 0, false},         /* overlong NUL */
    {"\xc1\xbf", 0, false},         /* overlong */
    {"\xe0\x80\x80", 0, false},     /* overlong */
    {"\xe0\x9f\xbf", 0, false},     /* overlong U+07FF */
    {"\xed\xa0\x80", 0, false},     /* U+D800 */
    {"\xed\xbf\xbf", 0, false},     /* U+DFFF */
    {"\xf0\x80\x80\x80", 0, false}, /* overlong */
    {"\xf0\x8f\xbf\xbf", 0, false}, /* overlong U+FFFF */
    {"\xf4\x90\x80\x80", 0, false}, /* U+110000 */
    {"\xf5\x80\x80\x80", 0, false},
    {"\xfe", 0, false},
    {"\xff", 0, false},
    {"\xc2", 0, false}, /* truncated */
    {"\xe2\x82", 0, false},
    {"\xf0\x90\x80", 0, false},
    {"a\xc3", 0, false},
    {"\xc2\x41", 0, false}, /* bad continuation */
    {"\xe2\x28\xa1", 0, false},
    {"\xe2\x82\x28", 0, false},
    {"\xf0\x90\x28\x80", 0, false},
    {"\xf0\x90\x80\x28", 0, false},
};

static void test_utf8_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        size_t n = vectors[i].len ? vectors[i].len : strlen(vectors[i].s);
        /* Exact-size heap copy so that ASan catches a read past the end. */
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, vectors[i].s, n);
        if (utf8_valid(p, n) != vectors[i].valid)
            fail_msg("vector %zu: expected %s", i, vectors[i].valid ? "valid" : "invalid");
        free(p);
    }
}

/* Reference: decode one code point by bit arithmetic, then apply the RFC 3629 range rules.
 * Returns the sequence length or 0 when it is not one well-formed character. */
static size_t ref_char(const uint8_t *p, size_t len)
{
    size_t n;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0) {
        n = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        n = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        n = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static bool ref_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = ref_char(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static void test_utf8_exhaustive_short(void **state)
{
    (void)state;
    uint8_t b[3];
    for (uint32_t v = 0; v < 0x100; v++) {
        b[0] = (uint8_t)v;
        assert_int_equal(utf8_valid(b, 1), ref_valid(b, 1));
    }
    for (uint32_t v = 0; v < 0x10000; v++) {
        b[0] = (uint8_t)(v >> 8);
        b[1] = (uint8_t)v;
        assert_int_equal(utf8_valid(b, 2), ref_valid(b, 2));
    }
    for (uint32_t v = 0x800000; v < 0x1000000; v++) { /* lead bytes >= 0x80 only */
        b[0] = (uint8_t)(v >> 16);
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        if (utf8_valid(b, 3) != ref_valid(b, 3))
            fail_msg("mismatch on %02x %02x %02x", b[0], b[1], b[2]);
    }
}

/* Four-byte sequences: every lead byte F0..F7 with every second byte, and a spread of the
 * last two. */
static void test_utf8_four_bytes(void **state)
{
    (void)state;
    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0, 0xFF};
    uint8_t b[4];
    for (uint32_t lead = 0xF0; lead <= 0xFF; lead++) {
        for (uint32_t second = 0; second < 0x100; second++) {
            for (size_t x = 0; x < sizeof(tails); x++) {
                for (size_t y = 0; y < sizeof(tails); y++) {
                    b[0] = (uint8_t)lead;
                    b[1] = (uint8_t)second;
                    b[2] = tails[x];
                    b[3] = tails[y];
                    if (utf8_valid(b, 4) != ref_valid(b, 4))
                        fail_msg("mismatch on %02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_vectors),
        cmocka_unit_test(test_utf8_exhaustive_short),
        cmocka_unit_test(test_utf8_four_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
