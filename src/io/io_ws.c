/* WebSocket: the checks on an upgrade, the session it opens or upgrades (spec: "Upgrade"),
 * messages in, paced writes, and the close.
 */
#include <stdio.h>
#include <string.h>

#include "presenced/io/log.h"
#include "io_server_impl.h"

/* Ask lws to close a WebSocket with a close frame. Returning -1 from WRITEABLE sends no close
 * frame in lws 4.1.6 (the client sees 1006); the close goes out from LWS_CALLBACK_TIMER instead. */
void io_ws_close(struct lws *wsi, uint16_t code)
{
    io_pss *pss = lws_wsi_user(wsi);
    if (pss->close_sent)
        return;
    pss->close_sent = true;
    pss->close_code = code;
    lws_close_reason(wsi, (enum lws_close_status)code, NULL, 0);
    lws_set_timer_usecs(wsi, 1);
    lws_cancel_service(lws_get_context(wsi));
}

/* Refuse an upgrade with a real HTTP answer before the 101, so the client sees why: the
 * Engine.IO error {"code":code,"message":msg}. */
static int ws_refuse(io_server *srv, struct lws *wsi, unsigned status, int code, const char *msg)
{
    char body[256], resp[640];
    snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"%s}", code, msg,
             status == 403 ? IO_FORBIDDEN_HINT : "");
    io_refused(srv, wsi, -1, status, msg);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s",
                     status,
                     status == 403   ? "Forbidden"
                     : status == 429 ? "Too Many Requests"
                     : status == 503 ? "Service Unavailable"
                                     : "Bad Request",
                     strlen(body), body);
    uint8_t out[LWS_PRE + sizeof(resp)];
    memcpy(out + LWS_PRE, resp, (size_t)n);
    lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: every check on a WebSocket upgrade happens here, not
 * in HTTP_CONFIRM_UPGRADE, whose handling reaches a use-after-free in lws 4.1.6
 * (CVE-2025-11677). Returns nonzero to refuse. */
int io_ws_filter(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (srv->shutting_down)
        return 1;
    if (lws_get_vhost(wsi) == srv->admin_vhost || !io_path_matches(srv, wsi, WSI_TOKEN_GET_URI))
        return ws_refuse(srv, wsi, 400, 3, "Bad request");
    char origin[IO_ORIGIN_MAX];
    if (!io_origin_check(srv, wsi, origin))
        return ws_refuse(srv, wsi, 403, 4, "Forbidden");
    io_query q;
    io_query_parse(wsi, &q);
    if (q.bad || strcmp(q.transport, "websocket") != 0)
        return ws_refuse(srv, wsi, 400, 0, "Transport unknown");
    if (strcmp(q.eio, "4") != 0)
        return ws_refuse(srv, wsi, 400, 5, "Unsupported protocol version");
    memset(pss, 0, sizeof(*pss));
    pss->kind = PSS_WS;
    if (q.has_sid) {
        io_conn *c = io_conn_find(srv, &q);
        if (!c || c->closing)
            return ws_refuse(srv, wsi, 400, 1, "Session ID unknown");
        /* A second upgrade of the same session is accepted and then closed at once in
         * io_ws_established(), as the reference server does. */
        memcpy(pss->sid, q.sid, EIO_SID_LEN + 1);
    } else if (sio_server_conn_count(srv->sio) >= srv->opts.max_connections) {
        return ws_refuse(srv, wsi, 503, 3, "Server full");
    } else {
        /* Counted once the WebSocket is established (the headers it needs are read here). */
        io_peer *peer;
        if (io_session_admit(srv, wsi, true, &peer) < 0)
            return ws_refuse(srv, wsi, 429, 3, "Too many sessions from this address");
        pss->peer = peer;
    }
    return 0;
}

