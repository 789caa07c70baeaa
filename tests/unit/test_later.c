/* Unit tests for later: queued calls run on a later turn of the loop, in order, exactly once;
 * a full reserve answers at once; closing runs what waits; a timer armed for "now" fires only
 * after the loop has polled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/io/later.h"

typedef struct record {
    int order[LATER_RESERVE + 8];
    int errs[LATER_RESERVE + 8];
    size_t n;
} record;

static void note(int tag, void *ud, int err)
{
    record *r = ud;
    r->order[r->n] = tag;
    r->errs[r->n] = err;
    r->n++;
}

typedef void (*note_fn)(int tag, void *ud, int err);

/* The call's err carries the tag; the trampoline hands note() the tag and its negation, so that
 * both the order and the error passed through can be checked. */
static void run_note(const later_call *call)
{
    ((note_fn)call->cb)(call->err, call->ud, -call->err);
}

static later_call call_of(record *r, int tag)
{
    return (later_call){.run = run_note, .cb = (void (*)(void))note, .ud = r, .err = tag};
}

static void closed(uv_handle_t *h)
{
    (*(int *)h->data)++;
}

typedef struct fixture {
    uv_loop_t loop;
    later l;
    int nclosed;
    record r;
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    if (uv_loop_init(&f.loop) != 0)
        return -1;
    later_init(&f.l, &f.loop, &f.nclosed, "test");
    *state = &f;
    return 0;
}

/* Closing runs the handle's close callback once and leaves the loop empty. */
static int teardown(void **state)
{
    fixture *f = *state;
    if (!f->l.closing)
        later_close(&f->l, closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return f->nclosed == 1 && uv_loop_close(&f->loop) == 0 ? 0 : -1;
}

static void test_later_turn_in_order(void **state)
{
    fixture *f = *state;
    for (int i = 1; i <= 5; i++)
        later_queue(&f->l, call_of(&f->r, i));
    assert_int_equal(f->r.n, 0); /* never inside the call */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->r.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f->r.order[i], i + 1);
        assert_int_equal(f->r.errs[i], -(i + 1));
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->r.n, 5); /* exactly once */
}

static void test_full_reserve_answers_at_once(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < LATER_RESERVE; i++)
        later_queue(&f->l, call_of(&f->r, i + 1));
    assert_int_equal(f->r.n, 0);
    later_queue(&f->l, call_of(&f->r, 1000));
    assert_int_equal(f->r.n, 1);
    assert_int_equal(f->r.order[0], 1000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->r.n, LATER_RESERVE + 1);
}

static void test_close_runs_what_waits(void **state)
{
    fixture *f = *state;
    later_queue(&f->l, call_of(&f->r, 7));
    later_close(&f->l, closed);
    assert_int_equal(f->r.n, 1);
    assert_int_equal(f->r.order[0], 7);
    /* After the close, a call (from one of the owner's last callbacks) runs at once. */
    later_queue(&f->l, call_of(&f->r, 8));
    assert_int_equal(f->r.n, 2);
}

/* A timer that re-arms itself for "now" waits for the loop to poll in between: a callback that
 * waits on I/O that way must not keep the loop from ever polling for it. */
typedef struct spin {
    uv_timer_t timer;
    uv_check_t check; /* runs right after each poll */
    int polls, fires, polls_at_fire[5];
} spin;

static void on_check(uv_check_t *c)
{
    ((spin *)c->data)->polls++;
}

static void on_spin(uv_timer_t *t)
{
    spin *s = t->data;
    s->polls_at_fire[s->fires++] = s->polls;
    if (s->fires < 5) {
        later_timer(&s->timer, on_spin, 0);
        return;
    }
    uv_check_stop(&s->check);
}

static void test_timer_for_now_lets_the_loop_poll(void **state)
{
    fixture *f = *state;
    spin s = {0};
    uv_timer_init(&f->loop, &s.timer);
    uv_check_init(&f->loop, &s.check);
    s.timer.data = s.check.data = &s;
    uv_check_start(&s.check, on_check);
    later_timer(&s.timer, on_spin, 0);
    later_close(&f->l, closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(s.fires, 5);
    for (int i = 1; i < 5; i++)
        assert_true(s.polls_at_fire[i] > s.polls_at_fire[i - 1]);
    uv_close((uv_handle_t *)&s.timer, NULL);
    uv_close((uv_handle_t *)&s.check, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_later_turn_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_reserve_answers_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_runs_what_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_for_now_lets_the_loop_poll, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
