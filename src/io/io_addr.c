/* Who a request comes from, and how much one client address may hold: the per-address table
 * shared by the TCP limit (io_listen.c) and the session limit, the trusted proxies, and the one
 * client-address lookup every limit and log line uses.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "presenced/io/log.h"
#include "io_server_impl.h"

int io_addr_init(io_server *srv)
{
    const char *list = srv->opts.trusted_proxies ? srv->opts.trusted_proxies : "";
    srv->opts.trusted_proxies = NULL; /* parsed: the caller's string is not kept */
    if (fwd_cidrs_parse(list, &srv->trusted) != FWD_OK) {
        log_error("trusted_proxies is not a list of addresses or ranges", NULL);
        return -1;
    }
    return 0;
}

io_peer *io_peer_get(io_server *srv, const fwd_addr *a)
{
    char key[FWD_ADDR_TEXT];
    fwd_addr_text(a, key);
    size_t klen = strlen(key);
    io_peer *p = map_get(&srv->peers, key, klen);
    if (p)
        return p;
    if (!(p = calloc(1, sizeof(*p))))
        return NULL;
    p->addr = *a;
    memcpy(p->key, key, klen + 1);
    p->klen = klen;
    if (map_put(&srv->peers, p->key, klen, p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

void io_peer_put(io_server *srv, io_peer *p)
{
    if (p && !p->conns && !p->sessions) {
        map_del(&srv->peers, p->key, p->klen);
        free(p);
    }
}

int io_sock_peer(int fd, fwd_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char text[FWD_ADDR_TEXT];
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    const void *bytes =
        ss.ss_family == AF_INET    ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
        : ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                   : NULL;
    if (!bytes || !inet_ntop(ss.ss_family, bytes, text, sizeof(text)))
        return -1;
    return fwd_addr_parse(text, strlen(text), out) == FWD_OK ? 0 : -1;
}

/* The connection's own address: what admission recorded (the PROXY protocol's client, or the
 * TCP peer), else the TCP peer. */
static int conn_addr(struct lws *wsi, fwd_addr *out)
{
    const io_peer *p = lws_get_opaque_user_data(lws_get_network_wsi(wsi));
    if (p) {
        *out = p->addr;
        return 0;
    }
    return io_sock_peer(lws_get_socket_fd(wsi), out);
}

/* A request header as a NUL-terminated heap string (NULL when absent): header `token`, or the
 * header `name` ("forwarded:") that lws does not know. The caller frees it. */
static char *header_dup(struct lws *wsi, int token, const char *name)
{
    int len = name ? lws_hdr_custom_length(wsi, name, (int)strlen(name))
                   : lws_hdr_total_length(wsi, (enum lws_token_indexes)token);
    if (len <= 0)
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (!s)
        return NULL;
    int n = name ? lws_hdr_custom_copy(wsi, s, len + 1, name, (int)strlen(name))
                 : lws_hdr_copy(wsi, s, len + 1, (enum lws_token_indexes)token);
    if (n < 0) {
        free(s);
        return NULL;
    }
    return s;
}

void io_client_addr(struct lws *wsi, int fd, io_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (!wsi) {
        io_sock_peer(fd, out);
        return;
    }
    struct lws_vhost *vh = lws_get_vhost(wsi);
    io_server *srv = vh ? lws_vhost_user(vh) : NULL;
    fwd_addr peer;
    if (conn_addr(wsi, &peer) < 0)
        return;
    if (!srv) {
        *out = peer;
        return;
    }
    if (!fwd_cidrs_match(&srv->trusted, &peer)) {
        *out = peer;
        return;
    }
    char *forwarded = header_dup(wsi, 0, "forwarded:");
    char *xff = header_dup(wsi, WSI_TOKEN_X_FORWARDED_FOR, NULL);
    fwd_client(&peer, &srv->trusted, forwarded, xff, out);
    free(forwarded);
    free(xff);
}

const char *io_client_scheme(io_server *srv, struct lws *wsi)
{
    const char *own = srv->opts.tls_cert ? "https" : "http";
    fwd_addr peer;
    if (conn_addr(wsi, &peer) < 0 || !fwd_cidrs_match(&srv->trusted, &peer))
        return own;
    char *forwarded = header_dup(wsi, 0, "forwarded:");
    char *xfproto = header_dup(wsi, 0, "x-forwarded-proto:");
    const char *said = fwd_proto(forwarded, xfproto);
    free(forwarded);
    free(xfproto);
    return said ? said : own;
}

int io_session_admit(io_server *srv, struct lws *wsi, bool count, io_peer **peer)
{
    *peer = NULL;
    io_addr a;
    io_client_addr(wsi, -1, &a);
    if (!a.family || !srv->opts.max_sessions_per_ip)
        return 0;
    io_peer *p = io_peer_get(srv, &a);
    if (!p)
        return 0;
    if (p->sessions >= srv->opts.max_sessions_per_ip) {
        /* Logged by the refusal itself (io_refused, cause max_sessions_per_ip). */
        metrics_add(srv->limit_hits, "sessions_per_ip", 1);
        io_peer_put(srv, p);
        return -1;
    }
    if (!count) {
        io_peer_put(srv, p);
        return 0;
    }
    p->sessions++;
    *peer = p;
    return 0;
}

void io_session_release(io_server *srv, io_peer *p)
{
    if (!p || !p->sessions)
        return;
    p->sessions--;
    io_peer_put(srv, p);
}
