/* The store_* functions: dispatch to the implementation's vtable. */
#include "store_impl.h"

const char *store_strerror(int err)
{
    return pres_err_message(err);
}

void store_metrics_init(store_metrics *sm, metrics *m)
{
    static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                    0.01,   0.025,   0.05,   0.1,   0.25,   1};
    sm->latency = metrics_family_get(m, METRICS_HISTOGRAM, "presenced_store_command_seconds",
                                     "Store operation latency, request to answer, by operation.",
                                     "command", bounds, sizeof(bounds) / sizeof(bounds[0]));
    sm->errors = metrics_family_get(m, METRICS_COUNTER, "presenced_store_errors_total",
                                    "Store operations that failed, by kind.", "kind", NULL, 0);
    sm->reaped = metrics_family_get(m, METRICS_COUNTER, "presenced_reaped_sockets_total",
                                    "Sockets of dead instances closed by this instance's reaps.",
                                    NULL, NULL, 0);
    metrics_add(sm->errors, "unavailable", 0);
    metrics_add(sm->errors, "script", 0);
    metrics_add(sm->reaped, NULL, 0);
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

void store_shutdown(store *st, store_done_fn cb, void *ud)
{
    st->vt->shutdown(st, cb, ud);
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
