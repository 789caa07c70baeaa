/* metrics_def — the table of every metric family (see presenced/core/metrics_def.h). */
#include "presenced/core/metrics_def.h"

typedef struct metrics_def_row {
    metrics_kind kind;
    const char *name;
    const char *label; /* NULL: no label */
    const char *help;
    const double *bounds; /* histograms */
    size_t nbounds;
} metrics_def_row;

/* Store operations take from a fraction of a millisecond (memory) to a Redis round trip. */
static const double store_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                      0.01,   0.025,   0.05,   0.1,   0.25,   1};
/* Webhook batches are accepted in one attempt or after retries of up to webhook_retry_for. */
static const double webhook_bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300};
#define BOUNDS(b) b, sizeof(b) / sizeof(b[0])

static const metrics_def_row rows[METRIC_COUNT] = {
    [METRIC_CONNECTIONS] = {METRICS_GAUGE, "presenced_connections", "transport",
                            "Engine.IO connections on this instance, by transport."},
    [METRIC_HTTP_REQUESTS] = {METRICS_COUNTER, "presenced_http_requests_total", "code",
                              "HTTP API requests answered, by status class."},
    [METRIC_EVENT_STREAMS] = {METRICS_GAUGE, "presenced_event_streams", NULL,
                              "Open GET /v1/events streams."},
    [METRIC_SLOW_CONSUMERS] = {METRICS_COUNTER, "presenced_slow_consumers_dropped_total", "kind",
                               "Connections closed because they did not read fast enough, by "
                               "kind."},
    [METRIC_LIMIT_HITS] = {METRICS_COUNTER, "presenced_limit_hits_total", "limit",
                           "Requests refused or connections closed by a limit, by limit."},
    [METRIC_REFUSED] = {METRICS_COUNTER, "presenced_refused_total", "cause",
                        "Handshakes, requests and connections refused by the Engine.IO server, "
                        "by cause."},
    [METRIC_SOCKETS_LOCAL] = {METRICS_GAUGE, "presenced_sockets_local", NULL,
                              "Identified Socket.IO sockets on this instance."},
    [METRIC_USERS_LOCAL] = {METRICS_GAUGE, "presenced_users_local", NULL,
                            "Distinct users with a socket on this instance."},
    [METRIC_USERS_ONLINE] = {METRICS_GAUGE, "presenced_users_online", NULL,
                             "Users online cluster-wide (grace included)."},
    [METRIC_SOCKETS_CLUSTER] = {METRICS_GAUGE, "presenced_sockets_cluster", NULL,
                                "Identified sockets on live instances."},
    [METRIC_ROOMS] = {METRICS_GAUGE, "presenced_rooms", NULL,
                      "Rooms with at least one socket, cluster-wide."},
    [METRIC_INSTANCES] = {METRICS_GAUGE, "presenced_instances", NULL,
                          "Live instances in the cluster."},
    [METRIC_EVENTS_IN] = {METRICS_COUNTER, "presenced_events_in_total", "type",
                          "Presence events received from the store, by type."},
    [METRIC_EVENTS_OUT] = {METRICS_COUNTER, "presenced_events_out_total", "event",
                           "Presence events fanned out to local Socket.IO clients (once per "
                           "event), by event name."},
    [METRIC_AUTH_TOKENS] = {METRICS_COUNTER, "presenced_auth_tokens_total", "result",
                            "Tokens checked (auth=jwt), by result: ok, invalid, expired, "
                            "user_mismatch, refreshed, expired_disconnect."},
    [METRIC_STORE_SECONDS] = {METRICS_HISTOGRAM, "presenced_store_command_seconds", "command",
                              "Store operation latency, request to answer, by operation.",
                              BOUNDS(store_bounds)},
    [METRIC_STORE_ERRORS] = {METRICS_COUNTER, "presenced_store_errors_total", "kind",
                             "Store operations that failed, by kind."},
    [METRIC_REAPED_SOCKETS] = {METRICS_COUNTER, "presenced_reaped_sockets_total", NULL,
                               "Sockets of dead instances closed by this instance's reaps."},
    [METRIC_WEBHOOK_DELIVERIES] = {METRICS_COUNTER, "presenced_webhook_deliveries_total", NULL,
                                   "Webhook batches the receiver accepted (2xx)."},
    [METRIC_WEBHOOK_EVENTS] = {METRICS_COUNTER, "presenced_webhook_events_total", NULL,
                               "Events put into webhook batches."},
    [METRIC_WEBHOOK_FAILURES] = {METRICS_COUNTER, "presenced_webhook_failures_total", "kind",
                                 "Failed webhook attempts (each retry counts), by kind."},
    [METRIC_WEBHOOK_DROPPED] = {METRICS_COUNTER, "presenced_webhook_dropped_total", NULL,
                                "Webhook batches given up after webhook_retry_for."},
    [METRIC_WEBHOOK_SECONDS] = {METRICS_HISTOGRAM, "presenced_webhook_delivery_seconds", NULL,
                                "Time from a batch's first attempt to its acceptance.",
                                BOUNDS(webhook_bounds)},
    [METRIC_PROCESS_CPU] = {METRICS_COUNTER, "process_cpu_seconds_total", NULL,
                            "Total user and system CPU time spent in seconds."},
    [METRIC_PROCESS_RESIDENT] = {METRICS_GAUGE, "process_resident_memory_bytes", NULL,
                                 "Resident memory size in bytes."},
    [METRIC_PROCESS_VIRTUAL] = {METRICS_GAUGE, "process_virtual_memory_bytes", NULL,
                                "Virtual memory size in bytes."},
    [METRIC_PROCESS_OPEN_FDS] = {METRICS_GAUGE, "process_open_fds", NULL,
                                 "Number of open file descriptors."},
    [METRIC_PROCESS_MAX_FDS] = {METRICS_GAUGE, "process_max_fds", NULL,
                                "Maximum number of open file descriptors."},
    [METRIC_PROCESS_START_TIME] = {METRICS_GAUGE, "process_start_time_seconds", NULL,
                                   "Start time of the process since unix epoch in seconds."},
};

metrics_family *metrics_def_get(metrics *m, metrics_def id)
{
    if (id < 0 || id >= METRIC_COUNT || !rows[id].name)
        return NULL;
    const metrics_def_row *r = &rows[id];
    return metrics_family_get(m, r->kind, r->name, r->help, r->label, r->bounds, r->nbounds);
}
