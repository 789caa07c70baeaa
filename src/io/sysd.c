#include "presenced/io/sysd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "presenced/io/log.h"

struct sysd {
    uv_timer_t watchdog;
    bool ready;
    int relay_fd; /* -1: systemd */
};

/* One message, to systemd or down the relay pipe. Messages are far below PIPE_BUF, so each
 * write is atomic; when the pipe is full (the supervisor is not reading) it is dropped. */
static void send_msg(sysd *s, const char *msg)
{
    if (s->relay_fd < 0) {
        sd_notify(0, msg);
        return;
    }
    ssize_t n;
    do
        n = write(s->relay_fd, msg, strlen(msg) + 1);
    while (n < 0 && errno == EINTR);
}

static void watchdog_cb(uv_timer_t *t)
{
    /* Sent from the loop itself: a loop that stops turning stops the keep-alives, and systemd
     * (or the supervisor) restarts the daemon. */
    send_msg(t->data, "WATCHDOG=1");
}

static void send_status(sysd *s, const char *prefix, const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix, status ? status : "");
    send_msg(s, msg);
}

static sysd *sysd_alloc(uv_loop_t *loop, int relay_fd)
{
    sysd *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->relay_fd = relay_fd;
    uv_timer_init(loop, &s->watchdog);
    s->watchdog.data = s;
    return s;
}

sysd *sysd_new(uv_loop_t *loop)
{
    sysd *s = sysd_alloc(loop, -1);
    if (!s)
        return NULL;
    uint64_t usec = sysd_watchdog_usec();
    if (usec > 0) {
        /* Half the period, as sd_watchdog_enabled(3) recommends. */
        uint64_t ms = usec / 2000 ? usec / 2000 : 1;
        uv_timer_start(&s->watchdog, watchdog_cb, ms, ms);
        log_info("systemd watchdog enabled", "interval_ms=%llu", (unsigned long long)ms);
    }
    return s;
}

sysd *sysd_new_relay(uv_loop_t *loop, int fd)
{
    sysd *s = sysd_alloc(loop, fd);
    if (!s)
        return NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    uv_timer_start(&s->watchdog, watchdog_cb, 0, SYSD_RELAY_ALIVE_MS);
    return s;
}

void sysd_ready(sysd *s, const char *status)
{
    if (!s)
        return;
    send_status(s, s->ready ? "" : "READY=1\n", status);
    s->ready = true;
}

void sysd_status(sysd *s, const char *status)
{
    if (s)
        send_status(s, "", status);
}

void sysd_stopping(sysd *s)
{
    if (s)
        send_status(s, "STOPPING=1\n", "shutting down");
}

static void closed(uv_handle_t *h)
{
    free(h->data);
}

void sysd_free(sysd *s)
{
    if (!s)
        return;
    uv_timer_stop(&s->watchdog);
    uv_close((uv_handle_t *)&s->watchdog, closed);
}

void sysd_notify(const char *state)
{
    sd_notify(0, state);
}

uint64_t sysd_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
