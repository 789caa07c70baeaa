/* store_redis_ops — the Redis store's state changes (one function call each, answered with a
 * code) and its queries (presence:query as one pipelined read per user, room members, the HTTP
 * API's reads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/log.h"
#include "store_redis_int.h"

/* ---- the sockets this instance registered ---- */

const char *sr_sock_user(const store_redis *s, const char *sid)
{
    const sr_sock *k = map_get(&s->socks, sid, strlen(sid));
    return k ? k->user : NULL;
}

/* Record `sid` as a socket of `user` (replacing another user's entry). NULL when out of memory. */
static sr_sock *socks_put(store_redis *s, const char *sid, const char *user)
{
    size_t klen = strlen(sid), ulen = strlen(user);
    sr_sock *k = map_get(&s->socks, sid, klen);
    if (k && strcmp(k->user, user) == 0)
        return k;
    sr_sock *n = malloc(sizeof(*n) + ulen + 1);
    if (!n)
        return NULL;
    n->epoch = s->epoch;
    n->seq = 0;
    memcpy(n->user, user, ulen + 1);
    if (map_put(&s->socks, sid, klen, n) < 0) {
        free(n);
        return NULL;
    }
    free(k);
    return n;
}

static void socks_del(store_redis *s, const char *sid)
{
    free(map_del(&s->socks, sid, strlen(sid)));
}

void sr_socks_free(store_redis *s)
{
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&s->socks, &pos)))
        free(slot->value);
    map_deinit(&s->socks);
}

/* The truth is sorted by user, then sid: a binary search finds a socket in it. */
static bool truth_has(const store_truth *t, const char *sid, const char *user)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].user, user);
        if (c == 0)
            c = strcmp(t->v[mid].sid, sid);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

void sr_socks_reset(store_redis *s, const store_truth *t)
{
    /* Removing while iterating is not allowed: the doomed are collected first. */
    size_t pos = 0, ndoomed = 0;
    map_slot *slot;
    char **doomed = s->socks.count ? malloc(s->socks.count * sizeof(*doomed)) : NULL;
    while (doomed && (slot = map_next(&s->socks, &pos))) {
        const sr_sock *k = slot->value;
        if (k->epoch < s->epoch && !truth_has(t, slot->key, k->user))
            doomed[ndoomed++] = slot->key;
    }
    for (size_t i = 0; i < ndoomed; i++)
        socks_del(s, doomed[i]);
    free(doomed);
    for (size_t i = 0; i < t->n; i++)
        if (!socks_put(s, t->v[i].sid, t->v[i].user))
            log_error("out of memory keeping a socket's user", "sid=%s", t->v[i].sid);
}

/* ---- operations answered with an integer code ---- */

static void on_done(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    if (err == STORE_OK && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer == STORE_ERR_NO_SOCKET || reply->integer == STORE_ERR_EXISTS)
            err = (int)reply->integer;
        else if (reply->integer == STORE_ERR_STALE)
            err = STORE_ERR_UNAVAILABLE;
    } else if (err == STORE_OK) {
        log_error("unexpected redis reply", "script=%s type=%d", op->what, reply->type);
        err = STORE_ERR_INTERNAL;
    }
    /* The owner believes this socket is registered and Redis does not know it: they disagree,
     * whatever the reason (a state change lost on the way, a reap while this instance was cut
     * off). */
    if (err == STORE_ERR_NO_SOCKET)
        sr_rc_request(op->s, "Redis did not know a socket");
    if (op->cb.done)
        op->cb.done(err, op->ud);
    sr_op_free(op);
}

