/* The libwebsockets server: one protocol that serves Engine.IO polling requests over HTTP and
 * Engine.IO WebSocket connections, on the application's libuv loop (foreign loop).
 *
 * Ownership: an io_conn exists for every Engine.IO session and owns its sio_conn and its uv timer.
 * Each HTTP request or WebSocket has a per-wsi io_pss (allocated by lws) that points to its
 * io_conn while attached; the io_conn points back to its held GET and its WebSocket. Whichever
 * side goes first clears the other's pointer.
 */
#include "presenced/io/io_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "presenced/io/io_http.h"
#include "presenced/io/log.h"
#include "presenced/core/map.h"

_Static_assert(LWS_PRE <= FRAME_HEADROOM, "frames must leave room for the WebSocket header");

#define IO_MAX_POLL_PACKETS 10000 /* packets in one POST body */
#define IO_ARG_MAX 128            /* longest query argument value we look at */
#define IO_ORIGIN_MAX 256
#define IO_WS_BATCH 65536        /* WebSocket bytes written by one send() at most */
#define IO_FLUSH_LONG_NS 1000000 /* a bulk flush this long makes the next one wait as long */

typedef enum io_flush_list { FLUSH_NONE = 0, FLUSH_NOW, FLUSH_BULK } io_flush_list;

typedef struct io_conn io_conn;

typedef enum io_pss_kind {
    PSS_NONE = 0,
    PSS_RESPONSE, /* an HTTP response is being written */
    PSS_HELD,     /* a long-poll GET waiting for packets */
    PSS_POST,     /* a POST body is being received */
    PSS_WS,       /* a WebSocket */
    PSS_API_BODY, /* a plain HTTP request's body is being received */
    PSS_API_WAIT, /* a plain HTTP request waits for its handler's answer */
    PSS_STREAM,   /* an open-ended response (Server-Sent Events) */
} io_pss_kind;

typedef enum io_phase { PHASE_IDLE = 0, PHASE_HEADERS, PHASE_BODY, PHASE_STREAM } io_phase;

/* Per-wsi state (lws allocates it zeroed for each connection). */
typedef struct io_pss {
    io_conn *conn;
    uint8_t kind;     /* io_pss_kind */
    uint8_t phase;    /* io_phase */
    bool woken;       /* a held GET was asked to complete */
    bool cors;        /* answer with CORS headers for `origin` */
    bool conn_close;  /* the request said "Connection: close" */
    bool probe_reply; /* this probing WebSocket owes "3probe" */
    bool close_sent;  /* WebSocket close frame requested */
    uint16_t close_code;
    uint16_t status;
    const char *ctype;
    buf body;               /* response body after LWS_PRE bytes, or the POST body / WS message */
    bool rx_binary;         /* WebSocket message being reassembled is binary */
    uint64_t last_write_ns; /* when the last WebSocket message went out (for frame_gap_us) */
    char *origin; /* the request's Origin (owned), for CORS answers; on the heap because only
                   * HTTP requests need it and every WebSocket carries an io_pss for its life */
    char sid[EIO_SID_LEN + 1]; /* WebSocket upgrade of an existing session */
    io_http_req *req;          /* a plain HTTP request (PSS_API_*, PSS_STREAM) */
    char **extra;              /* extra response headers: name, value, ..., NULL (owned) */
} io_pss;

/* A plain HTTP request (include/presenced/io/io_http.h). */
struct io_http_req {
    struct lws *wsi; /* NULL once the client is gone */
    io_server *srv;
    int listener;
    char method[8];
    char *path;
    char **args;
    size_t nargs;
    char authorization[1024];
    char last_event_id[128];
    char content_type[128];
    buf body;
    bool streaming, ending;
    buf out; /* stream bytes waiting, after LWS_PRE spare bytes */
    io_http_close_fn on_close;
    void *close_ud;
};

struct io_conn {
    io_server *srv;
    sio_conn *sc;
    struct lws *get;  /* held GET */
    struct lws *post; /* POST whose body is arriving */
    struct lws *ws;   /* the WebSocket: probing, or the transport once upgraded */
    uv_timer_t timer;
    io_conn *prev, *next;   /* every connection, for shutdown and the held-poll sweep */
    io_conn *fprev, *fnext; /* on a flush list: WebSocket frames queued since the last flush */
    uint8_t flush_on;       /* io_flush_list: which one */
    bool closing;
    bool client_closed;
    const char *reason;
};

struct io_server {
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_vhost *admin_vhost;
    sio_server *sio;
    io_server_opts opts;
    char path[256];
    char **origins;
    size_t norigins;
    bool any_origin;
    io_conn *conns;
    io_conn *flush_now;     /* sessions with WebSocket frames to write this loop iteration */
    io_conn *flush_bulk;    /* sessions with only broadcast frames: may wait (flush_all) */
    uint64_t bulk_after;    /* uv_hrtime() before which the bulk list waits */
    uv_timer_t flush_timer; /* wakes the loop when the bulk list's wait is over */
    uv_check_t flush_check; /* runs the flush after each iteration's I/O callbacks */
    uv_idle_t flush_idle;   /* active while the list is not empty: the loop must not block */
    uint8_t *batch;         /* LWS_PRE + IO_WS_BATCH bytes: frames coalesced into one send */
    uv_timer_t sweep;
    uv_poll_t listener;      /* shared_listener: readable when connections wait */
    uv_timer_t accept_pause; /* shared_listener: accept again after running out of fds */
    uint64_t accept_warned;  /* ms of the last "cannot accept" warning */
    bool shutting_down;
    uint32_t sockets;     /* accepted TCP connections alive */
    uint32_t max_sockets; /* accepted beyond this are closed at once */
    metrics_family *slow_consumers;
    metrics_family *limit_hits;
    /* max_connections_per_ip: peer address text -> io_peer. An accepted socket's io_peer waits in
     * pending[fd] until lws has made its wsi (SERVER_NEW_CLIENT_INSTANTIATED), then rides on the
     * wsi as opaque user data until WSI_DESTROY. */
    map peers;
    struct io_peer **pending;
    size_t npending;
    void *foreign_loops[1];
    struct lws_protocols protocols[2];
};

typedef struct io_peer {
    uint32_t count; /* accepted connections alive from this address */
    size_t klen;
    char key[INET6_ADDRSTRLEN];
} io_peer;

/* ---- per-address connection limit ---- */

/* The peer address of an accepted fd as text (IPv4-mapped IPv6 as plain IPv4, so one client
 * counts once however it arrives). Returns 0 or -1. */
static int peer_key(int fd, char out[INET6_ADDRSTRLEN])
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, INET6_ADDRSTRLEN)
                   ? 0
                   : -1;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return inet_ntop(AF_INET, &a->s6_addr[12], out, INET6_ADDRSTRLEN) ? 0 : -1;
        return inet_ntop(AF_INET6, a, out, INET6_ADDRSTRLEN) ? 0 : -1;
    }
    return -1;
}

static void peer_release(io_server *srv, io_peer *p)
{
    if (!p || p->count == 0)
        return;
    if (--p->count == 0) {
        map_del(&srv->peers, p->key, p->klen);
        free(p);
    }
}

/* FILTER_NETWORK_CONNECTION: count the new connection against its address. Returns 0 to accept
 * or -1 to close it (over the limit). Failures to tell the address accept uncounted. */
static int peer_admit(io_server *srv, int fd)
{
    if (!srv->opts.max_connections_per_ip || fd < 0 || (size_t)fd >= srv->npending)
        return 0;
    /* A previous socket on this fd that never got its wsi (failed adoption) is gone. */
    peer_release(srv, srv->pending[fd]);
    srv->pending[fd] = NULL;
    char key[INET6_ADDRSTRLEN];
    if (peer_key(fd, key) < 0)
        return 0;
    size_t klen = strlen(key);
    io_peer *p = map_get(&srv->peers, key, klen);
    if (p && p->count >= srv->opts.max_connections_per_ip) {
        metrics_add(srv->limit_hits, "connections_per_ip", 1);
        return -1;
    }
    if (!p) {
        if (!(p = calloc(1, sizeof(*p))))
            return 0;
        memcpy(p->key, key, klen + 1);
        p->klen = klen;
        if (map_put(&srv->peers, p->key, klen, p) < 0) {
            free(p);
            return 0;
        }
    }
    p->count++;
    srv->pending[fd] = p;
    return 0;
}

/* SERVER_NEW_CLIENT_INSTANTIATED: the accepted fd has its wsi now. */
static void peer_attach(io_server *srv, struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0 || (size_t)fd >= srv->npending || !srv->pending[fd])
        return;
    lws_set_opaque_user_data(wsi, srv->pending[fd]);
    srv->pending[fd] = NULL;
}

static void peers_free(io_server *srv)
{
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&srv->peers, &pos)))
        free(slot->value);
    map_deinit(&srv->peers);
    free(srv->pending);
    srv->pending = NULL;
}

