/* The store_* functions: dispatch to the implementation's vtable, and the owner's truth that
 * reconciliation collects. */
#include <stdlib.h>
#include <string.h>

#include "presenced/core/metrics_def.h"
#include "presenced/codec/vec.h"
#include "store_impl.h"

const char *store_strerror(int err)
{
    return pres_err_message(err);
}

void store_metrics_init(store_metrics *sm, metrics *m)
{
    sm->latency = metrics_def_get(m, METRIC_STORE_SECONDS);
    sm->errors = metrics_def_get(m, METRIC_STORE_ERRORS);
    sm->reaped = metrics_def_get(m, METRIC_REAPED_SOCKETS);
    metrics_add(sm->errors, "unavailable", 0);
    metrics_add(sm->errors, "script", 0);
    metrics_add(sm->reaped, NULL, 0);
}

void store_base_init(store *st, const store_vtbl *vt, uv_loop_t *loop, const char *name)
{
    st->vt = vt;
    later_init(&st->failed, loop, st, name);
}

void store_base_close(store *st, uv_close_cb closed)
{
    later_close(&st->failed, closed);
}

/* The trampolines that give a failed call's error to its callback, by callback type. */
static void run_done(const later_call *c)
{
    if (c->cb)
        ((store_done_fn)c->cb)(c->err, c->ud);
}

static void run_users(const later_call *c)
{
    ((store_users_fn)c->cb)(c->err, NULL, 0, "", c->ud);
}

static void run_room(const later_call *c)
{
    ((store_room_fn)c->cb)(c->err, NULL, 0, 0, c->ud);
}

static void run_user(const later_call *c)
{
    ((store_user_fn)c->cb)(c->err, NULL, NULL, 0, c->ud);
}

static void run_page(const later_call *c)
{
    ((store_page_fn)c->cb)(c->err, NULL, 0, 0, "", c->ud);
}

static void run_stats(const later_call *c)
{
    ((store_stats_fn)c->cb)(c->err, NULL, c->ud);
}

static void run_events(const later_call *c)
{
    ((store_events_fn)c->cb)(c->err, NULL, 0, c->ud);
}

#define STORE_FAIL(st, trampoline, cb, ud, err)                                                    \
    later_queue(                                                                                   \
        &(st)->failed,                                                                             \
        (later_call){.run = (trampoline), .cb = (void (*)(void))(cb), .ud = (ud), .err = (err)})

void store_fail_done(store *st, store_done_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_done, cb, ud, err);
}

void store_fail_users(store *st, store_users_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_users, cb, ud, err);
}

void store_fail_room(store *st, store_room_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_room, cb, ud, err);
}

void store_fail_user(store *st, store_user_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_user, cb, ud, err);
}

void store_fail_page(store *st, store_page_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_page, cb, ud, err);
}

void store_fail_stats(store *st, store_stats_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_stats, cb, ud, err);
}

void store_fail_events(store *st, store_events_fn cb, void *ud, int err)
{
    STORE_FAIL(st, run_events, cb, ud, err);
}

void store_free(store *st)
{
    if (st)
        st->vt->free(st);
}

bool store_available(const store *st)
{
    return st->vt->available(st);
}

void store_socket_open(store *st, const char *sid, const char *user, const char *status,
                       const char *metadata, store_done_fn cb, void *ud)
{
    st->vt->socket_open(st, sid, user, status, metadata, cb, ud);
}

void store_socket_assert(store *st, const char *sid, const char *user, const char *status,
                         const char *metadata, const char *const *rooms, size_t nrooms,
                         store_done_fn cb, void *ud)
{
    st->vt->socket_assert(st, sid, user, status, metadata, rooms, nrooms, cb, ud);
}

void store_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    st->vt->socket_close(st, sid, graceful, cb, ud);
}

void store_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    st->vt->room_join(st, sid, room, cb, ud);
}

void store_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    st->vt->room_leave(st, sid, room, cb, ud);
}

void store_status_set(store *st, const char *sid, const char *status, const char *metadata,
                      store_done_fn cb, void *ud)
{
    st->vt->status_set(st, sid, status, metadata, cb, ud);
}

