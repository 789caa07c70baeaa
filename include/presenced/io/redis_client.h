/* redis_client — one supervised asynchronous Redis connection on a libuv loop (hiredis 0.14.1).
 *
 * hiredis's own libuv adapter is not used: it never reports a refused connection and leaks when
 * uv_poll_init fails (hiredis 0.14.1; 1.x fixed it). This module drives redisAsyncContext's event
 * hooks with a uv_poll_t and hands hiredis the read/write events also when libuv reports an error,
 * so that failures surface as hiredis errors.
 *
 * Supervision: the client connects (TCP or unix socket; to an address asked of `locate` before
 * every attempt when it is set), sends AUTH and SELECT when configured, checks with ROLE that
 * the node is a primary when asked to, reads the server's run_id (INFO server), checks that the
 * server serves its data (a PING, which a server still loading refuses) and loads its function
 * library (FUNCTION LOAD REPLACE) on every (re)connect, and only then reports itself up. It PINGs
 * every `ping_ms`. Slow is told from dead by progress (stall.h): while requests are outstanding,
 * a silence (no reply of any kind) that reaches the limit drops the connection; the limit is
 * `stall_ms` for a Redis that has been answering promptly and three times the longest silence it
 * recently ended otherwise, up to `stall_max_ms`. Lost connections are re-established with
 * exponential backoff (100 ms doubling up to 5 s).
 *
 * Requests: every request's callback runs exactly once, with the reply or with NULL (not
 * connected, connection lost, client freed). Requests made while the client is not up fail at
 * once: their callback runs from the loop shortly after, never inside the call. The reply is
 * borrowed for the duration of the callback.
 */
#ifndef PRESENCED_REDIS_CLIENT_H
#define PRESENCED_REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "presenced/codec/addr.h"

#define REDIS_RUN_ID_MAX 64

/* The store's function library (FUNCTION LOAD), generated at build time from the .lua files in
 * src/io/redis (src/io/redis/embed_lua.cmake). Its functions are named <file>_<version>. */
extern const char redis_library[];
extern const char redis_library_version[];

typedef struct redis_client redis_client;
typedef struct redis_cluster redis_cluster;

/* A reply (NULL: the request failed), borrowed for the call. */
typedef void (*redis_reply_fn)(const redisReply *reply, void *ud);

typedef struct redis_client_cfg {
    const char *name;       /* for logs ("command", "events"), copied */
    const addr_redis *addr; /* copied; NULL for a cluster view */
    const char *library;   /* loaded at every connect (NULL: none); borrowed, outlives the client */
    uint32_t ping_ms;      /* PING interval, 0 for none (a connection that blocks or subscribes) */
    uint32_t stall_ms;     /* no reply for this long while a request waits: reconnect... */
    uint32_t stall_max_ms; /* ...unless Redis recently ended longer silences; 0: 10 x stall_ms */
    void (*up)(const char *run_id, void *ud); /* connected and ready; run_id borrowed */
    void (*down)(void *ud);                   /* was up, connection lost */
    /* Where to connect, asked before every connection attempt when set (Sentinel, Cluster):
     * fills `host` (ADDR_HOST_MAX bytes) and `port` and returns 0, or returns -1 when nobody
     * knows yet (the attempt is then retried with backoff). `addr` then only gives the
     * password and the database. */
    int (*locate)(char *host, uint16_t *port, void *ud);
    /* Only a primary will do: ROLE is checked on every connection, and a node that turns out to
     * be a replica (ROLE, or a READONLY error) is dropped; requests it refused fail as lost. */
    bool primary_only;
    /* The address `locate` gave did not lead to a usable node (refused or failed connect, a
     * replica, or with `cluster_node` a redirection): whoever answers `locate` should find out
     * again. May be NULL. */
    void (*misdirected)(void *ud);
    /* `locate` names the Redis Cluster node serving a slot: an answer MOVED, ASK, TRYAGAIN or
     * CLUSTERDOWN means the request did not run there; it fails as lost, and the connection is
     * dropped and `misdirected` called. */
    bool cluster_node;
    /* A view of a Redis Cluster (redis_cluster.h): no socket of its own, but the cluster's
     * connection to the primary serving `slot`. `addr`, the library, PING and stall settings,
     * `locate` and `primary_only` are the cluster's then; functions are called with one key, given
     * by the caller, in `slot`. */
    redis_cluster *cluster;
    uint16_t slot;
    void *ud;
} redis_client_cfg;

/* Create a client and start connecting. Returns NULL on memory or loop errors. */
redis_client *redis_client_new(uv_loop_t *loop, const redis_client_cfg *cfg);

/* Close: every pending callback runs with NULL (some inside this call), no hook runs any more,
 * and `closed(ud)` runs once the loop has released the client's handles. May be called from a
 * reply callback of this client. */
void redis_client_free(redis_client *c, void (*closed)(void *ud), void *ud);

/* Connected, authenticated and the library loaded. */
bool redis_client_ready(const redis_client *c);

/* The run_id of the server the client is up on ("" before). Borrowed. */
const char *redis_client_run_id(const redis_client *c);

/* Where the client is connected or connecting ("" and 0 before the first attempt). Borrowed. */
const char *redis_client_host(const redis_client *c);
uint16_t redis_client_port(const redis_client *c);

/* The target may have moved (`locate` answers something else now): unless the client is up on
 * the address `locate` now gives, drop the connection (pending callbacks run with NULL) and
 * connect again at once, without waiting for the backoff. */
void redis_client_retarget(redis_client *c, const char *why);

/* Subscribe to `channel` (copied): `fn` runs with each message (the reply ["message", channel,
 * payload]) and once with NULL when the subscription ends (connection lost, client freed); it
 * is not renewed by itself: subscribe again from `up`. Only for a client with ping_ms 0 that
 * sends nothing else once subscribed (hiredis 0.14.1 cannot match a PING's reply in subscribed
 * mode). */
void redis_client_subscribe(redis_client *c, const char *channel, redis_reply_fn fn, void *ud);
/* How far behind the connection is, in ms: how long ago the oldest request still without a reply
 * was sent (an upper bound), 0 when every request has its reply; while the connection is not
 * up, how long ago it went down (or was created). Whatever was sent on it before now minus this
 * has been carried out by Redis. */
uint64_t redis_client_backlog_ms(const redis_client *c);

/* Write what is queued on the connection now, without waiting for the loop to poll it: for a
 * request that must leave during a long turn of the loop (libuv only takes up a new write
 * interest at the start of its next poll). Does nothing while the connection is not up. */
void redis_client_flush(redis_client *c);

/* Call `fn(NULL, ud)` from the loop shortly after, as for a request that could not be sent: for
 * callers that refuse a request themselves but keep the "never inside the call" promise. */
void redis_client_fail(redis_client *c, redis_reply_fn fn, void *ud);

/* Send a command made of `argc` binary-safe arguments (copied by hiredis). */
void redis_client_command(redis_client *c, int argc, const char **argv, const size_t *lens,
                          redis_reply_fn fn, void *ud);

/* Call function `name` of the client's library with FCALL; when Redis answers that the
 * function is not there (FUNCTION FLUSH or DELETE since the connect), load the library again and
 * call once more. `argv`: `nkeys` keys then the arguments, copied; `name` is copied too. */
void redis_client_fcall(redis_client *c, const char *name, int nkeys, int argc, const char **argv,
                        const size_t *lens, redis_reply_fn fn, void *ud);

#endif
