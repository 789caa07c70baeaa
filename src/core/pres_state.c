/* The presence rules of docs/presence-model.md, in memory.
 *
 * Users waiting out their offline grace and offline users waiting to be forgotten sit on two
 * timelines. Both delays are constant, so deadlines grow in insertion order and each timeline is
 * a FIFO list: ticking costs only the entries that are due.
 */
#include "presenced/core/pres_state.h"

#include "presenced/codec/vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/core/map.h"

#define SID_MAX 32

typedef struct ps_user ps_user;

typedef struct ps_sock {
    char sid[SID_MAX + 1];
    ps_user *user;
    char **rooms;
    uint32_t nrooms, caprooms;
} ps_sock;

typedef enum ps_timeline { TL_NONE = 0, TL_GRACE, TL_RETENTION } ps_timeline;

struct ps_user {
    char *id;
    char status[PRES_STATUS_MAX + 1];
    char *metadata;
    int64_t last_seen, since;
    ps_sock **socks;
    uint32_t nsocks, capsocks;
    char last_sid[SID_MAX + 1];
    ps_timeline tl;
    int64_t deadline;
    ps_user *tprev, *tnext;
};

typedef struct ps_list {
    ps_user *head, *tail;
} ps_list;

typedef struct ps_room {
    map members; /* user id -> number of that user's sockets in the room */
} ps_room;

struct pres_state {
    map users; /* id -> ps_user */
    map socks; /* sid -> ps_sock */
    map rooms; /* name -> ps_room */
    uint64_t seed;
    int64_t grace_ms, retention_ms;
    ps_list grace, retention;
    uint64_t online; /* users with a socket or inside the grace (GET /v1/stats) */
};

/* ---- events ---- */

