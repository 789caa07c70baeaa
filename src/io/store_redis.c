/* store_redis — the Redis store: presence state shared by every instance through one Redis.
 *
 * Every state change is one Lua script (src/io/redis, keys in docs/redis-schema.md) that
 * reads, decides, writes and appends its events to the event stream atomically; C never reads
 * then writes across round trips. Two connections: "command" for the scripts, and "events",
 * which reads the stream with XREAD BLOCK and hands each event to hooks.event.
 *
 * Ownership: each operation allocates an sr_op that is the redis_client request's user data; the
 * client calls back exactly once, and the op is freed there. The store's memory is released when
 * both clients and the tick timer are closed, so that late callbacks still find it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/log.h"
#include "presenced/core/pres_state.h"
#include "presenced/io/redis_client.h"
#include "presenced/io/store_redis.h"
#include "store_impl.h"

#define SR_COMMON_ARGS 7 /* the ARGV every script starts with (src/io/redis/lib.lua) */
#define SR_STALL_MS 3000 /* command connection: no reply for this long means it is dead */
#define SR_PING_MS 1000  /* command connection PING interval */
#define SR_XREAD_BLOCK_MS 1000
#define SR_XREAD_COUNT "512"
#define SR_INSTANCE_MAX 64

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
    SCR_USERS,
    SCR_USER,
    SCR_PAGE,
    SCR_STATS,
    SCR_KICK,
    SCR_SINCE,
    SCR_DELIVER,
    SCR_MEMBERS,
    SCR_COUNT,
};

static const char *const script_names[SCR_COUNT] = {
    "assert", "close", "join", "leave", "open",  "room", "shutdown", "status",  "tick",
    "touch",  "users", "user", "page",  "stats", "kick", "since",    "deliver", "members"};

#define SR_GROUP "webhooks" /* the event stream's consumer group for webhook delivery */

typedef struct store_redis {
    store base;
    store_hooks hooks;
    size_t script_idx[SCR_COUNT];
    /* The common script arguments, as text. */
    char prefix[128], instance[SR_INSTANCE_MAX + 1], grace[16], retention[16], maxlen[16],
        inst_ttl[16], lease[16];
    char stream_key[160];
    uint32_t lease_ms;

    redis_client *cmd, *ev;
    /* The lease refresh (the tick) has a connection of its own: on the command connection it
     * could wait behind megabytes of unsent state changes during a connect storm, long enough
     * for the other instances to see the lease expire and reap this instance's sockets. */
    redis_client *beat;
    uv_timer_t tick;
    int open_parts; /* clients and timer not yet closed */
    bool closing, shut;
    bool available;
    bool ever_up;       /* the command connection was up before */
    bool need_reassert; /* tell the owner to re-assert after the next lease refresh */
    bool lease_held;    /* a tick refreshed our lease: a lost lease then means state was lost */
    bool tick_busy, tick_again;
    char cmd_run_id[REDIS_RUN_ID_MAX];
    uv_loop_t *loop;
    store_metrics sm;

    char ev_run_id[REDIS_RUN_ID_MAX];
    char last_id[48]; /* last stream entry delivered, "" before the first read */
    bool reading;
    /* The reader has fixed where it starts. Until then the store refuses operations: the events
     * they append would come before that point and this instance would never see them. */
    bool positioned;
    bool cmd_up;
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

static const store_vtbl sr_vtbl;

/* ---- helpers ---- */

static int fail_code(const store_redis *s)
{
    return s->closing ? STORE_ERR_SHUTDOWN : STORE_ERR_UNAVAILABLE;
}

static sr_op *op_new(store_redis *s, const char *what, void *ud)
{
    sr_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->s = s;
    op->what = what;
    op->ud = ud;
    return op;
}

static void op_free(sr_op *op)
{
    for (size_t i = 0; i < op->n; i++)
        free(op->users[i]);
    free(op->users);
    free(op);
}

static int reply_error(sr_op *op, const redisReply *reply)
{
    if (!reply)
        return fail_code(op->s);
    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("redis script failed", "script=%s err=\"%s\"", op->what, reply->str);
        return STORE_ERR_INTERNAL;
    }
    return STORE_OK;
}

/* Every script call goes through a timer: latency by script, and failures, for /metrics. */
typedef struct sr_timed {
    store_redis *s;
    int scr;
    uint64_t start_ns;
    redis_reply_fn fn;
    void *ud;
} sr_timed;

