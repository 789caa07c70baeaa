/* The memory store: pres_state for one instance, with a timer for the offline grace and the
 * retention, and completions delivered on the next loop turn as the store contract asks (callers
 * never see a callback run inside the call that started it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/vec.h"
#include "presenced/io/host.h"
#include "presenced/io/later.h"
#include "presenced/io/log.h"
#include "presenced/core/map.h"
#include "presenced/core/pres_state.h"
#include "presenced/io/store_memory.h"
#include "store_impl.h"

typedef enum mem_kind {
    JOB_DONE,
    JOB_USERS, /* users_query and room_members: answered with the seq they reflect */
    JOB_ROOM,
    JOB_USER,
    JOB_PAGE,
    JOB_STATS,
    JOB_EVENTS,
} mem_kind;

/* A finished operation waiting to be reported: its events, then its callback. */
typedef struct mem_job {
    struct mem_job *next;
    mem_kind kind;
    int err;
    pres_events events;
    store_done_fn done;
    store_users_fn users_cb;
    store_room_fn room_cb;
    store_user_fn user_cb;
    store_page_fn page_cb;
    store_stats_fn stats_cb;
    store_events_fn events_cb;
    void *ud;
    store_user *users; /* JOB_USERS, JOB_USER: strings owned by `strings` */
    size_t n, total;
    char **strings; /* JOB_USERS: copied status/metadata; JOB_ROOM, JOB_PAGE: member ids;
                       JOB_USER: socket ids after the user's strings */
    size_t nstrings;
    size_t first_sid; /* JOB_USER: index of the first socket id in `strings` */
    char *cursor;     /* JOB_PAGE: the next page's cursor */
    store_stats stats;
    pres_events found; /* JOB_EVENTS: copies of retained events */
    uint64_t start_ns;
} mem_job;

/* The last STORE_MEMORY_RING events in their JSON form (pres_event_encode), for store_events_since
 * and webhook delivery; slot seq % STORE_MEMORY_RING holds event `seq`. */
typedef struct mem_ring {
    char *json[STORE_MEMORY_RING];
    uint64_t first, last; /* sequence numbers held: first..last (none while last < first) */
} mem_ring;

typedef struct mem_store {
    store base;
    uv_loop_t *loop;
    store_hooks hooks;
    pres_state *ps;
    uv_timer_t timer; /* grace deadlines and retention */
    uv_idle_t idle;   /* delivers finished jobs */
    mem_job *head, *tail;
    /* Event ids are "<gen>-<seq>": the generation is the wall-clock millisecond the store was
     * made, so that the ids of a later run (a restart) are above every id of an earlier one and
     * a reader resuming with an earlier run's id is told so rather than replayed the wrong
     * events. */
    uint64_t gen;
    uint64_t seq; /* last event's sequence within the generation */
    mem_ring ring;
    uint64_t delivered; /* webhook delivery: last event acknowledged */
    bool delivering;    /* the first deliver_read happened: delivery covers events from then */
    store_metrics sm;
    bool closing;
    int handles_open;
} mem_store;

static void mem_id(const mem_store *m, uint64_t seq, char out[48])
{
    snprintf(out, 48, "%llu-%llu", (unsigned long long)m->gen, (unsigned long long)seq);
}

/* Where an id stands: MEM_ID_OURS (*seq set), MEM_ID_EARLIER (an earlier generation), or
 * MEM_ID_FOREIGN (a later one, another form, or ahead of this generation's events). "0" (or
 * "0-0") is the start of whatever is kept, as with a Redis stream. */
enum { MEM_ID_OURS, MEM_ID_EARLIER, MEM_ID_FOREIGN };
static int mem_id_parse(const mem_store *m, const char *id, uint64_t *seq)
{
    char *end = NULL;
    unsigned long long gen = strtoull(id, &end, 10);
    *seq = 0;
    if (pres_event_id_valid(id) && gen == 0 && (!*end || strcmp(end, "-0") == 0))
        return MEM_ID_OURS;
    if (!pres_event_id_valid(id) || !end || *end != '-')
        return MEM_ID_FOREIGN;
    if (gen < m->gen)
        return MEM_ID_EARLIER;
    *seq = strtoull(end + 1, NULL, 10);
    return gen == m->gen && *seq <= m->seq ? MEM_ID_OURS : MEM_ID_FOREIGN;
}

static void job_free(mem_job *j)
{
    pres_events_clear(&j->events);
    pres_events_clear(&j->found);
    free(j->cursor);
    for (size_t i = 0; i < j->nstrings; i++)
        free(j->strings[i]);
    free(j->strings);
    free(j->users);
    free(j);
}

