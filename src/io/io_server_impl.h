/* io_server_impl — what the files of the libwebsockets server share: the per-request,
 * per-session and per-server state, and the functions each file offers the others. Private to
 * src/io/io_*.c; the contract for everyone else is presenced/io/io_server.h.
 *
 * The files, one job each:
 *   io_server.c    lifecycle (context, vhosts, timers) and the lws callback that dispatches
 *   io_listen.c    accepting connections: the fd budget, the shared listener, PROXY headers
 *   io_addr.c      who a request comes from (trusted proxies), the per-address limits
 *   io_route.c     what an Engine.IO request asks for (path, query, Origin) and where it goes
 *   io_conn.c      Engine.IO sessions: creation, timers, packets, teardown
 *   io_poll.c      HTTP long-polling: handshake, held GETs, POST bodies, the held-poll sweep
 *   io_ws.c        WebSocket: upgrade checks, messages in, close
 *   io_flush.c     the write path: WebSocket frames out, batched, from the flush lists
 *   io_response.c  HTTP responses: status, headers, body, CORS
 *   io_http.c      plain HTTP requests (presenced/io/io_http.h): the HTTP API's side of lws
 *   io_client.c    a client's address, and the log of refused handshakes and connections
 *
 * Ownership: an io_conn exists for every Engine.IO session and owns its sio_conn and its uv timer.
 * Each HTTP request or WebSocket has a per-wsi io_pss (allocated by lws) that points to its
 * io_conn while attached; the io_conn points back to its held GET and its WebSocket. Whichever
 * side goes first clears the other's pointer.
 */
#ifndef PRESENCED_IO_SERVER_IMPL_H
#define PRESENCED_IO_SERVER_IMPL_H

#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "presenced/codec/fwd.h"
#include "presenced/core/map.h"
#include "presenced/io/io_http.h"
#include "presenced/io/io_server.h"

_Static_assert(LWS_PRE <= FRAME_HEADROOM, "frames must leave room for the WebSocket header");

#define IO_ARG_MAX 128 /* longest query argument value we look at */
#define IO_ORIGIN_MAX 256
/* The member a 403 (a refused Origin) adds to the reference server's {code, message}: what to
 * change. */
#define IO_FORBIDDEN_HINT                                                                          \
    ",\"hint\":\"the request's Origin is not allowed: add it to allowed_origins\""
#define IO_WS_BATCH 65536 /* WebSocket bytes written by one send() at most */
/* A request head (request line and headers) is at most this long: libwebsockets' header buffer,
 * and what io_listen.c checks a connection's first request against before lws sees it. */
#define IO_HEAD_MAX 8192

typedef enum io_flush_list { FLUSH_NONE = 0, FLUSH_NOW, FLUSH_BULK } io_flush_list;

#define IO_ADDR_MAX FWD_ADDR_TEXT

/* A client's IP address, kept with its session for the logs: 17 bytes rather than its text
 * (fwd.h: IPv4-mapped IPv6 as IPv4). */
typedef fwd_addr io_addr;

