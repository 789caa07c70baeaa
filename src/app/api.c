/* The HTTP API (docs/http-api.md). Every answer is JSON (the event stream and /metrics aside);
 * errors are {"error":{"code","message"}} with a 4xx/5xx.
 *
 * Requests that need the store keep an api_call (the request and what was asked) until the
 * store answers; the store calls back exactly once, also when it shuts down, so every request
 * is answered and released.
 */
#include "presenced/app/api.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/app/history.h"
#include "presenced/codec/http_args.h"
#include "presenced/codec/vec.h"
#include "presenced/core/metrics_def.h"
#include "presenced/io/log.h"
#include "presenced/io/proc_stats.h"
#include "presenced/codec/pres_cmd.h"
#include "presenced/io/log.h"

#define API_ROOM_LIMIT_DEFAULT 100
#define API_ROOM_LIMIT_MAX 1000
#define API_SSE_REPLAY_BATCH 500
#define API_SSE_REPLAY_MAX 100000   /* events one resume may replay */
#define API_SSE_QUEUE_MAX (1 << 20) /* bytes waiting for a slow SSE reader before it is dropped */
#define API_SSE_PENDING_MAX 10000   /* live events held while a resume replays */
#define API_SSE_PING_MS 15000
#define API_PROCESS_SERIES 6 /* process_* series in /metrics */

typedef struct sse_client sse_client;

struct api {
    api_opts opts;
    char *api_key;
    store *st;
    sse_client *streams;
    uv_timer_t ping;
    bool ping_running;
    history *history; /* what the live page charts */
    metrics_family *requests, *sse_clients, *dropped, *users_local, *users_cluster, *sockets_local,
        *sockets_cluster, *rooms_cluster, *instances, *connections;
    metrics_family *process[API_PROCESS_SERIES]; /* process_series, in order */
};

/* ---- answers ---- */

static void count_request(api *a, unsigned status)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    unsigned k = status / 100;
    metrics_add(a->requests, k >= 1 && k <= 5 ? classes[k - 1] : "other", 1);
}

static void respond_json(api *a, io_http_req *req, unsigned status, const char *json)
{
    count_request(a, status);
    io_http_respond(req, status, "application/json", NULL, json, strlen(json));
}

/* Answer with a cJSON object, which is freed. */
static void respond_obj(api *a, io_http_req *req, unsigned status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        count_request(a, 500);
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        io_http_respond(req, 500, "application/json", NULL, oom, sizeof(oom) - 1);
        return;
    }
    count_request(a, status);
    io_http_respond(req, status, "application/json", NULL, text, strlen(text));
    free(text);
}

static void respond_error_h(api *a, io_http_req *req, unsigned status, const char *code,
                            const char *msg, const char *const *headers)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;
    char *text = NULL;
    if (e && cJSON_AddStringToObject(e, "code", code) && cJSON_AddStringToObject(e, "message", msg))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    count_request(a, status);
    if (text)
        io_http_respond(req, status, "application/json", headers, text, strlen(text));
    else
        io_http_respond(req, 500, "application/json", NULL, "{}", 2);
    free(text);
}

static void respond_error(api *a, io_http_req *req, unsigned status, const char *code,
                          const char *msg)
{
    respond_error_h(a, req, status, code, msg, NULL);
}

static void respond_store_error(api *a, io_http_req *req, int err)
{
    respond_error(a, req, pres_err_status(err), pres_err_code(err), store_strerror(err));
}

/* ---- pending store calls ---- */

typedef struct api_call {
    api *a;
    io_http_req *req;
    char *arg; /* the user id or room asked about */
} api_call;

static api_call *call_new(api *a, io_http_req *req, const char *arg)
{
    api_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->a = a;
    c->req = req;
    if (arg && !(c->arg = strdup(arg))) {
        free(c);
        return NULL;
    }
    return c;
}

static void call_free(api_call *c)
{
    free(c->arg);
    free(c);
}

/* Visibility (docs/http-api.md): with an API key configured, every /v1 caller has proven it
 * holds the key and sees invisible users as they are; without one, the API is open to anyone
 * who can reach it and invisible users read as offline, as they do to other clients. */
static bool privileged(const api *a)
{
    return a->api_key[0] != 0;
}

static bool hidden(const api *a, bool online, const char *status)
{
    return online && !privileged(a) && status && strcmp(status, "invisible") == 0;
}

