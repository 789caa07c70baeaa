/* presenced-bench-holder: holds N idle Socket.IO connections for the presence benchmark and counts
 * the presence events they receive. A drop-in for tests/bench/idle-holder.mjs (same arguments, same
 * stdin/stdout protocol) that costs a fraction of its CPU per received frame: one epoll loop, one
 * read() per readable socket, and no look at a message beyond its first bytes. On a 2-core machine
 * a broadcast to 10,000 sockets then measures the server rather than the clients.
 *
 * Usage: presenced-bench-holder URL N PREFIX [--anon] [--concurrency 200] [--source ADDR]
 *                              [--retry ROUNDS]
 *   URL is http://HOST[:PORT] with HOST an IPv4 address or "localhost"; the sockets open
 *   /socket.io/?EIO=4&transport=websocket. Connection i (0..N-1) is user PREFIX<i> unless --anon.
 *   --source binds every socket to that local IPv4 address and a port of its own (1024-65535,
 *   in turn) before it connects: one source address has about 64,000 ports towards one server
 *   port, and loopback accepts any 127.x.y.z, so holders with different sources can together
 *   hold more than that.
 *   --retry ROUNDS: after every connect settled, those that failed (refused, timed out) start
 *   again, up to ROUNDS more times, as reconnecting clients would.
 * Prints "ready <connected> <failed> <retried>" once every connect settled (retried: connects
 * that failed and were started again). Then answers each line on stdin:
 *   count -> {"connected","dropped","frames","online","offline","first","last","dropped_why"}
 *            (first/last: the arrival of the first/last event since the last reset, ms since the
 *            epoch; dropped_why: {reason: count} of the connections that ended once connected)
 *   reset -> {"ok":true}, and the event counters start again from zero
 *   times PATH -> {"ok":true,"written":K}: PATH gets a line "<i> <ms>" for each connection i
 *            that is open now, ms (since the epoch) when its Socket.IO CONNECT was answered
 * Exits when stdin closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    READ_CHUNK = 65536,         /* one read() takes a whole burst of frames */
    MAX_EVENTS = 1024,          /* epoll events per wait */
    COALESCE_NS = 200000,       /* pause after a wait that found little (see serve) */
    CONNECT_TIMEOUT_MS = 20000, /* as the Node holder's lean client */
    MAX_HTTP_ANSWER = 8192,     /* the 101 answer is a few hundred bytes */
    MAX_FRAME = 16 << 20,       /* anything larger is not a presence server talking */
    MAX_PENDING = 1 << 20,      /* unsent output: beyond this the server stopped reading */
    MAX_OUT = 2048,             /* largest frame payload this client sends (the CONNECT) */
    MAX_PREFIX = 256,           /* user id prefix, before JSON escaping */
    MAX_N = 10000000,           /* bounds the connection table */
    KEEP = 64,                  /* bytes kept of a fragmented message: enough to classify it */
    MAX_REASONS = 16,           /* distinct failure reasons reported */
    REASON_LEN = 60,            /* as the Node holder, which keys its errors by 60 characters */
};

#define STDIN_TAG UINT32_MAX /* epoll data of stdin; connections use their index */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* The order matters: below ST_CONNECTED a connection is in flight, from ST_TCP to ST_CONNECTED
 * it is open. */
enum state {
    ST_IDLE,      /* not started yet */
    ST_TCP,       /* TCP connect in progress */
    ST_HTTP,      /* Upgrade request sent, waiting for the 101 */
    ST_EIO,       /* WebSocket open, waiting for the Engine.IO OPEN packet */
    ST_SIO,       /* Socket.IO CONNECT sent, waiting for its answer */
    ST_CONNECTED, /* counted as connected */
    ST_DROPPED,   /* closed after connecting */
    ST_FAILED,    /* closed before connecting */
};

/* The start of a message that arrives in several frames, and its length so far. */
struct frag {
    uint64_t total;
    uint8_t op;
    uint8_t kept;
    uint8_t head[KEEP];
};

/* One connection. An idle one owns no heap memory: the buffers exist only while they hold bytes,
 * since the process may hold 20,000 of these. */
