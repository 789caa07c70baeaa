/* Presence events: the JSON form round-trips, the Redis stream's form reads as the same events,
 * bad input is refused, client payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/pres_event.h"

static void test_round_trip(void **state)
{
    (void)state;
    pres_event ev;
    pres_event_init(&ev, PRES_EV_OFFLINE);
    assert_int_equal(pres_event_set(&ev.user, "u1:sockets \xc3\xa9"), 0);
    assert_int_equal(pres_event_set(&ev.socket, "AAAAAAAAAAAAAAAAAAAA"), 0);
    assert_int_equal(pres_event_set(&ev.metadata, "{\"team\":\"a\",\"n\":9007199254740991}"), 0);
    ev.last_seen = 1700000000123;
    ev.at = 1700000000124;
    assert_int_equal(pres_event_add_room(&ev, "doc:1"), 0);
    assert_int_equal(pres_event_add_room(&ev, "{x}"), 0);
    char *json = pres_event_encode(&ev);
    assert_non_null(json);
    pres_event back;
    assert_int_equal(pres_event_decode(json, strlen(json), &back), 0);
    assert_int_equal(back.type, PRES_EV_OFFLINE);
    assert_string_equal(back.user, ev.user);
    assert_string_equal(back.socket, ev.socket);
    assert_string_equal(back.metadata, ev.metadata);
    assert_int_equal(back.last_seen, ev.last_seen);
    assert_int_equal(back.at, ev.at);
    assert_int_equal(back.nrooms, 2);
    assert_string_equal(back.rooms[1], "{x}");
    assert_null(back.room);
    free(json);
    pres_event_deinit(&back);
    pres_event_deinit(&ev);
}

static void test_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"t\":\"online\"}",                        /* no user */
        "{\"t\":\"nope\",\"u\":\"a\"}",              /* unknown type */
        "{\"t\":\"online\",\"u\":\"\"}",             /* empty id */
        "{\"t\":\"online\",\"u\":\"a\\u0001\"}",     /* control character */
        "{\"t\":\"online\",\"u\":1}",                /* wrong type */
        "{\"t\":\"room:join\",\"u\":\"a\"}",         /* room event without room */
        "{\"t\":\"online\",\"u\":\"a\",\"m\":[1]}",  /* metadata not an object */
        "{\"t\":\"online\",\"u\":\"a\",\"ls\":-1}",  /* negative time */
        "{\"t\":\"online\",\"u\":\"a\",\"rs\":[1]}", /* room not a string */
        "{\"t\":\"online\",\"u\":\"a\"} trailing",   /* trailing garbage */
        "{\"t\":\"online\",\"u\":\"\xff\"}",         /* invalid UTF-8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pres_event ev;
        assert_int_equal(pres_event_decode(bad[i], strlen(bad[i]), &ev), -1);
    }
    /* An empty Lua table arrives as {}: no rooms, not an error. */
    const char *lua = "{\"t\":\"online\",\"u\":\"a\",\"rs\":{},\"at\":1.7e+12}";
    pres_event ev;
    assert_int_equal(pres_event_decode(lua, strlen(lua), &ev), 0);
    assert_int_equal(ev.nrooms, 0);
    assert_int_equal(ev.at, 1700000000000);
    pres_event_deinit(&ev);
}