/* ---- health, readiness, metrics ---- */

static void get_healthz(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    respond_json(a, req, 200, "{\"status\":\"ok\"}");
}

static void get_readyz(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    if (!a->st)
        return respond_json(a, req, 503,
                            "{\"status\":\"unavailable\",\"reason\":\"no store (starting, "
                            "stopping or conformance mode)\"}");
    if (!store_available(a->st))
        return respond_json(a, req, 503,
                            "{\"status\":\"unavailable\",\"reason\":\"store unavailable\"}");
    respond_json(a, req, 200, "{\"status\":\"ready\"}");
}

static void local_now(api *a, api_local *l)
{
    memset(l, 0, sizeof(*l));
    if (a->opts.local)
        a->opts.local(l, a->opts.local_ud);
}

/* The process_* series (their names and help texts are in metrics_def) and where each value is
 * in a proc_stats. */
static const struct {
    metrics_def id;
    size_t offset;
} process_series[] = {
    {METRIC_PROCESS_CPU, offsetof(proc_stats, cpu_seconds)},
    {METRIC_PROCESS_RESIDENT, offsetof(proc_stats, resident_bytes)},
    {METRIC_PROCESS_VIRTUAL, offsetof(proc_stats, virtual_bytes)},
    {METRIC_PROCESS_OPEN_FDS, offsetof(proc_stats, open_fds)},
    {METRIC_PROCESS_MAX_FDS, offsetof(proc_stats, max_fds)},
    {METRIC_PROCESS_START_TIME, offsetof(proc_stats, start_time_s)},
};

_Static_assert(sizeof(process_series) / sizeof(process_series[0]) == API_PROCESS_SERIES,
               "one family per process_* series");

/* Reads the process's figures into its series; one that cannot be read is left out. */
static void process_now(api *a)
{
    proc_stats p;
    proc_stats_read(&p);
    for (size_t i = 0; i < API_PROCESS_SERIES; i++) {
        double v;
        memcpy(&v, (const char *)&p + process_series[i].offset, sizeof(v));
        if (v >= 0)
            metrics_set(a->process[i], NULL, v);
    }
}

static void render_metrics(api *a, io_http_req *req, const store_stats *cluster)
{
    api_local l;
    local_now(a, &l);
    process_now(a);
    metrics_set(a->users_local, NULL, (double)l.users);
    metrics_set(a->sockets_local, NULL, (double)l.sockets);
    metrics_set(a->connections, "polling", (double)l.polling);
    metrics_set(a->connections, "websocket", (double)l.websocket);
    if (cluster) {
        metrics_set(a->users_cluster, NULL, (double)cluster->users_online);
        metrics_set(a->sockets_cluster, NULL, (double)cluster->sockets);
        metrics_set(a->rooms_cluster, NULL, (double)cluster->rooms);
        metrics_set(a->instances, NULL, (double)cluster->instances);
    }
    size_t len = 0;
    char *text = metrics_render(a->opts.metrics, &len);
    if (!text)
        return respond_error(a, req, 500, "internal", "out of memory");
    count_request(a, 200);
    io_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len);
    free(text);
}

static void on_metrics_stats(int err, const store_stats *stats, void *ud)
{
    api_call *c = ud;
    render_metrics(c->a, c->req, err ? NULL : stats);
    call_free(c);
}

static void get_metrics(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_call *c = a->st && store_available(a->st) ? call_new(a, req, NULL) : NULL;
    if (!c)
        return render_metrics(a, req, NULL);
    store_stats_get(a->st, on_metrics_stats, c);
}

/* ---- users ---- */

static cJSON *user_json(const api *a, const store_user *u, const char *const *sids, size_t n)
{
    bool hide = hidden(a, u->online, u->status);
    bool online = u->online && !hide;
    cJSON *o = cJSON_CreateObject();
    cJSON *list = NULL;
    if (o && cJSON_AddStringToObject(o, "userId", u->user) &&
        cJSON_AddBoolToObject(o, "online", online) &&
        cJSON_AddStringToObject(o, "status", online ? u->status : "offline"))
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
    if (err)
        respond_store_error(c->a, c->req, err);
    else if (!u->known)
        respond_error(c->a, c->req, 404, "not_found", "unknown user");
    else
        respond_obj(c->a, c->req, 200, user_json(c->a, u, sids, n));
    call_free(c);
}

