/* map — a string-keyed hash table (open addressing, linear probing, tombstone-free deletion by
 * backward shift). Keys are copied; values are borrowed pointers.
 *
 * The hash is keyed with a caller-provided seed so that peers who choose keys (room names) cannot
 * aim for collisions. Pure code: no I/O, no globals.
 */
#ifndef PRESENCED_MAP_H
#define PRESENCED_MAP_H

#include <stddef.h>
#include <stdint.h>

/* 24 bytes: every connection is an entry in several maps, so a slot's size is part of the memory
 * each connection costs. */
typedef struct map_slot {
    char *key; /* owned; NULL for an empty slot */
    uint32_t klen;
    uint32_t hash; /* the low half of the key's hash */
    void *value;
} map_slot;

typedef struct map {
    map_slot *slots;
    size_t cap; /* power of two or 0 */
    size_t count;
    uint64_t seed;
} map;

void map_init(map *m, uint64_t seed);
/* Frees the keys and the table; values are the caller's. */
void map_deinit(map *m);
/* The value stored under key, or NULL. */
void *map_get(const map *m, const char *key, size_t klen);
/* Store value under key (replacing any previous value). Returns 0, or -1 when out of memory or
 * when the key is 4 GiB or longer. */
int map_put(map *m, const char *key, size_t klen, void *value);
/* Remove key; returns the value it had, or NULL. */
void *map_del(map *m, const char *key, size_t klen);

/* Iterate: start with *pos = 0; returns the next occupied slot or NULL at the end. The map must not
 * change during iteration. */
map_slot *map_next(const map *m, size_t *pos);

#endif
