/* io_http — plain HTTP requests that are not Engine.IO, handed to the application's handler
 * (see presenced/io/io_http.h for the contract).
 */
#include "presenced/io/io_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/vec.h"
#include "io_server_impl.h"

static const struct {
    enum lws_token_indexes token;
    const char *name;
} http_methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_PATCH_URI, "PATCH"},
    {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

static void http_req_free(io_http_req *req)
{
    for (size_t i = 0; i < req->nargs; i++)
        free(req->args[i]);
    free(req->args);
    free(req->path);
    buf_deinit(&req->body);
    buf_deinit(&req->out);
    free(req);
}

static int req_add_arg(io_http_req *req, const char *arg)
{
    if (VEC_RESERVE(req->args, req->nargs, req->capargs, 8) < 0 ||
        !(req->args[req->nargs] = strdup(arg)))
        return -1;
    req->nargs++;
    return 0;
}

/* Copy what a handler may ask about the request while lws still has the headers. */
static io_http_req *http_req_new(io_server *srv, struct lws *wsi)
{
    io_http_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->wsi = wsi;
    req->srv = srv;
    req->listener = lws_get_vhost(wsi) == srv->admin_vhost ? 1 : 0;
    enum lws_token_indexes token = WSI_TOKEN_GET_URI;
    for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
        if (io_is_method(wsi, http_methods[i].token)) {
            token = http_methods[i].token;
            snprintf(req->method, sizeof(req->method), "%s", http_methods[i].name);
            break;
        }
    int n = lws_hdr_total_length(wsi, token);
    if (!(req->path = malloc((size_t)n + 1)) || lws_hdr_copy(wsi, req->path, n + 1, token) < 0)
        goto fail;
    char frag[4096];
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (!frag[0])
            break;
        if (req_add_arg(req, frag) < 0)
            goto fail;
    }
    /* An argument longer than our buffer: keep a marker so handlers refuse the request. */
    if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, (int)req->nargs) > 0 &&
        req_add_arg(req, "\x01toolong") < 0)
        goto fail;
    lws_hdr_copy(wsi, req->authorization, sizeof(req->authorization), WSI_TOKEN_HTTP_AUTHORIZATION);
    lws_hdr_copy(wsi, req->content_type, sizeof(req->content_type), WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (lws_hdr_custom_copy(wsi, req->last_event_id, sizeof(req->last_event_id),
                            "last-event-id:", 14) < 0)
        req->last_event_id[0] = 0;
    return req;
fail:
    http_req_free(req);
    return NULL;
}

#define TOO_LARGE_JSON                                                                             \
    "{\"error\":{\"code\":\"too_large\",\"message\":\"Body over max_http_body\"}}"

/* LWS_CALLBACK_HTTP for anything that is not Engine.IO: collect the body if one comes, then hand
 * the request to the handler. */
int io_http_req_begin(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (!srv->opts.http_handler)
        return io_respond(wsi, pss, HTTP_STATUS_NOT_FOUND, "application/json",
                          "{\"error\":{\"code\":\"not_found\",\"message\":\"Not found\"}}", 52);
    io_http_req *req = http_req_new(srv, wsi);
    if (!req)
        return -1;
    pss->req = req;
    char clen[24];
    bool has_body = lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                    strtoull(clen, NULL, 10) > 0;
    if (has_body && strtoull(clen, NULL, 10) > srv->opts.max_http_body) {
        pss->req = NULL;
        http_req_free(req);
        return io_respond(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "application/json",
                          TOO_LARGE_JSON, sizeof(TOO_LARGE_JSON) - 1);
    }
    if (has_body) {
        pss->kind = PSS_API_BODY;
        return 0;
    }
    pss->kind = PSS_API_WAIT;
    srv->opts.http_handler(req, srv->opts.http_ud);
    return 0;
}

int io_http_req_body(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len)
{
    io_http_req *req = pss->req;
    if (req->body.len + len > srv->opts.max_http_body) {
        pss->req = NULL;
        http_req_free(req);
        return io_respond(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "application/json",
                          TOO_LARGE_JSON, sizeof(TOO_LARGE_JSON) - 1);
    }
    return buf_append(&req->body, in, len);
}

