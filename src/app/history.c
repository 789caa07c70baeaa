/* The live page's history (history.h): a timer that closes one stats_ring interval at a time
 * with the cluster's counts. */
#include "presenced/app/history.h"

#include <stdbool.h>
#include <stdlib.h>

#include "presenced/core/stats_ring.h"
#include "presenced/io/host.h"

struct history {
    stats_ring ring;
    uv_timer_t timer;
    store *st;
    /* The owner and a pending store read: the store answers exactly once, also after the owner
     * let go (the timer is closed as the API's own: the loop runs between stop and free). */
    unsigned refs;
    bool stopped;
};

static void unref(history *h)
{
    if (--h->refs == 0)
        free(h);
}

static void on_stats(int err, const store_stats *s, void *ud)
{
    history *h = ud;
    if (!h->stopped)
        stats_ring_push(&h->ring, host_wall_ms(), err ? -1 : (int64_t)s->users_online,
                        err ? -1 : (int64_t)s->sockets);
    unref(h);
}

static void on_tick(uv_timer_t *t)
{
    history *h = t->data;
    if (!h->st || !store_available(h->st)) {
        stats_ring_push(&h->ring, host_wall_ms(), -1, -1);
        return;
    }
    h->refs++;
    store_stats_get(h->st, on_stats, h);
}

history *history_new(uv_loop_t *loop, uint32_t interval_ms)
{
    history *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    stats_ring_init(&h->ring, interval_ms);
    h->refs = 1;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_tick, interval_ms, interval_ms);
    uv_unref((uv_handle_t *)&h->timer);
    return h;
}

void history_attach_store(history *h, store *st)
{
    if (h)
        h->st = st;
}

void history_event(history *h, const pres_event *ev)
{
    if (h && (ev->type == PRES_EV_ONLINE || ev->type == PRES_EV_OFFLINE))
        stats_ring_count(&h->ring, ev->type == PRES_EV_ONLINE);
}

cJSON *history_json(const history *h)
{
    return h ? stats_ring_json(&h->ring) : NULL;
}

void history_stop(history *h)
{
    if (!h || h->stopped)
        return;
    h->stopped = true;
    h->st = NULL;
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, NULL);
}

void history_free(history *h)
{
    if (!h)
        return;
    history_stop(h);
    unref(h);
}
