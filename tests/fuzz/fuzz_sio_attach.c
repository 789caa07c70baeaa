/* Fuzz the Socket.IO server core (sio_server) as a client drives it: CONNECT, events and acks,
 * BINARY_* packets and their attachments, out of order, interleaved with time passing.
 *
 * Input: records of [flags][len, 2 bytes little-endian][len bytes]. flags bit 0: the record is a
 * binary Engine.IO message (an attachment) rather than a text one; bits 1-7: how many 20 ms steps
 * of time pass before it (the connection's timers are run after each step). A record's text is the
 * Socket.IO packet as Engine.IO delivers it ("2[...]", "51-[...]"); the harness first CONNECTs to
 * "/" so that most inputs reach events.
 *
 * Properties, checked against what the harness fed (decoded with the codec, as a client's
 * encoder would have written it):
 *   - a handler sees attachments only for a BINARY_* packet, exactly as many as it announced,
 *     each the bytes of one binary message fed after it, in order;
 *   - a binary message while no attachments are expected, and a text message while some are,
 *     close the connection (receive returns -1);
 *   - a connection still waiting for attachments attachment_timeout after the packet is closed
 *     by its timers;
 *   - nothing leaks, whatever the order (ASan/LSan).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/sio_codec.h"
#include "presenced/core/sio_server.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ATTACH_TIMEOUT 500
#define MAX_FED 16

/* What the harness fed since the last BINARY_* packet it sent. */
static struct {
    bool pending;      /* a BINARY_* packet was accepted and waits for its attachments */
    unsigned expected; /* how many it announced */
    uint64_t since;    /* when it was fed */
    unsigned fed;      /* binary messages fed since */
    const uint8_t *att[MAX_FED];
    size_t att_len[MAX_FED];
    unsigned delivered; /* handler calls */
    bool closed;        /* the server asked io to close the connection */
    int next_id;
} h;

static void on_wake(sio_conn *c, void *io, bool bulk)
{
    (void)c, (void)io, (void)bulk;
}

static void on_close(sio_conn *c, void *io, const char *reason)
{
    (void)c, (void)io;
    FUZZ_CHECK(reason);
    h.closed = true;
}

static void make_id(char out[SIO_ID_LEN + 1], void *ud)
{
    (void)ud;
    snprintf(out, SIO_ID_LEN + 1, "fz%018d", h.next_id++);
}

/* The attachments a handler got are exactly the binary messages fed for this packet. */
static void check_bin(const sio_binary *bin)
{
    h.delivered++;
    if (!bin)
        return;
    FUZZ_CHECK(h.pending);
    FUZZ_CHECK(bin->n == h.expected && bin->n >= 1 && bin->n <= SIO_MAX_ATTACHMENTS);
    FUZZ_CHECK(bin->n == h.fed);
    for (unsigned i = 0; i < bin->n; i++) {
        frame *f = bin->att[i];
        FUZZ_CHECK(f && f->binary && f->type == EIO_MESSAGE);
        FUZZ_CHECK(f->len == h.att_len[i]);
        FUZZ_CHECK(f->len == 0 || memcmp(frame_payload(f), h.att[i], f->len) == 0);
    }
}

static void on_event(sio_sock *s, const char *event, cJSON *args, const sio_binary *bin,
                     int64_t ack_id, void *ud)
{
    (void)event, (void)ud;
    FUZZ_CHECK(cJSON_IsArray(args));
    check_bin(bin);
    /* Answer with the arguments and attachments as received: a server's typical echo. */
    if (ack_id != SIO_NO_ACK)
        (void)sio_ack(s, ack_id, args, bin);
}

static void on_answer(sio_sock *s, cJSON *args, const sio_binary *bin, void *ud)
{
    (void)s, (void)ud;
    if (args)
        check_bin(bin);
}

static int on_connect(sio_sock *s, cJSON *auth, const char **reject, void *ud)
{
    (void)s, (void)auth, (void)reject, (void)ud;
    return 0;
}

/* Ask the client something, so that (BINARY_)ACK packets find a waiting ack too. */
static void on_connected(sio_sock *s, cJSON *auth, void *ud)
{
    (void)auth, (void)ud;
    (void)sio_emit_with_ack(s, "question", NULL, NULL, on_answer, NULL);
    (void)sio_emit_with_ack(s, "question", NULL, NULL, on_answer, NULL);
}