void pres_events_clear(pres_events *l)
{
    for (size_t i = 0; i < l->n; i++)
        pres_event_deinit(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static pres_event *event_add(pres_events *out, pres_event_type type, const ps_user *u, int64_t now)
{
    if (VEC_RESERVE(out->v, out->n, out->cap, 4) < 0)
        return NULL;
    pres_event *ev = &out->v[out->n];
    pres_event_init(ev, type);
    ev->at = now;
    if (pres_event_set(&ev->user, u->id) < 0) {
        pres_event_deinit(ev);
        return NULL;
    }
    out->n++;
    return ev;
}

static int cmp_room(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The rooms the user is in (over all their sockets), sorted, for routing: n log n in the number
 * of memberships, however many rooms and tabs the user has. */
static int event_add_user_rooms(pres_event *ev, const ps_user *u)
{
    size_t n = 0, k = 0;
    for (uint32_t i = 0; i < u->nsocks; i++)
        n += u->socks[i]->nrooms;
    if (n == 0)
        return 0;
    const char **all = malloc(n * sizeof(*all));
    if (!all)
        return -1;
    for (uint32_t i = 0; i < u->nsocks; i++)
        for (uint32_t j = 0; j < u->socks[i]->nrooms; j++)
            all[k++] = u->socks[i]->rooms[j];
    qsort(all, n, sizeof(*all), cmp_room);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (i == 0 || strcmp(all[i], all[i - 1]) != 0)
            rc = pres_event_add_room(ev, all[i]);
    free(all);
    return rc;
}

/* lastSeen follows the user's activity, except while they are invisible: from the moment they
 * turned invisible it stays where it was, so that it does not give them away. */
static void seen(ps_user *u, int64_t now)
{
    if (strcmp(u->status, "invisible") != 0)
        u->last_seen = now;
}

/* ---- timelines ---- */

static void tl_remove(pres_state *ps, ps_user *u)
{
    ps_list *l = u->tl == TL_GRACE ? &ps->grace : &ps->retention;
    if (u->tl == TL_NONE)
        return;
    if (u->tprev)
        u->tprev->tnext = u->tnext;
    else
        l->head = u->tnext;
    if (u->tnext)
        u->tnext->tprev = u->tprev;
    else
        l->tail = u->tprev;
    u->tprev = u->tnext = NULL;
    u->tl = TL_NONE;
}

static void tl_append(pres_state *ps, ps_user *u, ps_timeline tl, int64_t deadline)
{
    tl_remove(ps, u);
    ps_list *l = tl == TL_GRACE ? &ps->grace : &ps->retention;
    u->tl = tl;
    u->deadline = deadline;
    u->tprev = l->tail;
    u->tnext = NULL;
    if (l->tail)
        l->tail->tnext = u;
    else
        l->head = u;
    l->tail = u;
}

/* ---- users ---- */

static ps_user *user_get(const pres_state *ps, const char *id)
{
    return map_get(&ps->users, id, strlen(id));
}

static ps_user *user_get_or_create(pres_state *ps, const char *id)
{
    ps_user *u = user_get(ps, id);
    if (u)
        return u;
    u = calloc(1, sizeof(*u));
    if (!u || !(u->id = strdup(id)) || map_put(&ps->users, u->id, strlen(u->id), u) < 0) {
        if (u)
            free(u->id);
        free(u);
        return NULL;
    }
    strcpy(u->status, "online");
    return u;
}

static void user_delete(pres_state *ps, ps_user *u)
{
    tl_remove(ps, u);
    map_del(&ps->users, u->id, strlen(u->id));
    free(u->socks);
    free(u->metadata);
    free(u->id);
    free(u);
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Apply the status and metadata given (NULL: keep). Sets *changed, and copies the status before
 * the change into prev. Returns 0 or -1 (memory). */
static int user_apply(ps_user *u, const char *status, const char *metadata, bool *changed,
                      char prev[PRES_STATUS_MAX + 1])
{
    strcpy(prev, u->status);
    *changed = false;
    if (status && strcmp(status, u->status) != 0) {
        snprintf(u->status, sizeof(u->status), "%s", status);
        *changed = true;
    }
    if (metadata && !same(metadata, u->metadata)) {
        char *m = strdup(metadata);
        if (!m)
            return -1;
        free(u->metadata);
        u->metadata = m;
        *changed = true;
    }
    return 0;
}

static int emit_update(pres_events *out, ps_user *u, const char *prev, int64_t now)
{
    pres_event *ev = event_add(out, PRES_EV_UPDATE, u, now);
    if (!ev || pres_event_set(&ev->status, u->status) < 0 ||
        pres_event_set(&ev->prev_status, prev) < 0 ||
        pres_event_set(&ev->metadata, u->metadata) < 0 || event_add_user_rooms(ev, u) < 0)
        return -1;
    return 0;
}

/* ---- rooms ---- */

static int room_add_member(pres_state *ps, const char *name, const char *user, bool *first)
{
    ps_room *r = map_get(&ps->rooms, name, strlen(name));
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return -1;
        map_init(&r->members, ps->seed ^ 0x2545f4914f6cdd1dULL);
        if (map_put(&ps->rooms, name, strlen(name), r) < 0) {
            free(r);
            return -1;
        }
    }
    uintptr_t count = (uintptr_t)map_get(&r->members, user, strlen(user));
    if (map_put(&r->members, user, strlen(user), (void *)(count + 1)) < 0)
        return -1;
    *first = count == 0;
    return 0;
}

static void room_remove_member(pres_state *ps, const char *name, const char *user, bool *last)
{
    ps_room *r = map_get(&ps->rooms, name, strlen(name));
    *last = false;
    if (!r)
        return;
    uintptr_t count = (uintptr_t)map_get(&r->members, user, strlen(user));
    if (count > 1) {
        map_put(&r->members, user, strlen(user), (void *)(count - 1));
        return;
    }
    map_del(&r->members, user, strlen(user));
    *last = true;
    if (r->members.count == 0) {
        map_del(&ps->rooms, name, strlen(name));
        map_deinit(&r->members);
        free(r);
    }
}

static int sock_room_index(const ps_sock *s, const char *room)
{
    for (uint32_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i], room) == 0)
            return (int)i;
    return -1;
}

/* Add `room` to the socket; *first tells whether the user was not in it before. */
static int sock_join(pres_state *ps, ps_sock *s, const char *room, bool *first)
{
    *first = false;
    if (sock_room_index(s, room) >= 0)
        return 0;
    if (VEC_RESERVE(s->rooms, s->nrooms, s->caprooms, 2) < 0)
        return -1;
    char *copy = strdup(room);
    if (!copy)
        return -1;
    if (room_add_member(ps, room, s->user->id, first) < 0) {
        free(copy);
        return -1;
    }
    s->rooms[s->nrooms++] = copy;
    return 0;
}

/* Remove room `i` from the socket; *last tells whether it was the user's last socket in it. */
static void sock_leave_at(pres_state *ps, ps_sock *s, uint32_t i, bool *last)
{
    room_remove_member(ps, s->rooms[i], s->user->id, last);
    free(s->rooms[i]);
    s->rooms[i] = s->rooms[--s->nrooms];
}

/* A join carries the user's status and metadata, so that a view of the room can show the
 * newcomer without asking the store again. */
static int emit_room(pres_events *out, pres_event_type type, ps_user *u, const char *room,
                     int64_t now)
{
    /* The status lets the gateway keep an invisible user's room changes to themselves. */
    pres_event *ev = event_add(out, type, u, now);
    if (!ev || pres_event_set(&ev->room, room) < 0 || pres_event_set(&ev->status, u->status) < 0)
        return -1;
    if (type != PRES_EV_ROOM_JOIN)
        return 0;
    return (!u->metadata || pres_event_set(&ev->metadata, u->metadata) == 0) ? 0 : -1;
}

/* ---- sockets ---- */

static ps_sock *sock_get(const pres_state *ps, const char *sid)
{
    return map_get(&ps->socks, sid, strlen(sid));
}

static ps_sock *sock_new(pres_state *ps, ps_user *u, const char *sid)
{
    if (strlen(sid) > SID_MAX)
        return NULL;
    if (VEC_RESERVE(u->socks, u->nsocks, u->capsocks, 2) < 0)
        return NULL;
    ps_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    strcpy(s->sid, sid);
    s->user = u;
    if (map_put(&ps->socks, s->sid, strlen(s->sid), s) < 0) {
        free(s);
        return NULL;
    }
    u->socks[u->nsocks++] = s;
    return s;
}

static void sock_unlink(pres_state *ps, ps_sock *s)
{
    ps_user *u = s->user;
    for (uint32_t i = 0; i < u->nsocks; i++)
        if (u->socks[i] == s) {
            u->socks[i] = u->socks[--u->nsocks];
            break;
        }
    map_del(&ps->socks, s->sid, strlen(s->sid));
    free(s->rooms);
    free(s);
}

/* ---- the state ---- */

pres_state *pres_state_new(uint64_t hash_seed, uint32_t grace_ms, uint32_t retention_s)
{
    pres_state *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->seed = hash_seed;
    ps->grace_ms = grace_ms;
    ps->retention_ms = (int64_t)retention_s * 1000;
    map_init(&ps->users, hash_seed);
    map_init(&ps->socks, hash_seed ^ 0x9e3779b97f4a7c15ULL);
    map_init(&ps->rooms, hash_seed ^ 0xbf58476d1ce4e5b9ULL);
    return ps;
}

void pres_state_free(pres_state *ps)
{
    if (!ps)
        return;
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&ps->socks, &pos))) {
        ps_sock *s = slot->value;
        for (uint32_t i = 0; i < s->nrooms; i++)
            free(s->rooms[i]);
        free(s->rooms);
        free(s);
    }
    pos = 0;
    while ((slot = map_next(&ps->users, &pos))) {
        ps_user *u = slot->value;
        free(u->socks);
        free(u->metadata);
        free(u->id);
        free(u);
    }
    pos = 0;
    while ((slot = map_next(&ps->rooms, &pos))) {
        ps_room *r = slot->value;
        map_deinit(&r->members);
        free(r);
    }
    map_deinit(&ps->socks);
    map_deinit(&ps->users);
    map_deinit(&ps->rooms);
    free(ps);
}

