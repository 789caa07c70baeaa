/* sio_group — groups of Socket.IO sockets (rooms, and the namespace-wide group) and the broadcasts
 * to them: a frame encoded once and queued to every member.
 */
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/vec.h"
#include "sio_server_impl.h"

/* The hidden group that holds every socket of a namespace, for namespace-wide broadcasts. */
static size_t group_key(char *out, size_t cap, const char *nsp, const char *group)
{
    size_t nl = strlen(nsp), gl = group ? strlen(group) : 0;
    if (2 + nl + gl > cap)
        return 0;
    /* The kind byte and the NUL after the namespace keep "all sockets" and user groups apart,
     * whatever the names contain. */
    out[0] = group ? 'g' : 'a';
    memcpy(out + 1, nsp, nl);
    out[1 + nl] = 0;
    if (gl)
        memcpy(out + 2 + nl, group, gl);
    return 2 + nl + gl;
}

#define GROUP_KEY_MAX (2 + SIO_NSP_MAX + 1024)

/* The position of group `g` in s->groups, or -1: looked up from whichever side is shorter. */
static int membership_of(const sio_sock *s, const sio_group *g)
{
    if (s->ngroups <= g->n) {
        for (uint32_t i = 0; i < s->ngroups; i++)
            if (s->groups[i].g == g)
                return (int)i;
        return -1;
    }
    for (uint32_t i = 0; i < g->n; i++)
        if (g->members[i].s == s)
            return (int)g->members[i].gi;
    return -1;
}

int sio_groups_add(sio_sock *s, const char *group)
{
    sio_server *srv = s->conn->srv;
    char key[GROUP_KEY_MAX];
    size_t klen = group_key(key, sizeof(key), srv->nsps[s->nsp], group);
    if (!klen)
        return -1;
    sio_group *g = map_get(&srv->groups, key, klen);
    if (g) {
        if (membership_of(s, g) >= 0)
            return 0;
    } else {
        g = calloc(1, sizeof(*g));
        if (!g || !(g->key = malloc(klen)) || map_put(&srv->groups, key, klen, g) < 0) {
            if (g)
                free(g->key);
            free(g);
            return -1;
        }
        memcpy(g->key, key, klen);
        g->klen = klen;
    }
    if (VEC_RESERVE(g->members, g->n, g->cap, 4) < 0 ||
        VEC_RESERVE(s->groups, s->ngroups, s->capgroups, 2) < 0)
        goto undo;
    s->groups[s->ngroups] = (sio_membership){.g = g, .idx = g->n};
    g->members[g->n++] = (sio_member){.s = s, .gi = s->ngroups};
    s->ngroups++;
    return 0;
undo:
    if (g->n == 0) {
        map_del(&srv->groups, g->key, g->klen);
        free(g->key);
        free(g->members);
        free(g);
    }
    return -1;
}

void sio_groups_remove_at(sio_sock *s, uint32_t gi)
{
    sio_membership m = s->groups[gi];
    sio_group *g = m.g;
    /* Swap-remove on both sides, telling each moved entry its new position. */
    sio_member last = g->members[--g->n];
    if (m.idx != g->n) {
        g->members[m.idx] = last;
        last.s->groups[last.gi].idx = m.idx;
    }
    sio_membership lastm = s->groups[--s->ngroups];
    if (gi != s->ngroups) {
        s->groups[gi] = lastm;
        lastm.g->members[lastm.idx].gi = gi;
    }
    if (g->n == 0) {
        map_del(&s->conn->srv->groups, g->key, g->klen);
        free(g->key);
        free(g->members);
        free(g);
    }
}

static int group_find(const sio_sock *s, const char *group)
{
    char key[GROUP_KEY_MAX];
    size_t klen = group_key(key, sizeof(key), s->conn->srv->nsps[s->nsp], group);
    sio_group *g = klen ? map_get(&s->conn->srv->groups, key, klen) : NULL;
    return g ? membership_of(s, g) : -1;
}

int sio_group_join(sio_sock *s, const char *group)
{
    return sio_groups_add(s, group);
}

void sio_group_leave(sio_sock *s, const char *group)
{
    int i = group_find(s, group);
    if (i >= 0)
        sio_groups_remove_at(s, (uint32_t)i);
}

bool sio_group_has(const sio_sock *s, const char *group)
{
    return group_find(s, group) >= 0;
}

uint32_t sio_group_size(sio_server *srv, const char *nsp, const char *group)
{
    char key[GROUP_KEY_MAX];
    size_t klen = group_key(key, sizeof(key), nsp, group);
    sio_group *g = klen ? map_get(&srv->groups, key, klen) : NULL;
    return g ? g->n : 0;
}

long sio_broadcast(sio_server *srv, const char *nsp, const char *group, const char *event,
                   const cJSON *args)
{
    char key[GROUP_KEY_MAX];
    size_t klen = group_key(key, sizeof(key), nsp, group);
    sio_group *g = klen ? map_get(&srv->groups, key, klen) : NULL;
    if (!g)
        return 0;
    frame *f = sio_frame_event(nsp, event, args, SIO_NO_ACK, 0);
    if (!f)
        return -1;
    long sent = 0;
    /* Sending never removes members synchronously (a full queue only schedules a close), so
     * the member array is stable during the loop. */
    for (uint32_t i = 0; i < g->n; i++)
        if (sio_conn_queue(g->members[i].s->conn, f, true) == 0)
            sent++;
    frame_unref(f);
    return sent;
}

long sio_broadcast_groups(sio_server *srv, const char *nsp, const char *const *groups,
                          size_t ngroups, const char *event, const cJSON *args)
{
    return sio_broadcast_except(srv, nsp, groups, ngroups, NULL, 0, event, args);
}

long sio_broadcast_except(sio_server *srv, const char *nsp, const char *const *groups,
                          size_t ngroups, sio_sock *const *except, size_t nexcept,
                          const char *event, const cJSON *args)
{
    frame *f = NULL;
    long sent = 0;
    uint32_t round = ++srv->round;
    /* Those left out count as reached already. */
    for (size_t i = 0; i < nexcept; i++)
        except[i]->stamp = round;
    for (size_t i = 0; i < ngroups; i++) {
        char key[GROUP_KEY_MAX];
        size_t klen = group_key(key, sizeof(key), nsp, groups[i]);
        sio_group *g = klen ? map_get(&srv->groups, key, klen) : NULL;
        if (!g)
            continue;
        /* Encode only when someone is there to receive it, and only once. */
        if (!f && !(f = sio_frame_event(nsp, event, args, SIO_NO_ACK, 0)))
            return -1;
        for (uint32_t j = 0; j < g->n; j++) {
            sio_sock *s = g->members[j].s;
            if (s->stamp == round)
                continue;
            s->stamp = round;
            if (sio_conn_queue(s->conn, f, true) == 0)
                sent++;
        }
    }
    frame_unref(f);
    return sent;
}
