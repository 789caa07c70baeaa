/* utf8 — strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
 *
 * Pure code: no I/O, no globals.
 */
#ifndef PRESENCED_UTF8_H
#define PRESENCED_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the `len` bytes at `p` are well-formed UTF-8. NUL bytes are well-formed. */
bool utf8_valid(const uint8_t *p, size_t len);

#endif
