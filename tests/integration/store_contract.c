/* The store contract (docs/presence-model.md): one table of scenarios, run against the memory
 * store or against the Redis store, showing that both behave identically and as documented.
 *
 * Usage: store_contract --store memory
 *        store_contract --store redis --redis URL --topology single|sentinel|cluster
 *                       --control REDIS_TOPOLOGY_SH DIR
 *        (add --filter PATTERN to run only the scenarios whose name matches)
 * tests/integration/store_contract.sh starts a throwaway Redis set-up (redis-topology.sh, in DIR)
 * and runs both.
 *
 * Each scenario is one cmocka test, so a failure names its scenario. A scenario creates fresh
 * stores (the Redis ones under a key prefix of their own, so scenarios never see each other's
 * keys or events), runs its steps in order, and after every step compares the events that each
 * observing store's hooks.event received with the step's expectations. The Redis store delivers
 * events through its stream, possibly after the operation's callback, so the harness waits
 * (bounded) for the expected number of events, then lets a short settle time pass so that
 * unexpected extra events are caught by the step that caused them. The memory store may deliver
 * events synchronously or on a later loop turn: the same waiting covers both.
 *
 * Nothing here runs inside a store callback except copying: callbacks only record, and every
 * check (and so every cmocka failure, which longjmps) happens outside uv_run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

#include <cJSON.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "fault_proxy.h"

#include "presenced/codec/pres_event.h"
#include "presenced/codec/redis_slot.h"
#include "presenced/io/redis_client.h"
#include "presenced/io/store_memory.h"
#include "presenced/io/store_redis.h"

#define SID_LEN 20
#define MAX_STORES 3
#define OPS_RING 64
#define EV_MAX 6
#define USERS_MAX 12
#define MEMBERS_MAX 8
#define ROOMS_MAX 4
#define MEMOS 8

#define OP_TIMEOUT_MS 5000    /* an operation's callback must come within this */
#define EVENT_TIMEOUT_MS 2000 /* expected events must arrive within this after the callback */
#define END_SETTLE_MS 150     /* quiet time at the end of a scenario: no stray events */
#define NOW_TOLERANCE_MS 3000 /* store time (Redis TIME) against this process's clock */
#define LEASE_MS 3000         /* every Redis store's lease unless a scenario says otherwise */
#define GRACE_MS 300          /* offline_grace_ms of the scenarios that use a grace window */

/* The memory store's events come at once or on the next loop turn; the Redis store's come
 * through the stream a few milliseconds later. */
#define SETTLE_MEMORY_MS 5
#define SETTLE_REDIS_MS 40

static struct {
    bool redis;
    const char *redis_url;
    const char *topology; /* "single", "sentinel" or "cluster": what redis_url leads to */
    unsigned partitions;  /* cluster: partitions of each store, each its own Redis store */
    char run_tag[9];
    unsigned scenario_no;
    uint64_t rng;
} cfg;

/* ---- the table's vocabulary ---------------------------------------------------------------- */

/* How a last_seen is compared with a value remembered earlier in the scenario (a memo). */
typedef enum ls_cmp {
    LS_ANY = 0,
    LS_GT_MEMO,
    LS_GE_MEMO,
    LS_EQ_MEMO,
} ls_cmp;

/* An expected event. Fields left NULL are not compared. The socket is the table's short name
 * (see sid_of). `meta` is JSON compared structurally, or NOMETA for "no metadata". Offline
 * events are always checked for a last_seen close to when they arrived. */
typedef struct ev_exp {
    pres_event_type type;
    const char *user; /* NULL ends the list */
    const char *socket;
    const char *room;
    const char *status;
    const char *prev;
    const char *meta;
    bool rooms_set; /* compare the routing rooms with `rooms` (as a set) */
    const char *rooms[ROOMS_MAX];
    ls_cmp ls;
    int memo; /* memo compared with (LS_*_MEMO) */
    int save; /* 1 + memo index to remember last_seen in, 0: none */
} ev_exp;

/* An expected users_query row. known, online and sockets are always compared; status and meta
 * when set. Always checked as well: last_seen is 0 iff unknown, since is 0 iff offline. */
typedef struct user_exp {
    const char *user; /* NULL ends the list */
    bool known;
    bool online;
    const char *status;
    uint32_t sockets;
    const char *meta;
    ls_cmp ls;
    int memo;
    int save;
} user_exp;

typedef enum step_op {
    OP_END = 0,
    OP_OPEN,
    OP_ASSERT,
    OP_CLOSE,
    OP_CLOSE_GRACEFUL,
    OP_JOIN,
    OP_LEAVE,
    OP_STATUS,
    OP_TOUCH,
    OP_SHUTDOWN,
    OP_USERS,
    OP_ROOM,
    OP_SLEEP,       /* let time pass (the loops keep running); no event may arrive */
    OP_WAIT,        /* wait up to `ms` for the expected events (timers, reaps) */
    OP_KILL,        /* the store dies without shutdown (scenario.kill: how) */
    OP_LEASE_WATCH, /* after OP_KILL: poll users_query until the reap's events arrive */
    OP_CALL,        /* a scenario part written as code (`call`) */
    OP_FAULT,       /* the store's fault proxy changes mode (`fault`); nothing for memory */
    OP_RECONCILE,   /* store_reconcile(): the store agrees with the harness's truth */
    OP_TRUTH_DROP,  /* the owner forgets socket `sid` without telling the store */
    OP_TRUTH_ROOM,  /* the owner puts `sid` in (`in`) or out of `room` without telling the store */
    OP_TRUTH_ADD,   /* the owner has socket `sid` of `user` in `rooms` without telling the store */
    OP_REDIS_STOP,  /* every data node stops, keeping its data; nothing for memory */
    OP_REDIS_START, /* ... and starts again on its port, with its data or empty */
    OP_REDIS_FLUSH, /* every primary is emptied (FLUSHALL), no reconnection */
} step_op;

typedef enum kill_mode {
    KILL_FREE,   /* store_free() without store_shutdown(): the process is gone */
    KILL_FREEZE, /* its loop never runs again: the process hangs */
} kill_mode;

struct harness;

typedef struct step {
    step_op op;
    int on; /* which store of the scenario */
    const char *sid;
    const char *user;
    const char *status;
    const char *meta;
    const char *room;
    const char *rooms[ROOMS_MAX]; /* socket_assert */
    int err;                      /* expected callback error */
    size_t limit;                 /* room_query */
    uint32_t ms;                  /* OP_SLEEP, OP_WAIT, OP_LEASE_WATCH, OP_FAULT (the delay) */
    bool unobserve;               /* OP_SHUTDOWN: this store's events are no longer checked */
    ev_exp ev[EV_MAX];
    user_exp users[USERS_MAX];
    const char *members[MEMBERS_MAX]; /* room_query: the whole expected membership */
    void (*call)(struct harness *h);
    fault_mode fault; /* OP_FAULT */
    bool in;          /* OP_TRUTH_ROOM */
    bool later;       /* this step's events are checked by a later step, with that step's */
    bool any_err;     /* the callback's error is not checked (it differs between stores) */
    bool forget;      /* OP_OPEN: on error the owner forgets the socket (presence:identify) */
    bool keep;        /* OP_OPEN: on error the owner keeps it (an identity from the handshake) */
    bool empty;       /* OP_REDIS_START: start without the data (a new directory) */
} step;

typedef struct scenario {
    const char *name;
    bool redis_only;
    int nstores; /* 0 means 1 */
    uint32_t grace_ms;
    int own_loop; /* 1 + index of the store that runs on a loop of its own (it can hang) */
    uint32_t lease_ms[MAX_STORES]; /* 0: LEASE_MS */
    kill_mode kill;                /* how OP_KILL kills */
    bool proxied;                  /* it makes its stores' fault proxies lose or hold bytes */
    bool restarts;                 /* it stops, restarts or flushes the Redis set-up */
    bool webhooks;                 /* the stores deliver webhooks (store_deliver_read) */
    const step *steps;
} scenario;

/* ---- the harness ------------------------------------------------------------------------------
 */

typedef struct got_event {
    pres_event_type type;
    char *user, *socket, *room, *status, *prev_status, *metadata;
    int64_t last_seen, at;
    char **rooms;
    size_t nrooms;
    char id[48];
    int64_t received; /* wall clock, ms */
} got_event;

/* One socket as the owner of a store (the gateway) sees it: the harness is that owner, and hands
 * these to the store when it reconciles (hooks.reconcile). */
#define TRUTH_ROOMS 8
typedef struct truth_sock {
    char sid[SID_LEN + 1];
    char user[160];
    char status[16];
    char *meta;
    char *rooms[TRUTH_ROOMS];
    size_t nrooms;
} truth_sock;

typedef struct slot {
    struct harness *h;
    int index;
    store *st;
    char iid[SID_LEN + 1]; /* its instance id */
    int loop;              /* index into harness.loops */
    bool observing;        /* its events are compared with the expectations */
    bool frozen;           /* its loop is not run any more */
    got_event *ev;
    size_t nev, cap, seen;
    bool have_id;
    uint64_t id_ms, id_seq;
    bool available;
    int reconciles;
    int asked_reconciles; /* reconciliations the scenario may cause: asked, or a command for
                             a socket the store does not know */
    truth_sock *truth;
    size_t ntruth, captruth;
} slot;

typedef struct op_ctx {
    struct harness *h;
    bool done;
    int err;
} op_ctx;

typedef struct harness {
    const scenario *sc;
    uv_loop_t loops[2];
    bool loop_used[2];
    slot slots[MAX_STORES];
    int nslots;
    char prefix[64];
    op_ctx ops[OPS_RING];
    unsigned nops;
    op_ctx *cur;
    /* results of the current query, copied out of the callback */
    store_user *users;
    size_t nusers;
    char **members;
    size_t nmembers, total;
    int64_t memo[MEMOS];
    const user_exp *last_users; /* the last OP_USERS expectations (the state before a kill) */
    int killed;
    bool killed_any;
    uint64_t kill_at; /* monotonic ms */
    void *scratch[4]; /* freed at teardown: what OP_CALL parts allocate */
    /* The first event whose id or time breaks the contract; checked by its own scenario
     * (event_stamps) so that the other scenarios still test what they are about. */
    char stamp_problem[512];
} harness;

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(void)
{
    cfg.rng ^= cfg.rng << 13;
    cfg.rng ^= cfg.rng >> 7;
    cfg.rng ^= cfg.rng << 17;
    return cfg.rng;
}

