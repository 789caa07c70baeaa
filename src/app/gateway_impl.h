/* What the files of the presence gateway share (gateway.c: the Socket.IO hooks and the store
 * calls; gateway_fanout.c: events to sockets). Not a contract: see presenced/gateway.h.
 *
 * Local groups: "r:<room>" the sockets in a room, "s:<user>" the sockets subscribed to a user,
 * and, when only identified sockets may read, "i" the identified sockets.
 */
#ifndef PRESENCED_GATEWAY_IMPL_H
#define PRESENCED_GATEWAY_IMPL_H

#include "presenced/app/gateway.h"
#include "presenced/app/watch.h"
#include "presenced/core/map.h"

#define NSP "/"
#define ROOM_GROUP 'r'
#define SUB_GROUP 's'
#define READERS_GROUP "i"
#define GROUP_MAX (PRES_ID_MAX + 3)

typedef struct gw_sock {
    gateway *gw;
    char sid[SIO_ID_LEN + 1];
    sio_sock *sock;
    policy_sock *ps;
} gw_sock;

struct gateway {
    sio_server *sio;
    store *st;
    policy *pol;
    map socks;    /* sid -> gw_sock */
    watch *watch; /* the views sockets watch (presence:sync) */
    metrics_family *events_in, *events_out;
    metrics_family *auth_results; /* token checks, by result */
    metrics_family *limit_hits;   /* refusals by a limit, by limit */
    /* The CONNECT_ERROR message of the last refused connect: the decision that made it is gone
     * by the time the Socket.IO server sends it. */
    char reject[sizeof(((policy_decision *)0)->text)];
};

/* One store call in flight. It names its socket by id: the socket may be gone when the store
 * answers, and then there is nobody to answer. */
typedef struct gw_req {
    gateway *gw;
    policy_act act; /* POLICY_ACT_NONE: fire and forget */
    bool at_connect;
    bool joined; /* join: this request put the socket in the room locally */
    char sid[SIO_ID_LEN + 1];
    int64_t ack_id;
    char *arg;      /* room (join, leave, page), status (status) */
    char *metadata; /* status: metadata to remember once the store accepted it */
    char *cursor;   /* room page: after which member */
    uint32_t page_limit;
    uint32_t watch; /* sync: the watch its snapshot is for */
} gw_req;

/* Requests (gateway.c): a new one for socket `g` (`arg` copied), and its release. */
gw_req *gw_req_new(gateway *gw, policy_act act, const gw_sock *g, int64_t ack_id, const char *arg);
void gw_req_free(gw_req *r);
/* The socket of a Socket.IO id, or NULL when it is gone. */
gw_sock *gw_sock_find(gateway *gw, const char *sid);

/* Acks: `reply` (taken over) as the answer; {ok: true}; an error with the policy's code; a reply
 * built piece by piece (`complete` false answers internal instead); a store failure. */
void gw_ack_json(sio_sock *s, int64_t ack_id, cJSON *reply);
cJSON *gw_reply_ok(void);
void gw_ack_error(sio_sock *s, int64_t ack_id, policy_code code, const char *message);
void gw_ack_built(sio_sock *s, int64_t ack_id, cJSON *reply, bool complete);
void gw_ack_store_error(sio_sock *s, int64_t ack_id, int err);

/* Local groups of `kind` (ROOM_GROUP, SUB_GROUP) for `name`: join (0 or -1), leave. */
int gw_group_join(sio_sock *s, char kind, const char *name);
void gw_group_leave(sio_sock *s, char kind, const char *name);

/* Reads (gateway_reads.c): a query or a room page, presence:sync and presence:unsync, carried
 * out for decision `d`. Return 0 (answered, or to be answered) or -1 (memory, nothing done). */
int gateway_query(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id);
int gateway_sync(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id);
int gateway_unsync(gateway *gw, gw_sock *g, const policy_decision *d, int64_t ack_id);

/* The group of `kind` (ROOM_GROUP, SUB_GROUP) for `name`, into `out` (GROUP_MAX bytes). */
void gateway_group_name(char *out, size_t cap, char kind, const char *name);
/* The group broadcasts to readers go to: the namespace (NULL) or the identified sockets. */
const char *gateway_readers_group(const gateway *gw);
/* The store's presence event hook. */
void gateway_on_event(const pres_event *ev, void *ud);

#endif
