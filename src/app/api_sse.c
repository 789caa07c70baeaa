/* The HTTP API's event stream: GET /v1/events as Server-Sent Events, resumable with
 * Last-Event-ID (docs/http-api.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_impl.h"
#include "presenced/codec/vec.h"

#define API_SSE_REPLAY_BATCH 500
#define API_SSE_REPLAY_MAX 100000   /* events one resume may replay */
#define API_SSE_QUEUE_MAX (1 << 20) /* bytes waiting for a slow SSE reader before it is dropped */
#define API_SSE_PENDING_MAX 10000   /* live events held while a resume replays */

struct sse_client {
    api *a;
    io_http_req *req;
    sse_client *prev, *next;
    bool replaying; /* resuming: live events wait in `held` until the replay is done */
    bool closed;    /* the client left during a replay: freed when the replay answers */
    char last_id[48];
    pres_event *held;
    size_t nheld, capheld;
    size_t replayed;
};

static void sse_unlink(api *a, sse_client *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (a->streams == s)
        a->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    metrics_add(a->sse_clients, NULL, -1);
}

static void sse_free(sse_client *s)
{
    for (size_t i = 0; i < s->nheld; i++)
        pres_event_deinit(&s->held[i]);
    free(s->held);
    free(s);
}

/* Drop a client: end its request, and free it unless a replay still refers to it. */
void api_sse_drop(sse_client *s)
{
    api *a = s->a;
    sse_unlink(a, s);
    if (s->req)
        io_http_stream_end(s->req);
    s->req = NULL;
    if (s->replaying)
        s->closed = true;
    else
        sse_free(s);
}

static int sse_write(sse_client *s, const char *text, size_t len)
{
    if (!s->req)
        return -1;
    if (io_http_stream_write(s->req, text, len, API_SSE_QUEUE_MAX) < 0) {
        if (io_http_alive(s->req))
            metrics_add(s->a->dropped, "sse", 1);
        api_sse_drop(s);
        return -1;
    }
    return 0;
}

/* One event on the stream, with the id of the event it shows. Returns 0 or -1 (dropped). */
static int sse_send_one(sse_client *s, const pres_event *shown, const char *id)
{
    cJSON *o = pres_event_public(shown);
    char *data = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!data)
        return 0;
    size_t cap = strlen(data) + strlen(id) + 64;
    char *msg = malloc(cap);
    int rc = 0;
    if (msg) {
        int n = snprintf(msg, cap, "id: %s\nevent: %s\ndata: %s\n\n", id,
                         pres_event_public_type(shown->type), data);
        rc = sse_write(s, msg, (size_t)n);
    }
    free(msg);
    free(data);
    return rc;
}

/* The rooms an event's user leaves or joins in the caller's eyes (turning invisible or visible,
 * policy_view_rooms), each as a room event with the event's id. */
static int sse_send_rooms(sse_client *s, const pres_event *ev, pres_event_type as)
{
    for (size_t i = 0; i < ev->nrooms; i++) {
        pres_event room = {.type = as, .user = ev->user, .room = ev->rooms[i], .at = ev->at};
        memcpy(room.id, ev->id, sizeof(room.id));
        if (sse_send_one(s, &room, ev->id) < 0)
            return -1;
    }
    return 0;
}

static int sse_send(sse_client *s, const pres_event *ev)
{
    /* What an API caller sees of it: the policy's view (invisible users as they are only for
     * callers that proved they hold the key). */
    const policy_viewer viewer = {.api = true};
    pres_event view;
    pres_event_type as;
    const pres_event *shown = policy_view(s->a->opts.policy, ev, &viewer, &view);
    bool rooms = policy_view_rooms(s->a->opts.policy, ev, &viewer, &as);
    snprintf(s->last_id, sizeof(s->last_id), "%s", ev->id);
    /* Rooms are left before the offline and joined after the online. */
    if (rooms && as == PRES_EV_ROOM_LEAVE && sse_send_rooms(s, ev, as) < 0)
        return -1;
    if (shown && sse_send_one(s, shown, ev->id) < 0)
        return -1;
    return rooms && as == PRES_EV_ROOM_JOIN ? sse_send_rooms(s, ev, as) : 0;
}

static int sse_hold(sse_client *s, const pres_event *ev)
{
    if (s->nheld == API_SSE_PENDING_MAX)
        return -1;
    if (VEC_RESERVE(s->held, s->nheld, s->capheld, 16) < 0)
        return -1;
    /* A deep copy through the JSON form, which every field survives. */
    char *json = pres_event_encode(ev);
    pres_event *copy = &s->held[s->nheld];
    int rc = json ? pres_event_decode(json, strlen(json), copy) : -1;
    free(json);
    if (rc < 0)
        return -1;
    snprintf(copy->id, sizeof(copy->id), "%s", ev->id);
    s->nheld++;
    return 0;
}

static void sse_replay_next(sse_client *s);

/* The replay is over: what arrived meanwhile follows, minus what the replay already sent. */
static void sse_go_live(sse_client *s)
{
    s->replaying = false;
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->req && pres_event_id_cmp(s->held[i].id, s->last_id) > 0 &&
            sse_send(s, &s->held[i]) < 0) {
            /* sse_send dropped (and, replay being over, freed) the client. */
            return;
        }
    }
    for (size_t i = 0; i < s->nheld; i++)
        pres_event_deinit(&s->held[i]);
    s->nheld = 0;
}

