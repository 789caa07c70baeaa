/* Unit tests for sio_codec: packet decoding (valid and invalid wire strings), JSON strictness,
 * placeholders, and header encoding. Wire strings here are the Engine.IO message data, i.e.
 * without the leading Engine.IO '4'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/sio_codec.h"

#define LIT(s) (s), (sizeof(s) - 1)

struct valid_vec {
    const char *text;
    size_t len;
    sio_type type;
    const char *nsp;
    int64_t ack_id;
    unsigned attachments;
    const char *json; /* cJSON_PrintUnformatted of the data, or NULL for none */
};

#define PH0 "{\"_placeholder\":true,\"num\":0}"
#define PH1 "{\"_placeholder\":true,\"num\":1}"

static const struct valid_vec valid[] = {
    {LIT("0"), SIO_CONNECT, "/", SIO_NO_ACK, 0, NULL},
    {LIT("0/custom,"), SIO_CONNECT, "/custom", SIO_NO_ACK, 0, NULL},
    {LIT("0/custom"), SIO_CONNECT, "/custom", SIO_NO_ACK, 0, NULL},
    {LIT("0{\"token\":\"123\"}"), SIO_CONNECT, "/", SIO_NO_ACK, 0, "{\"token\":\"123\"}"},
    {LIT("0/custom,{\"token\":\"abc\"}"), SIO_CONNECT, "/custom", SIO_NO_ACK, 0,
     "{\"token\":\"abc\"}"},
    {LIT("0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}"), SIO_CONNECT, "/admin", SIO_NO_ACK, 0,
     "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}"},
    {LIT("0{}"), SIO_CONNECT, "/", SIO_NO_ACK, 0, "{}"},
    {LIT("0/,"), SIO_CONNECT, "/", SIO_NO_ACK, 0, NULL},
    {LIT("1"), SIO_DISCONNECT, "/", SIO_NO_ACK, 0, NULL},
    {LIT("1/admin,"), SIO_DISCONNECT, "/admin", SIO_NO_ACK, 0, NULL},
    {LIT("2[\"message\",1,\"2\",{\"3\":[true]}]"), SIO_EVENT, "/", SIO_NO_ACK, 0,
     "[\"message\",1,\"2\",{\"3\":[true]}]"},
    {LIT("2456[\"message-with-ack\",1]"), SIO_EVENT, "/", 456, 0, "[\"message-with-ack\",1]"},
    {LIT("2/admin,[\"bar\"]"), SIO_EVENT, "/admin", SIO_NO_ACK, 0, "[\"bar\"]"},
    {LIT("2/admin,0[\"bar\"]"), SIO_EVENT, "/admin", 0, 0, "[\"bar\"]"},
    {LIT("29007199254740991[\"x\"]"), SIO_EVENT, "/", SIO_ACK_ID_MAX, 0, "[\"x\"]"},
    {LIT("2 [\"x\"] \r\n\t"), SIO_EVENT, "/", SIO_NO_ACK, 0, "[\"x\"]"},
    {LIT("2[\"\"]"), SIO_EVENT, "/", SIO_NO_ACK, 0, "[\"\"]"},
    {LIT("2[\"Connect\"]"), SIO_EVENT, "/", SIO_NO_ACK, 0, "[\"Connect\"]"},
    {LIT("2[\"caf\xc3\xa9\",\"\\ud83d\\ude00\"]"), SIO_EVENT, "/", SIO_NO_ACK, 0,
     "[\"caf\xc3\xa9\",\"\xf0\x9f\x98\x80\"]"},
    {LIT("2[\"a\\\\u0000\"]"), SIO_EVENT, "/", SIO_NO_ACK, 0, "[\"a\\\\u0000\"]"},
    {LIT("2[\"x\",{\"_placeholder\":true,\"num\":5}]"), SIO_EVENT, "/", SIO_NO_ACK, 0,
     "[\"x\",{\"_placeholder\":true,\"num\":5}]"}, /* not binary: an ordinary object */
    {LIT("3[]"), SIO_ACK, "/", SIO_NO_ACK, 0, "[]"},
    {LIT("313[\"bar\"]"), SIO_ACK, "/", 13, 0, "[\"bar\"]"},
    {LIT("3/admin,13[\"bar\"]"), SIO_ACK, "/admin", 13, 0, "[\"bar\"]"},
    {LIT("4{\"message\":\"Not authorized\"}"), SIO_CONNECT_ERROR, "/", SIO_NO_ACK, 0,
     "{\"message\":\"Not authorized\"}"},
    {LIT("4\"nope\""), SIO_CONNECT_ERROR, "/", SIO_NO_ACK, 0, "\"nope\""},
    {LIT("52-[\"message\"," PH0 "," PH1 "]"), SIO_BINARY_EVENT, "/", SIO_NO_ACK, 2,
     "[\"message\"," PH0 "," PH1 "]"},
    {LIT("52-789[\"message-with-ack\"," PH0 "," PH1 "]"), SIO_BINARY_EVENT, "/", 789, 2,
     "[\"message-with-ack\"," PH0 "," PH1 "]"},
    {LIT("62-789[" PH0 "," PH1 "]"), SIO_BINARY_ACK, "/", 789, 2, "[" PH0 "," PH1 "]"},
    {LIT("51-[\"baz\"," PH0 "]"), SIO_BINARY_EVENT, "/", SIO_NO_ACK, 1, "[\"baz\"," PH0 "]"},
    {LIT("52-/admin,[\"baz\"," PH0 "," PH1 "]"), SIO_BINARY_EVENT, "/admin", SIO_NO_ACK, 2,
     "[\"baz\"," PH0 "," PH1 "]"},
    {LIT("61-15[\"bar\"," PH0 "]"), SIO_BINARY_ACK, "/", 15, 1, "[\"bar\"," PH0 "]"},
    {LIT("61-/admin,1[" PH0 "]"), SIO_BINARY_ACK, "/admin", 1, 1, "[" PH0 "]"},
    {LIT("510-[\"x\",{\"a\":[{\"_placeholder\":true,\"num\":9}]}]"), SIO_BINARY_EVENT, "/",
     SIO_NO_ACK, 10, "[\"x\",{\"a\":[{\"_placeholder\":true,\"num\":9}]}]"},
    {LIT("50-[\"x\"]"), SIO_BINARY_EVENT, "/", SIO_NO_ACK, 0, "[\"x\"]"},
    {LIT("51-[\"x\",{\"_placeholder\":false,\"num\":7}]"), SIO_BINARY_EVENT, "/", SIO_NO_ACK, 1,
     "[\"x\",{\"_placeholder\":false,\"num\":7}]"},
    {LIT("0/caf\xc3\xa9,"), SIO_CONNECT, "/caf\xc3\xa9", SIO_NO_ACK, 0, NULL},
};