struct conn {
    int fd;
    uint8_t state;
    bool want_out; /* EPOLLOUT is armed */
    uint32_t rlen; /* unprocessed input (a partial frame) */
    uint32_t rcap;
    uint32_t wlen; /* output the socket did not take yet */
    int64_t t0;    /* monotonic ms at start: the connect timeout */
    int64_t at;    /* wall ms when the Socket.IO CONNECT was answered (for `times`) */
    uint8_t *rbuf;
    uint8_t *wbuf;
    struct frag *frag;
};

/* Counts per reason, the first MAX_REASONS distinct reasons by name, the rest together. */
struct tally {
    struct {
        char text[REASON_LEN + 1];
        uint32_t count;
    } reasons[MAX_REASONS];
    uint32_t other;
};

static struct {
    struct sockaddr_in addr;
    char host[300];                  /* the Host header: the URL's authority */
    char prefix[MAX_PREFIX * 6 + 1]; /* the user id prefix, JSON-escaped */
    bool anon;
    bool has_source;
    struct sockaddr_in source; /* --source: the local address of every socket */
    uint16_t port_next;        /* --source: the next local port to try (bind_source) */
    int ep;
    struct conn *conns;
    uint32_t n, next, oldest, inflight, concurrency;
    uint32_t max_rounds, rounds,
        retried;                         /* --retry: retry rounds allowed, done, connects retried */
    uint32_t connected, failed, dropped; /* connected: ever reached, drops included */
    uint64_t frames, online, offline;
    double first, last;
    double now; /* wall clock of the current read batch; 0 until an event needs it */
    uint64_t rng;
    struct tally failures, drops; /* why connects failed; why connected sockets ended */
} H;

static const char ONLINE[] = "42[\"presence:online\"";
static const char OFFLINE[] = "42[\"presence:offline\"";

static int conn_write(struct conn *c, const uint8_t *p, size_t len);

/* ---- small utilities ---------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Comparable with performance.timeOrigin + performance.now() in the Node processes. */
static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* xorshift64*: masks and handshake keys need no cryptographic strength, only variety. */
static uint32_t rnd(void)
{
    H.rng ^= H.rng >> 12;
    H.rng ^= H.rng << 25;
    H.rng ^= H.rng >> 27;
    return (uint32_t)((H.rng * 0x2545F4914F6CDD1DULL) >> 32);
}

static void seed_rng(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    H.rng = ((uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 20) | 1;
}

/* JSON string escaping (without the quotes) of src into dst, which holds 6 bytes per byte. */
static void json_escape(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '"' || ch == '\\') {
            *dst++ = '\\';
            *dst++ = (char)ch;
        } else if (ch < 0x20) {
            dst += sprintf(dst, "\\u%04x", ch);
        } else {
            *dst++ = (char)ch;
        }
    }
    *dst = 0;
}