typedef struct io_conn io_conn;
typedef struct io_peer io_peer;

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
    io_peer *peer;             /* a new WebSocket session's client, counted, until established */
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
    size_t nargs, capargs;
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
    io_conn *prev, *next;   /* every connection, for shutdown */
    io_conn *hprev, *hnext; /* on the held list while `get` is set: what the sweep visits */
    io_conn *fprev, *fnext; /* on a flush list: WebSocket frames queued since the last flush */
    uint8_t flush_on;       /* io_flush_list: which one */
    bool closing;
    bool client_closed;
    io_addr addr; /* the client's, from the request that opened the session */
    const char *reason;
    io_peer *peer; /* the client address this session counts against (may be NULL) */
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
    size_t norigins, caporigins;
    bool any_origin;
    io_conn *conns;
    io_conn *held; /* connections with a held GET (io_poll.c), the only ones the sweep peeks at */
    /* Sessions with WebSocket frames to write, in the order they got them (io_flush.c):
     * [FLUSH_NOW] this loop iteration, [FLUSH_BULK] (only broadcast frames) a slice per turn. */
    io_conn *flush_head[3], *flush_tail[3];
    uv_check_t flush_check; /* runs the flush after each iteration's I/O callbacks */
    uv_idle_t flush_idle;   /* active while the list is not empty: the loop must not block */
    uint8_t *batch;         /* LWS_PRE + IO_WS_BATCH bytes: frames coalesced into one send */
    /* Runs as each turn of the loop ends, just before it polls for I/O (io_conn.c): notes
     * polled_at and logs a turn that was busy for long. */
    uv_prepare_t turn;
    uint64_t polled_at;                   /* loop time (ms) when the last poll for I/O began */
    uint64_t turn_start_ns, turn_idle_ns; /* when the current turn began, idle time by then */
    uv_timer_t sweep;
    uv_poll_t listener;               /* shared_listener: readable when connections wait */
    int own_listen_fd;                /* a listening socket made here (proxy_protocol), else -1 */
    struct io_pending *pending_conns; /* accepted, not yet handed to lws (io_listen.c) */
    uint32_t npending_conns;
    uv_timer_t accept_pause; /* shared_listener: accept again after running out of fds */
    uint64_t accept_warned;  /* ms of the last "cannot accept" warning */
    bool shutting_down;
    uint32_t sockets;     /* accepted TCP connections alive */
    uint32_t max_sockets; /* accepted beyond this are closed at once */
    metrics_family *slow_consumers;
    metrics_family *sessions_closed; /* by reason: why sessions end, a storm's first question */
    metrics_family *limit_hits;
    metrics_family *refused;
    /* Refusals logged in this window ("cause address" -> srv), and what was not logged. */
    map refusals;
    uint64_t refusals_since, refusals_repeated, refusals_untracked;
    fwd_cidrs trusted; /* trusted_proxies */
    /* Client addresses: address text -> io_peer, for the per-address limits. An accepted socket's
     * io_peer (its TCP connection counted) waits in pending[fd] until lws has made its wsi
     * (SERVER_NEW_CLIENT_INSTANTIATED), then rides on the wsi as opaque user data until
     * WSI_DESTROY; a session holds its client's io_peer (io_conn.peer) until it closes. */
    map peers;
    io_peer **pending;
    size_t npending;
    void *foreign_loops[1];
    struct lws_protocols protocols[2];
};

struct io_peer {
    uint32_t conns;    /* counted TCP connections alive from this address */
    uint32_t sessions; /* Engine.IO sessions of this client address */
    fwd_addr addr;
    size_t klen;
    char key[FWD_ADDR_TEXT]; /* the address as text: the map's key, and what logs show */
};

typedef struct io_query {
    char eio[8];
    char transport[16];
    char sid[IO_ARG_MAX];
    bool has_eio, has_transport, has_sid;
    bool bad; /* an argument we care about was repeated or too long */
} io_query;

/* ---- io_client.c ---- */

/* The address a client is known by, in every log line and per-address limit (io_addr.c): for a
 * request `wsi`, the connection's address (the TCP peer, or what its PROXY protocol header said)
 * or, when that is a trusted proxy, the client its Forwarded / X-Forwarded-For header names
 * (fwd_client; only while the request's headers are at hand: HTTP callback, WebSocket filter);
 * for `fd` alone (at accept), the TCP peer. Unknown (family 0) when the socket has none. */
void io_client_addr(struct lws *wsi, int fd, io_addr *out);
/* The address as text, "-" when unknown. */
void io_addr_text(const io_addr *a, char out[IO_ADDR_MAX]);
/* A refused handshake or request (`status` its HTTP status, `why` the Engine.IO error message),
 * or, with status 0, a TCP connection closed at accept (`why`: "connections_per_ip", or
 * "connections" for the fd budget). Counted in presenced_refused_total{cause}, and logged with
 * the client's address (warn for origins and limits, info for bad requests) at most once per
 * cause and address a minute; io_refusals_tick() says how many were not logged. */
void io_refused(io_server *srv, struct lws *wsi, int fd, unsigned status, const char *why);
void io_refusals_init(io_server *srv);
/* Once a second: closes the window when a minute has passed. */
void io_refusals_tick(io_server *srv);
void io_refusals_free(io_server *srv);

/* ---- io_listen.c ---- */

/* Set up admission: the fd budget (raising the soft fd limit) and the per-address table.
 * Returns 0 or -1 (memory). */
int io_listen_init(io_server *srv);
/* Unless TLS is on (or workers share a listener already), make the listening socket here, so
 * that connections are accepted by us and their PROXY header or first request head read before
 * lws sees them. Returns 0 or -1 (logged). */