/* A path segment or query value that names a user or a room. */
static bool name_ok(api *a, io_http_req *req, const char *s, const char *what)
{
    if (pres_name_valid(s, strlen(s)))
        return true;
    char msg[96];
    snprintf(msg, sizeof(msg), "invalid %s (1-128 bytes of UTF-8, no control characters)", what);
    respond_error(a, req, 400, "invalid_argument", msg);
    return false;
}

static void get_user(api *a, io_http_req *req, const http_path *p)
{
    const char *user = p->seg[2];
    if (!name_ok(a, req, user, "userId"))
        return;
    api_call *c = call_new(a, req, user);
    if (!c)
        return respond_error(a, req, 500, "internal", "out of memory");
    store_user_get(a->st, user, on_user, c);
}

static void on_bulk(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    api_call *c = ud;
    (void)seq;
    if (err) {
        respond_store_error(c->a, c->req, err);
        call_free(c);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *map = o ? cJSON_AddObjectToObject(o, "users") : NULL;
    for (size_t i = 0; map && i < n; i++) {
        const store_user *u = &users[i];
        bool online = u->online && !hidden(c->a, u->online, u->status);
        /* Asking twice for one id answers once. */
        if (cJSON_GetObjectItemCaseSensitive(map, u->user))
            continue;
        cJSON *b = cJSON_CreateBool(online);
        if (!b || !cJSON_AddItemToObject(map, u->user, b)) {
            cJSON_Delete(b);
            map = NULL;
        }
    }
    if (!map) {
        cJSON_Delete(o);
        o = NULL;
    }
    respond_obj(c->a, c->req, 200, o);
    call_free(c);
}

static void bulk_query(api *a, io_http_req *req, const char *const *ids, size_t n)
{
    api_call *c = call_new(a, req, NULL);
    if (!c)
        return respond_error(a, req, 500, "internal", "out of memory");
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

static void get_users(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    const char *const *args = NULL;
    size_t nargs = io_http_query_count(req);
    const char *list = NULL;
    const char **argv = malloc((nargs ? nargs : 1) * sizeof(*argv));
    if (!argv)
        return respond_error(a, req, 500, "internal", "out of memory");
    for (size_t i = 0; i < nargs; i++)
        argv[i] = io_http_query_arg(req, i);
    args = argv;
    int rc = http_query_get(args, nargs, "ids", &list);
    free(argv);
    if (rc == HTTP_ARGS_TWICE)
        return respond_error(a, req, 400, "invalid_argument", "ids given twice");
    if (!list)
        return respond_error(a, req, 400, "invalid_argument", "ids is required (ids=a,b,c)");
    char *copy = strdup(list);
    if (!copy)
        return respond_error(a, req, 500, "internal", "out of memory");
    const char **ids;
    size_t n, bad;
    rc = http_ids_split(copy, a->opts.max_bulk_ids, &ids, &n, &bad);
    if (rc != HTTP_ARGS_OK) {
        free(copy);
        return respond_error(a, req, 400, "invalid_argument", ids_error(rc));
    }
    bulk_query(a, req, ids, n);
    free(ids);
    free(copy);
}

static void post_users_bulk(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    size_t len;
    const uint8_t *body = io_http_body(req, &len);
    const char *end = NULL;
    cJSON *o = len ? cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0) : NULL;
    if (!o || end != (const char *)body + len || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return respond_error(a, req, 400, "invalid_json",
                             "the body must be a JSON object {\"userIds\": [...]}");
    }
    const char **ids = NULL, *why = "userIds is required";
    size_t n = 0;
    int rc = pres_cmd_names(o, "userIds", a->opts.max_bulk_ids, &ids, &n, &why);
    if (rc != PRES_CMD_OK) {
        cJSON_Delete(o);
        return respond_error(a, req, 400, "invalid_argument", why);
    }
    bulk_query(a, req, ids, n);
    free(ids);
    cJSON_Delete(o);
}

static void on_disconnect(int err, void *ud)
{
    api_call *c = ud;
    if (err) {
        respond_store_error(c->a, c->req, err);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "userId", c->arg) ||
                  !cJSON_AddTrueToObject(o, "disconnecting"))) {
            cJSON_Delete(o);
            o = NULL;
        }
        respond_obj(c->a, c->req, 202, o);
    }
    call_free(c);
}