static void on_timed(const redisReply *reply, void *ud)
{
    sr_timed *t = ud;
    store_redis *s = t->s;
    if (!s->closing) {
        metrics_observe(s->sm.latency, script_names[t->scr],
                        (double)(uv_hrtime() - t->start_ns) / 1e9);
        /* A state change that got no answer may or may not have happened (a stall), or never
         * left (not connected yet, as for a socket that connects while the daemon starts): the
         * next lease refresh re-asserts every live socket, which puts Redis right either way. */
        if (!reply) {
            metrics_add(s->sm.errors, "unavailable", 1);
            s->need_reassert = true;
        } else if (reply->type == REDIS_REPLY_ERROR)
            metrics_add(s->sm.errors, "script", 1);
    }
    redis_reply_fn fn = t->fn;
    void *fud = t->ud;
    free(t);
    fn(reply, fud);
}

static void run_script_raw(store_redis *s, redis_client *via, int scr, const char *const *args,
                           const size_t *lens, size_t n, redis_reply_fn fn, void *ud);

/* Run script `scr` on connection `via` with the common arguments followed by `n` of the
 * caller's. */
static void run_script_on(store_redis *s, redis_client *via, int scr, const char *const *args,
                          const size_t *lens, size_t n, redis_reply_fn fn, void *ud)
{
    sr_timed *t = malloc(sizeof(*t));
    if (!t)
        return run_script_raw(s, via, scr, args, lens, n, fn, ud);
    *t = (sr_timed){.s = s, .scr = scr, .start_ns = uv_hrtime(), .fn = fn, .ud = ud};
    run_script_raw(s, via, scr, args, lens, n, on_timed, t);
}

/* Run script `scr` on the command connection. */
static void run_script(store_redis *s, int scr, const char *const *args, const size_t *lens,
                       size_t n, redis_reply_fn fn, void *ud)
{
    run_script_on(s, s->cmd, scr, args, lens, n, fn, ud);
}

static void run_script_raw(store_redis *s, redis_client *via, int scr, const char *const *args,
                           const size_t *lens, size_t n, redis_reply_fn fn, void *ud)
{
    if (!s->positioned) {
        redis_client_fail(via, fn, ud);
        return;
    }
    const char *stack_argv[SR_COMMON_ARGS + 8];
    size_t stack_lens[SR_COMMON_ARGS + 8];
    const char **argv = stack_argv;
    size_t *alens = stack_lens;
    size_t total = SR_COMMON_ARGS + n;
    if (total > SR_COMMON_ARGS + 8) {
        argv = malloc(total * sizeof(*argv));
        alens = malloc(total * sizeof(*alens));
        if (!argv || !alens) {
            free(argv);
            free(alens);
            log_error("out of memory", "script=%s", script_names[scr]);
            redis_client_fail(via, fn, ud);
            return;
        }
    }
    const char *common[SR_COMMON_ARGS] = {s->prefix, s->instance, s->grace, s->retention,
                                          s->maxlen, s->inst_ttl, s->lease};
    for (size_t i = 0; i < SR_COMMON_ARGS; i++) {
        argv[i] = common[i];
        alens[i] = strlen(common[i]);
    }
    for (size_t i = 0; i < n; i++) {
        argv[SR_COMMON_ARGS + i] = args[i];
        alens[SR_COMMON_ARGS + i] = lens ? lens[i] : strlen(args[i]);
    }
    redis_client_script(via, s->script_idx[scr], 0, (int)total, argv, alens, fn, ud);
    if (argv != stack_argv) {
        free(argv);
        free(alens);
    }
}

/* ---- operations answered with an integer code ---- */

static void on_done(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    if (err == STORE_OK && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer == STORE_ERR_NO_SOCKET || reply->integer == STORE_ERR_EXISTS)
            err = (int)reply->integer;
    } else if (err == STORE_OK) {
        log_error("unexpected redis reply", "script=%s type=%d", op->what, reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (op->cb.done)
        op->cb.done(err, op->ud);
    op_free(op);
}

static void run_done(store_redis *s, int scr, const char *const *args, size_t n, store_done_fn cb,
                     void *ud)
{
    sr_op *op = op_new(s, script_names[scr], ud);
    if (!op) {
        log_error("out of memory", "script=%s", script_names[scr]);
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.done = cb;
    run_script(s, scr, args, NULL, n, on_done, op);
}

static void sr_socket_open(store *st, const char *sid, const char *user, const char *status,
                           const char *metadata, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    const char *args[] = {sid, user, status ? status : "", metadata ? metadata : ""};
    run_done(s, SCR_OPEN, args, 4, cb, ud);
}

static void sr_socket_assert(store *st, const char *sid, const char *user, const char *status,
                             const char *metadata, const char *const *rooms, size_t nrooms,
                             store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    const char **args = malloc((4 + nrooms) * sizeof(*args));
    if (!args) {
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    args[0] = sid;
    args[1] = user;
    args[2] = status ? status : "";
    args[3] = metadata ? metadata : "";
    for (size_t i = 0; i < nrooms; i++)
        args[4 + i] = rooms[i];
    run_done(s, SCR_ASSERT, args, 4 + nrooms, cb, ud);
    free(args);
}

static void sr_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    const char *args[] = {sid, graceful ? "1" : "0"};
    run_done((store_redis *)st, SCR_CLOSE, args, 2, cb, ud);
}

static void sr_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    const char *args[] = {sid, room};
    run_done((store_redis *)st, SCR_JOIN, args, 2, cb, ud);
}

static void sr_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    const char *args[] = {sid, room};
    run_done((store_redis *)st, SCR_LEAVE, args, 2, cb, ud);
}

