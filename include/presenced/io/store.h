/* store — where presence state lives and where presence events come from: the in-memory store
 * (one instance) or the Redis store (many instances sharing one Redis).
 *
 * Both implement the same contract, written down in docs/presence-model.md and checked by one
 * table of scenarios run against both (tests/integration/store_contract.c). Every operation is
 * asynchronous: it returns at once and calls its callback later on the loop, exactly once, also
 * when the store is unavailable (err = STORE_ERR_UNAVAILABLE), is being freed
 * (STORE_ERR_SHUTDOWN) or ran out of memory (STORE_ERR_NOMEM). Strings passed in are copied;
 * results passed to callbacks are borrowed for the duration of the callback.
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

#include "presenced/codec/pres_err.h"
#include "presenced/core/metrics.h"
#include "presenced/codec/pres_event.h"

typedef struct store store;

/* The store's error codes: the presence error table's (presenced/codec/pres_err.h), which also
 * says what each one tells a client. */
enum {
    STORE_OK = PRES_OK,
#define STORE_ERR_ENUM(name, value, message, code, status) STORE_ERR_##name = value,
    PRES_ERR_TABLE(STORE_ERR_ENUM)
#undef STORE_ERR_ENUM
};

#define STORE_MEMORY_RING 10000 /* events the memory store keeps for store_events_since */
/* Characters in the id a daemon makes for itself at every start: 72 random bits, so that no two
 * instances sharing a store ever draw the same one, and short because the Redis store writes it
 * into every socket of every user's record. */
#define STORE_INSTANCE_ID_LEN 12

/* The message of an error code (pres_err_message). */
const char *store_strerror(int err);

typedef struct store_opts {
    const char *instance_id;        /* this daemon's id (copied): URL-safe characters */
    uint32_t offline_grace_ms;      /* 0: offline at once */
    uint32_t last_seen_retention_s; /* how long an offline user's record is kept */
    uint32_t instance_lease_ms;     /* Redis: lease of this instance (refreshed every lease/3) */
    uint32_t ttl_s;                 /* Redis: TTL bounding anything left behind */
    uint32_t stream_maxlen;         /* Redis: approximate length the event stream is trimmed to */
    const char *redis_url;          /* Redis: a URL addr_redis_url_parse accepts */
    const char *sentinel_password;  /* Redis Sentinel: the sentinels' own password, or NULL */
    uint32_t redis_partitions;      /* Redis Cluster: partitions of the keys (0: the default) */
    const char *key_prefix;         /* Redis: prefix of every key, e.g. "presenced:" */
    bool webhooks;                  /* this instance delivers webhooks (store_deliver_read) */
    metrics *metrics;               /* command latency, errors, reaped sockets; may be NULL */
} store_opts;

/* The families every store reports into (declared by store_metrics_init). */
typedef struct store_metrics {
    metrics_family *latency; /* presenced_store_command_seconds{command} */
    metrics_family *errors;  /* presenced_store_errors_total{kind} */
    metrics_family *reaped;  /* presenced_reaped_sockets_total */
} store_metrics;
void store_metrics_init(store_metrics *sm, metrics *m);

/* The owner's truth: its live identified sockets, as hooks.reconcile hands them to the store. */
typedef struct store_truth store_truth;

/* Add one live socket to the truth: its user, the user's status and metadata as this socket
 * last set them (NULL: "online" / none) and the rooms it is in. Strings are copied. Returns 0,
 * or STORE_ERR_NOMEM (the reconciliation is then retried later). */
int store_truth_add(store_truth *t, const char *sid, const char *user, const char *status,
                    const char *metadata, const char *const *rooms, size_t nrooms);