static void b64_16(const uint8_t in[16], char out[25])
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < 16)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < 16)
            v |= in[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < 16 ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < 16 ? abc[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- connection life cycle ---------------------------------------------------------------- */

static bool is_open(const struct conn *c)
{
    return c->state >= ST_TCP && c->state <= ST_CONNECTED;
}

static void tally_note(struct tally *t, const char *why)
{
    char text[REASON_LEN + 1];
    snprintf(text, sizeof text, "%s", why);
    for (int i = 0; i < MAX_REASONS; i++) {
        if (!t->reasons[i].text[0])
            memcpy(t->reasons[i].text, text, sizeof text);
        if (strcmp(t->reasons[i].text, text) == 0) {
            t->reasons[i].count++;
            return;
        }
    }
    t->other++;
}

/* The tally as a JSON object: {"reason":count,...}. */
static void tally_print(FILE *f, const struct tally *t)
{
    fputc('{', f);
    for (int i = 0; i < MAX_REASONS && t->reasons[i].count; i++) {
        char esc[REASON_LEN * 6 + 1];
        json_escape(esc, t->reasons[i].text, strlen(t->reasons[i].text));
        fprintf(f, "%s\"%s\":%u", i ? "," : "", esc, t->reasons[i].count);
    }
    if (t->other)
        fprintf(f, "%s\"other\":%u", t->reasons[0].count ? "," : "", t->other);
    fputc('}', f);
}

static void conn_release(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set: the descriptor is never duplicated */
    c->fd = -1;
    free(c->rbuf);
    free(c->wbuf);
    free(c->frag);
    c->rbuf = c->wbuf = NULL;
    c->frag = NULL;
    c->rlen = c->rcap = c->wlen = 0;
}

/* Ends a connection: a failure while it connects, a drop once connected. Ending an ended one does
 * nothing, so that a write error met while handling a close does not count twice. */
static void conn_end(struct conn *c, const char *why)
{
    if (c->state == ST_CONNECTED) {
        tally_note(&H.drops, why);
        H.dropped++;
        c->state = ST_DROPPED;
    } else if (is_open(c)) {
        tally_note(&H.failures, why);
        H.failed++;
        H.inflight--;
        c->state = ST_FAILED;
    } else {
        return;
    }
    conn_release(c);
}

static void conn_end_errno(struct conn *c, const char *what, int err)
{
    char why[96];
    snprintf(why, sizeof why, "%s: %s", what, strerror(err));
    conn_end(c, why);
}

/* Arms EPOLLOUT only while output waits: a writable idle socket would wake the loop forever. */
static int arm(struct conn *c, bool out)
{
    if (c->want_out == out)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET | (out ? EPOLLOUT : 0)};
    ev.data.u32 = (uint32_t)(c - H.conns);
    c->want_out = out;
    if (epoll_ctl(H.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        return 0;
    conn_end_errno(c, "epoll_ctl", errno);
    return -1;
}

/* Binds fd to the --source address and a port of its own. Left to the kernel (port 0 at
 * connect()), the port is found by trying candidates against every connection the address
 * already has to the server: a search that grows with the connections held, and at 15,000 per
 * address took a quarter of the whole host's CPU. A cursor over the ports finds a free one at
 * the first try (ports still in TIME_WAIT from dropped connections are skipped). */
static int bind_source(int fd)
{
    enum { FIRST_PORT = 1024, TRIES = 64 };
    if (H.port_next < FIRST_PORT)
        H.port_next = FIRST_PORT;
    for (int t = 0; t < TRIES; t++) {
        struct sockaddr_in a = H.source;
        a.sin_port = htons(H.port_next);
        H.port_next = H.port_next == UINT16_MAX ? FIRST_PORT : (uint16_t)(H.port_next + 1);
        if (bind(fd, (const struct sockaddr *)&a, sizeof a) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return -1;
    }
    /* A crowded range: the kernel's choice, at connect(), per destination. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) < 0)
        return -1;
    return bind(fd, (const struct sockaddr *)&H.source, sizeof H.source);
}

static void conn_start(uint32_t i)
{
    struct conn *c = &H.conns[i];
    c->state = ST_TCP;
    c->t0 = mono_ms();
    H.inflight++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_end_errno(c, "socket", errno);
        return;
    }
    /* Pongs and CONNECTs are tiny: Nagle would hold them back (ws sets TCP_NODELAY too). */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (H.has_source && bind_source(c->fd) < 0) {
        conn_end_errno(c, "bind", errno);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&H.addr, sizeof H.addr) < 0 &&
        errno != EINPROGRESS) {
        conn_end_errno(c, "connect", errno);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET};
    ev.data.u32 = i;
    c->want_out = true; /* writable = the TCP connect completed */
    if (epoll_ctl(H.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        conn_end_errno(c, "epoll_ctl", errno);
}

/* The TCP connect completed (or failed): send the WebSocket Upgrade request. */
static void tcp_done(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_end_errno(c, "connect", err);
        return;
    }
    uint8_t key[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = rnd();
        memcpy(key + i, &r, 4);
    }
    char key64[25], req[512];
    b64_16(key, key64);
    int n = snprintf(req, sizeof req,
                     "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     H.host, key64);
    c->state = ST_HTTP;
    if (conn_write(c, (const uint8_t *)req, (size_t)n) == 0)
        arm(c, c->wlen > 0);
}

/* Fails the connections still in flight after the connect timeout. Starts are in index order, so
 * deadlines are too: the scan goes from the oldest unsettled one to the first one not yet due. */
static void expire(void)
{
    int64_t now = mono_ms();
    for (; H.oldest < H.next; H.oldest++) {
        struct conn *c = &H.conns[H.oldest];
        if (c->state >= ST_CONNECTED)
            continue;
        if (now - c->t0 < CONNECT_TIMEOUT_MS)
            return;
        conn_end(c, "connect timeout");
    }
}

/* Starts connections not started yet (or failed, in a retry round) in index order. */
static void start_more(void)
{
    while (H.next < H.n && H.inflight < H.concurrency) {
        uint32_t i = H.next++;
        if (H.conns[i].state == ST_IDLE)
            conn_start(i);
    }
}

/* --retry: the connections that failed in the round that just settled go again, as clients
 * that reconnect would. Returns false when there is nothing to retry or no round left. */
static bool retry_round(void)
{
    if (!H.failed || H.rounds >= H.max_rounds)
        return false;
    for (uint32_t i = 0; i < H.n; i++)
        if (H.conns[i].state == ST_FAILED)
            H.conns[i].state = ST_IDLE;
    H.retried += H.failed;
    H.failed = 0;
    H.next = H.oldest = 0;
    H.rounds++;
    return true;
}

/* ---- output ------------------------------------------------------------------------------- */

/* Keeps output the socket did not take, for EPOLLOUT. Returns -1 when that ended the connection. */
static int pending_add(struct conn *c, const uint8_t *p, size_t len)
{
    if (c->wlen + len > MAX_PENDING) {
        conn_end(c, "the server does not read");
        return -1;
    }
    uint8_t *b = realloc(c->wbuf, c->wlen + len);
    if (!b) {
        conn_end(c, "out of memory");
        return -1;
    }
    memcpy(b + c->wlen, p, len);
    c->wbuf = b;
    c->wlen += (uint32_t)len;
    return arm(c, true);
}

/* Writes at once when nothing waits (the usual case: a pong), else queues behind what waits.
 * Returns -1 when the connection ended. */
static int conn_write(struct conn *c, const uint8_t *p, size_t len)
{
    size_t done = 0;
    if (!c->wlen) {
        ssize_t w = write(c->fd, p, len);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            conn_end_errno(c, "write", errno);
            return -1;
        }
        done = w > 0 ? (size_t)w : 0;
        if (done == len)
            return 0;
    }
    return pending_add(c, p + done, len - done);
}

static void conn_flush(struct conn *c)
{
    ssize_t w = write(c->fd, c->wbuf, c->wlen);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_end_errno(c, "write", errno);
        return;
    }
    c->wlen -= (uint32_t)w;
    if (c->wlen) {
        memmove(c->wbuf, c->wbuf + w, c->wlen);
        return;
    }
    free(c->wbuf);
    c->wbuf = NULL;
    arm(c, false);
}

/* One masked frame (RFC 6455 requires clients to mask). Returns -1 when the connection ended. */
static int ws_send(struct conn *c, uint8_t op, const void *payload, size_t len)
{
    uint8_t f[8 + MAX_OUT];
    const uint8_t *p = payload;
    size_t h = 0;
    if (len > MAX_OUT)
        return 0; /* cannot happen: pongs echo at most 125 bytes, the CONNECT is bounded */
    f[h++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        f[h++] = (uint8_t)(0x80 | len);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    }
    uint32_t m = rnd();
    uint8_t *mask = f + h;
    memcpy(mask, &m, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        f[h + i] = p[i] ^ mask[i & 3];
    return conn_write(c, f, h + len);
}

/* ---- Engine.IO / Socket.IO ---------------------------------------------------------------- */

/* The Engine.IO OPEN arrived: send the Socket.IO CONNECT, with the user id unless anonymous. */
static int sio_connect(struct conn *c)
{
    char p[MAX_OUT];
    int len = H.anon ? snprintf(p, sizeof p, "40")
                     : snprintf(p, sizeof p, "40{\"userId\":\"%s%u\"}", H.prefix,
                                (unsigned)(c - H.conns));
    c->state = ST_SIO;
    return ws_send(c, OP_TEXT, p, (size_t)len);
}

static void sio_connected(struct conn *c)
{
    c->state = ST_CONNECTED;
    c->at = (int64_t)wall_ms();
    H.connected++;
    H.inflight--;
}

static void sio_refused(struct conn *c, const uint8_t *p, size_t avail)
{
    char why[REASON_LEN + 1];
    snprintf(why, sizeof why, "refused: %.*s", (int)(avail < REASON_LEN ? avail : REASON_LEN),
             (const char *)p);
    conn_end(c, why);
}

/* A Socket.IO EVENT: counted and classified by its first bytes, never parsed. */
static void count_event(const uint8_t *p, size_t avail)
{
    if (H.now == 0)
        H.now = wall_ms();
    if (H.frames++ == 0)
        H.first = H.now;
    H.last = H.now;
    if (avail >= sizeof ONLINE - 1 && memcmp(p, ONLINE, sizeof ONLINE - 1) == 0)
        H.online++;
    else if (avail >= sizeof OFFLINE - 1 && memcmp(p, OFFLINE, sizeof OFFLINE - 1) == 0)
        H.offline++;
}

/* One text message, known by its first `avail` bytes of `total`. Returns -1 when the connection
 * ended. */
static int on_text(struct conn *c, const uint8_t *p, size_t avail, uint64_t total)
{
    if (total == 0)
        return 0;
    if (total == 1 && p[0] == '2')
        return ws_send(c, OP_TEXT, "3", 1); /* Engine.IO ping -> pong */
    if (p[0] == '4' && avail >= 2 && p[1] == '2') {
        count_event(p, avail);
        return 0;
    }
    if (p[0] == '0' && c->state == ST_EIO)
        return sio_connect(c);
    if (p[0] == '4' && avail >= 2 && p[1] == '0' && c->state == ST_SIO) {
        sio_connected(c);
        return 0;
    }
    if (p[0] == '4' && avail >= 2 && p[1] == '4' && c->state < ST_CONNECTED) {
        sio_refused(c, p, avail);
        return -1;
    }
    return 0;
}

/* ---- WebSocket input ---------------------------------------------------------------------- */

struct hdr {
    uint64_t len;
    size_t size;
    uint8_t op;
    bool fin;
};

/* Parses a frame header: 1 when complete, 0 when more bytes are needed, -1 when invalid. */
static int ws_header(const uint8_t *p, size_t avail, struct hdr *h)
{
    if (avail < 2)
        return 0;
    if ((p[0] & 0x70) || (p[1] & 0x80))
        return -1; /* no extension was negotiated, and servers do not mask */
    h->fin = p[0] & 0x80;
    h->op = p[0] & 0x0f;
    h->len = p[1] & 0x7f;
    h->size = 2;
    if (h->len == 126) {
        if (avail < 4)
            return 0;
        h->len = (uint64_t)p[2] << 8 | p[3];
        h->size = 4;
    } else if (h->len == 127) {
        if (avail < 10)
            return 0;
        h->len = 0;
        for (int i = 2; i < 10; i++)
            h->len = h->len << 8 | p[i];
        h->size = 10;
    }
    if (h->len > MAX_FRAME)
        return -1;
    if (h->op >= OP_CLOSE && (!h->fin || h->len > 125))
        return -1; /* control frames are short and whole */
    return 1;
}

static void frag_add(struct frag *f, const uint8_t *p, uint64_t len)
{
    size_t room = KEEP - f->kept;
    size_t take = len < room ? (size_t)len : room;
    memcpy(f->head + f->kept, p, take);
    f->kept = (uint8_t)(f->kept + take);
    f->total += len;
}

/* A text or binary frame, or a continuation. Only the start of a fragmented message is kept:
 * it is all that classifies it. Returns -1 when the connection ended. */
static int ws_data(struct conn *c, const struct hdr *h, const uint8_t *p)
{
    if (h->op != OP_CONT) {
        if (c->frag) {
            conn_end(c, "WebSocket message inside another");
            return -1;
        }
        if (h->fin)
            return h->op == OP_TEXT ? on_text(c, p, (size_t)h->len, h->len) : 0;
        c->frag = calloc(1, sizeof *c->frag);
        if (!c->frag) {
            conn_end(c, "out of memory");
            return -1;
        }
        c->frag->op = h->op;
    } else if (!c->frag) {
        conn_end(c, "WebSocket continuation without a message");
        return -1;
    }
    frag_add(c->frag, p, h->len);
    if (!h->fin)
        return 0;
    struct frag *f = c->frag;
    c->frag = NULL; /* on_text may end the connection, which frees c->frag */
    int r = f->op == OP_TEXT ? on_text(c, f->head, f->kept, f->total) : 0;
    free(f);
    return r;
}

static void ws_closed(struct conn *c, const uint8_t *p, uint64_t len)
{
    char why[64];
    if (len >= 2)
        snprintf(why, sizeof why, "closed by the server (%u)", (unsigned)(p[0] << 8 | p[1]));
    else
        snprintf(why, sizeof why, "closed by the server");
    ws_send(c, OP_CLOSE, NULL, 0); /* the courtesy answer; the socket closes regardless */
    conn_end(c, why);
}

/* Handles the frame at the start of p: returns the bytes it took, 0 when it is not complete yet,
 * -1 when the connection ended. */
static long ws_frame(struct conn *c, const uint8_t *p, size_t avail)
{
    struct hdr h;
    int r = ws_header(p, avail, &h);
    if (r < 0) {
        conn_end(c, "invalid WebSocket frame");
        return -1;
    }
    if (r == 0 || avail - h.size < h.len)
        return 0;
    const uint8_t *payload = p + h.size;
    switch (h.op) {
    case OP_CONT:
    case OP_TEXT:
    case OP_BINARY:
        r = ws_data(c, &h, payload);
        break;
    case OP_PING:
        r = ws_send(c, OP_PONG, payload, (size_t)h.len);
        break;
    case OP_PONG:
        break;
    case OP_CLOSE:
        ws_closed(c, payload, h.len);
        return -1;
    default:
        conn_end(c, "invalid WebSocket opcode");
        return -1;
    }
    return r < 0 ? -1 : (long)(h.size + h.len);
}

/* Offset just past the blank line ending an HTTP header, 0 when it has not arrived. */
static size_t http_header_end(const uint8_t *p, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r')
            return i + 1;
    return 0;
}

/* The answer to the Upgrade request. Sec-WebSocket-Accept is not checked: the server is known.
 * Returns the bytes of the answer, 0 while incomplete, -1 when the connection ended. */
static long http_answer(struct conn *c, const uint8_t *p, size_t len)
{
    size_t end = http_header_end(p, len);
    if (!end) {
        if (len <= MAX_HTTP_ANSWER)
            return 0;
        conn_end(c, "HTTP answer too long");
        return -1;
    }
    if (end < 13 || memcmp(p, "HTTP/1.1 101", 12) != 0 || (p[12] != ' ' && p[12] != '\r')) {
        char why[64];
        snprintf(why, sizeof why, "Unexpected server response: %.3s",
                 end >= 12 ? (const char *)p + 9 : "?");
        conn_end(c, why);
        return -1;
    }
    c->state = ST_EIO;
    return (long)end;
}

/* Handles whole units at the start of p (the HTTP answer, then frames): returns the bytes taken,
 * -1 when the connection ended (p may then be freed memory). */
static long conn_process(struct conn *c, const uint8_t *p, size_t len)
{
    size_t off = 0;
    if (c->state == ST_HTTP) {
        long h = http_answer(c, p, len);
        if (h <= 0)
            return h;
        off = (size_t)h;
    }
    while (off < len) {
        long k = ws_frame(c, p + off, len - off);
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        off += (size_t)k;
    }
    return (long)off;
}

static int rbuf_append(struct conn *c, const uint8_t *p, size_t len)
{
    size_t need = (size_t)c->rlen + len;
    if (need > c->rcap) {
        size_t cap = c->rcap ? c->rcap : 512;
        while (cap < need)
            cap *= 2;
        uint8_t *b = realloc(c->rbuf, cap);
        if (!b) {
            conn_end(c, "out of memory");
            return -1;
        }
        c->rbuf = b;
        c->rcap = (uint32_t)cap;
    }
    memcpy(c->rbuf + c->rlen, p, len);
    c->rlen = (uint32_t)need;
    return 0;
}

/* Drops processed input; an empty buffer is freed, a mostly empty large one shrunk, so that a
 * burst leaves no memory behind on 20,000 idle connections. */
static void rbuf_consume(struct conn *c, size_t used)
{
    c->rlen -= (uint32_t)used;
    if (!c->rlen) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
        return;
    }
    memmove(c->rbuf, c->rbuf + used, c->rlen);
    if (c->rcap > 4096 && c->rlen < c->rcap / 4) {
        uint8_t *b = realloc(c->rbuf, c->rlen);
        if (b) {
            c->rbuf = b;
            c->rcap = c->rlen;
        }
    }
}

/* Freshly read bytes, after any left over from earlier reads. With nothing left over (the usual
 * case) they are handled in place, and only a trailing partial frame is copied. Returns -1 when
 * the connection ended. */
static int conn_input(struct conn *c, const uint8_t *data, size_t n)
{
    if (!c->rlen) {
        long used = conn_process(c, data, n);
        if (used < 0)
            return -1;
        return (size_t)used == n ? 0 : rbuf_append(c, data + used, n - (size_t)used);
    }
    if (rbuf_append(c, data, n) < 0)
        return -1;
    long used = conn_process(c, c->rbuf, c->rlen);
    if (used < 0)
        return -1;
    rbuf_consume(c, (size_t)used);
    return 0;
}

/* Reads until a read comes back short. The sockets are edge-triggered: a short read drained the
 * socket, and any byte arriving after it raises a new edge, so no read has to end in EAGAIN, and
 * epoll does not poll every reported socket again at the next wait as it would level-triggered. */
static void conn_readable(struct conn *c)
{
    static uint8_t buf[READ_CHUNK];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_end_errno(c, "read", errno);
            return;
        }
        if (n == 0) {
            conn_end(c, c->state == ST_CONNECTED ? "closed by the server without a close frame"
                                                 : "closed before connect");
            return;
        }
        H.now = 0; /* one clock reading per read, taken by the first event in it */
        if (conn_input(c, buf, (size_t)n) < 0 || (size_t)n < sizeof buf)
            return;
    }
}

static void conn_event(struct conn *c, uint32_t ev)
{
    if (!is_open(c))
        return; /* ended earlier in this batch */
    if (c->state == ST_TCP) {
        tcp_done(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_readable(c);
    if (is_open(c) && (ev & EPOLLOUT) && c->wlen)
        conn_flush(c);
}

/* ---- stdin commands ----------------------------------------------------------------------- */

/* When each open connection connected: the reconnect storm benchmark tells from it which users
 * were back within the offline grace. */
static void write_times(const char *path)
{
    FILE *f = fopen(path, "w");
    uint32_t k = 0;
    for (uint32_t i = 0; f && i < H.n; i++) {
        if (H.conns[i].state != ST_CONNECTED)
            continue;
        fprintf(f, "%u %lld\n", i, (long long)H.conns[i].at);
        k++;
    }
    if (!f || fclose(f) != 0) {
        printf("{\"ok\":false,\"error\":\"%s\"}\n", strerror(errno));
        return;
    }
    printf("{\"ok\":true,\"written\":%u}\n", k);
}

static void command(char *line)
{
    size_t len = strlen(line);
    while (len && strchr(" \t\r", line[len - 1]))
        line[--len] = 0;
    while (*line == ' ' || *line == '\t')
        line++;
    if (strcmp(line, "count") == 0) {
        printf("{\"connected\":%u,\"dropped\":%u,\"frames\":%llu,\"online\":%llu,\"offline\":%llu,"
               "\"first\":%.3f,\"last\":%.3f,\"dropped_why\":",
               H.connected - H.dropped, H.dropped, (unsigned long long)H.frames,
               (unsigned long long)H.online, (unsigned long long)H.offline, H.first, H.last);
        tally_print(stdout, &H.drops);
        printf("}\n");
    } else if (strncmp(line, "times ", 6) == 0) {
        write_times(line + 6);
    } else if (strcmp(line, "reset") == 0) {
        H.frames = H.online = H.offline = 0;
        H.first = H.last = 0;
        printf("{\"ok\":true}\n");
    } else {
        return;
    }
    fflush(stdout);
}

/* One read of stdin, split into lines; a last line without a newline still counts, as with
 * readline. Exits at the end of input. */
static void stdin_readable(void)
{
    static char line[4096];
    static size_t len;
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        line[len] = 0;
        command(line);
        exit(0);
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            line[len] = 0;
            command(line);
            len = 0;
        } else if (len < sizeof line - 1) {
            line[len++] = buf[i]; /* an overlong line is cut: it is no command anyway */
        }
    }
}

/* ---- main loop ---------------------------------------------------------------------------- */

/* Returns the number of events handled. */
static int poll_once(int timeout_ms)
{
    static struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(H.ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR) {
        perror("presenced-bench-holder: epoll_wait");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == STDIN_TAG)
            stdin_readable();
        else
            conn_event(&H.conns[evs[i].data.u32], evs[i].events);
    }
    return n;
}

