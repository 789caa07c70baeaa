/* Presence views and batched diffs: which events change a view, how a batch coalesces them,
 * when it is due, and the exact JSON of both forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/pres_diff.h"

static pres_event make(pres_event_type type, const char *user, const char *room, const char *status,
                       const char *prev, const char *rooms)
{
    pres_event ev;
    pres_event_init(&ev, type);
    pres_event_set(&ev.user, user);
    if (room)
        pres_event_set(&ev.room, room);
    if (status)
        pres_event_set(&ev.status, status);
    if (prev)
        pres_event_set(&ev.prev_status, prev);
    if (rooms)
        pres_event_add_room(&ev, rooms);
    return ev;
}

static void test_change_of(void **state)
{
    (void)state;
    static const struct {
        pres_event_type type;
        const char *room, *status, *prev, *rooms;
        const char *view; /* NULL: contact list */
        int concerned, was_absent, present;
    } cases[] = {
        {PRES_EV_ROOM_JOIN, "r", "away", NULL, NULL, "r", 1, 1, 1},
        {PRES_EV_ROOM_JOIN, "r", "away", NULL, NULL, "other", 0, 0, 0},
        {PRES_EV_ROOM_JOIN, "r", "invisible", NULL, NULL, "r", 0, 0, 0},
        {PRES_EV_ROOM_JOIN, "r", "online", NULL, NULL, NULL, 0, 0, 0},
        {PRES_EV_ROOM_LEAVE, "r", NULL, NULL, NULL, "r", 1, 0, 0},
        {PRES_EV_ROOM_LEAVE, "r", NULL, NULL, NULL, "s", 0, 0, 0},
        {PRES_EV_UPDATE, NULL, "busy", "online", "r", "r", 1, 0, 1},
        {PRES_EV_UPDATE, NULL, "busy", "online", "s", "r", 0, 0, 0},
        {PRES_EV_UPDATE, NULL, "invisible", "online", "r", "r", 1, 0, 0},
        {PRES_EV_UPDATE, NULL, "online", "invisible", "r", "r", 1, 1, 1},
        {PRES_EV_UPDATE, NULL, "invisible", "invisible", "r", "r", 0, 0, 0},
        {PRES_EV_UPDATE, NULL, "dnd", "online", NULL, NULL, 1, 0, 1},
        {PRES_EV_ONLINE, NULL, "online", NULL, NULL, NULL, 1, 1, 1},
        {PRES_EV_ONLINE, NULL, "online", NULL, "r", "r", 0, 0, 0},
        {PRES_EV_ONLINE, NULL, "invisible", NULL, NULL, NULL, 0, 0, 0},
        {PRES_EV_OFFLINE, NULL, "away", NULL, NULL, NULL, 1, 0, 0},
        {PRES_EV_OFFLINE, NULL, "invisible", NULL, NULL, NULL, 0, 0, 0},
        {PRES_EV_OFFLINE, NULL, "away", NULL, "r", "r", 0, 0, 0},
        {PRES_EV_DISCONNECT, NULL, NULL, NULL, NULL, NULL, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pres_event ev =
            make(cases[i].type, "u", cases[i].room, cases[i].status, cases[i].prev, cases[i].rooms);
        pres_diff_change c;
        bool got = pres_diff_change_of(&ev, cases[i].view, &c);
        if (got != (cases[i].concerned != 0))
            fail_msg("case %zu: concerned %d, want %d", i, got, cases[i].concerned);
        if (got) {
            assert_string_equal(c.user, "u");
            assert_int_equal(c.was_absent, cases[i].was_absent);
            assert_int_equal(c.present, cases[i].present);
        }
        pres_event_deinit(&ev);
    }
}

static void put(pres_diff *d, const char *user, bool was_absent, bool present, const char *status,
                const char *meta, const char *seq, int64_t now)
{
    pres_diff_change c = {.user = user,
                          .was_absent = was_absent,
                          .present = present,
                          .status = status,
                          .metadata = meta};
    assert_int_equal(pres_diff_put(d, &c, seq, now), 0);
}

static void assert_json(const pres_diff *d, const char *room, bool full, const char *want)
{
    cJSON *o = pres_diff_json(d, room, full);
    if (!want) {
        assert_null(o);
        return;
    }
    assert_non_null(o);
    char *text = cJSON_PrintUnformatted(o);
    assert_string_equal(text, want);
    cJSON_free(text);
    cJSON_Delete(o);
}