static void run_done(store_redis *s, int scr, const char *const *args, size_t n, store_done_fn cb,
                     void *ud)
{
    sr_op *op = sr_op_new(s, sr_script_names[scr], ud);
    if (!op) {
        log_error("out of memory", "script=%s", sr_script_names[scr]);
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.done = cb;
    if (scr != SCR_KICK)
        sr_rc_before_change(s, args[1]);
    sr_run_script(s, scr, args, NULL, n, on_done, op);
}

/* An operation on a socket this store never registered (or has closed): the owner and the
 * store disagree about it. */
static void no_socket(store_redis *s, store_done_fn cb, void *ud)
{
    sr_rc_request(s, "an operation named a socket this instance did not register");
    store_fail_done(&s->base, cb, ud, STORE_ERR_NO_SOCKET);
}

/* The answer to socket_open or socket_assert: a socket that was not registered (an error other
 * than EXISTS, with a reply) is forgotten, unless it was registered again since. */
typedef struct sr_open {
    store_redis *s;
    store_done_fn cb;
    void *ud;
    uint64_t seq;
    char sid[];
} sr_open;

static void on_open_done(int err, void *ud)
{
    sr_open *o = ud;
    store_redis *s = o->s;
    sr_sock *k = s->closing ? NULL : map_get(&s->socks, o->sid, strlen(o->sid));
    if (k && k->seq == o->seq && err != STORE_OK && err != STORE_ERR_EXISTS &&
        err != STORE_ERR_UNAVAILABLE && err != STORE_ERR_SHUTDOWN)
        socks_del(s, o->sid);
    if (o->cb)
        o->cb(err, o->ud);
    free(o);
}

/* A registration (socket_open or socket_assert) of `sid` for `user` is on its way. NULL when out
 * of memory. */
static sr_open *open_new(store_redis *s, const char *sid, const char *user, store_done_fn cb,
                         void *ud)
{
    size_t slen = strlen(sid);
    sr_open *o = malloc(sizeof(*o) + slen + 1);
    sr_sock *k = o ? socks_put(s, sid, user) : NULL;
    if (!k) {
        free(o);
        return NULL;
    }
    k->epoch = s->epoch;
    k->seq = ++s->sock_seq;
    *o = (sr_open){.s = s, .cb = cb, .ud = ud, .seq = k->seq};
    memcpy(o->sid, sid, slen + 1);
    return o;
}

void sr_socket_open(store *st, const char *sid, const char *user, const char *status,
                    const char *metadata, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    const char *known = sr_sock_user(s, sid);
    if (known && strcmp(known, user) != 0) {
        /* The socket is registered, for another user. */
        store_fail_done(&s->base, cb, ud, STORE_ERR_EXISTS);
        return;
    }
    sr_open *o = open_new(s, sid, user, cb, ud);
    if (!o) {
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    const char *args[] = {sid, user, status ? status : "", metadata ? metadata : ""};
    run_done(s, SCR_OPEN, args, 4, on_open_done, o);
}

void sr_socket_assert(store *st, const char *sid, const char *user, const char *status,
                      const char *metadata, const char *const *rooms, size_t nrooms,
                      store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    const char **args = malloc((4 + nrooms) * sizeof(*args));
    sr_open *o = args ? open_new(s, sid, user, cb, ud) : NULL;
    if (!o) {
        free(args);
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    args[0] = sid;
    args[1] = user;
    args[2] = status ? status : "";
    args[3] = metadata ? metadata : "";
    for (size_t i = 0; i < nrooms; i++)
        args[4 + i] = rooms[i];
    run_done(s, SCR_ASSERT, args, 4 + nrooms, on_open_done, o);
    free(args);
}

void sr_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    const char *user = sr_sock_user(s, sid);
    if (!user) {
        /* Unknown sockets are not an error. */
        store_fail_done(&s->base, cb, ud, STORE_OK);
        return;
    }
    const char *args[] = {sid, user, graceful ? "1" : "0"};
    run_done(s, SCR_CLOSE, args, 3, cb, ud);
    socks_del(s, sid);
}

/* An operation on registered socket `sid`: function `scr` with (sid, user, extra...). */
static void run_on_socket(store_redis *s, int scr, const char *sid, const char *const *extra,
                          size_t nextra, store_done_fn cb, void *ud)
{
    const char *user = sr_sock_user(s, sid);
    if (!user) {
        no_socket(s, cb, ud);
        return;
    }
    const char *args[4] = {sid, user};
    for (size_t i = 0; i < nextra && i < 2; i++)
        args[2 + i] = extra[i];
    run_done(s, scr, args, 2 + nextra, cb, ud);
}

void sr_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    const char *extra[] = {room};
    run_on_socket((store_redis *)st, SCR_JOIN, sid, extra, 1, cb, ud);
}

void sr_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    const char *extra[] = {room};
    run_on_socket((store_redis *)st, SCR_LEAVE, sid, extra, 1, cb, ud);
}

