/* gateway — the presence commands of docs/protocol.md on top of the Socket.IO event API: it
 * identifies sockets, checks every command against the socket's identity, calls the store, answers
 * with acks, and fans the store's presence events out to the right local sockets.
 */
#ifndef PRESENCED_GATEWAY_H
#define PRESENCED_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "presenced/codec/jwt.h"
#include "presenced/core/metrics.h"
#include "presenced/core/sio_server.h"
#include "presenced/io/store.h"

typedef struct gateway gateway;
struct uv_loop_s; /* libuv's loop: only the daemon, which creates the gateway, needs <uv.h> */

typedef struct gateway_opts {
    struct uv_loop_s *loop;      /* times the batches of watched views */
    bool scoped;                 /* broadcast = scoped (else all) */
    uint32_t max_metadata_bytes; /* largest metadata object */
    uint32_t max_bulk_ids;       /* most ids in one query or subscription */
    metrics *metrics;            /* events in (from the store) and out (to clients), or NULL */
    /* auth=jwt: a socket's identity comes only from a verified token (docs/security.md); the key
     * is set with gateway_set_jwt_key(). false: the userId a client sends is trusted. */
    bool jwt;
    const char *jwt_audience; /* copied; NULL or "" = "aud" not checked */
    const char *jwt_issuer;   /* copied; NULL or "" = "iss" not checked */
    uint32_t jwt_leeway_s;
    /* Limits; 0 = unlimited. */
    uint32_t max_sockets_per_user; /* identified local sockets of one user */
    uint32_t max_rooms_per_socket;
    uint32_t max_subscriptions_per_socket;
    uint32_t rate_limit; /* commands per second per socket (token bucket refill) */
    uint32_t rate_burst; /* bucket size; more refusals than this within 10 s close the socket */
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
/* Replace the key tokens are verified with (auth=jwt). Takes ownership of `key` (NULL allowed:
 * every token is then refused) and frees the previous one. Sockets keep their identity. */
void gateway_set_jwt_key(gateway *gw, jwt_key *key);
/* Call about once a second: disconnects the sockets whose token has expired (exp + leeway) and
 * was not refreshed. Reads the wall clock. */
void gateway_tick(gateway *gw);
/* Stop the gateway's timers: the first step of a shutdown, while the loop still runs. */
void gateway_shutdown(gateway *gw);
/* Free the gateway. The Socket.IO connections must be gone (their disconnect hooks have run). */
void gateway_free(gateway *gw);

#endif
