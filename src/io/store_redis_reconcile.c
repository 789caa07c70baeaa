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
 *      in slices of about SR_RC_SLICE sockets, at most SR_RC_WINDOW of them in flight, so that
 *      re-registering tens of thousands of sockets never queues more than a few slices of work
 *      in front of Redis (whatever else this instance and the others send gets its turn). A state
 *      change about a user whose slice is not sent yet sends that slice first: every change the
 *      owner makes after the truth was collected applies on top of its slice, as if all slices
 *      had gone at once;
 *   3. 'sweep' until done: the pending sockets no slice confirmed are closed as a close would.
 * A gap during a reconciliation makes it run again from the start; so does a reply that fails.
 * Starting again announces nothing twice: a slice makes Redis agree with the truth and announces
 * the difference, and what an interrupted attempt already registered is no difference any more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "presenced/io/log.h"
#include "store_redis_int.h"

#define SR_RC_SLICE 64  /* sockets per slice: one slice stays well under 50 ms of Redis time */
#define SR_RC_WINDOW 16 /* slices in flight at once: at most ~100 ms of Redis work */

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

/* The truth of the slices not sent yet is no longer needed. */
static void rc_truth_drop(store_redis *s)
{
    store_truth_clear(&s->rc_truth);
    free(s->rc_cuts);
    free(s->rc_sent);
    s->rc_cuts = NULL;
    s->rc_sent = NULL;
    s->rc_nslices = s->rc_next = 0;
}

