/* vec — array growth (see presenced/codec/vec.h). */
#include "presenced/codec/vec.h"

#include <stdlib.h>
#include <string.h>

size_t vec_grow(void *pv, size_t size, size_t cap, size_t min, size_t max)
{
    size_t ncap = cap ? (cap <= max / 2 ? cap * 2 : max) : (min ? min : 1);
    if (ncap <= cap || ncap > max || ncap > SIZE_MAX / size)
        return cap;
    /* The caller's pointer is read and written as bytes: its type is not known here. */
    void *a;
    memcpy(&a, pv, sizeof(a));
    void *na = realloc(a, ncap * size);
    if (!na)
        return cap;
    memcpy(pv, &na, sizeof(na));
    return ncap;
}
