/* redis_client — a supervised hiredis 0.14.1 connection on libuv (see redis_client.h).
 *
 * Ownership: the client owns a redisAsyncContext while connected or connecting, and one
 * redis_poll per context (freed in its close callback, which may run after the context is gone).
 * Every request passes a redis_req owned by the client as hiredis privdata, never a caller's
 * object: hiredis may call back after the caller's object is gone (after a drop, every pending
 * callback runs with a NULL reply). Connections are told apart by a generation number, so that
 * late replies of a dropped connection do not touch the state of the next one.
 */
#include "presenced/io/redis_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "presenced/core/stall.h"
#include "presenced/io/later.h"
#include "presenced/io/log.h"
#include "redis_cluster_int.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SUPERVISE_MS 250 /* how often pings are due and stalls are checked */

typedef enum conn_state { ST_DOWN = 0, ST_CONNECTING, ST_UP } conn_state;

typedef struct redis_req redis_req;
typedef void (*req_internal_fn)(redis_client *c, const redisReply *reply, redis_req *req);

/* One request in flight, or one failed request waiting to be reported from the loop. */
struct redis_req {
    redis_req *next; /* in the failed list */
    redis_client *c;
    uint64_t gen;      /* connection it was sent on */
    uint64_t sent_ms;  /* loop time it was sent */
    redis_reply_fn fn; /* caller's callback, or NULL for the client's own requests */
    void *ud;
    req_internal_fn ifn;   /* the client's own handler (handshake, PING) */
    bool fcall, fell_back; /* FCALL request, and whether it was sent again after a reload */
    bool counted;          /* counted in `pending` until its (first) reply */
    bool persistent;       /* a subscription: called per message, freed on NULL only */
    int argc;              /* FCALL argv kept for that second call (one allocation) */
    const char **argv;
    size_t *lens;
    char numkeys[12];
};

/* A request a cluster view sent on the node connection serving its slot. */
typedef struct view_wait view_wait;
struct view_wait {
    view_wait *next, *prev;
    redis_client *view; /* NULL once the view has failed it (it went down or away) */
    redis_reply_fn fn;
    void *ud;
};

/* The libuv side of one redisAsyncContext. */
typedef struct redis_poll {
    uv_poll_t h;
    redisAsyncContext *ac; /* NULL once hiredis has let go of it */
    int events;            /* what hiredis wants to hear about */
    int polled;            /* what the handle was last started with (0: stopped) */
    bool reading;          /* hiredis is handing out replies read from it (redis_client_flush) */
} redis_poll;

struct redis_client {
    uv_loop_t *loop;
    char name[32];
    addr_redis addr;
    const char *library;
    uint32_t ping_ms;
    void (*up)(const char *run_id, void *ud);
    void (*down)(void *ud);
    int (*locate)(char *host, uint16_t *port, void *ud);
    void (*misdirected)(void *ud);
    bool primary_only;
    bool cluster_node;
    void *ud;

    /* A cluster view: the cluster, its slot, the node connection it is up on, its requests. */
    redis_cluster *cluster;
    uint16_t slot;
    redis_client *node;
    view_wait *waits;

    redisAsyncContext *ac;
    conn_state state;
    uint64_t gen;
    /* The requests of this connection without a reply yet, and whether Redis is slow or dead
     * (stall.h): the silence since the last reply against a limit that follows its pace. */
    stall_watch watch;
    uint64_t oldest_ms; /* ms: no later than the sending of the oldest request unanswered */
    uint64_t down_ms;   /* ms: when the connection was last not up (lost, or never up) */
    uint64_t last_ping; /* ms */
    bool ping_out;
    unsigned handshake_left;
    char run_id[REDIS_RUN_ID_MAX];
    uint32_t backoff_ms;

    uv_timer_t supervise, reconnect, defer;
    later unqueued; /* requests that failed before a request existed to carry the failure */
    redis_req *failed, *failed_tail;
    bool closing;
    int open_handles;
    void (*closed)(void *ud);
    void *closed_ud;
};

static void conn_start(redis_client *c);
static void on_reconnect(uv_timer_t *t);
static void conn_drop(redis_client *c, const char *why);
static void on_defer(uv_timer_t *t);

