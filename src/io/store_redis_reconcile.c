/* store_redis_reconcile — reconciliation and the sliced shutdown of the Redis store.
 *
 * Reconciliation makes Redis agree with this instance's live sockets (docs/presence-model.md,
 * "Reconciliation"). It runs after any gap: the command connection (re)connected, a state change
 * got no reply or came back stale, Redis did not know a socket the owner uses, this instance's
 * lease was lost, the reader saw a new generation begin (Redis lost its data). Its steps, all
 * reconcile.lua on the command connection:
 *   1. 'begin': fence off state changes sent before it, begin a generation if Redis has none,
 *      make sure the webhook group exists, start the set of confirmed sockets. The store is
 *      available once the first 'begin' of a connection has been answered.
 *   2. once the lease has been refreshed: the owner's truth (hooks.reconcile), grouped by user,
 *      in slices of at most SR_RC_SLICE sockets, all sent at once so that every state change
 *      sent afterwards runs after them;
 *   3. 'sweep' until done: the pending sockets no slice confirmed are closed as a close would.
 * A gap during a reconciliation makes it run again from the start; so does a reply that fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "presenced/io/log.h"
#include "store_redis_int.h"

#define SR_RC_SLICE 64 /* sockets per slice: one slice stays well under 50 ms of Redis time */

typedef struct sr_waiter {
    struct sr_waiter *next;
    store_done_fn cb;
    void *ud;
    bool running; /* waits for the reconciliation in progress, not the next one */
} sr_waiter;

/* The user data of a reconcile.lua call: replies of an abandoned attempt are told apart. */
typedef struct rc_call {
    store_redis *s;
    uint64_t epoch;
} rc_call;

static void rc_begin(store_redis *s);

static rc_call *rc_call_new(store_redis *s)
{
    rc_call *c = malloc(sizeof(*c));
    if (c)
        *c = (rc_call){.s = s, .epoch = s->epoch};
    return c;
}

/* The reply belongs to the reconciliation in progress. */
static bool rc_current(const rc_call *c)
{
    return !c->s->closing && !c->s->shut && c->epoch == c->s->epoch;
}

static bool rc_reply_ok(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
           reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 0;
}

static void waiters_finish(store_redis *s, bool running_only, int err)
{
    sr_waiter **pp = &s->waiters;
    while (*pp) {
        sr_waiter *w = *pp;
        if (running_only && !w->running) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->cb(err, w->ud);
        free(w);
    }
}

/* The attempt failed (a reply missing or refused): it runs again once the store can. */
static void rc_failed(store_redis *s, const char *step)
{
    log_warn("reconciliation interrupted: it will run again", "step=%s", step);
    s->phase = RC_IDLE;
    s->need_rc = true;
}

static void rc_done(store_redis *s)
{
    s->phase = RC_IDLE;
    log_info("reconciled with redis", "sockets=%zu closed=%zu restore=%d", s->rc_sockets,
             s->rc_closed, s->restore);
    waiters_finish(s, true, STORE_OK);
    if (s->need_rc)
        rc_begin(s);
}

/* ---- 3. the sweep ---- */

static void rc_sweep(store_redis *s);

static void on_sweep(const redisReply *reply, void *ud)
{
    rc_call *c = ud;
    store_redis *s = c->s;
    bool current = rc_current(c);
    free(c);
    if (!current)
        return;
    if (!rc_reply_ok(reply) || reply->elements < 3 ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        rc_failed(s, "sweep");
        return;
    }
    s->rc_closed += (size_t)sr_reply_int(reply->element[2]);
    snprintf(s->sweep_cursor, sizeof(s->sweep_cursor), "%s", reply->element[1]->str);
    if (strcmp(s->sweep_cursor, "0") == 0)
        rc_done(s);
    else
        rc_sweep(s);
}

