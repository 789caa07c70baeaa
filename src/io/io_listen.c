/* Accepting connections: how many TCP connections fit under the fd limit, how many one peer
 * address may hold (max_connections_per_ip), and the shared listening socket of workers.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "presenced/codec/http_args.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "presenced/io/reuseport.h"
#include "io_server_impl.h"

static void peer_release(io_server *srv, io_peer *p)
{
    if (!p || p->conns == 0)
        return;
    p->conns--;
    io_peer_put(srv, p);
}

/* Count a new connection against its address: the TCP peer's, or `given` (what the PROXY
 * protocol said). Returns 0 to accept or -1 to close it (over the limit). A trusted proxy's own
 * connections are not counted (it carries many clients: the session limit counts those); failures
 * to tell the address accept uncounted. */
static void pending_reap_closed(io_server *srv, const io_peer *p);

static int peer_admit(io_server *srv, int fd, const fwd_addr *given)
{
    if (fd < 0 || (size_t)fd >= srv->npending)
        return 0;
    /* A previous socket on this fd that never got its wsi (failed adoption) is gone. */
    peer_release(srv, srv->pending[fd]);
    srv->pending[fd] = NULL;
    fwd_addr a;
    if (given)
        a = *given;
    else if (io_sock_peer(fd, &a) < 0 || fwd_cidrs_match(&srv->trusted, &a))
        return 0;
    io_peer *p = io_peer_get(srv, &a);
    if (!p)
        return 0;
    /* Connections of this address that closed while waiting for their first request still count
     * until the loop notices: look now, before refusing a new one because of them. */
    if (srv->opts.max_connections_per_ip && p->conns >= srv->opts.max_connections_per_ip)
        pending_reap_closed(srv, p);
    if (srv->opts.max_connections_per_ip && p->conns >= srv->opts.max_connections_per_ip) {
        metrics_add(srv->limit_hits, "connections_per_ip", 1);
        io_refused(srv, NULL, fd, 0, "connections_per_ip");
        io_peer_put(srv, p);
        return -1;
    }
    p->conns++;
    srv->pending[fd] = p;
    return 0;
}

void io_admit_attach(io_server *srv, struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    /* Every answer goes out at once. With Nagle's algorithm an HTTP response on a kept-alive
     * connection (headers, then the body in a second write) waited for the client's delayed ACK
     * of the headers: 40 ms per request. */
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd < 0 || (size_t)fd >= srv->npending || !srv->pending[fd])
        return;
    lws_set_opaque_user_data(wsi, srv->pending[fd]);
    srv->pending[fd] = NULL;
}

void io_admit_release(io_server *srv, struct lws *wsi)
{
    if (srv->sockets)
        srv->sockets--;
    if (lws_get_opaque_user_data(wsi)) {
        peer_release(srv, lws_get_opaque_user_data(wsi));
        lws_set_opaque_user_data(wsi, NULL);
    }
}

void io_listen_free(io_server *srv)
{
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&srv->peers, &pos)))
        free(slot->value);
    map_deinit(&srv->peers);
    free(srv->pending);
    srv->pending = NULL;
    if (srv->own_listen_fd >= 0)
        close(srv->own_listen_fd);
    srv->own_listen_fd = -1;
}

/* Closing a refused connection at once keeps fds free for the daemon's own use. A refused
 * connection gets no WSI_DESTROY, so only kept ones are counted. */
int io_admit_as(io_server *srv, int fd, const fwd_addr *client)
{
    if (srv->shutting_down)
        return -1;
    if (srv->sockets >= srv->max_sockets) {
        io_refused(srv, NULL, fd, 0, "connections");
        return -1;
    }
    if (peer_admit(srv, fd, client) < 0)
        return -1;
    srv->sockets++;
    return 0;
}

int io_admit(io_server *srv, int fd)
{
    return io_admit_as(srv, fd, NULL);
}