/* Keep the event for readers that resume (SSE) and for webhook delivery. The disconnect
 * control entry is for the instance only. */
static void ring_put(mem_store *m, const pres_event *ev)
{
    if (ev->type == PRES_EV_DISCONNECT)
        return;
    char *json = pres_event_encode(ev);
    if (!json) {
        log_warn("memory store: event not retained (out of memory)", "id=%s", ev->id);
        return;
    }
    uint64_t seq = m->seq;
    mem_ring *r = &m->ring;
    if (r->last < r->first || r->first == 0)
        r->first = seq;
    size_t slot = seq % STORE_MEMORY_RING;
    free(r->json[slot]);
    r->json[slot] = json;
    r->last = seq;
    if (r->last - r->first >= STORE_MEMORY_RING)
        r->first = r->last - STORE_MEMORY_RING + 1;
}

/* Copy retained events after sequence `after` (at most `max`) into `out`. */
static int ring_read(const mem_store *m, uint64_t after, size_t max, pres_events *out)
{
    const mem_ring *r = &m->ring;
    uint64_t from = after + 1 > r->first ? after + 1 : r->first;
    for (uint64_t seq = from; r->first && seq <= r->last && out->n < max; seq++) {
        const char *json = r->json[seq % STORE_MEMORY_RING];
        if (!json)
            continue;
        if (VEC_RESERVE(out->v, out->n, out->cap, 16) < 0)
            return STORE_ERR_NOMEM;
        pres_event *ev = &out->v[out->n];
        if (pres_event_decode(json, strlen(json), ev) < 0)
            continue;
        mem_id(m, seq, ev->id);
        out->n++;
    }
    return STORE_OK;
}

static void deliver(mem_store *m, mem_job *j)
{
    for (size_t i = 0; i < j->events.n && !m->closing; i++) {
        /* The memory store's event ids are a sequence, in delivery order. */
        mem_id(m, ++m->seq, j->events.v[i].id);
        ring_put(m, &j->events.v[i]);
        m->hooks.event(&j->events.v[i], m->hooks.ud);
    }
    int err = m->closing ? STORE_ERR_SHUTDOWN : j->err;
    static const char *const kinds[] = {"write", "users", "room",  "user",
                                        "page",  "stats", "events"};
    if (!m->closing)
        metrics_observe(m->sm.latency, kinds[j->kind], (double)(uv_hrtime() - j->start_ns) / 1e9);
    switch (j->kind) {
    case JOB_DONE:
        if (j->done)
            j->done(err, j->ud);
        break;
    case JOB_USERS: {
        /* Jobs finish in the order they started and the events of each finished job were
         * numbered above: the sequence now is the last event decided before this read. */
        char seq[48];
        mem_id(m, m->seq, seq);
        j->users_cb(err, err ? NULL : j->users, err ? 0 : j->n, seq, j->ud);
        break;
    }
    case JOB_ROOM:
        j->room_cb(err, err ? NULL : (const char *const *)j->strings, err ? 0 : j->n,
                   err ? 0 : j->total, j->ud);
        break;
    case JOB_USER:
        j->user_cb(err, err ? NULL : j->users,
                   err ? NULL : (const char *const *)j->strings + j->first_sid, err ? 0 : j->n,
                   j->ud);
        break;
    case JOB_PAGE:
        j->page_cb(err, err ? NULL : (const char *const *)j->strings, err ? 0 : j->n,
                   err ? 0 : j->total, err || !j->cursor ? "" : j->cursor, j->ud);
        break;
    case JOB_STATS:
        j->stats_cb(err, err ? NULL : &j->stats, j->ud);
        break;
    case JOB_EVENTS:
        /* A reset comes with the events that begin the new generation. */
        j->events_cb(err, err && err != STORE_ERR_RESET ? NULL : j->found.v,
                     err && err != STORE_ERR_RESET ? 0 : j->found.n, j->ud);
        break;
    }
}

static void idle_cb(uv_idle_t *h)
{
    mem_store *m = h->data;
    /* Jobs queued by the callbacks below run on the next turn, so take the list first. */
    mem_job *j = m->head;
    m->head = m->tail = NULL;
    uv_idle_stop(&m->idle);
    while (j) {
        mem_job *next = j->next;
        deliver(m, j);
        job_free(j);
        j = next;
    }
}

