/* The presence gateway: Socket.IO commands in, store operations out, presence events fanned out
 * to local sockets. Identity is decided once per socket (identify_socket) and every command is
 * checked against it, so a socket can never act for another user.
 */
#include "presenced/app/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/vec.h"
#include "presenced/core/metrics_def.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "presenced/core/map.h"
#include "presenced/codec/pres_cmd.h"
#include "presenced/app/watch.h"

#define NSP "/"
#define ROOM_GROUP 'r' /* group "r:<room>": the local sockets in a room */
#define SUB_GROUP 's'  /* group "s:<user>": the local sockets subscribed to a user */
/* A socket refused more than rate_burst commands within this window is abusive: it is closed. */
#define RATE_ABUSE_WINDOW_MS 10000

typedef struct gw_sock {
    gateway *gw;
    char sid[SIO_ID_LEN + 1];
    sio_sock *sock;
    char *user; /* NULL until identified */
    char *metadata;
    char status[PRES_STATUS_MAX + 1];
    char **rooms; /* rooms joined, mirrored for re-assertion */
    size_t nrooms, caprooms;
    bool kicked;       /* closed by POST /v1/users/{id}/disconnect: no offline grace */
    bool closing;      /* closed by the gateway (expired token, abuse): commands are ignored */
    jwt_claims claims; /* auth=jwt: the claims of the token in force (rooms, exp) */
    int64_t exp_s;     /* auth=jwt: when the token expires (0: no token) */
    uint32_t nsubs;    /* users subscribed to */
    double tokens;     /* rate limit: commands that may be sent now */
    uint64_t refill_ms;
    uint32_t rejected; /* commands refused for rate within the current abuse window */
    uint64_t reject_window_ms;
} gw_sock;

struct gateway {
    sio_server *sio;
    store *st;
    gateway_opts opts;
    map socks; /* sid -> gw_sock */
    map users; /* user id -> number of identified local sockets (for /metrics and /v1/stats) */
    uint32_t identified;
    metrics_family *events_in, *events_out;
    metrics_family *auth_results; /* token checks, by result */
    metrics_family *limit_hits;   /* refusals by a limit, by limit */
    jwt_key *key;                 /* auth=jwt; NULL refuses every token */
    watch *watch;                 /* the views sockets watch (presence:sync) */
    char audience[256], issuer[256];
};

/* ---- clocks ---- */

/* Token dates are wall-clock seconds since the epoch (RFC 7519 §2 NumericDate). */
/* ---- replies ---- */

static void ack_json(sio_sock *s, int64_t ack_id, cJSON *reply)
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

