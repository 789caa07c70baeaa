/* HTTP long-polling (Engine.IO spec: "HTTP long-polling"): the handshake, the held GET that
 * waits for packets, the POST that carries packets in, and the sweep that notices clients gone
 * while their GET is held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "presenced/io/log.h"
#include "io_server_impl.h"

#define IO_MAX_POLL_PACKETS 10000 /* packets in one POST body */

/* Complete a held GET: it will drain the queue when it becomes writeable. In lws 4.1.6 rx flow
 * must be re-enabled before asking for WRITEABLE, or the callback never comes and epoll spins. */
void io_poll_wake(io_conn *c)
{
    io_pss *pss = lws_wsi_user(c->get);
    if (pss->woken)
        return;
    pss->woken = true;
    lws_rx_flow_control(c->get, 1);
    lws_callback_on_writable(c->get);
}

/* The sweep visits held GETs only: walking every connection each second cost a worker holding
 * 16,000 WebSockets a fifth of its idle CPU. */
static void poll_hold(io_conn *c, struct lws *wsi)
{
    c->get = wsi;
    c->hprev = NULL;
    c->hnext = c->srv->held;
    if (c->hnext)
        c->hnext->hprev = c;
    c->srv->held = c;
}

/* The held GET is answered or gone: forget it. */
void io_poll_unhold(io_conn *c)
{
    if (!c->get)
        return;
    c->get = NULL;
    if (c->hprev)
        c->hprev->hnext = c->hnext;
    else
        c->srv->held = c->hnext;
    if (c->hnext)
        c->hnext->hprev = c->hprev;
    c->hprev = c->hnext = NULL;
}

int io_poll_handshake(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (sio_server_conn_count(srv->sio) >= srv->opts.max_connections)
        return io_respond_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, 3, "Server full");
    io_peer *peer;
    if (io_session_admit(srv, wsi, true, &peer) < 0)
        return io_respond_error(wsi, pss, 429, 3, "Too many sessions from this address");
    io_conn *c = io_conn_new(srv, EIO_TRANSPORT_POLLING, wsi);
    if (!c) {
        io_session_release(srv, peer);
        return io_respond_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, 3, "Out of memory");
    }
    c->peer = peer;
    frame *f = io_conn_open_frame(srv, sio_conn_session(c->sc)->sid, true);
    if (!f) {
        c->reason = "out of memory";
        io_conn_destroy(c);
        return io_respond_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, 3, "Out of memory");
    }
    int rc = io_respond(wsi, pss, HTTP_STATUS_OK, "text/plain; charset=UTF-8",
                        f->bytes + FRAME_HEADROOM, (size_t)f->len + 1);
    frame_unref(f);
    return rc;
}

int io_poll_get(io_server *srv, struct lws *wsi, io_pss *pss, io_conn *c)
{
    if (c->get) {
        /* A second concurrent GET is a protocol violation (spec: "HTTP long-polling"): answer it
         * with 400 and close the session, which answers the first one with a close packet. */
        c->reason = "duplicate poll";
        io_conn_destroy(c);
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    }
    eio_session *s = sio_conn_session(c->sc);
    pss->conn = c;
    pss->kind = PSS_HELD;
    pss->woken = false;
    poll_hold(c, wsi);
    /* lws would time a held GET out after timeout_secs, and a dead client with rx still on makes
     * the loop spin: no timeout, and rx paused while it is held. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    lws_rx_flow_control(wsi, 0);
    if (s->out.count || s->upgrade != EIO_UPGRADE_NONE)
        io_poll_wake(c);
    (void)srv;
    return 0;
}

/* WRITEABLE for a held GET: answer with every queued packet, or a noop when the session is being
 * upgraded and has nothing to send. */
int io_poll_write_held(struct lws *wsi, io_pss *pss)
{
    io_conn *c = pss->conn;
    if (!c || !pss->woken)
        return 0;
    eio_session *s = sio_conn_session(c->sc);
    buf payload;
    buf_init(&payload);
    int rc = eio_session_drain_payload(s, &payload);
    if (rc == 0 && payload.len == 0)
        rc = eio_payload_append(&payload, EIO_NOOP, false, NULL, 0);
    io_poll_unhold(c);
    pss->conn = NULL;
    if (rc == 0)
        rc = io_respond(wsi, pss, HTTP_STATUS_OK, "text/plain; charset=UTF-8", payload.data,
                        payload.len);
    buf_deinit(&payload);
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)c->srv->opts.http_timeout);
    if (rc < 0)
        return -1;
    return io_response_write(wsi, pss);
}

