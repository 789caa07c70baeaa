/* The presence gateway: reads. presence:query and presence:room:query answered from the store,
 * and the views of presence:sync (the watch module batches their changes). What a socket may read
 * and what it sees of each user are the policy's decisions (policy_read_scope,
 * policy_user_view); this file reads the store and writes the answers.
 */
#include <stdlib.h>
#include <string.h>

#include "gateway_impl.h"
#include "presenced/codec/json.h"
#include "presenced/io/log.h"

/* ---- presence:query ---- */

/* One user of a presence:query answer: "id":{online, status, lastSeen, metadata}. Metadata (JSON
 * object text, from the store) shows only while the user is online and visible to the viewer. */
static int user_entry(buf *out, const store_user *u, bool online, const char *status)
{
    const char *meta = online && u->metadata ? u->metadata : "null";
    if (json_append_string(out, u->user) < 0 ||
        buf_append_str(out, online ? ":{\"online\":true,\"status\":"
                                   : ":{\"online\":false,\"status\":") < 0 ||
        json_append_string(out, status) < 0 || buf_append_str(out, ",\"lastSeen\":") < 0 ||
        (u->last_seen ? json_append_number(out, (double)u->last_seen)
                      : buf_append_str(out, "null")) < 0 ||
        buf_append_str(out, ",\"metadata\":") < 0 || buf_append_str(out, meta) < 0)
        return -1;
    return buf_append_byte(out, '}');
}

/* The arguments of a presence:query answer, [{"ok":true,"users":{...},"seq":...}], written as
 * text: a cJSON tree would cost several allocations per user, most of the work for a query of
 * thousands of ids. The ids are unique (the policy removed repeats before asking). Returns 0 or
 * -1 (memory). */
static int users_answer(gateway *gw, const char *me, const store_user *users, size_t n,
                        const char *seq, buf *out)
{
    int rc = buf_append_str(out, "[{\"ok\":true,\"users\":{");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const store_user *u = &users[i];
        policy_viewer v = {.identified = me != NULL, .self = me && strcmp(me, u->user) == 0};
        bool online;
        const char *status;
        policy_user_view(gw->pol, &v, u->online, u->status, &online, &status);
        if ((i && buf_append_byte(out, ',') < 0) || user_entry(out, u, online, status) < 0)
            rc = -1;
    }
    if (rc == 0 && (buf_append_str(out, "},\"seq\":") < 0 || json_append_string(out, seq) < 0))
        rc = -1;
    return rc == 0 ? buf_append_str(out, "}]") : -1;
}

/* The socket a store answer is for, or NULL when there is nothing more to do: the socket is gone,
 * or the store failed (answered). `r` is freed then. */
static gw_sock *answering(gw_req *r, int err)
{
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (g && !err)
        return g;
    if (g)
        gw_ack_store_error(g->sock, r->ack_id, err);
    gw_req_free(r);
    return NULL;
}

static void on_users(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = answering(r, err);
    if (!g)
        return;
    buf text;
    buf_init(&text);
    if (r->ack_id != SIO_NO_ACK) {
        if (users_answer(r->gw, policy_sock_user(g->ps), users, n, seq, &text) == 0)
            sio_ack_text(g->sock, r->ack_id, (const char *)text.data, text.len);
        else
            gw_ack_error(g->sock, r->ack_id, POLICY_E_INTERNAL, "out of memory");
    }
    buf_deinit(&text);
    gw_req_free(r);
}

/* ---- presence:room:query ---- */

/* {ok, room, onlineCount, users: [ids], members: [view entries], nextCursor, seq}: one page of
 * the room, as GET /v1/rooms/{room} pages it, from a snapshot that says which event it reflects.
 * `members` is what a view of the room shows (watch_members_json). */
static void on_room(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = answering(r, err);
    if (!g)
        return;
    cJSON *reply = gw_reply_ok();
    bool built = reply && watch_room_page(reply, r->arg, users, n, r->cursor ? r->cursor : "",
                                          r->page_limit, seq) == 0;
    gw_ack_built(g->sock, r->ack_id, reply, built);
    gw_req_free(r);
}

