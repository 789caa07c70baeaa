/* The behaviour of the reference server configuration in the "Test suite" section of the
 * Socket.IO protocol spec, built on the public event API only. */
#include "presenced/app/app.h"

static void on_connected(sio_sock *s, cJSON *auth, void *ud)
{
    (void)ud;
    cJSON *args = cJSON_CreateArray();
    cJSON *copy = auth ? cJSON_Duplicate(auth, 1) : cJSON_CreateObject();
    if (args && copy && cJSON_AddItemToArray(args, copy))
        sio_emit(s, "auth", args, NULL);
    else
        cJSON_Delete(copy);
    cJSON_Delete(args);
}

static void on_message(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                       int64_t ack_id, void *ud)
{
    (void)event, (void)ack_id, (void)ud;
    sio_emit(s, "message-back", args, bin);
}

static void on_message_with_ack(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                                int64_t ack_id, void *ud)
{
    (void)event, (void)ud;
    if (ack_id != SIO_NO_ACK)
        sio_ack(s, ack_id, args, bin);
}

static void on_server_ack_answer(sio_sock *s, cJSON *args, const sio_binary *bin, void *ud)
{
    (void)ud;
    if (args) /* NULL: the socket left before answering */
        sio_emit(s, "server-ack-result", args, bin);
}

static void on_server_ack(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                          int64_t ack_id, void *ud)
{
    (void)event, (void)ack_id, (void)ud;
    sio_emit_with_ack(s, "server-ack-request", args, bin, on_server_ack_answer, NULL);
}

int app_conformance_register(sio_server *srv)
{
    sio_server_on_connected(srv, on_connected, NULL);
    if (sio_server_on(srv, "message", on_message, NULL) < 0 ||
        sio_server_on(srv, "message-with-ack", on_message_with_ack, NULL) < 0 ||
        sio_server_on(srv, "server-ack", on_server_ack, NULL) < 0)
        return -1;
    return 0;
}
