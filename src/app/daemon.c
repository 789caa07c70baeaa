/* Lifecycle: configuration → loop → server → signals → clean shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/app/api.h"
#include "presenced/app/app.h"
#include "presenced/app/cfg.h"
#include "presenced/app/gateway.h"
#include "presenced/io/host.h"
#include "presenced/io/io_server.h"
#include "presenced/codec/jwt.h"
#include "presenced/io/log.h"
#include "presenced/core/metrics.h"
#include "presenced/core/policy.h"
#include "presenced/io/store_memory.h"
#include "presenced/io/store_redis.h"
#include "presenced/io/sysd.h"
#include "presenced/io/webhook.h"
#include "presenced/app/workers.h"

#define APP_MAX_NAMESPACES 32

typedef struct app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t shutdown_timer;
    uv_timer_t auth_timer; /* once a second: expired tokens (gateway_tick) */
    sysd *sd;
    cfg current; /* the configuration in force, for SIGHUP */
    int argc;
    char *const *argv, *const *envp;
    io_server *server;
    policy *pol;
    gateway *gw;
    store *st;
    api *api;
    metrics *metrics;
    webhook *wh;
    store_hooks gw_hooks; /* the gateway's store hooks, which app_event passes events on to */
    uint64_t shutdown_ms;
    bool stopping, stopped;
} app;

/* Teardown, in the one order every way out follows. First, on the loop: webhooks stop, the HTTP
 * API's streams end, the connections close (their disconnect hooks run while the store still
 * exists), then the store goes. Safe on a daemon that started only in part. */
static void app_close(app *a)
{
    webhook_free(a->wh);
    a->wh = NULL;
    if (a->api)
        api_shutdown(a->api);
    if (a->server)
        io_server_shutdown(a->server);
    gateway_shutdown(a->gw);
    if (a->api)
        api_attach_store(a->api, NULL);
    store_free(a->st);
    a->st = NULL;
}

/* Then, once uv_run() has returned: the server (which runs the loop until every handle has
 * closed), the gateway, the API, the metrics and the loop. Returns uv_loop_close()'s result. */
static int app_free(app *a)
{
    if (a->server)
        io_server_free(a->server);
    else
        uv_run(&a->loop, UV_RUN_NOWAIT);
    gateway_free(a->gw);
    api_free(a->api);
    policy_free(a->pol);
    metrics_free(a->metrics);
    return uv_loop_close(&a->loop);
}

/* The last step of a shutdown: stop listening to signals and timers, close everything and let
 * uv_run() return. */
static void finish_shutdown(app *a)
{
    if (a->stopped)
        return;
    a->stopped = true;
    sysd_free(a->sd);
    a->sd = NULL;
    uv_close((uv_handle_t *)&a->sighup, NULL);
    uv_timer_stop(&a->shutdown_timer);
    uv_close((uv_handle_t *)&a->shutdown_timer, NULL);
    uv_timer_stop(&a->auth_timer);
    uv_close((uv_handle_t *)&a->auth_timer, NULL);
    app_close(a);
    uv_stop(&a->loop);
}

static void on_store_shutdown(int err, void *ud)
{
    app *a = ud;
    if (err)
        log_warn("could not mark this instance's users offline", "err=\"%s\"", store_strerror(err));
    finish_shutdown(a);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    log_warn("shutdown_timeout reached", NULL);
    finish_shutdown(t->data);
}

/* SIGINT/SIGTERM: stop accepting, mark this instance's users offline (with their events, unless
 * they are connected elsewhere), release the lease, close everything, within shutdown_timeout. */
static void on_signal(uv_signal_t *h, int signum)
{
    app *a = h->data;
    if (a->stopping)
        return;
    a->stopping = true;
    log_info("shutting down", "signal=%d", signum);
    sysd_stopping(a->sd);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    io_server_stop_accepting(a->server);
    uv_timer_start(&a->shutdown_timer, on_shutdown_timeout, a->shutdown_ms, 0);
    if (a->st)
        store_shutdown(a->st, on_store_shutdown, a);
    else
        finish_shutdown(a);
}

/* Store events go to the gateway (Socket.IO clients) and to the HTTP API's event streams. */
static void app_event(const pres_event *ev, void *ud)
{
    app *a = ud;
    a->gw_hooks.event(ev, a->gw_hooks.ud);
    api_event(a->api, ev);
}

static void app_reconcile(store_truth *t, void *ud)
{
    app *a = ud;
    a->gw_hooks.reconcile(t, a->gw_hooks.ud);
}

