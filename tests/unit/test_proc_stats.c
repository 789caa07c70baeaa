/* Unit tests for proc_stats: /proc/PID/stat lines (including command names that look like
 * fields), and the figures read for this very process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "presenced/io/proc_stats.h"

/* Fields 3..21 of a real line, then starttime, vsize, rss and the rest. */
#define MIDDLE "R 26883 26883 5400 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 "
#define TAIL " 18446744073709551615 94242816389120 94242816409001 0 0 0 17 0 0 0"

static const struct {
    const char *line;
    int rc;
    unsigned long long start, vsize, rss;
} stat_cases[] = {
    {"26890 (presenced) " MIDDLE "200668 3133440 360" TAIL, 0, 200668, 3133440, 360},
    /* A command name with spaces, parentheses and digits: fields start after its last ')'. */
    {"7 (a) 1 2 (b)) " MIDDLE "5 6 7" TAIL, 0, 5, 6, 7},
    {"7 ()) " MIDDLE "5 6 7\n", 0, 5, 6, 7},
    /* Too short, a field that is not a number, no command name at all. */
    {"7 (a) " MIDDLE "5 6", -1, 0, 0, 0},
    {"7 (a) " MIDDLE "5 x 7", -1, 0, 0, 0},
    {"7 (a) R 1 2", -1, 0, 0, 0},
    {"7 a " MIDDLE "5 6 7", -1, 0, 0, 0},
    {"", -1, 0, 0, 0},
};

static void test_stat_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(stat_cases) / sizeof(stat_cases[0]); i++) {
        proc_stat_fields f = {0};
        const char *line = stat_cases[i].line;
        int rc = proc_stat_parse(line, strlen(line), &f);
        if (rc != stat_cases[i].rc)
            fail_msg("case %zu: rc %d, want %d", i, rc, stat_cases[i].rc);
        if (rc == 0 && (f.start_ticks != stat_cases[i].start ||
                        f.vsize_bytes != stat_cases[i].vsize || f.rss_pages != stat_cases[i].rss))
            fail_msg("case %zu: %llu %llu %llu", i, f.start_ticks, f.vsize_bytes, f.rss_pages);
    }
}

/* The length bounds the input: a line cut before the rss field does not parse, whatever follows
 * in memory. */
static void test_stat_parse_respects_len(void **state)
{
    (void)state;
    const char *line = "7 (a) " MIDDLE "5 6 7";
    proc_stat_fields f;
    assert_int_equal(proc_stat_parse(line, strlen(line) - 2, &f), -1);
}

static void test_read_self(void **state)
{
    (void)state;
    proc_stats p;
    proc_stats_read(&p);
    assert_true(p.cpu_seconds >= 0);
    assert_true(p.resident_bytes > 0);
    assert_true(p.virtual_bytes >= p.resident_bytes);
    assert_true(p.open_fds >= 1);
    assert_true(p.max_fds >= p.open_fds);
    /* This test started less than an hour ago, and not in the future. */
    double now = (double)time(NULL);
    assert_true(p.start_time_s > now - 3600 && p.start_time_s <= now + 1);

    /* One more open file is one more descriptor. */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    proc_stats q;
    proc_stats_read(&q);
    close(fd);
    assert_true(q.open_fds == p.open_fds + 1);
    assert_true(q.start_time_s > p.start_time_s - 0.5 && q.start_time_s < p.start_time_s + 0.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stat_parse),
        cmocka_unit_test(test_stat_parse_respects_len),
        cmocka_unit_test(test_read_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
