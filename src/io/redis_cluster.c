/* redis_cluster — the slot map and one connection per primary (see redis_cluster.h).
 *
 * Ownership: the cluster owns its control connection (CLUSTER SLOTS), its node connections and
 * its refresh timer. A node connection dropped from the map is freed at once (its pending
 * callbacks run with NULL); the cluster's memory goes once every handle is closed. Views are
 * borrowed: they add and remove themselves.
 */
#include "presenced/io/redis_cluster.h"
#include "presenced/codec/vec.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/redis_slot.h"
#include "presenced/io/log.h"
#include "redis_cluster_int.h"

#define RC_REFRESH_MS 5000 /* ask for the map this often anyway */
#define RC_SOON_MS 100     /* a refresh asked for waits this much, so that a burst asks once */
#define RC_DEGRADED_MS 250 /* ask this often while some slot has no primary up */

typedef struct rc_node {
    struct redis_cluster *cl;
    char host[ADDR_HOST_MAX];
    uint16_t port;
    redis_client *c;
} rc_node;

struct redis_cluster {
    uv_loop_t *loop;
    char name[24];
    addr_redis_node seeds[ADDR_REDIS_NODES_MAX];
    size_t nseeds;
    addr_redis auth; /* password; host and port filled per node */
    const char *library;
    uint32_t ping_ms, stall_ms;

    redis_slotmap map;
    rc_node **nodes; /* one per map node, same index; NULL where not yet connected */
    size_t nnodes;

    redis_client *ctl; /* asks CLUSTER SLOTS */
    size_t ctl_next;   /* the address the control connection tries next (seeds, then nodes) */
    bool asking, ask_again;
    bool soon; /* the refresh timer is due within RC_SOON_MS */
    uv_timer_t refresh;

    redis_client **views;
    size_t nviews, capviews;

    bool closing;
    int open_parts;
    void (*closed)(void *ud);
    void *closed_ud;
};

static void notify_views(redis_cluster *cl)
{
    /* A view's hooks may free views: walk a copy. */
    size_t n = cl->nviews;
    redis_client **copy = n ? malloc(n * sizeof(*copy)) : NULL;
    if (n && !copy) {
        log_error("out of memory", "conn=%s", cl->name);
        return;
    }
    memcpy(copy, cl->views, n * sizeof(*copy));
    for (size_t i = 0; i < n && !cl->closing; i++) {
        bool still = false;
        for (size_t k = 0; k < cl->nviews && !still; k++)
            still = cl->views[k] == copy[i];
        if (still)
            redis_client_view_update(copy[i]);
    }
    free(copy);
}

/* ---- node connections ---- */

static void on_node_up(const char *run_id, void *ud)
{
    (void)run_id;
    rc_node *n = ud;
    notify_views(n->cl);
}

/* A primary's connection broke: it may have failed over. */
static void on_node_down(void *ud)
{
    rc_node *n = ud;
    notify_views(n->cl);
    redis_cluster_refresh(n->cl);
}

static void node_closed(void *ud)
{
    free(ud);
}

static rc_node *node_new(redis_cluster *cl, const addr_redis_node *at)
{
    rc_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->cl = cl;
    snprintf(n->host, sizeof(n->host), "%s", at->host);
    n->port = at->port;
    addr_redis addr = cl->auth;
    snprintf(addr.host, sizeof(addr.host), "%s", at->host);
    addr.port = at->port;
    redis_client_cfg cfg = {.name = cl->name,
                            .addr = &addr,
                            .library = cl->library,
                            .ping_ms = cl->ping_ms,
                            .stall_ms = cl->stall_ms,
                            .up = on_node_up,
                            .down = on_node_down,
                            .primary_only = true,
                            .ud = n};
    if (!(n->c = redis_client_new(cl->loop, &cfg))) {
        free(n);
        return NULL;
    }
    return n;
}

static void node_free(rc_node *n)
{
    if (n)
        redis_client_free(n->c, node_closed, n);
}

/* Install `map` (taken over): keep the connections of primaries that stay, open the new ones,
 * close the rest. Returns 0, or -1 without memory (then nothing changed). */
static int map_install(redis_cluster *cl, redis_slotmap *map)
{
    rc_node **nodes = map->nnodes ? calloc(map->nnodes, sizeof(*nodes)) : NULL;
    if (map->nnodes && !nodes)
        return -1;
    for (size_t i = 0; i < map->nnodes; i++) {
        int old = redis_slotmap_find(&cl->map, map->nodes[i].host, map->nodes[i].port);
        if (old >= 0 && cl->nodes[old]) {
            nodes[i] = cl->nodes[old];
            cl->nodes[old] = NULL;
        } else if (!(nodes[i] = node_new(cl, &map->nodes[i]))) {
            log_error("out of memory", "conn=%s", cl->name);
        }
    }
    for (size_t i = 0; i < cl->nnodes; i++)
        node_free(cl->nodes[i]);
    free(cl->nodes);
    redis_slotmap_deinit(&cl->map);
    cl->map = *map;
    cl->nodes = nodes;
    cl->nnodes = map->nnodes;
    return 0;
}

