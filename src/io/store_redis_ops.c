/* store_redis_ops — the Redis store's state changes (one script each, answered with a code) and
 * its queries (presence:query, room members, the HTTP API's reads).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/log.h"
#include "store_redis_int.h"

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
    if (err == STORE_ERR_NO_SOCKET && op->what != sr_script_names[SCR_OPEN])
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
    sr_run_script(s, scr, args, NULL, n, on_done, op);
}

void sr_socket_open(store *st, const char *sid, const char *user, const char *status,
                    const char *metadata, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    const char *args[] = {sid, user, status ? status : "", metadata ? metadata : ""};
    run_done(s, SCR_OPEN, args, 4, cb, ud);
}

void sr_socket_assert(store *st, const char *sid, const char *user, const char *status,
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

void sr_socket_close(store *st, const char *sid, bool graceful, store_done_fn cb, void *ud)
{
    const char *args[] = {sid, graceful ? "1" : "0"};
    run_done((store_redis *)st, SCR_CLOSE, args, 2, cb, ud);
}

void sr_room_join(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    const char *args[] = {sid, room};
    run_done((store_redis *)st, SCR_JOIN, args, 2, cb, ud);
}

void sr_room_leave(store *st, const char *sid, const char *room, store_done_fn cb, void *ud)
{
    const char *args[] = {sid, room};
    run_done((store_redis *)st, SCR_LEAVE, args, 2, cb, ud);
}

void sr_status_set(store *st, const char *sid, const char *status, const char *metadata,
                   store_done_fn cb, void *ud)
{
    const char *args[] = {sid, status, metadata ? metadata : ""};
    run_done((store_redis *)st, SCR_STATUS, args, 3, cb, ud);
}

void sr_touch(store *st, const char *sid, store_done_fn cb, void *ud)
{
    const char *args[] = {sid};
    run_done((store_redis *)st, SCR_TOUCH, args, 1, cb, ud);
}

/* ---- queries ---- */

static void on_users(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
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
            u->known = sr_reply_int(e[0]) != 0;
            int64_t live = sr_reply_int(e[1]);
            bool in_grace = sr_reply_int(e[6]) != 0;
            u->sockets = live > 0 ? (uint32_t)live : 0;
            /* Within the offline grace a user still reads as online: no offline went out
             * (as in the memory store). */
            u->online = live > 0 || in_grace;
            const char *status = sr_reply_str_or_null(e[2]);
            u->status = u->online ? (status ? status : "online") : "offline";
            u->metadata = sr_reply_str_or_null(e[3]);
            u->last_seen = sr_reply_int(e[4]);
            u->since = u->online ? sr_reply_int(e[5]) : 0;
        }
    }
    op->cb.users(err, err == STORE_OK ? users : NULL, err == STORE_OK ? op->n : 0,
                 err == STORE_OK ? reply->element[op->n * 7]->str : "", op->ud);
    free(users);
    sr_op_free(op);
}

void sr_users_query(store *st, const char *const *users, size_t n, store_users_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "users", ud);
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
            sr_op_free(op);
            store_fail_users(&s->base, cb, ud, STORE_ERR_NOMEM);
            return;
        }
        op->n++;
    }
    sr_run_script(s, SCR_USERS, users, NULL, n, on_users, op);
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

/* members.lua answers {seq, (user, status, metadata)...}: members are online by definition. */
static void on_members(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
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
        const char *status = sr_reply_str_or_null(e[1]);
        users[i] = (store_user){.user = e[0]->str ? e[0]->str : "",
                                .known = true,
                                .online = true,
                                .status = status ? status : "online",
                                .metadata = sr_reply_str_or_null(e[2])};
    }
    op->cb.users(err, err == STORE_OK ? users : NULL, err == STORE_OK ? n : 0,
                 err == STORE_OK ? reply->element[0]->str : "", op->ud);
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

static void on_user(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    const char **sids = NULL;
    size_t n = 0;
    store_user u = {.user = op->users[0]};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 7)) {
        log_error("unexpected redis reply", "script=user type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK) {
        redisReply **e = reply->element;
        u.known = sr_reply_int(e[0]) != 0;
        int64_t live = sr_reply_int(e[1]);
        u.sockets = live > 0 ? (uint32_t)live : 0;
        u.online = live > 0 || sr_reply_int(e[6]) != 0;
        const char *status = sr_reply_str_or_null(e[2]);
        u.status = u.online ? (status ? status : "online") : "offline";
        u.metadata = sr_reply_str_or_null(e[3]);
        u.last_seen = sr_reply_int(e[4]);
        u.since = u.online ? sr_reply_int(e[5]) : 0;
        n = reply->elements - 7;
        if (n > 0 && !(sids = calloc(n, sizeof(*sids))))
            err = STORE_ERR_NOMEM;
        for (size_t i = 0; err == STORE_OK && i < n; i++)
            sids[i] = e[7 + i]->str ? e[7 + i]->str : "";
    }
    op->cb.user(err, err == STORE_OK ? &u : NULL, err == STORE_OK ? sids : NULL,
                err == STORE_OK ? n : 0, op->ud);
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