static cJSON *reply_ok(void)
{
    cJSON *r = cJSON_CreateObject();
    if (r && !cJSON_AddTrueToObject(r, "ok")) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

static void ack_error(sio_sock *s, int64_t ack_id, const char *code, const char *message)
{
    if (ack_id == SIO_NO_ACK)
        return;
    cJSON *r = cJSON_CreateObject();
    cJSON *e = r && cJSON_AddFalseToObject(r, "ok") ? cJSON_AddObjectToObject(r, "error") : NULL;
    if (e && cJSON_AddStringToObject(e, "code", code) &&
        cJSON_AddStringToObject(e, "message", message)) {
        ack_json(s, ack_id, r);
        return;
    }
    cJSON_Delete(r);
}

/* Answer with a reply that was built piece by piece: `complete` is false when a piece could not be
 * allocated, and the client then gets an error instead of a partial answer. */
static void ack_built(sio_sock *s, int64_t ack_id, cJSON *reply, bool complete)
{
    if (complete) {
        ack_json(s, ack_id, reply);
        return;
    }
    cJSON_Delete(reply);
    ack_error(s, ack_id, "internal", "out of memory");
}

static void ack_ok(sio_sock *s, int64_t ack_id)
{
    ack_json(s, ack_id, reply_ok());
}

static void ack_store_error(sio_sock *s, int64_t ack_id, int err)
{
    ack_error(s, ack_id, pres_err_code(err), store_strerror(err));
}

/* ---- sockets ---- */

static gw_sock *gw_sock_find(gateway *gw, const char *sid)
{
    return map_get(&gw->socks, sid, strlen(sid));
}

static void group_name(char *out, size_t cap, char kind, const char *name)
{
    snprintf(out, cap, "%c:%s", kind, name);
}

#define GROUP_MAX (PRES_ID_MAX + 3)

static bool gw_sock_has_room(const gw_sock *g, const char *room)
{
    for (size_t i = 0; i < g->nrooms; i++)
        if (strcmp(g->rooms[i], room) == 0)
            return true;
    return false;
}

static int gw_sock_add_room(gw_sock *g, const char *room)
{
    if (gw_sock_has_room(g, room))
        return 0;
    if (VEC_RESERVE(g->rooms, g->nrooms, g->caprooms, 4) < 0)
        return -1;
    if (!(g->rooms[g->nrooms] = strdup(room)))
        return -1;
    g->nrooms++;
    return 0;
}

static void gw_sock_remove_room(gw_sock *g, const char *room)
{
    for (size_t i = 0; i < g->nrooms; i++)
        if (strcmp(g->rooms[i], room) == 0) {
            free(g->rooms[i]);
            g->rooms[i] = g->rooms[--g->nrooms];
            return;
        }
}

static void gw_sock_free(gw_sock *g)
{
    for (size_t i = 0; i < g->nrooms; i++)
        free(g->rooms[i]);
    free(g->rooms);
    free(g->user);
    free(g->metadata);
    jwt_claims_deinit(&g->claims);
    free(g);
}

/* ---- store requests ---- */

typedef enum gw_op {
    OP_OPEN,
    OP_IDENTIFY,
    OP_TOUCH,
    OP_JOIN,
    OP_LEAVE,
    OP_STATUS,
    OP_QUERY,
    OP_ROOM_QUERY,
    OP_SYNC,
    OP_QUIET, /* fire and forget */
} gw_op;

/* One store call in flight. It names its socket by id: the socket may be gone when the store
 * answers, and then there is nobody to answer. */
typedef struct gw_req {
    gateway *gw;
    gw_op op;
    char sid[SIO_ID_LEN + 1];
    int64_t ack_id;
    char *arg;      /* room (join, leave, room query), status (status) */
    char *metadata; /* status: metadata to mirror once the store accepted it */
    bool joined;    /* join: this request put the socket in the room locally */
    uint32_t watch; /* sync: the watch its snapshot is for */
} gw_req;

static gw_req *req_new(gateway *gw, gw_op op, const gw_sock *g, int64_t ack_id, const char *arg)
{
    gw_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->gw = gw;
    r->op = op;
    r->ack_id = ack_id;
    memcpy(r->sid, g->sid, sizeof(r->sid));
    if (arg && !(r->arg = strdup(arg))) {
        free(r);
        return NULL;
    }
    return r;
}

static void req_free(gw_req *r)
{
    free(r->arg);
    free(r->metadata);
    free(r);
}

/* The store accepted a status change: mirror it for re-assertion. Mirroring before that would
 * re-assert a status the store refused, and the retried command would then change nothing. */
static void mirror_status(gw_sock *g, gw_req *r)
{
    snprintf(g->status, sizeof(g->status), "%s", r->arg);
    if (r->metadata) {
        free(g->metadata);
        g->metadata = r->metadata;
        r->metadata = NULL;
    }
}

static void forget_identity(gateway *gw, gw_sock *g);

static void on_done(int err, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (err && err != STORE_ERR_SHUTDOWN)
        log_debug("store operation failed", "op=%d err=\"%s\"", (int)r->op, store_strerror(err));
    if (g && r->op != OP_QUIET && r->op != OP_OPEN) {
        if (err == STORE_OK && r->op == OP_STATUS)
            mirror_status(g, r);
        if (err != STORE_OK && r->op == OP_IDENTIFY)
            forget_identity(r->gw, g);
        if (err == STORE_OK) {
            cJSON *reply = reply_ok();
            if (reply && r->arg && (r->op == OP_JOIN || r->op == OP_LEAVE))
                cJSON_AddStringToObject(reply, "room", r->arg);
            ack_json(g->sock, r->ack_id, reply);
        } else {
            /* The command did not take effect: undo what was mirrored locally. */
            if (r->op == OP_JOIN && r->joined) {
                char group[GROUP_MAX];
                group_name(group, sizeof(group), ROOM_GROUP, r->arg);
                sio_group_leave(g->sock, group);
                gw_sock_remove_room(g, r->arg);
            }
            ack_store_error(g->sock, r->ack_id, err);
        }
    }
    req_free(r);
}

/* ---- identity ---- */

/* Read {userId, metadata?} from an auth or identify object. Returns 0, or -1 with *why. */
static int read_identity(gateway *gw, const cJSON *obj, const char **user, char **metadata,
                         const char **why)
{
    *user = NULL;
    *metadata = NULL;
    int rc = pres_cmd_name(obj, "userId", user, why);
    if (rc == PRES_CMD_ABSENT)
        *user = NULL;
    if (rc == PRES_CMD_INVALID) {
        *why = "invalid userId";
        return -1;
    }
    if (pres_cmd_metadata(obj, "metadata", gw->opts.max_metadata_bytes, metadata, why) ==
        PRES_CMD_INVALID) {
        *why = "invalid metadata";
        return -1;
    }
    return 0;
}

/* Local sockets of `user` identified on this instance. */
static uintptr_t user_sockets(const gateway *gw, const char *user)
{
    return (uintptr_t)map_get(&gw->users, user, strlen(user));
}

static bool user_full(gateway *gw, const char *user)
{
    if (gw->opts.max_sockets_per_user == 0 ||
        user_sockets(gw, user) < gw->opts.max_sockets_per_user)
        return false;
    metrics_add(gw->limit_hits, "sockets_per_user", 1);
    return true;
}

static void user_sockets_dec(gateway *gw, const char *user)
{
    uintptr_t count = user_sockets(gw, user);
    if (count > 1)
        map_put(&gw->users, user, strlen(user), (void *)(count - 1));
    else
        map_del(&gw->users, user, strlen(user));
}

/* auth=jwt: verify the "token" member of `obj` (RFC 7519 §7.2 through jwt_verify) and check that
 * a "userId" member, if any, names the token's subject: a client cannot pair a good token with
 * another user's id. Returns 0 with `claims` filled (the caller deinits them), or -1 with
 * *absent telling whether there was no token at all. */
static int verify_token(gateway *gw, const cJSON *obj, jwt_claims *claims, bool *absent)
{
    memset(claims, 0, sizeof(*claims));
    const cJSON *t = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "token") : NULL;
    *absent = t == NULL;
    if (!t)
        return -1;
    int rc = JWT_ERR_KEY;
    if (cJSON_IsString(t) && gw->key) {
        jwt_expect ex = {.audience = gw->audience[0] ? gw->audience : NULL,
                         .issuer = gw->issuer[0] ? gw->issuer : NULL,
                         .leeway_s = gw->opts.jwt_leeway_s};
        rc =
            jwt_verify(gw->key, t->valuestring, strlen(t->valuestring), &ex, host_wall_s(), claims);
    }
    if (rc == JWT_OK) {
        const char *claimed = NULL, *why = NULL;
        int n = pres_cmd_name(obj, "userId", &claimed, &why);
        if (n == PRES_CMD_INVALID || (n == PRES_CMD_OK && strcmp(claimed, claims->sub) != 0)) {
            jwt_claims_deinit(claims);
            metrics_add(gw->auth_results, "user_mismatch", 1);
            log_debug("token refused", "err=\"userId differs from the token's sub\"");
            return -1;
        }
        metrics_add(gw->auth_results, "ok", 1);
        return 0;
    }
    metrics_add(gw->auth_results, rc == JWT_ERR_EXPIRED ? "expired" : "invalid", 1);
    log_debug("token refused", "err=\"%s\"", jwt_strerror(rc));
    return -1;
}