static void post_user_disconnect(api *a, io_http_req *req, const http_path *p)
{
    const char *user = p->seg[2];
    if (!name_ok(a, req, user, "userId"))
        return;
    api_call *c = call_new(a, req, user);
    if (!c)
        return respond_error(a, req, 500, "internal", "out of memory");
    store_user_disconnect(a->st, user, on_disconnect, c);
}

/* ---- rooms ---- */

static void on_room_page(int err, const char *const *users, size_t n, size_t total,
                         const char *next, void *ud)
{
    api_call *c = ud;
    if (err) {
        respond_store_error(c->a, c->req, err);
        call_free(c);
        return;
    }
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
    respond_obj(c->a, c->req, 200, o);
    call_free(c);
}

static void on_room_count(int err, const char *const *users, size_t n, size_t total,
                          const char *next, void *ud)
{
    api_call *c = ud;
    (void)users, (void)n, (void)next;
    if (err) {
        respond_store_error(c->a, c->req, err);
    } else {
        cJSON *o = cJSON_CreateObject();
        if (o && (!cJSON_AddStringToObject(o, "room", c->arg) ||
                  !cJSON_AddNumberToObject(o, "onlineCount", (double)total))) {
            cJSON_Delete(o);
            o = NULL;
        }
        respond_obj(c->a, c->req, 200, o);
    }
    call_free(c);
}