int io_listen_prepare(io_server *srv);
/* Start accepting from a shared listening socket (opts.shared_listener). Returns 0, or -1 after
 * logging why and closing what it opened. */
int io_listen_start(io_server *srv);
/* Stop accepting; the handles close on the loop. */
void io_listen_close(io_server *srv);
/* Release the per-address table. */
void io_listen_free(io_server *srv);
/* A TCP connection was accepted (by lws, or by the shared listener): keep it or not. Returns 0 to
 * keep it, -1 to close it. */
int io_admit(io_server *srv, int fd);
/* The same for a connection whose client address is known otherwise (PROXY protocol). */
int io_admit_as(io_server *srv, int fd, const fwd_addr *client);
/* SERVER_NEW_CLIENT_INSTANTIATED: the accepted fd has its wsi now (and Nagle off). */
void io_admit_attach(io_server *srv, struct lws *wsi);
/* WSI_DESTROY: the connection no longer counts against the limits. */
void io_admit_release(io_server *srv, struct lws *wsi);

/* ---- io_addr.c ---- */

/* Parse trusted_proxies into srv->trusted. Returns 0 or -1 (after logging why). */
int io_addr_init(io_server *srv);
/* The io_peer of address `a` (created with no counts when absent), or NULL (memory). */
io_peer *io_peer_get(io_server *srv, const fwd_addr *a);
/* Drop the io_peer if nothing counts against it any more. */
void io_peer_put(io_server *srv, io_peer *p);
/* The address at the other end of socket `fd` (IPv4-mapped IPv6 as IPv4). Returns 0 or -1. */
int io_sock_peer(int fd, fwd_addr *out);
/* The scheme the client used: a trusted proxy's Forwarded proto= / X-Forwarded-Proto, else the
 * listener's. */
const char *io_client_scheme(io_server *srv, struct lws *wsi);
/* A new session from the request's client: 0 with *peer counted (NULL when memory is short: the
 * session then goes uncounted), or -1 when the client has max_sessions_per_ip already (logged,
 * counted in limit_hits). `count` false only checks. */
int io_session_admit(io_server *srv, struct lws *wsi, bool count, io_peer **peer);
/* The session is gone. */
void io_session_release(io_server *srv, io_peer *p);

/* ---- io_route.c ---- */

/* Parse a comma-separated origin list into srv. Returns 0 or -1 (memory). */
int io_origins_parse(io_server *srv, const char *list);
void io_origins_free(io_server *srv);
/* True when requests from `origin` ("" when the request had none) are listed as allowed. */
bool io_origin_allowed(io_server *srv, const char *origin);
/* The one Origin rule of polling and WebSocket: copies the request's Origin into `origin` (""
 * when it has none) and returns true when the request may go on: no Origin, a listed one, or the
 * same origin as the request itself (its Host, on this listener's scheme, or the one a trusted
 * proxy forwards). The refusal is logged by io_refused, once per origin. */
bool io_origin_check(io_server *srv, struct lws *wsi, char origin[IO_ORIGIN_MAX]);
/* The Engine.IO query arguments of a request. */
void io_query_parse(struct lws *wsi, io_query *q);
/* The request's URI (header `token`) is the Engine.IO path, with or without its final slash. */
bool io_path_matches(io_server *srv, struct lws *wsi, int token);
/* The session the query's sid names, or NULL. */
io_conn *io_conn_find(io_server *srv, const io_query *q);
/* The request has method token `t`. */
bool io_is_method(struct lws *wsi, enum lws_token_indexes t);
/* LWS_CALLBACK_HTTP: route one request. Returns -1 to drop the connection. */
int io_http_route(io_server *srv, struct lws *wsi, io_pss *pss);

/* ---- io_conn.c ---- */

/* Start and stop watching the loop's turns: when each poll for I/O begins (srv->polled_at),
 * and a turn busy for a second or more, logged. */
void io_conn_watch_init(io_server *srv);
void io_conn_watch_close(io_server *srv);
/* The hooks the Socket.IO core calls back through. */
sio_io_ops io_conn_ops(void);
/* A new session on `transport`, opened by the request `wsi` (for the client's address),
 * registered with the core, its timer armed. NULL on memory. */