static uint8_t *dup_exact(const void *p, size_t len)
{
    uint8_t *q = malloc(len ? len : 1);
    assert_non_null(q);
    if (len)
        memcpy(q, p, len);
    return q;
}

static int decode(const char *text, size_t len, sio_packet *p)
{
    uint8_t *copy = dup_exact(text, len);
    int rc = sio_packet_decode(copy, len, p);
    free(copy); /* the packet must not borrow from the input */
    return rc;
}

static void check_valid(const struct valid_vec *v, const sio_packet *p, const char *what)
{
    assert_int_equal(p->type, v->type);
    if (strcmp(p->nsp, v->nsp) != 0)
        fail_msg("%s: nsp \"%s\", expected \"%s\"", what, p->nsp, v->nsp);
    assert_int_equal(p->ack_id, v->ack_id);
    assert_int_equal(p->attachments, v->attachments);
    if (!v->json) {
        assert_null(p->data);
        return;
    }
    assert_non_null(p->data);
    char *s = cJSON_PrintUnformatted(p->data);
    assert_non_null(s);
    if (strcmp(s, v->json) != 0)
        fail_msg("%s: data %s, expected %s", what, s, v->json);
    cJSON_free(s);
}

static void test_sio_decode_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        sio_packet p;
        int rc = decode(valid[i].text, valid[i].len, &p);
        char what[32];
        snprintf(what, sizeof(what), "valid %zu", i);
        if (rc != SIO_OK)
            fail_msg("%s: rc %d (%s)", what, rc, sio_strerror(rc));
        check_valid(&valid[i], &p, what);
        sio_packet_deinit(&p);
        sio_packet_deinit(&p); /* safe twice */
        assert_null(p.data);
    }
}

