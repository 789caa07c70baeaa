/* What the server knows and tells about a client: the address it is known by (one function, so
 * that every log line and limit agrees on it), and the refusals of its handshakes, requests and
 * connections, each logged with that address at most once a minute per cause and address.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "presenced/core/metrics_def.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "io_server_impl.h"

#define IO_REFUSAL_WINDOW_MS 60000 /* a cause and address is logged once per window */
#define IO_REFUSAL_PAIRS 256       /* distinct causes and addresses logged per window */

void io_client_addr(struct lws *wsi, int fd, io_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (wsi)
        fd = lws_get_socket_fd(wsi);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        out->family = 4;
        memcpy(out->bytes, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        bool v4 = IN6_IS_ADDR_V4MAPPED(a);
        out->family = v4 ? 4 : 6;
        memcpy(out->bytes, v4 ? &a->s6_addr[12] : a->s6_addr, v4 ? 4 : 16);
    }
}

void io_addr_text(const io_addr *a, char out[IO_ADDR_MAX])
{
    if (a->family == 0 ||
        !inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, out, IO_ADDR_MAX))
        snprintf(out, IO_ADDR_MAX, "-");
}

/* What a refusal means to an operator: its cause as logged and counted, and how loud. A foreign
 * origin is a configuration to fix or someone else's page; limits are capacity or abuse; a bad
 * request is usually a client that outlived its session (a restart). */
static const struct {
    unsigned status;
    const char *why, *cause;
    log_level level;
} causes[] = {
    {403, "Forbidden", "origin", LOG_WARN},
    {503, "Server full", "max_connections", LOG_WARN},
    {503, "Out of memory", "memory", LOG_WARN},
    {413, "Payload too large", "max_payload", LOG_WARN},
    {400, "Session ID unknown", "session_unknown", LOG_INFO},
    {400, "Transport unknown", "transport_unknown", LOG_INFO},
    {400, "Bad handshake method", "bad_handshake_method", LOG_INFO},
    {400, "Unsupported protocol version", "protocol_version", LOG_INFO},
    {400, "Bad request", "bad_request", LOG_INFO},
    {0, "connections_per_ip", "max_connections_per_ip", LOG_WARN},
    {0, "connections", "fd_limit", LOG_WARN},
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
    const char *cause = i < sizeof(causes) / sizeof(causes[0]) ? causes[i].cause : "other";
    log_level level = i < sizeof(causes) / sizeof(causes[0]) ? causes[i].level : LOG_INFO;
    metrics_add(srv->refused, cause, 1);
    if (!log_enabled(level))
        return;
    io_addr a;
    char addr[IO_ADDR_MAX], key[64 + IO_ADDR_MAX];
    io_client_addr(wsi, fd, &a);
    io_addr_text(&a, addr);
    int klen = snprintf(key, sizeof(key), "%s %s", cause, addr);
    if (map_get(&srv->refusals, key, (size_t)klen)) {
        srv->refusals_repeated++;
        return;
    }
    if (srv->refusals.count >= IO_REFUSAL_PAIRS ||
        map_put(&srv->refusals, key, (size_t)klen, srv) < 0) {
        srv->refusals_untracked++;
        return;
    }
    char origin[160];
    origin_field(status == 403 ? wsi : NULL, origin, sizeof(origin));
    if (status)
        log_msg(level, "refused", "cause=%s status=%u addr=%s%s", cause, status, addr, origin);
    else
        log_msg(level, "refused", "cause=%s addr=%s", cause, addr);
}