/* ---- Before lws sees a connection: the PROXY protocol header and the first request's head ----
 *
 * A connection accepted here waits in an io_pending until what lws cannot do is done:
 *   WAIT_PROXY  (proxy_protocol) its PROXY header is read: exactly the header's bytes are taken
 *               from the socket, the rest stays there for lws (lws 4.1's adoption with a read
 *               buffer loses a request body that came in the same read);
 *   WAIT_HEAD   (plain HTTP) its first request's head is peeked at: lws closes a connection whose
 *               head overflows its buffer or whose target holds %00 without a word, so those get
 *               their 414 / 431 / 400 from here;
 *   LINGER      an answer went out: the client's remaining bytes are read and dropped until it
 *               closes or 2 s pass (closing with unread bytes would reset the connection and could
 *               destroy the answer before the client reads it).
 * The poll handle is closed before lws takes the fd over, since closing it later would remove
 * lws's own registration of the fd from epoll. */

typedef enum io_pending_stage { WAIT_PROXY, WAIT_HEAD, LINGER } io_pending_stage;

#define IO_LINGER_MS 2000

typedef struct io_pending {
    io_server *srv;
    struct io_pending *prev, *next;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    uint8_t stage; /* io_pending_stage */
    bool admitted; /* counted by io_admit: undo when not adopted */
    bool adopt;    /* hand the fd to lws when the poll handle has closed */
    fwd_addr client;
    unsigned open_handles;
    size_t len;
    uint8_t buf[FWD_PROXY_MAX];
} io_pending;

/* An admitted connection that lws will not get: it no longer counts. */
static void admit_cancel(io_server *srv, int fd)
{
    if (fd >= 0 && (size_t)fd < srv->npending) {
        peer_release(srv, srv->pending[fd]);
        srv->pending[fd] = NULL;
    }
    if (srv->sockets)
        srv->sockets--;
}

static void pending_handle_closed(uv_handle_t *h)
{
    io_pending *w = h->data;
    if (h == (uv_handle_t *)&w->poll) {
        io_server *srv = w->srv;
        if (w->adopt && !srv->shutting_down) {
            /* On failure lws has closed the fd. */
            lws_adopt_socket_vhost(srv->vhost, w->fd);
        } else {
            if (w->admitted)
                admit_cancel(srv, w->fd);
            close(w->fd);
        }
    }
    if (--w->open_handles == 0)
        free(w);
}

/* Done waiting: adopt (w->adopt) or drop the connection once the handles have closed. A dropped
 * connection stops counting at once. */
static void pending_end(io_pending *w)
{
    io_server *srv = w->srv;
    if (!w->adopt && w->admitted) {
        admit_cancel(srv, w->fd);
        w->admitted = false;
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        srv->pending_conns = w->next;
    if (w->next)
        w->next->prev = w->prev;
    srv->npending_conns--;
    uv_poll_stop(&w->poll);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->poll, pending_handle_closed);
    uv_close((uv_handle_t *)&w->timer, pending_handle_closed);
}

static void pending_reap_closed(io_server *srv, const io_peer *p)
{
    io_pending *w = srv->pending_conns;
    while (w) {
        io_pending *next = w->next;
        char c;
        if (w->admitted && (size_t)w->fd < srv->npending && srv->pending[w->fd] == p &&
            recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
            pending_end(w);
        w = next;
    }
}

static void pending_timeout(uv_timer_t *t)
{
    pending_end(t->data);
}

/* Take `n` bytes that a peek showed from the socket. Returns false when they are not there. */
static bool pending_consume(io_pending *w, size_t n)
{
    ssize_t got = n ? recv(w->fd, w->buf + w->len, n, 0) : 0;
    if (got != (ssize_t)n)
        return false;
    w->len += n;
    return true;
}

/* Readable again only once more than `bytes` are waiting: a peek leaves them in the socket, and
 * a level-triggered poll would otherwise fire at once, again and again. */
static void rcvlowat(int fd, int bytes)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
}

