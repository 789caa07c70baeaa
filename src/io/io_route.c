/* Routing: what an incoming request asks for (the Engine.IO path, the query arguments, the
 * Origin) and which part of the server answers it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "presenced/codec/http_args.h"
#include "presenced/io/host.h"
#include "presenced/io/log.h"
#include "presenced/codec/vec.h"
#include "io_server_impl.h"

bool io_origin_allowed(io_server *srv, const char *origin)
{
    if (!origin[0] || srv->any_origin)
        return true;
    for (size_t i = 0; i < srv->norigins; i++)
        if (strcmp(srv->origins[i], origin) == 0)
            return true;
    return false;
}

int io_origins_parse(io_server *srv, const char *list)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if (t > p) {
            char *o = strndup(p, (size_t)(t - p));
            if (!o || VEC_RESERVE(srv->origins, srv->norigins, srv->caporigins, 4) < 0) {
                free(o);
                return -1;
            }
            if (strcmp(o, "*") == 0)
                srv->any_origin = true;
            srv->origins[srv->norigins++] = o;
        }
        p = e;
    }
    return 0;
}

bool io_origin_check(io_server *srv, struct lws *wsi, char origin[IO_ORIGIN_MAX])
{
    origin[0] = 0;
    int olen = lws_hdr_copy(wsi, origin, IO_ORIGIN_MAX, WSI_TOKEN_ORIGIN);
    if (olen < 0) {
        origin[0] = 0;
        return false;
    }
    if (olen == 0 || io_origin_allowed(srv, origin))
        return true;
    char host[IO_ORIGIN_MAX];
    if (lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) > 0 &&
        http_same_origin(origin, host, io_client_scheme(srv, wsi)))
        return true;
    return false;
}

void io_origins_free(io_server *srv)
{
    for (size_t i = 0; i < srv->norigins; i++)
        free(srv->origins[i]);
    free(srv->origins);
    srv->origins = NULL;
    srv->norigins = srv->caporigins = 0;
    srv->any_origin = false;
}

int io_server_set_origins(io_server *srv, const char *list)
{
    char **old = srv->origins;
    size_t nold = srv->norigins, capold = srv->caporigins;
    bool any = srv->any_origin;
    srv->origins = NULL;
    srv->norigins = srv->caporigins = 0;
    srv->any_origin = false;
    if (io_origins_parse(srv, list) < 0) {
        io_origins_free(srv);
        srv->origins = old;
        srv->norigins = nold;
        srv->caporigins = capold;
        srv->any_origin = any;
        return -1;
    }
    for (size_t i = 0; i < nold; i++)
        free(old[i]);
    free(old);
    return 0;
}

static void query_take(char *dst, size_t cap, bool *has, bool *bad, const char *v)
{
    if (*has || strlen(v) >= cap) {
        *bad = true;
        return;
    }
    *has = true;
    strcpy(dst, v);
}

void io_query_parse(struct lws *wsi, io_query *q)
{
    memset(q, 0, sizeof(*q));
    char frag[4096];
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) {
            /* Either past the last fragment or one longer than our buffer. */
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
                q->bad = true;
            break;
        }
        if (n == 0 && lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) == 0)
            break;
        if (strncmp(frag, "EIO=", 4) == 0)
            query_take(q->eio, sizeof(q->eio), &q->has_eio, &q->bad, frag + 4);
        else if (strncmp(frag, "transport=", 10) == 0)
            query_take(q->transport, sizeof(q->transport), &q->has_transport, &q->bad, frag + 10);
        else if (strncmp(frag, "sid=", 4) == 0) {
            /* An overlong sid names no session: answer "Session ID unknown", not "Bad request". */
            bool too_long = false;
            query_take(q->sid, sizeof(q->sid), &q->has_sid, &too_long, frag + 4);
            if (too_long && !q->has_sid)
                q->has_sid = true;
            else
                q->bad |= too_long;
        }
    }
}