/* Make `g` belong to `user` and register it with the store. */
static int identify_socket(gateway *gw, gw_sock *g, const char *user, char *metadata,
                           int64_t ack_id, gw_op op)
{
    if (!(g->user = strdup(user))) {
        free(metadata);
        return -1;
    }
    g->metadata = metadata;
    strcpy(g->status, "online");
    gw->identified++;
    map_put(&gw->users, g->user, strlen(g->user), (void *)(user_sockets(gw, g->user) + 1));
    gw_req *r = req_new(gw, op, g, ack_id, NULL);
    if (!r)
        return -1;
    store_socket_open(gw->st, g->sid, g->user, NULL, g->metadata, on_done, r);
    return 0;
}

/* presence:identify failed in the store: the socket is anonymous again, so that the client can
 * retry. (An identity from the handshake is kept instead: the connection stays up and the socket
 * is re-asserted when the store is back.) */
static void forget_identity(gateway *gw, gw_sock *g)
{
    user_sockets_dec(gw, g->user);
    jwt_claims_deinit(&g->claims);
    g->exp_s = 0;
    free(g->user);
    free(g->metadata);
    g->user = g->metadata = NULL;
    gw->identified--;
}

/* auth=jwt: identify `g` from verified claims (taken over): the subject is the user, the
 * "presence" claim the metadata (the token is the backend's word; a client's own metadata is
 * not used), the "rooms" claim restricts joins and "exp" ends the socket. */
static int identify_with_claims(gateway *gw, gw_sock *g, jwt_claims *claims, int64_t ack_id,
                                gw_op op)
{
    char *metadata = claims->presence;
    claims->presence = NULL;
    jwt_claims_deinit(&g->claims);
    g->claims = *claims;
    memset(claims, 0, sizeof(*claims));
    g->exp_s = g->claims.exp_s;
    return identify_socket(gw, g, g->claims.sub, metadata, ack_id, op);
}

/* The command's identity checks: the socket must be identified, and a userId field, if any,
 * must be the socket's own. Returns 0, or -1 after answering the error. */
static int check_identity(gw_sock *g, const cJSON *obj, int64_t ack_id)
{
    if (!g->user) {
        ack_error(g->sock, ack_id, "not_identified", "identify first (auth.userId)");
        return -1;
    }
    const char *claimed = NULL, *why = NULL;
    int rc = pres_cmd_name(obj, "userId", &claimed, &why);
    if (rc == PRES_CMD_INVALID) {
        ack_error(g->sock, ack_id, "invalid_argument", why);
        return -1;
    }
    if (rc == PRES_CMD_OK && strcmp(claimed, g->user) != 0) {
        ack_error(g->sock, ack_id, "forbidden", "userId is not this socket's user");
        return -1;
    }
    return 0;
}

/* Whether socket `g` may read the members of `room` (NULL: the users of a contact list): the one
 * read-scope check of every command that reads presence without joining. With auth = jwt the
 * token's rooms claim bounds the rooms it may read as it bounds joins. Returns NULL, or the
 * message of a forbidden answer. */
static const char *read_refusal(const gw_sock *g, const char *room)
{
    if (room && !jwt_room_allowed(&g->claims, room))
        return "the token does not allow this room";
    return NULL;
}

/* ---- Socket.IO hooks ---- */

static int on_connect(sio_sock *s, cJSON *auth, const char **reject, void *ud)
{
    gateway *gw = ud;
    (void)s;
    if (auth && !cJSON_IsObject(auth)) {
        *reject = "invalid auth";
        return -1;
    }
    if (gw->opts.jwt) {
        jwt_claims claims;
        bool absent;
        if (verify_token(gw, auth, &claims, &absent) < 0) {
            /* No token at all is an anonymous socket (presence:identify may follow); a userId
             * without a token is a claim nobody vouches for. */
            if (absent && !(auth && cJSON_GetObjectItemCaseSensitive(auth, "userId")))
                return 0;
            *reject = "unauthorized";
            return -1;
        }
        bool full = user_full(gw, claims.sub);
        jwt_claims_deinit(&claims);
        if (full) {
            *reject = "too many sockets";
            return -1;
        }
        return 0;
    }
    const char *user, *why;
    char *metadata;
    if (read_identity(gw, auth, &user, &metadata, &why) < 0) {
        *reject = why;
        return -1;
    }
    free(metadata);
    if (user && user_full(gw, user)) {
        *reject = "too many sockets";
        return -1;
    }
    return 0;
}

static void on_connected(sio_sock *s, cJSON *auth, void *ud)
{
    gateway *gw = ud;
    gw_sock *g = calloc(1, sizeof(*g));
    if (!g || map_put(&gw->socks, sio_sock_id(s), strlen(sio_sock_id(s)), g) < 0) {
        free(g);
        sio_sock_disconnect(s, "out of memory");
        return;
    }
    snprintf(g->sid, sizeof(g->sid), "%s", sio_sock_id(s));
    g->sock = s;
    g->gw = gw;
    g->tokens = gw->opts.rate_burst;
    g->refill_ms = host_mono_ms();
    sio_sock_set_data(s, g);
    if (gw->opts.jwt) {
        /* on_connect() accepted the same object a moment ago. */
        jwt_claims claims;
        bool absent;
        if (verify_token(gw, auth, &claims, &absent) == 0 &&
            identify_with_claims(gw, g, &claims, SIO_NO_ACK, OP_OPEN) < 0)
            sio_sock_disconnect(s, "out of memory");
        return;
    }
    const char *user, *why;
    char *metadata;
    /* on_connect() validated the same object already. */
    if (read_identity(gw, auth, &user, &metadata, &why) == 0 && user &&
        identify_socket(gw, g, user, metadata, SIO_NO_ACK, OP_OPEN) < 0)
        sio_sock_disconnect(s, "out of memory");
}

