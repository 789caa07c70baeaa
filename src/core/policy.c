/* The presence policy: connections and their rates, sockets and their identity, the commands.
 * Codes, read scope, views and routes are in policy_view.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_impl.h"
#include "presenced/codec/vec.h"
#include "presenced/codec/pres_cmd.h"

/* ---- token buckets ---- */

/* Bring `b` up to `now` at `per_s` tokens a second, up to `cap`. */
void policy_bucket_refill(policy_bucket *b, uint64_t now, double per_s, double cap)
{
    if (now > b->at_ms) {
        b->tokens += (double)(now - b->at_ms) * per_s / 1000.0;
        if (b->tokens > cap)
            b->tokens = cap;
        b->at_ms = now;
    }
}

bool policy_bucket_take(policy_bucket *b, uint64_t now, double per_s, double cap)
{
    return policy_bucket_take_n(b, now, per_s, cap, 1);
}

bool policy_bucket_take_n(policy_bucket *b, uint64_t now, double per_s, double cap, double n)
{
    policy_bucket_refill(b, now, per_s, cap);
    if (b->tokens < n)
        return false;
    b->tokens -= n;
    return true;
}

static double rate_cap(const policy *p)
{
    return p->opts.rate_burst ? p->opts.rate_burst : 1;
}

/* ---- lifecycle ---- */

policy *policy_new(const policy_opts *opts)
{
    policy *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->opts = *opts;
    snprintf(p->audience, sizeof(p->audience), "%s", opts->jwt_audience ? opts->jwt_audience : "");
    snprintf(p->issuer, sizeof(p->issuer), "%s", opts->jwt_issuer ? opts->jwt_issuer : "");
    p->opts.jwt_audience = p->opts.jwt_issuer = NULL;
    map_init(&p->users, opts->hash_seed);
    map_init(&p->addrs, opts->hash_seed ^ 0x9e3779b97f4a7c15ULL);
    p->overflow.tokens = opts->auth_failures_per_min;
    return p;
}

void policy_free(policy *p)
{
    if (!p)
        return;
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&p->addrs, &pos)))
        free(slot->value);
    map_deinit(&p->addrs);
    pos = 0;
    while ((slot = map_next(&p->users, &pos))) {
        policy_user *u = slot->value;
        free(u->metadata);
        free(u);
    }
    map_deinit(&p->users);
    jwt_key_free(p->key);
    free(p);
}

void policy_set_jwt_key(policy *p, jwt_key *key)
{
    jwt_key_free(p->key);
    p->key = key;
}

const policy_opts *policy_options(const policy *p)
{
    return &p->opts;
}

policy_conn *policy_conn_new(policy *p, const char *addr)
{
    size_t len = addr ? strlen(addr) : 0;
    policy_conn *c = calloc(1, sizeof(*c) + len + 1);
    if (!c)
        return NULL;
    c->rate.tokens = rate_cap(p);
    memcpy(c->addr, addr ? addr : "", len);
    return c;
}

void policy_conn_free(policy *p, policy_conn *c)
{
    (void)p;
    free(c);
}

/* ---- users ---- */

static policy_user *user_find(const policy *p, const char *user)
{
    return map_get(&p->users, user, strlen(user));
}

policy_sock *policy_user_first(const policy *p, const char *user)
{
    policy_user *u = user_find(p, user);
    return u ? u->first : NULL;
}

uint32_t policy_sockets(const policy *p)
{
    return p->identified;
}

uint32_t policy_users(const policy *p)
{
    return (uint32_t)p->users.count;
}

/* Whether `user` has max_sockets_per_user identified sockets here already. */
bool policy_user_full(const policy *p, const char *user)
{
    const policy_user *u = user_find(p, user);
    return p->opts.max_sockets_per_user && u && u->count >= p->opts.max_sockets_per_user;
}

int policy_user_link(policy *p, policy_sock *s)
{
    policy_user *u = user_find(p, s->user);
    if (!u) {
        if (!(u = calloc(1, sizeof(*u))) || map_put(&p->users, s->user, strlen(s->user), u) < 0) {
            free(u);
            return -1;
        }
    }
    s->prev_of_user = NULL;
    s->next_of_user = u->first;
    if (u->first)
        u->first->prev_of_user = s;
    u->first = s;
    u->count++;
    p->identified++;
    return 0;
}