static void rc_sweep(store_redis *s)
{
    rc_call *c = rc_call_new(s);
    if (!c) {
        rc_failed(s, "sweep");
        return;
    }
    s->phase = RC_SWEEPING;
    const char *args[] = {"sweep", s->sweep_cursor};
    sr_run_script(s, SCR_RECONCILE, args, NULL, 2, on_sweep, c);
}

/* ---- 2. the slices ---- */

static void on_slice(const redisReply *reply, void *ud)
{
    rc_call *c = ud;
    store_redis *s = c->s;
    bool current = rc_current(c);
    free(c);
    if (!current || s->phase != RC_SLICES)
        return;
    if (!rc_reply_ok(reply))
        s->rc_failed = true;
    if (--s->rc_inflight > 0)
        return;
    if (s->rc_failed) {
        rc_failed(s, "slice");
        return;
    }
    snprintf(s->sweep_cursor, sizeof(s->sweep_cursor), "0");
    rc_sweep(s);
}

/* One socket of the truth as the slice carries it: [sid, status, metadata, [rooms]]. */
static cJSON *truth_sock_json(const store_truth_sock *k)
{
    cJSON *a = cJSON_CreateArray();
    cJSON *rooms = cJSON_CreateArray();
    bool ok = a && rooms && cJSON_AddItemToArray(a, cJSON_CreateString(k->sid)) &&
              cJSON_AddItemToArray(a, cJSON_CreateString(k->status ? k->status : "")) &&
              cJSON_AddItemToArray(a, cJSON_CreateString(k->metadata ? k->metadata : ""));
    for (size_t i = 0; ok && i < k->nrooms; i++)
        ok = cJSON_AddItemToArray(rooms, cJSON_CreateString(k->rooms[i]));
    if (ok && cJSON_AddItemToArray(a, rooms))
        return a;
    cJSON_Delete(rooms);
    cJSON_Delete(a);
    return NULL;
}

static int send_slice(store_redis *s, cJSON *users)
{
    char *json = cJSON_PrintUnformatted(users);
    rc_call *c = json ? rc_call_new(s) : NULL;
    if (!c) {
        free(json);
        return -1;
    }
    const char *args[] = {"slice", json};
    s->rc_inflight++;
    sr_run_script(s, SCR_RECONCILE, args, NULL, 2, on_slice, c);
    free(json);
    return 0;
}

/* Group the truth (sorted by user) into slices: a user's sockets always travel together, so
 * that each slice decides a user's transitions from all of this instance's sockets of them. */
static int send_slices(store_redis *s, const store_truth *t)
{
    cJSON *users = cJSON_CreateArray();
    size_t in_slice = 0;
    int rc = users ? 0 : -1;
    for (size_t i = 0; i < t->n && rc == 0;) {
        cJSON *u = cJSON_CreateObject(), *socks = cJSON_CreateArray();
        if (!u || !socks || !cJSON_AddStringToObject(u, "u", t->v[i].user) ||
            !cJSON_AddItemToObject(u, "s", socks)) {
            cJSON_Delete(socks);
            cJSON_Delete(u);
            rc = -1;
            break;
        }
        cJSON_AddItemToArray(users, u);
        size_t j = i;
        for (; j < t->n && strcmp(t->v[j].user, t->v[i].user) == 0 && rc == 0; j++) {
            cJSON *k = truth_sock_json(&t->v[j]);
            if (!k || !cJSON_AddItemToArray(socks, k))
                rc = -1;
        }
        in_slice += j - i;
        i = j;
        if (rc == 0 && (in_slice >= SR_RC_SLICE || i == t->n)) {
            rc = send_slice(s, users);
            cJSON_Delete(users);
            users = i < t->n ? cJSON_CreateArray() : NULL;
            in_slice = 0;
            if (i < t->n && !users)
                rc = -1;
        }
    }
    cJSON_Delete(users);
    return rc;
}

