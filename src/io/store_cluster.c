/* store_cluster — the Redis store on a Redis Cluster: users split into partitions, each a Redis
 * store of its own (store_redis.c) whose keys carry the partition's hash tag, so that every
 * script touches one slot.
 *
 * A user belongs to partition redis_partition_of(user); everything about the user (sockets,
 * rooms of the sockets, status, grace, the events) lives in that partition, as it would in a
 * single Redis: state changes stay one atomic script, exactly once, with their events in the
 * partition's stream. Each partition has its own lease of this instance, reaper, reconciliation
 * and stream reader; the command and lease connections of all partitions share one connection
 * per primary (redis_cluster.h).
 *
 * What spans partitions is done here: a room's members are the union of its members in every
 * partition (users are in one partition each, so totals add up); stats add up too (a room with
 * members in several partitions counts once in each); socket operations find their partition by
 * socket id (remembered from open, assert and the truth).
 *
 * Order: each partition's events arrive in its stream's order, so a user's events are in order;
 * events of users in different partitions are in the order they arrive. Every event forwarded to
 * the owner is stamped with this instance's own sequence ("<start ms>-<n>"), so that a snapshot
 * (users_query, room_members) can name one sequence it reflects: while its partitions are read,
 * their events are held; events its answer reflects (their stream id at most the one each
 * partition answered with) are forwarded first, and the answer names the sequence reached; the
 * held events that come after it follow. Events of partitions a snapshot does not read are not
 * held (they are about other users). Snapshots are read one at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/pres_event.h"
#include "presenced/codec/vec.h"
#include "presenced/codec/redis_slot.h"
#include "presenced/core/map.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "store_redis_int.h"

#define SC_PARTITIONS_DEFAULT 12
#define SC_RING 10000        /* events kept for store_events_since */
#define SC_SNAP_WAIT_MS 5000 /* a snapshot whose partitions' events do not arrive fails after */

typedef struct store_cluster store_cluster;

typedef struct sc_part {
    store_cluster *sc;
    unsigned k;
    store *st;
    char tag[REDIS_TAG_MAX];
    char last_id[48]; /* stream id of the newest event of this partition that arrived */
    bool available;
    bool held; /* a snapshot reading this partition holds its events */
} sc_part;

/* An event held, or kept for events_since: a deep copy. */
typedef struct sc_ev {
    pres_event ev;
    unsigned k;
} sc_ev;

typedef struct sc_snap sc_snap;

struct store_cluster {
    store base;
    store_hooks hooks;
    uv_loop_t *loop;
    redis_cluster *cmd, *lease;
    addr_redis auth;
    sc_part *parts;
    unsigned nparts;
    map sids; /* socket id -> 1 + partition */
    bool available;
    bool closing;
    int open_parts;

    /* Stamps: "<epoch>-<n>". */
    int64_t epoch;
    uint64_t seq;

    /* Held events, in arrival order (only while a snapshot runs). */
    sc_ev *held;
    size_t nheld, capheld;
    sc_snap *snaps, *snaps_tail; /* the running snapshot first */
    bool snap_running;
    uv_timer_t snap_timer; /* the running snapshot's deadline */
    uv_timer_t snap_kick;  /* starts the next snapshot on a later turn */

    /* The newest SC_RING forwarded events, for events_since. */
    sc_ev *ring;
    size_t ring_n, ring_head; /* ring_head: index of the oldest */

    /* Webhook delivery: the partitions' batches are read together. */
    bool delivering;
};

/* ---- helpers ---- */

static unsigned part_of_user(const store_cluster *sc, const char *user)
{
    return redis_partition_of(user, strlen(user), sc->nparts);
}

static sc_part *part_of_sid(store_cluster *sc, const char *sid)
{
    uintptr_t v = (uintptr_t)map_get(&sc->sids, sid, strlen(sid));
    return v ? &sc->parts[v - 1] : NULL;
}

static void sid_remember(store_cluster *sc, const char *sid, unsigned k)
{
    if (map_put(&sc->sids, sid, strlen(sid), (void *)(uintptr_t)(k + 1)) < 0)
        log_error("out of memory", "store=cluster what=socket map");
}

static int ev_copy(pres_event *dst, const pres_event *src)
{
    char *json = pres_event_encode(src);
    int rc = json ? pres_event_decode(json, strlen(json), dst) : -1;
    free(json);
    if (rc == 0)
        snprintf(dst->id, sizeof(dst->id), "%s", src->id);
    return rc;
}

static void stamp(store_cluster *sc, char *out, size_t len)
{
    snprintf(out, len, "%lld-%llu", (long long)sc->epoch, (unsigned long long)sc->seq);
}

/* ---- forwarding events ---- */

