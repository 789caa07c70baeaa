/* The presence policy on a fake clock: the decision for every command in every identity state,
 * auth mode and read setting (one table), then each limit, token expiry and refresh, the read
 * scope, and what each kind of viewer sees of each event. Tokens are signed here with HMAC. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "presenced/core/policy.h"

static const char secret[] = "0123456789abcdef0123456789abcdef-policy-test";
#define WALL 1700000000
#define T0 ((policy_now){.ms = 1000000, .wall_s = WALL})

/* ---- tokens ---- */

static char *b64url(const uint8_t *in, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len * 4 / 3 + 4), *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        *o++ = abc[v >> 18 & 63];
        *o++ = abc[v >> 12 & 63];
        if (i + 1 < len)
            *o++ = abc[v >> 6 & 63];
        if (i + 2 < len)
            *o++ = abc[v & 63];
    }
    *o = 0;
    return out;
}

/* An HS256 token for `sub` expiring at `exp`, with a rooms claim when `rooms` (JSON) is given. */
static char *token(const char *sub, const char *rooms, int64_t exp)
{
    char payload[512], input[1024];
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":%lld%s%s}", sub, (long long)exp,
             rooms ? ",\"rooms\":" : "", rooms ? rooms : "");
    const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *h = b64url((const uint8_t *)hdr, strlen(hdr));
    char *p = b64url((const uint8_t *)payload, strlen(payload));
    snprintf(input, sizeof(input), "%s.%s", h, p);
    uint8_t sig[32];
    unsigned n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)input, strlen(input), sig, &n);
    char *s = b64url(sig, n);
    char *out = malloc(strlen(input) + strlen(s) + 2);
    sprintf(out, "%s.%s", input, s);
    free(h);
    free(p);
    free(s);
    return out;
}

/* ---- fixtures ---- */

typedef struct setup {
    bool jwt, anon_read, scoped, api_key;
    uint32_t rate, burst;
} setup;

static policy *mk(setup s)
{
    policy_opts o = {.jwt = s.jwt,
                     .scoped = s.scoped,
                     .anonymous_read = s.anon_read,
                     .api_privileged = s.api_key,
                     .max_metadata_bytes = 64,
                     .max_bulk_ids = 20000,
                     .max_sockets_per_user = 2,
                     .max_rooms_per_socket = 3,
                     .max_subscriptions_per_socket = 2,
                     .rate_limit = s.rate,
                     .rate_burst = s.burst,
                     .auth_failures_per_min = 3,
                     .hash_seed = 42};
    policy *p = policy_new(&o);
    assert_non_null(p);
    if (s.jwt) {
        jwt_key *key = NULL;
        assert_int_equal(jwt_key_from_secret((const uint8_t *)secret, strlen(secret), &key), 0);
        policy_set_jwt_key(p, key);
    }
    return p;
}

/* "invalid_argument", ... for a refusal; the act's name otherwise; "silent" for no answer. */
static const char *render(const policy_decision *d)
{
    static const char *const acts[] = {"none",      "close",   "open",      "touch",       "join",
                                       "leave",     "status",  "subscribe", "unsubscribe", "query",
                                       "room_page", "refresh", "sync",      "unsync"};
    if (d->code != POLICY_OK)
        return policy_code_name(d->code);
    if (d->act == POLICY_ACT_NONE && !d->answer)
        return "silent";
    return acts[d->act];
}

/* Run one command: `json` is its argument object (NULL: none). Returns render(). */
static const char *cmd_at(policy *p, policy_sock *s, const char *event, const char *json,
                          policy_now now)
{
    static char out[64];
    size_t len = (json ? strlen(json) : 0) + 3;
    char *text = malloc(len);
    snprintf(text, len, "[%s]", json ? json : "");
    cJSON *args = cJSON_Parse(text);
    free(text);
    assert_non_null(args);
    policy_decision d;
    policy_command(p, s, event, args, now, &d);
    snprintf(out, sizeof(out), "%s", render(&d));
    policy_decision_deinit(&d);
    cJSON_Delete(args);
    return out;
}

static const char *cmd(policy *p, policy_sock *s, const char *event, const char *json)
{
    return cmd_at(p, s, event, json, T0);
}

/* A connection and a socket on it, connected with `auth` (JSON or NULL); the outcome of the
 * connect in *outcome. */
static policy_sock *sock_at(policy *p, policy_conn *c, const char *auth, policy_now now,
                            const char **outcome)
{
    static char out[256];
    policy_sock *s = policy_sock_new(p, c, NULL);
    assert_non_null(s);
    cJSON *a = auth ? cJSON_Parse(auth) : NULL;
    policy_decision d;
    policy_connect(p, s, a, now, &d);
    snprintf(out, sizeof(out), "%s:%s", render(&d), d.code ? d.message : "");
    policy_decision_deinit(&d);
    cJSON_Delete(a);
    if (outcome)
        *outcome = out;
    return s;
}

/* An identified socket of "alice" (a token with rooms r1, r2, p* under auth = jwt), or an
 * anonymous one. */
static policy_sock *sock_in_state(policy *p, policy_conn *c, bool jwt, bool identified)
{
    char auth[1024];
    if (!identified)
        return sock_at(p, c, NULL, T0, NULL);
    if (jwt) {
        char *t = token("alice", "[\"r1\",\"r2\",\"p*\"]", WALL + 3600);
        snprintf(auth, sizeof(auth), "{\"token\":\"%s\"}", t);
        free(t);
    } else {
        snprintf(auth, sizeof(auth), "{\"userId\":\"alice\"}");
    }
    const char *outcome;
    policy_sock *s = sock_at(p, c, auth, T0, &outcome);
    assert_string_equal(outcome, "open:");
    return s;
}

/* ---- the policy table ---- */

/* Outcomes by column: insecure/jwt × anonymous/identified × anonymous_reads on/off. */
enum {
    INS_ANON_ON,
    INS_ANON_OFF,
    INS_ID_ON,
    INS_ID_OFF,
    JWT_ANON_ON,
    JWT_ANON_OFF,
    JWT_ID_ON,
    JWT_ID_OFF,
    NCOLS
};

typedef struct row {
    const char *event;
    const char *args; /* "$T" stands for a token of "bob" (identify) or "alice" (refresh) */
    const char *want[NCOLS];
} row;