/* ---- requests ---- */

static redis_req *req_new(redis_client *c, redis_reply_fn fn, void *ud)
{
    redis_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->c = c;
    r->gen = c->gen;
    r->fn = fn;
    r->ud = ud;
    return r;
}

static void req_free(redis_req *r)
{
    free(r->argv);
    free(r);
}

/* Report a request that was never sent, from the loop rather than from inside the call. */
static void req_fail_later(redis_client *c, redis_req *r)
{
    r->next = NULL;
    if (c->failed_tail)
        c->failed_tail->next = r;
    else
        c->failed = r;
    c->failed_tail = r;
    if (!c->closing)
        later_timer(&c->defer, on_defer, 0);
}

static void flush_failed(redis_client *c)
{
    while (c->failed) {
        redis_req *r = c->failed;
        c->failed = r->next;
        if (!c->failed)
            c->failed_tail = NULL;
        if (r->fn)
            r->fn(NULL, r->ud);
        req_free(r);
    }
}

static void on_defer(uv_timer_t *t)
{
    uv_timer_stop(t);
    flush_failed(t->data);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int req_send(redis_client *c, redis_req *r, int argc, const char **argv, const size_t *lens)
{
    if (!c->ac || redisAsyncCommandArgv(c->ac, on_reply, r, argc, argv, lens) != REDIS_OK)
        return -1;
    r->gen = c->gen;
    r->counted = true;
    r->sent_ms = uv_now(c->loop);
    if (c->watch.pending == 0)
        c->oldest_ms = r->sent_ms;
    stall_sent(&c->watch, r->sent_ms);
    return 0;
}

static bool is_readonly(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
           memcmp(reply->str, "READONLY", 8) == 0;
}

/* An answer that says the node is not (or no longer) where this request belongs. */
static bool is_misdirected(const redis_client *c, const redisReply *reply)
{
    return (c->primary_only && is_readonly(reply)) || (c->cluster_node && rc_is_redirect(reply));
}

/* The address `locate` gave is no good: tell whoever answers it. */
static void misdirect(redis_client *c)
{
    if (c->locate && c->misdirected && !c->closing)
        c->misdirected(c->ud);
}

/* A subscription's reply: the confirmation is swallowed, messages go to the caller, and only the
 * end of the subscription (NULL) frees the request. */
static void on_subscribed_reply(redis_req *r, const redisReply *reply)
{
    if (!reply) {
        if (r->fn)
            r->fn(NULL, r->ud);
        req_free(r);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "message") == 0 && r->fn)
        r->fn(reply, r->ud);
}

static bool is_no_function(const redisReply *reply)
{
    static const char msg[] = "ERR Function not found";
    return reply && reply->type == REDIS_REPLY_ERROR && reply->len >= sizeof(msg) - 1 &&
           memcmp(reply->str, msg, sizeof(msg) - 1) == 0;
}

static int send_internal(redis_client *c, req_internal_fn ifn, int argc, const char **argv,
                         const size_t *lens);
static void on_reload(redis_client *c, const redisReply *reply, redis_req *r);

static int library_load(redis_client *c, req_internal_fn ifn)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", c->library};
    size_t lens[] = {8, 4, 7, strlen(c->library)};
    return send_internal(c, ifn, 4, argv, lens);
}

static void on_reply(redisAsyncContext *ac, void *reply_, void *privdata)
{
    (void)ac;
    redis_req *r = privdata;
    redis_client *c = r->c;
    const redisReply *reply = reply_;
    if (r->counted) {
        r->counted = false;
        if (r->gen == c->gen && c->watch.pending > 0) {
            /* Replies come in the order of the requests: the next one unanswered was sent no
             * earlier than this one. */
            c->oldest_ms = r->sent_ms;
            stall_reply(&c->watch, uv_now(c->loop), reply != NULL);
        }
    }
    if (r->persistent) {
        on_subscribed_reply(r, reply);
        return;
    }
    if (is_misdirected(c, reply) && !c->closing) {
        /* The node was demoted under us (a failover without the connection breaking), or the
         * cluster serves the slot elsewhere now: what it refused did not happen, and this
         * connection is of no use any more. */
        if (r->gen == c->gen) {
            log_warn("redis node refused a request: going elsewhere", "conn=%s err=\"%s\"", c->name,
                     reply->str);
            conn_drop(c, "the node does not serve this any more");
            misdirect(c);
        }
        reply = NULL;
    }
    if (r->fcall && !r->fell_back && is_no_function(reply) && !c->closing) {
        /* The library was deleted under us (FUNCTION FLUSH or DELETE): load it again and call
         * once more, behind the load on the same connection. */
        r->fell_back = true;
        if (library_load(c, on_reload) == 0 && req_send(c, r, r->argc, r->argv, r->lens) == 0)
            return;
        reply = NULL;
    }
    if (r->ifn) {
        /* Replies of an older connection say nothing about the current one. */
        if (r->gen == c->gen && !c->closing)
            r->ifn(c, reply, r);
    } else if (r->fn) {
        r->fn(reply, r->ud);
    }
    req_free(r);
}

