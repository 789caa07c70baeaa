/* The slow-or-dead rule of a Redis connection: silence measured from the last reply, a limit
 * that follows the silences the peer ended, this process's own pauses not counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "presenced/core/stall.h"

#define ROUND 250

/* Check every round from `from` to `to` (inclusive): the first time that found it dead, or 0. */
static uint64_t first_dead(stall_watch *w, uint64_t from, uint64_t to)
{
    for (uint64_t t = from; t <= to; t += ROUND)
        if (stall_check(w, t, ROUND))
            return t;
    return 0;
}

static void test_idle_is_never_dead(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 1000);
    assert_int_equal(first_dead(&w, 1000, 100000), 0);
}

/* A peer that answered promptly and then stops is dead after min_ms, as before. */
static void test_prompt_peer_that_stops_is_dead_after_min(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    for (uint64_t t = 1000; t <= 10000; t += 1000) {
        stall_sent(&w, t);
        stall_reply(&w, t + 2, true);
    }
    assert_int_equal(stall_limit(&w, 10002), 3000);
    stall_sent(&w, 11000);
    assert_int_equal(first_dead(&w, 11000, 20000), 14000);
}

/* Replies that keep coming, each within the limit, keep a deep queue alive however long it is. */
static void test_replies_that_keep_coming_are_progress(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    for (int i = 0; i < 100; i++)
        stall_sent(&w, 0);
    uint64_t t = 0;
    for (int i = 0; i < 99; i++) {
        t += 2500;
        assert_false(stall_check(&w, t, ROUND * 20));
        stall_reply(&w, t, true);
    }
    assert_int_equal(w.pending, 1);
    assert_false(stall_check(&w, t + 2500, ROUND * 20));
}

/* A peer that has ended silences of 4 s gets three times that before it is dead; a silence that
 * reaches it is still dead. */
static void test_slow_peer_gets_time_in_proportion(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    /* Silences of 2 s, then 4 s, each within the limit of its time. */
    stall_sent(&w, 0);
    assert_int_equal(first_dead(&w, 0, 2000), 0);
    stall_reply(&w, 2000, true);
    assert_int_equal(stall_limit(&w, 2000), 6000);
    stall_sent(&w, 2000);
    assert_int_equal(first_dead(&w, 2250, 6000), 0);
    stall_reply(&w, 6000, true);
    assert_int_equal(stall_limit(&w, 6000), 12000);
    stall_sent(&w, 6000);
    assert_int_equal(first_dead(&w, 6250, 30000), 18000);
}

static void test_limit_is_capped(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    stall_sent(&w, 0);
    stall_reply(&w, 25000, true); /* a round missed nothing: no checks in between */
    assert_int_equal(stall_limit(&w, 25000), 30000);
}

/* What a slow period taught is forgotten 30-60 s later. */
static void test_pace_is_forgotten(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    stall_sent(&w, 1000);
    stall_reply(&w, 5000, true);
    assert_int_equal(stall_limit(&w, 5000), 12000);
    assert_int_equal(stall_limit(&w, 29000), 12000);
    /* Another window: still counted through it. */
    stall_sent(&w, 31000);
    stall_reply(&w, 31001, true);
    assert_int_equal(stall_limit(&w, 31001), 12000);
    assert_int_equal(stall_limit(&w, 59000), 12000);
    assert_int_equal(stall_limit(&w, 61001), 3000);
    /* Nothing at all for two windows. */
    stall_watch v;
    stall_init(&v, 3000, 30000, 0);
    stall_sent(&v, 0);
    stall_reply(&v, 5000, true);
    assert_int_equal(stall_limit(&v, 59000), 15000);
    assert_int_equal(stall_limit(&v, 60000), 3000);
}

/* A request that ends without a reply (the connection dropped) proves nothing. */
static void test_no_reply_is_not_progress(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    stall_sent(&w, 0);
    stall_sent(&w, 0);
    stall_reply(&w, 2000, false);
    assert_int_equal(w.pending, 1);
    assert_int_equal(first_dead(&w, 250, 5000), 3000);
    assert_int_equal(stall_limit(&w, 3000), 3000);
}

/* A check round that comes late is this process's pause, not the peer's silence. */
static void test_own_pause_is_not_silence(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    assert_false(stall_check(&w, 250, ROUND));
    stall_sent(&w, 300);
    assert_false(stall_check(&w, 500, ROUND));
    /* The process did not run for 10 s. */
    assert_false(stall_check(&w, 10500, ROUND));
    assert_int_equal(first_dead(&w, 10750, 20000), 13250);
}

/* The pace survives a lost connection: a reconnection to a slow peer is not cut short. */
static void test_reset_keeps_pace(void **state)
{
    (void)state;
    stall_watch w;
    stall_init(&w, 3000, 30000, 0);
    stall_sent(&w, 0);
    stall_reply(&w, 2500, true);
    stall_sent(&w, 2500);
    stall_reset(&w);
    assert_int_equal(w.pending, 0);
    assert_false(stall_check(&w, 20000, 20000));
    stall_sent(&w, 20000);
    assert_int_equal(stall_limit(&w, 20000), 7500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_is_never_dead),
        cmocka_unit_test(test_prompt_peer_that_stops_is_dead_after_min),
        cmocka_unit_test(test_replies_that_keep_coming_are_progress),
        cmocka_unit_test(test_slow_peer_gets_time_in_proportion),
        cmocka_unit_test(test_limit_is_capped),
        cmocka_unit_test(test_pace_is_forgotten),
        cmocka_unit_test(test_no_reply_is_not_progress),
        cmocka_unit_test(test_own_pause_is_not_silence),
        cmocka_unit_test(test_reset_keeps_pace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
