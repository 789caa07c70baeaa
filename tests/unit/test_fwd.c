/* Who the client is behind proxies: CIDR lists, X-Forwarded-For / Forwarded walks, PROXY
 * protocol v1 and v2 headers (each valid one also fed byte by byte). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/fwd.h"

static fwd_addr addr(const char *s)
{
    fwd_addr a;
    assert_int_equal(fwd_addr_parse(s, strlen(s), &a), FWD_OK);
    return a;
}

static void test_addr(void **state)
{
    (void)state;
    char text[FWD_ADDR_TEXT];
    fwd_addr a = addr("::ffff:10.1.2.3");
    assert_int_equal(a.family, 4);
    fwd_addr_text(&a, text);
    assert_string_equal(text, "10.1.2.3");
    a = addr("2001:DB8::1");
    fwd_addr_text(&a, text);
    assert_string_equal(text, "2001:db8::1");
    static const char *const bad[] = {"",    "1.2.3", "1.2.3.4.5",  "256.1.1.1", "1.2.3.4 ",
                                      "::g", "[::1]", "1.2.3.4:80", "unknown"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(fwd_addr_parse(bad[i], strlen(bad[i]), &a), FWD_INVALID);
}

static void test_cidrs(void **state)
{
    (void)state;
    fwd_cidrs l;
    assert_int_equal(fwd_cidrs_parse("10.0.0.0/8, 192.168.1.7 ,fd00::/8,127.0.0.1/32", &l), FWD_OK);
    assert_int_equal(l.n, 4);
    static const struct {
        const char *a;
        bool in;
    } cases[] = {{"10.255.1.1", true},   {"11.0.0.1", false},       {"192.168.1.7", true},
                 {"192.168.1.8", false}, {"fd12::1", true},         {"fe00::1", false},
                 {"127.0.0.1", true},    {"::ffff:10.0.0.1", true}, {"127.0.0.2", false}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fwd_addr a = addr(cases[i].a);
        if (fwd_cidrs_match(&l, &a) != cases[i].in)
            fail_msg("%s", cases[i].a);
    }
    assert_int_equal(fwd_cidrs_parse("", &l), FWD_OK);
    assert_int_equal(l.n, 0);
    fwd_addr a = addr("10.0.0.1");
    assert_false(fwd_cidrs_match(&l, &a));
    assert_int_equal(fwd_cidrs_parse("10.0.0.0/23", &l), FWD_OK);
    assert_true(fwd_cidrs_match(&l, &(fwd_addr){0}) == false);
    a = addr("10.0.1.255");
    assert_true(fwd_cidrs_match(&l, &a));
    a = addr("10.0.2.0");
    assert_false(fwd_cidrs_match(&l, &a));
    assert_int_equal(fwd_cidrs_parse("0.0.0.0/0", &l), FWD_OK);
    a = addr("8.8.8.8");
    assert_true(fwd_cidrs_match(&l, &a));
    static const char *const bad[] = {"10.0.0.0/33",  "::/129", "10.0.0.0/",
                                      "10.0.0.0/x",   "a,b",    "10.0.0.1,,10.0.0.2",
                                      "10.0.0.1/8/8", "/8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (fwd_cidrs_parse(bad[i], &l) != FWD_INVALID)
            fail_msg("accepted %s", bad[i]);
    char many[2048] = "";
    for (int i = 0; i <= FWD_CIDRS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.0.%d", i ? "," : "", i);
    assert_int_equal(fwd_cidrs_parse(many, &l), FWD_TOO_MANY);
}

static void test_client(void **state)
{
    (void)state;
    fwd_cidrs trusted;
    assert_int_equal(fwd_cidrs_parse("127.0.0.1, 10.0.0.0/8", &trusted), FWD_OK);
    static const struct {
        const char *peer, *forwarded, *xff, *client;
    } cases[] = {
        /* An untrusted peer: headers are the client's own words, ignored. */
        {"203.0.113.9", NULL, "1.1.1.1", "203.0.113.9"},
        {"127.0.0.1", NULL, NULL, "127.0.0.1"},
        {"127.0.0.1", NULL, "198.51.100.7", "198.51.100.7"},
        /* What the client wrote left of the first untrusted hop does not count. */
        {"127.0.0.1", NULL, "6.6.6.6, 198.51.100.7", "198.51.100.7"},
        {"127.0.0.1", NULL, "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"},
        {"127.0.0.1", NULL, "198.51.100.7,10.1.1.1,10.2.2.2", "198.51.100.7"},
        /* Every hop trusted: the leftmost. */
        {"127.0.0.1", NULL, "10.9.9.9, 10.1.1.1", "10.9.9.9"},
        /* Ports and brackets, IPv6. */
        {"127.0.0.1", NULL, "198.51.100.7:5555", "198.51.100.7"},
        {"127.0.0.1", NULL, "[2001:db8::7]:443", "2001:db8::7"},
        {"127.0.0.1", NULL, "2001:db8::7", "2001:db8::7"},
        /* Unreadable hops end the walk at the last address read. */
        {"127.0.0.1", NULL, "198.51.100.7, garbage", "127.0.0.1"},
        {"127.0.0.1", NULL, "garbage, 10.1.1.1", "10.1.1.1"},
        {"127.0.0.1", NULL, "", "127.0.0.1"},
        {"127.0.0.1", NULL, ",", "127.0.0.1"},
        /* Forwarded (RFC 7239) wins over X-Forwarded-For. */
        {"127.0.0.1", "for=198.51.100.7;proto=https", "1.1.1.1", "198.51.100.7"},
        {"127.0.0.1", "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\"", NULL, "2001:db8:cafe::17"},
        {"127.0.0.1", "For=192.0.2.43, for=10.0.0.5;by=10.0.0.1", NULL, "192.0.2.43"},
        {"127.0.0.1", "for=unknown", NULL, "127.0.0.1"},
        {"127.0.0.1", "for=_hidden, for=10.3.3.3", NULL, "10.3.3.3"},
        {"127.0.0.1", "proto=http", NULL, "127.0.0.1"},
        {"::ffff:127.0.0.1", NULL, "198.51.100.7", "198.51.100.7"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fwd_addr peer = addr(cases[i].peer), client;
        bool moved = fwd_client(&peer, &trusted, cases[i].forwarded, cases[i].xff, &client);
        char text[FWD_ADDR_TEXT];
        fwd_addr_text(&client, text);
        if (strcmp(text, cases[i].client) != 0)
            fail_msg("case %zu: got %s, want %s", i, text, cases[i].client);
        char peer_text[FWD_ADDR_TEXT];
        fwd_addr_text(&peer, peer_text);
        if (moved != (strcmp(cases[i].client, peer_text) != 0))
            fail_msg("case %zu: moved=%d", i, moved);
    }
    /* A long chain of trusted hops costs one pass. */
    char chain[8192] = "198.51.100.7";
    for (int i = 0; i < 500; i++)
        strcat(chain, ",10.0.0.1");
    fwd_addr peer = addr("127.0.0.1"), client;
    assert_true(fwd_client(&peer, &trusted, NULL, chain, &client));
    char text[FWD_ADDR_TEXT];
    fwd_addr_text(&client, text);
    assert_string_equal(text, "198.51.100.7");
}

