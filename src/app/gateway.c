/* The presence gateway: Socket.IO in, store operations out. Every decision is the policy's
 * (src/core/policy*.c); this file carries them out: it calls the store, answers with acks, keeps
 * the local groups that fan-out (gateway_fanout.c) uses, and counts.
 */
#include "gateway_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/json.h"
#include "presenced/core/metrics_def.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"

/* ---- clocks ---- */

/* Rates measure intervals, which must not jump with the wall clock; token dates are wall-clock
 * seconds (RFC 7519 §2 NumericDate). */
static policy_now clock_now(void)
{
    return (policy_now){.ms = host_mono_ms(), .wall_s = host_wall_s()};
}

/* ---- replies ---- */

void gw_ack_json(sio_sock *s, int64_t ack_id, cJSON *reply)
{
    if (ack_id == SIO_NO_ACK || !reply) {
        cJSON_Delete(reply);
        return;
    }
    cJSON *args = cJSON_CreateArray();
    if (args && cJSON_AddItemToArray(args, reply))
        sio_ack(s, ack_id, args, NULL);
    else
        cJSON_Delete(reply);
    cJSON_Delete(args);
}

cJSON *gw_reply_ok(void)
{
    cJSON *r = cJSON_CreateObject();
    if (r && !cJSON_AddTrueToObject(r, "ok")) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

/* {"ok": false, "error": {code, message}}: `code` is a client error code (docs/protocol.md). */
void gw_ack_error_code(sio_sock *s, int64_t ack_id, const char *code, const char *message)
{
    if (ack_id == SIO_NO_ACK)
        return;
    cJSON *r = cJSON_CreateObject();
    cJSON *e = r && cJSON_AddFalseToObject(r, "ok") ? cJSON_AddObjectToObject(r, "error") : NULL;
    if (e && cJSON_AddStringToObject(e, "code", code) &&
        cJSON_AddStringToObject(e, "message", message)) {
        gw_ack_json(s, ack_id, r);
        return;
    }
    cJSON_Delete(r);
}

void gw_ack_error(sio_sock *s, int64_t ack_id, policy_code code, const char *message)
{
    gw_ack_error_code(s, ack_id, policy_code_name(code), message);
}

/* Answer with a reply that was built piece by piece: `complete` is false when a piece could not be
 * allocated, and the client then gets an error instead of a partial answer. */
void gw_ack_built(sio_sock *s, int64_t ack_id, cJSON *reply, bool complete)
{
    if (complete) {
        gw_ack_json(s, ack_id, reply);
        return;
    }
    cJSON_Delete(reply);
    gw_ack_error(s, ack_id, POLICY_E_INTERNAL, "out of memory");
}

void gw_ack_store_error(sio_sock *s, int64_t ack_id, int err)
{
    gw_ack_error_code(s, ack_id, pres_err_code(err), store_strerror(err));
}

/* ---- sockets and groups ---- */

gw_sock *gw_sock_find(gateway *gw, const char *sid)
{
    return map_get(&gw->socks, sid, strlen(sid));
}

void gateway_group_name(char *out, size_t cap, char kind, const char *name)
{
    snprintf(out, cap, "%c:%s", kind, name);
}

int gw_group_join(sio_sock *s, char kind, const char *name)
{
    char group[GROUP_MAX];
    gateway_group_name(group, sizeof(group), kind, name);
    return sio_group_join(s, group);
}

void gw_group_leave(sio_sock *s, char kind, const char *name)
{
    char group[GROUP_MAX];
    gateway_group_name(group, sizeof(group), kind, name);
    sio_group_leave(s, group);
}

/* The sockets that hear broadcasts: the namespace, or only the identified sockets. */
const char *gateway_readers_group(const gateway *gw)
{
    return policy_readers_identified_only(gw->pol) ? READERS_GROUP : NULL;
}

static void gw_sock_free(gateway *gw, gw_sock *g)
{
    map_del(&gw->socks, g->sid, strlen(g->sid));
    sio_sock_set_data(g->sock, NULL);
    policy_sock_free(gw->pol, g->ps);
    free(g);
}

/* The policy's state of a connection, made with its first socket and freed with it. */
static policy_conn *conn_state(gateway *gw, sio_conn *c)
{
    policy_conn *pc = sio_conn_data(c);
    if (pc)
        return pc;
    char addr[SIO_PEER_MAX];
    sio_conn_peer(c, addr);
    if ((pc = policy_conn_new(gw->pol, addr)))
        sio_conn_set_data(c, pc);
    return pc;
}

static void on_conn_close(sio_conn *c, void *ud)
{
    gateway *gw = ud;
    policy_conn_free(gw->pol, sio_conn_data(c));
    sio_conn_set_data(c, NULL);
}

/* ---- store requests ---- */

gw_req *gw_req_new(gateway *gw, policy_act act, const gw_sock *g, int64_t ack_id, const char *arg)
{
    gw_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->gw = gw;
    r->act = act;
    r->ack_id = ack_id;
    memcpy(r->sid, g->sid, sizeof(r->sid));
    if (arg && !(r->arg = strdup(arg))) {
        free(r);
        return NULL;
    }
    return r;
}

void gw_req_free(gw_req *r)
{
    free(r->arg);
    free(r->metadata);
    free(r->cursor);
    free(r);
}

/* The command did not take effect: undo what was done locally. A join takes the socket out of
 * the room only if it put it there: a socket already in the room stays (its first join
 * succeeded, and the client was told so). */
static void undo(gateway *gw, gw_sock *g, const policy_decision *d)
{
    if (d->act == POLICY_ACT_JOIN && d->joined)
        gw_group_leave(g->sock, ROOM_GROUP, d->room);
    if (d->act == POLICY_ACT_OPEN && !d->at_connect && gateway_readers_group(gw))
        sio_group_leave(g->sock, READERS_GROUP);
    policy_undo(gw->pol, g->ps, d);
}

/* The registration of a socket identified at connect is done (or failed: the socket is then
 * registered by the next reconciliation, as any socket the store lost): the client may now be
 * told it is connected. */
static void release(gw_req *r, gw_sock *g)
{
    if (r->act == POLICY_ACT_OPEN && r->at_connect && sio_sock_release(g->sock) < 0)
        sio_sock_disconnect(g->sock, "out of memory");
}

static void on_done(int err, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (err && err != STORE_ERR_SHUTDOWN)
        log_debug("store operation failed", "act=%d err=\"%s\"", (int)r->act, store_strerror(err));
    if (!g || r->act == POLICY_ACT_NONE) {
        gw_req_free(r);
        return;
    }
    if (err != STORE_OK) {
        policy_decision d = {
            .act = r->act, .at_connect = r->at_connect, .joined = r->joined, .room = r->arg};
        undo(r->gw, g, &d);
        gw_ack_store_error(g->sock, r->ack_id, err);
        release(r, g);
        gw_req_free(r);
        return;
    }
    /* Remembered only once the store accepted it: reconciling with a status the store refused
     * would make the retried command change nothing. */
    if (r->act == POLICY_ACT_STATUS && policy_sock_status_set(g->ps, r->arg, r->metadata) < 0)
        log_warn("out of memory remembering a status", NULL);
    cJSON *reply = gw_reply_ok();
    if (reply && r->arg && (r->act == POLICY_ACT_JOIN || r->act == POLICY_ACT_LEAVE))
        cJSON_AddStringToObject(reply, "room", r->arg);
    gw_ack_json(g->sock, r->ack_id, reply);
    release(r, g);
    gw_req_free(r);
}

static void store_quietly(gateway *gw, gw_sock *g, int (*op)(gateway *, gw_sock *, gw_req *))
{
    gw_req *r = gw_req_new(gw, POLICY_ACT_NONE, g, SIO_NO_ACK, NULL);
    if (r)
        op(gw, g, r);
}

static int touch_op(gateway *gw, gw_sock *g, gw_req *r)
{
    store_touch(gw->st, g->sid, on_done, r);
    return 0;
}

/* ---- counting ---- */

static void count(gateway *gw, const gw_sock *g, const policy_decision *d)
{
    for (int i = 0; i < 2; i++) {
        if (d->limits[i])
            metrics_add(gw->limit_hits, d->limits[i], 1);
        if (d->auth_results[i])
            metrics_add(gw->auth_results, d->auth_results[i], 1);
    }
    if (d->auth_error)
        log_debug("token refused", "err=\"%s\"", jwt_strerror(d->auth_error));
    if (d->act == POLICY_ACT_CLOSE)
        log_info("closing a connection that ignores the rate limit", "sid=%s", g->sid);
}

/* ---- carrying out decisions ---- */

static void answer(gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    if (!d->answer)
        return;
    if (d->code != POLICY_OK)
        return gw_ack_error(g->sock, ack_id, d->code, d->message);
    gw_ack_json(g->sock, ack_id, gw_reply_ok());
}

static void undo_decision(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    undo(gw, g, d);
    if (d->answer)
        gw_ack_error(g->sock, ack_id, POLICY_E_INTERNAL, "out of memory");
}

static int open_socket(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    if (gateway_readers_group(gw) && sio_group_join(g->sock, READERS_GROUP) < 0)
        return -1;
    gw_req *r = gw_req_new(gw, POLICY_ACT_OPEN, g, ack_id, NULL);
    if (!r)
        return -1;
    r->at_connect = d->at_connect;
    store_socket_open(gw->st, g->sid, policy_sock_user(g->ps), policy_sock_asked_status(g->ps),
                      policy_sock_metadata(g->ps), on_done, r);
    return 0;
}

/* The store's part of a command that changes presence; on_done answers. Returns 0 or -1. */
static int change(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    const char *arg = d->act == POLICY_ACT_STATUS ? d->status : d->room;
    gw_req *r = gw_req_new(gw, d->act, g, ack_id, arg);
    if (!r || (d->metadata && !(r->metadata = strdup(d->metadata)))) {
        if (r)
            gw_req_free(r);
        return -1;
    }
    r->joined = d->joined;
    switch (d->act) {
    case POLICY_ACT_TOUCH:
        store_touch(gw->st, g->sid, on_done, r);
        break;
    case POLICY_ACT_JOIN:
        store_room_join(gw->st, g->sid, d->room, on_done, r);
        break;
    case POLICY_ACT_LEAVE:
        store_room_leave(gw->st, g->sid, d->room, on_done, r);
        break;
    default:
        store_status_set(gw->st, g->sid, d->status, d->metadata, on_done, r);
        break;
    }
    return 0;
}

/* Local groups follow subscriptions at once; a group that cannot be joined (memory) takes the
 * rest of the command's subscriptions back. */
static int subscribe(gateway *gw, gw_sock *g, const policy_decision *d, bool sub)
{
    for (size_t i = 0; i < d->nids; i++) {
        if (!sub) {
            gw_group_leave(g->sock, SUB_GROUP, d->ids[i]);
        } else if (gw_group_join(g->sock, SUB_GROUP, d->ids[i]) < 0) {
            policy_decision rest = {.act = d->act, .ids = d->ids + i, .nids = d->nids - i};
            policy_undo(gw->pol, g->ps, &rest);
            return -1;
        }
    }
    return 0;
}

/* A refreshed token allows fewer rooms: leave them as presence:room:leave would. */
static void leave_rooms(gateway *gw, gw_sock *g, const policy_decision *d)
{
    for (size_t i = 0; i < d->nids; i++) {
        gw_group_leave(g->sock, ROOM_GROUP, d->ids[i]);
        gw_req *r = gw_req_new(gw, POLICY_ACT_NONE, g, SIO_NO_ACK, NULL);
        if (r)
            store_room_leave(gw->st, g->sid, d->ids[i], on_done, r);
    }
}

static void carry_out(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    int rc = 0;
    switch (d->act) {
    case POLICY_ACT_CLOSE:
        sio_sock_disconnect(g->sock, "rate limit abuse");
        return;
    case POLICY_ACT_NONE:
        return answer(g, d, ack_id);
    case POLICY_ACT_OPEN:
        rc = open_socket(gw, g, d, ack_id);
        break;
    case POLICY_ACT_JOIN:
        /* The local group changes now, so that the socket hears its own join (and not its own
         * leave) whichever store delivers the event, and whenever. */
        /* A socket watching the room gets its changes as diffs, not as single events. */
        rc = !watch_has_room(gw->watch, g->sid, d->room) &&
                     gw_group_join(g->sock, ROOM_GROUP, d->room) < 0
                 ? -1
                 : change(gw, g, d, ack_id);
        break;
    case POLICY_ACT_LEAVE:
        gw_group_leave(g->sock, ROOM_GROUP, d->room);
        rc = change(gw, g, d, ack_id);
        break;
    case POLICY_ACT_TOUCH:
    case POLICY_ACT_STATUS:
        rc = change(gw, g, d, ack_id);
        break;
    case POLICY_ACT_SUBSCRIBE:
    case POLICY_ACT_UNSUBSCRIBE:
        if ((rc = subscribe(gw, g, d, d->act == POLICY_ACT_SUBSCRIBE)) == 0)
            answer(g, d, ack_id);
        break;
    case POLICY_ACT_QUERY:
    case POLICY_ACT_ROOM_PAGE:
        rc = gateway_query(gw, g, d, ack_id);
        break;
    case POLICY_ACT_REFRESH:
        leave_rooms(gw, g, d);
        answer(g, d, ack_id);
        break;
    case POLICY_ACT_SYNC:
        rc = gateway_sync(gw, g, d, ack_id);
        break;
    case POLICY_ACT_UNSYNC:
        rc = gateway_unsync(gw, g, d, ack_id);
        break;
    }
    if (rc < 0)
        return undo_decision(gw, g, d, ack_id);
    if (d->touch)
        store_quietly(gw, g, touch_op);
}

/* ---- Socket.IO hooks ---- */

static gw_sock *gw_sock_new(gateway *gw, sio_sock *s)
{
    policy_conn *pc = conn_state(gw, sio_sock_conn(s));
    gw_sock *g = pc ? calloc(1, sizeof(*g)) : NULL;
    if (!g)
        return NULL;
    snprintf(g->sid, sizeof(g->sid), "%s", sio_sock_id(s));
    g->gw = gw;
    g->sock = s;
    if (!(g->ps = policy_sock_new(gw->pol, pc, g)) ||
        map_put(&gw->socks, g->sid, strlen(g->sid), g) < 0) {
        policy_sock_free(gw->pol, g->ps);
        free(g);
        return NULL;
    }
    sio_sock_set_data(s, g);
    return g;
}

static int on_connect(sio_sock *s, cJSON *auth, const char **reject, void *ud)
{
    gateway *gw = ud;
    gw_sock *g = gw_sock_new(gw, s);
    if (!g) {
        *reject = "out of memory";
        return -1;
    }
    policy_decision d;
    policy_connect(gw->pol, g->ps, auth, clock_now(), &d);
    count(gw, g, &d);
    int rc = 0;
    if (d.act == POLICY_ACT_CLOSE) {
        sio_sock_disconnect(s, "rate limit abuse");
        rc = -1;
    } else if (d.code != POLICY_OK) {
        snprintf(gw->reject, sizeof(gw->reject), "%s", d.message);
        *reject = gw->reject;
        rc = -1;
    }
    policy_decision_deinit(&d);
    /* An identity from the handshake is registered with the store before the CONNECT reply
     * goes out (release()): a client told it is connected is online on every instance, so a
     * tab that opens before another closes never lets its user be seen offline. */
    if (rc == 0 && policy_sock_user(g->ps)) {
        policy_decision open = {.act = POLICY_ACT_OPEN, .at_connect = true};
        if (open_socket(gw, g, &open, SIO_NO_ACK) < 0) {
            *reject = "out of memory";
            rc = -1;
        } else {
            rc = SIO_CONNECT_HOLD;
        }
    }
    /* A refused socket never becomes connected: its state goes now (no disconnect hook). */
    if (rc < 0)
        gw_sock_free(gw, g);
    return rc;
}

static void on_disconnect(sio_sock *s, const char *reason, void *ud)
{
    gateway *gw = ud;
    gw_sock *g = sio_sock_data(s);
    if (!g)
        return;
    if (reason && strcmp(reason, SIO_REASON_CLIENT) == 0) {
        policy_decision d;
        policy_disconnect(gw->pol, g->ps, clock_now(), &d);
        count(gw, g, &d);
        if (d.act == POLICY_ACT_CLOSE)
            sio_sock_disconnect(s, "rate limit abuse");
    }
    if (policy_sock_user(g->ps)) {
        gw_req *r = gw_req_new(gw, POLICY_ACT_NONE, g, SIO_NO_ACK, NULL);
        if (r)
            store_socket_close(gw->st, g->sid, policy_close_graceful(g->ps), on_done, r);
    }
    watch_socket_gone(gw->watch, g->sid);
    gw_sock_free(gw, g);
}

static void on_command(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                       int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)bin;
    gw_sock *g = sio_sock_data(s);
    if (!g)
        return;
    policy_decision d;
    policy_command(gw->pol, g->ps, event, args, clock_now(), &d);
    count(gw, g, &d);
    carry_out(gw, g, &d, ack_id);
    policy_decision_deinit(&d);
}

