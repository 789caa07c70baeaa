/* store_redis_int — what the files of the Redis store share (not a public header).
 *
 * The Redis store is split along its seams: store_redis.c (the store, its connections, the lease
 * tick, the script runner), store_redis_ops.c (state changes and queries), store_redis_stream.c
 * (the event stream reader, resuming readers and webhook delivery) and store_redis_reconcile.c
 * (reconciliation and the sliced shutdown).
 */
#ifndef PRESENCED_STORE_REDIS_INT_H
#define PRESENCED_STORE_REDIS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "presenced/core/map.h"
#include "presenced/io/redis_client.h"
#include "presenced/io/redis_cluster.h"
#include "presenced/io/redis_sentinel.h"
#include "store_impl.h"

#define SR_COMMON_ARGS 9       /* the arguments every function starts with (src/io/redis/lib.lua) */
#define SR_XREAD_BLOCK_MS 1000 /* how long the event reader's XREAD waits for an entry */
#define SR_INSTANCE_MAX 64
#define SR_GROUP "webhooks" /* the event stream's consumer group for webhook delivery */

enum {
    SCR_ASSERT,
    SCR_CLOSE,
    SCR_JOIN,
    SCR_LEAVE,
    SCR_OPEN,
    SCR_ROOM,
    SCR_SHUTDOWN,
    SCR_STATUS,
    SCR_TICK,
    SCR_TOUCH,
    SCR_USER,
    SCR_PAGE,
    SCR_STATS,
    SCR_KICK,
    SCR_SINCE,
    SCR_DELIVER,
    SCR_RECONCILE,
    SCR_MEMBERS,
    SCR_COUNT,
};

/* Where a reconciliation is. */
typedef enum sr_rc_phase {
    RC_IDLE,       /* nothing running */
    RC_BEGINNING,  /* 'begin' sent */
    RC_LEASE_WAIT, /* begun; waiting for a lease refresh before registering sockets */
    RC_SLICES,     /* slices sent */
    RC_SWEEPING,   /* a 'sweep' call in flight */
} sr_rc_phase;

/* A socket this instance registered (or is registering): its user, which every function call
 * about it needs to find the user's record. */
typedef struct sr_sock {
    uint64_t epoch; /* the store's epoch when it was last registered (store_redis.epoch) */
    uint64_t seq;   /* which registration that was */
    char user[];
} sr_sock;

