/* utf8 — strict UTF-8 validation (see include/presenced/codec/utf8.h for the contract).
 *
 * The accepted byte sequences are exactly those of RFC 3629 §4 (the "UTF8-octets" grammar):
 * second-byte ranges are narrowed after E0, ED, F0 and F4 so that overlong forms, UTF-16
 * surrogates and code points above U+10FFFF are all rejected.
 */
#include "presenced/codec/utf8.h"

bool utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;                     /* continuation bytes that follow */
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0; /* overlong below U+0800 */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates U+D800..U+DFFF */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90; /* overlong below U+10000 */
            else if (c == 0xF4)
                hi = 0x8F; /* above U+10FFFF */
        } else {
            return false; /* continuation byte, C0/C1 overlongs, F5..FF */
        }
        if (len - i - 1 < n)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        }
        i += n + 1;
    }
    return true;
}
