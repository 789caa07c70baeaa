/* Webhook delivery with libcurl's multi interface driven by the libuv loop: curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION: a uv_poll_t per socket) and when to call it back
 * (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we hand readiness back with
 * curl_multi_socket_action(). Nothing blocks the loop, name resolution included (curl's threaded
 * resolver in Debian's libcurl4-openssl).
 *
 * The cycle: read a batch from the store, POST it, on 2xx acknowledge it and read the next; on
 * failure retry the same bytes after 250 ms, 500 ms, ... up to 30 s, for up to retry_for, then
 * acknowledge it anyway (logged and counted as dropped).
 */
#include "presenced/io/webhook.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "presenced/core/metrics_def.h"
#include "presenced/io/later.h"
#include "presenced/io/log.h"

#define WH_LOCK_MS 10000     /* delivery lock: another instance takes over after this */
#define WH_BACKOFF_MAX 30000 /* ms between two attempts at most */
#define WH_TIMEOUT_MS 10000

typedef enum wh_state {
    WH_IDLE,    /* waiting for the next read */
    WH_READING, /* store_deliver_read in flight */
    WH_POSTING, /* a request in flight */
    WH_BACKOFF, /* waiting to retry */
    WH_ACKING,  /* store_deliver_ack in flight */
} wh_state;

struct webhook {
    uv_loop_t *loop;
    store *st;
    char *url, *secret;
    uint32_t retry_for_ms, timeout_ms;
    CURLM *multi;
    uv_timer_t curl_timer; /* curl's timeout */
    uv_timer_t cycle;      /* next read, or next attempt */
    uv_timer_t lock;       /* keeps the delivery lock while a batch is retried */
    int handles_open;
    int store_pending; /* store calls not answered yet */
    bool closing;
    wh_state state;
    /* The batch in flight. */
    char *body;
    size_t body_len;
    char **ids;
    size_t nids;
    uint64_t first_try_ms;
    uint32_t attempts;
    CURL *easy;
    struct curl_slist *headers;
    metrics_family *delivered, *events, *failures, *dropped, *latency;
};

typedef struct wh_poll {
    uv_poll_t poll;
    curl_socket_t fd;
    webhook *w;
} wh_poll;

static void maybe_release(webhook *w)
{
    if (!w->closing || w->handles_open > 0 || w->store_pending > 0)
        return;
    free(w->url);
    free(w->secret);
    free(w);
}

static void handle_closed(uv_handle_t *h)
{
    webhook *w = h->data;
    w->handles_open--;
    maybe_release(w);
}

/* ---- signing ---- */

void webhook_sign(const char *secret, const void *body, size_t len, char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &n);
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < n && i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[7 + 2 * i + 1] = hex[mac[i] & 15];
    }
    out[7 + 64] = 0;
}

/* ---- the batch ---- */

static void batch_clear(webhook *w)
{
    for (size_t i = 0; i < w->nids; i++)
        free(w->ids[i]);
    free(w->ids);
    free(w->body);
    w->ids = NULL;
    w->nids = 0;
    w->body = NULL;
    w->body_len = 0;
    w->attempts = 0;
}

static void schedule(webhook *w, uint64_t ms);
static void post_batch(webhook *w);

static void on_acked(int err, void *ud)
{
    webhook *w = ud;
    w->store_pending--;
    if (w->closing)
        return maybe_release(w);
    if (err)
        log_warn("webhooks: could not acknowledge a batch (it may be delivered again)",
                 "err=\"%s\"", store_strerror(err));
    bool full = w->nids == WEBHOOK_BATCH_MAX;
    batch_clear(w);
    uv_timer_stop(&w->lock);
    w->state = WH_IDLE;
    /* A full batch suggests more are waiting: read again at once. */
    schedule(w, full ? 0 : WEBHOOK_BATCH_MS);
}

static void ack_batch(webhook *w)
{
    w->state = WH_ACKING;
    w->store_pending++;
    store_deliver_ack(w->st, (const char *const *)w->ids, w->nids, on_acked, w);
}

/* Build the body {"events":[...]} of the events worth sending; keep every id for the ack. */
static int batch_build(webhook *w, const pres_event *evs, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root ? cJSON_AddArrayToObject(root, "events") : NULL;
    if (!list || !(w->ids = calloc(n ? n : 1, sizeof(char *)))) {
        cJSON_Delete(root);
        return -1;
    }
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(w->ids[w->nids] = strdup(evs[i].id)))
            break;
        w->nids++;
        cJSON *e = pres_event_public(&evs[i]);
        if (e && cJSON_AddItemToArray(list, e))
            shown++;
        else
            cJSON_Delete(e);
    }
    if (shown > 0) {
        w->body = cJSON_PrintUnformatted(root);
        w->body_len = w->body ? strlen(w->body) : 0;
    }
    metrics_add(w->events, NULL, (double)shown);
    cJSON_Delete(root);
    return w->nids == n && (shown == 0 || w->body) ? 0 : -1;
}

