/* frame — one encoded Engine.IO packet, reference-counted so that a broadcast is encoded once and
 * shared by every recipient's queue.
 *
 * Layout of `bytes`: FRAME_HEADROOM spare bytes (libwebsockets writes its WebSocket header there),
 * the Engine.IO type digit, then the payload, then a NUL. A WebSocket text message is the type
 * digit plus payload; a WebSocket binary message is the payload alone (spec: "Transports /
 * WebSocket").
 */
#ifndef PRESENCED_FRAME_H
#define PRESENCED_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presenced/codec/eio_codec.h"

/* Must be at least libwebsockets' LWS_PRE; the io layer checks that at compile time. */
#define FRAME_HEADROOM 16

typedef struct frame {
    uint32_t refs;
    uint32_t len; /* payload bytes */
    uint8_t type; /* eio_type */
    bool binary;
    uint8_t bytes[]; /* FRAME_HEADROOM + 1 + len + 1 */
} frame;

/* A new frame with refs = 1 and room for `len` payload bytes (uninitialised); NULL when out of
 * memory or when len does not fit in 32 bits. */
frame *frame_new(eio_type type, bool binary, size_t len);
/* A new frame holding a copy of `data`. */
frame *frame_from(eio_type type, bool binary, const void *data, size_t len);
/* Payload start (writable while the creator holds the only reference). */
static inline uint8_t *frame_payload(frame *f)
{
    return f->bytes + FRAME_HEADROOM + 1;
}
/* The bytes of the frame as one WebSocket message, with FRAME_HEADROOM bytes before *msg. */
void frame_ws_message(frame *f, uint8_t **msg, size_t *len);
static inline frame *frame_ref(frame *f)
{
    f->refs++;
    return f;
}
/* Drop one reference; frees the frame with the last one. NULL is ignored. */
void frame_unref(frame *f);

/* fq — a FIFO of frame references (a growable ring: no allocation per queued frame once warm). */
typedef struct fq {
    frame **ring;
    uint32_t cap; /* power of two or 0 */
    uint32_t head;
    uint32_t count;
    uint32_t bytes; /* payload bytes of the queued frames (saturates at UINT32_MAX) */
} fq;

void fq_init(fq *q);
/* Drops every queued reference and frees the ring. */
void fq_deinit(fq *q);
/* Queue a reference to `f` (the queue takes a new reference). Returns 0, or -1 when `limit`
 * frames are already queued, when the queued payload would exceed `max_bytes` bytes (a frame
 * larger than that is refused even on an empty queue), or when memory is short (the frame is
 * then not queued). */
int fq_push(fq *q, frame *f, uint32_t limit, uint32_t max_bytes);
/* Queue a reference to `f` ahead of every queued frame (no limit). Returns 0, or -1 when memory
 * is short. */
int fq_push_front(fq *q, frame *f);
/* The oldest frame (still owned by the queue), or NULL when empty. */
frame *fq_peek(const fq *q);
/* Remove the oldest frame and return the queue's reference to the caller. NULL when empty. */
frame *fq_pop(fq *q);

#endif
