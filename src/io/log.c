#include "presenced/io/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static log_level current = LOG_INFO;
static const char *const names[] = {"error", "warn", "info", "debug"};
static char context[64];

void log_set_level(log_level level)
{
    current = level;
}

void log_set_context(const char *fields)
{
    snprintf(context, sizeof(context), "%s", fields ? fields : "");
}

int log_enabled(log_level level)
{
    return level <= current;
}

void log_msg(log_level level, const char *msg, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per part, but stderr is unbuffered only per call: build the line first so
     * concurrent writers (the worker processes share stderr) never interleave halves. */
    char line[1024];
    int n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s msg=\"%s\"%s%s", when,
                     ts.tv_nsec / 1000000, names[level], msg, context[0] ? " " : "", context);
    if (fmt && n > 0 && (size_t)n < sizeof(line) - 1) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}
