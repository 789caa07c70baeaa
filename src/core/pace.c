/* pace — see pace.h. */
#include "presenced/core/pace.h"

void pace_init(pace *p, uint32_t min, uint32_t max, uint32_t target_ms)
{
    if (min == 0)
        min = 1;
    *p = (pace){
        .min = min, .max = max < min ? min : max, .target_us = target_ms * 1000u, .budget = min};
}

bool pace_take(pace *p)
{
    if (p->taken >= p->budget) {
        p->limited = true;
        return false;
    }
    p->taken++;
    return true;
}

void pace_turn(pace *p, uint64_t busy_us)
{
    if (busy_us > p->target_us) {
        /* The turn was too long, whatever made it so (handshakes in flight, a burst of closes,
         * a host that gave this process little CPU): let fewer new ones in. */
        p->budget /= 2;
        if (p->budget < p->min)
            p->budget = p->min;
    } else if (p->limited) {
        p->budget = p->max - p->budget < p->min ? p->max : p->budget + p->min;
    }
    p->taken = 0;
    p->limited = false;
}