static mem_job *job_new(mem_store *m, mem_kind kind, void *ud)
{
    mem_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->ud = ud;
    j->start_ns = uv_hrtime();
    (void)m;
    return j;
}

static void job_queue(mem_store *m, mem_job *j)
{
    if (m->tail)
        m->tail->next = j;
    else
        m->head = j;
    m->tail = j;
    uv_idle_start(&m->idle, idle_cb);
}

static void arm_timer(mem_store *m);

static void timer_cb(uv_timer_t *t)
{
    mem_store *m = t->data;
    mem_job *j = job_new(m, JOB_DONE, NULL);
    if (!j) {
        arm_timer(m);
        return;
    }
    j->err = pres_state_tick(m->ps, host_wall_ms(), &j->events);
    job_queue(m, j);
    arm_timer(m);
}

static void arm_timer(mem_store *m)
{
    if (m->closing)
        return;
    int64_t d = pres_state_next_deadline(m->ps);
    if (d == INT64_MAX) {
        uv_timer_stop(&m->timer);
        return;
    }
    int64_t now = host_wall_ms();
    later_timer(&m->timer, timer_cb, d > now ? (uint64_t)(d - now) : 0);
}

/* Run a state operation now and report it on the next turn. */
static void finish(mem_store *m, int err, mem_job *j, store_done_fn cb)
{
    j->err = err;
    j->done = cb;
    job_queue(m, j);
    arm_timer(m);
}

#define MEM(st) ((mem_store *)(st))

/* Report an allocation failure without a job to carry it: on the next turn, as every answer. */
#define JOB_OR_FAIL(j, cb, ud)                                                                     \
    do {                                                                                           \
        if (!(j)) {                                                                                \
            store_fail_done(&m->base, cb, ud, STORE_ERR_NOMEM);                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void mem_socket_open(store *st, const char *sid, const char *user, const char *status,
                            const char *metadata, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_open(m->ps, sid, user, status, metadata, host_wall_ms(), &j->events), j,
           cb);
}

static void mem_socket_assert(store *st, const char *sid, const char *user, const char *status,
                              const char *metadata, const char *const *rooms, size_t nrooms,
                              store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_assert(m->ps, sid, user, status, metadata, rooms, nrooms, host_wall_ms()),
           j, cb);
}

static void mem_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_close(m->ps, sid, graceful, host_wall_ms(), &j->events), j, cb);
}

static void mem_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_join(m->ps, sid, room, host_wall_ms(), &j->events), j, cb);
}

static void mem_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_leave(m->ps, sid, room, host_wall_ms(), &j->events), j, cb);
}

static void mem_status_set(store *st, const char *sid, const char *status, const char *metadata,
                           store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_status(m->ps, sid, status, metadata, host_wall_ms(), &j->events), j, cb);
}

static void mem_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_touch(m->ps, sid, host_wall_ms()), j, cb);
}

static char *keep(mem_job *j, const char *s)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (copy)
        j->strings[j->nstrings++] = copy;
    return copy;
}

/* Read `n` users into a JOB_USERS job (strings copied: the state may change before the answer
 * goes out). */