static void app_availability(bool available, void *ud)
{
    app *a = ud;
    a->gw_hooks.availability(available, a->gw_hooks.ud);
    /* systemd hears READY once the daemon listens and its store answers. */
    if (available)
        sysd_ready(a->sd, "listening, store available");
    else
        sysd_status(a->sd, "store unavailable, reconnecting");
}

/* Read at most `cap` - 1 bytes of `path` into `out` (NUL-terminated). Returns the length or -1. */
static long read_small_file(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    bool whole = feof(f) && !ferror(f);
    fclose(f);
    out[n] = 0;
    return whole ? (long)n : -1;
}

/* The JWT key of the configuration (auth=jwt): the secret, the secret file's first line, or the
 * public key file. Files are read here, in the app layer, at start and on SIGHUP. Returns the key
 * (caller owns) or NULL after logging why. */
static jwt_key *load_jwt_key(const cfg *c)
{
    static char text[65536];
    jwt_key *key = NULL;
    int rc;
    const char *what = "jwt_secret";
    if (c->jwt_public_key_file[0]) {
        what = "jwt_public_key_file";
        long n = read_small_file(c->jwt_public_key_file, text, sizeof(text));
        if (n < 0) {
            log_error("cannot read jwt_public_key_file", "path=%s", c->jwt_public_key_file);
            return NULL;
        }
        rc = jwt_key_from_pem(text, (size_t)n, &key);
    } else if (c->jwt_secret_file[0]) {
        what = "jwt_secret_file";
        if (read_small_file(c->jwt_secret_file, text, sizeof(text)) < 0) {
            log_error("cannot read jwt_secret_file", "path=%s", c->jwt_secret_file);
            return NULL;
        }
        text[strcspn(text, "\r\n")] = 0;
        rc = jwt_key_from_secret((const uint8_t *)text, strlen(text), &key);
    } else {
        rc = jwt_key_from_secret((const uint8_t *)c->jwt_secret, strlen(c->jwt_secret), &key);
    }
    /* The secret's bytes should not linger in a static buffer. */
    memset(text, 0, sizeof(text));
    if (rc != JWT_OK) {
        log_error("unusable JWT key", "key=%s err=\"%s\"", what, jwt_strerror(rc));
        return NULL;
    }
    return key;
}

static bool is_jwt_key_setting(const char *key)
{
    return strcmp(key, "jwt_secret") == 0 || strcmp(key, "jwt_secret_file") == 0 ||
           strcmp(key, "jwt_public_key_file") == 0;
}

/* Appends `key` to the comma-separated list in buf (cap bytes). */
static void list_add(char *buf, size_t cap, const char *key)
{
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s%s", len ? "," : "", key);
}

/* What a reload did with one changed key: applied, left for a restart, or tried and failed (the
 * running value stays). */
typedef enum reload_result { RELOAD_APPLIED, RELOAD_RESTART, RELOAD_FAILED } reload_result;

/* keys: whether JWT keys were read again (1), could not be (-1), or were not tried (0). */
static reload_result reload_key(app *a, const char *key, const cfg *next, int keys)
{
    if (strcmp(key, "log_level") == 0) {
        log_set_level((log_level)next->log_level);
        return RELOAD_APPLIED;
    }
    if (strcmp(key, "allowed_origins") == 0)
        return io_server_set_origins(a->server, next->allowed_origins) == 0 ? RELOAD_APPLIED
                                                                            : RELOAD_FAILED;
    if (is_jwt_key_setting(key) && keys != 0)
        return keys > 0 ? RELOAD_APPLIED : RELOAD_FAILED;
    return RELOAD_RESTART;
}

/* SIGHUP: read the configuration again and apply what can change while running: the log level,
 * the allowed origins and the JWT keys. Every other key that changed is named as needing a
 * restart. A reload of which any part failed is logged as failed, at error level, naming what
 * failed (and keeps its running value) and what was applied nonetheless. */
