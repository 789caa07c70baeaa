/* io_server — the libwebsockets server on the libuv loop: Engine.IO over HTTP long-polling and
 * WebSocket, handing packets to the Socket.IO core (sio_server) and carrying out its actions.
 */
#ifndef PRESENCED_IO_SERVER_H
#define PRESENCED_IO_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "presenced/io/io_http.h"
#include "presenced/core/metrics.h"
#include "presenced/core/sio_server.h"

typedef struct io_server io_server;

typedef struct io_server_opts {
    const char *host; /* listen address */
    uint16_t port;
    /* Share the port with other processes (workers > 1): accept from `listen_fd`, a listening
     * socket of an SO_REUSEPORT group (reuseport.h), instead of binding host:port. Borrowed: the
     * server never closes it. */
    bool shared_listener;
    int listen_fd;
    const char *path;            /* Engine.IO endpoint, e.g. "/socket.io/" */
    const char *allowed_origins; /* comma-separated, "*" for any, "" for none */
    uint32_t max_connections;
    /* TCP connections from one peer address; further ones are closed as they are accepted
     * (0: no limit). Connections from trusted_proxies are not counted. */
    uint32_t max_connections_per_ip;
    /* Engine.IO sessions of one client address (0: no limit); handshakes beyond get 429. */
    uint32_t max_sessions_per_ip;
    /* Comma-separated CIDR ranges of reverse proxies whose X-Forwarded-For / Forwarded /
     * X-Forwarded-Proto are believed (fwd.h); NULL or "" for none. Parsed, not kept. */
    const char *trusted_proxies;
    /* Every connection to the main listener starts with a PROXY protocol header. */
    bool proxy_protocol;
    /* PEM files: both set = the main listener speaks TLS (HTTPS/WSS); NULL = plain. */
    const char *tls_cert;
    const char *tls_key;
    uint32_t http_timeout; /* s: idle and header timeout for HTTP connections */
    /* Minimum gap between two WebSocket messages to one client, 0 for none (config key
     * ws_message_gap; only the conformance presets set it). */
    uint32_t frame_gap_us;
    sio_server_opts sio; /* the core's options (copied) */
    /* Plain HTTP requests (not Engine.IO), or NULL to answer them 404. */
    io_http_handler http_handler;
    void *http_ud;
    uint32_t max_http_body; /* bytes of a plain HTTP request body */
    /* A second listener for plain HTTP only (health, metrics), or NULL. */
    const char *admin_host;
    uint16_t admin_port;
    metrics *metrics; /* slow consumers dropped; may be NULL */
} io_server_opts;

/* Create the server on `loop` and start listening. Returns NULL (after logging why) when the
 * address cannot be bound or memory is short. */
io_server *io_server_new(uv_loop_t *loop, const io_server_opts *opts);
/* The Socket.IO core, to register event handlers on. */
sio_server *io_server_sio(io_server *srv);
/* Engine.IO connections alive, by their current transport. */
void io_server_connections(io_server *srv, uint32_t *polling, uint32_t *websocket);
/* Replace the allowed origins (comma-separated, "*" for any) for requests from now on (SIGHUP).
 * Returns 0, or -1 (memory) leaving the old list in place. */
int io_server_set_origins(io_server *srv, const char *list);
/* Refuse new connections from now on (the first step of a shutdown). */
void io_server_stop_accepting(io_server *srv);
/* Close every connection (their disconnect handlers run) and stop the server's timers. After this
 * the caller destroys the server with io_server_free() once uv_run() has returned. */
void io_server_shutdown(io_server *srv);
/* Destroy the lws context and free everything; runs the loop until the handles are closed. */
void io_server_free(io_server *srv);

#endif
