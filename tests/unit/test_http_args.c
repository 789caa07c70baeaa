/* http_args: path splitting, route matching, query arguments, integers, id lists and the bearer
 * check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/http_args.h"

static void test_path_split(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int rc;
        size_t n;
        const char *seg[4];
    } cases[] = {
        {"/", HTTP_ARGS_OK, 0, {NULL}},
        {"/healthz", HTTP_ARGS_OK, 1, {"healthz"}},
        {"/v1/users/bob", HTTP_ARGS_OK, 3, {"v1", "users", "bob"}},
        {"/v1/users/bob/", HTTP_ARGS_OK, 3, {"v1", "users", "bob"}},
        {"/v1/users/a b:{c}", HTTP_ARGS_OK, 3, {"v1", "users", "a b:{c}"}},
        {"/v1//users", HTTP_ARGS_INVALID, 0, {NULL}},
        {"v1/users", HTTP_ARGS_INVALID, 0, {NULL}},
        {"", HTTP_ARGS_INVALID, 0, {NULL}},
        {"/a/b/c/d/e/f/g/h/i", HTTP_ARGS_TOO_MANY, 0, {NULL}},
        {"/a/b/c/d/e/f/g/h", HTTP_ARGS_OK, 8, {"a", "b", "c", "d"}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_path p;
        int rc = http_path_split(cases[i].path, &p);
        assert_int_equal(rc, cases[i].rc);
        if (rc != HTTP_ARGS_OK)
            continue;
        assert_int_equal(p.n, cases[i].n);
        for (size_t k = 0; k < 4 && cases[i].seg[k]; k++)
            assert_string_equal(p.seg[k], cases[i].seg[k]);
    }
    /* HTTP_PATH_MAX - 1 bytes are split; HTTP_PATH_MAX and more are too long (414), whatever
     * else is wrong with them. */
    char big[HTTP_PATH_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = 0;
    http_path p;
    assert_int_equal(http_path_split(big, &p), HTTP_ARGS_TOO_LONG);
    big[HTTP_PATH_MAX] = 0;
    assert_int_equal(http_path_split(big, &p), HTTP_ARGS_TOO_LONG);
    big[HTTP_PATH_MAX - 1] = 0;
    assert_int_equal(http_path_split(big, &p), HTTP_ARGS_OK);
    assert_int_equal(p.n, 1);
    assert_int_equal(strlen(p.seg[0]), HTTP_PATH_MAX - 2);
    big[1] = '/';
    big[HTTP_PATH_MAX - 1] = 'a';
    big[HTTP_PATH_MAX] = 0;
    assert_int_equal(http_path_split(big, &p), HTTP_ARGS_TOO_LONG);
}

