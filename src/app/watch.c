/* Views watched by local sockets, and their batches (include/presenced/app/watch.h). */
#include "presenced/app/watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/later.h"
#include "presenced/io/log.h"
#include "presenced/core/map.h"
#include "presenced/codec/vec.h"
#include "presenced/core/pres_diff.h"

#define DIFF_EVENT "presence:diff"
#define RESYNC_EVENT "presence:resync"
#define KEY_MAX (PRES_ID_MAX + 32)

typedef struct view view;

typedef struct watcher {
    view *view;
    sio_sock *sock;
    char sid[SIO_ID_LEN + 1];
    char snap[48]; /* the seq of its snapshot, "" until the answer went out */
    uint32_t id;   /* which presence:sync made it */
    bool fresh;    /* not (yet) in the view's group: batches go to it in full form */
} watcher;

typedef struct view_list {
    view **v;
    size_t n, cap;
} view_list;

struct view {
    char key[KEY_MAX]; /* in watch.views; also the sio group of its settled watchers */
    char *room;        /* NULL: a contact list */
    pres_diff diff;
    watcher **fresh; /* room views: watchers not in the group yet */
    size_t nfresh, capfresh;
    size_t nwatchers;
    watcher *only; /* contact list: its one watcher */
    char **users;  /* contact list: its ids, to unindex them */
    size_t nusers;
    bool pending; /* listed in watch.pending */
};

/* The watches of one socket. */
typedef struct wsock {
    watcher **v;
    size_t n, cap;
} wsock;

struct watch {
    uv_loop_t *loop;
    uv_timer_t timer;
    sio_server *sio;
    char nsp[SIO_NSP_MAX + 1];
    uint64_t seed;
    map views;         /* key -> view */
    map rooms;         /* room -> view_list: the views of that room (one per batch_ms) */
    map users;         /* user id -> view_list: the contact lists naming that user */
    map socks;         /* sid -> wsock */
    view_list pending; /* views with a batch open */
    uint32_t next_id;  /* watcher ids */
    int64_t armed;     /* when the timer fires, INT64_MAX if stopped */
    bool timer_open;   /* the timer is initialised (on first use) and not closed */
    bool shut;         /* watch_shutdown ran: no more timers */
};

static int64_t now_ms(const watch *w)
{
    return (int64_t)uv_now(w->loop);
}

/* ---- lists ---- */

static int list_add(view_list *l, view *v)
{
    if (VEC_RESERVE(l->v, l->n, l->cap, 2) < 0)
        return -1;
    l->v[l->n++] = v;
    return 0;
}

static void list_remove(view_list *l, const view *v)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i] == v) {
            l->v[i] = l->v[--l->n];
            return;
        }
}

/* Index `v` under `name` in `idx` (room or user -> views). */
static int index_add(map *idx, const char *name, view *v)
{
    size_t len = strlen(name);
    view_list *l = map_get(idx, name, len);
    if (!l) {
        if (!(l = calloc(1, sizeof(*l))) || map_put(idx, name, len, l) < 0) {
            free(l);
            return -1;
        }
    }
    return list_add(l, v);
}

static void index_remove(map *idx, const char *name, const view *v)
{
    size_t len = strlen(name);
    view_list *l = map_get(idx, name, len);
    if (!l)
        return;
    list_remove(l, v);
    if (l->n == 0) {
        map_del(idx, name, len);
        free(l->v);
        free(l);
    }
}

/* ---- views ---- */

static void view_free(watch *w, view *v)
{
    map_del(&w->views, v->key, strlen(v->key));
    if (v->room)
        index_remove(&w->rooms, v->room, v);
    for (size_t i = 0; i < v->nusers; i++) {
        index_remove(&w->users, v->users[i], v);
        free(v->users[i]);
    }
    if (v->pending)
        list_remove(&w->pending, v);
    pres_diff_deinit(&v->diff);
    free(v->users);
    free(v->fresh);
    free(v->room);
    free(v);
}