/* Events without a handler are commands the policy does not know; acks nobody waits for are
 * messages all the same: both count against the connection's rate. */
static void on_unhandled(sio_sock *s, const char *event, cJSON *args, int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    if (event)
        return on_command(s, event, args, NULL, ack_id, ud);
    gw_sock *g = sio_sock_data(s);
    if (!g)
        return;
    policy_decision d;
    policy_message(gw->pol, conn_state(gw, sio_sock_conn(s)), clock_now(), &d);
    count(gw, g, &d);
    if (d.act == POLICY_ACT_CLOSE)
        sio_sock_disconnect(s, "rate limit abuse");
}

/* The store reconciles (docs/presence-model.md, "Reconciliation"): hand it every identified
 * socket, with the rooms the policy holds for it and its user's status and metadata: as the
 * store last announced them, else as the socket set them. */
static void on_reconcile(store_truth *t, void *ud)
{
    gateway *gw = ud;
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&gw->socks, &pos))) {
        gw_sock *g = slot->value;
        const char *user = policy_sock_user(g->ps);
        if (!user)
            continue;
        size_t nrooms;
        const char *const *rooms = policy_sock_rooms(g->ps, &nrooms);
        const char *status = policy_sock_status(g->ps), *metadata = policy_sock_metadata(g->ps);
        policy_user_announced(gw->pol, user, &status, &metadata);
        if (store_truth_add(t, g->sid, user, status, metadata, rooms, nrooms) < 0)
            return;
    }
}

