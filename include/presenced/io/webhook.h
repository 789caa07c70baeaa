/* webhook — delivers presence events to an HTTP endpoint (docs/http-api.md, "Webhooks"): JSON
 * batches of up to WEBHOOK_BATCH_MAX events read every WEBHOOK_BATCH_MS from the store's
 * delivery queue (store_deliver_read), POSTed with libcurl's multi interface on the libuv loop,
 * signed with HMAC-SHA256, retried with exponential backoff for up to retry_for, acknowledged
 * (store_deliver_ack) once the receiver answered 2xx or the retries ran out.
 *
 * One batch is in flight at a time, so the receiver sees events in stream order.
 */
#ifndef PRESENCED_WEBHOOK_H
#define PRESENCED_WEBHOOK_H

#include <stdint.h>

#include <uv.h>

#include "presenced/core/metrics.h"
#include "presenced/io/store.h"

#define WEBHOOK_BATCH_MAX 100
#define WEBHOOK_BATCH_MS 250

typedef struct webhook webhook;

typedef struct webhook_opts {
    const char *url;      /* http:// or https:// (copied) */
    const char *secret;   /* HMAC key, "" or NULL for unsigned batches (copied) */
    uint32_t retry_for_s; /* give a batch up after this long */
    uint32_t timeout_ms;  /* one attempt; 0: 10000 */
    metrics *metrics;     /* deliveries, failures; may be NULL */
} webhook_opts;

/* Start delivering from `st` (borrowed: it must outlive webhook_free). Returns NULL after
 * logging why. */
webhook *webhook_new(uv_loop_t *loop, store *st, const webhook_opts *opts);
/* Stop: the batch in flight is abandoned (not acknowledged, so it is delivered again later, by
 * this or another instance). Memory is released once the loop has closed the handles and the
 * store has answered what was asked. */
void webhook_free(webhook *w);

/* The signature header value of `body`: "sha256=" and the hex HMAC-SHA256 with `secret`.
 * `out` holds at least 7 + 64 + 1 bytes. */
void webhook_sign(const char *secret, const void *body, size_t len, char out[72]);

#endif