static view *view_new(watch *w, const char *key, const char *room, uint32_t batch_ms)
{
    view *v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    snprintf(v->key, sizeof(v->key), "%s", key);
    pres_diff_init(&v->diff, batch_ms, w->seed);
    if ((room && !(v->room = strdup(room))) || map_put(&w->views, key, strlen(key), v) < 0) {
        pres_diff_deinit(&v->diff);
        free(v->room);
        free(v);
        return NULL;
    }
    if (room && index_add(&w->rooms, room, v) < 0) {
        view_free(w, v);
        return NULL;
    }
    return v;
}

static int fresh_add(view *v, watcher *x)
{
    if (VEC_RESERVE(v->fresh, v->nfresh, v->capfresh, 4) < 0)
        return -1;
    v->fresh[v->nfresh++] = x;
    return 0;
}

static void fresh_remove_at(view *v, size_t i)
{
    v->fresh[i] = v->fresh[--v->nfresh];
}

/* ---- sending ---- */

static void emit_one(watcher *x, const char *event, const cJSON *payload)
{
    cJSON *args = cJSON_CreateArray();
    cJSON *copy = cJSON_Duplicate(payload, 1);
    if (args && copy && cJSON_AddItemToArray(args, copy))
        sio_emit(x->sock, event, args, NULL);
    else
        cJSON_Delete(copy);
    cJSON_Delete(args);
}

static void broadcast_group(watch *w, const char *group, const char *event, const cJSON *payload)
{
    cJSON *args = cJSON_CreateArray();
    cJSON *copy = cJSON_Duplicate(payload, 1);
    if (args && copy && cJSON_AddItemToArray(args, copy))
        sio_broadcast(w->sio, w->nsp, group, event, args);
    else
        cJSON_Delete(copy);
    cJSON_Delete(args);
}

/* Fresh watchers whose snapshot is no newer than the batch's start take the compact form from
 * now on: they join the group. */
static void settle(view *v)
{
    for (size_t i = 0; i < v->nfresh;) {
        watcher *x = v->fresh[i];
        if (x->snap[0] && pres_diff_compact_ok(&v->diff, x->snap) &&
            sio_group_join(x->sock, v->key) == 0) {
            x->fresh = false;
            fresh_remove_at(v, i);
        } else {
            i++;
        }
    }
}

/* Send the view's batch: compact to the group (encoded once), full to each fresh watcher. */
static void view_flush(watch *w, view *v)
{
    if (v->only) {
        bool compact = v->only->snap[0] && pres_diff_compact_ok(&v->diff, v->only->snap);
        cJSON *p = pres_diff_json(&v->diff, NULL, !compact);
        if (p)
            emit_one(v->only, DIFF_EVENT, p);
        cJSON_Delete(p);
    } else {
        settle(v);
        cJSON *p = pres_diff_json(&v->diff, v->room, false);
        if (p)
            broadcast_group(w, v->key, DIFF_EVENT, p);
        cJSON_Delete(p);
        cJSON *full = v->nfresh ? pres_diff_json(&v->diff, v->room, true) : NULL;
        for (size_t i = 0; full && i < v->nfresh; i++)
            emit_one(v->fresh[i], DIFF_EVENT, full);
        cJSON_Delete(full);
    }
    pres_diff_clear(&v->diff);
}

static void arm(watch *w);

static void on_timer(uv_timer_t *t)
{
    watch *w = t->data;
    int64_t now = now_ms(w);
    w->armed = INT64_MAX;
    for (size_t i = 0; i < w->pending.n;) {
        view *v = w->pending.v[i];
        if (pres_diff_due(&v->diff) > now) {
            i++;
            continue;
        }
        view_flush(w, v);
        v->pending = false;
        w->pending.v[i] = w->pending.v[--w->pending.n];
    }
    arm(w);
}

/* Set the timer for the earliest due batch. */
static void arm(watch *w)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < w->pending.n; i++) {
        int64_t d = pres_diff_due(&w->pending.v[i]->diff);
        if (d < due)
            due = d;
    }
    if (due == w->armed || w->shut)
        return;
    w->armed = due;
    if (!w->timer_open) {
        uv_timer_init(w->loop, &w->timer);
        w->timer.data = w;
        w->timer_open = true;
    }
    if (due == INT64_MAX) {
        uv_timer_stop(&w->timer);
        return;
    }
    int64_t now = now_ms(w);
    later_timer(&w->timer, on_timer, due > now ? (uint64_t)(due - now) : 0);
}