static void ring_put(store_cluster *sc, const pres_event *ev)
{
    if (!sc->ring && !(sc->ring = calloc(SC_RING, sizeof(*sc->ring))))
        return;
    size_t i;
    if (sc->ring_n == SC_RING) {
        i = sc->ring_head;
        pres_event_deinit(&sc->ring[i].ev);
        sc->ring_head = (sc->ring_head + 1) % SC_RING;
    } else {
        i = (sc->ring_head + sc->ring_n++) % SC_RING;
    }
    if (ev_copy(&sc->ring[i].ev, ev) < 0) {
        /* Keep the slot (an empty event) so that sequences stay contiguous: a reader asking past
         * it gets the rest. */
        pres_event_init(&sc->ring[i].ev, ev->type);
        snprintf(sc->ring[i].ev.id, sizeof(sc->ring[i].ev.id), "%s", ev->id);
    }
}

/* Hand one event to the owner, stamped with this instance's next sequence. `ev` is modified. */
static void forward(store_cluster *sc, pres_event *ev)
{
    sc->seq++;
    stamp(sc, ev->id, sizeof(ev->id));
    if (ev->type != PRES_EV_DISCONNECT)
        ring_put(sc, ev);
    if (sc->hooks.event && !sc->closing)
        sc->hooks.event(ev, sc->hooks.ud);
}

static int hold(store_cluster *sc, const pres_event *ev, unsigned k)
{
    if (VEC_RESERVE(sc->held, sc->nheld, sc->capheld, 64) < 0)
        return -1;
    if (ev_copy(&sc->held[sc->nheld].ev, ev) < 0)
        return -1;
    sc->held[sc->nheld++].k = k;
    return 0;
}

/* Forward the held events `keep` says to, in arrival order; keep the others held. */
static void release(store_cluster *sc, bool (*now)(const store_cluster *, const sc_ev *))
{
    size_t w = 0;
    for (size_t i = 0; i < sc->nheld; i++) {
        sc_ev *h = &sc->held[i];
        if (!now || now(sc, h)) {
            forward(sc, &h->ev);
            pres_event_deinit(&h->ev);
        } else {
            sc->held[w++] = *h;
        }
    }
    sc->nheld = w;
}

static void snap_check(store_cluster *sc);
static void on_snap_kick(uv_timer_t *t);

static void on_part_event(const pres_event *ev, void *ud)
{
    sc_part *p = ud;
    store_cluster *sc = p->sc;
    if (sc->closing)
        return;
    snprintf(p->last_id, sizeof(p->last_id), "%s", ev->id);
    if (p->held) {
        if (hold(sc, ev, p->k) == 0) {
            snap_check(sc);
            return;
        }
        log_error("out of memory holding an event: delivered out of its snapshot's order", NULL);
    }
    pres_event copy;
    if (ev_copy(&copy, ev) < 0) {
        log_error("out of memory forwarding an event", "user=%s", ev->user);
        return;
    }
    forward(sc, &copy);
    pres_event_deinit(&copy);
}

/* The partition's reader is past entry `id`: also entries that were no event to forward (the
 * reset of a generation the reader knew), which a snapshot's answer may name all the same. */
static void on_part_read(const char *id, void *ud)
{
    sc_part *p = ud;
    store_cluster *sc = p->sc;
    if (sc->closing)
        return;
    snprintf(p->last_id, sizeof(p->last_id), "%s", id);
    if (p->held)
        snap_check(sc);
}

/* ---- snapshots ---- */

typedef enum sc_snap_kind { SNAP_USERS, SNAP_MEMBERS } sc_snap_kind;

/* One answer of a partition, copied. */
typedef struct sc_user_copy {
    store_user u;
    char *user, *status, *metadata;
} sc_user_copy;

struct sc_snap {
    sc_snap *next;
    store_cluster *sc;
    sc_snap_kind kind;
    char **ids; /* users (SNAP_USERS) or the room (SNAP_MEMBERS: ids[0]) */
    size_t nids;
    store_users_fn cb;
    void *ud;
    bool *involved;
    char (*v)[48]; /* per partition: the stream id its answer reflects */
    unsigned pending;
    int err;
    sc_user_copy *got; /* SNAP_USERS: one per id, in order; SNAP_MEMBERS: appended */
    size_t ngot, capgot;
    bool answered;  /* every partition answered: waiting for their events to arrive */
    bool abandoned; /* answered by a deadline or a shutdown: freed once the partitions answer */
};

typedef struct sc_snap_part {
    sc_snap *snap;
    unsigned k;
    size_t *index; /* SNAP_USERS: the positions of this partition's ids */
    size_t n;
} sc_snap_part;

static void user_copy_free(sc_user_copy *c)
{
    free(c->user);
    free(c->status);
    free(c->metadata);
}

static int user_copy(sc_user_copy *c, const store_user *u)
{
    *c = (sc_user_copy){.u = *u};
    c->user = u->user ? strdup(u->user) : NULL;
    c->status = u->status ? strdup(u->status) : NULL;
    c->metadata = u->metadata ? strdup(u->metadata) : NULL;
    if ((u->user && !c->user) || (u->status && !c->status) || (u->metadata && !c->metadata)) {
        user_copy_free(c);
        memset(c, 0, sizeof(*c));
        return -1;
    }
    c->u.user = c->user;
    c->u.status = c->status;
    c->u.metadata = c->metadata;
    return 0;
}

