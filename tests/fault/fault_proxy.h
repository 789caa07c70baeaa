/* fault_proxy — a small TCP proxy for fault-injection tests: it sits between a presenced
 * instance (or a store under test) and Redis, and a test can make it
 *   - pass:  forward bytes both ways as they come (and release whatever was held);
 *   - stall: keep the connections open but hold every byte (a Redis, or a network, that stops
 *            answering without closing anything); bytes a client sent before it gave up on its
 *            connection still reach Redis when the stall ends, as they would from a kernel buffer;
 *   - hold_replies: forward what clients send but hold what Redis answers (commands run, their
 *            replies are lost if the client gives up first);
 *   - delay: forward each chunk after `ms` milliseconds;
 *   - cut:   close every connection at once (held bytes are lost) and refuse new ones.
 * It runs on a thread of its own with its own libuv loop, so the test's loops may hang or stop.
 */
#ifndef PRESENCED_FAULT_PROXY_H
#define PRESENCED_FAULT_PROXY_H

#include <stdint.h>

typedef struct fault_proxy fault_proxy;

typedef enum fault_mode {
    FAULT_PASS,
    FAULT_STALL,
    FAULT_HOLD_REPLIES,
    FAULT_DELAY,
    FAULT_CUT
} fault_mode;

/* Listen on 127.0.0.1 (port 0: a free one) and forward to host:port. NULL on failure. */
fault_proxy *fault_proxy_start(const char *host, int port, int listen_port);
/* The same, listening on listen_host (an IPv4 address: any of 127.0.0.0/8 on loopback, so that
 * proxies of one port on several addresses each take their own clients). */
fault_proxy *fault_proxy_start_on(const char *host, int port, const char *listen_host,
                                  int listen_port);
/* The port it listens on. */
int fault_proxy_port(const fault_proxy *fp);
/* Change the mode (delay_ms is used by FAULT_DELAY); returns once the proxy's thread has applied
 * it. */
void fault_proxy_set(fault_proxy *fp, fault_mode mode, uint32_t delay_ms);
/* Connections accepted so far (for tests that wait for a client to come back). */
unsigned fault_proxy_accepted(fault_proxy *fp);
/* Close everything and join the thread. */
void fault_proxy_stop(fault_proxy *fp);

#endif