/* The query arguments as an array for http_query_get. */
static int query_value(api *a, io_http_req *req, const char *name, const char **value)
{
    size_t n = io_http_query_count(req);
    const char *stack[16];
    const char **argv = n <= 16 ? stack : malloc(n * sizeof(*argv));
    if (!argv) {
        respond_error(a, req, 500, "internal", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        argv[i] = io_http_query_arg(req, i);
    int rc = http_query_get(argv, n, name, value);
    if (argv != stack)
        free(argv);
    if (rc != HTTP_ARGS_OK) {
        respond_error(a, req, 400, "invalid_argument", "a query argument is given twice");
        return -1;
    }
    return 0;
}

static void get_room(api *a, io_http_req *req, const http_path *p)
{
    const char *room = p->seg[2];
    if (!name_ok(a, req, room, "room"))
        return;
    const char *limit_s, *cursor;
    if (query_value(a, req, "limit", &limit_s) < 0 || query_value(a, req, "cursor", &cursor) < 0)
        return;
    uint32_t limit = API_ROOM_LIMIT_DEFAULT;
    if (limit_s && http_uint_parse(limit_s, 1, API_ROOM_LIMIT_MAX, &limit) != HTTP_ARGS_OK)
        return respond_error(a, req, 400, "invalid_argument", "limit must be 1-1000");
    if (cursor && cursor[0] && !name_ok(a, req, cursor, "cursor"))
        return;
    api_call *c = call_new(a, req, room);
    if (!c)
        return respond_error(a, req, 500, "internal", "out of memory");
    store_room_page(a->st, room, cursor ? cursor : "", limit, on_room_page, c);
}

static void get_room_count(api *a, io_http_req *req, const http_path *p)
{
    const char *room = p->seg[2];
    if (!name_ok(a, req, room, "room"))
        return;
    api_call *c = call_new(a, req, room);
    if (!c)
        return respond_error(a, req, 500, "internal", "out of memory");
    /* One member is the least a page can hold; the count comes with it. */
    store_room_page(a->st, room, "", 1, on_room_count, c);
}

/* ---- stats ---- */

static void on_stats(int err, const store_stats *s, void *ud)
{
    api_call *c = ud;
    if (err) {
        respond_store_error(c->a, c->req, err);
        call_free(c);
        return;
    }
    api_local l;
    local_now(c->a, &l);
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
    respond_obj(c->a, c->req, 200, o);
    call_free(c);
}

static void get_stats(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_call *c = call_new(a, req, NULL);
    if (!c)
        return respond_error(a, req, 500, "internal", "out of memory");
    store_stats_get(a->st, on_stats, c);
}

/* ---- the event stream (Server-Sent Events) ---- */

struct sse_client {
    api *a;
    io_http_req *req;
    sse_client *prev, *next;
    bool replaying; /* resuming: live events wait in `held` until the replay is done */
    bool closed;    /* the client left during a replay: freed when the replay answers */
    char last_id[48];
    pres_event *held;
    size_t nheld, capheld;
    size_t replayed;
};

static void sse_unlink(api *a, sse_client *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (a->streams == s)
        a->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    metrics_add(a->sse_clients, NULL, -1);
}

static void sse_free(sse_client *s)
{
    for (size_t i = 0; i < s->nheld; i++)
        pres_event_deinit(&s->held[i]);
    free(s->held);
    free(s);
}

/* Drop a client: end its request, and free it unless a replay still refers to it. */
static void sse_drop(sse_client *s)
{
    api *a = s->a;
    sse_unlink(a, s);
    if (s->req)
        io_http_stream_end(s->req);
    s->req = NULL;
    if (s->replaying)
        s->closed = true;
    else
        sse_free(s);
}

static int sse_write(sse_client *s, const char *text, size_t len)
{
    if (!s->req)
        return -1;
    if (io_http_stream_write(s->req, text, len, API_SSE_QUEUE_MAX) < 0) {
        if (io_http_alive(s->req))
            metrics_add(s->a->dropped, "sse", 1);
        sse_drop(s);
        return -1;
    }
    return 0;
}

/* What a stream shows of an event: as is for privileged callers; otherwise an invisible user's
 * comings and goings are hidden, and turning invisible or visible reads as offline or online,
 * as Socket.IO clients see it. Returns the event to send (`view` or `ev`) or NULL to skip. */
static const pres_event *sse_view(const api *a, const pres_event *ev, pres_event *view)
{
    if (ev->type == PRES_EV_DISCONNECT)
        return NULL;
    if (privileged(a))
        return ev;
    bool inv = ev->status && strcmp(ev->status, "invisible") == 0;
    if (ev->type == PRES_EV_ONLINE || ev->type == PRES_EV_OFFLINE)
        return inv ? NULL : ev;
    if (ev->type != PRES_EV_UPDATE)
        return ev;
    bool was = ev->prev_status && strcmp(ev->prev_status, "invisible") == 0;
    if (was && inv)
        return NULL;
    if (!was && !inv)
        return ev;
    *view = *ev;
    view->type = inv ? PRES_EV_OFFLINE : PRES_EV_ONLINE;
    view->last_seen = ev->at;
    view->socket = NULL;
    return view;
}

static int sse_send(sse_client *s, const pres_event *ev)
{
    pres_event view;
    const pres_event *shown = sse_view(s->a, ev, &view);
    snprintf(s->last_id, sizeof(s->last_id), "%s", ev->id);
    if (!shown)
        return 0;
    cJSON *o = pres_event_public(shown);
    char *data = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!data)
        return 0;
    size_t cap = strlen(data) + strlen(ev->id) + 64;
    char *msg = malloc(cap);
    int rc = 0;
    if (msg) {
        int n = snprintf(msg, cap, "id: %s\nevent: %s\ndata: %s\n\n", ev->id,
                         pres_event_public_type(shown->type), data);
        rc = sse_write(s, msg, (size_t)n);
    }
    free(msg);
    free(data);
    return rc;
}

static int sse_hold(sse_client *s, const pres_event *ev)
{
    if (s->nheld == API_SSE_PENDING_MAX)
        return -1;
    if (VEC_RESERVE(s->held, s->nheld, s->capheld, 16) < 0)
        return -1;
    /* A deep copy through the stream form, which every field survives. */
    char *json = pres_event_encode(ev);
    pres_event *copy = &s->held[s->nheld];
    int rc = json ? pres_event_decode(json, strlen(json), copy) : -1;
    free(json);
    if (rc < 0)
        return -1;
    snprintf(copy->id, sizeof(copy->id), "%s", ev->id);
    s->nheld++;
    return 0;
}

static void sse_replay_next(sse_client *s);

/* The replay is over: what arrived meanwhile follows, minus what the replay already sent. */
static void sse_go_live(sse_client *s)
{
    s->replaying = false;
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->req && pres_event_id_cmp(s->held[i].id, s->last_id) > 0 &&
            sse_send(s, &s->held[i]) < 0) {
            /* sse_send dropped (and, replay being over, freed) the client. */
            return;
        }
    }
    for (size_t i = 0; i < s->nheld; i++)
        pres_event_deinit(&s->held[i]);
    s->nheld = 0;
}

