/* buf — a growable byte buffer used by the encoders.
 *
 * Pure code: no I/O, no globals. The buffer owns its storage; buf_deinit() frees it.
 */
#ifndef PRESENCED_BUF_H
#define PRESENCED_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} buf;

/* Initialise an empty buffer (no allocation). */
void buf_init(buf *b);
/* Free the storage and leave the buffer empty and reusable. */
void buf_deinit(buf *b);
/* Make room for at least `extra` more bytes. Returns 0 or -1 when out of memory. */
int buf_reserve(buf *b, size_t extra);
/* Append `len` bytes copied from `p`. Returns 0 or -1 when out of memory. */
int buf_append(buf *b, const void *p, size_t len);
/* Append a NUL-terminated string (without the NUL). Returns 0 or -1. */
int buf_append_str(buf *b, const char *s);
/* Append one byte. Returns 0 or -1. */
int buf_append_byte(buf *b, uint8_t c);

#endif
