/* policy — the presence policy: the rules between clients and the store (docs/protocol.md,
 * docs/security.md). For every message a client sends and every event the store emits, it decides
 * what is allowed, what the store must do and who receives what: identity (insecure userIds or
 * verified tokens), rate limits per connection and per address, token expiry, limits on sockets,
 * rooms and subscriptions, the read scope, scoped fan-out, and what a viewer sees of an event or
 * a user (invisible users). The Socket.IO gateway and the HTTP API are adapters that carry out
 * its decisions; neither has a presence rule of its own.
 *
 * Pure code: time comes in as policy_now (nothing here reads a clock), nothing is logged or sent,
 * no globals. Tokens are verified here (jwt_verify is pure). Strings returned in decisions are
 * borrowed from the command's JSON unless said otherwise.
 */
#ifndef PRESENCED_POLICY_H
#define PRESENCED_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "presenced/codec/jwt.h"
#include "presenced/codec/pres_event.h"

/* presence:sync without batch_ms, and the most it may ask for. */
#define POLICY_BATCH_DEFAULT_MS 200
#define POLICY_BATCH_MAX_MS 10000
/* presence:room:query and GET /v1/rooms/{room}: members per page. */
#define POLICY_ROOM_PAGE_DEFAULT 100
#define POLICY_ROOM_PAGE_MAX 1000
/* A command naming n user ids counts as 1 + (n - 1) / POLICY_IDS_PER_TOKEN messages. */
#define POLICY_IDS_PER_TOKEN 1000
/* A connection refused more messages than rate_burst within this window is closed. */
#define POLICY_ABUSE_WINDOW_MS 10000
/* Addresses whose failed token checks are tracked one by one; past this many, the others share
 * one bucket, so that spraying addresses cannot grow the table without bound. */
#define POLICY_ADDRS_MAX 65536

typedef struct policy policy;
typedef struct policy_conn policy_conn;
typedef struct policy_sock policy_sock;

/* The client error codes of docs/protocol.md that the policy answers with, and the HTTP status
 * each would have. (Store failures have theirs in the presence error table, pres_err.h.) */
typedef enum policy_code {
    POLICY_OK = 0,
    POLICY_E_INVALID_ARGUMENT,
    POLICY_E_NOT_IDENTIFIED,
    POLICY_E_ALREADY_IDENTIFIED,
    POLICY_E_FORBIDDEN,
    POLICY_E_UNAUTHORIZED,
    POLICY_E_LIMIT_EXCEEDED,
    POLICY_E_RATE_LIMITED,
    POLICY_E_INTERNAL,
    POLICY_E_UNKNOWN_EVENT, /* an event that is no command (the message names the closest one) */
} policy_code;

/* "invalid_argument", ... ("ok" for POLICY_OK). */
const char *policy_code_name(policy_code code);
/* The HTTP status the API answers the code with (200 for POLICY_OK). */
unsigned policy_code_http_status(policy_code code);

/* Time, as the adapter read it: a monotonic clock for rates, the wall clock for token dates
 * (RFC 7519 §2 NumericDate). */
typedef struct policy_now {
    uint64_t ms;    /* monotonic milliseconds */
    int64_t wall_s; /* seconds since the epoch */
} policy_now;

typedef struct policy_opts {
    bool jwt;            /* auth = jwt (else insecure: the client's userId is trusted) */
    bool scoped;         /* broadcast = scoped (else all) */
    bool anonymous_read; /* anonymous_reads = on: anonymous sockets may query and hear events */
    bool api_privileged; /* the HTTP API needs a key: its callers see invisible users as they are */
    const char *jwt_audience; /* copied; NULL or "": "aud" not checked */
    const char *jwt_issuer;   /* copied; NULL or "": "iss" not checked */
    uint32_t jwt_leeway_s;
    uint32_t max_metadata_bytes;
    uint32_t max_bulk_ids;
    /* Limits; 0 = unlimited. */
    uint32_t max_sockets_per_user; /* identified local sockets of one user */
    uint32_t max_rooms_per_socket;
    uint32_t max_subscriptions_per_socket;
    uint32_t rate_limit; /* messages per second per connection (token bucket refill) */
    uint32_t rate_burst; /* bucket size; more refusals than this within the abuse window close */
    uint32_t auth_failures_per_min; /* failed token checks per address per minute */
    uint64_t hash_seed;             /* keys the tables that peers choose keys for */
} policy_opts;

/* Create the policy (`opts` copied). NULL when out of memory. */
policy *policy_new(const policy_opts *opts);
/* Free it. Every policy_sock and policy_conn must have been freed first. */
void policy_free(policy *p);
/* Replace the key tokens are verified with; takes ownership of `key` (NULL: every token is
 * refused) and frees the previous one. Sockets keep their identity. */
