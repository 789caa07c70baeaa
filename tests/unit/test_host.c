/* Unit tests for host: the clocks move the right way and ids are well-formed and distinct. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/io/host.h"

static void test_random_id_shape(void **state)
{
    (void)state;
    /* Longer than the 64 bytes drawn at a time, so the refill is exercised too. */
    char a[101], b[101];
    memset(a, '!', sizeof(a));
    host_random_id(a, 100);
    host_random_id(b, 100);
    assert_int_equal(a[100], 0);
    assert_int_equal(strlen(a), 100);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     100);
    assert_string_not_equal(a, b);
}

static void test_random_id_empty(void **state)
{
    (void)state;
    char a[1] = {'x'};
    host_random_id(a, 0);
    assert_int_equal(a[0], 0);
}

static void test_clocks(void **state)
{
    (void)state;
    uint64_t m0 = host_mono_ms();
    int64_t w = host_wall_ms(), s = host_wall_s();
    /* After 2020-01-01 and in agreement with each other. */
    assert_true(w > 1577836800000LL);
    assert_true(s - w / 1000 >= -1 && s - w / 1000 <= 1);
    assert_true(host_mono_ms() >= m0);
}

static void test_seeds_differ(void **state)
{
    (void)state;
    assert_true(host_seed() != host_seed());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_id_shape),
        cmocka_unit_test(test_random_id_empty),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_seeds_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