static void on_availability(bool available, void *ud)
{
    gateway *gw = ud;
    if (available) {
        log_info("store available", NULL);
        /* Events may have been lost meanwhile: views take new snapshots. */
        watch_resync(gw->watch);
    } else {
        log_warn("store unavailable", NULL);
    }
}

/* ---- lifecycle ---- */

gateway *gateway_new(sio_server *sio, const gateway_opts *opts)
{
    gateway *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return NULL;
    gw->sio = sio;
    gw->pol = opts->policy;
    gw->events_in = metrics_def_get(opts->metrics, METRIC_EVENTS_IN);
    gw->events_out = metrics_def_get(opts->metrics, METRIC_EVENTS_OUT);
    gw->auth_results = metrics_def_get(opts->metrics, METRIC_AUTH_TOKENS);
    gw->limit_hits = metrics_def_get(opts->metrics, METRIC_LIMIT_HITS);
    map_init(&gw->socks, host_seed());
    if (!(gw->watch = watch_new(opts->loop, sio, NSP, host_seed()))) {
        gateway_free(gw);
        return NULL;
    }
    for (int i = 0; i < POLICY_CMD_UNKNOWN; i++)
        if (sio_server_on(sio, policy_cmd_name((policy_cmd)i), on_command, gw) < 0) {
            gateway_free(gw);
            return NULL;
        }
    sio_server_on_unhandled(sio, on_unhandled, gw);
    sio_server_on_conn_close(sio, on_conn_close, gw);
    sio_server_on_connect(sio, on_connect, gw);
    sio_server_on_disconnect(sio, on_disconnect, gw);
    return gw;
}