static void test_proto(void **state)
{
    (void)state;
    assert_string_equal(fwd_proto("for=1.2.3.4;proto=https", NULL), "https");
    assert_string_equal(fwd_proto("proto=http, for=1.2.3.4;Proto=\"HTTPS\"", "http"), "https");
    assert_string_equal(fwd_proto(NULL, "https"), "https");
    assert_string_equal(fwd_proto("", "http, https"), "https");
    assert_string_equal(fwd_proto("for=1.2.3.4", "http"), "http");
    assert_null(fwd_proto(NULL, NULL));
    assert_null(fwd_proto(NULL, "gopher"));
    assert_null(fwd_proto("proto=ftp", NULL));
}

/* Decodes `h` whole, then every prefix must ask for more (a valid header split at any byte). */
static void proxy_ok(const void *h, size_t n, const char *want_src)
{
    fwd_proxy p;
    assert_int_equal(fwd_proxy_decode(h, n, &p), (int)n);
    if (want_src) {
        char text[FWD_ADDR_TEXT];
        assert_true(p.has_addr);
        fwd_addr_text(&p.src, text);
        assert_string_equal(text, want_src);
    } else {
        assert_false(p.has_addr);
    }
    for (size_t k = 0; k < n; k++)
        if (fwd_proxy_decode(h, k, &p) != FWD_NEED_MORE)
            fail_msg("prefix of %zu bytes of %zu", k, n);
    /* Bytes after the header are the stream's. */
    uint8_t more[FWD_PROXY_MAX + 16];
    memcpy(more, h, n);
    memcpy(more + n, "GET / HTTP/1.1\r\n", 16);
    assert_int_equal(fwd_proxy_decode(more, n + 16, &p), (int)n);
}

