/* Tests of the fault-injection proxy itself (fault_proxy.h): the fault tests rely on it obeying
 * every mode change whatever its connections are doing, and on it delivering what a client sent.
 *
 * A client that sends before the proxy's own connection to the upstream is established (a busy
 * host runs the connect's completion on a later turn than the client's bytes): those bytes wait
 * for the connect, and meanwhile the proxy still answers. The upstream here is a listener whose
 * accept queue is full, so that the proxy's connect stays pending (the kernel drops its SYN and
 * retries it a second later).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "fault_proxy.h"

#define MAX_FILLERS 64

static int listen_full(int *port, int *fillers, int *nfill)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    /* Connect until one connect does not complete: the accept queue is full. */
    *nfill = 0;
    for (;;) {
        assert_true(*nfill < MAX_FILLERS);
        int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        fillers[(*nfill)++] = f;
        int rc = connect(f, (struct sockaddr *)&a, sizeof(a));
        assert_true(rc == 0 || errno == EINPROGRESS);
        struct pollfd p = {.fd = f, .events = POLLOUT};
        if (rc != 0 && poll(&p, 1, 300) == 0)
            return l;
    }
}

typedef struct setter {
    fault_proxy *fp;
    volatile bool done;
} setter;

static void set_pass(void *arg)
{
    setter *s = arg;
    fault_proxy_set(s->fp, FAULT_STALL, 0);
    fault_proxy_set(s->fp, FAULT_PASS, 0);
    s->done = true;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads from every socket the listener accepts until one has delivered `want`. */
static bool upstream_receives(int l, const char *want, int ms)
{
    int conns[MAX_FILLERS + 2], n = 0;
    char got[MAX_FILLERS + 2][64] = {{0}};
    size_t have[MAX_FILLERS + 2] = {0};
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end) {
        struct pollfd p[MAX_FILLERS + 3];
        p[0] = (struct pollfd){.fd = l, .events = POLLIN};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){.fd = conns[i], .events = POLLIN};
        if (poll(p, (nfds_t)n + 1, 100) <= 0)
            continue;
        if ((p[0].revents & POLLIN) && n < MAX_FILLERS + 2)
            conns[n++] = accept(l, NULL, NULL);
        for (int i = 0; i < n; i++) {
            if (!(p[i + 1].revents & POLLIN) || have[i] >= sizeof(got[i]) - 1)
                continue;
            ssize_t r = read(conns[i], got[i] + have[i], sizeof(got[i]) - 1 - have[i]);
            if (r > 0)
                have[i] += (size_t)r;
            if (strstr(got[i], want)) {
                for (int j = 0; j < n; j++)
                    close(conns[j]);
                return true;
            }
        }
    }
    for (int j = 0; j < n; j++)
        close(conns[j]);
    return false;
}

static void obeys_while_its_upstream_connects(void **state)
{
    (void)state;
    int port, fillers[MAX_FILLERS], nfill;
    int l = listen_full(&port, fillers, &nfill);
    fault_proxy *fp = fault_proxy_start("127.0.0.1", port, 0);
    assert_non_null(fp);

    /* A client that speaks at once, as a Redis client sends its handshake. */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)fault_proxy_port(fp)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(c, "PING\r\n", 6), 6);
    usleep(200 * 1000); /* the proxy has read the bytes while its own connect is pending */

    /* Mode changes are applied on the proxy's loop: they come back only if it still turns. */
    setter s = {.fp = fp};
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, set_pass, &s), 0);
    uint64_t end = now_ms() + 3000;
    while (!s.done && now_ms() < end)
        usleep(10 * 1000);
    if (!s.done)
        fail_msg("the proxy did not apply a mode change within 3 s: its loop no longer turns");
    uv_thread_join(&t);

    /* Once the upstream accepts (the kernel retries the SYN), the bytes reach it. */
    assert_true(upstream_receives(l, "PING\r\n", 8000));

    close(c);
    fault_proxy_stop(fp);
    for (int i = 0; i < nfill; i++)
        close(fillers[i]);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(obeys_while_its_upstream_connects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
