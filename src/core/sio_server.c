/* sio_server — the Socket.IO core: the server, its connections and sockets, sending and receiving
 * (see presenced/core/sio_server.h; groups and broadcasts are in sio_group.c). */
#include "presenced/core/sio_server.h"

#include <stdlib.h>
#include <string.h>

#include "presenced/codec/json.h"
#include "sio_server_impl.h"

/* ---- server ---- */

sio_server *sio_server_new(const sio_server_opts *opts, const sio_io_ops *ops)
{
    sio_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->opts = *opts;
    srv->ops = *ops;
    size_t n = 1;
    for (const char *const *p = opts->namespaces; p && *p; p++)
        n++;
    srv->nsps = calloc(n, sizeof(char *));
    if (!srv->nsps)
        goto fail;
    srv->nsps[srv->nnsps++] = strdup("/");
    for (const char *const *p = opts->namespaces; p && *p; p++)
        if (strcmp(*p, "/") != 0)
            srv->nsps[srv->nnsps++] = strdup(*p);
    for (uint16_t i = 0; i < srv->nnsps; i++)
        if (!srv->nsps[i])
            goto fail;
    srv->opts.namespaces = NULL;
    map_init(&srv->conns, opts->hash_seed);
    map_init(&srv->groups, opts->hash_seed ^ 0x5bd1e995u);
    map_init(&srv->handlers, opts->hash_seed ^ 0x1b873593u);
    return srv;
fail:
    sio_server_free(srv);
    return NULL;
}

void sio_server_free(sio_server *srv)
{
    if (!srv)
        return;
    for (uint16_t i = 0; i < srv->nnsps; i++)
        free(srv->nsps[i]);
    free(srv->nsps);
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&srv->handlers, &pos)))
        free(slot->value);
    map_deinit(&srv->handlers);
    map_deinit(&srv->groups);
    map_deinit(&srv->conns);
    free(srv);
}

const eio_limits *sio_server_limits(const sio_server *srv)
{
    return &srv->opts.limits;
}

void sio_server_on_connect(sio_server *srv, sio_connect_fn fn, void *ud)
{
    srv->on_connect = fn;
    srv->on_connect_ud = ud;
}

void sio_server_on_connected(sio_server *srv, sio_connected_fn fn, void *ud)
{
    srv->on_connected = fn;
    srv->on_connected_ud = ud;
}

void sio_server_on_disconnect(sio_server *srv, sio_disconnect_fn fn, void *ud)
{
    srv->on_disconnect = fn;
    srv->on_disconnect_ud = ud;
}

void sio_server_on_unhandled(sio_server *srv, sio_unhandled_fn fn, void *ud)
{
    srv->on_unhandled = fn;
    srv->on_unhandled_ud = ud;
}

void sio_server_on_conn_close(sio_server *srv, sio_conn_close_fn fn, void *ud)
{
    srv->on_conn_close = fn;
    srv->on_conn_close_ud = ud;
}

int sio_server_on(sio_server *srv, const char *event, sio_event_fn fn, void *ud)
{
    sio_handler *h = map_get(&srv->handlers, event, strlen(event));
    if (!h) {
        h = malloc(sizeof(*h));
        if (!h || map_put(&srv->handlers, event, strlen(event), h) < 0) {
            free(h);
            return -1;
        }
    }
    h->fn = fn;
    h->ud = ud;
    return 0;
}

static int nsp_index(const sio_server *srv, const char *nsp)
{
    for (uint16_t i = 0; i < srv->nnsps; i++)
        if (strcmp(srv->nsps[i], nsp) == 0)
            return i;
    return -1;
}

/* ---- frames ---- */

static frame *frame_from_buf(const buf *b)
{
    return frame_from(EIO_MESSAGE, false, b->data, b->len);
}

