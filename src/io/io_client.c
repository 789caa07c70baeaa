/* What the server knows and tells about a client: the address it is known by (one function, so
 * that every log line and limit agrees on it), and the refusals of its handshakes, requests and
 * connections, each logged with that address at most once a minute per cause and address.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "presenced/codec/fwd.h"
#include "presenced/core/metrics_def.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "io_server_impl.h"

#define IO_REFUSAL_WINDOW_MS 60000 /* a cause and address is logged once per window */
#define IO_REFUSAL_PAIRS 256       /* distinct causes and addresses logged per window */

/* io_client_addr, the one lookup of a client's address, is in io_addr.c with the trusted proxies
 * and the per-address table it serves. */

void io_addr_text(const io_addr *a, char out[IO_ADDR_MAX])
{
    fwd_addr_text(a, out);
}

/* What a refusal means to an operator: its cause as logged and counted, and how loud. A foreign
 * origin is a configuration to fix or someone else's page; limits are capacity or abuse; a bad
 * request is usually a client that outlived its session (a restart). */
static const struct {
    unsigned status;
    const char *why, *cause;
    log_level level;
    const char *setting; /* the key that decides it, when one does */
} causes[] = {
    {403, "Forbidden", "origin", LOG_WARN, "allowed_origins"},
    {503, "Server full", "max_connections", LOG_WARN, "max_connections"},
    {503, "Out of memory", "memory", LOG_WARN, NULL},
    {413, "Payload too large", "max_payload", LOG_WARN, "max_payload"},
    {429, "Too many sessions from this address", "max_sessions_per_ip", LOG_WARN,
     "max_sessions_per_ip"},
    {400, "Session ID unknown", "session_unknown", LOG_INFO, NULL},
    {400, "Transport unknown", "transport_unknown", LOG_INFO, NULL},
    {400, "Bad handshake method", "bad_handshake_method", LOG_INFO, NULL},
    {400, "Unsupported protocol version", "protocol_version", LOG_INFO, NULL},
    {400, "Bad request", "bad_request", LOG_INFO, NULL},
    {400, "bad_request", "bad_request_head", LOG_INFO, NULL},
    {414, "uri_too_long", "request_line_too_long", LOG_INFO, NULL},
    {431, "headers_too_large", "request_head_too_large", LOG_INFO, NULL},
    {0, "connections_per_ip", "max_connections_per_ip", LOG_WARN, "max_connections_per_ip"},
    {0, "connections", "fd_limit", LOG_WARN, NULL},
};

void io_refusals_init(io_server *srv)
{
    map_init(&srv->refusals, host_seed());
    srv->refusals_since = uv_now(srv->loop);
    srv->refused = metrics_def_get(srv->opts.metrics, METRIC_REFUSED);
}

void io_refusals_free(io_server *srv)
{
    map_deinit(&srv->refusals);
}

/* Once a window: say how many refusals were not logged, and start remembering afresh. */
void io_refusals_tick(io_server *srv)
{
    uint64_t now = uv_now(srv->loop);
    if (now - srv->refusals_since < IO_REFUSAL_WINDOW_MS)
        return;
    if (srv->refusals_repeated || srv->refusals_untracked)
        log_info("refusals not logged", "repeated=%llu other_addresses=%llu window_s=%d",
                 (unsigned long long)srv->refusals_repeated,
                 (unsigned long long)srv->refusals_untracked, IO_REFUSAL_WINDOW_MS / 1000);
    srv->refusals_repeated = srv->refusals_untracked = 0;
    srv->refusals_since = now;
    map_deinit(&srv->refusals);
    map_init(&srv->refusals, host_seed());
}

/* The request's Origin as a logfmt value: printable ASCII without quotes or backslashes, other
 * bytes as '?', at most 128 characters. */
static void origin_field(struct lws *wsi, char *out, size_t cap)
{
    char origin[IO_ORIGIN_MAX];
    out[0] = '\0';
    if (!wsi || lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return;
    for (char *p = origin; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            *p = '?';
    snprintf(out, cap, " origin=\"%.128s\"", origin);
}

void io_refused(io_server *srv, struct lws *wsi, int fd, unsigned status, const char *why)
{
    if (!srv)
        return;
    size_t i = 0;
    while (i < sizeof(causes) / sizeof(causes[0]) &&
           (causes[i].status != status || strcmp(causes[i].why, why) != 0))
        i++;
    bool known = i < sizeof(causes) / sizeof(causes[0]);
    const char *cause = known ? causes[i].cause : "other";
    log_level level = known ? causes[i].level : LOG_INFO;
    metrics_add(srv->refused, cause, 1);
    if (!log_enabled(level))
        return;
    io_addr a;
    char addr[IO_ADDR_MAX], key[64 + 160];
    io_client_addr(wsi, fd, &a);
    io_addr_text(&a, addr);
    char origin[160];
    origin_field(status == 403 ? wsi : NULL, origin, sizeof(origin));
    /* A refused origin is logged once per origin (it is a setting to change, whoever comes from
     * it), everything else once per address. */
    int klen = snprintf(key, sizeof(key), "%s %s", cause, origin[0] ? origin : addr);
    if (map_get(&srv->refusals, key, (size_t)klen)) {
        srv->refusals_repeated++;
        return;
    }
    if (srv->refusals.count >= IO_REFUSAL_PAIRS ||
        map_put(&srv->refusals, key, (size_t)klen, srv) < 0) {
        srv->refusals_untracked++;
        return;
    }
    char setting[64] = "";
    if (known && causes[i].setting)
        snprintf(setting, sizeof(setting), " setting=%s", causes[i].setting);
    if (status)
        log_msg(level, "refused", "cause=%s status=%u%s addr=%s%s", cause, status, setting, addr,
                origin);
    else
        log_msg(level, "refused", "cause=%s%s addr=%s", cause, setting, addr);
}
