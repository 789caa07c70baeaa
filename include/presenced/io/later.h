/* later — calls made on a later turn of the loop, never during the call that asked for them.
 *
 * The stores and the Redis client promise that a callback never runs inside the call that was
 * given it. When such a call fails at once (an allocation failed before the request could be
 * queued), the failure still has to travel to a later turn, and without taking memory to do so:
 * a `later` keeps a fixed reserve of calls. Only when more than LATER_RESERVE calls fail within
 * one turn does a call run at once, logged as an error.
 *
 * A call is a callback of the caller's own type, stored as `cb` and run by the caller's `run`
 * trampoline, which casts it back.
 */
#ifndef PRESENCED_LATER_H
#define PRESENCED_LATER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#define LATER_RESERVE 64

typedef struct later_call later_call;
struct later_call {
    void (*run)(const later_call *call); /* calls `cb` with `ud` and `err` */
    void (*cb)(void);                    /* the caller's callback, cast */
    void *ud;
    int err;
};

/* Embedded in its owner. `idle` stays the first member: its callback finds the later from it,
 * and its `data` is the owner's, for the close callback. */
typedef struct later {
    uv_idle_t idle;
    later_call calls[LATER_RESERVE];
    size_t n;
    const char *name; /* for the log */
    bool closing;
} later;

/* Set up on `loop`; `owner` becomes idle.data. `name` (static) names the owner in the log. */
void later_init(later *l, uv_loop_t *loop, void *owner, const char *name);
/* Run `call` on a later turn (see above for a full reserve). */
void later_queue(later *l, later_call call);
/* Run what is queued now (the owner is going away: its callbacks still run exactly once) and
 * close the handle; `closed` runs once it is closed, with the handle whose data is the owner.
 * Calls queued after this run at once. */
void later_close(later *l, uv_close_cb closed);

/* Start `t` (one shot) to fire `ms` from the loop's now, and never before the loop has polled
 * again. libuv 1.44 runs, within one pass, a timer that its own callback re-armed with 0 ms, so a
 * callback that re-arms for "now" while it waits on I/O would spin there forever and the loop
 * would never poll: every timer whose delay is computed (a deadline already past, a library
 * asking for 0) is started here, where 0 becomes 1 ms. */
void later_timer(uv_timer_t *t, uv_timer_cb cb, uint64_t ms);

#endif