/* ---- helpers ---- */

static uint64_t now_ms(io_server *srv)
{
    return uv_now(srv->loop);
}

static void random_id(char out[EIO_SID_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[EIO_SID_LEN];
    /* getrandom() only fails before the pool is initialised or on EINTR; retry. */
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            abort();
    }
    for (size_t i = 0; i < EIO_SID_LEN; i++)
        out[i] = alphabet[raw[i] & 63];
    out[EIO_SID_LEN] = 0;
}

static void make_id(char out[SIO_ID_LEN + 1], void *ud)
{
    (void)ud;
    _Static_assert(SIO_ID_LEN == EIO_SID_LEN, "one id generator serves both");
    random_id(out);
}

static bool origin_allowed(io_server *srv, const char *origin)
{
    if (!origin[0] || srv->any_origin)
        return true;
    for (size_t i = 0; i < srv->norigins; i++)
        if (strcmp(srv->origins[i], origin) == 0)
            return true;
    return false;
}

static int parse_origins(io_server *srv, const char *list)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if (t > p) {
            char *o = strndup(p, (size_t)(t - p));
            char **n = realloc(srv->origins, (srv->norigins + 1) * sizeof(char *));
            if (!o || !n) {
                free(o);
                if (n)
                    srv->origins = n;
                return -1;
            }
            srv->origins = n;
            if (strcmp(o, "*") == 0)
                srv->any_origin = true;
            srv->origins[srv->norigins++] = o;
        }
        p = e;
    }
    return 0;
}

static void free_origins(io_server *srv)
{
    for (size_t i = 0; i < srv->norigins; i++)
        free(srv->origins[i]);
    free(srv->origins);
    srv->origins = NULL;
    srv->norigins = 0;
    srv->any_origin = false;
}

int io_server_set_origins(io_server *srv, const char *list)
{
    char **old = srv->origins;
    size_t nold = srv->norigins;
    bool any = srv->any_origin;
    srv->origins = NULL;
    srv->norigins = 0;
    srv->any_origin = false;
    if (parse_origins(srv, list) < 0) {
        free_origins(srv);
        srv->origins = old;
        srv->norigins = nold;
        srv->any_origin = any;
        return -1;
    }
    for (size_t i = 0; i < nold; i++)
        free(old[i]);
    free(old);
    return 0;
}

/* ---- HTTP responses ---- */

/* Store a response in the pss and ask for WRITEABLE: headers go out on the first writeable
 * callback, the body on the second. */
/* Frees what a request's answer needed beside its body: extra headers and the Origin. */
static void free_extra(io_pss *pss)
{
    for (char **h = pss->extra; h && *h; h++)
        free(*h);
    free(pss->extra);
    pss->extra = NULL;
    free(pss->origin);
    pss->origin = NULL;
}

static int respond(struct lws *wsi, io_pss *pss, unsigned status, const char *ctype,
                   const void *body, size_t len)
{
    buf_deinit(&pss->body);
    if (buf_reserve(&pss->body, LWS_PRE + len + 1) < 0)
        return -1;
    memset(pss->body.data, 0, LWS_PRE);
    pss->body.len = LWS_PRE;
    if (len)
        buf_append(&pss->body, body, len);
    pss->status = (uint16_t)status;
    pss->ctype = ctype;
    pss->kind = PSS_RESPONSE;
    pss->phase = PHASE_HEADERS;
    lws_callback_on_writable(wsi);
    return 0;
}

/* An Engine.IO error answer (spec: the reference server's error codes). */
static int respond_error(struct lws *wsi, io_pss *pss, unsigned status, int code, const char *msg)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, msg);
    return respond(wsi, pss, status, "application/json", body, (size_t)n);
}

static int write_headers(struct lws *wsi, io_pss *pss)
{
    uint8_t hdr[LWS_PRE + 1024];
    uint8_t *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
    size_t len = pss->body.len - LWS_PRE;
    lws_filepos_t clen = pss->kind == PSS_STREAM ? LWS_ILLEGAL_HTTP_CONTENT_LEN : len;
    if (lws_add_http_common_headers(wsi, pss->status, pss->ctype, clen, &p, end))
        return -1;
    for (char **h = pss->extra; h && h[0] && h[1]; h += 2)
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)h[0], (const uint8_t *)h[1],
                                        (int)strlen(h[1]), &p, end))
            return -1;
    if (pss->cors) {
        const char *o = pss->origin;
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-origin:",
                                        (const uint8_t *)o, (int)strlen(o), &p, end) ||
            lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-credentials:",
                                        (const uint8_t *)"true", 4, &p, end) ||
            lws_add_http_header_by_name(wsi, (const uint8_t *)"vary:", (const uint8_t *)"Origin", 6,
                                        &p, end))
            return -1;
    }
    /* lws closes the connection after answering a request that said "Connection: close"; say so,
     * or keep-alive clients reuse the closed socket for their next request. */
    if (pss->conn_close && lws_add_http_header_by_name(wsi, (const uint8_t *)"connection:",
                                                       (const uint8_t *)"close", 5, &p, end))
        return -1;
    if (pss->status == HTTP_STATUS_NO_CONTENT) {
        static const char methods[] = "GET, POST";
        char req[256];
        int n = lws_hdr_copy(wsi, req, sizeof(req), WSI_TOKEN_HTTP_AC_REQUEST_HEADERS);
        if (lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-methods:",
                                        (const uint8_t *)methods, sizeof(methods) - 1, &p, end))
            return -1;
        if (n > 0 &&
            lws_add_http_header_by_name(wsi, (const uint8_t *)"access-control-allow-headers:",
                                        (const uint8_t *)req, n, &p, end))
            return -1;
    }
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* WRITEABLE for an open-ended response: send what is queued; once the owner ended the stream
 * and nothing is left, close the connection (there is no Content-Length to end it). */
static int write_stream(struct lws *wsi, io_pss *pss)
{
    io_http_req *req = pss->req;
    if (!req)
        return -1;
    size_t len = req->out.len > LWS_PRE ? req->out.len - LWS_PRE : 0;
    if (len) {
        if (lws_write(wsi, req->out.data + LWS_PRE, len, LWS_WRITE_HTTP) < (int)len)
            return -1;
        req->out.len = LWS_PRE;
    }
    return req->ending ? -1 : 0;
}