static void run_failed(const later_call *call)
{
    ((redis_reply_fn)call->cb)(NULL, call->ud);
}

/* A request that could not even be allocated still fails on a later turn, from the reserve. */
static void fail_without_req(redis_client *c, redis_reply_fn fn, void *ud)
{
    later_queue(&c->unqueued, (later_call){.run = run_failed, .cb = (void (*)(void))fn, .ud = ud});
}

/* ---- cluster views ---- */

static void wait_unlink(redis_client *v, view_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        v->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
}

/* Fail every request of the view now (it went down or away); their replies, if any come, are
 * dropped. */
static void view_fail_all(redis_client *v)
{
    while (v->waits) {
        view_wait *w = v->waits;
        wait_unlink(v, w);
        w->view = NULL;
        w->fn(NULL, w->ud);
    }
}

static void view_down(redis_client *v, const char *why);

static void on_view_reply(const redisReply *reply, void *ud)
{
    view_wait *w = ud;
    redis_client *v = w->view;
    if (v) {
        wait_unlink(v, w);
        if (rc_is_redirect(reply)) {
            /* It did not run: the slot is elsewhere, migrating, or the cluster is down. The
             * slot is of no use here until the map has been asked again: the view goes down
             * (its other requests fail as lost, as when a connection breaks), and comes up
             * again with the next answer that gives the slot a primary that is up. */
            log_warn("redis cluster refused a request", "conn=%s slot=%u err=\"%s\"", v->name,
                     v->slot, reply->str);
            rc_redirected(v->cluster, reply);
            w->fn(NULL, w->ud);
            view_down(v, "refused");
            free(w);
            return;
        }
        w->fn(reply, w->ud);
    }
    free(w);
}

static view_wait *view_wait_new(redis_client *v, redis_reply_fn fn, void *ud)
{
    view_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    *w = (view_wait){.next = v->waits, .view = v, .fn = fn, .ud = ud};
    if (v->waits)
        v->waits->prev = w;
    v->waits = w;
    return w;
}

/* The view stops using its node connection: down for its owner, its requests failed. */
static void view_down(redis_client *v, const char *why)
{
    if (v->state != ST_UP || v->closing)
        return;
    v->state = ST_DOWN;
    v->node = NULL;
    v->gen++;
    log_info("redis cluster slot unavailable here", "conn=%s slot=%u why=%s", v->name, v->slot,
             why);
    if (v->down)
        v->down(v->ud);
    view_fail_all(v);
}

void redis_client_view_update(redis_client *v)
{
    if (v->closing)
        return;
    redis_client *node = rc_node_for(v->cluster, v->slot);
    if (v->state == ST_UP && node == v->node)
        return;
    if (v->state == ST_UP) {
        /* Down on the old primary first: its run_id is not the new one's. */
        view_down(v, node ? "moved" : "no primary up");
        if (v->closing)
            return;
        node = rc_node_for(v->cluster, v->slot);
    }
    if (!node)
        return;
    v->state = ST_UP;
    v->node = node;
    snprintf(v->run_id, sizeof(v->run_id), "%s", redis_client_run_id(node));
    log_info("redis cluster slot served", "conn=%s slot=%u host=%s port=%u run_id=%s", v->name,
             v->slot, redis_client_host(node), redis_client_port(node), v->run_id);
    if (v->up)
        v->up(v->run_id, v->ud);
}

