/* The presence policy: identity. Tokens (with the per-address limit on failed checks), the
 * identity a socket takes at connect, and the other messages that count against a connection's
 * rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_impl.h"
#include "presenced/codec/pres_cmd.h"

/* Failed token checks per address: a bucket of auth_failures_per_min refilled over a minute.
 * Verifying costs a signature check (RSA or ECDSA), and a stream of bad tokens is either a
 * guess at a secret or a way to burn CPU: an address over the limit is not verified at all. */
static policy_bucket *addr_bucket(policy *p, const policy_conn *c, bool create)
{
    if (!c || !c->addr[0] || p->opts.auth_failures_per_min == 0)
        return NULL;
    size_t len = strlen(c->addr);
    policy_bucket *b = map_get(&p->addrs, c->addr, len);
    if (b || !create)
        return b;
    if (p->addrs.count >= POLICY_ADDRS_MAX)
        return &p->overflow;
    if (!(b = calloc(1, sizeof(*b))) || map_put(&p->addrs, c->addr, len, b) < 0) {
        free(b);
        return &p->overflow;
    }
    b->tokens = p->opts.auth_failures_per_min;
    return b;
}

static double policy_addr_rate(const policy *p)
{
    return p->opts.auth_failures_per_min / 60.0;
}

static bool addr_allows(policy *p, const policy_conn *c, uint64_t now)
{
    policy_bucket *b = addr_bucket(p, c, false);
    if (!b && c && c->addr[0] && p->addrs.count >= POLICY_ADDRS_MAX)
        b = &p->overflow;
    if (!b)
        return true;
    policy_bucket_refill(b, now, policy_addr_rate(p), p->opts.auth_failures_per_min);
    return b->tokens >= 1;
}

static void addr_failed(policy *p, const policy_conn *c, uint64_t now)
{
    policy_bucket *b = addr_bucket(p, c, true);
    if (b)
        policy_bucket_take(b, now, policy_addr_rate(p), p->opts.auth_failures_per_min);
}

/* auth = jwt: verify the "token" member of `obj` (RFC 7519 §7.2 through jwt_verify) and check that
 * a "userId" member, if any, names the token's subject: a client cannot pair a good token with
 * another user's id. POLICY_TOKEN_OK fills `claims` (the caller owns them); POLICY_TOKEN_REFUSED
 * says why in `d` (code unauthorized, or rate_limited for an address over its failures). */
policy_token_rc policy_read_token(policy *p, const policy_sock *s, const cJSON *obj, policy_now now,
                                  jwt_claims *claims, policy_decision *d)
{
    memset(claims, 0, sizeof(*claims));
    const cJSON *t = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "token") : NULL;
    if (!t)
        return POLICY_TOKEN_ABSENT;
    if (!addr_allows(p, s->conn, now.ms)) {
        policy_count_limit(d, "auth_failures_per_ip");
        policy_refuse(d, POLICY_E_RATE_LIMITED, "too many failed token checks from this address");
        return POLICY_TOKEN_REFUSED;
    }
    int rc = JWT_ERR_KEY;
    if (cJSON_IsString(t) && p->key) {
        jwt_expect ex = {.audience = p->audience[0] ? p->audience : NULL,
                         .issuer = p->issuer[0] ? p->issuer : NULL,
                         .leeway_s = p->opts.jwt_leeway_s};
        rc = jwt_verify(p->key, t->valuestring, strlen(t->valuestring), &ex, now.wall_s, claims);
    }
    if (rc == JWT_OK) {
        const char *claimed = NULL, *why = NULL;
        int n = pres_cmd_name(obj, "userId", &claimed, &why);
        if (n != PRES_CMD_INVALID && !(n == PRES_CMD_OK && strcmp(claimed, claims->sub) != 0)) {
            policy_count_auth(d, "ok");
            return POLICY_TOKEN_OK;
        }
        jwt_claims_deinit(claims);
        policy_count_auth(d, "user_mismatch");
        rc = JWT_ERR_CLAIM;
    } else {
        policy_count_auth(d, rc == JWT_ERR_EXPIRED ? "expired" : "invalid");
    }
    d->auth_error = rc;
    addr_failed(p, s->conn, now.ms);
    policy_refuse(d, POLICY_E_UNAUTHORIZED, "a valid token is required");
    return POLICY_TOKEN_REFUSED;
}

/* ---- identity ---- */

