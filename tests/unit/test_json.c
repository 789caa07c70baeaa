/* The compact JSON printer: numbers read back exactly, strings escaped as JSON requires. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/json.h"

static void check(const char *in, const char *want)
{
    cJSON *v = cJSON_Parse(in);
    assert_non_null(v);
    buf b;
    buf_init(&b);
    assert_int_equal(json_append(&b, v), 0);
    assert_int_equal(buf_append_byte(&b, 0), 0);
    assert_string_equal((char *)b.data, want);
    buf_deinit(&b);
    cJSON_Delete(v);
}

static void test_vectors(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"9007199254740991", "9007199254740991"},
        {"-9007199254740991", "-9007199254740991"},
        {"0", "0"},
        {"-0", "0"},
        {"0.1", "0.1"},
        {"1.5", "1.5"},
        {"1e300", "1e+300"},
        {"123456789012345678901", "1.2345678901234568e+20"},
        {"1e19", "1e+19"},
        {"-1e300", "-1e+300"},
        {"3.141592653589793", "3.141592653589793"},
        {"[1,\"2\",{\"3\":[true]}]", "[1,\"2\",{\"3\":[true]}]"},
        {"{\"a\":null,\"b\":false,\"c\":[]}", "{\"a\":null,\"b\":false,\"c\":[]}"},
        {"\"q\\\"b\\\\n\\n\\t\\u0001\"", "\"q\\\"b\\\\n\\n\\t\\u0001\""},
        {"\"h\xc3\xa9 \xe2\x82\xac\"", "\"h\xc3\xa9 \xe2\x82\xac\""},
        {"{}", "{}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check(cases[i][0], cases[i][1]);
}

static void test_numbers_round_trip(void **state)
{
    (void)state;
    /* Every printed double parses back to the same value. */
    double x = 1.0;
    for (int i = 0; i < 2000; i++) {
        x = x * 1.37 + 0.1;
        if (x > 1e250)
            x = 1e-5;
        cJSON *n = cJSON_CreateNumber(x);
        buf b;
        buf_init(&b);
        assert_int_equal(json_append(&b, n), 0);
        assert_int_equal(buf_append_byte(&b, 0), 0);
        cJSON *back = cJSON_Parse((char *)b.data);
        assert_non_null(back);
        assert_true(back->valuedouble == x);
        cJSON_Delete(back);
        buf_deinit(&b);
        cJSON_Delete(n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_numbers_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
