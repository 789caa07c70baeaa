/* store_redis_stream — the Redis store's event stream: the reader that hands every entry to
 * hooks.event (XREAD BLOCK on the "events" connection), the resuming reads of store_events_since,
 * and webhook delivery through the stream's consumer group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/io/log.h"
#include "presenced/core/pres_state.h"
#include "store_redis_int.h"

#define SR_XREAD_COUNT 512 /* entries per read */
#define SR_TEXT(x) SR_TEXT_(x)
#define SR_TEXT_(x) #x

/* ---- the event stream ---- */

static void read_next(store_redis *s);
static void gen_check(store_redis *s);
static void gap_check(store_redis *s);

static int stream_id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    char *end;
    *ms = strtoull(id, &end, 10);
    if (*end != '-')
        return -1;
    *seq = strtoull(end + 1, &end, 10);
    return *end ? -1 : 0;
}

bool sr_stream_id_less(const char *a, const char *b)
{
    uint64_t ams, aseq, bms, bseq;
    if (stream_id_parse(a, &ams, &aseq) < 0 || stream_id_parse(b, &bms, &bseq) < 0)
        return false;
    return ams < bms || (ams == bms && aseq < bseq);
}

/* Entries leave out what they can (docs/redis-schema.md, "Events"): an event's time is its
 * entry id's (milliseconds of Redis's clock when it was appended), an offline's lastSeen is its
 * time unless the entry names another (never 0: the function always has a moment for it), and
 * the user's status in a presence event (online ... update) is "online" unless the entry names
 * another. */
static int event_complete(pres_event *ev, const char *id)
{
    if (ev->at == 0)
        ev->at = strtoll(id, NULL, 10);
    if (ev->type == PRES_EV_OFFLINE && ev->last_seen == 0)
        ev->last_seen = ev->at;
    if (!ev->status && ev->type <= PRES_EV_UPDATE && !(ev->status = strdup("online")))
        return -1;
    return 0;
}

/* A reset entry: a generation began (docs/redis-schema.md, "Generations"). The one this instance
 * started in, or read again, changes nothing. A new one means Redis lost its data: what local
 * observers were told is void, and they are told so before any event of the new generation
 * (hooks.event, in stream order); this instance registers its sockets again in it (unless the
 * reconciliation that found it is the one that began it). */
static void reset_entry(store_redis *s, const pres_event *ev)
{
    bool change = s->gen[0] && strcmp(s->gen, ev->id) != 0;
    snprintf(s->gen, sizeof(s->gen), "%s", ev->id);
    if (!change)
        return;
    log_warn("redis lost its data: a new generation began", "generation=%s", ev->id);
    if (s->hooks.event)
        s->hooks.event(ev, s->hooks.ud);
    if (s->ever_begun && strcmp(s->rc_gen, ev->id) != 0)
        sr_rc_request(s, "redis lost its data");
}

static void hand_entry(store_redis *s, const redisReply *entry);

/* Each entry read, then where the reader is now (sr_route's read_to). */
static void deliver_entry(store_redis *s, const redisReply *entry)
{
    hand_entry(s, entry);
    if (s->read_to && !s->closing && entry->type == REDIS_REPLY_ARRAY && entry->elements == 2 &&
        entry->element[0]->type == REDIS_REPLY_STRING)
        s->read_to(entry->element[0]->str, s->read_ud);
}

static void hand_entry(store_redis *s, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *id = entry->element[0]->str;
    if (entry->element[0]->len < sizeof(s->last_id))
        memcpy(s->last_id, id, entry->element[0]->len + 1);
    const redisReply *fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || strcmp(f->str, "e") != 0 ||
            v->type != REDIS_REPLY_STRING)
            continue;
        pres_event ev;
        if (pres_event_decode(v->str, v->len, &ev) < 0) {
            log_warn("undecodable event in the stream", "id=%s", id);
            return;
        }
        snprintf(ev.id, sizeof(ev.id), "%s", id);
        if (event_complete(&ev, id) < 0) {
            log_error("out of memory reading the event stream", "id=%s", id);
            pres_event_deinit(&ev);
            return;
        }
        if (ev.type == PRES_EV_RESET)
            reset_entry(s, &ev);
        else if (s->hooks.event)
            s->hooks.event(&ev, s->hooks.ud);
        pres_event_deinit(&ev);
        return;
    }
}