static void snap_free(sc_snap *s)
{
    for (size_t i = 0; i < s->nids; i++)
        free(s->ids[i]);
    free(s->ids);
    for (size_t i = 0; i < s->ngot; i++)
        user_copy_free(&s->got[i]);
    free(s->got);
    free(s->involved);
    free(s->v);
    free(s);
}

/* A held event the running snapshot reflects (its partition answered with an id at least as
 * new): it goes out before the answer. */
static bool reflected(const store_cluster *sc, const sc_ev *h)
{
    const sc_snap *s = sc->snaps;
    return !s->involved[h->k] || pres_event_id_cmp(h->ev.id, s->v[h->k]) <= 0;
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const sc_user_copy *)a)->u.user, ((const sc_user_copy *)b)->u.user);
}

/* The running snapshot is done (answered, or failed): forward what its answer reflects, answer
 * with the sequence reached, let the rest of the held events go, start the next one. */
static void snap_finish(store_cluster *sc)
{
    sc_snap *s = sc->snaps;
    uv_timer_stop(&sc->snap_timer);
    if (s->err == STORE_OK)
        release(sc, reflected);
    store_user *users = s->ngot ? calloc(s->ngot, sizeof(*users)) : NULL;
    if (s->ngot && !users && s->err == STORE_OK)
        s->err = STORE_ERR_NOMEM;
    if (s->err == STORE_OK && s->kind == SNAP_MEMBERS && s->ngot > 1)
        qsort(s->got, s->ngot, sizeof(*s->got), user_cmp);
    for (size_t i = 0; users && i < s->ngot; i++)
        users[i] = s->got[i].u;
    char seq[48];
    stamp(sc, seq, sizeof(seq));
    if (!sc->closing)
        s->cb(s->err, s->err ? NULL : users, s->err ? 0 : s->ngot, s->err ? "" : seq, s->ud);
    free(users);
    sc->snaps = s->next;
    if (!sc->snaps)
        sc->snaps_tail = NULL;
    if (s->pending > 0)
        s->abandoned = true;
    else
        snap_free(s);
    sc->snap_running = false;
    for (unsigned k = 0; k < sc->nparts; k++)
        sc->parts[k].held = false;
    /* What the answer does not reflect follows it. */
    release(sc, NULL);
    if (sc->snaps && !sc->closing)
        uv_timer_start(&sc->snap_kick, on_snap_kick, 0, 0);
}

/* Every partition answered: done once each has delivered here every event its answer reflects. */
static void snap_check(store_cluster *sc)
{
    sc_snap *s = sc->snaps;
    if (!s || !s->answered)
        return;
    for (unsigned k = 0; k < sc->nparts; k++) {
        /* The reader may be past the answer's entry without an event from it: placed after the
         * newest entry when it started, or past a reset that was no news to it. */
        const sc_part *p = &sc->parts[k];
        if (s->involved[k] && pres_event_id_cmp(p->last_id, s->v[k]) < 0 &&
            pres_event_id_cmp(sr_read_position(p->st), s->v[k]) < 0)
            return;
    }
    snap_finish(sc);
}

static void on_snap_timeout(uv_timer_t *t)
{
    store_cluster *sc = t->data;
    if (!sc->snaps)
        return;
    log_warn("a snapshot's events did not arrive in time: answering unavailable", NULL);
    sc->snaps->err = STORE_ERR_UNAVAILABLE;
    snap_finish(sc);
}

/* One partition's answer is in (or failed, or the start's own count). */
static void snap_part_done(sc_snap *s)
{
    store_cluster *sc = s->sc;
    if (s->abandoned) {
        if (--s->pending == 0)
            snap_free(s);
        return;
    }
    if (--s->pending > 0)
        return;
    if (s->err || sc->closing) {
        snap_finish(sc);
        return;
    }
    s->answered = true;
    snap_check(sc);
}

static void on_snap_part(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    sc_snap_part *sp = ud;
    sc_snap *s = sp->snap;
    if (err && !s->err)
        s->err = err;
    if (!err) {
        snprintf(s->v[sp->k], sizeof(s->v[sp->k]), "%s", seq);
        for (size_t i = 0; i < n && !s->err; i++) {
            size_t at = s->kind == SNAP_USERS ? sp->index[i] : s->ngot;
            if (s->kind == SNAP_MEMBERS) {
                if (VEC_RESERVE(s->got, s->ngot, s->capgot, 16) < 0) {
                    s->err = STORE_ERR_NOMEM;
                    break;
                }
                s->ngot++;
            }
            if (user_copy(&s->got[at], &users[i]) < 0)
                s->err = STORE_ERR_NOMEM;
        }
    }
    free(sp->index);
    free(sp);
    snap_part_done(s);
}