static const char *op_name(step_op op)
{
    static const char *const names[] = {
        "end",         "socket_open", "socket_assert", "socket_close", "socket_close(graceful)",
        "room_join",   "room_leave",  "status_set",    "touch",        "shutdown",
        "users_query", "room_query",  "sleep",         "wait",         "kill",
        "lease_watch", "call",        "fault",         "reconcile",    "truth_drop",
        "truth_room",  "truth_add",   "redis_stop",    "redis_start",  "redis_flush",
    };
    return op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

static const char *type_name(pres_event_type t)
{
    switch (t) {
    case PRES_EV_ONLINE:
        return "online";
    case PRES_EV_OFFLINE:
        return "offline";
    case PRES_EV_ROOM_JOIN:
        return "room:join";
    case PRES_EV_ROOM_LEAVE:
        return "room:leave";
    case PRES_EV_UPDATE:
        return "update";
    case PRES_EV_DISCONNECT:
        return "disconnect";
    case PRES_EV_RESET:
        return "reset";
    }
    return "?";
}

/* The table names sockets briefly ("s1"); stores get 20 URL-safe characters. */
static void sid_of(const char *name, char out[SID_LEN + 1])
{
    size_t n = strlen(name);
    assert_true(n <= SID_LEN);
    memcpy(out, name, n);
    memset(out + n, '-', SID_LEN - n);
    out[SID_LEN] = '\0';
}

#define NOMETA "null"

/* Metadata compared as JSON values, so that a store may re-encode the text. */
static bool meta_equal(const char *want, const char *got)
{
    if (!want)
        return true;
    if (strcmp(want, NOMETA) == 0)
        return got == NULL;
    if (!got)
        return false;
    cJSON *a = cJSON_Parse(want), *b = cJSON_Parse(got);
    bool same = a && b && cJSON_Compare(a, b, true);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return same;
}

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

static void note_stamp_problem(harness *h, const char *fmt, ...)
{
    if (h->stamp_problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->stamp_problem, sizeof(h->stamp_problem), fmt, ap);
    va_end(ap);
}

/* "1700000000000-3" (a stream entry id) or "42" (a sequence). */
static bool parse_event_id(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    if (*id < '0' || *id > '9')
        return false;
    *ms = strtoull(id, &end, 10);
    *seq = 0;
    if (*end == '-') {
        const char *s = end + 1;
        if (*s < '0' || *s > '9')
            return false;
        *seq = strtoull(s, &end, 10);
    }
    return *end == '\0';
}

/* ---- store hooks and callbacks (they only record) --------------------------------------- */

static void on_event(const pres_event *ev, void *ud)
{
    slot *sl = ud;
    harness *h = sl->h;
    if (sl->nev == sl->cap) {
        sl->cap = sl->cap ? sl->cap * 2 : 64;
        sl->ev = realloc(sl->ev, sl->cap * sizeof(*sl->ev));
        if (!sl->ev)
            abort();
    }
    got_event *g = &sl->ev[sl->nev++];
    memset(g, 0, sizeof(*g));
    g->type = ev->type;
    g->user = dup_or_null(ev->user);
    g->socket = dup_or_null(ev->socket);
    g->room = dup_or_null(ev->room);
    g->status = dup_or_null(ev->status);
    g->prev_status = dup_or_null(ev->prev_status);
    g->metadata = dup_or_null(ev->metadata);
    g->last_seen = ev->last_seen;
    g->at = ev->at;
    g->received = wall_ms();
    if (ev->nrooms) {
        g->rooms = calloc(ev->nrooms, sizeof(char *));
        if (!g->rooms)
            abort();
        for (size_t i = 0; i < ev->nrooms; i++)
            g->rooms[i] = dup_or_null(ev->rooms[i]);
        g->nrooms = ev->nrooms;
    }
    snprintf(g->id, sizeof(g->id), "%s", ev->id);

    /* Every event carries the store time it was decided at and an id that orders it. */
    if (g->at < g->received - NOW_TOLERANCE_MS || g->at > g->received + NOW_TOLERANCE_MS)
        note_stamp_problem(h, "store %d: %s event for %s has at=%lld, %lld ms from now", sl->index,
                           type_name(g->type), g->user ? g->user : "(null)", (long long)g->at,
                           (long long)(g->at - g->received));
    uint64_t ms, seq;
    if (!parse_event_id(g->id, &ms, &seq)) {
        note_stamp_problem(h, "store %d: event id \"%s\" is neither a sequence nor a stream id",
                           sl->index, g->id);
    } else {
        if (sl->have_id && (ms < sl->id_ms || (ms == sl->id_ms && seq <= sl->id_seq)))
            note_stamp_problem(h, "store %d: event id %s does not follow %llu-%llu", sl->index,
                               g->id, (unsigned long long)sl->id_ms,
                               (unsigned long long)sl->id_seq);
        sl->have_id = true;
        sl->id_ms = ms;
        sl->id_seq = seq;
    }
}

static void on_reconcile(store_truth *t, void *ud)
{
    slot *sl = ud;
    sl->reconciles++;
    for (size_t i = 0; i < sl->ntruth; i++) {
        truth_sock *k = &sl->truth[i];
        store_truth_add(t, k->sid, k->user, k->status, k->meta, (const char *const *)k->rooms,
                        k->nrooms);
    }
}

/* ---- the owner's truth ------------------------------------------------------------------- */

static truth_sock *truth_find(slot *sl, const char *sid)
{
    for (size_t i = 0; i < sl->ntruth; i++)
        if (strcmp(sl->truth[i].sid, sid) == 0)
            return &sl->truth[i];
    return NULL;
}

static void truth_sock_clear(truth_sock *k)
{
    free(k->meta);
    for (size_t i = 0; i < k->nrooms; i++)
        free(k->rooms[i]);
    memset(k, 0, sizeof(*k));
}

static void truth_remove(slot *sl, const char *sid)
{
    truth_sock *k = truth_find(sl, sid);
    if (!k)
        return;
    truth_sock_clear(k);
    *k = sl->truth[--sl->ntruth];
    memset(&sl->truth[sl->ntruth], 0, sizeof(*k));
}

static void truth_room(truth_sock *k, const char *room, bool in)
{
    for (size_t i = 0; i < k->nrooms; i++) {
        if (strcmp(k->rooms[i], room) != 0)
            continue;
        if (!in) {
            free(k->rooms[i]);
            k->rooms[i] = k->rooms[--k->nrooms];
        }
        return;
    }
    if (in && k->nrooms < TRUTH_ROOMS)
        k->rooms[k->nrooms++] = dup_or_null(room);
}

/* Append `sid` to the truth, known not to be there yet. */
static truth_sock *truth_append(slot *sl, const char *sid, const char *user, const char *status,
                                const char *meta)
{
    if (sl->ntruth == sl->captruth) {
        sl->captruth = sl->captruth ? sl->captruth * 2 : 16;
        sl->truth = realloc(sl->truth, sl->captruth * sizeof(*sl->truth));
        if (!sl->truth)
            abort();
    }
    truth_sock *k = &sl->truth[sl->ntruth++];
    memset(k, 0, sizeof(*k));
    snprintf(k->sid, sizeof(k->sid), "%s", sid);
    snprintf(k->user, sizeof(k->user), "%s", user);
    snprintf(k->status, sizeof(k->status), "%s", status ? status : "online");
    k->meta = dup_or_null(meta);
    return k;
}

/* The owner registered `sid` (socket_open or socket_assert answered ok). */
static truth_sock *truth_add(slot *sl, const char *sid, const char *user, const char *status,
                             const char *meta)
{
    truth_remove(sl, sid);
    return truth_append(sl, sid, user, status, meta);
}

static void truth_free(slot *sl)
{
    for (size_t i = 0; i < sl->ntruth; i++)
        truth_sock_clear(&sl->truth[i]);
    free(sl->truth);
    sl->truth = NULL;
    sl->ntruth = sl->captruth = 0;
}

static void on_availability(bool available, void *ud)
{
    ((slot *)ud)->available = available;
}

static void on_done(int err, void *ud)
{
    op_ctx *op = ud;
    op->err = err;
    op->done = true;
}

static void free_results(harness *h)
{
    for (size_t i = 0; i < h->nusers; i++) {
        free((char *)h->users[i].user);
        free((char *)h->users[i].status);
        free((char *)h->users[i].metadata);
    }
    free(h->users);
    h->users = NULL;
    h->nusers = 0;
    for (size_t i = 0; i < h->nmembers; i++)
        free(h->members[i]);
    free(h->members);
    h->members = NULL;
    h->nmembers = h->total = 0;
}

static void on_users(int err, const store_user *users, size_t n, const char *seq, void *ud)
{
    op_ctx *op = ud;
    harness *h = op->h;
    /* Every answer names the event it reflects, in the store's id form. */
    if (err == STORE_OK && !pres_event_id_valid(seq))
        fail_msg("users_query: invalid seq \"%s\"", seq);
    if (op == h->cur && err == STORE_OK) {
        free_results(h);
        h->users = calloc(n ? n : 1, sizeof(*h->users));
        if (!h->users)
            abort();
        for (size_t i = 0; i < n; i++) {
            h->users[i] = users[i];
            h->users[i].user = dup_or_null(users[i].user);
            h->users[i].status = dup_or_null(users[i].status);
            h->users[i].metadata = dup_or_null(users[i].metadata);
        }
        h->nusers = n;
    }
    on_done(err, ud);
}

static void on_room(int err, const char *const *users, size_t n, size_t total, void *ud)
{
    op_ctx *op = ud;
    harness *h = op->h;
    if (op == h->cur && err == STORE_OK) {
        free_results(h);
        h->members = calloc(n ? n : 1, sizeof(char *));
        if (!h->members)
            abort();
        for (size_t i = 0; i < n; i++)
            h->members[i] = dup_or_null(users[i]);
        h->nmembers = n;
        h->total = total;
    }
    on_done(err, ud);
}

/* ---- running the loops --------------------------------------------------------------------- */

static bool loop_frozen(const harness *h, int li)
{
    for (int i = 0; i < h->nslots; i++)
        if (h->slots[i].loop == li && h->slots[i].frozen)
            return true;
    return false;
}

/* One turn of every running loop, then a millisecond's nap. */
static void pump(harness *h)
{
    for (int li = 0; li < 2; li++)
        if (h->loop_used[li] && !loop_frozen(h, li))
            uv_run(&h->loops[li], UV_RUN_NOWAIT);
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
}

static void pump_for(harness *h, uint32_t ms)
{
    uint64_t end = mono_ms() + ms;
    while (mono_ms() < end)
        pump(h);
}

static op_ctx *op_begin(harness *h)
{
    op_ctx *op = &h->ops[h->nops++ % OPS_RING];
    op->h = h;
    op->done = false;
    op->err = 0;
    h->cur = op;
    return op;
}

static int op_wait(harness *h, op_ctx *op, const char *ctx)
{
    uint64_t end = mono_ms() + OP_TIMEOUT_MS;
    while (!op->done) {
        if (mono_ms() >= end)
            fail_msg("%s: no callback within %d ms", ctx, OP_TIMEOUT_MS);
        pump(h);
    }
    return op->err;
}

static size_t new_events(const slot *sl)
{
    return sl->nev - sl->seen;
}

static bool all_arrived(const harness *h, size_t want)
{
    for (int i = 0; i < h->nslots; i++)
        if (h->slots[i].observing && new_events(&h->slots[i]) < want)
            return false;
    return true;
}

/* ---- comparing events ---------------------------------------------------------------------- */

static size_t ev_count(const ev_exp *e)
{
    size_t n = 0;
    while (n < EV_MAX && e[n].user)
        n++;
    return n;
}

/* Redis losing its data begins a new generation in every partition: on a Redis Cluster the
 * table's one reset is one per partition (docs/redis-schema.md, "Generations"). */
#define RESETS_MAX 8
#define EV_WANT_MAX (EV_MAX + RESETS_MAX)

/* The events a step expects, each reset repeated once per partition; returns their count. */
static size_t ev_expand(const ev_exp *e, ev_exp out[EV_WANT_MAX])
{
    size_t n = 0, k = ev_count(e);
    for (size_t i = 0; i < k; i++)
        for (unsigned r = 0; r < (e[i].type == PRES_EV_RESET ? cfg.partitions : 1); r++)
            if (n < EV_WANT_MAX)
                out[n++] = e[i];
    return n;
}

static size_t ev_want(const ev_exp *e)
{
    ev_exp all[EV_WANT_MAX];
    return ev_expand(e, all);
}

/* Every partition's reset comes before the events of its generation. A reset does not say which
 * partition it is of, so this checks that some assignment of resets to partitions allows it:
 * wherever events of k partitions have come, at least k resets came before them. */
static bool resets_first(const got_event *g, size_t n)
{
    bool seen[RESETS_MAX] = {false};
    unsigned resets = 0, parts = 0;
    for (size_t j = 0; j < n; j++) {
        if (g[j].type == PRES_EV_RESET) {
            resets++;
            continue;
        }
        const char *u = g[j].user ? g[j].user : "";
        unsigned p = redis_partition_of(u, strlen(u), cfg.partitions) % RESETS_MAX;
        parts += !seen[p];
        seen[p] = true;
        if (parts > resets)
            return false;
    }
    return true;
}

static bool rooms_equal(const ev_exp *e, const got_event *g)
{
    size_t n = 0;
    while (n < ROOMS_MAX && e->rooms[n])
        n++;
    if (g->nrooms != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < g->nrooms && !found; j++)
            found = g->rooms[j] && strcmp(g->rooms[j], e->rooms[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static bool ls_ok(const harness *h, ls_cmp cmp, int memo, int64_t v)
{
    switch (cmp) {
    case LS_ANY:
        return true;
    case LS_GT_MEMO:
        return v > h->memo[memo];
    case LS_GE_MEMO:
        return v >= h->memo[memo];
    case LS_EQ_MEMO:
        return v == h->memo[memo];
    }
    return false;
}

static bool str_is(const char *want, const char *got)
{
    return !want || (got && strcmp(want, got) == 0);
}

static bool ev_matches(const harness *h, const ev_exp *e, const got_event *g)
{
    char sid[SID_LEN + 1];
    if (g->type != e->type || !str_is(e->user, g->user))
        return false;
    if (e->socket) {
        sid_of(e->socket, sid);
        if (!str_is(sid, g->socket))
            return false;
    }
    if (!str_is(e->room, g->room) || !str_is(e->status, g->status) ||
        !str_is(e->prev, g->prev_status) || !meta_equal(e->meta, g->metadata))
        return false;
    if (e->rooms_set && !rooms_equal(e, g))
        return false;
    /* lastSeen is when the store closed the socket: the event's own time, which a store cut off
     * from Redis for a while receives late. */
    if (g->type == PRES_EV_OFFLINE &&
        (g->last_seen < g->at - NOW_TOLERANCE_MS || g->last_seen > g->at + NOW_TOLERANCE_MS))
        return false;
    return ls_ok(h, e->ls, e->memo, g->last_seen);
}

static void print_got(const got_event *g)
{
    print_message("      got  %-10s user=%s socket=%s room=%s status=%s prev=%s meta=%s ls=%lld "
                  "id=%s rooms=[",
                  type_name(g->type), g->user ? g->user : "-", g->socket ? g->socket : "-",
                  g->room ? g->room : "-", g->status ? g->status : "-",
                  g->prev_status ? g->prev_status : "-", g->metadata ? g->metadata : "-",
                  (long long)g->last_seen, g->id);
    for (size_t i = 0; i < g->nrooms; i++)
        print_message("%s%s", i ? "," : "", g->rooms[i]);
    print_message("]\n");
}

static void print_exp(const ev_exp *e)
{
    char sid[SID_LEN + 1] = "-";
    if (e->socket)
        sid_of(e->socket, sid);
    print_message("      want %-10s user=%s socket=%s room=%s status=%s prev=%s meta=%s",
                  type_name(e->type), e->user, sid, e->room ? e->room : "*",
                  e->status ? e->status : "*", e->prev ? e->prev : "*", e->meta ? e->meta : "*");
    if (e->rooms_set) {
        print_message(" rooms=[");
        for (size_t i = 0; i < ROOMS_MAX && e->rooms[i]; i++)
            print_message("%s%s", i ? "," : "", e->rooms[i]);
        print_message("]");
    }
    print_message("\n");
}

/* The order that must hold among one user's expected events: a run of room events of one kind
 * (the rooms a closing socket leaves, say) may come in any order, anything else in table order.
 * Different users' events are not ordered against each other (a shutdown closes sockets in an
 * order of its own). */
static void ev_ranks(const ev_exp *e, size_t n, int *rank)
{
    for (size_t i = 0; i < n; i++) {
        rank[i] = 0;
        for (size_t j = i; j-- > 0;) {
            if (strcmp(e[j].user, e[i].user) != 0)
                continue;
            bool same_run = e[j].type == e[i].type &&
                            (e[i].type == PRES_EV_ROOM_JOIN || e[i].type == PRES_EV_ROOM_LEAVE);
            rank[i] = rank[j] + (same_run ? 0 : 1);
            break;
        }
    }
}

static void compare_events(harness *h, slot *sl, const ev_exp *table, const char *ctx)
{
    ev_exp e[EV_WANT_MAX];
    size_t want = ev_expand(table, e), got = new_events(sl);
    const got_event *g = sl->ev + sl->seen;
    size_t at[EV_WANT_MAX];
    int rank[EV_WANT_MAX];
    bool resets = false;
    bool used[64] = {false};
    bool ok = got == want && got <= 64;
    for (size_t i = 0; ok && i < want; i++) {
        ok = false;
        for (size_t j = 0; j < got && !ok; j++) {
            if (!used[j] && ev_matches(h, &e[i], &g[j])) {
                used[j] = true;
                at[i] = j;
                ok = true;
            }
        }
    }
    /* A reset (a new generation) comes before any event of the generation it begins. */
    for (size_t i = 0; i < want; i++)
        resets = resets || e[i].type == PRES_EV_RESET;
    if (ok && resets && !resets_first(g, got))
        ok = false;
    if (ok) {
        ev_ranks(e, want, rank);
        for (size_t i = 0; i < want; i++)
            for (size_t k = i + 1; k < want; k++)
                if (strcmp(e[i].user, e[k].user) == 0 && rank[i] < rank[k] && at[i] > at[k])
                    ok = false;
    }
    if (!ok) {
        print_message("    %s: store %d received %zu event(s), expected %zu:\n", ctx, sl->index,
                      got, want);
        for (size_t i = 0; i < want; i++)
            print_exp(&e[i]);
        for (size_t j = 0; j < got; j++)
            print_got(&g[j]);
        fail_msg("%s: store %d: events differ from the contract", ctx, sl->index);
    }
    for (size_t i = 0; i < want; i++)
        if (e[i].save)
            h->memo[e[i].save - 1] = g[at[i]].last_seen;
    sl->seen = sl->nev;
}

/* Wait until every observing store has the expected number of new events (or `timeout_ms`
 * passed), let the settle time pass, and compare. */
static void check_events(harness *h, const ev_exp *e, uint32_t timeout_ms, const char *ctx)
{
    size_t want = ev_want(e);
    uint64_t end = mono_ms() + timeout_ms;
    while (!all_arrived(h, want) && mono_ms() < end)
        pump(h);
    pump_for(h, cfg.redis ? SETTLE_REDIS_MS : SETTLE_MEMORY_MS);
    for (int i = 0; i < h->nslots; i++)
        if (h->slots[i].observing)
            compare_events(h, &h->slots[i], e, ctx);
}

/* ---- comparing query results -------------------------------------------------------------- */

static size_t users_count(const user_exp *u)
{
    size_t n = 0;
    while (n < USERS_MAX && u[n].user)
        n++;
    return n;
}

static bool user_matches(const harness *h, const user_exp *e, const store_user *u, char *why,
                         size_t whylen)
{
    int64_t now = wall_ms();
    const char *bad = NULL;
    if (!u->user || strcmp(u->user, e->user) != 0)
        bad = "not the id asked for (order)";
    else if (u->known != e->known)
        bad = "known";
    else if (u->online != e->online)
        bad = "online";
    else if (u->sockets != e->sockets)
        bad = "sockets";
    else if (!str_is(e->status, u->status))
        bad = "status";
    else if (!meta_equal(e->meta, u->metadata))
        bad = "metadata";
    else if (e->known ? (u->last_seen <= 0 || u->last_seen > now + NOW_TOLERANCE_MS)
                      : u->last_seen != 0)
        bad = "last_seen (0 iff unknown, never in the future)";
    else if (e->online ? (u->since <= 0 || u->since > now + NOW_TOLERANCE_MS) : u->since != 0)
        bad = "since (0 iff offline, never in the future)";
    else if (!ls_ok(h, e->ls, e->memo, u->last_seen))
        bad = "last_seen against the remembered value";
    if (!bad)
        return true;
    snprintf(why, whylen,
             "%s: want user=%s known=%d online=%d status=%s sockets=%u meta=%s; got user=%s "
             "known=%d online=%d status=%s sockets=%u meta=%s last_seen=%lld since=%lld",
             bad, e->user, e->known, e->online, e->status ? e->status : "*", e->sockets,
             e->meta ? e->meta : "*", u->user ? u->user : "(null)", u->known, u->online,
             u->status ? u->status : "(null)", u->sockets, u->metadata ? u->metadata : "(null)",
             (long long)u->last_seen, (long long)u->since);
    return false;
}

static void query_users(harness *h, int on, const char *const *ids, size_t n, const char *ctx)
{
    op_ctx *op = op_begin(h);
    store_users_query(h->slots[on].st, ids, n, on_users, op);
    int err = op_wait(h, op, ctx);
    if (err != STORE_OK)
        fail_msg("%s: users_query failed: %s", ctx, store_strerror(err));
    if (h->nusers != n)
        fail_msg("%s: users_query returned %zu users for %zu ids", ctx, h->nusers, n);
}

static void check_users(harness *h, int on, const user_exp *e, const char *ctx)
{
    const char *ids[USERS_MAX] = {0};
    size_t n = users_count(e);
    for (size_t i = 0; i < n; i++)
        ids[i] = e[i].user;
    query_users(h, on, ids, n, ctx);
    char why[1024];
    for (size_t i = 0; i < n; i++)
        if (!user_matches(h, &e[i], &h->users[i], why, sizeof(why)))
            fail_msg("%s: users_query on store %d, row %zu: %s", ctx, on, i, why);
    for (size_t i = 0; i < n; i++)
        if (e[i].save)
            h->memo[e[i].save - 1] = h->users[i].last_seen;
    h->last_users = e;
}

static void check_room(harness *h, const step *s, const char *ctx)
{
    size_t want = 0;
    while (want < MEMBERS_MAX && s->members[want])
        want++;
    op_ctx *op = op_begin(h);
    store_room_query(h->slots[s->on].st, s->room, s->limit, on_room, op);
    int err = op_wait(h, op, ctx);
    if (err != STORE_OK)
        fail_msg("%s: room_query failed: %s", ctx, store_strerror(err));
    size_t n = s->limit && s->limit < want ? s->limit : want;
    bool ok = h->total == want && h->nmembers == n;
    for (size_t i = 0; ok && i < h->nmembers; i++) {
        bool in = false;
        for (size_t j = 0; j < want && !in; j++)
            in = h->members[i] && strcmp(h->members[i], s->members[j]) == 0;
        for (size_t k = 0; k < i && in; k++)
            in = strcmp(h->members[k], h->members[i]) != 0;
        ok = in;
    }
    if (!ok) {
        print_message("    %s: room %s limit %zu: want %zu of these %zu:", ctx, s->room, s->limit,
                      n, want);
        for (size_t j = 0; j < want; j++)
            print_message(" [%s]", s->members[j]);
        print_message("\n    got %zu, total %zu:", h->nmembers, h->total);
        for (size_t i = 0; i < h->nmembers; i++)
            print_message(" [%s]", h->members[i] ? h->members[i] : "(null)");
        print_message("\n");
        fail_msg("%s: room_query differs from the contract", ctx);
    }
}

/* ---- stores -------------------------------------------------------------------------------- */

static void random_id(char out[SID_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    for (int i = 0; i < SID_LEN; i++)
        out[i] = alphabet[rnd() % 64];
    out[SID_LEN] = '\0';
}

/* ---- the Redis set-up: every data node behind fault proxies --------------------------------
 *
 * Store i of a scenario reaches every data node through a fault proxy of its own, its lane, so
 * that a fault cuts off one store (as a network would one instance) while the others go on. A
 * data node's proxies share one port, each on an address of its own: lane i listens on
 * 127.0.0.(2 + i) (all of 127.0.0.0/8 is loopback), and a proxy on 127.0.0.1 passes everything
 * for whoever else reaches the node by its announced address. The set-up tells each store its
 * lane's addresses:
 *   single    store i's URL is lane i's address;
 *   sentinel  the sentinels also watch the primary under a name per lane ("<name>-s<i>"), at
 *             lane i's address, which store i's URL names;
 *   cluster   every node announces its proxies' port and no host (cluster-announce-port, and
 *             cluster-preferred-endpoint-type hostname with no hostname: "?"), so that the slot
 *             map and MOVED say "the host you asked, this port"; store i's seeds are lane i's
 *             addresses.
 * A store's fault (OP_FAULT) applies to every proxy of its lane. Restarts and flushes go to the
 * whole set-up through redis-topology.sh. */

#define LANES MAX_STORES
#define NODES_MAX 8
#define SENTINELS_MAX 3

typedef struct topo_node {
    int port; /* the node's own */
    bool primary;
    int proxy_port; /* its proxies' */
    fault_proxy *base, *lane[LANES];
} topo_node;

static struct {
    const char *script, *dir; /* redis-topology.sh and the set-up's directory (--control) */
    topo_node node[NODES_MAX];
    int nnodes;
    int sentinel[SENTINELS_MAX];
    int nsentinels;
} topo;

static void lane_host(int lane, char out[24])
{
    snprintf(out, 24, "127.0.0.%d", 2 + lane);
}

/* One command on `port`, or NULL when it could not be sent. */
static redisReply *raw_on(int port, const char *fmt, va_list ap)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisReply *r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

static redisReply *raw_port(int port, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = raw_on(port, fmt, ap);
    va_end(ap);
    return r;
}

/* A command that must answer OK (or a status, or an integer); exits the program otherwise (the
 * set-up is wrong, no scenario can run). */
static void raw_ok(int port, const char *what, redisReply *r)
{
    bool ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_INTEGER);
    if (!ok)
        fprintf(stderr, "store_contract: %s on port %d: %s\n", what, port,
                r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    freeReplyObject(r);
    if (!ok)
        exit(1);
}

/* DIR/topology.json: the data nodes and sentinels the set-up started. */
static void topo_read(void)
{
    char path[512], *text = NULL;
    snprintf(path, sizeof(path), "%s/topology.json", topo.dir);
    FILE *f = fopen(path, "r");
    long len = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (text = calloc(1, (size_t)len + 1)) && fread(text, 1, (size_t)len, f) != (size_t)len)
        len = -1;
    if (f)
        fclose(f);
    cJSON *j = len > 0 && text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItem(j, "nodes"))
    {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItem(n, "role"));
        int port = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(n, "port"));
        if (!role || port <= 0)
            continue;
        if (strcmp(role, "sentinel") == 0 && topo.nsentinels < SENTINELS_MAX)
            topo.sentinel[topo.nsentinels++] = port;
        else if (strcmp(role, "sentinel") != 0 && topo.nnodes < NODES_MAX)
            topo.node[topo.nnodes++] =
                (topo_node){.port = port, .primary = strcmp(role, "primary") == 0};
    }
    cJSON_Delete(j);
    if (topo.nnodes == 0) {
        fprintf(stderr, "store_contract: no data node in %s\n", path);
        exit(1);
    }
}

static void node_proxies_stop(topo_node *n)
{
    fault_proxy_stop(n->base);
    n->base = NULL;
    for (int l = 0; l < LANES; l++) {
        fault_proxy_stop(n->lane[l]);
        n->lane[l] = NULL;
    }
}

/* A node's proxies: one on 127.0.0.1 on a free port, then one per lane on that port. Another
 * process may hold the port on a lane's address: then another port. */
static void node_proxies_start(topo_node *n)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        n->base = fault_proxy_start("127.0.0.1", n->port, 0);
        if (!n->base)
            continue;
        n->proxy_port = fault_proxy_port(n->base);
        bool ok = true;
        for (int l = 0; l < LANES && ok; l++) {
            char host[24];
            lane_host(l, host);
            ok = (n->lane[l] = fault_proxy_start_on("127.0.0.1", n->port, host, n->proxy_port));
        }
        if (ok)
            return;
        node_proxies_stop(n);
    }
    fprintf(stderr, "store_contract: no port for the proxies of node %d\n", n->port);
    exit(1);
}

