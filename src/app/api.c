/* The HTTP API. Every answer is JSON; errors are {"error":{"code","message"}} with a 4xx/5xx. */
#include "presenced/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api {
    api_opts opts;
    store *st;
};

static void respond_json(io_http_req *req, unsigned status, const char *json)
{
    io_http_respond(req, status, "application/json", NULL, json, strlen(json));
}

static void respond_error(io_http_req *req, unsigned status, const char *code, const char *msg,
                          const char *const *headers)
{
    char body[512];
    int n =
        snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    io_http_respond(req, status, "application/json", headers, body, (size_t)n);
}

static void get_healthz(api *a, io_http_req *req)
{
    (void)a;
    respond_json(req, 200, "{\"status\":\"ok\"}");
}

static void get_readyz(api *a, io_http_req *req)
{
    if (a->st && !store_available(a->st))
        return respond_json(req, 503,
                            "{\"status\":\"unavailable\",\"reason\":\"store unavailable\"}");
    respond_json(req, 200, "{\"status\":\"ready\"}");
}

typedef struct api_route {
    const char *path;
    void (*get)(api *a, io_http_req *req);
} api_route;

static const api_route routes[] = {
    {"/healthz", get_healthz},
    {"/readyz", get_readyz},
};

void api_handle(io_http_req *req, void *ud)
{
    api *a = ud;
    const char *path = io_http_path(req);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        if (strcmp(io_http_method(req), "GET") != 0 && strcmp(io_http_method(req), "HEAD") != 0) {
            static const char *const allow[] = {"allow:", "GET", NULL};
            return respond_error(req, 405, "method_not_allowed", "Method not allowed", allow);
        }
        return routes[i].get(a, req);
    }
    respond_error(req, 404, "not_found", "Not found", NULL);
}

api *api_new(const api_opts *opts)
{
    api *a = calloc(1, sizeof(*a));
    if (a)
        a->opts = *opts;
    return a;
}

void api_attach_store(api *a, store *st)
{
    a->st = st;
}

void api_free(api *a)
{
    free(a);
}
