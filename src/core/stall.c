/* stall — see stall.h. */
#include "presenced/core/stall.h"

void stall_init(stall_watch *w, uint32_t min_ms, uint32_t max_ms, uint64_t now)
{
    *w = (stall_watch){.min_ms = min_ms,
                       .max_ms = max_ms < min_ms ? min_ms : max_ms,
                       .last_progress = now,
                       .pace_start = now};
}

/* Move the pace windows on to `now`: a silence counts for one to two windows. */
static void pace_rotate(stall_watch *w, uint64_t now)
{
    if (now - w->pace_start < STALL_PACE_WINDOW_MS)
        return;
    w->pace_prev = now - w->pace_start < 2 * STALL_PACE_WINDOW_MS ? w->pace_cur : 0;
    w->pace_cur = 0;
    w->pace_start = now;
}

void stall_sent(stall_watch *w, uint64_t now)
{
    if (w->pending++ == 0)
        w->last_progress = now;
}

void stall_reply(stall_watch *w, uint64_t now, bool answered)
{
    if (w->pending == 0)
        return;
    w->pending--;
    if (!answered)
        return;
    if (now > w->last_progress) {
        uint64_t silence = now - w->last_progress;
        pace_rotate(w, now);
        if (silence > w->pace_cur)
            w->pace_cur = silence;
    }
    w->last_progress = now;
}

void stall_reset(stall_watch *w)
{
    w->pending = 0;
}

uint64_t stall_limit(const stall_watch *w, uint64_t now)
{
    uint64_t age = now >= w->pace_start ? now - w->pace_start : 0;
    uint64_t pace = 0;
    if (age < 2 * STALL_PACE_WINDOW_MS) {
        pace = w->pace_cur;
        if (age < STALL_PACE_WINDOW_MS && w->pace_prev > pace)
            pace = w->pace_prev;
    }
    uint64_t limit = pace * STALL_PACE_FACTOR;
    if (limit < w->min_ms)
        limit = w->min_ms;
    if (limit > w->max_ms)
        limit = w->max_ms;
    return limit;
}

bool stall_check(stall_watch *w, uint64_t now, uint32_t round_ms)
{
    /* A round that comes late means this process did not run: replies may be waiting unread
     * (timers run before the loop reads sockets). The time it lost is not the peer's silence. */
    if (w->last_round && now - w->last_round > 2 * (uint64_t)round_ms)
        w->last_progress += now - w->last_round - round_ms;
    w->last_round = now;
    if (w->last_progress > now)
        w->last_progress = now;
    return w->pending > 0 && now - w->last_progress >= stall_limit(w, now);
}