static const topo_node *topo_primary(void)
{
    for (int i = 0; i < topo.nnodes; i++)
        if (topo.node[i].primary)
            return &topo.node[i];
    fprintf(stderr, "store_contract: no primary in the set-up\n");
    exit(1);
}

/* The master name in a redis-sentinel:// URL (after the last '/'). */
static const char *sentinel_master(void)
{
    const char *name = strrchr(cfg.redis_url, '/');
    return name ? name + 1 : "";
}

/* Each sentinel watches the primary under one more name per lane, at that lane's address. They
 * must not act on it: they take it for down only after a minute, and would move the replicas to
 * its address (a replica of another address, to them) only after an hour. */
static void sentinel_lanes(void)
{
    int primary = topo_primary()->proxy_port;
    for (int k = 0; k < topo.nsentinels; k++)
        for (int l = 0; l < LANES; l++) {
            char name[96], host[24];
            snprintf(name, sizeof(name), "%s-s%d", sentinel_master(), l);
            lane_host(l, host);
            raw_ok(topo.sentinel[k], "SENTINEL MONITOR",
                   raw_port(topo.sentinel[k], "SENTINEL MONITOR %s %s %d 2", name, host, primary));
            raw_ok(topo.sentinel[k], "SENTINEL SET",
                   raw_port(topo.sentinel[k],
                            "SENTINEL SET %s down-after-milliseconds 60000 failover-timeout "
                            "3600000",
                            name));
        }
}

/* Whether node `port` gives every slot range with host "?" (unknown) and a proxy's port. */
static bool slots_announced(int port)
{
    redisReply *r = raw_port(port, "CLUSTER SLOTS");
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    for (size_t i = 0; ok && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        ok = e->type == REDIS_REPLY_ARRAY && e->elements >= 3;
        for (size_t k = 2; ok && k < e->elements; k++) {
            const redisReply *at = e->element[k];
            ok = at->type == REDIS_REPLY_ARRAY && at->elements >= 2 &&
                 at->element[0]->type == REDIS_REPLY_STRING &&
                 strcmp(at->element[0]->str, "?") == 0 &&
                 at->element[1]->type == REDIS_REPLY_INTEGER;
            bool proxy = false;
            for (int n = 0; ok && n < topo.nnodes && !proxy; n++)
                proxy = at->element[1]->integer == topo.node[n].proxy_port;
            ok = ok && proxy;
        }
    }
    freeReplyObject(r);
    return ok;
}

/* Runs redis-topology.sh VERB DIR ARGS... and returns its exit status (-1: it could not run),
 * running `h`'s loops meanwhile when there is a scenario (its stores live through it). */
static int topo_run(harness *h, const char *const *args)
{
    const char *argv[16] = {"bash", topo.script, args[0], topo.dir};
    size_t n = 4;
    for (size_t i = 1; args[i] && n + 1 < sizeof(argv) / sizeof(argv[0]); i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(stdout);
    /* posix_spawn, not fork: the proxies' threads may hold locks a forked child would inherit. */
    pid_t pid;
    if (posix_spawnp(&pid, "bash", NULL, NULL, (char *const *)argv, environ) != 0)
        return -1;
    int st;
    pid_t got;
    while ((got = waitpid(pid, &st, h ? WNOHANG : 0)) == 0)
        pump_for(h, 10);
    return got == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Every node announces its proxies' port and no host ("?"); wait until every node's map says
 * so. */
static void cluster_lanes(void)
{
    for (int i = 0; i < topo.nnodes; i++) {
        char port[16], proxy[16];
        snprintf(port, sizeof(port), "%d", topo.node[i].port);
        snprintf(proxy, sizeof(proxy), "%d", topo.node[i].proxy_port);
        const char *args[] = {
            "config",   port, "cluster-announce-port", proxy, "cluster-preferred-endpoint-type",
            "hostname", NULL};
        if (topo_run(NULL, args) != 0) {
            fprintf(stderr, "store_contract: could not announce the proxies of node %s\n", port);
            exit(1);
        }
    }
    uint64_t end = mono_ms() + 30000;
    for (int i = 0; i < topo.nnodes; i++)
        while (!slots_announced(topo.node[i].port)) {
            if (mono_ms() >= end) {
                fprintf(stderr, "store_contract: node %d's slot map does not give the proxies\n",
                        topo.node[i].port);
                exit(1);
            }
            struct timespec nap = {0, 50000000};
            nanosleep(&nap, NULL);
        }
}

/* Before any scenario: the proxies, and the set-up pointing each lane at its own. */
static void topo_start(void)
{
    topo_read();
    for (int i = 0; i < topo.nnodes; i++)
        node_proxies_start(&topo.node[i]);
    if (strcmp(cfg.topology, "sentinel") == 0)
        sentinel_lanes();
    else if (strcmp(cfg.topology, "cluster") == 0)
        cluster_lanes();
}

static void topo_stop(void)
{
    for (int i = 0; i < topo.nnodes; i++)
        node_proxies_stop(&topo.node[i]);
}

/* Every proxy of store `lane`'s lane changes mode. */
static void lane_fault(int lane, fault_mode mode, uint32_t ms)
{
    for (int i = 0; i < topo.nnodes; i++)
        fault_proxy_set(topo.node[i].lane[lane], mode, ms);
}

/* The Redis URL of store `lane`: its lane's addresses. */
static void store_url(int lane, char *out, size_t len)
{
    char host[24];
    lane_host(lane, host);
    if (strcmp(cfg.topology, "sentinel") == 0) {
        snprintf(out, len, "%s-s%d", cfg.redis_url, lane);
    } else if (strcmp(cfg.topology, "cluster") == 0) {
        size_t at = (size_t)snprintf(out, len, "redis-cluster://");
        for (int i = 0; i < topo.nnodes && at < len; i++)
            if (topo.node[i].primary)
                at += (size_t)snprintf(out + at, len - at, "%s%s:%d", at > 16 ? "," : "", host,
                                       topo.node[i].proxy_port);
    } else {
        snprintf(out, len, "redis://%s:%d", host, topo_primary()->proxy_port);
    }
}

/* The whole set-up stops (each node keeping its data) or starts again (with it, or empty). */
static void topo_verb(harness *h, const char *const *args, const char *what)
{
    if (topo_run(h, args) != 0)
        fail_msg("redis-topology.sh %s failed: %s", args[0], what);
}

/* FLUSHALL on every primary: Redis lost its data without a restart. */
static void topo_flush(void)
{
    for (int i = 0; i < topo.nnodes; i++) {
        if (!topo.node[i].primary)
            continue;
        redisReply *r = raw_port(topo.node[i].port, "FLUSHALL");
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (!ok)
            fail_msg("FLUSHALL failed on port %d", topo.node[i].port);
    }
}

static void store_start(harness *h, int i)
{
    const scenario *sc = h->sc;
    slot *sl = &h->slots[i];
    char *iid = sl->iid;
    random_id(iid);
    sl->h = h;
    sl->index = i;
    sl->loop = sc->own_loop == i + 1 ? 1 : 0;
    sl->observing = true;
    if (!h->loop_used[sl->loop]) {
        assert_int_equal(uv_loop_init(&h->loops[sl->loop]), 0);
        h->loop_used[sl->loop] = true;
    }
    char url[512] = "";
    if (cfg.redis)
        store_url(i, url, sizeof(url));
    store_opts opts = {
        .instance_id = iid,
        .offline_grace_ms = sc->grace_ms,
        .last_seen_retention_s = 3600,
        .instance_lease_ms = sc->lease_ms[i] ? sc->lease_ms[i] : LEASE_MS,
        .ttl_s = 30,
        .stream_maxlen = 10000,
        .redis_url = url,
        .key_prefix = h->prefix,
        .redis_partitions = cfg.partitions,
        .webhooks = sc->webhooks,
    };
    store_hooks hooks = {
        .event = on_event,
        .reconcile = on_reconcile,
        .availability = on_availability,
        .ud = sl,
    };
    uv_loop_t *loop = &h->loops[sl->loop];
    sl->st =
        cfg.redis ? store_redis_new(loop, &opts, &hooks) : store_memory_new(loop, &opts, &hooks);
    if (!sl->st)
        fail_msg("store %d: the store could not be created", i);
    h->nslots = i + 1 > h->nslots ? i + 1 : h->nslots;
    /* The Redis store connects in the background; operations before that fail. */
    uint64_t end = mono_ms() + OP_TIMEOUT_MS;
    while (!store_available(sl->st)) {
        if (mono_ms() >= end)
            fail_msg("store %d: not available within %d ms", i, OP_TIMEOUT_MS);
        pump(h);
    }
}

/* ---- steps --------------------------------------------------------------------------------- */

static void lease_watch(harness *h, const step *s, const char *ctx);

static void expect_err(int err, int want, const char *ctx)
{
    if (err != want)
        fail_msg("%s: callback error %d (%s), expected %d (%s)", ctx, err, store_strerror(err),
                 want, store_strerror(want));
}

/* Wait for the step's operation and check its error (unless the step accepts any). */
static void expect_step_err(harness *h, const step *s, op_ctx *op, const char *ctx)
{
    int err = op_wait(h, op, ctx);
    if (err == STORE_ERR_NO_SOCKET && s->on < h->nslots)
        h->slots[s->on].asked_reconciles++;
    if (!s->any_err)
        expect_err(err, s->err, ctx);
}

static void run_step(harness *h, const step *s, const char *ctx)
{
    char sid[SID_LEN + 1] = "";
    if (s->sid)
        sid_of(s->sid, sid);
    store *st = s->on < h->nslots ? h->slots[s->on].st : NULL;
    op_ctx *op;
    switch (s->op) {
    case OP_END:
        return;
    case OP_OPEN:
        op = op_begin(h);
        store_socket_open(st, sid, s->user, s->status, s->meta, on_done, op);
        expect_step_err(h, s, op, ctx);
        if (op->err == STORE_OK ? !s->forget || !cfg.redis : s->keep)
            truth_add(&h->slots[s->on], sid, s->user, s->status, s->meta);
        break;
    case OP_ASSERT: {
        size_t nrooms = 0;
        while (nrooms < ROOMS_MAX && s->rooms[nrooms])
            nrooms++;
        op = op_begin(h);
        store_socket_assert(st, sid, s->user, s->status, s->meta, s->rooms, nrooms, on_done, op);
        expect_step_err(h, s, op, ctx);
        if (op->err == STORE_OK) {
            truth_sock *k = truth_add(&h->slots[s->on], sid, s->user, s->status, s->meta);
            for (size_t i = 0; i < nrooms; i++)
                truth_room(k, s->rooms[i], true);
        }
        break;
    }
    case OP_CLOSE:
    case OP_CLOSE_GRACEFUL:
        op = op_begin(h);
        truth_remove(&h->slots[s->on], sid);
        store_socket_close(st, sid, s->op == OP_CLOSE_GRACEFUL, on_done, op);
        expect_step_err(h, s, op, ctx);
        break;
    case OP_JOIN:
    case OP_LEAVE:
        op = op_begin(h);
        if (s->op == OP_JOIN)
            store_room_join(st, sid, s->room, on_done, op);
        else
            store_room_leave(st, sid, s->room, on_done, op);
        expect_step_err(h, s, op, ctx);
        /* As the gateway: a leave takes effect locally whatever the store answers, a join only
         * once the store accepted it. */
        if (truth_find(&h->slots[s->on], sid) && (s->op == OP_LEAVE || op->err == STORE_OK))
            truth_room(truth_find(&h->slots[s->on], sid), s->room, s->op == OP_JOIN);
        break;
    case OP_STATUS:
        op = op_begin(h);
        store_status_set(st, sid, s->status, s->meta, on_done, op);
        expect_step_err(h, s, op, ctx);
        if (op->err == STORE_OK && truth_find(&h->slots[s->on], sid)) {
            truth_sock *k = truth_find(&h->slots[s->on], sid);
            snprintf(k->status, sizeof(k->status), "%s", s->status);
            if (s->meta) {
                free(k->meta);
                k->meta = dup_or_null(s->meta);
            }
        }
        break;
    case OP_TOUCH:
        op = op_begin(h);
        store_touch(st, sid, on_done, op);
        expect_step_err(h, s, op, ctx);
        break;
    case OP_SHUTDOWN:
        op = op_begin(h);
        truth_free(&h->slots[s->on]);
        store_shutdown(st, on_done, op);
        expect_step_err(h, s, op, ctx);
        if (s->unobserve)
            h->slots[s->on].observing = false;
        break;
    case OP_USERS:
        check_users(h, s->on, s->users, ctx);
        break;
    case OP_ROOM:
        check_room(h, s, ctx);
        break;
    case OP_SLEEP:
        pump_for(h, s->ms);
        break;
    case OP_WAIT:
        break;
    case OP_KILL: {
        slot *sl = &h->slots[s->on];
        sl->observing = false;
        if (h->sc->kill == KILL_FREE) {
            store_free(sl->st);
            sl->st = NULL;
        } else {
            sl->frozen = true;
        }
        h->killed = s->on;
        h->killed_any = true;
        h->kill_at = mono_ms();
        break;
    }
    case OP_LEASE_WATCH:
        lease_watch(h, s, ctx);
        break;
    case OP_CALL:
        s->call(h);
        return;
    case OP_FAULT:
        if (cfg.redis)
            lane_fault(s->on, s->fault, s->ms);
        break;
    case OP_RECONCILE:
        h->slots[s->on].asked_reconciles++;
        op = op_begin(h);
        store_reconcile(st, on_done, op);
        expect_err(op_wait(h, op, ctx), s->err, ctx);
        break;
    case OP_TRUTH_DROP:
        truth_remove(&h->slots[s->on], sid);
        break;
    case OP_TRUTH_ROOM:
        assert_non_null(truth_find(&h->slots[s->on], sid));
        truth_room(truth_find(&h->slots[s->on], sid), s->room, s->in);
        break;
    case OP_TRUTH_ADD: {
        truth_sock *k = truth_add(&h->slots[s->on], sid, s->user, s->status, s->meta);
        for (size_t i = 0; i < ROOMS_MAX && s->rooms[i]; i++)
            truth_room(k, s->rooms[i], true);
        break;
    }
    case OP_REDIS_STOP:
        if (cfg.redis)
            topo_verb(h, (const char *const[]){"down", "--save", NULL}, ctx);
        break;
    case OP_REDIS_START:
        if (cfg.redis)
            topo_verb(h, (const char *const[]){"up", s->empty ? "--empty" : NULL, NULL}, ctx);
        break;
    case OP_REDIS_FLUSH:
        if (cfg.redis)
            topo_flush();
        break;
    }
    if (s->later)
        return;
    uint32_t timeout = EVENT_TIMEOUT_MS;
    if ((s->op == OP_WAIT || s->op == OP_LEASE_WATCH) && s->ms > timeout)
        timeout = s->ms;
    check_events(h, s->ev, timeout, ctx);
}

static void step_ctx(char *buf, size_t len, size_t i, const step *s)
{
    snprintf(buf, len, "step %zu (%s%s%s%s%s on store %d)", i + 1, op_name(s->op),
             s->sid ? " " : "", s->sid ? s->sid : "", s->room ? " " : "", s->room ? s->room : "",
             s->on);
}

/* After OP_KILL of a store with lease `lease`: poll users_query on store `s->on` until the
 * reap's events arrived. Every answer must be either the state before the kill (the last
 * OP_USERS expectations) or the state after it (s->users), and:
 *  - the dead instance's sockets stop counting once its lease has surely expired, whether or
 *    not anyone has reaped it yet (presence-model.md, Liveness);
 *  - they still count while its lease surely runs (for a hung process, whose lease was last
 *    refreshed at most lease/3 before it hung);
 *  - the events arrive within lease + s->ms. */
static void lease_watch(harness *h, const step *s, const char *ctx)
{
    const user_exp *pre = h->last_users, *post = s->users;
    size_t n = users_count(post);
    assert_non_null(pre);
    assert_int_equal(users_count(pre), n);
    const char *ids[USERS_MAX];
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(pre[i].user, post[i].user);
        ids[i] = post[i].user;
    }
    uint32_t lease = h->sc->lease_ms[h->killed] ? h->sc->lease_ms[h->killed] : LEASE_MS;
    size_t want = ev_want(s->ev);
    uint64_t deadline = h->kill_at + lease + s->ms;
    unsigned polls = 0, window = 0;
    uint64_t first_post = 0;
    char why[1024];
    for (;;) {
        uint64_t t0 = mono_ms() - h->kill_at;
        bool reaped_before = all_arrived(h, want);
        query_users(h, s->on, ids, n, ctx);
        bool reaped_after = all_arrived(h, want);
        polls++;
        /* Each user on its own: on a Redis Cluster every partition reaps by itself, so one
         * user may already be in the state after while another is still in the state before. */
        bool is_post = true, some_pre = false, some_post = false;
        for (size_t i = 0; i < n; i++) {
            bool u_pre = user_matches(h, &pre[i], &h->users[i], why, sizeof(why));
            bool u_post = user_matches(h, &post[i], &h->users[i], why, sizeof(why));
            if (!u_pre && !u_post)
                fail_msg("%s: %llu ms after the kill the query shows %s in neither the state "
                         "before nor the state after it: %s",
                         ctx, (unsigned long long)t0, post[i].user, why);
            is_post = is_post && u_post;
            some_pre = some_pre || (u_pre && !u_post);
            some_post = some_post || (u_post && !u_pre);
        }
        if (some_pre && t0 > lease + 300)
            fail_msg("%s: %llu ms after the kill (lease %u ms) the dead instance's sockets "
                     "still count",
                     ctx, (unsigned long long)t0, lease);
        if (some_pre && reaped_before)
            fail_msg("%s: the dead instance's sockets count after the reap's events arrived", ctx);
        if (some_post && h->sc->kill == KILL_FREEZE && mono_ms() - h->kill_at + 300 < lease * 2 / 3)
            fail_msg("%s: the hung instance's sockets stopped counting after %llu ms, before its "
                     "lease (%u ms, refreshed every third) can have expired",
                     ctx, (unsigned long long)(mono_ms() - h->kill_at), lease);
        if (is_post && !first_post)
            first_post = t0;
        if (is_post && !reaped_after)
            window++;
        if (reaped_before && is_post)
            break;
        if (mono_ms() >= deadline)
            fail_msg("%s: the reap's %zu event(s) did not all arrive within %u ms of the kill "
                     "(lease %u ms)",
                     ctx, want, lease + s->ms, lease);
        pump_for(h, 50);
    }
    print_message("    %s: sockets stopped counting %llu ms and the reap's events had arrived "
                  "%llu ms after the kill; %u queries, %u of them in between%s\n",
                  ctx, (unsigned long long)first_post, (unsigned long long)(mono_ms() - h->kill_at),
                  polls, window, window ? "" : " (that window was not observed this run)");
}

/* ---- fixtures and the test body --------------------------------------------------------- */

static int scenario_setup(void **state)
{
    harness *h = calloc(1, sizeof(*h));
    if (!h)
        return -1;
    h->sc = *state;
    snprintf(h->prefix, sizeof(h->prefix), "t%s-%u:", cfg.run_tag, ++cfg.scenario_no);
    *state = h;
    return 0;
}

static int scenario_teardown(void **state)
{
    harness *h = *state;
    int rc = 0;
    for (int i = 0; i < LANES && cfg.redis; i++)
        lane_fault(i, FAULT_PASS, 0);
    for (int i = 0; i < h->nslots; i++) {
        h->slots[i].frozen = false;
        if (h->slots[i].st)
            store_free(h->slots[i].st);
        h->slots[i].st = NULL;
    }
    /* The stores release their memory once the loops have closed their handles. */
    uint64_t end = mono_ms() + OP_TIMEOUT_MS;
    for (;;) {
        bool alive = false;
        for (int li = 0; li < 2; li++)
            if (h->loop_used[li]) {
                uv_run(&h->loops[li], UV_RUN_NOWAIT);
                alive = alive || uv_loop_alive(&h->loops[li]);
            }
        if (!alive || mono_ms() >= end)
            break;
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    for (int li = 0; li < 2; li++) {
        if (h->loop_used[li] && uv_loop_close(&h->loops[li]) != 0) {
            print_error("loop %d still has open handles after store_free\n", li);
            rc = -1;
        }
    }
    for (int i = 0; i < h->nslots; i++) {
        slot *sl = &h->slots[i];
        for (size_t j = 0; j < sl->nev; j++) {
            got_event *g = &sl->ev[j];
            free(g->user);
            free(g->socket);
            free(g->room);
            free(g->status);
            free(g->prev_status);
            free(g->metadata);
            for (size_t k = 0; k < g->nrooms; k++)
                free(g->rooms[k]);
            free(g->rooms);
        }
        free(sl->ev);
        truth_free(sl);
    }
    free_results(h);
    for (size_t i = 0; i < sizeof(h->scratch) / sizeof(h->scratch[0]); i++)
        free(h->scratch[i]);
    if (rc != 0) {
        /* A handle left on a closed-but-busy loop would be used after free: keep it. */
        return rc;
    }
    free(h);
    return rc;
}

static void run_scenario(void **state)
{
    harness *h = *state;
    const scenario *sc = h->sc;
    if (sc->redis_only && !cfg.redis) {
        print_message("    skipped: %s needs the Redis store (several instances)\n", sc->name);
        skip();
    }
    int nstores = sc->nstores ? sc->nstores : 1;
    for (int i = 0; i < nstores; i++)
        store_start(h, i);
    char ctx[128 + 64];
    for (size_t i = 0; sc->steps[i].op != OP_END; i++) {
        step_ctx(ctx, sizeof(ctx), i, &sc->steps[i]);
        run_step(h, &sc->steps[i], ctx);
    }
    /* No stray events: nothing may arrive once the scenario is over. */
    pump_for(h, END_SETTLE_MS);
    const ev_exp none[1] = {{.user = NULL}};
    check_events(h, none, 0, "end of scenario (no further events)");
    /* Where nothing was lost, a store reconciles only when it connects (the Redis store, once),
     * when asked to, and when it is sent a command for a socket it does not know: anything more
     * means it took something for lost that was not. (What a reconciliation announces is
     * checked with the events of each step.) */
    for (int i = 0; i < h->nslots && !sc->proxied && !sc->restarts && !h->killed_any; i++) {
        slot *sl = &h->slots[i];
        /* On a cluster, each partition is a Redis store of its own, and a socket the store does
         * not know makes them all reconcile. */
        int allowed = ((cfg.redis ? 1 : 0) + sl->asked_reconciles) * (int)cfg.partitions;
        if (sl->reconciles > allowed)
            fail_msg("store %d reconciled %d time(s) where nothing was lost (at most %d)", i,
                     sl->reconciles, allowed);
    }
}

/* ---- the table ------------------------------------------------------------------------------- */

#define S_OPEN(n, s, u) .op = OP_OPEN, .on = (n), .sid = (s), .user = (u)
#define S_ASSERT(n, s, u) .op = OP_ASSERT, .on = (n), .sid = (s), .user = (u)
#define S_CLOSE(n, s) .op = OP_CLOSE, .on = (n), .sid = (s)
#define S_CLOSEG(n, s) .op = OP_CLOSE_GRACEFUL, .on = (n), .sid = (s)
#define S_JOIN(n, s, r) .op = OP_JOIN, .on = (n), .sid = (s), .room = (r)
#define S_LEAVE(n, s, r) .op = OP_LEAVE, .on = (n), .sid = (s), .room = (r)
#define S_STATUS(n, s, st) .op = OP_STATUS, .on = (n), .sid = (s), .status = (st)
#define S_TOUCH(n, s) .op = OP_TOUCH, .on = (n), .sid = (s)
#define S_SHUTDOWN(n) .op = OP_SHUTDOWN, .on = (n)
#define S_USERS(n) .op = OP_USERS, .on = (n)
#define S_ROOM(n, r) .op = OP_ROOM, .on = (n), .room = (r)
#define S_SLEEP(t) .op = OP_SLEEP, .ms = (t)
#define S_WAIT(t) .op = OP_WAIT, .ms = (t)

#define E_ONLINE(u, s, st, m)                                                                      \
    .type = PRES_EV_ONLINE, .user = (u), .socket = (s), .status = (st), .meta = (m),               \
    .rooms_set = true
/* An offline event checked with its routing rooms (add .rooms), or without (E_OFFLINE_ANY). */
#define E_OFFLINE(u, s) .type = PRES_EV_OFFLINE, .user = (u), .socket = (s), .rooms_set = true
#define E_OFFLINE_ANY(u, s) .type = PRES_EV_OFFLINE, .user = (u), .socket = (s)
#define E_JOIN(u, r) .type = PRES_EV_ROOM_JOIN, .user = (u), .room = (r)
#define E_LEAVE(u, r) .type = PRES_EV_ROOM_LEAVE, .user = (u), .room = (r)
/* Redis lost its data: the first entry of the new generation. */
#define E_RESET .type = PRES_EV_RESET, .user = ""
#define E_UPDATE(u, st, ps, m)                                                                     \
    .type = PRES_EV_UPDATE, .user = (u), .status = (st), .prev = (ps), .meta = (m)

#define U_UNKNOWN(u)                                                                               \
    .user = (u), .known = false, .online = false, .status = "offline", .sockets = 0, .meta = NOMETA
#define U_OFFLINE(u) .user = (u), .known = true, .online = false, .status = "offline", .sockets = 0
#define U_ONLINE(u, st, n)                                                                         \
    .user = (u), .known = true, .online = true, .status = (st), .sockets = (n)

static const step single_socket[] = {
    {S_USERS(0), .users = {{U_UNKNOWN("alice")}}},
    {S_OPEN(0, "s1", "alice"), .ev = {{E_ONLINE("alice", "s1", "online", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("alice", "online", 1), .meta = NOMETA}}},
    {S_CLOSE(0, "s1"), .ev = {{E_OFFLINE("alice", "s1")}}},
    {S_USERS(0), .users = {{U_OFFLINE("alice")}}},
    {S_ROOM(0, "lobby")},
    {.op = OP_END},
};

static const step multi_tab[] = {
    {S_OPEN(0, "a", "bob"), .ev = {{E_ONLINE("bob", "a", "online", NOMETA)}}},
    {S_OPEN(0, "b", "bob")},
    {S_OPEN(0, "c", "bob")},
    {S_USERS(0), .users = {{U_ONLINE("bob", "online", 3)}}},
    {S_CLOSE(0, "b")},
    {S_CLOSE(0, "a")},
    {S_USERS(0), .users = {{U_ONLINE("bob", "online", 1)}}},
    {S_CLOSE(0, "c"), .ev = {{E_OFFLINE("bob", "c")}}},
    {S_USERS(0), .users = {{U_OFFLINE("bob")}}},
    {.op = OP_END},
};

static const step rooms[] = {
    {S_OPEN(0, "s1", "carol"), .ev = {{E_ONLINE("carol", "s1", "online", NOMETA)}}},
    {S_OPEN(0, "s2", "carol")},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("carol", "r")}}},
    {S_JOIN(0, "s2", "r")},
    {S_JOIN(0, "s1", "r")},
    {S_ROOM(0, "r"), .members = {"carol"}},
    {S_LEAVE(0, "s1", "r")},
    {S_LEAVE(0, "s1", "r")},
    {S_LEAVE(0, "s1", "never-joined")},
    {S_ROOM(0, "r"), .members = {"carol"}},
    {S_LEAVE(0, "s2", "r"), .ev = {{E_LEAVE("carol", "r")}}},
    {S_ROOM(0, "r")},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("carol", "r")}}},
    {S_JOIN(0, "s1", "r2"), .ev = {{E_JOIN("carol", "r2")}}},
    {S_OPEN(0, "s3", "dave"), .ev = {{E_ONLINE("dave", "s3", "online", NOMETA)}}},
    {S_JOIN(0, "s3", "r"), .ev = {{E_JOIN("dave", "r")}}},
    {S_ROOM(0, "r"), .members = {"carol", "dave"}},
    {S_ROOM(0, "r"), .limit = 1, .members = {"carol", "dave"}},
    /* carol's other socket (s2) is in no room: closing s1 leaves both rooms, she stays. */
    {S_CLOSE(0, "s1"), .ev = {{E_LEAVE("carol", "r")}, {E_LEAVE("carol", "r2")}}},
    {S_ROOM(0, "r"), .members = {"dave"}},
    {S_ROOM(0, "r2")},
    {S_USERS(0), .users = {{U_ONLINE("carol", "online", 1)}, {U_ONLINE("dave", "online", 1)}}},
    {S_JOIN(0, "s2", "r"), .ev = {{E_JOIN("carol", "r")}}},
    {S_JOIN(0, "s2", "r2"), .ev = {{E_JOIN("carol", "r2")}}},
    /* The rooms are left first, then the offline event names them for routing. */
    {S_CLOSE(0, "s2"), .ev = {{E_LEAVE("carol", "r")},
                              {E_LEAVE("carol", "r2")},
                              {E_OFFLINE("carol", "s2"), .rooms = {"r", "r2"}}}},
    {S_CLOSE(0, "s3"), .ev = {{E_LEAVE("dave", "r")}, {E_OFFLINE("dave", "s3"), .rooms = {"r"}}}},
    {S_ROOM(0, "r")},
    {S_ROOM(0, "r2")},
    {.op = OP_END},
};