static void print_reasons(void)
{
    fprintf(stderr, "presenced-bench-holder: %u of %u failed: ", H.failed, H.n);
    tally_print(stderr, &H.failures);
    fputc('\n', stderr);
}

/* Opens the N connections, `concurrency` in flight, until each connected or failed. */
static void settle(void)
{
    start_more();
    for (;;) {
        while (H.connected + H.failed < H.n) {
            poll_once(100);
            expire();
            start_more();
        }
        if (!retry_round())
            break;
        start_more();
    }
    printf("ready %u %u %u\n", H.connected, H.failed, H.retried);
    fflush(stdout);
    if (H.failed)
        print_reasons();
}

/* Serves stdin commands beside the sockets' pings and events, until stdin closes.
 * A broadcast reaches the sockets one server write at a time, and this process outpaces the server:
 * waiting again at once would wake it for every two or three frames, and the wakeups would cost
 * more than the frames. After a wait that did not fill the event array, a short pause lets the
 * next wait collect a batch; timestamps come at most COALESCE_NS later. A full array means the
 * frames outpace this process: then it waits again at once. */
static void serve(void)
{
    const struct timespec pause = {0, COALESCE_NS};
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u32 = STDIN_TAG;
    if (epoll_ctl(H.ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) < 0) {
        if (errno != EPERM) {
            perror("presenced-bench-holder: epoll_ctl(stdin)");
            exit(1);
        }
        for (;;) /* a regular file or /dev/null: not pollable, and all there already */
            stdin_readable();
    }
    for (;;)
        if (poll_once(-1) < MAX_EVENTS)
            nanosleep(&pause, NULL);
}