static const row table[] = {
    {"presence:identify",
     "{\"userId\":\"bob\"}",
     {"open", "open", "already_identified", "already_identified", "unauthorized", "unauthorized",
      "already_identified", "already_identified"}},
    {"presence:identify",
     "{\"token\":\"$T\"}",
     {"invalid_argument", "invalid_argument", "already_identified", "already_identified", "open",
      "open", "already_identified", "already_identified"}},
    {"presence:identify",
     "{\"userId\":\"\"}",
     {"invalid_argument", "invalid_argument", "already_identified", "already_identified",
      "unauthorized", "unauthorized", "already_identified", "already_identified"}},
    {"presence:refresh",
     "{\"token\":\"$T\"}",
     {"invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument",
      "not_identified", "not_identified", "refresh", "refresh"}},
    {"presence:refresh",
     "{\"token\":\"nope\"}",
     {"invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument",
      "not_identified", "not_identified", "unauthorized", "unauthorized"}},
    {"presence:heartbeat",
     "{}",
     {"not_identified", "not_identified", "touch", "touch", "not_identified", "not_identified",
      "touch", "touch"}},
    {"presence:heartbeat",
     "{\"userId\":\"bob\"}",
     {"not_identified", "not_identified", "forbidden", "forbidden", "not_identified",
      "not_identified", "forbidden", "forbidden"}},
    {"presence:room:join",
     "{\"room\":\"r1\"}",
     {"not_identified", "not_identified", "join", "join", "not_identified", "not_identified",
      "join", "join"}},
    {"presence:room:join",
     "{\"room\":\"x\"}",
     {"not_identified", "not_identified", "join", "join", "not_identified", "not_identified",
      "forbidden", "forbidden"}},
    {"presence:room:join",
     "{\"room\":5}",
     {"not_identified", "not_identified", "invalid_argument", "invalid_argument", "not_identified",
      "not_identified", "invalid_argument", "invalid_argument"}},
    {"presence:room:leave",
     "{\"room\":\"x\"}",
     {"not_identified", "not_identified", "leave", "leave", "not_identified", "not_identified",
      "leave", "leave"}},
    {"presence:status",
     "{\"status\":\"away\"}",
     {"not_identified", "not_identified", "status", "status", "not_identified", "not_identified",
      "status", "status"}},
    {"presence:status",
     "{\"status\":\"gone\"}",
     {"not_identified", "not_identified", "invalid_argument", "invalid_argument", "not_identified",
      "not_identified", "invalid_argument", "invalid_argument"}},
    {"presence:subscribe",
     "{\"userIds\":[\"a\"]}",
     {"subscribe", "not_identified", "subscribe", "subscribe", "subscribe", "not_identified",
      "subscribe", "subscribe"}},
    {"presence:unsubscribe",
     "{\"userIds\":[\"a\"]}",
     {"unsubscribe", "unsubscribe", "unsubscribe", "unsubscribe", "unsubscribe", "unsubscribe",
      "unsubscribe", "unsubscribe"}},
    {"presence:query",
     "{\"userIds\":[\"a\",\"b\",\"a\"]}",
     {"query", "not_identified", "query", "query", "query", "not_identified", "query", "query"}},
    {"presence:query",
     "{\"userIds\":[]}",
     {"invalid_argument", "not_identified", "invalid_argument", "invalid_argument",
      "invalid_argument", "not_identified", "invalid_argument", "invalid_argument"}},
    {"presence:room:query",
     "{\"room\":\"r1\"}",
     {"room_page", "not_identified", "room_page", "room_page", "room_page", "not_identified",
      "room_page", "room_page"}},
    {"presence:room:query",
     "{\"room\":\"x\"}",
     {"room_page", "not_identified", "room_page", "room_page", "room_page", "not_identified",
      "forbidden", "forbidden"}},
    {"presence:room:query",
     "{\"room\":\"p9\",\"limit\":5,\"cursor\":\"bob\"}",
     {"room_page", "not_identified", "room_page", "room_page", "room_page", "not_identified",
      "room_page", "room_page"}},
    {"presence:sync",
     "{\"room\":\"r1\"}",
     {"sync", "not_identified", "sync", "sync", "sync", "not_identified", "sync", "sync"}},
    {"presence:sync",
     "{\"room\":\"x\",\"batch_ms\":50}",
     {"sync", "not_identified", "sync", "sync", "sync", "not_identified", "forbidden",
      "forbidden"}},
    {"presence:sync",
     "{\"userIds\":[\"a\",\"b\"]}",
     {"sync", "not_identified", "sync", "sync", "sync", "not_identified", "sync", "sync"}},
    {"presence:sync",
     "{\"room\":\"r1\",\"batch_ms\":20000}",
     {"invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument",
      "invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument"}},
    {"presence:sync",
     "{}",
     {"invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument",
      "invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument"}},
    {"presence:unsync",
     "{\"room\":\"x\"}",
     {"unsync", "unsync", "unsync", "unsync", "unsync", "unsync", "unsync", "unsync"}},
    {"presence:nope",
     "{}",
     {"unknown_event", "unknown_event", "unknown_event", "unknown_event", "unknown_event",
      "unknown_event", "unknown_event", "unknown_event"}},
    {"presence:status",
     "{\"metadata\":{\"n\":1}}",
     {"not_identified", "not_identified", "status", "status", "not_identified", "not_identified",
      "invalid_argument", "invalid_argument"}},
    {"presence:status",
     "{}",
     {"not_identified", "not_identified", "invalid_argument", "invalid_argument", "not_identified",
      "not_identified", "invalid_argument", "invalid_argument"}},
    {"presence:query",
     NULL,
     {"invalid_argument", "not_identified", "invalid_argument", "invalid_argument",
      "invalid_argument", "not_identified", "invalid_argument", "invalid_argument"}},
    {"presence:heartbeat",
     "5",
     {"invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument",
      "invalid_argument", "invalid_argument", "invalid_argument", "invalid_argument"}},
};