/* WRITEABLE for an HTTP response. Returns what the lws callback must return. */
static int write_response(struct lws *wsi, io_pss *pss)
{
    if (pss->phase == PHASE_HEADERS) {
        if (write_headers(wsi, pss) < 0)
            return -1;
        pss->phase = pss->kind == PSS_STREAM ? PHASE_STREAM : PHASE_BODY;
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (pss->phase == PHASE_STREAM)
        return write_stream(wsi, pss);
    if (pss->phase != PHASE_BODY)
        return 0;
    size_t len = pss->body.len - LWS_PRE;
    if (lws_write(wsi, pss->body.data + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) < (int)len)
        return -1;
    buf_deinit(&pss->body);
    free_extra(pss);
    pss->phase = PHASE_IDLE;
    pss->kind = PSS_NONE;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- connections ---- */

static void conn_arm(io_conn *c);
static void conn_destroy(io_conn *c);

static void conn_timer_cb(uv_timer_t *t)
{
    io_conn *c = t->data;
    if (c->closing) {
        conn_destroy(c);
        return;
    }
    const char *reason = NULL;
    if (sio_conn_tick(c->sc, now_ms(c->srv), &reason) < 0) {
        c->reason = reason;
        conn_destroy(c);
        return;
    }
    conn_arm(c);
}

/* Re-arm the connection's timer for the core's next deadline. */
static void conn_arm(io_conn *c)
{
    if (c->closing)
        return;
    uint64_t now = now_ms(c->srv), d = sio_conn_deadline(c->sc);
    uv_timer_start(&c->timer, conn_timer_cb, d > now ? d - now : 0, 0);
}

/* Ask for the connection to be closed from the loop, never in the middle of a core call. */
static void conn_close_soon(io_conn *c, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reason = reason;
    uv_timer_start(&c->timer, conn_timer_cb, 0, 0);
}

static void on_core_close(sio_conn *sc, void *io, const char *reason)
{
    (void)sc;
    io_conn *c = io;
    /* The core closes a reader whose send queue is full: a slow consumer. */
    if (!c->closing && reason && strcmp(reason, "send queue full") == 0)
        metrics_add(c->srv->slow_consumers, "socketio", 1);
    conn_close_soon(io, reason);
}

void io_server_connections(io_server *srv, uint32_t *polling, uint32_t *websocket)
{
    *polling = *websocket = 0;
    for (io_conn *c = srv->conns; c; c = c->next) {
        if (c->closing)
            continue;
        if (sio_conn_session(c->sc)->transport == EIO_TRANSPORT_WEBSOCKET)
            (*websocket)++;
        else
            (*polling)++;
    }
}

/* Complete a held GET: it will drain the queue when it becomes writeable. DESIGN.md: rx flow
 * must be re-enabled before asking for WRITEABLE, or the callback never comes. */
static void wake_get(io_conn *c)
{
    io_pss *pss = lws_wsi_user(c->get);
    if (pss->woken)
        return;
    pss->woken = true;
    lws_rx_flow_control(c->get, 1);
    lws_callback_on_writable(c->get);
}

static void flush_list(io_conn *c, bool bulk);

static void on_core_wake(sio_conn *sc, void *io, bool bulk)
{
    io_conn *c = io;
    eio_session *s = sio_conn_session(sc);
    if (s->transport == EIO_TRANSPORT_WEBSOCKET) {
        if (c->ws)
            flush_list(c, bulk);
    } else if (c->get) {
        wake_get(c);
    }
}

static void conn_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void flush_unlist(io_conn *c);

static void conn_unlink(io_conn *c)
{
    flush_unlist(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

/* Ask lws to close a WebSocket with a close frame. DESIGN.md: returning -1 from WRITEABLE sends
 * no close frame in lws 4.1.6; the close goes out from LWS_CALLBACK_TIMER instead. */
static void ws_close(struct lws *wsi, uint16_t code)
{
    io_pss *pss = lws_wsi_user(wsi);
    if (pss->close_sent)
        return;
    pss->close_sent = true;
    pss->close_code = code;
    lws_close_reason(wsi, (enum lws_close_status)code, NULL, 0);
    lws_set_timer_usecs(wsi, 1);
    lws_cancel_service(lws_get_context(wsi));
}

/* Tear the session down: the core's disconnect handlers run, the held GET is answered and the
 * WebSocket closed. */
static void conn_destroy(io_conn *c)
{
    io_server *srv = c->srv;
    log_debug("session closed", "sid=%s reason=\"%s\"", sio_conn_session(c->sc)->sid,
              c->reason ? c->reason : "");
    sio_conn_free(c->sc, c->reason ? c->reason : "closed");
    c->sc = NULL;
    if (c->get) {
        io_pss *pss = lws_wsi_user(c->get);
        pss->conn = NULL;
        /* A client that asked to close gets a noop; otherwise the pending GET learns of the
         * close from a close packet (spec: "Disconnection"). */
        const char *pkt = c->client_closed ? "6" : "1";
        lws_rx_flow_control(c->get, 1);
        respond(c->get, pss, HTTP_STATUS_OK, "text/plain; charset=UTF-8", pkt, 1);
        lws_set_timeout(c->get, PENDING_TIMEOUT_HTTP_CONTENT, (int)srv->opts.http_timeout);
        lws_cancel_service(srv->ctx);
        c->get = NULL;
    }
    if (c->ws) {
        io_pss *pss = lws_wsi_user(c->ws);
        pss->conn = NULL;
        ws_close(c->ws, LWS_CLOSE_STATUS_NORMAL);
        c->ws = NULL;
    }
    if (c->post) {
        io_pss *pss = lws_wsi_user(c->post);
        pss->conn = NULL;
        c->post = NULL;
    }
    conn_unlink(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_timer_closed);
}

static io_conn *conn_new(io_server *srv, eio_transport transport)
{
    io_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = srv;
    char sid[EIO_SID_LEN + 1];
    random_id(sid);
    c->sc = sio_conn_new(srv->sio, sid, transport, c, now_ms(srv));
    if (!c->sc) {
        free(c);
        return NULL;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    conn_arm(c);
    return c;
}

/* The open packet (spec: "Handshake"), as a frame. */
static frame *open_frame(io_server *srv, const char *sid, bool offer_ws)
{
    const eio_limits *lim = sio_server_limits(srv->sio);
    buf b;
    buf_init(&b);
    frame *f = NULL;
    if (eio_open_json(&b, sid, offer_ws, lim->ping_interval, lim->ping_timeout, lim->max_payload) ==
        0)
        f = frame_from(EIO_OPEN, false, b.data, b.len);
    buf_deinit(&b);
    return f;
}

/* Act on what the session state machine asked for after a packet. Returns -1 when the packet
 * closed the session (the caller must not touch `c` afterwards). */
static int conn_packet(io_conn *c, eio_transport via, const eio_packet *p)
{
    eio_session *s = sio_conn_session(c->sc);
    const char *reason = NULL;
    switch (eio_session_receive(s, via, p, now_ms(c->srv))) {
    case EIO_RX_NONE:
        break;
    case EIO_RX_MESSAGE:
        if (sio_conn_receive(c->sc, p, now_ms(c->srv), &reason) < 0) {
            log_debug("invalid packet", "sid=%s reason=\"%s\"", s->sid, reason);
            c->reason = reason;
            conn_destroy(c);
            return -1;
        }
        break;
    case EIO_RX_PROBE:
        if (c->ws) {
            io_pss *pss = lws_wsi_user(c->ws);
            pss->probe_reply = true;
            lws_callback_on_writable(c->ws);
        }
        /* Release a held GET with a noop so the client can pause polling (spec: "Upgrade"). */
        if (c->get)
            wake_get(c);
        break;
    case EIO_RX_UPGRADED:
        if (c->get)
            wake_get(c);
        if (c->ws)
            lws_callback_on_writable(c->ws);
        break;
    case EIO_RX_CLOSE:
        c->client_closed = true;
        c->reason = "client close";
        conn_destroy(c);
        return -1;
    case EIO_RX_ERROR:
        c->reason = "protocol violation";
        conn_destroy(c);
        return -1;
    }
    conn_arm(c);
    return 0;
}

/* ---- query arguments ---- */

typedef struct io_query {
    char eio[8];
    char transport[16];
    char sid[IO_ARG_MAX];
    bool has_eio, has_transport, has_sid;
    bool bad; /* an argument we care about was repeated or too long */
} io_query;

static void query_take(char *dst, size_t cap, bool *has, bool *bad, const char *v)
{
    if (*has || strlen(v) >= cap) {
        *bad = true;
        return;
    }
    *has = true;
    strcpy(dst, v);
}

static void query_parse(struct lws *wsi, io_query *q)
{
    memset(q, 0, sizeof(*q));
    char frag[4096];
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) {
            /* Either past the last fragment or one longer than our buffer. */
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
                q->bad = true;
            break;
        }
        if (n == 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) == 0)
            break;
        if (strncmp(frag, "EIO=", 4) == 0)
            query_take(q->eio, sizeof(q->eio), &q->has_eio, &q->bad, frag + 4);
        else if (strncmp(frag, "transport=", 10) == 0)
            query_take(q->transport, sizeof(q->transport), &q->has_transport, &q->bad, frag + 10);
        else if (strncmp(frag, "sid=", 4) == 0) {
            /* An overlong sid names no session: answer "Session ID unknown", not "Bad request". */
            bool too_long = false;
            query_take(q->sid, sizeof(q->sid), &q->has_sid, &too_long, frag + 4);
            if (too_long && !q->has_sid)
                q->has_sid = true;
            else
                q->bad |= too_long;
        }
    }
}

static bool path_matches(io_server *srv, struct lws *wsi, int token)
{
    char uri[300];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), (enum lws_token_indexes)token);
    if (n <= 0)
        return false;
    size_t plen = strlen(srv->path);
    /* Accept the path with or without its trailing slash, as the reference server does. */
    return strcmp(uri, srv->path) == 0 ||
           ((size_t)n == plen - 1 && strncmp(uri, srv->path, plen - 1) == 0);
}

static io_conn *find_conn(io_server *srv, const io_query *q)
{
    if (strlen(q->sid) != EIO_SID_LEN)
        return NULL;
    sio_conn *sc = sio_server_find(srv->sio, q->sid, EIO_SID_LEN);
    return sc ? sio_conn_io(sc) : NULL;
}

/* ---- HTTP long-polling ---- */

static int http_handshake(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (sio_server_conn_count(srv->sio) >= srv->opts.max_connections)
        return respond_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, 3, "Server full");
    io_conn *c = conn_new(srv, EIO_TRANSPORT_POLLING);
    if (!c)
        return respond_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, 3, "Out of memory");
    frame *f = open_frame(srv, sio_conn_session(c->sc)->sid, true);
    if (!f) {
        c->reason = "out of memory";
        conn_destroy(c);
        return respond_error(wsi, pss, HTTP_STATUS_SERVICE_UNAVAILABLE, 3, "Out of memory");
    }
    int rc = respond(wsi, pss, HTTP_STATUS_OK, "text/plain; charset=UTF-8",
                     f->bytes + FRAME_HEADROOM, (size_t)f->len + 1);
    frame_unref(f);
    return rc;
}