void redis_client_fail(redis_client *c, redis_reply_fn fn, void *ud)
{
    redis_req *r = req_new(c, fn, ud);
    if (!r) {
        fail_without_req(c, fn, ud);
        return;
    }
    req_fail_later(c, r);
}

/* A view hands the request to the node connection serving its slot. Returns false when the
 * caller should fail it itself. */
static bool view_command(redis_client *v, int argc, const char **argv, const size_t *lens,
                         redis_reply_fn fn, void *ud)
{
    view_wait *w = v->state == ST_UP ? view_wait_new(v, fn, ud) : NULL;
    if (!w)
        return false;
    redis_client_command(v->node, argc, argv, lens, on_view_reply, w);
    return true;
}

static bool view_fcall(redis_client *v, const char *name, int nkeys, int argc, const char **argv,
                       const size_t *lens, redis_reply_fn fn, void *ud)
{
    view_wait *w = v->state == ST_UP ? view_wait_new(v, fn, ud) : NULL;
    if (!w)
        return false;
    redis_client_fcall(v->node, name, nkeys, argc, argv, lens, on_view_reply, w);
    return true;
}

void redis_client_command(redis_client *c, int argc, const char **argv, const size_t *lens,
                          redis_reply_fn fn, void *ud)
{
    if (c->cluster && view_command(c, argc, argv, lens, fn, ud))
        return;
    redis_req *r = req_new(c, fn, ud);
    if (!r) {
        log_error("out of memory", "conn=%s", c->name);
        fail_without_req(c, fn, ud);
        return;
    }
    if (c->state != ST_UP || req_send(c, r, argc, argv, lens) < 0)
        req_fail_later(c, r);
}

void redis_client_fcall(redis_client *c, const char *name, int nkeys, int argc, const char **argv,
                        const size_t *lens, redis_reply_fn fn, void *ud)
{
    if (c->cluster && view_fcall(c, name, nkeys, argc, argv, lens, fn, ud))
        return;
    redis_req *r = req_new(c, fn, ud);
    int total = argc + 3;
    size_t nlen = strlen(name);
    size_t bytes = (size_t)total * (sizeof(char *) + sizeof(size_t)) + nlen;
    for (int i = 0; i < argc; i++)
        bytes += lens[i];
    char *block = r ? malloc(bytes) : NULL;
    if (!block) {
        free(r);
        log_error("out of memory", "conn=%s", c->name);
        fail_without_req(c, fn, ud);
        return;
    }
    r->fcall = true;
    r->argc = total;
    r->argv = (const char **)(void *)block;
    r->lens = (size_t *)(void *)(block + (size_t)total * sizeof(char *));
    char *data = (char *)(r->lens + total);
    snprintf(r->numkeys, sizeof(r->numkeys), "%d", nkeys);
    r->argv[0] = "FCALL";
    r->lens[0] = 5;
    memcpy(data, name, nlen);
    r->argv[1] = data;
    r->lens[1] = nlen;
    data += nlen;
    r->argv[2] = r->numkeys;
    r->lens[2] = strlen(r->numkeys);
    for (int i = 0; i < argc; i++) {
        memcpy(data, argv[i], lens[i]);
        r->argv[3 + i] = data;
        r->lens[3 + i] = lens[i];
        data += lens[i];
    }
    if (!c->library) {
        log_error("no function library on this connection", "conn=%s function=%s", c->name, name);
        req_fail_later(c, r);
        return;
    }
    if (c->state != ST_UP || req_send(c, r, r->argc, r->argv, r->lens) < 0)
        req_fail_later(c, r);
}

/* ---- the event hooks hiredis calls (our libuv adapter) ---- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    redis_poll *p = h->data;
    /* libuv reports a socket error (a refused connect shows up as POLLERR) as a status with no
     * events, and stops the handle. Hand hiredis the events it was waiting for anyway: its read
     * or write then fails and it reports the error through the connect or disconnect callback,
     * which hiredis's own adapter never does. */
    if (status < 0) {
        events = p->events;
        p->polled = 0; /* libuv stopped the handle */
    }
    if (p->ac && (events & UV_READABLE)) {
        p->reading = true;
        redisAsyncHandleRead(p->ac);
        p->reading = false;
    }
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

