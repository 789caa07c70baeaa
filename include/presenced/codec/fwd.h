/* fwd — who the client is behind proxies: trusted proxy address ranges (CIDR lists), the
 * X-Forwarded-For and Forwarded (RFC 7239) request headers, and the PROXY protocol header
 * (versions 1 and 2) that load balancers put in front of a TCP stream.
 *
 * The client of a request is the rightmost address of the forwarding chain that is not a trusted
 * proxy: every trusted proxy appends the address it received the request from, so what is right
 * of the first untrusted hop was written by trusted proxies, and what is left of it may be made
 * up by the client.
 *
 * Pure code: no I/O, no globals. Addresses are compared in binary; an IPv4-mapped IPv6 address
 * is its IPv4 address.
 */
#ifndef PRESENCED_FWD_H
#define PRESENCED_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    FWD_OK = 0,
    FWD_INVALID = -1,   /* malformed */
    FWD_NEED_MORE = -2, /* fwd_proxy_decode: the header is not complete yet */
    FWD_TOO_MANY = -3,  /* more ranges than FWD_CIDRS_MAX */
};

#define FWD_ADDR_TEXT 46 /* INET6_ADDRSTRLEN */
#define FWD_CIDRS_MAX 64
/* PROXY protocol: v1 header at most 107 bytes; v2 header with TLVs up to this many bytes. */
#define FWD_PROXY_MAX 1024

typedef struct fwd_addr {
    uint8_t family; /* 4 or 6; 0: none */
    uint8_t bytes[16];
} fwd_addr;

typedef struct fwd_cidr {
    fwd_addr net;
    uint8_t prefix;
} fwd_cidr;

typedef struct fwd_cidrs {
    fwd_cidr v[FWD_CIDRS_MAX];
    size_t n;
} fwd_cidrs;

/* An address in text: IPv4 dotted quad or IPv6 (no brackets, no port). FWD_OK or FWD_INVALID. */
int fwd_addr_parse(const char *s, size_t len, fwd_addr *out);
/* The canonical text of an address (IPv4-mapped IPv6 as IPv4) into out[FWD_ADDR_TEXT]. */
void fwd_addr_text(const fwd_addr *a, char out[FWD_ADDR_TEXT]);

/* A comma-separated list of ranges: "10.0.0.0/8, 192.168.1.7, ::1/128" (an address alone is a
 * single host). FWD_OK, FWD_INVALID or FWD_TOO_MANY; `out` is filled on FWD_OK. */
int fwd_cidrs_parse(const char *list, fwd_cidrs *out);
bool fwd_cidrs_match(const fwd_cidrs *l, const fwd_addr *a);

/* The client of a request that arrived from `peer` (the TCP peer, or what the PROXY protocol
 * said): when `peer` is trusted, the rightmost untrusted hop of `forwarded` (a Forwarded
 * header's for= values) if it is non-empty, else of `xff` (X-Forwarded-For). Either may be NULL
 * or hold several comma-joined header lines. A hop that cannot be read (for=unknown, an
 * obfuscated identifier, garbage) ends the walk at the last address read. `*client` is always
 * set; returns true when it differs from `peer`. */
bool fwd_client(const fwd_addr *peer, const fwd_cidrs *trusted, const char *forwarded,
                const char *xff, fwd_addr *client);

/* The scheme a trusted proxy received the request on: the last proto= of `forwarded`, else
 * the last value of `xfproto` (X-Forwarded-Proto). "http", "https", or NULL when neither says. */
const char *fwd_proto(const char *forwarded, const char *xfproto);

/* What a PROXY protocol header says. */
typedef struct fwd_proxy {
    bool has_addr; /* false: a LOCAL (v2) or UNKNOWN (v1) connection: keep the TCP peer */
    fwd_addr src;
} fwd_proxy;

/* Decode a PROXY protocol header at the start of `p` (version 1 text or version 2 binary).
 * Returns the header's length in bytes (the stream's own bytes follow it), FWD_NEED_MORE while
 * `n` bytes could still be the start of a valid header, or FWD_INVALID. */
int fwd_proxy_decode(const uint8_t *p, size_t n, fwd_proxy *out);

#endif
