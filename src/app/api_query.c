/* The HTTP API's queries: users, rooms, stats (docs/http-api.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_impl.h"
#include "presenced/app/watch.h"
#include "presenced/codec/json.h"
#include "presenced/codec/pres_cmd.h"

/* ---- users ---- */

/* What an API caller sees of a user: invisible users as they are with a key configured (the
 * caller proved it holds it), else as offline, as other clients see them. */
static bool shown_online(const api *a, const store_user *u, const char **status)
{
    const policy_viewer v = {.api = true};
    bool online;
    policy_user_view(a->opts.policy, &v, u->online, u->status, &online, status);
    return online;
}

static cJSON *user_json(const api *a, const store_user *u, const char *const *sids, size_t n)
{
    const char *status;
    bool online = shown_online(a, u, &status);
    cJSON *o = cJSON_CreateObject();
    cJSON *list = NULL;
    if (o && cJSON_AddStringToObject(o, "userId", u->user) &&
        cJSON_AddBoolToObject(o, "online", online) && cJSON_AddStringToObject(o, "status", status))
        list = cJSON_AddArrayToObject(o, "socketIds");
    for (size_t i = 0; list && online && i < n; i++) {
        cJSON *s = cJSON_CreateString(sids[i]);
        if (!s || !cJSON_AddItemToArray(list, s)) {
            cJSON_Delete(s);
            list = NULL;
        }
    }
    cJSON *meta = u->metadata ? cJSON_Parse(u->metadata) : cJSON_CreateNull();
    if (!list || !meta ||
        !(u->last_seen ? cJSON_AddNumberToObject(o, "lastSeen", (double)u->last_seen)
                       : cJSON_AddNullToObject(o, "lastSeen")) ||
        !cJSON_AddItemToObject(o, "metadata", meta)) {
        cJSON_Delete(meta);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void on_user(int err, const store_user *u, const char *const *sids, size_t n, void *ud)
{
    api_call *c = ud;
    if (api_call_failed(c, err))
        return;
    if (!u->known)
        api_respond_error(c->a, c->req, 404, "not_found", "unknown user");
    else
        api_respond_obj(c->a, c->req, 200, user_json(c->a, u, sids, n));
    api_call_free(c);
}

/* A path segment or query value that names a user or a room. */
bool api_name_ok(api *a, io_http_req *req, const char *s, const char *what)
{
    if (pres_name_valid(s, strlen(s)))
        return true;
    char msg[96];
    snprintf(msg, sizeof(msg), "invalid %s (1-128 bytes of UTF-8, no control characters)", what);
    api_respond_error(a, req, 400, "invalid_argument", msg);
    return false;
}

/* The call of a request about the user or room named by path segment 2 (`what` names it in an
 * error), or NULL after answering the error. */
static api_call *named_call(api *a, io_http_req *req, const http_path *p, const char *what)
{
    const char *name = p->seg[2];
    if (!api_name_ok(a, req, name, what))
        return NULL;
    api_call *c = api_call_new(a, req, name);
    if (!c)
        api_respond_error(a, req, 500, "internal", "out of memory");
    return c;
}

void api_get_user(api *a, io_http_req *req, const http_path *p)
{
    api_call *c = named_call(a, req, p, "userId");
    if (c)
        store_user_get(a->st, c->arg, on_user, c);
}

/* One user of a detailed bulk answer: {online, status, lastSeen, metadata}, as GET
 * /v1/users/{id} shows it without the id and the sockets (which a bulk read does not fetch). */
static cJSON *detail_json(const api *a, const store_user *u)
{
    cJSON *o = user_json(a, u, NULL, 0);
    if (o) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "userId");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "socketIds");
    }
    return o;
}

static void on_bulk(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    api_call *c = ud;
    if (api_call_failed(c, err))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON *map = o ? cJSON_AddObjectToObject(o, "users") : NULL;
    /* The ids are unique (bulk_query removed repeats before asking). */
    for (size_t i = 0; map && i < n; i++) {
        const char *status;
        cJSON *b = c->detail ? detail_json(c->a, &users[i])
                             : cJSON_CreateBool(shown_online(c->a, &users[i], &status));
        if (!b || !cJSON_AddItemToObject(map, users[i].user, b)) {
            cJSON_Delete(b);
            map = NULL;
        }
    }
    /* Details come from one read, which `seq` names (as presence:query's). */
    if (map && c->detail && !cJSON_AddStringToObject(o, "seq", seq))
        map = NULL;
    if (!map) {
        cJSON_Delete(o);
        o = NULL;
    }
    api_respond_obj(c->a, c->req, 200, o);
    api_call_free(c);
}

/* Asking twice for one id answers once (and asks the store once). `ids` is reordered. */
static void bulk_query(api *a, io_http_req *req, const char **ids, size_t n, bool detail)
{
    api_call *c = api_call_new(a, req, NULL);
    if (!c || (n = policy_ids_unique(a->opts.policy, ids, n)) == (size_t)-1) {
        if (c)
            api_call_free(c);
        return api_respond_error(a, req, 500, "internal", "out of memory");
    }
    c->detail = detail;
    store_users_query(a->st, ids, n, on_bulk, c);
}

