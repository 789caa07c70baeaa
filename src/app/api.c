/* The HTTP API (docs/http-api.md). Every answer is JSON (the event stream and /metrics aside);
 * errors are {"error":{"code","message"}} with a 4xx/5xx.
 *
 * Requests that need the store keep an api_call (the request and what was asked) until the
 * store answers; the store calls back exactly once, also when it shuts down, so every request
 * is answered and released.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_impl.h"
#include "presenced/app/history.h"
#include "presenced/core/metrics_def.h"
#include "presenced/io/log.h"
#include "presenced/io/proc_stats.h"

/* ---- answers ---- */

void api_count_request(api *a, unsigned status)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    unsigned k = status / 100;
    metrics_add(a->requests, k >= 1 && k <= 5 ? classes[k - 1] : "other", 1);
}

void api_respond_json(api *a, io_http_req *req, unsigned status, const char *json)
{
    api_count_request(a, status);
    io_http_respond(req, status, "application/json", NULL, json, strlen(json));
}

/* Answer with a cJSON object, which is freed. */
void api_respond_obj(api *a, io_http_req *req, unsigned status, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        api_count_request(a, 500);
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        io_http_respond(req, 500, "application/json", NULL, oom, sizeof(oom) - 1);
        return;
    }
    api_count_request(a, status);
    io_http_respond(req, status, "application/json", NULL, text, strlen(text));
    free(text);
}

void api_respond_error_h(api *a, io_http_req *req, unsigned status, const char *code,
                         const char *msg, const char *const *headers)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;
    char *text = NULL;
    if (e && cJSON_AddStringToObject(e, "code", code) && cJSON_AddStringToObject(e, "message", msg))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    api_count_request(a, status);
    if (text)
        io_http_respond(req, status, "application/json", headers, text, strlen(text));
    else
        io_http_respond(req, 500, "application/json", NULL, "{}", 2);
    free(text);
}

void api_respond_error(api *a, io_http_req *req, unsigned status, const char *code, const char *msg)
{
    api_respond_error_h(a, req, status, code, msg, NULL);
}

void api_respond_store_error(api *a, io_http_req *req, int err)
{
    api_respond_error(a, req, pres_err_status(err), pres_err_code(err), store_strerror(err));
}

/* ---- pending store calls ---- */

api_call *api_call_new(api *a, io_http_req *req, const char *arg)
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

void api_call_free(api_call *c)
{
    free(c->arg);
    free(c->cursor);
    free(c);
}

bool api_call_failed(api_call *c, int err)
{
    if (!err)
        return false;
    api_respond_store_error(c->a, c->req, err);
    api_call_free(c);
    return true;
}

/* With an API key configured, /v1 callers must prove they hold it (authorized()). */
static bool privileged(const api *a)
{
    return a->api_key[0] != 0;
}

/* ---- health, readiness, metrics ---- */

static void get_healthz(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_respond_json(a, req, 200, "{\"status\":\"ok\"}");
}

static void get_readyz(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    if (!a->st)
        return api_respond_json(a, req, 503,
                                "{\"status\":\"unavailable\",\"reason\":\"no store (starting, "
                                "stopping or conformance mode)\"}");
    if (!store_available(a->st))
        return api_respond_json(a, req, 503,
                                "{\"status\":\"unavailable\",\"reason\":\"store unavailable\"}");
    api_respond_json(a, req, 200, "{\"status\":\"ready\"}");
}

void api_local_now(api *a, api_local *l)
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
    api_local_now(a, &l);
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
        return api_respond_error(a, req, 500, "internal", "out of memory");
    api_count_request(a, 200);
    io_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len);
    free(text);
}

static void on_metrics_stats(int err, const store_stats *stats, void *ud)
{
    api_call *c = ud;
    render_metrics(c->a, c->req, err ? NULL : stats);
    api_call_free(c);
}

static void get_metrics(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_call *c = a->st && store_available(a->st) ? api_call_new(a, req, NULL) : NULL;
    if (!c)
        return render_metrics(a, req, NULL);
    store_stats_get(a->st, on_metrics_stats, c);
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
    api_count_request(a, 200);
    io_http_respond(req, 200, "text/html; charset=utf-8", hdr, api_dashboard_html,
                    api_dashboard_html_len);
}

/* The API's own description, for clients and tools (docs/openapi.json, embedded at build time). */
static void get_openapi(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_count_request(a, 200);
    io_http_respond(req, 200, "application/json", NULL, api_openapi_json, api_openapi_json_len);
}

