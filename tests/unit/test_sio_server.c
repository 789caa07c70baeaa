/* The Socket.IO server core driven with Engine.IO packets on a fake clock, with fake io hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/sio_server.h"

typedef struct fake_io {
    int wakes;
    int bulk_wakes; /* wakes for a broadcast frame */
    int closes;
    const char *close_reason;
    int next_id;
} fake_io;

static fake_io io;

static void fake_wake(sio_conn *c, void *h, bool bulk)
{
    (void)c, (void)h;
    io.wakes++;
    io.bulk_wakes += bulk;
}

static void fake_close(sio_conn *c, void *h, const char *reason)
{
    (void)c, (void)h;
    io.closes++;
    io.close_reason = reason;
}

static void fake_id(char out[SIO_ID_LEN + 1], void *ud)
{
    (void)ud;
    snprintf(out, SIO_ID_LEN + 1, "id%018d", io.next_id++);
}

static const sio_io_ops ops = {.wake = fake_wake, .close = fake_close, .make_id = fake_id};
static const char *const nsps[] = {"/custom", NULL};

static sio_server *server(uint32_t queue_max)
{
    memset(&io, 0, sizeof(io));
    sio_server_opts o = {.namespaces = nsps,
                         .limits = {.ping_interval = 300,
                                    .ping_timeout = 200,
                                    .max_payload = 1000,
                                    .send_queue_max = queue_max},
                         .connect_timeout = 1000,
                         .attachment_timeout = 500,
                         .hash_seed = 1};
    sio_server *srv = sio_server_new(&o, &ops);
    assert_non_null(srv);
    return srv;
}

static int feed(sio_conn *c, const char *text, uint64_t now)
{
    eio_packet p = {.type = EIO_MESSAGE, .data = (const uint8_t *)text, .len = strlen(text)};
    const char *reason = NULL;
    return sio_conn_receive(c, &p, now, &reason);
}

static int feed_binary(sio_conn *c, const void *data, size_t len, uint64_t now)
{
    eio_packet p = {.type = EIO_MESSAGE, .binary = true, .data = data, .len = len};
    const char *reason = NULL;
    return sio_conn_receive(c, &p, now, &reason);
}

/* Pop the next queued frame as "<eio type digit><payload>" (binary: "b" + length). */
static const char *next_out(sio_conn *c)
{
    static char text[512];
    frame *f = fq_pop(&sio_conn_session(c)->out);
    if (!f)
        return NULL;
    if (f->binary)
        snprintf(text, sizeof(text), "b%u", f->len);
    else
        snprintf(text, sizeof(text), "%c%.*s", '0' + f->type, (int)f->len,
                 (const char *)frame_payload(f));
    frame_unref(f);
    return text;
}

/* ---- handlers used by the tests ---- */

static int connected, disconnected, events;
static char last_args[256];
static unsigned last_natt;

static void on_connected(sio_sock *s, cJSON *auth, void *ud)
{
    (void)ud;
    connected++;
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, auth ? cJSON_Duplicate(auth, 1) : cJSON_CreateObject());
    sio_emit(s, "auth", args, NULL);
    cJSON_Delete(args);
}

static void on_disconnect(sio_sock *s, const char *reason, void *ud)
{
    (void)s, (void)reason, (void)ud;
    disconnected++;
}

static void on_echo(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                    int64_t ack_id, void *ud)
{
    (void)event, (void)ud;
    events++;
    char *json = cJSON_PrintUnformatted(args);
    snprintf(last_args, sizeof(last_args), "%s", json);
    cJSON_free(json);
    last_natt = bin ? bin->n : 0;
    if (ack_id != SIO_NO_ACK)
        sio_ack(s, ack_id, args, bin);
    else
        sio_emit(s, "echo-back", args, bin);
}

static int reject_all(sio_sock *s, cJSON *auth, const char **reject, void *ud)
{
    (void)s, (void)auth, (void)ud;
    *reject = "unauthorized";
    return -1;
}

static void reset_counters(void)
{
    connected = disconnected = events = 0;
    last_args[0] = 0;
    last_natt = 0;
}

static sio_conn *connected_conn(sio_server *srv, const char *sid)
{
    sio_conn *c = sio_conn_new(srv, sid, EIO_TRANSPORT_WEBSOCKET, NULL, 0);
    assert_non_null(c);
    assert_int_equal(feed(c, "0", 1), 0);
    assert_non_null(next_out(c)); /* CONNECT reply */
    return c;
}

