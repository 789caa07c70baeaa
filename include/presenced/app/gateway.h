/* gateway — the presence commands of docs/protocol.md on the Socket.IO event API: an adapter that
 * hands every message a client sends to the presence policy (policy.h), carries out what it
 * decides (store calls, acks, local groups), and fans the store's presence events out to the
 * local sockets the policy names.
 */
#ifndef PRESENCED_GATEWAY_H
#define PRESENCED_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "presenced/core/metrics.h"
#include "presenced/core/policy.h"
#include "presenced/core/sio_server.h"
#include "presenced/io/store.h"

typedef struct gateway gateway;
struct uv_loop_s; /* libuv's loop: only the daemon, which creates the gateway, needs <uv.h> */

typedef struct gateway_opts {
    struct uv_loop_s *loop; /* times the batches of watched views */
    policy *policy;         /* the rules (borrowed; outlives the gateway) */
    metrics *metrics;       /* events in and out, limit hits, token checks; may be NULL */
} gateway_opts;

/* Create the gateway and register its handlers on `sio`. The store is attached afterwards with
 * gateway_attach_store(), created with the hooks from gateway_store_hooks(). */
gateway *gateway_new(sio_server *sio, const gateway_opts *opts);
store_hooks gateway_store_hooks(gateway *gw);
void gateway_attach_store(gateway *gw, store *st);
/* Number of identified local sockets. */
uint32_t gateway_sockets(const gateway *gw);
/* Number of distinct users with an identified local socket. */
uint32_t gateway_users(const gateway *gw);
/* Close every local socket of `user` (not graceful: the user's offline, if it follows, is not
 * delayed by offline_grace). Returns how many were closed. The store's PRES_EV_DISCONNECT
 * events call this on every instance. */
size_t gateway_disconnect_user(gateway *gw, const char *user);
/* Call about once a second: disconnects the sockets whose token has expired (exp + leeway) and
 * was not refreshed. Reads the clocks. */
void gateway_tick(gateway *gw);
/* Stop the gateway's timers: the first step of a shutdown, while the loop still runs. */
void gateway_shutdown(gateway *gw);
/* Free the gateway. The Socket.IO connections must be gone (their disconnect hooks have run). */
void gateway_free(gateway *gw);

#endif