static void on_replay(int err, const pres_event *evs, size_t n, void *ud)
{
    sse_client *s = ud;
    if (s->closed) {
        sse_free(s);
        return;
    }
    if (err == STORE_ERR_GONE) {
        /* The resume point is older than what the store keeps: say so, then go on live. */
        static const char gap[] = "event: reset\ndata: {\"reason\":\"Last-Event-ID is no longer "
                                  "retained; some events were missed\"}\n\n";
        s->replaying = false;
        if (sse_write(s, gap, sizeof(gap) - 1) < 0)
            return;
        s->replaying = true;
        sse_go_live(s);
        return;
    }
    if (err) {
        s->replaying = false;
        sse_drop(s);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        s->replaying = false; /* a failed write frees the client at once */
        if (sse_send(s, &evs[i]) < 0)
            return;
        s->replaying = true;
    }
    s->replayed += n;
    if (n == API_SSE_REPLAY_BATCH && s->replayed < API_SSE_REPLAY_MAX)
        return sse_replay_next(s);
    sse_go_live(s);
}

static void sse_replay_next(sse_client *s)
{
    if (!s->a->st) {
        s->replaying = false;
        sse_drop(s);
        return;
    }
    store_events_since(s->a->st, s->last_id, API_SSE_REPLAY_BATCH, on_replay, s);
}

static void on_sse_close(io_http_req *req, void *ud)
{
    sse_client *s = ud;
    (void)req;
    sse_drop(s);
}

static void get_events(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    const char *last = io_http_last_event_id(req), *q = NULL;
    if (query_value(a, req, "lastEventId", &q) < 0)
        return;
    if (!last[0] && q)
        last = q;
    if (last[0] && !pres_event_id_valid(last))
        return respond_error(a, req, 400, "invalid_argument",
                             "Last-Event-ID must be an event id from this stream");
    sse_client *s = calloc(1, sizeof(*s));
    if (!s)
        return respond_error(a, req, 500, "internal", "out of memory");
    s->a = a;
    s->req = req;
    if (io_http_stream_start(req, "text/event-stream", on_sse_close, s) < 0) {
        free(s);
        io_http_stream_end(req);
        return;
    }
    count_request(a, 200);
    s->next = a->streams;
    if (a->streams)
        a->streams->prev = s;
    a->streams = s;
    metrics_add(a->sse_clients, NULL, 1);
    /* The first bytes go out at once, so that clients and proxies see the stream open. */
    static const char hello[] = ": presenced event stream\n\n";
    if (sse_write(s, hello, sizeof(hello) - 1) < 0)
        return;
    if (last[0]) {
        snprintf(s->last_id, sizeof(s->last_id), "%s", last);
        s->replaying = true;
        sse_replay_next(s);
    }
}

void api_event(api *a, const pres_event *ev)
{
    history_event(a->history, ev);
    sse_client *s = a->streams;
    while (s) {
        sse_client *next = s->next;
        if (s->replaying) {
            if (sse_hold(s, ev) < 0) {
                metrics_add(a->dropped, "sse", 1);
                s->replaying = true;
                sse_drop(s);
            }
        } else {
            sse_send(s, ev);
        }
        s = next;
    }
}

static void on_ping(uv_timer_t *t)
{
    api *a = t->data;
    static const char ping[] = ": ping\n\n";
    sse_client *s = a->streams;
    while (s) {
        sse_client *next = s->next;
        if (!s->replaying)
            sse_write(s, ping, sizeof(ping) - 1);
        s = next;
    }
}

void api_shutdown(api *a)
{
    history_stop(a->history);
    while (a->streams)
        sse_drop(a->streams);
    if (a->ping_running) {
        a->ping_running = false;
        uv_timer_stop(&a->ping);
        uv_close((uv_handle_t *)&a->ping, NULL);
    }
}

/* ---- the live page ---- */

static void get_page(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    /* Self-contained (inline script and style, nothing fetched from elsewhere); the key it may
     * carry in its address is kept out of Referer headers. */
    static const char *const hdr[] = {
        "cache-control:",
        "no-store",
        "referrer-policy:",
        "no-referrer",
        "x-content-type-options:",
        "nosniff",
        "x-frame-options:",
        "DENY",
        "content-security-policy:",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
        NULL};
    count_request(a, 200);
    io_http_respond(req, 200, "text/html; charset=utf-8", hdr, api_dashboard_html,
                    api_dashboard_html_len);
}

