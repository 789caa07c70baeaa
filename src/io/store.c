/* The store_* functions: dispatch to the implementation's vtable. */
#include "presenced/store_impl.h"

const char *store_strerror(int err)
{
    switch (err) {
    case STORE_OK:
        return "ok";
    case STORE_ERR_UNAVAILABLE:
        return "store unavailable";
    case STORE_ERR_NO_SOCKET:
        return "socket not registered";
    case STORE_ERR_EXISTS:
        return "socket already registered";
    case STORE_ERR_SHUTDOWN:
        return "store shutting down";
    case STORE_ERR_NOMEM:
        return "out of memory";
    default:
        return "internal store error";
    }
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