void io_http_req_body_done(io_server *srv, io_pss *pss)
{
    pss->kind = PSS_API_WAIT;
    srv->opts.http_handler(pss->req, srv->opts.http_ud);
}

/* The client of a plain HTTP request went away: tell a stream's owner; the owner still ends
 * the request. */
void io_http_req_gone(io_pss *pss)
{
    io_http_req *req = pss->req;
    pss->req = NULL;
    if (!req)
        return;
    req->wsi = NULL;
    /* A body still arriving means the handler never saw the request: nobody else frees it. */
    if (req->ending || pss->kind == PSS_API_BODY) {
        http_req_free(req);
        return;
    }
    if (req->on_close)
        req->on_close(req, req->close_ud);
}

const char *io_http_method(const io_http_req *req)
{
    return req->method;
}

const char *io_http_path(const io_http_req *req)
{
    return req->path;
}

size_t io_http_query_count(const io_http_req *req)
{
    return req->nargs;
}

const char *io_http_query_arg(const io_http_req *req, size_t i)
{
    return i < req->nargs ? req->args[i] : NULL;
}

const char *io_http_authorization(const io_http_req *req)
{
    return req->authorization;
}

const char *io_http_last_event_id(const io_http_req *req)
{
    return req->last_event_id;
}

const char *io_http_content_type(const io_http_req *req)
{
    return req->content_type;
}

const uint8_t *io_http_body(const io_http_req *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data;
}

int io_http_listener(const io_http_req *req)
{
    return req->listener;
}

bool io_http_alive(const io_http_req *req)
{
    return req->wsi != NULL;
}

static char **copy_headers(const char *const *headers)
{
    size_t n = 0;
    while (headers && headers[n])
        n++;
    if (!n)
        return NULL;
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out && i < n; i++)
        out[i] = strdup(headers[i]);
    return out;
}

void io_http_respond(io_http_req *req, unsigned status, const char *content_type,
                     const char *const *headers, const void *body, size_t len)
{
    struct lws *wsi = req->wsi;
    if (wsi) {
        io_pss *pss = lws_wsi_user(wsi);
        pss->req = NULL;
        io_respond(wsi, pss, status, content_type, body, len);
        pss->extra = copy_headers(headers);
        /* Answered from outside a callback (after a store round trip): wake lws. */
        lws_cancel_service(req->srv->ctx);
    }
    http_req_free(req);
}

int io_http_stream_start(io_http_req *req, const char *content_type, io_http_close_fn on_close,
                         void *ud)
{
    struct lws *wsi = req->wsi;
    if (!wsi || req->streaming)
        return -1;
    io_pss *pss = lws_wsi_user(wsi);
    if (io_respond(wsi, pss, HTTP_STATUS_OK, content_type, NULL, 0) < 0 ||
        buf_reserve(&req->out, LWS_PRE + 256) < 0)
        return -1;
    static const char *const sse_headers[] = {"cache-control:", "no-cache",
                                              "x-accel-buffering:", "no", NULL};
    pss->extra = copy_headers(sse_headers);
    pss->kind = PSS_STREAM;
    req->streaming = true;
    req->on_close = on_close;
    req->close_ud = ud;
    memset(req->out.data, 0, LWS_PRE);
    req->out.len = LWS_PRE;
    /* A stream lives as long as both sides want it: no lws timeout. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    lws_cancel_service(req->srv->ctx);
    return 0;
}

int io_http_stream_write(io_http_req *req, const void *data, size_t len, size_t max_queued)
{
    if (!req->wsi || !req->streaming || req->ending)
        return -1;
    if (req->out.len - LWS_PRE + len > max_queued) {
        io_http_stream_end(req);
        return -1;
    }
    if (buf_append(&req->out, data, len) < 0)
        return -1;
    lws_callback_on_writable(req->wsi);
    return 0;
}

void io_http_stream_end(io_http_req *req)
{
    if (req->ending)
        return;
    req->ending = true;
    if (!req->wsi) {
        http_req_free(req);
        return;
    }
    /* The request is freed when the connection closes (io_http_req_gone). */
    lws_callback_on_writable(req->wsi);
    lws_cancel_service(req->srv->ctx);
}