static void rc_slices(store_redis *s)
{
    /* Whatever happens from here on needs another round. */
    s->need_rc = false;
    for (sr_waiter *w = s->waiters; w; w = w->next)
        w->running = true;
    store_truth t;
    if (store_truth_collect(&s->hooks, &t) != STORE_OK) {
        log_error("out of memory collecting this instance's sockets", NULL);
        rc_failed(s, "truth");
        return;
    }
    sr_socks_reset(s, &t);
    s->phase = RC_SLICES;
    s->rc_inflight = 0;
    s->rc_failed = false;
    s->rc_sockets = t.n;
    s->rc_closed = 0;
    if (send_slices(s, &t) < 0) {
        log_error("out of memory building a reconciliation", NULL);
        s->rc_failed = true;
    }
    store_truth_clear(&t);
    if (s->rc_inflight == 0) {
        if (s->rc_failed) {
            rc_failed(s, "slice");
            return;
        }
        snprintf(s->sweep_cursor, sizeof(s->sweep_cursor), "0");
        rc_sweep(s);
    }
}

/* ---- 1. begin ---- */

/* Take this instance's epoch up to `stored`, so that the next 'begin' goes above it. */
static bool epoch_take_up(store_redis *s, uint64_t stored)
{
    if (stored <= s->epoch)
        return false;
    log_warn("redis holds a higher epoch for this instance than its own: taking it up",
             "instance=%s epoch=%llu stored=%llu", s->instance, (unsigned long long)s->epoch,
             (unsigned long long)stored);
    s->epoch = stored;
    snprintf(s->epoch_text, sizeof(s->epoch_text), "%llu", (unsigned long long)s->epoch);
    return true;
}

/* The current 'begin' was refused because Redis holds a higher epoch for this instance. Its
 * own epoch went backwards (the process restarted under the same id, or Redis came back with
 * another copy's data): no later 'begin' could ever pass, and the store would stay unavailable.
 * It takes the stored epoch up and begins again at once. Returns whether the reply was that. */
static bool begin_superseded(store_redis *s, const redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[0]->integer != STORE_ERR_STALE)
        return false;
    int64_t stored = sr_reply_int(reply->element[1]);
    rc_failed(s, "begin");
    if (stored > 0 && epoch_take_up(s, (uint64_t)stored))
        rc_begin(s);
    return true;
}

static void on_begin(const redisReply *reply, void *ud)
{
    rc_call *c = ud;
    store_redis *s = c->s;
    bool current = rc_current(c);
    free(c);
    if (!current || s->phase != RC_BEGINNING)
        return;
    if (begin_superseded(s, reply))
        return;
    if (!rc_reply_ok(reply) || reply->elements < 4 ||
        reply->element[3]->type != REDIS_REPLY_STRING) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_error("redis script failed", "script=reconcile err=\"%s\"", reply->str);
        /* Begun again at the next lease timer (sr_rc_watchdog), whether the store is available
         * or not: a refused first 'begin' of a connection must not leave it unavailable. */
        rc_failed(s, "begin");
        return;
    }
    s->restore = sr_reply_int(reply->element[1]) != 0;
    if (s->restore)
        log_warn("redis lost its data: registering this instance's sockets in a new generation",
                 "instance=%s generation=%s", s->instance, reply->element[3]->str);
    snprintf(s->rc_gen, sizeof(s->rc_gen), "%s", reply->element[3]->str);
    sr_stream_gen_seen(s, s->rc_gen);
    s->ever_begun = true;
    s->phase = RC_LEASE_WAIT;
    /* Sockets only count once the lease is live: refresh it, then register them (becoming
     * available refreshes it). */
    if (!s->begun) {
        s->begun = true;
        sr_availability_update(s);
    } else {
        sr_tick_run(s);
    }
}

