/* store_memory — the in-memory store: one instance, state in this process (pres_state plus a
 * timer).
 * Its operations are those of presenced/io/store.h.
 */
#ifndef PRESENCED_STORE_MEMORY_H
#define PRESENCED_STORE_MEMORY_H

#include <uv.h>

#include "presenced/io/store.h"

/* Create a memory store on `loop`. Returns NULL (after logging why) on bad options or memory.
 * The caller owns the store and frees it with store_free(). */
store *store_memory_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks);

#endif