void sr_status_set(store *st, const char *sid, const char *status, const char *metadata,
                   store_done_fn cb, void *ud)
{
    const char *extra[] = {status ? status : "", metadata ? metadata : ""};
    run_on_socket((store_redis *)st, SCR_STATUS, sid, extra, 2, cb, ud);
}

void sr_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    run_on_socket((store_redis *)st, SCR_TOUCH, sid, NULL, 0, cb, ud);
}

/* ---- queries ---- */

/* A user record (lib.lua, "the user record"), the text of one STRING:
 *   "<since>:<lastSeen>:<sockets>:<metadata length>:<flags>:<status>\n<metadata><sockets>"
 * (lastSeen empty: equal to since; status empty: "online")
 * into `u`, NULL or absent (`v` NULL) for an unknown user. The record is what the reaper and
 * reconciliation keep true: a user is online while since is set (live sockets, or inside the
 * offline grace). Status and metadata are copied into own[0] and own[1] (freed by the caller).
 * Returns STORE_OK, STORE_ERR_NOMEM, or STORE_ERR_INTERNAL when `v` is not a record. */
static int record_read(const char *v, size_t len, store_user *u, char *own[2])
{
    u->status = "offline";
    if (!v)
        return STORE_OK;
    const char *nl = memchr(v, '\n', len);
    long long f[4];
    const char *p = v;
    for (int k = 0; k < 4; k++) {
        char *end;
        f[k] = strtoll(p, &end, 10);
        if (k == 1 && end == p) /* lastSeen left out: it equals since */
            f[k] = f[0];
        else if (end == p || f[k] < 0)
            return STORE_ERR_INTERNAL;
        if (!nl || end >= nl || *end != ':')
            return STORE_ERR_INTERNAL;
        p = end + 1;
    }
    const char *st = memchr(p, ':', (size_t)(nl - p)); /* past the flags */
    size_t rest = len - (size_t)(nl + 1 - v);
    if (!st || (unsigned long long)f[3] > rest)
        return STORE_ERR_INTERNAL;
    st++;
    u->known = true;
    u->online = f[0] > 0;
    u->since = u->online ? f[0] : 0;
    u->last_seen = f[1];
    u->sockets = f[2] > UINT32_MAX ? UINT32_MAX : (uint32_t)f[2];
    if (u->online && st < nl) {
        if (!(own[0] = strndup(st, (size_t)(nl - st))))
            return STORE_ERR_NOMEM;
        u->status = own[0];
    } else if (u->online) {
        u->status = "online";
    }
    if (f[3] > 0) {
        if (!(own[1] = strndup(nl + 1, (size_t)f[3])))
            return STORE_ERR_NOMEM;
        u->metadata = own[1];
    }
    return STORE_OK;
}

/* record_read on one reply element: a string, or nil for an unknown user. */
static int record_reply(const redisReply *r, store_user *u, char *own[2], const char *what)
{
    int err = STORE_ERR_INTERNAL;
    if (r->type == REDIS_REPLY_NIL)
        err = record_read(NULL, 0, u, own);
    else if (r->type == REDIS_REPLY_STRING)
        err = record_read(r->str, r->len, u, own);
    if (err == STORE_ERR_INTERNAL)
        log_error("unexpected redis reply", "query=%s user=\"%s\" type=%d", what, u->user, r->type);
    return err;
}