static void snap_send(store_cluster *sc, sc_snap *s, unsigned k)
{
    sc_snap_part *sp = calloc(1, sizeof(*sp));
    if (sp && s->kind == SNAP_USERS)
        sp->index = calloc(s->nids, sizeof(*sp->index));
    if (!sp || (s->kind == SNAP_USERS && !sp->index)) {
        free(sp);
        s->err = STORE_ERR_NOMEM;
        snap_part_done(s);
        return;
    }
    sp->snap = s;
    sp->k = k;
    if (s->kind == SNAP_MEMBERS) {
        store_room_members(sc->parts[k].st, s->ids[0], on_snap_part, sp);
        return;
    }
    const char **ids = calloc(s->nids, sizeof(*ids));
    if (!ids) {
        free(sp->index);
        free(sp);
        s->err = STORE_ERR_NOMEM;
        snap_part_done(s);
        return;
    }
    for (size_t i = 0; i < s->nids; i++)
        if (part_of_user(sc, s->ids[i]) == k) {
            ids[sp->n] = s->ids[i];
            sp->index[sp->n++] = i;
        }
    store_users_query(sc->parts[k].st, ids, sp->n, on_snap_part, sp);
    free(ids);
}

/* Start the first queued snapshot: hold its partitions' events and read them. Runs from the
 * loop (snap_kick), so that even a snapshot of no partition answers on a later turn. */
static void on_snap_kick(uv_timer_t *t)
{
    store_cluster *sc = t->data;
    sc_snap *s = sc->snaps;
    if (!s || sc->snap_running || sc->closing)
        return;
    sc->snap_running = true;
    /* One count of its own until every partition has been asked: an answer that fails at once
     * must not finish the snapshot early. */
    s->pending = 1;
    for (unsigned k = 0; k < sc->nparts; k++)
        if (s->involved[k]) {
            sc->parts[k].held = true;
            s->pending++;
        }
    uv_timer_start(&sc->snap_timer, on_snap_timeout, SC_SNAP_WAIT_MS, 0);
    for (unsigned k = 0; k < sc->nparts; k++)
        if (s->involved[k])
            snap_send(sc, s, k);
    snap_part_done(s);
}

static sc_snap *snap_new(store_cluster *sc, sc_snap_kind kind, const char *const *ids, size_t n,
                         store_users_fn cb, void *ud)
{
    sc_snap *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    *s = (sc_snap){.sc = sc, .kind = kind, .cb = cb, .ud = ud, .nids = n};
    s->ids = calloc(n ? n : 1, sizeof(*s->ids));
    s->involved = calloc(sc->nparts, sizeof(*s->involved));
    s->v = calloc(sc->nparts, sizeof(*s->v));
    if (kind == SNAP_USERS && n)
        s->got = calloc(n, sizeof(*s->got));
    bool ok = s->ids && s->involved && s->v && (kind != SNAP_USERS || !n || s->got);
    for (size_t i = 0; ok && i < n; i++)
        ok = (s->ids[i] = strdup(ids[i])) != NULL;
    if (!ok) {
        snap_free(s);
        return NULL;
    }
    if (kind == SNAP_USERS) {
        s->ngot = s->capgot = n;
        for (size_t i = 0; i < n; i++)
            s->involved[part_of_user(sc, ids[i])] = true;
    } else {
        for (unsigned k = 0; k < sc->nparts; k++)
            s->involved[k] = true;
    }
    return s;
}

static void snap_submit(store_cluster *sc, sc_snap *s)
{
    if (sc->snaps_tail)
        sc->snaps_tail->next = s;
    else
        sc->snaps = s;
    sc->snaps_tail = s;
    if (!sc->snap_running)
        uv_timer_start(&sc->snap_kick, on_snap_kick, 0, 0);
}