static int http_poll_get(io_server *srv, struct lws *wsi, io_pss *pss, io_conn *c)
{
    if (c->get) {
        /* A second concurrent GET is a protocol violation (spec: "HTTP long-polling"): answer it
         * with 400 and close the session, which answers the first one with a close packet. */
        c->reason = "duplicate poll";
        conn_destroy(c);
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    }
    eio_session *s = sio_conn_session(c->sc);
    pss->conn = c;
    pss->kind = PSS_HELD;
    pss->woken = false;
    c->get = wsi;
    /* DESIGN.md: a held GET must not be timed out by lws, and rx is paused while it is held. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    lws_rx_flow_control(wsi, 0);
    if (s->out.count || s->upgrade != EIO_UPGRADE_NONE)
        wake_get(c);
    (void)srv;
    return 0;
}

/* WRITEABLE for a held GET: answer with every queued packet, or a noop when the session is being
 * upgraded and has nothing to send. */
static int write_held(struct lws *wsi, io_pss *pss)
{
    io_conn *c = pss->conn;
    if (!c || !pss->woken)
        return 0;
    eio_session *s = sio_conn_session(c->sc);
    buf payload;
    buf_init(&payload);
    int rc = eio_session_drain_payload(s, &payload);
    if (rc == 0 && payload.len == 0)
        rc = eio_payload_append(&payload, EIO_NOOP, false, NULL, 0);
    c->get = NULL;
    pss->conn = NULL;
    if (rc == 0)
        rc = respond(wsi, pss, HTTP_STATUS_OK, "text/plain; charset=UTF-8", payload.data,
                     payload.len);
    buf_deinit(&payload);
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)c->srv->opts.http_timeout);
    if (rc < 0)
        return -1;
    return write_response(wsi, pss);
}

static int http_poll_post_begin(io_server *srv, struct lws *wsi, io_pss *pss, io_conn *c)
{
    char ctype[128];
    if (lws_hdr_copy(wsi, ctype, sizeof(ctype), WSI_TOKEN_HTTP_CONTENT_TYPE) > 0 &&
        strncmp(ctype, "application/octet-stream", 24) == 0)
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    char clen[24];
    if (lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
        strtoull(clen, NULL, 10) > sio_server_limits(srv->sio)->max_payload)
        return respond_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, 3, "Payload too large");
    if (c->post) {
        /* Two POSTs at once: a protocol violation that ends the session. */
        c->reason = "duplicate post";
        conn_destroy(c);
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    }
    c->post = wsi;
    pss->conn = c;
    pss->kind = PSS_POST;
    buf_deinit(&pss->body);
    return 0;
}

static int http_poll_body(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len)
{
    if (pss->kind != PSS_POST)
        return 0;
    if (pss->body.len + len > sio_server_limits(srv->sio)->max_payload) {
        if (pss->conn)
            pss->conn->post = NULL;
        pss->kind = PSS_NONE;
        pss->conn = NULL;
        buf_deinit(&pss->body);
        return respond_error(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, 3, "Payload too large");
    }
    return buf_append(&pss->body, in, len);
}

static int http_poll_body_done(struct lws *wsi, io_pss *pss)
{
    if (pss->kind != PSS_POST)
        return 0;
    io_conn *c = pss->conn;
    pss->conn = NULL;
    pss->kind = PSS_NONE;
    buf body = pss->body;
    buf_init(&pss->body);
    int rc;
    /* The session may have been closed while the body was arriving (conn_destroy() then
     * cleared pss->conn). */
    if (c)
        c->post = NULL;
    if (!c || c->closing) {
        rc = respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 1, "Session ID unknown");
        buf_deinit(&body);
        return rc;
    }
    /* Decode the whole payload before acting on any packet: an invalid payload is refused as a
     * whole (400), as the reference server does. */
    size_t max = 1;
    for (size_t i = 0; i < body.len; i++)
        max += body.data[i] == EIO_SEPARATOR;
    if (max > IO_MAX_POLL_PACKETS)
        max = IO_MAX_POLL_PACKETS + 1;
    eio_packet *pkts = malloc(max * sizeof(*pkts));
    eio_payload_iter it;
    eio_payload_iter_init(&it, body.data, body.len, IO_MAX_POLL_PACKETS);
    size_t n = 0;
    int more = pkts ? 1 : EIO_ERR_NOMEM;
    while (more > 0 && (more = eio_payload_next(&it, &pkts[n])) > 0)
        n++;
    if (more < 0) {
        log_debug("invalid payload", "err=\"%s\"", eio_strerror(more));
        c->reason = "invalid payload";
        conn_destroy(c);
        rc = respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    } else {
        for (size_t i = 0; i < n; i++)
            if (conn_packet(c, EIO_TRANSPORT_POLLING, &pkts[i]) < 0)
                break;
        rc = respond(wsi, pss, HTTP_STATUS_OK, "text/html", "ok", 2);
    }
    free(pkts);
    buf_deinit(&body);
    return rc;
}

/* ---- plain HTTP requests (io_http.h) ---- */

static bool is_method(struct lws *wsi, enum lws_token_indexes t);

static const struct {
    enum lws_token_indexes token;
    const char *name;
} http_methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_PATCH_URI, "PATCH"},
    {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

static void http_req_free(io_http_req *req)
{
    for (size_t i = 0; i < req->nargs; i++)
        free(req->args[i]);
    free(req->args);
    free(req->path);
    buf_deinit(&req->body);
    buf_deinit(&req->out);
    free(req);
}

/* Copy what a handler may ask about the request while lws still has the headers. */
static io_http_req *http_req_new(io_server *srv, struct lws *wsi)
{
    io_http_req *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->wsi = wsi;
    req->srv = srv;
    req->listener = lws_get_vhost(wsi) == srv->admin_vhost ? 1 : 0;
    enum lws_token_indexes token = WSI_TOKEN_GET_URI;
    for (size_t i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
        if (is_method(wsi, http_methods[i].token)) {
            token = http_methods[i].token;
            snprintf(req->method, sizeof(req->method), "%s", http_methods[i].name);
            break;
        }
    int n = lws_hdr_total_length(wsi, token);
    if (!(req->path = malloc((size_t)n + 1)) || lws_hdr_copy(wsi, req->path, n + 1, token) < 0)
        goto fail;
    char frag[4096];
    for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (!frag[0])
            break;
        char **na = realloc(req->args, (req->nargs + 1) * sizeof(*na));
        if (!na)
            goto fail;
        req->args = na;
        if (!(req->args[req->nargs] = strdup(frag)))
            goto fail;
        req->nargs++;
    }
    /* An argument longer than our buffer: keep a marker so handlers refuse the request. */
    if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, (int)req->nargs) > 0) {
        char **na = realloc(req->args, (req->nargs + 1) * sizeof(*na));
        if (!na || !(na[req->nargs] = strdup("\x01toolong")))
            goto fail;
        req->args = na;
        req->nargs++;
    }
    lws_hdr_copy(wsi, req->authorization, sizeof(req->authorization), WSI_TOKEN_HTTP_AUTHORIZATION);
    lws_hdr_copy(wsi, req->content_type, sizeof(req->content_type), WSI_TOKEN_HTTP_CONTENT_TYPE);
    if (lws_hdr_custom_copy(wsi, req->last_event_id, sizeof(req->last_event_id),
                            "last-event-id:", 14) < 0)
        req->last_event_id[0] = 0;
    return req;
fail:
    http_req_free(req);
    return NULL;
}

#define TOO_LARGE_JSON                                                                             \
    "{\"error\":{\"code\":\"too_large\",\"message\":\"Body over max_http_body\"}}"

/* LWS_CALLBACK_HTTP for anything that is not Engine.IO: collect the body if one comes, then hand
 * the request to the handler. */
