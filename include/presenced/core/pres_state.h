/* pres_state — the presence rules of docs/presence-model.md for one instance, in memory: users,
 * their sockets and rooms, the offline grace and the retention of offline users. The memory store
 * is this plus a timer; the Redis store implements the same rules in Lua.
 *
 * Pure code: time comes in as `now` (ms since the epoch); events go into a caller's list.
 */
#ifndef PRESENCED_PRES_STATE_H
#define PRESENCED_PRES_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presenced/codec/pres_err.h"
#include "presenced/codec/pres_event.h"

typedef struct pres_state pres_state;

/* A growable list of events the caller owns (pres_events_clear frees them). */
typedef struct pres_events {
    pres_event *v;
    size_t n, cap;
} pres_events;

void pres_events_clear(pres_events *l);

/* A user as queries see it; strings borrowed from the state until its next change. */
typedef struct pres_user_view {
    bool known, online;
    const char *status; /* "offline" when not online */
    const char *metadata;
    int64_t last_seen, since;
    uint32_t sockets;
} pres_user_view;

pres_state *pres_state_new(uint64_t hash_seed, uint32_t grace_ms, uint32_t retention_s);
void pres_state_free(pres_state *ps);

/* The operations of docs/presence-model.md. Each returns PRES_OK or a PRES_ERR_* code and
 * appends the events it decided to `out`. */
int pres_state_open(pres_state *ps, const char *sid, const char *user, const char *status,
                    const char *metadata, int64_t now, pres_events *out);
int pres_state_assert(pres_state *ps, const char *sid, const char *user, const char *status,
                      const char *metadata, const char *const *rooms, size_t nrooms, int64_t now);
int pres_state_close(pres_state *ps, const char *sid, bool graceful, int64_t now, pres_events *out);
int pres_state_join(pres_state *ps, const char *sid, const char *room, int64_t now,
                    pres_events *out);
int pres_state_leave(pres_state *ps, const char *sid, const char *room, int64_t now,
                     pres_events *out);
int pres_state_status(pres_state *ps, const char *sid, const char *status, const char *metadata,
                      int64_t now, pres_events *out);
int pres_state_touch(pres_state *ps, const char *sid, int64_t now);
/* Close every socket (not graceful). */
int pres_state_close_all(pres_state *ps, int64_t now, pres_events *out);

/* Fire grace deadlines that passed and forget users offline longer than the retention. */
int pres_state_tick(pres_state *ps, int64_t now, pres_events *out);
/* The next time pres_state_tick has work, or INT64_MAX. */
int64_t pres_state_next_deadline(const pres_state *ps);

void pres_state_user(const pres_state *ps, const char *user, pres_user_view *out);
/* Members of a room: writes at most `limit` user ids (borrowed) to `out`, returns the total. */
size_t pres_state_room(const pres_state *ps, const char *room, const char **out, size_t limit);
/* A page of room members: the ids after `cursor` in bytewise order, at most `limit`. *out is a
 * malloc'd array of borrowed ids (the caller frees the array), *n its length; *total the room's
 * member count. Returns PRES_OK or PRES_ERR_NOMEM. */
int pres_state_room_page(const pres_state *ps, const char *room, const char *cursor, size_t limit,
                         const char ***out, size_t *n, size_t *total);
/* The user's socket ids in bytewise order: writes at most `max` (borrowed) to `out`, returns
 * how many the user has. */
size_t pres_state_user_sockets(const pres_state *ps, const char *user, const char **out,
                               size_t max);

/* The rooms socket `sid` is in: writes at most `max` (borrowed) to `out`, returns how many it is
 * in, or -1 if it is not registered. */
long pres_state_socket_rooms(const pres_state *ps, const char *sid, const char **out, size_t max);
/* Every registered socket id: writes at most `max` (borrowed, in no order) to `out`, returns the
 * number of registered sockets. */
size_t pres_state_socket_ids(const pres_state *ps, const char **out, size_t max);

typedef struct pres_stats {
    uint64_t users_online; /* with a socket, or inside the offline grace */
    uint64_t sockets, rooms;
} pres_stats;
/* O(1): kept up to date by the operations. */
void pres_state_stats(const pres_state *ps, pres_stats *out);

#endif