static void sr_status_set(store *st, const char *sid, const char *status, const char *metadata,
                          store_done_fn cb, void *ud)
{
    const char *args[] = {sid, status, metadata ? metadata : ""};
    run_done((store_redis *)st, SCR_STATUS, args, 3, cb, ud);
}

static void sr_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    const char *args[] = {sid};
    run_done((store_redis *)st, SCR_TOUCH, args, 1, cb, ud);
}

static void on_shutdown(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    if (reply && reply->type == REDIS_REPLY_INTEGER)
        log_info("redis store shut down", "instance=%s sockets_closed=%lld", op->s->instance,
                 reply->integer);
    int err = reply_error(op, reply);
    if (op->cb.done)
        op->cb.done(err, op->ud);
    op_free(op);
}

static void sr_shutdown(store *st, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    /* No lease refresh after this: it would bring the lease back. */
    s->shut = true;
    uv_timer_stop(&s->tick);
    sr_op *op = op_new(s, "shutdown", ud);
    if (!op) {
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.done = cb;
    run_script(s, SCR_SHUTDOWN, NULL, NULL, 0, on_shutdown, op);
}

/* ---- queries ---- */

static int64_t reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static const char *reply_str_or_null(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 ? r->str : NULL;
}

static void on_users(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    store_user *users = NULL;
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != op->n * 7 + 1 ||
                            reply->element[op->n * 7]->type != REDIS_REPLY_STRING)) {
        log_error("unexpected redis reply", "script=users type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK && op->n > 0 && !(users = calloc(op->n, sizeof(*users))))
        err = STORE_ERR_NOMEM;
    if (err == STORE_OK) {
        for (size_t i = 0; i < op->n; i++) {
            redisReply **e = reply->element + i * 7;
            store_user *u = &users[i];
            u->user = op->users[i];
            u->known = reply_int(e[0]) != 0;
            int64_t live = reply_int(e[1]);
            bool in_grace = reply_int(e[6]) != 0;
            u->sockets = live > 0 ? (uint32_t)live : 0;
            /* Within the offline grace a user still reads as online: no offline went out
             * (as in the memory store). */
            u->online = live > 0 || in_grace;
            const char *status = reply_str_or_null(e[2]);
            u->status = u->online ? (status ? status : "online") : "offline";
            u->metadata = reply_str_or_null(e[3]);
            u->last_seen = reply_int(e[4]);
            u->since = u->online ? reply_int(e[5]) : 0;
        }
    }
    op->cb.users(err, err == STORE_OK ? users : NULL, err == STORE_OK ? op->n : 0,
                 err == STORE_OK ? reply->element[op->n * 7]->str : "", op->ud);
    free(users);
    op_free(op);
}

static void sr_users_query(store *st, const char *const *users, size_t n, store_users_fn cb,
                           void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_new(s, "users", ud);
    if (op)
        op->users = calloc(n ? n : 1, sizeof(*op->users));
    if (!op || !op->users) {
        free(op);
        store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.users = cb;
    for (size_t i = 0; i < n; i++) {
        if (!(op->users[i] = strdup(users[i]))) {
            op_free(op);
            store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
            return;
        }
        op->n++;
    }
    run_script(s, SCR_USERS, users, NULL, n, on_users, op);
}

static void on_room(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    const char **users = NULL;
    size_t n = 0, total = 0;
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) {
        log_error("unexpected redis reply", "script=room type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        total = (size_t)reply_int(reply->element[0]);
        n = reply->elements - 1;
        if (n > 0 && !(users = calloc(n, sizeof(*users))))
            err = STORE_ERR_NOMEM;
        for (size_t i = 0; err == STORE_OK && i < n; i++)
            users[i] = reply->element[i + 1]->str ? reply->element[i + 1]->str : "";
    }
    op->cb.room(err, err == STORE_OK ? (const char *const *)users : NULL, err == STORE_OK ? n : 0,
                err == STORE_OK ? total : 0, op->ud);
    free(users);
    op_free(op);
}

static void sr_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_new(s, "room", ud);
    if (!op) {
        store_fail_room(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.room = cb;
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", limit);
    const char *args[] = {room, lim};
    run_script(s, SCR_ROOM, args, NULL, 2, on_room, op);
}

/* members.lua answers {seq, (user, status, metadata)...}: members are online by definition. */
static void on_members(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    store_user *users = NULL;
    size_t n = 0;
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements % 3 != 1 ||
                            reply->element[0]->type != REDIS_REPLY_STRING)) {
        log_error("unexpected redis reply", "script=members type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK && (n = reply->elements / 3) > 0 && !(users = calloc(n, sizeof(*users))))
        err = STORE_ERR_NOMEM;
    for (size_t i = 0; err == STORE_OK && i < n; i++) {
        redisReply **e = reply->element + 1 + i * 3;
        const char *status = reply_str_or_null(e[1]);
        users[i] = (store_user){.user = e[0]->str ? e[0]->str : "",
                                .known = true,
                                .online = true,
                                .status = status ? status : "online",
                                .metadata = reply_str_or_null(e[2])};
    }
    op->cb.users(err, err == STORE_OK ? users : NULL, err == STORE_OK ? n : 0,
                 err == STORE_OK ? reply->element[0]->str : "", op->ud);
    free(users);
    op_free(op);
}

static void sr_room_members(store *st, const char *room, store_users_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_new(s, "members", ud);
    if (!op) {
        store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.users = cb;
    const char *args[] = {room};
    run_script(s, SCR_MEMBERS, args, NULL, 1, on_members, op);
}

/* ---- the HTTP API's reads and commands ---- */

static sr_op *op_or_fail(store_redis *s, const char *what, void *ud)
{
    sr_op *op = op_new(s, what, ud);
    if (!op)
        log_error("out of memory", "script=%s", what);
    return op;
}

static void on_user(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    const char **sids = NULL;
    size_t n = 0;
    store_user u = {.user = op->users[0]};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 7)) {
        log_error("unexpected redis reply", "script=user type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        redisReply **e = reply->element;
        u.known = reply_int(e[0]) != 0;
        int64_t live = reply_int(e[1]);
        u.sockets = live > 0 ? (uint32_t)live : 0;
        u.online = live > 0 || reply_int(e[6]) != 0;
        const char *status = reply_str_or_null(e[2]);
        u.status = u.online ? (status ? status : "online") : "offline";
        u.metadata = reply_str_or_null(e[3]);
        u.last_seen = reply_int(e[4]);
        u.since = u.online ? reply_int(e[5]) : 0;
        n = reply->elements - 7;
        if (n > 0 && !(sids = calloc(n, sizeof(*sids))))
            err = STORE_ERR_NOMEM;
        for (size_t i = 0; err == STORE_OK && i < n; i++)
            sids[i] = e[7 + i]->str ? e[7 + i]->str : "";
    }
    op->cb.user(err, err == STORE_OK ? &u : NULL, err == STORE_OK ? sids : NULL,
                err == STORE_OK ? n : 0, op->ud);
    free(sids);
    op_free(op);
}

static void sr_user_get(store *st, const char *user, store_user_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_or_fail(s, "user", ud);
    if (op && (op->users = calloc(1, sizeof(char *))) && (op->users[0] = strdup(user)))
        op->n = 1;
    if (!op || op->n != 1) {
        if (op)
            op_free(op);
        store_fail_user(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.user = cb;
    const char *args[] = {user};
    run_script(s, SCR_USER, args, NULL, 1, on_user, op);
}

static void on_page(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    const char **users = NULL;
    size_t n = 0, total = 0;
    const char *next = "";
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)) {
        log_error("unexpected redis reply", "script=page type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        total = (size_t)reply_int(reply->element[0]);
        next = reply->element[1]->str ? reply->element[1]->str : "";
        n = reply->elements - 2;
        if (n > 0 && !(users = calloc(n, sizeof(*users))))
            err = STORE_ERR_NOMEM;
        for (size_t i = 0; err == STORE_OK && i < n; i++)
            users[i] = reply->element[i + 2]->str ? reply->element[i + 2]->str : "";
    }
    if (err == STORE_OK)
        op->cb.page(err, users, n, total, next, op->ud);
    else
        op->cb.page(err, NULL, 0, 0, "", op->ud);
    free(users);
    op_free(op);
}

static void sr_room_page(store *st, const char *room, const char *cursor, size_t limit,
                         store_page_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_or_fail(s, "page", ud);
    if (!op) {
        store_fail_page(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.page = cb;
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", limit);
    const char *args[] = {room, cursor, lim};
    run_script(s, SCR_PAGE, args, NULL, 3, on_page, op);
}

static void on_stats(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    store_stats stats = {0};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)) {
        log_error("unexpected redis reply", "script=stats type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        stats.users_online = (uint64_t)reply_int(reply->element[0]);
        stats.sockets = (uint64_t)reply_int(reply->element[1]);
        stats.rooms = (uint64_t)reply_int(reply->element[2]);
        stats.instances = (uint64_t)reply_int(reply->element[3]);
    }
    op->cb.stats(err, err == STORE_OK ? &stats : NULL, op->ud);
    op_free(op);
}

static void sr_stats_get(store *st, store_stats_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_or_fail(s, "stats", ud);
    if (!op) {
        store_fail_stats(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.stats = cb;
    run_script(s, SCR_STATS, NULL, NULL, 0, on_stats, op);
}

static void sr_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud)
{
    const char *args[] = {user};
    run_done((store_redis *)st, SCR_KICK, args, 1, cb, ud);
}

static void on_acked(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    if (op->cb.done)
        op->cb.done(err, op->ud);
    op_free(op);
}

static void ack_ids(store_redis *s, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    sr_op *op = op_or_fail(s, "xack", ud);
    const char **argv = malloc((n + 3) * sizeof(*argv));
    size_t *lens = malloc((n + 3) * sizeof(*lens));
    if (!op || !argv || !lens) {
        free(argv);
        free(lens);
        if (op)
            op_free(op);
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.done = cb;
    argv[0] = "XACK";
    argv[1] = s->stream_key;
    argv[2] = SR_GROUP;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = ids[i];
    for (size_t i = 0; i < n + 3; i++)
        lens[i] = strlen(argv[i]);
    redis_client_command(s->cmd, (int)(n + 3), argv, lens, on_acked, op);
    free(argv);
    free(lens);
}

/* Entries as {id, event, id, event...} from element `from` on, decoded into `out`. Entries that
 * cannot be decoded (trimmed while pending, or foreign) are listed in `bad`. */
static int decode_entries(const redisReply *reply, size_t from, pres_events *out, char ***bad,
                          size_t *nbad)
{
    size_t pairs = (reply->elements - from) / 2;
    if (pairs == 0)
        return STORE_OK;
    out->v = calloc(pairs, sizeof(*out->v));
    if (bad)
        *bad = calloc(pairs, sizeof(char *));
    if (!out->v || (bad && !*bad))
        return STORE_ERR_NOMEM;
    out->cap = pairs;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *id = reply->element[from + 2 * i];
        const redisReply *json = reply->element[from + 2 * i + 1];
        if (id->type != REDIS_REPLY_STRING)
            continue;
        pres_event *ev = &out->v[out->n];
        if (json->type == REDIS_REPLY_STRING && pres_event_decode(json->str, json->len, ev) == 0) {
            snprintf(ev->id, sizeof(ev->id), "%s", id->str);
            out->n++;
        } else if (bad && ((*bad)[*nbad] = strdup(id->str))) {
            (*nbad)++;
        }
    }
    return STORE_OK;
}

static void on_since(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    pres_events evs = {0};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) {
        log_error("unexpected redis reply", "script=since type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK && reply_int(reply->element[0]) == STORE_ERR_GONE)
        err = STORE_ERR_GONE;
    if (err == STORE_OK)
        err = decode_entries(reply, 1, &evs, NULL, NULL);
    op->cb.events(err, err == STORE_OK ? evs.v : NULL, err == STORE_OK ? evs.n : 0, op->ud);
    pres_events_clear(&evs);
    op_free(op);
}

static void sr_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_or_fail(s, "since", ud);
    if (!op) {
        store_fail_events(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.events = cb;
    char count[24];
    snprintf(count, sizeof(count), "%zu", max);
    const char *args[] = {after, count};
    run_script(s, SCR_SINCE, args, NULL, 2, on_since, op);
}

static void on_deliver(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = reply_error(op, reply);
    pres_events evs = {0};
    char **bad = NULL;
    size_t nbad = 0;
    if (err == STORE_OK && reply->type != REDIS_REPLY_ARRAY) {
        log_error("unexpected redis reply", "script=deliver type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK)
        err = decode_entries(reply, 0, &evs, &bad, &nbad);
    /* Nothing can deliver an entry whose event is gone: acknowledge it so it stops coming back. */
    if (nbad > 0) {
        log_warn("webhooks: skipping undecodable or trimmed stream entries", "count=%zu", nbad);
        ack_ids(op->s, (const char *const *)bad, nbad, NULL, NULL);
    }
    for (size_t i = 0; i < nbad; i++)
        free(bad[i]);
    free(bad);
    op->cb.events(err, err == STORE_OK ? evs.v : NULL, err == STORE_OK ? evs.n : 0, op->ud);
    pres_events_clear(&evs);
    op_free(op);
}

static void sr_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = op_or_fail(s, "deliver", ud);
    if (!op) {
        store_fail_events(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.events = cb;
    char count[24], lock[16];
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(lock, sizeof(lock), "%u", lock_ms ? lock_ms : 1);
    const char *args[] = {count, lock};
    run_script(s, SCR_DELIVER, args, NULL, 2, on_deliver, op);
}

static void sr_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    if (n == 0) {
        /* XACK needs an id; a PING keeps "the callback comes later, on the loop". */
        sr_op *op = op_or_fail(s, "ping", ud);
        if (!op) {
            store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
            return;
        }
        op->cb.done = cb;
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        redis_client_command(s->cmd, 1, argv, lens, on_acked, op);
        return;
    }
    ack_ids(s, ids, n, cb, ud);
}

/* ---- lease, reap and grace: the tick ---- */

static void tick_run(store_redis *s);

static void on_tick_reply(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    s->tick_busy = false;
    if (s->closing)
        return;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_error("redis script failed", "script=tick err=\"%s\"", reply->str);
        return;
    }
    if (reply->elements > 3)
        metrics_add(s->sm.reaped, NULL, (double)reply_int(reply->element[3]));
    /* A dead instance is reaped a slice per call (tick.lua): go on at once while it lasts. */
    if (reply->elements > 4 && reply_int(reply->element[4]) != 0)
        s->tick_again = true;
    bool held = reply_int(reply->element[0]) != 0;
    long long reaped = reply_int(reply->element[1]), fired = reply_int(reply->element[2]);
    if (reaped > 0)
        log_info("reaped dead instances", "count=%lld", reaped);
    if (fired > 0)
        log_debug("offline grace deadlines fired", "count=%lld", fired);
    bool lost = s->lease_held && !held;
    if (lost)
        log_warn("instance lease was lost: re-asserting sockets", "instance=%s", s->instance);
    s->lease_held = true;
    if ((lost || s->need_reassert) && !s->shut) {
        s->need_reassert = false;
        if (s->hooks.reassert)
            s->hooks.reassert(s->hooks.ud);
    }
    if (s->tick_again && !s->closing) {
        s->tick_again = false;
        tick_run(s);
    }
}

static void tick_run(store_redis *s)
{
    if (s->closing || s->shut || !redis_client_ready(s->beat))
        return;
    if (s->tick_busy) {
        s->tick_again = true;
        return;
    }
    s->tick_busy = true;
    run_script_on(s, s->beat, SCR_TICK, NULL, NULL, 0, on_tick_reply, s);
}

static void on_tick(uv_timer_t *t)
{
    tick_run(t->data);
}

/* Available: the command connection is up and the reader knows where to start. */
static void availability_update(store_redis *s)
{
    bool avail = s->cmd_up && s->positioned && !s->closing;
    if (avail == s->available)
        return;
    s->available = avail;
    if (s->hooks.availability)
        s->hooks.availability(avail, s->hooks.ud);
    /* Refresh the lease first: re-asserted sockets only count once it is live. */
    if (avail)
        tick_run(s);
}

static void on_cmd_up(const char *run_id, void *ud)
{
    store_redis *s = ud;
    if (s->cmd_run_id[0] && strcmp(s->cmd_run_id, run_id) != 0)
        log_warn("redis restarted: re-asserting sockets", "old_run_id=%s run_id=%s", s->cmd_run_id,
                 run_id);
    /* Any reconnection follows an outage during which our lease may have lapsed and our sockets
     * been reaped, or Redis may have restarted empty. */
    if (s->ever_up)
        s->need_reassert = true;
    s->ever_up = true;
    snprintf(s->cmd_run_id, sizeof(s->cmd_run_id), "%s", run_id);
    s->cmd_up = true;
    availability_update(s);
}

/* The lease connection is (again) up: refresh the lease now rather than at the next tick. */
static void on_beat_up(const char *run_id, void *ud)
{
    (void)run_id;
    store_redis *s = ud;
    if (s->available)
        tick_run(s);
}

static void on_cmd_down(void *ud)
{
    store_redis *s = ud;
    s->cmd_up = false;
    availability_update(s);
}

/* ---- the event stream ---- */

static void read_next(store_redis *s);

static int stream_id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    *ms = strtoull(id, &end, 10);
    if (*end != '-')
        return -1;
    *seq = strtoull(end + 1, &end, 10);
    return *end ? -1 : 0;
}

/* a < b for stream ids. */
static bool stream_id_less(const char *a, const char *b)
{
    uint64_t ams, aseq, bms, bseq;
    if (stream_id_parse(a, &ams, &aseq) < 0 || stream_id_parse(b, &bms, &bseq) < 0)
        return false;
    return ams < bms || (ams == bms && aseq < bseq);
}

static void deliver_entry(store_redis *s, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *id = entry->element[0]->str;
    if (entry->element[0]->len < sizeof(s->last_id))
        memcpy(s->last_id, id, entry->element[0]->len + 1);
    const redisReply *fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || strcmp(f->str, "e") != 0 ||
            v->type != REDIS_REPLY_STRING)
            continue;
        pres_event ev;
        if (pres_event_decode(v->str, v->len, &ev) < 0) {
            log_warn("undecodable event in the stream", "id=%s", id);
            return;
        }
        snprintf(ev.id, sizeof(ev.id), "%s", id);
        if (s->hooks.event)
            s->hooks.event(&ev, s->hooks.ud);
        pres_event_deinit(&ev);
        return;
    }
}

static void on_xread(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    if (!reply || s->closing) {
        /* The events connection went down: reading resumes from last_id when it is back. */
        s->reading = false;
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t k = 0; k < reply->elements; k++) {
            const redisReply *stream = reply->element[k];
            if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
                stream->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const redisReply *entries = stream->element[1];
            for (size_t i = 0; i < entries->elements && !s->closing; i++)
                deliver_entry(s, entries->element[i]);
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        log_error("redis XREAD failed", "err=\"%s\"", reply->str);
    }
    s->reading = false;
    if (!s->closing)
        read_next(s);
}

static void read_next(store_redis *s)
{
    if (s->reading || s->closing || !redis_client_ready(s->ev))
        return;
    s->reading = true;
    char block[16];
    snprintf(block, sizeof(block), "%d", SR_XREAD_BLOCK_MS);
    const char *argv[] = {"XREAD", "COUNT",   SR_XREAD_COUNT, "BLOCK",
                          block,   "STREAMS", s->stream_key,  s->last_id};
    size_t lens[8];
    for (size_t i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redis_client_command(s->ev, 8, argv, lens, on_xread, s);
}

/* Where to resume: the newest entry when we start, else where we stopped, unless the stream
 * now ends before that point (Redis restarted or was flushed: the stream was recreated). */
static void on_stream_top(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    if (!reply || s->closing)
        return;
    const char *top = NULL;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements > 0 &&
        reply->element[0]->element[0]->type == REDIS_REPLY_STRING)
        top = reply->element[0]->element[0]->str;
    if (!s->last_id[0]) {
        snprintf(s->last_id, sizeof(s->last_id), "%s", top ? top : "0-0");
    } else if (!top || stream_id_less(top, s->last_id)) {
        log_info("event stream was recreated: reading it from the start", "last_id=%s", s->last_id);
        snprintf(s->last_id, sizeof(s->last_id), "0-0");
    }
    read_next(s);
    if (!s->positioned) {
        s->positioned = true;
        availability_update(s);
    }
}

static void on_ev_up(const char *run_id, void *ud)
{
    store_redis *s = ud;
    if (s->ev_run_id[0] && strcmp(s->ev_run_id, run_id) != 0)
        log_info("redis restarted: checking the event stream", "run_id=%s", run_id);
    snprintf(s->ev_run_id, sizeof(s->ev_run_id), "%s", run_id);
    const char *argv[] = {"XREVRANGE", s->stream_key, "+", "-", "COUNT", "1"};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    redis_client_command(s->ev, 6, argv, lens, on_stream_top, s);
}

/* ---- lifecycle ---- */

static void part_closed(void *ud)
{
    store_redis *s = ud;
    if (--s->open_parts == 0)
        free(s);
}

/* The tick timer and the shared part's handle, whose data is the store. */
static void on_tick_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

static void sr_free(store *st)
{
    store_redis *s = (store_redis *)st;
    if (s->closing)
        return;
    s->closing = true;
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, on_tick_closed);
    store_base_close(&s->base, on_tick_closed);
    redis_client_free(s->cmd, part_closed, s);
    redis_client_free(s->ev, part_closed, s);
    redis_client_free(s->beat, part_closed, s);
}

static bool sr_available(const store *st)
{
    const store_redis *s = (const store_redis *)st;
    return s->available && !s->closing;
}

static const store_vtbl sr_vtbl = {
    .free = sr_free,
    .available = sr_available,
    .socket_open = sr_socket_open,
    .socket_assert = sr_socket_assert,
    .socket_close = sr_socket_close,
    .room_join = sr_room_join,
    .room_leave = sr_room_leave,
    .status_set = sr_status_set,
    .touch = sr_touch,
    .users_query = sr_users_query,
    .room_query = sr_room_query,
    .room_members = sr_room_members,
    .shutdown = sr_shutdown,
    .user_get = sr_user_get,
    .room_page = sr_room_page,
    .stats_get = sr_stats_get,
    .user_disconnect = sr_user_disconnect,
    .events_since = sr_events_since,
    .deliver_read = sr_deliver_read,
    .deliver_ack = sr_deliver_ack,
};

static bool instance_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > SR_INSTANCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static int find_scripts(store_redis *s)
{
    for (size_t k = 0; k < SCR_COUNT; k++) {
        size_t i = 0;
        while (i < redis_nscripts && strcmp(redis_scripts[i].name, script_names[k]) != 0)
            i++;
        if (i == redis_nscripts) {
            log_error("redis store: script missing from the build", "script=%s", script_names[k]);
            return -1;
        }
        s->script_idx[k] = i;
    }
    return 0;
}

store *store_redis_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks)
{
    addr_redis addr;
    char why[128];
    if (addr_redis_parse(opts->redis_url, &addr, why, sizeof(why)) < 0) {
        log_error("redis store: bad redis URL", "err=\"%s\"", why);
        return NULL;
    }
    if (!instance_id_valid(opts->instance_id)) {
        log_error("redis store: instance id must be 1-64 URL-safe characters", NULL);
        return NULL;
    }
    const char *prefix = opts->key_prefix ? opts->key_prefix : "";
    if (strlen(prefix) >= 128 || opts->instance_lease_ms == 0 || opts->stream_maxlen == 0) {
        log_error("redis store: bad options", "prefix_len=%zu lease_ms=%u stream_maxlen=%u",
                  strlen(prefix), opts->instance_lease_ms, opts->stream_maxlen);
        return NULL;
    }
    store_redis *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    store_metrics_init(&s->sm, opts->metrics);
    if (hooks)
        s->hooks = *hooks;
    if (find_scripts(s) < 0) {
        free(s);
        return NULL;
    }
    snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
    snprintf(s->instance, sizeof(s->instance), "%s", opts->instance_id);
    snprintf(s->grace, sizeof(s->grace), "%u", opts->offline_grace_ms);
    snprintf(s->retention, sizeof(s->retention), "%u",
             opts->last_seen_retention_s ? opts->last_seen_retention_s : 1);
    snprintf(s->maxlen, sizeof(s->maxlen), "%u", opts->stream_maxlen);
    /* Per-instance keys must outlive a few lease refreshes, whatever ttl is configured. */
    uint32_t inst_ttl = opts->ttl_s;
    if (inst_ttl < opts->instance_lease_ms / 1000 * 2 + 1)
        inst_ttl = opts->instance_lease_ms / 1000 * 2 + 1;
    snprintf(s->inst_ttl, sizeof(s->inst_ttl), "%u", inst_ttl);
    s->lease_ms = opts->instance_lease_ms;
    snprintf(s->lease, sizeof(s->lease), "%u", opts->instance_lease_ms);
    snprintf(s->stream_key, sizeof(s->stream_key), "%sevents", prefix);

    redis_client_cfg cc = {
        .name = "command",
        .addr = &addr,
        .scripts = redis_scripts,
        .nscripts = redis_nscripts,
        .ping_ms = SR_PING_MS,
        .stall_ms = SR_STALL_MS,
        .up = on_cmd_up,
        .down = on_cmd_down,
        .ud = s,
    };
    redis_client_cfg ce = {
        .name = "events",
        .addr = &addr,
        .ping_ms = 0,
        .stall_ms = SR_XREAD_BLOCK_MS + SR_STALL_MS,
        .up = on_ev_up,
        .ud = s,
    };
    redis_client_cfg cb = cc;
    cb.name = "lease";
    cb.up = on_beat_up;
    cb.down = NULL;
    s->cmd = redis_client_new(loop, &cc);
    s->ev = s->cmd ? redis_client_new(loop, &ce) : NULL;
    s->beat = s->ev ? redis_client_new(loop, &cb) : NULL;
    if (!s->beat) {
        log_error("redis store: out of memory", NULL);
        /* A client frees itself from the loop; the store is not referenced by then. */
        if (s->ev)
            redis_client_free(s->ev, NULL, NULL);
        if (s->cmd)
            redis_client_free(s->cmd, NULL, NULL);
        free(s);
        return NULL;
    }
    store_base_init(&s->base, &sr_vtbl, loop, "redis store");
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uint32_t every = s->lease_ms / 3 ? s->lease_ms / 3 : 1;
    uv_timer_start(&s->tick, on_tick, every, every);
    s->open_parts = 5; /* three clients, the timer and the shared part's handle */
    return &s->base;
}
