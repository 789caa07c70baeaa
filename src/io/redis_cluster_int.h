/* redis_cluster_int — what redis_cluster.c and the views in redis_client.c share (not a public
 * header): a view asks the cluster for the connection serving its slot, and the cluster tells
 * every view when that may have changed.
 */
#ifndef PRESENCED_REDIS_CLUSTER_INT_H
#define PRESENCED_REDIS_CLUSTER_INT_H

#include <stdint.h>

#include "presenced/io/redis_client.h"
#include "presenced/io/redis_cluster.h"

/* The connection to the primary serving `slot`, when the map knows one and it is up; else NULL. */
redis_client *rc_node_for(redis_cluster *cl, uint16_t slot);

/* A view starts or stops following the cluster. Returns 0, or -1 without memory. */
int rc_view_add(redis_cluster *cl, redis_client *view);
void rc_view_remove(redis_cluster *cl, redis_client *view);

/* A node answered a request for `slot` with an error that says the request did not run there
 * (MOVED, ASK, TRYAGAIN, CLUSTERDOWN): take in what it says and ask for the map again. */
void rc_redirected(redis_cluster *cl, const redisReply *reply);

/* Whether an error reply is one of those. */
bool rc_is_redirect(const redisReply *reply);

/* redis_client.c: the view looks again at which connection serves its slot (up, down, or down
 * and up again on another primary). */
void redis_client_view_update(redis_client *view);

#endif
