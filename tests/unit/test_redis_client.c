/* Unit tests for redis_client's URL parsing (the connection itself is exercised against a real
 * redis-server by tests/integration/store_contract.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/io/redis_client.h"

struct url_vec {
    const char *url;
    const char *host;
    int port;
    const char *path;
    const char *password;
    int db;
};

static const struct url_vec valid[] = {
    {"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", -1},
    {"redis://localhost", "localhost", 6379, "", "", -1},
    {"redis://localhost/", "localhost", 6379, "", "", -1},
    {"redis://h:1/0", "h", 1, "", "", 0},
    {"redis://h:65535/15", "h", 65535, "", "", 15},
    {"redis://:s3cret@10.0.0.5:6379/0", "10.0.0.5", 6379, "", "s3cret", 0},
    /* The password is taken literally, up to the last '@'. */
    {"redis://:p@ss:w/rd@h:7000", "h", 7000, "", "p@ss:w/rd", -1},
    {"redis://:pa#ss@host:6379", "host", 6379, "", "pa#ss", -1},
    {"redis://[::1]:6380/2", "::1", 6380, "", "", 2},
    {"redis://[::1]", "::1", 6379, "", "", -1},
    {"unix:///run/redis/redis.sock", "", 0, "/run/redis/redis.sock", "", -1},
};

static const char *const invalid[] = {
    "",
    "redis://",
    "redis://:6379",
    "redis://h:0",
    "redis://h:65536",
    "redis://h:63x9",
    "redis://h:",
    "redis://h/x",
    "redis://h/-1",
    "redis://user:pass@h:6379",
    "redis://[::1",
    "redis://[::1]x",
    "rediss://h:6379",
    "http://h:6379",
    "unix://relative/path",
    "unix://",
};

static void test_redis_addr_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        redis_addr a;
        assert_int_equal(redis_addr_parse(valid[i].url, &a), 0);
        assert_string_equal(a.host, valid[i].host);
        if (valid[i].host[0])
            assert_int_equal(a.port, valid[i].port);
        assert_string_equal(a.path, valid[i].path);
        assert_string_equal(a.password, valid[i].password);
        assert_int_equal(a.db, valid[i].db);
    }
}

static void test_redis_addr_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        redis_addr a;
        if (redis_addr_parse(invalid[i], &a) != -1)
            fail_msg("accepted \"%s\"", invalid[i]);
    }
    redis_addr a;
    assert_int_equal(redis_addr_parse(NULL, &a), -1);
}

static void test_redis_addr_too_long(void **state)
{
    (void)state;
    char url[1200] = "unix:///";
    memset(url + 8, 'a', 200);
    redis_addr a;
    assert_int_equal(redis_addr_parse(url, &a), -1);
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 600);
    strcpy(url + 609, "@h:1");
    assert_int_equal(redis_addr_parse(url, &a), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_addr_valid),
        cmocka_unit_test(test_redis_addr_invalid),
        cmocka_unit_test(test_redis_addr_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
