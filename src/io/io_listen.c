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
#include "io_server_impl.h"

/* The client address of an accepted fd as text (IPv4-mapped IPv6 as plain IPv4, so one client
 * counts once however it arrives). Returns 0 or -1. */
static int peer_key(int fd, char out[IO_ADDR_MAX])
{
    io_addr a;
    io_client_addr(NULL, fd, &a);
    if (a.family == 0)
        return -1;
    io_addr_text(&a, out);
    return 0;
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
    char key[IO_ADDR_MAX];
    if (peer_key(fd, key) < 0)
        return 0;
    size_t klen = strlen(key);
    io_peer *p = map_get(&srv->peers, key, klen);
    if (p && p->count >= srv->opts.max_connections_per_ip) {
        metrics_add(srv->limit_hits, "connections_per_ip", 1);
        io_refused(srv, NULL, fd, 0, "connections_per_ip");
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
}

/* Closing a refused connection at once keeps fds free for the daemon's own use. A refused
 * connection gets no WSI_DESTROY, so only kept ones are counted. */
int io_admit(io_server *srv, int fd)
{
    if (srv->shutting_down)
        return -1;
    if (srv->sockets >= srv->max_sockets) {
        io_refused(srv, NULL, fd, 0, "connections");
        return -1;
    }
    if (peer_admit(srv, fd) < 0)
        return -1;
    srv->sockets++;
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
    uv_timer_stop(&srv->accept_pause);
    uv_close((uv_handle_t *)&srv->accept_pause, NULL);
    if (srv->opts.shared_listener) {
        uv_poll_stop(&srv->listener);
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
}
