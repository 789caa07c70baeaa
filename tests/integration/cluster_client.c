/* The Redis Cluster client (redis_cluster.h) against a real 3-primary cluster with a replica each,
 * started by cluster_client.sh (redis-topology.sh): it learns the slot map from one seed, routes
 * a script to the primary of each slot it is asked for, and follows the cluster when a slot is
 * moved to another primary (the next request gets MOVED: it fails as lost, the map is refreshed,
 * the view goes down and comes up on the new primary), while a slot migrates (the declared key
 * makes the node refuse with ASK before anything runs), and when a primary is killed with SIGKILL
 * (its replica takes over).
 *
 * Usage: redis-topology.sh run cluster cluster_client   (it reads REDIS_TOPOLOGY_DIR)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>

#include <cJSON.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "presenced/codec/redis_slot.h"
#include "presenced/io/redis_client.h"
#include "presenced/io/redis_cluster.h"

#define WAIT_MS 30000

/* The test's function library: one function that counts a key of the slot's own, not declared
 * (keys[1] is never written: it only routes), and says which node ran it. */
static const char library[] =
    "#!lua name=cluster_client_test\n"
    "redis.register_function('count', function(keys, args)\n"
    "    return {redis.call('INCR', args[1]), redis.call('INFO', 'server')}\n"
    "end)\n";

static struct {
    const char *dir;
    char url[512];
    int ports[8], pids[8], nnodes;
} topo;

typedef struct view {
    redis_client *c;
    uint16_t slot;
    char key[32], probe[32];
    int ups, downs;
    char run_id[REDIS_RUN_ID_MAX];
} view;

typedef struct call {
    bool done;
    bool lost;
    long long count;
    char run_id[REDIS_RUN_ID_MAX];
} call;

static uv_loop_t loop;
static redis_cluster *cl;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pump(uint32_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL);
    }
}

/* Pumps the loop until *flag or the deadline (a failure naming `what`). */
static void pump_until(const bool *flag, const char *what)
{
    uint64_t end = mono_ms() + WAIT_MS;
    while (!*flag) {
        if (mono_ms() > end)
            fail_msg("timed out waiting for %s", what);
        uv_run(&loop, UV_RUN_NOWAIT);
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
}

/* ---- the cluster as the test sees it, through hiredis ---- */

static redisContext *node(int port)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err)
        fail_msg("cannot connect to node %d", port);
    return c;
}

static void node_cmd_ok(int port, const char *fmt, ...)
{
    redisContext *c = node(port);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("node %d refused a command: %s", port, r ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

/* The port of the primary that serves `slot` now, as CLUSTER SLOTS on `ask` says. */
static int owner_port(int ask, uint16_t slot)
{
    redisContext *c = node(ask);
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    int port = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->element[0]->integer <= slot && slot <= e->element[1]->integer)
            port = (int)e->element[2]->element[1]->integer;
    }
    freeReplyObject(r);
    redisFree(c);
    return port;
}

/* Moves every key of `slot` from `from` to `to` (the slot is migrating). */
static void migrate_keys(int from, int to, uint16_t slot)
{
    redisContext *c = node(from);
    redisReply *keys = redisCommand(c, "CLUSTER GETKEYSINSLOT %d 1000", slot);
    assert_true(keys && keys->type == REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *r = redisCommand(c, "MIGRATE 127.0.0.1 %d %s 0 5000 KEYS %s", to, "",
                                     keys->element[i]->str);
        if (!r || r->type == REDIS_REPLY_ERROR)
            fail_msg("MIGRATE failed: %s", r ? r->str : c->errstr);
        freeReplyObject(r);
    }
    freeReplyObject(keys);
    redisFree(c);
}

