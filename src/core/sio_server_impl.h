/* sio_server_impl — what the files of the Socket.IO core share: its connections, sockets, groups
 * and server state. Private to src/core/sio_*.c; the contract is presenced/core/sio_server.h.
 *   sio_server.c  the server, connections, sockets, sending and receiving
 *   sio_group.c   groups of sockets (rooms, namespaces) and broadcasts to them
 */
#ifndef PRESENCED_SIO_SERVER_IMPL_H
#define PRESENCED_SIO_SERVER_IMPL_H

#include "presenced/core/sio_server.h"

/* A server→client ack the client has not answered yet. */
typedef struct sio_pending_ack {
    struct sio_pending_ack *next;
    int64_t id;
    sio_ack_fn fn;
    void *ud;
} sio_pending_ack;

/* A socket in a group, and where the group is in that socket's list: each side records the
 * other's position, so that leaving a group is O(1) however many groups or members there are. */
typedef struct sio_member {
    sio_sock *s;
    uint32_t gi; /* position of the group in s->groups */
} sio_member;

/* A named set of sockets; `key` is the map key that names it. */
typedef struct sio_group {
    sio_member *members;
    uint32_t n, cap;
    char *key;
    size_t klen;
} sio_group;

typedef struct sio_membership {
    sio_group *g;
    uint32_t idx; /* position of the socket in g->members */
} sio_membership;

struct sio_sock {
    sio_sock *next; /* in the connection's list */
    sio_conn *conn;
    uint16_t nsp;
    char id[SIO_ID_LEN + 1];
    void *data;
    bool announced; /* the connected hook ran, so the disconnect hook must run too */
    bool held;      /* accepted, its CONNECT reply waits for sio_sock_release() */
    uint32_t stamp; /* last sio_broadcast_groups() round that reached this socket */
    sio_membership *groups;
    uint32_t ngroups, capgroups;
    sio_pending_ack *acks;
    int64_t next_ack_id;
};

struct sio_conn {
    eio_session eio;
    sio_server *srv;
    void *io;
    sio_sock *socks;
    uint64_t connect_deadline; /* 0 once a namespace was joined */
    bool closing;
    /* Sockets whose CONNECT reply is held (SIO_CONNECT_HOLD), and what the connection was to
     * send meanwhile: parked, so that a client hears nothing of a namespace before its CONNECT
     * reply, then sent in order right after it. */
    uint32_t nheld;
    fq parked;
    void *data; /* the handlers' (sio_conn_set_data) */
    /* A BINARY_* packet waiting for its attachments (spec: "Binary packets"); NULL almost
     * always, so it lives on the heap rather than in every connection. */
    struct sio_pending *pending;
};

typedef struct sio_pending {
    uint64_t deadline;
    sio_packet pkt;
    sio_binary bin;
} sio_pending;

typedef struct sio_handler {
    sio_event_fn fn;
    void *ud;
} sio_handler;

struct sio_server {
    sio_server_opts opts;
    char **nsps;
    uint16_t nnsps;
    sio_io_ops ops;
    map conns;      /* Engine.IO sid -> sio_conn */
    map groups;     /* group key -> sio_group */
    map handlers;   /* event name -> sio_handler */
    uint32_t round; /* sio_broadcast_groups() rounds, to send once per socket */
    sio_connect_fn on_connect;
    void *on_connect_ud;
    sio_connected_fn on_connected;
    void *on_connected_ud;
    sio_disconnect_fn on_disconnect;
    void *on_disconnect_ud;
    sio_unhandled_fn on_unhandled;
    void *on_unhandled_ud;
    sio_conn_close_fn on_conn_close;
    void *on_conn_close_ud;
};

/* Queue `f` on `c`; `bulk` when it is one of a broadcast (io may hold those back briefly).
 * Returns 0, or -1 when the connection is closing (a full queue starts the close). */
int sio_conn_queue(sio_conn *c, frame *f, bool bulk);

/* Put `s` in `group` of its namespace (NULL: the namespace-wide group). Returns 0 or -1. */
int sio_groups_add(sio_sock *s, const char *group);
/* Remove membership `gi` of `s`, and the group itself when it becomes empty. */
void sio_groups_remove_at(sio_sock *s, uint32_t gi);

#endif