/* hiredis asks for the write event with every command it queues and for the read event after
 * every write; restarting the handle costs two epoll_ctl calls each time (libuv takes the fd out
 * of epoll and puts it back), so only a change of events reaches libuv. */
static void poll_update(redis_poll *p)
{
    if (p->events == p->polled)
        return;
    p->polled = p->events;
    if (p->events)
        uv_poll_start(&p->h, p->events, on_poll);
    else
        uv_poll_stop(&p->h);
}

static void ev_add_read(void *data)
{
    redis_poll *p = data;
    p->events |= UV_READABLE;
    poll_update(p);
}

static void ev_del_read(void *data)
{
    redis_poll *p = data;
    p->events &= ~UV_READABLE;
    poll_update(p);
}

static void ev_add_write(void *data)
{
    redis_poll *p = data;
    p->events |= UV_WRITABLE;
    poll_update(p);
}

static void ev_del_write(void *data)
{
    redis_poll *p = data;
    p->events &= ~UV_WRITABLE;
    poll_update(p);
}

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void ev_cleanup(void *data)
{
    redis_poll *p = data;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->h, on_poll_closed);
}

/* ---- connection state ---- */

static void schedule_reconnect(redis_client *c)
{
    if (c->closing)
        return;
    uint32_t delay = c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    uv_timer_start(&c->reconnect, on_reconnect, delay, 0);
}