/* The answer to a request head lws would drop without one, in the HTTP API's error format. */
static void head_refuse(io_pending *w, int status)
{
    static const struct {
        int status;
        const char *line, *body;
    } answers[] = {
        {HTTP_HEAD_BAD, "400 Bad Request",
         "{\"error\":{\"code\":\"bad_request\",\"message\":\"NUL (%00) or malformed %-escape in "
         "the request line\"}}"},
        {HTTP_HEAD_URI_LONG, "414 URI Too Long",
         "{\"error\":{\"code\":\"uri_too_long\",\"message\":\"request line over 8192 bytes\"}}"},
        {HTTP_HEAD_TOO_LARGE, "431 Request Header Fields Too Large",
         "{\"error\":{\"code\":\"headers_too_large\",\"message\":\"request head over 8192 "
         "bytes\"}}"},
    };
    size_t i = 0;
    while (i + 1 < sizeof(answers) / sizeof(answers[0]) && answers[i].status != status)
        i++;
    char out[512];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                     "connection: close\r\n\r\n%s",
                     answers[i].line, strlen(answers[i].body), answers[i].body);
    metrics_add(w->srv->limit_hits, "request_head", 1);
    io_refused(w->srv, NULL, w->fd, (unsigned)status,
               status == HTTP_HEAD_BAD        ? "bad_request"
               : status == HTTP_HEAD_URI_LONG ? "uri_too_long"
                                              : "headers_too_large");
    /* A fresh connection's send buffer takes these few hundred bytes at once. */
    if (send(w->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ||
        shutdown(w->fd, SHUT_WR) < 0)
        return pending_end(w);
    rcvlowat(w->fd, 1);
    w->stage = LINGER;
    uv_timer_start(&w->timer, pending_timeout, IO_LINGER_MS, 0);
}

/* WAIT_HEAD: peek at the first request's head. */
static void head_readable(io_pending *w)
{
    char head[IO_HEAD_MAX];
    ssize_t n = recv(w->fd, head, sizeof(head), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0)
        return pending_end(w);
    int rc = http_head_check(head, (size_t)n, sizeof(head));
    if (rc == HTTP_HEAD_NEED_MORE)
        return rcvlowat(w->fd, (int)n + 1);
    if (rc != HTTP_HEAD_OK)
        return head_refuse(w, rc);
    rcvlowat(w->fd, 1);
    w->adopt = true;
    pending_end(w);
}

