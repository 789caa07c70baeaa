/* pres_diff — what a view of presence (the members of a room, or the online users of a contact
 * list) shows, how each presence event changes it, and the coalescing of those changes into
 * batches (the presence:diff events of docs/protocol.md).
 *
 * A view lists users with their status and metadata. An invisible user is in no view: they read
 * as offline to everyone, and a view is shared by all its watchers.
 *
 * A batch holds, per user it touched, the user's state at the end of the batch: present (with
 * status and metadata) or absent. Entries are absolute, so applying a batch to any state the view
 * had between the batch's start and its end gives the state at its end. A user who was certainly
 * absent before the batch and is absent after it (a join then a leave) is left out of the compact
 * form; the full form keeps them as a leave, for a watcher whose snapshot may have seen the join.
 *
 * Pure code: time comes in as `now` (ms), no I/O, no globals.
 */
#ifndef PRESENCED_PRES_DIFF_H
#define PRESENCED_PRES_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "presenced/core/map.h"
#include "presenced/codec/pres_event.h"

/* One event's effect on a view. Strings are borrowed from the event. */
typedef struct pres_diff_change {
    const char *user;
    bool was_absent;               /* the user was certainly not in the view before the event */
    bool present;                  /* the user is in the view after the event */
    const char *status, *metadata; /* when present; metadata may be NULL */
} pres_diff_change;

/* Whether a user of this status appears in views (every status but "invisible"). */
bool pres_diff_shows(const char *status);

/* The effect of `ev` on the view of room `room`, or (room == NULL) on a contact-list view, which
 * the caller consults only for events of users on the list. Returns true and fills *c when the
 * event changes the view. A room view follows room joins, room leaves and updates of users in
 * the room; a contact list follows online, offline and updates. */
bool pres_diff_change_of(const pres_event *ev, const char *room, pres_diff_change *c);

/* A view entry as JSON: {userId, status, metadata} (metadata null when none). NULL: memory. */
cJSON *pres_diff_entry_json(const char *user, const char *status, const char *metadata);

typedef struct pres_diff_entry pres_diff_entry;

/* The batch of one view. */
typedef struct pres_diff {
    uint32_t batch_ms;
    map index; /* user -> entry position + 1 */
    pres_diff_entry *v;
    size_t n, cap;
    int64_t opened; /* when the first change of the batch came */
    char from[48];  /* id of the last event before this batch ("" before any) */
    char seq[48];   /* id of the newest event in the batch */
} pres_diff;

/* Caller-owned storage; `seed` keys the hash of user ids (they come from clients). */
void pres_diff_init(pres_diff *d, uint32_t batch_ms, uint64_t seed);
void pres_diff_deinit(pres_diff *d);

/* Record change `c` of event `seq` at `now`. Strings are copied. Returns 0 or -1 (memory: the
 * change is lost, and the caller should make watchers resync). */
int pres_diff_put(pres_diff *d, const pres_diff_change *c, const char *seq, int64_t now);

/* When the batch is due: batch_ms after its first change (so two batches of a view are at least
 * batch_ms apart), or INT64_MAX while it is empty. */
int64_t pres_diff_due(const pres_diff *d);

/* The batch as the payload of presence:diff: {room?, seq, joins: [entry], leaves: [userId],
 * updates: [entry]} (room omitted when NULL). `full`: keep the users who came and went within the
 * batch, as leaves. Returns NULL when memory runs out, or when the compact form is empty (nothing
 * to send). Caller owns the result. */
cJSON *pres_diff_json(const pres_diff *d, const char *room, bool full);

/* Whether a watcher whose snapshot reflects event `snapshot_seq` may take the compact form: its
 * snapshot is no newer than the start of this batch. */
bool pres_diff_compact_ok(const pres_diff *d, const char *snapshot_seq);

/* The batch was sent: start an empty one after it. */
void pres_diff_clear(pres_diff *d);

#endif