static void on_disconnect(sio_sock *s, const char *reason, void *ud)
{
    gateway *gw = ud;
    (void)reason;
    gw_sock *g = sio_sock_data(s);
    if (!g)
        return;
    if (g->user) {
        gw->identified--;
        user_sockets_dec(gw, g->user);
        gw_req *r = req_new(gw, OP_QUIET, g, SIO_NO_ACK, NULL);
        /* A client that went away may come back within offline_grace; one the server
         * disconnected on purpose will not. */
        if (r)
            store_socket_close(gw->st, g->sid, !g->kicked, on_done, r);
    }
    watch_socket_gone(gw->watch, g->sid);
    map_del(&gw->socks, g->sid, strlen(g->sid));
    sio_sock_set_data(s, NULL);
    gw_sock_free(g);
}

/* ---- commands ---- */

/* The per-socket token bucket: refills at rate_limit per second up to rate_burst. Returns true
 * when the command may run. A socket that keeps going after being refused is closed. */
static bool rate_allow(gateway *gw, gw_sock *g, int64_t ack_id)
{
    if (gw->opts.rate_limit == 0)
        return true;
    uint64_t now = host_mono_ms();
    double cap = gw->opts.rate_burst ? gw->opts.rate_burst : 1;
    g->tokens += (double)(now - g->refill_ms) * gw->opts.rate_limit / 1000.0;
    if (g->tokens > cap)
        g->tokens = cap;
    g->refill_ms = now;
    if (g->tokens >= 1) {
        g->tokens -= 1;
        return true;
    }
    metrics_add(gw->limit_hits, "rate", 1);
    if (now - g->reject_window_ms > RATE_ABUSE_WINDOW_MS) {
        g->reject_window_ms = now;
        g->rejected = 0;
    }
    if (++g->rejected > gw->opts.rate_burst) {
        metrics_add(gw->limit_hits, "rate_abuse_closed", 1);
        log_info("closing a socket that ignores the rate limit", "sid=%s", g->sid);
        g->closing = true;
        sio_sock_disconnect(g->sock, "rate limit abuse");
        return false;
    }
    ack_error(g->sock, ack_id, "rate_limited", "too many commands; slow down");
    return false;
}

/* Common start of every command: the socket's state and its argument object. */
static gw_sock *command_begin(sio_sock *s, cJSON *args, int64_t ack_id, const cJSON **obj)
{
    gw_sock *g = sio_sock_data(s);
    const char *why = NULL;
    if (!g || g->closing)
        return NULL;
    if (!rate_allow(g->gw, g, ack_id))
        return NULL;
    if (pres_cmd_object(args, obj, &why) == PRES_CMD_INVALID) {
        ack_error(s, ack_id, "invalid_argument", why);
        return NULL;
    }
    return g;
}

static void touch_quietly(gateway *gw, gw_sock *g)
{
    if (!g->user)
        return;
    gw_req *r = req_new(gw, OP_QUIET, g, SIO_NO_ACK, NULL);
    if (r)
        store_touch(gw->st, g->sid, on_done, r);
}

static void cmd_identify(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                         int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g)
        return;
    if (g->user) {
        ack_error(s, ack_id, "already_identified", "this socket is identified already");
        return;
    }
    if (gw->opts.jwt) {
        jwt_claims claims;
        bool absent;
        if (verify_token(gw, obj, &claims, &absent) < 0)
            return ack_error(s, ack_id, "unauthorized", "a valid token is required");
        if (user_full(gw, claims.sub)) {
            jwt_claims_deinit(&claims);
            return ack_error(s, ack_id, "limit_exceeded", "too many sockets");
        }
        if (identify_with_claims(gw, g, &claims, ack_id, OP_IDENTIFY) < 0)
            ack_error(s, ack_id, "internal", "out of memory");
        return;
    }
    const char *user, *why;
    char *metadata;
    if (read_identity(gw, obj, &user, &metadata, &why) < 0 || !user) {
        free(metadata);
        ack_error(s, ack_id, "invalid_argument", user ? why : "invalid userId");
        return;
    }
    if (user_full(gw, user)) {
        free(metadata);
        return ack_error(s, ack_id, "limit_exceeded", "too many sockets");
    }
    if (identify_socket(gw, g, user, metadata, ack_id, OP_IDENTIFY) < 0)
        ack_error(s, ack_id, "internal", "out of memory");
}

/* presence:refresh {token}: a new token for the socket's own user extends its life (exp) and
 * replaces its room restrictions. */
static void cmd_refresh(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                        int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g)
        return;
    if (!gw->opts.jwt)
        return ack_error(s, ack_id, "invalid_argument", "tokens are not used (auth=insecure)");
    if (!g->user)
        return ack_error(s, ack_id, "not_identified", "identify first (auth.token)");
    jwt_claims claims;
    bool absent;
    if (verify_token(gw, obj, &claims, &absent) < 0)
        return ack_error(s, ack_id, "unauthorized", "a valid token is required");
    if (strcmp(claims.sub, g->user) != 0) {
        jwt_claims_deinit(&claims);
        return ack_error(s, ack_id, "forbidden", "the token is for another user");
    }
    jwt_claims_deinit(&g->claims);
    g->claims = claims;
    g->exp_s = claims.exp_s;
    metrics_add(gw->auth_results, "refreshed", 1);
    ack_ok(s, ack_id);
}

static void cmd_heartbeat(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                          int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g || check_identity(g, obj, ack_id) < 0)
        return;
    gw_req *r = req_new(gw, OP_TOUCH, g, ack_id, NULL);
    if (!r)
        return ack_error(s, ack_id, "internal", "out of memory");
    store_touch(gw->st, g->sid, on_done, r);
}

