/* Unit tests for eio_codec: WebSocket messages, polling payloads, payload encoding and the
 * open packet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/eio_codec.h"

#define LIT(s) (s), (sizeof(s) - 1)

/* ---- WebSocket messages ---- */

struct ws_vec {
    const char *msg;
    size_t len;
    bool is_binary;
    int rc;
    eio_type type;
    const char *data;
    size_t data_len;
};

static const struct ws_vec ws_vectors[] = {
    {LIT("4hello"), false, EIO_OK, EIO_MESSAGE, LIT("hello")},
    {LIT("2probe"), false, EIO_OK, EIO_PING, LIT("probe")},
    {LIT("3probe"), false, EIO_OK, EIO_PONG, LIT("probe")},
    {LIT("2"), false, EIO_OK, EIO_PING, LIT("")},
    {LIT("3"), false, EIO_OK, EIO_PONG, LIT("")},
    {LIT("5"), false, EIO_OK, EIO_UPGRADE, LIT("")},
    {LIT("6"), false, EIO_OK, EIO_NOOP, LIT("")},
    {LIT("1"), false, EIO_OK, EIO_CLOSE, LIT("")},
    {LIT("0"), false, EIO_OK, EIO_OPEN, LIT("")},
    {LIT("4"), false, EIO_OK, EIO_MESSAGE, LIT("")},
    {LIT("40/custom,"), false, EIO_OK, EIO_MESSAGE, LIT("0/custom,")},
    {LIT("4caf\xc3\xa9 \xf0\x9f\x98\x80"), false, EIO_OK, EIO_MESSAGE,
     LIT("caf\xc3\xa9 \xf0\x9f\x98\x80")},
    {LIT("4a\0b"), false, EIO_OK, EIO_MESSAGE, LIT("a\0b")},
    {LIT("4a\x1e"
         "b"),
     false, EIO_OK, EIO_MESSAGE,
     LIT("a\x1e"
         "b")}, /* the separator means nothing on WebSocket */
    {LIT("\x01\x02\x03\x04"), true, EIO_OK, EIO_MESSAGE, LIT("\x01\x02\x03\x04")},
    {LIT("4hello"), true, EIO_OK, EIO_MESSAGE, LIT("4hello")},
    {LIT(""), true, EIO_OK, EIO_MESSAGE, LIT("")},
    {LIT("\xff\xfe"), true, EIO_OK, EIO_MESSAGE, LIT("\xff\xfe")},
    {LIT(""), false, EIO_ERR_EMPTY, 0, NULL, 0},
    {LIT("abc"), false, EIO_ERR_TYPE, 0, NULL, 0},
    {LIT("9"), false, EIO_ERR_TYPE, 0, NULL, 0},
    {LIT("7"), false, EIO_ERR_TYPE, 0, NULL, 0},
    {LIT("/"), false, EIO_ERR_TYPE, 0, NULL, 0},
    {LIT("bAQIDBA=="), false, EIO_ERR_TYPE, 0, NULL, 0}, /* 'b' is polling only */
    {LIT(" 4hello"), false, EIO_ERR_TYPE, 0, NULL, 0},
    {LIT("\xc3\xa9"), false, EIO_ERR_TYPE, 0, NULL, 0},
    {LIT("4\xff"), false, EIO_ERR_UTF8, 0, NULL, 0},
    {LIT("4\xc0\x80"), false, EIO_ERR_UTF8, 0, NULL, 0},
    {LIT("4\xed\xa0\x80"), false, EIO_ERR_UTF8, 0, NULL, 0},
    {LIT("4abc\xe2\x82"), false, EIO_ERR_UTF8, 0, NULL, 0},
};

/* Exact-size heap copy so that ASan reports any read past the message. */
static uint8_t *dup_exact(const void *p, size_t len)
{
    uint8_t *q = malloc(len ? len : 1);
    assert_non_null(q);
    if (len)
        memcpy(q, p, len);
    return q;
}

static void test_eio_ws_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ws_vectors) / sizeof(ws_vectors[0]); i++) {
        const struct ws_vec *v = &ws_vectors[i];
        uint8_t *msg = dup_exact(v->msg, v->len);
        eio_packet p;
        int rc = eio_packet_decode_ws(msg, v->len, v->is_binary, &p);
        if (rc != v->rc)
            fail_msg("vector %zu: rc %d (%s), expected %d", i, rc, eio_strerror(rc), v->rc);
        if (rc == EIO_OK) {
            assert_int_equal(p.type, v->type);
            assert_int_equal(p.binary, v->is_binary);
            assert_int_equal(p.len, v->data_len);
            assert_memory_equal(p.data, v->data, v->data_len);
            assert_true(p.data >= msg && p.data + p.len <= msg + v->len);
        }
        free(msg);
    }
}

