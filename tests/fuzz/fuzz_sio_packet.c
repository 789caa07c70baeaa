/* Fuzz sio_packet_decode. Input: the Socket.IO packet text.
 * Properties: a failed decode owns nothing; a decoded packet satisfies the documented limits
 * (namespace, ack id, attachments, payload shape, no reserved event name); re-encoding it as
 * header + printed JSON decodes to the same packet, and its JSON prints identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/sio_codec.h"
#include "presenced/codec/utf8.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_packet(const sio_packet *p)
{
    size_t nsp_len = strlen(p->nsp);
    FUZZ_CHECK(p->nsp[0] == '/' && nsp_len <= SIO_NSP_MAX);
    FUZZ_CHECK(utf8_valid((const uint8_t *)p->nsp, nsp_len));
    FUZZ_CHECK(!strchr(p->nsp, ','));
    FUZZ_CHECK(p->ack_id == SIO_NO_ACK || (p->ack_id >= 0 && p->ack_id <= SIO_ACK_ID_MAX));
    FUZZ_CHECK(p->attachments <= SIO_MAX_ATTACHMENTS);
    if (p->type != SIO_BINARY_EVENT && p->type != SIO_BINARY_ACK)
        FUZZ_CHECK(p->attachments == 0);
    switch (p->type) {
    case SIO_CONNECT:
        FUZZ_CHECK(!p->data || cJSON_IsObject(p->data));
        break;
    case SIO_DISCONNECT:
        FUZZ_CHECK(!p->data);
        break;
    case SIO_CONNECT_ERROR:
        FUZZ_CHECK(cJSON_IsObject(p->data) || cJSON_IsString(p->data));
        break;
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        const char *name = sio_packet_event_name(p);
        FUZZ_CHECK(name);
        FUZZ_CHECK(strcmp(name, "connect") && strcmp(name, "disconnect") &&
                   strcmp(name, "connect_error") && strcmp(name, "disconnecting") &&
                   strcmp(name, "newListener") && strcmp(name, "removeListener"));
        break;
    }
    case SIO_ACK:
    case SIO_BINARY_ACK:
        FUZZ_CHECK(cJSON_IsArray(p->data));
        break;
    default:
        FUZZ_CHECK(0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *text = malloc(size ? size : 1); /* exact size: ASan catches any overrun */
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    sio_packet p;
    int rc = sio_packet_decode(text, size, &p);
    free(text); /* the packet must not borrow from its input */
    if (rc != SIO_OK) {
        FUZZ_CHECK(rc < 0 && rc >= SIO_ERR_NOMEM);
        FUZZ_CHECK(p.data == NULL);
        return 0;
    }
    check_packet(&p);

    buf b;
    buf_init(&b);
    FUZZ_CHECK(sio_header_encode(&b, p.type, p.nsp, p.ack_id, p.attachments) == 0);
    char *json = NULL;
    if (p.data) {
        json = cJSON_PrintUnformatted(p.data);
        FUZZ_CHECK(json);
        FUZZ_CHECK(buf_append_str(&b, json) == 0);
    }
    sio_packet q;
    FUZZ_CHECK(sio_packet_decode(b.data, b.len, &q) == SIO_OK);
    FUZZ_CHECK(q.type == p.type && strcmp(q.nsp, p.nsp) == 0 && q.ack_id == p.ack_id &&
               q.attachments == p.attachments);
    FUZZ_CHECK(!json == !q.data);
    if (json) {
        char *json2 = cJSON_PrintUnformatted(q.data);
        FUZZ_CHECK(json2 && strcmp(json, json2) == 0);
        cJSON_free(json2);
        cJSON_free(json);
    }
    sio_packet_deinit(&q);
    sio_packet_deinit(&p);
    buf_deinit(&b);
    return 0;
}
