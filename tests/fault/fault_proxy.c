/* fault_proxy — see fault_proxy.h.
 *
 * Each accepted connection is a pair of sides (the client, and the upstream connection to
 * Redis). Bytes read on one side are queued for the other with a due time: now in pass mode,
 * now + delay in delay mode, never while stalled. A per-pair timer writes what is due. When a
 * side closes, what the other side still has queued for it is dropped, but what it sent is still
 * delivered (then the other side is closed too).
 */
#include "fault_proxy.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define HELD UINT64_MAX

typedef struct chunk {
    struct chunk *next;
    uint64_t due; /* loop time, or HELD */
    size_t len;
    char data[];
} chunk;

typedef struct side side;
typedef struct pair pair;

struct side {
    uv_tcp_t tcp;
    pair *p;
    chunk *head, *tail; /* queued to be written to this side */
    bool open, eof;
};

struct pair {
    fault_proxy *fp;
    side client, up;
    uv_connect_t connect;
    uv_timer_t timer;
    int handles;
    bool closing;
    pair *next;
};

struct fault_proxy {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_tcp_t server;
    uv_async_t wake;
    uv_mutex_t lock;
    fault_mode mode, want_mode; /* want_*: set by the test thread, applied on the loop */
    uint32_t delay_ms, want_delay;
    bool stop;
    unsigned asked, applied; /* mode changes asked for and applied, so that set() can wait */
    struct sockaddr_in target;
    int port;
    unsigned accepted;
    pair *pairs;
};

static void pair_close(pair *p);
static void pair_flush(pair *p);

static void on_timer(uv_timer_t *t)
{
    pair_flush(t->data);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(size);
    buf->len = buf->base ? size : 0;
}

/* When bytes going to `to` may leave. */
static uint64_t due_now(fault_proxy *fp, const side *to)
{
    uint64_t now = uv_now(&fp->loop);
    switch (fp->mode) {
    case FAULT_STALL:
        return HELD;
    case FAULT_HOLD_REPLIES:
        return to == &to->p->client ? HELD : now;
    case FAULT_DELAY:
        return now + fp->delay_ms;
    default:
        return now;
    }
}

static void queue_to(side *to, const char *data, size_t len, uint64_t due)
{
    chunk *c = malloc(sizeof(*c) + len);
    if (!c)
        abort();
    c->next = NULL;
    c->due = due;
    c->len = len;
    memcpy(c->data, data, len);
    if (to->tail)
        to->tail->next = c;
    else
        to->head = c;
    to->tail = c;
}

static void drop_queue(side *s)
{
    while (s->head) {
        chunk *c = s->head;
        s->head = c->next;
        free(c);
    }
    s->tail = NULL;
}

static side *other(side *s)
{
    return s == &s->p->client ? &s->p->up : &s->p->client;
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    side *s = stream->data;
    pair *p = s->p;
    /* Nothing can reach a side that is gone. */
    if (n > 0 && !p->closing && !other(s)->eof)
        queue_to(other(s), buf->base, (size_t)n, due_now(p->fp, other(s)));
    free(buf->base);
    if (n < 0) {
        /* This side is gone: nothing more can be written to it, but what it sent still goes. */
        s->eof = true;
        drop_queue(s);
        uv_read_stop(stream);
    }
    pair_flush(p);
}

typedef struct wreq {
    uv_write_t req;
    chunk *c;
} wreq;

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    wreq *w = (wreq *)req;
    free(w->c);
    free(w);
}

/* Write what is due on each side; close the pair once a side is gone and the other has nothing
 * left to receive from it. */