static void test_connect(void **state)
{
    (void)state;
    reset_counters();
    sio_server *srv = server(100);
    sio_server_on_connected(srv, on_connected, NULL);
    sio_server_on_disconnect(srv, on_disconnect, NULL);
    sio_conn *c = sio_conn_new(srv, "AAAAAAAAAAAAAAAAAAAA", EIO_TRANSPORT_WEBSOCKET, NULL, 0);
    assert_ptr_equal(sio_server_find(srv, "AAAAAAAAAAAAAAAAAAAA", 20), c);
    assert_int_equal(feed(c, "0{\"token\":\"123\"}", 1), 0);
    assert_string_equal(next_out(c), "40{\"sid\":\"id000000000000000000\"}");
    assert_string_equal(next_out(c), "42[\"auth\",{\"token\":\"123\"}]");
    assert_int_equal(feed(c, "0/custom,", 2), 0);
    assert_string_equal(next_out(c), "40/custom,{\"sid\":\"id000000000000000001\"}");
    assert_string_equal(next_out(c), "42/custom,[\"auth\",{}]");
    assert_int_equal(feed(c, "0/nope,", 3), 0);
    assert_string_equal(next_out(c), "44/nope,{\"message\":\"Invalid namespace\"}");
    assert_int_equal(connected, 2);
    assert_int_equal(feed(c, "1/custom,", 4), 0);
    assert_int_equal(disconnected, 1);
    /* An event for the namespace just left closes the connection. */
    assert_int_equal(feed(c, "2/custom,[\"x\"]", 5), -1);
    sio_conn_free(c, "test");
    assert_int_equal(disconnected, 2);
    assert_null(sio_server_find(srv, "AAAAAAAAAAAAAAAAAAAA", 20));
    sio_server_free(srv);
}

static void test_reject(void **state)
{
    (void)state;
    reset_counters();
    sio_server *srv = server(100);
    sio_server_on_connect(srv, reject_all, NULL);
    sio_server_on_connected(srv, on_connected, NULL);
    sio_server_on_disconnect(srv, on_disconnect, NULL);
    sio_conn *c = sio_conn_new(srv, "BBBBBBBBBBBBBBBBBBBB", EIO_TRANSPORT_WEBSOCKET, NULL, 0);
    assert_int_equal(feed(c, "0", 1), 0);
    assert_string_equal(next_out(c), "44{\"message\":\"unauthorized\"}");
    assert_null(next_out(c));
    assert_int_equal(connected, 0);
    /* Still not connected: an event is a violation. */
    assert_int_equal(feed(c, "2[\"x\"]", 2), -1);
    sio_conn_free(c, "test");
    assert_int_equal(disconnected, 0);
    sio_server_free(srv);
}

static sio_sock *held_sock;

static int hold_all(sio_sock *s, cJSON *auth, const char **reject, void *ud)
{
    (void)auth, (void)reject, (void)ud;
    held_sock = s;
    return SIO_CONNECT_HOLD;
}

/* A held CONNECT: nothing is answered (not even a repeated CONNECT) until the socket is
 * released; then the reply, then the connected hook (auth NULL). A held socket that goes away
 * still gets its disconnect hook. */
static void test_connect_held(void **state)
{
    (void)state;
    reset_counters();
    sio_server *srv = server(100);
    sio_server_on_connect(srv, hold_all, NULL);
    sio_server_on_connected(srv, on_connected, NULL);
    sio_server_on_disconnect(srv, on_disconnect, NULL);
    sio_conn *c = sio_conn_new(srv, "HHHHHHHHHHHHHHHHHHHH", EIO_TRANSPORT_WEBSOCKET, NULL, 0);
    assert_int_equal(feed(c, "0{\"token\":\"123\"}", 1), 0);
    assert_null(next_out(c));
    assert_int_equal(feed(c, "0", 2), 0);
    assert_null(next_out(c));
    assert_int_equal(connected, 0);
    /* What is sent to a held socket waits for its CONNECT reply. */
    assert_int_equal(sio_emit(held_sock, "early", NULL, NULL), 0);
    assert_null(next_out(c));
    assert_int_equal(sio_sock_release(held_sock), 0);
    assert_string_equal(next_out(c), "40{\"sid\":\"id000000000000000000\"}");
    assert_string_equal(next_out(c), "42[\"early\"]");
    assert_string_equal(next_out(c), "42[\"auth\",{}]");
    assert_int_equal(connected, 1);
    assert_int_equal(sio_sock_release(held_sock), 0); /* released once */
    assert_null(next_out(c));
    assert_int_equal(feed(c, "0/custom,", 3), 0);
    assert_null(next_out(c));
    sio_conn_free(c, "test");
    assert_int_equal(disconnected, 2);
    assert_int_equal(connected, 1);
    sio_server_free(srv);
}

