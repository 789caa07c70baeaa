/* Unit tests for pres_err: every row of the error table reads back, and what a client is told
 * for each store failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/pres_err.h"

static void test_every_row(void **state)
{
    (void)state;
    int seen = 0;
#define CHECK_ROW(name, value, message, code, status)                                              \
    assert_int_equal(PRES_ERR_##name, value);                                                      \
    assert_string_equal(pres_err_message(value), message);                                         \
    assert_string_equal(pres_err_code(value), code);                                               \
    assert_int_equal(pres_err_status(value), status);                                              \
    seen++;
    PRES_ERR_TABLE(CHECK_ROW)
#undef CHECK_ROW
    assert_int_equal(seen, 10);
}

static void test_client_answers(void **state)
{
    (void)state;
    /* Redis down and a daemon going away both tell the client to retry, elsewhere if need be. */
    assert_string_equal(pres_err_code(PRES_ERR_UNAVAILABLE), "store_unavailable");
    assert_int_equal(pres_err_status(PRES_ERR_UNAVAILABLE), 503);
    assert_string_equal(pres_err_code(PRES_ERR_SHUTDOWN), "store_unavailable");
    assert_int_equal(pres_err_status(PRES_ERR_SHUTDOWN), 503);
    assert_string_equal(pres_err_code(PRES_ERR_NOMEM), "internal");
    assert_int_equal(pres_err_status(PRES_ERR_NOMEM), 500);
}

static void test_outside_the_table(void **state)
{
    (void)state;
    assert_string_equal(pres_err_message(PRES_OK), "ok");
    assert_string_equal(pres_err_message(-1000), "internal store error");
    assert_string_equal(pres_err_code(42), "internal");
    assert_int_equal(pres_err_status(-9), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_row),
        cmocka_unit_test(test_client_answers),
        cmocka_unit_test(test_outside_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