static void pair_flush(pair *p)
{
    if (p->closing)
        return;
    uint64_t now = uv_now(&p->fp->loop), next = HELD;
    side *sides[2] = {&p->client, &p->up};
    for (int i = 0; i < 2; i++) {
        side *s = sides[i];
        while (s->open && !s->eof && s->head && s->head->due <= now) {
            chunk *c = s->head;
            s->head = c->next;
            if (!s->head)
                s->tail = NULL;
            wreq *w = malloc(sizeof(*w));
            if (!w)
                abort();
            w->c = c;
            uv_buf_t b = uv_buf_init(c->data, (unsigned)c->len);
            if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
                free(c);
                free(w);
            }
        }
        /* Only a side that can be written sets the timer: what waits for a connection waits
         * for its callback. Timing it at once would spin (libuv 1.44 re-runs a timer re-armed
         * with 0 within one pass) and the loop would never poll for that connection again. */
        if (s->open && !s->eof && s->head && s->head->due < next)
            next = s->head->due;
    }
    bool gone = p->client.eof || p->up.eof;
    bool pending = (!p->client.eof && p->client.head) || (!p->up.eof && p->up.head);
    if (gone && !pending) {
        pair_close(p);
        return;
    }
    uv_timer_stop(&p->timer);
    if (next != HELD)
        uv_timer_start(&p->timer, on_timer, next > now ? next - now : 0, 0);
}

/* Close callback of the three handles of a pair: the timer's data is the pair, a socket's its
 * side. */
