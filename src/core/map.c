#include "presenced/core/map.h"

#include <stdlib.h>
#include <string.h>

/* A seeded 64-bit mix of the key bytes (wyhash-like multiply-xorshift rounds). Not
 * cryptographic, but the per-process random seed keeps remote peers from precomputing
 * colliding keys. */
static uint64_t map_hash(uint64_t seed, const char *key, size_t len)
{
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (len + 1));
    const unsigned char *p = (const unsigned char *)key;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h ^= v * 0xbf58476d1ce4e5b9ULL;
        h = (h << 31 | h >> 33) * 0x94d049bb133111ebULL;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, len);
    h ^= tail * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

void map_init(map *m, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    m->seed = seed;
}

void map_deinit(map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    map_init(m, m->seed);
}

static map_slot *map_find(const map *m, const char *key, size_t klen, uint32_t h)
{
    if (!m->cap || klen > UINT32_MAX)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        map_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

void *map_get(const map *m, const char *key, size_t klen)
{
    map_slot *s = map_find(m, key, klen, (uint32_t)map_hash(m->seed, key, klen));
    return s ? s->value : NULL;
}

static void map_insert_slot(map *m, map_slot src)
{
    size_t i = src.hash & (m->cap - 1);
    while (m->slots[i].key)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = src;
}

static int map_grow(map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    map_slot *old = m->slots;
    size_t ocap = m->cap;
    m->slots = calloc(ncap, sizeof(*m->slots));
    if (!m->slots) {
        m->slots = old;
        return -1;
    }
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key)
            map_insert_slot(m, old[i]);
    free(old);
    return 0;
}

int map_put(map *m, const char *key, size_t klen, void *value)
{
    if (klen > UINT32_MAX)
        return -1;
    uint32_t h = (uint32_t)map_hash(m->seed, key, klen);
    map_slot *s = map_find(m, key, klen, h);
    if (s) {
        s->value = value;
        return 0;
    }
    /* Keep the load factor at or under 3/4: probe runs stay short with a well-mixed hash, and a
     * table is 3/8 to 3/4 full (at 1/2 it was 1/4 to 1/2, twice the memory per entry). */
    if ((m->count + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
        return -1;
    char *k = malloc(klen + 1);
    if (!k)
        return -1;
    memcpy(k, key, klen);
    k[klen] = 0;
    map_insert_slot(m, (map_slot){.key = k, .klen = (uint32_t)klen, .hash = h, .value = value});
    m->count++;
    return 0;
}

void *map_del(map *m, const char *key, size_t klen)
{
    map_slot *s = map_find(m, key, klen, (uint32_t)map_hash(m->seed, key, klen));
    if (!s)
        return NULL;
    void *value = s->value;
    free(s->key);
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);
    /* Backward-shift deletion: move later entries of the probe run into the hole when their
     * home slot does not lie cyclically between the hole and their current slot. */
    for (size_t j = (hole + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = m->slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (map_slot){0};
    m->count--;
    return value;
}

map_slot *map_next(const map *m, size_t *pos)
{
    while (*pos < m->cap) {
        map_slot *s = &m->slots[(*pos)++];
        if (s->key)
            return s;
    }
    return NULL;
}
