/* Unit tests for addr: HOST:PORT and Redis URLs, one set of rules for the configuration and the
 * Redis client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/addr.h"

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
    /* Without a port, the redis URI scheme's default. */
    {"redis://localhost", "localhost", 6379, "", "", -1},
    {"redis://h", "h", 6379, "", "", -1},
    {"redis://localhost/", "localhost", 6379, "", "", -1},
    {"redis://h:1/0", "h", 1, "", "", 0},
    {"redis://h:65535/15", "h", 65535, "", "", 15},
    {"redis://h/2147483647", "h", 6379, "", "", 2147483647},
    {"redis://:s3cret@10.0.0.5:6379/0", "10.0.0.5", 6379, "", "s3cret", 0},
    /* The password is taken literally, up to the last '@'. */
    {"redis://:p@ss:w/rd@h:7000", "h", 7000, "", "p@ss:w/rd", -1},
    {"redis://:p@ss@db.local:6380/5", "db.local", 6380, "", "p@ss", 5},
    {"redis://:pa#ss@host:6379", "host", 6379, "", "pa#ss", -1},
    {"redis://[::1]:6380/2", "::1", 6380, "", "", 2},
    {"redis://[::1]", "::1", 6379, "", "", -1},
    {"unix:///run/redis/redis.sock", "", 0, "/run/redis/redis.sock", "", -1},
};

/* Each with a word of the reason it must give. */
static const struct {
    const char *url, *why;
} invalid[] = {
    {"", "no URL"},
    {"redis://", "empty host"},
    {"redis://:6379", "empty host"},
    {"redis://h:0", "out of range"},
    {"redis://h:65536", "out of range"},
    {"redis://h:63x9", "not a decimal"},
    {"redis://h:", "empty port"},
    {"redis://h/x", "not a decimal"},
    {"redis://h/-1", "not a decimal"},
    {"redis://h/2147483648", "out of range"},
    {"redis://user:pass@h:6379", "user names"},
    {"redis://:@h:1", "empty password"},
    {"redis://:a b@h:1", "space"},
    {"redis://[::1", "']'"},
    {"redis://[::1]x", "expected ':PORT'"},
    {"redis://::1:6379", "brackets"},
    {"redis://[1.2.3.4]:1", "only for IPv6"},
    {"redis://a b:1", "invalid character"},
    {"rediss://h:6379", "expected redis://"},
    {"http://h:6379", "expected redis://"},
    {"unix://relative/path", "absolute"},
    {"unix://", "absolute"},
    {"unix:///", "absolute"},
    {"unix:///tmp/a\tb", "control character"},
};

static void test_redis_valid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        addr_redis a;
        char why[128] = "";
        if (addr_redis_parse(valid[i].url, &a, why, sizeof(why)) != 0)
            fail_msg("refused \"%s\": %s", valid[i].url, why);
        assert_string_equal(a.host, valid[i].host);
        assert_int_equal(a.port, valid[i].port);
        assert_string_equal(a.path, valid[i].path);
        assert_string_equal(a.password, valid[i].password);
        assert_int_equal(a.db, valid[i].db);
    }
}

static void test_redis_invalid(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        addr_redis a;
        char why[128] = "";
        if (addr_redis_parse(invalid[i].url, &a, why, sizeof(why)) != -1)
            fail_msg("accepted \"%s\"", invalid[i].url);
        if (!strstr(why, invalid[i].why))
            fail_msg("\"%s\": reason \"%s\" does not say \"%s\"", invalid[i].url, why,
                     invalid[i].why);
    }
    addr_redis a;
    assert_int_equal(addr_redis_parse(NULL, &a, NULL, 0), -1);
}

static void test_redis_too_long(void **state)
{
    (void)state;
    char url[1200] = "unix:///";
    memset(url + 8, 'a', 200);
    addr_redis a;
    char why[128];
    assert_int_equal(addr_redis_parse(url, &a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 600);
    strcpy(url + 609, "@h:1");
    assert_int_equal(addr_redis_parse(url, &a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
    strcpy(url, "redis://");
    memset(url + 8, 'h', 300);
    strcpy(url + 308, ":1");
    assert_int_equal(addr_redis_parse(url, &a, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than"));
}

static void test_hostport(void **state)
{
    (void)state;
    char host[64], why[128];
    uint16_t port = 1;
    assert_int_equal(addr_hostport_parse("[fe80::1%eth0]:4000", host, sizeof(host), &port, false,
                                         why, sizeof(why)),
                     0);
    assert_string_equal(host, "fe80::1%eth0");
    assert_int_equal(port, 4000);
    /* An origin may leave its port out; a listener may not. */
    assert_int_equal(
        addr_hostport_parse("a.test", host, sizeof(host), &port, true, why, sizeof(why)), 0);
    assert_int_equal(port, 0);
    assert_int_equal(
        addr_hostport_parse("a.test", host, sizeof(host), &port, false, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "missing ':PORT'"));
    assert_int_equal(addr_hostport_parse("abcdefgh:1", host, 8, &port, false, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "longer than 7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_valid),
        cmocka_unit_test(test_redis_invalid),
        cmocka_unit_test(test_redis_too_long),
        cmocka_unit_test(test_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