/* The current connection is gone (hiredis freed it or is freeing it). */
static void conn_lost(redis_client *c)
{
    bool was_up = c->state == ST_UP;
    if (was_up)
        c->down_ms = uv_now(c->loop);
    c->ac = NULL;
    c->state = ST_DOWN;
    c->gen++;
    stall_reset(&c->watch);
    c->ping_out = false;
    if (c->closing)
        return;
    if (was_up && c->down)
        c->down(c->ud);
    schedule_reconnect(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_client *c = ac->data;
    if (!c)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        log_warn("redis connect failed", "conn=%s err=\"%s\" retry_ms=%u", c->name,
                 ac->errstr ? ac->errstr : "unknown", c->backoff_ms);
        ((redisAsyncContext *)ac)->data = NULL;
        conn_lost(c);
        misdirect(c);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_client *c = ac->data;
    if (!c)
        return;
    log_warn("redis connection lost", "conn=%s err=\"%s\"", c->name,
             status == REDIS_OK ? "closed" : (ac->errstr ? ac->errstr : "unknown"));
    conn_lost(c);
}

/* Drop the current connection ourselves (stall, handshake failure). */
static void conn_drop(redis_client *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    log_warn("redis connection dropped", "conn=%s why=\"%s\" retry_ms=%u", c->name, why,
             c->backoff_ms);
    ac->data = NULL;
    /* Mark the connection lost before freeing: the NULL callbacks hiredis now runs may issue new
     * requests, which must fail rather than go to the dying context. Inside a reply callback
     * hiredis defers the free until the callback returns. */
    conn_lost(c);
    redisAsyncFree(ac);
}

static bool reply_ok(const redisReply *reply)
{
    return reply && reply->type != REDIS_REPLY_ERROR;
}

static void handshake_step(redis_client *c)
{
    if (--c->handshake_left > 0)
        return;
    c->state = ST_UP;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->last_ping = uv_now(c->loop);
    if (c->addr.path[0])
        log_info("redis connected", "conn=%s path=%s run_id=%s", c->name, c->addr.path, c->run_id);
    else
        log_info("redis connected", "conn=%s host=%s port=%d run_id=%s", c->name, c->addr.host,
                 c->addr.port, c->run_id);
    if (c->up)
        c->up(c->run_id, c->ud);
}

static void on_auth(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (!reply)
        return;
    if (!reply_ok(reply)) {
        log_error("redis refused AUTH or SELECT", "conn=%s err=\"%s\"", c->name,
                  reply->str ? reply->str : "");
        conn_drop(c, "handshake refused");
        return;
    }
    handshake_step(c);
}

static void on_role(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (!reply)
        return;
    const char *role = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                               reply->element[0]->type == REDIS_REPLY_STRING
                           ? reply->element[0]->str
                           : "unknown";
    if (strcmp(role, "master") != 0) {
        log_warn("redis node is not a primary", "conn=%s host=%s port=%d role=%s", c->name,
                 c->addr.host, c->addr.port, role);
        conn_drop(c, "not a primary");
        misdirect(c);
        return;
    }
    handshake_step(c);
}

static void on_info(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (!reply)
        return;
    if (reply->type != REDIS_REPLY_STRING) {
        conn_drop(c, "INFO failed");
        return;
    }
    c->run_id[0] = 0;
    const char *p = strstr(reply->str, "run_id:");
    if (p) {
        p += 7;
        size_t n = strcspn(p, "\r\n");
        if (n >= sizeof(c->run_id))
            n = sizeof(c->run_id) - 1;
        memcpy(c->run_id, p, n);
        c->run_id[n] = 0;
    }
    handshake_step(c);
}

/* A Redis that is still loading its data (after a restart, or a replica syncing) answers PING
 * with an error: it is not up until it serves what it holds. (INFO answers while loading.) */
static void on_handshake_ping(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (!reply)
        return;
    if (!reply_ok(reply)) {
        log_warn("redis is not serving yet", "conn=%s err=\"%s\"", c->name,
                 reply->str ? reply->str : "");
        conn_drop(c, "PING refused");
        return;
    }
    handshake_step(c);
}

static void on_library_load(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (!reply)
        return;
    if (reply->type != REDIS_REPLY_STRING) {
        log_error("redis function library load failed", "conn=%s err=\"%s\"", c->name,
                  reply->str ? reply->str : "");
        conn_drop(c, "FUNCTION LOAD failed");
        return;
    }
    handshake_step(c);
}

/* The library loaded again after a call found it gone: the call follows it. */
static void on_reload(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (reply && reply->type != REDIS_REPLY_STRING)
        log_error("redis function library load failed", "conn=%s err=\"%s\"", c->name,
                  reply->str ? reply->str : "");
    else if (reply)
        log_warn("redis function library was gone: loaded it again", "conn=%s", c->name);
}

static void on_ping(redis_client *c, const redisReply *reply, redis_req *r)
{
    (void)r;
    if (reply)
        c->ping_out = false;
}

static int send_internal(redis_client *c, req_internal_fn ifn, int argc, const char **argv,
                         const size_t *lens)
{
    redis_req *r = req_new(c, NULL, NULL);
    if (!r)
        return -1;
    r->ifn = ifn;
    if (req_send(c, r, argc, argv, lens) < 0) {
        req_free(r);
        return -1;
    }
    return 0;
}

/* Queue the handshake right behind the connect: hiredis sends it once the socket is up, and the
 * client reports itself up after its last reply. */
static int handshake_send(redis_client *c)
{
    c->handshake_left = 0;
    int rc = 0;
    if (c->addr.password[0]) {
        const char *argv[] = {"AUTH", c->addr.password};
        size_t lens[] = {4, strlen(c->addr.password)};
        rc |= send_internal(c, on_auth, 2, argv, lens);
        c->handshake_left++;
    }
    if (c->addr.db >= 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", c->addr.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, strlen(db)};
        rc |= send_internal(c, on_auth, 2, argv, lens);
        c->handshake_left++;
    }
    if (c->primary_only) {
        const char *argv[] = {"ROLE"};
        size_t lens[] = {4};
        rc |= send_internal(c, on_role, 1, argv, lens);
        c->handshake_left++;
    }
    {
        const char *argv[] = {"INFO", "server"};
        size_t lens[] = {4, 6};
        rc |= send_internal(c, on_info, 2, argv, lens);
        c->handshake_left++;
    }
    {
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        rc |= send_internal(c, on_handshake_ping, 1, argv, lens);
        c->handshake_left++;
    }
    if (c->library) {
        rc |= library_load(c, on_library_load);
        c->handshake_left++;
    }
    return rc;
}

/* Ask `locate` where to go. Returns 0, or -1 when it does not know yet. */
static int conn_locate(redis_client *c)
{
    char host[ADDR_HOST_MAX];
    uint16_t port = 0;
    if (c->locate(host, &port, c->ud) < 0) {
        /* The usual first answer (nobody has asked the sentinels yet): whoever answers
         * `locate` logs why it cannot. */
        log_debug("redis address not known yet", "conn=%s retry_ms=%u", c->name, c->backoff_ms);
        return -1;
    }
    snprintf(c->addr.host, sizeof(c->addr.host), "%s", host);
    c->addr.port = port;
    c->addr.path[0] = '\0';
    return 0;
}

static void conn_start(redis_client *c)
{
    if (c->closing || c->ac)
        return;
    if (c->locate && conn_locate(c) < 0) {
        schedule_reconnect(c);
        return;
    }
    redisAsyncContext *ac = c->addr.path[0] ? redisAsyncConnectUnix(c->addr.path)
                                            : redisAsyncConnect(c->addr.host, c->addr.port);
    if (!ac) {
        log_error("redis connect failed", "conn=%s err=\"out of memory\"", c->name);
        schedule_reconnect(c);
        return;
    }
    if (ac->err) {
        log_warn("redis connect failed", "conn=%s err=\"%s\" retry_ms=%u", c->name, ac->errstr,
                 c->backoff_ms);
        redisAsyncFree(ac);
        schedule_reconnect(c);
        misdirect(c);
        return;
    }
    redis_poll *p = calloc(1, sizeof(*p));
    int err = p ? uv_poll_init(c->loop, &p->h, ac->c.fd) : UV_ENOMEM;
    if (err < 0) {
        /* No hooks are installed yet, so hiredis closes the socket without calling us. */
        log_error("redis connect failed", "conn=%s err=\"%s\"", c->name, uv_strerror(err));
        free(p);
        redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    p->h.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->data = c;
    c->ac = ac;
    c->state = ST_CONNECTING;
    c->gen++;
    stall_reset(&c->watch);
    c->ping_out = false;
    /* Setting the connect callback arms the write event that completes the connect. */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (handshake_send(c) < 0)
        conn_drop(c, "handshake could not be queued");
}

static void on_reconnect(uv_timer_t *t)
{
    redis_client *c = t->data;
    if (c->cluster)
        redis_client_view_update(c);
    else
        conn_start(c);
}

static void on_supervise(uv_timer_t *t)
{
    redis_client *c = t->data;
    if (!c->ac)
        return;
    uint64_t now = uv_now(c->loop);
    if (stall_check(&c->watch, now, SUPERVISE_MS)) {
        bool connecting = c->state != ST_UP;
        conn_drop(c, connecting ? "connect timed out" : "no reply in time");
        if (connecting)
            misdirect(c);
        return;
    }
    if (c->state == ST_UP && c->ping_ms && !c->ping_out && now - c->last_ping >= c->ping_ms) {
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        c->last_ping = now;
        if (send_internal(c, on_ping, 1, argv, lens) == 0)
            c->ping_out = true;
    }
}

/* ---- lifecycle ---- */

static void on_handle_closed(uv_handle_t *h)
{
    redis_client *c = h->data;
    if (--c->open_handles > 0)
        return;
    void (*closed)(void *) = c->closed;
    void *ud = c->closed_ud;
    free(c);
    if (closed)
        closed(ud);
}

redis_client *redis_client_new(uv_loop_t *loop, const redis_client_cfg *cfg)
{
    redis_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    snprintf(c->name, sizeof(c->name), "%s", cfg->name ? cfg->name : "redis");
    if (cfg->addr)
        c->addr = *cfg->addr;
    else
        c->addr.db = -1; /* a cluster view: the node connections have theirs */
    c->library = cfg->library;
    c->ping_ms = cfg->ping_ms;
    uint32_t stall_ms = cfg->stall_ms ? cfg->stall_ms : 3000;
    stall_init(&c->watch, stall_ms, cfg->stall_max_ms ? cfg->stall_max_ms : 10 * stall_ms,
               uv_now(loop));
    c->up = cfg->up;
    c->down = cfg->down;
    c->locate = cfg->locate;
    c->misdirected = cfg->misdirected;
    c->primary_only = cfg->primary_only;
    c->cluster_node = cfg->cluster_node;
    c->cluster = cfg->cluster;
    c->slot = cfg->slot;
    c->ud = cfg->ud;
    if (c->cluster && rc_view_add(c->cluster, c) < 0) {
        free(c);
        return NULL;
    }
    c->backoff_ms = BACKOFF_MIN_MS;
    c->down_ms = uv_now(loop);
    uv_timer_t *timers[] = {&c->supervise, &c->reconnect, &c->defer};
    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = c;
        c->open_handles++;
    }
    later_init(&c->unqueued, loop, c, "redis client");
    c->open_handles++;
    uv_timer_start(&c->supervise, on_supervise, SUPERVISE_MS, SUPERVISE_MS);
    uv_timer_start(&c->reconnect, on_reconnect, 0, 0);
    return c;
}

void redis_client_free(redis_client *c, void (*closed)(void *ud), void *ud)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->closed = closed;
    c->closed_ud = ud;
    c->up = NULL;
    c->down = NULL;
    c->misdirected = NULL;
    if (c->cluster) {
        rc_view_remove(c->cluster, c);
        view_fail_all(c);
    }
    redisAsyncContext *ac = c->ac;
    if (ac) {
        ac->data = NULL;
        conn_lost(c);
        redisAsyncFree(ac);
    }
    flush_failed(c);
    uv_close((uv_handle_t *)&c->supervise, on_handle_closed);
    uv_close((uv_handle_t *)&c->reconnect, on_handle_closed);
    uv_close((uv_handle_t *)&c->defer, on_handle_closed);
    later_close(&c->unqueued, on_handle_closed);
}

