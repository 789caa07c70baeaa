/* store_impl — what a store implementation provides: the vtable behind the store_* functions.
 * Only store implementations include this header.
 */
#ifndef PRESENCED_STORE_IMPL_H
#define PRESENCED_STORE_IMPL_H

#include "presenced/io/later.h"
#include "presenced/io/store.h"

typedef struct store_vtbl {
    void (*free)(store *st);
    bool (*available)(const store *st);
    void (*socket_open)(store *st, const char *sid, const char *user, const char *status,
                        const char *metadata, store_done_fn cb, void *ud);
    void (*socket_assert)(store *st, const char *sid, const char *user, const char *status,
                          const char *metadata, const char *const *rooms, size_t nrooms,
                          store_done_fn cb, void *ud);
    void (*socket_close)(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud);
    void (*room_join)(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
    void (*room_leave)(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
    void (*status_set)(store *st, const char *sid, const char *status, const char *metadata,
                       store_done_fn cb, void *ud);
    void (*touch)(store *st, const char *sid, store_done_fn cb, void *ud);
    void (*users_query)(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud);
    void (*room_query)(store *st, const char *room, size_t limit, store_room_fn cb, void *ud);
    void (*room_members)(store *st, const char *room, store_users_fn cb, void *ud);
    void (*shutdown)(store *st, store_done_fn cb, void *ud);
    void (*reconcile)(store *st, store_done_fn cb, void *ud);
    void (*user_get)(store *st, const char *user, store_user_fn cb, void *ud);
    void (*room_page)(store *st, const char *room, const char *cursor, size_t limit,
                      store_page_fn cb, void *ud);
    void (*stats_get)(store *st, store_stats_fn cb, void *ud);
    void (*user_disconnect)(store *st, const char *user, store_done_fn cb, void *ud);
    void (*events_since)(store *st, const char *after, size_t max, store_events_fn cb, void *ud);
    void (*deliver_read)(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud);
    void (*deliver_ack)(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud);
} store_vtbl;

/* Every implementation embeds this as its first member. */
struct store {
    const store_vtbl *vt;
    later failed; /* operations that failed at once, answered on a later turn */
};

/* One socket of the owner's truth (all strings owned by the truth). */
typedef struct store_truth_sock {
    char *sid, *user, *status, *metadata; /* status and metadata may be NULL */
    char **rooms;
    size_t nrooms;
} store_truth_sock;

struct store_truth {
    store_truth_sock *v;
    size_t n, cap;
    int err; /* STORE_ERR_NOMEM once an add failed */
    /* When set, store_truth_add keeps only the sockets it accepts (a store that holds part of
     * the users: one partition of a Redis Cluster). */
    bool (*keep)(const char *sid, const char *user, void *ud);
    void *keep_ud;
};

/* Collect the truth through hooks.reconcile into `t` (zeroed first), sorted by user then socket
 * id so that a user's sockets are next to each other. Returns 0 or STORE_ERR_NOMEM. */
int store_truth_collect(const store_hooks *hooks, store_truth *t);
void store_truth_clear(store_truth *t);

/* Set up the part every store shares, on `loop`; `name` (static) names the store in the log. */
void store_base_init(store *st, const store_vtbl *vt, uv_loop_t *loop, const char *name);
/* Answer what failed and is still waiting, then close the shared part's handle: `closed` runs
 * once it is closed, with the handle whose data is `st`. */
void store_base_close(store *st, uv_close_cb closed);

/* Answer an operation that failed before the implementation could queue it (out of memory) with
 * `err`, on a later turn of the loop as the contract promises, and without allocating. One per
 * callback type. */
void store_fail_done(store *st, store_done_fn cb, void *ud, int err);
void store_fail_users(store *st, store_users_fn cb, void *ud, int err);
void store_fail_room(store *st, store_room_fn cb, void *ud, int err);
void store_fail_user(store *st, store_user_fn cb, void *ud, int err);
void store_fail_page(store *st, store_page_fn cb, void *ud, int err);
void store_fail_stats(store *st, store_stats_fn cb, void *ud, int err);
void store_fail_events(store *st, store_events_fn cb, void *ud, int err);

#endif
