/* redis_sentinel — the primary's address from Redis Sentinel (see redis_sentinel.h).
 *
 * Ownership: the watcher owns its two sentinel clients and its poll timer; its memory is freed
 * once all three are closed, so that late callbacks still find it.
 */
#include "presenced/io/redis_sentinel.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/log.h"
#include "presenced/io/redis_client.h"

#define RS_POLL_MS 5000 /* ask again this often even when nothing seems to change */
#define RS_PING_MS 1000
#define RS_STALL_MS 3000
#define RS_CHANNEL "+switch-master"

struct redis_sentinel {
    uv_loop_t *loop;
    addr_redis_node nodes[ADDR_REDIS_NODES_MAX];
    size_t nnodes, cur; /* the sentinels, and the one in use */
    char master[ADDR_MASTER_MAX];
    redis_client *q, *sub; /* questions; the +switch-master subscription */
    uv_timer_t poll;
    bool asking, ask_again;
    /* Bumped by every +switch-master: an answer to a question asked before it is older news. */
    uint64_t switches;
    bool known;
    char host[ADDR_HOST_MAX];
    uint16_t port;
    void (*changed)(void *ud);
    void *ud;
    bool closing;
    int open_parts;
    void (*closed)(void *ud);
    void *closed_ud;
};

/* One question in flight: which watcher, and how many switches had been seen when it left. */
typedef struct rs_ask {
    redis_sentinel *w;
    uint64_t switches;
} rs_ask;

static void set_primary(redis_sentinel *w, const char *host, size_t hostlen, uint16_t port,
                        const char *how)
{
    if (hostlen == 0 || hostlen >= sizeof(w->host) || port == 0)
        return;
    if (w->known && w->port == port && strlen(w->host) == hostlen &&
        memcmp(w->host, host, hostlen) == 0)
        return;
    memcpy(w->host, host, hostlen);
    w->host[hostlen] = '\0';
    w->port = port;
    w->known = true;
    log_info("redis primary", "master=%s host=%s port=%u via=%s", w->master, w->host, port, how);
    if (w->changed && !w->closing)
        w->changed(w->ud);
}

static void ask(redis_sentinel *w);

static void on_answer(const redisReply *reply, void *ud)
{
    rs_ask *a = ud;
    redis_sentinel *w = a->w;
    uint64_t switches = a->switches;
    free(a);
    if (w->closing)
        return;
    w->asking = false;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        long port = strtol(reply->element[1]->str, NULL, 10);
        if (switches == w->switches && port > 0 && port <= 65535)
            set_primary(w, reply->element[0]->str, reply->element[0]->len, (uint16_t)port, "query");
    } else if (reply && reply->type == REDIS_REPLY_NIL) {
        log_warn("sentinel does not know the master name", "master=%s host=%s port=%u", w->master,
                 redis_client_host(w->q), redis_client_port(w->q));
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
        log_warn("sentinel refused the question", "err=\"%s\"", reply->str);
    }
    if (w->ask_again) {
        w->ask_again = false;
        ask(w);
    }
}

static void ask(redis_sentinel *w)
{
    if (w->closing || !redis_client_ready(w->q))
        return;
    if (w->asking) {
        w->ask_again = true;
        return;
    }
    rs_ask *a = malloc(sizeof(*a));
    if (!a)
        return;
    *a = (rs_ask){.w = w, .switches = w->switches};
    w->asking = true;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", w->master};
    size_t lens[] = {8, 23, strlen(w->master)};
    redis_client_command(w->q, 3, argv, lens, on_answer, a);
}

