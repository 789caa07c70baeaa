/* io_http — plain HTTP requests that are not Engine.IO (the HTTP API, health, metrics, the live
 * page), handed by the server to one handler, answered at once or later (after a store round
 * trip), or streamed (Server-Sent Events).
 *
 * Lifetime: the handler receives a request it owns until it calls io_http_respond() or
 * io_http_stream_end(). If the client goes away first, the request stays valid (writes are then
 * dropped) and the close callback, if set, runs; the owner still ends it.
 */
#ifndef PRESENCED_IO_HTTP_H
#define PRESENCED_IO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct io_http_req io_http_req;

typedef void (*io_http_handler)(io_http_req *req, void *ud);
typedef void (*io_http_close_fn)(io_http_req *req, void *ud);

/* Request fields, copied when the request arrived. Strings are NUL-terminated; absent headers
 * are "". libwebsockets has already %-decoded the path and each query argument. */
const char *io_http_method(const io_http_req *req);
const char *io_http_path(const io_http_req *req);
/* Query arguments: the number of them, and argument i as "name=value" (or "name"). */
size_t io_http_query_count(const io_http_req *req);
const char *io_http_query_arg(const io_http_req *req, size_t i);
const char *io_http_authorization(const io_http_req *req);
const char *io_http_last_event_id(const io_http_req *req);
const char *io_http_content_type(const io_http_req *req);
const uint8_t *io_http_body(const io_http_req *req, size_t *len);
/* The listener the request came in on: 0 the main one, 1 the admin one. */
int io_http_listener(const io_http_req *req);
/* True while the client is still there. */
bool io_http_alive(const io_http_req *req);

/* Answer and end the request. `headers` is NULL or a NULL-terminated list of name, value pairs
 * (names with the trailing colon, e.g. "allow:"). The body is copied. */
void io_http_respond(io_http_req *req, unsigned status, const char *content_type,
                     const char *const *headers, const void *body, size_t len);

/* Streaming: send the headers of an open-ended response (no Content-Length; the connection
 * closes at the end). Returns 0 or -1. */
int io_http_stream_start(io_http_req *req, const char *content_type, io_http_close_fn on_close,
                         void *ud);
/* Queue bytes on a stream. Returns 0, or -1 when the client is gone or more than
 * `max_queued` bytes are waiting (a slow reader: the stream is then closed). */
int io_http_stream_write(io_http_req *req, const void *data, size_t len, size_t max_queued);
/* End the stream (flushes what is queued, then closes) and release the request. */
void io_http_stream_end(io_http_req *req);

#endif
