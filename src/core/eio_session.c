#include "presenced/core/eio_session.h"

#include <string.h>

void eio_session_init(eio_session *s, const char *sid, eio_transport transport,
                      const eio_limits *lim, uint64_t now)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->sid, sid, EIO_SID_LEN);
    s->sid[EIO_SID_LEN] = 0;
    s->lim = lim;
    s->transport = (uint8_t)transport;
    s->deadline = now + lim->ping_interval;
    fq_init(&s->out);
}

void eio_session_deinit(eio_session *s)
{
    fq_deinit(&s->out);
}

static bool is_probe(const eio_packet *p)
{
    return p->len == 5 && !p->binary && memcmp(p->data, "probe", 5) == 0;
}

/* Packets on a WebSocket that is still being probed: only "2probe" and then "5" are allowed
 * (spec: "Upgrade"). */
static eio_rx receive_probe_transport(eio_session *s, const eio_packet *p)
{
    if (s->upgrade == EIO_UPGRADE_NONE && p->type == EIO_PING && is_probe(p)) {
        s->upgrade = EIO_UPGRADE_PROBED;
        return EIO_RX_PROBE;
    }
    if (s->upgrade == EIO_UPGRADE_PROBED && p->type == EIO_UPGRADE) {
        s->upgrade = EIO_UPGRADE_DONE;
        s->transport = EIO_TRANSPORT_WEBSOCKET;
        return EIO_RX_UPGRADED;
    }
    return EIO_RX_ERROR;
}

eio_rx eio_session_receive(eio_session *s, eio_transport via, const eio_packet *p, uint64_t now)
{
    if (via != s->transport) {
        if (via == EIO_TRANSPORT_WEBSOCKET)
            return receive_probe_transport(s, p);
        return EIO_RX_ERROR; /* polling after the upgrade completed */
    }
    switch (p->type) {
    case EIO_PONG:
        /* Any pong proves liveness; the next ping is due one interval later (spec: "Heartbeat"). */
        if (s->awaiting_pong) {
            s->awaiting_pong = false;
            s->deadline = now + s->lim->ping_interval;
        }
        return EIO_RX_NONE;
    case EIO_MESSAGE:
        return EIO_RX_MESSAGE;
    case EIO_CLOSE:
        return EIO_RX_CLOSE;
    case EIO_NOOP:
        return EIO_RX_NONE;
    case EIO_PING:
    case EIO_OPEN:
    case EIO_UPGRADE:
    default:
        /* A v4 server sends pings, it never receives them outside a probe. */
        return EIO_RX_ERROR;
    }
}

eio_tick eio_session_tick(eio_session *s, uint64_t now)
{
    if (now < s->deadline)
        return EIO_TICK_NONE;
    if (s->awaiting_pong)
        return EIO_TICK_TIMEOUT;
    frame *ping = frame_new(EIO_PING, false, 0);
    if (!ping)
        return EIO_TICK_TIMEOUT;
    /* The ping goes ahead of queued messages: behind a backlog of broadcasts it would reach a
     * client that reads everything only after ping_timeout, and a live session would be
     * dropped. It is exempt from the queue limit (a full queue means a slow reader, whose
     * session the sender drops anyway). */
    int rc = fq_push_front(&s->out, ping);
    frame_unref(ping);
    if (rc < 0)
        return EIO_TICK_TIMEOUT;
    s->awaiting_pong = true;
    s->deadline = now + s->lim->ping_timeout;
    return EIO_TICK_PING;
}

int eio_session_send(eio_session *s, frame *f)
{
    uint32_t max_bytes = s->lim->send_queue_bytes ? s->lim->send_queue_bytes : UINT32_MAX;
    return fq_push(&s->out, f, s->lim->send_queue_max, max_bytes);
}

int eio_session_drain_payload(eio_session *s, buf *out)
{
    frame *f;
    while ((f = fq_peek(&s->out))) {
        if (eio_payload_append(out, (eio_type)f->type, f->binary, frame_payload(f), f->len) < 0)
            return -1;
        frame_unref(fq_pop(&s->out));
    }
    return 0;
}