static void on_sighup(uv_signal_t *h, int signum)
{
    app *a = h->data;
    (void)signum;
    cfg next;
    cfg_action action;
    char err[CFG_ERR_MAX];
    if (cfg_from_args(&next, a->argc, a->argv, a->envp, &action, err) < 0) {
        log_error("reload failed: configuration invalid, nothing changed", "err=\"%s\"", err);
        return;
    }
    char applied[256] = "", skipped[1024] = "", failed[256] = "";
    /* JWT keys are read again even when their settings did not change: rotating a key is
     * replacing the file and sending SIGHUP. A key that cannot be read keeps the old one. */
    int keys = 0;
    if (a->gw && a->current.auth == CFG_AUTH_JWT && next.auth == CFG_AUTH_JWT) {
        jwt_key *key = load_jwt_key(&next);
        keys = key ? 1 : -1;
        if (key)
            policy_set_jwt_key(a->pol, key);
        list_add(key ? applied : failed, key ? sizeof(applied) : sizeof(failed), "jwt keys");
    }
    for (size_t i = 0; cfg_key_name(i); i++) {
        const char *key = cfg_key_name(i);
        char was[CFG_STR_MAX + 8], now[CFG_STR_MAX + 8];
        cfg_get(&a->current, key, was, sizeof(was));
        cfg_get(&next, key, now, sizeof(now));
        if (strcmp(was, now) == 0)
            continue;
        reload_result r = reload_key(a, key, &next, keys);
        if (r == RELOAD_APPLIED) {
            list_add(applied, sizeof(applied), key);
            cfg_set(&a->current, key, now, err);
        } else {
            list_add(r == RELOAD_FAILED ? failed : skipped,
                     r == RELOAD_FAILED ? sizeof(failed) : sizeof(skipped), key);
        }
    }
    if (failed[0])
        log_error("reload failed", "failed=\"%s\" applied=\"%s\" needs_restart=\"%s\"", failed,
                  applied, skipped);
    else
        log_info("configuration reloaded", "applied=\"%s\" needs_restart=\"%s\"", applied, skipped);
}

static void app_local(api_local *out, void *ud)
{
    app *a = ud;
    if (a->gw) {
        out->users = gateway_users(a->gw);
        out->sockets = gateway_sockets(a->gw);
    }
    if (a->server)
        io_server_connections(a->server, &out->polling, &out->websocket);
}

/* The presence policy of the configuration (the rules the gateway and the API follow). */
static policy *new_policy(const cfg *c, bool api_privileged)
{
    policy_opts popts = {.jwt = c->auth == CFG_AUTH_JWT,
                         .scoped = c->broadcast == CFG_BROADCAST_SCOPED,
                         .anonymous_read = c->anonymous_reads == CFG_ON,
                         .api_privileged = api_privileged,
                         .jwt_audience = c->jwt_audience,
                         .jwt_issuer = c->jwt_issuer,
                         .jwt_leeway_s = c->jwt_leeway,
                         .max_metadata_bytes = c->max_metadata_bytes,
                         .max_bulk_ids = c->max_bulk_ids,
                         .max_sockets_per_user = c->max_sockets_per_user,
                         .max_rooms_per_socket = c->max_rooms_per_socket,
                         .max_subscriptions_per_socket = c->max_subscriptions_per_socket,
                         .rate_limit = c->rate_limit,
                         .rate_burst = c->rate_burst,
                         .auth_failures_per_min = c->auth_failures_per_ip,
                         .hash_seed = host_seed()};
    return policy_new(&popts);
}

/* The presence gateway and its store (not in the Socket.IO conformance mode, whose handlers
 * take the connection hooks). Returns 0 or -1. */
