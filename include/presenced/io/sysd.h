/* sysd — telling systemd how the daemon is doing (sd_notify): READY once it listens and its
 * store is reachable, STATUS lines, STOPPING, and watchdog keep-alives from the loop. Without
 * systemd (no NOTIFY_SOCKET) every call does nothing.
 *
 * A worker process (workers > 1) tells its supervisor instead, which alone talks to systemd
 * (NotifyAccess=main): the same messages go down a pipe, each ending with a NUL byte, and the
 * keep-alive ("WATCHDOG=1") goes every second whether or not systemd asked for a watchdog.
 */
#ifndef PRESENCED_SYSD_H
#define PRESENCED_SYSD_H

#include <stdint.h>

#include <uv.h>

typedef struct sysd sysd;

/* Start the watchdog keep-alive timer on `loop` when systemd asked for one (WatchdogSec=).
 * Returns NULL when memory is short. */
sysd *sysd_new(uv_loop_t *loop);
/* Send to the write end of a pipe (`fd`, borrowed, made non-blocking) instead of systemd, with a
 * keep-alive every SYSD_RELAY_ALIVE_MS. Returns NULL when memory is short. */
sysd *sysd_new_relay(uv_loop_t *loop, int fd);
#define SYSD_RELAY_ALIVE_MS 1000
/* READY=1 the first time, with `status`; later calls only update the status. */
void sysd_ready(sysd *s, const char *status);
void sysd_status(sysd *s, const char *status);
void sysd_stopping(sysd *s);
/* Stop the timer; the memory is freed when libuv has closed it. */
void sysd_free(sysd *s);

/* For a process without a loop (the workers' supervisor): send `state` (e.g. "READY=1") to
 * systemd; nothing without NOTIFY_SOCKET. */
void sysd_notify(const char *state);
/* The watchdog period systemd asked this process for, in microseconds; 0 for none. */
uint64_t sysd_watchdog_usec(void);

#endif
