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
/* Each row names its fields: a counter or gauge has no buckets. */
static const metrics_def_row rows[METRIC_COUNT] = {
    [METRIC_CONNECTIONS] = {.kind = METRICS_GAUGE,
                            .name = "presenced_connections",
                            .label = "transport",
                            .help = "Engine.IO connections on this instance, by transport."},
    [METRIC_HTTP_REQUESTS] = {.kind = METRICS_COUNTER,
                              .name = "presenced_http_requests_total",
                              .label = "code",
                              .help = "HTTP API requests answered, by status class."},
    [METRIC_EVENT_STREAMS] = {.kind = METRICS_GAUGE,
                              .name = "presenced_event_streams",
                              .label = NULL,
                              .help = "Open GET /v1/events streams."},
    [METRIC_SLOW_CONSUMERS] =
        {.kind = METRICS_COUNTER,
         .name = "presenced_slow_consumers_dropped_total",
         .label = "kind",
         .help = "Connections closed because they did not read fast enough, by kind."},
    [METRIC_SESSIONS_CLOSED] =
        {.kind = METRICS_COUNTER,
         .name = "presenced_sessions_closed_total",
         .label = "reason",
         .help = "Engine.IO sessions ended, by reason (client close, transport close, ping "
                 "timeout, ...)."},
    [METRIC_LIMIT_HITS] = {.kind = METRICS_COUNTER,
                           .name = "presenced_limit_hits_total",
                           .label = "limit",
                           .help = "Requests refused or connections closed by a limit, by limit."},
    [METRIC_REFUSED] = {.kind = METRICS_COUNTER,
                        .name = "presenced_refused_total",
                        .label = "cause",
                        .help = "Handshakes, requests and connections refused by the Engine.IO "
                                "server, by cause."},
    [METRIC_SOCKETS_LOCAL] = {.kind = METRICS_GAUGE,
                              .name = "presenced_sockets_local",
                              .label = NULL,
                              .help = "Identified Socket.IO sockets on this instance."},
    [METRIC_USERS_LOCAL] = {.kind = METRICS_GAUGE,
                            .name = "presenced_users_local",
                            .label = NULL,
                            .help = "Distinct users with a socket on this instance."},
    [METRIC_USERS_ONLINE] = {.kind = METRICS_GAUGE,
                             .name = "presenced_users_online",
                             .label = NULL,
                             .help = "Users online cluster-wide (grace included)."},
    [METRIC_SOCKETS_CLUSTER] = {.kind = METRICS_GAUGE,
                                .name = "presenced_sockets_cluster",
                                .label = NULL,
                                .help = "Identified sockets on live instances."},
    [METRIC_ROOMS] = {.kind = METRICS_GAUGE,
                      .name = "presenced_rooms",
                      .label = NULL,
                      .help = "Rooms with at least one socket, cluster-wide."},
    [METRIC_INSTANCES] = {.kind = METRICS_GAUGE,
                          .name = "presenced_instances",
                          .label = NULL,
                          .help = "Live instances in the cluster."},
    [METRIC_EVENTS_IN] = {.kind = METRICS_COUNTER,
                          .name = "presenced_events_in_total",
                          .label = "type",
                          .help = "Presence events received from the store, by type."},
    [METRIC_EVENTS_OUT] = {.kind = METRICS_COUNTER,
                           .name = "presenced_events_out_total",
                           .label = "event",
                           .help = "Presence events fanned out to local Socket.IO clients (once "
                                   "per event), by event name."},
    [METRIC_AUTH_TOKENS] = {.kind = METRICS_COUNTER,
                            .name = "presenced_auth_tokens_total",
                            .label = "result",
                            .help = "Tokens checked (auth=jwt), by result: ok, invalid, expired, "
                                    "user_mismatch, refreshed, expired_disconnect."},
    [METRIC_STORE_SECONDS] = {.kind = METRICS_HISTOGRAM,
                              .name = "presenced_store_command_seconds",
                              .label = "command",
                              .help = "Store operation latency, request to answer, by operation.",
                              .bounds = store_bounds,
                              .nbounds = sizeof(store_bounds) / sizeof(store_bounds[0])},
    [METRIC_STORE_ERRORS] = {.kind = METRICS_COUNTER,
                             .name = "presenced_store_errors_total",
                             .label = "kind",
                             .help = "Store operations that failed, by kind."},
    [METRIC_REAPED_SOCKETS] = {.kind = METRICS_COUNTER,
                               .name = "presenced_reaped_sockets_total",
                               .label = NULL,
                               .help =
                                   "Sockets of dead instances closed by this instance's reaps."},
    [METRIC_WEBHOOK_DELIVERIES] = {.kind = METRICS_COUNTER,
                                   .name = "presenced_webhook_deliveries_total",
                                   .label = NULL,
                                   .help = "Webhook batches the receiver accepted (2xx)."},
    [METRIC_WEBHOOK_EVENTS] = {.kind = METRICS_COUNTER,
                               .name = "presenced_webhook_events_total",
                               .label = NULL,
                               .help = "Events put into webhook batches."},
    [METRIC_WEBHOOK_FAILURES] = {.kind = METRICS_COUNTER,
                                 .name = "presenced_webhook_failures_total",
                                 .label = "kind",
                                 .help = "Failed webhook attempts (each retry counts), by kind."},
    [METRIC_WEBHOOK_DROPPED] = {.kind = METRICS_COUNTER,
                                .name = "presenced_webhook_dropped_total",
                                .label = NULL,
                                .help = "Webhook batches given up after webhook_retry_for."},
    [METRIC_WEBHOOK_SECONDS] = {.kind = METRICS_HISTOGRAM,
                                .name = "presenced_webhook_delivery_seconds",
                                .label = NULL,
                                .help = "Time from a batch's first attempt to its acceptance.",
                                .bounds = webhook_bounds,
                                .nbounds = sizeof(webhook_bounds) / sizeof(webhook_bounds[0])},
    [METRIC_PROCESS_CPU] = {.kind = METRICS_COUNTER,
                            .name = "process_cpu_seconds_total",
                            .label = NULL,
                            .help = "Total user and system CPU time spent in seconds."},
    [METRIC_PROCESS_RESIDENT] = {.kind = METRICS_GAUGE,
                                 .name = "process_resident_memory_bytes",
                                 .label = NULL,
                                 .help = "Resident memory size in bytes."},
    [METRIC_PROCESS_VIRTUAL] = {.kind = METRICS_GAUGE,
                                .name = "process_virtual_memory_bytes",
                                .label = NULL,
                                .help = "Virtual memory size in bytes."},
    [METRIC_PROCESS_OPEN_FDS] = {.kind = METRICS_GAUGE,
                                 .name = "process_open_fds",
                                 .label = NULL,
                                 .help = "Number of open file descriptors."},
    [METRIC_PROCESS_MAX_FDS] = {.kind = METRICS_GAUGE,
                                .name = "process_max_fds",
                                .label = NULL,
                                .help = "Maximum number of open file descriptors."},
    [METRIC_PROCESS_START_TIME] = {.kind = METRICS_GAUGE,
                                   .name = "process_start_time_seconds",
                                   .label = NULL,
                                   .help =
                                       "Start time of the process since unix epoch in seconds."},
};

metrics_family *metrics_def_get(metrics *m, metrics_def id)
{
    if (id < 0 || id >= METRIC_COUNT || !rows[id].name)
        return NULL;
    const metrics_def_row *r = &rows[id];
    return metrics_family_get(m, r->kind, r->name, r->help, r->label, r->bounds, r->nbounds);
}
