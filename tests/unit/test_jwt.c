/* Unit tests for jwt: keys and tokens are made here with OpenSSL (HMAC, RSA 2048 and P-256 keys
 * generated at start-up), so every vector is signed for real; each rejection case differs from a
 * valid token in the one property it tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "presenced/codec/jwt.h"

#define NOW 1000000
#define HDR_HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define HDR_RS "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define HDR_ES "{\"alg\":\"ES256\"}"
/* A valid payload: exp 100 s after NOW. */
#define PAY "{\"sub\":\"alice\",\"exp\":1000100}"

static const char secret[] = "0123456789abcdef0123456789abcdef-hs256-test-secret";
static const char secret2[] = "another secret, long enough for HS256, but wrong";

/* Signers: who produces the signature part of a test token. */
typedef enum signer {
    S_HS,       /* HMAC-SHA256 with `secret` */
    S_HS2,      /* HMAC-SHA256 with `secret2` */
    S_RS,       /* RSA key 1 */
    S_RS2,      /* RSA key 2 */
    S_ES,       /* EC key 1, raw R||S */
    S_ES2,      /* EC key 2, raw R||S */
    S_ES_DER,   /* EC key 1, left in OpenSSL's DER form */
    S_HS_RSPEM, /* HMAC keyed with the RSA public key's PEM text: the alg confusion attack */
    S_HS_ESPEM, /* the same with the EC public key's PEM text */
    S_EMPTY,    /* no signature at all */
    /* A good signature with four zero bytes appended, or its last byte cut. */
    S_HS_LONG,
    S_HS_SHORT,
    S_RS_LONG,
    S_ES_LONG,
} signer;

enum { K_HS, K_RS, K_ES, K_COUNT };

static struct {
    EVP_PKEY *rsa, *rsa2, *ec, *ec2;
    char *rsa_pem, *ec_pem;
    jwt_key *key[K_COUNT];
} fx;

static char *pubkey_pem(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    assert_true(n > 0);
    char *pem = malloc((size_t)n + 1);
    assert_non_null(pem);
    memcpy(pem, data, (size_t)n);
    pem[n] = '\0';
    BIO_free(bio);
    return pem;
}

static int setup(void **state)
{
    (void)state;
    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx.ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!fx.rsa || !fx.rsa2 || !fx.ec || !fx.ec2)
        return -1;
    fx.rsa_pem = pubkey_pem(fx.rsa);
    fx.ec_pem = pubkey_pem(fx.ec);
    if (jwt_key_from_secret((const uint8_t *)secret, strlen(secret), &fx.key[K_HS]) != JWT_OK ||
        jwt_key_from_pem(fx.rsa_pem, strlen(fx.rsa_pem), &fx.key[K_RS]) != JWT_OK ||
        jwt_key_from_pem(fx.ec_pem, strlen(fx.ec_pem), &fx.key[K_ES]) != JWT_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < K_COUNT; i++)
        jwt_key_free(fx.key[i]);
    free(fx.rsa_pem);
    free(fx.ec_pem);
    EVP_PKEY_free(fx.rsa);
    EVP_PKEY_free(fx.rsa2);
    EVP_PKEY_free(fx.ec);
    EVP_PKEY_free(fx.ec2);
    return 0;
}

/* ---- token building ---- */

static char *b64url(const uint8_t *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len / 3 * 4 + 5);
    assert_non_null(out);
    size_t n = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[n++] = abc[v >> 18];
        out[n++] = abc[(v >> 12) & 63];
        out[n++] = abc[(v >> 6) & 63];
        out[n++] = abc[v & 63];
    }
    if (len - i == 1) {
        out[n++] = abc[in[i] >> 2];
        out[n++] = abc[(in[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[n++] = abc[v >> 10];
        out[n++] = abc[(v >> 4) & 63];
        out[n++] = abc[(v & 15) << 2];
    }
    out[n] = '\0';
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url((const uint8_t *)s, strlen(s));
}

static size_t sign_pkey(EVP_PKEY *pkey, const char *in, uint8_t *sig, size_t cap)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    size_t n = cap;
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const uint8_t *)in, strlen(in)), 1);
    EVP_MD_CTX_free(ctx);
    return n;
}