int io_ws_established(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (pss->sid[0]) {
        io_query q = {0};
        memcpy(q.sid, pss->sid, EIO_SID_LEN + 1);
        io_conn *c = io_conn_find(srv, &q);
        /* Only one probe per session, and only from polling (spec: "Upgrade"). */
        eio_session *s = c ? sio_conn_session(c->sc) : NULL;
        if (!c || c->closing || c->ws || s->transport != EIO_TRANSPORT_POLLING ||
            s->upgrade != EIO_UPGRADE_NONE) {
            io_ws_close(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION);
            return 0;
        }
        c->ws = wsi;
        pss->conn = c;
        return 0;
    }
    io_conn *c = io_conn_new(srv, EIO_TRANSPORT_WEBSOCKET, wsi);
    if (!c) {
        io_session_release(srv, pss->peer);
        pss->peer = NULL;
        return -1;
    }
    c->peer = pss->peer;
    pss->peer = NULL;
    c->ws = wsi;
    pss->conn = c;
    frame *f = io_conn_open_frame(srv, sio_conn_session(c->sc)->sid, false);
    if (!f || sio_conn_send(c->sc, f) < 0) {
        frame_unref(f);
        c->reason = "out of memory";
        io_conn_destroy(c);
        return 0;
    }
    frame_unref(f);
    return 0;
}

static void ws_message(io_conn *c, io_pss *pss)
{
    eio_session *s = sio_conn_session(c->sc);
    eio_packet p;
    int rc = eio_packet_decode_ws(pss->body.data, pss->body.len, pss->rx_binary, &p);
    if (rc < 0) {
        char addr[IO_ADDR_MAX];
        io_addr_text(&c->addr, addr);
        log_debug("invalid packet", "sid=%s addr=%s err=\"%s\"", s->sid, addr, eio_strerror(rc));
        c->reason = "invalid packet";
        io_conn_destroy(c);
        return;
    }
    io_conn_packet(c, EIO_TRANSPORT_WEBSOCKET, &p);
}

int io_ws_receive(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len)
{
    io_conn *c = pss->conn;
    if (!c || pss->close_sent)
        return 0;
    if (lws_is_first_fragment(wsi)) {
        pss->body.len = 0;
        pss->rx_binary = lws_frame_is_binary(wsi);
    }
    if (pss->body.len + len > sio_server_limits(srv->sio)->max_payload) {
        /* The spec's maxPayload, enforced on the reassembled message: close 1009. */
        pss->conn = NULL;
        if (c->ws == wsi)
            c->ws = NULL;
        c->reason = "message too big";
        io_conn_destroy(c);
        io_ws_close(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        return 0;
    }
    if (buf_append(&pss->body, in, len) < 0)
        return -1;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    ws_message(c, pss);
    /* An idle WebSocket holds no receive buffer: most receive a message now and then, and every
     * connection's bytes count. */
    buf_deinit(&pss->body);
    return 0;
}

int io_ws_writeable(struct lws *wsi, io_pss *pss)
{
    io_conn *c = pss->conn;
    if (pss->close_sent || !c)
        return 0;
    if (pss->probe_reply) {
        static uint8_t probe[LWS_PRE + 6];
        memcpy(probe + LWS_PRE, "3probe", 6);
        pss->probe_reply = false;
        return lws_write(wsi, probe + LWS_PRE, 6, LWS_WRITE_TEXT) < 6 ? -1 : 0;
    }
    eio_session *s = sio_conn_session(c->sc);
    if (s->transport != EIO_TRANSPORT_WEBSOCKET || !s->out.count)
        return 0;
    uint32_t gap = c->srv->opts.frame_gap_us;
    if (gap) {
        /* Paced output: one message per WRITEABLE, at least `gap` µs apart. */
        uint64_t since = (uv_hrtime() - pss->last_write_ns) / 1000;
        if (since < gap) {
            lws_set_timer_usecs(wsi, (lws_usec_t)(gap - since));
            return 0;
        }
        pss->last_write_ns = uv_hrtime();
        if (io_ws_send_one(wsi, s) < 0)
            return -1;
    } else if (io_ws_send_batch(c->srv, wsi, s) < 0) {
        return -1;
    }
    if (s->out.count)
        lws_callback_on_writable(wsi);
    return 0;
}

void io_ws_closed(struct lws *wsi, io_pss *pss)
{
    io_conn *c = pss->conn;
    buf_deinit(&pss->body);
    io_response_free_extra(pss);
    if (!c)
        return;
    pss->conn = NULL;
    if (c->ws != wsi)
        return;
    c->ws = NULL;
    eio_session *s = sio_conn_session(c->sc);
    if (s->transport == EIO_TRANSPORT_WEBSOCKET) {
        c->reason = "transport close";
        io_conn_destroy(c);
    } else {
        /* A probe that went away: the session carries on over polling. */
        s->upgrade = EIO_UPGRADE_NONE;
    }
}
