/* later — calls deferred to a later turn of the loop (see presenced/io/later.h). */
#include "presenced/io/later.h"

#include "presenced/io/log.h"

/* Run the queued calls; those they queue in turn wait for the next turn. */
static void later_drain(later *l)
{
    later_call calls[LATER_RESERVE];
    size_t n = l->n;
    for (size_t i = 0; i < n; i++)
        calls[i] = l->calls[i];
    l->n = 0;
    uv_idle_stop(&l->idle);
    for (size_t i = 0; i < n; i++)
        calls[i].run(&calls[i]);
}

static void on_idle(uv_idle_t *h)
{
    later_drain((later *)h);
}

void later_init(later *l, uv_loop_t *loop, void *owner, const char *name)
{
    uv_idle_init(loop, &l->idle);
    l->idle.data = owner;
    l->n = 0;
    l->name = name;
    l->closing = false;
}

void later_queue(later *l, later_call call)
{
    if (l->closing) {
        /* The owner is being freed and this call came from one of its last callbacks. */
        call.run(&call);
        return;
    }
    if (l->n == LATER_RESERVE) {
        log_error("too many failures in one loop turn: answering one at once", "owner=%s", l->name);
        call.run(&call);
        return;
    }
    l->calls[l->n++] = call;
    uv_idle_start(&l->idle, on_idle);
}

void later_close(later *l, uv_close_cb closed)
{
    later_drain(l);
    l->closing = true;
    uv_close((uv_handle_t *)&l->idle, closed);
}

void later_timer(uv_timer_t *t, uv_timer_cb cb, uint64_t ms)
{
    uv_timer_start(t, cb, ms ? ms : 1, 0);
}