static void rc_begin(store_redis *s)
{
    if (s->closing || s->shut || !s->cmd_up || s->phase != RC_IDLE)
        return;
    /* State changes sent from now on carry the new epoch; older ones that Redis has not run yet
     * are refused once 'begin' has run. */
    s->epoch++;
    snprintf(s->epoch_text, sizeof(s->epoch_text), "%llu", (unsigned long long)s->epoch);
    rc_call *c = rc_call_new(s);
    if (!c) {
        s->need_rc = true;
        return;
    }
    s->phase = RC_BEGINNING;
    const char *args[] = {"begin", s->ever_begun ? "1" : "0", s->rc_gen};
    sr_run_script(s, SCR_RECONCILE, args, NULL, 3, on_begin, c);
}

/* ---- the store's side ---- */

void sr_rc_request(store_redis *s, const char *why)
{
    if (s->closing || s->shut)
        return;
    if (!s->need_rc)
        log_info("redis may not agree with this instance: reconciling", "why=\"%s\"", why);
    s->need_rc = true;
    if (s->phase == RC_IDLE && s->available)
        rc_begin(s);
}

void sr_rc_connected(store_redis *s)
{
    /* A reconciliation that was running on the old connection is abandoned: its replies carry
     * an older epoch. Any reconnection follows a gap (a stall, Redis restarted). */
    s->begun = false;
    s->phase = RC_IDLE;
    if (s->ever_begun)
        s->need_rc = true;
    rc_begin(s);
}

void sr_rc_watchdog(store_redis *s)
{
    if (s->closing || s->shut || !s->cmd_up || s->phase != RC_IDLE)
        return;
    if (s->need_rc || !s->begun)
        rc_begin(s);
}

void sr_rc_epoch_mismatch(store_redis *s, uint64_t stored)
{
    epoch_take_up(s, stored);
    sr_rc_request(s, stored == 0 ? "this instance's epoch is missing from redis"
                                 : "redis holds another epoch for this instance");
}

void sr_rc_lease_ok(store_redis *s)
{
    if (s->phase == RC_LEASE_WAIT)
        rc_slices(s);
    else if (s->phase == RC_IDLE && s->need_rc && s->available)
        rc_begin(s);
}

void sr_rc_free(store_redis *s)
{
    waiters_finish(s, false, STORE_ERR_SHUTDOWN);
}

static void on_refused(const redisReply *reply, void *ud)
{
    (void)reply;
    sr_waiter *w = ud;
    w->cb(STORE_ERR_UNAVAILABLE, w->ud);
    free(w);
}

void sr_reconcile(store *st, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    w->cb = cb;
    w->ud = ud;
    if (!s->available || s->shut) {
        redis_client_fail(s->cmd, on_refused, w);
        return;
    }
    w->next = s->waiters;
    s->waiters = w;
    sr_rc_request(s, "asked by the owner");
}

/* ---- shutdown, in slices ---- */

static void shutdown_next(store_redis *s);

static void shutdown_finish(store_redis *s, int err)
{
    store_done_fn cb = s->shut_cb;
    s->shut_cb = NULL;
    if (err == STORE_OK)
        log_info("redis store shut down", "instance=%s sockets_closed=%zu", s->instance,
                 s->shut_closed);
    if (cb)
        cb(err, s->shut_ud);
}

static void on_shutdown(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_error("redis script failed", "script=shutdown err=\"%s\"", reply->str);
        shutdown_finish(s, reply && !s->closing ? STORE_ERR_INTERNAL : sr_fail_code(s));
        return;
    }
    s->shut_closed += (size_t)sr_reply_int(reply->element[0]);
    if (sr_reply_int(reply->element[1]) != 0)
        shutdown_finish(s, STORE_OK);
    else
        shutdown_next(s);
}

static void shutdown_next(store_redis *s)
{
    sr_run_script(s, SCR_SHUTDOWN, NULL, NULL, 0, on_shutdown, s);
}

void sr_shutdown(store *st, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    /* No lease refresh after this: it would bring the lease back. The slices keep it alive. */
    s->shut = true;
    uv_timer_stop(&s->tick);
    s->shut_cb = cb;
    s->shut_ud = ud;
    s->shut_closed = 0;
    shutdown_next(s);
}
