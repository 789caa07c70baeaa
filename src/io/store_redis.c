/* store_redis — the Redis store: presence state shared by every instance through one Redis.
 *
 * Every state change is one Lua script (src/io/redis, keys in docs/redis-schema.md) that
 * reads, decides, writes and appends its events to the event stream atomically; C never reads
 * then writes across round trips. Three connections: "command" for the scripts, "events", which
 * reads the stream with XREAD BLOCK and hands each event to hooks.event, and "lease" for the
 * periodic tick. This file holds the store itself, its connections, the script runner and the
 * tick; store_redis_int.h lists the other files.
 *
 * Ownership: each operation allocates an sr_op that is the redis_client request's user data; the
 * client calls back exactly once, and the op is freed there. The store's memory is released when
 * the clients and the tick timer are closed, so that late callbacks still find it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "presenced/io/store_redis.h"
#include "store_redis_int.h"

#define SR_STALL_MS 3000 /* command connection: no reply for this long means it is dead */
#define SR_PING_MS 1000  /* command connection PING interval */
/* A reap runs this long after the lease it waits for expires (the expiry is in Redis's clock,
 * the timer in the loop's), and no sooner than this after the previous tick. */
#define SR_REAP_SLACK_MS 5

const char *const sr_script_names[SCR_COUNT] = {
    "assert", "close", "join", "leave", "open", "room",  "shutdown", "status",    "tick",
    "touch",  "user",  "page", "stats", "kick", "since", "deliver",  "reconcile", "members"};

static const store_vtbl sr_vtbl;

/* ---- helpers ---- */

int sr_fail_code(const store_redis *s)
{
    return s->closing ? STORE_ERR_SHUTDOWN : STORE_ERR_UNAVAILABLE;
}

sr_op *sr_op_new(store_redis *s, const char *what, void *ud)
{
    sr_op *op = calloc(1, sizeof(*op));
    if (!op) {
        log_error("out of memory", "script=%s", what);
        return NULL;
    }
    op->s = s;
    op->what = what;
    op->ud = ud;
    return op;
}

void sr_op_free(sr_op *op)
{
    for (size_t i = 0; i < op->n; i++)
        free(op->users[i]);
    free(op->users);
    free(op);
}

int sr_reply_error(sr_op *op, const redisReply *reply)
{
    if (!reply)
        return sr_fail_code(op->s);
    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("redis script failed", "script=%s err=\"%s\"", op->what, reply->str);
        return STORE_ERR_INTERNAL;
    }
    return STORE_OK;
}