/* Tell the view's watchers to take a new snapshot (a change could not be recorded). */
static void view_resync(watch *w, view *v)
{
    cJSON *p = cJSON_CreateObject();
    if (p && v->room)
        cJSON_AddStringToObject(p, "room", v->room);
    if (p && v->only) {
        emit_one(v->only, RESYNC_EVENT, p);
    } else if (p) {
        broadcast_group(w, v->key, RESYNC_EVENT, p);
        for (size_t i = 0; i < v->nfresh; i++)
            emit_one(v->fresh[i], RESYNC_EVENT, p);
    }
    cJSON_Delete(p);
}

static void view_record(watch *w, view *v, const pres_event *ev)
{
    pres_diff_change c;
    if (!pres_diff_change_of(ev, v->room, &c))
        return;
    if (pres_diff_put(&v->diff, &c, ev->id, now_ms(w)) < 0) {
        log_warn("a view lost a change (out of memory): its watchers resync", NULL);
        view_resync(w, v);
        return;
    }
    if (!v->pending && list_add(&w->pending, v) == 0)
        v->pending = true;
}

static void record_in(watch *w, const map *idx, const char *name, const pres_event *ev)
{
    view_list *l = name ? map_get(idx, name, strlen(name)) : NULL;
    for (size_t i = 0; l && i < l->n; i++)
        view_record(w, l->v[i], ev);
}

void watch_event(watch *w, const pres_event *ev)
{
    record_in(w, &w->rooms, ev->room, ev);
    for (size_t i = 0; ev->type == PRES_EV_UPDATE && i < ev->nrooms; i++)
        record_in(w, &w->rooms, ev->rooms[i], ev);
    record_in(w, &w->users, ev->user, ev);
    arm(w);
}

void watch_resync(watch *w)
{
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&w->views, &pos)))
        view_resync(w, slot->value);
}

void watch_reset(watch *w)
{
    /* Open batches hold changes of the generation that ended: none of them may reach a watcher
     * after its new snapshot. */
    for (size_t i = 0; i < w->pending.n; i++) {
        pres_diff_clear(&w->pending.v[i]->diff);
        w->pending.v[i]->pending = false;
    }
    w->pending.n = 0;
    arm(w);
    watch_resync(w);
}

/* ---- watchers ---- */

static wsock *wsock_of(const watch *w, const char *sid)
{
    return map_get(&w->socks, sid, strlen(sid));
}

static watcher *find(const watch *w, const char *sid, const char *room)
{
    wsock *ws = wsock_of(w, sid);
    for (size_t i = 0; ws && i < ws->n; i++) {
        const char *r = ws->v[i]->view->room;
        if (room ? r && strcmp(r, room) == 0 : !r)
            return ws->v[i];
    }
    return NULL;
}

static void watcher_drop(watch *w, wsock *ws, size_t i)
{
    watcher *x = ws->v[i];
    view *v = x->view;
    ws->v[i] = ws->v[--ws->n];
    if (v->only) {
        v->only = NULL;
    } else if (x->fresh) {
        for (size_t k = 0; k < v->nfresh; k++)
            if (v->fresh[k] == x) {
                fresh_remove_at(v, k);
                break;
            }
    } else {
        sio_group_leave(x->sock, v->key);
    }
    if (--v->nwatchers == 0)
        view_free(w, v);
    free(x);
}

static wsock *wsock_get(watch *w, const char *sid)
{
    wsock *ws = wsock_of(w, sid);
    if (ws)
        return ws;
    if (!(ws = calloc(1, sizeof(*ws))) || map_put(&w->socks, sid, strlen(sid), ws) < 0) {
        free(ws);
        return NULL;
    }
    return ws;
}

static void wsock_release(watch *w, const char *sid, wsock *ws)
{
    if (ws->n > 0)
        return;
    map_del(&w->socks, sid, strlen(sid));
    free(ws->v);
    free(ws);
}

