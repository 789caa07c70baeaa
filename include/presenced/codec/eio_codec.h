/* eio_codec — Engine.IO v4 packets and HTTP long-polling payloads.
 *
 * Spec: socketio/engine.io-protocol README, "Packet encoding" and "HTTP long-polling / Payloads".
 * Pure code: no I/O, no clock, no globals. Every decoder borrows its input; nothing it returns owns
 * memory.
 */
#ifndef PRESENCED_EIO_CODEC_H
#define PRESENCED_EIO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presenced/codec/buf.h"

typedef enum eio_type {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
} eio_type;

/* Polling payloads separate packets with the record separator (spec: "Payloads"). */
#define EIO_SEPARATOR 0x1e

/* Error codes returned (negated) by the decoders. */
enum {
    EIO_OK = 0,
    EIO_ERR_EMPTY = -1,    /* empty packet or empty payload segment */
    EIO_ERR_TYPE = -2,     /* unknown packet type character */
    EIO_ERR_BASE64 = -3,   /* a 'b' packet whose base64 is malformed */
    EIO_ERR_UTF8 = -4,     /* text packet with invalid UTF-8 */
    EIO_ERR_TOO_MANY = -5, /* payload holds more packets than the caller allows */
    EIO_ERR_NOMEM = -6,
};

/* A decoded packet. `data` points into the caller's input buffer (or into the same buffer after
 * in-place base64 decoding); it stays valid while that buffer does. For binary packets `type` is
 * EIO_MESSAGE and `binary` is true. */
typedef struct eio_packet {
    eio_type type;
    bool binary;
    const uint8_t *data;
    size_t len;
} eio_packet;

/* Human-readable text for an EIO_ERR_* code (static string). */
const char *eio_strerror(int err);

/* Decode one WebSocket message. A text frame is "<type digit><data>" and its data must be valid
 * UTF-8; a binary frame is a binary message whose whole content is the data.
 * Returns EIO_OK or a negative EIO_ERR_* code. `out` borrows from `msg`. */
int eio_packet_decode_ws(const uint8_t *msg, size_t len, bool is_binary, eio_packet *out);

/* Iterate over the packets of a polling payload (HTTP POST body). The iterator decodes 'b' (base64
 * binary) packets IN PLACE, so `body` must be writable and owned by the caller for as long as the
 * returned packets are used. At most `max_packets` packets are accepted (protects against payloads
 * of 100k tiny packets); one more is EIO_ERR_TOO_MANY. */
typedef struct eio_payload_iter {
    uint8_t *body;
    size_t len;
    size_t pos;
    size_t count;
    size_t max_packets;
    bool done;
} eio_payload_iter;

void eio_payload_iter_init(eio_payload_iter *it, uint8_t *body, size_t len, size_t max_packets);
/* Returns 1 and fills `out` for the next packet, 0 when the payload is exhausted, or a negative
 * EIO_ERR_* code (the whole payload is then invalid). An empty body and empty segments (leading,
 * trailing or doubled separators) are EIO_ERR_EMPTY. */
int eio_payload_next(eio_payload_iter *it, eio_packet *out);

/* Append one packet to a polling payload in `out`, adding the separator when `out` is not empty.
 * Text packets: "<type digit><data>"; binary packets: "b<base64 of data>".
 * Returns 0 or -1 when out of memory. */
int eio_payload_append(buf *out, eio_type type, bool binary, const uint8_t *data, size_t len);

/* Write the open packet's JSON object (spec: "Handshake") into `out`, without the leading '0':
 * {"sid":"...","upgrades":["websocket"] or [],"pingInterval":N,"pingTimeout":N,"maxPayload":N}.
 * `sid` must be URL-safe characters only (it is not escaped). Returns 0 or -1. */
int eio_open_json(buf *out, const char *sid, bool offer_websocket, uint32_t ping_interval_ms,
                  uint32_t ping_timeout_ms, uint32_t max_payload);

#endif
