/* redis_cluster — a Redis Cluster as presenced uses it: the slot map and one connection to each
 * primary that serves a slot.
 *
 * The map comes from CLUSTER SLOTS, asked of the seed nodes (then of any node the map names, the
 * next one when a node fails) when the cluster starts, every few seconds, and at once when a
 * request is redirected (MOVED), a node connection is lost or the cluster is down. Each primary
 * gets one supervised connection (redis_client.h: PING, stall detection, ROLE, function library
 * loaded), shared by everything that routes to its slots.
 *
 * Routing: a redis_client created with `cluster` and `slot` in its configuration has no socket of
 * its own; it is a view of the connection to the primary serving that slot (up while that one is,
 * with its run_id; down and up again when the slot moves to another primary). A request whose
 * answer is MOVED, ASK, TRYAGAIN or CLUSTERDOWN did not run: it fails like a lost reply (NULL),
 * and the map is refreshed. Scripts declare one key in the slot so that the node refuses them
 * before they run while the slot is elsewhere or migrating (a script that finds some of its keys
 * moved half-way would stop after partial writes; see docs/redis-schema.md). A connection that
 * must be its own (a blocking read) takes its address from redis_cluster_locate() instead.
 */
#ifndef PRESENCED_REDIS_CLUSTER_H
#define PRESENCED_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "presenced/codec/addr.h"
#include "presenced/io/redis_client.h"

typedef struct redis_cluster_cfg {
    const char *name;           /* for logs ("command", "lease"), copied */
    const addr_redis_url *url;  /* mode CLUSTER: the seed nodes and the password; copied */
    const char *library;        /* function library, loaded on every node connection; borrowed */
    uint32_t ping_ms, stall_ms; /* of the node connections (redis_client_cfg) */
} redis_cluster_cfg;

/* Create and start learning the map. Returns NULL on memory or loop errors. */
redis_cluster *redis_cluster_new(uv_loop_t *loop, const redis_cluster_cfg *cfg);

/* Close every connection (their pending callbacks run with NULL); `closed(ud)` runs once the loop
 * has released everything. Views must be freed first. */
void redis_cluster_free(redis_cluster *cl, void (*closed)(void *ud), void *ud);

/* The primary the map says serves `slot`: 0 with `host` (ADDR_HOST_MAX bytes) and `port`, or -1
 * while the map does not know one. For redis_client_cfg.locate. */
int redis_cluster_locate(const redis_cluster *cl, uint16_t slot, char *host, uint16_t *port);

/* Ask for the map again now (at most one question in flight). */
void redis_cluster_refresh(redis_cluster *cl);

/* Slots with a known primary whose connection is up: 16384 when the whole cluster is usable. */
size_t redis_cluster_slots_up(const redis_cluster *cl);

#endif