static void on_read(int err, const pres_event *evs, size_t n, void *ud)
{
    webhook *w = ud;
    w->store_pending--;
    if (w->closing)
        return maybe_release(w);
    w->state = WH_IDLE;
    if (err || n == 0) {
        if (err && err != STORE_ERR_UNAVAILABLE)
            log_warn("webhooks: reading the delivery queue failed", "err=\"%s\"",
                     store_strerror(err));
        return schedule(w, WEBHOOK_BATCH_MS);
    }
    if (batch_build(w, evs, n) < 0) {
        log_error("webhooks: out of memory building a batch", NULL);
        batch_clear(w);
        return schedule(w, WEBHOOK_BATCH_MS);
    }
    if (!w->body)
        return ack_batch(w); /* nothing to show (control entries only) */
    w->first_try_ms = uv_now(w->loop);
    post_batch(w);
}

static void on_lock_refreshed(int err, const pres_event *evs, size_t n, void *ud)
{
    webhook *w = ud;
    (void)err, (void)evs, (void)n;
    w->store_pending--;
    maybe_release(w);
}

static void on_lock(uv_timer_t *t)
{
    webhook *w = t->data;
    /* Count 0 refreshes the lock only: a retried batch must not be claimed by another
     * instance while this one still holds it. */
    w->store_pending++;
    store_deliver_read(w->st, 0, WH_LOCK_MS, on_lock_refreshed, w);
}

static void on_cycle(uv_timer_t *t)
{
    webhook *w = t->data;
    if (w->state == WH_BACKOFF)
        return post_batch(w);
    w->state = WH_READING;
    w->store_pending++;
    store_deliver_read(w->st, WEBHOOK_BATCH_MAX, WH_LOCK_MS, on_read, w);
}

static void schedule(webhook *w, uint64_t ms)
{
    if (!w->closing)
        later_timer(&w->cycle, on_cycle, ms);
}

/* ---- one attempt ---- */

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static void attempt_failed(webhook *w, const char *why, long status)
{
    metrics_add(w->failures, status ? "http" : "network", 1);
    uint64_t elapsed = uv_now(w->loop) - w->first_try_ms;
    if (elapsed >= w->retry_for_ms) {
        log_error("webhooks: giving up on a batch", "events=%zu attempts=%u last=\"%s\" status=%ld",
                  w->nids, w->attempts, why, status);
        metrics_add(w->dropped, NULL, 1);
        return ack_batch(w);
    }
    uint64_t delay = (uint64_t)WEBHOOK_BATCH_MS << (w->attempts < 8 ? w->attempts - 1 : 7);
    if (delay > WH_BACKOFF_MAX)
        delay = WH_BACKOFF_MAX;
    if (elapsed + delay > w->retry_for_ms)
        delay = w->retry_for_ms - elapsed;
    log_warn("webhooks: delivery failed, retrying",
             "attempt=%u status=%ld err=\"%s\" retry_ms=%llu", w->attempts, status, why,
             (unsigned long long)delay);
    w->state = WH_BACKOFF;
    schedule(w, delay);
}

static void attempt_done(webhook *w, CURLcode rc, long status)
{
    curl_multi_remove_handle(w->multi, w->easy);
    curl_easy_cleanup(w->easy);
    curl_slist_free_all(w->headers);
    w->easy = NULL;
    w->headers = NULL;
    if (w->closing)
        return;
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        metrics_add(w->delivered, NULL, 1);
        metrics_observe(w->latency, NULL, (double)(uv_now(w->loop) - w->first_try_ms) / 1000.0);
        return ack_batch(w);
    }
    attempt_failed(w, rc == CURLE_OK ? "HTTP status" : curl_easy_strerror(rc), status);
}

static void check_done(webhook *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        long status = 0;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (msg->easy_handle == w->easy)
            attempt_done(w, rc, status);
    }
}

static void post_batch(webhook *w)
{
    w->attempts++;
    w->state = WH_POSTING;
    if (!uv_is_active((uv_handle_t *)&w->lock))
        uv_timer_start(&w->lock, on_lock, WH_LOCK_MS / 3, WH_LOCK_MS / 3);
    char sig[96] = "x-presenced-signature: ";
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "content-type: application/json");
    if (h && w->secret[0]) {
        webhook_sign(w->secret, w->body, w->body_len, sig + strlen(sig));
        struct curl_slist *h2 = curl_slist_append(h, sig);
        h = h2 ? h2 : (curl_slist_free_all(h), NULL);
    }
    if (h) {
        struct curl_slist *h2 = curl_slist_append(h, "expect:");
        h = h2 ? h2 : (curl_slist_free_all(h), NULL);
    }
    if (!e || !h) {
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        return attempt_failed(w, "out of memory", 0);
    }
    curl_easy_setopt(e, CURLOPT_URL, w->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, w->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)w->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "presenced-webhook");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    w->easy = e;
    w->headers = h;
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        w->easy = NULL;
        w->headers = NULL;
        attempt_failed(w, "curl_multi_add_handle failed", 0);
    }
}