/* Every strict prefix of a valid text message is a valid packet or a clean error. */
static void test_eio_ws_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(ws_vectors) / sizeof(ws_vectors[0]); i++) {
        const struct ws_vec *v = &ws_vectors[i];
        if (v->rc != EIO_OK)
            continue;
        for (size_t k = 0; k < v->len; k++) {
            uint8_t *msg = dup_exact(v->msg, k);
            eio_packet p;
            int rc = eio_packet_decode_ws(msg, k, v->is_binary, &p);
            if (k == 0 && !v->is_binary)
                assert_int_equal(rc, EIO_ERR_EMPTY);
            if (rc == EIO_OK) {
                assert_true(p.len <= k);
                assert_memory_equal(p.data, v->data, p.len);
            } else {
                assert_true(rc == EIO_ERR_EMPTY || rc == EIO_ERR_UTF8);
            }
            free(msg);
        }
    }
}

/* ---- Polling payloads ---- */

struct pkt {
    eio_type type;
    bool binary;
    const char *data;
    size_t len;
};

#define MAXP 8

struct payload_vec {
    const char *body;
    size_t len;
    size_t max_packets;
    int rc;       /* final result: 0 when every packet decodes */
    size_t npkts; /* packets returned before rc */
    struct pkt pkts[MAXP];
};

#define T(type, s)                                                                                 \
    {                                                                                              \
        (type), false, (s), sizeof(s) - 1                                                          \
    }
#define B(s)                                                                                       \
    {                                                                                              \
        EIO_MESSAGE, true, (s), sizeof(s) - 1                                                      \
    }

static const struct payload_vec payload_vectors[] = {
    {LIT("4hello\x1e"
         "bAQIDBA=="),
     16,
     0,
     2,
     {T(EIO_MESSAGE, "hello"), B("\x01\x02\x03\x04")}},
    {LIT("4hello\x1e"
         "2\x1e"
         "4world"),
     16,
     0,
     3,
     {T(EIO_MESSAGE, "hello"), T(EIO_PING, ""), T(EIO_MESSAGE, "world")}},
    {LIT("4hello"), 16, 0, 1, {T(EIO_MESSAGE, "hello")}},
    {LIT("2probe"), 16, 0, 1, {T(EIO_PING, "probe")}},
    {LIT("1"), 16, 0, 1, {T(EIO_CLOSE, "")}},
    {LIT("6"), 16, 0, 1, {T(EIO_NOOP, "")}},
    {LIT("b"), 16, 0, 1, {B("")}},
    {LIT("bAA=="), 16, 0, 1, {B("\0")}},
    {LIT("b//79\x1e"
         "b+/8="),
     16,
     0,
     2,
     {B("\xff\xfe\xfd"), B("\xfb\xff")}},
    {LIT("42[\"caf\xc3\xa9\"]\x1e"
         "3"),
     16,
     0,
     2,
     {T(EIO_MESSAGE, "2[\"caf\xc3\xa9\"]"), T(EIO_PONG, "")}},
    {LIT("4a\x1e"
         "4b"),
     2,
     0,
     2,
     {T(EIO_MESSAGE, "a"), T(EIO_MESSAGE, "b")}},
    {LIT("4a\x1e"
         "4b\x1e"
         "4c"),
     2,
     EIO_ERR_TOO_MANY,
     2,
     {T(EIO_MESSAGE, "a"), T(EIO_MESSAGE, "b")}},
    {LIT("4a"), 0, EIO_ERR_TOO_MANY, 0, {{0}}},
    {LIT(""), 16, EIO_ERR_EMPTY, 0, {{0}}},
    {LIT("\x1e"), 16, EIO_ERR_EMPTY, 0, {{0}}},
    {LIT("\x1e"
         "4a"),
     16,
     EIO_ERR_EMPTY,
     0,
     {{0}}},
    {LIT("4a\x1e"), 16, EIO_ERR_EMPTY, 1, {T(EIO_MESSAGE, "a")}},
    {LIT("4a\x1e\x1e"
         "4b"),
     16,
     EIO_ERR_EMPTY,
     1,
     {T(EIO_MESSAGE, "a")}},
    {LIT("4a\x1e"
         "bAQIDBA="),
     16,
     EIO_ERR_BASE64,
     1,
     {T(EIO_MESSAGE, "a")}},
    {LIT("bAQID!A=="), 16, EIO_ERR_BASE64, 0, {{0}}},
    {LIT("bAQIDBA==\n"), 16, EIO_ERR_BASE64, 0, {{0}}},
    {LIT("bZh=="), 16, EIO_ERR_BASE64, 0, {{0}}},
    {LIT("B AQIDBA=="), 16, EIO_ERR_TYPE, 0, {{0}}},
    {LIT("4a\x1e"
         "abc"),
     16,
     EIO_ERR_TYPE,
     1,
     {T(EIO_MESSAGE, "a")}},
    {LIT("9"), 16, EIO_ERR_TYPE, 0, {{0}}},
    {LIT("4\xff"), 16, EIO_ERR_UTF8, 0, {{0}}},
    {LIT("4ok\x1e"
         "4\xed\xa0\x80"),
     16,
     EIO_ERR_UTF8,
     1,
     {T(EIO_MESSAGE, "ok")}},
};