void store_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    st->vt->touch(st, sid, cb, ud);
}

void store_users_query(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud)
{
    st->vt->users_query(st, users, n, cb, ud);
}

void store_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud)
{
    st->vt->room_query(st, room, limit, cb, ud);
}

void store_room_members(store *st, const char *room, store_users_fn cb, void *ud)
{
    st->vt->room_members(st, room, cb, ud);
}

void store_shutdown(store *st, store_done_fn cb, void *ud)
{
    st->vt->shutdown(st, cb, ud);
}

void store_reconcile(store *st, store_done_fn cb, void *ud)
{
    st->vt->reconcile(st, cb, ud);
}

void store_user_get(store *st, const char *user, store_user_fn cb, void *ud)
{
    st->vt->user_get(st, user, cb, ud);
}

void store_room_page(store *st, const char *room, const char *cursor, size_t limit,
                     store_page_fn cb, void *ud)
{
    st->vt->room_page(st, room, cursor ? cursor : "", limit ? limit : 1, cb, ud);
}

void store_stats_get(store *st, store_stats_fn cb, void *ud)
{
    st->vt->stats_get(st, cb, ud);
}

void store_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud)
{
    st->vt->user_disconnect(st, user, cb, ud);
}

void store_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud)
{
    st->vt->events_since(st, after, max ? max : 1, cb, ud);
}

void store_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud)
{
    st->vt->deliver_read(st, max, lock_ms, cb, ud);
}

void store_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    st->vt->deliver_ack(st, ids, n, cb, ud);
}

/* ---- the owner's truth ---- */

static void truth_sock_free(store_truth_sock *k)
{
    free(k->sid);
    free(k->user);
    free(k->status);
    free(k->metadata);
    for (size_t i = 0; i < k->nrooms; i++)
        free(k->rooms[i]);
    free(k->rooms);
}

static char *dup_opt(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = true;
    return d;
}

int store_truth_add(store_truth *t, const char *sid, const char *user, const char *status,
                    const char *metadata, const char *const *rooms, size_t nrooms)
{
    if (t->err)
        return t->err;
    if (t->keep && !t->keep(sid, user, t->keep_ud))
        return STORE_OK;
    if (VEC_RESERVE(t->v, t->n, t->cap, 64) < 0)
        return t->err = STORE_ERR_NOMEM;
    store_truth_sock *k = &t->v[t->n];
    bool failed = false;
    *k = (store_truth_sock){.sid = dup_opt(sid, &failed),
                            .user = dup_opt(user, &failed),
                            .status = dup_opt(status, &failed),
                            .metadata = dup_opt(metadata, &failed),
                            .rooms = nrooms ? calloc(nrooms, sizeof(char *)) : NULL};
    if (nrooms && !k->rooms)
        failed = true;
    for (size_t i = 0; i < nrooms && !failed; i++) {
        k->rooms[i] = dup_opt(rooms[i], &failed);
        k->nrooms = i + 1;
    }
    if (failed || !k->sid || !k->user) {
        truth_sock_free(k);
        return t->err = STORE_ERR_NOMEM;
    }
    t->n++;
    return STORE_OK;
}

static int truth_cmp(const void *a, const void *b)
{
    const store_truth_sock *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    return c ? c : strcmp(x->sid, y->sid);
}

int store_truth_collect(const store_hooks *hooks, store_truth *t)
{
    memset(t, 0, sizeof(*t));
    if (hooks->reconcile)
        hooks->reconcile(t, hooks->ud);
    if (t->err) {
        store_truth_clear(t);
        return STORE_ERR_NOMEM;
    }
    if (t->n > 1)
        qsort(t->v, t->n, sizeof(*t->v), truth_cmp);
    return STORE_OK;
}

void store_truth_clear(store_truth *t)
{
    for (size_t i = 0; i < t->n; i++)
        truth_sock_free(&t->v[i]);
    free(t->v);
    memset(t, 0, sizeof(*t));
}
