/* json — compact JSON serialisation of a cJSON tree.
 *
 * cJSON's own printer decides whether 15 digits are enough with a relative tolerance, so it prints
 * 9007199254740991 as 9.00719925474099e+15 and a client reads back another number. This printer
 * writes integers below 2^53 exactly and other numbers with the fewest digits that read back to
 * the same double. Pure code: no I/O, no globals.
 */
#ifndef PRESENCED_JSON_H
#define PRESENCED_JSON_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presenced/codec/buf.h"

/* The lexical rules of RFC 8259 that cJSON does not enforce, checked on the raw text before it
 * parses: cJSON takes every byte up to 0x20 as whitespace and raw control characters inside
 * strings (§2 and §7 forbid both), and it decodes "\u0000" into a NUL that cuts the C string it
 * hands back short, so "alice\u0000x" would read as "alice". True when `len` bytes at `p` break
 * none of them (the escapes' hex digits and everything else are cJSON's to check). */
bool json_lex_ok(const uint8_t *p, size_t len);

/* Append the compact JSON text of `item` to `out`. Non-finite numbers are written as null (as
 * JSON.stringify does). Returns 0 or -1 (memory). */
int json_append(buf *out, const cJSON *item);

/* Append one JSON string (quoted and escaped) or number, as json_append writes them: for answers
 * built as text, without a cJSON tree of one allocation per value. Return 0 or -1 (memory). */
int json_append_string(buf *out, const char *s);
int json_append_number(buf *out, double d);

#endif