typedef struct store_redis {
    store base;
    store_hooks hooks;
    char fnames[SCR_COUNT][48]; /* the library's function names: <name>_<version> */
    /* The common script arguments, as text. */
    char prefix[128], instance[SR_INSTANCE_MAX + 1], grace[16], retention[16], maxlen[16],
        inst_ttl[16], lease[16], epoch_text[24];
    bool webhooks;
    char stream_key[160];
    uint32_t lease_ms;
    uv_loop_t *loop;
    store_metrics sm;

    redis_client *cmd, *ev;
    redis_sentinel *sentinel; /* with Sentinel: where the primary is; NULL otherwise */
    /* One partition of a Redis Cluster (store_cluster.c): the cluster that locates the event
     * reader, and the key every script declares so that the node refuses it, before it runs,
     * while the partition's slot is elsewhere or migrating. NULL and "" otherwise. */
    redis_cluster *route;
    uint16_t route_slot;
    char route_key[160];
    void (*read_to)(const char *id, void *ud); /* sr_route's */
    void *read_ud;
    /* The lease refresh (the tick) has a connection of its own: on the command connection it
     * could wait behind megabytes of unsent state changes during a connect storm, long enough
     * for the other instances to see the lease expire and reap this instance's sockets. */
    redis_client *beat;
    uv_timer_t tick;
    /* Fires when another instance's lease expires: its sockets are reaped then, so that queries,
     * which read the users' records, stop counting them within moments of the expiry. */
    uv_timer_t reap;
    int open_parts; /* clients and timers not yet closed */
    bool closing, shut;
    bool available;
    bool lease_held; /* a tick refreshed our lease: a lost lease then means state was lost */
    bool tick_busy, tick_again;
    /* When the next tick is due (uv_hrtime ns): a turn of the loop long enough to hold the tick
     * timer back past it sends the tick from the store's own calls (sr_pulse). */
    uint64_t tick_due_ns;
    uint32_t pulse_calls;
    /* The tick in flight was sent with this epoch, after the reconciliation of that epoch had
     * begun: its answer says whether Redis still holds that epoch (the watchdog). */
    uint64_t tick_epoch;
    bool tick_check;
    uint64_t reap_from_ms; /* loop time before which this instance does not reap others */
    char cmd_run_id[REDIS_RUN_ID_MAX];
    bool cmd_up;
    /* The command connection's reconciliation has begun: the webhook group exists and state
     * changes sent from now on follow it. Until then the store is not available. */
    bool begun;

    /* Reconciliation (store_redis_reconcile.c). */
    uint64_t epoch;  /* this instance's epoch: bumped at every 'begin' */
    bool ever_begun; /* a 'begin' was answered before (a later one may find data lost) */
    bool need_rc;    /* a gap happened since the running (or last) reconciliation began */
    bool restore;    /* the running reconciliation found that Redis lost its data */
    /* The store's generation (docs/redis-schema.md, "Generations") that the last 'begin'
     * found: "" before the first. */
    char rc_gen[48];
    sr_rc_phase phase;
    unsigned rc_inflight; /* slices without a reply */
    bool rc_failed;       /* a slice failed: the reconciliation is done again */
    /* The truth being registered, while some of its slices are not sent yet (paced: at most
     * SR_RC_WINDOW in flight). Slice i is rc_truth.v[rc_cuts[i] .. rc_cuts[i + 1]). */
    store_truth rc_truth;
    size_t *rc_cuts;
    bool *rc_sent;
    size_t rc_nslices, rc_next; /* slices, and the first not sent in order */
    uint64_t rc_collected_ms;   /* loop time the truth was collected */
    char sweep_cursor[32];
    size_t rc_sockets, rc_closed;
    struct sr_waiter *waiters; /* store_reconcile() callers waiting for the next one to end */

    /* The sliced shutdown. */
    store_done_fn shut_cb;
    void *shut_ud;
    size_t shut_closed;

    /* sid -> sr_sock of the sockets registered through this store (store_redis_ops.c). Entries
     * go at socket_open/socket_assert and at socket_close; a reconciliation keeps those of the
     * owner's truth and those registered since it began, as Redis does (reconcile.lua). */
    map socks;
    uint64_t sock_seq;

    /* The event stream (store_redis_stream.c). */
    char ev_run_id[REDIS_RUN_ID_MAX];
    char last_id[48]; /* last stream entry delivered, "" before the first read */
    /* The generation the reader is in: the id of the last reset entry it read, or the one the
     * store started in; "" until known. */
    char gen[48];
    char up_gen[48]; /* the generation Redis held when the events connection came up */
    bool up_failed;  /* ... could not be read */
    bool up_pending; /* where to read from is not known yet: asked again at the next tick */
    bool gen_check;  /* 'begin' found another generation: the reader checks which Redis holds */
    /* A full batch was read from here: the reader may be behind the stream's trimming, and checks
     * that no entry after this point was trimmed before it read it (store_redis_stream.c). */
    char gap_from[48];
    bool gap_check;
    bool reading;
    /* The reader has fixed where it starts. Until then the store refuses operations: the events
     * they append would come before that point and this instance would never see them. */
    bool positioned;
} store_redis;

typedef struct sr_op {
    store_redis *s;
    const char *what; /* script name, for logs */
    union {
        store_done_fn done;
        store_users_fn users;
        store_room_fn room;
        store_user_fn user;
        store_page_fn page;
        store_stats_fn stats;
        store_events_fn events;
    } cb;
    void *ud;
    size_t n;     /* users_query: the ids asked */
    char **users; /* copies */
} sr_op;

extern const char *const sr_script_names[SCR_COUNT];

/* Where one partition's connections go in a Redis Cluster. */
typedef struct sr_route {
    redis_cluster *cmd, *lease; /* node connections the command and lease views share */
    uint16_t slot;              /* the partition's slot (its prefix carries the tag) */
    const addr_redis *auth;     /* password for the event reader's own connection */
    /* The reader has read the partition's stream up to entry `id` (borrowed), after handing its
     * event, if any, to the hooks: also for entries that are no event to hand on (the reset that
     * began the generation the reader already knew). May be NULL. */
    void (*read_to)(const char *id, void *ud);
    void *read_ud;
} sr_route;

/* ---- store_redis.c ---- */
/* A Redis store on one partition of a Redis Cluster: as store_redis_new, with opts->key_prefix
 * the partition's (its hash tag included). */
store *sr_new_routed(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks,
                     const sr_route *route);
/* The id of the last entry of the event stream the reader of `st` (a Redis store) has read and
 * handed on, or where it was placed to read on from ("" before it was). Borrowed. */
const char *sr_read_position(const store *st);
/* ---- store_cluster.c ---- */
/* The store of a Redis Cluster: partitions of users, each a routed Redis store. */
store *sc_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks,
              const addr_redis_url *url);

