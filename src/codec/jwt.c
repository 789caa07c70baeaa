/* jwt — JSON Web Token verification (see include/presenced/codec/jwt.h).
 *
 * References: RFC 7515 (JWS) for the compact form and the validation steps of §5.2, RFC 7518 (JWA)
 * §3 for the three algorithms, RFC 7519 (JWT) §4.1 for the registered claims and §7.2 for the
 * validation order, RFC 8725 (JWT best current practice) §3.1 for why the key, not the token,
 * picks the algorithm.
 */
#include "presenced/codec/jwt.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "presenced/codec/buf.h"
#include "presenced/codec/json.h"
#include "presenced/codec/pres_cmd.h"
#include "presenced/codec/utf8.h"

/* Bounds on key material handed to OpenSSL, whose interfaces take int lengths. Real secrets and
 * PEM public keys are far smaller. */
#define JWT_SECRET_MAX 4096
#define JWT_PEM_MAX 65536

#define HS256_LEN 32 /* SHA-256 output */
#define ES256_LEN 64 /* R || S, 32 bytes each (RFC 7518 §3.4) */

struct jwt_key {
    jwt_alg alg;
    uint8_t *secret; /* HS256 only */
    size_t secret_len;
    EVP_PKEY *pkey; /* RS256 and ES256 only */
};

const char *jwt_strerror(int err)
{
    switch (err) {
    case JWT_OK:
        return "ok";
    case JWT_ERR_MALFORMED:
        return "malformed token";
    case JWT_ERR_ALG:
        return "unsupported or unexpected algorithm";
    case JWT_ERR_SIGNATURE:
        return "bad signature";
    case JWT_ERR_EXPIRED:
        return "token expired";
    case JWT_ERR_NOT_YET_VALID:
        return "token not yet valid";
    case JWT_ERR_AUDIENCE:
        return "wrong audience";
    case JWT_ERR_ISSUER:
        return "wrong issuer";
    case JWT_ERR_MISSING_CLAIM:
        return "required claim missing";
    case JWT_ERR_CLAIM:
        return "invalid claim";
    case JWT_ERR_KEY:
        return "unusable key";
    case JWT_ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

/* ---- keys ---- */

int jwt_key_from_secret(const uint8_t *secret, size_t len, jwt_key **out)
{
    *out = NULL;
    if (!secret || len < JWT_SECRET_MIN || len > JWT_SECRET_MAX)
        return JWT_ERR_KEY;
    jwt_key *k = calloc(1, sizeof(*k));
    if (!k)
        return JWT_ERR_NOMEM;
    k->secret = malloc(len);
    if (!k->secret) {
        free(k);
        return JWT_ERR_NOMEM;
    }
    memcpy(k->secret, secret, len);
    k->secret_len = len;
    k->alg = JWT_HS256;
    *out = k;
    return JWT_OK;
}

/* A public key never has a passphrase; refusing one keeps OpenSSL from prompting on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* The algorithm a parsed public key may verify, or 0 when it is not one we accept. */
static jwt_alg pkey_alg(EVP_PKEY *pkey)
{
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        return EVP_PKEY_get_bits(pkey) >= JWT_RSA_MIN_BITS ? JWT_RS256 : 0;
    case EVP_PKEY_EC: {
        char name[64];
        size_t nlen = 0;
        if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &nlen) != 1)
            return 0;
        return OBJ_sn2nid(name) == NID_X9_62_prime256v1 ? JWT_ES256 : 0;
    }
    default:
        return 0;
    }
}