/* The API's own description, for clients and tools (docs/openapi.json, embedded at build time). */
static void get_openapi(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    count_request(a, 200);
    io_http_respond(req, 200, "application/json", NULL, api_openapi_json, api_openapi_json_len);
}

static void get_stats_history(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    respond_obj(a, req, 200, history_json(a->history));
}

/* ---- the presence client ---- */

/* The browser build of the presence client: public (it holds no data), loadable as a module from
 * any origin (module scripts are fetched with CORS), cached briefly so that an upgraded daemon
 * serves its own version soon. */
static void get_client_js(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    static const char *const hdr[] = {"cache-control:",
                                      "public, max-age=300",
                                      "access-control-allow-origin:",
                                      "*",
                                      "x-content-type-options:",
                                      "nosniff",
                                      NULL};
    count_request(a, 200);
    io_http_respond(req, 200, "text/javascript; charset=utf-8", hdr, api_client_js,
                    api_client_js_len);
}

/* ---- routing ---- */

typedef void (*api_fn)(api *a, io_http_req *req, const http_path *p);

/* AREA_PAGE: the live page, on the main listener only, when `dashboard` is on. AREA_PUBLIC:
 * files for browsers, on the main listener, without the API key. */
typedef enum api_area { AREA_ADMIN, AREA_V1, AREA_PAGE, AREA_PUBLIC } api_area;

/* A route: segments to match ("*" matches any one), the handlers per method, and whether the
 * API key may come as ?key= (for the live page and what it reads: EventSource cannot send an
 * Authorization header). */
typedef struct api_route {
    api_area area;
    const char *seg[4];
    size_t nseg;
    api_fn get, post;
    bool needs_store;
    bool key_in_query;
} api_route;

static const api_route routes[] = {
    {AREA_PAGE, {NULL}, 0, get_page, NULL, false, true},
    {AREA_PUBLIC, {"presence-client.js"}, 1, get_client_js, NULL, false, false},
    {AREA_ADMIN, {"healthz"}, 1, get_healthz, NULL, false, false},
    {AREA_ADMIN, {"readyz"}, 1, get_readyz, NULL, false, false},
    {AREA_ADMIN, {"metrics"}, 1, get_metrics, NULL, false, false},
    {AREA_V1, {"v1", "users"}, 2, get_users, NULL, true, false},
    {AREA_V1, {"v1", "users", "bulk"}, 3, NULL, post_users_bulk, true, false},
    {AREA_V1, {"v1", "users", "*"}, 3, get_user, NULL, true, false},
    {AREA_V1, {"v1", "users", "*", "disconnect"}, 4, NULL, post_user_disconnect, true, false},
    {AREA_V1, {"v1", "rooms", "*"}, 3, get_room, NULL, true, false},
    {AREA_V1, {"v1", "rooms", "*", "count"}, 4, get_room_count, NULL, true, false},
    {AREA_V1, {"v1", "stats"}, 2, get_stats, NULL, true, true},
    {AREA_V1, {"v1", "stats", "history"}, 3, get_stats_history, NULL, false, true},
    {AREA_V1, {"v1", "events"}, 2, get_events, NULL, true, true},
    {AREA_V1, {"v1", "openapi.json"}, 2, get_openapi, NULL, false, false},
};

static bool route_matches(const api_route *r, const http_path *p)
{
    return http_route_matches(r->seg, r->nseg, p);
}

/* Whether this listener serves the area: with admin_listen set, health and metrics move there
 * and the admin listener serves nothing else. */
static bool area_here(const api *a, api_area area, int listener)
{
    if (area == AREA_PAGE && !a->opts.dashboard)
        return false;
    if (!a->opts.admin_separate)
        return true;
    return (area == AREA_ADMIN) == (listener == 1);
}

/* With an API key configured, /v1 and the live page need it: as a Bearer token, or, on the
 * routes that allow it, as ?key= (given once). Both are compared in constant time. */
static bool authorized(const api *a, io_http_req *req, const api_route *r)
{
    if (r->area == AREA_ADMIN || r->area == AREA_PUBLIC || !privileged(a))
        return true;
    if (http_bearer_match(io_http_authorization(req), a->api_key))
        return true;
    if (!r->key_in_query)
        return false;
    size_t n = io_http_query_count(req);
    const char *key = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *arg = io_http_query_arg(req, i);
        if (strncmp(arg, "key=", 4) != 0)
            continue;
        if (key)
            return false;
        key = arg + 4;
    }
    return key && http_key_match(key, a->api_key);
}

