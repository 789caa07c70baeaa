/* Who the client is behind proxies (include/presenced/codec/fwd.h). */
#include "presenced/codec/fwd.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An IPv4-mapped IPv6 address is its IPv4 address: one client counts once however it came. */
static void unmap(fwd_addr *a)
{
    if (a->family == 6 && memcmp(a->bytes, v4mapped, sizeof(v4mapped)) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = 4;
    }
}

int fwd_addr_parse(const char *s, size_t len, fwd_addr *out)
{
    char tmp[FWD_ADDR_TEXT];
    if (len == 0 || len >= sizeof(tmp))
        return FWD_INVALID;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, tmp, out->bytes) == 1) {
        out->family = 4;
        return FWD_OK;
    }
    if (inet_pton(AF_INET6, tmp, out->bytes) != 1)
        return FWD_INVALID;
    out->family = 6;
    unmap(out);
    return FWD_OK;
}

void fwd_addr_text(const fwd_addr *a, char out[FWD_ADDR_TEXT])
{
    if (!a->family || !inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, out, FWD_ADDR_TEXT))
        strcpy(out, "-");
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

/* A decimal number of at most `max`, the whole of [p, end). */
static bool number(const char *p, const char *end, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (p == end || end - p > 5)
        return false;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int cidr_parse(const char *p, const char *end, fwd_cidr *out)
{
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (fwd_addr_parse(p, (size_t)((slash ? slash : end) - p), &out->net) != FWD_OK)
        return FWD_INVALID;
    unsigned bits = out->net.family == 4 ? 32 : 128, prefix = bits;
    if (slash && !number(slash + 1, end, bits, &prefix))
        return FWD_INVALID;
    out->prefix = (uint8_t)prefix;
    return FWD_OK;
}

int fwd_cidrs_parse(const char *list, fwd_cidrs *out)
{
    out->n = 0;
    const char *p = list, *end = list + strlen(list);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        const char *s = skip_space(p, e), *t = trim_end(s, e);
        if (s < t) {
            if (out->n == FWD_CIDRS_MAX)
                return FWD_TOO_MANY;
            if (cidr_parse(s, t, &out->v[out->n]) != FWD_OK)
                return FWD_INVALID;
            out->n++;
        } else if (comma) {
            return FWD_INVALID; /* an empty entry */
        }
        p = comma ? comma + 1 : end;
    }
    return FWD_OK;
}

static bool cidr_match(const fwd_cidr *c, const fwd_addr *a)
{
    if (c->net.family != a->family)
        return false;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->net.bytes, a->bytes, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->net.bytes[full] & mask) == (a->bytes[full] & mask);
}

bool fwd_cidrs_match(const fwd_cidrs *l, const fwd_addr *a)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (cidr_match(&l->v[i], a))
            return true;
    return false;
}

/* One hop as proxies write it: "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80",
 * possibly quoted (Forwarded). */
static int hop_parse(const char *p, const char *end, fwd_addr *out)
{
    p = skip_space(p, end);
    end = trim_end(p, end);
    if (end - p >= 2 && *p == '"' && end[-1] == '"')
        p++, end--;
    if (p < end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        unsigned port;
        if (!close ||
            (close + 1 < end && (close[1] != ':' || !number(close + 2, end, 65535, &port))))
            return FWD_INVALID;
        return fwd_addr_parse(p + 1, (size_t)(close - p - 1), out) == FWD_OK && out->family == 6
                   ? FWD_OK
                   : FWD_INVALID;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon && !memchr(colon + 1, ':', (size_t)(end - colon - 1))) { /* IPv4 with a port */
        unsigned port;
        if (!number(colon + 1, end, 65535, &port))
            return FWD_INVALID;
        return fwd_addr_parse(p, (size_t)(colon - p), out) == FWD_OK && out->family == 4
                   ? FWD_OK
                   : FWD_INVALID;
    }
    return fwd_addr_parse(p, (size_t)(end - p), out);
}

/* The value of parameter `name` ("for", "proto") in one Forwarded element [p, end), e.g.
 * `for=192.0.2.60;proto=http`: *v and *vend, or false when absent. */
static bool element_param(const char *p, const char *end, const char *name, const char **v,
                          const char **vend)
{
    size_t nlen = strlen(name);
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        const char *s = skip_space(p, e);
        if ((size_t)(e - s) > nlen && strncasecmp(s, name, nlen) == 0 && s[nlen] == '=') {
            *v = s + nlen + 1;
            *vend = trim_end(*v, e);
            return true;
        }
        p = semi ? semi + 1 : end;
    }
    return false;
}

/* Walks a comma-separated list from the right: *cur starts at the list's end; each call gives
 * the next item to the left as [*s, *e) and moves *cur. Returns false when none is left. */
static bool item_prev(const char *list, const char **cur, const char **s, const char **e)
{
    if (!*cur)
        return false;
    const char *p = *cur;
    while (p > list && p[-1] != ',')
        p--;
    *s = p;
    *e = *cur;
    *cur = p > list ? p - 1 : NULL;
    return true;
}

bool fwd_client(const fwd_addr *peer, const fwd_cidrs *trusted, const char *forwarded,
                const char *xff, fwd_addr *client)
{
    *client = *peer;
    if (!fwd_cidrs_match(trusted, peer))
        return false;
    bool rfc = forwarded && *forwarded;
    const char *list = rfc ? forwarded : xff;
    if (!list)
        return false;
    const char *cur = list + strlen(list), *item, *item_end;
    while (item_prev(list, &cur, &item, &item_end)) {
        const char *v = item, *vend = item_end;
        fwd_addr a;
        if ((rfc && !element_param(item, item_end, "for", &v, &vend)) ||
            hop_parse(v, vend, &a) != FWD_OK)
            break;
        *client = a;
        if (!fwd_cidrs_match(trusted, &a))
            break;
    }
    return memcmp(client, peer, sizeof(*client)) != 0;
}