int jwt_key_from_pem(const char *pem, size_t len, jwt_key **out)
{
    *out = NULL;
    if (!pem || len == 0 || len > JWT_PEM_MAX)
        return JWT_ERR_KEY;
    /* Errors OpenSSL queues on our behalf are dropped on the way out: callers see our codes. */
    ERR_set_mark();
    int rc = JWT_ERR_KEY;
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) {
        rc = JWT_ERR_NOMEM;
        goto done;
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (!pkey)
        goto done;
    jwt_alg alg = pkey_alg(pkey);
    if (alg == 0)
        goto done;
    jwt_key *k = calloc(1, sizeof(*k));
    if (!k) {
        rc = JWT_ERR_NOMEM;
        goto done;
    }
    k->alg = alg;
    k->pkey = pkey;
    pkey = NULL;
    *out = k;
    rc = JWT_OK;
done:
    EVP_PKEY_free(pkey);
    ERR_pop_to_mark();
    return rc;
}

jwt_alg jwt_key_alg(const jwt_key *key)
{
    return key->alg;
}

void jwt_key_free(jwt_key *key)
{
    if (!key)
        return;
    if (key->secret) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }
    EVP_PKEY_free(key->pkey);
    free(key);
}

/* ---- base64url ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decode unpadded base64url (RFC 7515 §2 and Appendix C) into `out`, which holds at least
 * len * 3 / 4 bytes. Only the canonical encoding is accepted: no '=', no characters outside the
 * URL-safe alphabet, no length that leaves a lone character, and the unused low bits of the last
 * character must be zero, so that each byte string has exactly one encoding and a token cannot be
 * altered without invalidating its signature. Returns the number of bytes, or -1. */
static long b64url_decode(const char *in, size_t len, uint8_t *out)
{
    if (len % 4 == 1)
        return -1;
    unsigned acc = 0, bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1;
    return (long)n;
}

/* Decode one part into a fresh NUL-terminated buffer (the terminator lets cJSON parse it in
 * place). Returns JWT_OK, JWT_ERR_MALFORMED or JWT_ERR_NOMEM. */
static int part_decode(const char *in, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *b = malloc(len / 4 * 3 + 3);
    if (!b)
        return JWT_ERR_NOMEM;
    long n = b64url_decode(in, len, b);
    if (n < 0) {
        free(b);
        return JWT_ERR_MALFORMED;
    }
    b[n] = '\0';
    *out = b;
    *out_len = (size_t)n;
    return JWT_OK;
}

/* ---- strict JSON ---- */

static int name_cmp(const void *a, const void *b)
{
    const cJSON *const *x = a, *const *y = b;
    return strcmp((*x)->string, (*y)->string);
}

/* True when no two members of `obj` share a name. RFC 7515 §5.2 step 4 and RFC 7519 §4 require
 * duplicates to be refused or the last one taken; cJSON would hand us the first while a
 * JavaScript consumer takes the last, so they are refused. Sorting keeps this O(n log n) in the
 * number of members, which an attacker controls in the header. */
static int names_unique(const cJSON *obj)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return JWT_OK;
    const cJSON **v = malloc(n * sizeof(*v));
    if (!v)
        return JWT_ERR_NOMEM;
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        v[i++] = c;
    qsort(v, n, sizeof(*v), name_cmp);
    int rc = JWT_OK;
    for (i = 1; i < n && rc == JWT_OK; i++)
        if (strcmp(v[i - 1]->string, v[i]->string) == 0)
            rc = JWT_ERR_MALFORMED;
    free(v);
    return rc;
}

/* Check a parsed tree: names and strings valid UTF-8, numbers finite (cJSON turns 1e400 into
 * infinity), no duplicate names in any object. cJSON caps nesting at CJSON_NESTING_LIMIT, which
 * bounds the recursion. */
static int json_tree_ok(const cJSON *item)
{
    if (item->string && !utf8_valid((const uint8_t *)item->string, strlen(item->string)))
        return JWT_ERR_MALFORMED;
    if (cJSON_IsString(item) &&
        !utf8_valid((const uint8_t *)item->valuestring, strlen(item->valuestring)))
        return JWT_ERR_MALFORMED;
    if (cJSON_IsNumber(item) && !isfinite(item->valuedouble))
        return JWT_ERR_MALFORMED;
    if (cJSON_IsObject(item)) {
        int rc = names_unique(item);
        if (rc != JWT_OK)
            return rc;
    }
    for (const cJSON *c = item->child; c; c = c->next) {
        int rc = json_tree_ok(c);
        if (rc != JWT_OK)
            return rc;
    }
    return JWT_OK;
}