void policy_set_jwt_key(policy *p, jwt_key *key);
const policy_opts *policy_options(const policy *p);

/* ---- connections and sockets ---- */

/* One client connection (an Engine.IO session), from peer address `addr` (text, copied; "" if
 * unknown). Every message it sends counts against its rate. NULL when out of memory. */
policy_conn *policy_conn_new(policy *p, const char *addr);
void policy_conn_free(policy *p, policy_conn *c);

/* One Socket.IO socket of connection `c`; `owner` is the adapter's handle, returned by
 * policy_sock_owner(). Anonymous until identified. NULL when out of memory. */
policy_sock *policy_sock_new(policy *p, policy_conn *c, void *owner);
/* Forget the socket (and its identity, rooms and subscriptions). */
void policy_sock_free(policy *p, policy_sock *s);

void *policy_sock_owner(const policy_sock *s);
/* The socket's user, or NULL while anonymous. */
const char *policy_sock_user(const policy_sock *s);
/* The status and metadata (JSON text or NULL) the store last accepted for this socket's user. */
const char *policy_sock_status(const policy_sock *s);
const char *policy_sock_metadata(const policy_sock *s);
/* The status the socket asked to connect with (auth.status, presence:identify's status), or
 * NULL: the store's socket_open takes it, NULL leaving the user's status as it is. */
const char *policy_sock_asked_status(const policy_sock *s);
/* The rooms the socket is in (borrowed until the next change). */
const char *const *policy_sock_rooms(const policy_sock *s, size_t *n);
bool policy_sock_in_room(const policy_sock *s, const char *room);
/* Whether the socket has subscribed to `user`. */
bool policy_sock_subscribed(const policy_sock *s, const char *user);
/* The next local socket of the same user (NULL after the last), starting from
 * policy_user_first(). */
policy_sock *policy_sock_next_of_user(const policy_sock *s);

/* The first identified local socket of `user`, or NULL. */
policy_sock *policy_user_first(const policy *p, const char *user);
/* Identified local sockets, and distinct users with one. */
uint32_t policy_sockets(const policy *p);
uint32_t policy_users(const policy *p);
/* The store announced a local user's status and metadata (an online or update event; other
 * events, and users with no local socket, are ignored): remember them while the user has local
 * sockets. After Redis lost its data, the sockets register again with these, so that the user
 * comes back as observers last saw them (an invisible user stays invisible), whichever of their
 * sockets registers first (docs/presence-model.md, "Redis lost its data"). */
void policy_user_told(policy *p, const pres_event *ev);
/* The status and metadata (NULL: none) the store last announced for local user `user`: false
 * when no event has said them yet. The strings live until the user's next event or last socket. */
bool policy_user_announced(const policy *p, const char *user, const char **status,
                           const char **metadata);

/* ---- decisions ---- */

/* The commands of docs/protocol.md. Adding one is a row in the table of policy.c. */
typedef enum policy_cmd {
    POLICY_CMD_IDENTIFY = 0,
    POLICY_CMD_REFRESH,
    POLICY_CMD_HEARTBEAT,
    POLICY_CMD_ROOM_JOIN,
    POLICY_CMD_ROOM_LEAVE,
    POLICY_CMD_STATUS,
    POLICY_CMD_SUBSCRIBE,
    POLICY_CMD_UNSUBSCRIBE,
    POLICY_CMD_QUERY,
    POLICY_CMD_ROOM_QUERY,
    POLICY_CMD_SYNC,   /* presence:sync: watch a view (a room, or a contact list) */
    POLICY_CMD_UNSYNC, /* presence:unsync */
    /* Any other event: it counts against the rate like every message, and is answered
     * unknown_event, naming the closest command, so that a client waiting for an ack learns
     * what it got wrong. */
    POLICY_CMD_UNKNOWN,
    POLICY_NCMDS
} policy_cmd;

/* The command an event name stands for (POLICY_CMD_UNKNOWN for any other), and back. */
policy_cmd policy_cmd_of(const char *event);
const char *policy_cmd_name(policy_cmd cmd);

