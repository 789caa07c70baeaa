/* Unit tests for reuseport: the steering program, run through a small classic BPF interpreter on
 * IPv4 and IPv6 headers, then in the kernel: a real SO_REUSEPORT group on a loopback port, clients
 * bound to 127.0.0.x source addresses, and every connection must land on the listener that the
 * program names for its source address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "presenced/io/reuseport.h"

/* --- a classic BPF interpreter for the instructions the program may use --- */

/* Runs `prog` over a packet whose network header is `net` (`len` bytes), as the kernel does for
 * loads at SKF_NET_OFF + k. Returns the program's result, or 0 when a load is out of bounds (as
 * the kernel does). Fails the test on an instruction it does not know or a jump out of the
 * program. */
static uint32_t cbpf_run(const struct sock_filter *prog, size_t n, const uint8_t *net, size_t len)
{
    uint32_t a = 0, x = 0;
    for (size_t pc = 0; pc < n; pc++) {
        const struct sock_filter *f = &prog[pc];
        uint32_t off;
        switch (f->code) {
        case BPF_LD | BPF_B | BPF_ABS:
        case BPF_LD | BPF_W | BPF_ABS: {
            size_t size = BPF_SIZE(f->code) == BPF_B ? 1 : 4;
            /* Only network-relative loads: the data pointer of a SYN is past the TCP header. */
            assert_true(f->k >= (uint32_t)SKF_NET_OFF);
            off = f->k - (uint32_t)SKF_NET_OFF;
            if (off + size > len)
                return 0;
            a = size == 1 ? net[off]
                          : (uint32_t)net[off] << 24 | (uint32_t)net[off + 1] << 16 |
                                (uint32_t)net[off + 2] << 8 | net[off + 3];
            break;
        }
        case BPF_ALU | BPF_RSH | BPF_K:
            a >>= f->k;
            break;
        case BPF_ALU | BPF_XOR | BPF_X:
            a ^= x;
            break;
        case BPF_ALU | BPF_MUL | BPF_K:
            a *= f->k;
            break;
        case BPF_ALU | BPF_MOD | BPF_K:
            assert_true(f->k != 0);
            a %= f->k;
            break;
        case BPF_MISC | BPF_TAX:
            x = a;
            break;
        case BPF_JMP | BPF_JA:
            pc += f->k;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            pc += a == f->k ? f->jt : f->jf;
            break;
        case BPF_RET | BPF_A:
            return a;
        default:
            fail_msg("instruction %zu: unexpected code 0x%x", pc, f->code);
        }
        assert_true(pc + 1 <= n);
    }
    fail_msg("the program ran off its end");
    return 0;
}

static void ipv4_header(uint8_t h[20], uint32_t src)
{
    memset(h, 0, 20);
    h[0] = 0x45;
    h[9] = IPPROTO_TCP;
    uint32_t be = htonl(src);
    memcpy(h + 12, &be, 4);
    h[16] = 127, h[19] = 1;
}

static void ipv6_header(uint8_t h[40], const uint8_t src[16])
{
    memset(h, 0, 40);
    h[0] = 0x60;
    h[6] = IPPROTO_TCP;
    memcpy(h + 8, src, 16);
    h[39] = 1;
}

