/* HTTP responses of the server: a status, headers (CORS, Connection, the preflight's allowances)
 * and a body, written over two WRITEABLE callbacks; or an open-ended stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_server_impl.h"

/* Frees what a request's answer needed beside its body: extra headers and the Origin. */
void io_response_free_extra(io_pss *pss)
{
    for (char **h = pss->extra; h && *h; h++)
        free(*h);
    free(pss->extra);
    pss->extra = NULL;
    free(pss->origin);
    pss->origin = NULL;
}

/* Store a response in the pss and ask for WRITEABLE: headers go out on the first writeable
 * callback, the body on the second. */
int io_respond(struct lws *wsi, io_pss *pss, unsigned status, const char *ctype, const void *body,
               size_t len)
{
    buf_deinit(&pss->body);
    if (buf_reserve(&pss->body, LWS_PRE + len + 1) < 0)
        return -1;
    memset(pss->body.data, 0, LWS_PRE);
    pss->body.len = LWS_PRE;
    if (len)
        buf_append(&pss->body, body, len);
    pss->status = (uint16_t)status;
    pss->ctype = ctype;
    pss->kind = PSS_RESPONSE;
    pss->phase = PHASE_HEADERS;
    lws_callback_on_writable(wsi);
    return 0;
}

/* An Engine.IO error answer (spec: the reference server's error codes). */
int io_respond_error(struct lws *wsi, io_pss *pss, unsigned status, int code, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"%s}", code, msg,
                     status == HTTP_STATUS_FORBIDDEN ? IO_FORBIDDEN_HINT : "");
    io_refused(lws_vhost_user(lws_get_vhost(wsi)), wsi, -1, status, msg);
    return io_respond(wsi, pss, status, "application/json", body, (size_t)n);
}

static int write_headers(struct lws *wsi, io_pss *pss)
{
    uint8_t hdr[LWS_PRE + 1024];
    uint8_t *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    size_t len = pss->body.len - LWS_PRE;
    lws_filepos_t clen = pss->kind == PSS_STREAM ? LWS_ILLEGAL_HTTP_CONTENT_LEN : len;
    if (lws_add_http_common_headers(wsi, pss->status, pss->ctype, clen, &p, end))
        return -1;
    for (char **h = pss->extra; h && h[0] && h[1]; h += 2)
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)h[0], (const uint8_t *)h[1],
                                        (int)strlen(h[1]), &p, end))
            return -1;
    if (pss->cors) {
        const char *o = pss->origin;
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-origin:",
                                        (const uint8_t *)o, (int)strlen(o), &p, end) ||
            lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-credentials:",
                                        (const uint8_t *)"true", 4, &p, end) ||
            lws_add_http_header_by_name(wsi, (const uint8_t *)"vary:", (const uint8_t *)"Origin", 6,
                                        &p, end))
            return -1;
    }
    /* lws closes the connection after answering a request that said "Connection: close"; say so,
     * or keep-alive clients reuse the closed socket for their next request. */
    if (pss->conn_close && lws_add_http_header_by_name(wsi, (const uint8_t *)"connection:",
                                                       (const uint8_t *)"close", 5, &p, end))
        return -1;
    if (pss->status == HTTP_STATUS_NO_CONTENT) {
        static const char methods[] = "GET, POST";
        char req[256];
        int n = lws_hdr_copy(wsi, req, sizeof(req), WSI_TOKEN_HTTP_AC_REQUEST_HEADERS);
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-methods:",
                                        (const uint8_t *)methods, sizeof(methods) - 1, &p, end))
            return -1;
        if (n > 0 &&
            lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-headers:",
                                        (const uint8_t *)req, n, &p, end))
            return -1;
    }
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* WRITEABLE for an open-ended response: send what is queued; once the owner ended the stream
 * and nothing is left, close the connection (there is no Content-Length to end it). */
static int write_stream(struct lws *wsi, io_pss *pss)
{
    io_http_req *req = pss->req;
    if (!req)
        return -1;
    size_t len = req->out.len > LWS_PRE ? req->out.len - LWS_PRE : 0;
    if (len) {
        if (lws_write(wsi, req->out.data + LWS_PRE, len, LWS_WRITE_HTTP) < (int)len)
            return -1;
        req->out.len = LWS_PRE;
    }
    return req->ending ? -1 : 0;
}

/* WRITEABLE for an HTTP response. Returns what the lws callback must return. */
int io_response_write(struct lws *wsi, io_pss *pss)
{
    if (pss->phase == PHASE_HEADERS) {
        if (write_headers(wsi, pss) < 0)
            return -1;
        pss->phase = pss->kind == PSS_STREAM ? PHASE_STREAM : PHASE_BODY;
        /* A body that is complete goes out in the same turn: waiting for the next WRITEABLE
         * cost a poll restart, a loop turn and a send per request. lws keeps what the socket
         * does not take and sends it before anything else. */
        if (pss->phase == PHASE_STREAM) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    if (pss->phase == PHASE_STREAM)
        return write_stream(wsi, pss);
    if (pss->phase != PHASE_BODY)
        return 0;
    size_t len = pss->body.len - LWS_PRE;
    if (lws_write(wsi, pss->body.data + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) < (int)len)
        return -1;
    buf_deinit(&pss->body);
    io_response_free_extra(pss);
    pss->phase = PHASE_IDLE;
    pss->kind = PSS_NONE;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}