static const sio_io_ops ops = {.wake = on_wake, .close = on_close, .make_id = make_id};
static const char *const nsps[] = {"/custom", NULL};

/* Feed one message; returns the server's verdict and keeps the harness's view in step. */
static int feed(sio_conn *c, bool binary, const uint8_t *p, size_t len, uint64_t now)
{
    const char *reason = NULL;
    bool was_pending = h.pending;
    unsigned delivered = h.delivered;
    if (binary && was_pending && h.fed < MAX_FED) {
        h.att[h.fed] = p;
        h.att_len[h.fed] = len;
    }
    if (binary && was_pending)
        h.fed++;
    eio_packet pk = {.type = EIO_MESSAGE, .binary = binary, .data = p, .len = len};
    int rc = sio_conn_receive(c, &pk, now, &reason);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc < 0)
        FUZZ_CHECK(reason);
    /* A binary message nobody waits for, or text while attachments are due: closed. */
    if (binary != was_pending)
        FUZZ_CHECK(rc == -1);
    if (rc < 0)
        return rc;
    if (was_pending) {
        /* The last attachment completes the packet: delivered (or refused) now, not later. */
        if (h.fed == h.expected)
            h.pending = false;
        else
            FUZZ_CHECK(h.delivered == delivered);
        return rc;
    }
    sio_packet pkt;
    if (sio_packet_decode(p, len, &pkt) == SIO_OK) {
        if ((pkt.type == SIO_BINARY_EVENT || pkt.type == SIO_BINARY_ACK) && pkt.attachments) {
            /* Accepted, so it waits: nothing delivered before its attachments. */
            FUZZ_CHECK(h.delivered == delivered);
            h.pending = true;
            h.expected = pkt.attachments;
            h.since = now;
            h.fed = 0;
        }
        sio_packet_deinit(&pkt);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&h, 0, sizeof(h));
    sio_server_opts o = {.namespaces = nsps,
                         .limits = {.ping_interval = 100000,
                                    .ping_timeout = 100000,
                                    .max_payload = 1 << 16,
                                    .send_queue_max = 64},
                         .connect_timeout = 1000,
                         .attachment_timeout = ATTACH_TIMEOUT,
                         .hash_seed = 1};
    sio_server *srv = sio_server_new(&o, &ops);
    if (!srv)
        return 0;
    sio_server_on_connect(srv, on_connect, NULL);
    sio_server_on_connected(srv, on_connected, NULL);
    static const char *const names[] = {"message", "e", "question", "x"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        sio_server_on(srv, names[i], on_event, NULL);
    uint64_t now = 0;
    sio_conn *c = sio_conn_new(srv, "FUZZFUZZFUZZFUZZFUZZ", EIO_TRANSPORT_WEBSOCKET, NULL, now);
    if (!c) {
        sio_server_free(srv);
        return 0;
    }
    /* Engine.IO MESSAGE data: the Socket.IO packet without the "4" of the message type. */
    int rc = feed(c, false, (const uint8_t *)"0", 1, now);
    FUZZ_CHECK(rc == 0);
    size_t i = 0;
    /* io stops feeding a connection the server closed (-1, or ops.close). */
    while (rc == 0 && !h.closed && i + 3 <= size) {
        uint8_t flags = data[i];
        size_t len = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
        i += 3;
        if (len > size - i)
            len = size - i;
        now += (uint64_t)(flags >> 1) * 20;
        const char *reason = NULL;
        if (sio_conn_tick(c, now, &reason) < 0)
            break;
        /* Past the attachment timeout, the timers must have closed the connection. */
        FUZZ_CHECK(!h.pending || now < h.since + ATTACH_TIMEOUT);
        rc = feed(c, flags & 1, data + i, len, now);
        i += len;
        /* Drain what the server queued, as io would. */
        frame *f;
        while ((f = fq_pop(&sio_conn_session(c)->out)))
            frame_unref(f);
    }
    sio_conn_free(c, "fuzz done");
    sio_server_free(srv);
    return 0;
}