/* Attach a new watcher of socket `s` to view `v`. */
static int attach(watch *w, sio_sock *s, view *v, uint32_t *id)
{
    const char *sid = sio_sock_id(s);
    wsock *ws = wsock_get(w, sid);
    watcher *x = ws ? calloc(1, sizeof(*x)) : NULL;
    if (!x || VEC_RESERVE(ws->v, ws->n, ws->cap, 2) < 0 || (v->room && fresh_add(v, x) < 0)) {
        free(x);
        if (ws)
            wsock_release(w, sid, ws);
        return -1;
    }
    *x = (watcher){.view = v, .sock = s, .fresh = true, .id = ++w->next_id};
    *id = x->id;
    snprintf(x->sid, sizeof(x->sid), "%s", sid);
    if (!v->room)
        v->only = x;
    v->nwatchers++;
    ws->v[ws->n++] = x;
    return 0;
}

bool watch_stop(watch *w, const char *sid, const char *room)
{
    wsock *ws = wsock_of(w, sid);
    for (size_t i = 0; ws && i < ws->n; i++) {
        const char *r = ws->v[i]->view->room;
        if (room ? r && strcmp(r, room) == 0 : !r) {
            watcher_drop(w, ws, i);
            wsock_release(w, sid, ws);
            return true;
        }
    }
    return false;
}

int watch_room(watch *w, sio_sock *s, const char *room, uint32_t batch_ms, uint32_t *id)
{
    watch_stop(w, sio_sock_id(s), room);
    char key[KEY_MAX];
    /* The group name: the kind and the batch length before the room, which may hold anything. */
    snprintf(key, sizeof(key), "w:%u:%s", batch_ms, room);
    view *v = map_get(&w->views, key, strlen(key));
    bool created = !v;
    if (!v && !(v = view_new(w, key, room, batch_ms)))
        return -1;
    if (attach(w, s, v, id) < 0) {
        if (created)
            view_free(w, v);
        return -1;
    }
    return 0;
}

int watch_users(watch *w, sio_sock *s, const char *const *ids, size_t n, uint32_t batch_ms,
                uint32_t *id)
{
    const char *sid = sio_sock_id(s);
    watch_stop(w, sid, NULL);
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "u:%s", sid);
    view *v = view_new(w, key, NULL, batch_ms);
    if (!v || !(v->users = calloc(n ? n : 1, sizeof(*v->users)))) {
        if (v)
            view_free(w, v);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* An id listed twice is indexed once: its list then ends with this view already. */
        view_list *l = map_get(&w->users, ids[i], strlen(ids[i]));
        if (l && l->n && l->v[l->n - 1] == v)
            continue;
        if (!(v->users[v->nusers] = strdup(ids[i])))
            goto fail;
        v->nusers++;
        if (index_add(&w->users, ids[i], v) < 0)
            goto fail;
    }
    if (attach(w, s, v, id) < 0)
        goto fail;
    return 0;
fail:
    view_free(w, v);
    return -1;
}

void watch_snapshot(watch *w, const char *sid, const char *room, uint32_t id, const char *seq)
{
    watcher *x = find(w, sid, room);
    if (!x || x->id != id)
        return;
    if (seq)
        snprintf(x->snap, sizeof(x->snap), "%s", seq);
    else
        watch_stop(w, sid, room);
}

void watch_socket_gone(watch *w, const char *sid)
{
    wsock *ws = wsock_of(w, sid);
    while (ws && ws->n > 0)
        watcher_drop(w, ws, ws->n - 1);
    if (ws)
        wsock_release(w, sid, ws);
}

bool watch_has_room(const watch *w, const char *sid, const char *room)
{
    return find(w, sid, room) != NULL;
}

size_t watch_room_count(const watch *w, const char *sid)
{
    wsock *ws = wsock_of(w, sid);
    size_t n = 0;
    for (size_t i = 0; ws && i < ws->n; i++)
        n += ws->v[i]->view->room != NULL;
    return n;
}