static void cmd_room(sio_sock *s, cJSON *args, int64_t ack_id, gateway *gw, bool join)
{
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g || check_identity(g, obj, ack_id) < 0)
        return;
    const char *room = NULL, *why = "room is required";
    if (pres_cmd_name(obj, "room", &room, &why) != PRES_CMD_OK)
        return ack_error(s, ack_id, "invalid_argument", why);
    if (join && !jwt_room_allowed(&g->claims, room))
        return ack_error(s, ack_id, "forbidden", "the token does not allow this room");
    if (join && gw->opts.max_rooms_per_socket && g->nrooms >= gw->opts.max_rooms_per_socket) {
        if (!gw_sock_has_room(g, room)) {
            metrics_add(gw->limit_hits, "rooms_per_socket", 1);
            return ack_error(s, ack_id, "limit_exceeded", "too many rooms on this socket");
        }
    }
    char group[GROUP_MAX];
    group_name(group, sizeof(group), ROOM_GROUP, room);
    /* A join that fails takes the socket out of the room only if it was not in it before (a
     * socket watching the room is a member without being in the group). */
    bool was_in = gw_sock_has_room(g, room);
    /* The local group changes now, so that the socket hears its own join (and not its own
     * leave) whichever store delivers the event, and whenever. */
    if (join) {
        /* A socket watching the room gets its changes as diffs, not as single events. */
        if ((!watch_has_room(gw->watch, g->sid, room) && sio_group_join(s, group) < 0) ||
            gw_sock_add_room(g, room) < 0)
            return ack_error(s, ack_id, "internal", "out of memory");
    } else {
        sio_group_leave(s, group);
        gw_sock_remove_room(g, room);
    }
    gw_req *r = req_new(gw, join ? OP_JOIN : OP_LEAVE, g, ack_id, room);
    if (!r)
        return ack_error(s, ack_id, "internal", "out of memory");
    r->joined = join && !was_in;
    if (join)
        store_room_join(gw->st, g->sid, room, on_done, r);
    else
        store_room_leave(gw->st, g->sid, room, on_done, r);
}

static void cmd_room_join(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                          int64_t ack_id, void *ud)
{
    (void)event, (void)bin;
    cmd_room(s, args, ack_id, ud, true);
}

static void cmd_room_leave(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                           int64_t ack_id, void *ud)
{
    (void)event, (void)bin;
    cmd_room(s, args, ack_id, ud, false);
}

static void cmd_status(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                       int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g || check_identity(g, obj, ack_id) < 0)
        return;
    const char *status = NULL, *why = "status is required";
    char *metadata = NULL;
    if (pres_cmd_status(obj, "status", &status, &why) != PRES_CMD_OK ||
        pres_cmd_metadata(obj, "metadata", gw->opts.max_metadata_bytes, &metadata, &why) ==
            PRES_CMD_INVALID)
        return ack_error(s, ack_id, "invalid_argument", why);
    if (gw->opts.jwt) {
        /* The token's presence claim is the metadata; a client cannot replace it. */
        free(metadata);
        metadata = NULL;
    }
    gw_req *r = req_new(gw, OP_STATUS, g, ack_id, status);
    if (!r) {
        free(metadata);
        return ack_error(s, ack_id, "internal", "out of memory");
    }
    r->metadata = metadata;
    store_status_set(gw->st, g->sid, status, metadata, on_done, r);
}

static void cmd_subscription(sio_sock *s, cJSON *args, int64_t ack_id, gateway *gw, bool sub)
{
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g)
        return;
    const char **ids = NULL, *why = "userIds is required";
    size_t n = 0;
    if (pres_cmd_names(obj, "userIds", gw->opts.max_bulk_ids, &ids, &n, &why) != PRES_CMD_OK)
        return ack_error(s, ack_id, "invalid_argument", why);
    int rc = 0;
    bool full = false;
    for (size_t i = 0; i < n && !full; i++) {
        char group[GROUP_MAX];
        group_name(group, sizeof(group), SUB_GROUP, ids[i]);
        bool member = sio_group_has(s, group);
        if (sub && !member) {
            uint32_t max = gw->opts.max_subscriptions_per_socket;
            if (max && g->nsubs >= max) {
                full = true;
            } else if (sio_group_join(s, group) < 0) {
                rc = -1;
            } else {
                g->nsubs++;
            }
        } else if (!sub && member) {
            sio_group_leave(s, group);
            g->nsubs--;
        }
    }
    free(ids);
    if (rc < 0)
        return ack_error(s, ack_id, "internal", "out of memory");
    if (full) {
        /* The ids before the one over the limit stay subscribed. */
        metrics_add(gw->limit_hits, "subscriptions_per_socket", 1);
        return ack_error(s, ack_id, "limit_exceeded", "too many subscriptions on this socket");
    }
    touch_quietly(gw, g);
    ack_ok(s, ack_id);
}

static void cmd_subscribe(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                          int64_t ack_id, void *ud)
{
    (void)event, (void)bin;
    cmd_subscription(s, args, ack_id, ud, true);
}

static void cmd_unsubscribe(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                            int64_t ack_id, void *ud)
{
    (void)event, (void)bin;
    cmd_subscription(s, args, ack_id, ud, false);
}

/* ---- queries ---- */

static void on_users(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (!g)
        goto out;
    if (err) {
        ack_store_error(g->sock, r->ack_id, err);
        goto out;
    }
    cJSON *reply = reply_ok(), *map = reply ? cJSON_AddObjectToObject(reply, "users") : NULL;
    for (size_t i = 0; map && i < n; i++) {
        const store_user *u = &users[i];
        /* An invisible user reads as offline to everyone but themselves. */
        bool hidden = u->online && strcmp(u->status, "invisible") == 0 &&
                      !(g->user && strcmp(g->user, u->user) == 0);
        bool online = u->online && !hidden;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddBoolToObject(o, "online", online) ||
            !cJSON_AddStringToObject(o, "status", online ? u->status : "offline") ||
            !(u->last_seen ? cJSON_AddNumberToObject(o, "lastSeen", (double)u->last_seen)
                           : cJSON_AddNullToObject(o, "lastSeen")) ||
            pres_event_metadata_add(o, online ? u->metadata : NULL) < 0) {
            cJSON_Delete(o);
            map = NULL;
            break;
        }
        /* Asking twice for one id answers once. */
        if (cJSON_GetObjectItemCaseSensitive(map, u->user))
            cJSON_Delete(o);
        else
            cJSON_AddItemToObject(map, u->user, o);
    }
    if (map && !cJSON_AddStringToObject(reply, "seq", seq))
        map = NULL;
    ack_built(g->sock, r->ack_id, reply, map != NULL);