/* Every strict prefix of a valid packet decodes cleanly or fails cleanly (no leak: the LSan
 * build checks that a failed decode leaves nothing to free). */
static void test_sio_decode_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        for (size_t k = 0; k < valid[i].len; k++) {
            sio_packet p;
            int rc = decode(valid[i].text, k, &p);
            if (k == 0)
                assert_int_equal(rc, SIO_ERR_EMPTY);
            if (rc == SIO_OK) {
                assert_int_equal(p.type, valid[i].type);
                sio_packet_deinit(&p);
            } else {
                assert_true(rc < 0 && rc >= SIO_ERR_NOMEM);
                assert_null(p.data);
            }
        }
    }
}

struct invalid_vec {
    const char *text;
    size_t len;
    int rc;
};

static const struct invalid_vec invalid[] = {
    {LIT(""), SIO_ERR_EMPTY},
    {LIT("abc"), SIO_ERR_TYPE},
    {LIT("4abc"), SIO_ERR_JSON}, /* CONNECT_ERROR with data "abc" */
    {LIT("9"), SIO_ERR_TYPE},
    {LIT("7"), SIO_ERR_TYPE},
    {LIT("{"), SIO_ERR_TYPE},
    {LIT("4{"), SIO_ERR_JSON},
    {LIT("/"), SIO_ERR_TYPE},
    {LIT("2{\"a\":1}"), SIO_ERR_PAYLOAD},
    {LIT("2{}"), SIO_ERR_PAYLOAD},
    {LIT("2[]"), SIO_ERR_PAYLOAD},
    {LIT("2[{}]"), SIO_ERR_PAYLOAD},
    {LIT("2[1]"), SIO_ERR_PAYLOAD},
    {LIT("2[null]"), SIO_ERR_PAYLOAD},
    {LIT("2\"x\""), SIO_ERR_PAYLOAD},
    {LIT("2"), SIO_ERR_PAYLOAD},
    {LIT("2/admin,"), SIO_ERR_PAYLOAD},
    {LIT("2/admin[\"x\"]"), SIO_ERR_PAYLOAD}, /* no comma: the rest is namespace */
    {LIT("2[\"connect\"]"), SIO_ERR_RESERVED},
    {LIT("2[\"connect_error\"]"), SIO_ERR_RESERVED},
    {LIT("2[\"disconnect\"]"), SIO_ERR_RESERVED},
    {LIT("2[\"disconnecting\"]"), SIO_ERR_RESERVED},
    {LIT("2[\"newListener\"]"), SIO_ERR_RESERVED},
    {LIT("2[\"removeListener\",1]"), SIO_ERR_RESERVED},
    {LIT("21[\"disconnect\"]"), SIO_ERR_RESERVED},
    {LIT("51-[\"connect\"," PH0 "]"), SIO_ERR_RESERVED},
    {LIT("0[]"), SIO_ERR_PAYLOAD},
    {LIT("0\"x\""), SIO_ERR_PAYLOAD},
    {LIT("0null"), SIO_ERR_PAYLOAD},
    {LIT("0 "), SIO_ERR_JSON},
    {LIT("1{}"), SIO_ERR_PAYLOAD},
    {LIT("1/admin,{}"), SIO_ERR_PAYLOAD},
    {LIT("3"), SIO_ERR_PAYLOAD},
    {LIT("313"), SIO_ERR_PAYLOAD},
    {LIT("3{}"), SIO_ERR_PAYLOAD},
    {LIT("4"), SIO_ERR_PAYLOAD},
    {LIT("4[]"), SIO_ERR_PAYLOAD},
    {LIT("41"), SIO_ERR_PAYLOAD}, /* "1" is an ack id, then no payload */
    {LIT("29007199254740992[\"x\"]"), SIO_ERR_ACK_ID},
    {LIT("299999999999999999999999999[\"x\"]"), SIO_ERR_ACK_ID},
    {LIT("2/a,18446744073709551616[\"x\"]"), SIO_ERR_ACK_ID},
    {LIT("2abc[\"x\"]"), SIO_ERR_JSON},
    {LIT("2abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]"), SIO_ERR_JSON},
    {LIT("2[\"x\"]x"), SIO_ERR_JSON},
    {LIT("2[\"x\"][\"y\"]"), SIO_ERR_JSON},
    {LIT("2[\"x\",]"), SIO_ERR_JSON},
    {LIT("2[\"x\""), SIO_ERR_JSON},
    {LIT("2[\"x\",1e400]"), SIO_ERR_JSON},
    {LIT("2[\"x\",-1e400]"), SIO_ERR_JSON},
    {LIT("2[\"a\\u0000b\"]"), SIO_ERR_JSON},
    {LIT("2[\"x\",{\"k\\u0000\":1}]"), SIO_ERR_JSON},
    {LIT("2[\"a\0b\"]"), SIO_ERR_JSON},
    {LIT("2[\"a\x01"
         "b\"]"),
     SIO_ERR_JSON},
    {LIT("2[\"a\nb\"]"), SIO_ERR_JSON},
    {LIT("2[\"x\",\x01"
         "1]"),
     SIO_ERR_JSON}, /* cJSON would take \x01 as whitespace */
    {LIT("2[\"x\"]\0"), SIO_ERR_JSON},
    {LIT("2[\"\xff\"]"), SIO_ERR_JSON},
    {LIT("2[\"\xc0\x80\"]"), SIO_ERR_JSON},
    {LIT("2[\"\xed\xa0\x80\"]"), SIO_ERR_JSON},
    {LIT("2[\"x\",{\"\xff\":1}]"), SIO_ERR_JSON},
    {LIT("2[\"\\ud800\"]"), SIO_ERR_JSON},
    {LIT("2[\"\\udc00\"]"), SIO_ERR_JSON},
    {LIT("2[\"\\u12\"]"), SIO_ERR_JSON},
    {LIT("2[\"\\"), SIO_ERR_JSON},
    {LIT("2[\"\\u00"), SIO_ERR_JSON},
    {LIT("2[\"x\",NaN]"), SIO_ERR_JSON},
    {LIT("5-[\"x\"]"), SIO_ERR_ATTACHMENTS},
    {LIT("5[\"x\"]"), SIO_ERR_ATTACHMENTS},
    {LIT("51[\"x\"]"), SIO_ERR_ATTACHMENTS},
    {LIT("5"), SIO_ERR_ATTACHMENTS},
    {LIT("51"), SIO_ERR_ATTACHMENTS},
    {LIT("5a-[\"x\"]"), SIO_ERR_ATTACHMENTS},
    {LIT("511-[\"x\"]"), SIO_ERR_ATTACHMENTS},
    {LIT("599999999999999999999-[\"x\"]"), SIO_ERR_ATTACHMENTS},
    {LIT("6-[]"), SIO_ERR_ATTACHMENTS},
    {LIT("51-"), SIO_ERR_PAYLOAD},
    {LIT("51-{}"), SIO_ERR_PAYLOAD},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":-1}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":0.5}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":\"splice\"}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":\"0\"}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":1e300}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":2}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":null}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":true,\"num\":0,\"num\":1}]"), SIO_ERR_PLACEHOLDER},
    {LIT("52-[\"m\",{\"_placeholder\":false,\"_placeholder\":true,\"num\":9}]"),
     SIO_ERR_PLACEHOLDER},
    {LIT("51-[\"m\",{\"_placeholder\":true,\"_placeholder\":false,\"num\":0}]"),
     SIO_ERR_PLACEHOLDER},
    {LIT("50-[\"m\"," PH0 "]"), SIO_ERR_PLACEHOLDER},
    {LIT("61-[{\"a\":{\"b\":[{\"_placeholder\":true,\"num\":1}]}}]"), SIO_ERR_PLACEHOLDER},
    {LIT("61-1[" PH1 "]"), SIO_ERR_PLACEHOLDER},
    {LIT("0/\x01,"), SIO_ERR_NSP},
    {LIT("0/a\tb"), SIO_ERR_NSP},
    {LIT("0/a\x7f"), SIO_ERR_NSP},
    {LIT("0/a\xc2\x85"), SIO_ERR_NSP}, /* U+0085, a C1 control */
    {LIT("0/a\0b,"), SIO_ERR_NSP},
    {LIT("0/\xff,"), SIO_ERR_NSP},
    {LIT("0/\xc3,"), SIO_ERR_NSP},
    {LIT("2/\xed\xa0\x80,[\"x\"]"), SIO_ERR_NSP},
};

