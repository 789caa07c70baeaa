/* Unit tests for metrics_def: every family of the table is declared once, with a help text, and
 * asking again finds the same family. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/metrics_def.h"

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_every_family_once(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    assert_non_null(m);
    for (int id = 0; id < METRIC_COUNT; id++) {
        metrics_family *f = metrics_def_get(m, (metrics_def)id);
        assert_non_null(f);
        assert_ptr_equal(metrics_def_get(m, (metrics_def)id), f);
    }
    size_t len;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    /* One help line and one type line per family: no two rows share a name. */
    assert_int_equal(count(text, "# HELP "), METRIC_COUNT);
    assert_int_equal(count(text, "# TYPE "), METRIC_COUNT);
    assert_int_equal(count(text, "# HELP process_"), 6);
    assert_int_equal(count(text, "# HELP presenced_limit_hits_total Requests refused"), 1);
    assert_int_equal(count(text, "# TYPE presenced_store_command_seconds histogram"), 1);
    free(text);
    metrics_free(m);
}

static void test_out_of_range(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    assert_null(metrics_def_get(m, METRIC_COUNT));
    assert_null(metrics_def_get(m, (metrics_def)-1));
    assert_null(metrics_def_get(NULL, METRIC_ROOMS));
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_family_once),
        cmocka_unit_test(test_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
