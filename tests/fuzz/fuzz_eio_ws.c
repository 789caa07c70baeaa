/* Fuzz eio_packet_decode_ws. Input: one control byte (bit 0: binary frame), then the message.
 * Properties: the packet borrows from the message and stays inside it; text packets are
 * valid UTF-8 of a known type; a decoded packet appended to a polling payload iterates back
 * to the same packet (when its data holds no record separator, which the payload format
 * cannot carry). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/eio_codec.h"
#include "presenced/codec/utf8.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool is_binary = data[0] & 1;
    size_t len = size - 1;
    uint8_t *msg = malloc(len ? len : 1); /* exact size: ASan catches any overrun */
    FUZZ_CHECK(msg);
    memcpy(msg, data + 1, len);

    eio_packet p;
    int rc = eio_packet_decode_ws(msg, len, is_binary, &p);
    if (is_binary) {
        FUZZ_CHECK(rc == EIO_OK);
        FUZZ_CHECK(p.binary && p.type == EIO_MESSAGE && p.data == msg && p.len == len);
    } else if (rc == EIO_OK) {
        FUZZ_CHECK(len >= 1 && !p.binary);
        FUZZ_CHECK(p.type >= EIO_OPEN && p.type <= EIO_NOOP);
        FUZZ_CHECK(p.data == msg + 1 && p.len == len - 1);
        FUZZ_CHECK((uint8_t)('0' + p.type) == msg[0]);
        FUZZ_CHECK(utf8_valid(p.data, p.len));
    } else {
        FUZZ_CHECK(rc == EIO_ERR_EMPTY || rc == EIO_ERR_TYPE || rc == EIO_ERR_UTF8);
        FUZZ_CHECK((rc == EIO_ERR_EMPTY) == (len == 0));
    }

    if (rc == EIO_OK && (p.binary || !memchr(p.data, EIO_SEPARATOR, p.len))) {
        buf b;
        buf_init(&b);
        FUZZ_CHECK(eio_payload_append(&b, p.type, p.binary, p.data, p.len) == 0);
        eio_payload_iter it;
        eio_payload_iter_init(&it, b.data, b.len, 1);
        eio_packet q;
        FUZZ_CHECK(eio_payload_next(&it, &q) == 1);
        FUZZ_CHECK(q.type == p.type && q.binary == p.binary && q.len == p.len);
        FUZZ_CHECK(p.len == 0 || memcmp(q.data, p.data, p.len) == 0);
        FUZZ_CHECK(eio_payload_next(&it, &q) == 0);
        buf_deinit(&b);
    }
    free(msg);
    return 0;
}
