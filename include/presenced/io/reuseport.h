/* reuseport — one listening port shared by several processes (SO_REUSEPORT), with each new TCP
 * connection steered in the kernel by the client's address, so that every connection of one
 * client reaches the same process (Engine.IO long-polling needs that: the requests of a session
 * arrive on different TCP connections).
 *
 * A group of n listening sockets is created in one process, in index order, and a classic BPF
 * program (SO_ATTACH_REUSEPORT_CBPF) picks the group member for each SYN:
 * mix(source address) % n. Socket i then goes to worker process i.
 */
#ifndef PRESENCED_REUSEPORT_H
#define PRESENCED_REUSEPORT_H

#include <stddef.h>
#include <stdint.h>

#include <linux/filter.h>

/* Instructions in the steering program, at most. */
#define REUSEPORT_PROG_MAX 32
/* Sockets in one group, at most (the `workers` key allows 1..64). */
#define REUSEPORT_MAX 64

/* Write the steering program for a group of `n` sockets (1..REUSEPORT_MAX) into `prog` and return
 * its length. The program reads the IP header through SKF_NET_OFF (for TCP it runs on the SYN,
 * which has no payload): IPv4 source address (header offset 12), or for IPv6 the xor of the four
 * words of the source address (offset 8..23); the version nibble of the first byte decides, so an
 * IPv6 listener that also takes IPv4 connections steers both. It returns
 * reuseport_mix(word) % n. Pure: no I/O. */
size_t reuseport_prog(uint32_t n, struct sock_filter prog[REUSEPORT_PROG_MAX]);

/* The mixing step of the program, in C (addresses that differ in a few bits spread evenly):
 * x ^= x >> 16; x *= 0x45d9f3b; x ^= x >> 16. `word` is the address word as the program loads
 * it, i.e. in host order of the big-endian bytes. */
uint32_t reuseport_mix(uint32_t word);

/* Create `n` listening TCP sockets (1..REUSEPORT_MAX) bound to host:port with SO_REUSEPORT, in
 * one group, listening in index order, and attach reuseport_prog(n) to the group. `host` is an
 * IPv4 or IPv6 literal or a name (the first address it resolves to is used); an IPv6 socket also
 * accepts IPv4 unless the system says otherwise (net.ipv6.bindv6only). The sockets are
 * non-blocking and close-on-exec; the caller owns them (fds[0..n-1]). Returns 0, or -1 with a
 * reason in `err` (nothing left open). */
int reuseport_listen(const char *host, uint16_t port, uint32_t n, int *fds, char *err,
                     size_t errlen);

#endif