static void node_id(int port, char *out, size_t len)
{
    redisContext *c = node(port);
    redisReply *r = redisCommand(c, "CLUSTER MYID");
    snprintf(out, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(c);
}

static void read_topology(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/topology.json", topo.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("no %s", path);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    snprintf(topo.url, sizeof(topo.url), "%s",
             cJSON_GetObjectItemCaseSensitive(j, "url")->valuestring);
    cJSON *nodes = cJSON_GetObjectItemCaseSensitive(j, "nodes"), *e;
    cJSON_ArrayForEach(e, nodes)
    {
        topo.ports[topo.nnodes] = cJSON_GetObjectItemCaseSensitive(e, "port")->valueint;
        topo.pids[topo.nnodes++] = cJSON_GetObjectItemCaseSensitive(e, "pid")->valueint;
    }
    cJSON_Delete(j);
}

/* ---- views ---- */

static void on_up(const char *run_id, void *ud)
{
    view *v = ud;
    v->ups++;
    snprintf(v->run_id, sizeof(v->run_id), "%s", run_id);
}

static void on_down(void *ud)
{
    ((view *)ud)->downs++;
}

/* A key of `slot`: "{tag}name" with a tag found by trying. */
static void key_in_slot(uint16_t slot, const char *name, char *out, size_t len)
{
    char tag[16];
    for (unsigned i = 0;; i++) {
        int n = snprintf(tag, sizeof(tag), "t%u", i);
        if (redis_slot(tag, (size_t)n) == slot)
            break;
    }
    snprintf(out, len, "{%s}%s", tag, name);
}

/* A view of `slot`, counting its own key `name`. */
static void view_open(view *v, uint16_t slot, const char *name)
{
    memset(v, 0, sizeof(*v));
    v->slot = slot;
    key_in_slot(slot, name, v->key, sizeof(v->key));
    key_in_slot(slot, "probe", v->probe, sizeof(v->probe));
    redis_client_cfg cfg = {
        .name = "view", .cluster = cl, .slot = slot, .up = on_up, .down = on_down, .ud = v};
    assert_non_null(v->c = redis_client_new(&loop, &cfg));
}

static void on_count(const redisReply *reply, void *ud)
{
    call *c = ud;
    c->done = true;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        c->lost = true;
        return;
    }
    c->count = reply->element[0]->integer;
    const char *p = strstr(reply->element[1]->str, "run_id:");
    if (p)
        sscanf(p + 7, "%63[0-9a-f]", c->run_id);
}

/* Calls the function through the view; the key `probe` is declared, `key` counted. */
static call count(view *v)
{
    call c = {0};
    const char *argv[] = {v->probe, v->key};
    size_t lens[] = {strlen(v->probe), strlen(v->key)};
    redis_client_fcall(v->c, "count", 1, 2, argv, lens, on_count, &c);
    pump_until(&c.done, "the function's reply");
    return c;
}

static void wait_up(view *v, int ups, const char *what)
{
    uint64_t end = mono_ms() + WAIT_MS;
    while (v->ups < ups || !redis_client_ready(v->c)) {
        if (mono_ms() > end)
            fail_msg("timed out waiting for the view of slot %u to be up (%s)", v->slot, what);
        pump(5);
    }
}

static int setup(void **state)
{
    (void)state;
    char why[128];
    addr_redis_url url;
    if (addr_redis_url_parse(topo.url, &url, why, sizeof(why)) < 0)
        fail_msg("bad url %s: %s", topo.url, why);
    /* One seed only: the rest of the cluster comes from the map. */
    url.nnodes = 1;
    redis_cluster_cfg cfg = {
        .name = "test", .url = &url, .library = library, .ping_ms = 500, .stall_ms = 3000};
    assert_non_null(cl = redis_cluster_new(&loop, &cfg));
    return 0;
}

static void closed(void *ud)
{
    *(bool *)ud = true;
}

static int teardown(void **state)
{
    (void)state;
    bool done = false;
    redis_cluster_free(cl, closed, &done);
    pump_until(&done, "the cluster to close");
    return 0;
}

/* ---- the scenarios ---- */