/* The generation Redis holds, read on the events connection after what the reader has read: if
 * it is not the reader's, the stream holds only that generation, from its reset on (or nothing
 * yet): read it from its start, so that the reset is not passed over (docs/redis-schema.md,
 * "Generations"). */
static void on_gen_check(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    s->reading = false;
    if (!reply || s->closing)
        return; /* the connection went down: sr_stream_up positions the reader again */
    if (reply->type == REDIS_REPLY_STRING && strcmp(reply->str, s->gen) != 0) {
        log_info("the event stream is in another generation: reading it from its start",
                 "generation=%s last_id=%s", reply->str, s->last_id);
        snprintf(s->last_id, sizeof(s->last_id), "0-0");
    }
    read_next(s);
}

static void gen_check(store_redis *s)
{
    s->gen_check = false;
    char key[sizeof(s->prefix) + 4];
    snprintf(key, sizeof(key), "%sgen", s->prefix);
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    s->reading = true;
    redis_client_command(s->ev, 2, argv, lens, on_gen_check, s);
}

static void on_xread(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    if (!reply || s->closing) {
        /* The events connection went down: reading resumes from last_id when it is back. */
        s->reading = false;
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t k = 0; k < reply->elements; k++) {
            const redisReply *stream = reply->element[k];
            if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
                stream->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            const redisReply *entries = stream->element[1];
            /* As many entries as a batch holds, or as the stream keeps: the reader may be behind
             * the trimming (a gap leaves at least stream_maxlen entries after the reader). */
            size_t behind = strtoul(s->maxlen, NULL, 10);
            if (behind > SR_XREAD_COUNT)
                behind = SR_XREAD_COUNT;
            if (entries->elements >= behind && !s->gap_check) {
                snprintf(s->gap_from, sizeof(s->gap_from), "%s", s->last_id);
                s->gap_check = true;
            }
            for (size_t i = 0; i < entries->elements && !s->closing; i++)
                deliver_entry(s, entries->element[i]);
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* Not read again at once (it would fail as fast as Redis answers): where to read from
         * is found again at the next lease timer (sr_stream_retry). */
        log_error("redis XREAD failed", "err=\"%s\"", reply->str);
        s->reading = false;
        s->up_pending = true;
        return;
    }
    s->reading = false;
    if (s->closing)
        return;
    if (s->gen_check)
        gen_check(s);
    else if (s->gap_check)
        gap_check(s);
    else
        read_next(s);
}

/* The stream is trimmed to about stream_maxlen entries whether or not every reader has read them.
 * A reader more than that far behind (a loop starved of CPU through a storm of millions of
 * events) would pass over what was trimmed without knowing, and its watchers would keep a view
 * that misses those changes for good. Trimming takes the oldest entries only: while the last
 * entry the reader had read before a full batch is still in the stream, nothing after it was
 * trimmed. Once it is gone (the stream's first entry is past it), entries the reader never read
 * may have gone with it: its watchers are then told, as when Redis loses its data, that what
 * they hold is void (presence:resync {reset}), and take new snapshots. (A reader that read the
 * batch just before its own last entry was trimmed is told so too: it was at the edge.) */