static void sc_users_query(store *st, const char *const *users, size_t n, store_users_fn cb,
                           void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_snap *s = snap_new(sc, SNAP_USERS, users, n, cb, ud);
    if (!s) {
        store_fail_users(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    snap_submit(sc, s);
}

static void sc_room_members(store *st, const char *room, store_users_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_snap *s = snap_new(sc, SNAP_MEMBERS, &room, 1, cb, ud);
    if (!s) {
        store_fail_users(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    snap_submit(sc, s);
}

/* ---- operations of one socket or one user: its partition's ---- */

typedef struct sc_sock_op {
    store_cluster *sc;
    char *sid; /* forgotten once a close is answered */
    store_done_fn cb;
    void *ud;
} sc_sock_op;

static void on_closed(int err, void *ud)
{
    sc_sock_op *op = ud;
    if (!op->sc->closing)
        map_del(&op->sc->sids, op->sid, strlen(op->sid));
    op->cb(err, op->ud);
    free(op->sid);
    free(op);
}

static void sc_socket_open(store *st, const char *sid, const char *user, const char *status,
                           const char *metadata, store_done_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    unsigned k = part_of_user(sc, user);
    /* A socket id registered for a user of another partition: that partition's store would
     * refuse it, this one cannot see it. */
    sc_part *had = part_of_sid(sc, sid);
    if (had && had->k != k) {
        store_fail_done(st, cb, ud, STORE_ERR_EXISTS);
        return;
    }
    /* Remembered whatever the answer: a socket the store could not register now is registered
     * by a later reconciliation, in the same partition. */
    sid_remember(sc, sid, k);
    store_socket_open(sc->parts[k].st, sid, user, status, metadata, cb, ud);
}

static void sc_socket_assert(store *st, const char *sid, const char *user, const char *status,
                             const char *metadata, const char *const *rooms, size_t nrooms,
                             store_done_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    unsigned k = part_of_user(sc, user);
    sid_remember(sc, sid, k);
    store_socket_assert(sc->parts[k].st, sid, user, status, metadata, rooms, nrooms, cb, ud);
}

/* The partition of a socket this store was never told about: the owner uses a socket it did
 * not register here (a bug, or a race with a failed open); every partition reconciles, which
 * registers it where it belongs. */
static void reconciled(int err, void *ud)
{
    (void)err, (void)ud;
}

static sc_part *sock_part(store_cluster *sc, const char *sid)
{
    sc_part *p = part_of_sid(sc, sid);
    if (!p) {
        log_warn("a socket unknown to the cluster store: reconciling", "sid=%s", sid);
        for (unsigned k = 0; k < sc->nparts; k++)
            store_reconcile(sc->parts[k].st, reconciled, NULL);
    }
    return p;
}

static void sc_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_part *p = part_of_sid(sc, sid);
    if (!p) {
        /* Never registered here: nothing to close. */
        store_fail_done(st, cb, ud, STORE_OK);
        return;
    }
    sc_sock_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->sid = strdup(sid))) {
        free(op);
        store_fail_done(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    *op = (sc_sock_op){.sc = sc, .sid = op->sid, .cb = cb, .ud = ud};
    store_socket_close(p->st, sid, graceful, on_closed, op);
}

static void sc_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    sc_part *p = sock_part((store_cluster *)st, sid);
    if (p)
        store_room_join(p->st, sid, room, cb, ud);
    else
        store_fail_done(st, cb, ud, STORE_ERR_NO_SOCKET);
}

static void sc_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    sc_part *p = sock_part((store_cluster *)st, sid);
    if (p)
        store_room_leave(p->st, sid, room, cb, ud);
    else
        store_fail_done(st, cb, ud, STORE_ERR_NO_SOCKET);
}

static void sc_status_set(store *st, const char *sid, const char *status, const char *metadata,
                          store_done_fn cb, void *ud)
{
    sc_part *p = sock_part((store_cluster *)st, sid);
    if (p)
        store_status_set(p->st, sid, status, metadata, cb, ud);
    else
        store_fail_done(st, cb, ud, STORE_ERR_NO_SOCKET);
}

static void sc_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    sc_part *p = sock_part((store_cluster *)st, sid);
    if (p)
        store_touch(p->st, sid, cb, ud);
    else
        store_fail_done(st, cb, ud, STORE_ERR_NO_SOCKET);
}

static void sc_user_get(store *st, const char *user, store_user_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    store_user_get(sc->parts[part_of_user(sc, user)].st, user, cb, ud);
}

static void sc_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    store_user_disconnect(sc->parts[part_of_user(sc, user)].st, user, cb, ud);
}

/* ---- operations on every partition ---- */

/* One operation asked of every partition; `done` runs once all have answered. */
typedef struct sc_all {
    store_cluster *sc;
    unsigned pending;
    int err; /* the first failure */
    void (*done)(struct sc_all *a);
    union {
        store_done_fn done;
        store_room_fn room;
        store_page_fn page;
        store_stats_fn stats;
        store_events_fn events;
    } cb;
    void *ud;
    size_t limit, total;
    char **users; /* room, page: every partition's members */
    size_t nusers, capusers;
    bool more; /* page: some partition has members after its page */
    store_stats stats;
    pres_event *evs; /* deliver_read: every partition's events, ids prefixed with it */
    size_t nevs, capevs;
} sc_all;

static sc_all *all_new(store_cluster *sc, void (*done)(sc_all *a), void *ud)
{
    sc_all *a = calloc(1, sizeof(*a));
    if (a) {
        a->sc = sc;
        a->done = done;
        a->ud = ud;
        a->pending = sc->nparts;
    }
    return a;
}

static void all_free(sc_all *a)
{
    for (size_t i = 0; i < a->nusers; i++)
        free(a->users[i]);
    free(a->users);
    for (size_t i = 0; i < a->nevs; i++)
        pres_event_deinit(&a->evs[i]);
    free(a->evs);
    free(a);
}

static void all_answer(sc_all *a, int err)
{
    if (err && !a->err)
        a->err = err;
    if (--a->pending > 0)
        return;
    a->done(a);
    all_free(a);
}

