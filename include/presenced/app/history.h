/* history — the recent history that the live page charts (GET /v1/stats/history): every
 * `interval_ms` a sample of the cluster's users online and sockets (read from the store) and of
 * the online/offline transitions this instance saw in the interval (every event of the cluster
 * reaches every instance), in a stats_ring of the last STATS_RING_SLOTS samples.
 */
#ifndef PRESENCED_HISTORY_H
#define PRESENCED_HISTORY_H

#include <cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "presenced/codec/pres_event.h"
#include "presenced/io/store.h"

typedef struct history history;

/* Starts sampling every interval_ms on `loop` (the timer does not keep the loop alive). Returns
 * NULL (memory). */
history *history_new(uv_loop_t *loop, uint32_t interval_ms);

/* The store to read the counts from (NULL: none, samples then hold unknown counts). */
void history_attach_store(history *h, store *st);

/* Counts a presence event of the cluster (online and offline transitions). */
void history_event(history *h, const pres_event *ev);

/* The samples as JSON (stats_ring_json): a new tree the caller frees, NULL (memory). */
cJSON *history_json(const history *h);

/* Stops sampling (shutdown). */
void history_stop(history *h);

/* Stops and releases the history (its memory goes once no store read is pending). Call
 * history_stop and let the loop run first, as for every handle. */
void history_free(history *h);

#endif
