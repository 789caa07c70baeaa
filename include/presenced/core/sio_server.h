/* sio_server — the Socket.IO v5 server core: connections (one per Engine.IO session), namespace
 * sockets, binary attachment reassembly, acks in both directions, named groups of sockets, and
 * the event API the presence gateway is written against.
 *
 * Spec: socketio/socket.io-protocol Readme, "Exchange protocol".
 * Pure code: time comes in as `now` (ms); the io layer supplies the hooks in sio_io_ops and feeds
 * Engine.IO packets. Sending never touches a socket: frames go into the session queue and
 * ops.wake() tells io to flush.
 */
#ifndef PRESENCED_SIO_SERVER_H
#define PRESENCED_SIO_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <cJSON.h>

#include "presenced/core/eio_session.h"
#include "presenced/core/frame.h"
#include "presenced/core/map.h"
#include "presenced/codec/sio_codec.h"

#define SIO_ID_LEN 20
#define SIO_PEER_MAX 48 /* bytes of a peer address as text, NUL included (INET6_ADDRSTRLEN) */
/* The disconnect reason of a socket whose client sent DISCONNECT. */
#define SIO_REASON_CLIENT "client namespace disconnect"

typedef struct sio_server sio_server;
typedef struct sio_conn sio_conn;
typedef struct sio_sock sio_sock;

/* Binary attachments of a packet, in placeholder order. Frames are binary EIO_MESSAGE frames. */
typedef struct sio_binary {
    frame *att[SIO_MAX_ATTACHMENTS];
    unsigned n;
} sio_binary;

/* Hooks into the io layer. */
typedef struct sio_io_ops {
    /* The connection's queue has frames to send. `bulk`: the new frame is one of a broadcast to
     * many connections, which io may hold back briefly to write several together. */
    void (*wake)(sio_conn *c, void *io, bool bulk);
    /* Close the connection soon (never synchronously: the core may still be iterating).
     * `reason` is a static string for the logs. */
    void (*close)(sio_conn *c, void *io, const char *reason);
    /* Fill `out` with SIO_ID_LEN unguessable URL-safe characters and a NUL. */
    void (*make_id)(char out[SIO_ID_LEN + 1], void *ud);
    /* Write the peer address of the connection as text into `out` ("" if unknown). May be NULL. */
    void (*peer)(sio_conn *c, void *io, char out[SIO_PEER_MAX]);
    void *ud;
} sio_io_ops;

/* A client event. `args` is the JSON array of arguments without the event name (borrowed for the
 * duration of the call); `bin` the attachments its placeholders refer to (NULL if none);
 * `ack_id` is SIO_NO_ACK or the id to answer with sio_ack(). */
typedef void (*sio_event_fn)(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                             int64_t ack_id, void *ud);
/* A socket asks to join a namespace (`auth` = the CONNECT payload or NULL, borrowed). Return 0 to
 * accept, or a negative value and set *reject to a static message for CONNECT_ERROR. Must not
 * emit: the CONNECT reply has not been sent yet. It may close the connection
 * (sio_sock_disconnect) and refuse: no CONNECT_ERROR is sent then.
 * Or return SIO_CONNECT_HOLD to accept and hold the reply until sio_sock_release(): until then
 * the socket exists (its events reach the handlers, it may join groups, the disconnect hook will
 * run) but the client is not yet told it is connected, and hears nothing: what the connection is
 * to send meanwhile (to any of its sockets) is parked, within the send queue's limits, and goes
 * out right after the CONNECT reply. The daemon holds it until the store has registered the socket,
 * so that a client that sees "connected" is counted online everywhere. */
typedef int (*sio_connect_fn)(sio_sock *s, cJSON *auth, const char **reject, void *ud);
#define SIO_CONNECT_HOLD 1
/* A socket was accepted and its CONNECT reply queued; it may emit now. `auth` is NULL when the
 * reply was held (SIO_CONNECT_HOLD). */