static uint32_t word(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The index the program should return for an IPv4 source (host order), per the contract. */
static uint32_t want_v4(uint32_t src, uint32_t n)
{
    return reuseport_mix(src) % n;
}

static void test_prog_shape(void **state)
{
    (void)state;
    struct sock_filter prog[REUSEPORT_PROG_MAX];
    for (uint32_t n = 1; n <= REUSEPORT_MAX; n++) {
        size_t len = reuseport_prog(n, prog);
        assert_true(len > 0 && len <= REUSEPORT_PROG_MAX);
        assert_int_equal(prog[len - 1].code, BPF_RET | BPF_A);
        assert_int_equal(prog[len - 2].code, BPF_ALU | BPF_MOD | BPF_K);
        assert_int_equal(prog[len - 2].k, n);
    }
}

static void test_prog_ipv4(void **state)
{
    (void)state;
    struct sock_filter prog[REUSEPORT_PROG_MAX];
    uint8_t h[20];
    for (uint32_t n = 1; n <= 8; n++) {
        size_t len = reuseport_prog(n, prog);
        uint32_t seen[8] = {0};
        for (uint32_t host = 2; host < 258; host++) {
            uint32_t src = 0x7f000000u | host; /* 127.0.0.host */
            ipv4_header(h, src);
            uint32_t got = cbpf_run(prog, len, h, sizeof(h));
            assert_int_equal(got, want_v4(src, n));
            assert_true(got < n);
            seen[got]++;
        }
        /* 256 consecutive addresses reach every socket, none with more than twice its share. */
        for (uint32_t i = 0; i < n; i++) {
            assert_true(seen[i] > 0);
            assert_true(seen[i] <= 2 * 256 / n);
        }
    }
    /* Ports, TTL, the destination: nothing but the source address matters. */
    size_t len = reuseport_prog(5, prog);
    ipv4_header(h, 0x0a000001u);
    uint32_t first = cbpf_run(prog, len, h, sizeof(h));
    h[8] = 3, h[16] = 10, h[19] = 99;
    assert_int_equal(cbpf_run(prog, len, h, sizeof(h)), first);
}

static void test_prog_ipv6(void **state)
{
    (void)state;
    struct sock_filter prog[REUSEPORT_PROG_MAX];
    size_t len = reuseport_prog(3, prog);
    uint8_t h[40], src[16];
    uint32_t seen[3] = {0};
    for (unsigned i = 0; i < 300; i++) {
        memset(src, 0, sizeof(src));
        src[0] = 0x20, src[1] = 0x01, src[2] = 0x0d, src[3] = 0xb8;
        src[14] = (uint8_t)(i >> 8), src[15] = (uint8_t)i;
        ipv6_header(h, src);
        uint32_t folded = word(src) ^ word(src + 4) ^ word(src + 8) ^ word(src + 12);
        uint32_t got = cbpf_run(prog, len, h, sizeof(h));
        assert_int_equal(got, reuseport_mix(folded) % 3);
        seen[got]++;
    }
    for (unsigned i = 0; i < 3; i++)
        assert_true(seen[i] > 50);
    /* A truncated header reads out of bounds: the kernel's answer is 0, and so is ours. */
    assert_int_equal(cbpf_run(prog, len, h, 20), 0);
}

/* --- the kernel --- */

/* A port below the ephemeral range that a group can take, or fail the test. */
static uint16_t group_on_free_port(const char *host, uint32_t n, int *fds)
{
    char err[256];
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int tries = 0; tries < 50; tries++) {
        uint16_t port = (uint16_t)(20000 + rand() % 12000);
        if (reuseport_listen(host, port, n, fds, err, sizeof(err)) == 0)
            return port;
    }
    fail_msg("no free port for a reuseport group: %s", err);
    return 0;
}

/* Connect from `src` (an IPv4 or IPv6 literal) to dst:port; returns the connected socket. */
static int connect_from(const char *src, const char *dst, uint16_t port)
{
    struct sockaddr_storage from = {0}, to = {0};
    socklen_t len;
    int family = strchr(dst, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET) {
        struct sockaddr_in *f = (struct sockaddr_in *)&from, *t = (struct sockaddr_in *)&to;
        f->sin_family = t->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, src, &f->sin_addr), 1);
        assert_int_equal(inet_pton(AF_INET, dst, &t->sin_addr), 1);
        t->sin_port = htons(port);
        len = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *f = (struct sockaddr_in6 *)&from, *t = (struct sockaddr_in6 *)&to;
        f->sin6_family = t->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, src, &f->sin6_addr), 1);
        assert_int_equal(inet_pton(AF_INET6, dst, &t->sin6_addr), 1);
        t->sin6_port = htons(port);
        len = sizeof(struct sockaddr_in6);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (bind(fd, (struct sockaddr *)&from, len) < 0)
        fail_msg("bind %s: %s", src, strerror(errno));
    if (connect(fd, (struct sockaddr *)&to, len) < 0)
        fail_msg("connect from %s: %s", src, strerror(errno));
    return fd;
}

/* Accept one pending connection on any of the listeners (waiting up to 2 s); returns the index of
 * the listener and writes the peer's address as text (IPv4-mapped shown as IPv4). */