/* LINGER: drop what the client still sends until it closes. */
static void linger_readable(io_pending *w)
{
    char sink[4096];
    ssize_t n = recv(w->fd, sink, sizeof(sink), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        pending_end(w);
}

/* The first request's head is checked on plain HTTP only (TLS bytes cannot be read here). */
static bool head_checked(const io_server *srv)
{
    return !srv->opts.tls_cert;
}

/* WAIT_PROXY: read the PROXY protocol header, then admit the connection as its client. */
static void proxy_readable(io_pending *w)
{
    ssize_t n = recv(w->fd, w->buf + w->len, sizeof(w->buf) - w->len, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0)
        return pending_end(w);
    fwd_proxy p;
    int rc = fwd_proxy_decode(w->buf, w->len + (size_t)n, &p);
    /* Incomplete: everything that came is header, so it can be taken. */
    if (rc == FWD_NEED_MORE && w->len + (size_t)n < sizeof(w->buf)) {
        if (!pending_consume(w, (size_t)n))
            pending_end(w);
        return;
    }
    if (rc <= 0 || !pending_consume(w, (size_t)rc - w->len)) {
        if (log_enabled(LOG_DEBUG)) {
            char peer[FWD_ADDR_TEXT];
            fwd_addr_text(&w->client, peer);
            log_debug("no valid PROXY protocol header: connection closed", "peer=%s", peer);
        }
        return pending_end(w);
    }
    if (p.has_addr)
        w->client = p.src;
    if (io_admit_as(w->srv, w->fd, &w->client) < 0)
        return pending_end(w);
    w->admitted = true;
    if (!head_checked(w->srv)) {
        w->adopt = true;
        return pending_end(w);
    }
    w->stage = WAIT_HEAD;
    head_readable(w);
}

static void pending_readable(uv_poll_t *h, int status, int events)
{
    io_pending *w = h->data;
    (void)events;
    if (status < 0)
        return pending_end(w);
    switch (w->stage) {
    case WAIT_PROXY:
        return proxy_readable(w);
    case WAIT_HEAD:
        return head_readable(w);
    default:
        return linger_readable(w);
    }
}

/* Keep a connection just accepted until its PROXY header or its first request's head is read.
 * `admitted`: io_admit counted it already. Returns 0, or -1 when the caller must close the fd
 * (and undo the admission). */
static int pending_start(io_server *srv, int fd, bool admitted)
{
    fwd_addr peer;
    if (io_sock_peer(fd, &peer) < 0)
        return -1;
    if (srv->opts.proxy_protocol) {
        /* With trusted_proxies listed, only they may tell us who the client is. */
        if (srv->trusted.n && !fwd_cidrs_match(&srv->trusted, &peer))
            return -1;
        if (srv->sockets + srv->npending_conns >= srv->max_sockets || srv->shutting_down)
            return -1;
    }
    io_pending *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->srv = srv;
    w->fd = fd;
    w->admitted = admitted;
    w->stage = srv->opts.proxy_protocol ? WAIT_PROXY : WAIT_HEAD;
    w->client = peer; /* LOCAL / UNKNOWN PROXY headers: the balancer's own connection */
    if (uv_poll_init_socket(srv->loop, &w->poll, fd) < 0) {
        free(w);
        return -1;
    }
    uv_timer_init(srv->loop, &w->timer);
    w->poll.data = w->timer.data = w;
    w->open_handles = 2;
    w->next = srv->pending_conns;
    if (srv->pending_conns)
        srv->pending_conns->prev = w;
    srv->pending_conns = w;
    srv->npending_conns++;
    uv_poll_start(&w->poll, UV_READABLE, pending_readable);
    uv_timer_start(&w->timer, pending_timeout, (uint64_t)srv->opts.http_timeout * 1000, 0);
    return 0;
}

int io_listen_prepare(io_server *srv)
{
    if (srv->opts.shared_listener || (!srv->opts.proxy_protocol && !head_checked(srv)))
        return 0;
    char err[256];
    int fd;
    if (reuseport_listen(srv->opts.host, srv->opts.port, 1, &fd, err, sizeof(err)) < 0) {
        log_error("cannot listen", "host=%s port=%u err=\"%s\"", srv->opts.host, srv->opts.port,
                  err);
        return -1;
    }
    srv->own_listen_fd = fd;
    srv->opts.shared_listener = true;
    srv->opts.listen_fd = fd;
    return 0;
}

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
 * admission (io_admit). */
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
        if (srv->opts.proxy_protocol) {
            if (pending_start(srv, fd, false) < 0)
                close(fd);
            continue;
        }
        if (io_admit(srv, fd) < 0) {
            close(fd);
            continue;
        }
        if (head_checked(srv)) {
            if (pending_start(srv, fd, true) < 0) {
                admit_cancel(srv, fd);
                close(fd);
            }
            continue;
        }
        /* On failure lws has closed the fd. */
        lws_adopt_socket_vhost(srv->vhost, fd);
    }
}

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

int io_listen_init(io_server *srv)
{
    srv->own_listen_fd = -1;
    srv->max_sockets = fd_budget(srv->opts.max_connections);
    map_init(&srv->peers, host_seed());
    struct rlimit rl;
    srv->npending = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20)
                        ? (size_t)rl.rlim_cur
                        : (1u << 20);
    srv->pending = calloc(srv->npending, sizeof(*srv->pending));
    return srv->pending ? 0 : -1;
}

int io_listen_start(io_server *srv)
{
    uv_timer_init(srv->loop, &srv->accept_pause);
    srv->accept_pause.data = srv;
    srv->listener.data = srv;
    if (!srv->opts.shared_listener)
        return 0;
    int rc = uv_poll_init_socket(srv->loop, &srv->listener, srv->opts.listen_fd);
    if (rc == 0 && (rc = uv_poll_start(&srv->listener, UV_READABLE, accept_cb)) != 0)
        uv_close((uv_handle_t *)&srv->listener, NULL);
    if (rc == 0)
        return 0;
    log_error("cannot listen", "fd=%d err=\"%s\"", srv->opts.listen_fd, uv_strerror(rc));
    /* The handles must be closed on the loop before their memory goes. */
    uv_close((uv_handle_t *)&srv->accept_pause, NULL);
    uv_run(srv->loop, UV_RUN_NOWAIT);
    return -1;
}

void io_listen_close(io_server *srv)
{
    while (srv->pending_conns)
        pending_end(srv->pending_conns);
    uv_timer_stop(&srv->accept_pause);
    uv_close((uv_handle_t *)&srv->accept_pause, NULL);
    if (srv->opts.shared_listener) {
        uv_poll_stop(&srv->listener);
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
}