static const step status_metadata[] = {
    {S_OPEN(0, "s1", "erin"), .meta = "{\"a\":1}",
     .ev = {{E_ONLINE("erin", "s1", "online", "{\"a\":1}")}}},
    {S_STATUS(0, "s1", "online")},
    {S_STATUS(0, "s1", "away"), .ev = {{E_UPDATE("erin", "away", "online", "{\"a\":1}")}}},
    {S_STATUS(0, "s1", "away"), .meta = "{\"a\":1}"},
    {S_STATUS(0, "s1", "away"), .meta = "{\"a\":2}",
     .ev = {{E_UPDATE("erin", "away", "away", "{\"a\":2}")}}},
    /* A new socket of an online user changes status/metadata only when it gives them. */
    {S_OPEN(0, "s2", "erin"), .status = "busy",
     .ev = {{E_UPDATE("erin", "busy", "away", "{\"a\":2}")}}},
    {S_OPEN(0, "s3", "erin")},
    {S_OPEN(0, "s4", "erin"), .status = "busy", .meta = "{\"a\":2}"},
    {S_USERS(0), .users = {{U_ONLINE("erin", "busy", 4), .meta = "{\"a\":2}"}}},
    {S_JOIN(0, "s1", "team"), .ev = {{E_JOIN("erin", "team")}}},
    /* Update events name the user's rooms for routing. */
    {S_STATUS(0, "s2", "dnd"),
     .ev = {{E_UPDATE("erin", "dnd", "busy", "{\"a\":2}"), .rooms_set = true, .rooms = {"team"}}}},
    /* Visibility is the caller's business: the store keeps and reports "invisible". */
    {S_STATUS(0, "s3", "invisible"), .meta = "{\"b\":[1,2]}",
     .ev = {{E_UPDATE("erin", "invisible", "dnd", "{\"b\":[1,2]}"), .rooms_set = true,
             .rooms = {"team"}}}},
    {S_USERS(0), .users = {{U_ONLINE("erin", "invisible", 4), .meta = "{\"b\":[1,2]}"}}},
    {S_CLOSE(0, "s1"), .ev = {{E_LEAVE("erin", "team")}}},
    {S_CLOSE(0, "s2")},
    {S_CLOSE(0, "s3")},
    {S_CLOSE(0, "s4"), .ev = {{E_OFFLINE("erin", "s4")}}},
    {S_USERS(0), .users = {{U_OFFLINE("erin")}}},
    /* Coming online again starts afresh: status given or "online", metadata given or none. */
    {S_OPEN(0, "s5", "erin"), .ev = {{E_ONLINE("erin", "s5", "online", NOMETA)}}},
    {S_OPEN(0, "s6", "frank"), .status = "away", .meta = "{\"x\":true}",
     .ev = {{E_ONLINE("frank", "s6", "away", "{\"x\":true}")}}},
    {S_USERS(0), .users = {{U_ONLINE("erin", "online", 1), .meta = NOMETA},
                           {U_ONLINE("frank", "away", 1), .meta = "{\"x\":true}"}}},
    {S_CLOSE(0, "s5"), .ev = {{E_OFFLINE("erin", "s5")}}},
    {S_CLOSE(0, "s6"), .ev = {{E_OFFLINE("frank", "s6")}}},
    {.op = OP_END},
};

static const step errors[] = {
    {S_OPEN(0, "s1", "gina"), .ev = {{E_ONLINE("gina", "s1", "online", NOMETA)}}},
    {S_OPEN(0, "s1", "gina"), .err = STORE_ERR_EXISTS},
    {S_OPEN(0, "s1", "hank"), .status = "away", .err = STORE_ERR_EXISTS},
    {S_USERS(0), .users = {{U_ONLINE("gina", "online", 1)}, {U_UNKNOWN("hank")}}},
    {S_JOIN(0, "zz", "r"), .err = STORE_ERR_NO_SOCKET},
    {S_LEAVE(0, "zz", "r"), .err = STORE_ERR_NO_SOCKET},
    {S_STATUS(0, "zz", "away"), .err = STORE_ERR_NO_SOCKET},
    {S_TOUCH(0, "zz"), .err = STORE_ERR_NO_SOCKET},
    {S_ROOM(0, "r")},
    {S_CLOSE(0, "zz")},
    {S_CLOSEG(0, "zz")},
    {S_CLOSE(0, "s1"), .ev = {{E_OFFLINE("gina", "s1")}}},
    {S_CLOSE(0, "s1")},
    {S_JOIN(0, "s1", "r"), .err = STORE_ERR_NO_SOCKET},
    {S_STATUS(0, "s1", "busy"), .err = STORE_ERR_NO_SOCKET},
    {S_TOUCH(0, "s1"), .err = STORE_ERR_NO_SOCKET},
    {S_USERS(0), .users = {{U_OFFLINE("gina")}, {U_UNKNOWN("hank")}}},
    /* A closed socket's id may be registered again. */
    {S_OPEN(0, "s1", "gina"), .ev = {{E_ONLINE("gina", "s1", "online", NOMETA)}}},
    {S_CLOSE(0, "s1"), .ev = {{E_OFFLINE("gina", "s1")}}},
    {.op = OP_END},
};

/* Each operation that sets lastSeen moves it forward; the offline event carries the value the
 * close set, which queries then report. */
