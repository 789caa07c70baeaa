/* log — one logfmt line per event on stderr: `ts=... level=info msg="..." key=value ...`.
 * Only the io and app layers log.
 */
#ifndef PRESENCED_LOG_H
#define PRESENCED_LOG_H

typedef enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level;

void log_set_level(log_level level);
/* Fields written on every line of this process right after msg (logfmt, e.g. "worker=2"), or
 * NULL for none. Copied (at most 63 bytes). */
void log_set_context(const char *fields);
int log_enabled(log_level level);
/* `fmt` formats the fields after msg (already logfmt: key=value pairs), may be NULL. */
void log_msg(log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