static void on_gap_check(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    s->reading = false;
    if (!reply || s->closing)
        return; /* the connection went down: sr_stream_up positions the reader again */
    const char *first = NULL, *top = NULL;
    long long length = -1, added = -1;
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "first-entry") == 0 && v->type == REDIS_REPLY_ARRAY &&
            v->elements == 2 && v->element[0]->type == REDIS_REPLY_STRING)
            first = v->element[0]->str;
        else if (strcmp(k->str, "length") == 0 && v->type == REDIS_REPLY_INTEGER)
            length = v->integer;
        else if (strcmp(k->str, "entries-added") == 0 && v->type == REDIS_REPLY_INTEGER)
            added = v->integer;
        else if (strcmp(k->str, "last-generated-id") == 0 && v->type == REDIS_REPLY_STRING)
            top = v->str;
    }
    /* A reader that starts from the stream's beginning ("0-0": a new stream or generation) has
     * every entry ever added to read: it missed some when fewer are left (Redis 7's count). */
    bool from_start = strcmp(s->gap_from, "0-0") == 0;
    if (from_start ? added > length && length >= 0
                   : first && sr_stream_id_less(s->gap_from, first)) {
        log_warn("the event stream was trimmed past this instance's reader: clients were told to "
                 "start again",
                 "read_to=%s first_kept=%s stream_maxlen=%s", s->gap_from, first ? first : "",
                 s->maxlen);
        /* The snapshots the readers take after the reset hold everything up to now: the reader
         * goes on from the stream's end rather than through a backlog that is void for them,
         * and one that had fallen behind catches up at once. */
        if (top && sr_stream_id_less(s->last_id, top)) {
            snprintf(s->last_id, sizeof(s->last_id), "%s", top);
            if (s->read_to)
                s->read_to(s->last_id, s->read_ud);
        }
        pres_event ev;
        pres_event_init(&ev, PRES_EV_RESET);
        snprintf(ev.id, sizeof(ev.id), "%s", s->last_id);
        if ((ev.user = strdup("")) && s->hooks.event)
            s->hooks.event(&ev, s->hooks.ud);
        pres_event_deinit(&ev);
    }
    read_next(s);
}

static void gap_check(store_redis *s)
{
    s->gap_check = false;
    const char *argv[] = {"XINFO", "STREAM", s->stream_key};
    size_t lens[] = {5, 6, strlen(s->stream_key)};
    s->reading = true;
    redis_client_command(s->ev, 3, argv, lens, on_gap_check, s);
}

static void read_next(store_redis *s)
{
    if (s->reading || s->closing || !redis_client_ready(s->ev))
        return;
    s->reading = true;
    const char *argv[] = {"XREAD",
                          "COUNT",
                          SR_TEXT(SR_XREAD_COUNT),
                          "BLOCK",
                          SR_TEXT(SR_XREAD_BLOCK_MS),
                          "STREAMS",
                          s->stream_key,
                          s->last_id};
    size_t lens[8];
    for (size_t i = 0; i < 8; i++)
        lens[i] = strlen(argv[i]);
    redis_client_command(s->ev, 8, argv, lens, on_xread, s);
}

/* Where to resume, from the generation Redis holds (up_gen, "" for none) and the stream's newest
 * entry (`top`, NULL for none). When the reader starts: after the newest entry, in Redis's
 * generation. Later, in the same generation: where it stopped, or after the newest entry if the
 * stream now ends before that point (Redis came back without the last entries: a replica that
 * was behind); reading it from the start would deliver again what observers already had. In
 * another generation, or none yet (Redis lost its data): from the start of the new stream,
 * whose first entry is the reset that begins it (docs/redis-schema.md, "Generations"). */
static void position(store_redis *s, const char *top)
{
    const char *g = s->up_gen;
    s->gap_check = false; /* a check from before the connection went is void */
    if (!s->last_id[0]) {
        snprintf(s->last_id, sizeof(s->last_id), "%s", top ? top : "0-0");
        if (!s->gen[0])
            snprintf(s->gen, sizeof(s->gen), "%s", g);
    } else if (g[0] && strcmp(g, s->gen) == 0) {
        if (top && sr_stream_id_less(top, s->last_id)) {
            log_warn("the event stream lost its last entries: reading on from its end",
                     "last_id=%s top=%s", s->last_id, top);
            snprintf(s->last_id, sizeof(s->last_id), "%s", top);
        }
    } else if (g[0] || !top || sr_stream_id_less(top, s->last_id)) {
        log_info("event stream was recreated: reading the new generation from its start",
                 "last_id=%s generation=%s", s->last_id, g[0] ? g : "(none yet)");
        snprintf(s->last_id, sizeof(s->last_id), "0-0");
    }
}

static void on_stream_top(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    if (!reply || s->closing)
        return;
    if (reply->type == REDIS_REPLY_ERROR || s->up_failed) {
        /* Where to read from cannot be told: no reading until it can (sr_stream_retry). */
        log_error("redis: the event stream's position could not be read", "err=\"%s\"",
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "GET failed");
        s->up_pending = true;
        return;
    }
    const char *top = NULL;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements > 0 &&
        reply->element[0]->element[0]->type == REDIS_REPLY_STRING)
        top = reply->element[0]->element[0]->str;
    position(s, top);
    s->gen_check = false;
    s->up_pending = false;
    read_next(s);
    if (!s->positioned) {
        s->positioned = true;
        sr_availability_update(s);
    }
}

