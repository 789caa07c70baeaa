/* api — the HTTP API (docs/http-api.md): health, readiness, metrics and, on top of the store,
 * the /v1 endpoints and the Server-Sent Events stream. Requests arrive through io_http; answers
 * may come after a store round trip.
 */
#ifndef PRESENCED_API_H
#define PRESENCED_API_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "presenced/io/io_http.h"
#include "presenced/core/metrics.h"
#include "presenced/codec/pres_event.h"
#include "presenced/core/policy.h"
#include "presenced/io/store.h"

typedef struct api api;

/* What only this instance knows, for /v1/stats and /metrics. */
typedef struct api_local {
    uint32_t users;              /* distinct users with a local socket */
    uint32_t sockets;            /* identified local Socket.IO sockets */
    uint32_t polling, websocket; /* Engine.IO connections by transport */
} api_local;

typedef struct api_opts {
    uv_loop_t *loop;
    const char *api_key;        /* "" or NULL: /v1 is open (copied) */
    bool admin_separate;        /* /healthz, /readyz, /metrics answer on the admin listener only */
    bool dashboard;             /* serve the live page at GET / (else 404) */
    uint32_t stats_interval_ms; /* between two history samples (GET /v1/stats/history) */
    uint32_t max_bulk_ids;      /* ids in one bulk query */
    const char *eio_path;       /* where Socket.IO is served (copied), named by 404 answers */
    policy *policy;             /* what callers see of users and events (borrowed) */
    metrics *metrics;           /* rendered by /metrics; may be NULL */
    /* Fills what only this instance knows (may be NULL). */
    void (*local)(api_local *out, void *ud);
    void *local_ud;
} api_opts;

/* The live page (src/app/dashboard.html), embedded at build time by src/app/embed_html.cmake. */
extern const char api_dashboard_html[];
extern const size_t api_dashboard_html_len;
/* The OpenAPI 3.1 document of the HTTP API (docs/openapi.json), served at /v1/openapi.json. */
extern const char api_openapi_json[];
extern const size_t api_openapi_json_len;
/* The presence client (clients/js/presence.js), served at GET /presence-client.js. */
extern const char api_client_js[];
extern const size_t api_client_js_len;

api *api_new(const api_opts *opts);
/* The store the endpoints ask; NULL (conformance modes, shutdown) leaves only /healthz,
 * /readyz and /metrics answering. */
void api_attach_store(api *a, store *st);
/* A presence event from the store (borrowed): goes to the event streams. */
void api_event(api *a, const pres_event *ev);
/* End every event stream and close the keep-alive timer: the first step of a shutdown, while
 * the loop still runs. */
void api_shutdown(api *a);
/* Free the api (after api_shutdown and once the loop has run). */
void api_free(api *a);
/* The io_http handler; `ud` is the api. */
void api_handle(io_http_req *req, void *ud);

#endif
