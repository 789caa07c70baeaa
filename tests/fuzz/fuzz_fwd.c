/* Fuzz who-the-client-is: arbitrary bytes as a PROXY protocol header, as X-Forwarded-For and
 * Forwarded values, as X-Forwarded-Proto and as a trusted_proxies list. No crash, no read past
 * the input, and what is accepted satisfies the contract: a decoded header's length is within
 * the input and the limit, and decoding is prefix-stable (a header decodes the same with any
 * bytes after it); the client found is the peer or an address that appeared in the headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/fwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The header as a stream's first bytes (copied, so that reads past `size` are caught). */
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data, size);
    fwd_proxy p, q;
    int n = fwd_proxy_decode(bytes, size, &p);
    FUZZ_CHECK(n == FWD_NEED_MORE || n == FWD_INVALID || (n > 0 && (size_t)n <= size));
    if (n > 0) {
        FUZZ_CHECK(n <= FWD_PROXY_MAX);
        FUZZ_CHECK(fwd_proxy_decode(bytes, (size_t)n, &q) == n);
        FUZZ_CHECK(q.has_addr == p.has_addr &&
                   (!p.has_addr || memcmp(&q.src, &p.src, sizeof(p.src)) == 0));
        FUZZ_CHECK(!p.has_addr || p.src.family == 4 || p.src.family == 6);
    }
    free(bytes);

    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    fwd_cidrs trusted;
    if (fwd_cidrs_parse(s, &trusted) == FWD_OK)
        FUZZ_CHECK(trusted.n <= FWD_CIDRS_MAX);
    fwd_cidrs_parse("127.0.0.0/8, 10.0.0.0/8, ::1", &trusted);
    fwd_addr peer, client;
    fwd_addr_parse("127.0.0.1", 9, &peer);
    bool moved = fwd_client(&peer, &trusted, NULL, s, &client);
    FUZZ_CHECK(moved == (memcmp(&client, &peer, sizeof(peer)) != 0));
    FUZZ_CHECK(client.family == 4 || client.family == 6);
    (void)fwd_client(&peer, &trusted, s, NULL, &client);
    const char *proto = fwd_proto(s, s);
    FUZZ_CHECK(!proto || strcmp(proto, "http") == 0 || strcmp(proto, "https") == 0);
    char text[FWD_ADDR_TEXT];
    fwd_addr a;
    if (fwd_addr_parse(s, size, &a) == FWD_OK)
        fwd_addr_text(&a, text);
    free(s);
    return 0;
}