out:
    req_free(r);
}

static void cmd_query(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                      int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g)
        return;
    const char **ids = NULL, *why = "userIds is required";
    size_t n = 0;
    if (pres_cmd_names(obj, "userIds", gw->opts.max_bulk_ids, &ids, &n, &why) != PRES_CMD_OK)
        return ack_error(s, ack_id, "invalid_argument", why);
    gw_req *r = req_new(gw, OP_QUERY, g, ack_id, NULL);
    if (!r) {
        free(ids);
        return ack_error(s, ack_id, "internal", "out of memory");
    }
    store_users_query(gw->st, ids, n, on_users, r);
    free(ids);
    touch_quietly(gw, g);
}

/* {ok, room, onlineCount, users: [ids], members: [view entries], seq}: `users` lists every
 * member, as it always did; `members` is what a view of the room shows (watch_members_json). */
static void on_room(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (!g)
        goto out;
    if (err) {
        ack_store_error(g->sock, r->ack_id, err);
        goto out;
    }
    cJSON *reply = reply_ok();
    cJSON *list = NULL, *members = watch_members_json(users, n, false);
    if (reply && members && cJSON_AddStringToObject(reply, "room", r->arg) &&
        cJSON_AddNumberToObject(reply, "onlineCount", (double)n))
        list = cJSON_AddArrayToObject(reply, "users");
    for (size_t i = 0; list && i < n; i++) {
        cJSON *u = cJSON_CreateString(users[i].user);
        if (!u || !cJSON_AddItemToArray(list, u)) {
            cJSON_Delete(u);
            list = NULL;
        }
    }
    if (list && (!cJSON_AddItemToObject(reply, "members", members) ||
                 !cJSON_AddStringToObject(reply, "seq", seq)))
        list = NULL;
    else if (!list)
        cJSON_Delete(members);
    ack_built(g->sock, r->ack_id, reply, list != NULL);
out:
    req_free(r);
}

static void cmd_room_query(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                           int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    if (!g)
        return;
    const char *room = NULL, *why = "room is required", *refused;
    if (pres_cmd_name(obj, "room", &room, &why) != PRES_CMD_OK)
        return ack_error(s, ack_id, "invalid_argument", why);
    if ((refused = read_refusal(g, room)))
        return ack_error(s, ack_id, "forbidden", refused);
    gw_req *r = req_new(gw, OP_ROOM_QUERY, g, ack_id, room);
    if (!r)
        return ack_error(s, ack_id, "internal", "out of memory");
    store_room_members(gw->st, room, on_room, r);
    touch_quietly(gw, g);
}

/* ---- views (presence:sync) ---- */

/* A member of `room` that no longer watches it hears the room's single events again. Returns 0
 * or -1 (memory). */
static int room_group_restore(gw_sock *g, const char *room)
{
    if (!room || watch_has_room(g->gw->watch, g->sid, room))
        return 0;
    for (size_t i = 0; i < g->nrooms; i++)
        if (strcmp(g->rooms[i], room) == 0) {
            char group[GROUP_MAX];
            group_name(group, sizeof(group), ROOM_GROUP, room);
            return sio_group_join(g->sock, group);
        }
    return 0;
}

/* The snapshot of a presence:sync: {ok, room?, seq, users: [view entries]}. */
static void on_sync(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (!g)
        goto out;
    /* Batches sent from now on know which form this socket needs. */
    watch_snapshot(r->gw->watch, g->sid, r->arg, r->watch, err ? NULL : seq);
    if (err) {
        room_group_restore(g, r->arg);
        ack_store_error(g->sock, r->ack_id, err);
        goto out;
    }
    cJSON *reply = reply_ok(), *list = watch_members_json(users, n, r->arg == NULL);
    bool ok = reply && list && (!r->arg || cJSON_AddStringToObject(reply, "room", r->arg)) &&
              cJSON_AddStringToObject(reply, "seq", seq);
    if (ok && cJSON_AddItemToObject(reply, "users", list))
        list = NULL;
    else
        ok = false;
    cJSON_Delete(list);
    ack_built(g->sock, r->ack_id, reply, ok);
out:
    req_free(r);
}

/* Read presence:sync's target: {room} or {userIds}, and batch_ms. Returns 0, or -1 after
 * answering the error. */
static int sync_args(gw_sock *g, const cJSON *obj, int64_t ack_id, const char **room,
                     const char ***ids, size_t *n, uint32_t *batch_ms)
{
    gateway *gw = g->gw;
    const char *why = "room or userIds is required";
    *room = NULL;
    *ids = NULL;
    *n = 0;
    *batch_ms = WATCH_BATCH_DEFAULT_MS;
    int rr = pres_cmd_name(obj, "room", room, &why);
    int ru = rr == PRES_CMD_ABSENT
                 ? pres_cmd_names(obj, "userIds", gw->opts.max_bulk_ids, ids, n, &why)
                 : PRES_CMD_ABSENT;
    if (rr == PRES_CMD_INVALID || ru == PRES_CMD_INVALID ||
        (rr != PRES_CMD_OK && ru != PRES_CMD_OK) ||
        pres_cmd_uint(obj, "batch_ms", WATCH_BATCH_MAX_MS, batch_ms, &why) == PRES_CMD_INVALID) {
        free(*ids);
        ack_error(g->sock, ack_id, "invalid_argument", why);
        return -1;
    }
    return 0;
}

/* Whether one more view fits the socket's limits (rooms watched count like rooms joined, ids on
 * a contact list like subscriptions). Answers limit_exceeded when not. */
