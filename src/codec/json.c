#include "presenced/codec/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool json_lex_ok(const uint8_t *p, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (!in_string) {
            if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')
                return false;
            in_string = c == '"';
        } else if (c < 0x20) {
            return false;
        } else if (c == '"') {
            in_string = false;
        } else if (c == '\\') {
            if (++i >= len)
                return false;
            if (p[i] == 'u' && len - i > 4 && memcmp(p + i + 1, "0000", 4) == 0)
                return false;
        }
    }
    return true;
}

int json_append_number(buf *out, double d)
{
    char tmp[32];
    if (!isfinite(d))
        return buf_append_str(out, "null");
    /* Range first: converting a double outside long long's range is undefined behaviour. */
    if (fabs(d) < 9007199254740992.0 && d == (double)(long long)d) {
        snprintf(tmp, sizeof(tmp), "%lld", (long long)d);
        return buf_append_str(out, tmp);
    }
    /* The shortest of 15, 16 or 17 significant digits that reads back exactly. */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    return buf_append_str(out, tmp);
}

/* Bytes a JSON string holds as they are. */
static bool plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

int json_append_string(buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_append_byte(out, '"') < 0)
        return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* Runs of plain bytes go in one copy. */
        const unsigned char *run = p;
        while (plain(*p))
            p++;
        if (p > run && buf_append(out, run, (size_t)(p - run)) < 0)
            return -1;
        if (!*p)
            break;
        int rc;
        switch (*p) {
        case '"':
            rc = buf_append(out, "\\\"", 2);
            break;
        case '\\':
            rc = buf_append(out, "\\\\", 2);
            break;
        case '\n':
            rc = buf_append(out, "\\n", 2);
            break;
        case '\r':
            rc = buf_append(out, "\\r", 2);
            break;
        case '\t':
            rc = buf_append(out, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
                rc = buf_append(out, esc, 6);
            } else {
                rc = buf_append_byte(out, *p);
            }
        }
        if (rc < 0)
            return -1;
    }
    return buf_append_byte(out, '"');
}

int json_append(buf *out, const cJSON *item)
{
    if (cJSON_IsNumber(item))
        return json_append_number(out, item->valuedouble);
    if (cJSON_IsString(item))
        return json_append_string(out, item->valuestring);
    if (cJSON_IsTrue(item))
        return buf_append_str(out, "true");
    if (cJSON_IsFalse(item))
        return buf_append_str(out, "false");
    if (cJSON_IsRaw(item))
        return buf_append_str(out, item->valuestring);
    if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
        bool obj = cJSON_IsObject(item);
        if (buf_append_byte(out, obj ? '{' : '[') < 0)
            return -1;
        for (const cJSON *c = item->child; c; c = c->next) {
            if (c != item->child && buf_append_byte(out, ',') < 0)
                return -1;
            if (obj && (json_append_string(out, c->string ? c->string : "") < 0 ||
                        buf_append_byte(out, ':') < 0))
                return -1;
            if (json_append(out, c) < 0)
                return -1;
        }
        return buf_append_byte(out, obj ? '}' : ']');
    }
    return buf_append_str(out, "null");
}
