/* stats_ring — the recent history the live page draws: one sample per interval (users online and
 * sockets cluster-wide, online and offline transitions during the interval), the last
 * STATS_RING_SLOTS of them. The caller counts transitions as events arrive and closes an interval
 * with a sample; the ring keeps no clock of its own.
 *
 * Pure code: no I/O, no clock, no globals. Caller-owned storage (stats_ring_init).
 */
#ifndef PRESENCED_STATS_RING_H
#define PRESENCED_STATS_RING_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An hour at the default interval of 10 s. */
#define STATS_RING_SLOTS 360

typedef struct stats_sample {
    int64_t t_ms;         /* end of the interval, ms since the epoch */
    int64_t users_online; /* cluster-wide at t_ms; -1: unknown (the store did not answer) */
    int64_t sockets;      /* likewise */
    uint32_t online;      /* presence:online transitions during the interval */
    uint32_t offline;     /* presence:offline transitions during the interval */
} stats_sample;

typedef struct stats_ring {
    stats_sample slots[STATS_RING_SLOTS];
    size_t head;  /* index of the next slot written */
    size_t count; /* samples held, at most STATS_RING_SLOTS */
    uint32_t interval_ms;
    uint32_t online, offline; /* counted in the interval not yet closed */
} stats_ring;

/* Empties the ring; interval_ms is reported with the samples (the caller keeps the time). */
void stats_ring_init(stats_ring *r, uint32_t interval_ms);

/* Counts one user transition in the current interval (online or offline). */
void stats_ring_count(stats_ring *r, bool online);

/* Closes the current interval at now_ms with the cluster's counts (-1 for unknown): the oldest
 * sample goes once the ring is full. */
void stats_ring_push(stats_ring *r, int64_t now_ms, int64_t users_online, int64_t sockets);

/* Samples held, and the i-th oldest (i < stats_ring_len). */
size_t stats_ring_len(const stats_ring *r);
const stats_sample *stats_ring_at(const stats_ring *r, size_t i);

/* {"intervalMs": N, "samples": [{"t", "usersOnline", "sockets", "online", "offline"}, ...]},
 * oldest first, unknown counts as null. Returns a new cJSON tree (caller frees), NULL (memory). */
cJSON *stats_ring_json(const stats_ring *r);

#endif
