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

#include "presenced/codec/buf.h"

/* Append the compact JSON text of `item` to `out`. Non-finite numbers are written as null (as
 * JSON.stringify does). Returns 0 or -1 (memory). */
int json_append(buf *out, const cJSON *item);

/* Append one JSON string (quoted and escaped) or number, as json_append writes them: for answers
 * built as text, without a cJSON tree of one allocation per value. Return 0 or -1 (memory). */
int json_append_string(buf *out, const char *s);
int json_append_number(buf *out, double d);

#endif
