/* The live page's history: a fixed ring of per-interval samples (stats_ring.h). */
#include "presenced/core/stats_ring.h"

#include <string.h>

void stats_ring_init(stats_ring *r, uint32_t interval_ms)
{
    memset(r, 0, sizeof(*r));
    r->interval_ms = interval_ms;
}

void stats_ring_count(stats_ring *r, bool online)
{
    if (online)
        r->online++;
    else
        r->offline++;
}

void stats_ring_push(stats_ring *r, int64_t now_ms, int64_t users_online, int64_t sockets)
{
    r->slots[r->head] = (stats_sample){.t_ms = now_ms,
                                       .users_online = users_online < 0 ? -1 : users_online,
                                       .sockets = sockets < 0 ? -1 : sockets,
                                       .online = r->online,
                                       .offline = r->offline};
    r->head = (r->head + 1) % STATS_RING_SLOTS;
    if (r->count < STATS_RING_SLOTS)
        r->count++;
    r->online = r->offline = 0;
}

size_t stats_ring_len(const stats_ring *r)
{
    return r->count;
}

const stats_sample *stats_ring_at(const stats_ring *r, size_t i)
{
    return &r->slots[(r->head + STATS_RING_SLOTS - r->count + i) % STATS_RING_SLOTS];
}

/* A count, or null when unknown. */
static bool add_count(cJSON *o, const char *name, int64_t v)
{
    return v < 0 ? cJSON_AddNullToObject(o, name) != NULL
                 : cJSON_AddNumberToObject(o, name, (double)v) != NULL;
}

static cJSON *sample_json(const stats_sample *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "t", (double)s->t_ms) ||
        !add_count(o, "usersOnline", s->users_online) || !add_count(o, "sockets", s->sockets) ||
        !cJSON_AddNumberToObject(o, "online", s->online) ||
        !cJSON_AddNumberToObject(o, "offline", s->offline)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *stats_ring_json(const stats_ring *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *list = o && cJSON_AddNumberToObject(o, "intervalMs", r->interval_ms)
                      ? cJSON_AddArrayToObject(o, "samples")
                      : NULL;
    for (size_t i = 0; list && i < r->count; i++) {
        cJSON *s = sample_json(stats_ring_at(r, i));
        if (!s || !cJSON_AddItemToArray(list, s)) {
            cJSON_Delete(s);
            list = NULL;
        }
    }
    if (!list) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