int io_poll_post_begin(io_server *srv, struct lws *wsi, io_pss *pss, io_conn *c)
{
    char ctype[128];
    if (lws_hdr_copy(wsi, ctype, sizeof(ctype), WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
        strncmp(ctype, "application/octet-stream", 24) == 0)
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    char clen[24];
    if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        strtoull(clen, NULL, 10) > sio_server_limits(srv->sio)->max_payload)
        return io_respond_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, 3, "Payload too large");
    if (c->post) {
        /* Two POSTs at once: a protocol violation that ends the session. */
        c->reason = "duplicate post";
        io_conn_destroy(c);
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    }
    c->post = wsi;
    pss->conn = c;
    pss->kind = PSS_POST;
    buf_deinit(&pss->body);
    return 0;
}

int io_poll_body(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len)
{
    if (pss->kind != PSS_POST)
        return 0;
    if (pss->body.len + len > sio_server_limits(srv->sio)->max_payload) {
        if (pss->conn)
            pss->conn->post = NULL;
        pss->kind = PSS_NONE;
        pss->conn = NULL;
        buf_deinit(&pss->body);
        return io_respond_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, 3, "Payload too large");
    }
    return buf_append(&pss->body, in, len);
}

int io_poll_body_done(struct lws *wsi, io_pss *pss)
{
    if (pss->kind != PSS_POST)
        return 0;
    io_conn *c = pss->conn;
    pss->conn = NULL;
    pss->kind = PSS_NONE;
    buf body = pss->body;
    buf_init(&pss->body);
    int rc;
    /* The session may have been closed while the body was arriving (io_conn_destroy() then
     * cleared pss->conn). */
    if (c)
        c->post = NULL;
    if (!c || c->closing) {
        rc = io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 1, "Session ID unknown");
        buf_deinit(&body);
        return rc;
    }
    /* Decode the whole payload before acting on any packet: an invalid payload is refused as a
     * whole (400), as the reference server does. */
    size_t max = 1;
    for (size_t i = 0; i < body.len; i++)
        max += body.data[i] == EIO_SEPARATOR;
    if (max > IO_MAX_POLL_PACKETS)
        max = IO_MAX_POLL_PACKETS + 1;
    eio_packet *pkts = malloc(max * sizeof(*pkts));
    eio_payload_iter it;
    eio_payload_iter_init(&it, body.data, body.len, IO_MAX_POLL_PACKETS);
    size_t n = 0;
    int more = pkts ? 1 : EIO_ERR_NOMEM;
    while (more > 0 && (more = eio_payload_next(&it, &pkts[n])) > 0)
        n++;
    if (more < 0) {
        char addr[IO_ADDR_MAX];
        io_addr_text(&c->addr, addr);
        log_debug("invalid payload", "sid=%s addr=%s err=\"%s\"", sio_conn_session(c->sc)->sid,
                  addr, eio_strerror(more));
        c->reason = "invalid payload";
        io_conn_destroy(c);
        rc = io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    } else {
        for (size_t i = 0; i < n; i++)
            if (io_conn_packet(c, EIO_TRANSPORT_POLLING, &pkts[i]) < 0)
                break;
        rc = io_respond(wsi, pss, HTTP_STATUS_OK, "text/html", "ok", 2);
    }
    free(pkts);
    buf_deinit(&body);
    return rc;
}

/* While a held GET's rx is paused lws does not notice the client leaving; peek at the socket
 * once a second and close the request when the peer has gone. */
static void sweep_cb(uv_timer_t *t)
{
    io_server *srv = t->data;
    for (io_conn *c = srv->held, *next; c; c = next) {
        next = c->hnext;
        char b;
        int fd = lws_get_socket_fd(c->get);
        ssize_t n = fd >= 0 ? recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            struct lws *get = c->get;
            io_pss *pss = lws_wsi_user(get);
            pss->conn = NULL;
            io_poll_unhold(c);
            lws_rx_flow_control(get, 1);
            lws_set_timeout(get, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        }
    }
    io_refusals_tick(srv);
    lws_cancel_service(srv->ctx);
}

void io_poll_init(io_server *srv)
{
    uv_timer_init(srv->loop, &srv->sweep);
    srv->sweep.data = srv;
    uv_timer_start(&srv->sweep, sweep_cb, 1000, 1000);
}

void io_poll_close(io_server *srv)
{
    uv_timer_stop(&srv->sweep);
    uv_close((uv_handle_t *)&srv->sweep, NULL);
}