/* Parse `len` bytes at `p` (NUL-terminated at p[len]) as one JSON object and nothing else.
 * Returns JWT_OK with *out owned by the caller, JWT_ERR_MALFORMED or JWT_ERR_NOMEM. */
static int json_object_parse(const uint8_t *p, size_t len, cJSON **out)
{
    *out = NULL;
    if (!utf8_valid(p, len) || !json_lex_ok(p, len))
        return JWT_ERR_MALFORMED;
    const char *end = NULL;
    /* require_null_terminated is false because in cJSON 1.7.15 it fails any input whose length
     * excludes the terminator; trailing bytes are checked here instead. */
    cJSON *json = cJSON_ParseWithLengthOpts((const char *)p, len, &end, false);
    if (!json)
        return JWT_ERR_MALFORMED;
    size_t off = (size_t)(end - (const char *)p);
    while (off < len && (p[off] == ' ' || p[off] == '\t' || p[off] == '\n' || p[off] == '\r'))
        off++;
    int rc = off == len && cJSON_IsObject(json) ? json_tree_ok(json) : JWT_ERR_MALFORMED;
    if (rc != JWT_OK) {
        cJSON_Delete(json);
        return rc;
    }
    *out = json;
    return JWT_OK;
}

/* The member named `name` (case-sensitive; names are unique once json_tree_ok passed), or NULL. */
static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* ---- header and signature ---- */

static int header_check(const cJSON *hdr, const jwt_key *key)
{
    const cJSON *typ = member(hdr, "typ");
    /* RFC 7519 §5.1: "JWT" is the recommended value; we accept no other media type. */
    if (typ && !(cJSON_IsString(typ) && strcmp(typ->valuestring, "JWT") == 0))
        return JWT_ERR_MALFORMED;
    /* RFC 7515 §4.1.11: a recipient that does not understand a listed extension MUST reject the
     * JWS; we understand none (this also refuses the unencoded payload option of RFC 7797). */
    if (member(hdr, "crit"))
        return JWT_ERR_MALFORMED;
    const cJSON *alg = member(hdr, "alg");
    if (!cJSON_IsString(alg))
        return JWT_ERR_ALG;
    static const char *const names[] = {
        [JWT_HS256] = "HS256", [JWT_RS256] = "RS256", [JWT_ES256] = "ES256"};
    /* RFC 8725 §3.1: the algorithm is the key's; the header can only agree with it. */
    if (strcmp(alg->valuestring, names[key->alg]) != 0)
        return JWT_ERR_ALG;
    return JWT_OK;
}

static int verify_hs256(const jwt_key *key, const uint8_t *input, size_t input_len,
                        const uint8_t *sig, size_t sig_len)
{
    if (sig_len != HS256_LEN)
        return JWT_ERR_SIGNATURE;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key->secret, (int)key->secret_len, input, input_len, mac, &mac_len) ||
        mac_len != HS256_LEN)
        return JWT_ERR_SIGNATURE;
    /* Constant time, so that the response time does not reveal how many leading bytes of a
     * forged MAC were right. */
    int rc = CRYPTO_memcmp(mac, sig, HS256_LEN) == 0 ? JWT_OK : JWT_ERR_SIGNATURE;
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

/* Verify a DER-or-PKCS#1 signature `sig` over `input` with SHA-256 and the key's public key. */
static int verify_pkey(const jwt_key *key, const uint8_t *input, size_t input_len,
                       const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return JWT_ERR_NOMEM;
    int rc = JWT_ERR_SIGNATURE;
    if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
        EVP_DigestVerify(ctx, sig, sig_len, input, input_len) == 1)
        rc = JWT_OK;
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* RFC 7518 §3.4: an ES256 signature is R and S as 32-byte big-endian integers, concatenated;
 * OpenSSL verifies the DER ECDSA-Sig-Value of RFC 3279 §2.2.3, so convert. */
