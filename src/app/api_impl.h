/* What the files of the HTTP API share (api.c: answers, health, metrics, routing, lifecycle;
 * api_query.c: users, rooms, stats; api_sse.c: the event stream). Not a contract: see
 * presenced/api.h.
 */
#ifndef PRESENCED_API_IMPL_H
#define PRESENCED_API_IMPL_H

#include "presenced/app/api.h"
#include "presenced/app/history.h"
#include "presenced/codec/http_args.h"

#define API_SSE_PING_MS 15000
#define API_PROCESS_SERIES 6 /* process_* series in /metrics */

typedef struct sse_client sse_client;

struct api {
    api_opts opts;
    char *api_key;
    char eio_path[256];  /* where Socket.IO is served */
    char not_found[384]; /* the answer to an unknown path: where things are */
    bool not_found_logged;
    store *st;
    sse_client *streams;
    uv_timer_t ping;
    bool ping_running;
    history *history; /* what the live page charts */
    metrics_family *requests, *sse_clients, *dropped, *users_local, *users_cluster, *sockets_local,
        *sockets_cluster, *rooms_cluster, *instances, *connections;
    metrics_family *process[API_PROCESS_SERIES]; /* process_series, in order */
};

/* A request waiting for the store: the request and what was asked. */
typedef struct api_call {
    api *a;
    io_http_req *req;
    char *arg;    /* the user id or room asked about */
    bool detail;  /* status and metadata per user (?detail=1) */
    char *cursor; /* a detailed room page: after this member */
    uint32_t limit;
} api_call;

/* Answers. Each counts the request by status class. */
void api_count_request(api *a, unsigned status);
void api_respond_json(api *a, io_http_req *req, unsigned status, const char *json);
/* Answer with a cJSON object, which is freed (NULL answers 500, out of memory). */
void api_respond_obj(api *a, io_http_req *req, unsigned status, cJSON *obj);
/* {"error":{"code","message"}}; `headers` as io_http_respond takes them (NULL for none). */
void api_respond_error_h(api *a, io_http_req *req, unsigned status, const char *code,
                         const char *msg, const char *const *headers);
void api_respond_error(api *a, io_http_req *req, unsigned status, const char *code,
                       const char *msg);
/* A store failure, with the client code and HTTP status the policy gives it. */
void api_respond_store_error(api *a, io_http_req *req, int err);

api_call *api_call_new(api *a, io_http_req *req, const char *arg);
void api_call_free(api_call *c);
/* A store callback's common first step: on `err`, answers it (api_respond_store_error), frees
 * the call and returns true; returns false, touching nothing, when err is 0. */
bool api_call_failed(api_call *c, int err);

/* What only this instance knows. */
void api_local_now(api *a, api_local *l);
/* A path segment or query value that names a user or a room; answers 400 when it does not. */
bool api_name_ok(api *a, io_http_req *req, const char *s, const char *what);
/* Query argument `name` (NULL when absent); answers 400 and returns -1 when given twice. */
int api_query_value(api *a, io_http_req *req, const char *name, const char **value);

/* Handlers (api_query.c, api_sse.c). */
void api_get_user(api *a, io_http_req *req, const http_path *p);
void api_get_users(api *a, io_http_req *req, const http_path *p);
void api_post_users_bulk(api *a, io_http_req *req, const http_path *p);
void api_post_user_disconnect(api *a, io_http_req *req, const http_path *p);
void api_get_room(api *a, io_http_req *req, const http_path *p);
void api_get_room_count(api *a, io_http_req *req, const http_path *p);
void api_get_stats(api *a, io_http_req *req, const http_path *p);
void api_get_events(api *a, io_http_req *req, const http_path *p);

/* End an event stream and release it (api_sse.c). */
void api_sse_drop(sse_client *s);
/* The keep-alive comment to every live stream. */
void api_sse_ping(api *a);

#endif
