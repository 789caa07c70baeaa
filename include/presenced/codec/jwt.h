/* jwt — verification of JSON Web Tokens in JWS compact serialisation (RFC 7519, RFC 7515 §7.1)
 * signed with HS256, RS256 or ES256 (RFC 7518 §3), and extraction of the claims presenced uses.
 *
 * Each key carries exactly one algorithm and a token is verified only with the algorithm of the
 * key it is checked against: the token's "alg" header never chooses how it is verified (so no
 * "none", and no RS256 public key used as an HMAC secret). Pure code: no I/O, no clock (the caller
 * passes the time), no globals, no logging. OpenSSL does the cryptography.
 */
#ifndef PRESENCED_JWT_H
#define PRESENCED_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token accepted, in bytes. Tokens travel in the Socket.IO CONNECT payload; a bound keeps
 * the work an unauthenticated peer can cause small. */
#define JWT_TOKEN_MAX 8192
/* RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash output. */
#define JWT_SECRET_MIN 32
/* Smallest RSA modulus accepted for RS256, in bits (RFC 7518 §3.3 says 2048 or larger MUST). */
#define JWT_RSA_MIN_BITS 2048

typedef enum jwt_alg {
    JWT_HS256 = 1, /* HMAC with SHA-256 */
    JWT_RS256 = 2, /* RSASSA-PKCS1-v1_5 with SHA-256 */
    JWT_ES256 = 3, /* ECDSA on P-256 with SHA-256 */
} jwt_alg;

enum {
    JWT_OK = 0,
    /* Not three base64url parts, longer than JWT_TOKEN_MAX, padding or bad characters, header or
     * payload not a JSON object, invalid UTF-8, a member name given twice, a "typ" other than
     * "JWT", "crit" present, or an empty signature. */
    JWT_ERR_MALFORMED = -1,
    /* "alg" missing, not supported, "none", or not the algorithm of the key. */
    JWT_ERR_ALG = -2,
    /* The signature does not verify with the key. */
    JWT_ERR_SIGNATURE = -3,
    /* now >= exp + leeway. */
    JWT_ERR_EXPIRED = -4,
    /* nbf > now + leeway, or iat > now + leeway. */
    JWT_ERR_NOT_YET_VALID = -5,
    /* An audience is expected and "aud" is absent or does not name it. */
    JWT_ERR_AUDIENCE = -6,
    /* An issuer is expected and "iss" is absent or is another. */
    JWT_ERR_ISSUER = -7,
    /* "exp" or "sub" is absent. */
    JWT_ERR_MISSING_CLAIM = -8,
    /* A claim has the wrong type or value: "sub" not a valid user id, "rooms" not an array of
     * room names, "presence" not an object, a date not a number, "aud" or "iss" not strings. */
    JWT_ERR_CLAIM = -9,
    /* Key creation only: a secret too short, or PEM text that is not an accepted public key. */
    JWT_ERR_KEY = -10,
    JWT_ERR_NOMEM = -11,
};

/* A verification key. Opaque; created by jwt_key_from_secret() or jwt_key_from_pem(). */
typedef struct jwt_key jwt_key;

/* What the verifier expects besides a good signature. All fields may be zero/NULL. */
typedef struct jwt_expect {
    /* NULL: "aud" is only type-checked; else it must be this string or an array containing it. */
    const char *audience;
    /* NULL: "iss" is only type-checked; else it must equal this. */
    const char *issuer;
    /* Clock skew allowed on exp, nbf and iat, in seconds. */
    uint32_t leeway_s;
} jwt_expect;

/* The claims of a verified token. Owns every pointer in it: free with jwt_claims_deinit(). */
typedef struct jwt_claims {
    char *sub;      /* the user id: 1..128 bytes of UTF-8 without control characters */
    char *iss;      /* the issuer, or NULL when absent */
    int64_t exp_s;  /* "exp" rounded down (and clamped to the int64_t range) */
    char *presence; /* compact JSON text of the "presence" object, or NULL when absent */
    bool has_rooms; /* false: no "rooms" claim (every room is allowed) */
    char **rooms;   /* the "rooms" entries (has_rooms and nrooms > 0), else NULL */
    size_t nrooms;  /* may be 0 with has_rooms: no room is allowed */
} jwt_claims;

/* Static text for a JWT_ERR_* code. */
const char *jwt_strerror(int err);

/* Create an HS256 key from `len` secret bytes (copied; the caller keeps its buffer). The secret
 * must be at least JWT_SECRET_MIN bytes. Returns JWT_OK with *out set (the caller owns it; free
 * with jwt_key_free()), JWT_ERR_KEY or JWT_ERR_NOMEM (*out is NULL). */
int jwt_key_from_secret(const uint8_t *secret, size_t len, jwt_key **out);

/* Create a key from `len` bytes of PEM text holding one SubjectPublicKeyInfo
 * ("-----BEGIN PUBLIC KEY-----"): an RSA key of at least JWT_RSA_MIN_BITS bits gives an RS256 key,
 * an EC key on P-256 gives an ES256 key; anything else is JWT_ERR_KEY. The text is only read.
 * Returns as jwt_key_from_secret(). */
int jwt_key_from_pem(const char *pem, size_t len, jwt_key **out);

/* The one algorithm the key verifies. */
jwt_alg jwt_key_alg(const jwt_key *key);

/* Free a key (the HMAC secret is wiped first). NULL is allowed. */
void jwt_key_free(jwt_key *key);

/* Verify the `len` bytes of `token` (not necessarily NUL-terminated) with `key` at time `now_s`
 * (seconds since the epoch), in this order:
 *  1. form: at most JWT_TOKEN_MAX bytes, exactly three parts separated by '.', each canonical
 *     unpadded base64url (RFC 7515 §2, §7.1); the header and payload parts non-empty;
 *  2. header: a JSON object (no duplicate names anywhere, strings valid UTF-8) with a string "alg"
 *     equal to the key's algorithm, "typ" equal to "JWT" if present, and no "crit" (RFC 7515
 *     §4.1.11: we understand no extension, so a token that demands one is refused);
 *  3. signature over "<header>.<payload>" (RFC 7515 §5.2), compared in constant time for HS256;
 *     an ES256 signature is the 64-byte R||S of RFC 7518 §3.4;
 *  4. payload: a JSON object as strict as the header; then the claims: "exp" (required number,
 *     now < exp + leeway), "nbf" (optional number, nbf <= now + leeway), "iat" (optional number,
 *     iat <= now + leeway), "aud" (optional string or array of strings), "iss" (optional string),
 *     "sub" (required user id), "presence" (optional object), "rooms" (optional array of room
 *     names; an entry ending in '*' stands for every room that starts with what precedes it).
 * `expect` may be NULL (no audience or issuer check, no leeway). Nothing is kept from `token`.
 * Returns JWT_OK with `out` filled (the caller owns it: jwt_claims_deinit()), or a negative
 * JWT_ERR_* code with `out` zeroed (nothing to free). */
int jwt_verify(const jwt_key *key, const char *token, size_t len, const jwt_expect *expect,
               int64_t now_s, jwt_claims *out);

/* Free what the claims own and zero them. Safe to call twice. */
void jwt_claims_deinit(jwt_claims *c);

/* True when the token allows joining `room` (NUL-terminated): there is no "rooms" claim, or an
 * entry equals `room`, or an entry ending in '*' is a prefix of `room` without its '*'. */
bool jwt_room_allowed(const jwt_claims *c, const char *room);

#endif
