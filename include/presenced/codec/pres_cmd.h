/* pres_cmd — validation of the arguments of presence commands and of the handshake auth
 * (docs/protocol.md). Everything a client sends passes through here before it reaches the store.
 *
 * Pure code: no I/O, no globals. Returned strings are borrowed from the cJSON input unless said.
 */
#ifndef PRESENCED_PRES_CMD_H
#define PRESENCED_PRES_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

enum {
    PRES_CMD_OK = 0,
    PRES_CMD_ABSENT = 1,   /* optional field not present */
    PRES_CMD_INVALID = -1, /* present but invalid: *why says what is wrong */
};

/* A user id or room name: a string of 1..PRES_ID_MAX bytes, valid UTF-8, without control
 * characters (C0, DEL, C1). */
bool pres_name_valid(const char *s, size_t len);

/* A status a client may set: online, away, busy, dnd, invisible. */
bool pres_status_valid(const char *s);

/* The command's argument object: the first element of `args` (an array), which must be an object.
 * An empty array gives an empty object view (*obj = NULL, returns PRES_CMD_ABSENT). */
int pres_cmd_object(const cJSON *args, const cJSON **obj, const char **why);

/* A name field (user id or room). Rejects a key given twice (cJSON keeps duplicates, and which
 * one counts must not be ambiguous where identity is at stake). */
int pres_cmd_name(const cJSON *obj, const char *key, const char **out, const char **why);

/* The status field. */
int pres_cmd_status(const cJSON *obj, const char *key, const char **out, const char **why);

/* An integer field from 0 to `max`. */
int pres_cmd_uint(const cJSON *obj, const char *key, uint32_t max, uint32_t *out, const char **why);

/* The metadata field: a JSON object whose compact text is at most `max` bytes. On success *out
 * is a malloc'd compact JSON text the caller frees. */
int pres_cmd_metadata(const cJSON *obj, const char *key, size_t max, char **out, const char **why);

/* A list of user ids: an array of 1..max valid names. On success *out is a malloc'd array of
 * borrowed pointers (the caller frees the array only) and *n its length. */
int pres_cmd_names(const cJSON *obj, const char *key, size_t max, const char ***out, size_t *n,
                   const char **why);

#endif
