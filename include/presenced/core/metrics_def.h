/* metrics_def — every metric family the daemon exposes, declared in one table (name, kind, help
 * text, label, histogram buckets), so that two modules counting into one family (a limit hit
 * at the listener and in the gateway, a slow consumer over Socket.IO and over SSE) cannot
 * describe it differently.
 *
 * Pure code: no I/O, no clock, no globals.
 */
#ifndef PRESENCED_METRICS_DEF_H
#define PRESENCED_METRICS_DEF_H

#include "presenced/core/metrics.h"

typedef enum metrics_def {
    /* Connections and the HTTP API (io_server, api). */
    METRIC_CONNECTIONS,
    METRIC_HTTP_REQUESTS,
    METRIC_EVENT_STREAMS,
    METRIC_SLOW_CONSUMERS,
    METRIC_SESSIONS_CLOSED,
    METRIC_LIMIT_HITS,
    METRIC_REFUSED,
    /* Presence on this instance and in the cluster (api, gateway). */
    METRIC_SOCKETS_LOCAL,
    METRIC_USERS_LOCAL,
    METRIC_USERS_ONLINE,
    METRIC_SOCKETS_CLUSTER,
    METRIC_ROOMS,
    METRIC_INSTANCES,
    METRIC_EVENTS_IN,
    METRIC_EVENTS_OUT,
    METRIC_AUTH_TOKENS,
    /* The store. */
    METRIC_STORE_SECONDS,
    METRIC_STORE_ERRORS,
    METRIC_REAPED_SOCKETS,
    /* Webhooks. */
    METRIC_WEBHOOK_DELIVERIES,
    METRIC_WEBHOOK_EVENTS,
    METRIC_WEBHOOK_FAILURES,
    METRIC_WEBHOOK_DROPPED,
    METRIC_WEBHOOK_SECONDS,
    /* The process itself (api), under the names every Prometheus client library gives them. */
    METRIC_PROCESS_CPU,
    METRIC_PROCESS_RESIDENT,
    METRIC_PROCESS_VIRTUAL,
    METRIC_PROCESS_OPEN_FDS,
    METRIC_PROCESS_MAX_FDS,
    METRIC_PROCESS_START_TIME,
    METRIC_COUNT
} metrics_def;

/* The family `id` of registry `m`, declared from the table on first use (later calls find the
 * same family). NULL when `m` is NULL or memory is short; metrics_* calls accept NULL. */
metrics_family *metrics_def_get(metrics *m, metrics_def id);

#endif