static void expand_token(const char *args, bool identified, char *out, size_t cap)
{
    const char *mark = strstr(args, "$T");
    if (!mark) {
        snprintf(out, cap, "%s", args);
        return;
    }
    char *t = token(identified ? "alice" : "bob", NULL, WALL + 7200);
    snprintf(out, cap, "%.*s%s%s", (int)(mark - args), args, t, mark + 2);
    free(t);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof(table) / sizeof(table[0]); r++)
        for (int col = 0; col < NCOLS; col++) {
            bool jwt = col >= JWT_ANON_ON, identified = (col % 4) >= INS_ID_ON,
                 anon_read = col % 2 == 0;
            policy *p = mk((setup){.jwt = jwt, .anon_read = anon_read, .rate = 100, .burst = 100});
            policy_conn *c = policy_conn_new(p, "10.0.0.1");
            policy_sock *s = sock_in_state(p, c, jwt, identified);
            char args[2048];
            if (table[r].args)
                expand_token(table[r].args, identified, args, sizeof(args));
            const char *got = cmd(p, s, table[r].event, table[r].args ? args : NULL);
            if (strcmp(got, table[r].want[col]) != 0)
                fail_msg("%s %s, %s %s anonymous_reads=%s: got %s, want %s", table[r].event,
                         table[r].args ? table[r].args : "(none)", jwt ? "jwt" : "insecure",
                         identified ? "identified" : "anonymous", anon_read ? "on" : "off", got,
                         table[r].want[col]);
            policy_sock_free(p, s);
            policy_conn_free(p, c);
            policy_free(p);
        }
}

/* ---- connect ---- */

static void test_connect(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    const char *o;
    policy_sock *s[6];
    s[0] = sock_at(p, c, "{\"userId\":\"bob\",\"metadata\":{\"a\":1}}", T0, &o);
    assert_string_equal(o, "open:");
    assert_string_equal(policy_sock_user(s[0]), "bob");
    assert_string_equal(policy_sock_metadata(s[0]), "{\"a\":1}");
    assert_string_equal(policy_sock_status(s[0]), "online");
    s[1] = sock_at(p, c, "[1]", T0, &o);
    assert_string_equal(o, "invalid_argument:invalid auth");
    s[2] = sock_at(p, c, "{\"userId\":\"\"}", T0, &o);
    assert_string_equal(o, "invalid_argument:invalid userId");
    s[3] = sock_at(p, c, "{\"userId\":\"bob\",\"metadata\":[]}", T0, &o);
    assert_string_equal(o, "invalid_argument:invalid metadata");
    s[4] = sock_at(p, c, "{\"userId\":\"bob\"}", T0, &o);
    assert_string_equal(o, "open:");
    /* max_sockets_per_user = 2 */
    s[5] = sock_at(p, c, "{\"userId\":\"bob\"}", T0, &o);
    assert_string_equal(o, "limit_exceeded:too many sockets");
    assert_int_equal(policy_sockets(p), 2);
    assert_int_equal(policy_users(p), 1);
    /* The user's sockets are listed, newest first. */
    assert_ptr_equal(policy_user_first(p, "bob"), s[4]);
    assert_ptr_equal(policy_sock_next_of_user(s[4]), s[0]);
    assert_null(policy_sock_next_of_user(s[0]));
    for (int i = 0; i < 6; i++)
        policy_sock_free(p, s[i]);
    assert_int_equal(policy_sockets(p), 0);
    assert_null(policy_user_first(p, "bob"));
    policy_conn_free(p, c);
    policy_free(p);
}