/* ---- the map ---- */

/* One CLUSTER SLOTS entry: [start, end, [host, port, id, ...], replicas...]. An empty or "?" host
 * means the node does not know the name it is reached by: the one we asked. */
static int slots_entry(redis_cluster *cl, const redisReply *e, redis_slotmap *map)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER || e->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const redisReply *p = e->element[2];
    if (p->type != REDIS_REPLY_ARRAY || p->elements < 2 ||
        p->element[0]->type != REDIS_REPLY_STRING || p->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const char *host = p->element[0]->str;
    if (!host[0] || strcmp(host, "?") == 0)
        host = redis_client_host(cl->ctl);
    long long first = e->element[0]->integer, last = e->element[1]->integer;
    long long port = p->element[1]->integer;
    if (first < 0 || last < first || last >= REDIS_SLOTS || port <= 0 || port > 65535)
        return -1;
    return redis_slotmap_assign(map, (uint32_t)first, (uint32_t)last, host, (uint16_t)port) < 0 ? -1
                                                                                                : 0;
}

static void ask_map(redis_cluster *cl);
static void on_refresh(uv_timer_t *t);

static void on_slots(const redisReply *reply, void *ud)
{
    redis_cluster *cl = ud;
    if (cl->closing)
        return;
    cl->asking = false;
    redis_slotmap map;
    redis_slotmap_init(&map);
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY;
    for (size_t i = 0; ok && i < reply->elements; i++)
        ok = slots_entry(cl, reply->element[i], &map) == 0;
    if (!ok) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            log_warn("redis cluster refused CLUSTER SLOTS", "conn=%s err=\"%s\"", cl->name,
                     reply->str);
        else if (reply)
            log_warn("redis cluster: unexpected CLUSTER SLOTS reply", "conn=%s", cl->name);
        redis_slotmap_deinit(&map);
    } else {
        size_t covered = redis_slotmap_covered(&map);
        if (covered < REDIS_SLOTS)
            log_warn("redis cluster does not serve every slot", "conn=%s slots=%zu", cl->name,
                     covered);
        if (map_install(cl, &map) < 0) {
            log_error("out of memory", "conn=%s", cl->name);
            redis_slotmap_deinit(&map);
        } else {
            notify_views(cl);
        }
    }
    if (cl->ask_again) {
        cl->ask_again = false;
        ask_map(cl);
    } else if (redis_cluster_slots_up(cl) < REDIS_SLOTS && !cl->soon) {
        /* A primary is down or just connecting: during a failover the map changes within
         * seconds, and slots wait for it. */
        uv_timer_start(&cl->refresh, on_refresh, RC_DEGRADED_MS, RC_REFRESH_MS);
    }
}

static void ask_map(redis_cluster *cl)
{
    if (cl->closing || !redis_client_ready(cl->ctl))
        return;
    if (cl->asking) {
        cl->ask_again = true;
        return;
    }
    cl->asking = true;
    const char *argv[] = {"CLUSTER", "SLOTS"};
    size_t lens[] = {7, 5};
    redis_client_command(cl->ctl, 2, argv, lens, on_slots, cl);
}

/* The control connection tries the seeds, then the nodes of the map, one after the other. */
static int locate_ctl(char *host, uint16_t *port, void *ud)
{
    redis_cluster *cl = ud;
    size_t total = cl->nseeds + cl->map.nnodes;
    const addr_redis_node *n = cl->ctl_next < cl->nseeds
                                   ? &cl->seeds[cl->ctl_next]
                                   : &cl->map.nodes[(cl->ctl_next - cl->nseeds) % total];
    snprintf(host, ADDR_HOST_MAX, "%s", n->host);
    *port = n->port;
    return 0;
}

static void next_ctl(void *ud)
{
    redis_cluster *cl = ud;
    size_t total = cl->nseeds + cl->map.nnodes;
    cl->ctl_next = total ? (cl->ctl_next + 1) % total : 0;
}

static void on_ctl_up(const char *run_id, void *ud)
{
    (void)run_id;
    ask_map(ud);
}

static void on_refresh(uv_timer_t *t)
{
    redis_cluster *cl = t->data;
    cl->soon = false;
    ask_map(cl);
}

/* ---- what views ask ---- */

redis_client *rc_node_for(redis_cluster *cl, uint16_t slot)
{
    if (slot >= REDIS_SLOTS || cl->map.owner[slot] == 0)
        return NULL;
    rc_node *n = cl->nodes[cl->map.owner[slot] - 1];
    return n && redis_client_ready(n->c) ? n->c : NULL;
}

int rc_view_add(redis_cluster *cl, redis_client *view)
{
    if (VEC_RESERVE(cl->views, cl->nviews, cl->capviews, 8) < 0)
        return -1;
    cl->views[cl->nviews++] = view;
    return 0;
}