static int start_presence(app *a, const cfg *c)
{
    gateway_opts gopts = {.loop = &a->loop, .policy = a->pol, .metrics = a->metrics};
    bool jwt = c->auth == CFG_AUTH_JWT;
    jwt_key *key = NULL;
    if (jwt && !(key = load_jwt_key(c)))
        return -1;
    policy_set_jwt_key(a->pol, key);
    a->gw = gateway_new(io_server_sio(a->server), &gopts);
    if (!a->gw)
        return -1;
    static char instance[STORE_INSTANCE_ID_LEN + 1];
    host_random_id(instance, STORE_INSTANCE_ID_LEN);
    store_opts sopts = {.instance_id = instance,
                        .offline_grace_ms = c->offline_grace * 1000,
                        .last_seen_retention_s = c->last_seen_retention,
                        .instance_lease_ms = c->instance_lease * 1000,
                        .ttl_s = c->ttl,
                        .stream_maxlen = c->stream_maxlen,
                        .redis_url = c->redis,
                        .sentinel_password = c->redis_sentinel_password,
                        .redis_partitions = c->redis_partitions,
                        .key_prefix = c->redis_prefix,
                        .webhooks = c->webhook_url[0] != '\0',
                        .metrics = a->metrics};
    a->gw_hooks = gateway_store_hooks(a->gw);
    store_hooks hooks = {
        .event = app_event, .reconcile = app_reconcile, .availability = app_availability, .ud = a};
    a->st = c->store == CFG_STORE_REDIS ? store_redis_new(&a->loop, &sopts, &hooks)
                                        : store_memory_new(&a->loop, &sopts, &hooks);
    if (!a->st)
        return -1;
    gateway_attach_store(a->gw, a->st);
    api_attach_store(a->api, a->st);
    if (c->webhook_url[0]) {
        webhook_opts wopts = {.url = c->webhook_url,
                              .secret = c->webhook_secret,
                              .retry_for_s = c->webhook_retry_for,
                              .metrics = a->metrics};
        if (!(a->wh = webhook_new(&a->loop, a->st, &wopts)))
            return -1;
    }
    log_info("presence", "instance=%s store=%s broadcast=%s auth=%s", instance,
             c->store == CFG_STORE_REDIS ? "redis" : "memory",
             c->broadcast == CFG_BROADCAST_SCOPED ? "scoped" : "all", jwt ? "jwt" : "insecure");
    return 0;
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

/* The API key: api_key_file's first line when set (read once, at start), else api_key. */
static int read_api_key(const cfg *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", c->api_key);
    if (!c->api_key_file[0])
        return 0;
    FILE *f = fopen(c->api_key_file, "r");
    if (!f) {
        log_error("cannot read api_key_file", "path=%s", c->api_key_file);
        return -1;
    }
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[ok ? strcspn(out, "\r\n") : 0] = 0;
    for (const char *p = out; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            ok = false;
    if (!ok || !out[0]) {
        log_error("api_key_file must hold the key on its first line (printable ASCII, no spaces)",
                  "path=%s", c->api_key_file);
        return -1;
    }
    return 0;
}

static void on_auth_tick(uv_timer_t *t)
{
    app *a = t->data;
    if (a->gw)
        gateway_tick(a->gw);
}

/* True for addresses only this host can reach. */
static bool is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* The server's options from the configuration; the namespace list is split into `nsbuf` and
 * `namespaces`, which must live until io_server_new() has returned. */
static void server_opts(const cfg *c, const workers_child *w, char nsbuf[CFG_STR_MAX],
                        const char *namespaces[APP_MAX_NAMESPACES + 1], io_server_opts *opts)
{
    snprintf(nsbuf, CFG_STR_MAX, "%s", c->namespaces);
    split_namespaces(nsbuf, namespaces);
    *opts = (io_server_opts){
        .host = c->listen_host,
        .port = c->listen_port,
        .path = c->path,
        .allowed_origins = c->allowed_origins,
        .max_connections = c->max_connections,
        .shared_listener = w != NULL,
        .listen_fd = w ? w->listen_fd : -1,
        .max_connections_per_ip = c->max_connections_per_ip,
        .max_sessions_per_ip = c->max_sessions_per_ip,
        .trusted_proxies = c->trusted_proxies,
        .proxy_protocol = c->proxy_protocol == CFG_ON,
        .tls_cert = c->tls_cert[0] ? c->tls_cert : NULL,
        .tls_key = c->tls_key[0] ? c->tls_key : NULL,
        .http_timeout = c->http_timeout,
        .http_handler = api_handle,
        .max_http_body = c->max_http_body,
        .frame_gap_us = c->ws_message_gap,
        .sio =
            {
                .namespaces = namespaces,
                .limits = {.ping_interval = c->ping_interval,
                           .ping_timeout = c->ping_timeout,
                           .max_payload = c->max_payload,
                           .send_queue_max = c->send_queue_max,
                           .send_queue_bytes = c->send_queue_bytes},
                .connect_timeout = c->connect_timeout,
                .attachment_timeout = c->attachment_timeout,
                .engineio_echo = c->conformance == CFG_CONFORMANCE_ENGINEIO,
                .hash_seed = host_seed(),
            },
    };
}

/* The metrics, the HTTP API and the server, listening. Returns 0, or -1 after logging why; what
 * was made is left for app_close() and app_free(). */
static int app_serve(app *a, const cfg *c, const workers_child *w)
{
    char nsbuf[CFG_STR_MAX], api_key[256], admin_host[256];
    const char *namespaces[APP_MAX_NAMESPACES + 1];
    io_server_opts opts;
    server_opts(c, w, nsbuf, namespaces, &opts);
    if (read_api_key(c, api_key, sizeof(api_key)) < 0)
        return -1;
    if (c->admin_listen[0]) {
        char err[CFG_ERR_MAX];
        if (cfg_hostport(c->admin_listen, admin_host, sizeof(admin_host), &opts.admin_port, err) <
            0) {
            log_error("admin_listen", "err=\"%s\"", err);
            return -1;
        }
        opts.admin_host = admin_host;
        /* Each worker has its own admin port, so that each one's metrics can be scraped. */
        if (w)
            opts.admin_port = (uint16_t)(opts.admin_port + w->index);
    }
    a->metrics = metrics_new();
    a->pol = new_policy(c, api_key[0] != 0);
    opts.metrics = a->metrics;
    api_opts aopts = {.loop = &a->loop,
                      .policy = a->pol,
                      .api_key = api_key,
                      .admin_separate = c->admin_listen[0] != 0,
                      .dashboard = c->dashboard == CFG_ON,
                      .stats_interval_ms = c->stats_interval * 1000,
                      .max_bulk_ids = c->max_bulk_ids,
                      .eio_path = c->path,
                      .metrics = a->metrics,
                      .local = app_local,
                      .local_ud = a};
    a->api = a->metrics && a->pol ? api_new(&aopts) : NULL;
    opts.http_ud = a->api;
    a->server = a->api ? io_server_new(&a->loop, &opts) : NULL;
    return a->server ? 0 : -1;
}

/* What the Socket.IO side serves: presence, or a protocol test suite's handlers. */
static int app_start(app *a, const cfg *c)
{
    if (c->conformance == CFG_CONFORMANCE_SOCKETIO)
        return app_conformance_register(io_server_sio(a->server));
    if (c->conformance == CFG_CONFORMANCE_OFF)
        return start_presence(a, c);
    return 0;
}

/* What a running daemon listens to: its timers, signals and systemd. */
static void app_listen(app *a, const cfg *c, const workers_child *w)
{
    uv_timer_init(&a->loop, &a->shutdown_timer);
    a->shutdown_timer.data = a;
    uv_timer_init(&a->loop, &a->auth_timer);
    a->auth_timer.data = a;
    if (a->gw && c->auth == CFG_AUTH_JWT)
        uv_timer_start(&a->auth_timer, on_auth_tick, 1000, 1000);
    a->shutdown_ms = (uint64_t)c->shutdown_timeout * 1000;
    uv_signal_init(&a->loop, &a->sigint);
    uv_signal_init(&a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_signal_init(&a->loop, &a->sighup);
    a->sighup.data = a;
    uv_signal_start(&a->sighup, on_sighup, SIGHUP);
    a->current = *c;
    if (w) {
        workers_child_ready_for_signals();
        if (w->reload)
            on_sighup(&a->sighup, SIGHUP);
    }
    a->sd = w ? sysd_new_relay(&a->loop, w->notify_fd) : sysd_new(&a->loop);
    /* The memory store (and the conformance modes) have nothing to wait for. */
    if (!a->st || c->store == CFG_STORE_MEMORY)
        sysd_ready(a->sd, "listening");
}

/* Serve until SIGTERM/SIGINT: the whole daemon, or one worker of several (`w`, else NULL). */
static int run(const cfg *c, int argc, char *const *argv, char *const *envp, const workers_child *w)
{
    app a;
    memset(&a, 0, sizeof(a));
    a.argc = argc;
    a.argv = argv;
    a.envp = envp;
    if (uv_loop_init(&a.loop) != 0)
        return 1;
    if (app_serve(&a, c, w) < 0 || app_start(&a, c) < 0) {
        log_error("cannot start", NULL);
        app_close(&a);
        app_free(&a);
        return 1;
    }
    if (c->auth == CFG_AUTH_INSECURE && c->conformance == CFG_CONFORMANCE_OFF &&
        !is_loopback(c->listen_host))
        log_warn("auth=insecure on a non-loopback address: any client can claim any userId; set "
                 "auth=jwt (docs/security.md)",
                 "host=%s", c->listen_host);
    app_listen(&a, c, w);
    log_info("listening", "host=%s port=%u path=%s store=%s conformance=%d", c->listen_host,
             c->listen_port, c->path, c->store == CFG_STORE_REDIS ? "redis" : "memory",
             (int)c->conformance);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    int rc = app_free(&a);
    if (rc != 0)
        log_warn("loop closed with live handles", "err=\"%s\"", uv_strerror(rc));
    log_info("stopped", NULL);
    return 0;
}

typedef struct app_args {
    int argc;
    char *const *argv, *const *envp;
    const cfg *c;
} app_args;

static int run_worker(const workers_child *w, void *ud)
{
    const app_args *args = ud;
    return run(args->c, args->argc, args->argv, args->envp, w);
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
    if (c.workers > 1) {
        app_args args = {.argc = argc, .argv = argv, .envp = envp, .c = &c};
        return workers_supervise(&c, run_worker, &args);
    }
    return run(&c, argc, argv, envp, NULL);
}