static void test_connect_jwt(void **state)
{
    (void)state;
    policy *p = mk((setup){.jwt = true, .rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "10.0.0.1");
    char auth[1024];
    char *t = token("carol", NULL, WALL + 60);
    const char *o;
    policy_sock *anon = sock_at(p, c, NULL, T0, &o);
    assert_string_equal(o, "none:");
    assert_null(policy_sock_user(anon));
    policy_sock *claim = sock_at(p, c, "{\"userId\":\"carol\"}", T0, &o);
    assert_string_equal(o, "unauthorized:unauthorized");
    snprintf(auth, sizeof(auth), "{\"token\":\"%s\",\"userId\":\"dave\"}", t);
    policy_sock *mismatch = sock_at(p, c, auth, T0, &o);
    assert_string_equal(o, "unauthorized:unauthorized");
    snprintf(auth, sizeof(auth), "{\"token\":\"%s\",\"userId\":\"carol\"}", t);
    policy_sock *ok = sock_at(p, c, auth, T0, &o);
    assert_string_equal(o, "open:");
    assert_string_equal(policy_sock_user(ok), "carol");
    /* Expired (no leeway configured). */
    policy_sock *late = sock_at(p, c, auth, (policy_now){.ms = 2000000, .wall_s = WALL + 60}, &o);
    assert_string_equal(o, "unauthorized:unauthorized");
    free(t);
    policy_sock *socks[] = {anon, claim, mismatch, ok, late};
    for (size_t i = 0; i < 5; i++)
        policy_sock_free(p, socks[i]);
    policy_conn_free(p, c);
    policy_free(p);
}

/* A mistake at connect is answered, naming the key: a typo or a null would otherwise connect
 * anonymously without a word. auth.status is what the user comes online with. */
static void test_connect_mistakes(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    const char *o;
    policy_sock *s[7];
    s[0] = sock_at(p, c, "{\"user\":\"alice\"}", T0, &o);
    assert_string_equal(o, "invalid_argument:unknown auth key \"user\" (auth takes userId, "
                           "metadata, status)");
    s[1] = sock_at(p, c, "{\"userId\":null}", T0, &o);
    assert_string_equal(o, "invalid_argument:invalid userId");
    s[2] = sock_at(p, c, "{\"token\":\"x\"}", T0, &o);
    assert_string_equal(o, "invalid_argument:auth.token is not used (auth = insecure): identify "
                           "with auth.userId");
    s[3] = sock_at(p, c, "{\"userId\":\"alice\",\"status\":\"gone\"}", T0, &o);
    assert_string_equal(o, "invalid_argument:invalid status");
    s[4] = sock_at(p, c, "{\"userId\":\"alice\",\"status\":\"invisible\"}", T0, &o);
    assert_string_equal(o, "open:");
    assert_string_equal(policy_sock_status(s[4]), "invisible");
    s[5] = sock_at(p, c, "{\"status\":\"away\"}", T0, &o);
    assert_string_equal(o, "none:");
    assert_null(policy_sock_user(s[5]));
    assert_string_equal(
        cmd(p, s[5], "presence:identify", "{\"userId\":\"bob\",\"status\":\"dnd\"}"), "open");
    assert_string_equal(policy_sock_status(s[5]), "dnd");
    /* Metadata alone keeps the status (the store keeps it: no status in the decision). */
    policy_decision d;
    cJSON *args = cJSON_Parse("[{\"metadata\":{\"n\":2}}]");
    policy_command(p, s[4], "presence:status", args, T0, &d);
    assert_int_equal(d.act, POLICY_ACT_STATUS);
    assert_null(d.status);
    assert_string_equal(d.metadata, "{\"n\":2}");
    policy_decision_deinit(&d);
    assert_int_equal(policy_sock_status_set(s[4], NULL, "{\"n\":2}"), 0);
    assert_string_equal(policy_sock_status(s[4]), "invisible");
    cJSON_Delete(args);
    s[6] = sock_at(p, c, "{\"userId\":\"carol\",\"metadata\":{},\"status\":\"away\"}", T0, &o);
    assert_string_equal(o, "open:");
    for (int i = 0; i < 7; i++)
        policy_sock_free(p, s[i]);
    policy_conn_free(p, c);
    policy_free(p);
}

/* An unknown event is answered unknown_event, with the command it most likely meant. */
static void test_unknown_event(void **state)
{
    (void)state;
    static const struct {
        const char *event, *message;
    } cases[] = {
        {"presence:join", "unknown event \"presence:join\"; did you mean \"presence:room:join\"?"},
        {"presence:leave",
         "unknown event \"presence:leave\"; did you mean \"presence:room:leave\"?"},
        {"presence:stauts", "unknown event \"presence:stauts\"; did you mean \"presence:status\"?"},
        {"presence:subscibe",
         "unknown event \"presence:subscibe\"; did you mean \"presence:subscribe\"?"},
        {"chat", "unknown event \"chat\"; the commands are listed in docs/protocol.md"},
    };
    policy *p = mk((setup){.rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_in_state(p, c, false, true);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *args = cJSON_Parse("[{}]");
        policy_decision d;
        policy_command(p, s, cases[i].event, args, T0, &d);
        assert_true(d.answer);
        assert_int_equal(d.code, POLICY_E_UNKNOWN_EVENT);
        assert_string_equal(d.message, cases[i].message);
        policy_decision_deinit(&d);
        cJSON_Delete(args);
    }
    assert_string_equal(policy_code_name(POLICY_E_UNKNOWN_EVENT), "unknown_event");
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

/* ---- limits ---- */

/* Every message of a connection takes a token: commands, unknown events, CONNECT and
 * DISCONNECT; a connection that keeps going past the limit is closed and then ignored. */
static void test_rate(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 1, .burst = 3});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_at(p, c, "{\"userId\":\"bob\"}", T0, NULL);           /* token 1 */
    assert_string_equal(cmd(p, s, "presence:heartbeat", "{}"), "touch");        /* 2 */
    assert_string_equal(cmd(p, s, "presence:whatever", "{}"), "unknown_event"); /* 3 */
    assert_string_equal(cmd(p, s, "presence:heartbeat", "{}"), "rate_limited");
    policy_now later = {.ms = T0.ms + 1000, .wall_s = WALL + 1};
    assert_string_equal(cmd_at(p, s, "presence:heartbeat", "{}", later), "touch");
    /* Refusals within the abuse window: rate_burst (3) of them are answered (one was above),
     * the next one closes. */
    for (int i = 0; i < 2; i++)
        assert_string_equal(cmd_at(p, s, "presence:heartbeat", "{}", later), "rate_limited");
    policy_decision d;
    cJSON *args = cJSON_Parse("[{}]");
    policy_command(p, s, "presence:heartbeat", args, later, &d);
    assert_int_equal(d.act, POLICY_ACT_CLOSE);
    assert_string_equal(d.limits[0], "rate");
    assert_string_equal(d.limits[1], "rate_abuse_closed");
    policy_decision_deinit(&d);
    /* Closing: nothing it sends is acted on, not even once the bucket refilled. */
    policy_now much_later = {.ms = T0.ms + 60000, .wall_s = WALL + 60};
    assert_string_equal(cmd_at(p, s, "presence:heartbeat", "{}", much_later), "silent");
    cJSON_Delete(args);
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

/* One connection churning CONNECT / DISCONNECT pairs gets rate_burst messages at once, then
 * rate_limit a second: the announcements it causes are bounded by the rate. */
static void test_rate_churn(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 2, .burst = 4});
    policy_conn *c = policy_conn_new(p, "");
    int opened = 0, refused = 0, closed = 0;
    for (int i = 0; i < 100 && !closed; i++) {
        policy_now now = {.ms = T0.ms + (uint64_t)i * 10, .wall_s = WALL};
        const char *o;
        policy_sock *s = sock_at(p, c, "{\"userId\":\"churner\"}", now, &o);
        if (strncmp(o, "open", 4) == 0) {
            opened++;
            policy_decision d;
            policy_disconnect(p, s, now, &d);
            closed += d.act == POLICY_ACT_CLOSE;
            policy_decision_deinit(&d);
        } else if (strncmp(o, "close", 5) == 0) {
            closed++;
        } else {
            assert_string_equal(o, "rate_limited:too many messages; slow down");
            refused++;
        }
        policy_sock_free(p, s);
    }
    /* 4 tokens at once, 2 a second over the ~1 s the loop spans, 2 per pair. */
    assert_in_range(opened, 2, 4);
    assert_true(refused <= 4);
    assert_int_equal(closed, 1);
    policy_conn_free(p, c);
    policy_free(p);
}

/* Work grows with the ids a command names: every POLICY_IDS_PER_TOKEN ids beyond the first take
 * one more token, so that a client cannot take more of the loop with big queries. */
static void test_rate_cost(void **state)
{
    (void)state;
    policy *p = mk((setup){.anon_read = true, .rate = 1, .burst = 20});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_at(p, c, NULL, T0, NULL); /* 19 tokens left */
    size_t cap = 5000 * 12 + 32;
    char *json = malloc(cap), *w = json;
    w += sprintf(w, "{\"userIds\":[");
    for (int i = 0; i < 5000; i++)
        w += sprintf(w, "%s\"u%d\"", i ? "," : "", i);
    sprintf(w, "]}");
    /* 5000 ids: 1 + 4 tokens each. */
    for (int i = 0; i < 3; i++)
        assert_string_equal(cmd(p, s, "presence:query", json), "query");
    assert_string_equal(cmd(p, s, "presence:query", json), "rate_limited");
    /* The small ones still fit in what is left. */
    assert_string_equal(cmd(p, s, "presence:query", "{\"userIds\":[\"a\"]}"), "query");
    free(json);
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

/* presence:room:join {room}: whether the decision says the command put the socket in the room. */
static bool join_joined(policy *p, policy_sock *s, const char *room)
{
    cJSON *args = cJSON_CreateArray(), *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "room", room);
    cJSON_AddItemToArray(args, obj);
    policy_decision d;
    policy_command(p, s, "presence:room:join", args, T0, &d);
    assert_int_equal(d.act, POLICY_ACT_JOIN);
    bool joined = d.joined;
    policy_decision_deinit(&d);
    cJSON_Delete(args);
    return joined;
}