/* An earlier generation's id: the reset that begins the current one, as the Redis store's
 * reset entries read ({"id","type":"reset","reason":"store_empty","at"}), the same event through
 * the same path. `first` is the id of the generation's first event ("<gen>-1"): the reset's id
 * is the generation's start ("<gen>-0"), so that a reader resuming from it gets the
 * generation's events, not another reset. Without events yet (NULL) it has no id: a reader
 * resuming before the next event is told again, which costs nothing. */
static int sse_reset(sse_client *s, const char *first)
{
    char user[] = "";
    pres_event ev = {.type = PRES_EV_RESET, .user = user};
    if (first) {
        unsigned long long gen = strtoull(first, NULL, 10);
        snprintf(ev.id, sizeof(ev.id), "%llu-0", gen);
        ev.at = (int64_t)gen;
        return sse_send(s, &ev);
    }
    static const char bare[] =
        "event: reset\ndata: {\"type\":\"reset\",\"reason\":\"store_empty\"}\n\n";
    return sse_write(s, bare, sizeof(bare) - 1);
}

static void on_replay(int err, const pres_event *evs, size_t n, void *ud)
{
    sse_client *s = ud;
    if (s->closed) {
        sse_free(s);
        return;
    }
    if (err == STORE_ERR_GONE || err == STORE_ERR_FOREIGN) {
        /* The resume point is older than what the store keeps, or not one of its ids (ahead of
         * its events: an id of another stream): say which, then go on live. */
        static const char gap[] = "event: reset\ndata: {\"reason\":\"Last-Event-ID is no longer "
                                  "retained; some events were missed\"}\n\n";
        static const char foreign[] = "event: reset\ndata: {\"reason\":\"Last-Event-ID is not an "
                                      "event of this stream; some events may have been missed\"}"
                                      "\n\n";
        s->replaying = false;
        if (err == STORE_ERR_GONE ? sse_write(s, gap, sizeof(gap) - 1) < 0
                                  : sse_write(s, foreign, sizeof(foreign) - 1) < 0)
            return;
        s->replaying = true;
        sse_go_live(s);
        return;
    }
    if (err == STORE_ERR_RESET) {
        /* An earlier generation's id (the daemon restarted with the memory store): what the
         * reader built is void, and `evs` are the new generation's events from its start. */
        s->replaying = false;
        if (sse_reset(s, n ? evs[0].id : NULL) < 0)
            return;
        s->replaying = true;
        err = STORE_OK;
    }
    if (err) {
        s->replaying = false;
        api_sse_drop(s);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        s->replaying = false; /* a failed write frees the client at once */
        if (sse_send(s, &evs[i]) < 0)
            return;
        s->replaying = true;
    }
    s->replayed += n;
    if (n == API_SSE_REPLAY_BATCH && s->replayed < API_SSE_REPLAY_MAX)
        return sse_replay_next(s);
    sse_go_live(s);
}

static void sse_replay_next(sse_client *s)
{
    if (!s->a->st) {
        s->replaying = false;
        api_sse_drop(s);
        return;
    }
    store_events_since(s->a->st, s->last_id, API_SSE_REPLAY_BATCH, on_replay, s);
}

static void on_sse_close(io_http_req *req, void *ud)
{
    sse_client *s = ud;
    (void)req;
    api_sse_drop(s);
}

void api_get_events(api *a, io_http_req *req, const http_path *p)
{
    (void)p;
    const char *last = io_http_last_event_id(req), *q = NULL;
    if (api_query_value(a, req, "lastEventId", &q) < 0)
        return;
    if (!last[0] && q)
        last = q;
    if (last[0] && !pres_event_id_valid(last))
        return api_respond_error(a, req, 400, "invalid_argument",
                                 "Last-Event-ID must be an event id from this stream");
    sse_client *s = calloc(1, sizeof(*s));
    if (!s)
        return api_respond_error(a, req, 500, "internal", "out of memory");
    s->a = a;
    s->req = req;
    if (io_http_stream_start(req, "text/event-stream", on_sse_close, s) < 0) {
        free(s);
        io_http_stream_end(req);
        return;
    }
    api_count_request(a, 200);
    s->next = a->streams;
    if (a->streams)
        a->streams->prev = s;
    a->streams = s;
    metrics_add(a->sse_clients, NULL, 1);
    /* The first bytes go out at once, so that clients and proxies see the stream open. */
    static const char hello[] = ": presenced event stream\n\n";
    if (sse_write(s, hello, sizeof(hello) - 1) < 0)
        return;
    if (last[0]) {
        snprintf(s->last_id, sizeof(s->last_id), "%s", last);
        s->replaying = true;
        sse_replay_next(s);
    }
}

void api_event(api *a, const pres_event *ev)
{
    history_event(a->history, ev);
    sse_client *s = a->streams;
    while (s) {
        sse_client *next = s->next;
        if (s->replaying) {
            if (sse_hold(s, ev) < 0) {
                metrics_add(a->dropped, "sse", 1);
                s->replaying = true;
                api_sse_drop(s);
            }
        } else {
            sse_send(s, ev);
        }
        s = next;
    }
}

void api_sse_ping(api *a)
{
    static const char ping[] = ": ping\n\n";
    sse_client *s = a->streams;
    while (s) {
        sse_client *next = s->next;
        if (!s->replaying)
            sse_write(s, ping, sizeof(ping) - 1);
        s = next;
    }
}