io_conn *io_conn_new(io_server *srv, eio_transport transport, struct lws *wsi);
/* Tear the session down: the core's disconnect handlers run, the held GET is answered and the
 * WebSocket closed. `c` is freed once its timer has closed. */
void io_conn_destroy(io_conn *c);
/* Re-arm the session's timer for the core's next deadline. */
void io_conn_arm(io_conn *c);
/* Act on one packet received over `via`. Returns -1 when it closed the session (the caller
 * must not touch `c` afterwards). */
int io_conn_packet(io_conn *c, eio_transport via, const eio_packet *p);
/* The open packet (Engine.IO handshake) as a frame, or NULL on memory. */
frame *io_conn_open_frame(io_server *srv, const char *sid, bool offer_ws);

/* ---- io_poll.c ---- */

/* Start the held-poll sweep. */
void io_poll_init(io_server *srv);
void io_poll_close(io_server *srv);
/* Complete a held GET: it drains the queue when it becomes writeable. */
void io_poll_wake(io_conn *c);
/* The held GET was answered or went: the session holds none (takes it off the sweep's list). */
void io_poll_unhold(io_conn *c);
int io_poll_handshake(io_server *srv, struct lws *wsi, io_pss *pss);
int io_poll_get(io_server *srv, struct lws *wsi, io_pss *pss, io_conn *c);
int io_poll_post_begin(io_server *srv, struct lws *wsi, io_pss *pss, io_conn *c);
/* HTTP_BODY / HTTP_BODY_COMPLETION of a POST. */
int io_poll_body(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len);
int io_poll_body_done(struct lws *wsi, io_pss *pss);
/* HTTP_WRITEABLE of a held GET. Returns what the lws callback must return. */
int io_poll_write_held(struct lws *wsi, io_pss *pss);

/* ---- io_ws.c ---- */

/* Close a WebSocket with a close frame carrying `code`. */
void io_ws_close(struct lws *wsi, uint16_t code);
/* FILTER_PROTOCOL_CONNECTION: nonzero refuses the upgrade. */
int io_ws_filter(io_server *srv, struct lws *wsi, io_pss *pss);
int io_ws_established(io_server *srv, struct lws *wsi, io_pss *pss);
int io_ws_receive(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len);
int io_ws_writeable(struct lws *wsi, io_pss *pss);
void io_ws_closed(struct lws *wsi, io_pss *pss);

/* ---- io_flush.c ---- */

/* Set up the flush lists' loop handles (srv->batch must be allocated). */
void io_flush_init(io_server *srv);
void io_flush_close(io_server *srv);
/* Put a session with queued WebSocket frames on a flush list (`bulk`: only broadcasts). */
void io_flush_add(io_conn *c, bool bulk);
/* Take a session off its flush list (it is closing). */
void io_flush_remove(io_conn *c);
/* Write the oldest queued message alone / a batch of them. Return 0, or -1 when the
 * connection must be dropped. */
int io_ws_send_one(struct lws *wsi, eio_session *s);
int io_ws_send_batch(io_server *srv, struct lws *wsi, eio_session *s);

/* ---- io_response.c ---- */

/* Queue a response (the body is copied) and ask for WRITEABLE. Returns 0 or -1 (memory). */
int io_respond(struct lws *wsi, io_pss *pss, unsigned status, const char *ctype, const void *body,
               size_t len);
/* An Engine.IO error answer: {"code":code,"message":msg}. */
int io_respond_error(struct lws *wsi, io_pss *pss, unsigned status, int code, const char *msg);
/* HTTP_WRITEABLE of a response or a stream. Returns what the lws callback must return. */
int io_response_write(struct lws *wsi, io_pss *pss);
/* Free what an answer needed beside its body: extra headers and the Origin. */
void io_response_free_extra(io_pss *pss);

/* ---- io_http.c ---- */

/* LWS_CALLBACK_HTTP for anything that is not Engine.IO. Returns -1 to drop the connection. */
int io_http_req_begin(io_server *srv, struct lws *wsi, io_pss *pss);
int io_http_req_body(io_server *srv, struct lws *wsi, io_pss *pss, const void *in, size_t len);
void io_http_req_body_done(io_server *srv, io_pss *pss);
/* The client went away. */
void io_http_req_gone(io_pss *pss);

#endif