static int http_api_request(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (!srv->opts.http_handler)
        return respond(wsi, pss, HTTP_STATUS_NOT_FOUND, "application/json",
                       "{\"error\":{\"code\":\"not_found\",\"message\":\"Not found\"}}", 52);
    io_http_req *req = http_req_new(srv, wsi);
    if (!req)
        return -1;
    pss->req = req;
    char clen[24];
    bool has_body = lws_hdr_copy(wsi, clen, sizeof(clen), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                    strtoull(clen, NULL, 10) > 0;
    if (has_body && strtoull(clen, NULL, 10) > srv->opts.max_http_body) {
        pss->req = NULL;
        http_req_free(req);
        return respond(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "application/json",
                       TOO_LARGE_JSON, sizeof(TOO_LARGE_JSON) - 1);
    }
    if (has_body) {
        pss->kind = PSS_API_BODY;
        return 0;
    }
    pss->kind = PSS_API_WAIT;
    srv->opts.http_handler(req, srv->opts.http_ud);
    return 0;
}

static int http_api_body(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len)
{
    io_http_req *req = pss->req;
    if (req->body.len + len > srv->opts.max_http_body) {
        pss->req = NULL;
        http_req_free(req);
        return respond(wsi, pss, HTTP_STATUS_REQ_ENTITY_TOO_LARGE, "application/json",
                       TOO_LARGE_JSON, sizeof(TOO_LARGE_JSON) - 1);
    }
    return buf_append(&req->body, in, len);
}

static void http_api_body_done(io_server *srv, io_pss *pss)
{
    pss->kind = PSS_API_WAIT;
    srv->opts.http_handler(pss->req, srv->opts.http_ud);
}

/* The client of a plain HTTP request went away: tell a stream's owner; the owner still ends
 * the request. */
static void http_api_gone(io_pss *pss)
{
    io_http_req *req = pss->req;
    pss->req = NULL;
    if (!req)
        return;
    req->wsi = NULL;
    /* A body still arriving means the handler never saw the request: nobody else frees it. */
    if (req->ending || pss->kind == PSS_API_BODY) {
        http_req_free(req);
        return;
    }
    if (req->on_close)
        req->on_close(req, req->close_ud);
}

const char *io_http_method(const io_http_req *req)
{
    return req->method;
}

const char *io_http_path(const io_http_req *req)
{
    return req->path;
}

size_t io_http_query_count(const io_http_req *req)
{
    return req->nargs;
}

const char *io_http_query_arg(const io_http_req *req, size_t i)
{
    return i < req->nargs ? req->args[i] : NULL;
}

const char *io_http_authorization(const io_http_req *req)
{
    return req->authorization;
}

const char *io_http_last_event_id(const io_http_req *req)
{
    return req->last_event_id;
}

const char *io_http_content_type(const io_http_req *req)
{
    return req->content_type;
}

const uint8_t *io_http_body(const io_http_req *req, size_t *len)
{
    *len = req->body.len;
    return req->body.data;
}

int io_http_listener(const io_http_req *req)
{
    return req->listener;
}

bool io_http_alive(const io_http_req *req)
{
    return req->wsi != NULL;
}

static char **copy_headers(const char *const *headers)
{
    size_t n = 0;
    while (headers && headers[n])
        n++;
    if (!n)
        return NULL;
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out && i < n; i++)
        out[i] = strdup(headers[i]);
    return out;
}

void io_http_respond(io_http_req *req, unsigned status, const char *content_type,
                     const char *const *headers, const void *body, size_t len)
{
    struct lws *wsi = req->wsi;
    if (wsi) {
        io_pss *pss = lws_wsi_user(wsi);
        pss->req = NULL;
        respond(wsi, pss, status, content_type, body, len);
        pss->extra = copy_headers(headers);
        /* Answered from outside a callback (after a store round trip): wake lws. */
        lws_cancel_service(req->srv->ctx);
    }
    http_req_free(req);
}

int io_http_stream_start(io_http_req *req, const char *content_type, io_http_close_fn on_close,
                         void *ud)
{
    struct lws *wsi = req->wsi;
    if (!wsi || req->streaming)
        return -1;
    io_pss *pss = lws_wsi_user(wsi);
    if (respond(wsi, pss, HTTP_STATUS_OK, content_type, NULL, 0) < 0 ||
        buf_reserve(&req->out, LWS_PRE + 256) < 0)
        return -1;
    static const char *const sse_headers[] = {"cache-control:", "no-cache",
                                              "x-accel-buffering:", "no", NULL};
    pss->extra = copy_headers(sse_headers);
    pss->kind = PSS_STREAM;
    req->streaming = true;
    req->on_close = on_close;
    req->close_ud = ud;
    memset(req->out.data, 0, LWS_PRE);
    req->out.len = LWS_PRE;
    /* A stream lives as long as both sides want it: no lws timeout. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    lws_cancel_service(req->srv->ctx);
    return 0;
}

int io_http_stream_write(io_http_req *req, const void *data, size_t len, size_t max_queued)
{
    if (!req->wsi || !req->streaming || req->ending)
        return -1;
    if (req->out.len - LWS_PRE + len > max_queued) {
        io_http_stream_end(req);
        return -1;
    }
    if (buf_append(&req->out, data, len) < 0)
        return -1;
    lws_callback_on_writable(req->wsi);
    return 0;
}

void io_http_stream_end(io_http_req *req)
{
    if (req->ending)
        return;
    req->ending = true;
    if (!req->wsi) {
        http_req_free(req);
        return;
    }
    /* The request is freed when the connection closes (http_api_gone). */
    lws_callback_on_writable(req->wsi);
    lws_cancel_service(req->srv->ctx);
}

static bool is_method(struct lws *wsi, enum lws_token_indexes t)
{
    return lws_hdr_total_length(wsi, t) > 0;
}

/* LWS_CALLBACK_HTTP: route one request. Checks follow the reference server's order: transport,
 * session id, then (handshake only) method and protocol version. */
static int http_request(io_server *srv, struct lws *wsi, io_pss *pss)
{
    buf_deinit(&pss->body);
    free_extra(pss);
    memset(pss, 0, sizeof(*pss));
    char conn_hdr[32];
    pss->conn_close = lws_hdr_copy(wsi, conn_hdr, sizeof(conn_hdr), WSI_TOKEN_CONNECTION) > 0 &&
                      strcasecmp(conn_hdr, "close") == 0;
    bool get = is_method(wsi, WSI_TOKEN_GET_URI), post = is_method(wsi, WSI_TOKEN_POST_URI);
    bool options = is_method(wsi, WSI_TOKEN_OPTIONS_URI);
    int uri_token = get       ? WSI_TOKEN_GET_URI
                    : post    ? WSI_TOKEN_POST_URI
                    : options ? WSI_TOKEN_OPTIONS_URI
                              : WSI_TOKEN_PUT_URI;
    /* Engine.IO lives at `path` on the main listener; everything else is the HTTP API's. */
    bool eio = lws_get_vhost(wsi) != srv->admin_vhost &&
               (path_matches(srv, wsi, uri_token) ||
                (uri_token == WSI_TOKEN_PUT_URI && (path_matches(srv, wsi, WSI_TOKEN_PATCH_URI) ||
                                                    path_matches(srv, wsi, WSI_TOKEN_DELETE_URI))));
    if (!eio)
        return http_api_request(srv, wsi, pss);
    char origin[IO_ORIGIN_MAX];
    int olen = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (olen < 0 || !origin_allowed(srv, olen > 0 ? origin : ""))
        return respond_error(wsi, pss, HTTP_STATUS_FORBIDDEN, 4, "Forbidden");
    if (olen > 0 && !(pss->origin = strdup(origin)))
        return -1;
    pss->cors = olen > 0;
    if (options)
        return respond(wsi, pss, HTTP_STATUS_NO_CONTENT, "text/plain", NULL, 0);
    io_query q;
    query_parse(wsi, &q);
    if (q.bad)
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    if (strcmp(q.transport, "polling") != 0 && strcmp(q.transport, "websocket") != 0)
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 0, "Transport unknown");
    if (q.has_sid) {
        io_conn *c = find_conn(srv, &q);
        if (!c || c->closing)
            return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 1, "Session ID unknown");
        /* A WebSocket request that reached plain HTTP (no Upgrade), or polling on a session
         * that already moved to WebSocket. */
        if (strcmp(q.transport, "polling") != 0 ||
            sio_conn_session(c->sc)->transport != EIO_TRANSPORT_POLLING)
            return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
        if (get)
            return http_poll_get(srv, wsi, pss, c);
        if (post)
            return http_poll_post_begin(srv, wsi, pss, c);
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    }
    if (!get)
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 2, "Bad handshake method");
    if (strcmp(q.eio, "4") != 0)
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 5, "Unsupported protocol version");
    if (strcmp(q.transport, "polling") != 0)
        return respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    return http_handshake(srv, wsi, pss);
}

/* ---- WebSocket ---- */

/* Refuse an upgrade with a real HTTP answer before the 101, so the client sees why. */
static int ws_refuse(struct lws *wsi, unsigned status, const char *body)
{
    char resp[512];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s",
                     status, status == 403 ? "Forbidden" : "Bad Request", strlen(body), body);
    uint8_t out[LWS_PRE + sizeof(resp)];
    memcpy(out + LWS_PRE, resp, (size_t)n);
    lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
    return 1;
}

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: every check on a WebSocket upgrade happens here
 * (DESIGN.md: not in CONFIRM_UPGRADE). Returns nonzero to refuse. */
