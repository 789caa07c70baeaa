/* The write path of WebSocket sessions: frames framed here and coalesced into one send(), from
 * the flush lists described below.
 */
#include <string.h>

#include "io_server_impl.h"

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
 * iteration. Sessions that only got broadcast frames go on the bulk list, in the order they got
 * them, and are written for at most IO_FLUSH_SLICE_NS per loop turn: a broadcast to thousands of
 * sockets then never holds the loop for long (connects, commands and Redis replies run between
 * slices), and it never waits for anything but the writes queued before it. A session written
 * earlier in a long pass goes back to the end of the list when its next frame comes: broadcasts
 * that arrive meanwhile leave together, one send() per socket for all of them, so the busier the
 * stream of broadcasts, the more frames each send() carries. */

#define IO_FLUSH_SLICE_NS 4000000 /* bulk writes per loop turn, at most */
#define IO_FLUSH_CLOCK_EVERY 32   /* sessions written between two reads of the clock */

static void flush_idle_cb(uv_idle_t *h);

/* Make the loop come back for the lists without blocking. */
static void flush_arm(io_server *srv)
{
    uv_idle_start(&srv->flush_idle, flush_idle_cb);
}

void io_flush_remove(io_conn *c)
{
    uint8_t list = c->flush_on;
    if (list == FLUSH_NONE)
        return;
    io_server *srv = c->srv;
    if (c->fprev)
        c->fprev->fnext = c->fnext;
    else
        srv->flush_head[list] = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    else
        srv->flush_tail[list] = c->fprev;
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
    bool was_empty = srv->flush_head[want] == NULL;
    c->flush_on = want;
    c->fnext = NULL;
    c->fprev = srv->flush_tail[want];
    if (c->fprev)
        c->fprev->fnext = c;
    else
        srv->flush_head[want] = c;
    srv->flush_tail[want] = c;
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

/* Write the sessions of `list` from its head until it is empty or, past `deadline` (uv_hrtime();
 * 0: none), the time is up. */
static void flush_drain(io_server *srv, uint8_t list, uint64_t deadline)
{
    io_conn *c;
    unsigned n = 0;
    while ((c = srv->flush_head[list])) {
        io_flush_remove(c);
        ws_flush(c);
        if (deadline && ++n % IO_FLUSH_CLOCK_EVERY == 0 && uv_hrtime() >= deadline)
            break;
    }
}

static void flush_all(io_server *srv)
{
    uv_idle_stop(&srv->flush_idle);
    flush_drain(srv, FLUSH_NOW, 0);
    if (srv->flush_head[FLUSH_BULK])
        flush_drain(srv, FLUSH_BULK, uv_hrtime() + IO_FLUSH_SLICE_NS);
    if (srv->flush_head[FLUSH_NOW] || srv->flush_head[FLUSH_BULK])
        flush_arm(srv);
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
}

void io_flush_close(io_server *srv)
{
    uv_check_stop(&srv->flush_check);
    uv_close((uv_handle_t *)&srv->flush_check, NULL);
    uv_idle_stop(&srv->flush_idle);
    uv_close((uv_handle_t *)&srv->flush_idle, NULL);
}
