/* The string-keyed hash table, checked against a brute-force model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/map.h"

#define N 2000

static void test_model(void **state)
{
    (void)state;
    map m;
    map_init(&m, 42);
    static char keys[N][16];
    static bool present[N];
    memset(present, 0, sizeof(present));
    uint64_t x = 88172645463325252ULL;
    for (int step = 0; step < 20000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int k = (int)(x % N);
        snprintf(keys[k], sizeof(keys[k]), "k%d", k);
        if ((x >> 32) % 3) {
            assert_int_equal(map_put(&m, keys[k], strlen(keys[k]), &present[k]), 0);
            present[k] = true;
        } else {
            void *v = map_del(&m, keys[k], strlen(keys[k]));
            assert_ptr_equal(v, present[k] ? &present[k] : NULL);
            present[k] = false;
        }
        if (step % 1000 == 0) {
            size_t count = 0;
            for (int i = 0; i < N; i++) {
                char key[16];
                snprintf(key, sizeof(key), "k%d", i);
                void *v = map_get(&m, key, strlen(key));
                assert_ptr_equal(v, present[i] ? &present[i] : NULL);
                count += present[i];
            }
            assert_int_equal(m.count, count);
        }
    }
    size_t pos = 0, seen = 0;
    while (map_next(&m, &pos))
        seen++;
    assert_int_equal(seen, m.count);
    map_deinit(&m);
}

static void test_binary_keys(void **state)
{
    (void)state;
    map m;
    map_init(&m, 7);
    int a, b;
    /* Keys are length-delimited: embedded NULs and prefixes are distinct keys. */
    assert_int_equal(map_put(&m, "u1\0x", 4, &a), 0);
    assert_int_equal(map_put(&m, "u1", 2, &b), 0);
    assert_ptr_equal(map_get(&m, "u1\0x", 4), &a);
    assert_ptr_equal(map_get(&m, "u1", 2), &b);
    assert_null(map_get(&m, "u1\0", 3));
    map_deinit(&m);
}

/* Memory per entry: 24-byte slots, tables kept at most 3/4 full. */
static void test_footprint(void **state)
{
    (void)state;
    assert_int_equal(sizeof(map_slot), 24);
    map m;
    map_init(&m, 9);
    char key[16];
    for (int i = 0; i < 3072; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        assert_int_equal(map_put(&m, key, strlen(key), &m), 0);
    }
    assert_int_equal(m.cap, 4096); /* 3072 = 3/4 of 4096 */
    assert_int_equal(map_put(&m, "one more", 8, &m), 0);
    assert_int_equal(m.cap, 8192);
    map_deinit(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_footprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