static int accept_any(const int *fds, uint32_t n, char peer[INET6_ADDRSTRLEN])
{
    struct pollfd p[REUSEPORT_MAX];
    for (uint32_t i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    assert_true(poll(p, n, 2000) > 0);
    for (uint32_t i = 0; i < n; i++) {
        if (!(p[i].revents & POLLIN))
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int c = accept(fds[i], (struct sockaddr *)&ss, &sl);
        if (c < 0)
            continue;
        close(c);
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, INET6_ADDRSTRLEN);
        } else {
            const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
            if (IN6_IS_ADDR_V4MAPPED(a))
                inet_ntop(AF_INET, &a->s6_addr[12], peer, INET6_ADDRSTRLEN);
            else
                inet_ntop(AF_INET6, a, peer, INET6_ADDRSTRLEN);
        }
        return (int)i;
    }
    fail_msg("no listener had a connection");
    return -1;
}

/* Clients from 127.0.0.2 .. 127.0.0.(1 + nsrc), each connecting `rounds` times, against a group
 * of `n` on `listen_host`: each lands on listener want_v4(source) % n, so all connections of one
 * address share a listener, and every listener gets some. */
static void check_group(const char *listen_host, const char *dst, uint32_t n)
{
    int fds[REUSEPORT_MAX];
    uint16_t port = group_on_free_port(listen_host, n, fds);
    uint32_t per[REUSEPORT_MAX] = {0};
    const unsigned nsrc = 24, rounds = 3;
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned s = 0; s < nsrc; s++) {
            char src[INET6_ADDRSTRLEN], peer[INET6_ADDRSTRLEN];
            snprintf(src, sizeof(src), "127.0.0.%u", 2 + s);
            int c = connect_from(src, dst, port);
            int got = accept_any(fds, n, peer);
            close(c);
            assert_string_equal(peer, src);
            uint32_t want = want_v4(0x7f000000u | (2 + s), n);
            if ((uint32_t)got != want)
                fail_msg("%s (round %u) landed on listener %d, the program says %u", src, r, got,
                         want);
            per[got]++;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        if (per[i] == 0)
            fail_msg("listener %u of %u got no connection", i, n);
    for (uint32_t i = 0; i < n; i++)
        close(fds[i]);
}

static void test_kernel_ipv4_two(void **state)
{
    (void)state;
    check_group("127.0.0.1", "127.0.0.1", 2);
}

static void test_kernel_ipv4_three(void **state)
{
    (void)state;
    check_group("127.0.0.1", "127.0.0.1", 3);
}

/* listen = [::]:port takes IPv4 clients too (as IPv4-mapped addresses); their SYNs carry an IPv4
 * header, and the program steers them as on an IPv4 listener. */
static void test_kernel_dual_stack(void **state)
{
    (void)state;
    check_group("::", "127.0.0.1", 2);
}

/* An IPv6 client (::1, the only IPv6 loopback address) lands where the IPv6 branch says. */
static void test_kernel_ipv6(void **state)
{
    (void)state;
    int fds[REUSEPORT_MAX];
    const uint32_t n = 2;
    uint16_t port = group_on_free_port("::1", n, fds);
    uint8_t one[16] = {0};
    one[15] = 1;
    uint32_t want = reuseport_mix(word(one) ^ word(one + 4) ^ word(one + 8) ^ word(one + 12)) % n;
    for (int r = 0; r < 4; r++) {
        char peer[INET6_ADDRSTRLEN];
        int c = connect_from("::1", "::1", port);
        int got = accept_any(fds, n, peer);
        close(c);
        assert_string_equal(peer, "::1");
        assert_int_equal(got, want);
    }
    for (uint32_t i = 0; i < n; i++)
        close(fds[i]);
}

/* A port someone listens on is refused, rather than joined: a second presenced started by the
 * same user on the same port must fail like a single instance does. */
static void test_busy_port(void **state)
{
    (void)state;
    int fds[2], more[2];
    char err[256];
    uint16_t port = group_on_free_port("127.0.0.1", 2, fds);
    assert_int_equal(reuseport_listen("127.0.0.1", port, 2, more, err, sizeof(err)), -1);
    if (!strstr(err, "in use"))
        fail_msg("unexpected error: %s", err);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(reuseport_listen("127.0.0.1", port, 0, more, err, sizeof(err)), -1);
    assert_int_equal(reuseport_listen("no such host.invalid", port, 1, more, err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prog_shape),        cmocka_unit_test(test_prog_ipv4),
        cmocka_unit_test(test_prog_ipv6),         cmocka_unit_test(test_kernel_ipv4_two),
        cmocka_unit_test(test_kernel_ipv4_three), cmocka_unit_test(test_kernel_dual_stack),
        cmocka_unit_test(test_kernel_ipv6),       cmocka_unit_test(test_busy_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