static void test_proxy_v1(void **state)
{
    (void)state;
    const char *h = "PROXY TCP4 198.51.100.7 10.0.0.1 56324 443\r\n";
    proxy_ok(h, strlen(h), "198.51.100.7");
    h = "PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n";
    proxy_ok(h, strlen(h), "2001:db8::7");
    h = "PROXY UNKNOWN\r\n";
    proxy_ok(h, strlen(h), NULL);
    h = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    proxy_ok(h, strlen(h), NULL);
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY TCP4 198.51.100.7 10.0.0.1 56324 443\n",
        "PROXY TCP4 198.51.100.7 10.0.0.1 56324\r\n",
        "PROXY TCP4 198.51.100.7 10.0.0.1 56324 443 9\r\n",
        "PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
        "PROXY TCP4 198.51.100.7  10.0.0.1 1 2\r\n",
        "PROXY TCP4 198.51.100.7 10.0.0.1 65536 2\r\n",
        "PROXY TCP5 198.51.100.7 10.0.0.1 1 2\r\n",
        "PROXY\r\n",
        "proxy TCP4 198.51.100.7 10.0.0.1 1 2\r\n",
    };
    fwd_proxy p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (fwd_proxy_decode((const uint8_t *)bad[i], strlen(bad[i]), &p) != FWD_INVALID)
            fail_msg("accepted %s", bad[i]);
    char longline[200];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "PROXY ", 6);
    assert_int_equal(fwd_proxy_decode((const uint8_t *)longline, sizeof(longline), &p),
                     FWD_INVALID);
}

static void test_proxy_v2(void **state)
{
    (void)state;
    static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    uint8_t h[16 + 36 + 8];
    memcpy(h, sig, 12);
    /* PROXY, TCP over IPv4, 12 address bytes and a 3-byte TLV after them. */
    h[12] = 0x21, h[13] = 0x11, h[14] = 0, h[15] = 15;
    memcpy(h + 16, (uint8_t[]){198, 51, 100, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x01, 0xbb}, 12);
    memcpy(h + 28, (uint8_t[]){0x04, 0x00, 0x00}, 3);
    proxy_ok(h, 31, "198.51.100.7");
    /* TCP over IPv6. */
    h[13] = 0x21, h[15] = 36;
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7};
    memcpy(h + 16, v6, 16);
    memset(h + 32, 0, 20);
    proxy_ok(h, 52, "2001:db8::7");
    /* LOCAL: the load balancer's own health check. */
    h[12] = 0x20, h[13] = 0, h[15] = 0;
    proxy_ok(h, 16, NULL);
    /* UNSPEC family with PROXY: no address. */
    h[12] = 0x21, h[13] = 0x00;
    proxy_ok(h, 16, NULL);
    fwd_proxy p;
    h[12] = 0x31; /* version 3 */
    assert_int_equal(fwd_proxy_decode(h, 16, &p), FWD_INVALID);
    h[12] = 0x22; /* command 2 */
    assert_int_equal(fwd_proxy_decode(h, 16, &p), FWD_INVALID);
    h[12] = 0x21, h[13] = 0x11, h[15] = 4; /* too short for IPv4 addresses */
    assert_int_equal(fwd_proxy_decode(h, 20, &p), FWD_INVALID);
    h[14] = 0xff, h[15] = 0xff; /* longer than we take */
    assert_int_equal(fwd_proxy_decode(h, 16, &p), FWD_INVALID);
    h[1] = 'x';
    assert_int_equal(fwd_proxy_decode(h, 16, &p), FWD_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr),     cmocka_unit_test(test_cidrs),
        cmocka_unit_test(test_client),   cmocka_unit_test(test_proto),
        cmocka_unit_test(test_proxy_v1), cmocka_unit_test(test_proxy_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
