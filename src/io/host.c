/* host — clocks and randomness (see presenced/io/host.h). */
#include "presenced/io/host.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

int64_t host_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t host_wall_s(void)
{
    return (int64_t)time(NULL);
}

uint64_t host_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* getrandom() only fails before the kernel's pool is initialised or on EINTR: retry the latter.
 * Returns 0 or -1. */
static int fill_random(void *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom((char *)out + got, len - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            return -1;
    }
    return 0;
}

uint64_t host_seed(void)
{
    uint64_t seed = 0;
    if (fill_random(&seed, sizeof(seed)) < 0)
        seed = (uint64_t)host_wall_ms() ^ host_mono_ms() << 20 ^ (uint64_t)(uintptr_t)&seed;
    return seed;
}

void host_random_id(char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[64];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(raw) ? len - done : sizeof(raw);
        if (fill_random(raw, n) < 0)
            abort();
        for (size_t i = 0; i < n; i++)
            out[done + i] = alphabet[raw[i] & 63];
        done += n;
    }
    out[len] = 0;
}
