/* redis_sentinel — where the primary of a Sentinel-managed Redis is, kept up to date.
 *
 * The watcher talks to one sentinel at a time (the next one in the list when a connection to it
 * fails), on two connections: one asks SENTINEL GET-MASTER-ADDR-BY-NAME (at once, every few
 * seconds, and whenever a data connection reports that the address it was given is no good), the
 * other subscribes to +switch-master, which every sentinel publishes when a failover ends. When
 * the address it knows changes, it calls `changed`. Data connections use it as their `locate`
 * (redis_client.h) and check ROLE themselves: a sentinel's answer can be stale for a moment.
 */
#ifndef PRESENCED_REDIS_SENTINEL_H
#define PRESENCED_REDIS_SENTINEL_H

#include <stdint.h>

#include <uv.h>

#include "presenced/codec/addr.h"

typedef struct redis_sentinel redis_sentinel;

typedef struct redis_sentinel_cfg {
    const addr_redis_url *url; /* mode SENTINEL: the sentinels and the master name; copied */
    const char *password;      /* the sentinels' own password (AUTH), NULL or "" for none */
    void (*changed)(void *ud); /* the primary's address changed, or became known */
    void *ud;
} redis_sentinel_cfg;

/* Create a watcher and start asking. Returns NULL on memory or loop errors. */
redis_sentinel *redis_sentinel_new(uv_loop_t *loop, const redis_sentinel_cfg *cfg);

/* The primary's address as last learned: 0 with `host` (ADDR_HOST_MAX bytes) and `port` set, or
 * -1 when no sentinel has named it yet. */
int redis_sentinel_primary(const redis_sentinel *w, char *host, uint16_t *port);

/* A data connection found that the address it was given does not lead to a primary: ask again
 * now (at most one question in flight). */
void redis_sentinel_refresh(redis_sentinel *w);

/* Stop; `closed(ud)` runs once the loop has released the watcher's handles. `changed` does not
 * run any more. */
void redis_sentinel_free(redis_sentinel *w, void (*closed)(void *ud), void *ud);

#endif