frame *sio_frame_packet(sio_type type, const char *nsp, int64_t ack_id, unsigned attachments,
                        const cJSON *data)
{
    buf b;
    buf_init(&b);
    frame *f = NULL;
    if (sio_header_encode(&b, type, nsp, ack_id, attachments) == 0 &&
        (!data || json_append(&b, data) == 0))
        f = frame_from_buf(&b);
    buf_deinit(&b);
    return f;
}

frame *sio_frame_event(const char *nsp, const char *event, const cJSON *args, int64_t ack_id,
                       unsigned attachments)
{
    buf b;
    buf_init(&b);
    frame *f = NULL;
    sio_type type = attachments ? SIO_BINARY_EVENT : SIO_EVENT;
    cJSON name = {.type = cJSON_String, .valuestring = (char *)event};
    if (sio_header_encode(&b, type, nsp, ack_id, attachments) < 0 || buf_append_byte(&b, '[') < 0 ||
        json_append(&b, &name) < 0)
        goto out;
    /* The arguments follow the name in the same array. */
    for (const cJSON *a = args ? args->child : NULL; a; a = a->next)
        if (buf_append_byte(&b, ',') < 0 || json_append(&b, a) < 0)
            goto out;
    if (buf_append_byte(&b, ']') == 0)
        f = frame_from_buf(&b);
out:
    buf_deinit(&b);
    return f;
}

/* ---- connections ---- */

sio_conn *sio_conn_new(sio_server *srv, const char *sid, eio_transport transport, void *io,
                       uint64_t now)
{
    sio_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = srv;
    c->io = io;
    eio_session_init(&c->eio, sid, transport, &srv->opts.limits, now);
    fq_init(&c->parked);
    if (!srv->opts.engineio_echo)
        c->connect_deadline = now + srv->opts.connect_timeout;
    if (map_put(&srv->conns, c->eio.sid, EIO_SID_LEN, c) < 0) {
        eio_session_deinit(&c->eio);
        free(c);
        return NULL;
    }
    return c;
}

eio_session *sio_conn_session(sio_conn *c)
{
    return &c->eio;
}

void *sio_conn_io(const sio_conn *c)
{
    return c->io;
}

void sio_conn_set_data(sio_conn *c, void *data)
{
    c->data = data;
}

void *sio_conn_data(const sio_conn *c)
{
    return c->data;
}

void sio_conn_peer(sio_conn *c, char out[SIO_PEER_MAX])
{
    out[0] = 0;
    if (c->srv->ops.peer)
        c->srv->ops.peer(c, c->io, out);
}

sio_conn *sio_server_find(sio_server *srv, const char *sid, size_t len)
{
    return map_get(&srv->conns, sid, len);
}

uint32_t sio_server_conn_count(const sio_server *srv)
{
    return (uint32_t)srv->conns.count;
}

static void binary_clear(sio_binary *b)
{
    for (unsigned i = 0; i < b->n; i++)
        frame_unref(b->att[i]);
    b->n = 0;
}

static void pending_clear(sio_conn *c)
{
    if (!c->pending)
        return;
    sio_packet_deinit(&c->pending->pkt);
    binary_clear(&c->pending->bin);
    free(c->pending);
    c->pending = NULL;
}

static void sock_free(sio_sock *s, const char *reason);

void sio_conn_free(sio_conn *c, const char *reason)
{
    sio_server *srv = c->srv;
    c->closing = true;
    while (c->socks) {
        sio_sock *s = c->socks;
        c->socks = s->next;
        sock_free(s, reason);
    }
    if (srv->on_conn_close)
        srv->on_conn_close(c, srv->on_conn_close_ud);
    pending_clear(c);
    fq_deinit(&c->parked);
    map_del(&srv->conns, c->eio.sid, EIO_SID_LEN);
    eio_session_deinit(&c->eio);
    free(c);
}

static int queue_full(sio_conn *c)
{
    c->closing = true;
    c->srv->ops.close(c, c->io, "send queue full");
    return -1;
}