static bool sync_fits(gw_sock *g, const char *room, size_t nids, int64_t ack_id)
{
    gateway *gw = g->gw;
    uint32_t max_rooms = gw->opts.max_rooms_per_socket;
    uint32_t max_ids = gw->opts.max_subscriptions_per_socket;
    const char *limit = NULL;
    if (room && max_rooms && !watch_has_room(gw->watch, g->sid, room) &&
        watch_room_count(gw->watch, g->sid) >= max_rooms)
        limit = "rooms_per_socket";
    else if (!room && max_ids && nids > max_ids)
        limit = "subscriptions_per_socket";
    if (!limit)
        return true;
    metrics_add(gw->limit_hits, limit, 1);
    ack_error(g->sock, ack_id, "limit_exceeded", "too many views on this socket");
    return false;
}

/* presence:sync {room | userIds, batch_ms?}: watch a view and answer its snapshot. The socket
 * joins the view before the snapshot is read, so the batches it gets and the snapshot overlap
 * rather than leave a gap; the seqs tell the client what to drop. */
static void cmd_sync(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                     int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    const char *room, **ids, *refused;
    size_t n;
    uint32_t batch_ms;
    if (!g || sync_args(g, obj, ack_id, &room, &ids, &n, &batch_ms) < 0)
        return;
    if ((refused = read_refusal(g, room)) || !sync_fits(g, room, n, ack_id)) {
        free(ids);
        if (refused)
            ack_error(s, ack_id, "forbidden", refused);
        return;
    }
    gw_req *r = req_new(gw, OP_SYNC, g, ack_id, room);
    int rc = !r     ? -1
             : room ? watch_room(gw->watch, s, room, batch_ms, &r->watch)
                    : watch_users(gw->watch, s, ids, n, batch_ms, &r->watch);
    if (rc < 0) {
        free(ids);
        if (r)
            req_free(r);
        return ack_error(s, ack_id, "internal", "out of memory");
    }
    if (room) {
        /* A member of the room now gets its changes as diffs only. */
        char group[GROUP_MAX];
        group_name(group, sizeof(group), ROOM_GROUP, room);
        sio_group_leave(s, group);
        store_room_members(gw->st, room, on_sync, r);
    } else {
        store_users_query(gw->st, ids, n, on_sync, r);
    }
    free(ids);
    touch_quietly(gw, g);
}

/* presence:unsync {room} or {userIds}: stop watching. */
static void cmd_unsync(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                       int64_t ack_id, void *ud)
{
    gateway *gw = ud;
    (void)event, (void)bin;
    const cJSON *obj;
    gw_sock *g = command_begin(s, args, ack_id, &obj);
    const char *room, **ids;
    size_t n;
    uint32_t batch_ms;
    if (!g || sync_args(g, obj, ack_id, &room, &ids, &n, &batch_ms) < 0)
        return;
    free(ids);
    watch_stop(gw->watch, g->sid, room);
    if (room_group_restore(g, room) < 0)
        return ack_error(s, ack_id, "internal", "out of memory");
    ack_ok(s, ack_id);
}

/* ---- events from the store ---- */

static bool is_invisible(const char *status)
{
    return status && strcmp(status, "invisible") == 0;
}

/* Send one event to its audience: every socket, or (scoped) the sockets subscribed to the user
 * or sharing one of `ev->rooms` with them. */
static void fan_out(gateway *gw, const pres_event *ev, const char *name, const cJSON *payload)
{
    metrics_add(gw->events_out, name, 1);
    cJSON *args = cJSON_CreateArray();
    cJSON *copy = cJSON_Duplicate(payload, 1);
    if (!args || !copy || !cJSON_AddItemToArray(args, copy)) {
        cJSON_Delete(copy);
        cJSON_Delete(args);
        return;
    }
    if (!gw->opts.scoped) {
        sio_broadcast(gw->sio, NSP, NULL, name, args);
        cJSON_Delete(args);
        return;
    }
    size_t ngroups = 1 + ev->nrooms;
    char(*names)[GROUP_MAX] = malloc(ngroups * sizeof(*names));
    const char **groups = malloc(ngroups * sizeof(*groups));
    if (names && groups) {
        group_name(names[0], GROUP_MAX, SUB_GROUP, ev->user);
        for (size_t i = 0; i < ev->nrooms; i++)
            group_name(names[i + 1], GROUP_MAX, ROOM_GROUP, ev->rooms[i]);
        for (size_t i = 0; i < ngroups; i++)
            groups[i] = names[i];
        sio_broadcast_groups(gw->sio, NSP, groups, ngroups, name, args);
    }
    free(groups);
    free(names);
    cJSON_Delete(args);
}

/* An update that crosses the invisible line reads, for everyone else, as going offline or coming
 * online. */
static void deliver_update(gateway *gw, const pres_event *ev)
{
    bool was = is_invisible(ev->prev_status), now = is_invisible(ev->status);
    pres_event view = *ev;
    if (was && now)
        return;
    if (!was && !now) {
        cJSON *p = pres_event_payload(ev);
        if (p)
            fan_out(gw, ev, pres_event_name(PRES_EV_UPDATE), p);
        cJSON_Delete(p);
        return;
    }
    view.type = now ? PRES_EV_OFFLINE : PRES_EV_ONLINE;
    view.last_seen = ev->at;
    view.socket = NULL;
    cJSON *p = pres_event_payload(&view);
    if (p)
        fan_out(gw, ev, pres_event_name(view.type), p);
    cJSON_Delete(p);
}