static int ws_filter(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (srv->shutting_down)
        return 1;
    if (lws_get_vhost(wsi) == srv->admin_vhost || !path_matches(srv, wsi, WSI_TOKEN_GET_URI))
        return ws_refuse(wsi, 400, "{\"code\":3,\"message\":\"Bad request\"}");
    char origin[IO_ORIGIN_MAX];
    int olen = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (olen < 0 || !origin_allowed(srv, olen > 0 ? origin : ""))
        return ws_refuse(wsi, 403, "{\"code\":4,\"message\":\"Forbidden\"}");
    io_query q;
    query_parse(wsi, &q);
    if (q.bad || strcmp(q.transport, "websocket") != 0)
        return ws_refuse(wsi, 400, "{\"code\":0,\"message\":\"Transport unknown\"}");
    if (strcmp(q.eio, "4") != 0)
        return ws_refuse(wsi, 400, "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
    memset(pss, 0, sizeof(*pss));
    pss->kind = PSS_WS;
    if (q.has_sid) {
        io_conn *c = find_conn(srv, &q);
        if (!c || c->closing)
            return ws_refuse(wsi, 400, "{\"code\":1,\"message\":\"Session ID unknown\"}");
        /* A second upgrade of the same session is accepted and then closed at once in
         * ws_established(), as the reference server does. */
        memcpy(pss->sid, q.sid, EIO_SID_LEN + 1);
    } else if (sio_server_conn_count(srv->sio) >= srv->opts.max_connections) {
        return ws_refuse(wsi, 503, "{\"code\":3,\"message\":\"Server full\"}");
    }
    return 0;
}

static int ws_established(io_server *srv, struct lws *wsi, io_pss *pss)
{
    if (pss->sid[0]) {
        io_query q = {0};
        memcpy(q.sid, pss->sid, EIO_SID_LEN + 1);
        io_conn *c = find_conn(srv, &q);
        /* Only one probe per session, and only from polling (spec: "Upgrade"). */
        eio_session *s = c ? sio_conn_session(c->sc) : NULL;
        if (!c || c->closing || c->ws || s->transport != EIO_TRANSPORT_POLLING ||
            s->upgrade != EIO_UPGRADE_NONE) {
            ws_close(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION);
            return 0;
        }
        c->ws = wsi;
        pss->conn = c;
        return 0;
    }
    io_conn *c = conn_new(srv, EIO_TRANSPORT_WEBSOCKET);
    if (!c)
        return -1;
    c->ws = wsi;
    pss->conn = c;
    frame *f = open_frame(srv, sio_conn_session(c->sc)->sid, false);
    if (!f || sio_conn_send(c->sc, f) < 0) {
        frame_unref(f);
        c->reason = "out of memory";
        conn_destroy(c);
        return 0;
    }
    frame_unref(f);
    return 0;
}

static void ws_message(io_conn *c, io_pss *pss)
{
    eio_session *s = sio_conn_session(c->sc);
    eio_packet p;
    int rc = eio_packet_decode_ws(pss->body.data, pss->body.len, pss->rx_binary, &p);
    if (rc < 0) {
        log_debug("invalid packet", "sid=%s err=\"%s\"", s->sid, eio_strerror(rc));
        c->reason = "invalid packet";
        conn_destroy(c);
        return;
    }
    conn_packet(c, EIO_TRANSPORT_WEBSOCKET, &p);
}

/* The header of an unmasked server frame with FIN set (RFC 6455 §5.2). Returns its length. */
static size_t ws_frame_header(uint8_t *out, bool binary, size_t len)
{
    out[0] = 0x80 | (binary ? 0x2 : 0x1);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* Write the oldest queued message. Returns 0, or -1 when the connection must be dropped. */
static int ws_send_one(struct lws *wsi, eio_session *s)
{
    frame *f = fq_pop(&s->out);
    if (!f)
        return 0;
    uint8_t *msg;
    size_t len;
    frame_ws_message(f, &msg, &len);
    int n = lws_write(wsi, msg, len, f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    frame_unref(f);
    return n < (int)len ? -1 : 0;
}

/* Write queued messages, framed here and coalesced into one send() of at most IO_WS_BATCH bytes
 * (a burst of broadcasts costs one system call per recipient, not one per frame). A message too
 * big for the batch goes alone through lws's framing. A short write is kept by lws and finished
 * before anything else is written. Returns 0, or -1 when the connection must be dropped. */
static int ws_send_batch(io_server *srv, struct lws *wsi, eio_session *s)
{
    uint8_t *out = srv->batch + LWS_PRE;
    size_t n = 0;
    frame *f;
    while ((f = fq_peek(&s->out))) {
        uint8_t *msg;
        size_t len;
        frame_ws_message(f, &msg, &len);
        if (n + 10 + len > IO_WS_BATCH) {
            if (n)
                break;
            return ws_send_one(wsi, s);
        }
        n += ws_frame_header(out + n, f->binary, len);
        memcpy(out + n, msg, len);
        n += len;
        frame_unref(fq_pop(&s->out));
    }
    return n && lws_write(wsi, out, n, LWS_WRITE_RAW) < (int)n ? -1 : 0;
}

/* ---- the flush lists ----
 * Frames queued on a WebSocket session (an answer, a broadcast, a ping) are written after the I/O
 * callbacks that queued them, straight to the socket while the kernel takes them: no WRITEABLE
 * round trip (two epoll_ctl calls and a loop turn per frame). Only a session whose socket is
 * choked, or that has more queued than one batch, asks lws for WRITEABLE.
 *
 * Sessions that got a frame of their own (an answer, a ping) are written in the same loop
 * iteration. Sessions that only got broadcast frames are written in the same iteration too,
 * unless the previous bulk flush took long (a broadcast to thousands of sockets): then they wait
 * as long as it took. Broadcasts queued meanwhile leave together, one send() per socket for all
 * of them, and under a stream of broadcasts writing takes about half of the loop's time, the rest
 * going to connects, commands and the store. Light traffic never waits. */

static void flush_idle_cb(uv_idle_t *h);
static void flush_timer_cb(uv_timer_t *t);

static io_conn **flush_head(io_server *srv, uint8_t list)
{
    return list == FLUSH_NOW ? &srv->flush_now : &srv->flush_bulk;
}

/* Make the loop come back for the lists: at once, or when the bulk list's wait is over. */
static void flush_arm(io_server *srv)
{
    uint64_t now = uv_hrtime();
    if (srv->flush_now || (srv->flush_bulk && now >= srv->bulk_after)) {
        uv_idle_start(&srv->flush_idle, flush_idle_cb);
    } else if (srv->flush_bulk && !uv_is_active((uv_handle_t *)&srv->flush_timer)) {
        uv_timer_start(&srv->flush_timer, flush_timer_cb, (srv->bulk_after - now) / 1000000 + 1, 0);
    }
}

static void flush_unlist(io_conn *c)
{
    if (c->flush_on == FLUSH_NONE)
        return;
    if (c->fprev)
        c->fprev->fnext = c->fnext;
    else
        *flush_head(c->srv, c->flush_on) = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    c->flush_on = FLUSH_NONE;
    c->fprev = c->fnext = NULL;
}

static void flush_list(io_conn *c, bool bulk)
{
    io_server *srv = c->srv;
    uint8_t want = bulk ? FLUSH_BULK : FLUSH_NOW;
    if (c->flush_on == FLUSH_NOW || c->flush_on == want)
        return;
    /* Paced output (the conformance presets) stays one message per WRITEABLE. */
    if (srv->opts.frame_gap_us) {
        lws_callback_on_writable(c->ws);
        return;
    }
    flush_unlist(c); /* from the bulk list to the one written now */
    io_conn **head = flush_head(srv, want);
    bool was_empty = *head == NULL;
    c->flush_on = want;
    c->fprev = NULL;
    c->fnext = *head;
    if (*head)
        (*head)->fprev = c;
    *head = c;
    /* A broadcast lists thousands of sessions: the loop is armed by the first of each list
     * (and again by flush_all for whatever it leaves). */
    if (was_empty)
        flush_arm(srv);
}

static void ws_flush(io_conn *c)
{
    struct lws *wsi = c->ws;
    if (!wsi || c->closing)
        return;
    io_pss *pss = lws_wsi_user(wsi);
    eio_session *s = sio_conn_session(c->sc);
    if (pss->close_sent || s->transport != EIO_TRANSPORT_WEBSOCKET || !s->out.count)
        return;
    /* Output lws still holds from a short write goes first. (lws_send_pipe_choked() would cost a
     * poll() per call; a full socket shows up as a short write, whose rest lws keeps.) */
    if (pss->probe_reply || lws_partial_buffered(wsi)) {
        lws_callback_on_writable(wsi);
        return;
    }
    if (ws_send_batch(c->srv, wsi, s) < 0) {
        c->reason = "write failed";
        conn_destroy(c);
        return;
    }
    if (s->out.count)
        lws_callback_on_writable(wsi);
}

static void flush_drain(io_server *srv, uint8_t list)
{
    io_conn *c;
    while ((c = *flush_head(srv, list))) {
        flush_unlist(c);
        ws_flush(c);
    }
}

static void flush_all(io_server *srv)
{
    uv_idle_stop(&srv->flush_idle);
    flush_drain(srv, FLUSH_NOW);
    uint64_t t0 = uv_hrtime();
    if (srv->flush_bulk && t0 >= srv->bulk_after) {
        flush_drain(srv, FLUSH_BULK);
        uint64_t t1 = uv_hrtime();
        srv->bulk_after = t1 - t0 >= IO_FLUSH_LONG_NS ? t1 + (t1 - t0) : 0;
    }
    if (srv->flush_now || srv->flush_bulk)
        flush_arm(srv);
}

static void flush_timer_cb(uv_timer_t *t)
{
    io_server *srv = t->data;
    srv->bulk_after = 0; /* the loop's clock may run behind uv_hrtime(): the wait is over */
    flush_all(srv);
}

static void flush_check_cb(uv_check_t *h)
{
    flush_all(h->data);
}

static void flush_idle_cb(uv_idle_t *h)
{
    flush_all(h->data);
}

static int ws_receive(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len)
{
    io_conn *c = pss->conn;
    if (!c || pss->close_sent)
        return 0;
    if (lws_is_first_fragment(wsi)) {
        pss->body.len = 0;
        pss->rx_binary = lws_frame_is_binary(wsi);
    }
    if (pss->body.len + len > sio_server_limits(srv->sio)->max_payload) {
        /* The spec's maxPayload, enforced on the reassembled message: close 1009. */
        pss->conn = NULL;
        if (c->ws == wsi)
            c->ws = NULL;
        c->reason = "message too big";
        conn_destroy(c);
        ws_close(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE);
        return 0;
    }
    if (buf_append(&pss->body, in, len) < 0)
        return -1;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    ws_message(c, pss);
    /* An idle WebSocket holds no receive buffer: most receive a message now and then, and every
     * connection's bytes count. */
    buf_deinit(&pss->body);
    return 0;
}

static int ws_writeable(struct lws *wsi, io_pss *pss)
{
    io_conn *c = pss->conn;
    if (pss->close_sent || !c)
        return 0;
    if (pss->probe_reply) {
        static uint8_t probe[LWS_PRE + 6];
        memcpy(probe + LWS_PRE, "3probe", 6);
        pss->probe_reply = false;
        return lws_write(wsi, probe + LWS_PRE, 6, LWS_WRITE_TEXT) < 6 ? -1 : 0;
    }
    eio_session *s = sio_conn_session(c->sc);
    if (s->transport != EIO_TRANSPORT_WEBSOCKET || !s->out.count)
        return 0;
    uint32_t gap = c->srv->opts.frame_gap_us;
    if (gap) {
        /* Paced output: one message per WRITEABLE, at least `gap` µs apart. */
        uint64_t since = (uv_hrtime() - pss->last_write_ns) / 1000;
        if (since < gap) {
            lws_set_timer_usecs(wsi, (lws_usec_t)(gap - since));
            return 0;
        }
        pss->last_write_ns = uv_hrtime();
        if (ws_send_one(wsi, s) < 0)
            return -1;
    } else if (ws_send_batch(c->srv, wsi, s) < 0) {
        return -1;
    }
    if (s->out.count)
        lws_callback_on_writable(wsi);
    return 0;
}

static void ws_closed(struct lws *wsi, io_pss *pss)
{
    io_conn *c = pss->conn;
    buf_deinit(&pss->body);
    free_extra(pss);
    if (!c)
        return;
    pss->conn = NULL;
    if (c->ws != wsi)
        return;
    c->ws = NULL;
    eio_session *s = sio_conn_session(c->sc);
    if (s->transport == EIO_TRANSPORT_WEBSOCKET) {
        c->reason = "transport close";
        conn_destroy(c);
    } else {
        /* A probe that went away: the session carries on over polling. */
        s->upgrade = EIO_UPGRADE_NONE;
    }
}

/* ---- the lws callback ---- */

static void http_dropped(io_pss *pss, struct lws *wsi)
{
    io_conn *c = pss->conn;
    if (c && c->get == wsi)
        c->get = NULL;
    if (c && c->post == wsi)
        c->post = NULL;
    pss->conn = NULL;
    http_api_gone(pss);
    free_extra(pss);
    pss->kind = PSS_NONE;
    buf_deinit(&pss->body);
}

/* A TCP connection was accepted (by lws, or by accept_cb): keep it or not. Closing at once
 * keeps fds free for the daemon's own use. A refused connection gets no WSI_DESTROY, so only
 * kept ones are counted. Returns 0 to keep it, -1 to close it. */
static int conn_admit(io_server *srv, int fd)
{
    if (srv->sockets >= srv->max_sockets || srv->shutting_down)
        return -1;
    if (peer_admit(srv, fd) < 0)
        return -1;
    srv->sockets++;
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    io_pss *pss = user;
    struct lws_vhost *vh = lws_get_vhost(wsi);
    io_server *srv = vh ? lws_vhost_user(vh) : NULL;
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return conn_admit(srv, (int)(lws_intptr_t)in);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (srv)
            peer_attach(srv, wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (srv && srv->sockets)
            srv->sockets--;
        if (srv && lws_get_opaque_user_data(wsi)) {
            peer_release(srv, lws_get_opaque_user_data(wsi));
            lws_set_opaque_user_data(wsi, NULL);
        }
        return 0;
    case LWS_CALLBACK_HTTP:
        if (http_request(srv, wsi, pss) < 0)
            return -1;
        /* A POST's body follows; everything else has its answer queued or is held. */
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->kind == PSS_API_BODY)
            return http_api_body(srv, wsi, pss, in, len) < 0 ? -1 : 0;
        return http_poll_body(srv, wsi, pss, in, len) < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->kind == PSS_API_BODY) {
            http_api_body_done(srv, pss);
            return 0;
        }
        return http_poll_body_done(wsi, pss) < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (pss->kind == PSS_HELD)
            return write_held(wsi, pss);
        if (pss->kind == PSS_RESPONSE || pss->kind == PSS_STREAM)
            return write_response(wsi, pss);
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss)
            http_dropped(pss, wsi);
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_filter(srv, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(srv, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return ws_receive(srv, wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(wsi, pss);
    case LWS_CALLBACK_TIMER:
        /* The deferred close of ws_close(): returning -1 here sends the close frame. Otherwise
         * the timer paced the next message (frame_gap_us). */
        if (pss && pss->close_sent)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss)
            ws_closed(wsi, pss);
        return 0;
    default:
        return 0;
    }
}

/* ---- held-poll sweep ---- */

/* DESIGN.md: while a held GET's rx is paused lws does not notice the client leaving; peek at the
 * socket once a second and close the request when the peer has gone. */
static void sweep_cb(uv_timer_t *t)
{
    io_server *srv = t->data;
    for (io_conn *c = srv->conns; c; c = c->next) {
        if (!c->get)
            continue;
        char b;
        int fd = lws_get_socket_fd(c->get);
        ssize_t n = fd >= 0 ? recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            struct lws *get = c->get;
            io_pss *pss = lws_wsi_user(get);
            pss->conn = NULL;
            c->get = NULL;
            lws_rx_flow_control(get, 1);
            lws_set_timeout(get, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        }
    }
    lws_cancel_service(srv->ctx);
}

/* ---- the shared listener (workers > 1) ---- */

/* Connections accepted per wake-up, so that one burst cannot hog the loop. */
#define IO_ACCEPT_BATCH 64
/* ms without accepting after running out of fds or memory. */
#define IO_ACCEPT_PAUSE 100

static void accept_cb(uv_poll_t *h, int status, int events);

static void accept_resume(uv_timer_t *t)
{
    io_server *srv = t->data;
    uv_poll_start(&srv->listener, UV_READABLE, accept_cb);
}

/* Accept what waits and hand each connection to lws as its own listener would, after the same
 * admission (conn_admit). */
static void accept_cb(uv_poll_t *h, int status, int events)
{
    io_server *srv = h->data;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < IO_ACCEPT_BATCH; i++) {
        /* Non-blocking: the listening socket is, and lws makes the new one so. */
        int fd = accept(srv->opts.listen_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* EMFILE and the like: the socket stays readable, so waiting on it now would spin.
             * Pause instead; the kernel keeps the connections queued meanwhile. */
            uint64_t now = uv_now(srv->loop);
            if (!srv->accept_warned || now - srv->accept_warned >= 10000) {
                srv->accept_warned = now;
                log_warn("cannot accept", "err=\"%s\"", strerror(errno));
            }
            uv_poll_stop(&srv->listener);
            uv_timer_start(&srv->accept_pause, accept_resume, IO_ACCEPT_PAUSE, 0);
            return;
        }
        if (conn_admit(srv, fd) < 0) {
            close(fd);
            continue;
        }
        /* On failure lws has closed the fd. */
        lws_adopt_socket_vhost(srv->vhost, fd);
    }
}

/* ---- lifecycle ---- */

#define IO_FD_RESERVE 64 /* fds kept for Redis, the loop, logs and the listening socket */

/* Raise the soft fd limit to the hard one and return how many TCP connections fit under it.
 * Connections beyond max_connections still get through the door (to be answered "server
 * full"), up to a quarter more, so a slow-loris burst cannot exhaust the fds. */
static uint32_t fd_budget(uint32_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return max_connections;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t cap = rl.rlim_cur > IO_FD_RESERVE ? rl.rlim_cur - IO_FD_RESERVE : 1;
    uint64_t want = (uint64_t)max_connections + max_connections / 4 + 16;
    if (max_connections > cap)
        log_warn("max_connections is above the fd limit", "max_connections=%u fd_limit=%llu",
                 max_connections, (unsigned long long)rl.rlim_cur);
    return (uint32_t)(want < cap ? want : cap);
}

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "libwebsockets", "detail=\"%.*s\"", (int)n,
            line);
}