static void test_events_and_acks(void **state)
{
    (void)state;
    reset_counters();
    sio_server *srv = server(100);
    assert_int_equal(sio_server_on(srv, "message", on_echo, NULL), 0);
    sio_conn *c = connected_conn(srv, "CCCCCCCCCCCCCCCCCCCC");
    assert_int_equal(feed(c, "2[\"message\",1,\"2\",{\"3\":[true]}]", 2), 0);
    assert_string_equal(last_args, "[1,\"2\",{\"3\":[true]}]");
    assert_string_equal(next_out(c), "42[\"echo-back\",1,\"2\",{\"3\":[true]}]");
    assert_int_equal(feed(c, "2456[\"message\",false]", 3), 0);
    assert_string_equal(next_out(c), "43456[false]");
    /* An event nobody handles is ignored. */
    assert_int_equal(feed(c, "2[\"unknown\"]", 4), 0);
    assert_null(next_out(c));
    assert_int_equal(events, 2);
    /* Invalid packets close the connection. */
    static const char *const bad[] = {"abc", "2{}", "2[]", "2[{}]", "2[\"connect\"]", "9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(feed(c, bad[i], 5), -1);
    sio_conn_free(c, "test");
    sio_server_free(srv);
}

static int server_acks;
static char server_ack_args[64];

static void on_client_answer(sio_sock *s, cJSON *args, const sio_binary *bin, void *ud)
{
    (void)s, (void)bin, (void)ud;
    server_acks++;
    if (args) {
        char *json = cJSON_PrintUnformatted(args);
        snprintf(server_ack_args, sizeof(server_ack_args), "%s", json);
        cJSON_free(json);
    } else {
        snprintf(server_ack_args, sizeof(server_ack_args), "gone");
    }
}

static sio_sock *captured;

static void capture(sio_sock *s, cJSON *auth, void *ud)
{
    (void)auth, (void)ud;
    captured = s;
}

static void test_server_to_client_ack(void **state)
{
    (void)state;
    server_acks = 0;
    sio_server *srv = server(100);
    sio_server_on_connected(srv, capture, NULL);
    sio_conn *c = connected_conn(srv, "DDDDDDDDDDDDDDDDDDDD");
    cJSON *args = cJSON_Parse("[7]");
    assert_int_equal(sio_emit_with_ack(captured, "q", args, NULL, on_client_answer, NULL), 0);
    assert_int_equal(sio_emit_with_ack(captured, "q", args, NULL, on_client_answer, NULL), 0);
    cJSON_Delete(args);
    assert_string_equal(next_out(c), "420[\"q\",7]");
    assert_string_equal(next_out(c), "421[\"q\",7]");
    assert_int_equal(feed(c, "30[\"yes\"]", 2), 0);
    assert_int_equal(server_acks, 1);
    assert_string_equal(server_ack_args, "[\"yes\"]");
    /* An unknown or repeated ack id is ignored. */
    assert_int_equal(feed(c, "30[\"again\"]", 3), 0);
    assert_int_equal(server_acks, 1);
    /* The unanswered one is failed when the socket goes. */
    sio_conn_free(c, "test");
    assert_int_equal(server_acks, 2);
    assert_string_equal(server_ack_args, "gone");
    sio_server_free(srv);
}

static void test_binary(void **state)
{
    (void)state;
    reset_counters();
    sio_server *srv = server(100);
    sio_server_on(srv, "message", on_echo, NULL);
    sio_conn *c = connected_conn(srv, "EEEEEEEEEEEEEEEEEEEE");
    assert_int_equal(feed(c,
                          "52-[\"message\",{\"_placeholder\":true,\"num\":0},"
                          "{\"_placeholder\":true,\"num\":1}]",
                          2),
                     0);
    assert_int_equal(events, 0);
    assert_int_equal(feed_binary(c, "\x01\x02\x03", 3, 3), 0);
    assert_int_equal(events, 0);
    assert_int_equal(feed_binary(c, "\x04\x05", 2, 4), 0);
    assert_int_equal(events, 1);
    assert_int_equal(last_natt, 2);
    assert_string_equal(next_out(c), "452-[\"echo-back\",{\"_placeholder\":true,\"num\":0},"
                                     "{\"_placeholder\":true,\"num\":1}]");
    assert_string_equal(next_out(c), "b3");
    assert_string_equal(next_out(c), "b2");
    /* A binary message nobody waits for, or text while attachments are due, is a violation. */
    assert_int_equal(feed_binary(c, "x", 1, 5), -1);
    assert_int_equal(feed(c, "51-[\"message\",{\"_placeholder\":true,\"num\":0}]", 6), 0);
    assert_int_equal(feed(c, "2[\"message\"]", 7), -1);
    sio_conn_free(c, "test");
    sio_server_free(srv);
}

static void test_timeouts(void **state)
{
    (void)state;
    sio_server *srv = server(100);
    const char *reason = NULL;
    sio_conn *c = sio_conn_new(srv, "FFFFFFFFFFFFFFFFFFFF", EIO_TRANSPORT_WEBSOCKET, NULL, 0);
    /* The ping (at 300) comes before the connect deadline (1000); sending it closes nothing. */
    assert_int_equal(sio_conn_deadline(c), 300);
    assert_false(sio_conn_expiring(c, 300));
    assert_int_equal(sio_conn_tick(c, 300, &reason), 0);
    assert_string_equal(next_out(c), "2");
    /* Awaiting the pong (ping_timeout 200): the deadline at 500 would close. */
    assert_false(sio_conn_expiring(c, 499));
    assert_true(sio_conn_expiring(c, 500));
    assert_int_equal(sio_conn_deadline(c), 500);
    eio_packet pong = {.type = EIO_PONG};
    eio_session_receive(sio_conn_session(c), EIO_TRANSPORT_WEBSOCKET, &pong, 400);
    assert_false(sio_conn_expiring(c, 500));
    assert_int_equal(sio_conn_deadline(c), 700);
    assert_int_equal(sio_conn_tick(c, 999, &reason), 0);
    assert_string_equal(next_out(c), "2");
    assert_int_equal(sio_conn_deadline(c), 1000);
    assert_false(sio_conn_expiring(c, 999));
    assert_true(sio_conn_expiring(c, 1000)); /* no CONNECT in time */
    assert_int_equal(sio_conn_tick(c, 1000, &reason), -1);
    assert_non_null(strstr(reason, "CONNECT"));
    sio_conn_free(c, "test");

    c = connected_conn(srv, "GGGGGGGGGGGGGGGGGGGG");
    assert_int_equal(feed(c, "51-[\"message\",{\"_placeholder\":true,\"num\":0}]", 100), 0);
    assert_int_equal(sio_conn_deadline(c), 300);
    assert_int_equal(sio_conn_tick(c, 300, &reason), 0);
    next_out(c);
    eio_session_receive(sio_conn_session(c), EIO_TRANSPORT_WEBSOCKET, &pong, 400);
    /* attachment_timeout = 500 after the packet at 100 */
    assert_int_equal(sio_conn_deadline(c), 600);
    assert_false(sio_conn_expiring(c, 599));
    assert_true(sio_conn_expiring(c, 600));
    assert_int_equal(sio_conn_tick(c, 600, &reason), -1);
    assert_non_null(strstr(reason, "attachments"));
    sio_conn_free(c, "test");
    sio_server_free(srv);
}

static sio_sock *socks[3];
static int nsocks;

static void collect(sio_sock *s, cJSON *auth, void *ud)
{
    (void)auth, (void)ud;
    socks[nsocks++] = s;
}

static void test_groups_and_broadcast(void **state)
{
    (void)state;
    sio_server *srv = server(2);
    nsocks = 0;
    sio_server_on_connected(srv, collect, NULL);
    sio_conn *c[3];
    const char *sids[3] = {"HHHHHHHHHHHHHHHHHHH1", "HHHHHHHHHHHHHHHHHHH2", "HHHHHHHHHHHHHHHHHHH3"};
    for (int i = 0; i < 3; i++)
        c[i] = connected_conn(srv, sids[i]);
    assert_int_equal(nsocks, 3);
    assert_int_equal(sio_group_join(socks[0], "room"), 0);
    assert_int_equal(sio_group_join(socks[1], "room"), 0);
    assert_int_equal(sio_group_join(socks[1], "room"), 0); /* idempotent */
    assert_int_equal(sio_group_size(srv, "/", "room"), 2);
    assert_true(sio_group_has(socks[1], "room"));
    assert_false(sio_group_has(socks[2], "room"));
    int wakes = io.wakes, bulk = io.bulk_wakes;
    assert_int_equal(sio_broadcast(srv, "/", "room", "hi", NULL), 2);
    /* io learns that these frames are a broadcast's: it may write them later, together. */
    assert_int_equal(io.wakes - wakes, 2);
    assert_int_equal(io.bulk_wakes - bulk, 2);
    /* One frame, shared by both queues. */
    frame *f0 = fq_peek(&sio_conn_session(c[0])->out);
    assert_ptr_equal(f0, fq_peek(&sio_conn_session(c[1])->out));
    assert_int_equal(f0->refs, 2);
    assert_string_equal(next_out(c[0]), "42[\"hi\"]");
    assert_null(next_out(c[2]));
    /* Several groups: each socket once, however many of the groups it is in. */
    assert_string_equal(next_out(c[1]), "42[\"hi\"]");
    assert_int_equal(sio_group_join(socks[0], "other"), 0);
    const char *const groups[] = {"room", "other", "nobody"};
    bulk = io.bulk_wakes;
    assert_int_equal(sio_broadcast_groups(srv, "/", groups, 3, "multi", NULL), 2);
    assert_int_equal(io.bulk_wakes - bulk, 2);
    assert_string_equal(next_out(c[0]), "42[\"multi\"]");
    assert_null(next_out(c[0]));
    assert_string_equal(next_out(c[1]), "42[\"multi\"]");
    assert_null(next_out(c[2]));
    sio_group_leave(socks[0], "other");
    sio_group_leave(socks[0], "room");
    assert_int_equal(sio_group_size(srv, "/", "room"), 1);
    assert_int_equal(sio_broadcast(srv, "/", NULL, "all", NULL), 3);
    assert_int_equal(sio_broadcast(srv, "/", NULL, "all", NULL), 3);
    /* Every queue now holds two frames, the limit: the next one marks them slow readers. */
    io.closes = 0;
    assert_string_equal(next_out(c[0]), "42[\"all\"]");
    assert_int_equal(sio_broadcast(srv, "/", NULL, "all", NULL), 1);
    assert_int_equal(io.closes, 2);
    assert_string_equal(io.close_reason, "send queue full");
    for (int i = 0; i < 3; i++)
        sio_conn_free(c[i], "test");
    assert_int_equal(sio_group_size(srv, "/", "room"), 0);
    assert_int_equal(sio_group_size(srv, "/", NULL), 0);
    sio_server_free(srv);
}

static void test_engineio_echo(void **state)
{
    (void)state;
    memset(&io, 0, sizeof(io));
    sio_server_opts o = {.limits = {.ping_interval = 300,
                                    .ping_timeout = 200,
                                    .max_payload = 1000,
                                    .send_queue_max = 10},
                         .engineio_echo = true};
    sio_server *srv = sio_server_new(&o, &ops);
    sio_conn *c = sio_conn_new(srv, "IIIIIIIIIIIIIIIIIIII", EIO_TRANSPORT_WEBSOCKET, NULL, 0);
    /* No Socket.IO in this mode: anything is echoed, and there is no connect deadline. */
    assert_int_equal(feed(c, "not socket.io", 1), 0);
    assert_string_equal(next_out(c), "4not socket.io");
    assert_int_equal(feed_binary(c, "\x01\x02", 2, 2), 0);
    assert_string_equal(next_out(c), "b2");
    assert_int_equal(sio_conn_deadline(c), 300);
    sio_conn_free(c, "test");
    sio_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_connect_held),
        cmocka_unit_test(test_events_and_acks),
        cmocka_unit_test(test_server_to_client_ack),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_groups_and_broadcast),
        cmocka_unit_test(test_engineio_echo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