/* Iterates `body` (copied to an exact-size writable buffer) and checks the packets against
 * pkts[0..npkts) and the final result against rc. */
static void check_payload(const char *body, size_t len, size_t max_packets, int want_rc,
                          size_t npkts, const struct pkt *pkts, const char *what)
{
    uint8_t *copy = dup_exact(body, len);
    eio_payload_iter it;
    eio_payload_iter_init(&it, copy, len, max_packets);
    eio_packet p;
    size_t n = 0;
    int rc;
    while ((rc = eio_payload_next(&it, &p)) == 1) {
        if (n >= npkts)
            fail_msg("%s: extra packet %zu", what, n);
        assert_int_equal(p.type, pkts[n].type);
        assert_int_equal(p.binary, pkts[n].binary);
        assert_int_equal(p.len, pkts[n].len);
        assert_memory_equal(p.data, pkts[n].data, p.len);
        assert_true(p.data >= copy && p.data + p.len <= copy + len);
        n++;
    }
    if (rc != want_rc || n != npkts)
        fail_msg("%s: rc %d after %zu packets, expected %d after %zu", what, rc, n, want_rc, npkts);
    /* Exhausted or failed: the iterator stays finished. */
    assert_int_equal(eio_payload_next(&it, &p), 0);
    free(copy);
}

static void test_eio_payload_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(payload_vectors) / sizeof(payload_vectors[0]); i++) {
        const struct payload_vec *v = &payload_vectors[i];
        char what[32];
        snprintf(what, sizeof(what), "vector %zu", i);
        check_payload(v->body, v->len, v->max_packets, v->rc, v->npkts, v->pkts, what);
    }
}

/* Each valid payload split at every byte into two POST bodies. Split at a separator, the two
 * bodies are valid payloads that together hold the same packets; split elsewhere, each half
 * is decoded without crashing or reading past its end and yields a prefix of the packets or
 * an error. */
static void test_eio_payload_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(payload_vectors) / sizeof(payload_vectors[0]); i++) {
        const struct payload_vec *v = &payload_vectors[i];
        if (v->rc != 0)
            continue;
        for (size_t k = 0; k <= v->len; k++) {
            if (k < v->len && v->body[k] == EIO_SEPARATOR) {
                size_t before = 0;
                for (size_t j = 0; j < k; j++)
                    before += v->body[j] == EIO_SEPARATOR;
                char what[48];
                snprintf(what, sizeof(what), "vector %zu split at %zu", i, k);
                check_payload(v->body, k, v->max_packets, 0, before + 1, v->pkts, what);
                check_payload(v->body + k + 1, v->len - k - 1, v->max_packets, 0,
                              v->npkts - before - 1, v->pkts + before + 1, what);
                continue;
            }
            /* Strict prefix (first body) and suffix (second body). */
            const char *parts[2] = {v->body, v->body + k};
            size_t lens[2] = {k, v->len - k};
            for (int h = 0; h < 2; h++) {
                uint8_t *copy = dup_exact(parts[h], lens[h]);
                eio_payload_iter it;
                eio_payload_iter_init(&it, copy, lens[h], v->max_packets);
                eio_packet p;
                size_t n = 0;
                int rc;
                while ((rc = eio_payload_next(&it, &p)) == 1) {
                    assert_true(p.data >= copy && p.data + p.len <= copy + lens[h]);
                    if (h == 0 && !p.binary && n < v->npkts) {
                        /* A text packet cut short is a prefix of the original. */
                        assert_int_equal(p.type, v->pkts[n].type);
                        assert_true(p.len <= v->pkts[n].len);
                        assert_memory_equal(p.data, v->pkts[n].data, p.len);
                    }
                    n++;
                }
                assert_true(rc <= 0);
                assert_true(n <= v->npkts);
                free(copy);
            }
        }
    }
}

