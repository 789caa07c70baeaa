/* b64 — standard base64 with padding (see include/presenced/codec/b64.h for the contract).
 *
 * RFC 4648 §4 alphabet. Decoding is strict (§3.5 "canonical encoding"): padding is required,
 * '=' may only end the last quantum, and the unused bits before the padding must be zero, so
 * every accepted input is the one encoding of its bytes.
 */
#include "presenced/codec/b64.h"

#include <stdbool.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Reverse table holding value + 1 for alphabet characters and 0 for anything else ('='
 * included), so that the implicit zero-initialisation marks every other byte invalid. */
static const uint8_t b64_rev[256] = {
    ['A'] = 0 + 1,  ['B'] = 1 + 1,  ['C'] = 2 + 1,  ['D'] = 3 + 1,  ['E'] = 4 + 1,  ['F'] = 5 + 1,
    ['G'] = 6 + 1,  ['H'] = 7 + 1,  ['I'] = 8 + 1,  ['J'] = 9 + 1,  ['K'] = 10 + 1, ['L'] = 11 + 1,
    ['M'] = 12 + 1, ['N'] = 13 + 1, ['O'] = 14 + 1, ['P'] = 15 + 1, ['Q'] = 16 + 1, ['R'] = 17 + 1,
    ['S'] = 18 + 1, ['T'] = 19 + 1, ['U'] = 20 + 1, ['V'] = 21 + 1, ['W'] = 22 + 1, ['X'] = 23 + 1,
    ['Y'] = 24 + 1, ['Z'] = 25 + 1, ['a'] = 26 + 1, ['b'] = 27 + 1, ['c'] = 28 + 1, ['d'] = 29 + 1,
    ['e'] = 30 + 1, ['f'] = 31 + 1, ['g'] = 32 + 1, ['h'] = 33 + 1, ['i'] = 34 + 1, ['j'] = 35 + 1,
    ['k'] = 36 + 1, ['l'] = 37 + 1, ['m'] = 38 + 1, ['n'] = 39 + 1, ['o'] = 40 + 1, ['p'] = 41 + 1,
    ['q'] = 42 + 1, ['r'] = 43 + 1, ['s'] = 44 + 1, ['t'] = 45 + 1, ['u'] = 46 + 1, ['v'] = 47 + 1,
    ['w'] = 48 + 1, ['x'] = 49 + 1, ['y'] = 50 + 1, ['z'] = 51 + 1, ['0'] = 52 + 1, ['1'] = 53 + 1,
    ['2'] = 54 + 1, ['3'] = 55 + 1, ['4'] = 56 + 1, ['5'] = 57 + 1, ['6'] = 58 + 1, ['7'] = 59 + 1,
    ['8'] = 60 + 1, ['9'] = 61 + 1, ['+'] = 62 + 1, ['/'] = 63 + 1,
};

size_t b64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
    size_t o = 0;
    size_t i = 0;
    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

long b64_decode(const char *in, size_t len, uint8_t *out)
{
    if (len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        /* Read the whole quantum before writing: with out == in, out[o..o+2] never reaches
         * past in[i+3] because o = i / 4 * 3. */
        uint8_t c0 = b64_rev[(uint8_t)in[i]];
        uint8_t c1 = b64_rev[(uint8_t)in[i + 1]];
        uint8_t c2 = b64_rev[(uint8_t)in[i + 2]];
        uint8_t c3 = b64_rev[(uint8_t)in[i + 3]];
        bool last = i + 4 == len;
        if (!c0 || !c1)
            return -1;
        uint32_t v = (uint32_t)(c0 - 1) << 18 | (uint32_t)(c1 - 1) << 12;
        if (c2 && c3) {
            v |= (uint32_t)(c2 - 1) << 6 | (uint32_t)(c3 - 1);
            out[o++] = (uint8_t)(v >> 16);
            out[o++] = (uint8_t)(v >> 8);
            out[o++] = (uint8_t)v;
        } else if (last && c2 && in[i + 3] == '=') {
            v |= (uint32_t)(c2 - 1) << 6;
            if (v & 0xFF)
                return -1; /* non-zero bits under the padding */
            out[o++] = (uint8_t)(v >> 16);
            out[o++] = (uint8_t)(v >> 8);
        } else if (last && in[i + 2] == '=' && in[i + 3] == '=') {
            if (v & 0xFFFF)
                return -1;
            out[o++] = (uint8_t)(v >> 16);
        } else {
            return -1;
        }
    }
    return (long)o;
}
