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
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