/* Into the session's send queue, past any parking. */
static int conn_push(sio_conn *c, frame *f, bool bulk)
{
    if (c->closing)
        return -1;
    if (eio_session_send(&c->eio, f) < 0)
        return queue_full(c);
    c->srv->ops.wake(c, c->io, bulk);
    return 0;
}

int sio_conn_queue(sio_conn *c, frame *f, bool bulk)
{
    if (c->closing)
        return -1;
    if (c->nheld == 0)
        return conn_push(c, f, bulk);
    /* Parked frames count against the same limits as the send queue they will join. */
    const eio_limits *lim = c->eio.lim;
    if (fq_push(&c->parked, f, lim->send_queue_max,
                lim->send_queue_bytes ? lim->send_queue_bytes : UINT32_MAX) < 0)
        return queue_full(c);
    return 0;
}

/* A held socket was released or went away: once none is held, what was parked goes out. */
static void conn_unhold(sio_conn *c)
{
    if (--c->nheld > 0)
        return;
    frame *f;
    while ((f = fq_pop(&c->parked))) {
        int rc = conn_push(c, f, true);
        frame_unref(f);
        if (rc < 0)
            break;
    }
}

int sio_conn_send(sio_conn *c, frame *f)
{
    return sio_conn_queue(c, f, false);
}

static int send_binary(sio_conn *c, const sio_binary *bin)
{
    for (unsigned i = 0; bin && i < bin->n; i++)
        if (sio_conn_send(c, bin->att[i]) < 0)
            return -1;
    return 0;
}

static int send_owned(sio_conn *c, frame *f)
{
    if (!f)
        return -1;
    int rc = sio_conn_send(c, f);
    frame_unref(f);
    return rc;
}

/* ---- sockets ---- */

static sio_sock *conn_sock(sio_conn *c, int nsp)
{
    for (sio_sock *s = c->socks; s; s = s->next)
        if (s->nsp == nsp)
            return s;
    return NULL;
}

static sio_sock *sock_new(sio_conn *c, int nsp)
{
    sio_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->conn = c;
    s->nsp = (uint16_t)nsp;
    c->srv->ops.make_id(s->id, c->srv->ops.ud);
    if (sio_groups_add(s, NULL) < 0) {
        free(s);
        return NULL;
    }
    s->next = c->socks;
    c->socks = s;
    return s;
}

static void sock_free(sio_sock *s, const char *reason)
{
    sio_server *srv = s->conn->srv;
    if (s->held) {
        s->held = false;
        conn_unhold(s->conn);
    }
    if (s->announced && srv->on_disconnect)
        srv->on_disconnect(s, reason, srv->on_disconnect_ud);
    while (s->ngroups)
        sio_groups_remove_at(s, s->ngroups - 1);
    free(s->groups);
    while (s->acks) {
        sio_pending_ack *a = s->acks;
        s->acks = a->next;
        a->fn(s, NULL, NULL, a->ud);
        free(a);
    }
    free(s);
}

static void sock_unlink(sio_sock *s)
{
    for (sio_sock **pp = &s->conn->socks; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            return;
        }
}

const char *sio_sock_id(const sio_sock *s)
{
    return s->id;
}

const char *sio_sock_nsp(const sio_sock *s)
{
    return s->conn->srv->nsps[s->nsp];
}

sio_conn *sio_sock_conn(const sio_sock *s)
{
    return s->conn;
}

void sio_sock_set_data(sio_sock *s, void *data)
{
    s->data = data;
}

void *sio_sock_data(const sio_sock *s)
{
    return s->data;
}

void sio_sock_disconnect(sio_sock *s, const char *reason)
{
    sio_conn *c = s->conn;
    if (!c->closing) {
        c->closing = true;
        c->srv->ops.close(c, c->io, reason);
    }
}

/* ---- sending ---- */

static int emit_frame(sio_sock *s, const char *event, const cJSON *args, const sio_binary *bin,
                      int64_t ack_id)
{
    unsigned n = bin ? bin->n : 0;
    if (send_owned(s->conn, sio_frame_event(sio_sock_nsp(s), event, args, ack_id, n)) < 0)
        return -1;
    return send_binary(s->conn, bin);
}