int64_t sr_reply_int(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

const char *sr_reply_str_or_null(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 ? r->str : NULL;
}

/* Every script call goes through a timer: latency by script, and failures, for /metrics. */
typedef struct sr_timed {
    store_redis *s;
    int scr;
    uint64_t start_ns;
    redis_reply_fn fn;
    void *ud;
} sr_timed;

/* Whether a reply (or its absence) of script `scr` means Redis may no longer agree with this
 * instance's sockets. A state change with no reply may or may not have happened (a stall, a
 * dropped connection), or never left (not connected): the owner went on as if it failed, so
 * Redis must be made to agree with the owner, whatever happened. Queries change nothing. */
static bool reply_leaves_doubt(int scr, const redisReply *reply)
{
    switch (scr) {
    case SCR_OPEN:
    case SCR_CLOSE:
    case SCR_JOIN:
    case SCR_LEAVE:
    case SCR_STATUS:
    case SCR_TOUCH:
    case SCR_ASSERT:
        return !reply || (reply->type == REDIS_REPLY_INTEGER && reply->integer == STORE_ERR_STALE);
    default:
        return false;
    }
}

static void sr_pulse(store_redis *s);

/* The next tick is due a third of the lease from now (sr_pulse's clock). */
static void tick_due_reset(store_redis *s)
{
    s->tick_due_ns = uv_hrtime() + (uint64_t)sr_tick_every_ms(s) * 1000000u;
}

static void on_timed(const redisReply *reply, void *ud)
{
    sr_timed *t = ud;
    store_redis *s = t->s;
    if (!s->closing) {
        sr_pulse(s);
        metrics_observe(s->sm.latency, sr_script_names[t->scr],
                        (double)(uv_hrtime() - t->start_ns) / 1e9);
        if (!reply)
            metrics_add(s->sm.errors, "unavailable", 1);
        else if (reply->type == REDIS_REPLY_ERROR)
            metrics_add(s->sm.errors, "script", 1);
        if (reply_leaves_doubt(t->scr, reply))
            sr_rc_request(s, reply ? "a stale state change" : "a state change got no reply");
    }
    redis_reply_fn fn = t->fn;
    void *fud = t->ud;
    free(t);
    fn(reply, fud);
}

/* Functions other than reconcile wait for the reader's position (their events must come after
 * it) and, on the command connection, for the reconciliation's 'begin' (the webhook group, the
 * fence). */
static bool script_allowed(const store_redis *s, int scr)
{
    if (scr == SCR_RECONCILE)
        return true;
    return s->positioned && (s->begun || scr == SCR_TICK);
}

static void run_script_raw(store_redis *s, redis_client *via, int scr, const char *const *args,
                           const size_t *lens, size_t n, redis_reply_fn fn, void *ud)
{
    if (!script_allowed(s, scr)) {
        redis_client_fail(via, fn, ud);
        return;
    }
    const char *stack_argv[SR_COMMON_ARGS + 9];
    size_t stack_lens[SR_COMMON_ARGS + 9];
    const char **argv = stack_argv;
    size_t *alens = stack_lens;
    /* In a cluster, the partition's routing key comes first, as the script's one KEYS entry. */
    size_t nkeys = s->route_key[0] ? 1 : 0;
    size_t total = nkeys + SR_COMMON_ARGS + n;
    if (total > SR_COMMON_ARGS + 9) {
        argv = malloc(total * sizeof(*argv));
        alens = malloc(total * sizeof(*alens));
        if (!argv || !alens) {
            free(argv);
            free(alens);
            log_error("out of memory", "script=%s", sr_script_names[scr]);
            redis_client_fail(via, fn, ud);
            return;
        }
    }
    const char *common[SR_COMMON_ARGS] = {s->prefix,    s->instance,   s->grace,
                                          s->retention, s->maxlen,     s->inst_ttl,
                                          s->lease,     s->epoch_text, s->webhooks ? "1" : "0"};
    if (nkeys) {
        argv[0] = s->route_key;
        alens[0] = strlen(s->route_key);
    }
    for (size_t i = 0; i < SR_COMMON_ARGS; i++) {
        argv[nkeys + i] = common[i];
        alens[nkeys + i] = strlen(common[i]);
    }
    for (size_t i = 0; i < n; i++) {
        argv[nkeys + SR_COMMON_ARGS + i] = args[i];
        alens[nkeys + SR_COMMON_ARGS + i] = lens ? lens[i] : strlen(args[i]);
    }
    redis_client_fcall(via, s->fnames[scr], (int)nkeys, (int)total, argv, alens, fn, ud);
    if (argv != stack_argv) {
        free(argv);
        free(alens);
    }
}

void sr_run_script_on(store_redis *s, redis_client *via, int scr, const char *const *args,
                      const size_t *lens, size_t n, redis_reply_fn fn, void *ud)
{
    sr_pulse(s);
    sr_timed *t = malloc(sizeof(*t));
    if (!t)
        return run_script_raw(s, via, scr, args, lens, n, fn, ud);
    *t = (sr_timed){.s = s, .scr = scr, .start_ns = uv_hrtime(), .fn = fn, .ud = ud};
    run_script_raw(s, via, scr, args, lens, n, on_timed, t);
}

void sr_run_script(store_redis *s, int scr, const char *const *args, const size_t *lens, size_t n,
                   redis_reply_fn fn, void *ud)
{
    sr_run_script_on(s, s->cmd, scr, args, lens, n, fn, ud);
}

/* ---- lease, reap and grace: the tick ---- */

static void reap_arm(store_redis *s, int64_t ms);

static void on_tick_reply(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    s->tick_busy = false;
    if (s->closing)
        return;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 6) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_error("redis script failed", "script=tick err=\"%s\"", reply->str);
        /* A refresh asked for while this one was refused (the reader was not positioned yet,
         * say) is still due. */
        if (s->tick_again) {
            s->tick_again = false;
            sr_tick_run(s);
        }
        return;
    }
    metrics_add(s->sm.reaped, NULL, (double)sr_reply_int(reply->element[3]));
    /* A dead instance is reaped a slice per call (tick.lua): go on at once while it lasts. */
    if (sr_reply_int(reply->element[4]) != 0)
        s->tick_again = true;
    bool held = sr_reply_int(reply->element[0]) != 0;
    long long reaped = sr_reply_int(reply->element[1]), fired = sr_reply_int(reply->element[2]);
    if (reaped > 0)
        log_info("reaped dead instances", "count=%lld", reaped);
    if (fired > 0)
        log_debug("offline grace deadlines fired", "count=%lld", fired);
    if (s->lease_held && !held && !s->shut) {
        log_warn("instance lease was lost: reconciling", "instance=%s", s->instance);
        /* A reconciliation waiting for this refresh registers the sockets next, after whatever
         * took the lease (a reap, a flush): it is the one that makes up for it. */
        if (s->phase != RC_LEASE_WAIT)
            sr_rc_request(s, "this instance's lease was lost");
    }
    s->lease_held = true;
    reap_arm(s, sr_reply_int(reply->element[5]));
    /* The watchdog: while this instance thinks Redis agrees with it (no reconciliation running
     * or due), Redis must hold the epoch of its last one. If it does not (the key expired or was
     * deleted, Redis lost its data without a reconnection, or holds a higher epoch), state
     * changes would be refused one by one, and an idle instance would never notice. */
    if (reply->elements >= 7 && s->tick_check && s->tick_epoch == s->epoch && s->phase == RC_IDLE &&
        !s->need_rc && !s->shut) {
        int64_t stored = sr_reply_int(reply->element[6]);
        if (stored != (int64_t)s->epoch)
            sr_rc_epoch_mismatch(s, stored > 0 ? (uint64_t)stored : 0);
    }
    if (!s->shut)
        sr_rc_lease_ok(s);
    if (s->tick_again && !s->closing) {
        s->tick_again = false;
        sr_tick_run(s);
    }
}

