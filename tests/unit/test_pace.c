/* The accept pace: accepts per loop turn, halved after a turn busy beyond the target, raised
 * while turns stay short and connections were left waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "presenced/core/pace.h"

/* Take as many as the current turn allows out of `want`: how many it let in. */
static uint32_t take(pace *p, uint32_t want)
{
    uint32_t n = 0;
    while (n < want && pace_take(p))
        n++;
    return n;
}

static void test_starts_at_min_and_stops_at_budget(void **state)
{
    (void)state;
    pace p;
    pace_init(&p, 4, 256, 25);
    assert_int_equal(take(&p, 100), 4);
    assert_false(pace_take(&p));
}

/* Short turns that left connections waiting raise the budget by `min` a turn, up to `max`. */
static void test_short_busy_turns_grow_to_max(void **state)
{
    (void)state;
    pace p;
    pace_init(&p, 4, 16, 25);
    uint32_t seen[5];
    for (int i = 0; i < 5; i++) {
        seen[i] = take(&p, 1000);
        pace_turn(&p, 1000);
    }
    assert_int_equal(seen[0], 4);
    assert_int_equal(seen[1], 8);
    assert_int_equal(seen[2], 12);
    assert_int_equal(seen[3], 16);
    assert_int_equal(seen[4], 16);
}

/* A turn that did not use its budget (nobody waiting) does not raise it: a quiet loop keeps a
 * small budget until a burst shows it is needed. */
static void test_unused_budget_does_not_grow(void **state)
{
    (void)state;
    pace p;
    pace_init(&p, 4, 256, 25);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(take(&p, 2), 2);
        pace_turn(&p, 100);
    }
    assert_int_equal(take(&p, 1000), 4);
}

/* A long turn halves the budget, whatever made it long, down to `min` and never below. */
static void test_long_turns_halve_down_to_min(void **state)
{
    (void)state;
    pace p;
    pace_init(&p, 4, 256, 25);
    while (take(&p, 1000) < 256)
        pace_turn(&p, 0);
    pace_turn(&p, 0);
    assert_int_equal(take(&p, 1000), 256);
    pace_turn(&p, 25001);
    assert_int_equal(take(&p, 1000), 128);
    pace_turn(&p, 2000000);
    assert_int_equal(take(&p, 1000), 64);
    for (int i = 0; i < 10; i++)
        pace_turn(&p, 30000);
    assert_int_equal(take(&p, 1000), 4);
    /* Exactly the target is not too long. */
    pace_turn(&p, 25000);
    assert_int_equal(take(&p, 1000), 8);
}

/* A storm against a loop whose every accepted connection costs `cost_us` of busy time in the
 * turn it is accepted: the budget settles where turns stay near the target instead of letting
 * the whole queue in at once. */
static void test_storm_keeps_turns_near_target(void **state)
{
    (void)state;
    pace p;
    pace_init(&p, 4, 256, 25);
    const uint64_t cost_us = 400; /* 62 connections fill a 25 ms turn */
    uint32_t queue = 17000, turns = 0;
    uint64_t longest = 0;
    while (queue > 0) {
        uint32_t n = take(&p, queue);
        queue -= n;
        uint64_t busy = n * cost_us;
        if (busy > longest)
            longest = busy;
        pace_turn(&p, busy);
        turns++;
    }
    /* Never twice the target (plus one step of growth), and the queue still drains in a few
     * hundred turns, not thousands. */
    assert_true(longest <= 2 * 25000 + 4 * cost_us);
    assert_true(turns < 17000 / 20);
}

static void test_bounds_are_sane(void **state)
{
    (void)state;
    pace p;
    pace_init(&p, 0, 0, 25);
    assert_int_equal(take(&p, 10), 1);
    pace_turn(&p, 0);
    assert_int_equal(take(&p, 10), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_at_min_and_stops_at_budget),
        cmocka_unit_test(test_short_busy_turns_grow_to_max),
        cmocka_unit_test(test_unused_budget_does_not_grow),
        cmocka_unit_test(test_long_turns_halve_down_to_min),
        cmocka_unit_test(test_storm_keeps_turns_near_target),
        cmocka_unit_test(test_bounds_are_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