int sio_emit(sio_sock *s, const char *event, const cJSON *args, const sio_binary *bin)
{
    return emit_frame(s, event, args, bin, SIO_NO_ACK);
}

int sio_emit_with_ack(sio_sock *s, const char *event, const cJSON *args, const sio_binary *bin,
                      sio_ack_fn fn, void *ud)
{
    sio_pending_ack *a = malloc(sizeof(*a));
    if (!a)
        return -1;
    *a = (sio_pending_ack){.next = s->acks, .id = s->next_ack_id++, .fn = fn, .ud = ud};
    if (s->next_ack_id > SIO_ACK_ID_MAX)
        s->next_ack_id = 0;
    s->acks = a;
    return emit_frame(s, event, args, bin, a->id);
}

int sio_ack(sio_sock *s, int64_t ack_id, const cJSON *args, const sio_binary *bin)
{
    unsigned n = bin ? bin->n : 0;
    cJSON *empty = NULL;
    if (!args && !(args = empty = cJSON_CreateArray()))
        return -1;
    frame *f = sio_frame_packet(n ? SIO_BINARY_ACK : SIO_ACK, sio_sock_nsp(s), ack_id, n, args);
    cJSON_Delete(empty);
    if (send_owned(s->conn, f) < 0)
        return -1;
    return send_binary(s->conn, bin);
}

int sio_ack_text(sio_sock *s, int64_t ack_id, const char *json, size_t len)
{
    buf hdr;
    buf_init(&hdr);
    frame *f = NULL;
    /* One copy of the arguments, into the frame: answers can be large. */
    if (sio_header_encode(&hdr, SIO_ACK, sio_sock_nsp(s), ack_id, 0) == 0 &&
        (f = frame_new(EIO_MESSAGE, false, hdr.len + len))) {
        memcpy(frame_payload(f), hdr.data, hdr.len);
        memcpy(frame_payload(f) + hdr.len, json, len);
        frame_payload(f)[hdr.len + len] = 0;
    }
    buf_deinit(&hdr);
    return send_owned(s->conn, f);
}

/* ---- receiving ---- */

static int send_connect_error(sio_conn *c, const char *nsp, const char *message)
{
    cJSON *err = cJSON_CreateObject();
    if (!err || !cJSON_AddStringToObject(err, "message", message)) {
        cJSON_Delete(err);
        return -1;
    }
    frame *f = sio_frame_packet(SIO_CONNECT_ERROR, nsp, SIO_NO_ACK, 0, err);
    cJSON_Delete(err);
    return send_owned(c, f);
}

/* The CONNECT reply is never parked: it is what ends the parking. */
static int send_connect_ok(sio_sock *s)
{
    cJSON *ok = cJSON_CreateObject();
    if (!ok || !cJSON_AddStringToObject(ok, "sid", s->id)) {
        cJSON_Delete(ok);
        return -1;
    }
    frame *f = sio_frame_packet(SIO_CONNECT, sio_sock_nsp(s), SIO_NO_ACK, 0, ok);
    cJSON_Delete(ok);
    if (!f)
        return -1;
    int rc = conn_push(s->conn, f, false);
    frame_unref(f);
    return rc;
}

/* A reply could not be queued: the connection is closing already (its queue overflowed, or a
 * hook closed it), which is no error of the packet's; or memory ran out. Returns 0 or -1. */
static int reply_failed(sio_conn *c, const char **reason)
{
    if (c->closing)
        return 0;
    *reason = "out of memory";
    return -1;
}

/* CONNECT (spec: "Connection to a namespace"): the authorisation hook decides before anything is
 * sent, so a rejected socket gets only CONNECT_ERROR; the connected hook runs after the CONNECT
 * reply is queued, so whatever it emits reaches the client after the reply. */
