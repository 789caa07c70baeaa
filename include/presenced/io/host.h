/* host — what the daemon reads from the machine it runs on: the clocks and randomness. The pure
 * layers never read either (they are handed `now`); everything above them that needs one calls
 * this module, so each rule (which clock measures what, how unguessable ids are made) is written
 * once.
 */
#ifndef PRESENCED_HOST_H
#define PRESENCED_HOST_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time in ms / s since the epoch: for times shown to people and shared between
 * instances (lastSeen, event times, token expiry). It may jump. */
int64_t host_wall_ms(void);
int64_t host_wall_s(void);
/* Monotonic time in ms, for intervals (rate limits, supervision): it never jumps. Code on the
 * libuv loop uses the loop's own cached clock, uv_now(), instead. */
uint64_t host_mono_ms(void);

/* A seed for the hash tables whose keys come from clients, so that nobody can aim collisions at
 * them. Never fails: without the kernel's pool it falls back to clock and address bits. */
uint64_t host_seed(void);
/* Fill out[0..len-1] with unguessable URL-safe characters (A-Z a-z 0-9 - _) and out[len] with a
 * NUL: session and instance ids. Aborts when the kernel cannot provide randomness, since a
 * guessable id would let a client take over another's session. */
void host_random_id(char *out, size_t len);

#endif