static const step last_seen[] = {
    {S_OPEN(0, "s1", "ivy"), .ev = {{E_ONLINE("ivy", "s1", "online", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("ivy", "online", 1), .save = 1}}},
    {S_SLEEP(30)},
    {S_TOUCH(0, "s1")},
    {S_USERS(0), .users = {{U_ONLINE("ivy", "online", 1), .ls = LS_GT_MEMO, .memo = 0, .save = 2}}},
    {S_SLEEP(30)},
    {S_OPEN(0, "s2", "ivy")},
    {S_USERS(0), .users = {{U_ONLINE("ivy", "online", 2), .ls = LS_GT_MEMO, .memo = 1, .save = 3}}},
    {S_SLEEP(30)},
    {S_STATUS(0, "s1", "away"), .ev = {{E_UPDATE("ivy", "away", "online", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("ivy", "away", 2), .ls = LS_GT_MEMO, .memo = 2, .save = 4}}},
    {S_SLEEP(30)},
    {S_CLOSE(0, "s2")},
    {S_USERS(0), .users = {{U_ONLINE("ivy", "away", 1), .ls = LS_GT_MEMO, .memo = 3, .save = 5}}},
    {S_SLEEP(30)},
    {S_CLOSE(0, "s1"), .ev = {{E_OFFLINE("ivy", "s1"), .ls = LS_GT_MEMO, .memo = 4, .save = 6}}},
    {S_USERS(0), .users = {{U_OFFLINE("ivy"), .ls = LS_EQ_MEMO, .memo = 5}}},
    {.op = OP_END},
};

/* An invisible user: lastSeen stays at the moment they turned invisible, whatever they do, until
 * they are visible again; room events carry the status so that callers can keep them quiet. */
static const step invisible[] = {
    {S_OPEN(0, "s1", "vera"), .ev = {{E_ONLINE("vera", "s1", "online", NOMETA)}}},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("vera", "r"), .status = "online"}}},
    {S_SLEEP(30)},
    {S_STATUS(0, "s1", "invisible"), .ev = {{E_UPDATE("vera", "invisible", "online", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("vera", "invisible", 1), .save = 1}}},
    {S_SLEEP(30)},
    {S_TOUCH(0, "s1")},
    {S_JOIN(0, "s1", "r2"), .ev = {{E_JOIN("vera", "r2"), .status = "invisible"}}},
    {S_OPEN(0, "s2", "vera")},
    {S_STATUS(0, "s2", "invisible")},
    {S_CLOSE(0, "s2")},
    {S_USERS(0), .users = {{U_ONLINE("vera", "invisible", 1), .ls = LS_EQ_MEMO, .memo = 0}}},
    {S_SLEEP(30)},
    /* Visible again: lastSeen moves on. */
    {S_STATUS(0, "s1", "away"), .ev = {{E_UPDATE("vera", "away", "invisible", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("vera", "away", 1), .ls = LS_GT_MEMO, .memo = 0}}},
    {S_STATUS(0, "s1", "invisible"), .ev = {{E_UPDATE("vera", "invisible", "away", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("vera", "invisible", 1), .save = 2}}},
    {S_SLEEP(30)},
    /* Gone while invisible: the offline event and the record keep the frozen time. */
    {S_CLOSE(0, "s1"),
     .ev = {{E_LEAVE("vera", "r"), .status = "invisible"},
            {E_LEAVE("vera", "r2"), .status = "invisible"},
            {E_OFFLINE("vera", "s1"), .rooms = {"r", "r2"}, .ls = LS_EQ_MEMO, .memo = 1}}},
    {S_USERS(0), .users = {{U_OFFLINE("vera"), .ls = LS_EQ_MEMO, .memo = 1}}},
    {.op = OP_END},
};

static const step offline_grace[] = {
    {S_OPEN(0, "s1", "jack"), .status = "away", .ev = {{E_ONLINE("jack", "s1", "away", NOMETA)}}},
    /* A reload: the graceful close starts the grace window, the new socket cancels it. */
    {S_CLOSEG(0, "s1")},
    {S_OPEN(0, "s2", "jack")},
    {S_USERS(0), .users = {{U_ONLINE("jack", "away", 1)}}},
    /* Within the grace, a status given on open replaces the old one: update, not online. */
    {S_CLOSEG(0, "s2")},
    {S_OPEN(0, "s3", "jack"), .status = "busy", .ev = {{E_UPDATE("jack", "busy", "away", NOMETA)}}},
    /* A non-graceful close ignores the grace. */
    {S_CLOSE(0, "s3"), .ev = {{E_OFFLINE("jack", "s3")}}},
    {S_SLEEP(GRACE_MS * 2)},
    /* Nobody comes back: one offline event once the window has passed, not before. */
    {S_OPEN(0, "s4", "kim"), .ev = {{E_ONLINE("kim", "s4", "online", NOMETA)}}},
    {S_JOIN(0, "s4", "r"), .ev = {{E_JOIN("kim", "r")}}},
    {S_CLOSEG(0, "s4"), .ev = {{E_LEAVE("kim", "r")}}},
    {S_SLEEP(GRACE_MS / 2)},
    {S_WAIT(GRACE_MS + LEASE_MS + 1000), .ev = {{E_OFFLINE_ANY("kim", "s4")}}},
    {S_USERS(0), .users = {{U_OFFLINE("kim")}, {U_OFFLINE("jack")}}},
    {S_SLEEP(GRACE_MS * 2)},
    {.op = OP_END},
};

/* While in the grace window the user has no live socket, so queries read offline ("A user is
 * online iff they have at least one live socket"; "Queries apply this definition directly"),
 * though no offline event has been emitted yet. */
static const step grace_query[] = {
    {S_OPEN(0, "s1", "lou"), .status = "away", .ev = {{E_ONLINE("lou", "s1", "away", NOMETA)}}},
    {S_CLOSEG(0, "s1")},
    /* Inside the grace no offline event has gone out: the user still reads online, with no
     * socket (docs/presence-model.md, Liveness). */
    {S_USERS(0), .users = {{U_ONLINE("lou", "away", 0)}}},
    {S_WAIT(GRACE_MS + LEASE_MS + 1000), .ev = {{E_OFFLINE_ANY("lou", "s1")}}},
    {S_USERS(0), .users = {{U_OFFLINE("lou")}}},
    {.op = OP_END},
};

static const step socket_assert[] = {
    /* Re-registering after Redis lost its state: no events, the user reads online. */
    {S_ASSERT(0, "s1", "lena"), .status = "away", .meta = "{\"k\":1}", .rooms = {"r1", "r2"}},
    {S_USERS(0), .users = {{U_ONLINE("lena", "away", 1), .meta = "{\"k\":1}"}}},
    {S_ROOM(0, "r1"), .members = {"lena"}},
    {S_ROOM(0, "r2"), .members = {"lena"}},
    {S_OPEN(0, "s2", "lena")},
    {S_OPEN(0, "s3", "mia"), .status = "busy", .ev = {{E_ONLINE("mia", "s3", "busy", NOMETA)}}},
    /* A user with a record keeps its status and metadata. */
    {S_ASSERT(0, "s4", "mia"), .status = "away", .meta = "{\"z\":0}", .rooms = {"r1"}},
    {S_USERS(0), .users = {{U_ONLINE("lena", "away", 2), .meta = "{\"k\":1}"},
                           {U_ONLINE("mia", "busy", 2), .meta = NOMETA}}},
    {S_ROOM(0, "r1"), .members = {"lena", "mia"}},
    {S_CLOSE(0, "s1"), .ev = {{E_LEAVE("lena", "r1")}, {E_LEAVE("lena", "r2")}}},
    {S_CLOSE(0, "s2"), .ev = {{E_OFFLINE("lena", "s2")}}},
    {S_CLOSE(0, "s4"), .ev = {{E_LEAVE("mia", "r1")}}},
    {S_CLOSE(0, "s3"), .ev = {{E_OFFLINE("mia", "s3")}}},
    {.op = OP_END},
};

/* Shutdown closes every socket without grace (the scenario has one). */
static const step shutdown_all[] = {
    {S_OPEN(0, "s1", "nick"), .ev = {{E_ONLINE("nick", "s1", "online", NOMETA)}}},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("nick", "r")}}},
    {S_OPEN(0, "s2", "nick")},
    {S_OPEN(0, "s3", "olga"), .ev = {{E_ONLINE("olga", "s3", "online", NOMETA)}}},
    {S_SHUTDOWN(0),
     .ev = {{E_LEAVE("nick", "r")}, {E_OFFLINE_ANY("nick", NULL)}, {E_OFFLINE("olga", "s3")}}},
    {S_SLEEP(GRACE_MS * 2)},
    {.op = OP_END},
};

/* Every event carries the store time it was decided at and an id that orders it
 * ("Events"): checked on every event of this scenario, at every store that receives it. */
static void call_check_stamps(harness *h)
{
    size_t total = 0;
    for (int i = 0; i < h->nslots; i++)
        total += h->slots[i].nev;
    assert_true(total > 0);
    if (h->stamp_problem[0])
        fail_msg("%s", h->stamp_problem);
}

static const step event_stamps[] = {
    {S_OPEN(0, "s1", "rita"), .ev = {{E_ONLINE("rita", "s1", "online", NOMETA)}}},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("rita", "r")}}},
    {S_STATUS(0, "s1", "away"), .ev = {{E_UPDATE("rita", "away", "online", NOMETA)}}},
    {S_OPEN(0, "s2", "sam"), .ev = {{E_ONLINE("sam", "s2", "online", NOMETA)}}},
    {S_CLOSE(0, "s1"), .ev = {{E_LEAVE("rita", "r")}, {E_OFFLINE("rita", "s1"), .rooms = {"r"}}}},
    {S_CLOSE(0, "s2"), .ev = {{E_OFFLINE("sam", "s2")}}},
    {.op = OP_CALL, .call = call_check_stamps},
    {.op = OP_END},
};

/* Tricky-but-valid ids: separators, braces, spaces, UTF-8, 128 bytes, and ids that are
 * another id plus a suffix or look like a length prefix. Each is a user and a room at once. */
#define X16 "0123456789abcdef"
#define ID127 X16 X16 X16 X16 X16 X16 X16 "0123456789abcde"
#define GRIN "\xF0\x9F\x98\x80"
#define GRIN8 GRIN GRIN GRIN GRIN GRIN GRIN GRIN GRIN
static const char *const tricky_ids[] = {
    "u1",  "u1:sockets",    "u1}",     "{u1}",    "a:b", "a b",
    "{x}", "\xC3\xA9" GRIN, ID127 "f", ID127 "g", ID127, GRIN8 GRIN8 GRIN8 GRIN8,
    "1:u", "2:u1",
};
#define NTRICKY (sizeof(tricky_ids) / sizeof(tricky_ids[0]))

static void tricky_query(harness *h, size_t closed, const char *ctx)
{
    user_exp e[NTRICKY];
    char meta[NTRICKY][16];
    for (size_t i = 0; i < NTRICKY; i++) {
        snprintf(meta[i], sizeof(meta[i]), "{\"i\":%zu}", i);
        e[i] = (user_exp){.user = tricky_ids[i],
                          .known = true,
                          .online = i >= closed,
                          .status = i >= closed ? "online" : "offline",
                          .sockets = i >= closed ? 1 : 0,
                          .meta = i >= closed ? meta[i] : NULL};
    }
    query_users(h, 0, tricky_ids, NTRICKY, ctx);
    char why[1024];
    for (size_t i = 0; i < NTRICKY; i++)
        if (!user_matches(h, &e[i], &h->users[i], why, sizeof(why)))
            fail_msg("%s: row %zu: %s", ctx, i, why);
}

static void call_tricky_ids(harness *h)
{
    char sid[16], meta[16], ctx[64];
    for (size_t i = 0; i < NTRICKY; i++) {
        snprintf(sid, sizeof(sid), "x%zu", i);
        snprintf(meta, sizeof(meta), "{\"i\":%zu}", i);
        snprintf(ctx, sizeof(ctx), "open %s for tricky id %zu", sid, i);
        step st = {S_OPEN(0, sid, tricky_ids[i]), .meta = meta,
                   .ev = {{E_ONLINE(tricky_ids[i], sid, "online", meta)}}};
        run_step(h, &st, ctx);
        snprintf(ctx, sizeof(ctx), "join %s to tricky room %zu", sid, i);
        step join = {S_JOIN(0, sid, tricky_ids[i]), .ev = {{E_JOIN(tricky_ids[i], tricky_ids[i])}}};
        run_step(h, &join, ctx);
    }
    /* u1 gets a second socket in room "u1:sockets". */
    const step more[] = {
        {S_OPEN(0, "y0", "u1")},
        {S_JOIN(0, "y0", "u1:sockets"), .ev = {{E_JOIN("u1", "u1:sockets")}}},
    };
    run_step(h, &more[0], "open y0 for u1");
    run_step(h, &more[1], "join y0 to u1:sockets");
    query_users(h, 0, tricky_ids, 1, "query u1");
    if (h->users[0].sockets != 2)
        fail_msg("u1 has %u sockets, expected 2", h->users[0].sockets);
    for (size_t i = 0; i < NTRICKY; i++) {
        snprintf(ctx, sizeof(ctx), "room_query of tricky room %zu", i);
        step rq = {S_ROOM(0, tricky_ids[i]), .members = {tricky_ids[i], i == 1 ? "u1" : NULL}};
        run_step(h, &rq, ctx);
    }
    const step close_u1[] = {
        {S_CLOSE(0, "x0"), .ev = {{E_LEAVE("u1", "u1")}}},
        {S_USERS(0), .users = {{U_ONLINE("u1", "online", 1)}}},
        {S_CLOSE(0, "y0"),
         .ev = {{E_LEAVE("u1", "u1:sockets")}, {E_OFFLINE("u1", "y0"), .rooms = {"u1:sockets"}}}},
        {S_ROOM(0, "u1")},
        {S_ROOM(0, "u1:sockets"), .members = {"u1:sockets"}},
    };
    for (size_t i = 0; i < sizeof(close_u1) / sizeof(close_u1[0]); i++) {
        snprintf(ctx, sizeof(ctx), "closing u1, step %zu", i + 1);
        run_step(h, &close_u1[i], ctx);
    }
    tricky_query(h, 1, "query of every tricky id after u1 left");
    for (size_t i = 1; i < NTRICKY; i++) {
        snprintf(sid, sizeof(sid), "x%zu", i);
        snprintf(ctx, sizeof(ctx), "close %s of tricky id %zu", sid, i);
        step st = {S_CLOSE(0, sid),
                   .ev = {{E_LEAVE(tricky_ids[i], tricky_ids[i])},
                          {E_OFFLINE(tricky_ids[i], sid), .rooms = {tricky_ids[i]}}}};
        run_step(h, &st, ctx);
        snprintf(ctx, sizeof(ctx), "query after closing tricky id %zu", i);
        tricky_query(h, i + 1, ctx);
    }
}

static const step tricky_ids_steps[] = {
    {.op = OP_CALL, .call = call_tricky_ids},
    {.op = OP_END},
};

/* 1000 ids in one query, mixed known (online, offline) and unknown, asked in a scrambled
 * order: the answer comes in the order asked. */
#define MANY_IDS 1000
#define MANY_OPEN 60
#define MANY_STRIDE 16

static void call_users_many(harness *h)
{
    char sid[16], user[16], ctx[64];
    for (int k = 0; k < MANY_OPEN; k++) {
        snprintf(sid, sizeof(sid), "q%d", k);
        snprintf(user, sizeof(user), "m%d", k * MANY_STRIDE);
        snprintf(ctx, sizeof(ctx), "open %s for %s", sid, user);
        step st = {S_OPEN(0, sid, user), .ev = {{E_ONLINE(user, sid, "online", NOMETA)}}};
        run_step(h, &st, ctx);
    }
    const step extra = {S_OPEN(0, "q-extra", "m16")};
    run_step(h, &extra, "open a second socket for m16");
    for (int k = 0; k < MANY_OPEN; k += 3) {
        snprintf(sid, sizeof(sid), "q%d", k);
        snprintf(user, sizeof(user), "m%d", k * MANY_STRIDE);
        snprintf(ctx, sizeof(ctx), "close %s of %s", sid, user);
        step st = {S_CLOSE(0, sid), .ev = {{E_OFFLINE(user, sid)}}};
        run_step(h, &st, ctx);
    }
    char(*names)[8] = calloc(MANY_IDS, sizeof(*names));
    const char **ids = calloc(MANY_IDS, sizeof(*ids));
    h->scratch[0] = names;
    h->scratch[1] = ids;
    assert_non_null(names);
    assert_non_null(ids);
    for (int i = 0; i < MANY_IDS; i++) {
        snprintf(names[i], sizeof(names[i]), "m%d", (i * 379) % MANY_IDS);
        ids[i] = names[i];
    }
    query_users(h, 0, ids, MANY_IDS, "users_query of 1000 ids");
    char why[1024];
    for (int i = 0; i < MANY_IDS; i++) {
        int id = (i * 379) % MANY_IDS, k = id / MANY_STRIDE;
        bool known = id % MANY_STRIDE == 0 && k < MANY_OPEN;
        bool online = known && k % 3 != 0;
        user_exp e = {.user = ids[i],
                      .known = known,
                      .online = online,
                      .status = online ? "online" : "offline",
                      .sockets = online ? (id == 16 ? 2 : 1) : 0};
        if (!user_matches(h, &e, &h->users[i], why, sizeof(why)))
            fail_msg("users_query of 1000 ids, row %d: %s", i, why);
    }
    run_step(h, &(const step){S_CLOSE(0, "q-extra")}, "close m16's second socket");
    for (int k = 1; k < MANY_OPEN; k++) {
        if (k % 3 == 0)
            continue;
        snprintf(sid, sizeof(sid), "q%d", k);
        snprintf(user, sizeof(user), "m%d", k * MANY_STRIDE);
        snprintf(ctx, sizeof(ctx), "close %s of %s", sid, user);
        step st = {S_CLOSE(0, sid), .ev = {{E_OFFLINE(user, sid)}}};
        run_step(h, &st, ctx);
    }
}

static const step users_many[] = {
    {.op = OP_CALL, .call = call_users_many},
    {.op = OP_END},
};

/* ---- the HTTP API's reads and commands (docs/http-api.md) ---- */

typedef struct api_res {
    bool done;
    int err;
    bool known, online;
    uint32_t sockets;
    char *strings[8];
    size_t n, total;
    char next[160];
    store_stats stats;
    char ids[64][48];
    int types[64];
} api_res;

static void api_res_clear(api_res *r)
{
    for (size_t i = 0; i < 8; i++)
        free(r->strings[i]);
    memset(r, 0, sizeof(*r));
}

static void on_api_user(int err, const store_user *u, const char *const *sids, size_t n, void *ud)
{
    api_res *r = ud;
    r->done = true;
    r->err = err;
    if (err)
        return;
    r->known = u->known;
    r->online = u->online;
    r->sockets = u->sockets;
    r->n = n;
    for (size_t i = 0; i < n && i < 8; i++)
        r->strings[i] = strdup(sids[i]);
}

static void on_api_page(int err, const char *const *users, size_t n, size_t total, const char *next,
                        void *ud)
{
    api_res *r = ud;
    r->done = true;
    r->err = err;
    r->n = n;
    r->total = total;
    snprintf(r->next, sizeof(r->next), "%s", next ? next : "(null)");
    for (size_t i = 0; i < n && i < 8; i++)
        r->strings[i] = strdup(users[i]);
}

/* What stats count for one room whose members are `users`: 1, and on a cluster one per partition
 * that holds members of it (docs/redis-schema.md, "Redis Cluster"). */
static uint64_t rooms_counted(const char *const *users, size_t n)
{
    bool seen[REDIS_PARTITIONS_MAX] = {false};
    uint64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned p = redis_partition_of(users[i], strlen(users[i]), cfg.partitions);
        count += !seen[p];
        seen[p] = true;
    }
    return count;
}

static void on_api_stats(int err, const store_stats *st, void *ud)
{
    api_res *r = ud;
    r->done = true;
    r->err = err;
    if (!err)
        r->stats = *st;
}

static void on_api_events(int err, const pres_event *evs, size_t n, void *ud)
{
    api_res *r = ud;
    r->done = true;
    r->err = err;
    r->n = n;
    for (size_t i = 0; i < n && i < 64; i++) {
        snprintf(r->ids[i], sizeof(r->ids[i]), "%s", evs[i].id);
        r->types[i] = (int)evs[i].type;
    }
}

static void on_api_done(int err, void *ud)
{
    api_res *r = ud;
    r->done = true;
    r->err = err;
}

static void api_wait(harness *h, api_res *r, const char *ctx)
{
    uint64_t end = mono_ms() + OP_TIMEOUT_MS;
    while (!r->done) {
        if (mono_ms() >= end)
            fail_msg("%s: no callback within %d ms", ctx, OP_TIMEOUT_MS);
        pump(h);
    }
}

static void expect_page(harness *h, const char *cursor, size_t limit, size_t total,
                        const char *const *want, size_t nwant, const char *next)
{
    api_res r = {0};
    char ctx[96];
    snprintf(ctx, sizeof(ctx), "room_page(hall, \"%s\", %zu)", cursor, limit);
    store_room_page(h->slots[0].st, "hall", cursor, limit, on_api_page, &r);
    api_wait(h, &r, ctx);
    if (r.err || r.total != total || r.n != nwant || strcmp(r.next, next) != 0)
        fail_msg("%s: err=%d total=%zu n=%zu next=\"%s\", want total=%zu n=%zu next=\"%s\"", ctx,
                 r.err, r.total, r.n, r.next, total, nwant, next);
    for (size_t i = 0; i < nwant; i++)
        if (strcmp(r.strings[i], want[i]) != 0)
            fail_msg("%s: member %zu is %s, want %s", ctx, i, r.strings[i], want[i]);
    api_res_clear(&r);
}