static int receive_connect(sio_conn *c, sio_packet *p, const char **reason)
{
    sio_server *srv = c->srv;
    int nsp = nsp_index(srv, p->nsp);
    if (nsp < 0)
        return send_connect_error(c, p->nsp, "Invalid namespace") < 0 ? reply_failed(c, reason) : 0;
    sio_sock *s = conn_sock(c, nsp);
    if (s) /* a repeated CONNECT gets the same answer again (a held one: when it is released) */
        return !s->held && send_connect_ok(s) < 0 ? reply_failed(c, reason) : 0;
    if (!(s = sock_new(c, nsp)))
        return reply_failed(c, reason);
    const char *reject = "Connection rejected";
    int rc = srv->on_connect ? srv->on_connect(s, p->data, &reject, srv->on_connect_ud) : 0;
    if (rc < 0) {
        sock_unlink(s);
        sock_free(s, "rejected");
        return send_connect_error(c, p->nsp, reject) < 0 ? reply_failed(c, reason) : 0;
    }
    s->announced = true;
    c->connect_deadline = 0;
    if (rc == SIO_CONNECT_HOLD) {
        s->held = true;
        c->nheld++;
        return 0;
    }
    if (send_connect_ok(s) < 0)
        return reply_failed(c, reason);
    if (srv->on_connected)
        srv->on_connected(s, p->data, srv->on_connected_ud);
    return 0;
}

int sio_sock_release(sio_sock *s)
{
    if (!s->held)
        return 0;
    s->held = false;
    int rc = send_connect_ok(s);
    conn_unhold(s->conn);
    if (rc < 0)
        return -1;
    sio_server *srv = s->conn->srv;
    if (srv->on_connected)
        srv->on_connected(s, NULL, srv->on_connected_ud);
    return 0;
}

static void dispatch_event(sio_sock *s, sio_packet *p, const sio_binary *bin)
{
    sio_server *srv = s->conn->srv;
    const char *name = sio_packet_event_name(p);
    sio_handler *h = map_get(&srv->handlers, name, strlen(name));
    /* Detach the name so the handler sees only the arguments. */
    cJSON *first = cJSON_DetachItemFromArray(p->data, 0);
    if (h)
        h->fn(s, first->valuestring, p->data, bin, p->ack_id, h->ud);
    else if (srv->on_unhandled)
        srv->on_unhandled(s, first->valuestring, p->data, p->ack_id, srv->on_unhandled_ud);
    cJSON_Delete(first);
}

static void dispatch_ack(sio_sock *s, sio_packet *p, const sio_binary *bin)
{
    for (sio_pending_ack **pp = &s->acks; *pp; pp = &(*pp)->next) {
        sio_pending_ack *a = *pp;
        if (a->id == p->ack_id) {
            *pp = a->next;
            a->fn(s, p->data, bin, a->ud);
            free(a);
            return;
        }
    }
    /* An ack nobody waits for (answered twice, or after a restart) is ignored, as the
     * reference server does; the handlers still hear of it (it is a message all the same). */
    sio_server *srv = s->conn->srv;
    if (srv->on_unhandled)
        srv->on_unhandled(s, NULL, p->data, p->ack_id, srv->on_unhandled_ud);
}

/* Deliver a complete packet (attachments, if any, collected). Returns 0 or -1 to close. */
static int deliver(sio_conn *c, sio_packet *p, const sio_binary *bin, const char **reason)
{
    if (p->type == SIO_CONNECT)
        return receive_connect(c, p, reason);
    int nsp = nsp_index(c->srv, p->nsp);
    sio_sock *s = nsp >= 0 ? conn_sock(c, nsp) : NULL;
    if (!s) {
        /* A packet for a namespace this client has not joined is a protocol violation. */
        *reason = "packet for a namespace not joined";
        return -1;
    }
    switch (p->type) {
    case SIO_DISCONNECT:
        sock_unlink(s);
        sock_free(s, SIO_REASON_CLIENT);
        return 0;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        dispatch_event(s, p, bin);
        return 0;
    case SIO_ACK:
    case SIO_BINARY_ACK:
        dispatch_ack(s, p, bin);
        return 0;
    default:
        *reason = "unexpected packet type";
        return -1;
    }
}