static int verify_es256(const jwt_key *key, const uint8_t *input, size_t input_len,
                        const uint8_t *sig, size_t sig_len)
{
    if (sig_len != ES256_LEN)
        return JWT_ERR_SIGNATURE;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, ES256_LEN / 2, NULL);
    BIGNUM *s = BN_bin2bn(sig + ES256_LEN / 2, ES256_LEN / 2, NULL);
    if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        return JWT_ERR_NOMEM;
    }
    /* es owns r and s now. Two 33-byte INTEGERs and their headers fit in 72 bytes. */
    unsigned char der[80];
    int rc = JWT_ERR_SIGNATURE;
    int der_len = i2d_ECDSA_SIG(es, NULL);
    if (der_len > 0 && (size_t)der_len <= sizeof(der)) {
        unsigned char *p = der;
        if (i2d_ECDSA_SIG(es, &p) == der_len)
            rc = verify_pkey(key, input, input_len, der, (size_t)der_len);
    }
    ECDSA_SIG_free(es);
    return rc;
}

static int signature_check(const jwt_key *key, const char *input, size_t input_len,
                           const char *sig_b64, size_t sig_b64_len)
{
    /* RFC 7515 §7.1 allows an empty signature only for "none", which no key accepts. */
    if (sig_b64_len == 0)
        return JWT_ERR_MALFORMED;
    uint8_t *sig;
    size_t sig_len;
    int rc = part_decode(sig_b64, sig_b64_len, &sig, &sig_len);
    if (rc != JWT_OK)
        return rc;
    const uint8_t *in = (const uint8_t *)input;
    ERR_set_mark();
    switch (key->alg) {
    case JWT_HS256:
        rc = verify_hs256(key, in, input_len, sig, sig_len);
        break;
    case JWT_RS256:
        /* An RSA signature is exactly as long as the modulus (RFC 8017 §8.2.2 step 1). */
        rc = sig_len == (size_t)EVP_PKEY_get_size(key->pkey)
                 ? verify_pkey(key, in, input_len, sig, sig_len)
                 : JWT_ERR_SIGNATURE;
        break;
    case JWT_ES256:
        rc = verify_es256(key, in, input_len, sig, sig_len);
        break;
    default:
        rc = JWT_ERR_ALG;
    }
    ERR_pop_to_mark();
    free(sig);
    return rc;
}

/* ---- claims ---- */

/* An optional NumericDate claim (RFC 7519 §2: seconds, possibly fractional). Returns JWT_OK with
 * *present telling whether it was there, or JWT_ERR_CLAIM when it is not a number. */
static int claim_date(const cJSON *payload, const char *name, bool *present, double *v)
{
    const cJSON *c = member(payload, name);
    *present = c != NULL;
    if (!c)
        return JWT_OK;
    if (!cJSON_IsNumber(c))
        return JWT_ERR_CLAIM;
    *v = c->valuedouble;
    return JWT_OK;
}

static int64_t clamp_floor(double d)
{
    if (d >= 9223372036854775807.0) /* 2^63 once rounded to a double */
        return INT64_MAX;
    if (d <= -9223372036854775807.0)
        return INT64_MIN;
    return (int64_t)floor(d);
}

/* RFC 7519 §4.1.4, §4.1.5 and §4.1.6. The comparisons are made in doubles: dates are doubles
 * already, and the rounding of now_s past 2^53 seconds does not matter. */
