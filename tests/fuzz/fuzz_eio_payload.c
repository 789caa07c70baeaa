/* Fuzz the polling payload iterator. Input: one byte giving max_packets, then the POST body.
 * Properties: packets stay inside the body; no more than max_packets are returned; a payload
 * that decodes completely re-encodes with eio_payload_append to exactly the same bytes (text
 * is copied verbatim and accepted base64 is canonical), and that re-encoding iterates to the
 * same packets. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/eio_codec.h"
#include "presenced/codec/utf8.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct saved {
    eio_type type;
    bool binary;
    size_t off; /* offset of the data in the body */
    size_t len;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t max_packets = data[0];
    size_t len = size - 1;
    uint8_t *body = malloc(len ? len : 1);
    FUZZ_CHECK(body);
    memcpy(body, data + 1, len);
    struct saved *pk = malloc((max_packets + 1) * sizeof(*pk));
    FUZZ_CHECK(pk);

    eio_payload_iter it;
    eio_payload_iter_init(&it, body, len, max_packets);
    eio_packet p;
    size_t n = 0;
    int rc;
    while ((rc = eio_payload_next(&it, &p)) == 1) {
        FUZZ_CHECK(n < max_packets);
        FUZZ_CHECK(p.data >= body && p.data + p.len <= body + len);
        FUZZ_CHECK(p.type >= EIO_OPEN && p.type <= EIO_NOOP);
        FUZZ_CHECK(!p.binary || p.type == EIO_MESSAGE);
        FUZZ_CHECK(p.binary || utf8_valid(p.data, p.len));
        FUZZ_CHECK(!memchr(p.data, EIO_SEPARATOR, p.len) || p.binary);
        pk[n].type = p.type;
        pk[n].binary = p.binary;
        pk[n].off = (size_t)(p.data - body);
        pk[n].len = p.len;
        n++;
    }
    FUZZ_CHECK(rc <= 0);
    FUZZ_CHECK(eio_payload_next(&it, &p) == 0);

    if (rc == 0) {
        FUZZ_CHECK(n >= 1);
        buf b;
        buf_init(&b);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(
                eio_payload_append(&b, pk[i].type, pk[i].binary, body + pk[i].off, pk[i].len) == 0);
        FUZZ_CHECK(b.len == len && memcmp(b.data, data + 1, len) == 0);

        /* The re-encoding is a fresh copy of the original body: iterate it again and compare
         * with the packets decoded the first time. */
        eio_payload_iter_init(&it, b.data, b.len, max_packets);
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(eio_payload_next(&it, &p) == 1);
            FUZZ_CHECK(p.type == pk[i].type && p.binary == pk[i].binary && p.len == pk[i].len);
            FUZZ_CHECK(p.len == 0 || memcmp(p.data, body + pk[i].off, p.len) == 0);
        }
        FUZZ_CHECK(eio_payload_next(&it, &p) == 0);
        buf_deinit(&b);
    }
    free(pk);
    free(body);
    return 0;
}