static void test_rooms_limit(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_at(p, c, "{\"userId\":\"bob\"}", T0, NULL);
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"a\"}"), "join");
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"b\"}"), "join");
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"c\"}"), "join");
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"d\"}"), "limit_exceeded");
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"a\"}"), "join");
    size_t n;
    policy_sock_rooms(s, &n);
    assert_int_equal(n, 3);
    assert_string_equal(cmd(p, s, "presence:room:leave", "{\"room\":\"a\"}"), "leave");
    assert_false(policy_sock_in_room(s, "a"));
    /* The store refused the join: the socket is not in the room after all. */
    assert_true(join_joined(p, s, "d"));
    policy_decision d = {.act = POLICY_ACT_JOIN, .joined = true, .room = "d"};
    policy_undo(p, s, &d);
    assert_false(policy_sock_in_room(s, "d"));
    /* Joining a room the socket is in again, and failing, leaves it in the room: its first join
     * succeeded, and the client was told so. */
    assert_false(join_joined(p, s, "b"));
    d = (policy_decision){.act = POLICY_ACT_JOIN, .joined = false, .room = "b"};
    policy_undo(p, s, &d);
    assert_true(policy_sock_in_room(s, "b"));
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

static void test_subscriptions(void **state)
{
    (void)state;
    policy *p = mk((setup){.anon_read = true, .rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_at(p, c, NULL, T0, NULL);
    cJSON *args = cJSON_Parse("[{\"userIds\":[\"a\",\"a\",\"b\",\"c\"]}]");
    policy_decision d;
    policy_command(p, s, "presence:subscribe", args, T0, &d);
    /* The ids before the one over the limit stay subscribed; the repeat counts once. */
    assert_int_equal(d.code, POLICY_E_LIMIT_EXCEEDED);
    assert_int_equal(d.act, POLICY_ACT_SUBSCRIBE);
    assert_int_equal(d.nids, 2);
    assert_string_equal(d.ids[0], "a");
    assert_string_equal(d.ids[1], "b");
    assert_false(d.touch); /* anonymous: no lastSeen to refresh */
    policy_decision_deinit(&d);
    cJSON_Delete(args);
    assert_true(policy_sock_subscribed(s, "a"));
    assert_false(policy_sock_subscribed(s, "c"));
    args = cJSON_Parse("[{\"userIds\":[\"a\",\"zz\"]}]");
    policy_command(p, s, "presence:unsubscribe", args, T0, &d);
    assert_int_equal(d.nids, 1);
    assert_string_equal(d.ids[0], "a");
    policy_decision_deinit(&d);
    cJSON_Delete(args);
    assert_string_equal(cmd(p, s, "presence:subscribe", "{\"userIds\":[\"c\"]}"), "subscribe");
    /* Undoing a subscription the adapter could not carry out forgets it. */
    policy_decision undo = {.act = POLICY_ACT_SUBSCRIBE, .ids = (const char *[]){"c"}, .nids = 1};
    policy_undo(p, s, &undo);
    assert_false(policy_sock_subscribed(s, "c"));
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

static void test_identify(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *a = sock_at(p, c, "{\"userId\":\"bob\"}", T0, NULL);
    policy_sock *b = sock_at(p, c, "{\"userId\":\"bob\"}", T0, NULL);
    policy_sock *s = sock_at(p, c, NULL, T0, NULL);
    assert_string_equal(cmd(p, s, "presence:identify", "{\"userId\":\"bob\"}"), "limit_exceeded");
    policy_sock_free(p, b);
    assert_string_equal(cmd(p, s, "presence:identify", "{\"userId\":\"bob\"}"), "open");
    /* The store refused: anonymous again, so that the client can retry. */
    policy_decision d = {.act = POLICY_ACT_OPEN};
    policy_undo(p, s, &d);
    assert_null(policy_sock_user(s));
    assert_int_equal(policy_sockets(p), 1);
    /* An identity from the handshake is kept (the store reconciles with it later). */
    d.at_connect = true;
    policy_undo(p, a, &d);
    assert_string_equal(policy_sock_user(a), "bob");
    policy_sock_free(p, a);
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

/* What the store last announced of a local user is what a reconciliation registers them with
 * (after Redis lost its data): events about other users, or other kinds, change nothing; it goes
 * with the user's last local socket. A reset reaches every reader, and only readers. */
static void test_announced(void **state)
{
    (void)state;
    policy *p = mk((setup){.rate = 100, .burst = 100, .anon_read = false});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *a = sock_at(p, c, "{\"userId\":\"bob\"}", T0, NULL);
    const char *st = NULL, *m = NULL;
    assert_false(policy_user_announced(p, "bob", &st, &m));
    pres_event ev = {.type = PRES_EV_ONLINE, .user = "bob", .status = "away", .metadata = "{}"};
    policy_user_told(p, &ev);
    pres_event other = {.type = PRES_EV_UPDATE, .user = "ann", .status = "busy"};
    policy_user_told(p, &other);
    pres_event leave = {.type = PRES_EV_ROOM_JOIN, .user = "bob", .status = "busy", .room = "r"};
    policy_user_told(p, &leave);
    assert_true(policy_user_announced(p, "bob", &st, &m));
    assert_string_equal(st, "away");
    assert_string_equal(m, "{}");
    assert_false(policy_user_announced(p, "ann", &st, &m));
    pres_event upd = {.type = PRES_EV_UPDATE, .user = "bob", .status = "invisible"};
    policy_user_told(p, &upd);
    assert_true(policy_user_announced(p, "bob", &st, &m));
    assert_string_equal(st, "invisible");
    assert_null(m);
    policy_sock_free(p, a);
    assert_false(policy_user_announced(p, "bob", &st, &m));

    pres_event reset = {.type = PRES_EV_RESET, .user = ""}, scratch;
    assert_ptr_equal(policy_view(p, &reset, &(policy_viewer){.identified = true}, &scratch),
                     &reset);
    assert_ptr_equal(policy_view(p, &reset, &(policy_viewer){.api = true}, &scratch), &reset);
    assert_null(policy_view(p, &reset, &(policy_viewer){0}, &scratch));
    policy_conn_free(p, c);
    policy_free(p);
}

/* Failed token checks per address: past auth_failures_per_min (3 here), tokens from that
 * address are refused unchecked, good ones included, until the bucket refills (1 per 20 s). */
static void test_auth_failures_per_address(void **state)
{
    (void)state;
    policy *p = mk((setup){.jwt = true, .rate = 100, .burst = 100});
    policy_conn *bad = policy_conn_new(p, "192.0.2.7"), *other = policy_conn_new(p, "192.0.2.8");
    char good[1024];
    char *t = token("erin", NULL, WALL + 3600);
    snprintf(good, sizeof(good), "{\"token\":\"%s\"}", t);
    free(t);
    const char *o;
    policy_sock *socks[8];
    int n = 0;
    for (int i = 0; i < 3; i++) {
        socks[n++] = sock_at(p, bad, "{\"token\":\"x.y.z\"}", T0, &o);
        assert_string_equal(o, "unauthorized:unauthorized");
    }
    socks[n++] = sock_at(p, bad, good, T0, &o);
    assert_string_equal(o, "rate_limited:too many failed token checks from this address");
    socks[n++] = sock_at(p, other, good, T0, &o);
    assert_string_equal(o, "open:");
    socks[n++] = sock_at(p, bad, good, (policy_now){.ms = T0.ms + 19000, .wall_s = WALL}, &o);
    assert_string_equal(o, "rate_limited:too many failed token checks from this address");
    socks[n++] = sock_at(p, bad, good, (policy_now){.ms = T0.ms + 20001, .wall_s = WALL}, &o);
    assert_string_equal(o, "open:");
    /* presence:identify counts the same way. */
    socks[n] = sock_at(p, bad, NULL, (policy_now){.ms = T0.ms + 20001, .wall_s = WALL}, &o);
    assert_string_equal(cmd_at(p, socks[n], "presence:identify", "{\"token\":\"bad\"}",
                               (policy_now){.ms = T0.ms + 20002, .wall_s = WALL}),
                        "unauthorized");
    assert_string_equal(cmd_at(p, socks[n], "presence:identify", "{\"token\":\"bad\"}",
                               (policy_now){.ms = T0.ms + 20003, .wall_s = WALL}),
                        "rate_limited");
    n++;
    for (int i = 0; i < n; i++)
        policy_sock_free(p, socks[i]);
    policy_conn_free(p, bad);
    policy_conn_free(p, other);
    policy_free(p);
}

/* ---- tokens over time ---- */

static int expired_count;
static void on_expired(policy_sock *s, void *ud)
{
    (void)s, (void)ud;
    expired_count++;
}

static void test_expiry_and_refresh(void **state)
{
    (void)state;
    policy *p = mk((setup){.jwt = true, .rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_in_state(p, c, true, true); /* exp WALL + 3600, rooms r1 r2 p* */
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"r1\"}"), "join");
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"r2\"}"), "join");
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"p7\"}"), "join");
    expired_count = 0;
    policy_tick(p, (policy_now){.ms = T0.ms, .wall_s = WALL + 3599}, on_expired, NULL);
    assert_int_equal(expired_count, 0);
    /* A narrower token: the socket leaves the rooms it no longer allows, with the store. */
    char args[1024];
    char *t = token("alice", "[\"r1\"]", WALL + 7200);
    snprintf(args, sizeof(args), "[{\"token\":\"%s\"}]", t);
    free(t);
    cJSON *a = cJSON_Parse(args);
    policy_decision d;
    policy_command(p, s, "presence:refresh", a, T0, &d);
    assert_int_equal(d.act, POLICY_ACT_REFRESH);
    assert_int_equal(d.nids, 2);
    assert_true((strcmp(d.ids[0], "r2") == 0 && strcmp(d.ids[1], "p7") == 0) ||
                (strcmp(d.ids[0], "p7") == 0 && strcmp(d.ids[1], "r2") == 0));
    assert_string_equal(d.auth_results[1], "refreshed");
    policy_decision_deinit(&d);
    cJSON_Delete(a);
    assert_true(policy_sock_in_room(s, "r1"));
    assert_false(policy_sock_in_room(s, "r2"));
    assert_string_equal(cmd(p, s, "presence:room:join", "{\"room\":\"r2\"}"), "forbidden");
    assert_string_equal(cmd(p, s, "presence:room:query", "{\"room\":\"r2\"}"), "forbidden");
    /* The new exp counts. */
    policy_tick(p, (policy_now){.ms = T0.ms, .wall_s = WALL + 3600}, on_expired, NULL);
    assert_int_equal(expired_count, 0);
    policy_tick(p, (policy_now){.ms = T0.ms, .wall_s = WALL + 7200}, on_expired, NULL);
    assert_int_equal(expired_count, 1);
    policy_tick(p, (policy_now){.ms = T0.ms, .wall_s = WALL + 7300}, on_expired, NULL);
    assert_int_equal(expired_count, 1);
    /* Expired: what it sends is no longer acted on. */
    assert_string_equal(cmd(p, s, "presence:heartbeat", "{}"), "silent");
    /* A token for someone else is refused. */
    t = token("mallory", NULL, WALL + 7200);
    snprintf(args, sizeof(args), "{\"token\":\"%s\"}", t);
    free(t);
    policy_conn *c2 = policy_conn_new(p, "");
    policy_sock *s3 = sock_in_state(p, c2, true, true);
    assert_string_equal(cmd(p, s3, "presence:refresh", args), "forbidden");
    policy_sock_free(p, s);
    policy_sock_free(p, s3);
    policy_conn_free(p, c);
    policy_conn_free(p, c2);
    policy_free(p);
}