io_server *io_server_new(uv_loop_t *loop, const io_server_opts *opts)
{
    io_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->loop = loop;
    srv->opts = *opts;
    srv->slow_consumers = metrics_family_get(
        opts->metrics, METRICS_COUNTER, "presenced_slow_consumers_dropped_total",
        "Connections closed because they did not read fast enough, by kind.", "kind", NULL, 0);
    metrics_add(srv->slow_consumers, "socketio", 0);
    srv->limit_hits = metrics_family_get(
        opts->metrics, METRICS_COUNTER, "presenced_limit_hits_total",
        "Requests refused or connections closed by a limit, by limit.", "limit", NULL, 0);
    metrics_add(srv->limit_hits, "connections_per_ip", 0);
    srv->max_sockets = fd_budget(opts->max_connections);
    if (!(srv->batch = malloc(LWS_PRE + IO_WS_BATCH))) {
        free(srv);
        return NULL;
    }
    {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
            seed = (uint64_t)(uintptr_t)srv;
        map_init(&srv->peers, seed);
        struct rlimit rl;
        srv->npending = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20)
                            ? (size_t)rl.rlim_cur
                            : (1u << 20);
        srv->pending = calloc(srv->npending, sizeof(*srv->pending));
        if (!srv->pending)
            goto fail;
    }
    snprintf(srv->path, sizeof(srv->path), "%s", opts->path);
    srv->opts.path = srv->path;
    if (parse_origins(srv, opts->allowed_origins) < 0)
        goto fail;
    srv->opts.allowed_origins = NULL;
    sio_io_ops ops = {.wake = on_core_wake, .close = on_core_close, .make_id = make_id};
    srv->sio = sio_server_new(&opts->sio, &ops);
    if (!srv->sio)
        goto fail;

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    srv->protocols[0] = (struct lws_protocols){
        .name = "presenced",
        .callback = callback,
        .per_session_data_size = sizeof(io_pss),
        /* A small rx buffer keeps idle WebSockets cheap; messages are reassembled anyway. */
        .rx_buffer_size = 256,
        /* Without it lws caps every send at rx_buffer_size and keeps the rest for a WRITEABLE
         * round trip: a batch must go out in one send(). */
        .tx_packet_size = IO_WS_BATCH + LWS_PRE,
    };
    srv->foreign_loops[0] = loop;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (opts->tls_cert)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (strchr(opts->host, ':'))
        info.options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = srv->foreign_loops;
    info.protocols = srv->protocols;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.timeout_secs = opts->http_timeout;
    /* A client that stops in the middle of its headers holds a header buffer from lws's small
     * pool: give it http_timeout too (lws's own default is 10 s). */
    info.timeout_secs_ah_idle = opts->http_timeout;
    info.max_http_header_data = 4096;
    /* A held long-poll GET keeps its header table until it is answered, so the pool must be
     * able to cover every polling client (tables are allocated on demand). */
    info.max_http_header_pool =
        (unsigned short)(opts->max_connections > 65535 ? 65535 : opts->max_connections);
    /* No fd_limit_per_thread: below the process limit it turns lws's fd lookup into a linear
     * scan. fd_budget() raised the limit instead, and FILTER_NETWORK_CONNECTION keeps the
     * number of sockets under it (DESIGN.md: at the limit lws would spin on accept). */
    info.user = srv;
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        log_error("cannot create the libwebsockets context", NULL);
        goto fail;
    }
    /* Engine.IO's heartbeat is the liveness check. lws's own validity timer would otherwise be
     * re-armed on every message of every connection with a sorted insert into one list, whose
     * cost grows with the number of connections. */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity;
    /* A shared listener is served through lws_adopt_socket_vhost(): the vhost only serves. */
    info.port = opts->shared_listener ? CONTEXT_PORT_NO_LISTEN_SERVER : opts->port;
    info.iface = opts->shared_listener ? NULL : opts->host;
    info.vhost_name = "presenced";
    if (opts->tls_cert && opts->tls_key) {
        info.ssl_cert_filepath = opts->tls_cert;
        info.ssl_private_key_filepath = opts->tls_key;
        /* HTTP/1.1 only, also when a client offers h2 in ALPN (DESIGN.md §4), TLS 1.2 or later,
         * forward-secret AEAD suites only (TLS 1.3 suites are OpenSSL's defaults). */
        info.alpn = "http/1.1";
        info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
        info.ssl_cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                               "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                               "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
    }
    srv->vhost = lws_create_vhost(srv->ctx, &info);
    if (!srv->vhost) {
        log_error("cannot listen", "host=%s port=%u", opts->host, opts->port);
        lws_context_destroy(srv->ctx);
        srv->ctx = NULL;
        goto fail;
    }
    if (opts->admin_host) {
        /* The admin listener stays plain HTTP (private address, health checks, scraping). */
        info.ssl_cert_filepath = info.ssl_private_key_filepath = NULL;
        info.alpn = NULL;
        info.ssl_cipher_list = NULL;
        info.ssl_options_set = 0;
        info.port = opts->admin_port;
        info.iface = opts->admin_host;
        info.vhost_name = "admin";
        srv->admin_vhost = lws_create_vhost(srv->ctx, &info);
        if (!srv->admin_vhost) {
            log_error("cannot listen", "host=%s port=%u", opts->admin_host, opts->admin_port);
            lws_context_destroy(srv->ctx);
            srv->ctx = NULL;
            goto fail;
        }
    }
    uv_timer_init(loop, &srv->accept_pause);
    srv->accept_pause.data = srv;
    srv->listener.data = srv;
    if (opts->shared_listener) {
        int rc = uv_poll_init_socket(loop, &srv->listener, opts->listen_fd);
        if (rc == 0 && (rc = uv_poll_start(&srv->listener, UV_READABLE, accept_cb)) != 0)
            uv_close((uv_handle_t *)&srv->listener, NULL);
        if (rc != 0) {
            log_error("cannot listen", "fd=%d err=\"%s\"", opts->listen_fd, uv_strerror(rc));
            /* The handles must be closed on the loop before their memory goes. */
            uv_close((uv_handle_t *)&srv->accept_pause, NULL);
            uv_run(loop, UV_RUN_NOWAIT);
            lws_context_destroy(srv->ctx);
            srv->ctx = NULL;
            goto fail;
        }
    }
    uv_timer_init(loop, &srv->sweep);
    srv->sweep.data = srv;
    uv_timer_start(&srv->sweep, sweep_cb, 1000, 1000);
    uv_check_init(loop, &srv->flush_check);
    srv->flush_check.data = srv;
    uv_check_start(&srv->flush_check, flush_check_cb);
    uv_unref((uv_handle_t *)&srv->flush_check);
    uv_idle_init(loop, &srv->flush_idle);
    srv->flush_idle.data = srv;
    uv_timer_init(loop, &srv->flush_timer);
    srv->flush_timer.data = srv;
    return srv;
