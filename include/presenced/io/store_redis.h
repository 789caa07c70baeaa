/* store_redis — the Redis store: many instances sharing one Redis, every change one Lua
 * script.
 * Its operations are those of presenced/io/store.h.
 */
#ifndef PRESENCED_STORE_REDIS_H
#define PRESENCED_STORE_REDIS_H

#include <uv.h>

#include "presenced/io/store.h"

/* Create a Redis store on `loop`. Returns NULL (after logging why) on bad options or memory. It
 * connects in the background: operations before it is connected fail with
 * STORE_ERR_UNAVAILABLE. The caller owns the store and frees it with store_free(). */
store *store_redis_new(uv_loop_t *loop, const store_opts *opts, const store_hooks *hooks);

#endif