typedef void (*sio_connected_fn)(sio_sock *s, cJSON *auth, void *ud);
/* An accepted socket left (client DISCONNECT, connection closed, or server shutdown). */
typedef void (*sio_disconnect_fn)(sio_sock *s, const char *reason, void *ud);
/* The client answered a server→client ack: `args` borrowed; called with args == NULL when the
 * socket went away first. */
typedef void (*sio_ack_fn)(sio_sock *s, cJSON *args, const sio_binary *bin, void *ud);
/* A message no handler takes: an event without a handler (`event` its name), or an ack nobody
 * waits for (`event` NULL). `args` borrowed (the event's arguments, or the ack's). */
typedef void (*sio_unhandled_fn)(sio_sock *s, const char *event, cJSON *args, int64_t ack_id,
                                 void *ud);
/* A connection is being freed, after its sockets (their disconnect hooks have run). */
typedef void (*sio_conn_close_fn)(sio_conn *c, void *ud);

typedef struct sio_server_opts {
    const char *const *namespaces; /* NULL-terminated, "/" is always served */
    eio_limits limits;
    uint32_t connect_timeout;    /* ms */
    uint32_t attachment_timeout; /* ms */
    bool engineio_echo;          /* Engine.IO conformance: echo every message, no Socket.IO */
    uint64_t hash_seed;
} sio_server_opts;

/* Create the server. `opts` is copied (the namespace strings too). NULL on allocation failure. */
sio_server *sio_server_new(const sio_server_opts *opts, const sio_io_ops *ops);
/* Free the server. Every connection must have been freed first. */
void sio_server_free(sio_server *srv);
/* The Engine.IO limits every session of this server uses. */
const eio_limits *sio_server_limits(const sio_server *srv);

/* Handlers. sio_server_on() with the same name replaces the previous handler. */
void sio_server_on_connect(sio_server *srv, sio_connect_fn fn, void *ud);
void sio_server_on_connected(sio_server *srv, sio_connected_fn fn, void *ud);
void sio_server_on_disconnect(sio_server *srv, sio_disconnect_fn fn, void *ud);
int sio_server_on(sio_server *srv, const char *event, sio_event_fn fn, void *ud);
void sio_server_on_unhandled(sio_server *srv, sio_unhandled_fn fn, void *ud);
void sio_server_on_conn_close(sio_server *srv, sio_conn_close_fn fn, void *ud);

/* Connections (called by io). sio_conn_new() starts the Engine.IO session with id `sid` and
 * stores the opaque `io` handle; sio_conn_free() disconnects its sockets (handlers run) and frees
 * it. */
sio_conn *sio_conn_new(sio_server *srv, const char *sid, eio_transport transport, void *io,
                       uint64_t now);
void sio_conn_free(sio_conn *c, const char *reason);
eio_session *sio_conn_session(sio_conn *c);
void *sio_conn_io(const sio_conn *c);
/* The handlers' data of a connection (NULL until set). */
void sio_conn_set_data(sio_conn *c, void *data);
void *sio_conn_data(const sio_conn *c);
/* The peer address as text, from the io layer ("" if unknown). */
void sio_conn_peer(sio_conn *c, char out[SIO_PEER_MAX]);
/* Look up a connection by Engine.IO sid (NULL if none). */
sio_conn *sio_server_find(sio_server *srv, const char *sid, size_t len);
uint32_t sio_server_conn_count(const sio_server *srv);

/* Feed an Engine.IO MESSAGE packet. Returns 0, or -1 with *reason set when the connection must
 * be closed (invalid packet, protocol violation). */
int sio_conn_receive(sio_conn *c, const eio_packet *p, uint64_t now, const char **reason);
/* Advance timers. Returns 0, or -1 with *reason when the connection must be closed. */
int sio_conn_tick(sio_conn *c, uint64_t now, const char **reason);
/* The earliest time sio_conn_tick() has work to do. */
uint64_t sio_conn_deadline(const sio_conn *c);
/* True when sio_conn_tick() at `now` would close the connection for a deadline it waited on
 * (no pong, no CONNECT, attachments missing); the session is not changed. */