void sr_tick_run(store_redis *s)
{
    if (s->closing || s->shut || !redis_client_ready(s->beat))
        return;
    if (s->tick_busy) {
        s->tick_again = true;
        return;
    }
    s->tick_busy = true;
    tick_due_reset(s);
    /* Only a reconciliation whose 'begin' was answered has stored its epoch; the tick runs
     * after it in Redis (sent once the answer came). */
    s->tick_epoch = s->epoch;
    s->tick_check = s->begun && s->phase != RC_BEGINNING;
    /* Right after this instance's own gap it does not reap others: they may be coming back
     * from the same outage (a Redis restart), and reaping them would announce departures that
     * did not happen. */
    /* How far this instance's state changes lag behind its sockets: no offline grace deadline
     * of the cluster fires before every live instance has had what it sent up to that deadline
     * carried out (tick.lua), so that a user back within the grace on a busy instance is not
     * announced offline while their registration waits in its queue. */
    uint64_t backlog = redis_client_backlog_ms(s->cmd), rc_backlog = sr_rc_backlog_ms(s);
    if (rc_backlog > backlog)
        backlog = rc_backlog;
    char backlog_text[24], sent_text[24];
    snprintf(backlog_text, sizeof(backlog_text), "%llu", (unsigned long long)backlog);
    snprintf(sent_text, sizeof(sent_text), "%lld", (long long)(host_wall_ms() - (int64_t)backlog));
    const char *args[] = {uv_now(s->loop) >= s->reap_from_ms ? "1" : "0", backlog_text, sent_text};
    sr_run_script_on(s, s->beat, SCR_TICK, args, NULL, 3, on_tick_reply, s);
}

static void tick_now(store_redis *s)
{
    sr_stream_retry(s);
    sr_rc_watchdog(s);
    sr_tick_run(s);
}

static void on_tick(uv_timer_t *t)
{
    tick_now(t->data);
}

/* libuv runs timers once per turn of its loop, and one turn serves up to 48 rounds of 1024 ready
 * descriptors: in a connect or disconnect storm, on a host that gives this process a small share
 * of a CPU, a turn can last longer than the lease, and a lease refreshed only from the timer
 * expires in Redis while this instance is alive and busy; the others then reap its sockets and
 * announce its users offline. The store is called with every state change and every reply in
 * such a turn, so it looks at the clock (every 64th call) and refreshes the lease itself when
 * the tick is overdue, writing it at once rather than at the loop's next poll. */
static void sr_pulse(store_redis *s)
{
    if ((++s->pulse_calls & 63) != 0 || s->closing || s->shut || !s->available || s->tick_busy ||
        uv_hrtime() < s->tick_due_ns)
        return;
    tick_due_reset(s); /* once, even when the tick does not go out */
    tick_now(s);
    redis_client_flush(s->beat);
}

/* The next lease of another instance expires in `ms` (-1: there is none): tick then, and reap
 * it, so that its sockets leave the users' records, which queries read, the moment it expires.
 * A live instance refreshes its lease every third of it, so this instance's own ticks move the
 * timer on before it fires; it fires when a lease was not refreshed. Right after this instance's
 * own gap, when it does not reap, it waits until it may. */