static void test_payloads(void **state)
{
    (void)state;
    static const struct {
        pres_event_type type;
        const char *want;
    } cases[] = {
        {PRES_EV_ONLINE,
         "{\"userId\":\"u\",\"socketId\":\"S\",\"status\":\"away\",\"metadata\":{\"k\":1}}"},
        {PRES_EV_OFFLINE,
         "{\"userId\":\"u\",\"socketId\":\"S\",\"lastSeen\":42,\"seq\":\"1700000000000-3\"}"},
        {PRES_EV_ROOM_JOIN, "{\"userId\":\"u\",\"room\":\"r\"}"},
        {PRES_EV_ROOM_LEAVE, "{\"userId\":\"u\",\"room\":\"r\",\"seq\":\"1700000000000-3\"}"},
        {PRES_EV_UPDATE, "{\"userId\":\"u\",\"status\":\"away\",\"metadata\":{\"k\":1}}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pres_event ev;
        pres_event_init(&ev, cases[i].type);
        pres_event_set(&ev.user, "u");
        pres_event_set(&ev.socket, "S");
        pres_event_set(&ev.room, "r");
        pres_event_set(&ev.status, "away");
        pres_event_set(&ev.metadata, "{\"k\":1}");
        ev.last_seen = 42;
        snprintf(ev.id, sizeof(ev.id), "%s", i % 2 ? "1700000000000-3" : "");
        cJSON *p = pres_event_payload(&ev);
        char *text = cJSON_PrintUnformatted(p);
        assert_string_equal(text, cases[i].want);
        cJSON_free(text);
        cJSON_Delete(p);
        pres_event_deinit(&ev);
    }
    assert_string_equal(pres_event_name(PRES_EV_ROOM_LEAVE), "presence:room:leave");
}

/* A reset (the first entry of a new generation of the store) names no user: the stream form
 * as the Redis scripts write it decodes with user "", encodes back without "u", and shows as
 * presence:resync {reset: true} to clients and as a "reset" to the HTTP API. */
static void test_reset(void **state)
{
    (void)state;
    const char *lua = "{\"t\":\"reset\",\"at\":1700000000000}";
    pres_event ev;
    assert_int_equal(pres_event_decode(lua, strlen(lua), &ev), 0);
    assert_int_equal(ev.type, PRES_EV_RESET);
    assert_string_equal(ev.user, "");
    assert_int_equal(ev.at, 1700000000000);
    snprintf(ev.id, sizeof(ev.id), "1700000000000-0");
    char *json = pres_event_encode(&ev);
    assert_non_null(json);
    assert_null(strstr(json, "\"u\""));
    pres_event back;
    assert_int_equal(pres_event_decode(json, strlen(json), &back), 0);
    assert_int_equal(back.type, PRES_EV_RESET);
    free(json);
    pres_event_deinit(&back);

    cJSON *p = pres_event_payload(&ev);
    char *text = cJSON_PrintUnformatted(p);
    assert_string_equal(text, "{\"reset\":true,\"seq\":\"1700000000000-0\"}");
    cJSON_free(text);
    cJSON_Delete(p);
    p = pres_event_public(&ev);
    text = cJSON_PrintUnformatted(p);
    assert_string_equal(text, "{\"id\":\"1700000000000-0\",\"type\":\"reset\",\"reason\":"
                              "\"store_empty\",\"at\":1700000000000}");
    cJSON_free(text);
    cJSON_Delete(p);
    assert_string_equal(pres_event_name(PRES_EV_RESET), "presence:resync");
    assert_string_equal(pres_event_public_type(PRES_EV_RESET), "reset");
    assert_null(pres_event_public_type(PRES_EV_DISCONNECT));
    pres_event_deinit(&ev);

    /* A reset with a user (no writer makes one) still names none: it encodes without one, so
     * what is decoded again is the same event. */
    const char *with_user = "{\"t\":\"reset\",\"u\":\"e\"}";
    assert_int_equal(pres_event_decode(with_user, strlen(with_user), &ev), 0);
    assert_string_equal(ev.user, "");
    pres_event_deinit(&ev);
    /* A NUL cuts no type or id short: raw (not JSON) or escaped, the entry is refused. */
    const char nul[] = "{\"t\":\"reset\0online\",\"u\":\"e\"}";
    assert_int_equal(pres_event_decode(nul, sizeof(nul) - 1, &ev), -1);
    const char *esc = "{\"t\":\"offline\",\"u\":\"alice\\u0000x\"}";
    assert_int_equal(pres_event_decode(esc, strlen(esc), &ev), -1);

    /* Any other type still needs its user. */
    const char *bad = "{\"t\":\"offline\",\"at\":1}";
    assert_int_equal(pres_event_decode(bad, strlen(bad), &ev), -1);
}

/* pres_event_encode of the event `text` decodes to (NULL: it does not decode). */
static char *decoded_json(const char *text, size_t len)
{
    pres_event ev;
    if (pres_event_decode(text, len, &ev) < 0)
        return NULL;
    char *json = pres_event_encode(&ev);
    pres_event_deinit(&ev);
    assert_non_null(json);
    return json;
}

/* Each entry the store's functions write (lib.lua, emit) is the same event as its JSON form. */
static void test_stream_form(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"o\talice\tsAAAAAAAAAAAAAAAAAAAA", "{\"t\":\"online\",\"u\":\"alice\",\"s\":"
                                            "\"AAAAAAAAAAAAAAAAAAAA\"}"},
        {"o\tu:1 {x}\tsS\ttaway\tgdoc:1\tg{y}\tm{\"a\":\t[1, \"\\t\"]}",
         "{\"t\":\"online\",\"u\":\"u:1 {x}\",\"s\":\"S\",\"st\":\"away\",\"rs\":[\"doc:1\","
         "\"{y}\"],\"m\":{\"a\":[1,\"\\t\"]}}"},
        {"f\talice\tsS\tl1700000000123\tgr", "{\"t\":\"offline\",\"u\":\"alice\",\"s\":\"S\","
                                             "\"ls\":1700000000123,\"rs\":[\"r\"]}"},
        {"j\t\xc3\xa9\trdoc\tm{}", "{\"t\":\"room:join\",\"u\":\"\xc3\xa9\",\"r\":\"doc\","
                                   "\"m\":{}}"},
        {"l\talice\trdoc\ttbusy", "{\"t\":\"room:leave\",\"u\":\"alice\",\"r\":\"doc\","
                                  "\"st\":\"busy\"}"},
        {"u\talice\ttaway\tpbusy", "{\"t\":\"update\",\"u\":\"alice\",\"st\":\"away\","
                                   "\"ps\":\"busy\"}"},
        {"d\talice", "{\"t\":\"disconnect\",\"u\":\"alice\"}"},
        {"x", "{\"t\":\"reset\"}"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char *a = decoded_json(pairs[i][0], strlen(pairs[i][0]));
        char *b = decoded_json(pairs[i][1], strlen(pairs[i][1]));
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    static const char *const bad[] = {
        "z\talice",                        /* unknown tag */
        "o",                               /* no user */
        "o\t",                             /* empty user */
        "oalice",                          /* no tab after the tag */
        "x\talice",                        /* a reset names no one */
        "o\talice\t",                      /* empty field */
        "o\talice\tq1",                    /* unknown key */
        "o\talice\ts",                     /* empty socket */
        "o\talice\tsA\tsB",                /* socket twice */
        "o\talice\tl12x",                  /* lastSeen not a number */
        "o\talice\tl1\tl2",                /* lastSeen twice */
        "o\talice\tl99999999999999999",    /* lastSeen too large */
        "o\talice\ttwaytoolongforastatus", /* status too long */
        "o\talice\tm[1]",                  /* metadata not an object */
        "o\talice\tm{\"a\":1} x",          /* metadata with trailing text */
        "o\talice\tm",                     /* metadata empty */
        "j\talice",                        /* room event without room */
        "o\ta\x01",                        /* control character */
        "o\ta\n",                          /* newline */
        "o\t\xff",                         /* invalid UTF-8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pres_event ev;
        assert_int_equal(pres_event_decode(bad[i], strlen(bad[i]), &ev), -1);
    }
    /* A NUL inside a field is refused, not read as the field's end. */
    const char nul[] = "o\talice\0x\tsS";
    pres_event ev;
    assert_int_equal(pres_event_decode(nul, sizeof(nul) - 1, &ev), -1);
}

/* An event names every room its user is in, however many: the stream form of one with 1000 rooms
 * decodes, and so does one built room by room. */
static void test_many_rooms(void **state)
{
    (void)state;
    enum { N = 1000 };
    pres_event ev;
    pres_event_init(&ev, PRES_EV_OFFLINE);
    assert_int_equal(pres_event_set(&ev.user, "u"), 0);
    for (int i = 0; i < N; i++) {
        char room[16];
        snprintf(room, sizeof(room), "room-%d", i);
        assert_int_equal(pres_event_add_room(&ev, room), 0);
    }
    assert_int_equal(ev.nrooms, N);
    char *json = pres_event_encode(&ev);
    assert_non_null(json);
    pres_event back;
    assert_int_equal(pres_event_decode(json, strlen(json), &back), 0);
    assert_int_equal(back.nrooms, N);
    assert_string_equal(back.rooms[0], "room-0");
    assert_string_equal(back.rooms[N - 1], "room-999");
    free(json);
    pres_event_deinit(&back);
    pres_event_deinit(&ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_payloads),   cmocka_unit_test(test_reset),
        cmocka_unit_test(test_many_rooms), cmocka_unit_test(test_stream_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