static void get_stats_history(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    api_respond_obj(a, req, 200, history_json(a->history));
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
    api_count_request(a, 200);
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
    {AREA_V1, {"v1", "users"}, 2, api_get_users, NULL, true, false},
    {AREA_V1, {"v1", "users", "bulk"}, 3, NULL, api_post_users_bulk, true, false},
    {AREA_V1, {"v1", "users", "*"}, 3, api_get_user, NULL, true, false},
    {AREA_V1, {"v1", "users", "*", "disconnect"}, 4, NULL, api_post_user_disconnect, true, false},
    {AREA_V1, {"v1", "rooms", "*"}, 3, api_get_room, NULL, true, false},
    {AREA_V1, {"v1", "rooms", "*", "count"}, 4, api_get_room_count, NULL, true, false},
    {AREA_V1, {"v1", "stats"}, 2, api_get_stats, NULL, true, true},
    {AREA_V1, {"v1", "stats", "history"}, 3, get_stats_history, NULL, false, true},
    {AREA_V1, {"v1", "events"}, 2, api_get_events, NULL, true, true},
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

/* An unknown path: the answer names the configured path, and the first one is logged (a
 * client with the wrong path retries for ever; once is enough to find it). */
static void not_found(api *a, io_http_req *req)
{
    if (!a->not_found_logged) {
        a->not_found_logged = true;
        log_warn("request for an unknown path (logged once)", "path=\"%.200s\" socketio_path=%s",
                 io_http_path(req), a->eio_path);
    }
    api_respond_error(a, req, 404, "not_found", a->not_found);
}

void api_handle(io_http_req *req, void *ud)
{
    api *a = ud;
    const char *method = io_http_method(req);
    if (query_too_long(req))
        return api_respond_error(a, req, 414, "uri_too_long", "query argument too long");
    http_path p;
    int rc = http_path_split(io_http_path(req), &p);
    if (rc == HTTP_ARGS_TOO_LONG)
        return api_respond_error(a, req, 414, "uri_too_long", "path too long");
    /* An empty segment or too many of them: no route has that shape. */
    if (rc != HTTP_ARGS_OK)
        return not_found(a, req);
    const api_route *found = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !found; i++)
        if (route_matches(&routes[i], &p) && area_here(a, routes[i].area, io_http_listener(req)))
            found = &routes[i];
    if (!found)
        return not_found(a, req);
    if (!authorized(a, req, found)) {
        static const char *const hdr[] = {"www-authenticate:", "Bearer", NULL};
        return api_respond_error_h(
            a, req, 401, "unauthorized",
            found->key_in_query ? "Authorization: Bearer <api_key> or ?key=<api_key> required"
                                : "Authorization: Bearer <api_key> required",
            hdr);
    }
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    api_fn fn = is_get ? found->get : strcmp(method, "POST") == 0 ? found->post : NULL;
    if (!fn) {
        static const char *const allow_get[] = {"allow:", "GET, HEAD", NULL};
        static const char *const allow_post[] = {"allow:", "POST", NULL};
        return api_respond_error_h(a, req, 405, "method_not_allowed", "Method not allowed",
                                   found->get ? allow_get : allow_post);
    }
    if (found->needs_store && !a->st)
        return api_respond_error(a, req, 503, "store_unavailable", "no store");
    fn(a, req, &p);
}

/* ---- lifecycle ---- */

static void on_ping(uv_timer_t *t)
{
    api_sse_ping(t->data);
}

void api_shutdown(api *a)
{
    history_stop(a->history);
    while (a->streams)
        api_sse_drop(a->streams);
    if (a->ping_running) {
        a->ping_running = false;
        uv_timer_stop(&a->ping);
        uv_close((uv_handle_t *)&a->ping, NULL);
    }
}

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
    /* The usual cause of a 404 is a client with the wrong `path`: say what it is. */
    snprintf(a->eio_path, sizeof(a->eio_path), "%s",
             opts->eio_path && opts->eio_path[0] ? opts->eio_path : "/socket.io/");
    snprintf(a->not_found, sizeof(a->not_found),
             "Not found: Socket.IO is served at %s (the path setting; socket.io-client's path "
             "option), the HTTP API under /v1/",
             a->eio_path);
    a->opts.eio_path = NULL;
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
        api_sse_drop(a->streams);
    history_free(a->history);
    free(a->api_key);
    free(a);
}
