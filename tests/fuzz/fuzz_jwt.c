/* Fuzz jwt_verify with a fixed HS256 key.
 *
 * Pass 1 feeds the input as a token, as a peer would send it. Mutations almost never carry a
 * valid MAC, so pass 2 also re-signs what the input has before its second '.' (the header and
 * payload parts) with the same key and verifies that: this lets the fuzzer reach the payload and
 * claims code past the signature check.
 * Properties: no crash, no leak, no read outside the input; an accepted token is at most
 * JWT_TOKEN_MAX bytes, its "sub" is a valid user id, "presence" is compact JSON of an object and
 * every "rooms" entry is a valid room name; a rejection leaves the claims empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "presenced/codec/jwt.h"
#include "presenced/codec/pres_cmd.h"

#include "fuzz_check.h"

/* The key of the seed tokens in corpus/fuzz_jwt (made with this secret). */
#define FUZZ_SECRET "presenced-fuzz-jwt-hs256-secret-0123456789"
/* 2023-11-14; the seeds expire in 2100. */
#define FUZZ_NOW 1700000000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jwt_key *key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(jwt_key_from_secret((const uint8_t *)FUZZ_SECRET, strlen(FUZZ_SECRET), &key) ==
               JWT_OK);
    return 0;
}

static void check_claims(int rc, const jwt_claims *c, size_t len, const jwt_expect *ex)
{
    if (rc != JWT_OK) {
        FUZZ_CHECK(rc < 0 && rc >= JWT_ERR_NOMEM);
        FUZZ_CHECK(!c->sub && !c->iss && !c->presence && !c->rooms && !c->has_rooms);
        FUZZ_CHECK(c->nrooms == 0);
        return;
    }
    FUZZ_CHECK(len <= JWT_TOKEN_MAX);
    FUZZ_CHECK(c->sub && pres_name_valid(c->sub, strlen(c->sub)));
    FUZZ_CHECK(c->exp_s >= FUZZ_NOW - (int64_t)(ex ? ex->leeway_s : 0) - 1);
    if (ex && ex->issuer)
        FUZZ_CHECK(c->iss && strcmp(c->iss, ex->issuer) == 0);
    if (c->presence) {
        cJSON *p = cJSON_Parse(c->presence);
        FUZZ_CHECK(cJSON_IsObject(p));
        cJSON_Delete(p);
    }
    FUZZ_CHECK(c->has_rooms || (!c->rooms && c->nrooms == 0));
    FUZZ_CHECK((c->nrooms == 0) == (c->rooms == NULL));
    for (size_t i = 0; i < c->nrooms; i++) {
        FUZZ_CHECK(pres_name_valid(c->rooms[i], strlen(c->rooms[i])));
        FUZZ_CHECK(jwt_room_allowed(c, c->rooms[i]));
    }
    (void)jwt_room_allowed(c, c->sub);
}

static void verify_both(const char *tok, size_t len)
{
    static const jwt_expect strict = {.audience = "presenced", .issuer = "fuzz", .leeway_s = 30};
    jwt_claims c;
    int rc = jwt_verify(key, tok, len, NULL, FUZZ_NOW, &c);
    check_claims(rc, &c, len, NULL);
    jwt_claims_deinit(&c);
    rc = jwt_verify(key, tok, len, &strict, FUZZ_NOW, &c);
    check_claims(rc, &c, len, &strict);
    jwt_claims_deinit(&c);
}

static void b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = abc[(acc >> bits) & 63];
            acc &= (1u << bits) - 1;
        }
    }
    if (bits)
        *out++ = abc[(acc << (6 - bits)) & 63];
    *out = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Pass 1: the bytes as they came. */
    verify_both((const char *)data, size);

    /* Pass 2: "<header>.<payload>" re-signed. */
    const uint8_t *dot = memchr(data, '.', size);
    size_t input_len = size;
    if (dot) {
        const uint8_t *dot2 = memchr(dot + 1, '.', size - (size_t)(dot + 1 - data));
        if (dot2)
            input_len = (size_t)(dot2 - data);
    }
    if (input_len > JWT_TOKEN_MAX)
        return 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    FUZZ_CHECK(
        HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET), data, input_len, mac, &mac_len));
    /* 32 bytes of MAC are 43 base64url characters; one more for the NUL. */
    char *tok = malloc(input_len + 1 + 44);
    FUZZ_CHECK(tok);
    memcpy(tok, data, input_len);
    tok[input_len] = '.';
    b64url(mac, mac_len, tok + input_len + 1);
    verify_both(tok, input_len + 1 + 43);
    free(tok);
    return 0;
}