int sr_fail_code(const store_redis *s);
/* An operation record for `ud`; NULL (logged) when out of memory. */
sr_op *sr_op_new(store_redis *s, const char *what, void *ud);
void sr_op_free(sr_op *op);
/* STORE_OK, or the error a missing or error reply stands for (logged). */
int sr_reply_error(sr_op *op, const redisReply *reply);
int64_t sr_reply_int(const redisReply *r);
const char *sr_reply_str_or_null(const redisReply *r);
/* Call function `scr` with the common arguments followed by `n` of the caller's (copied), on the
 * command connection or on `via`. `fn` runs exactly once, later, from the loop. */
void sr_run_script(store_redis *s, int scr, const char *const *args, const size_t *lens, size_t n,
                   redis_reply_fn fn, void *ud);
void sr_run_script_on(store_redis *s, redis_client *via, int scr, const char *const *args,
                      const size_t *lens, size_t n, redis_reply_fn fn, void *ud);
/* The tick refreshes the lease every third of it. */
static inline uint32_t sr_tick_every_ms(const store_redis *s)
{
    return s->lease_ms / 3 ? s->lease_ms / 3 : 1;
}
/* Refresh the lease now (or right after the refresh in flight). */
void sr_tick_run(store_redis *s);
void sr_availability_update(store_redis *s);

/* ---- store_redis_ops.c ---- */
/* The user of a registered socket, or NULL. */
const char *sr_sock_user(const store_redis *s, const char *sid);
/* After a reconciliation collected the owner's truth: the socket map keeps the sockets of the
 * truth and those registered since the reconciliation began (their registration confirmed them
 * in Redis too); the others are gone from Redis after its sweep. */
void sr_socks_reset(store_redis *s, const store_truth *t);
void sr_socks_free(store_redis *s);
void sr_socket_open(store *st, const char *sid, const char *user, const char *status,
                    const char *metadata, store_done_fn cb, void *ud);
void sr_socket_assert(store *st, const char *sid, const char *user, const char *status,
                      const char *metadata, const char *const *rooms, size_t nrooms,
                      store_done_fn cb, void *ud);
void sr_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud);
void sr_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
void sr_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud);
void sr_status_set(store *st, const char *sid, const char *status, const char *metadata,
                   store_done_fn cb, void *ud);
void sr_touch(store *st, const char *sid, store_done_fn cb, void *ud);
void sr_users_query(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud);
void sr_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud);
void sr_room_members(store *st, const char *room, store_users_fn cb, void *ud);
void sr_user_get(store *st, const char *user, store_user_fn cb, void *ud);
void sr_room_page(store *st, const char *room, const char *cursor, size_t limit, store_page_fn cb,
                  void *ud);
void sr_stats_get(store *st, store_stats_fn cb, void *ud);
void sr_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud);

/* ---- store_redis_stream.c ---- */
/* The events connection is (again) up: find where to read from. */
void sr_stream_up(const char *run_id, void *ud);
/* Where to read from could not be told when the events connection came up: ask again. */
void sr_stream_retry(store_redis *s);
/* A reconciliation's 'begin' found generation `gen` (docs/redis-schema.md, "Generations"): the
 * reader starts in it, or makes sure that it reads that generation's reset. */
void sr_stream_gen_seen(store_redis *s, const char *gen);
/* a < b for stream ids. */
bool sr_stream_id_less(const char *a, const char *b);
void sr_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud);
void sr_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud);
void sr_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud);

/* ---- store_redis_reconcile.c ---- */
/* Something happened after which Redis may not agree with this instance's sockets: reconcile
 * as soon as the store can. */
void sr_rc_request(store_redis *s, const char *why);
/* The command connection is up: begin a reconciliation (the store is available once it has). */
void sr_rc_connected(store_redis *s);
/* The lease was refreshed: a begun reconciliation may register sockets now. */
void sr_rc_lease_ok(store_redis *s);
/* The lease timer fired: a reconciliation that failed, or a first 'begin' of the command
 * connection that was refused, begins again (nothing else may come to start it). */
void sr_rc_watchdog(store_redis *s);
/* A lease refresh found this instance's epoch in Redis to be `stored` (0: missing) while the
 * store believed it was s->epoch: Redis lost it, or holds a higher one; reconcile. */
void sr_rc_epoch_mismatch(store_redis *s, uint64_t stored);
/* The store is going away: fail store_reconcile() callers still waiting. */
void sr_rc_free(store_redis *s);
/* A state change about `user` is about to be sent: if the running reconciliation has not sent
 * the user's slice yet, it goes first, so that the change applies on top of it, as it would had
 * every slice been sent at once. */
void sr_rc_before_change(store_redis *s, const char *user);
/* How long ago the truth whose slices are not all sent yet was collected (0: none waits): those
 * registrations are as late as if they waited in the connection's queue. */
uint64_t sr_rc_backlog_ms(const store_redis *s);
void sr_reconcile(store *st, store_done_fn cb, void *ud);
void sr_shutdown(store *st, store_done_fn cb, void *ud);

#endif