/* What the adapter must do. */
typedef enum policy_act {
    POLICY_ACT_NONE = 0, /* only answer (code) */
    POLICY_ACT_CLOSE,    /* close the connection (it ignores the rate limit); no answer */
    POLICY_ACT_OPEN,     /* register the socket with the store: socket_open(user, metadata) */
    POLICY_ACT_TOUCH,    /* store touch, answer with its result */
    POLICY_ACT_JOIN,     /* the socket joined `room` here: store room_join, answer {ok, room} */
    POLICY_ACT_LEAVE,    /* the socket left `room` here: store room_leave, answer {ok, room} */
    POLICY_ACT_STATUS,   /* store status_set(status, metadata); on success policy_sock_status_set */
    POLICY_ACT_SUBSCRIBE,   /* `ids` were subscribed here; answer per code */
    POLICY_ACT_UNSUBSCRIBE, /* `ids` were unsubscribed here; answer per code */
    POLICY_ACT_QUERY,       /* store users_query(ids), answer through policy_user_view */
    POLICY_ACT_ROOM_PAGE,   /* store room_page(room, cursor, limit) */
    POLICY_ACT_REFRESH, /* the token was replaced; leave `ids` (rooms it no longer allows) in the
                         * store like room leaves, then answer ok */
    POLICY_ACT_SYNC,    /* watch `room` (or the users `ids`) in batches of `batch_ms` */
    POLICY_ACT_UNSYNC,  /* stop watching `room` (NULL: the contact list) */
} policy_act;

typedef struct policy_decision {
    policy_cmd cmd;
    policy_act act;
    policy_code code;    /* POLICY_OK, or the error to answer (CONNECT_ERROR at connect) */
    const char *message; /* text of the error: static, or `text` */
    bool answer;         /* false: send no ack (unknown events) */
    bool touch;          /* then refresh the user's lastSeen in the store, unanswered */
    bool at_connect;     /* decided by policy_connect */
    bool joined;         /* JOIN: this command put the socket in the room (it was not in it) */
    /* Labels to count in presenced_limit_hits_total{limit} and presenced_auth_tokens_total
     * {result} (NULL when unused). auth_error is the jwt_verify code of a refused token. */
    const char *limits[2];
    const char *auth_results[2];
    int auth_error;
    /* Arguments. */
    const char *user;     /* OPEN: the identity (borrowed from the socket) */
    const char *metadata; /* OPEN, STATUS: JSON text or NULL (OPEN: borrowed from the socket) */
    const char *room;     /* JOIN, LEAVE, ROOM_PAGE */
    const char *status;   /* STATUS: the new status, or NULL to keep it (metadata alone) */
    const char *cursor;   /* ROOM_PAGE: "" for the first page */
    uint32_t page_limit;  /* ROOM_PAGE */
    uint32_t batch_ms;    /* SYNC */
    const char **ids;     /* SUBSCRIBE, UNSUBSCRIBE, QUERY: user ids; REFRESH: rooms to leave */
    size_t nids;
    /* Owned by the decision (policy_decision_deinit). */
    char text[192]; /* an error message made for this decision */
    char *owned_metadata;
    char **owned_names;
} policy_decision;

void policy_decision_deinit(policy_decision *d);

/* A socket asks to join a namespace with `auth` (the CONNECT payload or NULL). On POLICY_OK the
 * socket may be identified already (act OPEN: register it once the CONNECT reply is out); on an
 * error, `message` is the CONNECT_ERROR text and the socket must be freed. */
void policy_connect(policy *p, policy_sock *s, const cJSON *auth, policy_now now,
                    policy_decision *d);
/* The client closed the socket's namespace (DISCONNECT). Leaving is never refused, but it
 * counts against the rate: act CLOSE when the connection must be closed (abuse). */
void policy_disconnect(policy *p, policy_sock *s, policy_now now, policy_decision *d);
/* Any other message of the connection that no socket handles (an acknowledgement nobody waits
 * for): it counts against the rate, act CLOSE as above. */
void policy_message(policy *p, policy_conn *c, policy_now now, policy_decision *d);
/* A command (an event from socket `s`; `args` the array of its arguments, borrowed). Local
 * state (identity, rooms, subscriptions) changes here; the store's part is left to the adapter
 * (`act`). The decision borrows from `args` until it is deinited. */
void policy_command(policy *p, policy_sock *s, const char *event, const cJSON *args, policy_now now,
                    policy_decision *d);

/* The store refused what a decision asked, or the adapter could not carry it out: undo its
 * local part (an identify makes the socket anonymous again, a join that put the socket in the
 * room leaves it, a subscribe forgets `ids`). Only act, at_connect, joined, room and ids are
 * read. */
void policy_undo(policy *p, policy_sock *s, const policy_decision *d);
/* The store accepted a status change: remember it (it is part of what the store reconciles
 * with). `status` or `metadata` NULL keeps the previous one. Returns 0 or -1 (memory). */