static void pair_freed(uv_handle_t *h)
{
    pair *p = h->type == UV_TIMER ? h->data : ((side *)h->data)->p;
    if (--p->handles > 0)
        return;
    fault_proxy *fp = p->fp;
    for (pair **pp = &fp->pairs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    drop_queue(&p->client);
    drop_queue(&p->up);
    free(p);
}

static void pair_close(pair *p)
{
    if (p->closing)
        return;
    p->closing = true;
    uv_close((uv_handle_t *)&p->timer, pair_freed);
    uv_close((uv_handle_t *)&p->client.tcp, pair_freed);
    uv_close((uv_handle_t *)&p->up.tcp, pair_freed);
}

static void on_up_connected(uv_connect_t *req, int status)
{
    pair *p = req->data;
    if (p->closing)
        return;
    if (status < 0) {
        pair_close(p);
        return;
    }
    p->up.open = true;
    uv_read_start((uv_stream_t *)&p->up.tcp, on_alloc, on_read);
    pair_flush(p);
}

static void on_accept(uv_stream_t *server, int status)
{
    fault_proxy *fp = server->data;
    if (status < 0)
        return;
    pair *p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    p->fp = fp;
    p->client.p = p->up.p = p;
    p->client.tcp.data = &p->client;
    p->up.tcp.data = &p->up;
    uv_tcp_init(&fp->loop, &p->client.tcp);
    uv_tcp_init(&fp->loop, &p->up.tcp);
    uv_timer_init(&fp->loop, &p->timer);
    p->timer.data = p;
    p->handles = 3;
    p->next = fp->pairs;
    fp->pairs = p;
    if (uv_accept(server, (uv_stream_t *)&p->client.tcp) < 0 || fp->mode == FAULT_CUT) {
        pair_close(p);
        return;
    }
    uv_mutex_lock(&fp->lock);
    fp->accepted++;
    uv_mutex_unlock(&fp->lock);
    p->client.open = true;
    uv_read_start((uv_stream_t *)&p->client.tcp, on_alloc, on_read);
    p->connect.data = p;
    if (uv_tcp_connect(&p->connect, &p->up.tcp, (const struct sockaddr *)&fp->target,
                       on_up_connected) < 0)
        pair_close(p);
}

/* ---- the test thread's side ---- */

/* Apply the mode the test asked for: release or re-time what is held, or cut everything. */
static void on_wake(uv_async_t *a)
{
    fault_proxy *fp = a->data;
    uv_mutex_lock(&fp->lock);
    fault_mode mode = fp->want_mode;
    fp->delay_ms = fp->want_delay;
    bool stop = fp->stop;
    unsigned asked = fp->asked;
    uv_mutex_unlock(&fp->lock);
    fp->mode = mode;
    for (pair *p = fp->pairs; p; p = p->next) {
        if (stop || mode == FAULT_CUT) {
            pair_close(p);
            continue;
        }
        side *sides[2] = {&p->client, &p->up};
        for (int i = 0; i < 2; i++) {
            uint64_t due = due_now(fp, sides[i]);
            for (chunk *c = sides[i]->head; c; c = c->next)
                if (c->due == HELD || mode == FAULT_PASS)
                    c->due = due;
        }
        pair_flush(p);
    }
    if (stop) {
        uv_close((uv_handle_t *)&fp->server, NULL);
        uv_close((uv_handle_t *)&fp->wake, NULL);
    }
    uv_mutex_lock(&fp->lock);
    fp->applied = asked;
    uv_mutex_unlock(&fp->lock);
}

static void run(void *arg)
{
    fault_proxy *fp = arg;
    uv_run(&fp->loop, UV_RUN_DEFAULT);
}

fault_proxy *fault_proxy_start(const char *host, int port, int listen_port)
{
    return fault_proxy_start_on(host, port, "127.0.0.1", listen_port);
}

fault_proxy *fault_proxy_start_on(const char *host, int port, const char *listen_host,
                                  int listen_port)
{
    fault_proxy *fp = calloc(1, sizeof(*fp));
    if (!fp || uv_loop_init(&fp->loop) < 0) {
        free(fp);
        return NULL;
    }
    uv_ip4_addr(host, port, &fp->target);
    uv_mutex_init(&fp->lock);
    uv_tcp_init(&fp->loop, &fp->server);
    fp->server.data = fp;
    uv_async_init(&fp->loop, &fp->wake, on_wake);
    fp->wake.data = fp;
    struct sockaddr_in addr;
    if (uv_ip4_addr(listen_host, listen_port, &addr) < 0)
        listen_host = NULL;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    if (!listen_host || uv_tcp_bind(&fp->server, (const struct sockaddr *)&addr, 0) < 0 ||
        uv_listen((uv_stream_t *)&fp->server, 128, on_accept) < 0 ||
        uv_tcp_getsockname(&fp->server, (struct sockaddr *)&bound, &len) < 0) {
        uv_close((uv_handle_t *)&fp->server, NULL);
        uv_close((uv_handle_t *)&fp->wake, NULL);
        uv_run(&fp->loop, UV_RUN_DEFAULT);
        uv_loop_close(&fp->loop);
        free(fp);
        return NULL;
    }
    fp->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (uv_thread_create(&fp->thread, run, fp) < 0)
        abort();
    return fp;
}

int fault_proxy_port(const fault_proxy *fp)
{
    return fp->port;
}

void fault_proxy_set(fault_proxy *fp, fault_mode mode, uint32_t delay_ms)
{
    uv_mutex_lock(&fp->lock);
    fp->want_mode = mode;
    fp->want_delay = delay_ms;
    unsigned ticket = ++fp->asked;
    uv_mutex_unlock(&fp->lock);
    uv_async_send(&fp->wake);
    /* Return once the proxy's thread applies it: bytes sent after this call see the new mode. */
    for (;;) {
        uv_mutex_lock(&fp->lock);
        bool done = fp->applied >= ticket;
        uv_mutex_unlock(&fp->lock);
        if (done)
            return;
        uv_sleep(1);
    }
}

unsigned fault_proxy_accepted(fault_proxy *fp)
{
    uv_mutex_lock(&fp->lock);
    unsigned n = fp->accepted;
    uv_mutex_unlock(&fp->lock);
    return n;
}

void fault_proxy_stop(fault_proxy *fp)
{
    if (!fp)
        return;
    uv_mutex_lock(&fp->lock);
    fp->stop = true;
    uv_mutex_unlock(&fp->lock);
    uv_async_send(&fp->wake);
    uv_thread_join(&fp->thread);
    uv_loop_close(&fp->loop);
    uv_mutex_destroy(&fp->lock);
    free(fp);
}
