/* The libwebsockets server: one protocol that serves Engine.IO polling requests over HTTP and
 * Engine.IO WebSocket connections, on the application's libuv loop (foreign loop). This file
 * holds its lifecycle and the lws callback that dispatches to the other io_*.c files (see
 * io_server_impl.h for which does what).
 */
#include "presenced/io/io_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/core/metrics_def.h"
#include "presenced/io/log.h"
#include "io_server_impl.h"

/* An HTTP connection ended (DROP_PROTOCOL comes for every one, CLOSED_HTTP not): detach it from
 * its session or request and free what its answer held. */
static void http_dropped(io_pss *pss, struct lws *wsi)
{
    io_conn *c = pss->conn;
    if (c && c->get == wsi)
        io_poll_unhold(c);
    if (c && c->post == wsi)
        c->post = NULL;
    pss->conn = NULL;
    io_http_req_gone(pss);
    io_response_free_extra(pss);
    pss->kind = PSS_NONE;
    buf_deinit(&pss->body);
}

/* Callbacks about the TCP connection itself. */
static int conn_callback(io_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                         void *in)
{
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return io_admit(srv, (int)(lws_intptr_t)in);
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (srv)
            io_admit_attach(srv, wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (srv)
            io_admit_release(srv, wsi);
        return 0;
    default:
        return 0;
    }
}

/* Callbacks of HTTP requests: Engine.IO polling and plain HTTP. */
static int http_callback(io_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                         io_pss *pss, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (io_http_route(srv, wsi, pss) < 0)
            return -1;
        /* A POST's body follows; everything else has its answer queued or is held. */
        return 0;
    case LWS_CALLBACK_HTTP_BODY:
        if (pss->kind == PSS_API_BODY)
            return io_http_req_body(srv, wsi, pss, in, len) < 0 ? -1 : 0;
        return io_poll_body(srv, wsi, pss, in, len) < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (pss->kind == PSS_API_BODY) {
            io_http_req_body_done(srv, pss);
            return 0;
        }
        return io_poll_body_done(wsi, pss) < 0 ? -1 : 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (pss->kind == PSS_HELD)
            return io_poll_write_held(wsi, pss);
        if (pss->kind == PSS_RESPONSE || pss->kind == PSS_STREAM)
            return io_response_write(wsi, pss);
        return 0;
    default: /* LWS_CALLBACK_HTTP_DROP_PROTOCOL, LWS_CALLBACK_CLOSED_HTTP */
        if (pss)
            http_dropped(pss, wsi);
        return 0;
    }
}

/* Callbacks of WebSocket connections. */
static int ws_callback(io_server *srv, struct lws *wsi, enum lws_callback_reasons reason,
                       io_pss *pss, void *in, size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return io_ws_filter(srv, wsi, pss);
    case LWS_CALLBACK_ESTABLISHED:
        return io_ws_established(srv, wsi, pss);
    case LWS_CALLBACK_RECEIVE:
        return io_ws_receive(srv, wsi, pss, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return io_ws_writeable(wsi, pss);
    case LWS_CALLBACK_TIMER:
        /* The deferred close of io_ws_close(): returning -1 here sends the close frame. Otherwise
         * the timer paced the next message (frame_gap_us). */
        if (pss && pss->close_sent)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if (pss)
            io_ws_closed(wsi, pss);
        return 0;
    default: /* LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: lws answers it */
        return 0;
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    io_pss *pss = user;
    struct lws_vhost *vh = lws_get_vhost(wsi);
    io_server *srv = vh ? lws_vhost_user(vh) : NULL;
    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
    case LWS_CALLBACK_WSI_DESTROY:
        return conn_callback(srv, wsi, reason, in);
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        return http_callback(srv, wsi, reason, pss, in, len);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_TIMER:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        return ws_callback(srv, wsi, reason, pss, in, len);
    default:
        return 0;
    }
}

static void lws_log(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    log_msg(level == LLL_ERR ? LOG_ERROR : LOG_WARN, "libwebsockets", "detail=\"%.*s\"", (int)n,
            line);
}

/* Declare the server's metric families, so that they show at 0 before anything happens. */
static void server_metrics_init(io_server *srv)
{
    metrics *m = srv->opts.metrics;
    srv->slow_consumers = metrics_def_get(m, METRIC_SLOW_CONSUMERS);
    srv->sessions_closed = metrics_def_get(m, METRIC_SESSIONS_CLOSED);
    metrics_add(srv->slow_consumers, "socketio", 0);
    srv->limit_hits = metrics_def_get(m, METRIC_LIMIT_HITS);
    metrics_add(srv->limit_hits, "connections_per_ip", 0);
    metrics_add(srv->limit_hits, "sessions_per_ip", 0);
    metrics_add(srv->limit_hits, "request_head", 0);
}

/* The context: no listener of its own (the vhosts listen), on the application's loop. */
static int server_context_new(io_server *srv, struct lws_context_creation_info *info)
{
    const io_server_opts *opts = &srv->opts;
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
    srv->foreign_loops[0] = srv->loop;
    memset(info, 0, sizeof(*info));
    info->options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                    LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (opts->tls_cert)
        info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (strchr(opts->host, ':'))
        info->options &= ~(uint64_t)LWS_SERVER_OPTION_DISABLE_IPV6;
    info->foreign_loops = srv->foreign_loops;
    info->protocols = srv->protocols;
    info->port = CONTEXT_PORT_NO_LISTEN;
    info->timeout_secs = opts->http_timeout;
    /* A client that stops in the middle of its headers holds a header buffer from lws's small
     * pool: give it http_timeout too (lws's own default is 10 s). */
    info->timeout_secs_ah_idle = opts->http_timeout;
    info->max_http_header_data = IO_HEAD_MAX;
    /* A held long-poll GET keeps its header table until it is answered, so the pool must be
     * able to cover every polling client (tables are allocated on demand). */
    info->max_http_header_pool =
        (unsigned short)(opts->max_connections > 65535 ? 65535 : opts->max_connections);
    /* No fd_limit_per_thread: below the process limit it turns lws's fd lookup into a linear
     * scan. io_listen_init() raised the limit instead, and FILTER_NETWORK_CONNECTION keeps the
     * number of sockets under it (at the limit lws would spin on accept, EMFILE). */
    info->user = srv;
    srv->ctx = lws_create_context(info);
    if (!srv->ctx) {
        log_error("cannot create the libwebsockets context", NULL);
        return -1;
    }
    return 0;
}

