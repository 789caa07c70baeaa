/* The in-memory presence rules on a fake clock: each step names the events it must produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/pres_state.h"

/* Render the events as "type:user[:room]" separated by spaces, for compact expectations. */
static const char *render(pres_events *l)
{
    static char out[1024];
    static const char *const tags[] = {"on", "off", "join", "leave", "upd"};
    out[0] = 0;
    for (size_t i = 0; i < l->n; i++) {
        const pres_event *e = &l->v[i];
        char one[300];
        snprintf(one, sizeof(one), "%s%s:%s%s%s", i ? " " : "", tags[e->type], e->user,
                 e->room ? ":" : "", e->room ? e->room : "");
        strncat(out, one, sizeof(out) - strlen(out) - 1);
    }
    pres_events_clear(l);
    return out;
}

static void test_multi_tab(void **state)
{
    (void)state;
    pres_state *ps = pres_state_new(1, 0, 60);
    pres_events ev = {0};
    assert_int_equal(pres_state_open(ps, "s1", "alice", NULL, NULL, 100, &ev), PRES_OK);
    assert_string_equal(render(&ev), "on:alice");
    assert_int_equal(pres_state_open(ps, "s1", "alice", NULL, NULL, 101, &ev), PRES_ERR_EXISTS);
    assert_int_equal(pres_state_open(ps, "s2", "alice", NULL, NULL, 102, &ev), PRES_OK);
    assert_int_equal(pres_state_open(ps, "s3", "alice", NULL, NULL, 103, &ev), PRES_OK);
    assert_string_equal(render(&ev), "");
    pres_user_view v;
    pres_state_user(ps, "alice", &v);
    assert_true(v.online);
    assert_int_equal(v.sockets, 3);
    assert_int_equal(v.since, 100);
    assert_int_equal(pres_state_close(ps, "s1", true, 200, &ev), PRES_OK);
    assert_int_equal(pres_state_close(ps, "s3", true, 201, &ev), PRES_OK);
    assert_string_equal(render(&ev), "");
    assert_int_equal(pres_state_close(ps, "nope", true, 202, &ev), PRES_OK);
    assert_int_equal(pres_state_close(ps, "s2", true, 300, &ev), PRES_OK);
    assert_string_equal(render(&ev), "off:alice");
    pres_state_user(ps, "alice", &v);
    assert_false(v.online);
    assert_true(v.known);
    assert_string_equal(v.status, "offline");
    assert_int_equal(v.last_seen, 300);
    /* Retention 60 s: forgotten after it. */
    assert_int_equal(pres_state_next_deadline(ps), 60300);
    assert_int_equal(pres_state_tick(ps, 60299, &ev), PRES_OK);
    pres_state_user(ps, "alice", &v);
    assert_true(v.known);
    assert_int_equal(pres_state_tick(ps, 60300, &ev), PRES_OK);
    pres_state_user(ps, "alice", &v);
    assert_false(v.known);
    assert_string_equal(render(&ev), "");
    pres_state_free(ps);
}

static void test_rooms(void **state)
{
    (void)state;
    pres_state *ps = pres_state_new(2, 0, 60);
    pres_events ev = {0};
    pres_state_open(ps, "a1", "a", NULL, NULL, 1, &ev);
    pres_state_open(ps, "a2", "a", NULL, NULL, 1, &ev);
    pres_state_open(ps, "b1", "b", NULL, NULL, 1, &ev);
    render(&ev);
    assert_int_equal(pres_state_join(ps, "zz", "r", 2, &ev), PRES_ERR_NO_SOCKET);
    pres_state_join(ps, "a1", "r", 2, &ev);
    pres_state_join(ps, "a1", "r", 2, &ev); /* again: nothing */
    pres_state_join(ps, "a2", "r", 2, &ev); /* same user: nothing */
    pres_state_join(ps, "b1", "r", 2, &ev);
    pres_state_join(ps, "a1", "s", 2, &ev);
    assert_string_equal(render(&ev), "join:a:r join:b:r join:a:s");
    const char *ids[4];
    assert_int_equal(pres_state_room(ps, "r", ids, 4), 2);
    assert_int_equal(pres_state_room(ps, "nope", ids, 4), 0);
    pres_state_leave(ps, "b1", "s", 3, &ev); /* not in it: nothing */
    pres_state_leave(ps, "a2", "r", 3, &ev); /* a1 still in r */
    assert_string_equal(render(&ev), "");
    /* Closing a1 leaves r (a's last socket in r now) and s; a2 keeps a online. */
    pres_state_close(ps, "a1", true, 4, &ev);
    assert_string_equal(render(&ev), "leave:a:r leave:a:s");
    assert_int_equal(pres_state_room(ps, "r", ids, 4), 1);
    assert_string_equal(ids[0], "b");
    /* Rooms are left before the offline event, and the offline event names them. */
    pres_state_close(ps, "b1", false, 5, &ev);
    assert_int_equal(ev.n, 2);
    assert_int_equal(ev.v[1].nrooms, 1);
    assert_string_equal(ev.v[1].rooms[0], "r");
    assert_string_equal(render(&ev), "leave:b:r off:b");
    assert_int_equal(pres_state_room(ps, "r", ids, 4), 0);
    pres_state_free(ps);
}

