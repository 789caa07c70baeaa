/* eio_session — the Engine.IO v4 session state machine: heartbeat, upgrade from polling to
 * WebSocket, close, and the outgoing packet queue.
 *
 * Spec: socketio/engine.io-protocol README, "Heartbeat", "Upgrade", "Transports".
 * Pure code: time comes in as `now` (ms, monotonic); nothing here touches a socket. The io layer
 * feeds packets and ticks, and carries out what the return values ask for.
 */
#ifndef PRESENCED_EIO_SESSION_H
#define PRESENCED_EIO_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "presenced/codec/buf.h"
#include "presenced/codec/eio_codec.h"
#include "presenced/core/frame.h"

#define EIO_SID_LEN 20

typedef enum eio_transport { EIO_TRANSPORT_POLLING = 0, EIO_TRANSPORT_WEBSOCKET = 1 } eio_transport;

typedef struct eio_limits {
    uint32_t ping_interval;    /* ms */
    uint32_t ping_timeout;     /* ms */
    uint32_t max_payload;      /* bytes */
    uint32_t send_queue_max;   /* packets */
    uint32_t send_queue_bytes; /* payload bytes queued (0: no byte limit) */
} eio_limits;

typedef enum eio_upgrade_state {
    EIO_UPGRADE_NONE = 0,
    EIO_UPGRADE_PROBED, /* the WebSocket answered "3probe"; waiting for "5" */
    EIO_UPGRADE_DONE,
} eio_upgrade_state;

typedef struct eio_session {
    char sid[EIO_SID_LEN + 1];
    const eio_limits *lim; /* borrowed; outlives the session */
    uint8_t transport;     /* eio_transport */
    uint8_t upgrade;       /* eio_upgrade_state */
    bool awaiting_pong;
    uint64_t deadline; /* next ping, or the pong deadline while awaiting_pong */
    fq out;
} eio_session;

/* What the io layer must do after eio_session_receive(). */
typedef enum eio_rx {
    EIO_RX_NONE = 0, /* nothing */
    EIO_RX_MESSAGE,  /* hand the packet's data to Socket.IO */
    EIO_RX_PROBE,    /* answer "3probe" on the probing WebSocket; release a held poll with noop */
    EIO_RX_UPGRADED, /* the WebSocket is now the transport: release a held poll, flush the queue */
    EIO_RX_CLOSE,    /* the peer closed the session */
    EIO_RX_ERROR,    /* protocol violation: close the session */
} eio_rx;

typedef enum eio_tick {
    EIO_TICK_NONE = 0,
    EIO_TICK_PING,    /* a ping was queued: flush */
    EIO_TICK_TIMEOUT, /* no pong within pingTimeout: close the session */
} eio_tick;

/* Start a session on `transport` at time `now`; `sid` is copied (EIO_SID_LEN chars). */
void eio_session_init(eio_session *s, const char *sid, eio_transport transport,
                      const eio_limits *lim, uint64_t now);
/* Drop the queue. */
void eio_session_deinit(eio_session *s);

/* Feed one packet that arrived over `via`. */
eio_rx eio_session_receive(eio_session *s, eio_transport via, const eio_packet *p, uint64_t now);

/* Advance the heartbeat to `now`. */
eio_tick eio_session_tick(eio_session *s, uint64_t now);

/* Queue a frame (the queue takes its own reference). Returns 0, or -1 when the queue is full,
 * in packets or in bytes (a slow reader: the caller closes the session). */
int eio_session_send(eio_session *s, frame *f);

/* Move every queued packet into a polling payload appended to `out`. Returns 0 or -1 (memory). */
int eio_session_drain_payload(eio_session *s, buf *out);

#endif
