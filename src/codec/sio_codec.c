/* sio_codec — Socket.IO v5 packets (see include/presenced/codec/sio_codec.h).
 *
 * Spec references are to the socket.io-protocol Readme ("Packet encoding" → "Format"):
 *   <packet type>[<# of binary attachments>-][<namespace>,][<acknowledgment id>][JSON payload]
 * Where the spec is silent the reference parser (socket.io-parser v4) decides: the namespace
 * runs from '/' to the first ',' or to the end of the text, and an ack id is the run of digits
 * that follows.
 */
#include "presenced/codec/sio_codec.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/json.h"
#include "presenced/codec/utf8.h"

const char *sio_strerror(int err)
{
    switch (err) {
    case SIO_OK:
        return "ok";
    case SIO_ERR_EMPTY:
        return "empty packet";
    case SIO_ERR_TYPE:
        return "unknown packet type";
    case SIO_ERR_ATTACHMENTS:
        return "bad binary attachment count";
    case SIO_ERR_NSP:
        return "bad namespace";
    case SIO_ERR_ACK_ID:
        return "bad ack id";
    case SIO_ERR_JSON:
        return "payload is not valid JSON";
    case SIO_ERR_PAYLOAD:
        return "payload has the wrong shape for the packet type";
    case SIO_ERR_RESERVED:
        return "reserved event name";
    case SIO_ERR_PLACEHOLDER:
        return "bad binary placeholder";
    case SIO_ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

/* Event names the client library emits locally; a peer may not send them (spec "Sending and
 * receiving data"; the reference parser's RESERVED_EVENTS). */
static const char *const sio_reserved[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Depth-first check of a parsed tree. cJSON limits nesting to CJSON_NESTING_LIMIT (1000), so
 * the recursion is bounded. Numbers must be finite (cJSON turns an overflowing literal such
 * as 1e400 into infinity, which it would later print as null); strings and keys must be valid
 * UTF-8 (defence in depth: the lexical pass already guarantees it). */
static int sio_json_check(const cJSON *item)
{
    for (; item; item = item->next) {
        if (item->string && !utf8_valid((const uint8_t *)item->string, strlen(item->string)))
            return SIO_ERR_JSON;
        if (cJSON_IsNumber(item) && !isfinite(item->valuedouble))
            return SIO_ERR_JSON;
        if (cJSON_IsString(item) &&
            !utf8_valid((const uint8_t *)item->valuestring, strlen(item->valuestring)))
            return SIO_ERR_JSON;
        if (item->child) {
            int rc = sio_json_check(item->child);
            if (rc != SIO_OK)
                return rc;
        }
    }
    return SIO_OK;
}

/* In BINARY_EVENT and BINARY_ACK packets, {"_placeholder":true,"num":N} stands for attachment
 * N (spec "Sending and receiving data", "with binary data"). The reference reconstructor
 * treats an object as a placeholder when "_placeholder" is true; N must then index one of the
 * declared attachments. cJSON keeps duplicate keys and finds the first while JavaScript keeps
 * the last, so an object with two "_placeholder" keys (or a placeholder with two "num" keys)
 * is refused: whether and what it replaces must not depend on the reader. */
static int sio_placeholder_check(const cJSON *item, unsigned attachments)
{
    for (; item; item = item->next) {
        if (cJSON_IsObject(item)) {
            const cJSON *ph = NULL, *num = NULL;
            unsigned nph = 0, nnum = 0;
            for (const cJSON *c = item->child; c; c = c->next) {
                if (strcmp(c->string, "_placeholder") == 0) {
                    nph++;
                    ph = c;
                } else if (strcmp(c->string, "num") == 0) {
                    nnum++;
                    num = c;
                }
            }
            if (nph > 1)
                return SIO_ERR_PLACEHOLDER;
            if (cJSON_IsTrue(ph)) {
                if (nnum != 1 || !cJSON_IsNumber(num))
                    return SIO_ERR_PLACEHOLDER;
                double d = num->valuedouble;
                /* The range test comes first so that the cast below is defined (and libm is
                 * not needed for floor()). */
                if (!(d >= 0 && d < (double)attachments) || d != (double)(unsigned)d)
                    return SIO_ERR_PLACEHOLDER;
                continue; /* the whole object is replaced by the attachment */
            }
        }
        if (item->child) {
            int rc = sio_placeholder_check(item->child, attachments);
            if (rc != SIO_OK)
                return rc;
        }
    }
    return SIO_OK;
}

/* Parse the JSON payload. Returns SIO_OK with *out set, or SIO_ERR_JSON / SIO_ERR_NOMEM. */
static int sio_json_parse(const uint8_t *p, size_t len, cJSON **out)
{
    if (!utf8_valid(p, len) || !json_lex_ok(p, len))
        return SIO_ERR_JSON;
    /* Parse from a NUL-terminated copy so that no cJSON code path can read past the input. */
    char *copy = malloc(len + 1);
    if (!copy)
        return SIO_ERR_NOMEM;
    memcpy(copy, p, len);
    copy[len] = '\0';
    const char *end = NULL;
    /* Not require_null_terminated: in 1.7.15 that option fails any input whose length excludes
     * the terminator. Trailing bytes are checked here instead. */
    cJSON *json = cJSON_ParseWithLengthOpts(copy, len, &end, false);
    int rc = SIO_OK;
    if (!json) {
        rc = SIO_ERR_JSON;
    } else {
        size_t off = (size_t)(end - copy);
        while (off < len &&
               (copy[off] == ' ' || copy[off] == '\t' || copy[off] == '\r' || copy[off] == '\n'))
            off++;
        if (off != len)
            rc = SIO_ERR_JSON;
        else
            rc = sio_json_check(json);
    }
    free(copy);
    if (rc != SIO_OK) {
        cJSON_Delete(json);
        return rc;
    }
    *out = json;
    return SIO_OK;
}

/* Checks the payload's shape for the packet type (the reference parser's isPayloadValid, with
 * an absent payload refused where the type needs one). */
static int sio_payload_check(const sio_packet *p)
{
    const cJSON *d = p->data;
    switch (p->type) {
    case SIO_CONNECT:
        return !d || cJSON_IsObject(d) ? SIO_OK : SIO_ERR_PAYLOAD;
    case SIO_DISCONNECT:
        return !d ? SIO_OK : SIO_ERR_PAYLOAD;
    case SIO_CONNECT_ERROR:
        return cJSON_IsObject(d) || cJSON_IsString(d) ? SIO_OK : SIO_ERR_PAYLOAD;
    case SIO_EVENT:
    case SIO_BINARY_EVENT: {
        if (!cJSON_IsArray(d) || !cJSON_IsString(d->child))
            return SIO_ERR_PAYLOAD;
        const char *name = d->child->valuestring;
        for (size_t i = 0; i < sizeof(sio_reserved) / sizeof(sio_reserved[0]); i++) {
            if (strcmp(name, sio_reserved[i]) == 0)
                return SIO_ERR_RESERVED;
        }
        return SIO_OK;
    }
    case SIO_ACK:
    case SIO_BINARY_ACK:
        return cJSON_IsArray(d) ? SIO_OK : SIO_ERR_PAYLOAD;
    }
    return SIO_ERR_TYPE;
}

/* A namespace is at most SIO_NSP_MAX bytes of UTF-8 without control characters (C0, DEL and
 * C1): it is echoed to clients, used as a lookup key and may end up in logs. */
static bool sio_nsp_valid(const uint8_t *p, size_t len)
{
    if (len > SIO_NSP_MAX || !utf8_valid(p, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F)
            return false;
        /* U+0080..U+009F encode as C2 80..C2 9F. */
        if (p[i] == 0xC2 && i + 1 < len && p[i + 1] <= 0x9F)
            return false;
    }
    return true;
}

int sio_packet_decode(const uint8_t *text, size_t len, sio_packet *out)
{
    memset(out, 0, sizeof(*out));
    out->ack_id = SIO_NO_ACK;
    out->nsp[0] = '/';

    if (len == 0)
        return SIO_ERR_EMPTY;
    if (text[0] < '0' + SIO_CONNECT || text[0] > '0' + SIO_BINARY_ACK)
        return SIO_ERR_TYPE;
    sio_type type = (sio_type)(text[0] - '0');
    size_t i = 1;

    unsigned attachments = 0;
    if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK) {
        /* "<# of binary attachments>-": at least one digit, then '-'. */
        size_t start = i;
        while (i < len && is_digit(text[i])) {
            attachments = attachments * 10 + (unsigned)(text[i] - '0');
            if (attachments > SIO_MAX_ATTACHMENTS)
                return SIO_ERR_ATTACHMENTS;
            i++;
        }
        if (i == start || i >= len || text[i] != '-')
            return SIO_ERR_ATTACHMENTS;
        i++;
    }

    if (i < len && text[i] == '/') {
        size_t start = i;
        while (i < len && text[i] != ',')
            i++;
        if (!sio_nsp_valid(text + start, i - start))
            return SIO_ERR_NSP;
        memcpy(out->nsp, text + start, i - start);
        out->nsp[i - start] = '\0';
        if (i < len)
            i++; /* the ',' */
    }

    int64_t ack_id = SIO_NO_ACK;
    if (i < len && is_digit(text[i])) {
        ack_id = 0;
        while (i < len && is_digit(text[i])) {
            ack_id = ack_id * 10 + (text[i] - '0');
            if (ack_id > SIO_ACK_ID_MAX)
                return SIO_ERR_ACK_ID;
            i++;
        }
    }

    cJSON *data = NULL;
    if (i < len) {
        int rc = sio_json_parse(text + i, len - i, &data);
        if (rc != SIO_OK)
            return rc;
    }

    out->type = type;
    out->ack_id = ack_id;
    out->attachments = attachments;
    out->data = data;
    int rc = sio_payload_check(out);
    if (rc == SIO_OK && (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK))
        rc = sio_placeholder_check(data, attachments);
    if (rc != SIO_OK) {
        sio_packet_deinit(out);
        return rc;
    }
    return SIO_OK;
}

void sio_packet_deinit(sio_packet *p)
{
    cJSON_Delete(p->data);
    p->data = NULL;
}

const char *sio_packet_event_name(const sio_packet *p)
{
    if (p->type != SIO_EVENT && p->type != SIO_BINARY_EVENT)
        return NULL;
    if (!cJSON_IsArray(p->data) || !cJSON_IsString(p->data->child))
        return NULL;
    return p->data->child->valuestring;
}

int sio_header_encode(buf *out, sio_type type, const char *nsp, int64_t ack_id,
                      unsigned attachments)
{
    assert(type >= SIO_CONNECT && type <= SIO_BINARY_ACK);
    assert(ack_id == SIO_NO_ACK || (ack_id >= 0 && ack_id <= SIO_ACK_ID_MAX));
    char tmp[32];
    int n;
    if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK)
        n = snprintf(tmp, sizeof(tmp), "%d%u-", (int)type, attachments);
    else
        n = snprintf(tmp, sizeof(tmp), "%d", (int)type);
    assert(n > 0 && (size_t)n < sizeof(tmp));
    if (buf_append(out, tmp, (size_t)n) != 0)
        return -1;
    if (nsp && strcmp(nsp, "/") != 0) {
        if (buf_append_str(out, nsp) != 0 || buf_append_byte(out, ',') != 0)
            return -1;
    }
    if (ack_id != SIO_NO_ACK) {
        n = snprintf(tmp, sizeof(tmp), "%" PRId64, ack_id);
        assert(n > 0 && (size_t)n < sizeof(tmp));
        if (buf_append(out, tmp, (size_t)n) != 0)
            return -1;
    }
    return 0;
}