int pres_state_open(pres_state *ps, const char *sid, const char *user, const char *status,
                    const char *metadata, int64_t now, pres_events *out)
{
    if (sock_get(ps, sid))
        return PRES_ERR_EXISTS;
    ps_user *u = user_get_or_create(ps, user);
    if (!u)
        return PRES_ERR_NOMEM;
    bool was_online = u->nsocks > 0, in_grace = u->tl == TL_GRACE;
    if (!sock_new(ps, u, sid))
        return PRES_ERR_NOMEM;
    char prev[PRES_STATUS_MAX + 1];
    bool changed;
    if (!was_online && !in_grace) {
        /* 0 -> 1 live sockets: a new online period with the given status and metadata. */
        tl_remove(ps, u);
        snprintf(u->status, sizeof(u->status), "%s", status ? status : "online");
        free(u->metadata);
        u->metadata = metadata ? strdup(metadata) : NULL;
        if (metadata && !u->metadata)
            return PRES_ERR_NOMEM;
        u->since = now;
        ps->online++;
        seen(u, now);
        pres_event *ev = event_add(out, PRES_EV_ONLINE, u, now);
        if (!ev || pres_event_set(&ev->socket, sid) < 0 ||
            pres_event_set(&ev->status, u->status) < 0 ||
            pres_event_set(&ev->metadata, u->metadata) < 0)
            return PRES_ERR_NOMEM;
        return PRES_OK;
    }
    /* Back within the grace window, or one more tab: no transition. */
    tl_remove(ps, u);
    if (user_apply(u, status, metadata, &changed, prev) < 0)
        return PRES_ERR_NOMEM;
    seen(u, now);
    if (changed && emit_update(out, u, prev, now) < 0)
        return PRES_ERR_NOMEM;
    return PRES_OK;
}

