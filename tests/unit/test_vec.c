/* Unit tests for vec: capacities double from the minimum, contents survive growth, and a
 * capacity type that cannot hold more makes VEC_RESERVE fail with nothing changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "presenced/codec/vec.h"

static void test_doubles_and_keeps(void **state)
{
    (void)state;
    int *v = NULL;
    size_t n = 0, cap = 0;
    size_t caps[] = {4, 4, 4, 4, 8, 8, 8, 8, 16};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(VEC_RESERVE(v, n, cap, 4), 0);
        assert_int_equal(cap, caps[i]);
        v[n++] = i * 7;
    }
    for (int i = 0; i < 9; i++)
        assert_int_equal(v[i], i * 7);
    free(v);
}

static void test_small_capacity_type(void **state)
{
    (void)state;
    char *v = NULL;
    uint8_t n = 0, cap = 0;
    /* 1, 2, 4, ..., 128, then 255: the most a uint8_t holds. */
    while (n < 255) {
        assert_int_equal(VEC_RESERVE(v, n, cap, 1), 0);
        v[n++] = 'x';
    }
    assert_int_equal(cap, 255);
    char *before = v;
    assert_int_equal(VEC_RESERVE(v, n, cap, 1), -1);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 255);
    free(v);
}

static void test_no_growth_needed(void **state)
{
    (void)state;
    long *v = malloc(3 * sizeof(*v));
    uint32_t cap = 3;
    long *before = v;
    assert_int_equal(VEC_RESERVE(v, 2u, cap, 8), 0);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 3);
    free(v);
}

static void test_overflowing_size(void **state)
{
    (void)state;
    /* Elements so big that doubling the capacity overflows the byte count. */
    struct big {
        char b[1 << 20];
    } *v = NULL;
    size_t cap = SIZE_MAX / sizeof(*v) / 2 + 1, n = cap;
    assert_int_equal(VEC_RESERVE(v, n, cap, 1), -1);
    assert_null(v);
    assert_int_equal(cap, SIZE_MAX / sizeof(*v) / 2 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_and_keeps),
        cmocka_unit_test(test_small_capacity_type),
        cmocka_unit_test(test_no_growth_needed),
        cmocka_unit_test(test_overflowing_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
