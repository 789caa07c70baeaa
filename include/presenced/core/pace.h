/* pace — how many new connections a worker accepts in one turn of its event loop.
 *
 * Everything a loop does between two waits for I/O is one turn: timers (among them the Redis
 * lease refresh, pings, long-poll timeouts) and the HTTP API wait for the turn to end. A worker
 * that accepts every connection waiting in a reconnect storm then has thousands of handshakes in
 * flight, each of which costs work in the turns that follow (the upgrade request, the Engine.IO
 * open, the Socket.IO CONNECT, its registration and reply); libuv serves up to 48 rounds of 1024
 * ready descriptors in one turn, so a turn can last seconds, and a lease not refreshed in time
 * makes the other instances reap a live worker.
 *
 * The rule keeps the busy time of a turn near `target_ms` by adjusting the number of accepts per
 * turn (additive increase, multiplicative decrease, as TCP does with its window): a turn that
 * was busy longer than the target halves the budget of the next one (not below `min`); a turn
 * that stayed under it and used its whole budget (connections were left waiting) raises it by
 * `min` (not above `max`). Connections not accepted wait in the kernel's listen queue for the
 * next turn. A loop that is not busy is not slowed down: while turns stay short the budget grows
 * to `max`.
 *
 * Pure code: no I/O, no clock (the caller measures each turn's busy time), no globals.
 * Caller-owned storage.
 */
#ifndef PRESENCED_PACE_H
#define PRESENCED_PACE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pace {
    uint32_t min, max;  /* bounds of the budget, accepts per turn */
    uint32_t target_us; /* busy time a turn should stay under */
    uint32_t budget;    /* accepts allowed in the current turn */
    uint32_t taken;     /* accepted so far in the current turn */
    bool limited;       /* the current turn wanted more than its budget */
} pace;

/* Start at `min` accepts per turn (a storm may hit a loop that has just started), growing up to
 * `max` while turns stay under `target_ms` of busy time; 1 <= `min` <= `max`. */
void pace_init(pace *p, uint32_t min, uint32_t max, uint32_t target_ms);

/* May one more connection be accepted in the current turn? Counts it when it may; when it may
 * not, remembers that connections were left waiting. */
bool pace_take(pace *p);

/* The current turn ended after `busy_us` of work (its wall time less the time it waited for
 * I/O): set the next turn's budget and start it. */
void pace_turn(pace *p, uint64_t busy_us);

#endif
