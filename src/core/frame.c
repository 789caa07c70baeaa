#include "presenced/core/frame.h"

#include <stdlib.h>
#include <string.h>

frame *frame_new(eio_type type, bool binary, size_t len)
{
    if (len > UINT32_MAX - FRAME_HEADROOM - 2)
        return NULL;
    frame *f = malloc(sizeof(*f) + FRAME_HEADROOM + 1 + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)len;
    f->type = (uint8_t)type;
    f->binary = binary;
    f->bytes[FRAME_HEADROOM] = (uint8_t)('0' + type);
    f->bytes[FRAME_HEADROOM + 1 + len] = 0;
    return f;
}

frame *frame_from(eio_type type, bool binary, const void *data, size_t len)
{
    frame *f = frame_new(type, binary, len);
    if (f && len)
        memcpy(frame_payload(f), data, len);
    return f;
}

void frame_ws_message(frame *f, uint8_t **msg, size_t *len)
{
    /* Binary messages carry no type digit: the payload alone, which still has
     * FRAME_HEADROOM + 1 bytes in front of it. */
    if (f->binary) {
        *msg = frame_payload(f);
        *len = f->len;
    } else {
        *msg = f->bytes + FRAME_HEADROOM;
        *len = (size_t)f->len + 1;
    }
}

void frame_unref(frame *f)
{
    if (f && --f->refs == 0)
        free(f);
}

void fq_init(fq *q)
{
    memset(q, 0, sizeof(*q));
}

void fq_deinit(fq *q)
{
    frame *f;
    while ((f = fq_pop(q)))
        frame_unref(f);
    free(q->ring);
    fq_init(q);
}

static int fq_grow(fq *q)
{
    uint32_t ncap = q->cap ? q->cap * 2 : 4;
    frame **nr = malloc(sizeof(*nr) * ncap);
    if (!nr)
        return -1;
    for (uint32_t i = 0; i < q->count; i++)
        nr[i] = q->ring[(q->head + i) & (q->cap - 1)];
    free(q->ring);
    q->ring = nr;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

static void fq_count(fq *q, const frame *f)
{
    q->bytes = f->len > UINT32_MAX - q->bytes ? UINT32_MAX : q->bytes + f->len;
}

int fq_push(fq *q, frame *f, uint32_t limit, uint32_t max_bytes)
{
    if (q->count >= limit || f->len > max_bytes || q->bytes > max_bytes - f->len)
        return -1;
    if (q->count == q->cap && fq_grow(q) < 0)
        return -1;
    q->ring[(q->head + q->count) & (q->cap - 1)] = frame_ref(f);
    q->count++;
    fq_count(q, f);
    return 0;
}

int fq_push_front(fq *q, frame *f)
{
    if (q->count == q->cap && fq_grow(q) < 0)
        return -1;
    q->head = (q->head + q->cap - 1) & (q->cap - 1);
    q->ring[q->head] = frame_ref(f);
    q->count++;
    fq_count(q, f);
    return 0;
}

frame *fq_peek(const fq *q)
{
    return q->count ? q->ring[q->head] : NULL;
}

frame *fq_pop(fq *q)
{
    if (!q->count)
        return NULL;
    frame *f = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    q->bytes = q->count ? q->bytes - (f->len < q->bytes ? f->len : q->bytes) : 0;
    return f;
}