/* Make `s` belong to `user` (copied), with `metadata` (taken over) and, for auth = jwt, the
 * token's `claims` (taken over; NULL otherwise). Then the store must register it (act OPEN). */
void policy_identify(policy *p, policy_sock *s, const char *user, char *metadata,
                     jwt_claims *claims, policy_decision *d)
{
    if (!(s->user = strdup(user)) || policy_user_link(p, s) < 0) {
        free(s->user);
        s->user = NULL;
        free(metadata);
        if (claims)
            jwt_claims_deinit(claims);
        return policy_refuse(d, POLICY_E_INTERNAL, "out of memory");
    }
    s->metadata = metadata;
    snprintf(s->status, sizeof(s->status), "online");
    if (claims) {
        s->claims = *claims;
        memset(claims, 0, sizeof(*claims));
        s->exp_s = s->claims.exp_s;
    }
    d->act = POLICY_ACT_OPEN;
    d->user = s->user;
    d->metadata = s->metadata;
}

/* auth = jwt: the subject is the user, the "presence" claim the metadata (the token is the
 * backend's word; a client's own metadata is not used), the "rooms" claim bounds what the socket
 * may join and read, and "exp" ends the socket. */
void policy_identify_by_token(policy *p, policy_sock *s, jwt_claims *claims, policy_decision *d,
                              const char *full_message)
{
    if (policy_user_full(p, claims->sub)) {
        jwt_claims_deinit(claims);
        policy_count_limit(d, "sockets_per_user");
        return policy_refuse(d, POLICY_E_LIMIT_EXCEEDED, full_message);
    }
    char *metadata = claims->presence;
    claims->presence = NULL;
    char *sub = claims->sub;
    claims->sub = NULL;
    policy_identify(p, s, sub, metadata, claims, d);
    free(sub);
}

/* auth = insecure: {userId, metadata?} as the client says. Returns 0 with *user (borrowed, NULL
 * when absent) and *metadata (owned), or -1 with `d` refused. */
static int read_claimed(const policy *p, const cJSON *obj, const char **user, char **metadata,
                        policy_decision *d)
{
    const char *why = NULL;
    *user = NULL;
    *metadata = NULL;
    if (pres_cmd_name(obj, "userId", user, &why) == PRES_CMD_INVALID) {
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "invalid userId");
        return -1;
    }
    if (pres_cmd_metadata(obj, "metadata", p->opts.max_metadata_bytes, metadata, &why) ==
        PRES_CMD_INVALID) {
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "invalid metadata");
        return -1;
    }
    return 0;
}

bool policy_identify_claimed(policy *p, policy_sock *s, const cJSON *obj, policy_decision *d)
{
    const char *user;
    char *metadata;
    if (read_claimed(p, obj, &user, &metadata, d) < 0)
        return true;
    if (!user) {
        free(metadata);
        return false;
    }
    if (policy_user_full(p, user)) {
        free(metadata);
        policy_count_limit(d, "sockets_per_user");
        policy_refuse(d, POLICY_E_LIMIT_EXCEEDED, "too many sockets");
        return true;
    }
    policy_identify(p, s, user, metadata, NULL, d);
    return true;
}

/* The keys a CONNECT's auth object may have. A key the server does not know is most likely a
 * typo ({user: "alice"}), which would otherwise connect anonymously without a word. */
static int check_auth_keys(const policy *p, const cJSON *auth, policy_decision *d)
{
    static const char *const known[] = {"userId", "metadata", "status", "token"};
    for (const cJSON *c = auth ? auth->child : NULL; c; c = c->next) {
        size_t k = 0;
        while (k < sizeof(known) / sizeof(known[0]) && strcmp(c->string, known[k]) != 0)
            k++;
        if (k == sizeof(known) / sizeof(known[0])) {
            snprintf(d->text, sizeof(d->text),
                     "unknown auth key \"%.48s\" (auth takes userId, metadata, status%s)",
                     c->string, p->opts.jwt ? ", token" : "");
        } else if (strcmp(c->string, "token") == 0 && !p->opts.jwt) {
            snprintf(d->text, sizeof(d->text),
                     "auth.token is not used (auth = insecure): identify with auth.userId");
        } else if (cJSON_IsNull(c)) {
            /* null would read as absent, and the socket would connect anonymously. */
            snprintf(d->text, sizeof(d->text), "invalid %s", c->string);
        } else {
            continue;
        }
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT, d->text);
        return -1;
    }
    return 0;
}