static int claims_time(const cJSON *payload, double now, double leeway, jwt_claims *out)
{
    bool present;
    double exp = 0, nbf = 0, iat = 0;
    int rc = claim_date(payload, "exp", &present, &exp);
    if (rc != JWT_OK)
        return rc;
    /* presenced requires exp: a token that never expires cannot be revoked by waiting. */
    if (!present)
        return JWT_ERR_MISSING_CLAIM;
    if (!(now < exp + leeway))
        return JWT_ERR_EXPIRED;
    out->exp_s = clamp_floor(exp);
    if ((rc = claim_date(payload, "nbf", &present, &nbf)) != JWT_OK)
        return rc;
    if (present && nbf > now + leeway)
        return JWT_ERR_NOT_YET_VALID;
    if ((rc = claim_date(payload, "iat", &present, &iat)) != JWT_OK)
        return rc;
    /* A token issued in the future comes from a clock we should not trust. */
    if (present && iat > now + leeway)
        return JWT_ERR_NOT_YET_VALID;
    return JWT_OK;
}

/* RFC 7519 §4.1.3: a string or an array of strings; if we identify ourselves with an audience, it
 * must be among them, and a token without "aud" is not meant for us. */
static int claim_aud(const cJSON *payload, const char *expected)
{
    const cJSON *aud = member(payload, "aud");
    bool found = false;
    if (cJSON_IsString(aud)) {
        found = expected && strcmp(aud->valuestring, expected) == 0;
    } else if (cJSON_IsArray(aud)) {
        for (const cJSON *c = aud->child; c; c = c->next) {
            if (!cJSON_IsString(c))
                return JWT_ERR_CLAIM;
            if (expected && strcmp(c->valuestring, expected) == 0)
                found = true;
        }
    } else if (aud) {
        return JWT_ERR_CLAIM;
    }
    return !expected || found ? JWT_OK : JWT_ERR_AUDIENCE;
}

/* RFC 7519 §4.1.1: a case-sensitive string; kept in the claims when present. */
static int claim_iss(const cJSON *payload, const char *expected, jwt_claims *out)
{
    const cJSON *iss = member(payload, "iss");
    if (iss && !cJSON_IsString(iss))
        return JWT_ERR_CLAIM;
    if (expected && (!iss || strcmp(iss->valuestring, expected) != 0))
        return JWT_ERR_ISSUER;
    if (iss && !(out->iss = strdup(iss->valuestring)))
        return JWT_ERR_NOMEM;
    return JWT_OK;
}

/* RFC 7519 §4.1.2: the subject is the user id, with the rules of every other user id. */
static int claim_sub(const cJSON *payload, jwt_claims *out)
{
    const cJSON *sub = member(payload, "sub");
    if (!sub)
        return JWT_ERR_MISSING_CLAIM;
    if (!cJSON_IsString(sub) || !pres_name_valid(sub->valuestring, strlen(sub->valuestring)))
        return JWT_ERR_CLAIM;
    if (!(out->sub = strdup(sub->valuestring)))
        return JWT_ERR_NOMEM;
    return JWT_OK;
}

/* "presence": metadata the issuer vouches for, handed on as compact JSON. */
static int claim_presence(const cJSON *payload, jwt_claims *out)
{
    const cJSON *p = member(payload, "presence");
    if (!p)
        return JWT_OK;
    if (!cJSON_IsObject(p))
        return JWT_ERR_CLAIM;
    buf b;
    buf_init(&b);
    if (json_append(&b, p) < 0 || buf_append_byte(&b, 0) < 0) {
        buf_deinit(&b);
        return JWT_ERR_NOMEM;
    }
    out->presence = (char *)b.data;
    return JWT_OK;
}

/* "rooms": the room names (or name prefixes ending in '*') the user may join. */
static int claim_rooms(const cJSON *payload, jwt_claims *out)
{
    const cJSON *rooms = member(payload, "rooms");
    if (!rooms)
        return JWT_OK;
    if (!cJSON_IsArray(rooms))
        return JWT_ERR_CLAIM;
    size_t n = 0;
    for (const cJSON *c = rooms->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !pres_name_valid(c->valuestring, strlen(c->valuestring)))
            return JWT_ERR_CLAIM;
        n++;
    }
    out->has_rooms = true;
    if (n == 0)
        return JWT_OK;
    out->rooms = calloc(n, sizeof(*out->rooms));
    if (!out->rooms)
        return JWT_ERR_NOMEM;
    for (const cJSON *c = rooms->child; c; c = c->next) {
        if (!(out->rooms[out->nrooms] = strdup(c->valuestring)))
            return JWT_ERR_NOMEM;
        out->nrooms++;
    }
    return JWT_OK;
}

