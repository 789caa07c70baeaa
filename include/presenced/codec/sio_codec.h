/* sio_codec — Socket.IO v5 packets (the text part; binary attachments travel as separate
 * Engine.IO binary messages and are collected by the socket state machine).
 *
 * Spec: socketio/socket.io-protocol Readme, "Packet format" and "Exchange protocol".
 * Pure code: no I/O, no clock, no globals.
 */
#ifndef PRESENCED_SIO_CODEC_H
#define PRESENCED_SIO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "presenced/codec/buf.h"

typedef enum sio_type {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
} sio_type;

#define SIO_MAX_ATTACHMENTS 10
#define SIO_NSP_MAX 128
/* Ack ids are JavaScript numbers on the client: accept only what is exactly representable. */
#define SIO_ACK_ID_MAX 9007199254740991LL
#define SIO_NO_ACK (-1LL)

enum {
    SIO_OK = 0,
    SIO_ERR_EMPTY = -1,       /* empty packet */
    SIO_ERR_TYPE = -2,        /* unknown packet type */
    SIO_ERR_ATTACHMENTS = -3, /* bad "<n>-" count, missing '-', or more than SIO_MAX_ATTACHMENTS */
    SIO_ERR_NSP = -4,         /* namespace too long, not valid UTF-8 or has control characters */
    SIO_ERR_ACK_ID = -5,      /* ack id above SIO_ACK_ID_MAX */
    SIO_ERR_JSON = -6,     /* payload is not valid JSON (or has trailing garbage, or is too deep) */
    SIO_ERR_PAYLOAD = -7,  /* JSON valid but wrong shape for the packet type */
    SIO_ERR_RESERVED = -8, /* EVENT with a reserved event name */
    SIO_ERR_PLACEHOLDER = -9, /* placeholder with a num that is not an integer in range */
    SIO_ERR_NOMEM = -10,
};

/* A decoded packet. Owns `data` (free with sio_packet_deinit()). */
typedef struct sio_packet {
    sio_type type;
    char nsp[SIO_NSP_MAX + 1]; /* NUL-terminated; "/" when the packet names none */
    int64_t ack_id;            /* SIO_NO_ACK when absent */
    unsigned attachments;      /* declared attachment count for BINARY_* types, else 0 */
    cJSON *data;               /* owned; NULL when the packet carries no payload */
} sio_packet;

/* Static text for a SIO_ERR_* code. */
const char *sio_strerror(int err);

/* Decode the text of one Socket.IO packet (the Engine.IO message data). Validates per type:
 * CONNECT: object or nothing; DISCONNECT: nothing; EVENT/BINARY_EVENT: non-empty array whose
 * first element is a string that is not a reserved name (connect, connect_error, disconnect,
 * disconnecting, newListener, removeListener); ACK/BINARY_ACK: array; CONNECT_ERROR: object or
 * string. In BINARY_* packets every placeholder object {"_placeholder":true,"num":N} must have an
 * integer N with 0 <= N < attachments. JSON strings must be valid UTF-8.
 * Returns SIO_OK (and `out` owns its data) or a negative SIO_ERR_* code (`out` holds nothing to
 * free). */
int sio_packet_decode(const uint8_t *text, size_t len, sio_packet *out);

/* Free the packet's data. Safe to call twice. */
void sio_packet_deinit(sio_packet *p);

/* The event name of an EVENT/BINARY_EVENT packet (borrowed from p->data), or NULL. */
const char *sio_packet_event_name(const sio_packet *p);

/* Append the packet header "<type>[<attachments>-][<nsp>,][<ack id>]" to `out`. The namespace
 * is written (with its comma) only when it is not "/". Pass SIO_NO_ACK for no ack id. The JSON
 * payload, if any, is appended by the caller right after. Returns 0 or -1 when out of memory. */
int sio_header_encode(buf *out, sio_type type, const char *nsp, int64_t ack_id,
                      unsigned attachments);

#endif