static void test_sio_decode_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        sio_packet p;
        memset(&p, 0xA5, sizeof(p));
        int rc = decode(invalid[i].text, invalid[i].len, &p);
        if (rc != invalid[i].rc)
            fail_msg("invalid %zu (%.*s): rc %d (%s), expected %d (%s)", i, (int)invalid[i].len,
                     invalid[i].text, rc, sio_strerror(rc), invalid[i].rc,
                     sio_strerror(invalid[i].rc));
        assert_null(p.data);
        sio_packet_deinit(&p);
    }
}

static char *repeat(const char *head, char c, size_t n, const char *mid, char c2, size_t n2)
{
    size_t len = strlen(head) + n + strlen(mid) + n2;
    char *s = malloc(len + 1);
    assert_non_null(s);
    size_t o = 0;
    memcpy(s, head, strlen(head));
    o += strlen(head);
    memset(s + o, c, n);
    o += n;
    memcpy(s + o, mid, strlen(mid));
    o += strlen(mid);
    memset(s + o, c2, n2);
    o += n2;
    s[o] = '\0';
    return s;
}

static void test_sio_nesting(void **state)
{
    (void)state;
    sio_packet p;
    /* 1001 nested arrays: beyond cJSON's compiled-in limit. */
    char *s = repeat("3", '[', 1001, "", ']', 1001);
    assert_int_equal(decode(s, strlen(s), &p), SIO_ERR_JSON);
    assert_null(p.data);
    free(s);
    /* Deep but within the limit. */
    s = repeat("3", '[', 500, "", ']', 500);
    assert_int_equal(decode(s, strlen(s), &p), SIO_OK);
    sio_packet_deinit(&p);
    free(s);
    /* Deep placeholder search in a binary packet. */
    s = repeat("61-", '[', 900, PH0, ']', 900);
    assert_int_equal(decode(s, strlen(s), &p), SIO_OK);
    sio_packet_deinit(&p);
    free(s);
    s = repeat("61-", '[', 900, PH1, ']', 900);
    assert_int_equal(decode(s, strlen(s), &p), SIO_ERR_PLACEHOLDER);
    free(s);
}