fail:
    sio_server_free(srv->sio);
    free_origins(srv);
    peers_free(srv);
    free(srv->batch);
    free(srv);
    return NULL;
}

sio_server *io_server_sio(io_server *srv)
{
    return srv->sio;
}

void io_server_stop_accepting(io_server *srv)
{
    srv->shutting_down = true;
}

void io_server_shutdown(io_server *srv)
{
    srv->shutting_down = true;
    while (srv->conns) {
        io_conn *c = srv->conns;
        c->reason = "server shutdown";
        conn_destroy(c);
    }
    uv_timer_stop(&srv->sweep);
    uv_close((uv_handle_t *)&srv->sweep, NULL);
    uv_timer_stop(&srv->accept_pause);
    uv_close((uv_handle_t *)&srv->accept_pause, NULL);
    if (srv->opts.shared_listener) {
        uv_poll_stop(&srv->listener);
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
    uv_check_stop(&srv->flush_check);
    uv_close((uv_handle_t *)&srv->flush_check, NULL);
    uv_idle_stop(&srv->flush_idle);
    uv_close((uv_handle_t *)&srv->flush_idle, NULL);
    uv_timer_stop(&srv->flush_timer);
    uv_close((uv_handle_t *)&srv->flush_timer, NULL);
}

void io_server_free(io_server *srv)
{
    if (!srv)
        return;
    lws_context_destroy(srv->ctx);
    /* Let lws and our handles finish closing on the loop; with a foreign loop lws finishes
     * freeing the context in a second call once its handles are closed. */
    uv_run(srv->loop, UV_RUN_DEFAULT);
    lws_context_destroy(srv->ctx);
    sio_server_free(srv->sio);
    free_origins(srv);
    peers_free(srv);
    free(srv->batch);
    free(srv);
}
