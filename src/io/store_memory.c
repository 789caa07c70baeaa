/* The memory store: pres_state for one instance, with a timer for the offline grace and the
 * retention, and completions delivered on the next loop turn as the store contract asks (callers
 * never see a callback run inside the call that started it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "presenced/log.h"
#include "presenced/pres_state.h"
#include "presenced/store_impl.h"

typedef enum mem_kind { JOB_DONE, JOB_USERS, JOB_ROOM } mem_kind;

/* A finished operation waiting to be reported: its events, then its callback. */
typedef struct mem_job {
    struct mem_job *next;
    mem_kind kind;
    int err;
    pres_events events;
    store_done_fn done;
    store_users_fn users_cb;
    store_room_fn room_cb;
    void *ud;
    store_user *users; /* JOB_USERS: strings owned by `strings` */
    size_t n, total;
    char **strings; /* JOB_USERS: copied status/metadata; JOB_ROOM: member ids */
    size_t nstrings;
} mem_job;

typedef struct mem_store {
    store base;
    uv_loop_t *loop;
    store_hooks hooks;
    pres_state *ps;
    uv_timer_t timer; /* grace deadlines and retention */
    uv_idle_t idle;   /* delivers finished jobs */
    mem_job *head, *tail;
    uint64_t seq; /* last event id */
    bool closing;
    int handles_open;
} mem_store;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(mem_job *j)
{
    pres_events_clear(&j->events);
    for (size_t i = 0; i < j->nstrings; i++)
        free(j->strings[i]);
    free(j->strings);
    free(j->users);
    free(j);
}

static void deliver(mem_store *m, mem_job *j)
{
    for (size_t i = 0; i < j->events.n && !m->closing; i++) {
        /* The memory store's event ids are a sequence, in delivery order. */
        snprintf(j->events.v[i].id, sizeof(j->events.v[i].id), "%llu",
                 (unsigned long long)++m->seq);
        m->hooks.event(&j->events.v[i], m->hooks.ud);
    }
    int err = m->closing ? STORE_ERR_SHUTDOWN : j->err;
    switch (j->kind) {
    case JOB_DONE:
        if (j->done)
            j->done(err, j->ud);
        break;
    case JOB_USERS:
        j->users_cb(err, err ? NULL : j->users, err ? 0 : j->n, j->ud);
        break;
    case JOB_ROOM:
        j->room_cb(err, err ? NULL : (const char *const *)j->strings, err ? 0 : j->n,
                   err ? 0 : j->total, j->ud);
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
    j->err = pres_state_tick(m->ps, wall_ms(), &j->events);
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
    int64_t now = wall_ms();
    uv_timer_start(&m->timer, timer_cb, d > now ? (uint64_t)(d - now) : 0, 0);
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

/* Report an allocation failure without a job to carry it: call back at once. */
#define JOB_OR_FAIL(j, cb, ud)                                                                     \
    do {                                                                                           \
        if (!(j)) {                                                                                \
            if (cb)                                                                                \
                (cb)(STORE_ERR_NOMEM, ud);                                                         \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static void mem_socket_open(store *st, const char *sid, const char *user, const char *status,
                            const char *metadata, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_open(m->ps, sid, user, status, metadata, wall_ms(), &j->events), j, cb);
}

static void mem_socket_assert(store *st, const char *sid, const char *user, const char *status,
                              const char *metadata, const char *const *rooms, size_t nrooms,
                              store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_assert(m->ps, sid, user, status, metadata, rooms, nrooms, wall_ms()), j,
           cb);
}

static void mem_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_close(m->ps, sid, graceful, wall_ms(), &j->events), j, cb);
}

static void mem_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_join(m->ps, sid, room, wall_ms(), &j->events), j, cb);
}

static void mem_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_leave(m->ps, sid, room, wall_ms(), &j->events), j, cb);
}

static void mem_status_set(store *st, const char *sid, const char *status, const char *metadata,
                           store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_status(m->ps, sid, status, metadata, wall_ms(), &j->events), j, cb);
}

static void mem_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_DONE, ud);
    JOB_OR_FAIL(j, cb, ud);
    finish(m, pres_state_touch(m->ps, sid, wall_ms()), j, cb);
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

static void mem_users_query(store *st, const char *const *users, size_t n, store_users_fn cb,
                            void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_USERS, ud);
    if (!j) {
        cb(STORE_ERR_NOMEM, NULL, 0, ud);
        return;
    }
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
    job_queue(m, j);
}

static void mem_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud)
{
    mem_store *m = MEM(st);
    mem_job *j = job_new(m, JOB_ROOM, ud);
    if (!j) {
        cb(STORE_ERR_NOMEM, NULL, 0, 0, ud);
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
    finish(m, pres_state_close_all(m->ps, wall_ms(), &j->events), j, cb);
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
    .shutdown = mem_shutdown,
};

store *store_memory_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks)
{
    mem_store *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->base.vt = &mem_vtbl;
    m->loop = loop;
    m->hooks = *hooks;
    /* Room names and user ids come from clients: seed the hash tables unpredictably. */
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)wall_ms() ^ (uint64_t)(uintptr_t)m;
    m->ps = pres_state_new(seed, opts->offline_grace_ms, opts->last_seen_retention_s);
    if (!m->ps) {
        free(m);
        return NULL;
    }
    uv_timer_init(loop, &m->timer);
    uv_idle_init(loop, &m->idle);
    m->timer.data = m->idle.data = m;
    m->handles_open = 2;
    return &m->base;
}