/* ---- reads ---- */

static void test_read_scope(void **state)
{
    (void)state;
    policy *p = mk((setup){.jwt = true, .anon_read = false, .rate = 100, .burst = 100});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *anon = sock_in_state(p, c, true, false), *id = sock_in_state(p, c, true, true);
    const char *why = NULL;
    assert_int_equal(policy_read_scope(p, anon, NULL, &why), POLICY_E_NOT_IDENTIFIED);
    assert_non_null(why);
    assert_int_equal(policy_read_scope(p, anon, "r1", &why), POLICY_E_NOT_IDENTIFIED);
    assert_int_equal(policy_read_scope(p, id, NULL, &why), POLICY_OK);
    assert_int_equal(policy_read_scope(p, id, "r1", &why), POLICY_OK);
    assert_int_equal(policy_read_scope(p, id, "p-anything", &why), POLICY_OK);
    assert_int_equal(policy_read_scope(p, id, "q", &why), POLICY_E_FORBIDDEN);
    policy_sock_free(p, anon);
    policy_sock_free(p, id);
    policy_conn_free(p, c);
    policy_free(p);
}

static void test_query_args(void **state)
{
    (void)state;
    policy *p = mk((setup){.anon_read = true, .rate = 1000, .burst = 1000});
    policy_conn *c = policy_conn_new(p, "");
    policy_sock *s = sock_at(p, c, NULL, T0, NULL);
    static const struct {
        const char *args, *want;
    } pages[] = {
        {"{\"room\":\"a\",\"limit\":0}", "invalid_argument"},
        {"{\"room\":\"a\",\"limit\":1001}", "invalid_argument"},
        {"{\"room\":\"a\",\"limit\":2.5}", "invalid_argument"},
        {"{\"room\":\"a\",\"limit\":\"5\"}", "invalid_argument"},
        {"{\"room\":\"a\",\"limit\":1000}", "room_page"},
        {"{\"room\":\"a\",\"cursor\":\"\"}", "room_page"},
        {"{\"room\":\"a\",\"cursor\":null}", "room_page"},
        {"{\"room\":\"a\",\"cursor\":5}", "invalid_argument"},
        {"{\"room\":\"a\",\"cursor\":\"x\",\"cursor\":\"y\"}", "invalid_argument"},
    };
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
        if (strcmp(cmd(p, s, "presence:room:query", pages[i].args), pages[i].want) != 0)
            fail_msg("%s: got %s", pages[i].args, cmd(p, s, "presence:room:query", pages[i].args));
    cJSON *args = cJSON_Parse("[{\"room\":\"a\",\"limit\":7,\"cursor\":\"m\"}]");
    policy_decision d;
    policy_command(p, s, "presence:room:query", args, T0, &d);
    assert_int_equal(d.page_limit, 7);
    assert_string_equal(d.cursor, "m");
    assert_string_equal(d.room, "a");
    policy_decision_deinit(&d);
    cJSON_Delete(args);
    args = cJSON_Parse("[{\"room\":\"a\"}]");
    policy_command(p, s, "presence:room:query", args, T0, &d);
    assert_int_equal(d.page_limit, POLICY_ROOM_PAGE_DEFAULT);
    assert_string_equal(d.cursor, "");
    policy_decision_deinit(&d);
    cJSON_Delete(args);
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
}

