/* The Engine.IO session state machine on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/eio_session.h"

static const eio_limits lim = {
    .ping_interval = 300, .ping_timeout = 200, .max_payload = 1000, .send_queue_max = 3};

static eio_packet pkt(eio_type type, const char *data)
{
    return (eio_packet){.type = type, .data = (const uint8_t *)data, .len = strlen(data)};
}

static void drain_text(eio_session *s, char *out, size_t cap)
{
    buf b;
    buf_init(&b);
    assert_int_equal(eio_session_drain_payload(s, &b), 0);
    assert_true(b.len < cap);
    memcpy(out, b.data ? (char *)b.data : "", b.len);
    out[b.len] = 0;
    buf_deinit(&b);
}

static void test_heartbeat(void **state)
{
    (void)state;
    eio_session s;
    eio_session_init(&s, "AAAAAAAAAAAAAAAAAAAA", EIO_TRANSPORT_WEBSOCKET, &lim, 1000);
    assert_string_equal(s.sid, "AAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(eio_session_tick(&s, 1299), EIO_TICK_NONE);
    assert_int_equal(s.out.count, 0);
    assert_int_equal(eio_session_tick(&s, 1300), EIO_TICK_PING);
    char out[64];
    drain_text(&s, out, sizeof(out));
    assert_string_equal(out, "2");
    /* Waiting for the pong: the deadline is pingTimeout after the ping. */
    assert_int_equal(s.deadline, 1500);
    assert_int_equal(eio_session_tick(&s, 1499), EIO_TICK_NONE);
    eio_packet pong = pkt(EIO_PONG, "");
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &pong, 1400), EIO_RX_NONE);
    assert_false(s.awaiting_pong);
    assert_int_equal(s.deadline, 1700);
    assert_int_equal(eio_session_tick(&s, 1700), EIO_TICK_PING);
    assert_int_equal(eio_session_tick(&s, 1899), EIO_TICK_NONE);
    assert_int_equal(eio_session_tick(&s, 1900), EIO_TICK_TIMEOUT);
    eio_session_deinit(&s);
}

/* fq keeps FIFO order with frames pushed at the front, across ring wrap-around and growth. */
static void test_fq_front_and_back(void **state)
{
    (void)state;
    fq q;
    fq_init(&q);
    frame *f[8];
    for (size_t i = 0; i < 8; i++)
        f[i] = frame_new(EIO_MESSAGE, false, 0);
    assert_int_equal(fq_push_front(&q, f[0]), 0); /* into an empty queue */
    assert_int_equal(fq_push(&q, f[1], 100, UINT32_MAX), 0);
    assert_int_equal(fq_push(&q, f[2], 100, UINT32_MAX), 0);
    frame_unref(fq_pop(&q));                                 /* f0; head moves on */
    assert_int_equal(fq_push_front(&q, f[3]), 0);            /* 3 1 2 */
    assert_int_equal(fq_push(&q, f[4], 100, UINT32_MAX), 0); /* 3 1 2 4: full at cap 4 */
    assert_int_equal(fq_push_front(&q, f[5]), 0);            /* grows: 5 3 1 2 4 */
    assert_int_equal(fq_push(&q, f[6], 100, UINT32_MAX), 0);
    assert_int_equal(fq_push_front(&q, f[7]), 0);
    const int want[] = {7, 5, 3, 1, 2, 4, 6};
    for (size_t i = 0; i < 7; i++) {
        frame *got = fq_pop(&q);
        assert_ptr_equal(got, f[want[i]]);
        frame_unref(got);
    }
    assert_null(fq_pop(&q));
    fq_deinit(&q);
    for (size_t i = 0; i < 8; i++)
        frame_unref(f[i]);
}