/* "http" or "https" for [p, end) (quotes and case allowed), else NULL. */
static const char *proto_name(const char *p, const char *end)
{
    p = skip_space(p, end);
    end = trim_end(p, end);
    if (end - p >= 2 && *p == '"' && end[-1] == '"')
        p++, end--;
    if (end - p == 4 && strncasecmp(p, "http", 4) == 0)
        return "http";
    if (end - p == 5 && strncasecmp(p, "https", 5) == 0)
        return "https";
    return NULL;
}

const char *fwd_proto(const char *forwarded, const char *xfproto)
{
    const char *cur, *item, *item_end, *v, *vend;
    if (forwarded && *forwarded) {
        cur = forwarded + strlen(forwarded);
        while (item_prev(forwarded, &cur, &item, &item_end))
            if (element_param(item, item_end, "proto", &v, &vend))
                return proto_name(v, vend);
    }
    if (xfproto && *xfproto) {
        cur = xfproto + strlen(xfproto);
        if (item_prev(xfproto, &cur, &item, &item_end))
            return proto_name(item, item_end);
    }
    return NULL;
}

/* ---- PROXY protocol ---- */

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
#define V1_MAX 107

/* Version 1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n". */
static int proxy_v1(const uint8_t *p, size_t n, fwd_proxy *out)
{
    static const char sig[] = "PROXY ";
    size_t k = n < 6 ? n : 6;
    if (memcmp(p, sig, k) != 0)
        return FWD_INVALID;
    const uint8_t *lf = memchr(p, '\n', n < V1_MAX ? n : V1_MAX);
    if (!lf)
        return n < V1_MAX ? FWD_NEED_MORE : FWD_INVALID;
    if (lf == p || lf[-1] != '\r')
        return FWD_INVALID;
    const char *s = (const char *)p + 6, *end = (const char *)lf - 1;
    const char *f[5];
    size_t nf = 0;
    while (s < end && nf < 5) {
        f[nf++] = s;
        const char *sp = memchr(s, ' ', (size_t)(end - s));
        s = sp ? sp + 1 : end;
    }
    int len = (int)(lf - p + 1);
    if (nf >= 1 && end - f[0] >= 7 && strncmp(f[0], "UNKNOWN", 7) == 0 &&
        (f[0] + 7 == end || f[0][7] == ' ')) {
        out->has_addr = false;
        return len;
    }
    if (nf != 5 || s != end)
        return FWD_INVALID;
    bool v6 = strncmp(f[0], "TCP6 ", 5) == 0;
    if (!v6 && strncmp(f[0], "TCP4 ", 5) != 0)
        return FWD_INVALID;
    fwd_addr src, dst;
    unsigned sport, dport;
    if (fwd_addr_parse(f[1], (size_t)(f[2] - f[1] - 1), &src) != FWD_OK ||
        fwd_addr_parse(f[2], (size_t)(f[3] - f[2] - 1), &dst) != FWD_OK ||
        !number(f[3], f[4] - 1, 65535, &sport) || !number(f[4], end, 65535, &dport))
        return FWD_INVALID;
    /* TCP6 with an IPv4-mapped address reads as IPv4: the family is the address's. */
    if (!v6 && (src.family != 4 || dst.family != 4))
        return FWD_INVALID;
    out->has_addr = true;
    out->src = src;
    return len;
}

/* Version 2: signature, version/command, family/protocol, length, addresses, TLVs. */
static int proxy_v2(const uint8_t *p, size_t n, fwd_proxy *out)
{
    size_t k = n < sizeof(v2sig) ? n : sizeof(v2sig);
    if (memcmp(p, v2sig, k) != 0)
        return FWD_INVALID;
    if (n < 16)
        return FWD_NEED_MORE;
    if ((p[12] >> 4) != 2 || (p[12] & 0x0f) > 1)
        return FWD_INVALID;
    size_t len = 16 + ((size_t)p[14] << 8 | p[15]);
    if (len > FWD_PROXY_MAX)
        return FWD_INVALID;
    if (n < len)
        return FWD_NEED_MORE;
    out->has_addr = false;
    if ((p[12] & 0x0f) == 0) /* LOCAL: the proxy's own connection (health checks) */
        return (int)len;
    unsigned fam = p[13] >> 4, proto = p[13] & 0x0f;
    if (fam == 1 && (proto == 1 || proto == 2)) {
        if (len < 16 + 12)
            return FWD_INVALID;
        out->src.family = 4;
        memset(out->src.bytes, 0, sizeof(out->src.bytes));
        memcpy(out->src.bytes, p + 16, 4);
        out->has_addr = true;
    } else if (fam == 2 && (proto == 1 || proto == 2)) {
        if (len < 16 + 36)
            return FWD_INVALID;
        out->src.family = 6;
        memcpy(out->src.bytes, p + 16, 16);
        unmap(&out->src);
        out->has_addr = true;
    } else if (fam > 3 || proto > 2) {
        return FWD_INVALID;
    }
    return (int)len;
}

int fwd_proxy_decode(const uint8_t *p, size_t n, fwd_proxy *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return FWD_NEED_MORE;
    if (p[0] == 'P')
        return proxy_v1(p, n, out);
    if (p[0] == 0x0D)
        return proxy_v2(p, n, out);
    return FWD_INVALID;
}