static void call_api_reads(harness *h)
{
    store *st = h->slots[0].st;
    api_res r = {0};
    char s1[SID_LEN + 1], s2[SID_LEN + 1];
    sid_of("s1", s1);
    sid_of("s2", s2);

    store_user_get(st, "ann", on_api_user, &r);
    api_wait(h, &r, "user_get(ann)");
    if (r.err || !r.known || !r.online || r.sockets != 2 || r.n != 2 ||
        strcmp(r.strings[0], s1) != 0 || strcmp(r.strings[1], s2) != 0)
        fail_msg("user_get(ann): err=%d known=%d online=%d sockets=%u n=%zu", r.err, r.known,
                 r.online, r.sockets, r.n);
    api_res_clear(&r);
    store_user_get(st, "nobody", on_api_user, &r);
    api_wait(h, &r, "user_get(nobody)");
    if (r.err || r.known || r.online || r.n != 0)
        fail_msg("user_get(nobody): err=%d known=%d n=%zu", r.err, r.known, r.n);
    api_res_clear(&r);

    const char *all[] = {"ann", "ben", "cat"};
    expect_page(h, "", 2, 3, all, 2, "ben");
    expect_page(h, "ben", 2, 3, all + 2, 1, "");
    expect_page(h, "cat", 2, 3, NULL, 0, "");
    expect_page(h, "", 10, 3, all, 3, "");
    expect_page(h, "", 3, 3, all, 3, "cat");

    store_stats_get(st, on_api_stats, &r);
    api_wait(h, &r, "stats");
    if (r.err || r.stats.users_online != 3 || r.stats.sockets != 4 ||
        r.stats.rooms != rooms_counted(all, 3) || r.stats.instances != 1)
        fail_msg("stats: err=%d users=%llu sockets=%llu rooms=%llu instances=%llu", r.err,
                 (unsigned long long)r.stats.users_online, (unsigned long long)r.stats.sockets,
                 (unsigned long long)r.stats.rooms, (unsigned long long)r.stats.instances);
    api_res_clear(&r);

    /* Resume: the events after the first one are exactly the others, in order. */
    slot *sl = &h->slots[0];
    assert_true(sl->nev >= 4);
    store_events_since(st, sl->ev[0].id, 100, on_api_events, &r);
    api_wait(h, &r, "events_since(first)");
    if (r.err || r.n != sl->nev - 1)
        fail_msg("events_since(first): err=%d n=%zu want %zu", r.err, r.n, sl->nev - 1);
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.ids[i], sl->ev[i + 1].id) != 0 || r.types[i] != (int)sl->ev[i + 1].type)
            fail_msg("events_since(first): event %zu is %s, want %s", i, r.ids[i],
                     sl->ev[i + 1].id);
    api_res_clear(&r);
    store_events_since(st, sl->ev[1].id, 2, on_api_events, &r);
    api_wait(h, &r, "events_since(second, max 2)");
    if (r.err || r.n != 2 || strcmp(r.ids[0], sl->ev[2].id) != 0)
        fail_msg("events_since(second, 2): err=%d n=%zu", r.err, r.n);
    api_res_clear(&r);
    store_events_since(st, sl->ev[sl->nev - 1].id, 100, on_api_events, &r);
    api_wait(h, &r, "events_since(last)");
    if (r.err || r.n != 0)
        fail_msg("events_since(last): err=%d n=%zu", r.err, r.n);
    api_res_clear(&r);
    /* Older than what is kept (Redis), or of an earlier generation (the memory store of an
     * earlier run: a reset, with this generation's events from its start). */
    store_events_since(st, "1-0", 100, on_api_events, &r);
    api_wait(h, &r, "events_since(too old)");
    if (cfg.redis ? r.err != STORE_ERR_GONE
                  : r.err != STORE_ERR_RESET || r.n != sl->nev || strcmp(r.ids[0], sl->ev[0].id))
        fail_msg("events_since(1-0): err=%d n=%zu, want %s", r.err, r.n,
                 cfg.redis ? "STORE_ERR_GONE" : "STORE_ERR_RESET with every event");
    api_res_clear(&r);
    if (cfg.redis)
        return;
    /* Ahead of the store's events: not one of its ids. */
    char ahead[64];
    snprintf(ahead, sizeof(ahead), "%.*s-999999", (int)strcspn(sl->ev[0].id, "-"), sl->ev[0].id);
    store_events_since(st, ahead, 100, on_api_events, &r);
    api_wait(h, &r, "events_since(ahead)");
    if (r.err != STORE_ERR_FOREIGN)
        fail_msg("events_since(%s): err=%d, want STORE_ERR_FOREIGN", ahead, r.err);
    api_res_clear(&r);
}

/* Webhook delivery: the queue starts when the store does (before it is available), so it holds
 * every event so far (the Redis store's stream begins with its generation's reset); a batch comes
 * back until acknowledged. */
static void call_api_deliver(harness *h)
{
    store *st = h->slots[0].st;
    api_res r = {0};
    store_deliver_read(st, 10, 5000, on_api_events, &r);
    api_wait(h, &r, "deliver_read (start)");
    /* A reset per partition (a Redis Cluster's batch is every partition's, one after another),
     * then the six presence events, in order where they are in one stream. */
    size_t first = cfg.redis ? (size_t)cfg.partitions : 0, resets = 0;
    int types[16] = {0};
    size_t m = 0;
    for (size_t i = 0; i < r.n && i < 16; i++) {
        if (r.types[i] == PRES_EV_RESET)
            resets++;
        else
            types[m++] = r.types[i];
    }
    bool ordered =
        cfg.partitions > 1 || ((!cfg.redis || r.types[0] == PRES_EV_RESET) &&
                               types[0] == PRES_EV_ONLINE && types[5] == PRES_EV_ROOM_JOIN);
    if (r.err || r.n != first + 6 || resets != first || m != 6 || !ordered)
        fail_msg("first deliver_read: err=%d n=%zu resets=%zu, want every event since the store "
                 "began",
                 r.err, r.n, resets);
    const char *start[16];
    for (size_t i = 0; i < r.n; i++)
        start[i] = r.ids[i];
    api_res a0 = {0};
    store_deliver_ack(st, start, r.n, on_api_done, &a0);
    api_wait(h, &a0, "deliver_ack (start)");
    if (a0.err)
        fail_msg("deliver_ack (start): err=%d", a0.err);
    api_res_clear(&r);
    run_step(h,
             &(const step){S_STATUS(0, "s3", "busy"),
                           .ev = {{E_UPDATE("ben", "busy", "online", NOMETA)}}},
             "status change to deliver");
    run_step(h, &(const step){S_LEAVE(0, "s3", "hall"), .ev = {{E_LEAVE("ben", "hall")}}},
             "room leave to deliver");
    for (int round = 0; round < 2; round++) {
        store_deliver_read(st, 10, 5000, on_api_events, &r);
        api_wait(h, &r, "deliver_read");
        if (r.err || r.n != 2 || r.types[0] != PRES_EV_UPDATE || r.types[1] != PRES_EV_ROOM_LEAVE)
            fail_msg("deliver_read round %d: err=%d n=%zu", round, r.err, r.n);
        if (round == 0)
            api_res_clear(&r);
    }
    const char *ids[] = {r.ids[0], r.ids[1]};
    api_res a = {0};
    store_deliver_ack(st, ids, 2, on_api_done, &a);
    api_wait(h, &a, "deliver_ack");
    if (a.err)
        fail_msg("deliver_ack: err=%d", a.err);
    api_res_clear(&r);
    store_deliver_read(st, 10, 5000, on_api_events, &r);
    api_wait(h, &r, "deliver_read after ack");
    if (r.err || r.n != 0)
        fail_msg("deliver_read after ack: err=%d n=%zu, want nothing", r.err, r.n);
    api_res_clear(&r);
}

/* Disconnect: a control event that every instance receives. */
static void call_api_disconnect(harness *h)
{
    api_res r = {0};
    size_t before[MAX_STORES];
    for (int i = 0; i < h->nslots; i++)
        before[i] = h->slots[i].nev;
    store_user_disconnect(h->slots[0].st, "ann", on_api_done, &r);
    api_wait(h, &r, "user_disconnect(ann)");
    if (r.err)
        fail_msg("user_disconnect: err=%d", r.err);
    uint64_t end = mono_ms() + EVENT_TIMEOUT_MS;
    for (int i = 0; i < h->nslots; i++) {
        slot *sl = &h->slots[i];
        while (sl->nev == before[i] && mono_ms() < end)
            pump(h);
        if (sl->nev != before[i] + 1 || sl->ev[before[i]].type != PRES_EV_DISCONNECT ||
            strcmp(sl->ev[before[i]].user, "ann") != 0)
            fail_msg("store %d: want one disconnect event for ann, got %zu events", i,
                     sl->nev - before[i]);
        sl->seen = sl->nev;
    }
}

static const step api_reads[] = {
    {S_OPEN(0, "s1", "ann"), .ev = {{E_ONLINE("ann", "s1", "online", NOMETA)}}},
    {S_OPEN(0, "s2", "ann")},
    {S_OPEN(0, "s3", "ben"), .ev = {{E_ONLINE("ben", "s3", "online", NOMETA)}}},
    {S_OPEN(0, "s4", "cat"), .ev = {{E_ONLINE("cat", "s4", "online", NOMETA)}}},
    {S_JOIN(0, "s1", "hall"), .ev = {{E_JOIN("ann", "hall")}}},
    {S_JOIN(0, "s2", "hall")},
    {S_JOIN(0, "s3", "hall"), .ev = {{E_JOIN("ben", "hall")}}},
    {S_JOIN(0, "s4", "hall"), .ev = {{E_JOIN("cat", "hall")}}},
    {.op = OP_CALL, .call = call_api_reads},
    {.op = OP_CALL, .call = call_api_deliver},
    {.op = OP_CALL, .call = call_api_disconnect},
    {S_CLOSE(0, "s1")},
    {S_CLOSE(0, "s2"),
     .ev = {{E_LEAVE("ann", "hall")}, {E_OFFLINE("ann", "s2"), .rooms = {"hall"}}}},
    {S_CLOSE(0, "s3"), .ev = {{E_OFFLINE("ben", "s3")}}},
    {S_CLOSE(0, "s4"),
     .ev = {{E_LEAVE("cat", "hall")}, {E_OFFLINE("cat", "s4"), .rooms = {"hall"}}}},
    {.op = OP_END},
};

/* Cluster-wide counts and the disconnect command reach both instances. */
static void call_api_cluster(harness *h)
{
    const char *hall[] = {"ben"};
    api_res r = {0};
    for (int i = 0; i < 2; i++) {
        store_stats_get(h->slots[i].st, on_api_stats, &r);
        api_wait(h, &r, "stats");
        if (r.err || r.stats.users_online != 2 || r.stats.sockets != 3 ||
            r.stats.rooms != rooms_counted(hall, 1) || r.stats.instances != 2)
            fail_msg("stats at store %d: users=%llu sockets=%llu rooms=%llu instances=%llu", i,
                     (unsigned long long)r.stats.users_online, (unsigned long long)r.stats.sockets,
                     (unsigned long long)r.stats.rooms, (unsigned long long)r.stats.instances);
        api_res_clear(&r);
    }
    store_user_get(h->slots[1].st, "ann", on_api_user, &r);
    api_wait(h, &r, "user_get(ann) at store 1");
    if (r.err || r.sockets != 2 || r.n != 2)
        fail_msg("user_get(ann) at store 1: sockets=%u n=%zu", r.sockets, r.n);
    api_res_clear(&r);
    call_api_disconnect(h);
}

static const step api_cluster[] = {
    {S_OPEN(0, "a1", "ann"), .ev = {{E_ONLINE("ann", "a1", "online", NOMETA)}}},
    {S_OPEN(1, "b1", "ann")},
    {S_OPEN(1, "b2", "ben"), .ev = {{E_ONLINE("ben", "b2", "online", NOMETA)}}},
    {S_JOIN(1, "b2", "hall"), .ev = {{E_JOIN("ben", "hall")}}},
    {.op = OP_CALL, .call = call_api_cluster},
    {S_CLOSE(0, "a1")},
    {S_CLOSE(1, "b1"), .ev = {{E_OFFLINE("ann", "b1")}}},
    {S_CLOSE(1, "b2"),
     .ev = {{E_LEAVE("ben", "hall")}, {E_OFFLINE("ben", "b2"), .rooms = {"hall"}}}},
    {.op = OP_END},
};

/* Two instances on one Redis: presence is cluster-wide, and each sees the other's events
 * (every step's events are checked at both stores). */
static const step two_instances[] = {
    {S_OPEN(0, "a1", "pat"), .ev = {{E_ONLINE("pat", "a1", "online", NOMETA)}}},
    {S_OPEN(1, "b1", "pat")},
    {S_USERS(0), .users = {{U_ONLINE("pat", "online", 2)}}},
    {S_USERS(1), .users = {{U_ONLINE("pat", "online", 2)}}},
    {S_CLOSE(0, "a1")},
    {S_USERS(1), .users = {{U_ONLINE("pat", "online", 1)}}},
    {S_JOIN(1, "b1", "r"), .ev = {{E_JOIN("pat", "r")}}},
    {S_ROOM(0, "r"), .members = {"pat"}},
    {S_OPEN(0, "a2", "quin"), .ev = {{E_ONLINE("quin", "a2", "online", NOMETA)}}},
    {S_STATUS(0, "a2", "away"), .ev = {{E_UPDATE("quin", "away", "online", NOMETA)}}},
    {S_OPEN(1, "b2", "quin")},
    {S_CLOSE(1, "b2")},
    /* Store 0 leaves the cluster: its sockets close, pat's socket on store 1 keeps pat. */
    {S_SHUTDOWN(0), .unobserve = true, .ev = {{E_OFFLINE("quin", "a2")}}},
    {S_USERS(1), .users = {{U_ONLINE("pat", "online", 1)}, {U_OFFLINE("quin")}}},
    {S_CLOSE(1, "b1"), .ev = {{E_LEAVE("pat", "r")}, {E_OFFLINE("pat", "b1"), .rooms = {"r"}}}},
    {.op = OP_CALL, .call = call_check_stamps},
    {.op = OP_END},
};

/* Instance 2 dies with sockets open; instances 0 and 1 live on. Its sockets stop counting when
 * its lease expires, and exactly one of the survivors reaps them: each survivor receives one
 * set of events. */
static const step lease_expiry[] = {
    {S_OPEN(2, "b1", "k1"), .ev = {{E_ONLINE("k1", "b1", "online", NOMETA)}}},
    {S_OPEN(2, "b2", "k1")},
    {S_OPEN(2, "b3", "k2"), .ev = {{E_ONLINE("k2", "b3", "online", NOMETA)}}},
    {S_JOIN(2, "b3", "kr"), .ev = {{E_JOIN("k2", "kr")}}},
    {S_OPEN(2, "b4", "k3"), .ev = {{E_ONLINE("k3", "b4", "online", NOMETA)}}},
    {S_OPEN(0, "a1", "k3")},
    {S_USERS(0), .users = {{U_ONLINE("k1", "online", 2)},
                           {U_ONLINE("k2", "online", 1)},
                           {U_ONLINE("k3", "online", 2)}}},
    {.op = OP_KILL, .on = 2},
    /* The reap comes within the lease plus one tick of a survivor (a third of its lease). */
    {.op = OP_LEASE_WATCH,
     .on = 0,
     .ms = LEASE_MS / 3 + 1500,
     .users = {{U_OFFLINE("k1")}, {U_OFFLINE("k2")}, {U_ONLINE("k3", "online", 1)}},
     .ev = {{E_LEAVE("k2", "kr")},
            {E_OFFLINE_ANY("k1", NULL)},
            {E_OFFLINE("k2", "b3"), .rooms = {"kr"}}}},
    {S_USERS(1), .users = {{U_OFFLINE("k1")}, {U_OFFLINE("k2")}, {U_ONLINE("k3", "online", 1)}}},
    {S_ROOM(1, "kr")},
    {S_CLOSE(0, "a1"), .ev = {{E_OFFLINE("k3", "a1")}}},
    {.op = OP_END},
};

/* ---- reconciliation (docs/presence-model.md, "Reconciliation") ---- */

#define S_FAULT(n, f) .op = OP_FAULT, .on = (n), .fault = (f)
#define S_DELAY(n, t) .op = OP_FAULT, .on = (n), .fault = FAULT_DELAY, .ms = (t)

/* The owner's truth and the store disagree; store_reconcile() makes the store agree, with the
 * events of the difference, once. */
static const step reconcile_truth[] = {
    {S_OPEN(0, "a1", "rc-a"), .ev = {{E_ONLINE("rc-a", "a1", "online", NOMETA)}}},
    {S_JOIN(0, "a1", "r1"), .ev = {{E_JOIN("rc-a", "r1")}}},
    {S_OPEN(0, "a2", "rc-a")},
    {S_OPEN(0, "b1", "rc-b"), .ev = {{E_ONLINE("rc-b", "b1", "online", NOMETA)}}},
    {S_JOIN(0, "b1", "r2"), .ev = {{E_JOIN("rc-b", "r2")}}},
    {.op = OP_TRUTH_DROP, .sid = "a2"},
    {.op = OP_TRUTH_DROP, .sid = "b1"},
    {.op = OP_TRUTH_ROOM, .sid = "a1", .room = "r1", .in = false},
    {.op = OP_TRUTH_ROOM, .sid = "a1", .room = "r3", .in = true},
    {.op = OP_TRUTH_ADD, .sid = "c1", .user = "rc-c", .status = "away", .rooms = {"r1"}},
    {.op = OP_RECONCILE,
     .ev = {{E_LEAVE("rc-b", "r2")},
            {E_OFFLINE("rc-b", "b1"), .rooms = {"r2"}},
            {E_LEAVE("rc-a", "r1")},
            {E_JOIN("rc-a", "r3")},
            /* Whether the online event already names r1 differs between the stores. */
            {.type = PRES_EV_ONLINE, .user = "rc-c", .socket = "c1", .status = "away"},
            {E_JOIN("rc-c", "r1")}}},
    {S_USERS(0), .users = {{U_ONLINE("rc-a", "online", 1)},
                           {U_OFFLINE("rc-b")},
                           {U_ONLINE("rc-c", "away", 1)}}},
    {S_ROOM(0, "r1"), .members = {"rc-c"}},
    {S_ROOM(0, "r3"), .members = {"rc-a"}},
    {S_ROOM(0, "r2")},
    /* Again: nothing left to change. */
    {.op = OP_RECONCILE},
    {S_CLOSE(0, "a1"), .ev = {{E_LEAVE("rc-a", "r3")}, {E_OFFLINE("rc-a", "a1"), .rooms = {"r3"}}}},
    {S_CLOSE(0, "c1"), .ev = {{E_LEAVE("rc-c", "r1")}, {E_OFFLINE("rc-c", "c1"), .rooms = {"r1"}}}},
    {.op = OP_END},
};

/* A close sent while the store's Redis connection is stalled (kept open, bytes held): the
 * supervisor gives up on the connection, and the close never reaches Redis (the held bytes are
 * lost with the connection). After the stall the user goes offline, once: no ghost. */
static const step close_lost[] = {
    {S_OPEN(0, "s1", "cl-a"), .ev = {{E_ONLINE("cl-a", "s1", "online", NOMETA)}}},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("cl-a", "r")}}},
    {S_FAULT(0, FAULT_STALL)},
    {S_CLOSE(0, "s1"), .any_err = true, .later = true},
    {S_FAULT(0, FAULT_CUT), .later = true},
    {S_FAULT(0, FAULT_PASS), .later = true},
    {S_WAIT(12000), .ev = {{E_LEAVE("cl-a", "r")}, {E_OFFLINE("cl-a", "s1"), .rooms = {"r"}}}},
    {S_USERS(1), .users = {{U_OFFLINE("cl-a")}}},
    {S_ROOM(1, "r")},
    {.op = OP_END},
};