/* ---- libcurl on libuv ---- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    wh_poll *wp = p->data;
    webhook *w = wp->w;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(w->multi, wp->fd, flags, &running);
    check_done(w);
}

static void poll_closed(uv_handle_t *h)
{
    wh_poll *wp = h->data;
    webhook *w = wp->w;
    free(wp);
    w->handles_open--;
    maybe_release(w);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    webhook *w = userp;
    wh_poll *wp = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (wp) {
            uv_poll_stop(&wp->poll);
            uv_close((uv_handle_t *)&wp->poll, poll_closed);
            curl_multi_assign(w->multi, fd, NULL);
        }
        return 0;
    }
    if (!wp) {
        if (!(wp = calloc(1, sizeof(*wp))))
            return -1;
        wp->fd = fd;
        wp->w = w;
        if (uv_poll_init_socket(w->loop, &wp->poll, fd) != 0) {
            free(wp);
            return -1;
        }
        wp->poll.data = wp;
        w->handles_open++;
        curl_multi_assign(w->multi, fd, wp);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&wp->poll, events, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    webhook *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

static int on_curl_timeout(CURLM *multi, long ms, void *userp)
{
    webhook *w = userp;
    (void)multi;
    if (ms < 0)
        uv_timer_stop(&w->curl_timer);
    else
        later_timer(&w->curl_timer, on_curl_timer, (uint64_t)ms);
    return 0;
}

/* ---- lifecycle ---- */

webhook *webhook_new(uv_loop_t *loop, store *st, const webhook_opts *opts)
{
    static bool curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            log_error("webhooks: curl_global_init failed", NULL);
            return NULL;
        }
        curl_ready = true;
    }
    webhook *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->loop = loop;
    w->st = st;
    w->url = strdup(opts->url);
    w->secret = strdup(opts->secret ? opts->secret : "");
    w->retry_for_ms = opts->retry_for_s * 1000;
    w->timeout_ms = opts->timeout_ms ? opts->timeout_ms : WH_TIMEOUT_MS;
    w->multi = curl_multi_init();
    if (!w->url || !w->secret || !w->multi) {
        if (w->multi)
            curl_multi_cleanup(w->multi);
        free(w->url);
        free(w->secret);
        free(w);
        log_error("webhooks: out of memory", NULL);
        return NULL;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_curl_timeout);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    uv_timer_init(loop, &w->curl_timer);
    uv_timer_init(loop, &w->cycle);
    uv_timer_init(loop, &w->lock);
    w->curl_timer.data = w->cycle.data = w->lock.data = w;
    w->handles_open = 3;
    metrics *m = opts->metrics;
    w->delivered = metrics_def_get(m, METRIC_WEBHOOK_DELIVERIES);
    w->events = metrics_def_get(m, METRIC_WEBHOOK_EVENTS);
    w->failures = metrics_def_get(m, METRIC_WEBHOOK_FAILURES);
    w->dropped = metrics_def_get(m, METRIC_WEBHOOK_DROPPED);
    w->latency = metrics_def_get(m, METRIC_WEBHOOK_SECONDS);
    metrics_add(w->delivered, NULL, 0);
    metrics_add(w->dropped, NULL, 0);
    schedule(w, WEBHOOK_BATCH_MS);
    log_info("webhooks enabled", "url=%s signed=%s", w->url, w->secret[0] ? "yes" : "no");
    return w;
}

void webhook_free(webhook *w)
{
    if (!w || w->closing)
        return;
    w->closing = true;
    if (w->easy) {
        curl_multi_remove_handle(w->multi, w->easy);
        curl_easy_cleanup(w->easy);
        curl_slist_free_all(w->headers);
        w->easy = NULL;
    }
    /* Removing the handle released its sockets through on_curl_socket (CURL_POLL_REMOVE). */
    curl_multi_cleanup(w->multi);
    batch_clear(w);
    uv_timer_stop(&w->curl_timer);
    uv_timer_stop(&w->cycle);
    uv_timer_stop(&w->lock);
    uv_close((uv_handle_t *)&w->curl_timer, handle_closed);
    uv_close((uv_handle_t *)&w->cycle, handle_closed);
    uv_close((uv_handle_t *)&w->lock, handle_closed);
}