bool sio_conn_expiring(const sio_conn *c, uint64_t now);
/* Queue a frame on the connection and wake io; closes a slow reader whose queue is full.
 * Returns 0 or -1. */
int sio_conn_send(sio_conn *c, frame *f);

/* Sockets. */
const char *sio_sock_id(const sio_sock *s);
const char *sio_sock_nsp(const sio_sock *s);
sio_conn *sio_sock_conn(const sio_sock *s);
void sio_sock_set_data(sio_sock *s, void *data);
void *sio_sock_data(const sio_sock *s);
/* Close the whole connection of this socket (after the queued frames are flushed where possible).
 */
void sio_sock_disconnect(sio_sock *s, const char *reason);
/* Send the CONNECT reply of a socket held by the connect hook (SIO_CONNECT_HOLD), then run the
 * connected hook. Does nothing for a socket that is not held. Returns 0, or -1 when the reply
 * could not be queued (the connection is closing or out of memory). */
int sio_sock_release(sio_sock *s);

/* Sending. `args` is a JSON array of arguments (borrowed, may be NULL for none); `bin` the
 * attachments its placeholders refer to (NULL for none). Return 0 or -1 (memory, or the socket's
 * queue overflowed and the connection is being closed). */
int sio_emit(sio_sock *s, const char *event, const cJSON *args, const sio_binary *bin);
int sio_emit_with_ack(sio_sock *s, const char *event, const cJSON *args, const sio_binary *bin,
                      sio_ack_fn fn, void *ud);
int sio_ack(sio_sock *s, int64_t ack_id, const cJSON *args, const sio_binary *bin);
/* Answer with arguments already encoded: `json` is the JSON text of the arguments array (`len`
 * bytes, copied once into the frame), for answers too large to build as a cJSON tree. */
int sio_ack_text(sio_sock *s, int64_t ack_id, const char *json, size_t len);

/* Groups: named sets of local sockets within a namespace. A socket leaves all its groups when it
 * disconnects. Return 0 or -1 (memory). Joining, leaving and testing cost O(1) plus the smaller
 * of the socket's group count and the group's size. */
int sio_group_join(sio_sock *s, const char *group);
void sio_group_leave(sio_sock *s, const char *group);
bool sio_group_has(const sio_sock *s, const char *group);
/* Number of local sockets in the group. */
uint32_t sio_group_size(sio_server *srv, const char *nsp, const char *group);
/* Emit to every socket of a group, or (group == NULL) to every socket of the namespace. The frame
 * is encoded once and shared. Returns the number of sockets it was queued for, or -1 (memory). */
long sio_broadcast(sio_server *srv, const char *nsp, const char *group, const char *event,
                   const cJSON *args);

/* Emit to every socket that is in at least one of `groups` (each socket once, however many of the
 * groups it is in). Returns the number of sockets it was queued for, or -1 (memory). */
long sio_broadcast_groups(sio_server *srv, const char *nsp, const char *const *groups,
                          size_t ngroups, const char *event, const cJSON *args);
/* The same, leaving out the sockets of `except` (a group NULL in `groups` is the whole
 * namespace). */
long sio_broadcast_except(sio_server *srv, const char *nsp, const char *const *groups,
                          size_t ngroups, sio_sock *const *except, size_t nexcept,
                          const char *event, const cJSON *args);

/* Build the frame of a Socket.IO packet: header + JSON of `data` (NULL for none). The caller owns
 * the returned frame; NULL when out of memory. Exposed for tests and for io fast paths. */
frame *sio_frame_packet(sio_type type, const char *nsp, int64_t ack_id, unsigned attachments,
                        const cJSON *data);
/* Build an EVENT frame ["event", ...args]. */
frame *sio_frame_event(const char *nsp, const char *event, const cJSON *args, int64_t ack_id,
                       unsigned attachments);

#endif
