/* api — the HTTP API (docs/http-api.md): health, readiness and, on top of the store, the /v1
 * endpoints. Requests arrive through io_http; answers may come after a store round trip.
 */
#ifndef PRESENCED_API_H
#define PRESENCED_API_H

#include "presenced/io_http.h"
#include "presenced/store.h"

typedef struct api api;

typedef struct api_opts {
    int reserved; /* settings come with the /v1 endpoints */
} api_opts;

api *api_new(const api_opts *opts);
/* The store the endpoints ask; NULL (conformance modes, shutdown) leaves only /healthz and
 * /readyz answering. */
void api_attach_store(api *a, store *st);
void api_free(api *a);
/* The io_http handler; `ud` is the api. */
void api_handle(io_http_req *req, void *ud);

#endif