/* ---- Encoding ---- */

static void test_eio_payload_append(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    assert_int_equal(eio_payload_append(&b, EIO_MESSAGE, false, (const uint8_t *)"hello", 5), 0);
    assert_int_equal(
        eio_payload_append(&b, EIO_MESSAGE, true, (const uint8_t *)"\x01\x02\x03\x04", 4), 0);
    const char want[] = "4hello\x1e"
                        "bAQIDBA==";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);

    assert_int_equal(eio_payload_append(&b, EIO_PING, false, NULL, 0), 0);
    assert_int_equal(eio_payload_append(&b, EIO_MESSAGE, true, NULL, 0), 0);
    assert_int_equal(eio_payload_append(&b, EIO_NOOP, false, NULL, 0), 0);
    const char want2[] = "4hello\x1e"
                         "bAQIDBA==\x1e"
                         "2\x1e"
                         "b\x1e"
                         "6";
    assert_int_equal(b.len, sizeof(want2) - 1);
    assert_memory_equal(b.data, want2, b.len);

    const struct pkt pkts[] = {T(EIO_MESSAGE, "hello"), B("\x01\x02\x03\x04"), T(EIO_PING, ""),
                               B(""), T(EIO_NOOP, "")};
    check_payload((const char *)b.data, b.len, 16, 0, 5, pkts, "appended");
    buf_deinit(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* Every valid vector re-encoded with eio_payload_append gives back the same bytes. */
static void test_eio_payload_reencode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(payload_vectors) / sizeof(payload_vectors[0]); i++) {
        const struct payload_vec *v = &payload_vectors[i];
        if (v->rc != 0)
            continue;
        buf b;
        buf_init(&b);
        for (size_t n = 0; n < v->npkts; n++)
            assert_int_equal(eio_payload_append(&b, v->pkts[n].type, v->pkts[n].binary,
                                                (const uint8_t *)v->pkts[n].data, v->pkts[n].len),
                             0);
        assert_int_equal(b.len, v->len);
        assert_memory_equal(b.data, v->body, v->len);
        buf_deinit(&b);
    }
}

static void test_eio_open_json(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    assert_int_equal(eio_open_json(&b, "abc", true, 300, 200, 1000000), 0);
    const char want[] = "{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":300,"
                        "\"pingTimeout\":200,\"maxPayload\":1000000}";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);
    buf_deinit(&b);

    assert_int_equal(eio_open_json(&b, "lv_VI97HAXpY6yYWAAAC", false, 25000, 20000, 4294967295u),
                     0);
    const char want2[] = "{\"sid\":\"lv_VI97HAXpY6yYWAAAC\",\"upgrades\":[],\"pingInterval\":25000,"
                         "\"pingTimeout\":20000,\"maxPayload\":4294967295}";
    assert_int_equal(b.len, sizeof(want2) - 1);
    assert_memory_equal(b.data, want2, b.len);
    buf_deinit(&b);
}

static void test_eio_strerror(void **state)
{
    (void)state;
    static const int codes[] = {EIO_OK,       EIO_ERR_EMPTY,    EIO_ERR_TYPE, EIO_ERR_BASE64,
                                EIO_ERR_UTF8, EIO_ERR_TOO_MANY, EIO_ERR_NOMEM};
    const size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(eio_strerror(codes[i]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(eio_strerror(codes[i]), eio_strerror(codes[j]));
    }
    assert_non_null(eio_strerror(-1000));
}

static void test_buf(void **state)
{
    (void)state;
    buf b;
    buf_init(&b);
    assert_null(b.data);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(buf_append_byte(&b, (uint8_t)i), 0);
    assert_int_equal(buf_append_str(&b, "xyz"), 0);
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(b.len, 1003);
    assert_true(b.cap >= b.len);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[i], (uint8_t)i);
    assert_memory_equal(b.data + 1000, "xyz", 3);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(b.len, 1003);
    buf_deinit(&b);
    buf_deinit(&b);
    assert_int_equal(b.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eio_ws_decode),
        cmocka_unit_test(test_eio_ws_prefixes),
        cmocka_unit_test(test_eio_payload_decode),
        cmocka_unit_test(test_eio_payload_split),
        cmocka_unit_test(test_eio_payload_append),
        cmocka_unit_test(test_eio_payload_reencode),
        cmocka_unit_test(test_eio_open_json),
        cmocka_unit_test(test_eio_strerror),
        cmocka_unit_test(test_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