static int all_add_user(sc_all *a, const char *user)
{
    if (VEC_RESERVE(a->users, a->nusers, a->capusers, 16) < 0)
        return -1;
    if (!(a->users[a->nusers] = strdup(user)))
        return -1;
    a->nusers++;
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void on_each_done(int err, void *ud)
{
    all_answer(ud, err);
}

static void all_done(sc_all *a)
{
    if (a->cb.done)
        a->cb.done(a->err, a->ud);
}

/* `op` (reconcile, shutdown) on every partition; `cb` once all are done, with the first error. */
static void each_partition(store *st, void (*op)(store *, store_done_fn, void *), store_done_fn cb,
                           void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_all *a = all_new(sc, all_done, ud);
    if (!a) {
        store_fail_done(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    a->cb.done = cb;
    for (unsigned k = 0; k < sc->nparts; k++)
        op(sc->parts[k].st, on_each_done, a);
}

static void sc_reconcile(store *st, store_done_fn cb, void *ud)
{
    each_partition(st, store_reconcile, cb, ud);
}

static void sc_shutdown(store *st, store_done_fn cb, void *ud)
{
    each_partition(st, store_shutdown, cb, ud);
}

/* Members of a room: the union of every partition's, sorted (users are in one partition each,
 * so there is nothing to remove twice). */
static void room_done(sc_all *a)
{
    if (a->err) {
        a->cb.room(a->err, NULL, 0, 0, a->ud);
        return;
    }
    if (a->nusers > 1)
        qsort(a->users, a->nusers, sizeof(*a->users), str_cmp);
    size_t n = a->limit && a->nusers > a->limit ? a->limit : a->nusers;
    a->cb.room(STORE_OK, (const char *const *)a->users, n, a->total, a->ud);
}

static void on_room_part(int err, const char *const *users, size_t n, size_t total, void *ud)
{
    sc_all *a = ud;
    for (size_t i = 0; !err && i < n; i++)
        if (all_add_user(a, users[i]) < 0)
            err = STORE_ERR_NOMEM;
    a->total += err ? 0 : total;
    all_answer(a, err);
}

static void sc_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_all *a = all_new(sc, room_done, ud);
    if (!a) {
        store_fail_room(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    a->cb.room = cb;
    a->limit = limit;
    for (unsigned k = 0; k < sc->nparts; k++)
        store_room_query(sc->parts[k].st, room, limit, on_room_part, a);
}

/* A page: each partition's first `limit` members after the cursor, merged; the page is the
 * first `limit` of them, and another follows if any partition had more. */
static void page_done(sc_all *a)
{
    if (a->err) {
        a->cb.page(a->err, NULL, 0, 0, "", a->ud);
        return;
    }
    if (a->nusers > 1)
        qsort(a->users, a->nusers, sizeof(*a->users), str_cmp);
    size_t n = a->nusers > a->limit ? a->limit : a->nusers;
    bool more = a->more || a->nusers > a->limit;
    a->cb.page(STORE_OK, (const char *const *)a->users, n, a->total,
               more && n > 0 ? a->users[n - 1] : "", a->ud);
}

static void on_page_part(int err, const char *const *users, size_t n, size_t total,
                         const char *next, void *ud)
{
    sc_all *a = ud;
    for (size_t i = 0; !err && i < n; i++)
        if (all_add_user(a, users[i]) < 0)
            err = STORE_ERR_NOMEM;
    if (!err) {
        a->total += total;
        a->more = a->more || (next && next[0]);
    }
    all_answer(a, err);
}

static void sc_room_page(store *st, const char *room, const char *cursor, size_t limit,
                         store_page_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_all *a = all_new(sc, page_done, ud);
    if (!a) {
        store_fail_page(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    a->cb.page = cb;
    a->limit = limit;
    for (unsigned k = 0; k < sc->nparts; k++)
        store_room_page(sc->parts[k].st, room, cursor, limit, on_page_part, a);
}

/* Counts add up over partitions, except live instances: every instance holds a lease in each. */
static void stats_done(sc_all *a)
{
    a->cb.stats(a->err, a->err ? NULL : &a->stats, a->ud);
}

static void on_stats_part(int err, const store_stats *st, void *ud)
{
    sc_all *a = ud;
    if (!err) {
        a->stats.users_online += st->users_online;
        a->stats.sockets += st->sockets;
        a->stats.rooms += st->rooms;
        if (st->instances > a->stats.instances)
            a->stats.instances = st->instances;
    }
    all_answer(a, err);
}

static void sc_stats_get(store *st, store_stats_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_all *a = all_new(sc, stats_done, ud);
    if (!a) {
        store_fail_stats(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    a->cb.stats = cb;
    for (unsigned k = 0; k < sc->nparts; k++)
        store_stats_get(sc->parts[k].st, on_stats_part, a);
}

/* ---- events: resuming readers and webhooks ---- */

/* From the events this instance forwarded last (it is their sequence, "<epoch>-<n>", that its
 * readers hold). Another instance's sequence, or one older than what is kept: gone. */
static void sc_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    long long epoch;
    unsigned long long n;
    char tail;
    if (sscanf(after, "%lld-%llu%c", &epoch, &n, &tail) != 2 || epoch != sc->epoch || n > sc->seq) {
        store_fail_events(st, cb, ud, STORE_ERR_GONE);
        return;
    }
    uint64_t oldest = sc->seq - sc->ring_n + 1; /* sequence of ring[ring_head] */
    if (n + 1 < oldest) {
        store_fail_events(st, cb, ud, STORE_ERR_GONE);
        return;
    }
    size_t from = (size_t)(n + 1 - oldest), count = sc->ring_n - from;
    if (count > max)
        count = max;
    pres_event *evs = count ? calloc(count, sizeof(*evs)) : NULL;
    if (count && !evs) {
        store_fail_events(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    for (size_t i = 0; i < count; i++)
        evs[i] = sc->ring[(sc->ring_head + from + i) % SC_RING].ev; /* borrowed */
    cb(STORE_OK, evs, count, ud);
    free(evs);
}

/* Webhooks: each partition has its delivery group and lock; a batch is every partition's, their
 * ids prefixed with the partition ("<k>/<stream id>") so that the acknowledgement finds it. */
static void deliver_done(sc_all *a)
{
    a->cb.events(a->nevs ? STORE_OK : a->err, a->evs, a->nevs, a->ud);
}

/* One partition's part of a webhook batch. */
typedef struct sc_deliver_part {
    sc_all *a;
    unsigned k;
} sc_deliver_part;

static void on_deliver_part(int err, const pres_event *evs, size_t n, void *ud)
{
    sc_deliver_part *dp = ud;
    sc_all *a = dp->a;
    unsigned k = dp->k;
    free(dp);
    for (size_t i = 0; !err && i < n; i++) {
        if (VEC_RESERVE(a->evs, a->nevs, a->capevs, 32) < 0) {
            err = STORE_ERR_NOMEM;
            break;
        }
        pres_event *e = &a->evs[a->nevs];
        if (ev_copy(e, &evs[i]) < 0) {
            err = STORE_ERR_NOMEM;
            break;
        }
        char id[64];
        int len = snprintf(id, sizeof(id), "%u/%s", k, evs[i].id);
        if (len < 0 || (size_t)len >= sizeof(e->id)) {
            pres_event_deinit(e);
            err = STORE_ERR_INTERNAL;
            break;
        }
        memcpy(e->id, id, (size_t)len + 1);
        a->nevs++;
    }
    all_answer(a, err);
}

static void sc_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_all *a = all_new(sc, deliver_done, ud);
    if (!a) {
        store_fail_events(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    a->cb.events = cb;
    for (unsigned k = 0; k < sc->nparts; k++) {
        sc_deliver_part *dp = malloc(sizeof(*dp));
        if (!dp) {
            all_answer(a, STORE_ERR_NOMEM);
            continue;
        }
        *dp = (sc_deliver_part){.a = a, .k = k};
        store_deliver_read(sc->parts[k].st, max, lock_ms, on_deliver_part, dp);
    }
}

static void sc_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    store_cluster *sc = (store_cluster *)st;
    sc_all *a = all_new(sc, all_done, ud);
    const char **mine = calloc(n ? n : 1, sizeof(*mine));
    if (!a || !mine) {
        free(a);
        free(mine);
        store_fail_done(st, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    a->cb.done = cb;
    for (unsigned k = 0; k < sc->nparts; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            char *end;
            unsigned long p = strtoul(ids[i], &end, 10);
            if (p == k && *end == '/')
                mine[m++] = end + 1;
        }
        store_deliver_ack(sc->parts[k].st, mine, m, on_each_done, a);
    }
    free(mine);
}

/* ---- the partitions' hooks ---- */

static bool in_part(const char *sid, const char *user, void *ud)
{
    sc_part *p = ud;
    if (part_of_user(p->sc, user) != p->k)
        return false;
    sid_remember(p->sc, sid, p->k);
    return true;
}

/* A partition reconciles: the owner's truth, less the users of other partitions. */
static void on_part_reconcile(store_truth *t, void *ud)
{
    sc_part *p = ud;
    store_cluster *sc = p->sc;
    t->keep = in_part;
    t->keep_ud = p;
    if (sc->hooks.reconcile)
        sc->hooks.reconcile(t, sc->hooks.ud);
}

/* Available when every partition is: a query may need any of them. */
static void on_part_availability(bool available, void *ud)
{
    sc_part *p = ud;
    store_cluster *sc = p->sc;
    p->available = available;
    bool all = true;
    for (unsigned k = 0; k < sc->nparts && all; k++)
        all = sc->parts[k].available;
    if (all == sc->available || sc->closing)
        return;
    sc->available = all;
    if (sc->hooks.availability)
        sc->hooks.availability(all, sc->hooks.ud);
}

/* ---- lifecycle ---- */

static void part_closed(void *ud)
{
    store_cluster *sc = ud;
    if (--sc->open_parts > 0)
        return;
    for (size_t i = 0; i < sc->ring_n; i++)
        pres_event_deinit(&sc->ring[(sc->ring_head + i) % SC_RING].ev);
    free(sc->ring);
    for (size_t i = 0; i < sc->nheld; i++)
        pres_event_deinit(&sc->held[i].ev);
    free(sc->held);
    map_deinit(&sc->sids);
    free(sc->parts);
    free(sc);
}

static void on_handle_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void sc_free(store *st)
{
    store_cluster *sc = (store_cluster *)st;
    if (sc->closing)
        return;
    sc->closing = true;
    /* Snapshots not answered yet are answered now; their partitions' late answers are dropped. */
    while (sc->snaps) {
        sc_snap *s = sc->snaps;
        sc->snaps = s->next;
        s->cb(STORE_ERR_SHUTDOWN, NULL, 0, "", s->ud);
        if (s->pending > 0)
            s->abandoned = true;
        else
            snap_free(s);
    }
    sc->snaps_tail = NULL;
    for (unsigned k = 0; k < sc->nparts; k++)
        if (sc->parts[k].st)
            store_free(sc->parts[k].st);
    uv_close((uv_handle_t *)&sc->snap_timer, on_handle_closed);
    uv_close((uv_handle_t *)&sc->snap_kick, on_handle_closed);
    store_base_close(&sc->base, on_handle_closed);
    redis_cluster_free(sc->cmd, part_closed, sc);
    redis_cluster_free(sc->lease, part_closed, sc);
}

static bool sc_available(const store *st)
{
    const store_cluster *sc = (const store_cluster *)st;
    return sc->available && !sc->closing;
}

static const store_vtbl sc_vtbl = {
    .free = sc_free,
    .available = sc_available,
    .socket_open = sc_socket_open,
    .socket_assert = sc_socket_assert,
    .socket_close = sc_socket_close,
    .room_join = sc_room_join,
    .room_leave = sc_room_leave,
    .status_set = sc_status_set,
    .touch = sc_touch,
    .users_query = sc_users_query,
    .room_query = sc_room_query,
    .room_members = sc_room_members,
    .shutdown = sc_shutdown,
    .reconcile = sc_reconcile,
    .user_get = sc_user_get,
    .room_page = sc_room_page,
    .stats_get = sc_stats_get,
    .user_disconnect = sc_user_disconnect,
    .events_since = sc_events_since,
    .deliver_read = sc_deliver_read,
    .deliver_ack = sc_deliver_ack,
};

/* Partition k: a routed Redis store under "<prefix>{<tag>}:". */
static int part_start(store_cluster *sc, unsigned k, const store_opts *opts)
{
    sc_part *p = &sc->parts[k];
    p->sc = sc;
    p->k = k;
    snprintf(p->last_id, sizeof(p->last_id), "0-0");
    uint16_t slot = redis_partition_tag(k, sc->nparts, p->tag);
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "%s{%s}:", opts->key_prefix ? opts->key_prefix : "", p->tag);
    store_opts po = *opts;
    po.key_prefix = prefix;
    store_hooks hooks = {.event = on_part_event,
                         .reconcile = on_part_reconcile,
                         .availability = on_part_availability,
                         .ud = p};
    sr_route route = {.cmd = sc->cmd,
                      .lease = sc->lease,
                      .slot = slot,
                      .auth = &sc->auth,
                      .read_to = on_part_read,
                      .read_ud = p};
    p->st = sr_new_routed(sc->loop, &po, &hooks, &route);
    return p->st ? 0 : -1;
}

store *sc_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks,
              const addr_redis_url *url)
{
    unsigned n = opts->redis_partitions ? opts->redis_partitions : SC_PARTITIONS_DEFAULT;
    if (n > REDIS_PARTITIONS_MAX) {
        log_error("redis store: too many partitions", "partitions=%u max=%d", n,
                  REDIS_PARTITIONS_MAX);
        return NULL;
    }
    store_cluster *sc = calloc(1, sizeof(*sc));
    if (!sc || !(sc->parts = calloc(n, sizeof(*sc->parts)))) {
        free(sc);
        log_error("redis store: out of memory", NULL);
        return NULL;
    }
    sc->loop = loop;
    sc->nparts = n;
    if (hooks)
        sc->hooks = *hooks;
    sc->auth = url->data;
    sc->auth.db = -1;
    sc->epoch = host_wall_ms();
    map_init(&sc->sids, host_seed());
    redis_cluster_cfg cc = {
        .name = "command", .url = url, .library = redis_library, .ping_ms = 1000, .stall_ms = 3000};
    redis_cluster_cfg lc = cc;
    lc.name = "lease";
    sc->cmd = redis_cluster_new(loop, &cc);
    sc->lease = sc->cmd ? redis_cluster_new(loop, &lc) : NULL;
    store_base_init(&sc->base, &sc_vtbl, loop, "redis cluster store");
    uv_timer_init(loop, &sc->snap_timer);
    uv_timer_init(loop, &sc->snap_kick);
    sc->snap_timer.data = sc->snap_kick.data = sc;
    /* Two clusters, two timers and the shared part's handle. */
    sc->open_parts = 5;
    bool ok = sc->lease != NULL;
    for (unsigned k = 0; ok && k < n; k++)
        ok = part_start(sc, k, opts) == 0;
    if (!ok) {
        log_error("redis store: could not set up the cluster's partitions", NULL);
        if (!sc->lease) {
            /* sc_free closes what exists; a missing cluster counts as closed. */
            if (!sc->cmd)
                sc->open_parts--;
            sc->open_parts--;
        }
        sc_free(&sc->base);
        return NULL;
    }
    log_info("redis store on a cluster", "partitions=%u", n);
    return &sc->base;
}
