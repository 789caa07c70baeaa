/* vec — growth of the caller's own arrays, kept as a (pointer, count, capacity) triple in the
 * caller's struct with whatever unsigned integer types suit it. The one place that doubles a
 * capacity, checks the multiplication and keeps the array intact when memory runs out.
 */
#ifndef PRESENCED_VEC_H
#define PRESENCED_VEC_H

#include <stddef.h>
#include <stdint.h>

/* Make room for element `n` of the array `v` (an lvalue of pointer type) whose capacity is the
 * unsigned lvalue `cap`: when n >= cap, the capacity doubles (from `min` when 0) and the array
 * is reallocated. Evaluates to 0, or -1 (memory, or a capacity the type of `cap` cannot hold)
 * with `v` and `cap` unchanged. Arguments may be evaluated more than once. */
#define VEC_RESERVE(v, n, cap, min)                                                                \
    ((n) < (cap) ||                                                                                \
             ((cap) = vec_grow(&(v), sizeof(*(v)), (cap), (min), VEC_TYPE_MAX(cap)), (n) < (cap))  \
         ? 0                                                                                       \
         : -1)

/* The largest value of the unsigned integer lvalue `x`'s type. */
#define VEC_TYPE_MAX(x)                                                                            \
    (sizeof(x) >= sizeof(size_t) ? SIZE_MAX : ((size_t)1 << (8 * sizeof(x))) - 1)

/* What VEC_RESERVE calls: grow the array whose pointer is at `pv` (elements of `size` bytes,
 * capacity `cap`, at most `max`) and return the new capacity, or `cap` when it cannot grow. */
size_t vec_grow(void *pv, size_t size, size_t cap, size_t min, size_t max);

#endif
