/* b64 — standard base64 (RFC 4648 §4, with padding), as Engine.IO polling uses for binary packets.
 *
 * Pure code: no I/O, no globals.
 */
#ifndef PRESENCED_B64_H
#define PRESENCED_B64_H

#include <stddef.h>
#include <stdint.h>

/* Number of characters b64_encode() writes for `len` input bytes (no NUL). */
size_t b64_encoded_len(size_t len);
/* Encode `len` bytes of `in` into `out`, which must hold b64_encoded_len(len) bytes.
 * Returns the number of characters written. No NUL is written. */
size_t b64_encode(const uint8_t *in, size_t len, char *out);
/* Decode `len` characters of `in` into `out`, which must hold at least len / 4 * 3 bytes.
 * `out` may equal `in` (decoding in place is safe because output never overtakes input).
 * Padding is required (len % 4 == 0); characters outside the alphabet, misplaced '=' and
 * non-zero trailing bits are rejected. Returns the number of bytes written, or -1 on bad input. */
long b64_decode(const char *in, size_t len, uint8_t *out);

#endif