/* TLS on the main listener: HTTP/1.1 only, also when a client offers h2 in ALPN (lws's HTTP/2
 * is kept out of reach), TLS 1.2 or later, forward-secret AEAD suites only (TLS 1.3 suites are
 * OpenSSL's defaults). */
static void server_tls(const io_server_opts *opts, struct lws_context_creation_info *info)
{
    if (!opts->tls_cert || !opts->tls_key)
        return;
    info->ssl_cert_filepath = opts->tls_cert;
    info->ssl_private_key_filepath = opts->tls_key;
    info->alpn = "http/1.1";
    info->ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                            SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
    info->ssl_cipher_list = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
}

/* The vhosts, created explicitly and checked: with lws's implicit default vhost a failed bind
 * (EADDRINUSE) leaves a half-destroyed context that later aborts inside uv_run. The main one
 * serves Engine.IO and the HTTP API; the admin one, if any, plain HTTP only. */
static int server_vhosts_new(io_server *srv, struct lws_context_creation_info *info)
{
    const io_server_opts *opts = &srv->opts;
    /* Engine.IO's heartbeat is the liveness check. lws's own validity timer would otherwise be
     * re-armed on every message of every connection with a sorted insert into one list, whose
     * cost grows with the number of connections. */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    info->retry_and_idle_policy = &no_validity;
    /* A shared listener is served through lws_adopt_socket_vhost(): the vhost only serves. */
    info->port = opts->shared_listener ? CONTEXT_PORT_NO_LISTEN_SERVER : opts->port;
    info->iface = opts->shared_listener ? NULL : opts->host;
    info->vhost_name = "presenced";
    server_tls(opts, info);
    if (!(srv->vhost = lws_create_vhost(srv->ctx, info))) {
        log_error("cannot listen", "host=%s port=%u", opts->host, opts->port);
        return -1;
    }
    if (!opts->admin_host)
        return 0;
    /* The admin listener stays plain HTTP (private address, health checks, scraping). */
    info->ssl_cert_filepath = info->ssl_private_key_filepath = NULL;
    info->alpn = NULL;
    info->ssl_cipher_list = NULL;
    info->ssl_options_set = 0;
    info->port = opts->admin_port;
    info->iface = opts->admin_host;
    info->vhost_name = "admin";
    if (!(srv->admin_vhost = lws_create_vhost(srv->ctx, info))) {
        log_error("cannot listen", "host=%s port=%u", opts->admin_host, opts->admin_port);
        return -1;
    }
    return 0;
}

/* Everything io_server_new() allocated, on its failure or after io_server_free()'s loop run. */
static void server_release(io_server *srv)
{
    sio_server_free(srv->sio);
    io_origins_free(srv);
    io_listen_free(srv);
    io_refusals_free(srv);
    free(srv->batch);
    free(srv);
}

/* The libwebsockets side: context, vhosts and the shared listener. On failure the context, if
 * one was made, is left for server_destroy(). */
static int server_lws_start(io_server *srv)
{
    struct lws_context_creation_info info;
    if (server_context_new(srv, &info) < 0)
        return -1;
    return server_vhosts_new(srv, &info) < 0 || io_listen_start(srv) < 0 ? -1 : 0;
}

/* Destroy the context and release the server, after a failed start as after a shutdown. On a
 * foreign loop lws only begins destroying the context: its handles close on the loop, and what
 * it frees then (the sockets of vhosts that did listen) still calls back into this server, so
 * `srv` must outlive the loop run. A second call finishes once the handles are closed. */
static void server_destroy(io_server *srv)
{
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
    /* Our own handles, closed by io_server_shutdown(), finish closing here too. */
    uv_run(srv->loop, UV_RUN_DEFAULT);
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
    server_release(srv);
}

io_server *io_server_new(uv_loop_t *loop, const io_server_opts *opts)
{
    io_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->loop = loop;
    srv->opts = *opts;
    snprintf(srv->path, sizeof(srv->path), "%s", opts->path);
    srv->opts.path = srv->path;
    srv->opts.allowed_origins = NULL; /* parsed into srv->origins */
    server_metrics_init(srv);
    io_refusals_init(srv);
    sio_io_ops ops = io_conn_ops();
    if (!(srv->batch = malloc(LWS_PRE + IO_WS_BATCH)) || io_listen_init(srv) < 0 ||
        io_addr_init(srv) < 0 || io_listen_prepare(srv) < 0 ||
        io_origins_parse(srv, opts->allowed_origins) < 0 ||
        !(srv->sio = sio_server_new(&opts->sio, &ops)) || server_lws_start(srv) < 0) {
        server_destroy(srv);
        return NULL;
    }
    io_poll_init(srv);
    io_flush_init(srv);
    io_conn_watch_init(srv);
    return srv;
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
        io_conn_destroy(c);
    }
    io_poll_close(srv);
    io_listen_close(srv);
    io_flush_close(srv);
    io_conn_watch_close(srv);
}

void io_server_free(io_server *srv)
{
    if (srv)
        server_destroy(srv);
}