static void on_event(const pres_event *ev, void *ud)
{
    gateway *gw = ud;
    cJSON *p = NULL;
    metrics_add(gw->events_in, pres_event_tag(ev->type), 1);
    watch_event(gw->watch, ev);
    switch (ev->type) {
    case PRES_EV_ROOM_JOIN:
    case PRES_EV_ROOM_LEAVE: {
        char group[GROUP_MAX];
        group_name(group, sizeof(group), ROOM_GROUP, ev->room);
        cJSON *args = cJSON_CreateArray();
        if (args && (p = pres_event_payload(ev)) && cJSON_AddItemToArray(args, p)) {
            p = NULL;
            metrics_add(gw->events_out, pres_event_name(ev->type), 1);
            sio_broadcast(gw->sio, NSP, group, pres_event_name(ev->type), args);
        }
        cJSON_Delete(args);
        break;
    }
    case PRES_EV_ONLINE:
    case PRES_EV_OFFLINE:
        /* An invisible user's comings and goings are nobody's business. */
        if (is_invisible(ev->status))
            break;
        if ((p = pres_event_payload(ev)))
            fan_out(gw, ev, pres_event_name(ev->type), p);
        break;
    case PRES_EV_UPDATE:
        deliver_update(gw, ev);
        break;
    case PRES_EV_DISCONNECT:
        gateway_disconnect_user(gw, ev->user);
        break;
    }
    cJSON_Delete(p);
}

size_t gateway_disconnect_user(gateway *gw, const char *user)
{
    /* Closing runs the disconnect hook later, from the loop, so the map is stable here. */
    size_t pos = 0, n = 0;
    map_slot *slot;
    while ((slot = map_next(&gw->socks, &pos))) {
        gw_sock *g = slot->value;
        if (!g->user || g->kicked || strcmp(g->user, user) != 0)
            continue;
        g->kicked = true;
        sio_sock_disconnect(g->sock, "server disconnect");
        n++;
    }
    if (n > 0)
        log_info("disconnected a user's sockets", "sockets=%zu", n);
    return n;
}

/* The store reconciles (docs/presence-model.md, "Reconciliation"): hand it every identified
 * socket, with the rooms and status this gateway holds for it. */
static void on_reconcile(store_truth *t, void *ud)
{
    gateway *gw = ud;
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&gw->socks, &pos))) {
        gw_sock *g = slot->value;
        if (g->user && store_truth_add(t, g->sid, g->user, g->status, g->metadata,
                                       (const char *const *)g->rooms, g->nrooms) < 0)
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
    } else
        log_warn("store unavailable", NULL);
}

/* ---- lifecycle ---- */

gateway *gateway_new(sio_server *sio, const gateway_opts *opts)
{
    gateway *gw = calloc(1, sizeof(*gw));
    if (!gw)
        return NULL;
    gw->sio = sio;
    gw->opts = *opts;
    gw->events_in = metrics_def_get(opts->metrics, METRIC_EVENTS_IN);
    gw->events_out = metrics_def_get(opts->metrics, METRIC_EVENTS_OUT);
    gw->auth_results = metrics_def_get(opts->metrics, METRIC_AUTH_TOKENS);
    gw->limit_hits = metrics_def_get(opts->metrics, METRIC_LIMIT_HITS);
    snprintf(gw->audience, sizeof(gw->audience), "%s",
             opts->jwt_audience ? opts->jwt_audience : "");
    snprintf(gw->issuer, sizeof(gw->issuer), "%s", opts->jwt_issuer ? opts->jwt_issuer : "");
    gw->opts.jwt_audience = gw->opts.jwt_issuer = NULL;
    uint64_t seed = host_seed();
    map_init(&gw->socks, seed);
    map_init(&gw->users, seed ^ 0x9e3779b97f4a7c15ULL);
    if (!(gw->watch = watch_new(opts->loop, sio, NSP, seed ^ 0x2545f4914f6cdd1dULL))) {
        gateway_free(gw);
        return NULL;
    }
    static const struct {
        const char *name;
        sio_event_fn fn;
    } commands[] = {
        {"presence:identify", cmd_identify},
        {"presence:heartbeat", cmd_heartbeat},
        {"presence:room:join", cmd_room_join},
        {"presence:room:leave", cmd_room_leave},
        {"presence:status", cmd_status},
        {"presence:subscribe", cmd_subscribe},
        {"presence:unsubscribe", cmd_unsubscribe},
        {"presence:query", cmd_query},
        {"presence:room:query", cmd_room_query},
        {"presence:refresh", cmd_refresh},
        {"presence:sync", cmd_sync},
        {"presence:unsync", cmd_unsync},
    };
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (sio_server_on(sio, commands[i].name, commands[i].fn, gw) < 0) {
            gateway_free(gw);
            return NULL;
        }
    sio_server_on_connect(sio, on_connect, gw);
    sio_server_on_connected(sio, on_connected, gw);
    sio_server_on_disconnect(sio, on_disconnect, gw);
    return gw;
}

store_hooks gateway_store_hooks(gateway *gw)
{
    return (store_hooks){
        .event = on_event, .reconcile = on_reconcile, .availability = on_availability, .ud = gw};
}

void gateway_attach_store(gateway *gw, store *st)
{
    gw->st = st;
}

uint32_t gateway_sockets(const gateway *gw)
{
    return gw->identified;
}

uint32_t gateway_users(const gateway *gw)
{
    return (uint32_t)gw->users.count;
}

void gateway_set_jwt_key(gateway *gw, jwt_key *key)
{
    jwt_key_free(gw->key);
    gw->key = key;
}

void gateway_tick(gateway *gw)
{
    int64_t now = host_wall_s();
    size_t pos = 0, n = 0;
    map_slot *slot;
    /* Closing runs the disconnect hook later, from the loop, so the map is stable here. */
    while ((slot = map_next(&gw->socks, &pos))) {
        gw_sock *g = slot->value;
        if (g->exp_s == 0 || g->closing || now - (int64_t)gw->opts.jwt_leeway_s < g->exp_s)
            continue;
        g->closing = true;
        sio_sock_disconnect(g->sock, "token expired");
        metrics_add(gw->auth_results, "expired_disconnect", 1);
        n++;
    }
    if (n > 0)
        log_info("disconnected sockets whose token expired", "sockets=%zu", n);
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
    jwt_key_free(gw->key);
    watch_free(gw->watch);
    map_deinit(&gw->socks);
    map_deinit(&gw->users);
    free(gw);
}