static void reap_arm(store_redis *s, int64_t ms)
{
    uv_timer_stop(&s->reap);
    if (ms < 0 || s->shut || s->closing)
        return;
    uint64_t now = uv_now(s->loop);
    uint64_t delay = (uint64_t)ms + SR_REAP_SLACK_MS;
    if (now + delay < s->reap_from_ms)
        delay = s->reap_from_ms - now;
    uv_timer_start(&s->reap, on_tick, delay, 0);
}

/* Available: the command connection is up, its reconciliation has begun and the reader knows
 * where to start. */
void sr_availability_update(store_redis *s)
{
    bool avail = s->cmd_up && s->begun && s->positioned && !s->closing;
    if (avail == s->available)
        return;
    s->available = avail;
    if (s->hooks.availability)
        s->hooks.availability(avail, s->hooks.ud);
    /* Refresh the lease first: registered sockets only count once it is live. */
    if (avail)
        sr_tick_run(s);
}

static void on_cmd_up(const char *run_id, void *ud)
{
    store_redis *s = ud;
    if (s->cmd_run_id[0] && strcmp(s->cmd_run_id, run_id) != 0)
        log_warn("redis restarted: reconciling", "old_run_id=%s run_id=%s", s->cmd_run_id, run_id);
    snprintf(s->cmd_run_id, sizeof(s->cmd_run_id), "%s", run_id);
    if (s->ever_begun)
        s->reap_from_ms = uv_now(s->loop) + s->lease_ms;
    s->cmd_up = true;
    sr_rc_connected(s);
}

/* The lease connection is (again) up: refresh the lease now rather than at the next tick. */
static void on_beat_up(const char *run_id, void *ud)
{
    (void)run_id;
    store_redis *s = ud;
    if (s->available)
        sr_tick_run(s);
}

static void on_cmd_down(void *ud)
{
    store_redis *s = ud;
    s->cmd_up = false;
    s->begun = false;
    sr_availability_update(s);
}

/* ---- Sentinel: the three connections follow the primary ---- */

static int locate_primary(char *host, uint16_t *port, void *ud)
{
    store_redis *s = ud;
    return redis_sentinel_primary(s->sentinel, host, port);
}

static void primary_misdirected(void *ud)
{
    store_redis *s = ud;
    if (s->sentinel && !s->closing)
        redis_sentinel_refresh(s->sentinel);
}

/* A failover ended (or the primary became known): every connection that is not on the new
 * primary goes there now. The command connection's reconciliation follows from its `up`. */
static void primary_changed(void *ud)
{
    store_redis *s = ud;
    if (s->closing)
        return;
    redis_client *clients[] = {s->cmd, s->ev, s->beat};
    for (size_t i = 0; i < 3; i++)
        if (clients[i])
            redis_client_retarget(clients[i], "the primary moved");
}

/* With Sentinel, the watcher and a `locate` for each connection's configuration. */
static int sentinel_start(store_redis *s, const addr_redis_url *url, const store_opts *opts,
                          redis_client_cfg *const *cfgs, size_t ncfgs)
{
    redis_sentinel_cfg wc = {
        .url = url, .password = opts->sentinel_password, .changed = primary_changed, .ud = s};
    if (!(s->sentinel = redis_sentinel_new(s->loop, &wc)))
        return -1;
    for (size_t i = 0; i < ncfgs; i++) {
        cfgs[i]->locate = locate_primary;
        cfgs[i]->primary_only = true;
        cfgs[i]->misdirected = primary_misdirected;
    }
    return 0;
}

/* ---- a partition of a Redis Cluster: the event reader goes to the slot's primary ---- */

static int locate_slot(char *host, uint16_t *port, void *ud)
{
    store_redis *s = ud;
    return redis_cluster_locate(s->route, s->route_slot, host, port);
}

static void slot_misdirected(void *ud)
{
    store_redis *s = ud;
    if (!s->closing)
        redis_cluster_refresh(s->route);
}

/* The command and lease connections become views of the cluster's node connections; the reader
 * keeps a connection of its own (it blocks), at the address the map gives. */
static void route_start(store_redis *s, const sr_route *route, redis_client_cfg *cc,
                        redis_client_cfg *ce, redis_client_cfg *cb)
{
    s->route = route->cmd;
    s->route_slot = route->slot;
    snprintf(s->route_key, sizeof(s->route_key), "%sprobe", s->prefix);
    s->read_to = route->read_to;
    s->read_ud = route->read_ud;
    *cc = (redis_client_cfg){.name = "command",
                             .cluster = route->cmd,
                             .slot = route->slot,
                             .up = cc->up,
                             .down = cc->down,
                             .ud = s};
    *cb = (redis_client_cfg){
        .name = "lease", .cluster = route->lease, .slot = route->slot, .up = cb->up, .ud = s};
    ce->addr = route->auth;
    ce->locate = locate_slot;
    ce->misdirected = slot_misdirected;
    ce->cluster_node = true;
    ce->primary_only = true;
}