/* Repeats go, first occurrences stay in order; 10,000 ids with half of them repeated. */
static void test_ids_unique(void **state)
{
    (void)state;
    policy *p = mk((setup){0});
    const char *ids[] = {"a", "b", "a", "c", "b", "a"};
    assert_int_equal(policy_ids_unique(p, ids, 6), 3);
    assert_string_equal(ids[0], "a");
    assert_string_equal(ids[1], "b");
    assert_string_equal(ids[2], "c");
    enum { N = 10000 };
    static char names[N][16];
    static const char *many[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "u%d", i % (N / 2));
        many[i] = names[i];
    }
    assert_int_equal(policy_ids_unique(p, many, N), N / 2);
    for (int i = 0; i < N / 2; i++)
        assert_ptr_equal(many[i], names[i]);
    policy_free(p);
}

/* ---- what viewers see ---- */

typedef struct view_row {
    pres_event_type type;
    const char *status, *prev;
    /* anonymous (reads on), anonymous (reads off), another user, the user, API, API with key */
    const char *want[6];
} view_row;

static const view_row views[] = {
    {PRES_EV_ONLINE, "online", NULL, {"online", "-", "online", "online", "online", "online"}},
    {PRES_EV_ONLINE, "invisible", NULL, {"-", "-", "-", "-", "-", "online"}},
    {PRES_EV_OFFLINE, "away", NULL, {"offline", "-", "offline", "offline", "offline", "offline"}},
    {PRES_EV_OFFLINE, "invisible", NULL, {"-", "-", "-", "-", "-", "offline"}},
    {PRES_EV_ROOM_JOIN, "online", NULL, {"join", "-", "join", "join", "join", "join"}},
    {PRES_EV_ROOM_JOIN, "invisible", NULL, {"-", "-", "-", "join", "-", "join"}},
    {PRES_EV_ROOM_LEAVE, "invisible", NULL, {"-", "-", "-", "leave", "-", "leave"}},
    {PRES_EV_ROOM_LEAVE, NULL, NULL, {"leave", "-", "leave", "leave", "leave", "leave"}},
    {PRES_EV_UPDATE, "away", "online", {"update", "-", "update", "update", "update", "update"}},
    {PRES_EV_UPDATE,
     "invisible",
     "online",
     {"offline", "-", "offline", "update", "offline", "update"}},
    /* The user's own tabs see their invisibility as it is, never their own offline. */
    {PRES_EV_UPDATE, "busy", "invisible", {"online", "-", "online", "update", "online", "update"}},
    {PRES_EV_UPDATE, "invisible", "invisible", {"-", "-", "-", "update", "-", "update"}},
    {PRES_EV_DISCONNECT, NULL, NULL, {"-", "-", "-", "-", "-", "-"}},
};