cJSON *watch_members_json(const store_user *users, size_t n, bool online_only)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        const store_user *u = &users[i];
        if ((online_only && !u->online) || !pres_diff_shows(u->status))
            continue;
        cJSON *e = pres_diff_entry_json(u->user, u->status, u->metadata);
        if (!e || !cJSON_AddItemToArray(arr, e)) {
            cJSON_Delete(e);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

/* ---- lifecycle ---- */

watch *watch_new(uv_loop_t *loop, sio_server *sio, const char *nsp, uint64_t seed)
{
    watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->loop = loop;
    w->sio = sio;
    snprintf(w->nsp, sizeof(w->nsp), "%s", nsp);
    w->seed = seed;
    w->armed = INT64_MAX;
    map_init(&w->views, seed);
    map_init(&w->rooms, seed ^ 0x51u);
    map_init(&w->users, seed ^ 0x52u);
    map_init(&w->socks, seed ^ 0x53u);
    return w;
}

void watch_shutdown(watch *w)
{
    if (!w || w->shut)
        return;
    w->shut = true;
    if (w->timer_open) {
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, NULL);
        w->timer_open = false;
    }
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void free_lists(map *idx)
{
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(idx, &pos))) {
        view_list *l = slot->value;
        free(l->v);
        free(l);
    }
}

void watch_free(watch *w)
{
    if (!w)
        return;
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&w->socks, &pos))) {
        wsock *ws = slot->value;
        for (size_t i = 0; i < ws->n; i++)
            free(ws->v[i]);
        free(ws->v);
        free(ws);
    }
    free_lists(&w->rooms);
    free_lists(&w->users);
    /* Teardown: the maps go as a whole, so each view is freed without unindexing itself. */
    pos = 0;
    while ((slot = map_next(&w->views, &pos))) {
        view *v = slot->value;
        pres_diff_deinit(&v->diff);
        for (size_t i = 0; i < v->nusers; i++)
            free(v->users[i]);
        free(v->users);
        free(v->fresh);
        free(v->room);
        free(v);
    }
    map_deinit(&w->views);
    map_deinit(&w->rooms);
    map_deinit(&w->users);
    map_deinit(&w->socks);
    free(w->pending.v);
    if (!w->timer_open) {
        free(w);
        return;
    }
    /* Not shut down first: the memory goes once the loop has closed the timer. */
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_closed);
}

/* The page of a room's members (sorted bytewise) after `cursor` ("" for the first), at most
 * `limit`: *start and the count returned; *more when members follow it. */
size_t watch_page(const store_user *users, size_t n, const char *cursor, uint32_t limit,
                  size_t *start, bool *more)
{
    size_t lo = 0, hi = n;
    /* The first member whose id sorts after the cursor: the members are sorted. */
    while (cursor[0] && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(users[mid].user, cursor) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *start = lo;
    size_t count = n - lo < limit ? n - lo : limit;
    *more = lo + count < n;
    return count;
}

int watch_room_page(cJSON *out, const char *room, const store_user *users, size_t n,
                    const char *cursor, uint32_t limit, const char *seq)
{
    size_t start;
    bool more;
    size_t count = watch_page(users, n, cursor, limit, &start, &more);
    cJSON *list = NULL, *members = watch_members_json(users + start, count, false);
    if (members && cJSON_AddStringToObject(out, "room", room) &&
        cJSON_AddNumberToObject(out, "onlineCount", (double)n))
        list = cJSON_AddArrayToObject(out, "users");
    for (size_t i = 0; list && i < count; i++) {
        cJSON *u = cJSON_CreateString(users[start + i].user);
        if (!u || !cJSON_AddItemToArray(list, u)) {
            cJSON_Delete(u);
            list = NULL;
        }
    }
    if (list && cJSON_AddItemToObject(out, "members", members))
        members = NULL;
    else
        list = NULL;
    if (list && !((more ? cJSON_AddStringToObject(out, "nextCursor", users[start + count - 1].user)
                        : cJSON_AddNullToObject(out, "nextCursor")) &&
                  cJSON_AddStringToObject(out, "seq", seq)))
        list = NULL;
    cJSON_Delete(members);
    return list ? 0 : -1;
}
