/* stall — when a connection whose requests get no reply is dead, told apart from one that is
 * slow (docs/operations.md, "Slow or dead").
 *
 * The rule: while requests are outstanding, the peer is making progress as long as replies keep
 * coming. A silence (time since the last reply, or since the first request after an idle moment)
 * is normal while it is shorter than the limit; a silence that reaches it means the connection is
 * dead. The limit is three times the longest silence the peer ended with a reply in the last
 * 30-60 s, never below `min_ms` nor above `max_ms`: a peer that has been answering promptly is
 * declared dead `min_ms` after it stops, a peer that has shown it answers after long silences
 * (a loaded Redis, starved of CPU) is given time in proportion, up to `max_ms`. The time this
 * process itself did not run (its loop busy, the host giving it no CPU: seen as a check round
 * that comes late) is not the peer's silence.
 *
 * Pure code: no I/O, no clock (every call takes `now`, ms), no globals. Caller-owned storage.
 */
#ifndef PRESENCED_STALL_H
#define PRESENCED_STALL_H

#include <stdbool.h>
#include <stdint.h>

#define STALL_PACE_WINDOW_MS 30000 /* a silence counts for the limit for 30 to 60 s */
#define STALL_PACE_FACTOR 3

typedef struct stall_watch {
    uint32_t min_ms, max_ms;
    unsigned pending;       /* requests without a reply */
    uint64_t last_progress; /* last reply, or when `pending` left 0 */
    uint64_t last_round;    /* the previous stall_check (0: none yet) */
    uint64_t pace_cur;      /* longest silence ended since pace_start */
    uint64_t pace_prev;     /* ... in the window before */
    uint64_t pace_start;    /* start of the current window */
} stall_watch;

/* Start with nothing outstanding and no silence seen; `min_ms` <= `max_ms`. */
void stall_init(stall_watch *w, uint32_t min_ms, uint32_t max_ms, uint64_t now);

/* A request was sent at `now`. */
void stall_sent(stall_watch *w, uint64_t now);

/* The oldest outstanding request got its reply at `now`; `answered` is false when it ended
 * without one (it then proves nothing about the peer). Ignored with nothing outstanding. */
void stall_reply(stall_watch *w, uint64_t now, bool answered);

/* The connection is gone: nothing is outstanding any more. What was learnt of the peer's pace
 * is kept for the next connection to it. */
void stall_reset(stall_watch *w);

/* The silence that is still normal at `now`, in ms. */
uint64_t stall_limit(const stall_watch *w, uint64_t now);

/* A check round at `now`; rounds are due every `round_ms`, and one that comes late means this
 * process did not run for the difference, which is not counted as silence. Returns true when the
 * connection is dead: requests outstanding and a silence that reached the limit. */
bool stall_check(stall_watch *w, uint64_t now, uint32_t round_ms);

#endif