/* Per-user copies of the status and metadata read from records. */
static void owned_free(char **own, size_t n)
{
    for (size_t i = 0; own && i < 2 * n; i++)
        free(own[i]);
    free(own);
}

/* A bulk query: the stream's newest entry and one MGET of the users' records in one
 * MULTI/EXEC (the seq is read atomically with the records), pipelined: one round trip, no
 * script, each user O(1). */
typedef struct sr_bulk {
    store_redis *s;
    store_users_fn cb;
    void *ud;
    uint64_t start_ns;
    size_t n;
    unsigned left; /* replies to wait for: MULTI's, the two queued ones', EXEC's */
    int err;
    store_user *users;
    char **ids; /* the ids asked for, copied */
    char **own; /* per user: status and metadata (record_read) */
    char seq[48];
} sr_bulk;

static void bulk_free(sr_bulk *b)
{
    for (size_t i = 0; b->ids && i < b->n; i++)
        free(b->ids[i]);
    free(b->ids);
    owned_free(b->own, b->n);
    free(b->users);
    free(b);
}

/* The id of a stream's newest entry from an XREVRANGE ... COUNT 1 reply ("0-0": none). */
static int newest_id(const redisReply *r, char *out, size_t cap)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    const char *id = "0-0";
    if (r->elements > 0) {
        const redisReply *e = r->element[0];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            return -1;
        id = e->element[0]->str;
    }
    snprintf(out, cap, "%s", id);
    return 0;
}

/* EXEC's answer: {XREVRANGE's, MGET's (none when no user was asked for)}. */
static int bulk_exec(sr_bulk *b, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != (b->n ? 2 : 1) ||
        newest_id(reply->element[0], b->seq, sizeof(b->seq)) < 0 ||
        (b->n &&
         (reply->element[1]->type != REDIS_REPLY_ARRAY || reply->element[1]->elements != b->n))) {
        if (reply->type == REDIS_REPLY_ERROR)
            log_error("redis query failed", "query=users err=\"%s\"", reply->str);
        else
            log_error("unexpected redis reply", "query=users type=%d", reply->type);
        return STORE_ERR_INTERNAL;
    }
    for (size_t i = 0; i < b->n; i++) {
        b->users[i].user = b->ids[i];
        int err =
            record_reply(reply->element[1]->element[i], &b->users[i], &b->own[2 * i], "users");
        if (err != STORE_OK)
            return err;
    }
    return STORE_OK;
}

static void on_bulk_reply(const redisReply *reply, void *ud)
{
    sr_bulk *b = ud;
    store_redis *s = b->s;
    bool last = --b->left == 0;
    if (b->err == STORE_OK) {
        if (!reply) {
            b->err = sr_fail_code(s);
        } else if (last) {
            b->err = bulk_exec(b, reply);
        } else if (reply->type == REDIS_REPLY_ERROR) {
            log_error("redis query failed", "query=users err=\"%s\"", reply->str);
            b->err = STORE_ERR_INTERNAL;
        }
    }
    if (!last)
        return;
    if (!s->closing) {
        metrics_observe(s->sm.latency, "users", (double)(uv_hrtime() - b->start_ns) / 1e9);
        if (b->err == STORE_ERR_INTERNAL)
            metrics_add(s->sm.errors, "script", 1);
    }
    b->cb(b->err, b->err == STORE_OK ? b->users : NULL, b->err == STORE_OK ? b->n : 0,
          b->err == STORE_OK ? b->seq : "", b->ud);
    bulk_free(b);
}

/* The key of user `u`'s record, as lib.lua's k_user builds it, in a new string. */
static char *user_key(const store_redis *s, const char *u)
{
    size_t ulen = strlen(u), cap = strlen(s->prefix) + ulen + 32;
    char *k = malloc(cap);
    if (k)
        snprintf(k, cap, "%su:%zu:%s", s->prefix, ulen, u);
    return k;
}