bool redis_client_ready(const redis_client *c)
{
    return c->state == ST_UP;
}

const char *redis_client_run_id(const redis_client *c)
{
    return c->run_id;
}

const char *redis_client_host(const redis_client *c)
{
    if (c->cluster)
        return c->node ? redis_client_host(c->node) : "";
    return c->addr.path[0] ? c->addr.path : c->addr.host;
}

uint16_t redis_client_port(const redis_client *c)
{
    if (c->cluster)
        return c->node ? redis_client_port(c->node) : 0;
    return c->addr.port;
}

void redis_client_retarget(redis_client *c, const char *why)
{
    if (c->closing)
        return;
    if (c->cluster) {
        redis_client_view_update(c);
        return;
    }
    char host[ADDR_HOST_MAX];
    uint16_t port = 0;
    if (c->ac && c->locate && c->locate(host, &port, c->ud) == 0 && port == c->addr.port &&
        strcmp(host, c->addr.host) == 0)
        return;
    if (c->ac)
        conn_drop(c, why);
    /* Now rather than after the backoff: the new address is expected to work. */
    c->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_start(&c->reconnect, on_reconnect, 0, 0);
}

void redis_client_subscribe(redis_client *c, const char *channel, redis_reply_fn fn, void *ud)
{
    redis_req *r = req_new(c, fn, ud);
    if (!r) {
        log_error("out of memory", "conn=%s", c->name);
        fail_without_req(c, fn, ud);
        return;
    }
    r->persistent = true;
    if (c->cluster) {
        /* A subscription needs a connection of its own. */
        req_fail_later(c, r);
        return;
    }
    const char *argv[] = {"SUBSCRIBE", channel};
    size_t lens[] = {9, strlen(channel)};
    if (c->state != ST_UP || req_send(c, r, 2, argv, lens) < 0)
        req_fail_later(c, r);
}

void redis_client_flush(redis_client *c)
{
    if (c->cluster && c->node && c->state == ST_UP)
        c = c->node; /* a view sends on its node's connection */
    /* Not from inside a reply of the same connection: a failed write frees the context in
     * hiredis, under the reader that is using it. Its write goes out when the reader is done. */
    if (c->state != ST_UP || !c->ac)
        return;
    redis_poll *p = c->ac->ev.data;
    if (p && !p->reading)
        redisAsyncHandleWrite(c->ac);
}

uint64_t redis_client_backlog_ms(const redis_client *c)
{
    if (c->cluster && c->node && c->state == ST_UP)
        return redis_client_backlog_ms(c->node); /* a view sends on its node's connection */
    uint64_t now = uv_now(c->loop);
    if (c->state != ST_UP)
        return now - c->down_ms;
    return c->watch.pending > 0 && now > c->oldest_ms ? now - c->oldest_ms : 0;
}
