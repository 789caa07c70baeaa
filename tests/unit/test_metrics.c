/* metrics: counters, gauges and histograms in the Prometheus text format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/core/metrics.h"

static void test_render(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    assert_non_null(m);
    metrics_family *c =
        metrics_family_get(m, METRICS_COUNTER, "x_total", "Things.", "kind", NULL, 0);
    metrics_family *g = metrics_family_get(m, METRICS_GAUGE, "y", "A level.", NULL, NULL, 0);
    static const double b[] = {0.1, 1};
    metrics_family *h = metrics_family_get(m, METRICS_HISTOGRAM, "z_seconds", "Time.", NULL, b, 2);
    assert_ptr_equal(metrics_family_get(m, METRICS_COUNTER, "x_total", "", NULL, NULL, 0), c);
    assert_null(metrics_family_get(m, METRICS_GAUGE, "x_total", "", NULL, NULL, 0));
    metrics_add(c, "a", 1);
    metrics_add(c, "a", 2);
    metrics_add(c, "q\"\\\n", 1);
    metrics_set(g, NULL, 7);
    metrics_set(g, NULL, 5);
    metrics_observe(h, NULL, 0.05);
    metrics_observe(h, NULL, 0.5);
    metrics_observe(h, NULL, 3);
    assert_true(metrics_value(c, "a") == 3);
    assert_true(metrics_value(c, "none") == 0);
    size_t len;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    static const char want[] = "# HELP x_total Things.\n"
                               "# TYPE x_total counter\n"
                               "x_total{kind=\"a\"} 3\n"
                               "x_total{kind=\"q\\\"\\\\\\n\"} 1\n"
                               "# HELP y A level.\n"
                               "# TYPE y gauge\n"
                               "y 5\n"
                               "# HELP z_seconds Time.\n"
                               "# TYPE z_seconds histogram\n"
                               "z_seconds_bucket{le=\"0.1\"} 1\n"
                               "z_seconds_bucket{le=\"1\"} 2\n"
                               "z_seconds_bucket{le=\"+Inf\"} 3\n"
                               "z_seconds_sum 3.55\n"
                               "z_seconds_count 3\n";
    assert_string_equal(text, want);
    free(text);
    metrics_free(m);
}

/* Values keep their precision: a time in seconds since the epoch to the hundredth, and a sum
 * that 15 digits would round. */
static void test_render_precision(void **state)
{
    (void)state;
    metrics *m = metrics_new();
    assert_non_null(m);
    metrics_family *t = metrics_family_get(m, METRICS_GAUGE, "t", "T.", NULL, NULL, 0);
    metrics_family *s = metrics_family_get(m, METRICS_GAUGE, "s", "S.", NULL, NULL, 0);
    metrics_set(t, NULL, 1796318060.57);
    metrics_set(s, NULL, 0.1 + 0.2);
    size_t len;
    char *text = metrics_render(m, &len);
    assert_non_null(text);
    assert_non_null(strstr(text, "\nt 1796318060.57\n"));
    assert_non_null(strstr(text, "\ns 0.30000000000000004\n"));
    free(text);
    metrics_free(m);
}

static void test_null_registry(void **state)
{
    (void)state;
    metrics_family *f = metrics_family_get(NULL, METRICS_COUNTER, "a", "b", NULL, NULL, 0);
    assert_null(f);
    metrics_add(f, NULL, 1);
    metrics_set(f, NULL, 1);
    metrics_observe(f, NULL, 1);
    assert_true(metrics_value(f, NULL) == 0);
    size_t len = 1;
    char *text = metrics_render(NULL, &len);
    assert_non_null(text);
    assert_int_equal(len, 0);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_precision),
        cmocka_unit_test(test_null_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