int gateway_query(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    gw_req *r = gw_req_new(gw, d->act, g, ack_id, d->room);
    if (!r)
        return -1;
    if (d->act == POLICY_ACT_QUERY) {
        store_users_query(gw->st, d->ids, d->nids, on_users, r);
        return 0;
    }
    if (d->cursor[0] && !(r->cursor = strdup(d->cursor))) {
        gw_req_free(r);
        return -1;
    }
    r->page_limit = d->page_limit;
    store_room_members(gw->st, d->room, on_room, r);
    return 0;
}

/* ---- views (presence:sync) ---- */

/* A member of `room` that no longer watches it hears the room's single events again. Returns 0
 * or -1 (memory). */
static int room_group_restore(gateway *gw, gw_sock *g, const char *room)
{
    if (!room || watch_has_room(gw->watch, g->sid, room) || !policy_sock_in_room(g->ps, room))
        return 0;
    return gw_group_join(g->sock, ROOM_GROUP, room);
}

/* The snapshot of a presence:sync: {ok, room?, seq, users: [view entries]}. */
static void on_sync(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    gw_req *r = ud;
    gw_sock *g = gw_sock_find(r->gw, r->sid);
    if (!g) {
        gw_req_free(r);
        return;
    }
    /* Batches sent from now on know which form this socket needs. */
    watch_snapshot(r->gw->watch, g->sid, r->arg, r->watch, err ? NULL : seq);
    if (err) {
        room_group_restore(r->gw, g, r->arg);
        gw_ack_store_error(g->sock, r->ack_id, err);
        gw_req_free(r);
        return;
    }
    cJSON *reply = gw_reply_ok(), *list = watch_members_json(users, n, r->arg == NULL);
    bool ok = reply && list && (!r->arg || cJSON_AddStringToObject(reply, "room", r->arg)) &&
              cJSON_AddStringToObject(reply, "seq", seq);
    if (ok && cJSON_AddItemToObject(reply, "users", list))
        list = NULL;
    else
        ok = false;
    cJSON_Delete(list);
    gw_ack_built(g->sock, r->ack_id, reply, ok);
    gw_req_free(r);
}

/* Whether one more view fits the socket's limits (rooms watched count like rooms joined, ids on
 * a contact list like subscriptions). Answers limit_exceeded when not. */
static bool sync_fits(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    const policy_opts *o = policy_options(gw->pol);
    const char *limit = NULL;
    if (d->room && o->max_rooms_per_socket && !watch_has_room(gw->watch, g->sid, d->room) &&
        watch_room_count(gw->watch, g->sid) >= o->max_rooms_per_socket)
        limit = "rooms_per_socket";
    else if (!d->room && o->max_subscriptions_per_socket &&
             d->nids > o->max_subscriptions_per_socket)
        limit = "subscriptions_per_socket";
    if (!limit)
        return true;
    metrics_add(gw->limit_hits, limit, 1);
    gw_ack_error(g->sock, ack_id, POLICY_E_LIMIT_EXCEEDED, "too many views on this socket");
    return false;
}

/* presence:sync: watch the view and answer its snapshot. The socket joins the view before the
 * snapshot is read, so the batches it gets and the snapshot overlap rather than leave a gap; the
 * seqs tell the client what to drop. Returns 0 (answered or to be answered) or -1 (memory). */
int gateway_sync(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    if (!sync_fits(gw, g, d, ack_id))
        return 0;
    gw_req *r = gw_req_new(gw, d->act, g, ack_id, d->room);
    int rc = !r        ? -1
             : d->room ? watch_room(gw->watch, g->sock, d->room, d->batch_ms, &r->watch)
                       : watch_users(gw->watch, g->sock, d->ids, d->nids, d->batch_ms, &r->watch);
    if (rc < 0) {
        if (r)
            gw_req_free(r);
        return -1;
    }
    if (d->room) {
        /* A member of the room now gets its changes as diffs only. */
        gw_group_leave(g->sock, ROOM_GROUP, d->room);
        store_room_members(gw->st, d->room, on_sync, r);
    } else {
        store_users_query(gw->st, d->ids, d->nids, on_sync, r);
    }
    return 0;
}

/* presence:unsync: stop watching. Returns 0 or -1 (memory). */
int gateway_unsync(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id)
{
    watch_stop(gw->watch, g->sid, d->room);
    if (room_group_restore(gw, g, d->room) < 0)
        return -1;
    gw_ack_json(g->sock, ack_id, gw_reply_ok());
    return 0;
}
