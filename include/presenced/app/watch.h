/* watch — the views local sockets watch (presence:sync, docs/protocol.md#views): a room's
 * members, or the online users of a contact list, sent as presence:diff batches coalesced by
 * pres_diff. A socket need not be in a room (nor identified) to watch it; whether it may is the
 * gateway's decision.
 *
 * Room views are shared by every local socket that watches the room with the same batch_ms, and
 * each batch is encoded once for all of them. A socket joins a view before its snapshot is read,
 * so no event after the snapshot can be missed; until the snapshot's seq is known, and while it
 * is newer than the start of a batch, the socket gets the batch in its full form (see
 * pres_diff.h), which is right whatever the snapshot saw.
 */
#ifndef PRESENCED_WATCH_H
#define PRESENCED_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "presenced/codec/pres_event.h"
#include "presenced/core/policy.h"
#include "presenced/core/sio_server.h"
#include "presenced/io/store.h"

/* presence:sync's batch_ms: the policy's rule (presenced/core/policy.h). */
#define WATCH_BATCH_DEFAULT_MS POLICY_BATCH_DEFAULT_MS
#define WATCH_BATCH_MAX_MS POLICY_BATCH_MAX_MS

typedef struct watch watch;

/* Views on `sio`'s namespace `nsp` (copied), timed on `loop`; `seed` keys the hash tables (room
 * names and user ids come from clients). NULL when out of memory. */
watch *watch_new(uv_loop_t *loop, sio_server *sio, const char *nsp, uint64_t seed);
/* Stop the batch timer (the first step of a shutdown, while the loop still runs); batches still
 * open are not sent. */
void watch_shutdown(watch *w);
/* Free every view (after watch_shutdown, or the memory goes only once the loop ran again). */
void watch_free(watch *w);

/* Socket `s` watches room `room` in batches of `batch_ms`, replacing an earlier watch of that
 * room. *id names this watch for watch_snapshot. Returns 0 or -1 (memory). */
int watch_room(watch *w, sio_sock *s, const char *room, uint32_t batch_ms, uint32_t *id);
/* Socket `s` watches the users `ids` (its contact list), replacing its earlier list. */
int watch_users(watch *w, sio_sock *s, const char *const *ids, size_t n, uint32_t batch_ms,
                uint32_t *id);
/* The snapshot answered for watch `id` of the socket (of `room`; NULL: its contact list)
 * reflects event `seq`; seq NULL: the snapshot failed and the watch stops. Nothing happens when
 * the socket has replaced that watch since (a later presence:sync), whose snapshot is the one
 * that counts. */
void watch_snapshot(watch *w, const char *sid, const char *room, uint32_t id, const char *seq);
/* Stop a watch (room NULL: the contact list). Returns whether there was one. */
bool watch_stop(watch *w, const char *sid, const char *room);
/* The socket is gone: stop all its watches. */
void watch_socket_gone(watch *w, const char *sid);
/* Whether the socket watches `room`, and how many rooms it watches. */
bool watch_has_room(const watch *w, const char *sid, const char *room);
size_t watch_room_count(const watch *w, const char *sid);

/* A presence event (borrowed): recorded in the views it changes. */
void watch_event(watch *w, const pres_event *ev);
/* The events views were built from may have had a gap (the store was unavailable): every
 * watcher is sent presence:resync and takes a new snapshot. */
void watch_resync(watch *w);
/* The store lost its data (a PRES_EV_RESET): open batches are dropped, as everything before the
 * reset is void, and every watcher is sent presence:resync. Events recorded from now on belong
 * to the new generation. */
void watch_reset(watch *w);

/* A snapshot as a view shows it: [{userId, status, metadata}], the users who are online and
 * visible (`online_only`: leave out users who are not online, for a contact list). NULL when
 * out of memory. */
cJSON *watch_members_json(const store_user *users, size_t n, bool online_only);

/* The page of a room's members `users` (sorted bytewise) after `cursor` ("" for the first), at
 * most `limit`, as GET /v1/rooms/{room} and presence:room:query page them: returns the count,
 * with *start the first and *more when members follow the page. */
size_t watch_page(const store_user *users, size_t n, const char *cursor, uint32_t limit,
                  size_t *start, bool *more);
/* Add to `out` one page of room `room` from a snapshot of its members (`users`, sorted) that
 * reflects event `seq`: room, onlineCount, users (ids), members (what a view shows of them),
 * nextCursor, seq, as presence:room:query and GET /v1/rooms/{room}?detail=1 answer. Returns 0,
 * or -1 (memory; `out` then holds part of it). */
int watch_room_page(cJSON *out, const char *room, const store_user *users, size_t n,
                    const char *cursor, uint32_t limit, const char *seq);

#endif
