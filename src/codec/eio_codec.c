/* eio_codec — Engine.IO v4 packets and polling payloads (see include/presenced/codec/eio_codec.h).
 *
 * Spec references are to the engine.io-protocol README ("Packet encoding").
 */
#include "presenced/codec/eio_codec.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "presenced/codec/b64.h"
#include "presenced/codec/utf8.h"

const char *eio_strerror(int err)
{
    switch (err) {
    case EIO_OK:
        return "ok";
    case EIO_ERR_EMPTY:
        return "empty packet";
    case EIO_ERR_TYPE:
        return "unknown packet type";
    case EIO_ERR_BASE64:
        return "malformed base64 in binary packet";
    case EIO_ERR_UTF8:
        return "text packet is not valid UTF-8";
    case EIO_ERR_TOO_MANY:
        return "too many packets in payload";
    case EIO_ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

/* Decode one text packet "<type digit><data>" (spec: "Packet encoding"). The text must be
 * well-formed UTF-8: the spec fixes UTF-8 as the character encoding of text packets, and the
 * layers above hand the data to cJSON and to other clients. */
static int eio_text_decode(const uint8_t *p, size_t len, eio_packet *out)
{
    if (len == 0)
        return EIO_ERR_EMPTY;
    if (p[0] < '0' + EIO_OPEN || p[0] > '0' + EIO_NOOP)
        return EIO_ERR_TYPE;
    if (!utf8_valid(p + 1, len - 1))
        return EIO_ERR_UTF8;
    out->type = (eio_type)(p[0] - '0');
    out->binary = false;
    out->data = p + 1;
    out->len = len - 1;
    return EIO_OK;
}

int eio_packet_decode_ws(const uint8_t *msg, size_t len, bool is_binary, eio_packet *out)
{
    if (is_binary) {
        /* Spec "WebSocket": binary payloads are sent as is, so the frame is one message. An
         * empty frame is an empty buffer, which clients may legitimately send. */
        out->type = EIO_MESSAGE;
        out->binary = true;
        out->data = msg;
        out->len = len;
        return EIO_OK;
    }
    return eio_text_decode(msg, len, out);
}

void eio_payload_iter_init(eio_payload_iter *it, uint8_t *body, size_t len, size_t max_packets)
{
    it->body = body;
    it->len = len;
    it->pos = 0;
    it->count = 0;
    it->max_packets = max_packets;
    it->done = false;
}

int eio_payload_next(eio_payload_iter *it, eio_packet *out)
{
    if (it->done)
        return 0;
    /* Any error invalidates the whole payload: stop iterating whatever the caller does next. */
    it->done = true;

    size_t start = it->pos;
    assert(start <= it->len);
    const uint8_t *sep = NULL;
    if (start < it->len)
        sep = memchr(it->body + start, EIO_SEPARATOR, it->len - start);
    size_t end = sep ? (size_t)(sep - it->body) : it->len;

    /* Spec "HTTP long-polling": packets are separated by \x1e, so an empty segment (empty
     * body, leading, doubled or trailing separator) is not a packet. */
    if (end == start)
        return EIO_ERR_EMPTY;
    if (it->count >= it->max_packets)
        return EIO_ERR_TOO_MANY;

    uint8_t *seg = it->body + start;
    size_t seg_len = end - start;
    if (seg[0] == 'b') {
        /* Spec: binary payloads are base64-encoded and prefixed with 'b'. Decode in place. */
        long n = b64_decode((const char *)seg + 1, seg_len - 1, seg + 1);
        if (n < 0)
            return EIO_ERR_BASE64;
        out->type = EIO_MESSAGE;
        out->binary = true;
        out->data = seg + 1;
        out->len = (size_t)n;
    } else {
        int rc = eio_text_decode(seg, seg_len, out);
        if (rc != EIO_OK)
            return rc;
    }

    it->count++;
    if (sep) {
        it->pos = end + 1;
        it->done = false;
    } else {
        it->pos = it->len;
    }
    return 1;
}

int eio_payload_append(buf *out, eio_type type, bool binary, const uint8_t *data, size_t len)
{
    assert(type >= EIO_OPEN && type <= EIO_NOOP);
    assert(!binary || type == EIO_MESSAGE);
    size_t body = binary ? b64_encoded_len(len) : len;
    if (body > SIZE_MAX - 2 || buf_reserve(out, body + 2) != 0)
        return -1;
    if (out->len > 0)
        out->data[out->len++] = EIO_SEPARATOR;
    if (binary) {
        out->data[out->len++] = 'b';
        out->len += b64_encode(data, len, (char *)out->data + out->len);
    } else {
        out->data[out->len++] = (uint8_t)('0' + type);
        if (len > 0)
            memcpy(out->data + out->len, data, len);
        out->len += len;
    }
    return 0;
}

int eio_open_json(buf *out, const char *sid, bool offer_websocket, uint32_t ping_interval_ms,
                  uint32_t ping_timeout_ms, uint32_t max_payload)
{
    /* Spec "Handshake": the open packet's JSON object. */
    char nums[128];
    int n = snprintf(nums, sizeof(nums),
                     "],\"pingInterval\":%" PRIu32 ",\"pingTimeout\":%" PRIu32
                     ",\"maxPayload\":%" PRIu32 "}",
                     ping_interval_ms, ping_timeout_ms, max_payload);
    assert(n > 0 && (size_t)n < sizeof(nums));
    if (buf_append_str(out, "{\"sid\":\"") != 0 || buf_append_str(out, sid) != 0 ||
        buf_append_str(out, "\",\"upgrades\":[") != 0 ||
        (offer_websocket && buf_append_str(out, "\"websocket\"") != 0) ||
        buf_append(out, nums, (size_t)n) != 0)
        return -1;
    return 0;
}
