/* store_err — the result codes of store operations (store.h), in a header of their own so that
 * pure code (the presence policy, which maps them to client error codes) can name them without
 * depending on the store's interface.
 */
#ifndef PRESENCED_STORE_ERR_H
#define PRESENCED_STORE_ERR_H

enum {
    STORE_OK = 0,
    STORE_ERR_UNAVAILABLE = -1, /* Redis down or not answering */
    STORE_ERR_NO_SOCKET = -2,   /* the socket id is not registered */
    STORE_ERR_EXISTS = -3,      /* socket_open with an id already registered */
    STORE_ERR_SHUTDOWN = -4,    /* the store is being freed */
    STORE_ERR_INTERNAL = -5,    /* a bug or an unexpected reply (logged) */
    STORE_ERR_NOMEM = -6,
    STORE_ERR_GONE = -7, /* store_events_since: the id is older than the retained events */
};

#endif
