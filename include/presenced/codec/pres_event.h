/* pres_event — a presence event, its internal JSON form and the Redis stream's form, and what
 * clients, SSE and webhooks are sent.
 *
 * Pure code: no I/O, no clock, no globals.
 */
#ifndef PRESENCED_PRES_EVENT_H
#define PRESENCED_PRES_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#define PRES_ID_MAX 128    /* bytes in a user id or room name */
#define PRES_STATUS_MAX 16 /* bytes in a status name */

typedef enum pres_event_type {
    PRES_EV_ONLINE = 0, /* user went from 0 to >= 1 live sockets cluster-wide */
    PRES_EV_OFFLINE,    /* user went back to 0 (after offline_grace) */
    PRES_EV_ROOM_JOIN,  /* user's first socket joined `room` */
    PRES_EV_ROOM_LEAVE, /* user's last socket left `room` */
    PRES_EV_UPDATE,     /* status and/or metadata changed */
    /* Not a presence transition: a command to every instance to close the user's local sockets
     * (POST /v1/users/{id}/disconnect). It travels the event stream so that each instance sees
     * it; only the gateway acts on it, and nothing forwards it to clients or webhooks. */
    PRES_EV_DISCONNECT,
    /* Not a presence transition either: the first entry of a new generation of the store (the
     * Redis store lost its data: restarted empty, flushed, failed over to an empty replica).
     * What observers were told before it is void; the events after it rebuild presence from
     * nothing (docs/presence-model.md, "Redis lost its data"). It names no user (`user` is ""). */
    PRES_EV_RESET,
} pres_event_type;

/* Every string is owned by the event (pres_event_deinit frees them). */
typedef struct pres_event {
    pres_event_type type;
    char *user;        /* always set ("" for PRES_EV_RESET) */
    char *socket;      /* the socket whose change caused it (online/offline), or NULL */
    char *room;        /* room events */
    char *status;      /* the user's status (online, offline, update, room events); update: also
                        * prev_status */
    char *prev_status; /* update */
    char *metadata;    /* JSON object text, or NULL (online, update, room join) */
    int64_t last_seen; /* ms since the epoch (offline; 0 otherwise) */
    int64_t at;        /* ms since the epoch when the store decided it */
    char **rooms;      /* rooms the user is (online/update) or was (offline) in, for routing */
    size_t nrooms, caprooms;
    char id[48]; /* stream entry id ("1700000000000-0"), or the memory store's sequence */
} pres_event;

/* The event's name on the wire: "presence:online", "presence:offline", "presence:room:join",
 * "presence:room:leave", "presence:update" ("presence:disconnect" for the control entry,
 * "presence:resync" for a reset). */
const char *pres_event_name(pres_event_type type);
/* The event's type tag in the stream: "online", "offline", "room:join", "room:leave", "update",
 * "disconnect", "reset". */
const char *pres_event_tag(pres_event_type type);

/* Order of two event ids: the Redis store's stream ids ("MS-SEQ") or the memory store's
 * sequence numbers ("N", read as "N-0"). Returns <0, 0, >0; an id that is neither compares as
 * "0-0". pres_event_id_valid tells whether `id` has one of the two forms. */
int pres_event_id_cmp(const char *a, const char *b);
bool pres_event_id_valid(const char *id);

void pres_event_init(pres_event *ev, pres_event_type type);
void pres_event_deinit(pres_event *ev);

/* Copy a string into an event field (frees the previous value). Returns 0 or -1 (memory). */
int pres_event_set(char **field, const char *value);
/* Append a routing room (any number of them; amortised O(1)). Returns 0 or -1 (memory). */
int pres_event_add_room(pres_event *ev, const char *room);

/* The internal JSON form, every field included (the memory store's ring, deep copies; releases
 * before the stream's own form wrote it to the Redis stream):
 * {"t":"online","u":"...","s":"...","r":"...","st":"...","ps":"...","m":{...},"ls":N,"at":N,
 *  "rs":["..."]}; a reset has no "u". Returns a malloc'd NUL-terminated string, or NULL
 * (memory). */
char *pres_event_encode(const pres_event *ev);
/* Parse an event in the internal JSON form (text that starts with '{') or in the Redis stream's
 * form, which the store's functions write (an online user's event stays in the stream, so it
 * is kept short):
 *   <tag>\t<user>[\t<key><value>]...[\tm<metadata>]
 * tag one letter: o online, f offline, j room:join, l room:leave, u update, d disconnect; a
 * reset is "x" alone. Each field present is a one-letter key and its value: s socket, r room,
 * t status, p previous status, l lastSeen (decimal ms), g a routing room (one field each, in
 * order); metadata (JSON object text) is the last field and runs to the end, for it may hold
 * tabs. Validates types, id lengths and UTF-8 in both. Returns 0, or -1 for invalid input (`ev`
 * then holds nothing to free). */
int pres_event_decode(const char *json, size_t len, pres_event *ev);

/* The client-facing payload object of the event (what presence:* events carry):
 * online {userId, socketId, status, metadata?}, offline {userId, socketId, lastSeen},
 * room join/leave {userId, room}, update {userId, status, metadata}, reset (presence:resync)
 * {reset: true}, each followed by "seq": the event's id, when it has one. Caller owns it. */
cJSON *pres_event_payload(const pres_event *ev);

/* Add "metadata" to object `obj`: the JSON of `metadata` (object text), or null for NULL or text
 * that does not parse. Returns 0 or -1 (memory). */
int pres_event_metadata_add(cJSON *obj, const char *metadata);

/* The event as the HTTP API's event stream and webhooks show it:
 * {"id","type","userId","at", ...} with type "user.online", "user.offline", "room.join",
 * "room.leave" or "user.update", and the fields of the type: online {socketId, status,
 * metadata}, offline {socketId, lastSeen}, room {room}, update {status, prevStatus, metadata};
 * a reset is {"id","type":"reset","reason":"store_empty","at"}. NULL for PRES_EV_DISCONNECT (not
 * a presence event) or memory. Caller owns it. */
cJSON *pres_event_public(const pres_event *ev);
/* "user.online", ..., "reset" (NULL for PRES_EV_DISCONNECT). */
const char *pres_event_public_type(pres_event_type type);

#endif
