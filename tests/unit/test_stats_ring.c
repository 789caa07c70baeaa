/* The live page's history ring: order, wrap-around, counts per interval, unknown values, JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/stats_ring.h"

static void test_empty(void **state)
{
    (void)state;
    stats_ring r;
    stats_ring_init(&r, 10000);
    assert_int_equal(stats_ring_len(&r), 0);
    cJSON *j = stats_ring_json(&r);
    char *text = cJSON_PrintUnformatted(j);
    assert_string_equal(text, "{\"intervalMs\":10000,\"samples\":[]}");
    free(text);
    cJSON_Delete(j);
}

static void test_counts_belong_to_their_interval(void **state)
{
    (void)state;
    stats_ring r;
    stats_ring_init(&r, 1000);
    stats_ring_count(&r, true);
    stats_ring_count(&r, true);
    stats_ring_count(&r, false);
    stats_ring_push(&r, 1000, 5, 7);
    stats_ring_count(&r, false);
    stats_ring_push(&r, 2000, -1, -3);
    assert_int_equal(stats_ring_len(&r), 2);
    const stats_sample *a = stats_ring_at(&r, 0), *b = stats_ring_at(&r, 1);
    assert_int_equal(a->t_ms, 1000);
    assert_int_equal(a->users_online, 5);
    assert_int_equal(a->sockets, 7);
    assert_int_equal(a->online, 2);
    assert_int_equal(a->offline, 1);
    assert_int_equal(b->online, 0);
    assert_int_equal(b->offline, 1);
    assert_int_equal(b->users_online, -1);
    assert_int_equal(b->sockets, -1);
    cJSON *j = stats_ring_json(&r);
    char *text = cJSON_PrintUnformatted(j);
    assert_string_equal(text,
                        "{\"intervalMs\":1000,\"samples\":["
                        "{\"t\":1000,\"usersOnline\":5,\"sockets\":7,\"online\":2,\"offline\":1},"
                        "{\"t\":2000,\"usersOnline\":null,\"sockets\":null,\"online\":0,"
                        "\"offline\":1}]}");
    free(text);
    cJSON_Delete(j);
}

static void test_wraps_keeping_the_newest(void **state)
{
    (void)state;
    static stats_ring r;
    stats_ring_init(&r, 10);
    size_t total = STATS_RING_SLOTS * 2 + 7;
    for (size_t i = 0; i < total; i++) {
        for (size_t k = 0; k < i % 5; k++)
            stats_ring_count(&r, true);
        stats_ring_push(&r, (int64_t)i * 10, (int64_t)i, (int64_t)(2 * i));
        size_t want = i + 1 < STATS_RING_SLOTS ? i + 1 : STATS_RING_SLOTS;
        assert_int_equal(stats_ring_len(&r), want);
        /* Oldest first, newest last. */
        assert_int_equal(stats_ring_at(&r, want - 1)->users_online, (int64_t)i);
        assert_int_equal(stats_ring_at(&r, 0)->users_online, (int64_t)(i + 1 - want));
    }
    for (size_t i = 0; i < STATS_RING_SLOTS; i++) {
        const stats_sample *s = stats_ring_at(&r, i);
        size_t n = total - STATS_RING_SLOTS + i;
        assert_int_equal(s->t_ms, (int64_t)n * 10);
        assert_int_equal(s->sockets, (int64_t)(2 * n));
        assert_int_equal(s->online, n % 5);
    }
    cJSON *j = stats_ring_json(&r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "samples")),
                     STATS_RING_SLOTS);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_counts_belong_to_their_interval),
        cmocka_unit_test(test_wraps_keeping_the_newest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