static void test_grace(void **state)
{
    (void)state;
    pres_state *ps = pres_state_new(3, 500, 60);
    pres_events ev = {0};
    pres_state_open(ps, "s1", "u", NULL, NULL, 0, &ev);
    render(&ev);
    /* Reload: closed and back within the grace, no events. */
    pres_state_close(ps, "s1", true, 1000, &ev);
    pres_user_view v;
    pres_state_user(ps, "u", &v);
    assert_true(v.online);
    assert_int_equal(v.sockets, 0);
    pres_state_open(ps, "s2", "u", NULL, NULL, 1400, &ev);
    assert_int_equal(pres_state_tick(ps, 1600, &ev), PRES_OK);
    assert_string_equal(render(&ev), "");
    /* Gone for good: offline after the grace, once. */
    pres_state_close(ps, "s2", true, 2000, &ev);
    assert_int_equal(pres_state_next_deadline(ps), 2500);
    pres_state_tick(ps, 2499, &ev);
    assert_string_equal(render(&ev), "");
    pres_state_tick(ps, 2500, &ev);
    assert_int_equal(ev.n, 1);
    assert_string_equal(ev.v[0].socket, "s2");
    assert_int_equal(ev.v[0].last_seen, 2000);
    assert_string_equal(render(&ev), "off:u");
    pres_state_tick(ps, 3000, &ev);
    assert_string_equal(render(&ev), "");
    /* Not graceful: offline at once despite the grace. */
    pres_state_open(ps, "s3", "u", NULL, NULL, 4000, &ev);
    pres_state_close(ps, "s3", false, 4001, &ev);
    assert_string_equal(render(&ev), "on:u off:u");
    pres_state_free(ps);
}

static void test_status_and_assert(void **state)
{
    (void)state;
    pres_state *ps = pres_state_new(4, 0, 60);
    pres_events ev = {0};
    pres_state_open(ps, "s1", "u", "away", "{\"a\":1}", 0, &ev);
    assert_string_equal(ev.v[0].status, "away");
    assert_string_equal(ev.v[0].metadata, "{\"a\":1}");
    render(&ev);
    assert_int_equal(pres_state_status(ps, "s1", "away", NULL, 1, &ev), PRES_OK);
    assert_string_equal(render(&ev), "");
    assert_int_equal(pres_state_status(ps, "s1", "busy", NULL, 2, &ev), PRES_OK);
    assert_string_equal(ev.v[0].prev_status, "away");
    assert_string_equal(ev.v[0].metadata, "{\"a\":1}");
    assert_string_equal(render(&ev), "upd:u");
    assert_int_equal(pres_state_status(ps, "zz", "busy", NULL, 2, &ev), PRES_ERR_NO_SOCKET);
    assert_int_equal(pres_state_touch(ps, "s1", 50), PRES_OK);
    pres_user_view v;
    pres_state_user(ps, "u", &v);
    assert_int_equal(v.last_seen, 50);
    assert_string_equal(v.status, "busy");
    /* Assert registers silently, rooms included. */
    const char *rooms[] = {"r1", "r2"};
    assert_int_equal(pres_state_assert(ps, "t1", "w", "dnd", NULL, rooms, 2, 60), PRES_OK);
    assert_string_equal(render(&ev), "");
    pres_state_user(ps, "w", &v);
    assert_true(v.online);
    assert_string_equal(v.status, "dnd");
    const char *ids[2];
    assert_int_equal(pres_state_room(ps, "r2", ids, 2), 1);
    /* Shutdown: everyone offline. */
    assert_int_equal(pres_state_close_all(ps, 70, &ev), PRES_OK);
    assert_int_equal(ev.n, 4);
    /* Users are closed in no particular order; each user's own events are in order. */
    const char *all = render(&ev);
    assert_non_null(strstr(all, "off:u"));
    assert_non_null(strstr(all, "leave:w:r1 leave:w:r2 off:w"));
    pres_state_free(ps);
}

static void test_colliding_ids(void **state)
{
    (void)state;
    pres_state *ps = pres_state_new(5, 0, 60);
    pres_events ev = {0};
    static const char *const ids[] = {"u1", "u1:sockets", "u1}", "{u1}", "a b", "\xc3\xa9"};
    char sid[8];
    for (size_t i = 0; i < 6; i++) {
        snprintf(sid, sizeof(sid), "s%zu", i);
        pres_state_open(ps, sid, ids[i], NULL, NULL, 1, &ev);
        pres_state_join(ps, sid, ids[(i + 1) % 6], 1, &ev);
    }
    assert_int_equal(ev.n, 12);
    render(&ev);
    pres_state_close(ps, "s0", true, 2, &ev);
    assert_string_equal(render(&ev), "leave:u1:u1:sockets off:u1");
    for (size_t i = 1; i < 6; i++) {
        pres_user_view v;
        pres_state_user(ps, ids[i], &v);
        assert_true(v.online);
        assert_int_equal(v.sockets, 1);
    }
    pres_state_free(ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_tab),     cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_grace),         cmocka_unit_test(test_status_and_assert),
        cmocka_unit_test(test_colliding_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
