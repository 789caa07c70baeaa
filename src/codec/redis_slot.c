/* redis_slot — hash slots, redirections and the slot map (see presenced/codec/redis_slot.h). */
#include "presenced/codec/redis_slot.h"
#include "presenced/codec/vec.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CRC16-CCITT in its XMODEM variant (polynomial 0x1021, initial value 0, no reflection), the one
 * the cluster specification names; bit by bit, since keys are short. */
static uint16_t crc16(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t redis_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        /* An empty tag ("{}") does not count: the whole key is hashed. */
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - key);
        }
    }
    return crc16((const unsigned char *)key, len) & (REDIS_SLOTS - 1);
}

/* A decimal in s[0..n) within 1..max. */
static bool parse_uint(const char *s, size_t n, uint32_t max, uint32_t *out)
{
    if (n == 0 || n > 5)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

int redis_redirect_parse(const char *err, size_t len, redis_redirect *out)
{
    size_t word;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        out->kind = REDIS_REDIRECT_MOVED;
        word = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        out->kind = REDIS_REDIRECT_ASK;
        word = 4;
    } else {
        return -1;
    }
    const char *p = err + word, *end = err + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    uint32_t slot, port;
    if (!sp || !parse_uint(p, (size_t)(sp - p), REDIS_SLOTS - 1, &slot))
        return -1;
    const char *hp = sp + 1, *colon = NULL;
    for (const char *q = hp; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon || !parse_uint(colon + 1, (size_t)(end - colon - 1), 65535, &port) || port == 0)
        return -1;
    size_t hn = (size_t)(colon - hp);
    if (hn >= sizeof(out->host) || memchr(hp, ' ', hn) || memchr(hp, '\0', hn))
        return -1;
    memcpy(out->host, hp, hn);
    out->host[hn] = '\0';
    out->slot = (uint16_t)slot;
    out->port = (uint16_t)port;
    return 0;
}

void redis_slotmap_init(redis_slotmap *m)
{
    memset(m, 0, sizeof(*m));
}

void redis_slotmap_deinit(redis_slotmap *m)
{
    free(m->nodes);
    redis_slotmap_init(m);
}

int redis_slotmap_find(const redis_slotmap *m, const char *host, uint16_t port)
{
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && strcmp(m->nodes[i].host, host) == 0)
            return (int)i;
    return -1;
}

/* The node's index, added if new; -1 when memory ran out. */
static int node_index(redis_slotmap *m, const char *host, uint16_t port)
{
    int i = redis_slotmap_find(m, host, port);
    if (i >= 0)
        return i;
    if (m->nnodes == REDIS_SLOTS)
        return -1;
    if (VEC_RESERVE(m->nodes, m->nnodes, m->cap, 4) < 0)
        return -1;
    addr_redis_node *n = &m->nodes[m->nnodes];
    memcpy(n->host, host, strlen(host) + 1);
    n->port = port;
    return (int)m->nnodes++;
}

int redis_slotmap_assign(redis_slotmap *m, uint32_t first, uint32_t last, const char *host,
                         uint16_t port)
{
    if (first > last || last >= REDIS_SLOTS || !host[0] || strlen(host) >= ADDR_HOST_MAX ||
        port == 0)
        return -1;
    int i = node_index(m, host, port);
    if (i < 0)
        return -1;
    for (uint32_t s = first; s <= last; s++)
        m->owner[s] = (uint16_t)(i + 1);
    return i;
}

const addr_redis_node *redis_slotmap_owner(const redis_slotmap *m, uint16_t slot)
{
    if (slot >= REDIS_SLOTS || m->owner[slot] == 0)
        return NULL;
    return &m->nodes[m->owner[slot] - 1];
}

size_t redis_slotmap_covered(const redis_slotmap *m)
{
    size_t n = 0;
    for (size_t s = 0; s < REDIS_SLOTS; s++)
        n += m->owner[s] != 0;
    return n;
}

uint16_t redis_partition_tag(unsigned k, unsigned n, char out[REDIS_TAG_MAX])
{
    uint32_t lo = (uint32_t)((uint64_t)k * REDIS_SLOTS / n);
    uint32_t hi = (uint32_t)((uint64_t)(k + 1) * REDIS_SLOTS / n); /* exclusive */
    /* Each candidate lands in the range with probability (hi - lo) / 16384 >= 1/1024: a match
     * comes within a few thousand tries. */
    for (unsigned j = 0;; j++) {
        int len = snprintf(out, REDIS_TAG_MAX, "%u-%u", k, j);
        uint16_t slot = redis_slot(out, (size_t)len);
        if (slot >= lo && slot < hi)
            return slot;
    }
}

unsigned redis_partition_of(const char *id, size_t len, unsigned n)
{
    return n > 1 ? crc16((const unsigned char *)id, len) % n : 0;
}