/* A query argument that io_server could not hold (longer than its buffer). */
static bool query_too_long(io_http_req *req)
{
    for (size_t i = 0; i < io_http_query_count(req); i++)
        if (io_http_query_arg(req, i)[0] == '\x01')
            return true;
    return false;
}

void api_handle(io_http_req *req, void *ud)
{
    api *a = ud;
    const char *method = io_http_method(req);
    if (query_too_long(req))
        return respond_error(a, req, 414, "uri_too_long", "query argument too long");
    http_path p;
    int rc = http_path_split(io_http_path(req), &p);
    if (rc == HTTP_ARGS_TOO_LONG)
        return respond_error(a, req, 414, "uri_too_long", "path too long");
    /* An empty segment or too many of them: no route has that shape. */
    if (rc != HTTP_ARGS_OK)
        return respond_error(a, req, 404, "not_found", "Not found");
    const api_route *found = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !found; i++)
        if (route_matches(&routes[i], &p) && area_here(a, routes[i].area, io_http_listener(req)))
            found = &routes[i];
    if (!found)
        return respond_error(a, req, 404, "not_found", "Not found");
    if (!authorized(a, req, found)) {
        static const char *const hdr[] = {"www-authenticate:", "Bearer", NULL};
        return respond_error_h(a, req, 401, "unauthorized",
                               found->key_in_query
                                   ? "Authorization: Bearer <api_key> or ?key=<api_key> required"
                                   : "Authorization: Bearer <api_key> required",
                               hdr);
    }
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    api_fn fn = is_get ? found->get : strcmp(method, "POST") == 0 ? found->post : NULL;
    if (!fn) {
        static const char *const allow_get[] = {"allow:", "GET, HEAD", NULL};
        static const char *const allow_post[] = {"allow:", "POST", NULL};
        return respond_error_h(a, req, 405, "method_not_allowed", "Method not allowed",
                               found->get ? allow_get : allow_post);
    }
    if (found->needs_store && !a->st)
        return respond_error(a, req, 503, "store_unavailable", "no store");
    fn(a, req, &p);
}

/* ---- lifecycle ---- */

api *api_new(const api_opts *opts)
{
    api *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->opts = *opts;
    if (!(a->api_key = strdup(opts->api_key ? opts->api_key : ""))) {
        free(a);
        return NULL;
    }
    metrics *m = opts->metrics;
    a->requests = metrics_def_get(m, METRIC_HTTP_REQUESTS);
    a->sse_clients = metrics_def_get(m, METRIC_EVENT_STREAMS);
    metrics_set(a->sse_clients, NULL, 0);
    a->dropped = metrics_def_get(m, METRIC_SLOW_CONSUMERS);
    metrics_add(a->dropped, "sse", 0);
    a->connections = metrics_def_get(m, METRIC_CONNECTIONS);
    a->sockets_local = metrics_def_get(m, METRIC_SOCKETS_LOCAL);
    a->users_local = metrics_def_get(m, METRIC_USERS_LOCAL);
    a->users_cluster = metrics_def_get(m, METRIC_USERS_ONLINE);
    a->sockets_cluster = metrics_def_get(m, METRIC_SOCKETS_CLUSTER);
    a->rooms_cluster = metrics_def_get(m, METRIC_ROOMS);
    a->instances = metrics_def_get(m, METRIC_INSTANCES);
    for (size_t i = 0; i < API_PROCESS_SERIES; i++)
        a->process[i] = metrics_def_get(m, process_series[i].id);
    if (opts->loop) {
        uv_timer_init(opts->loop, &a->ping);
        a->ping.data = a;
        uv_timer_start(&a->ping, on_ping, API_SSE_PING_MS, API_SSE_PING_MS);
        uv_unref((uv_handle_t *)&a->ping);
        a->ping_running = true;
        a->history =
            history_new(opts->loop, opts->stats_interval_ms ? opts->stats_interval_ms : 10000);
    }
    return a;
}

void api_attach_store(api *a, store *st)
{
    a->st = st;
    history_attach_store(a->history, st);
}

void api_free(api *a)
{
    if (!a)
        return;
    while (a->streams)
        sse_drop(a->streams);
    history_free(a->history);
    free(a->api_key);
    free(a);
}
