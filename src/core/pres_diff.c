/* Views of presence and their batched changes (include/presenced/core/pres_diff.h). */
#include "presenced/core/pres_diff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/vec.h"

struct pres_diff_entry {
    char *user;
    bool was_absent; /* from the user's first change in the batch */
    bool present;
    char *status, *metadata;
};

bool pres_diff_shows(const char *status)
{
    return !status || strcmp(status, "invisible") != 0;
}

static bool in_rooms(const pres_event *ev, const char *room)
{
    for (size_t i = 0; i < ev->nrooms; i++)
        if (strcmp(ev->rooms[i], room) == 0)
            return true;
    return false;
}

/* An update moves a user into or out of views when it crosses the invisible line. */
static bool update_change(const pres_event *ev, pres_diff_change *c)
{
    bool was = pres_diff_shows(ev->prev_status), now = pres_diff_shows(ev->status);
    if (!was && !now)
        return false;
    c->was_absent = !was;
    c->present = now;
    return true;
}

bool pres_diff_change_of(const pres_event *ev, const char *room, pres_diff_change *c)
{
    *c = (pres_diff_change){
        .user = ev->user, .status = ev->status ? ev->status : "online", .metadata = ev->metadata};
    switch (ev->type) {
    case PRES_EV_ROOM_JOIN:
        /* The user's first socket in the room: nobody saw them there before. */
        if (!room || !ev->room || strcmp(ev->room, room) != 0 || !pres_diff_shows(ev->status))
            return false;
        c->was_absent = c->present = true;
        return true;
    case PRES_EV_ROOM_LEAVE:
        return room && ev->room && strcmp(ev->room, room) == 0;
    case PRES_EV_UPDATE:
        if (room && !in_rooms(ev, room))
            return false;
        return update_change(ev, c);
    case PRES_EV_ONLINE:
        if (room || !pres_diff_shows(ev->status))
            return false;
        c->was_absent = c->present = true;
        return true;
    case PRES_EV_OFFLINE:
        /* A room view saw the user's room leaves already; an invisible user was in no view. */
        return !room && pres_diff_shows(ev->status);
    case PRES_EV_DISCONNECT:
    case PRES_EV_RESET: /* not a change: the view starts again (watch_reset) */
        return false;
    }
    return false;
}

cJSON *pres_diff_entry_json(const char *user, const char *status, const char *metadata)
{
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "userId", user) &&
        cJSON_AddStringToObject(o, "status", status ? status : "online") &&
        pres_event_metadata_add(o, metadata) == 0)
        return o;
    cJSON_Delete(o);
    return NULL;
}

void pres_diff_init(pres_diff *d, uint32_t batch_ms, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    d->batch_ms = batch_ms;
    map_init(&d->index, seed);
}

static void entry_free(pres_diff_entry *e)
{
    free(e->user);
    free(e->status);
    free(e->metadata);
}

void pres_diff_clear(pres_diff *d)
{
    for (size_t i = 0; i < d->n; i++) {
        map_del(&d->index, d->v[i].user, strlen(d->v[i].user));
        entry_free(&d->v[i]);
    }
    d->n = 0;
    if (d->seq[0])
        memcpy(d->from, d->seq, sizeof(d->from));
}

void pres_diff_deinit(pres_diff *d)
{
    pres_diff_clear(d);
    free(d->v);
    map_deinit(&d->index);
    d->v = NULL;
    d->cap = 0;
}

/* Replace *field with a copy of value (NULL allowed). Returns 0 or -1. */
static int set_copy(char **field, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* The entry of `user`, created (empty, was_absent from `c`) on its first change in the batch. */
static pres_diff_entry *entry_of(pres_diff *d, const pres_diff_change *c)
{
    size_t klen = strlen(c->user);
    uintptr_t pos = (uintptr_t)map_get(&d->index, c->user, klen);
    if (pos)
        return &d->v[pos - 1];
    if (VEC_RESERVE(d->v, d->n, d->cap, 8) < 0)
        return NULL;
    pres_diff_entry *e = &d->v[d->n];
    *e = (pres_diff_entry){.was_absent = c->was_absent};
    if (!(e->user = strdup(c->user)) ||
        map_put(&d->index, c->user, klen, (void *)(uintptr_t)(d->n + 1)) < 0) {
        free(e->user);
        return NULL;
    }
    d->n++;
    return e;
}

int pres_diff_put(pres_diff *d, const pres_diff_change *c, const char *seq, int64_t now)
{
    bool first = d->n == 0;
    pres_diff_entry *e = entry_of(d, c);
    if (!e)
        return -1;
    if (first)
        d->opened = now;
    e->present = c->present;
    if (c->present &&
        (set_copy(&e->status, c->status) < 0 || set_copy(&e->metadata, c->metadata) < 0))
        return -1;
    snprintf(d->seq, sizeof(d->seq), "%s", seq);
    return 0;
}

int64_t pres_diff_due(const pres_diff *d)
{
    return d->n ? d->opened + (int64_t)d->batch_ms : INT64_MAX;
}

bool pres_diff_compact_ok(const pres_diff *d, const char *snapshot_seq)
{
    return pres_event_id_cmp(snapshot_seq, d->from[0] ? d->from : "0") <= 0;
}

/* Add `item` to the array `arr`; false (item freed) when out of memory. */
static bool push(cJSON *arr, cJSON *item)
{
    if (item && cJSON_AddItemToArray(arr, item))
        return true;
    cJSON_Delete(item);
    return false;
}

cJSON *pres_diff_json(const pres_diff *d, const char *room, bool full)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *joins = NULL, *leaves = NULL, *updates = NULL;
    if (!o || (room && !cJSON_AddStringToObject(o, "room", room)) ||
        !cJSON_AddStringToObject(o, "seq", d->seq) ||
        !(joins = cJSON_AddArrayToObject(o, "joins")) ||
        !(leaves = cJSON_AddArrayToObject(o, "leaves")) ||
        !(updates = cJSON_AddArrayToObject(o, "updates")))
        goto fail;
    size_t sent = 0;
    for (size_t i = 0; i < d->n; i++) {
        const pres_diff_entry *e = &d->v[i];
        bool ok = true;
        if (e->present) {
            ok = push(e->was_absent ? joins : updates,
                      pres_diff_entry_json(e->user, e->status, e->metadata));
        } else if (!e->was_absent || full) {
            ok = push(leaves, cJSON_CreateString(e->user));
        } else {
            continue;
        }
        if (!ok)
            goto fail;
        sent++;
    }
    if (sent > 0)
        return o;
fail:
    cJSON_Delete(o);
    return NULL;
}