/* A ping jumps the queue: behind queued messages (even a full queue) it is sent first. */
static void test_ping_jumps_queue(void **state)
{
    (void)state;
    eio_session s;
    eio_session_init(&s, "CCCCCCCCCCCCCCCCCCCC", EIO_TRANSPORT_WEBSOCKET, &lim, 0);
    const char *msgs[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        frame *f = frame_from(EIO_MESSAGE, false, msgs[i], 1);
        assert_int_equal(eio_session_send(&s, f), 0);
        frame_unref(f);
    }
    frame *extra = frame_from(EIO_MESSAGE, false, "d", 1);
    assert_int_equal(eio_session_send(&s, extra), -1); /* send_queue_max = 3 */
    frame_unref(extra);
    assert_int_equal(eio_session_tick(&s, 300), EIO_TICK_PING);
    assert_int_equal(s.out.count, 4);
    char out[64];
    drain_text(&s, out, sizeof(out));
    assert_string_equal(out, "2\x1e"
                             "4a\x1e"
                             "4b\x1e"
                             "4c");
    eio_session_deinit(&s);
}

static void test_upgrade(void **state)
{
    (void)state;
    eio_session s;
    eio_session_init(&s, "BBBBBBBBBBBBBBBBBBBB", EIO_TRANSPORT_POLLING, &lim, 0);
    eio_packet msg = pkt(EIO_MESSAGE, "hello");
    eio_packet probe = pkt(EIO_PING, "probe");
    eio_packet upgrade = pkt(EIO_UPGRADE, "");
    /* An upgrade before the probe, or a message on the probing WebSocket, is a violation. */
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &upgrade, 1), EIO_RX_ERROR);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &msg, 1), EIO_RX_ERROR);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_POLLING, &msg, 1), EIO_RX_MESSAGE);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &probe, 2), EIO_RX_PROBE);
    assert_int_equal(s.upgrade, EIO_UPGRADE_PROBED);
    /* Polling keeps working until the upgrade completes. */
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_POLLING, &msg, 3), EIO_RX_MESSAGE);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &probe, 3), EIO_RX_ERROR);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &upgrade, 4),
                     EIO_RX_UPGRADED);
    assert_int_equal(s.transport, EIO_TRANSPORT_WEBSOCKET);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_POLLING, &msg, 5), EIO_RX_ERROR);
    assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &msg, 5), EIO_RX_MESSAGE);
    eio_session_deinit(&s);
}

static void test_receive_types(void **state)
{
    (void)state;
    static const struct {
        eio_type type;
        eio_rx want;
    } cases[] = {
        {EIO_OPEN, EIO_RX_ERROR}, {EIO_CLOSE, EIO_RX_CLOSE},     {EIO_PING, EIO_RX_ERROR},
        {EIO_PONG, EIO_RX_NONE},  {EIO_MESSAGE, EIO_RX_MESSAGE}, {EIO_UPGRADE, EIO_RX_ERROR},
        {EIO_NOOP, EIO_RX_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        eio_session s;
        eio_session_init(&s, "CCCCCCCCCCCCCCCCCCCC", EIO_TRANSPORT_WEBSOCKET, &lim, 0);
        eio_packet p = pkt(cases[i].type, "");
        assert_int_equal(eio_session_receive(&s, EIO_TRANSPORT_WEBSOCKET, &p, 1), cases[i].want);
        eio_session_deinit(&s);
    }
}

static void test_queue_limit_and_payload(void **state)
{
    (void)state;
    eio_session s;
    eio_session_init(&s, "DDDDDDDDDDDDDDDDDDDD", EIO_TRANSPORT_POLLING, &lim, 0);
    frame *a = frame_from(EIO_MESSAGE, false, "a", 1);
    frame *b = frame_from(EIO_MESSAGE, true, "\x01\x02\x03\x04", 4);
    assert_int_equal(eio_session_send(&s, a), 0);
    assert_int_equal(eio_session_send(&s, b), 0);
    assert_int_equal(eio_session_send(&s, a), 0);
    /* send_queue_max = 3: the fourth is refused (a slow reader). */
    assert_int_equal(eio_session_send(&s, a), -1);
    assert_int_equal(a->refs, 3);
    char out[64];
    drain_text(&s, out, sizeof(out));
    assert_string_equal(out, "4a\x1e"
                             "bAQIDBA==\x1e"
                             "4a");
    assert_int_equal(a->refs, 1);
    assert_int_equal(s.out.count, 0);
    frame_unref(a);
    frame_unref(b);
    eio_session_deinit(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat),        cmocka_unit_test(test_fq_front_and_back),
        cmocka_unit_test(test_ping_jumps_queue), cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_receive_types),    cmocka_unit_test(test_queue_limit_and_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
