#include "presenced/sysd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "presenced/log.h"

struct sysd {
    uv_timer_t watchdog;
    bool ready;
};

static void watchdog_cb(uv_timer_t *t)
{
    (void)t;
    /* Sent from the loop itself: a loop that stops turning stops the keep-alives, and systemd
     * restarts the daemon. */
    sd_notify(0, "WATCHDOG=1");
}

static void send_status(const char *prefix, const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix, status ? status : "");
    sd_notify(0, msg);
}

sysd *sysd_new(uv_loop_t *loop)
{
    sysd *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    uv_timer_init(loop, &s->watchdog);
    s->watchdog.data = s;
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        /* Half the period, as sd_watchdog_enabled(3) recommends. */
        uint64_t ms = usec / 2000 ? usec / 2000 : 1;
        uv_timer_start(&s->watchdog, watchdog_cb, ms, ms);
        log_info("systemd watchdog enabled", "interval_ms=%llu", (unsigned long long)ms);
    }
    return s;
}

void sysd_ready(sysd *s, const char *status)
{
    if (!s || s->ready)
        return;
    s->ready = true;
    send_status("READY=1\n", status);
}

void sysd_status(sysd *s, const char *status)
{
    if (s)
        send_status("", status);
}

void sysd_stopping(sysd *s)
{
    if (s)
        send_status("STOPPING=1\n", "shutting down");
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