/* "<master> <old ip> <old port> <new ip> <new port>" */
static void on_switch(const redisReply *reply, void *ud)
{
    redis_sentinel *w = ud;
    if (!reply || w->closing || reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    const char *p = reply->element[2]->str;
    size_t n = strlen(w->master);
    if (strncmp(p, w->master, n) != 0 || p[n] != ' ')
        return;
    char old_host[ADDR_HOST_MAX], host[ADDR_HOST_MAX];
    unsigned old_port, port;
    if (sscanf(p + n + 1, "%255s %u %255s %u", old_host, &old_port, host, &port) != 4 ||
        port == 0 || port > 65535)
        return;
    w->switches++;
    log_info("sentinel reports a failover", "master=%s from=%s:%u to=%s:%u", w->master, old_host,
             old_port, host, port);
    set_primary(w, host, strlen(host), (uint16_t)port, "+switch-master");
}

static int locate_sentinel(char *host, uint16_t *port, void *ud)
{
    redis_sentinel *w = ud;
    snprintf(host, ADDR_HOST_MAX, "%s", w->nodes[w->cur].host);
    *port = w->nodes[w->cur].port;
    return 0;
}

/* The sentinel in use failed the question connection: move both connections to the next. */
static void next_sentinel(void *ud)
{
    redis_sentinel *w = ud;
    if (w->closing || w->nnodes < 2)
        return;
    w->cur = (w->cur + 1) % w->nnodes;
    redis_client_retarget(w->sub, "following the question connection to the next sentinel");
}

static void on_q_up(const char *run_id, void *ud)
{
    (void)run_id;
    ask(ud);
}

static void on_sub_up(const char *run_id, void *ud)
{
    (void)run_id;
    redis_sentinel *w = ud;
    redis_client_subscribe(w->sub, RS_CHANNEL, on_switch, w);
    /* A switch may have happened while the subscription was down. */
    ask(w);
}

static void on_poll(uv_timer_t *t)
{
    ask(t->data);
}

static void part_closed(void *ud)
{
    redis_sentinel *w = ud;
    if (--w->open_parts > 0)
        return;
    void (*closed)(void *) = w->closed;
    void *cud = w->closed_ud;
    free(w);
    if (closed)
        closed(cud);
}

static void on_poll_closed(uv_handle_t *h)
{
    part_closed(h->data);
}

redis_sentinel *redis_sentinel_new(uv_loop_t *loop, const redis_sentinel_cfg *cfg)
{
    if (cfg->url->mode != ADDR_REDIS_SENTINEL || cfg->url->nnodes == 0)
        return NULL;
    redis_sentinel *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->loop = loop;
    memcpy(w->nodes, cfg->url->nodes, sizeof(w->nodes));
    w->nnodes = cfg->url->nnodes;
    snprintf(w->master, sizeof(w->master), "%s", cfg->url->master);
    w->changed = cfg->changed;
    w->ud = cfg->ud;
    addr_redis auth = {.db = -1};
    snprintf(auth.password, sizeof(auth.password), "%s", cfg->password ? cfg->password : "");
    redis_client_cfg qc = {.name = "sentinel",
                           .addr = &auth,
                           .ping_ms = RS_PING_MS,
                           .stall_ms = RS_STALL_MS,
                           .up = on_q_up,
                           .down = next_sentinel,
                           .locate = locate_sentinel,
                           .misdirected = next_sentinel,
                           .ud = w};
    redis_client_cfg sc = {.name = "sentinel-events",
                           .addr = &auth,
                           .stall_ms = RS_STALL_MS,
                           .up = on_sub_up,
                           .locate = locate_sentinel,
                           .ud = w};
    if (!(w->q = redis_client_new(loop, &qc))) {
        free(w);
        return NULL;
    }
    if (!(w->sub = redis_client_new(loop, &sc))) {
        redis_client_free(w->q, NULL, NULL);
        free(w);
        return NULL;
    }
    uv_timer_init(loop, &w->poll);
    w->poll.data = w;
    uv_timer_start(&w->poll, on_poll, RS_POLL_MS, RS_POLL_MS);
    w->open_parts = 3;
    return w;
}

int redis_sentinel_primary(const redis_sentinel *w, char *host, uint16_t *port)
{
    if (!w->known)
        return -1;
    snprintf(host, ADDR_HOST_MAX, "%s", w->host);
    *port = w->port;
    return 0;
}

void redis_sentinel_refresh(redis_sentinel *w)
{
    ask(w);
}

void redis_sentinel_free(redis_sentinel *w, void (*closed)(void *ud), void *ud)
{
    if (!w || w->closing)
        return;
    w->closing = true;
    w->closed = closed;
    w->closed_ud = ud;
    uv_timer_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_poll_closed);
    redis_client_free(w->q, part_closed, w);
    redis_client_free(w->sub, part_closed, w);
}
