/* redis_slot — the pure parts of speaking to a Redis Cluster: which hash slot a key lives in (CRC16
 * and hash tags, as the cluster specification defines them), what a MOVED or ASK redirection says,
 * and the slot map (which primary serves each slot). No I/O: the io layer feeds it what the
 * servers answer.
 */
#ifndef PRESENCED_REDIS_SLOT_H
#define PRESENCED_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include "presenced/codec/addr.h"

#define REDIS_SLOTS 16384

/* The hash slot of `key` (`len` bytes, binary): CRC16 (XMODEM) modulo 16384 of the key, or of its
 * hash tag when it has one: the bytes between the first '{' and the first '}' after it, when that
 * is not empty. */
uint16_t redis_slot(const char *key, size_t len);

typedef enum redis_redirect_kind {
    REDIS_REDIRECT_MOVED = 1, /* the slot has a new owner: update the map */
    REDIS_REDIRECT_ASK,       /* this one command: ask the node after ASKING */
} redis_redirect_kind;

typedef struct redis_redirect {
    redis_redirect_kind kind;
    uint16_t slot;
    char host[ADDR_HOST_MAX]; /* "" when the server did not know its endpoint (then: the same host)
                               */
    uint16_t port;
} redis_redirect;

/* Parse an error reply's text (`len` bytes, without the leading '-'): "MOVED <slot> <host>:<port>"
 * or "ASK <slot> <host>:<port>". The host is split at the last ':' (IPv6 addresses come without
 * brackets). Returns 0, or -1 when it is not a well-formed redirection. */
int redis_redirect_parse(const char *err, size_t len, redis_redirect *out);

/* Which primary serves each slot. */
typedef struct redis_slotmap {
    uint16_t owner[REDIS_SLOTS]; /* 1 + index into nodes; 0: no primary known */
    addr_redis_node *nodes;      /* distinct primaries, in the order first seen */
    size_t nnodes, cap;
} redis_slotmap;

/* An empty map. */
void redis_slotmap_init(redis_slotmap *m);
/* Release what the map holds; it is empty again. */
void redis_slotmap_deinit(redis_slotmap *m);

/* Slots first..last are served by host:port (copied). Returns the node's index, or -1 when the
 * range is not within 0..16383 (first <= last), the host is empty or too long, or memory ran
 * out (then the map is unchanged). */
int redis_slotmap_assign(redis_slotmap *m, uint32_t first, uint32_t last, const char *host,
                         uint16_t port);

/* The primary of `slot`, or NULL when none is known. */
const addr_redis_node *redis_slotmap_owner(const redis_slotmap *m, uint16_t slot);

/* The index of host:port among the map's nodes, or -1. */
int redis_slotmap_find(const redis_slotmap *m, const char *host, uint16_t port);

/* How many slots have a primary (16384 when the map is complete). */
size_t redis_slotmap_covered(const redis_slotmap *m);

/* ---- partitions: how presenced spreads its keys over a cluster ----
 *
 * With Redis Cluster, presenced's keys fall into `n` partitions, each under one hash tag, so
 * that every key a script touches is in one slot. Partition k's tag is chosen so that its slot
 * lies in the k-th of n equal ranges of the slot space: a cluster whose primaries hold equal
 * ranges (as redis-cli --cluster create makes them) gets the same number of partitions on each
 * when n is a multiple of the number of primaries. */
#define REDIS_PARTITIONS_MAX 1024
#define REDIS_TAG_MAX 16 /* bytes of a partition's tag, with the NUL */

/* Write partition k's tag (of n, 1 <= n <= REDIS_PARTITIONS_MAX, k < n), "<k>-<j>" with the
 * smallest j that puts its slot in range, into `out` (REDIS_TAG_MAX bytes). Returns its slot. */
uint16_t redis_partition_tag(unsigned k, unsigned n, char out[REDIS_TAG_MAX]);

/* The partition (of n) of an id, from the same CRC16 as slots: every instance agrees. */
unsigned redis_partition_of(const char *id, size_t len, unsigned n);

#endif