static void users_fill(mem_store *m, mem_job *j, const char *const *users, size_t n,
                       store_users_fn cb)
{
    j->users_cb = cb;
    j->users = calloc(n ? n : 1, sizeof(*j->users));
    j->strings = calloc(n ? 3 * n : 1, sizeof(char *));
    j->n = n;
    j->err = j->users && j->strings ? STORE_OK : STORE_ERR_NOMEM;
    for (size_t i = 0; i < n && j->err == STORE_OK; i++) {
        pres_user_view v;
        pres_state_user(m->ps, users[i], &v);
        store_user *u = &j->users[i];
        *u = (store_user){.known = v.known,
                          .online = v.online,
                          .last_seen = v.last_seen,
                          .since = v.since,
                          .sockets = v.sockets};
        u->user = keep(j, users[i]);
        u->status = keep(j, v.status);
        u->metadata = keep(j, v.metadata);
        if (!u->user || !u->status || (v.metadata && !u->metadata))
            j->err = STORE_ERR_NOMEM;
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void mem_users_query(store *st, const char *const *users, size_t n, store_users_fn cb,
                            void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_USERS, ud);
    if (!j) {
        store_fail_users(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    users_fill(m, j, users, n, cb);
    job_queue(m, j);
}

static void mem_room_members(store *st, const char *room, store_users_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_USERS, ud);
    size_t n = pres_state_room(m->ps, room, NULL, 0);
    const char **ids = calloc(n ? n : 1, sizeof(*ids));
    if (!j || !ids) {
        free(ids);
        free(j);
        store_fail_users(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    pres_state_room(m->ps, room, ids, n);
    qsort(ids, n, sizeof(*ids), cmp_str);
    users_fill(m, j, ids, n, cb);
    free(ids);
    job_queue(m, j);
}

static void mem_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_ROOM, ud);
    if (!j) {
        store_fail_room(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    j->room_cb = cb;
    size_t total = pres_state_room(m->ps, room, NULL, 0);
    size_t want = limit && limit < total ? limit : total;
    const char **ids = calloc(want ? want : 1, sizeof(*ids));
    j->strings = calloc(want ? want : 1, sizeof(char *));
    j->err = ids && j->strings ? STORE_OK : STORE_ERR_NOMEM;
    if (j->err == STORE_OK) {
        j->total = pres_state_room(m->ps, room, ids, want);
        for (size_t i = 0; i < want && j->err == STORE_OK; i++)
            if (!keep(j, ids[i]))
                j->err = STORE_ERR_NOMEM;
        j->n = j->nstrings;
    }
    free(ids);
    job_queue(m, j);
}

static void mem_shutdown(store *st, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_close_all(m->ps, host_wall_ms(), &j->events), j, cb);
}

/* A live socket of the truth: registered if it is not, with exactly its rooms (the rooms it
 * should not be in are left first, as the Redis store does). */
static int reconcile_sock(mem_store *m, const store_truth_sock *k, int64_t now, pres_events *out)
{
    if (pres_state_socket_rooms(m->ps, k->sid, NULL, 0) < 0) {
        pres_user_view v;
        pres_state_user(m->ps, k->user, &v);
        /* A user coming online takes the truth's status and metadata. */
        int rc = pres_state_open(m->ps, k->sid, k->user, v.online ? NULL : k->status,
                                 v.online ? NULL : k->metadata, now, out);
        if (rc < 0)
            return rc;
    }
    long n = pres_state_socket_rooms(m->ps, k->sid, NULL, 0);
    const char **cur = calloc(n > 0 ? (size_t)n : 1, sizeof(*cur));
    char **extra = calloc(n > 0 ? (size_t)n : 1, sizeof(*extra));
    size_t nextra = 0;
    int rc = cur && extra ? PRES_OK : PRES_ERR_NOMEM;
    if (rc == PRES_OK)
        pres_state_socket_rooms(m->ps, k->sid, cur, (size_t)n);
    for (long i = 0; i < n && rc == PRES_OK; i++) {
        bool wanted = false;
        for (size_t j = 0; j < k->nrooms && !wanted; j++)
            wanted = strcmp(cur[i], k->rooms[j]) == 0;
        if (!wanted && !(extra[nextra++] = strdup(cur[i])))
            rc = PRES_ERR_NOMEM;
    }
    /* Leaving changes the socket's room list, so the names were copied first. */
    for (size_t i = 0; i < nextra && rc == PRES_OK; i++)
        rc = pres_state_leave(m->ps, k->sid, extra[i], now, out);
    for (size_t i = 0; i < nextra; i++)
        free(extra[i]);
    free(extra);
    free(cur);
    for (size_t i = 0; i < k->nrooms && rc == PRES_OK; i++)
        rc = pres_state_join(m->ps, k->sid, k->rooms[i], now, out);
    return rc;
}

/* docs/presence-model.md, "Reconciliation": the truth's sockets registered with their rooms,
 * then every other registered socket closed (not graceful). One instance, one call: atomic. */
static int reconcile_all(mem_store *m, const store_truth *t, int64_t now, pres_events *out)
{
    for (size_t i = 0; i < t->n; i++) {
        int rc = reconcile_sock(m, &t->v[i], now, out);
        if (rc < 0)
            return rc;
    }
    map live;
    map_init(&live, 0x51ed270b27cb5c55ULL);
    int rc = PRES_OK;
    for (size_t i = 0; i < t->n && rc == PRES_OK; i++)
        if (map_put(&live, t->v[i].sid, strlen(t->v[i].sid), &live) < 0)
            rc = PRES_ERR_NOMEM;
    size_t total = pres_state_socket_ids(m->ps, NULL, 0);
    const char **ids = calloc(total ? total : 1, sizeof(*ids));
    char **stale = calloc(total ? total : 1, sizeof(*stale));
    size_t nstale = 0;
    if (!ids || !stale)
        rc = PRES_ERR_NOMEM;
    if (rc == PRES_OK)
        pres_state_socket_ids(m->ps, ids, total);
    for (size_t i = 0; i < total && rc == PRES_OK; i++)
        if (!map_get(&live, ids[i], strlen(ids[i])) && !(stale[nstale++] = strdup(ids[i])))
            rc = PRES_ERR_NOMEM;
    /* Closing changes the state's socket table, so the ids were copied first. */
    for (size_t i = 0; i < nstale && rc == PRES_OK; i++)
        rc = pres_state_close(m->ps, stale[i], false, now, out);
    for (size_t i = 0; i < nstale; i++)
        free(stale[i]);
    free(stale);
    free(ids);
    map_deinit(&live);
    return rc;
}

static void mem_reconcile(store *st, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    store_truth t;
    int err = store_truth_collect(&m->hooks, &t);
    if (err == STORE_OK)
        err = reconcile_all(m, &t, host_wall_ms(), &j->events);
    store_truth_clear(&t);
    finish(m, err, j, cb);
}

static void mem_user_get(store *st, const char *user, store_user_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_USER, ud);
    if (!j) {
        store_fail_user(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    j->user_cb = cb;
    pres_user_view v;
    pres_state_user(m->ps, user, &v);
    size_t nsids = pres_state_user_sockets(m->ps, user, NULL, 0);
    const char **sids = calloc(nsids ? nsids : 1, sizeof(*sids));
    j->users = calloc(1, sizeof(*j->users));
    j->strings = calloc(3 + nsids, sizeof(char *));
    j->err = sids && j->users && j->strings ? STORE_OK : STORE_ERR_NOMEM;
    if (j->err == STORE_OK) {
        pres_state_user_sockets(m->ps, user, sids, nsids);
        *j->users = (store_user){.known = v.known,
                                 .online = v.online,
                                 .last_seen = v.last_seen,
                                 .since = v.since,
                                 .sockets = v.sockets};
        j->users->user = keep(j, user);
        j->users->status = keep(j, v.status);
        /* Keep the slot layout fixed: user, status, metadata (maybe NULL), then sockets. */
        j->strings[2] = v.metadata ? strdup(v.metadata) : NULL;
        j->users->metadata = j->strings[2];
        j->nstrings = 3;
        j->first_sid = 3;
        if (!j->users->user || !j->users->status || (v.metadata && !j->strings[2]))
            j->err = STORE_ERR_NOMEM;
        for (size_t i = 0; i < nsids && j->err == STORE_OK; i++)
            if (!keep(j, sids[i]))
                j->err = STORE_ERR_NOMEM;
        j->n = nsids;
    }
    free(sids);
    job_queue(m, j);
}

static void mem_room_page(store *st, const char *room, const char *cursor, size_t limit,
                          store_page_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_PAGE, ud);
    if (!j) {
        store_fail_page(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    j->page_cb = cb;
    const char **ids = NULL;
    size_t n = 0, total = 0;
    j->err = pres_state_room_page(m->ps, room, cursor, limit, &ids, &n, &total) == PRES_OK
                 ? STORE_OK
                 : STORE_ERR_NOMEM;
    if (j->err == STORE_OK && !(j->strings = calloc(n ? n : 1, sizeof(char *))))
        j->err = STORE_ERR_NOMEM;
    for (size_t i = 0; i < n && j->err == STORE_OK; i++)
        if (!keep(j, ids[i]))
            j->err = STORE_ERR_NOMEM;
    j->n = j->nstrings;
    j->total = total;
    /* A full page may be the last one: the next read then returns nothing. */
    if (j->err == STORE_OK && n == limit && n > 0 && !(j->cursor = strdup(ids[n - 1])))
        j->err = STORE_ERR_NOMEM;
    free(ids);
    job_queue(m, j);
}

static void mem_stats_get(store *st, store_stats_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_STATS, ud);
    if (!j) {
        store_fail_stats(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    j->stats_cb = cb;
    pres_stats ps;
    pres_state_stats(m->ps, &ps);
    j->stats = (store_stats){
        .users_online = ps.users_online, .sockets = ps.sockets, .rooms = ps.rooms, .instances = 1};
    job_queue(m, j);
}

static void mem_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    j->events.v = calloc(1, sizeof(*j->events.v));
    int err = STORE_ERR_NOMEM;
    if (j->events.v) {
        j->events.cap = 1;
        pres_event_init(&j->events.v[0], PRES_EV_DISCONNECT);
        j->events.v[0].at = host_wall_ms();
        if (pres_event_set(&j->events.v[0].user, user) == 0) {
            j->events.n = 1;
            err = STORE_OK;
        }
    }
    finish(m, err, j, cb);
}

static void mem_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_EVENTS, ud);
    if (!j) {
        store_fail_events(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    j->events_cb = cb;
    uint64_t seq = 0;
    int where = mem_id_parse(m, after, &seq);
    /* An earlier run's id: this generation is replayed from its start, if still retained. */
    if (where == MEM_ID_EARLIER && m->ring.first <= 1) {
        int rc = ring_read(m, 0, max, &j->found);
        j->err = rc ? rc : STORE_ERR_RESET;
    } else if (where == MEM_ID_FOREIGN) {
        j->err = STORE_ERR_FOREIGN;
    } else if (where == MEM_ID_EARLIER || (m->ring.first && seq + 1 < m->ring.first)) {
        j->err = STORE_ERR_GONE;
    } else {
        j->err = ring_read(m, seq, max, &j->found);
    }
    job_queue(m, j);
}

static void mem_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    (void)lock_ms;
    mem_job *j = job_new(m, JOB_EVENTS, ud);
    if (!j) {
        store_fail_events(&m->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    j->events_cb = cb;
    if (!m->delivering) {
        /* A store made without `webhooks`: delivery starts with the first read. */
        m->delivering = true;
        m->delivered = m->seq;
    }
    if (m->ring.first && m->delivered + 1 < m->ring.first) {
        log_warn("webhooks: events dropped from the memory store's ring before delivery",
                 "count=%llu", (unsigned long long)(m->ring.first - m->delivered - 1));
        m->delivered = m->ring.first - 1;
    }
    j->err = ring_read(m, m->delivered, max, &j->found);
    job_queue(m, j);
}

static void mem_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = 0;
        if (mem_id_parse(m, ids[i], &seq) == MEM_ID_OURS && seq > m->delivered)
            m->delivered = seq;
    }
    finish(m, STORE_OK, j, cb);
}

static bool mem_available(const store *st)
{
    (void)st;
    return true;
}

static void handle_closed(uv_handle_t *h)
{
    mem_store *m = h->data;
    if (--m->handles_open == 0) {
        for (size_t i = 0; i < STORE_MEMORY_RING; i++)
            free(m->ring.json[i]);
        pres_state_free(m->ps);
        free(m);
    }
}

static void mem_free(store *st)
{
    mem_store *m = MEM(st);
    m->closing = true;
    /* Pending callbacks still run, with STORE_ERR_SHUTDOWN, and no events. */
    idle_cb(&m->idle);
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, handle_closed);
    uv_close((uv_handle_t *)&m->idle, handle_closed);
    store_base_close(&m->base, handle_closed);
}

static const store_vtbl mem_vtbl = {
    .free = mem_free,
    .available = mem_available,
    .socket_open = mem_socket_open,
    .socket_assert = mem_socket_assert,
    .socket_close = mem_socket_close,
    .room_join = mem_room_join,
    .room_leave = mem_room_leave,
    .status_set = mem_status_set,
    .touch = mem_touch,
    .users_query = mem_users_query,
    .room_query = mem_room_query,
    .room_members = mem_room_members,
    .shutdown = mem_shutdown,
    .reconcile = mem_reconcile,
    .user_get = mem_user_get,
    .room_page = mem_room_page,
    .stats_get = mem_stats_get,
    .user_disconnect = mem_user_disconnect,
    .events_since = mem_events_since,
    .deliver_read = mem_deliver_read,
    .deliver_ack = mem_deliver_ack,
};

store *store_memory_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks)
{
    mem_store *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->loop = loop;
    m->hooks = *hooks;
    store_metrics_init(&m->sm, opts->metrics);
    /* Room names and user ids come from clients: seed the hash tables unpredictably. */
    m->ps = pres_state_new(host_seed(), opts->offline_grace_ms, opts->last_seen_retention_s);
    if (!m->ps) {
        free(m);
        return NULL;
    }
    store_base_init(&m->base, &mem_vtbl, loop, "memory store");
    int64_t now = host_wall_ms();
    m->gen = now > 0 ? (uint64_t)now : 1;
    /* Webhooks cover every event from the start: nothing before the first delivery read is
     * skipped (as the Redis store's consumer group made before the store is available). */
    if (opts->webhooks)
        m->delivering = true;
    uv_timer_init(loop, &m->timer);
    uv_idle_init(loop, &m->idle);
    m->timer.data = m->idle.data = m;
    m->handles_open = 3;
    return &m->base;
}
