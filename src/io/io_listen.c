/* Accepting connections: how many TCP connections fit under the fd limit, how many one peer
 * address may hold (max_connections_per_ip), and the shared listening socket of workers.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

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
    if (srv->opts.max_connections_per_ip && p->conns >= srv->opts.max_connections_per_ip) {
        metrics_add(srv->limit_hits, "connections_per_ip", 1);
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
    if (srv->sockets >= srv->max_sockets || srv->shutting_down)
        return -1;
    if (peer_admit(srv, fd, client) < 0)
        return -1;
    srv->sockets++;
    return 0;
}

int io_admit(io_server *srv, int fd)
{
    return io_admit_as(srv, fd, NULL);
}

/* ---- PROXY protocol: the header comes before lws sees the connection ---- */

/* An accepted connection whose PROXY protocol header has not fully arrived. Only the header's
 * bytes are taken from the socket (what follows it stays there for lws: lws 4.1's adoption with
 * a read buffer loses a request body that came in the same read). Its poll handle is closed
 * before lws takes the fd over, since closing it later would remove lws's own registration of the
 * fd from epoll. */
typedef struct io_proxy_wait {
    io_server *srv;
    struct io_proxy_wait *prev, *next;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    bool adopt; /* the header was read: adopt the fd when the poll handle has closed */
    fwd_addr client;
    unsigned open_handles;
    size_t len;
    uint8_t buf[FWD_PROXY_MAX];
} io_proxy_wait;

static void proxy_handle_closed(uv_handle_t *h)
{
    io_proxy_wait *w = h->data;
    if (h == (uv_handle_t *)&w->poll) {
        io_server *srv = w->srv;
        if (w->adopt && !srv->shutting_down && io_admit_as(srv, w->fd, &w->client) == 0) {
            /* On failure lws has closed the fd. */
            lws_adopt_socket_vhost(srv->vhost, w->fd);
        } else {
            close(w->fd);
        }
    }
    if (--w->open_handles == 0)
        free(w);
}

/* Done waiting: adopt (header_len > 0) or drop the connection once the handles have closed. */
static void proxy_wait_end(io_proxy_wait *w)
{
    io_server *srv = w->srv;
    if (w->prev)
        w->prev->next = w->next;
    else
        srv->proxy_waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    srv->nproxy_waits--;
    uv_poll_stop(&w->poll);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->poll, proxy_handle_closed);
    uv_close((uv_handle_t *)&w->timer, proxy_handle_closed);
}

static void proxy_timeout(uv_timer_t *t)
{
    proxy_wait_end(t->data);
}

/* Take `n` bytes that a peek showed from the socket. Returns false when they are not there. */
static bool proxy_consume(io_proxy_wait *w, size_t n)
{
    ssize_t got = n ? recv(w->fd, w->buf + w->len, n, 0) : 0;
    if (got != (ssize_t)n)
        return false;
    w->len += n;
    return true;
}

static void proxy_readable(uv_poll_t *h, int status, int events)
{
    io_proxy_wait *w = h->data;
    (void)events;
    ssize_t n = status < 0 ? -1 : recv(w->fd, w->buf + w->len, sizeof(w->buf) - w->len, MSG_PEEK);
    if (n < 0 && status >= 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0)
        return proxy_wait_end(w);
    fwd_proxy p;
    int rc = fwd_proxy_decode(w->buf, w->len + (size_t)n, &p);
    /* Incomplete: everything that came is header, so it can be taken (a peek alone would leave
     * the socket readable and the loop spinning until the rest arrives). */
    if (rc == FWD_NEED_MORE && w->len + (size_t)n < sizeof(w->buf)) {
        if (!proxy_consume(w, (size_t)n))
            proxy_wait_end(w);
        return;
    }
    if (rc > 0 && proxy_consume(w, (size_t)rc - w->len)) {
        w->adopt = true;
        if (p.has_addr)
            w->client = p.src;
    } else if (log_enabled(LOG_DEBUG)) {
        char peer[FWD_ADDR_TEXT];
        fwd_addr_text(&w->client, peer);
        log_debug("no valid PROXY protocol header: connection closed", "peer=%s", peer);
    }
    proxy_wait_end(w);
}

/* proxy_protocol: wait for the header of a connection just accepted. Returns 0, or -1 when the
 * caller must close the fd. */
static int proxy_wait_start(io_server *srv, int fd)
{
    fwd_addr peer;
    if (io_sock_peer(fd, &peer) < 0)
        return -1;
    /* With trusted_proxies listed, only they may tell us who the client is. */
    if (srv->trusted.n && !fwd_cidrs_match(&srv->trusted, &peer))
        return -1;
    if (srv->sockets + srv->nproxy_waits >= srv->max_sockets || srv->shutting_down)
        return -1;
    io_proxy_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->srv = srv;
    w->fd = fd;
    w->client = peer; /* LOCAL / UNKNOWN headers: the balancer's own connection */
    if (uv_poll_init_socket(srv->loop, &w->poll, fd) < 0) {
        free(w);
        return -1;
    }
    uv_timer_init(srv->loop, &w->timer);
    w->poll.data = w->timer.data = w;
    w->open_handles = 2;
    w->next = srv->proxy_waits;
    if (srv->proxy_waits)
        srv->proxy_waits->prev = w;
    srv->proxy_waits = w;
    srv->nproxy_waits++;
    uv_poll_start(&w->poll, UV_READABLE, proxy_readable);
    uv_timer_start(&w->timer, proxy_timeout, (uint64_t)srv->opts.http_timeout * 1000, 0);
    return 0;
}

int io_listen_prepare(io_server *srv)
{
    if (!srv->opts.proxy_protocol || srv->opts.shared_listener)
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
            if (proxy_wait_start(srv, fd) < 0)
                close(fd);
            continue;
        }
        if (io_admit(srv, fd) < 0) {
            close(fd);
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
    while (srv->proxy_waits)
        proxy_wait_end(srv->proxy_waits);
    uv_timer_stop(&srv->accept_pause);
    uv_close((uv_handle_t *)&srv->accept_pause, NULL);
    if (srv->opts.shared_listener) {
        uv_poll_stop(&srv->listener);
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
}