/* ES256 wants R||S (RFC 7518 §3.4); OpenSSL produces DER. */
static size_t der_to_raw(uint8_t *sig, size_t len)
{
    const uint8_t *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    assert_non_null(es);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    assert_int_equal(BN_bn2binpad(r, sig, 32), 32);
    assert_int_equal(BN_bn2binpad(s, sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

static size_t hmac(const char *key, const char *in, uint8_t *sig)
{
    unsigned n = 0;
    assert_non_null(
        HMAC(EVP_sha256(), key, (int)strlen(key), (const uint8_t *)in, strlen(in), sig, &n));
    return n;
}

/* The base64url signature of `input` made by `s`. */
static char *sign(signer s, const char *input)
{
    uint8_t sig[1024];
    size_t n = 0;
    switch (s) {
    case S_HS:
        n = hmac(secret, input, sig);
        break;
    case S_HS2:
        n = hmac(secret2, input, sig);
        break;
    case S_HS_RSPEM:
        n = hmac(fx.rsa_pem, input, sig);
        break;
    case S_HS_ESPEM:
        n = hmac(fx.ec_pem, input, sig);
        break;
    case S_RS:
        n = sign_pkey(fx.rsa, input, sig, sizeof(sig));
        break;
    case S_RS2:
        n = sign_pkey(fx.rsa2, input, sig, sizeof(sig));
        break;
    case S_ES:
        n = der_to_raw(sig, sign_pkey(fx.ec, input, sig, sizeof(sig)));
        break;
    case S_ES2:
        n = der_to_raw(sig, sign_pkey(fx.ec2, input, sig, sizeof(sig)));
        break;
    case S_ES_DER:
        n = sign_pkey(fx.ec, input, sig, sizeof(sig));
        break;
    case S_EMPTY:
        n = 0;
        break;
    case S_HS_LONG:
        n = hmac(secret, input, sig);
        memset(sig + n, 0, 4);
        n += 4;
        break;
    case S_HS_SHORT:
        n = hmac(secret, input, sig) - 1;
        break;
    case S_RS_LONG:
        n = sign_pkey(fx.rsa, input, sig, sizeof(sig) - 4);
        memset(sig + n, 0, 4);
        n += 4;
        break;
    case S_ES_LONG:
        n = der_to_raw(sig, sign_pkey(fx.ec, input, sig, sizeof(sig)));
        memset(sig + n, 0, 4);
        n += 4;
        break;
    }
    return b64url(sig, n);
}

/* "<h64>.<p64>.<signature of that>"; the parts are used as given (padded, odd characters...). */
static char *token_raw(signer s, const char *h64, const char *p64)
{
    size_t n = strlen(h64) + 1 + strlen(p64);
    char *input = malloc(n + 1);
    assert_non_null(input);
    snprintf(input, n + 1, "%s.%s", h64, p64);
    char *sig = sign(s, input);
    char *tok = malloc(n + 1 + strlen(sig) + 1);
    assert_non_null(tok);
    sprintf(tok, "%s.%s", input, sig);
    free(sig);
    free(input);
    return tok;
}

static char *token(signer s, const char *hdr, const char *payload)
{
    char *h64 = b64url_str(hdr), *p64 = b64url_str(payload);
    char *tok = token_raw(s, h64, p64);
    free(h64);
    free(p64);
    return tok;
}

static int verify(int key, const char *tok, const jwt_expect *ex, int64_t now, jwt_claims *c)
{
    return jwt_verify(fx.key[key], tok, strlen(tok), ex, now, c);
}

/* Verify and expect `want`; on rejection the claims must be left empty. */
static void check(int key, const char *tok, const jwt_expect *ex, int64_t now, int want,
                  const char *what)
{
    jwt_claims c;
    memset(&c, 0xa5, sizeof(c));
    int rc = verify(key, tok, ex, now, &c);
    if (rc != want)
        fail_msg("%s: got %d (%s), want %d (%s)", what, rc, jwt_strerror(rc), want,
                 jwt_strerror(want));
    if (rc != JWT_OK) {
        assert_null(c.sub);
        assert_null(c.presence);
        assert_null(c.rooms);
        assert_false(c.has_rooms);
    } else {
        assert_non_null(c.sub);
    }
    jwt_claims_deinit(&c);
}

/* ---- tests ---- */

static void test_keys(void **state)
{
    (void)state;
    jwt_key *k = (jwt_key *)1;
    assert_int_equal(jwt_key_from_secret((const uint8_t *)secret, JWT_SECRET_MIN - 1, &k),
                     JWT_ERR_KEY);
    assert_null(k);
    assert_int_equal(jwt_key_from_secret((const uint8_t *)secret, JWT_SECRET_MIN, &k), JWT_OK);
    assert_int_equal(jwt_key_alg(k), JWT_HS256);
    jwt_key_free(k);
    jwt_key_free(NULL);

    assert_int_equal(jwt_key_alg(fx.key[K_RS]), JWT_RS256);
    assert_int_equal(jwt_key_alg(fx.key[K_ES]), JWT_ES256);

    /* Wrong curve, short RSA, a private key, and text that is no key at all. */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(p384);
    assert_non_null(rsa1024);
    char *pem384 = pubkey_pem(p384), *pem1024 = pubkey_pem(rsa1024);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, fx.ec, NULL, NULL, 0, NULL, NULL), 1);
    char *priv;
    long priv_len = BIO_get_mem_data(bio, &priv);
    const struct {
        const char *pem;
        size_t len;
    } bad[] = {
        {pem384, strlen(pem384)},
        {pem1024, strlen(pem1024)},
        {priv, (size_t)priv_len},
        {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
         strlen("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
        {"", 0},
        {fx.ec_pem, strlen(fx.ec_pem) / 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        k = (jwt_key *)1;
        if (jwt_key_from_pem(bad[i].pem, bad[i].len, &k) != JWT_ERR_KEY)
            fail_msg("bad PEM %zu accepted", i);
        assert_null(k);
    }
    BIO_free(bio);
    free(pem384);
    free(pem1024);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa1024);
}

static void test_valid_claims(void **state)
{
    (void)state;
    static const char payload[] =
        "{\"sub\":\"alice\",\"exp\":1000100.5,\"nbf\":999990,\"iat\":1000000,\"iss\":\"auth\","
        "\"aud\":[\"x\",\"presenced\"],\"jti\":\"j1\",\"presence\":{\"role\" : \"admin\","
        "\"n\":9007199254740991,\"tags\":[\"a\",{\"b\":null}]},\"rooms\":[\"lobby\",\"team:*\"]}";
    const struct {
        int key;
        signer s;
        const char *hdr;
    } algs[] = {
        {K_HS, S_HS, HDR_HS},
        {K_RS, S_RS, HDR_RS},
        {K_ES, S_ES, HDR_ES},
    };
    jwt_expect ex = {.audience = "presenced", .issuer = "auth"};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char *tok = token(algs[i].s, algs[i].hdr, payload);
        jwt_claims c;
        assert_int_equal(verify(algs[i].key, tok, &ex, NOW, &c), JWT_OK);
        assert_string_equal(c.sub, "alice");
        assert_string_equal(c.iss, "auth");
        assert_int_equal(c.exp_s, 1000100);
        assert_string_equal(c.presence,
                            "{\"role\":\"admin\",\"n\":9007199254740991,\"tags\":[\"a\",{\"b\":"
                            "null}]}");
        assert_true(c.has_rooms);
        assert_int_equal(c.nrooms, 2);
        assert_string_equal(c.rooms[0], "lobby");
        assert_string_equal(c.rooms[1], "team:*");
        jwt_claims_deinit(&c);
        jwt_claims_deinit(&c);
        assert_null(c.sub);
        free(tok);
    }

    /* The minimal token: no iss, presence or rooms; fractional exp rounds down. */
    char *tok = token(S_HS, "{\"alg\":\"HS256\"}", "{\"exp\":1000100.9,\"sub\":\"b\"}");
    jwt_claims c;
    assert_int_equal(verify(K_HS, tok, NULL, NOW, &c), JWT_OK);
    assert_string_equal(c.sub, "b");
    assert_null(c.iss);
    assert_null(c.presence);
    assert_false(c.has_rooms);
    assert_int_equal(c.exp_s, 1000100);
    jwt_claims_deinit(&c);
    free(tok);
}

/* Tokens built from header and payload JSON; each row is one property. */
struct vec {
    const char *what;
    int key;
    signer s;
    const char *hdr;
    const char *payload;
    uint32_t leeway;
    const char *aud;
    const char *iss;
    int want;
};

static const struct vec vecs[] = {
    {"valid HS256", K_HS, S_HS, HDR_HS, PAY, 0, NULL, NULL, JWT_OK},
    {"valid RS256", K_RS, S_RS, HDR_RS, PAY, 0, NULL, NULL, JWT_OK},
    {"valid ES256", K_ES, S_ES, HDR_ES, PAY, 0, NULL, NULL, JWT_OK},
    /* Wrong key. */
    {"HS256 other secret", K_HS, S_HS2, HDR_HS, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"RS256 other key", K_RS, S_RS2, HDR_RS, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"ES256 other key", K_ES, S_ES2, HDR_ES, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"HS256 signature too long", K_HS, S_HS_LONG, HDR_HS, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"HS256 signature too short", K_HS, S_HS_SHORT, HDR_HS, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"RS256 signature too long", K_RS, S_RS_LONG, HDR_RS, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"ES256 signature too long", K_ES, S_ES_LONG, HDR_ES, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"ES256 DER signature", K_ES, S_ES_DER, HDR_ES, PAY, 0, NULL, NULL, JWT_ERR_SIGNATURE},
    {"RS256 signature on ES256 key", K_ES, S_RS, HDR_RS, PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"ES256 token on HS256 key", K_HS, S_ES, HDR_ES, PAY, 0, NULL, NULL, JWT_ERR_ALG},
    /* Algorithm confusion and "none" (RFC 8725 §2.1). */
    {"HS256 keyed with RSA PEM", K_RS, S_HS_RSPEM, HDR_HS, PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"HS256 keyed with EC PEM", K_ES, S_HS_ESPEM, HDR_HS, PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg none, no signature", K_HS, S_EMPTY, "{\"alg\":\"none\"}", PAY, 0, NULL, NULL,
     JWT_ERR_ALG},
    {"alg none, signed", K_HS, S_HS, "{\"alg\":\"none\"}", PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg None", K_HS, S_HS, "{\"alg\":\"None\"}", PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg lower case", K_HS, S_HS, "{\"alg\":\"hs256\"}", PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg HS512", K_HS, S_HS, "{\"alg\":\"HS512\"}", PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg missing", K_HS, S_HS, "{\"typ\":\"JWT\"}", PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg not a string", K_HS, S_HS, "{\"alg\":1}", PAY, 0, NULL, NULL, JWT_ERR_ALG},
    {"alg with NUL", K_HS, S_HS, "{\"alg\":\"HS256\\u0000x\"}", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"empty signature", K_HS, S_EMPTY, HDR_HS, PAY, 0, NULL, NULL, JWT_ERR_MALFORMED},
    /* Header shape. */
    {"header array", K_HS, S_HS, "[\"HS256\"]", PAY, 0, NULL, NULL, JWT_ERR_MALFORMED},
    {"header string", K_HS, S_HS, "\"HS256\"", PAY, 0, NULL, NULL, JWT_ERR_MALFORMED},
    {"header not JSON", K_HS, S_HS, "{alg:HS256}", PAY, 0, NULL, NULL, JWT_ERR_MALFORMED},
    {"header trailing bytes", K_HS, S_HS, "{\"alg\":\"HS256\"} {}", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"header trailing space", K_HS, S_HS, "{\"alg\":\"HS256\"} \r\n", PAY, 0, NULL, NULL, JWT_OK},
    {"header control whitespace", K_HS, S_HS, "{\"alg\":\"HS256\"}\f", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"header dup alg", K_HS, S_HS, "{\"alg\":\"HS256\",\"alg\":\"none\"}", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"header crit", K_HS, S_HS, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", PAY, 0, NULL,
     NULL, JWT_ERR_MALFORMED},
    {"typ JWS", K_HS, S_HS, "{\"alg\":\"HS256\",\"typ\":\"JWS\"}", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"typ not a string", K_HS, S_HS, "{\"alg\":\"HS256\",\"typ\":1}", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"kid ignored", K_HS, S_HS, "{\"kid\":\"k1\",\"alg\":\"HS256\"}", PAY, 0, NULL, NULL, JWT_OK},
    {"header bad UTF-8", K_HS, S_HS, "{\"alg\":\"HS256\",\"x\":\"\xc3\x28\"}", PAY, 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    /* Payload shape. */
    {"payload array", K_HS, S_HS, HDR_HS, "[" PAY "]", 0, NULL, NULL, JWT_ERR_MALFORMED},
    {"payload dup sub", K_HS, S_HS, HDR_HS, "{\"sub\":\"alice\",\"exp\":1000100,\"sub\":\"root\"}",
     0, NULL, NULL, JWT_ERR_MALFORMED},
    {"payload dup exp", K_HS, S_HS, HDR_HS, "{\"exp\":1,\"sub\":\"alice\",\"exp\":1000100}", 0,
     NULL, NULL, JWT_ERR_MALFORMED},
    {"payload nested dup", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"presence\":{\"r\":1,\"r\":2}}", 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"payload raw control char", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\tb\",\"exp\":1000100}", 0, NULL,
     NULL, JWT_ERR_MALFORMED},
    {"payload NUL escape", K_HS, S_HS, HDR_HS, "{\"sub\":\"alice\\u0000admin\",\"exp\":1000100}", 0,
     NULL, NULL, JWT_ERR_MALFORMED},
    {"payload infinite number", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1e400}", 0, NULL, NULL,
     JWT_ERR_MALFORMED},
    {"payload bad UTF-8", K_HS, S_HS, HDR_HS, "{\"sub\":\"\xed\xa0\x80\",\"exp\":1000100}", 0, NULL,
     NULL, JWT_ERR_MALFORMED},
    /* exp. */
    {"exp missing", K_HS, S_HS, HDR_HS, "{\"sub\":\"alice\"}", 0, NULL, NULL,
     JWT_ERR_MISSING_CLAIM},
    {"exp string", K_HS, S_HS, HDR_HS, "{\"sub\":\"alice\",\"exp\":\"1000100\"}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"exp null", K_HS, S_HS, HDR_HS, "{\"sub\":\"alice\",\"exp\":null}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"exp == now", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000000}", 0, NULL, NULL,
     JWT_ERR_EXPIRED},
    {"exp just after now", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000000.5}", 0, NULL, NULL,
     JWT_OK},
    {"exp past", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":999990}", 10, NULL, NULL,
     JWT_ERR_EXPIRED},
    {"exp past, in leeway", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":999990}", 11, NULL, NULL,
     JWT_OK},
    /* nbf and iat. */
    {"nbf future", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"nbf\":1000001}", 0, NULL,
     NULL, JWT_ERR_NOT_YET_VALID},
    {"nbf future, in leeway", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"nbf\":1000001}",
     1, NULL, NULL, JWT_OK},
    {"nbf == now", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"nbf\":1000000}", 0, NULL,
     NULL, JWT_OK},
    {"nbf string", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"nbf\":\"0\"}", 0, NULL,
     NULL, JWT_ERR_CLAIM},
    {"iat future", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"iat\":1000005}", 0, NULL,
     NULL, JWT_ERR_NOT_YET_VALID},
    {"iat future, in leeway", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"iat\":1000005}",
     5, NULL, NULL, JWT_OK},
    {"iat string", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"iat\":\"x\"}", 0, NULL,
     NULL, JWT_ERR_CLAIM},
    /* aud and iss. */
    {"aud wrong", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"aud\":\"other\"}", 0,
     "presenced", NULL, JWT_ERR_AUDIENCE},
    {"aud right", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"aud\":\"presenced\"}", 0,
     "presenced", NULL, JWT_OK},
    {"aud case differs", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"aud\":\"Presenced\"}", 0, "presenced", NULL,
     JWT_ERR_AUDIENCE},
    {"aud array without us", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"aud\":[\"x\",\"y\"]}", 0, "presenced", NULL,
     JWT_ERR_AUDIENCE},
    {"aud empty array", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"aud\":[]}", 0,
     "presenced", NULL, JWT_ERR_AUDIENCE},
    {"aud missing", K_HS, S_HS, HDR_HS, PAY, 0, "presenced", NULL, JWT_ERR_AUDIENCE},
    {"aud not checked", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"aud\":[\"x\"]}", 0,
     NULL, NULL, JWT_OK},
    {"aud number", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"aud\":7}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"aud array with number", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"aud\":[\"presenced\",7]}", 0, "presenced", NULL,
     JWT_ERR_CLAIM},
    {"iss wrong", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"iss\":\"evil\"}", 0, NULL,
     "auth", JWT_ERR_ISSUER},
    {"iss missing", K_HS, S_HS, HDR_HS, PAY, 0, NULL, "auth", JWT_ERR_ISSUER},
    {"iss right", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"iss\":\"auth\"}", 0, NULL,
     "auth", JWT_OK},
    {"iss number", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"iss\":1}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    /* sub. */
    {"sub missing", K_HS, S_HS, HDR_HS, "{\"exp\":1000100}", 0, NULL, NULL, JWT_ERR_MISSING_CLAIM},
    {"sub empty", K_HS, S_HS, HDR_HS, "{\"sub\":\"\",\"exp\":1000100}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"sub number", K_HS, S_HS, HDR_HS, "{\"sub\":42,\"exp\":1000100}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"sub newline", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\\nb\",\"exp\":1000100}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"sub C1 control", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\\u0085\",\"exp\":1000100}", 0, NULL, NULL,
     JWT_ERR_CLAIM},
    {"sub unicode", K_HS, S_HS, HDR_HS, "{\"sub\":\"\\u00e9\xf0\x9f\x98\x80\",\"exp\":1000100}", 0,
     NULL, NULL, JWT_OK},
    /* presence and rooms. */
    {"presence string", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"presence\":\"admin\"}", 0, NULL, NULL, JWT_ERR_CLAIM},
    {"rooms string", K_HS, S_HS, HDR_HS, "{\"sub\":\"a\",\"exp\":1000100,\"rooms\":\"lobby\"}", 0,
     NULL, NULL, JWT_ERR_CLAIM},
    {"rooms with number", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"rooms\":[\"lobby\",1]}", 0, NULL, NULL, JWT_ERR_CLAIM},
    {"rooms with empty name", K_HS, S_HS, HDR_HS,
     "{\"sub\":\"a\",\"exp\":1000100,\"rooms\":[\"lobby\",\"\"]}", 0, NULL, NULL, JWT_ERR_CLAIM},
};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        char *tok = token(v->s, v->hdr, v->payload);
        jwt_expect ex = {.audience = v->aud, .issuer = v->iss, .leeway_s = v->leeway};
        check(v->key, tok, &ex, NOW, v->want, v->what);
        free(tok);
    }
}

/* sub is a user id: 128 bytes at most. */
static void test_sub_length(void **state)
{
    (void)state;
    char payload[300], sub[130];
    for (size_t n = 127; n <= 129; n++) {
        memset(sub, 'u', n);
        sub[n] = '\0';
        snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":1000100}", sub);
        char *tok = token(S_HS, HDR_HS, payload);
        check(K_HS, tok, NULL, NOW, n <= 128 ? JWT_OK : JWT_ERR_CLAIM, "sub length");
        free(tok);
    }
}

/* A payload swapped in after signing, for each algorithm. */
static void test_forged(void **state)
{
    (void)state;
    const struct {
        int key;
        signer s;
        const char *hdr;
    } algs[] = {{K_HS, S_HS, HDR_HS}, {K_RS, S_RS, HDR_RS}, {K_ES, S_ES, HDR_ES}};
    char *evil = b64url_str("{\"sub\":\"admin\",\"exp\":1000100}");
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char *tok = token(algs[i].s, algs[i].hdr, PAY);
        check(algs[i].key, tok, NULL, NOW, JWT_OK, "unforged");
        char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
        size_t hl = (size_t)(dot1 - tok);
        char *forged = malloc(strlen(tok) + strlen(evil) + 1);
        assert_non_null(forged);
        sprintf(forged, "%.*s.%s%s", (int)hl, tok, evil, dot2);
        check(algs[i].key, forged, NULL, NOW, JWT_ERR_SIGNATURE, "forged payload");
        free(forged);
        free(tok);
    }
    free(evil);
}

/* Form of the compact serialisation; every token here is correctly signed over what it carries,
 * so only the rule under test can reject it. */
static void test_form(void **state)
{
    (void)state;
    char *h64 = b64url_str(HDR_HS); /* 36 characters: no padding needed */
    char *p64 = b64url_str("{\"sub\":\"alice\",\"exp\":1000100}");
    assert_int_equal(strlen(p64) % 4, 3);
    char buf[512];
    char *tok;

    /* Padding on the payload, then on the signature. */
    snprintf(buf, sizeof(buf), "%s=", p64);
    tok = token_raw(S_HS, h64, buf);
    check(K_HS, tok, NULL, NOW, JWT_ERR_MALFORMED, "padded payload");
    free(tok);
    tok = token_raw(S_HS, h64, p64);
    check(K_HS, tok, NULL, NOW, JWT_OK, "unpadded");
    snprintf(buf, sizeof(buf), "%s=", tok);
    check(K_HS, buf, NULL, NOW, JWT_ERR_MALFORMED, "padded signature");

    /* Extra segments and empty parts. */
    snprintf(buf, sizeof(buf), "%s.", tok);
    check(K_HS, buf, NULL, NOW, JWT_ERR_MALFORMED, "trailing dot");
    snprintf(buf, sizeof(buf), "%s.%s", tok, p64);
    check(K_HS, buf, NULL, NOW, JWT_ERR_MALFORMED, "four parts");
    const char *sig = strrchr(tok, '.') + 1;
    snprintf(buf, sizeof(buf), "%s.%s", h64, sig);
    check(K_HS, buf, NULL, NOW, JWT_ERR_MALFORMED, "two parts");
    free(tok);
    tok = token_raw(S_HS, "", p64);
    check(K_HS, tok, NULL, NOW, JWT_ERR_MALFORMED, "empty header");
    free(tok);
    tok = token_raw(S_HS, h64, "");
    check(K_HS, tok, NULL, NOW, JWT_ERR_MALFORMED, "empty payload");
    free(tok);
    check(K_HS, "..", NULL, NOW, JWT_ERR_MALFORMED, "dots");
    check(K_HS, "", NULL, NOW, JWT_ERR_MALFORMED, "empty");

    /* Standard base64 characters, a space, a lone trailing character, and unused bits set in the
     * last character (non-canonical): each signed, each refused. */
    char *std = strdup(p64);
    char *alt = strdup(p64);
    assert_non_null(std);
    assert_non_null(alt);
    const char *bad_parts[4];
    std[3] = '+';
    bad_parts[0] = std;
    snprintf(buf, sizeof(buf), "%.10s %s", p64, p64 + 10);
    bad_parts[1] = strdup(buf);
    snprintf(buf, sizeof(buf), "%sA", h64);
    bad_parts[2] = strdup(buf);
    /* The payload's last character carries 2 bits of data and 4 zero bits. */
    size_t last = strlen(alt) - 1;
    alt[last] = (char)(alt[last] + 1);
    bad_parts[3] = alt;
    for (size_t i = 0; i < 4; i++) {
        tok = i == 2 ? token_raw(S_HS, bad_parts[i], p64) : token_raw(S_HS, h64, bad_parts[i]);
        check(K_HS, tok, NULL, NOW, JWT_ERR_MALFORMED, bad_parts[i]);
        free(tok);
    }
    free((char *)bad_parts[1]);
    free((char *)bad_parts[2]);
    free(std);
    free(alt);

    /* A NUL inside the token: the length, not the terminator, bounds it. */
    tok = token_raw(S_HS, h64, p64);
    size_t n = strlen(tok);
    jwt_claims c;
    char *with_nul = malloc(n + 2);
    assert_non_null(with_nul);
    memcpy(with_nul, tok, n);
    with_nul[n] = '\0';
    with_nul[n + 1] = 'A';
    assert_int_equal(jwt_verify(fx.key[K_HS], with_nul, n + 1, NULL, NOW, &c), JWT_ERR_MALFORMED);
    assert_int_equal(jwt_verify(fx.key[K_HS], with_nul, n, NULL, NOW, &c), JWT_OK);
    jwt_claims_deinit(&c);
    free(with_nul);
    free(tok);
    free(h64);
    free(p64);
}

/* No prefix of a valid token and no single-character change to it verifies (the base64url
 * decoding is canonical, so there is exactly one spelling of a signed token). */
static void test_every_prefix_and_change(void **state)
{
    (void)state;
    char *tok = token(S_HS, HDR_HS, PAY);
    size_t n = strlen(tok);
    jwt_claims c;
    assert_int_equal(jwt_verify(fx.key[K_HS], tok, n, NULL, NOW, &c), JWT_OK);
    jwt_claims_deinit(&c);
    for (size_t i = 0; i < n; i++) {
        if (jwt_verify(fx.key[K_HS], tok, i, NULL, NOW, &c) == JWT_OK)
            fail_msg("prefix of %zu bytes accepted", i);
    }
    static const char repl[] = "AQgw-_.=+/ ";
    for (size_t i = 0; i < n; i++) {
        char orig = tok[i];
        for (const char *r = repl; *r; r++) {
            if (*r == orig)
                continue;
            tok[i] = *r;
            if (jwt_verify(fx.key[K_HS], tok, n, NULL, NOW, &c) == JWT_OK)
                fail_msg("changing byte %zu to '%c' accepted", i, *r);
        }
        /* The next character of the alphabet: flips a low data bit or an unused bit. */
        tok[i] = orig == 'z' ? 'a' : (char)(orig + 1);
        if (orig != '.' && jwt_verify(fx.key[K_HS], tok, n, NULL, NOW, &c) == JWT_OK)
            fail_msg("changing byte %zu to '%c' accepted", i, tok[i]);
        tok[i] = orig;
    }
    free(tok);
}

/* JWT_TOKEN_MAX bounds the whole token. */
static void test_too_long(void **state)
{
    (void)state;
    size_t max_ok = 0, min_bad = SIZE_MAX;
    char *payload = malloc(JWT_TOKEN_MAX);
    assert_non_null(payload);
    for (size_t fill = 5950; fill < 6050; fill++) {
        int n = snprintf(payload, JWT_TOKEN_MAX,
                         "{\"sub\":\"a\",\"exp\":1000100,\"presence\":{\"p\":\"");
        memset(payload + n, 'x', fill);
        strcpy(payload + n + fill, "\"}}");
        char *tok = token(S_HS, HDR_HS, payload);
        size_t len = strlen(tok);
        check(K_HS, tok, NULL, NOW, len <= JWT_TOKEN_MAX ? JWT_OK : JWT_ERR_MALFORMED, "length");
        if (len <= JWT_TOKEN_MAX && len > max_ok)
            max_ok = len;
        if (len > JWT_TOKEN_MAX && len < min_bad)
            min_bad = len;
        free(tok);
    }
    free(payload);
    assert_int_equal(max_ok, JWT_TOKEN_MAX);
    assert_int_equal(min_bad, JWT_TOKEN_MAX + 1);
}

static jwt_claims rooms_claims(const char *rooms_json)
{
    char payload[256];
    if (rooms_json)
        snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":1000100,\"rooms\":%s}",
                 rooms_json);
    else
        snprintf(payload, sizeof(payload), "{\"sub\":\"a\",\"exp\":1000100}");
    char *tok = token(S_HS, HDR_HS, payload);
    jwt_claims c;
    assert_int_equal(verify(K_HS, tok, NULL, NOW, &c), JWT_OK);
    free(tok);
    return c;
}

static void test_rooms(void **state)
{
    (void)state;
    static const struct {
        const char *rooms; /* JSON, or NULL for no claim */
        const char *room;
        bool allowed;
    } cases[] = {
        {NULL, "anything", true},
        {"[]", "lobby", false},
        {"[\"lobby\",\"team:*\"]", "lobby", true},
        {"[\"lobby\",\"team:*\"]", "lobby2", false},
        {"[\"lobby\",\"team:*\"]", "lob", false},
        {"[\"lobby\",\"team:*\"]", "team:red", true},
        {"[\"lobby\",\"team:*\"]", "team:", true},
        {"[\"lobby\",\"team:*\"]", "team", false},
        {"[\"lobby\",\"team:*\"]", "Team:red", false},
        {"[\"lobby\",\"team:*\"]", "other", false},
        {"[\"*\"]", "x", true},
        {"[\"a*b\"]", "a*b", true},
        {"[\"a*b\"]", "axb", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        jwt_claims c = rooms_claims(cases[i].rooms);
        if (jwt_room_allowed(&c, cases[i].room) != cases[i].allowed)
            fail_msg("rooms %s, room %s: want %d", cases[i].rooms ? cases[i].rooms : "(none)",
                     cases[i].room, cases[i].allowed);
        jwt_claims_deinit(&c);
    }
}

static void test_strerror(void **state)
{
    (void)state;
    for (int a = JWT_ERR_NOMEM; a <= JWT_OK; a++) {
        assert_string_not_equal(jwt_strerror(a), jwt_strerror(1));
        for (int b = a + 1; b <= JWT_OK; b++)
            assert_string_not_equal(jwt_strerror(a), jwt_strerror(b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_valid_claims),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_sub_length),
        cmocka_unit_test(test_forged),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_every_prefix_and_change),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