/* presence:identify whose reply is lost: the socket was registered (online went out) but its
 * owner took the failure and forgot it; reconciliation closes it (offline, once). */
static const step identify_lost[] = {
    {S_FAULT(0, FAULT_HOLD_REPLIES)},
    {S_OPEN(0, "s1", "il-b"), .forget = true, .any_err = true, .later = true},
    {S_FAULT(0, FAULT_PASS), .later = true},
    {S_WAIT(12000),
     .ev = {{E_ONLINE("il-b", "s1", "online", NOMETA)}, {E_OFFLINE("il-b", "s1"), .rooms = {}}}},
    {S_USERS(1), .users = {{U_OFFLINE("il-b")}}},
    {.op = OP_END},
};

/* A join and a leave whose replies are lost: the owner undid the join and kept the leave;
 * reconciliation leaves the room the join entered, once. */
static const step join_leave_lost[] = {
    {S_OPEN(0, "s1", "jl-c"), .ev = {{E_ONLINE("jl-c", "s1", "online", NOMETA)}}},
    {S_JOIN(0, "s1", "keep"), .ev = {{E_JOIN("jl-c", "keep")}}},
    {S_JOIN(0, "s1", "gone"), .ev = {{E_JOIN("jl-c", "gone")}}},
    {S_FAULT(0, FAULT_HOLD_REPLIES)},
    {S_JOIN(0, "s1", "lost"), .any_err = true, .later = true},
    {S_LEAVE(0, "s1", "gone"), .any_err = true, .later = true},
    {S_FAULT(0, FAULT_PASS), .later = true},
    {S_WAIT(12000),
     .ev = {{E_JOIN("jl-c", "lost")}, {E_LEAVE("jl-c", "lost")}, {E_LEAVE("jl-c", "gone")}}},
    {S_ROOM(1, "keep"), .members = {"jl-c"}},
    {S_ROOM(1, "lost")},
    {S_ROOM(1, "gone")},
    {S_CLOSE(0, "s1"),
     .ev = {{E_LEAVE("jl-c", "keep")}, {E_OFFLINE("jl-c", "s1"), .rooms = {"keep"}}}},
    {.op = OP_END},
};

/* A slow Redis that keeps answering is not declared dead (docs/operations.md, "Slow or dead").
 * Store 0's proxy delays each way more at every step: round trips of 1.4 s, 2.6 s, then 3.4 s,
 * longer than the 3 s after which a Redis that had been answering promptly is given up. Having
 * seen it end silences of 2.6 s, the store waits three times that: through the slow step
 * (state changes, and PINGs alone while it sleeps) no connection is dropped. A drop would show:
 * the reconnection's handshake would time out as well, and the last join would fail with
 * store_unavailable. */
static const step slow_alive[] = {
    {S_DELAY(0, 700)},
    {S_OPEN(0, "s1", "sa-a"), .ev = {{E_ONLINE("sa-a", "s1", "online", NOMETA)}}},
    {S_DELAY(0, 1300)},
    {S_JOIN(0, "s1", "r"), .ev = {{E_JOIN("sa-a", "r")}}},
    {S_DELAY(0, 1700)},
    {S_OPEN(0, "s2", "sa-b"), .ev = {{E_ONLINE("sa-b", "s2", "online", NOMETA)}}},
    {S_SLEEP(4000)},
    {S_JOIN(0, "s2", "r"), .ev = {{E_JOIN("sa-b", "r")}}},
    {S_FAULT(0, FAULT_PASS)},
    {S_USERS(1), .users = {{U_ONLINE("sa-a", "online", 1)}, {U_ONLINE("sa-b", "online", 1)}}},
    {S_ROOM(1, "r"), .members = {"sa-a", "sa-b"}},
    {S_CLOSE(0, "s1"), .ev = {{E_LEAVE("sa-a", "r")}, {E_OFFLINE("sa-a", "s1"), .rooms = {"r"}}}},
    {S_CLOSE(0, "s2"), .ev = {{E_LEAVE("sa-b", "r")}, {E_OFFLINE("sa-b", "s2"), .rooms = {"r"}}}},
    {.op = OP_END},
};

/* A user closes a socket on store 1 and comes back on store 0 within the grace, but store 0's
 * registration reaches Redis only long after the deadline (its proxy delays what it sends, as a
 * long queue would in a reconnect storm). Store 1's ticks (every 500 ms) must not fire the
 * deadline meanwhile: no offline and no online go out, and the user reads online once the
 * registration lands. A later departure still goes offline after the grace. */
static const step grace_backlog[] = {
    {S_OPEN(1, "s1", "gb-a"), .ev = {{E_ONLINE("gb-a", "s1", "online", NOMETA)}}},
    /* Each way: the open's reply comes after 2.4 s, before store 0 gives up its connection
     * (3 s without a reply); the open lands 1.2 s after the close, past the deadline (0.3 s)
     * and at least one tick of store 1. */
    {S_DELAY(0, 1200)},
    {S_CLOSEG(1, "s1")},
    {S_OPEN(0, "s2", "gb-a")},
    {S_FAULT(0, FAULT_PASS)},
    {S_SLEEP(LEASE_MS / 3)},
    {S_USERS(1), .users = {{U_ONLINE("gb-a", "online", 1)}}},
    {S_CLOSEG(0, "s2")},
    {S_WAIT(GRACE_MS + 2 * LEASE_MS + 1000), .ev = {{E_OFFLINE_ANY("gb-a", "s2")}}},
    {.op = OP_END},
};

/* Store 1 is cut off from Redis past its lease while its sockets live on: store 0 reaps them
 * (rb-d goes offline; rb-e, online through store 0 too, only leaves q). When store 1 is back,
 * reconciliation announces them back: rb-d online and in r again, rb-e in q again. */
static const step reaped_and_back[] = {
    {S_OPEN(1, "d1", "rb-d"), .ev = {{E_ONLINE("rb-d", "d1", "online", NOMETA)}}},
    {S_JOIN(1, "d1", "r"), .ev = {{E_JOIN("rb-d", "r")}}},
    {S_OPEN(0, "e0", "rb-e"), .ev = {{E_ONLINE("rb-e", "e0", "online", NOMETA)}}},
    {S_OPEN(1, "e1", "rb-e")},
    {S_JOIN(1, "e1", "q"), .ev = {{E_JOIN("rb-e", "q")}}},
    {S_FAULT(1, FAULT_CUT), .later = true},
    {S_SLEEP(LEASE_MS + LEASE_MS / 3 + 1500), .later = true},
    {S_USERS(0), .later = true, .users = {{U_OFFLINE("rb-d")}, {U_ONLINE("rb-e", "online", 1)}}},
    {S_FAULT(1, FAULT_PASS), .later = true},
    {S_WAIT(15000), .ev = {{E_LEAVE("rb-d", "r")},
                           {E_OFFLINE("rb-d", "d1"), .rooms = {"r"}},
                           {E_LEAVE("rb-e", "q")},
                           {E_ONLINE("rb-d", "d1", "online", NOMETA), .rooms = {"r"}},
                           {E_JOIN("rb-d", "r")},
                           {E_JOIN("rb-e", "q")}}},
    {S_USERS(0), .users = {{U_ONLINE("rb-d", "online", 1)}, {U_ONLINE("rb-e", "online", 2)}}},
    {S_ROOM(0, "r"), .members = {"rb-d"}},
    {S_ROOM(0, "q"), .members = {"rb-e"}},
    {S_CLOSE(1, "d1"), .ev = {{E_LEAVE("rb-d", "r")}, {E_OFFLINE("rb-d", "d1"), .rooms = {"r"}}}},
    {S_CLOSE(1, "e1"), .ev = {{E_LEAVE("rb-e", "q")}}},
    {S_CLOSE(0, "e0"), .ev = {{E_OFFLINE("rb-e", "e0")}}},
    {.op = OP_END},
};

/* Redis stops while a close, an open and a leave happen (they fail; the owner goes on), then
 * restarts with its data (every data node saved it as it stopped): reconciliation announces
 * exactly what changed meanwhile. */
static const step restart_data[] = {
    {S_OPEN(0, "a1", "rr-a"), .ev = {{E_ONLINE("rr-a", "a1", "online", NOMETA)}}},
    {S_JOIN(0, "a1", "r"), .ev = {{E_JOIN("rr-a", "r")}}},
    {S_OPEN(0, "b1", "rr-b"), .ev = {{E_ONLINE("rr-b", "b1", "online", NOMETA)}}},
    {.op = OP_REDIS_STOP, .later = true},
    {S_CLOSE(0, "b1"), .any_err = true, .later = true},
    {S_OPEN(0, "c1", "rr-c"), .keep = true, .any_err = true, .later = true},
    {S_LEAVE(0, "a1", "r"), .any_err = true, .later = true},
    {.op = OP_REDIS_START, .later = true},
    {S_WAIT(15000), .ev = {{E_OFFLINE("rr-b", "b1")},
                           {E_ONLINE("rr-c", "c1", "online", NOMETA)},
                           {E_LEAVE("rr-a", "r")}}},
    {S_USERS(0), .users = {{U_ONLINE("rr-a", "online", 1)},
                           {U_OFFLINE("rr-b")},
                           {U_ONLINE("rr-c", "online", 1)}}},
    {S_ROOM(0, "r")},
    {S_CLOSE(0, "a1"), .ev = {{E_OFFLINE("rr-a", "a1")}}},
    {S_CLOSE(0, "c1"), .ev = {{E_OFFLINE("rr-c", "c1")}}},
    {.op = OP_END},
};

/* The same with Redis restarted empty (docs/presence-model.md, "Redis lost its data"): nothing
 * can tell what observers were told, so a new generation begins. Every store delivers its reset
 * first, then each store registers its live sockets as fresh opens, with their events: a user
 * with sockets on both stores comes online once, from whichever registers first; status,
 * metadata and rooms come from the owners' truth; what changed during the outage (b1 closed, a1
 * left r, e1 opened) is simply how things are in the new generation. */
static const step restart_empty[] = {
    {S_OPEN(0, "a1", "re-a"), .ev = {{E_ONLINE("re-a", "a1", "online", NOMETA)}}},
    {S_JOIN(0, "a1", "r"), .ev = {{E_JOIN("re-a", "r")}}},
    {S_OPEN(0, "b1", "re-b"), .ev = {{E_ONLINE("re-b", "b1", "online", NOMETA)}}},
    {S_OPEN(1, "c1", "re-a")},
    {S_OPEN(1, "d1", "re-d"), .status = "away", .meta = "{\"k\":2}",
     .ev = {{E_ONLINE("re-d", "d1", "away", "{\"k\":2}")}}},
    {S_JOIN(1, "d1", "q"), .ev = {{E_JOIN("re-d", "q")}}},
    {.op = OP_REDIS_STOP, .later = true},
    {S_CLOSE(0, "b1"), .any_err = true, .later = true},
    {S_LEAVE(0, "a1", "r"), .any_err = true, .later = true},
    {S_OPEN(0, "e1", "re-e"), .keep = true, .any_err = true, .later = true},
    {.op = OP_REDIS_START, .empty = true, .later = true},
    {S_WAIT(15000), .ev = {{E_RESET},
                           {E_ONLINE("re-a", NULL, "online", NOMETA)},
                           {E_ONLINE("re-d", "d1", "away", "{\"k\":2}"), .rooms = {"q"}},
                           {E_JOIN("re-d", "q"), .status = "away", .meta = "{\"k\":2}"},
                           {E_ONLINE("re-e", "e1", "online", NOMETA)}}},
    {S_USERS(0), .users = {{U_ONLINE("re-a", "online", 2)},
                           {U_UNKNOWN("re-b")},
                           {U_ONLINE("re-d", "away", 1), .meta = "{\"k\":2}"},
                           {U_ONLINE("re-e", "online", 1)}}},
    {S_ROOM(1, "r")},
    {S_ROOM(1, "q"), .members = {"re-d"}},
    /* The new generation goes on as any: its transitions are announced once. */
    {S_CLOSE(0, "a1")},
    {S_CLOSE(1, "c1"), .ev = {{E_OFFLINE("re-a", "c1")}}},
    {S_CLOSE(1, "d1"), .ev = {{E_LEAVE("re-d", "q")}, {E_OFFLINE("re-d", "d1"), .rooms = {"q"}}}},
    {S_CLOSE(0, "e1"), .ev = {{E_OFFLINE("re-e", "e1")}}},
    {.op = OP_END},
};

/* Redis emptied under the stores' feet (FLUSHALL): no reconnection tells them, the generation
 * marker does. Each store finds its lease gone at its next refresh, the first to write begins a
 * new generation, and every store delivers its reset before the events of the sockets registered
 * again. A user who had turned invisible comes back invisible. */
static const step redis_flush[] = {
    {S_OPEN(0, "a1", "fl-a"), .ev = {{E_ONLINE("fl-a", "a1", "online", NOMETA)}}},
    {S_JOIN(0, "a1", "r"), .ev = {{E_JOIN("fl-a", "r")}}},
    {S_OPEN(1, "b1", "fl-b"), .status = "invisible",
     .ev = {{E_ONLINE("fl-b", "b1", "invisible", NOMETA)}}},
    {.op = OP_REDIS_FLUSH, .later = true},
    {S_WAIT(15000), .ev = {{E_RESET},
                           {E_ONLINE("fl-a", "a1", "online", NOMETA), .rooms = {"r"}},
                           {E_JOIN("fl-a", "r")},
                           {E_ONLINE("fl-b", "b1", "invisible", NOMETA)}}},
    {S_USERS(1), .users = {{U_ONLINE("fl-a", "online", 1)}, {U_ONLINE("fl-b", "invisible", 1)}}},
    {S_ROOM(1, "r"), .members = {"fl-a"}},
    {S_CLOSE(0, "a1"), .ev = {{E_LEAVE("fl-a", "r")}, {E_OFFLINE("fl-a", "a1"), .rooms = {"r"}}}},
    {S_CLOSE(1, "b1"), .ev = {{E_OFFLINE("fl-b", "b1")}}},
    {.op = OP_END},
};

/* ---- the reconciliation's own state: nothing leaves it waiting for ever ---- */

/* A command sent straight to the Redis the stores use (not through their fault proxies). */

/* The primary the sentinels of cfg.redis_url name (the first sentinel that answers). */
static int sentinel_primary(void)
{
    const char *p = cfg.redis_url + strlen("redis-sentinel://");
    const char *name = strchr(p, '/');
    if (!name)
        fail_msg("no master name in %s", cfg.redis_url);
    for (int port; p < name && sscanf(p, "127.0.0.1:%d", &port) == 1;) {
        redisContext *c = redisConnect("127.0.0.1", port);
        redisReply *r =
            c && !c->err ? redisCommand(c, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", name + 1) : NULL;
        int primary =
            r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (primary > 0)
            return primary;
        const char *comma = strchr(p, ',');
        p = comma && comma < name ? comma + 1 : name;
    }
    fail_msg("no sentinel of %s names a primary", cfg.redis_url);
    return 0;
}

/* A command straight to the server that holds its key: the single Redis, the primary the sentinels
 * name, or on a cluster the primary the first seed's MOVED points to. Fails the scenario when none
 * answers. */
static redisReply *raw_redis(harness *h, const char *fmt, ...)
{
    (void)h;
    int port = 0;
    if (strcmp(cfg.topology, "sentinel") == 0)
        port = sentinel_primary();
    else if (sscanf(cfg.redis_url, "redis://127.0.0.1:%d", &port) != 1 &&
             sscanf(cfg.redis_url, "redis-cluster://127.0.0.1:%d", &port) != 1)
        fail_msg("these scenarios need a loopback Redis URL, not %s", cfg.redis_url);
    for (int hop = 0; hop < 3; hop++) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = raw_on(port, fmt, ap);
        va_end(ap);
        if (!r)
            fail_msg("redis command failed on port %d", port);
        int slot, moved;
        if (r->type != REDIS_REPLY_ERROR ||
            sscanf(r->str, "MOVED %d %*[^:]:%d", &slot, &moved) != 2)
            return r;
        freeReplyObject(r);
        /* The nodes announce their proxies' port: go to the node itself. */
        port = moved;
        for (int i = 0; i < topo.nnodes; i++)
            if (topo.node[i].proxy_port == moved)
                port = topo.node[i].port;
    }
    fail_msg("redis kept redirecting a command");
    return NULL;
}

/* Store i's epoch key (docs/redis-schema.md, "Keys"); on a cluster, that of its partition 0. */
static void epoch_key(harness *h, int i, char *out, size_t len)
{
    char tag[REDIS_TAG_MAX + 3] = "";
    if (cfg.partitions > 1) {
        char t[REDIS_TAG_MAX];
        redis_partition_tag(0, cfg.partitions, t);
        snprintf(tag, sizeof(tag), "{%s}:", t);
    }
    snprintf(out, len, "%s%se:%zu:%s", h->prefix, tag, strlen(h->slots[i].iid), h->slots[i].iid);
}

/* Store i's epoch as Redis holds it, 0 when the key is missing. */
static long long stored_epoch(harness *h, int i)
{
    char key[128];
    epoch_key(h, i, key, sizeof(key));
    redisReply *r = raw_redis(h, "GET %s", key);
    long long e = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return e;
}

/* Pump until store 0's epoch in Redis satisfies `ok` (a reconciliation began), or fail. */
static void wait_epoch(harness *h, bool (*ok)(long long), uint32_t ms, const char *what)
{
    uint64_t end = mono_ms() + ms;
    while (!ok(stored_epoch(h, 0))) {
        if (mono_ms() >= end)
            fail_msg("store 0 did not reconcile within %u ms: %s (epoch in redis: %lld)", ms, what,
                     stored_epoch(h, 0));
        pump_for(h, 50);
    }
}

static bool epoch_present(long long e)
{
    return e != 0;
}

#define EPOCH_AHEAD 1000000LL

static bool epoch_past_ahead(long long e)
{
    return e > EPOCH_AHEAD;
}

/* Redis holds a higher epoch for this instance than the instance's own (its epoch went
 * backwards: the process restarted with the same id, or Redis came back with another copy's
 * data), and the command connection reconnects: the first 'begin' of the connection is refused.
 * The store must take the stored epoch up and begin again, not stay unavailable for ever. */
static void call_epoch_ahead(harness *h)
{
    char key[128];
    epoch_key(h, 0, key, sizeof(key));
    freeReplyObject(raw_redis(h, "SET %s %lld EX 30", key, EPOCH_AHEAD));
    lane_fault(0, FAULT_CUT, 0);
    pump_for(h, 300);
    lane_fault(0, FAULT_PASS, 0);
    wait_epoch(h, epoch_past_ahead, 4 * LEASE_MS,
               "its first 'begin' after a reconnect was refused");
    uint64_t end = mono_ms() + OP_TIMEOUT_MS;
    while (!store_available(h->slots[0].st)) {
        if (mono_ms() >= end)
            fail_msg("store 0 is not available again after its epoch was taken up");
        pump(h);
    }
}