int policy_sock_status_set(policy_sock *s, const char *status, const char *metadata);
/* The server closes the socket on purpose (an API disconnect): its user's offline is not
 * delayed by the offline grace. */
void policy_sock_kick(policy_sock *s);
/* Whether closing the socket is graceful: the client went away and may come back within the
 * offline grace (false after policy_sock_kick). */
bool policy_close_graceful(const policy_sock *s);

/* Call about once a second: `expired` is called for each socket whose token has expired
 * (exp + leeway) and was not refreshed (at most once per socket), and the per-address counters
 * that are back to full are forgotten. The callback must not free sockets synchronously. */
void policy_tick(policy *p, policy_now now, void (*expired)(policy_sock *s, void *ud), void *ud);

/* ---- read scope ---- */

/* Whether socket `s` may read presence: users (room NULL) or the members of `room` (their
 * list, their room events). Anonymous sockets read only with anonymous_reads = on; with
 * auth = jwt the token's rooms claim bounds the rooms. Returns POLICY_OK, or
 * POLICY_E_NOT_IDENTIFIED / POLICY_E_FORBIDDEN with a static *why. */
policy_code policy_read_scope(const policy *p, const policy_sock *s, const char *room,
                              const char **why);

/* Remove repeated ids from `ids` in place (first occurrences kept, in order). Returns the new
 * count, or (size_t)-1 when out of memory (`ids` then unchanged). Linear in n. */
size_t policy_ids_unique(const policy *p, const char **ids, size_t n);

/* ---- who receives what ---- */

/* Who looks: a Socket.IO socket or a caller of the HTTP API. */
typedef struct policy_viewer {
    bool api;        /* the HTTP API (queries, the event stream) */
    bool identified; /* socket: identified (false: anonymous) */
    bool self;       /* socket: the user looked at is the viewer's own */
} policy_viewer;

/* What `viewer` sees of event `ev`: `ev` itself, `scratch` filled with another form of it (a
 * shallow copy sharing ev's strings), or NULL for nothing. An invisible user's comings and
 * goings and room changes are hidden from others; turning invisible or visible reads, for them,
 * as going offline or coming online; privileged API callers see everything as it is. A reset
 * (the store lost its data) is seen by every reader. */
const pres_event *policy_view(const policy *p, const pres_event *ev, const policy_viewer *viewer,
                              pres_event *scratch);

/* Whether `viewer` also sees each of ev->rooms change with `ev`, as a room event of type *as: an
 * update that makes the user invisible reads, for others, as leaving each of their rooms (before
 * the offline), one that makes them visible as joining them again (after the online), so that a
 * room's members always agree with the room's events. */
bool policy_view_rooms(const policy *p, const pres_event *ev, const policy_viewer *viewer,
                       pres_event_type *as);

/* What `viewer` sees of a user the store reports as `online` with `status`. */
void policy_user_view(const policy *p, const policy_viewer *viewer, bool online, const char *status,
                      bool *shown_online, const char **shown_status);

/* The sockets an event goes to. */
typedef enum policy_audience {
    POLICY_TO_READERS,     /* every socket that may read (broadcast = all) */
    POLICY_TO_WATCHERS,    /* sockets subscribed to the user or in one of ev->rooms (scoped) */
    POLICY_TO_ROOM,        /* the sockets in ev->room */
    POLICY_TO_OWN_IN_ROOM, /* the user's own sockets in ev->room */
    POLICY_TO_KICK_USER,   /* no one: close the user's local sockets (policy_sock_kick first) */
    POLICY_TO_EACH_ROOM,   /* for each of ev->rooms, its sockets: ev as a room event of type `as` */
    POLICY_TO_OWN,         /* the user's own sockets */
} policy_audience;

#define POLICY_ROUTES_MAX 3

typedef struct policy_route {
    policy_audience to;
    const pres_event *ev; /* what they receive: the event itself or a view in `scratch` */
    pres_event_type as;   /* POLICY_TO_EACH_ROOM: the room event each room's sockets get */
    bool but_own;         /* the user's own sockets are left out (they have a route of their own) */
} policy_route;

/* Where event `ev` goes and in which form. A user's own sockets see their own invisibility as
 * it is (an update), never as their own offline, online or room changes. Writes at most
 * POLICY_ROUTES_MAX routes to `out`
 * (`scratch` holds a rewritten form when one is needed) and returns how many. */
size_t policy_route_event(const policy *p, const pres_event *ev, pres_event *scratch,
                          policy_route out[POLICY_ROUTES_MAX]);

/* Whether readers are a subset of the namespace that the adapter must track (anonymous_reads =
 * off: only identified sockets read). */
bool policy_readers_identified_only(const policy *p);

#endif