bool io_path_matches(io_server *srv, struct lws *wsi, int token)
{
    char uri[300];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), (enum lws_token_indexes)token);
    if (n <= 0)
        return false;
    size_t plen = strlen(srv->path);
    /* Accept the path with or without its trailing slash, as the reference server does. */
    return strcmp(uri, srv->path) == 0 ||
           ((size_t)n == plen - 1 && strncmp(uri, srv->path, plen - 1) == 0);
}

io_conn *io_conn_find(io_server *srv, const io_query *q)
{
    if (strlen(q->sid) != EIO_SID_LEN)
        return NULL;
    sio_conn *sc = sio_server_find(srv->sio, q->sid, EIO_SID_LEN);
    return sc ? sio_conn_io(sc) : NULL;
}

bool io_is_method(struct lws *wsi, enum lws_token_indexes t)
{
    return lws_hdr_total_length(wsi, t) > 0;
}

/* LWS_CALLBACK_HTTP: route one request. Checks follow the reference server's order: transport,
 * session id, then (handshake only) method and protocol version. */
int io_http_route(io_server *srv, struct lws *wsi, io_pss *pss)
{
    buf_deinit(&pss->body);
    io_response_free_extra(pss);
    memset(pss, 0, sizeof(*pss));
    char conn_hdr[32];
    pss->conn_close = lws_hdr_copy(wsi, conn_hdr, sizeof(conn_hdr), WSI_TOKEN_CONNECTION) > 0 &&
                      strcasecmp(conn_hdr, "close") == 0;
    bool get = io_is_method(wsi, WSI_TOKEN_GET_URI), post = io_is_method(wsi, WSI_TOKEN_POST_URI);
    bool options = io_is_method(wsi, WSI_TOKEN_OPTIONS_URI);
    int uri_token = get       ? WSI_TOKEN_GET_URI
                    : post    ? WSI_TOKEN_POST_URI
                    : options ? WSI_TOKEN_OPTIONS_URI
                              : WSI_TOKEN_PUT_URI;
    /* Engine.IO lives at `path` on the main listener; everything else is the HTTP API's. */
    bool eio =
        lws_get_vhost(wsi) != srv->admin_vhost &&
        (io_path_matches(srv, wsi, uri_token) ||
         (uri_token == WSI_TOKEN_PUT_URI && (io_path_matches(srv, wsi, WSI_TOKEN_PATCH_URI) ||
                                             io_path_matches(srv, wsi, WSI_TOKEN_DELETE_URI))));
    if (!eio)
        return io_http_req_begin(srv, wsi, pss);
    char origin[IO_ORIGIN_MAX];
    if (!io_origin_check(srv, wsi, origin))
        return io_respond_error(wsi, pss, HTTP_STATUS_FORBIDDEN, 4, "Forbidden");
    if (origin[0] && !(pss->origin = strdup(origin)))
        return -1;
    pss->cors = origin[0] != 0;
    if (options)
        return io_respond(wsi, pss, HTTP_STATUS_NO_CONTENT, "text/plain", NULL, 0);
    io_query q;
    io_query_parse(wsi, &q);
    if (q.bad)
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    if (strcmp(q.transport, "polling") != 0 && strcmp(q.transport, "websocket") != 0)
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 0, "Transport unknown");
    if (q.has_sid) {
        io_conn *c = io_conn_find(srv, &q);
        if (!c || c->closing)
            return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 1, "Session ID unknown");
        /* A WebSocket request that reached plain HTTP (no Upgrade), or polling on a session
         * that already moved to WebSocket. */
        if (strcmp(q.transport, "polling") != 0 ||
            sio_conn_session(c->sc)->transport != EIO_TRANSPORT_POLLING)
            return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
        if (get)
            return io_poll_get(srv, wsi, pss, c);
        if (post)
            return io_poll_post_begin(srv, wsi, pss, c);
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    }
    if (!get)
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 2, "Bad handshake method");
    if (strcmp(q.eio, "4") != 0)
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 5,
                                "Unsupported protocol version");
    if (strcmp(q.transport, "polling") != 0)
        return io_respond_error(wsi, pss, HTTP_STATUS_BAD_REQUEST, 3, "Bad request");
    return io_poll_handshake(srv, wsi, pss);
}