void rc_view_remove(redis_cluster *cl, redis_client *view)
{
    for (size_t i = 0; i < cl->nviews; i++)
        if (cl->views[i] == view) {
            cl->views[i] = cl->views[--cl->nviews];
            return;
        }
}

bool rc_is_redirect(const redisReply *reply)
{
    static const char *const kinds[] = {"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"};
    if (!reply || reply->type != REDIS_REPLY_ERROR)
        return false;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strncmp(reply->str, kinds[i], strlen(kinds[i])) == 0)
            return true;
    return false;
}

void rc_redirected(redis_cluster *cl, const redisReply *reply)
{
    redis_redirect r;
    if (redis_redirect_parse(reply->str, reply->len, &r) == 0 && r.kind == REDIS_REDIRECT_MOVED) {
        log_info("redis cluster slot moved", "conn=%s slot=%u to=%s:%u", cl->name, r.slot,
                 r.host[0] ? r.host : "(same host)", r.port);
    } else {
        log_debug("redis cluster redirected a request", "conn=%s err=\"%s\"", cl->name, reply->str);
    }
    redis_cluster_refresh(cl);
}

/* ---- lifecycle ---- */

int redis_cluster_locate(const redis_cluster *cl, uint16_t slot, char *host, uint16_t *port)
{
    const addr_redis_node *n = redis_slotmap_owner(&cl->map, slot);
    if (!n)
        return -1;
    snprintf(host, ADDR_HOST_MAX, "%s", n->host);
    *port = n->port;
    return 0;
}

void redis_cluster_refresh(redis_cluster *cl)
{
    if (cl->closing)
        return;
    if (cl->asking) {
        cl->ask_again = true;
        return;
    }
    /* Soon rather than at once, and not pushed back by every request of a burst: it asks once. */
    if (cl->soon)
        return;
    cl->soon = true;
    uv_timer_start(&cl->refresh, on_refresh, RC_SOON_MS, RC_REFRESH_MS);
}

size_t redis_cluster_slots_up(const redis_cluster *cl)
{
    size_t n = 0;
    for (size_t s = 0; s < REDIS_SLOTS; s++) {
        uint16_t o = cl->map.owner[s];
        n += o && cl->nodes[o - 1] && redis_client_ready(cl->nodes[o - 1]->c);
    }
    return n;
}

static void part_closed(void *ud)
{
    redis_cluster *cl = ud;
    if (--cl->open_parts > 0)
        return;
    void (*closed)(void *) = cl->closed;
    void *cud = cl->closed_ud;
    redis_slotmap_deinit(&cl->map);
    free(cl->nodes);
    free(cl->views);
    free(cl);
    if (closed)
        closed(cud);
}

static void on_timer_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

redis_cluster *redis_cluster_new(uv_loop_t *loop, const redis_cluster_cfg *cfg)
{
    if (cfg->url->mode != ADDR_REDIS_CLUSTER || cfg->url->nnodes == 0)
        return NULL;
    redis_cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return NULL;
    cl->loop = loop;
    snprintf(cl->name, sizeof(cl->name), "%s", cfg->name ? cfg->name : "cluster");
    memcpy(cl->seeds, cfg->url->nodes, sizeof(cl->seeds));
    cl->nseeds = cfg->url->nnodes;
    cl->auth = cfg->url->data;
    cl->auth.db = -1;
    cl->library = cfg->library;
    cl->ping_ms = cfg->ping_ms;
    cl->stall_ms = cfg->stall_ms;
    redis_slotmap_init(&cl->map);
    addr_redis auth = cl->auth;
    redis_client_cfg cc = {.name = "cluster-map",
                           .addr = &auth,
                           .ping_ms = 1000,
                           .stall_ms = cfg->stall_ms,
                           .up = on_ctl_up,
                           .down = next_ctl,
                           .locate = locate_ctl,
                           .misdirected = next_ctl,
                           .ud = cl};
    if (!(cl->ctl = redis_client_new(loop, &cc))) {
        free(cl);
        return NULL;
    }
    uv_timer_init(loop, &cl->refresh);
    cl->refresh.data = cl;
    uv_timer_start(&cl->refresh, on_refresh, RC_REFRESH_MS, RC_REFRESH_MS);
    cl->open_parts = 2;
    return cl;
}

void redis_cluster_free(redis_cluster *cl, void (*closed)(void *ud), void *ud)
{
    if (!cl || cl->closing)
        return;
    cl->closing = true;
    cl->closed = closed;
    cl->closed_ud = ud;
    uv_timer_stop(&cl->refresh);
    uv_close((uv_handle_t *)&cl->refresh, on_timer_closed);
    for (size_t i = 0; i < cl->nnodes; i++) {
        node_free(cl->nodes[i]);
        cl->nodes[i] = NULL;
    }
    redis_client_free(cl->ctl, part_closed, cl);
}
