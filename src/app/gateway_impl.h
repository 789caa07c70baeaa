/* What the files of the presence gateway share (gateway.c: the Socket.IO hooks and the store
 * calls; gateway_fanout.c: events to sockets). Not a contract: see presenced/gateway.h.
 *
 * Local groups: "r:<room>" the sockets in a room, "s:<user>" the sockets subscribed to a user,
 * and, when only identified sockets may read, "i" the identified sockets.
 */
#ifndef PRESENCED_GATEWAY_IMPL_H
#define PRESENCED_GATEWAY_IMPL_H

#include "presenced/app/gateway.h"
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
    map socks; /* sid -> gw_sock */
    metrics_family *events_in, *events_out;
    metrics_family *auth_results; /* token checks, by result */
    metrics_family *limit_hits;   /* refusals by a limit, by limit */
};

/* The group of `kind` (ROOM_GROUP, SUB_GROUP) for `name`, into `out` (GROUP_MAX bytes). */
void gateway_group_name(char *out, size_t cap, char kind, const char *name);
/* The group broadcasts to readers go to: the namespace (NULL) or the identified sockets. */
const char *gateway_readers_group(const gateway *gw);
/* The store's presence event hook. */
void gateway_on_event(const pres_event *ev, void *ud);

#endif