static int claims_extract(const cJSON *payload, const jwt_expect *expect, int64_t now_s,
                          jwt_claims *out)
{
    int rc = claims_time(payload, (double)now_s, (double)expect->leeway_s, out);
    if (rc == JWT_OK)
        rc = claim_iss(payload, expect->issuer, out);
    if (rc == JWT_OK)
        rc = claim_aud(payload, expect->audience);
    if (rc == JWT_OK)
        rc = claim_sub(payload, out);
    if (rc == JWT_OK)
        rc = claim_presence(payload, out);
    if (rc == JWT_OK)
        rc = claim_rooms(payload, out);
    return rc;
}

/* ---- verification ---- */

int jwt_verify(const jwt_key *key, const char *token, size_t len, const jwt_expect *expect,
               int64_t now_s, jwt_claims *out)
{
    static const jwt_expect none = {0};
    memset(out, 0, sizeof(*out));
    if (!expect)
        expect = &none;

    /* RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature). */
    if (len > JWT_TOKEN_MAX || len == 0)
        return JWT_ERR_MALFORMED;
    const char *dot1 = memchr(token, '.', len);
    if (!dot1)
        return JWT_ERR_MALFORMED;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return JWT_ERR_MALFORMED;
    size_t hdr_len = (size_t)(dot1 - token);
    size_t pay_len = (size_t)(dot2 - dot1 - 1);
    size_t sig_len = len - (size_t)(dot2 + 1 - token);
    if (hdr_len == 0 || pay_len == 0)
        return JWT_ERR_MALFORMED;

    uint8_t *hdr_raw = NULL, *pay_raw = NULL;
    size_t hdr_raw_len, pay_raw_len;
    cJSON *hdr = NULL, *payload = NULL;
    int rc = part_decode(token, hdr_len, &hdr_raw, &hdr_raw_len);
    if (rc == JWT_OK)
        rc = part_decode(dot1 + 1, pay_len, &pay_raw, &pay_raw_len);
    if (rc == JWT_OK)
        rc = json_object_parse(hdr_raw, hdr_raw_len, &hdr);
    if (rc == JWT_OK)
        rc = header_check(hdr, key);
    /* Nothing in the payload is looked at before the signature holds (RFC 7515 §5.2 step 8
     * precedes the claims checks of RFC 7519 §7.2 step 10). */
    if (rc == JWT_OK)
        rc = signature_check(key, token, (size_t)(dot2 - token), dot2 + 1, sig_len);
    if (rc == JWT_OK)
        rc = json_object_parse(pay_raw, pay_raw_len, &payload);
    if (rc == JWT_OK)
        rc = claims_extract(payload, expect, now_s, out);
    cJSON_Delete(payload);
    cJSON_Delete(hdr);
    free(pay_raw);
    free(hdr_raw);
    if (rc != JWT_OK)
        jwt_claims_deinit(out);
    return rc;
}

void jwt_claims_deinit(jwt_claims *c)
{
    free(c->sub);
    free(c->iss);
    free(c->presence);
    for (size_t i = 0; i < c->nrooms; i++)
        free(c->rooms[i]);
    free(c->rooms);
    memset(c, 0, sizeof(*c));
}

bool jwt_room_allowed(const jwt_claims *c, const char *room)
{
    if (!c->has_rooms)
        return true;
    for (size_t i = 0; i < c->nrooms; i++) {
        const char *e = c->rooms[i];
        size_t n = strlen(e);
        if (strcmp(e, room) == 0)
            return true;
        if (n > 0 && e[n - 1] == '*' && strncmp(e, room, n - 1) == 0)
            return true;
    }
    return false;
}