static void test_views(void **state)
{
    (void)state;
    static const char *const names[] = {"online", "offline", "join", "leave", "update", "kick"};
    policy *on = mk((setup){.anon_read = true}), *off = mk((setup){.anon_read = false});
    policy *keyed = mk((setup){.api_key = true});
    for (size_t r = 0; r < sizeof(views) / sizeof(views[0]); r++) {
        pres_event ev = {.type = views[r].type,
                         .user = "u",
                         .room = "r",
                         .status = (char *)views[r].status,
                         .prev_status = (char *)views[r].prev,
                         .at = 1234};
        struct {
            policy *p;
            policy_viewer v;
        } cols[6] = {{on, {0}},
                     {off, {0}},
                     {on, {.identified = true}},
                     {on, {.identified = true, .self = true}},
                     {on, {.api = true}},
                     {keyed, {.api = true}}};
        for (int col = 0; col < 6; col++) {
            pres_event scratch;
            const pres_event *shown = policy_view(cols[col].p, &ev, &cols[col].v, &scratch);
            const char *got = shown ? names[shown->type] : "-";
            if (strcmp(got, views[r].want[col]) != 0)
                fail_msg("row %zu column %d: got %s, want %s", r, col, got, views[r].want[col]);
            if (shown == &scratch) {
                assert_int_equal(scratch.last_seen, 1234);
                assert_null(scratch.socket);
            }
        }
    }
    /* Users: an invisible user reads as offline to others. */
    bool online;
    const char *status;
    policy_user_view(on, &(policy_viewer){.identified = true}, true, "invisible", &online, &status);
    assert_false(online);
    assert_string_equal(status, "offline");
    policy_user_view(on, &(policy_viewer){.identified = true, .self = true}, true, "invisible",
                     &online, &status);
    assert_true(online);
    assert_string_equal(status, "invisible");
    policy_user_view(keyed, &(policy_viewer){.api = true}, true, "invisible", &online, &status);
    assert_true(online);
    policy_user_view(on, &(policy_viewer){.api = true}, true, "invisible", &online, &status);
    assert_false(online);
    policy_user_view(on, &(policy_viewer){0}, false, "away", &online, &status);
    assert_string_equal(status, "offline");
    policy_free(on);
    policy_free(off);
    policy_free(keyed);
}

static void test_routes(void **state)
{
    (void)state;
    policy *all = mk((setup){.anon_read = true}), *scoped = mk((setup){.scoped = true});
    char *rooms[] = {"r1", "r2"};
    pres_event ev = {
        .type = PRES_EV_ONLINE, .user = "u", .status = "online", .rooms = rooms, .nrooms = 2};
    pres_event scratch;
    policy_route out[POLICY_ROUTES_MAX];
    assert_int_equal(policy_route_event(all, &ev, &scratch, out), 1);
    assert_int_equal(out[0].to, POLICY_TO_READERS);
    assert_ptr_equal(out[0].ev, &ev);
    assert_int_equal(policy_route_event(scoped, &ev, &scratch, out), 1);
    assert_int_equal(out[0].to, POLICY_TO_WATCHERS);
    ev.type = PRES_EV_UPDATE;
    ev.status = "invisible";
    ev.prev_status = "online";
    /* Turning invisible reads as leaving each room, then going offline, to others; the user's
     * own sockets get the update itself. */
    assert_int_equal(policy_route_event(scoped, &ev, &scratch, out), 3);
    assert_int_equal(out[0].to, POLICY_TO_EACH_ROOM);
    assert_int_equal(out[0].as, PRES_EV_ROOM_LEAVE);
    assert_true(out[0].but_own);
    assert_int_equal(out[1].ev->type, PRES_EV_OFFLINE);
    assert_true(out[1].but_own);
    assert_int_equal(out[1].ev->nrooms, 2); /* still routed by the user's rooms */
    assert_int_equal(out[2].to, POLICY_TO_OWN);
    assert_ptr_equal(out[2].ev, &ev);
    /* Visible again: online, then joining each room. */
    ev.status = "away";
    ev.prev_status = "invisible";
    assert_int_equal(policy_route_event(all, &ev, &scratch, out), 3);
    assert_int_equal(out[0].ev->type, PRES_EV_ONLINE);
    assert_int_equal(out[1].to, POLICY_TO_EACH_ROOM);
    assert_int_equal(out[1].as, PRES_EV_ROOM_JOIN);
    assert_int_equal(out[2].to, POLICY_TO_OWN);
    assert_int_equal(out[2].ev->type, PRES_EV_UPDATE);
    pres_event_type as;
    assert_false(
        policy_view_rooms(all, &ev, &(policy_viewer){.identified = true, .self = true}, &as));
    assert_true(policy_view_rooms(all, &ev, &(policy_viewer){.api = true}, &as));
    ev.status = "busy";
    ev.prev_status = "away";
    assert_false(policy_view_rooms(all, &ev, &(policy_viewer){.identified = true}, &as));
    ev.status = "invisible";
    ev.prev_status = "online";
    ev.type = PRES_EV_ROOM_JOIN;
    ev.room = "r1";
    assert_int_equal(policy_route_event(all, &ev, &scratch, out), 1);
    assert_int_equal(out[0].to, POLICY_TO_OWN_IN_ROOM);
    ev.status = "busy";
    assert_int_equal(policy_route_event(all, &ev, &scratch, out), 1);
    assert_int_equal(out[0].to, POLICY_TO_ROOM);
    ev.type = PRES_EV_OFFLINE;
    ev.status = "invisible";
    assert_int_equal(policy_route_event(all, &ev, &scratch, out), 0);
    ev.type = PRES_EV_DISCONNECT;
    assert_int_equal(policy_route_event(all, &ev, &scratch, out), 1);
    assert_int_equal(out[0].to, POLICY_TO_KICK_USER);
    assert_false(policy_readers_identified_only(all));
    assert_true(policy_readers_identified_only(scoped));
    policy_free(all);
    policy_free(scoped);
}

static void test_codes(void **state)
{
    (void)state;
    assert_string_equal(policy_code_name(POLICY_E_RATE_LIMITED), "rate_limited");
    assert_int_equal(policy_code_http_status(POLICY_E_RATE_LIMITED), 429);
    assert_int_equal(policy_code_http_status(POLICY_E_INVALID_ARGUMENT), 400);
    assert_int_equal(policy_code_http_status(POLICY_E_INTERNAL), 500);
    for (int c = 0; c < POLICY_NCMDS - 1; c++)
        assert_int_equal(policy_cmd_of(policy_cmd_name((policy_cmd)c)), c);
    assert_int_equal(policy_cmd_of("presence:join"), POLICY_CMD_UNKNOWN);
    assert_null(policy_cmd_name(POLICY_CMD_UNKNOWN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_connect_jwt),
        cmocka_unit_test(test_connect_mistakes),
        cmocka_unit_test(test_unknown_event),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_rate_churn),
        cmocka_unit_test(test_rate_cost),
        cmocka_unit_test(test_rooms_limit),
        cmocka_unit_test(test_subscriptions),
        cmocka_unit_test(test_identify),
        cmocka_unit_test(test_auth_failures_per_address),
        cmocka_unit_test(test_expiry_and_refresh),
        cmocka_unit_test(test_read_scope),
        cmocka_unit_test(test_query_args),
        cmocka_unit_test(test_ids_unique),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_announced),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