static void test_route_matches(void **state)
{
    (void)state;
    static const char *const users[] = {"v1", "users"};
    static const char *const user[] = {"v1", "users", "*"};
    static const char *const kick[] = {"v1", "users", "*", "disconnect"};
    static const char *const any2[] = {"*", "*"};
    static const struct {
        const char *path;
        const char *const *pattern;
        size_t n;
        bool match;
    } cases[] = {
        {"/v1/users", users, 2, true},
        {"/v1/users/", users, 2, true},
        {"/v1/users/bob", users, 2, false},
        {"/v1/user", users, 2, false},
        {"/v1/usersx", users, 2, false},
        {"/V1/users", users, 2, false},
        {"/v1/users/bob", user, 3, true},
        {"/v1/users/*", user, 3, true},
        {"/v1/users/bob/disconnect", user, 3, false},
        {"/v1/users/bob/disconnect", kick, 4, true},
        {"/v1/users/bob/disconnects", kick, 4, false},
        {"/v1/rooms/bob/disconnect", kick, 4, false},
        {"/a/b", any2, 2, true},
        {"/a", any2, 2, false},
        {"/", any2, 2, false},
        {"/", users, 0, true},
        {"/healthz", users, 0, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_path p;
        assert_int_equal(http_path_split(cases[i].path, &p), HTTP_ARGS_OK);
        if (http_route_matches(cases[i].pattern, cases[i].n, &p) != cases[i].match)
            fail_msg("%s against a %zu-segment pattern: expected %s", cases[i].path, cases[i].n,
                     cases[i].match ? "a match" : "no match");
    }
}

static void test_query_get(void **state)
{
    (void)state;
    const char *args[] = {"ids=a,b", "limit=3", "flag", "cursor=", "idsx=1"};
    const char *v;
    assert_int_equal(http_query_get(args, 5, "ids", &v), HTTP_ARGS_OK);
    assert_string_equal(v, "a,b");
    assert_int_equal(http_query_get(args, 5, "flag", &v), HTTP_ARGS_OK);
    assert_string_equal(v, "");
    assert_int_equal(http_query_get(args, 5, "cursor", &v), HTTP_ARGS_OK);
    assert_string_equal(v, "");
    assert_int_equal(http_query_get(args, 5, "id", &v), HTTP_ARGS_OK);
    assert_null(v);
    const char *twice[] = {"ids=a", "ids=b"};
    assert_int_equal(http_query_get(twice, 2, "ids", &v), HTTP_ARGS_TWICE);
}

static void test_uint(void **state)
{
    (void)state;
    uint32_t v;
    assert_int_equal(http_uint_parse("1", 1, 1000, &v), HTTP_ARGS_OK);
    assert_int_equal(v, 1);
    assert_int_equal(http_uint_parse("1000", 1, 1000, &v), HTTP_ARGS_OK);
    assert_int_equal(v, 1000);
    const char *bad[] = {"", "0", "1001", "-1", "+1", " 1", "1 ", "1e3", "0x10", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(http_uint_parse(bad[i], 1, 1000, &v), HTTP_ARGS_INVALID);
}

static void test_ids_split(void **state)
{
    (void)state;
    static const struct {
        const char *list;
        size_t max;
        int rc;
        size_t n;
    } cases[] = {
        {"a", 5, HTTP_ARGS_OK, 1},
        {"a,b,c", 5, HTTP_ARGS_OK, 3},
        {"a,a", 5, HTTP_ARGS_OK, 2},
        {"zo\xC3\xAB", 5, HTTP_ARGS_OK, 1},
        {"", 5, HTTP_ARGS_EMPTY, 0},
        {"a,,b", 5, HTTP_ARGS_INVALID, 0},
        {"a,", 5, HTTP_ARGS_INVALID, 0},
        {",a", 5, HTTP_ARGS_INVALID, 0},
        {"a,b,c", 2, HTTP_ARGS_TOO_MANY, 0},
        {"a\x01", 5, HTTP_ARGS_INVALID, 0},
        {"\xC3\x28", 5, HTTP_ARGS_INVALID, 0},
        {"a\x7f", 5, HTTP_ARGS_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *copy = strdup(cases[i].list);
        const char **ids;
        size_t n, bad;
        int rc = http_ids_split(copy, cases[i].max, &ids, &n, &bad);
        assert_int_equal(rc, cases[i].rc);
        if (rc == HTTP_ARGS_OK) {
            assert_int_equal(n, cases[i].n);
            free(ids);
        } else {
            assert_null(ids);
        }
        free(copy);
    }
    char long_id[200];
    memset(long_id, 'x', 129);
    long_id[129] = 0;
    const char **ids;
    size_t n, bad;
    assert_int_equal(http_ids_split(long_id, 5, &ids, &n, &bad), HTTP_ARGS_INVALID);
    long_id[128] = 0;
    assert_int_equal(http_ids_split(long_id, 5, &ids, &n, &bad), HTTP_ARGS_OK);
    free(ids);
}

static void test_bearer(void **state)
{
    (void)state;
    assert_true(http_bearer_match("Bearer s3cret", "s3cret"));
    assert_true(http_bearer_match("bearer s3cret", "s3cret"));
    assert_false(http_bearer_match("Bearer s3cre", "s3cret"));
    assert_false(http_bearer_match("Bearer s3crett", "s3cret"));
    assert_false(http_bearer_match("Basic s3cret", "s3cret"));
    assert_false(http_bearer_match("s3cret", "s3cret"));
    assert_false(http_bearer_match("", "s3cret"));
    assert_false(http_bearer_match("Bearer ", "s3cret"));
}

static void test_head_check(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        size_t max;
        int want;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 64, HTTP_HEAD_OK},
        {"GET / HTTP/1.1\r\n\r\n", 64, HTTP_HEAD_OK},
        {"GET / HTTP/1.1\nHost: a\n\n", 64, HTTP_HEAD_OK},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody %00", 64, HTTP_HEAD_OK},
        {"GET / HTTP/1.1\r\nHost: a\r\n", 64, HTTP_HEAD_NEED_MORE},
        {"GET / HTT", 64, HTTP_HEAD_NEED_MORE},
        {"", 64, HTTP_HEAD_NEED_MORE},
        {"GET /a%00b HTTP/1.1\r\n\r\n", 64, HTTP_HEAD_BAD},
        {"GET /?x=%00 HTTP/1.1\r\n", 64, HTTP_HEAD_BAD},
        {"GET /%0 HTTP/1.1\r\n\r\n", 64, HTTP_HEAD_BAD},
        {"GET /%ZZ HTTP/1.1\r\n\r\n", 64, HTTP_HEAD_BAD},
        {"GET /%e2%9C%93 HTTP/1.1\r\n\r\n", 64, HTTP_HEAD_OK},
        {"GET /%20%0a HTTP/1.1\r\n\r\n", 64, HTTP_HEAD_OK},
        {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 32, HTTP_HEAD_URI_LONG},
        {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32, HTTP_HEAD_URI_LONG},
        {"GET / HTTP/1.1\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 32, HTTP_HEAD_TOO_LARGE},
        {"GET / HTTP/1.1\r\nX: a\r\nY: b\r\nZ: cccccccccc", 32, HTTP_HEAD_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = http_head_check(cases[i].head, strlen(cases[i].head), cases[i].max);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, cases[i].want);
    }
    /* A NUL byte in the request line. */
    static const char nul[] = "GET /a\0b HTTP/1.1\r\n\r\n";
    assert_int_equal(http_head_check(nul, sizeof(nul) - 1, 64), HTTP_HEAD_BAD);
    /* A complete head fed byte by byte asks for more until its last byte. */
    const char *h = cases[0].head;
    for (size_t k = 0; k < strlen(h); k++)
        assert_int_equal(http_head_check(h, k, 64), HTTP_HEAD_NEED_MORE);
}

static void test_same_origin(void **state)
{
    (void)state;
    static const struct {
        const char *origin, *host, *scheme;
        bool same;
    } cases[] = {
        {"http://127.0.0.1:3000", "127.0.0.1:3000", "http", true},
        {"http://Example.COM", "example.com", "http", true},
        {"http://example.com:80", "example.com", "http", true},
        {"http://example.com", "example.com:80", "http", true},
        {"https://example.com", "example.com", "https", true},
        {"https://example.com", "example.com:443", "https", true},
        {"http://[::1]:3000", "[::1]:3000", "http", true},
        {"HTTP://example.com", "example.com", "http", true},
        {"https://example.com", "example.com", "http", false},
        {"http://example.com", "example.com", "https", false},
        {"http://example.com:3001", "example.com:3000", "http", false},
        {"http://example.com", "example.com:3000", "http", false},
        {"http://evil.com", "example.com", "http", false},
        {"http://example.com.evil.com", "example.com", "http", false},
        {"http://example.co", "example.com", "http", false},
        {"http://example.com/", "example.com", "http", false},
        {"http://user@example.com", "example.com", "http", false},
        {"http://example.com:", "example.com", "http", false},
        {"http://example.com:99999", "example.com", "http", false},
        {"http://example.com:3000x", "example.com:3000", "http", false},
        {"null", "example.com", "http", false},
        {"", "example.com", "http", false},
        {"http://", "", "http", false},
        {"http://[::1", "[::1]", "http", false},
        {"http://[::1]x", "[::1]", "http", false},
        {"ws://example.com", "example.com", "http", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = http_same_origin(cases[i].origin, cases[i].host, cases[i].scheme);
        if (got != cases[i].same)
            fail_msg("case %zu: %s vs Host %s (%s): got %d", i, cases[i].origin, cases[i].host,
                     cases[i].scheme, got);
    }
}

static void test_key(void **state)
{
    (void)state;
    assert_true(http_key_match("s3cret", "s3cret"));
    assert_false(http_key_match("s3cre", "s3cret"));
    assert_false(http_key_match("s3crett", "s3cret"));
    assert_false(http_key_match("S3cret", "s3cret"));
    assert_false(http_key_match("", "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_split), cmocka_unit_test(test_route_matches),
        cmocka_unit_test(test_query_get),  cmocka_unit_test(test_uint),
        cmocka_unit_test(test_ids_split),  cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_key),        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_head_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