store_hooks gateway_store_hooks(gateway *gw)
{
    return (store_hooks){.event = gateway_on_event,
                         .reconcile = on_reconcile,
                         .availability = on_availability,
                         .ud = gw};
}

void gateway_attach_store(gateway *gw, store *st)
{
    gw->st = st;
}

uint32_t gateway_sockets(const gateway *gw)
{
    return policy_sockets(gw->pol);
}

uint32_t gateway_users(const gateway *gw)
{
    return policy_users(gw->pol);
}

static void on_expired(policy_sock *ps, void *ud)
{
    gateway *gw = ud;
    gw_sock *g = policy_sock_owner(ps);
    sio_sock_disconnect(g->sock, "token expired");
    metrics_add(gw->auth_results, "expired_disconnect", 1);
    log_info("disconnected a socket whose token expired", "sid=%s", g->sid);
}

void gateway_tick(gateway *gw)
{
    /* Closing runs the disconnect hook later, from the loop, so the policy's tables are stable
     * while it walks them. */
    policy_tick(gw->pol, clock_now(), on_expired, gw);
}

void gateway_shutdown(gateway *gw)
{
    if (gw)
        watch_shutdown(gw->watch);
}

void gateway_free(gateway *gw)
{
    if (!gw)
        return;
    watch_free(gw->watch);
    map_deinit(&gw->socks);
    free(gw);
}