static void on_stream_gen(const redisReply *reply, void *ud)
{
    store_redis *s = ud;
    if (!reply || s->closing)
        return;
    s->up_failed = reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_NIL;
    snprintf(s->up_gen, sizeof(s->up_gen), "%s",
             reply->type == REDIS_REPLY_STRING ? reply->str : "");
}

static void stream_locate(store_redis *s)
{
    /* Two commands on one connection: their replies come in this order. Redis, not the server
     * it runs on, tells whether the data is the same (a failover, a restart, a flush). */
    char gen_key[sizeof(s->prefix) + 4];
    snprintf(gen_key, sizeof(gen_key), "%sgen", s->prefix);
    const char *get[] = {"GET", gen_key};
    size_t glens[] = {3, strlen(gen_key)};
    redis_client_command(s->ev, 2, get, glens, on_stream_gen, s);
    const char *argv[] = {"XREVRANGE", s->stream_key, "+", "-", "COUNT", "1"};
    size_t lens[6];
    for (size_t i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    redis_client_command(s->ev, 6, argv, lens, on_stream_top, s);
}

void sr_stream_up(const char *run_id, void *ud)
{
    store_redis *s = ud;
    if (s->ev_run_id[0] && strcmp(s->ev_run_id, run_id) != 0)
        log_info("redis restarted: checking the event stream", "run_id=%s", run_id);
    snprintf(s->ev_run_id, sizeof(s->ev_run_id), "%s", run_id);
    s->reading = false;
    stream_locate(s);
}

void sr_stream_retry(store_redis *s)
{
    if (s->up_pending && !s->closing && redis_client_ready(s->ev)) {
        s->up_pending = false;
        stream_locate(s);
    }
}

void sr_stream_gen_seen(store_redis *s, const char *gen)
{
    if (!s->gen[0]) {
        snprintf(s->gen, sizeof(s->gen), "%s", gen);
        return;
    }
    /* Another generation than the reader's: the reader will come to its reset, unless it reads
     * past it (Redis's clock went back, so the new stream's ids are below where it is). After
     * its current read it checks, on its own connection, which generation Redis holds (a reply
     * of 'begin' that comes late may also name an older one). */
    if (strcmp(s->gen, gen) != 0)
        s->gen_check = true;
}

static void on_acked(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    if (op->cb.done)
        op->cb.done(err, op->ud);
    sr_op_free(op);
}

static void ack_ids(store_redis *s, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    sr_op *op = sr_op_new(s, "xack", ud);
    const char **argv = malloc((n + 3) * sizeof(*argv));
    size_t *lens = malloc((n + 3) * sizeof(*lens));
    if (!op || !argv || !lens) {
        free(argv);
        free(lens);
        if (op)
            sr_op_free(op);
        store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.done = cb;
    argv[0] = "XACK";
    argv[1] = s->stream_key;
    argv[2] = SR_GROUP;
    for (size_t i = 0; i < n; i++)
        argv[3 + i] = ids[i];
    for (size_t i = 0; i < n + 3; i++)
        lens[i] = strlen(argv[i]);
    redis_client_command(s->cmd, (int)(n + 3), argv, lens, on_acked, op);
    free(argv);
    free(lens);
}

/* Entries as {id, event, id, event...} from element `from` on, decoded into `out`. Entries that
 * cannot be decoded (trimmed while pending, or foreign) are listed in `bad`. */
static int decode_entries(const redisReply *reply, size_t from, pres_events *out, char ***bad,
                          size_t *nbad)
{
    size_t pairs = (reply->elements - from) / 2;
    if (pairs == 0)
        return STORE_OK;
    out->v = calloc(pairs, sizeof(*out->v));
    if (bad)
        *bad = calloc(pairs, sizeof(char *));
    if (!out->v || (bad && !*bad))
        return STORE_ERR_NOMEM;
    out->cap = pairs;
    for (size_t i = 0; i < pairs; i++) {
        const redisReply *id = reply->element[from + 2 * i];
        const redisReply *json = reply->element[from + 2 * i + 1];
        if (id->type != REDIS_REPLY_STRING)
            continue;
        pres_event *ev = &out->v[out->n];
        if (json->type == REDIS_REPLY_STRING && pres_event_decode(json->str, json->len, ev) == 0) {
            snprintf(ev->id, sizeof(ev->id), "%s", id->str);
            if (event_complete(ev, id->str) < 0) {
                pres_event_deinit(ev);
                return STORE_ERR_NOMEM;
            }
            out->n++;
        } else if (bad && ((*bad)[*nbad] = strdup(id->str))) {
            (*nbad)++;
        }
    }
    return STORE_OK;
}

static void on_since(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    pres_events evs = {0};
    if (err == STORE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) {
        log_error("unexpected redis reply", "script=since type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK && sr_reply_int(reply->element[0]) == STORE_ERR_GONE)
        err = STORE_ERR_GONE;
    if (err == STORE_OK)
        err = decode_entries(reply, 1, &evs, NULL, NULL);
    op->cb.events(err, err == STORE_OK ? evs.v : NULL, err == STORE_OK ? evs.n : 0, op->ud);
    pres_events_clear(&evs);
    sr_op_free(op);
}

void sr_events_since(store *st, const char *after, size_t max, store_events_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "since", ud);
    if (!op) {
        store_fail_events(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.events = cb;
    char count[24];
    snprintf(count, sizeof(count), "%zu", max);
    const char *args[] = {after, count};
    sr_run_script(s, SCR_SINCE, args, NULL, 2, on_since, op);
}

static void on_deliver(const redisReply *reply, void *ud)
{
    sr_op *op = ud;
    int err = sr_reply_error(op, reply);
    pres_events evs = {0};
    char **bad = NULL;
    size_t nbad = 0;
    if (err == STORE_OK && reply->type == REDIS_REPLY_INTEGER) {
        /* No consumer group: a reconciliation's 'begin' makes it where delivery must resume. */
        sr_rc_request(op->s, "the webhook consumer group is missing");
    } else if (err == STORE_OK && reply->type != REDIS_REPLY_ARRAY) {
        log_error("unexpected redis reply", "script=deliver type=%d", reply->type);
        err = STORE_ERR_INTERNAL;
    }
    if (err == STORE_OK && reply->type == REDIS_REPLY_ARRAY)
        err = decode_entries(reply, 0, &evs, &bad, &nbad);
    /* Nothing can deliver an entry whose event is gone: acknowledge it so it stops coming back. */
    if (nbad > 0) {
        log_warn("webhooks: skipping undecodable or trimmed stream entries", "count=%zu", nbad);
        ack_ids(op->s, (const char *const *)bad, nbad, NULL, NULL);
    }
    for (size_t i = 0; i < nbad; i++)
        free(bad[i]);
    free(bad);
    op->cb.events(err, err == STORE_OK ? evs.v : NULL, err == STORE_OK ? evs.n : 0, op->ud);
    pres_events_clear(&evs);
    sr_op_free(op);
}

void sr_deliver_read(store *st, size_t max, uint32_t lock_ms, store_events_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    sr_op *op = sr_op_new(s, "deliver", ud);
    if (!op) {
        store_fail_events(&s->base, cb, ud, STORE_ERR_NOMEM);
        return;
    }
    op->cb.events = cb;
    char count[24], lock[16];
    snprintf(count, sizeof(count), "%zu", max);
    snprintf(lock, sizeof(lock), "%u", lock_ms ? lock_ms : 1);
    const char *args[] = {count, lock};
    sr_run_script(s, SCR_DELIVER, args, NULL, 2, on_deliver, op);
}

void sr_deliver_ack(store *st, const char *const *ids, size_t n, store_done_fn cb, void *ud)
{
    store_redis *s = (store_redis *)st;
    if (n == 0) {
        /* XACK needs an id; a PING keeps "the callback comes later, on the loop". */
        sr_op *op = sr_op_new(s, "ping", ud);
        if (!op) {
            store_fail_done(&s->base, cb, ud, STORE_ERR_NOMEM);
            return;
        }
        op->cb.done = cb;
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        redis_client_command(s->cmd, 1, argv, lens, on_acked, op);
        return;
    }
    ack_ids(s, ids, n, cb, ud);
}

const char *sr_read_position(const store *st)
{
    return ((const store_redis *)st)->last_id;
}