static int bulk_send(store_redis *s, sr_bulk *b)
{
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    size_t multi_len[] = {5}, exec_len[] = {4};
    const char *xrev[] = {"XREVRANGE", s->stream_key, "+", "-", "COUNT", "1"};
    size_t xrev_len[] = {9, strlen(s->stream_key), 1, 1, 5, 1};
    const char **argv = malloc((b->n + 1) * sizeof(*argv));
    size_t *lens = malloc((b->n + 1) * sizeof(*lens));
    size_t made = 0;
    bool ok = argv && lens;
    if (ok) {
        argv[0] = "MGET";
        lens[0] = 4;
    }
    for (; ok && made < b->n; made++) {
        char *k = user_key(s, b->ids[made]);
        ok = k != NULL;
        argv[1 + made] = k;
        lens[1 + made] = k ? strlen(k) : 0;
    }
    if (ok) {
        /* Every request is answered, if only with NULL: the count reaches 0 exactly once, at
         * EXEC's answer (or the last failure), after every other. */
        b->left = b->n ? 4 : 3;
        redis_client_command(s->cmd, 1, multi, multi_len, on_bulk_reply, b);
        redis_client_command(s->cmd, 6, xrev, xrev_len, on_bulk_reply, b);
        if (b->n)
            redis_client_command(s->cmd, (int)b->n + 1, argv, lens, on_bulk_reply, b);
        redis_client_command(s->cmd, 1, exec, exec_len, on_bulk_reply, b);
    }
    for (size_t i = 0; argv && i < made; i++)
        free((char *)argv[1 + i]);
    free(argv);
    free(lens);
    return ok ? 0 : -1;
}

