/* workers — several processes serving one port (configuration key `workers` above 1).
 *
 * The process started becomes a supervisor that serves nothing itself. It creates one
 * SO_REUSEPORT group of `workers` listening sockets on `listen` (reuseport.h: the kernel sends
 * all connections of one client address to the same member) and forks one worker per member.
 * Each worker runs the normal daemon on its member socket, with its own loop, Redis connections,
 * instance id and lease: exactly like separate instances sharing Redis.
 *
 * The supervisor alone talks to systemd (NotifyAccess=main): READY=1 once every worker has said
 * it is ready (through a pipe, see sysd_new_relay()), STOPPING=1, and WATCHDOG=1 while it runs;
 * with a watchdog, a worker whose keep-alives stop is killed (SIGABRT) and started again. It
 * passes SIGTERM, SIGINT and SIGHUP on to the workers and waits for them on a stop; a worker that
 * exits unexpectedly is logged and started again after WORKERS_RESTART_MS.
 */
#ifndef PRESENCED_WORKERS_H
#define PRESENCED_WORKERS_H

#include <stdbool.h>
#include <stdint.h>

#include "presenced/app/cfg.h"

#define WORKERS_RESTART_MS 1000
/* A worker that exits this many times in a row before it was ever ready stops the supervisor
 * (exit 1), rather than restarting forever what cannot start (e.g. its admin port is taken). */
#define WORKERS_MAX_FAILED_STARTS 5

/* What a worker process is given. */
typedef struct workers_child {
    uint32_t index; /* 0 .. count - 1; also in every log line as worker=<index> */
    uint32_t count;
    int listen_fd; /* its member of the SO_REUSEPORT group (io_server_opts.listen_fd) */
    int notify_fd; /* write end of its pipe to the supervisor (sysd_new_relay) */
    bool reload;   /* a SIGHUP reached the supervisor before this start: reload at start, so a
                      restarted worker runs what its siblings run */
} workers_child;

/* The daemon, run in a worker process right after fork; returns the worker's exit status. */
typedef int (*workers_main_fn)(const workers_child *w, void *ud);

/* Supervise c->workers workers until SIGTERM or SIGINT; returns the supervisor's exit status: 0
 * when every worker stopped cleanly, 1 otherwise or when the port cannot be listened on. `c` and
 * `ud` are borrowed for the whole call (each worker gets its copy with fork). */
int workers_supervise(const cfg *c, workers_main_fn main_fn, void *ud);

/* In a worker: its signal handlers are in place. SIGTERM, SIGINT and SIGHUP stay blocked from
 * fork until then (a SIGHUP passed on at that moment would otherwise kill it), and are delivered
 * now. */
void workers_child_ready_for_signals(void);

#endif
