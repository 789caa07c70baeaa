#include "presenced/io/reuseport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections the kernel queues for accept(): as many as net.core.somaxconn allows (the kernel
 * caps the value), so that a host tuned for a reconnect storm gets the queue it was tuned for;
 * the libc's SOMAXCONN (4096) would cap it below that. */
#define LISTEN_BACKLOG 65535

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

#define MIX_MUL 0x45d9f3bu

uint32_t reuseport_mix(uint32_t x)
{
    x ^= x >> 16;
    x *= MIX_MUL;
    x ^= x >> 16;
    return x;
}

size_t reuseport_prog(uint32_t n, struct sock_filter prog[REUSEPORT_PROG_MAX])
{
    /* Offsets are relative to the IP header (SKF_NET_OFF): for a TCP SYN the program runs with
     * the data pointer past the TCP header, where there is nothing to read. A load outside the
     * packet ends the program with 0, i.e. socket 0: never the case for a real SYN. */
    const uint32_t net = (uint32_t)SKF_NET_OFF;
    size_t i = 0;
#define EMIT(op, jt, jf, k) prog[i++] = (struct sock_filter)BPF_JUMP((op), (k), (jt), (jf))
    EMIT(BPF_LD | BPF_B | BPF_ABS, 0, 0, net + 0);  /* A = first byte: version, IHL */
    EMIT(BPF_ALU | BPF_RSH | BPF_K, 0, 0, 4);       /* A = version */
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 6);       /* IPv6: skip the two IPv4 instructions */
    EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, net + 12); /* IPv4 source address */
    EMIT(BPF_JMP | BPF_JA, 0, 0, 10);               /* to the mix */
    EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, net + 8);  /* IPv6 source address, word 0 */
    EMIT(BPF_MISC | BPF_TAX, 0, 0, 0);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, net + 12); /* word 1 */
    EMIT(BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0);
    EMIT(BPF_MISC | BPF_TAX, 0, 0, 0);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, net + 16); /* word 2 */
    EMIT(BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0);
    EMIT(BPF_MISC | BPF_TAX, 0, 0, 0);
    EMIT(BPF_LD | BPF_W | BPF_ABS, 0, 0, net + 20); /* word 3 */
    EMIT(BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0);
    /* reuseport_mix(A) */
    EMIT(BPF_MISC | BPF_TAX, 0, 0, 0);
    EMIT(BPF_ALU | BPF_RSH | BPF_K, 0, 0, 16);
    EMIT(BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0);
    EMIT(BPF_ALU | BPF_MUL | BPF_K, 0, 0, MIX_MUL);
    EMIT(BPF_MISC | BPF_TAX, 0, 0, 0);
    EMIT(BPF_ALU | BPF_RSH | BPF_K, 0, 0, 16);
    EMIT(BPF_ALU | BPF_XOR | BPF_X, 0, 0, 0);
    EMIT(BPF_ALU | BPF_MOD | BPF_K, 0, 0, n ? n : 1);
    EMIT(BPF_RET | BPF_A, 0, 0, 0);
#undef EMIT
    return i;
}

static void errf(char *err, size_t len, const char *what, const char *host, uint16_t port)
{
    if (err && len)
        snprintf(err, len, "%s %s port %u: %s", what, host, port, strerror(errno));
}

/* Bind a plain socket (SO_REUSEADDR only) to the address and drop it again: a socket already
 * listening there, ours from an earlier start or anyone else's, makes this fail with EADDRINUSE.
 * Without the check a second presenced with the same uid would silently join the group. */
static int probe_free(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    int rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rc == 0)
        rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int reuseport_listen(const char *host, uint16_t port, uint32_t n, int *fds, char *err,
                     size_t errlen)
{
    if (n < 1 || n > REUSEPORT_MAX) {
        errno = EINVAL;
        errf(err, errlen, "cannot share", host, port);
        return -1;
    }
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0 || !ai) {
        if (err && errlen)
            snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    uint32_t made = 0;
    int rc = -1;
    if (probe_free(ai) < 0) {
        errf(err, errlen, "cannot listen on", host, port);
        goto out;
    }
    for (; made < n; made++) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            errf(err, errlen, "cannot create a socket for", host, port);
            goto out;
        }
        int one = 1;
        /* Members join the group, and get their index, in the order they listen. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
            errf(err, errlen, "cannot listen on", host, port);
            int saved = errno;
            close(fd);
            errno = saved;
            goto out;
        }
        fds[made] = fd;
    }
    struct sock_filter prog[REUSEPORT_PROG_MAX];
    struct sock_fprog fprog = {.len = (unsigned short)reuseport_prog(n, prog), .filter = prog};
    /* The program belongs to the group: attaching it through one member is enough. */
    if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) < 0) {
        errf(err, errlen, "cannot attach the steering program to", host, port);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        while (made > 0)
            close(fds[--made]);
    freeaddrinfo(ai);
    return rc;
}