/* The attempt failed (a reply missing or refused): it runs again once the store can. */
static void rc_failed(store_redis *s, const char *step)
{
    rc_truth_drop(s);
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

static void rc_pump(store_redis *s);

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
    s->rc_inflight--;
    rc_pump(s);
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

/* Slice `i` as reconcile.lua takes it: [{"u": user, "s": [socket, ...]}, ...], the truth being
 * sorted by user. */
static cJSON *slice_json(const store_truth *t, size_t from, size_t to)
{
    cJSON *users = cJSON_CreateArray();
    for (size_t i = from; users && i < to;) {
        cJSON *u = cJSON_CreateObject(), *socks = cJSON_CreateArray();
        bool ok = u && socks && cJSON_AddStringToObject(u, "u", t->v[i].user) &&
                  cJSON_AddItemToObject(u, "s", socks);
        if (!ok) {
            cJSON_Delete(socks);
            cJSON_Delete(u);
            cJSON_Delete(users);
            return NULL;
        }
        cJSON_AddItemToArray(users, u);
        size_t j = i;
        for (; j < to && strcmp(t->v[j].user, t->v[i].user) == 0; j++) {
            cJSON *k = truth_sock_json(&t->v[j]);
            if (!k || !cJSON_AddItemToArray(socks, k)) {
                cJSON_Delete(k);
                cJSON_Delete(users);
                return NULL;
            }
        }
        i = j;
    }
    return users;
}

static void send_slice(store_redis *s, size_t i)
{
    s->rc_sent[i] = true;
    cJSON *users = slice_json(&s->rc_truth, s->rc_cuts[i], s->rc_cuts[i + 1]);
    char *json = users ? cJSON_PrintUnformatted(users) : NULL;
    cJSON_Delete(users);
    rc_call *c = json ? rc_call_new(s) : NULL;
    if (!c) {
        free(json);
        log_error("out of memory building a reconciliation", NULL);
        s->rc_failed = true;
        return;
    }
    const char *args[] = {"slice", json};
    s->rc_inflight++;
    sr_run_script(s, SCR_RECONCILE, args, NULL, 2, on_slice, c);
    free(json);
}

/* Cut the truth (sorted by user) into slices: a user's sockets always travel together, so that
 * each slice decides a user's transitions from all of this instance's sockets of them. */
static int slices_cut(store_redis *s)
{
    const store_truth *t = &s->rc_truth;
    size_t max = t->n / SR_RC_SLICE + 2;
    s->rc_cuts = malloc(max * sizeof(*s->rc_cuts));
    s->rc_sent = calloc(max, sizeof(*s->rc_sent));
    if (!s->rc_cuts || !s->rc_sent)
        return -1;
    size_t n = 0;
    s->rc_cuts[0] = 0;
    for (size_t i = 0; i < t->n;) {
        size_t end = i + SR_RC_SLICE < t->n ? i + SR_RC_SLICE : t->n;
        while (end < t->n && strcmp(t->v[end].user, t->v[end - 1].user) == 0)
            end++;
        s->rc_cuts[++n] = end;
        i = end;
    }
    s->rc_nslices = n;
    return 0;
}

/* Keep up to SR_RC_WINDOW slices in flight; once every slice is answered, sweep. A failed slice
 * stops the sending: the reconciliation runs again once the ones in flight are answered. */
static void rc_pump(store_redis *s)
{
    while (!s->rc_failed && s->rc_inflight < SR_RC_WINDOW && s->rc_next < s->rc_nslices) {
        if (!s->rc_sent[s->rc_next])
            send_slice(s, s->rc_next);
        s->rc_next++;
    }
    if (s->rc_cuts && s->rc_next >= s->rc_nslices)
        rc_truth_drop(s);
    if (s->rc_inflight > 0 || (!s->rc_failed && s->rc_next < s->rc_nslices))
        return;
    if (s->rc_failed) {
        rc_failed(s, "slice");
        return;
    }
    snprintf(s->sweep_cursor, sizeof(s->sweep_cursor), "0");
    rc_sweep(s);
}

static void rc_slices(store_redis *s)
{
    /* Whatever happens from here on needs another round. */
    s->need_rc = false;
    for (sr_waiter *w = s->waiters; w; w = w->next)
        w->running = true;
    rc_truth_drop(s);
    if (store_truth_collect(&s->hooks, &s->rc_truth) != STORE_OK) {
        log_error("out of memory collecting this instance's sockets", NULL);
        rc_failed(s, "truth");
        return;
    }
    sr_socks_reset(s, &s->rc_truth);
    s->phase = RC_SLICES;
    s->rc_inflight = 0;
    s->rc_failed = false;
    s->rc_sockets = s->rc_truth.n;
    s->rc_closed = 0;
    s->rc_collected_ms = uv_now(s->loop);
    if (slices_cut(s) < 0) {
        log_error("out of memory building a reconciliation", NULL);
        s->rc_failed = true;
    }
    rc_pump(s);
}

/* The first socket of `user` in the sorted truth, or t->n. */
static size_t truth_find_user(const store_truth *t, const char *user)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->v[mid].user, user) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && strcmp(t->v[lo].user, user) == 0 ? lo : t->n;
}

void sr_rc_before_change(store_redis *s, const char *user)
{
    if (s->phase != RC_SLICES || s->rc_failed || s->rc_next >= s->rc_nslices)
        return;
    size_t at = truth_find_user(&s->rc_truth, user);
    if (at == s->rc_truth.n)
        return;
    /* The slice holding socket `at`: the last cut at or before it. */
    size_t lo = 0, hi = s->rc_nslices;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->rc_cuts[mid] <= at)
            lo = mid;
        else
            hi = mid;
    }
    if (!s->rc_sent[lo]) {
        send_slice(s, lo);
        if (s->rc_failed)
            rc_pump(s);
    }
}

uint64_t sr_rc_backlog_ms(const store_redis *s)
{
    if (s->phase != RC_SLICES || s->rc_next >= s->rc_nslices)
        return 0;
    uint64_t now = uv_now(s->loop);
    return now > s->rc_collected_ms ? now - s->rc_collected_ms : 0;
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
    /* Redis holds nothing of this instance: its data was lost, or it was reaped while its lease
     * lapsed. Only a new generation (logged by the stream reader) means the data was lost. */
    if (s->restore)
        log_warn("redis holds nothing of this instance: registering its sockets again",
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
    rc_truth_drop(s);
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
    rc_truth_drop(s);
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