static void test_sio_nsp_length(void **state)
{
    (void)state;
    char text[SIO_NSP_MAX + 8];
    sio_packet p;
    /* "0" + "/" + 127 'a' + "," : a namespace of exactly SIO_NSP_MAX bytes. */
    text[0] = '0';
    text[1] = '/';
    memset(text + 2, 'a', SIO_NSP_MAX - 1);
    text[SIO_NSP_MAX + 1] = ',';
    assert_int_equal(decode(text, SIO_NSP_MAX + 2, &p), SIO_OK);
    assert_int_equal(strlen(p.nsp), SIO_NSP_MAX);
    assert_memory_equal(p.nsp, text + 1, SIO_NSP_MAX);
    sio_packet_deinit(&p);
    assert_int_equal(decode(text, SIO_NSP_MAX + 1, &p), SIO_OK); /* no comma */
    assert_int_equal(strlen(p.nsp), SIO_NSP_MAX);
    sio_packet_deinit(&p);
    text[SIO_NSP_MAX + 1] = 'a';
    text[SIO_NSP_MAX + 2] = ',';
    assert_int_equal(decode(text, SIO_NSP_MAX + 3, &p), SIO_ERR_NSP);
    assert_int_equal(decode(text, SIO_NSP_MAX + 2, &p), SIO_ERR_NSP);
}

static void test_sio_event_name(void **state)
{
    (void)state;
    sio_packet p;
    assert_int_equal(decode(LIT("2[\"hello\",1]"), &p), SIO_OK);
    assert_string_equal(sio_packet_event_name(&p), "hello");
    sio_packet_deinit(&p);
    assert_int_equal(decode(LIT("51-/x,[\"bin\"," PH0 "]"), &p), SIO_OK);
    assert_string_equal(sio_packet_event_name(&p), "bin");
    sio_packet_deinit(&p);
    assert_int_equal(decode(LIT("3[\"hello\"]"), &p), SIO_OK);
    assert_null(sio_packet_event_name(&p));
    sio_packet_deinit(&p);
    assert_int_equal(decode(LIT("0"), &p), SIO_OK);
    assert_null(sio_packet_event_name(&p));
}