int pres_state_assert(pres_state *ps, const char *sid, const char *user, const char *status,
                      const char *metadata, const char *const *rooms, size_t nrooms, int64_t now)
{
    if (sock_get(ps, sid))
        return PRES_OK;
    bool known = user_get(ps, user) != NULL;
    ps_user *u = user_get_or_create(ps, user);
    if (!u)
        return PRES_ERR_NOMEM;
    bool was_online = u->nsocks > 0 || u->tl == TL_GRACE;
    ps_sock *s = sock_new(ps, u, sid);
    if (!s)
        return PRES_ERR_NOMEM;
    if (!was_online)
        ps->online++;
    tl_remove(ps, u);
    if (!known) {
        snprintf(u->status, sizeof(u->status), "%s", status ? status : "online");
        u->metadata = metadata ? strdup(metadata) : NULL;
        u->since = now;
    }
    seen(u, now);
    for (size_t i = 0; i < nrooms; i++) {
        bool first;
        if (sock_join(ps, s, rooms[i], &first) < 0)
            return PRES_ERR_NOMEM;
    }
    return PRES_OK;
}

static int go_offline(pres_state *ps, ps_user *u, const char *sid, const char *const *rooms,
                      size_t nrooms, int64_t now, pres_events *out)
{
    pres_event *ev = event_add(out, PRES_EV_OFFLINE, u, now);
    /* The status lets the gateway keep an invisible user's departure quiet. */
    if (!ev || pres_event_set(&ev->socket, sid) < 0 || pres_event_set(&ev->status, u->status) < 0)
        return PRES_ERR_NOMEM;
    ev->last_seen = u->last_seen;
    if (ps->online > 0)
        ps->online--;
    for (size_t i = 0; i < nrooms; i++)
        if (pres_event_add_room(ev, rooms[i]) < 0)
            return PRES_ERR_NOMEM;
    u->since = 0;
    tl_append(ps, u, TL_RETENTION, now + ps->retention_ms);
    return PRES_OK;
}