static void user_unlink(policy *p, policy_sock *s)
{
    policy_user *u = user_find(p, s->user);
    if (!u)
        return;
    if (s->prev_of_user)
        s->prev_of_user->next_of_user = s->next_of_user;
    else
        u->first = s->next_of_user;
    if (s->next_of_user)
        s->next_of_user->prev_of_user = s->prev_of_user;
    s->prev_of_user = s->next_of_user = NULL;
    p->identified--;
    if (--u->count == 0) {
        map_del(&p->users, s->user, strlen(s->user));
        free(u->metadata);
        free(u);
    }
}

void policy_user_told(policy *p, const pres_event *ev)
{
    if (ev->type != PRES_EV_ONLINE && ev->type != PRES_EV_UPDATE)
        return;
    policy_user *u = user_find(p, ev->user);
    char *m = u && ev->metadata ? strdup(ev->metadata) : NULL;
    if (!u || (ev->metadata && !m))
        return; /* not a local user, or out of memory: the sockets' own word stays */
    snprintf(u->status, sizeof(u->status), "%s", ev->status ? ev->status : "online");
    free(u->metadata);
    u->metadata = m;
    u->told = true;
}

bool policy_user_announced(const policy *p, const char *user, const char **status,
                           const char **metadata)
{
    const policy_user *u = user_find(p, user);
    if (!u || !u->told)
        return false;
    *status = u->status;
    *metadata = u->metadata;
    return true;
}

/* ---- sockets ---- */

policy_sock *policy_sock_new(policy *p, policy_conn *c, void *owner)
{
    (void)p;
    policy_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->conn = c;
    s->owner = owner;
    return s;
}

/* Make the socket anonymous again. */
static void forget_identity(policy *p, policy_sock *s)
{
    if (!s->user)
        return;
    user_unlink(p, s);
    free(s->user);
    free(s->metadata);
    s->user = s->metadata = NULL;
    s->status[0] = s->asked_status[0] = 0;
    jwt_claims_deinit(&s->claims);
    s->exp_s = 0;
}

void policy_sock_free(policy *p, policy_sock *s)
{
    if (!s)
        return;
    forget_identity(p, s);
    for (size_t i = 0; i < s->nrooms; i++)
        free(s->rooms[i]);
    free(s->rooms);
    if (s->subs)
        map_deinit(s->subs);
    free(s->subs);
    free(s);
}

void *policy_sock_owner(const policy_sock *s)
{
    return s->owner;
}

const char *policy_sock_user(const policy_sock *s)
{
    return s->user;
}

const char *policy_sock_status(const policy_sock *s)
{
    return s->user ? s->status : NULL;
}

const char *policy_sock_asked_status(const policy_sock *s)
{
    return s->asked_status[0] ? s->asked_status : NULL;
}

const char *policy_sock_metadata(const policy_sock *s)
{
    return s->metadata;
}

const char *const *policy_sock_rooms(const policy_sock *s, size_t *n)
{
    *n = s->nrooms;
    return (const char *const *)s->rooms;
}

long policy_room_index(const policy_sock *s, const char *room)
{
    for (size_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i], room) == 0)
            return (long)i;
    return -1;
}

bool policy_sock_in_room(const policy_sock *s, const char *room)
{
    return policy_room_index(s, room) >= 0;
}

uint32_t policy_sock_subscriptions(const policy_sock *s)
{
    return s->subs ? (uint32_t)s->subs->count : 0;
}

int policy_sock_subscribe(policy *p, policy_sock *s, const char *user)
{
    /* Most sockets never subscribe: the table comes with the first subscription. */
    if (!s->subs) {
        if (!(s->subs = malloc(sizeof(*s->subs))))
            return -1;
        map_init(s->subs, p->opts.hash_seed ^ 0x5bd1e995u);
    }
    return map_put(s->subs, user, strlen(user), (void *)1);
}

bool policy_sock_unsubscribe(policy_sock *s, const char *user)
{
    return s->subs && map_del(s->subs, user, strlen(user)) != NULL;
}

bool policy_sock_subscribed(const policy_sock *s, const char *user)
{
    return s->subs && map_get(s->subs, user, strlen(user)) != NULL;
}

policy_sock *policy_sock_next_of_user(const policy_sock *s)
{
    return s->next_of_user;
}

int policy_room_add(policy_sock *s, const char *room)
{
    if (VEC_RESERVE(s->rooms, s->nrooms, s->caprooms, 4) < 0)
        return -1;
    if (!(s->rooms[s->nrooms] = strdup(room)))
        return -1;
    s->nrooms++;
    return 0;
}

/* Remove room `i` and hand its name to the caller. */
char *policy_room_take(policy_sock *s, size_t i)
{
    char *name = s->rooms[i];
    s->rooms[i] = s->rooms[--s->nrooms];
    return name;
}