static void test_coalescing(void **state)
{
    (void)state;
    pres_diff d;
    pres_diff_init(&d, 200, 7);
    assert_int_equal(pres_diff_due(&d), INT64_MAX);
    assert_null(pres_diff_json(&d, "r", true));

    /* A join then a leave of one user cancels out; another user's updates keep the last state;
     * a leave then a join of a third reads as an update. */
    put(&d, "ann", true, true, "online", NULL, "5", 1000);
    assert_int_equal(pres_diff_due(&d), 1200);
    put(&d, "bob", false, true, "away", "{\"k\":1}", "6", 1050);
    put(&d, "ann", false, false, NULL, NULL, "7", 1100);
    put(&d, "bob", false, true, "busy", "{\"k\":2}", "8", 1120);
    put(&d, "cat", false, false, NULL, NULL, "9", 1130);
    put(&d, "cat", true, true, "dnd", NULL, "10", 1140);
    put(&d, "dan", false, false, NULL, NULL, "11", 1150);
    assert_int_equal(pres_diff_due(&d), 1200); /* from the first change, not the last */
    assert_json(&d, "r", false,
                "{\"room\":\"r\",\"seq\":\"11\",\"joins\":[],\"leaves\":[\"dan\"],\"updates\":["
                "{\"userId\":\"bob\",\"status\":\"busy\",\"metadata\":{\"k\":2}},"
                "{\"userId\":\"cat\",\"status\":\"dnd\",\"metadata\":null}]}");
    assert_json(&d, NULL, true,
                "{\"seq\":\"11\",\"joins\":[],\"leaves\":[\"ann\",\"dan\"],\"updates\":["
                "{\"userId\":\"bob\",\"status\":\"busy\",\"metadata\":{\"k\":2}},"
                "{\"userId\":\"cat\",\"status\":\"dnd\",\"metadata\":null}]}");

    /* Before the first batch went out, only a snapshot from before any event is old enough. */
    assert_true(pres_diff_compact_ok(&d, "0"));
    assert_false(pres_diff_compact_ok(&d, "4"));
    pres_diff_clear(&d);
    assert_int_equal(pres_diff_due(&d), INT64_MAX);
    assert_true(pres_diff_compact_ok(&d, "11"));
    assert_true(pres_diff_compact_ok(&d, "3"));
    assert_false(pres_diff_compact_ok(&d, "12"));

    /* The next batch opens with its own first change; a lone join-and-leave sends nothing in the
     * compact form. */
    put(&d, "eve", true, true, "online", NULL, "12", 5000);
    put(&d, "eve", false, false, NULL, NULL, "13", 5001);
    assert_int_equal(pres_diff_due(&d), 5200);
    assert_json(&d, "r", false, NULL);
    assert_json(&d, "r", true,
                "{\"room\":\"r\",\"seq\":\"13\",\"joins\":[],\"leaves\":[\"eve\"],\"updates\":[]}");
    /* Back again within the batch: a join with the latest state. */
    put(&d, "eve", false, true, "away", "{\"n\":\"Eve\"}", "14", 5002);
    assert_json(&d, "r", false,
                "{\"room\":\"r\",\"seq\":\"14\",\"joins\":[{\"userId\":\"eve\",\"status\":\"away\","
                "\"metadata\":{\"n\":\"Eve\"}}],\"leaves\":[],\"updates\":[]}");
    pres_diff_clear(&d);
    /* Stream ids order as ids, not as text. */
    put(&d, "fay", true, true, "online", NULL, "1700000000000-2", 6000);
    pres_diff_clear(&d);
    assert_true(pres_diff_compact_ok(&d, "1700000000000-2"));
    assert_true(pres_diff_compact_ok(&d, "999999999999-9"));
    assert_false(pres_diff_compact_ok(&d, "1700000000000-10"));
    pres_diff_deinit(&d);
}

/* Many users through one batch: every entry keeps its own state (the index survives growth). */
static void test_many(void **state)
{
    (void)state;
    pres_diff d;
    pres_diff_init(&d, 0, 1);
    char user[16], seq[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        snprintf(seq, sizeof(seq), "%d", i + 1);
        put(&d, user, true, true, "online", NULL, seq, 10);
    }
    for (int i = 0; i < 1000; i += 2) {
        snprintf(user, sizeof(user), "u%d", i);
        snprintf(seq, sizeof(seq), "%d", 1001 + i);
        put(&d, user, false, false, NULL, NULL, seq, 11);
    }
    assert_int_equal(pres_diff_due(&d), 10);
    cJSON *o = pres_diff_json(&d, NULL, false);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "joins")), 500);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "leaves")), 0);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "joins"), 0), "userId")
            ->valuestring,
        "u1");
    cJSON_Delete(o);
    o = pres_diff_json(&d, NULL, true);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "leaves")), 500);
    cJSON_Delete(o);
    pres_diff_deinit(&d);
}

static void test_entry_json(void **state)
{
    (void)state;
    cJSON *o = pres_diff_entry_json("a", "away", "not json");
    char *text = cJSON_PrintUnformatted(o);
    assert_string_equal(text, "{\"userId\":\"a\",\"status\":\"away\",\"metadata\":null}");
    cJSON_free(text);
    cJSON_Delete(o);
    assert_true(pres_diff_shows("online"));
    assert_true(pres_diff_shows(NULL));
    assert_false(pres_diff_shows("invisible"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_of),
        cmocka_unit_test(test_coalescing),
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_entry_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
