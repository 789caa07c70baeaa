/* app — the daemon's wiring and lifecycle: configuration, the loop, the server, signals. */
#ifndef PRESENCED_APP_H
#define PRESENCED_APP_H

#include "presenced/core/sio_server.h"

/* Run the daemon; returns the process exit code. */
int app_main(int argc, char *const *argv, char *const *envp);

/* Register the handlers of the Socket.IO protocol test-suite server (--conformance): `auth` echo
 * on connection, `message` → `message-back`, acks for `message-with-ack`, and the server→client
 * ack round trip `server-ack` → `server-ack-request` → `server-ack-result`. */
int app_conformance_register(sio_server *srv);

#endif