/* Slots on each primary run on that primary; the map covers every slot. */
static void test_routes(void **state)
{
    (void)state;
    uint16_t slots[] = {0, 5460, 5461, 10922, 10923, 16383, 15882};
    view v[7];
    for (size_t i = 0; i < 7; i++)
        view_open(&v[i], slots[i], "routes");
    for (size_t i = 0; i < 7; i++) {
        wait_up(&v[i], 1, "first map");
        call c = count(&v[i]);
        assert_false(c.lost);
        assert_int_equal(c.count, 1);
        assert_string_equal(c.run_id, v[i].run_id);
        /* The view's primary is the one CLUSTER SLOTS names. */
        int port = owner_port(topo.ports[0], slots[i]);
        assert_int_equal(redis_client_port(v[i].c), port);
    }
    assert_int_equal(redis_cluster_slots_up(cl), REDIS_SLOTS);
    for (size_t i = 0; i < 7; i++)
        redis_client_free(v[i].c, NULL, NULL);
    pump(10);
}

/* A slot migrating to another primary: the declared key is missing on the source, which answers
 * ASK before running anything; once the slot is the target's, MOVED; the view follows. */
static void test_reshard(void **state)
{
    (void)state;
    view v;
    view_open(&v, 15882, "reshard");
    wait_up(&v, 1, "first map");
    assert_int_equal(count(&v).count, 1);
    int from = redis_client_port(v.c);
    int to = owner_port(from, 0);
    char from_id[64], to_id[64];
    node_id(from, from_id, sizeof(from_id));
    node_id(to, to_id, sizeof(to_id));

    node_cmd_ok(to, "CLUSTER SETSLOT %d IMPORTING %s", 15882, from_id);
    node_cmd_ok(from, "CLUSTER SETSLOT %d MIGRATING %s", 15882, to_id);
    call c = count(&v);
    assert_true(c.lost); /* ASK: not run */
    migrate_keys(from, to, 15882);
    node_cmd_ok(to, "CLUSTER SETSLOT %d NODE %s", 15882, to_id);
    node_cmd_ok(from, "CLUSTER SETSLOT %d NODE %s", 15882, to_id);
    /* The count survived the migration, and ASK ran nothing: the next one is 2, on `to`. */
    uint64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        c = count(&v);
        if (!c.lost)
            break;
        if (mono_ms() > end)
            fail_msg("the view did not follow the slot to port %d", to);
        pump(20);
    }
    assert_int_equal(c.count, 2);
    assert_int_equal(redis_client_port(v.c), to);
    assert_true(v.downs >= 1 && v.ups >= 2);
    redis_client_free(v.c, NULL, NULL);
    pump(10);
}

/* SIGKILL of a primary: the view goes down, the replica takes over, the view comes up there. */
static void test_failover(void **state)
{
    (void)state;
    view v;
    view_open(&v, 100, "failover");
    wait_up(&v, 1, "first map");
    call c = count(&v);
    assert_false(c.lost);
    int port = redis_client_port(v.c);
    char before[REDIS_RUN_ID_MAX];
    snprintf(before, sizeof(before), "%s", v.run_id);
    int pid = -1;
    for (int i = 0; i < topo.nnodes; i++)
        if (topo.ports[i] == port)
            pid = topo.pids[i];
    assert_true(pid > 0);
    uint64_t t0 = mono_ms();
    assert_int_equal(kill(pid, SIGKILL), 0);
    wait_up(&v, 2, "the replica promoted");
    assert_string_not_equal(v.run_id, before);
    assert_int_not_equal(redis_client_port(v.c), port);
    printf("    slot 100 served again %llu ms after the SIGKILL of its primary\n",
           (unsigned long long)(mono_ms() - t0));
    c = count(&v);
    assert_false(c.lost);
    assert_string_equal(c.run_id, v.run_id);
    redis_client_free(v.c, NULL, NULL);
    pump(10);
}

int main(void)
{
    if (!(topo.dir = getenv("REDIS_TOPOLOGY_DIR"))) {
        fprintf(stderr, "cluster_client: run it as redis-topology.sh run cluster cluster_client\n");
        return 2;
    }
    read_topology();
    uv_loop_init(&loop);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reshard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("redis cluster client", tests, NULL, NULL);
    uv_loop_close(&loop);
    return rc;
}
