/* sysd — telling systemd how the daemon is doing (sd_notify): READY once it listens and its
 * store is reachable, STATUS lines, STOPPING, and watchdog keep-alives from the loop. Without
 * systemd (no NOTIFY_SOCKET) every call does nothing.
 */
#ifndef PRESENCED_SYSD_H
#define PRESENCED_SYSD_H

#include <uv.h>

typedef struct sysd sysd;

/* Start the watchdog keep-alive timer on `loop` when systemd asked for one (WatchdogSec=).
 * Returns NULL when memory is short. */
sysd *sysd_new(uv_loop_t *loop);
void sysd_ready(sysd *s, const char *status);
void sysd_status(sysd *s, const char *status);
void sysd_stopping(sysd *s);
/* Stop the timer; the memory is freed when libuv has closed it. */
void sysd_free(sysd *s);

#endif