static int finish_pending(sio_conn *c, const char **reason)
{
    sio_pending *pd = c->pending;
    c->pending = NULL;
    int rc = deliver(c, &pd->pkt, &pd->bin, reason);
    sio_packet_deinit(&pd->pkt);
    binary_clear(&pd->bin);
    free(pd);
    return rc;
}

static int receive_attachment(sio_conn *c, const eio_packet *p, const char **reason)
{
    if (!p->binary) {
        *reason = "text packet while attachments were expected";
        return -1;
    }
    frame *f = frame_from(EIO_MESSAGE, true, p->data, p->len);
    if (!f) {
        *reason = "out of memory";
        return -1;
    }
    c->pending->bin.att[c->pending->bin.n++] = f;
    if (c->pending->bin.n < c->pending->pkt.attachments)
        return 0;
    return finish_pending(c, reason);
}

static int receive_echo(sio_conn *c, const eio_packet *p)
{
    return send_owned(c, frame_from(EIO_MESSAGE, p->binary, p->data, p->len));
}

int sio_conn_receive(sio_conn *c, const eio_packet *p, uint64_t now, const char **reason)
{
    if (c->closing)
        return 0;
    if (c->srv->opts.engineio_echo)
        return receive_echo(c, p) < 0 ? (*reason = "send failed", -1) : 0;
    if (c->pending)
        return receive_attachment(c, p, reason);
    if (p->binary) {
        *reason = "unexpected binary packet";
        return -1;
    }
    sio_packet pkt;
    int rc = sio_packet_decode(p->data, p->len, &pkt);
    if (rc < 0) {
        *reason = sio_strerror(rc);
        return -1;
    }
    if (c->connect_deadline && pkt.type != SIO_CONNECT) {
        sio_packet_deinit(&pkt);
        *reason = "packet before CONNECT";
        return -1;
    }
    if ((pkt.type == SIO_BINARY_EVENT || pkt.type == SIO_BINARY_ACK) && pkt.attachments > 0) {
        if (!(c->pending = malloc(sizeof(*c->pending)))) {
            sio_packet_deinit(&pkt);
            *reason = "out of memory";
            return -1;
        }
        c->pending->pkt = pkt;
        c->pending->bin.n = 0;
        c->pending->deadline = now + c->srv->opts.attachment_timeout;
        return 0;
    }
    rc = deliver(c, &pkt, NULL, reason);
    sio_packet_deinit(&pkt);
    return rc;
}

int sio_conn_tick(sio_conn *c, uint64_t now, const char **reason)
{
    switch (eio_session_tick(&c->eio, now)) {
    case EIO_TICK_TIMEOUT:
        *reason = "ping timeout";
        return -1;
    case EIO_TICK_PING:
        c->srv->ops.wake(c, c->io, false);
        break;
    case EIO_TICK_NONE:
        break;
    }
    if (c->connect_deadline && now >= c->connect_deadline) {
        *reason = "no CONNECT within connect_timeout";
        return -1;
    }
    if (c->pending && now >= c->pending->deadline) {
        *reason = "attachments did not arrive in time";
        return -1;
    }
    return 0;
}

bool sio_conn_expiring(const sio_conn *c, uint64_t now)
{
    if (c->eio.awaiting_pong && now >= c->eio.deadline)
        return true;
    if (c->connect_deadline && now >= c->connect_deadline)
        return true;
    return c->pending && now >= c->pending->deadline;
}

uint64_t sio_conn_deadline(const sio_conn *c)
{
    uint64_t d = c->eio.deadline;
    if (c->connect_deadline && c->connect_deadline < d)
        d = c->connect_deadline;
    if (c->pending && c->pending->deadline < d)
        d = c->pending->deadline;
    return d;
}
