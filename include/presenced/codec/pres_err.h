/* pres_err — the error codes of presence operations, in one table: the state in memory
 * (pres_state), both stores (STORE_ERR_*, presenced/io/store.h), the Redis store's Lua scripts
 * (ERR_* constants in a prelude generated from this table at build time) and the answers to
 * clients (the `code` of an ack error or of an HTTP API error body, and the HTTP status).
 *
 * The build reads the rows below with a regular expression (src/io/redis/embed_lua.cmake):
 * keep one row per line, as X(NAME, value, "message", "client code", status).
 */
#ifndef PRESENCED_PRES_ERR_H
#define PRESENCED_PRES_ERR_H

/* clang-format off */
#define PRES_ERR_TABLE(X)                                                                          \
    /* Redis down or not answering. */                                                            \
    X(UNAVAILABLE, -1, "store unavailable", "store_unavailable", 503)                              \
    /* The socket id is not registered. */                                                         \
    X(NO_SOCKET, -2, "socket not registered", "internal", 500)                                     \
    /* socket_open with an id already registered. */                                              \
    X(EXISTS, -3, "socket already registered", "internal", 500)                                    \
    /* The store is being freed: the daemon is going away, the client should go elsewhere. */     \
    X(SHUTDOWN, -4, "store shutting down", "store_unavailable", 503)                               \
    /* A bug or an unexpected reply (logged). */                                                   \
    X(INTERNAL, -5, "internal store error", "internal", 500)                                       \
    X(NOMEM, -6, "out of memory", "internal", 500)                                                 \
    /* Events since an id: the id is older than the retained events. */                          \
    X(GONE, -7, "event id no longer retained", "internal", 500)                                   \
    /* Redis store: a state change sent before a reconciliation began reached Redis after it; */  \
    /* it was refused (it had been given up for lost already). */                                  \
    X(STALE, -8, "state change superseded by a reconciliation", "store_unavailable", 503)         \
    /* Events since an id of an earlier generation of the store (the memory store of an earlier */ \
    /* run): what that id's reader knew is void; the events given start the new generation. */    \
    X(RESET, -9, "the store began a new generation since that event id", "internal", 500)         \
    /* Events since an id the store never gave (ahead of its events, or of another stream). */   \
    X(FOREIGN, -10, "event id not from this stream", "internal", 500)
/* clang-format on */

enum {
    PRES_OK = 0,
#define PRES_ERR_ENUM(name, value, message, code, status) PRES_ERR_##name = value,
    PRES_ERR_TABLE(PRES_ERR_ENUM)
#undef PRES_ERR_ENUM
};

/* For an error code of the table (or PRES_OK): the message for logs and error bodies, the
 * client's error code, and the HTTP status of an API answer. A value outside the table reads
 * as PRES_ERR_INTERNAL. The strings are static. */
const char *pres_err_message(int err);
const char *pres_err_code(int err);
unsigned pres_err_status(int err);

#endif