typedef struct store_hooks {
    /* A presence event (borrowed for the call). */
    void (*event)(const pres_event *ev, void *ud);
    /* The store is reconciling (docs/presence-model.md, "Reconciliation"): add every live local
     * identified socket to `t` with store_truth_add(), before returning. The store makes its
     * copy agree with it: sockets it holds that are not in `t` are closed, those in `t` are
     * registered with exactly their rooms, with the events that follow. `t` is borrowed for the
     * call. */
    void (*reconcile)(store_truth *t, void *ud);
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
/* Users, and `seq`: the id of the newest event the answer reflects ("0" or "0-0" when the store
 * has none), read in the same atomic step, so that a client holding the answer can drop the
 * events it already covers (ids compare with pres_event_id_cmp). */
typedef void (*store_users_fn)(int err, const store_user *users, size_t n, const char *seq,
                               void *ud);
/* Room members: user ids, `total` the number of members in the room. */
typedef void (*store_room_fn)(int err, const char *const *users, size_t n, size_t total, void *ud);
/* One user with the ids of their live sockets (cluster-wide, sorted). */
typedef void (*store_user_fn)(int err, const store_user *user, const char *const *sids, size_t n,
                              void *ud);
/* A page of room members: user ids sorted bytewise, all after the cursor; `next` is the cursor
 * of the following page ("" on the last one); `total` the number of members in the room. */
typedef void (*store_page_fn)(int err, const char *const *users, size_t n, size_t total,
                              const char *next, void *ud);

/* Cluster-wide counts, each O(1) or O(instances) to read. */
typedef struct store_stats {
    uint64_t users_online; /* users with a live socket or inside the offline grace */
    uint64_t sockets;      /* identified sockets on live instances */
    uint64_t rooms;        /* rooms with at least one registered socket */
    uint64_t instances;    /* live instances */
} store_stats;
typedef void (*store_stats_fn)(int err, const store_stats *stats, void *ud);

/* Events (borrowed for the call), oldest first. */
typedef void (*store_events_fn)(int err, const pres_event *evs, size_t n, void *ud);

/* Stores are created by their own modules (presenced/io/store_memory.h, store_redis.h), the
 * only places that need the event loop's type; everything else sees this interface. */

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
/* Register a socket with its rooms as it was before the store lost it: no event, unless the
 * user's record says offline (then online and the room joins). Reconciliation (hooks.reconcile)
 * is what the daemon uses; this is the building block of a restore. */
void store_socket_assert(store *st, const char *sid, const char *user, const char *status,
                         const char *metadata, const char *const *rooms, size_t nrooms,
                         store_done_fn cb, void *ud);
/* Unregister a socket (it leaves its rooms first). May emit room leaves and offline (at once, or
 * after offline_grace_ms when `graceful`). Unknown sockets are not an error. */
void store_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud);
/* Rooms. May emit room join (user's first socket in) / leave (user's last socket out). */
void store_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
void store_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
/* Set the user's status and metadata, each when not NULL (NULL keeps it). Emits update when
 * either changed. */
void store_status_set(store *st, const char *sid, const char *status, const char *metadata,
                      store_done_fn cb, void *ud);
/* Refresh the user's lastSeen. */
void store_touch(store *st, const char *sid, store_done_fn cb, void *ud);
/* Look up users in one round trip; results in the order asked. */
void store_users_query(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud);
/* Members of a room (users with at least one live socket in it), at most `limit` (0: all). */
void store_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud);
/* Members of a room (users with at least one live socket in it, sorted bytewise) with their
 * status and metadata, and the seq they reflect: a room snapshot. Invisible members are
 * included (the caller decides who sees them). */
void store_room_members(store *st, const char *room, store_users_fn cb, void *ud);
/* Close every socket of this instance (events as store_socket_close without grace) and release
 * this instance's lease. */
void store_shutdown(store *st, store_done_fn cb, void *ud);
/* Reconcile now: ask hooks.reconcile for the truth and make the store agree with it, with the
 * events that follow. The Redis store also does this by itself after any gap (a reconnect, a
 * command without a reply, its lease lost, Redis restarted); `cb` runs once this one is done. */
void store_reconcile(store *st, store_done_fn cb, void *ud);

/* One user as users_query sees them, plus the ids of their live sockets. One round trip. */
void store_user_get(store *st, const char *user, store_user_fn cb, void *ud);
/* A page of at most `limit` (>= 1) room members after `cursor` ("" or NULL: from the start). */
void store_room_page(store *st, const char *room, const char *cursor, size_t limit,
                     store_page_fn cb, void *ud);
void store_stats_get(store *st, store_stats_fn cb, void *ud);
/* Ask every instance to close the user's local sockets (not graceful): a PRES_EV_DISCONNECT
 * event that every instance's hooks.event receives, this one included. */
void store_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud);
/* The retained events after event id `after` (exclusive), at most `max`. The memory store keeps
 * the last STORE_MEMORY_RING events, the Redis store its stream (stream_maxlen). Fails with
 * STORE_ERR_GONE when `after` is older than what is kept, so a resuming reader knows it missed
 * some. */
void store_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud);
/* Webhook delivery: the next events this instance should deliver, at most `max`; the first call
 * starts the queue at the newest event (earlier events are not delivered). In a cluster
 * one instance at a time delivers (it holds a lock that this call takes or refreshes for
 * `lock_ms`); the others get n = 0. Events stay pending until store_deliver_ack(); pending
 * events of an instance that died are handed to the next one, so delivery is at least once and
 * in stream order. */
void store_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud);
void store_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud);

#endif