/* ---- lifecycle ---- */
static void part_closed(void *ud)
{
    store_redis *s = ud;
    if (--s->open_parts == 0)
        free(s);
}

/* The timers and the shared part's handle, whose data is the store. */
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
    uv_timer_stop(&s->reap);
    uv_close((uv_handle_t *)&s->reap, on_tick_closed);
    sr_socks_free(s);
    store_base_close(&s->base, on_tick_closed);
    sr_rc_free(s);
    redis_client_free(s->cmd, part_closed, s);
    redis_client_free(s->ev, part_closed, s);
    redis_client_free(s->beat, part_closed, s);
    if (s->sentinel)
        redis_sentinel_free(s->sentinel, part_closed, s);
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
    .reconcile = sr_reconcile,
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

static int function_names(store_redis *s)
{
    for (size_t k = 0; k < SCR_COUNT; k++) {
        int n = snprintf(s->fnames[k], sizeof(s->fnames[k]), "%s_%s", sr_script_names[k],
                         redis_library_version);
        if (n < 0 || (size_t)n >= sizeof(s->fnames[k]))
            return -1;
    }
    return 0;
}

static store *sr_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks,
                     const addr_redis_url *url, const sr_route *route);

store *store_redis_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks)
{
    addr_redis_url *url = malloc(sizeof(*url));
    char why[128];
    if (!url || addr_redis_url_parse(opts->redis_url, url, why, sizeof(why)) < 0) {
        log_error("redis store: bad redis URL", "err=\"%s\"", url ? why : "out of memory");
        free(url);
        return NULL;
    }
    store *st = url->mode == ADDR_REDIS_CLUSTER ? sc_new(loop, opts, hooks, url)
                                                : sr_new(loop, opts, hooks, url, NULL);
    free(url);
    return st;
}

store *sr_new_routed(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks,
                     const sr_route *route)
{
    return sr_new(loop, opts, hooks, NULL, route);
}

static store *sr_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks,
                     const addr_redis_url *url, const sr_route *route)
{
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
    if (function_names(s) < 0) {
        log_error("redis store: function names too long", NULL);
        free(s);
        return NULL;
    }
    uint64_t seed = uv_hrtime() ^ (uintptr_t)s;
    map_init(&s->socks, seed);
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
    s->webhooks = opts->webhooks;
    s->epoch = 1;
    snprintf(s->epoch_text, sizeof(s->epoch_text), "1");

    const addr_redis *addr = url ? &url->data : NULL;
    redis_client_cfg cc = {
        .name = "command",
        .addr = addr,
        .library = redis_library,
        .ping_ms = SR_PING_MS,
        .stall_ms = SR_STALL_MS,
        .up = on_cmd_up,
        .down = on_cmd_down,
        .ud = s,
    };
    redis_client_cfg ce = {
        .name = "events",
        .addr = addr,
        .ping_ms = 0,
        .stall_ms = SR_XREAD_BLOCK_MS + SR_STALL_MS,
        .up = sr_stream_up,
        .ud = s,
    };
    redis_client_cfg cb = cc;
    cb.name = "lease";
    cb.up = on_beat_up;
    cb.down = NULL;
    redis_client_cfg *const cfgs[] = {&cc, &ce, &cb};
    if (route)
        route_start(s, route, &cc, &ce, &cb);
    if (url && url->mode == ADDR_REDIS_SENTINEL && sentinel_start(s, url, opts, cfgs, 3) < 0) {
        log_error("redis store: out of memory", NULL);
        free(s);
        return NULL;
    }
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
        if (s->sentinel)
            redis_sentinel_free(s->sentinel, NULL, NULL);
        map_deinit(&s->socks);
        free(s);
        return NULL;
    }
    store_base_init(&s->base, &sr_vtbl, loop, "redis store");
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uint32_t every = sr_tick_every_ms(s);
    tick_due_reset(s);
    uv_timer_start(&s->tick, on_tick, every, every);
    uv_timer_init(loop, &s->reap);
    s->reap.data = s;
    /* Three clients, the two timers, the shared part's handle and the Sentinel watcher if any. */
    s->open_parts = s->sentinel ? 7 : 6;
    return &s->base;
}