static const char *ids_error(int rc)
{
    switch (rc) {
    case HTTP_ARGS_EMPTY:
        return "no ids given";
    case HTTP_ARGS_TOO_MANY:
        return "more ids than max_bulk_ids";
    default:
        return "invalid id (1-128 bytes of UTF-8, no control characters, not empty)";
    }
}

/* ?detail=1 (or true): answers carry status and metadata per user. Returns 0 with *detail, or
 * -1 after answering 400. */
static int read_detail(api *a, io_http_req *req, bool *detail)
{
    const char *v = NULL;
    if (api_query_value(a, req, "detail", &v) < 0)
        return -1;
    *detail = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    if (!v || *detail || strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
        return 0;
    api_respond_error(a, req, 400, "invalid_argument", "detail must be 1, true, 0 or false");
    return -1;
}

void api_get_users(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    bool detail;
    if (read_detail(a, req, &detail) < 0)
        return;
    const char *const *args = NULL;
    size_t nargs = io_http_query_count(req);
    const char *list = NULL;
    const char **argv = malloc((nargs ? nargs : 1) * sizeof(*argv));
    if (!argv)
        return api_respond_error(a, req, 500, "internal", "out of memory");
    for (size_t i = 0; i < nargs; i++)
        argv[i] = io_http_query_arg(req, i);
    args = argv;
    int rc = http_query_get(args, nargs, "ids", &list);
    free(argv);
    if (rc == HTTP_ARGS_TWICE)
        return api_respond_error(a, req, 400, "invalid_argument", "ids given twice");
    if (!list)
        return api_respond_error(a, req, 400, "invalid_argument", "ids is required (ids=a,b,c)");
    char *copy = strdup(list);
    if (!copy)
        return api_respond_error(a, req, 500, "internal", "out of memory");
    const char **ids;
    size_t n, bad;
    rc = http_ids_split(copy, a->opts.max_bulk_ids, &ids, &n, &bad);
    if (rc != HTTP_ARGS_OK) {
        free(copy);
        return api_respond_error(a, req, 400, "invalid_argument", ids_error(rc));
    }
    bulk_query(a, req, ids, n, detail);
    free(ids);
    free(copy);
}

void api_post_users_bulk(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    size_t len;
    const uint8_t *body = io_http_body(req, &len);
    const char *end = NULL;
    /* json_lex_ok: an id holding "\u0000" would read as cut short there, i.e. as another id. */
    cJSON *o = len && json_lex_ok(body, len)
                   ? cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0)
                   : NULL;
    if (!o || end != (const char *)body + len || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return api_respond_error(a, req, 400, "invalid_json",
                                 "the body must be a JSON object {\"userIds\": [...]}");
    }
    const char **ids = NULL, *why = "userIds is required";
    size_t n = 0;
    int rc = pres_cmd_names(o, "userIds", a->opts.max_bulk_ids, &ids, &n, &why);
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(o, "detail");
    if (rc == PRES_CMD_OK && detail && !cJSON_IsBool(detail)) {
        free(ids);
        rc = PRES_CMD_INVALID;
        why = "detail must be true or false";
    }
    if (rc != PRES_CMD_OK) {
        cJSON_Delete(o);
        return api_respond_error(a, req, 400, "invalid_argument", why);
    }
    bulk_query(a, req, ids, n, cJSON_IsTrue(detail));
    free(ids);
    cJSON_Delete(o);
}

static void on_disconnect(int err, void *ud)
{
    api_call *c = ud;
    if (api_call_failed(c, err))
        return;
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddStringToObject(o, "userId", c->arg) ||
              !cJSON_AddTrueToObject(o, "disconnecting"))) {
        cJSON_Delete(o);
        o = NULL;
    }
    api_respond_obj(c->a, c->req, 202, o);
    api_call_free(c);
}

void api_post_user_disconnect(api *a, io_http_req *req, const http_path *p)
{
    api_call *c = named_call(a, req, p, "userId");
    if (c)
        store_user_disconnect(a->st, c->arg, on_disconnect, c);
}

/* ---- rooms ---- */

static void on_room_page(int err, const char *const *users, size_t n, size_t total,
                         const char *next, void *ud)
{
    api_call *c = ud;
    if (api_call_failed(c, err))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON *list = NULL;
    if (o && cJSON_AddStringToObject(o, "room", c->arg) &&
        cJSON_AddNumberToObject(o, "onlineCount", (double)total))
        list = cJSON_AddArrayToObject(o, "users");
    for (size_t i = 0; list && i < n; i++) {
        cJSON *s = cJSON_CreateString(users[i]);
        if (!s || !cJSON_AddItemToArray(list, s)) {
            cJSON_Delete(s);
            list = NULL;
        }
    }
    if (list && !(next[0] ? cJSON_AddStringToObject(o, "nextCursor", next)
                          : cJSON_AddNullToObject(o, "nextCursor")))
        list = NULL;
    if (!list) {
        cJSON_Delete(o);
        o = NULL;
    }
    api_respond_obj(c->a, c->req, 200, o);
    api_call_free(c);
}

