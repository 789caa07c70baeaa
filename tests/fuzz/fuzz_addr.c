/* Fuzz the address parsers with arbitrary text as a Redis URL (each form) and as HOST:PORT: no
 * crash, no leak, and what is accepted satisfies the contract (NUL-terminated parts, a TCP address
 * with a host and a port or a unix address with an absolute path, sentinels or seed nodes with a
 * host and a port each, a reason for every refusal). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;

    addr_redis a;
    char why[128] = "";
    if (addr_redis_parse(s, &a, why, sizeof(why)) == 0) {
        FUZZ_CHECK(memchr(a.host, 0, sizeof(a.host)) && memchr(a.path, 0, sizeof(a.path)));
        FUZZ_CHECK(memchr(a.password, 0, sizeof(a.password)));
        if (a.path[0])
            FUZZ_CHECK(a.path[0] == '/' && !a.host[0] && a.port == 0);
        else
            FUZZ_CHECK(a.host[0] && a.port > 0);
        FUZZ_CHECK(a.db >= -1);
    } else {
        FUZZ_CHECK(why[0] != 0);
    }

    addr_redis_url u;
    why[0] = 0;
    if (addr_redis_url_parse(s, &u, why, sizeof(why)) == 0) {
        FUZZ_CHECK(u.nnodes <= ADDR_REDIS_NODES_MAX);
        FUZZ_CHECK((u.mode == ADDR_REDIS_DIRECT) == (u.nnodes == 0));
        for (size_t i = 0; i < u.nnodes; i++)
            FUZZ_CHECK(u.nodes[i].host[0] && u.nodes[i].port > 0 &&
                       memchr(u.nodes[i].host, 0, sizeof(u.nodes[i].host)));
        FUZZ_CHECK((u.mode == ADDR_REDIS_SENTINEL) == (u.master[0] != 0));
        FUZZ_CHECK(memchr(u.master, 0, sizeof(u.master)) && u.data.db >= -1);
    } else {
        FUZZ_CHECK(why[0] != 0);
    }

    char host[64];
    uint16_t port;
    why[0] = 0;
    if (addr_hostport_parse(s, host, sizeof(host), &port, size & 1, why, sizeof(why)) == 0)
        FUZZ_CHECK(host[0] && strlen(host) < sizeof(host) && (port > 0 || (size & 1)));
    else
        FUZZ_CHECK(why[0] != 0);
    free(s);
    return 0;
}
