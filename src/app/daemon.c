/* Lifecycle: configuration → loop → server → signals → clean shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "presenced/app.h"
#include "presenced/cfg.h"
#include "presenced/io_server.h"
#include "presenced/log.h"

#define APP_MAX_NAMESPACES 32

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    io_server *server;
    bool stopping;
} app;

static void on_signal(uv_signal_t *h, int signum)
{
    app *a = h->data;
    if (a->stopping)
        return;
    a->stopping = true;
    log_info("shutting down", "signal=%d", signum);
    io_server_shutdown(a->server);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_stop(&a->loop);
}

/* Split the comma-separated namespace list into `out` (pointers into `storage`). */
static void split_namespaces(char *storage, const char *out[APP_MAX_NAMESPACES + 1])
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(storage, ", ", &save); t && n < APP_MAX_NAMESPACES;
         t = strtok_r(NULL, ", ", &save))
        out[n++] = t;
    out[n] = NULL;
}

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
        seed = (uint64_t)(uintptr_t)&seed;
    return seed;
}

static int run(const cfg *c)
{
    app a;
    memset(&a, 0, sizeof(a));
    if (uv_loop_init(&a.loop) != 0)
        return 1;
    char nsbuf[CFG_STR_MAX];
    const char *namespaces[APP_MAX_NAMESPACES + 1];
    snprintf(nsbuf, sizeof(nsbuf), "%s", c->namespaces);
    split_namespaces(nsbuf, namespaces);
    io_server_opts opts = {
        .host = c->listen_host,
        .port = c->listen_port,
        .path = c->path,
        .allowed_origins = c->allowed_origins,
        .max_connections = c->max_connections,
        .http_timeout = c->http_timeout,
        .frame_gap_us = c->ws_message_gap,
        .sio =
            {
                .namespaces = namespaces,
                .limits = {.ping_interval = c->ping_interval,
                           .ping_timeout = c->ping_timeout,
                           .max_payload = c->max_payload,
                           .send_queue_max = c->send_queue_max},
                .connect_timeout = c->connect_timeout,
                .attachment_timeout = c->attachment_timeout,
                .engineio_echo = c->conformance == CFG_CONFORMANCE_ENGINEIO,
                .hash_seed = random_seed(),
            },
    };
    a.server = io_server_new(&a.loop, &opts);
    if (!a.server) {
        uv_loop_close(&a.loop);
        return 1;
    }
    if (c->conformance == CFG_CONFORMANCE_SOCKETIO &&
        app_conformance_register(io_server_sio(a.server)) < 0) {
        log_error("cannot register the conformance handlers", NULL);
        return 1;
    }
    uv_signal_init(&a.loop, &a.sigint);
    uv_signal_init(&a.loop, &a.sigterm);
    a.sigint.data = a.sigterm.data = &a;
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    log_info("listening", "host=%s port=%u path=%s store=%s conformance=%d", c->listen_host,
             c->listen_port, c->path, c->store == CFG_STORE_REDIS ? "redis" : "memory",
             (int)c->conformance);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    io_server_free(a.server);
    int rc = uv_loop_close(&a.loop);
    if (rc != 0)
        log_warn("loop closed with live handles", "err=\"%s\"", uv_strerror(rc));
    log_info("stopped", NULL);
    return 0;
}

int app_main(int argc, char *const *argv, char *const *envp)
{
    /* A peer that vanishes mid-write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    cfg c;
    cfg_action action;
    char err[CFG_ERR_MAX];
    if (cfg_from_args(&c, argc, argv, envp, &action, err) < 0) {
        fprintf(stderr, "presenced: %s\n", err);
        return 1;
    }
    switch (action) {
    case CFG_ACTION_HELP:
        cfg_print_help(stdout);
        return 0;
    case CFG_ACTION_VERSION:
        printf("presenced %s\n", PRESENCED_VERSION);
        return 0;
    case CFG_ACTION_CHECK:
        printf("configuration ok\n");
        return 0;
    case CFG_ACTION_RUN:
        break;
    }
    log_set_level((log_level)c.log_level);
    return run(&c);
}