/* The status a socket asks to come online with (auth.status, presence:identify's status):
 * NULL when absent. Returns 0, or -1 with `d` refused. */
int policy_read_status(const cJSON *obj, const char **status, policy_decision *d)
{
    const char *why = NULL;
    *status = NULL;
    if (pres_cmd_status(obj, "status", status, &why) != PRES_CMD_INVALID)
        return 0;
    policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "invalid status");
    return -1;
}

/* After an identification: the status the user comes online with, if the client gave one (a
 * user already online keeps theirs; the store decides). */
void policy_set_initial_status(policy_sock *s, const char *status, const policy_decision *d)
{
    if (status && d->act == POLICY_ACT_OPEN) {
        snprintf(s->status, sizeof(s->status), "%s", status);
        snprintf(s->asked_status, sizeof(s->asked_status), "%s", status);
    }
}

static void connect_by_token(policy *p, policy_sock *s, const cJSON *auth, policy_now now,
                             policy_decision *d)
{
    jwt_claims claims;
    policy_token_rc rc = policy_read_token(p, s, auth, now, &claims, d);
    if (rc == POLICY_TOKEN_ABSENT) {
        /* No token at all is an anonymous socket (presence:identify may follow); a userId
         * without a token is a claim nobody vouches for. */
        if (auth && cJSON_GetObjectItemCaseSensitive(auth, "userId"))
            policy_refuse(d, POLICY_E_UNAUTHORIZED, "unauthorized");
        return;
    }
    if (rc == POLICY_TOKEN_REFUSED) {
        if (d->code == POLICY_E_UNAUTHORIZED)
            d->message = "unauthorized";
        return;
    }
    policy_identify_by_token(p, s, &claims, d, "too many sockets");
}

void policy_connect(policy *p, policy_sock *s, const cJSON *auth, policy_now now,
                    policy_decision *d)
{
    policy_decision_start(d, POLICY_CMD_IDENTIFY);
    d->at_connect = true;
    if (policy_admit(p, s->conn, now.ms, d) < 0) {
        /* A connection being closed gets no new socket either. */
        if (d->act != POLICY_ACT_CLOSE && d->code == POLICY_OK)
            policy_refuse(d, POLICY_E_RATE_LIMITED, "the connection is closing");
        return;
    }
    if (auth && !cJSON_IsObject(auth))
        return policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "invalid auth");
    const char *status;
    if (check_auth_keys(p, auth, d) < 0 || policy_read_status(auth, &status, d) < 0)
        return;
    if (p->opts.jwt)
        connect_by_token(p, s, auth, now, d);
    else /* Without a userId the socket is anonymous. */
        policy_identify_claimed(p, s, auth, d);
    policy_set_initial_status(s, status, d);
}

void policy_disconnect(policy *p, policy_sock *s, policy_now now, policy_decision *d)
{
    policy_decision_start(d, POLICY_NCMDS);
    d->answer = false;
    /* Leaving cannot be refused, but it counts: connect/disconnect pairs announce the user to
     * everyone twice, and must not come faster than other messages. */
    policy_admit(p, s->conn, now.ms, d);
    d->code = POLICY_OK;
}

void policy_message(policy *p, policy_conn *c, policy_now now, policy_decision *d)
{
    policy_decision_start(d, POLICY_NCMDS);
    d->answer = false;
    policy_admit(p, c, now.ms, d);
    d->code = POLICY_OK;
}

/* Forget the addresses whose failures have all been forgiven: the table holds only addresses
 * that failed within the last minute. */
void policy_forget_addresses(policy *p, uint64_t now)
{
    double cap = p->opts.auth_failures_per_min;
    policy_bucket_refill(&p->overflow, now, policy_addr_rate(p), cap);
    size_t pos = 0, n = 0;
    map_slot *slot;
    char **done = p->addrs.count ? malloc(p->addrs.count * sizeof(*done)) : NULL;
    if (!done)
        return;
    while ((slot = map_next(&p->addrs, &pos))) {
        policy_bucket *b = slot->value;
        policy_bucket_refill(b, now, policy_addr_rate(p), cap);
        if (b->tokens >= cap && (done[n] = strdup(slot->key)))
            n++;
    }
    for (size_t i = 0; i < n; i++) {
        free(map_del(&p->addrs, done[i], strlen(done[i])));
        free(done[i]);
    }
    free(done);
}