void sr_users_query(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_bulk *b = calloc(1, sizeof(*b));
    if (b) {
        b->n = n;
        b->users = calloc(n ? n : 1, sizeof(*b->users));
        b->ids = calloc(n ? n : 1, sizeof(*b->ids));
        b->own = calloc(2 * (n ? n : 1), sizeof(*b->own));
    }
    bool ok = b && b->users && b->ids && b->own;
    for (size_t i = 0; ok && i < n; i++)
        ok = (b->ids[i] = strdup(users[i])) != NULL;
    if (!ok) {
        if (b)
            bulk_free(b);
        store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    b->s = s;
    b->cb = cb;
    b->ud = ud;
    b->start_ns = uv_hrtime();
    if (!s->available) {
        /* Nobody to ask: the answer still comes from the loop. */
        b->err = sr_fail_code(s);
        b->left = 1;
        redis_client_fail(s->cmd, on_bulk_reply, b);
        return;
    }
    if (bulk_send(s, b) < 0) {
        bulk_free(b);
        store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
    }
}

static void on_room(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    const char **users = NULL;
    size_t n = 0, total = 0;
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) {
        log_error("unexpected redis reply", "script=room type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        total = (size_t)sr_reply_int(reply->element[0]);
        n = reply->elements - 1;
        if (n > 0 && !(users = calloc(n, sizeof(*users))))
            err = STORE_ERR_NOMEM;
        for (size_t i = 0; err == STORE_OK && i < n; i++)
            users[i] = reply->element[i + 1]->str ? reply->element[i + 1]->str : "";
    }
    op->cb.room(err, err == STORE_OK ? (const char *const *)users : NULL, err == STORE_OK ? n : 0,
                err == STORE_OK ? total : 0, op->ud);
    free(users);
    sr_op_free(op);
}

void sr_room_query(store *st, const char *room, size_t limit, store_room_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "room", ud);
    if (!op) {
        store_fail_room(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.room = cb;
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", limit);
    const char *args[] = {room, lim};
    sr_run_script(s, SCR_ROOM, args, NULL, 2, on_room, op);
}

/* ---- the HTTP API's reads and commands ---- */

/* members.lua answers {seq, (user, record)...}. */
static void on_members(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    store_user *users = NULL;
    char **own = NULL;
    size_t n = 0;
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 1 ||
                            reply->element[0]->type != REDIS_REPLY_STRING)) {
        log_error("unexpected redis reply", "script=members type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK && (n = reply->elements / 2) > 0 &&
        (!(users = calloc(n, sizeof(*users))) || !(own = calloc(2 * n, sizeof(*own)))))
        err = STORE_ERR_NOMEM;
    for (size_t i = 0; err == STORE_OK && i < n; i++) {
        redisReply **e = reply->element + 1 + i * 2;
        users[i].user = e[0]->str ? e[0]->str : "";
        err = record_reply(e[1], &users[i], &own[2 * i], "members");
    }
    op->cb.users(err, err == STORE_OK ? users : NULL, err == STORE_OK ? n : 0,
                 err == STORE_OK ? reply->element[0]->str : "", op->ud);
    owned_free(own, n);
    free(users);
    sr_op_free(op);
}

void sr_room_members(store *st, const char *room, store_users_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "members", ud);
    if (!op) {
        store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.users = cb;
    const char *args[] = {room};
    sr_run_script(s, SCR_MEMBERS, args, NULL, 1, on_members, op);
}

/* user.lua answers {record, sid...}. */
static void on_user(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    const char **sids = NULL;
    char *own[2] = {NULL, NULL};
    size_t n = 0;
    store_user u = {.user = op->users[0]};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) {
        log_error("unexpected redis reply", "script=user type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK)
        err = record_reply(reply->element[0], &u, own, "user");
    if (err == STORE_OK && (n = reply->elements - 1) > 0 && !(sids = calloc(n, sizeof(*sids))))
        err = STORE_ERR_NOMEM;
    for (size_t i = 0; err == STORE_OK && i < n; i++)
        sids[i] = reply->element[1 + i]->str ? reply->element[1 + i]->str : "";
    op->cb.user(err, err == STORE_OK ? &u : NULL, err == STORE_OK ? sids : NULL,
                err == STORE_OK ? n : 0, op->ud);
    free(own[0]);
    free(own[1]);
    free(sids);
    sr_op_free(op);
}

void sr_user_get(store *st, const char *user, store_user_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "user", ud);
    if (op && (op->users = calloc(1, sizeof(char *))) && (op->users[0] = strdup(user)))
        op->n = 1;
    if (!op || op->n != 1) {
        if (op)
            sr_op_free(op);
        store_fail_user(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.user = cb;
    const char *args[] = {user};
    sr_run_script(s, SCR_USER, args, NULL, 1, on_user, op);
}

static void on_page(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    const char **users = NULL;
    size_t n = 0, total = 0;
    const char *next = "";
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)) {
        log_error("unexpected redis reply", "script=page type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        total = (size_t)sr_reply_int(reply->element[0]);
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
    sr_op_free(op);
}

void sr_room_page(store *st, const char *room, const char *cursor, size_t limit, store_page_fn cb,
                  void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "page", ud);
    if (!op) {
        store_fail_page(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.page = cb;
    char lim[24];
    snprintf(lim, sizeof(lim), "%zu", limit);
    const char *args[] = {room, cursor, lim};
    sr_run_script(s, SCR_PAGE, args, NULL, 3, on_page, op);
}

static void on_stats(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    store_stats stats = {0};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)) {
        log_error("unexpected redis reply", "script=stats type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        stats.users_online = (uint64_t)sr_reply_int(reply->element[0]);
        stats.sockets = (uint64_t)sr_reply_int(reply->element[1]);
        stats.rooms = (uint64_t)sr_reply_int(reply->element[2]);
        stats.instances = (uint64_t)sr_reply_int(reply->element[3]);
    }
    op->cb.stats(err, err == STORE_OK ? &stats : NULL, op->ud);
    sr_op_free(op);
}

void sr_stats_get(store *st, store_stats_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "stats", ud);
    if (!op) {
        store_fail_stats(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.stats = cb;
    sr_run_script(s, SCR_STATS, NULL, NULL, 0, on_stats, op);
}

void sr_user_disconnect(store *st, const char *user, store_done_fn cb, void *ud)
{
    const char *args[] = {user};
    run_done((store_redis *)st, SCR_KICK, args, 1, cb, ud);
}
