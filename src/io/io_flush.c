/* The write path of WebSocket sessions: frames framed here and coalesced into one send(), from
 * the flush lists described below.
 */
#include <string.h>

#include "io_server_impl.h"

#define IO_FLUSH_LONG_NS 1000000 /* a bulk flush this long makes the next one wait as long */

/* The header of an unmasked server frame with FIN set (RFC 6455 §5.2). Returns its length. */
static size_t ws_frame_header(uint8_t *out, bool binary, size_t len)
{
    out[0] = 0x80 | (binary ? 0x2 : 0x1);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Write the oldest queued message. Returns 0, or -1 when the connection must be dropped. */
int io_ws_send_one(struct lws *wsi, eio_session *s)
{
    frame *f = fq_pop(&s->out);
    if (!f)
        return 0;
    uint8_t *msg;
    size_t len;
    frame_ws_message(f, &msg, &len);
    int n = lws_write(wsi, msg, len, f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    frame_unref(f);
    return n < (int)len ? -1 : 0;
}

/* Write queued messages, framed here and coalesced into one send() of at most IO_WS_BATCH bytes
 * (a burst of broadcasts costs one system call per recipient, not one per frame). A message too
 * big for the batch goes alone through lws's framing. A short write is kept by lws and finished
 * before anything else is written. Returns 0, or -1 when the connection must be dropped. */
int io_ws_send_batch(io_server *srv, struct lws *wsi, eio_session *s)
{
    uint8_t *out = srv->batch + LWS_PRE;
    size_t n = 0;
    frame *f;
    while ((f = fq_peek(&s->out))) {
        uint8_t *msg;
        size_t len;
        frame_ws_message(f, &msg, &len);
        if (n + 10 + len > IO_WS_BATCH) {
            if (n)
                break;
            return io_ws_send_one(wsi, s);
        }
        n += ws_frame_header(out + n, f->binary, len);
        memcpy(out + n, msg, len);
        n += len;
        frame_unref(fq_pop(&s->out));
    }
    return n && lws_write(wsi, out, n, LWS_WRITE_RAW) < (int)n ? -1 : 0;
}

/* The flush lists.
 * Frames queued on a WebSocket session (an answer, a broadcast, a ping) are written after the I/O
 * callbacks that queued them, straight to the socket while the kernel takes them: no WRITEABLE
 * round trip (two epoll_ctl calls and a loop turn per frame). Only a session whose socket is
 * choked, or that has more queued than one batch, asks lws for WRITEABLE.
 *
 * Sessions that got a frame of their own (an answer, a ping) are written in the same loop
 * iteration. Sessions that only got broadcast frames are written in the same iteration too,
 * unless the previous bulk flush took long (a broadcast to thousands of sockets): then they wait
 * as long as it took. Broadcasts queued meanwhile leave together, one send() per socket for all
 * of them, and under a stream of broadcasts writing takes about half of the loop's time, the rest
 * going to connects, commands and the store. Light traffic never waits. */

static void flush_idle_cb(uv_idle_t *h);
static void flush_timer_cb(uv_timer_t *t);

static io_conn **flush_head(io_server *srv, uint8_t list)
{
    return list == FLUSH_NOW ? &srv->flush_now : &srv->flush_bulk;
}

/* Make the loop come back for the lists: at once, or when the bulk list's wait is over. */
static void flush_arm(io_server *srv)
{
    uint64_t now = uv_hrtime();
    if (srv->flush_now || (srv->flush_bulk && now >= srv->bulk_after)) {
        uv_idle_start(&srv->flush_idle, flush_idle_cb);
    } else if (srv->flush_bulk && !uv_is_active((uv_handle_t *)&srv->flush_timer)) {
        uv_timer_start(&srv->flush_timer, flush_timer_cb, (srv->bulk_after - now) / 1000000 + 1, 0);
    }
}

void io_flush_remove(io_conn *c)
{
    if (c->flush_on == FLUSH_NONE)
        return;
    if (c->fprev)
        c->fprev->fnext = c->fnext;
    else
        *flush_head(c->srv, c->flush_on) = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    c->flush_on = FLUSH_NONE;
    c->fprev = c->fnext = NULL;
}

void io_flush_add(io_conn *c, bool bulk)
{
    io_server *srv = c->srv;
    uint8_t want = bulk ? FLUSH_BULK : FLUSH_NOW;
    if (c->flush_on == FLUSH_NOW || c->flush_on == want)
        return;
    /* Paced output (the conformance presets) stays one message per WRITEABLE. */
    if (srv->opts.frame_gap_us) {
        lws_callback_on_writable(c->ws);
        return;
    }
    io_flush_remove(c); /* from the bulk list to the one written now */
    io_conn **head = flush_head(srv, want);
    bool was_empty = *head == NULL;
    c->flush_on = want;
    c->fprev = NULL;
    c->fnext = *head;
    if (*head)
        (*head)->fprev = c;
    *head = c;
    /* A broadcast lists thousands of sessions: the loop is armed by the first of each list
     * (and again by flush_all for whatever it leaves). */
    if (was_empty)
        flush_arm(srv);
}

static void ws_flush(io_conn *c)
{
    struct lws *wsi = c->ws;
    if (!wsi || c->closing)
        return;
    io_pss *pss = lws_wsi_user(wsi);
    eio_session *s = sio_conn_session(c->sc);
    if (pss->close_sent || s->transport != EIO_TRANSPORT_WEBSOCKET || !s->out.count)
        return;
    /* Output lws still holds from a short write goes first. (lws_send_pipe_choked() would cost a
     * poll() per call; a full socket shows up as a short write, whose rest lws keeps.) */
    if (pss->probe_reply || lws_partial_buffered(wsi)) {
        lws_callback_on_writable(wsi);
        return;
    }
    if (io_ws_send_batch(c->srv, wsi, s) < 0) {
        c->reason = "write failed";
        io_conn_destroy(c);
        return;
    }
    if (s->out.count)
        lws_callback_on_writable(wsi);
}

static void flush_drain(io_server *srv, uint8_t list)
{
    io_conn *c;
    while ((c = *flush_head(srv, list))) {
        io_flush_remove(c);
        ws_flush(c);
    }
}

static void flush_all(io_server *srv)
{
    uv_idle_stop(&srv->flush_idle);
    flush_drain(srv, FLUSH_NOW);
    uint64_t t0 = uv_hrtime();
    if (srv->flush_bulk && t0 >= srv->bulk_after) {
        flush_drain(srv, FLUSH_BULK);
        uint64_t t1 = uv_hrtime();
        srv->bulk_after = t1 - t0 >= IO_FLUSH_LONG_NS ? t1 + (t1 - t0) : 0;
    }
    if (srv->flush_now || srv->flush_bulk)
        flush_arm(srv);
}

static void flush_timer_cb(uv_timer_t *t)
{
    io_server *srv = t->data;
    srv->bulk_after = 0; /* the loop's clock may run behind uv_hrtime(): the wait is over */
    flush_all(srv);
}

static void flush_check_cb(uv_check_t *h)
{
    flush_all(h->data);
}

static void flush_idle_cb(uv_idle_t *h)
{
    flush_all(h->data);
}

void io_flush_init(io_server *srv)
{
    uv_check_init(srv->loop, &srv->flush_check);
    srv->flush_check.data = srv;
    uv_check_start(&srv->flush_check, flush_check_cb);
    uv_unref((uv_handle_t *)&srv->flush_check);
    uv_idle_init(srv->loop, &srv->flush_idle);
    srv->flush_idle.data = srv;
    uv_timer_init(srv->loop, &srv->flush_timer);
    srv->flush_timer.data = srv;
}

void io_flush_close(io_server *srv)
{
    uv_check_stop(&srv->flush_check);
    uv_close((uv_handle_t *)&srv->flush_check, NULL);
    uv_idle_stop(&srv->flush_idle);
    uv_close((uv_handle_t *)&srv->flush_idle, NULL);
    uv_timer_stop(&srv->flush_timer);
    uv_close((uv_handle_t *)&srv->flush_timer, NULL);
}