/* The instance's epoch key disappears while nothing else happens: no reconnection, no state
 * change, its lease still held (the key expired while it was cut off, or an operator deleted
 * it). Every later state change would be refused as stale; the lease refresh notices first and
 * the store reconciles on its own, within a lease. */
static void call_epoch_dropped(harness *h)
{
    char key[128];
    epoch_key(h, 0, key, sizeof(key));
    freeReplyObject(raw_redis(h, "DEL %s", key));
    h->slots[0].asked_reconciles++;
    wait_epoch(h, epoch_present, 3 * LEASE_MS, "its epoch key went missing");
}

static const step epoch_ahead[] = {
    {S_OPEN(0, "a1", "ea-a"), .ev = {{E_ONLINE("ea-a", "a1", "online", NOMETA)}}},
    {S_JOIN(0, "a1", "r"), .ev = {{E_JOIN("ea-a", "r")}}},
    {.op = OP_CALL, .call = call_epoch_ahead},
    {S_USERS(0), .users = {{U_ONLINE("ea-a", "online", 1)}}},
    {S_ROOM(0, "r"), .members = {"ea-a"}},
    {S_CLOSE(0, "a1"), .ev = {{E_LEAVE("ea-a", "r")}, {E_OFFLINE("ea-a", "a1"), .rooms = {"r"}}}},
    {.op = OP_END},
};

static const step epoch_dropped[] = {
    {S_OPEN(0, "a1", "ed-a"), .ev = {{E_ONLINE("ed-a", "a1", "online", NOMETA)}}},
    {S_JOIN(0, "a1", "r"), .ev = {{E_JOIN("ed-a", "r")}}},
    {.op = OP_CALL, .call = call_epoch_dropped},
    {S_USERS(0), .users = {{U_ONLINE("ed-a", "online", 1)}}},
    {S_CLOSE(0, "a1"), .ev = {{E_LEAVE("ed-a", "r")}, {E_OFFLINE("ed-a", "a1"), .rooms = {"r"}}}},
    {.op = OP_END},
};

/* ---- a large instance: no script holds Redis for long ---- */

#define BIG_SOCKETS 20000
#define BIG_ROOMS 200

typedef struct big_ctx {
    size_t done, failed;
} big_ctx;

static void on_big_done(int err, void *ud)
{
    big_ctx *b = ud;
    b->done++;
    if (err)
        b->failed++;
}

/* A connection to every primary (their own ports, not the stores' proxies): each keeps its own
 * SLOWLOG. */
typedef struct big_redis {
    redisContext *c[NODES_MAX];
    int port[NODES_MAX];
    int n;
} big_redis;

static void big_connect(big_redis *r)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < topo.nnodes; i++) {
        if (!topo.node[i].primary)
            continue;
        redisContext *c = redisConnect("127.0.0.1", topo.node[i].port);
        if (!c || c->err)
            fail_msg("big_instance: cannot connect to the primary on port %d", topo.node[i].port);
        r->port[r->n] = topo.node[i].port;
        r->c[r->n++] = c;
    }
}

/* The same command on every primary. */
static void big_all(big_redis *r, const char *cmd)
{
    for (int i = 0; i < r->n; i++)
        freeReplyObject(redisCommand(r->c[i], cmd));
}

static void big_close(big_redis *r)
{
    for (int i = 0; i < r->n; i++)
        redisFree(r->c[i]);
    r->n = 0;
}

static void big_wait(harness *h, big_ctx *b, size_t want, const char *what)
{
    uint64_t end = mono_ms() + 120000;
    while (b->done < want) {
        if (mono_ms() >= end)
            fail_msg("%s: %zu of %zu callbacks after 120 s", what, b->done, want);
        pump(h);
    }
    if (b->failed)
        fail_msg("%s: %zu operations failed", what, b->failed);
}

/* Store `on` opens BIG_SOCKETS sockets (one user each), each in two of BIG_ROOMS rooms. */
static void big_fill(harness *h, int on, const char *tag)
{
    slot *sl = &h->slots[on];
    big_ctx b = {0};
    char name[SID_LEN + 1], sid[SID_LEN + 1], user[32], r1[16], r2[16];
    for (size_t i = 0; i < BIG_SOCKETS; i++) {
        snprintf(user, sizeof(user), "%s%zu", tag, i);
        snprintf(name, sizeof(name), "%s%zu", tag, i);
        sid_of(name, sid);
        store_socket_open(sl->st, sid, user, NULL, NULL, on_big_done, &b);
        truth_sock *k = truth_append(sl, sid, user, NULL, NULL);
        snprintf(r1, sizeof(r1), "room%zu", i % BIG_ROOMS);
        snprintf(r2, sizeof(r2), "room%zu", (i * 7 + 3) % BIG_ROOMS);
        store_room_join(sl->st, sid, r1, on_big_done, &b);
        store_room_join(sl->st, sid, r2, on_big_done, &b);
        truth_room(k, r1, true);
        truth_room(k, r2, true);
        if (i % 512 == 0)
            pump(h);
    }
    big_wait(h, &b, 3 * BIG_SOCKETS, "opening 20,000 sockets");
}

/* The sockets of live instances, from store 0's statistics (asked again while its connection is
 * being re-established: a loaded machine can make it give up on a slow reply). */
static uint64_t big_sockets(harness *h)
{
    for (int attempt = 0;; attempt++) {
        api_res r = {0};
        store_stats_get(h->slots[0].st, on_api_stats, &r);
        api_wait(h, &r, "stats");
        if (!r.err)
            return r.stats.sockets;
        if (r.err != STORE_ERR_UNAVAILABLE || attempt == 100)
            fail_msg("stats: %s", store_strerror(r.err));
        pump_for(h, 100);
    }
}

/* The name Redis knows the store's function `name` by: FCALL's first argument. */
static void big_fname(const char *name, char out[64])
{
    snprintf(out, 64, "%s_%s", name, redis_library_version);
}

static int big_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* SLOWLOG (which records every command here) since the reset, on every primary: the slowest
 * command and the median and 99th percentile of function `name`'s calls (wall time: a loaded
 * machine stretches them), printed, and the number of calls of function `name` on each primary,
 * in calls[]. */
static void big_phase(big_redis *rs, const char *phase, const char *name, long long *worst,
                      long long calls[NODES_MAX])
{
    char fname[64];
    big_fname(name, fname);
    long long max = 0, total = 0, *us = NULL;
    size_t cap = 0;
    char what[96] = "none";
    for (int k = 0; k < rs->n; k++) {
        redisReply *r = redisCommand(rs->c[k], "SLOWLOG GET -1");
        calls[k] = 0;
        bool arr = r && r->type == REDIS_REPLY_ARRAY;
        if (arr && (size_t)total + r->elements + 1 > cap) {
            cap = (size_t)total + r->elements + 1;
            us = realloc(us, cap * sizeof(*us));
            if (!us)
                abort();
        }
        for (size_t i = 0; arr && i < r->elements; i++) {
            redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 4)
                continue;
            redisReply *args = e->element[3];
            if (args->elements > 1 && args->element[1]->str &&
                strcmp(args->element[1]->str, fname) == 0) {
                us[total++] = e->element[2]->integer;
                calls[k]++;
            }
            if (e->element[2]->integer <= max ||
                (args->elements && args->element[0]->str &&
                 strcasecmp(args->element[0]->str, "SLOWLOG") == 0))
                continue;
            max = e->element[2]->integer;
            /* FCALL name 0, nine common arguments, then the function's first own one */
            snprintf(what, sizeof(what), "%s%s%s", args->elements ? args->element[0]->str : "?",
                     args->elements > 12 ? " " : "",
                     args->elements > 12 ? args->element[12]->str : "");
        }
        freeReplyObject(r);
    }
    long long p50 = 0, p99 = 0;
    if (us && total > 0) {
        qsort(us, (size_t)total, sizeof(*us), big_cmp_ll);
        p50 = us[total / 2];
        p99 = us[(total * 99) / 100];
    }
    free(us);
    print_message("    %s: %lld calls of %s on %d primar%s (median %lld us, p99 %lld us); longest "
                  "command %lld us (%s)\n",
                  phase, total, name, rs->n, rs->n == 1 ? "y" : "ies", p50, p99, max, what);
    if (max > *worst)
        *worst = max;
    big_all(rs, "SLOWLOG RESET");
}

/* How the 20,000 sockets of store 1 ("b0".."b19999", one user each) split over the partitions:
 * the fewest any partition holds. */
static long long big_fewest(void)
{
    long long per[RESETS_MAX] = {0}, fewest = BIG_SOCKETS;
    char user[32];
    for (size_t i = 0; i < BIG_SOCKETS; i++) {
        int len = snprintf(user, sizeof(user), "b%zu", i);
        per[redis_partition_of(user, (size_t)len, cfg.partitions) % RESETS_MAX]++;
    }
    for (unsigned p = 0; p < cfg.partitions && p < RESETS_MAX; p++)
        fewest = per[p] < fewest ? per[p] : fewest;
    return fewest;
}

/* Whether store `i`'s instance has left `P instances` in every partition (reaped, or shut
 * down). */
static bool big_reaped(harness *h, int i)
{
    for (unsigned k = 0; k < cfg.partitions; k++) {
        char t[REDIS_TAG_MAX], key[128];
        redis_partition_tag(k, cfg.partitions, t);
        snprintf(key, sizeof(key), "%s%s%s%sinstances", h->prefix, cfg.partitions > 1 ? "{" : "",
                 cfg.partitions > 1 ? t : "", cfg.partitions > 1 ? "}:" : "");
        redisReply *r = raw_redis(h, "ZSCORE %s %s", key, h->slots[i].iid);
        bool gone = r->type == REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (!gone)
            return false;
    }
    return true;
}

static void call_big_instance(harness *h)
{
    for (int i = 0; i < h->nslots; i++)
        h->slots[i].observing = false; /* 100,000 events are not what this checks */
    /* A store killed, and Redis this busy: the others may give up on a slow reply and reconcile. */
    h->killed_any = true;
    big_redis rs;
    big_connect(&rs);
    long long worst = 0, slices[NODES_MAX], ticks[NODES_MAX], shut[NODES_MAX];
    big_fill(h, 1, "b");
    /* Every command from now on, to count the calls and find the slowest. */
    big_all(&rs, "CONFIG SET slowlog-max-len 1000000");
    big_all(&rs, "CONFIG SET slowlog-log-slower-than 0");
    big_all(&rs, "SLOWLOG RESET");

    /* Reconciliation of 20,000 sockets (nothing to change: every slice checks every socket). */
    op_ctx *op = op_begin(h);
    store_reconcile(h->slots[1].st, on_done, op);
    uint64_t t0 = mono_ms();
    while (!op->done && mono_ms() - t0 < 120000)
        pump(h);
    if (!op->done || op->err)
        fail_msg("reconcile of 20,000 sockets: %s", op->done ? store_strerror(op->err) : "timeout");
    big_phase(&rs, "reconcile of 20,000 sockets", "reconcile", &worst, slices);

    /* The reap of a dead instance of 20,000 sockets: its sockets stop counting once its lease
     * expired; the reap is over once it has left every partition's instances. */
    store_free(h->slots[1].st);
    h->slots[1].st = NULL;
    t0 = mono_ms();
    while (big_sockets(h) > 0 || !big_reaped(h, 1)) {
        if (mono_ms() - t0 > 120000)
            fail_msg("the dead instance's 20,000 sockets were not reaped within 120 s");
        pump_for(h, 200);
    }
    big_phase(&rs, "reap of 20,000 sockets", "tick", &worst, ticks);

    /* The shutdown of an instance of 20,000 sockets. */
    big_all(&rs, "CONFIG SET slowlog-log-slower-than 10000");
    big_fill(h, 2, "c");
    big_all(&rs, "CONFIG SET slowlog-log-slower-than 0");
    big_all(&rs, "SLOWLOG RESET");
    op = op_begin(h);
    store_shutdown(h->slots[2].st, on_done, op);
    t0 = mono_ms();
    while (!op->done && mono_ms() - t0 < 120000)
        pump(h);
    if (!op->done || op->err)
        fail_msg("shutdown of 20,000 sockets: %s", op->done ? store_strerror(op->err) : "timeout");
    big_phase(&rs, "shutdown of 20,000 sockets", "shutdown", &worst, shut);
    if (big_sockets(h) != 0)
        fail_msg("sockets left after the shutdown");
    big_all(&rs, "CONFIG SET slowlog-log-slower-than 10000");
    big_all(&rs, "CONFIG SET slowlog-max-len 128");
    print_message("    longest script at 20,000 sockets: %lld us\n", worst);
    /* How long a script takes is a figure (printed above; a loaded machine stretches it). What
     * the test holds is the shape: no phase does a whole instance, nor on a cluster a primary's
     * share of it, in one script. Each primary holds one partition's share: at least the
     * smallest one's sockets, reconciled in slices of at most 64. */
    long long fewest = big_fewest();
    for (int k = 0; k < rs.n; k++)
        if (slices[k] < fewest / 64 || ticks[k] < 2 || shut[k] < 2)
            fail_msg("the primary on port %d did its share of 20,000 sockets (at least %lld) in "
                     "%lld reconcile, %lld tick and %lld shutdown calls: not sliced",
                     rs.port[k], fewest, slices[k], ticks[k], shut[k]);
    big_close(&rs);
}

static const step big_instance[] = {
    {.op = OP_CALL, .call = call_big_instance},
    {.op = OP_END},
};

static const scenario scenarios[] = {
    {.name = "single_socket", .steps = single_socket},
    {.name = "multi_tab", .steps = multi_tab},
    {.name = "rooms", .steps = rooms},
    {.name = "status_metadata", .steps = status_metadata},
    {.name = "errors", .steps = errors},
    {.name = "users_query_1000", .steps = users_many},
    {.name = "last_seen", .steps = last_seen},
    {.name = "invisible", .steps = invisible},
    {.name = "tricky_ids", .steps = tricky_ids_steps},
    {.name = "event_stamps", .steps = event_stamps},
    {.name = "offline_grace", .grace_ms = GRACE_MS, .steps = offline_grace},
    {.name = "grace_query", .grace_ms = GRACE_MS, .steps = grace_query},
    {.name = "socket_assert", .steps = socket_assert},
    {.name = "shutdown", .grace_ms = GRACE_MS, .steps = shutdown_all},
    {.name = "api_reads", .webhooks = true, .steps = api_reads},
    {.name = "two_instances", .redis_only = true, .nstores = 2, .steps = two_instances},
    {.name = "api_cluster", .redis_only = true, .nstores = 2, .steps = api_cluster},
    {.name = "lease_expiry_free",
     .redis_only = true,
     .nstores = 3,
     .own_loop = 3,
     .kill = KILL_FREE,
     .steps = lease_expiry},
    {.name = "lease_expiry_hung",
     .redis_only = true,
     .nstores = 3,
     .own_loop = 3,
     .kill = KILL_FREEZE,
     .steps = lease_expiry},
    {.name = "reconcile_truth", .steps = reconcile_truth},
    {.name = "close_lost",
     .redis_only = true,
     .nstores = 2,
     .proxied = true,
     .lease_ms = {10000, 0},
     .steps = close_lost},
    {.name = "identify_lost",
     .redis_only = true,
     .nstores = 2,
     .proxied = true,
     .lease_ms = {10000, 0},
     .steps = identify_lost},
    {.name = "join_leave_lost",
     .redis_only = true,
     .nstores = 2,
     .proxied = true,
     .lease_ms = {10000, 0},
     .steps = join_leave_lost},
    {.name = "slow_alive",
     .redis_only = true,
     .nstores = 2,
     .proxied = true,
     .lease_ms = {10000, 0},
     .steps = slow_alive},
    {.name = "grace_backlog",
     .redis_only = true,
     .nstores = 2,
     .proxied = true,
     .grace_ms = GRACE_MS,
     .lease_ms = {0, 1500},
     .steps = grace_backlog},
    {.name = "reaped_and_back",
     .redis_only = true,
     .nstores = 2,
     .proxied = true,
     .steps = reaped_and_back},
    {.name = "redis_restart_data", .redis_only = true, .restarts = true, .steps = restart_data},
    {.name = "redis_restart_empty",
     .redis_only = true,
     .restarts = true,
     .nstores = 2,
     .steps = restart_empty},
    {.name = "redis_flush",
     .redis_only = true,
     .restarts = true,
     .nstores = 2,
     .steps = redis_flush},
    {.name = "epoch_ahead", .redis_only = true, .proxied = true, .steps = epoch_ahead},
    {.name = "epoch_dropped", .redis_only = true, .steps = epoch_dropped},
    {.name = "big_instance", .redis_only = true, .nstores = 3, .steps = big_instance},
};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --store memory | --store redis --redis URL [--topology "
            "single|sentinel|cluster] --control REDIS_TOPOLOGY_SH DIR [--filter PAT]\n",
            argv0);
}

int main(int argc, char **argv)
{
    const char *store_kind = NULL, *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            store_kind = argv[++i];
        } else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            cfg.redis_url = argv[++i];
        } else if (strcmp(argv[i], "--topology") == 0 && i + 1 < argc) {
            cfg.topology = argv[++i];
        } else if (strcmp(argv[i], "--control") == 0 && i + 2 < argc) {
            topo.script = argv[++i];
            topo.dir = argv[++i];
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!store_kind || (strcmp(store_kind, "memory") != 0 && strcmp(store_kind, "redis") != 0)) {
        usage(argv[0]);
        return 2;
    }
    cfg.redis = strcmp(store_kind, "redis") == 0;
    if (!cfg.topology)
        cfg.topology = "single";
    /* Three partitions on three primaries: each scenario spans them, and connects quickly. */
    cfg.partitions = strcmp(cfg.topology, "cluster") == 0 ? 3 : 1;
    if (strcmp(cfg.topology, "single") != 0 && strcmp(cfg.topology, "sentinel") != 0 &&
        strcmp(cfg.topology, "cluster") != 0) {
        usage(argv[0]);
        return 2;
    }
    if (cfg.redis && (!cfg.redis_url || !topo.script)) {
        usage(argv[0]);
        return 2;
    }
    cfg.rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    snprintf(cfg.run_tag, sizeof(cfg.run_tag), "%08llx", (unsigned long long)(rnd() >> 32));
    if (filter)
        cmocka_set_test_filter(filter);

    static struct CMUnitTest tests[NSCENARIOS];
    size_t ntests = 0;
    for (size_t i = 0; i < NSCENARIOS; i++) {
        tests[ntests++] = (struct CMUnitTest){
            .name = scenarios[i].name,
            .test_func = run_scenario,
            .setup_func = scenario_setup,
            .teardown_func = scenario_teardown,
            .initial_state = (void *)&scenarios[i],
        };
    }
    printf("store contract against the %s store%s%s%s%s (key prefixes t%s-N:)\n", store_kind,
           cfg.redis ? " at " : "", cfg.redis ? cfg.redis_url : "", cfg.redis ? ", " : "",
           cfg.redis ? cfg.topology : "", cfg.run_tag);
    fflush(stdout);
    char group[64];
    snprintf(group, sizeof(group), "store_contract %s", cfg.redis ? cfg.topology : "memory");
    if (cfg.redis)
        topo_start();
    int failed = _cmocka_run_group_tests(group, tests, ntests, NULL, NULL);
    if (cfg.redis)
        topo_stop();
    return failed;
}
