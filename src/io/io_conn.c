/* Engine.IO sessions on the server: each io_conn carries one session of the Socket.IO core
 * (sio_conn) over whichever transport it uses now, with the timer that drives the core's
 * deadlines (ping, timeouts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/host.h"
#include "presenced/io/later.h"
#include "presenced/io/log.h"
#include "io_server_impl.h"

static void make_id(char out[SIO_ID_LEN + 1], void *ud)
{
    (void)ud;
    _Static_assert(SIO_ID_LEN == EIO_SID_LEN, "one id generator serves both");
    host_random_id(out, SIO_ID_LEN);
}

/* A turn of the loop busy this long is logged: timers (the lease refresh among them) waited that
 * long. */
#define IO_TURN_WARN_NS 1000000000ull

/* A turn of the loop ends (prepare handles run just before the loop polls for I/O). Its busy time
 * is its wall time less the time the loop waited for I/O in it: libuv serves up to 48 rounds of
 * 1024 ready descriptors in one turn before any timer runs, so a burst of thousands of
 * connections or disconnections is one long turn, logged since the lease refresh waited. */
static void turn_end_cb(uv_prepare_t *h)
{
    io_server *srv = h->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(srv->loop);
    uint64_t wall = now - srv->turn_start_ns, waited = idle - srv->turn_idle_ns;
    uint64_t busy = wall > waited ? wall - waited : 0;
    srv->turn_start_ns = now;
    srv->turn_idle_ns = idle;
    if (busy >= IO_TURN_WARN_NS)
        log_warn("event loop turn was long: timers waited", "busy_ms=%llu sockets=%u",
                 (unsigned long long)(busy / 1000000), srv->sockets);
    uv_update_time(srv->loop);
    srv->polled_at = uv_now(srv->loop);
}

void io_conn_watch_init(io_server *srv)
{
    /* The loop's time spent waiting for I/O tells a busy turn from an idle one. */
    uv_loop_configure(srv->loop, UV_METRICS_IDLE_TIME);
    uv_prepare_init(srv->loop, &srv->turn);
    srv->turn.data = srv;
    srv->turn_start_ns = uv_hrtime();
    srv->turn_idle_ns = uv_metrics_idle_time(srv->loop);
    uv_prepare_start(&srv->turn, turn_end_cb);
    uv_unref((uv_handle_t *)&srv->turn);
}

void io_conn_watch_close(io_server *srv)
{
    uv_prepare_stop(&srv->turn);
    uv_close((uv_handle_t *)&srv->turn, NULL);
}

/* A deadline the loop has not polled for I/O since is not judged yet. Timers run before the poll
 * in each loop turn, so after a turn that kept the loop busy (a connect storm) or a stretch in
 * which the host gave this process no CPU, the pong or packet a session waits for may already
 * sit in its socket, unread: closing it then would drop a live client for the daemon's own
 * slowness. The verdict waits for one poll begun at or after the deadline. */
static bool conn_judged_too_early(io_conn *c, uint64_t now)
{
    return c->srv->polled_at < sio_conn_deadline(c->sc) && sio_conn_expiring(c->sc, now);
}