/* ---- arguments ---------------------------------------------------------------------------- */

static int parse_url(const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *host = url + 7;
    size_t hl = strcspn(host, ":/?#");
    char name[64];
    if (hl == 0 || hl >= sizeof name)
        return -1;
    memcpy(name, host, hl);
    name[hl] = 0;
    const char *rest = host + hl;
    unsigned long port = 80;
    if (*rest == ':') {
        char *end;
        port = strtoul(rest + 1, &end, 10);
        if (end == rest + 1 || port == 0 || port > 65535 || (*end && !strchr("/?#", *end)))
            return -1;
        rest = end;
    }
    H.addr.sin_family = AF_INET;
    H.addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, strcmp(name, "localhost") ? name : "127.0.0.1", &H.addr.sin_addr) != 1)
        return -1;
    snprintf(H.host, sizeof H.host, "%.*s", (int)(rest - host), host);
    return 0;
}

static int parse_count(const char *s, unsigned long min, unsigned long max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max || *s == '-')
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    if (argc < 4 || parse_url(argv[1]) < 0 || parse_count(argv[2], 0, MAX_N, &H.n) < 0)
        return -1;
    size_t plen = strlen(argv[3]);
    if (plen > MAX_PREFIX)
        return -1;
    json_escape(H.prefix, argv[3], plen);
    H.concurrency = 200;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--anon") == 0) {
            H.anon = true;
        } else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            if (parse_count(argv[++i], 1, MAX_N, &H.concurrency) < 0)
                return -1;
        } else if (strcmp(argv[i], "--retry") == 0 && i + 1 < argc) {
            if (parse_count(argv[++i], 0, 1000, &H.max_rounds) < 0)
                return -1;
        } else if (strcmp(argv[i], "--source") == 0 && i + 1 < argc) {
            H.has_source = true;
            H.source.sin_family = AF_INET;
            if (inet_pton(AF_INET, argv[++i], &H.source.sin_addr) != 1)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Up to 20,000 sockets: the soft descriptor limit is often 1024, the hard one is what counts. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0) {
        fprintf(stderr, "usage: presenced-bench-holder http://HOST[:PORT] N PREFIX [--anon] "
                        "[--concurrency 200] [--source ADDR] [--retry ROUNDS]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a peer's reset must be an error return, not the end */
    raise_nofile();
    seed_rng();
    H.ep = epoll_create1(EPOLL_CLOEXEC);
    H.conns = calloc((size_t)H.n + 1, sizeof *H.conns);
    if (H.ep < 0 || !H.conns) {
        perror("presenced-bench-holder");
        return 1;
    }
    settle();
    serve();
    return 0;
}
