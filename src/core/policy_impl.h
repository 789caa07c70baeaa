/* What the files of the presence policy share (policy.c: connections, identity, commands;
 * policy_view.c: codes, read scope, views and routes). Not a contract: see presenced/policy.h.
 */
#ifndef PRESENCED_POLICY_IMPL_H
#define PRESENCED_POLICY_IMPL_H

#include "presenced/core/map.h"
#include "presenced/core/policy.h"

/* A token bucket: `tokens` refill continuously up to a cap. */
typedef struct policy_bucket {
    double tokens;
    uint64_t at_ms; /* when `tokens` was last brought up to date */
} policy_bucket;

struct policy_conn {
    policy_bucket rate;
    uint32_t rejected;  /* messages refused within the current abuse window */
    uint64_t window_ms; /* start of that window */
    bool closing;       /* being closed on purpose: nothing it sends is acted on any more */
    char addr[];        /* the peer address ("" unknown), as long as it is: one per connection */
};

/* The identified local sockets of one user: their count and a list; and, once an event said
 * them, the user's status and metadata as the store last announced them (policy_user_told). */
typedef struct policy_user {
    uint32_t count;
    policy_sock *first;
    bool told;
    char status[PRES_STATUS_MAX + 1];
    char *metadata;
} policy_user;

struct policy_sock {
    policy_conn *conn;
    void *owner;
    char *user; /* NULL while anonymous */
    char *metadata;
    char status[PRES_STATUS_MAX + 1];
    char asked_status[PRES_STATUS_MAX + 1]; /* auth.status (or identify's), "" when none */
    jwt_claims claims;                      /* auth = jwt: the token in force (rooms, exp) */
    int64_t exp_s;                          /* auth = jwt: when the token expires (0: no token) */
    bool kicked;                            /* closed on purpose by the server: no offline grace */
    bool expired;                           /* its token expired: reported once */
    char **rooms;
    size_t nrooms, caprooms;
    map *subs; /* user ids subscribed to (values unused); NULL until the first */
    policy_sock *prev_of_user, *next_of_user;
};

struct policy {
    policy_opts opts;
    char audience[256], issuer[256];
    jwt_key *key;
    map users;              /* user id -> policy_user */
    map addrs;              /* peer address -> policy_bucket of failed token checks */
    policy_bucket overflow; /* failed token checks of addresses past POLICY_ADDRS_MAX */
    uint32_t identified;
};

bool policy_is_invisible(const char *status);

/* Token buckets: refill `b` up to `now` at `per_s` a second, up to `cap`; take one token if
 * there is one (true). */
void policy_bucket_refill(policy_bucket *b, uint64_t now, double per_s, double cap);
bool policy_bucket_take(policy_bucket *b, uint64_t now, double per_s, double cap);
bool policy_bucket_take_n(policy_bucket *b, uint64_t now, double per_s, double cap, double n);

/* Users: whether `user` has max_sockets_per_user identified sockets here; link an identified
 * socket into its user's list (0 or -1, memory). */
bool policy_user_full(const policy *p, const char *user);
int policy_user_link(policy *p, policy_sock *s);

/* A socket's subscriptions: how many; add one (0 or -1, memory); remove one (whether it was). */
uint32_t policy_sock_subscriptions(const policy_sock *s);
int policy_sock_subscribe(policy *p, policy_sock *s, const char *user);
bool policy_sock_unsubscribe(policy_sock *s, const char *user);

/* A socket's rooms: the index of `room` or -1; add one (0 or -1, memory); remove room `i` and
 * hand its name to the caller. */
long policy_room_index(const policy_sock *s, const char *room);
int policy_room_add(policy_sock *s, const char *room);
char *policy_room_take(policy_sock *s, size_t i);

/* Decisions: start one (answered, nothing to do), refuse with a code and a static message,
 * note a limit or token-check label to count. */
void policy_decision_start(policy_decision *d, policy_cmd cmd);
void policy_refuse(policy_decision *d, policy_code code, const char *message);
void policy_count_limit(policy_decision *d, const char *limit);
void policy_count_auth(policy_decision *d, const char *result);
/* Every message a connection sends takes a token. Returns 0 to go on, or -1 with `d` refused
 * (rate_limited), closing (act CLOSE), or silent (the connection is being closed). */
int policy_admit(policy *p, policy_conn *c, uint64_t now, policy_decision *d);
/* The same for a message that costs `cost` tokens (at most a full bucket). */
int policy_admit_cost(policy *p, policy_conn *c, uint64_t now, double cost, policy_decision *d);

/* Tokens (policy_identity.c). */
typedef enum policy_token_rc {
    POLICY_TOKEN_OK,
    POLICY_TOKEN_ABSENT,
    POLICY_TOKEN_REFUSED,
} policy_token_rc;
/* Read and verify the "token" member of `obj` for socket `s`: OK fills `claims` (the caller
 * owns them), REFUSED says why in `d`. */
policy_token_rc policy_read_token(policy *p, const policy_sock *s, const cJSON *obj, policy_now now,
                                  jwt_claims *claims, policy_decision *d);
/* Identify `s` as `user` (copied) with `metadata` and `claims` (both taken over; claims may be
 * NULL): act OPEN, or `d` refused (memory). */
void policy_identify(policy *p, policy_sock *s, const char *user, char *metadata,
                     jwt_claims *claims, policy_decision *d);
/* Identify `s` from verified claims (taken over), unless its user has too many sockets
 * (limit_exceeded with `full_message`). */
void policy_identify_by_token(policy *p, policy_sock *s, jwt_claims *claims, policy_decision *d,
                              const char *full_message);
/* auth = insecure: identify `s` as the userId of `obj`, with its metadata (act OPEN), unless
 * either is invalid or the user has too many sockets (`d` refused). Returns false, doing nothing,
 * when `obj` names no user. */
bool policy_identify_claimed(policy *p, policy_sock *s, const cJSON *obj, policy_decision *d);
/* The "status" member of `obj` (NULL when absent): 0, or -1 with `d` refused. */
int policy_read_status(const cJSON *obj, const char **status, policy_decision *d);
/* After decision `d` identified `s` (act OPEN): `status` (may be NULL) is what it comes online
 * with. */
void policy_set_initial_status(policy_sock *s, const char *status, const policy_decision *d);
/* Forget the addresses whose failed token checks have all been forgiven. */
void policy_forget_addresses(policy *p, uint64_t now);

#endif