static void conn_timer_cb(uv_timer_t *t)
{
    io_conn *c = t->data;
    if (c->closing) {
        io_conn_destroy(c);
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    if (conn_judged_too_early(c, now)) {
        later_timer(&c->timer, conn_timer_cb, 1);
        return;
    }
    const char *reason = NULL;
    if (sio_conn_tick(c->sc, now, &reason) < 0) {
        c->reason = reason;
        io_conn_destroy(c);
        return;
    }
    io_conn_arm(c);
}

/* Re-arm the connection's timer for the core's next deadline. */
void io_conn_arm(io_conn *c)
{
    if (c->closing)
        return;
    uint64_t now = uv_now(c->srv->loop), d = sio_conn_deadline(c->sc);
    later_timer(&c->timer, conn_timer_cb, d > now ? d - now : 0);
}

/* Ask for the connection to be closed from the loop, never in the middle of a core call. */
static void conn_close_soon(io_conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reason = reason;
    later_timer(&c->timer, conn_timer_cb, 0);
}

static void on_core_close(sio_conn *sc, void *io, const char *reason)
{
    (void)sc;
    io_conn *c = io;
    /* The core closes a reader whose send queue is full: a slow consumer. */
    if (!c->closing && reason && strcmp(reason, "send queue full") == 0)
        metrics_add(c->srv->slow_consumers, "socketio", 1);
    conn_close_soon(io, reason);
}

void io_server_connections(io_server *srv, uint32_t *polling, uint32_t *websocket)
{
    *polling = *websocket = 0;
    for (io_conn *c = srv->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (sio_conn_session(c->sc)->transport == EIO_TRANSPORT_WEBSOCKET)
            (*websocket)++;
        else
            (*polling)++;
    }
}

static void on_core_wake(sio_conn *sc, void *io, bool bulk)
{
    io_conn *c = io;
    eio_session *s = sio_conn_session(sc);
    if (s->transport == EIO_TRANSPORT_WEBSOCKET) {
        if (c->ws)
            io_flush_add(c, bulk);
    } else if (c->get) {
        io_poll_wake(c);
    }
}

static void conn_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_unlink(io_conn *c)
{
    io_flush_remove(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

/* Tear the session down: the core's disconnect handlers run, the held GET is answered and the
 * WebSocket closed. */
void io_conn_destroy(io_conn *c)
{
    io_server *srv = c->srv;
    if (log_enabled(LOG_DEBUG)) {
        char addr[IO_ADDR_MAX];
        io_addr_text(&c->addr, addr);
        log_debug("session closed", "sid=%s addr=%s reason=\"%s\"", sio_conn_session(c->sc)->sid,
                  addr, c->reason ? c->reason : "");
    }
    /* Reasons are the code's own constants: a bounded set of label values. */
    metrics_add(srv->sessions_closed, c->reason ? c->reason : "closed", 1);
    sio_conn_free(c->sc, c->reason ? c->reason : "closed");
    c->sc = NULL;
    if (c->get) {
        io_pss *pss = lws_wsi_user(c->get);
        pss->conn = NULL;
        /* A client that asked to close gets a noop; otherwise the pending GET learns of the
         * close from a close packet (spec: "Disconnection"). */
        const char *pkt = c->client_closed ? "6" : "1";
        lws_rx_flow_control(c->get, 1);
        io_respond(c->get, pss, HTTP_STATUS_OK, "text/plain; charset=UTF-8", pkt, 1);
        lws_set_timeout(c->get, PENDING_TIMEOUT_HTTP_CONTENT, (int)srv->opts.http_timeout);
        lws_cancel_service(srv->ctx);
        io_poll_unhold(c);
    }
    if (c->ws) {
        io_pss *pss = lws_wsi_user(c->ws);
        pss->conn = NULL;
        io_ws_close(c->ws, LWS_CLOSE_STATUS_NORMAL);
        c->ws = NULL;
    }
    if (c->post) {
        io_pss *pss = lws_wsi_user(c->post);
        pss->conn = NULL;
        c->post = NULL;
    }
    io_session_release(srv, c->peer);
    c->peer = NULL;
    conn_unlink(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
}

io_conn *io_conn_new(io_server *srv, eio_transport transport, struct lws *wsi)
{
    io_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = srv;
    io_client_addr(wsi, -1, &c->addr);
    char sid[EIO_SID_LEN + 1];
    host_random_id(sid, EIO_SID_LEN);
    c->sc = sio_conn_new(srv->sio, sid, transport, c, uv_now(srv->loop));
    if (!c->sc) {
        free(c);
        return NULL;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    io_conn_arm(c);
    if (log_enabled(LOG_DEBUG)) {
        char addr[IO_ADDR_MAX];
        io_addr_text(&c->addr, addr);
        log_debug("session opened", "sid=%s addr=%s transport=%s", sid, addr,
                  transport == EIO_TRANSPORT_WEBSOCKET ? "websocket" : "polling");
    }
    return c;
}

/* The open packet (spec: "Handshake"), as a frame. */
frame *io_conn_open_frame(io_server *srv, const char *sid, bool offer_ws)
{
    const eio_limits *lim = sio_server_limits(srv->sio);
    buf b;
    buf_init(&b);
    frame *f = NULL;
    if (eio_open_json(&b, sid, offer_ws, lim->ping_interval, lim->ping_timeout, lim->max_payload) ==
        0)
        f = frame_from(EIO_OPEN, false, b.data, b.len);
    buf_deinit(&b);
    return f;
}

/* Act on what the session state machine asked for after a packet. Returns -1 when the packet
 * closed the session (the caller must not touch `c` afterwards). */
int io_conn_packet(io_conn *c, eio_transport via, const eio_packet *p)
{
    eio_session *s = sio_conn_session(c->sc);
    const char *reason = NULL;
    switch (eio_session_receive(s, via, p, uv_now(c->srv->loop))) {
    case EIO_RX_NONE:
        break;
    case EIO_RX_MESSAGE:
        if (sio_conn_receive(c->sc, p, uv_now(c->srv->loop), &reason) < 0) {
            char addr[IO_ADDR_MAX];
            io_addr_text(&c->addr, addr);
            log_debug("invalid packet", "sid=%s addr=%s reason=\"%s\"", s->sid, addr, reason);
            c->reason = reason;
            io_conn_destroy(c);
            return -1;
        }
        break;
    case EIO_RX_PROBE:
        if (c->ws) {
            io_pss *pss = lws_wsi_user(c->ws);
            pss->probe_reply = true;
            lws_callback_on_writable(c->ws);
        }
        /* Release a held GET with a noop so the client can pause polling (spec: "Upgrade"). */
        if (c->get)
            io_poll_wake(c);
        break;
    case EIO_RX_UPGRADED:
        if (c->get)
            io_poll_wake(c);
        if (c->ws)
            lws_callback_on_writable(c->ws);
        break;
    case EIO_RX_CLOSE:
        c->client_closed = true;
        c->reason = "client close";
        io_conn_destroy(c);
        return -1;
    case EIO_RX_ERROR:
        c->reason = "protocol violation";
        io_conn_destroy(c);
        return -1;
    }
    io_conn_arm(c);
    return 0;
}

/* The client's address, for limits per address in the handlers ("" when unknown). */
static void on_core_peer(sio_conn *sc, void *io, char out[SIO_PEER_MAX])
{
    (void)sc;
    char text[IO_ADDR_MAX];
    io_addr_text(&((io_conn *)io)->addr, text);
    snprintf(out, SIO_PEER_MAX, "%s", strcmp(text, "-") == 0 ? "" : text);
}

sio_io_ops io_conn_ops(void)
{
    return (sio_io_ops){
        .wake = on_core_wake, .close = on_core_close, .make_id = make_id, .peer = on_core_peer};
}