int policy_sock_status_set(policy_sock *s, const char *status, const char *metadata)
{
    if (metadata) {
        char *copy = strdup(metadata);
        if (!copy)
            return -1;
        free(s->metadata);
        s->metadata = copy;
    }
    if (status)
        snprintf(s->status, sizeof(s->status), "%s", status);
    return 0;
}

void policy_sock_kick(policy_sock *s)
{
    s->kicked = true;
}

bool policy_close_graceful(const policy_sock *s)
{
    /* A client that went away may come back within offline_grace; one the server disconnected
     * on purpose will not. */
    return !s->kicked;
}

/* ---- decisions ---- */

void policy_decision_start(policy_decision *d, policy_cmd cmd)
{
    memset(d, 0, sizeof(*d));
    d->cmd = cmd;
    d->answer = true;
}

void policy_decision_deinit(policy_decision *d)
{
    free(d->owned_metadata);
    for (size_t i = 0; d->owned_names && i < d->nids; i++)
        free(d->owned_names[i]);
    free(d->owned_names);
    free(d->ids);
    memset(d, 0, sizeof(*d));
}

void policy_refuse(policy_decision *d, policy_code code, const char *message)
{
    d->code = code;
    d->message = message;
    d->act = POLICY_ACT_NONE;
}

void policy_count_limit(policy_decision *d, const char *limit)
{
    d->limits[d->limits[0] ? 1 : 0] = limit;
}

void policy_count_auth(policy_decision *d, const char *result)
{
    d->auth_results[d->auth_results[0] ? 1 : 0] = result;
}

/* Every message a client sends takes a token from its connection's bucket (rate_limit per
 * second, up to rate_burst). Returns 0 to go on; -1 when refused (`d` says so), or when the
 * connection keeps sending past the limit and must be closed (act CLOSE). */
int policy_admit(policy *p, policy_conn *c, uint64_t now, policy_decision *d)
{
    return policy_admit_cost(p, c, now, 1, d);
}

int policy_admit_cost(policy *p, policy_conn *c, uint64_t now, double cost, policy_decision *d)
{
    if (c && c->closing) {
        d->answer = false;
        return -1;
    }
    /* A cost above the bucket would never fit: it takes a full bucket instead. */
    double cap = rate_cap(p);
    if (!c || p->opts.rate_limit == 0 ||
        policy_bucket_take_n(&c->rate, now, p->opts.rate_limit, cap, cost < cap ? cost : cap))
        return 0;
    policy_count_limit(d, "rate");
    if (now - c->window_ms > POLICY_ABUSE_WINDOW_MS) {
        c->window_ms = now;
        c->rejected = 0;
    }
    if (++c->rejected > p->opts.rate_burst) {
        policy_count_limit(d, "rate_abuse_closed");
        c->closing = true;
        d->act = POLICY_ACT_CLOSE;
        d->answer = false;
        return -1;
    }
    policy_refuse(d, POLICY_E_RATE_LIMITED, "too many messages; slow down");
    return -1;
}

void policy_undo(policy *p, policy_sock *s, const policy_decision *d)
{
    /* An identity from the handshake is kept: the connection stays up and the socket is
     * handed to the store when it reconciles. One from presence:identify is dropped, so that the
     * client can retry. */
    if (d->act == POLICY_ACT_OPEN && !d->at_connect)
        forget_identity(p, s);
    if (d->act == POLICY_ACT_JOIN && d->joined) {
        long i = policy_room_index(s, d->room);
        if (i >= 0)
            free(policy_room_take(s, (size_t)i));
    }
    if (d->act == POLICY_ACT_SUBSCRIBE)
        for (size_t i = 0; i < d->nids; i++)
            policy_sock_unsubscribe(s, d->ids[i]);
}

/* ---- time ---- */

static void expire_tokens(policy *p, policy_now now, void (*expired)(policy_sock *s, void *ud),
                          void *ud)
{
    size_t pos = 0;
    map_slot *slot;
    while ((slot = map_next(&p->users, &pos)))
        for (policy_sock *s = ((policy_user *)slot->value)->first; s; s = s->next_of_user) {
            if (s->exp_s == 0 || s->expired ||
                now.wall_s - (int64_t)p->opts.jwt_leeway_s < s->exp_s)
                continue;
            s->expired = true;
            if (s->conn)
                s->conn->closing = true;
            expired(s, ud);
        }
}

void policy_tick(policy *p, policy_now now, void (*expired)(policy_sock *s, void *ud), void *ud)
{
    expire_tokens(p, now, expired, ud);
    policy_forget_addresses(p, now.ms);
}