int pres_state_close(pres_state *ps, const char *sid, bool graceful, int64_t now, pres_events *out)
{
    ps_sock *s = sock_get(ps, sid);
    if (!s)
        return PRES_OK;
    ps_user *u = s->user;
    /* Rooms first (docs/presence-model.md, socket_close step 1); keep the names of the rooms the
     * user left for the offline event's routing. */
    char **left = s->rooms;
    size_t nleft = 0, nrooms = s->nrooms;
    s->rooms = NULL;
    s->nrooms = 0;
    for (size_t i = 0; i < nrooms; i++) {
        bool last;
        char *room = left[i];
        room_remove_member(ps, room, u->id, &last);
        /* Compact the rooms the user left to the front of the same array (nleft <= i). */
        if (last && emit_room(out, PRES_EV_ROOM_LEAVE, u, room, now) == 0)
            left[nleft++] = room;
        else
            free(room);
    }
    snprintf(u->last_sid, sizeof(u->last_sid), "%s", sid);
    sock_unlink(ps, s);
    seen(u, now);
    int rc = PRES_OK;
    if (u->nsocks == 0) {
        if (graceful && ps->grace_ms > 0)
            tl_append(ps, u, TL_GRACE, now + ps->grace_ms);
        else
            rc = go_offline(ps, u, sid, (const char *const *)left, nleft, now, out);
    }
    for (size_t i = 0; i < nleft; i++)
        free(left[i]);
    free(left);
    return rc;
}

int pres_state_join(pres_state *ps, const char *sid, const char *room, int64_t now,
                    pres_events *out)
{
    ps_sock *s = sock_get(ps, sid);
    if (!s)
        return PRES_ERR_NO_SOCKET;
    bool first;
    if (sock_join(ps, s, room, &first) < 0)
        return PRES_ERR_NOMEM;
    seen(s->user, now);
    if (first && emit_room(out, PRES_EV_ROOM_JOIN, s->user, room, now) < 0)
        return PRES_ERR_NOMEM;
    return PRES_OK;
}

int pres_state_leave(pres_state *ps, const char *sid, const char *room, int64_t now,
                     pres_events *out)
{
    ps_sock *s = sock_get(ps, sid);
    if (!s)
        return PRES_ERR_NO_SOCKET;
    seen(s->user, now);
    int i = sock_room_index(s, room);
    if (i < 0)
        return PRES_OK;
    bool last;
    sock_leave_at(ps, s, (uint32_t)i, &last);
    if (last && emit_room(out, PRES_EV_ROOM_LEAVE, s->user, room, now) < 0)
        return PRES_ERR_NOMEM;
    return PRES_OK;
}

int pres_state_status(pres_state *ps, const char *sid, const char *status, const char *metadata,
                      int64_t now, pres_events *out)
{
    ps_sock *s = sock_get(ps, sid);
    if (!s)
        return PRES_ERR_NO_SOCKET;
    ps_user *u = s->user;
    /* Turning invisible: lastSeen is this moment, then stays. */
    seen(u, now);
    char prev[PRES_STATUS_MAX + 1];
    bool changed;
    if (user_apply(u, status, metadata, &changed, prev) < 0)
        return PRES_ERR_NOMEM;
    seen(u, now);
    if (changed && emit_update(out, u, prev, now) < 0)
        return PRES_ERR_NOMEM;
    return PRES_OK;
}

int pres_state_touch(pres_state *ps, const char *sid, int64_t now)
{
    ps_sock *s = sock_get(ps, sid);
    if (!s)
        return PRES_ERR_NO_SOCKET;
    seen(s->user, now);
    return PRES_OK;
}

int pres_state_close_all(pres_state *ps, int64_t now, pres_events *out)
{
    /* Closing changes the map: take the ids first. */
    size_t n = ps->socks.count, pos = 0, k = 0;
    char(*sids)[SID_MAX + 1] = malloc((n ? n : 1) * sizeof(*sids));
    if (!sids)
        return PRES_ERR_NOMEM;
    map_slot *slot;
    while (k < n && (slot = map_next(&ps->socks, &pos)))
        memcpy(sids[k++], ((ps_sock *)slot->value)->sid, SID_MAX + 1);
    int rc = PRES_OK;
    for (size_t i = 0; i < k && rc == PRES_OK; i++)
        rc = pres_state_close(ps, sids[i], false, now, out);
    free(sids);
    return rc;
}