struct header_vec {
    sio_type type;
    const char *nsp;
    int64_t ack_id;
    unsigned attachments;
    const char *want;
};

static const struct header_vec headers[] = {
    {SIO_CONNECT, "/", SIO_NO_ACK, 0, "0"},
    {SIO_CONNECT, "/admin", SIO_NO_ACK, 0, "0/admin,"},
    {SIO_CONNECT, NULL, SIO_NO_ACK, 0, "0"},
    {SIO_DISCONNECT, "/admin", SIO_NO_ACK, 0, "1/admin,"},
    {SIO_EVENT, "/", SIO_NO_ACK, 0, "2"},
    {SIO_EVENT, "/", 12, 0, "212"},
    {SIO_EVENT, "/", 0, 0, "20"},
    {SIO_ACK, "/admin", 13, 0, "3/admin,13"},
    {SIO_CONNECT_ERROR, "/random", SIO_NO_ACK, 0, "4/random,"},
    {SIO_BINARY_EVENT, "/", SIO_NO_ACK, 1, "51-"},
    {SIO_BINARY_EVENT, "/admin", SIO_NO_ACK, 2, "52-/admin,"},
    {SIO_BINARY_ACK, "/", 15, 1, "61-15"},
    {SIO_BINARY_ACK, "/admin", 1, 10, "610-/admin,1"},
    {SIO_EVENT, "/", SIO_ACK_ID_MAX, 0, "29007199254740991"},
};

static void test_sio_header_encode(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        const struct header_vec *h = &headers[i];
        buf b;
        buf_init(&b);
        assert_int_equal(buf_append_str(&b, "~"), 0); /* appends, does not overwrite */
        assert_int_equal(sio_header_encode(&b, h->type, h->nsp, h->ack_id, h->attachments), 0);
        assert_int_equal(b.len, strlen(h->want) + 1);
        assert_memory_equal(b.data + 1, h->want, b.len - 1);
        buf_deinit(&b);
    }
}

/* Every valid vector re-encoded as header + printed JSON decodes to the same packet. */
static void test_sio_roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        sio_packet p, q;
        assert_int_equal(decode(valid[i].text, valid[i].len, &p), SIO_OK);
        buf b;
        buf_init(&b);
        assert_int_equal(sio_header_encode(&b, p.type, p.nsp, p.ack_id, p.attachments), 0);
        if (p.data) {
            char *s = cJSON_PrintUnformatted(p.data);
            assert_non_null(s);
            assert_int_equal(buf_append_str(&b, s), 0);
            cJSON_free(s);
        }
        assert_int_equal(decode((const char *)b.data, b.len, &q), SIO_OK);
        assert_int_equal(q.type, p.type);
        assert_string_equal(q.nsp, p.nsp);
        assert_int_equal(q.ack_id, p.ack_id);
        assert_int_equal(q.attachments, p.attachments);
        assert_true(cJSON_Compare(p.data, q.data, true) || (!p.data && !q.data));
        sio_packet_deinit(&p);
        sio_packet_deinit(&q);
        buf_deinit(&b);
    }
}

static void test_sio_strerror(void **state)
{
    (void)state;
    for (int a = SIO_ERR_NOMEM; a <= SIO_OK; a++) {
        assert_non_null(sio_strerror(a));
        for (int b = SIO_ERR_NOMEM; b < a; b++)
            assert_string_not_equal(sio_strerror(a), sio_strerror(b));
    }
    assert_non_null(sio_strerror(-1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sio_decode_valid),   cmocka_unit_test(test_sio_decode_prefixes),
        cmocka_unit_test(test_sio_decode_invalid), cmocka_unit_test(test_sio_nesting),
        cmocka_unit_test(test_sio_nsp_length),     cmocka_unit_test(test_sio_event_name),
        cmocka_unit_test(test_sio_header_encode),  cmocka_unit_test(test_sio_roundtrip),
        cmocka_unit_test(test_sio_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
