/* store — where presence state lives and where presence events come from: the in-memory store
 * (one instance) or the Redis store (many instances sharing one Redis).
 *
 * Both implement the same contract, written down in docs/presence-model.md and checked by one
 * table of scenarios run against both (tests/integration/store_contract.c). Every operation is
 * asynchronous: it returns at once and calls its callback later on the loop, exactly once, also
 * when the store is unavailable (err = STORE_ERR_UNAVAILABLE) or is being freed
 * (STORE_ERR_SHUTDOWN). Strings passed in are copied; results passed to callbacks are borrowed
 * for the duration of the callback.
 *
 * Events: every presence event of the cluster (this instance's and the others') reaches
 * hooks.event, once per instance, in the order the store decided them. The store decides
 * transitions (online, offline, room join/leave, update); the caller only fans them out.
 */
#ifndef PRESENCED_STORE_H
#define PRESENCED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "presenced/pres_event.h"

typedef struct store store;

enum {
    STORE_OK = 0,
    STORE_ERR_UNAVAILABLE = -1, /* Redis down or not answering */
    STORE_ERR_NO_SOCKET = -2,   /* the socket id is not registered */
    STORE_ERR_EXISTS = -3,      /* socket_open with an id already registered */
    STORE_ERR_SHUTDOWN = -4,    /* the store is being freed */
    STORE_ERR_INTERNAL = -5,    /* a bug or an unexpected reply (logged) */
    STORE_ERR_NOMEM = -6,
};

const char *store_strerror(int err);

typedef struct store_opts {
    const char *instance_id;        /* this daemon's id (copied): 20 URL-safe characters */
    uint32_t offline_grace_ms;      /* 0: offline at once */
    uint32_t last_seen_retention_s; /* how long an offline user's record is kept */
    uint32_t instance_lease_ms;     /* Redis: lease of this instance (refreshed every lease/3) */
    uint32_t ttl_s;                 /* Redis: TTL bounding anything left behind */
    uint32_t stream_maxlen;         /* Redis: approximate length the event stream is trimmed to */
    const char *redis_url;          /* Redis: redis://[:pass@]host:port[/db] or unix:///path */
    const char *key_prefix;         /* Redis: prefix of every key, e.g. "presenced:" */
} store_opts;

typedef struct store_hooks {
    /* A presence event (borrowed for the call). */
    void (*event)(const pres_event *ev, void *ud);
    /* The store lost what it knew of this instance's sockets (Redis restarted empty, or came
     * back after an outage): call store_socket_assert() for every live local socket. */
    void (*reassert)(void *ud);
    /* Availability changed (Redis connection up or down). */
    void (*availability)(bool available, void *ud);
    void *ud;
} store_hooks;

/* A user as a query sees it. */
typedef struct store_user {
    const char *user;     /* the id asked for */
    bool known;           /* a record exists (online now, or seen within the retention) */
    bool online;          /* has a live socket on a live instance, or is inside the offline grace */
    const char *status;   /* "online", "away", "busy", "dnd", "invisible"; "offline" if offline */
    const char *metadata; /* JSON object text, or NULL */
    int64_t last_seen;    /* ms since the epoch, 0 if unknown */
    int64_t since;        /* online since (ms since the epoch), 0 if offline */
    uint32_t sockets;     /* live sockets cluster-wide */
} store_user;

typedef void (*store_done_fn)(int err, void *ud);
typedef void (*store_users_fn)(int err, const store_user *users, size_t n, void *ud);
/* Room members: user ids, `total` the number of members in the room. */
typedef void (*store_room_fn)(int err, const char *const *users, size_t n, size_t total, void *ud);

/* Create a store on `loop`. Returns NULL (after logging why) on bad options or memory. The Redis
 * store connects in the background: operations before it is connected fail with
 * STORE_ERR_UNAVAILABLE. */
store *store_memory_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks);
store *store_redis_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks);

/* Stop: pending callbacks run with STORE_ERR_SHUTDOWN, timers and connections close. The
 * memory is released once the loop has closed the store's handles. */
void store_free(store *st);

bool store_available(const store *st);

/* Register socket `sid` (SIO_ID_LEN URL-safe characters) of `user` on this instance. `status`
 * is used when the user comes online (NULL: "online"); `metadata` (JSON object text or NULL)
 * replaces the user's metadata when given. May emit online (0 -> 1 live sockets, unless the
 * user was within the offline grace) or update (status/metadata changed). */
void store_socket_open(store *st, const char *sid, const char *user, const char *status,
                       const char *metadata, store_done_fn cb, void *ud);
/* Re-register a live socket after hooks.reassert, with its rooms, emitting no event. */
void store_socket_assert(store *st, const char *sid, const char *user, const char *status,
                         const char *metadata, const char *const *rooms, size_t nrooms,
                         store_done_fn cb, void *ud);
/* Unregister a socket (it leaves its rooms first). May emit room leaves and offline (at once, or
 * after offline_grace_ms when `graceful`). Unknown sockets are not an error. */
void store_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud);
/* Rooms. May emit room join (user's first socket in) / leave (user's last socket out). */
void store_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
void store_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
/* Set the user's status and (when not NULL) metadata. Emits update when either changed. */
void store_status_set(store *st, const char *sid, const char *status, const char *metadata,
                      store_done_fn cb, void *ud);
/* Refresh the user's lastSeen. */
void store_touch(store *st, const char *sid, store_done_fn cb, void *ud);
/* Look up users in one round trip; results in the order asked. */
void store_users_query(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud);
/* Members of a room (users with at least one live socket in it), at most `limit` (0: all). */
void store_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud);
/* Close every socket of this instance (events as store_socket_close without grace) and release
 * this instance's lease. */
void store_shutdown(store *st, store_done_fn cb, void *ud);

#endif