int pres_state_tick(pres_state *ps, int64_t now, pres_events *out)
{
    while (ps->grace.head && ps->grace.head->deadline <= now) {
        ps_user *u = ps->grace.head;
        tl_remove(ps, u);
        int rc = go_offline(ps, u, u->last_sid, NULL, 0, now, out);
        if (rc < 0)
            return rc;
    }
    while (ps->retention.head && ps->retention.head->deadline <= now)
        user_delete(ps, ps->retention.head);
    return PRES_OK;
}

int64_t pres_state_next_deadline(const pres_state *ps)
{
    int64_t d = INT64_MAX;
    if (ps->grace.head)
        d = ps->grace.head->deadline;
    if (ps->retention.head && ps->retention.head->deadline < d)
        d = ps->retention.head->deadline;
    return d;
}

void pres_state_user(const pres_state *ps, const char *user, pres_user_view *out)
{
    memset(out, 0, sizeof(*out));
    out->status = "offline";
    const ps_user *u = user_get(ps, user);
    if (!u)
        return;
    out->known = true;
    /* A user inside the offline grace still reads as online: no offline event went out. */
    out->online = u->nsocks > 0 || u->tl == TL_GRACE;
    if (out->online) {
        out->status = u->status;
        out->since = u->since;
    }
    out->metadata = u->metadata;
    out->last_seen = u->last_seen;
    out->sockets = u->nsocks;
}

size_t pres_state_room(const pres_state *ps, const char *room, const char **out, size_t limit)
{
    const ps_room *r = map_get(&ps->rooms, room, strlen(room));
    if (!r)
        return 0;
    size_t pos = 0, n = 0;
    map_slot *slot;
    while (n < limit && (slot = map_next(&r->members, &pos)))
        out[n++] = slot->key;
    return r->members.count;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int pres_state_room_page(const pres_state *ps, const char *room, const char *cursor, size_t limit,
                         const char ***out, size_t *n, size_t *total)
{
    *out = NULL;
    *n = *total = 0;
    const ps_room *r = map_get(&ps->rooms, room, strlen(room));
    if (!r)
        return PRES_OK;
    *total = r->members.count;
    const char **ids = malloc((r->members.count ? r->members.count : 1) * sizeof(*ids));
    if (!ids)
        return PRES_ERR_NOMEM;
    size_t pos = 0, k = 0;
    map_slot *slot;
    while ((slot = map_next(&r->members, &pos)))
        if (!cursor || !cursor[0] || strcmp(slot->key, cursor) > 0)
            ids[k++] = slot->key;
    if (k > 1)
        qsort(ids, k, sizeof(*ids), cmp_str);
    *out = ids;
    *n = k < limit ? k : limit;
    return PRES_OK;
}

size_t pres_state_user_sockets(const pres_state *ps, const char *user, const char **out, size_t max)
{
    const ps_user *u = user_get(ps, user);
    if (!u)
        return 0;
    size_t k = 0;
    for (uint32_t i = 0; i < u->nsocks && k < max; i++)
        out[k++] = u->socks[i]->sid;
    if (k > 1)
        qsort(out, k, sizeof(*out), cmp_str);
    return u->nsocks;
}

long pres_state_socket_rooms(const pres_state *ps, const char *sid, const char **out, size_t max)
{
    const ps_sock *s = map_get(&ps->socks, sid, strlen(sid));
    if (!s)
        return -1;
    for (uint32_t i = 0; i < s->nrooms && i < max; i++)
        out[i] = s->rooms[i];
    return (long)s->nrooms;
}

size_t pres_state_socket_ids(const pres_state *ps, const char **out, size_t max)
{
    size_t pos = 0, k = 0;
    map_slot *slot;
    while ((slot = map_next(&ps->socks, &pos)) && k < max)
        out[k++] = slot->key;
    return ps->socks.count;
}

void pres_state_stats(const pres_state *ps, pres_stats *out)
{
    out->users_online = ps->online;
    out->sockets = ps->socks.count;
    out->rooms = ps->rooms.count;
}