static void on_room_count(int err, const char *const *users, size_t n, size_t total,
                          const char *next, void *ud)
{
    api_call *c = ud;
    (void)users, (void)n, (void)next;
    if (api_call_failed(c, err))
        return;
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddStringToObject(o, "room", c->arg) ||
              !cJSON_AddNumberToObject(o, "onlineCount", (double)total))) {
        cJSON_Delete(o);
        o = NULL;
    }
    api_respond_obj(c->a, c->req, 200, o);
    api_call_free(c);
}

/* The query arguments as an array for http_query_get. */
int api_query_value(api *a, io_http_req *req, const char *name, const char **value)
{
    size_t n = io_http_query_count(req);
    const char *stack[16];
    const char **argv = n <= 16 ? stack : malloc(n * sizeof(*argv));
    if (!argv) {
        api_respond_error(a, req, 500, "internal", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        argv[i] = io_http_query_arg(req, i);
    int rc = http_query_get(argv, n, name, value);
    if (argv != stack)
        free(argv);
    if (rc != HTTP_ARGS_OK) {
        api_respond_error(a, req, 400, "invalid_argument", "a query argument is given twice");
        return -1;
    }
    return 0;
}

/* ?detail=1: the page from one read of the whole room with its members' status and metadata,
 * as presence:room:query answers it: {room, onlineCount, users, members, nextCursor, seq}. */
static void on_room_detail(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    api_call *c = ud;
    if (api_call_failed(c, err))
        return;
    cJSON *o = cJSON_CreateObject();
    if (o && watch_room_page(o, c->arg, users, n, c->cursor ? c->cursor : "", c->limit, seq) < 0) {
        cJSON_Delete(o);
        o = NULL;
    }
    api_respond_obj(c->a, c->req, 200, o);
    api_call_free(c);
}

void api_get_room(api *a, io_http_req *req, const http_path *p)
{
    const char *room = p->seg[2];
    if (!api_name_ok(a, req, room, "room"))
        return;
    const char *limit_s, *cursor;
    if (api_query_value(a, req, "limit", &limit_s) < 0 ||
        api_query_value(a, req, "cursor", &cursor) < 0)
        return;
    uint32_t limit = POLICY_ROOM_PAGE_DEFAULT;
    if (limit_s && http_uint_parse(limit_s, 1, POLICY_ROOM_PAGE_MAX, &limit) != HTTP_ARGS_OK)
        return api_respond_error(a, req, 400, "invalid_argument", "limit must be 1-1000");
    if (cursor && cursor[0] && !api_name_ok(a, req, cursor, "cursor"))
        return;
    bool detail;
    if (read_detail(a, req, &detail) < 0)
        return;
    api_call *c = api_call_new(a, req, room);
    if (!c || (detail && cursor && !(c->cursor = strdup(cursor)))) {
        if (c)
            api_call_free(c);
        return api_respond_error(a, req, 500, "internal", "out of memory");
    }
    c->limit = limit;
    if (detail)
        store_room_members(a->st, room, on_room_detail, c);
    else
        store_room_page(a->st, room, cursor ? cursor : "", limit, on_room_page, c);
}

void api_get_room_count(api *a, io_http_req *req, const http_path *p)
{
    api_call *c = named_call(a, req, p, "room");
    /* One member is the least a page can hold; the count comes with it. */
    if (c)
        store_room_page(a->st, c->arg, "", 1, on_room_count, c);
}

/* ---- stats ---- */

static void on_stats(int err, const store_stats *s, void *ud)
{
    api_call *c = ud;
    if (api_call_failed(c, err))
        return;
    api_local l;
    api_local_now(c->a, &l);
    cJSON *o = cJSON_CreateObject();
    cJSON *cl = o ? cJSON_AddObjectToObject(o, "cluster") : NULL;
    cJSON *in = o ? cJSON_AddObjectToObject(o, "instance") : NULL;
    cJSON *conns = in ? cJSON_AddObjectToObject(in, "connections") : NULL;
    if (!cl || !conns || !cJSON_AddNumberToObject(cl, "usersOnline", (double)s->users_online) ||
        !cJSON_AddNumberToObject(cl, "sockets", (double)s->sockets) ||
        !cJSON_AddNumberToObject(cl, "rooms", (double)s->rooms) ||
        !cJSON_AddNumberToObject(cl, "instances", (double)s->instances) ||
        !cJSON_AddNumberToObject(in, "users", (double)l.users) ||
        !cJSON_AddNumberToObject(in, "sockets", (double)l.sockets) ||
        !cJSON_AddNumberToObject(conns, "polling", (double)l.polling) ||
        !cJSON_AddNumberToObject(conns, "websocket", (double)l.websocket) ||
        !cJSON_AddNumberToObject(in, "eventStreams", metrics_value(c->a->sse_clients, NULL))) {
        cJSON_Delete(o);
        o = NULL;
    }
    api_respond_obj(c->a, c->req, 200, o);
    api_call_free(c);
}

void api_get_stats(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_call *c = api_call_new(a, req, NULL);
    if (!c)
        return api_respond_error(a, req, 500, "internal", "out of memory");
    store_stats_get(a->st, on_stats, c);
}
