/* The presence policy: the commands of docs/protocol.md, one row each in the table at the end.
 * Each decides from the socket's state and its argument object; the adapter carries out the act.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_impl.h"
#include "presenced/codec/pres_cmd.h"

/* The identity checks of a command acting for the socket's user: the socket must be identified,
 * and a userId field, if any, must be its own. Returns 0, or -1 with `d` refused. */
static int check_identity(const policy_sock *s, const cJSON *obj, policy_decision *d)
{
    if (!s->user) {
        policy_refuse(d, POLICY_E_NOT_IDENTIFIED, "identify first (auth.userId)");
        return -1;
    }
    const char *claimed = NULL, *why = NULL;
    int rc = pres_cmd_name(obj, "userId", &claimed, &why);
    if (rc == PRES_CMD_INVALID) {
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
        return -1;
    }
    if (rc == PRES_CMD_OK && strcmp(claimed, s->user) != 0) {
        policy_refuse(d, POLICY_E_FORBIDDEN, "userId is not this socket's user");
        return -1;
    }
    return 0;
}

static void cmd_identify(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                         policy_decision *d)
{
    if (s->user)
        return policy_refuse(d, POLICY_E_ALREADY_IDENTIFIED, "this socket is identified already");
    const char *status;
    if (policy_read_status(obj, &status, d) < 0)
        return;
    if (p->opts.jwt) {
        jwt_claims claims;
        policy_token_rc rc = policy_read_token(p, s, obj, now, &claims, d);
        if (rc == POLICY_TOKEN_ABSENT)
            return policy_refuse(d, POLICY_E_UNAUTHORIZED, "a valid token is required");
        if (rc == POLICY_TOKEN_OK)
            policy_identify_by_token(p, s, &claims, d, "too many sockets");
    } else if (!policy_identify_claimed(p, s, obj, d)) {
        return policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "invalid userId");
    }
    policy_set_initial_status(s, status, d);
}

/* A refreshed token may allow fewer rooms: the socket leaves the others, and the store must
 * announce those leaves (act REFRESH with the rooms in `ids`). */
static int leave_disallowed(policy_sock *s, policy_decision *d)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nrooms; i++)
        n += !jwt_room_allowed(&s->claims, s->rooms[i]);
    if (n == 0)
        return 0;
    if (!(d->owned_names = calloc(n, sizeof(char *))) || !(d->ids = calloc(n, sizeof(char *))))
        return -1;
    for (size_t i = s->nrooms; i-- > 0;)
        if (!jwt_room_allowed(&s->claims, s->rooms[i])) {
            d->owned_names[d->nids] = policy_room_take(s, i);
            d->ids[d->nids] = d->owned_names[d->nids];
            d->nids++;
        }
    return 0;
}

/* presence:refresh {token}: a new token for the socket's own user extends its life (exp) and
 * replaces its room restrictions. */
static void cmd_refresh(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                        policy_decision *d)
{
    if (!p->opts.jwt)
        return policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "tokens are not used (auth=insecure)");
    if (!s->user)
        return policy_refuse(d, POLICY_E_NOT_IDENTIFIED, "identify first (auth.token)");
    jwt_claims claims;
    policy_token_rc rc = policy_read_token(p, s, obj, now, &claims, d);
    if (rc == POLICY_TOKEN_ABSENT)
        return policy_refuse(d, POLICY_E_UNAUTHORIZED, "a valid token is required");
    if (rc != POLICY_TOKEN_OK)
        return;
    if (strcmp(claims.sub, s->user) != 0) {
        jwt_claims_deinit(&claims);
        return policy_refuse(d, POLICY_E_FORBIDDEN, "the token is for another user");
    }
    jwt_claims_deinit(&s->claims);
    s->claims = claims;
    s->exp_s = claims.exp_s;
    policy_count_auth(d, "refreshed");
    if (leave_disallowed(s, d) < 0)
        return policy_refuse(d, POLICY_E_INTERNAL, "out of memory");
    d->act = POLICY_ACT_REFRESH;
}

static void cmd_heartbeat(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                          policy_decision *d)
{
    (void)p, (void)now;
    if (check_identity(s, obj, d) == 0)
        d->act = POLICY_ACT_TOUCH;
}

static int read_room(const cJSON *obj, policy_decision *d)
{
    const char *why = "room is required";
    if (pres_cmd_name(obj, "room", &d->room, &why) == PRES_CMD_OK)
        return 0;
    policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
    return -1;
}

static void cmd_room_join(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                          policy_decision *d)
{
    (void)now;
    if (check_identity(s, obj, d) < 0 || read_room(obj, d) < 0)
        return;
    if (!jwt_room_allowed(&s->claims, d->room))
        return policy_refuse(d, POLICY_E_FORBIDDEN, "the token does not allow this room");
    bool member = policy_sock_in_room(s, d->room);
    if (!member && p->opts.max_rooms_per_socket && s->nrooms >= p->opts.max_rooms_per_socket) {
        policy_count_limit(d, "rooms_per_socket");
        return policy_refuse(d, POLICY_E_LIMIT_EXCEEDED, "too many rooms on this socket");
    }
    /* The socket is in the room from now on, so that it hears its own join whichever store
     * delivers the event, and whenever. */
    if (!member && policy_room_add(s, d->room) < 0)
        return policy_refuse(d, POLICY_E_INTERNAL, "out of memory");
    d->joined = !member;
    d->act = POLICY_ACT_JOIN;
}

static void cmd_room_leave(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                           policy_decision *d)
{
    (void)p, (void)now;
    if (check_identity(s, obj, d) < 0 || read_room(obj, d) < 0)
        return;
    long i = policy_room_index(s, d->room);
    if (i >= 0)
        free(policy_room_take(s, (size_t)i));
    d->act = POLICY_ACT_LEAVE;
}

/* presence:status {status?, metadata?}: either or both; what is left out stays as it is (the
 * store keeps the status when given none), so a client can change its metadata without knowing
 * the status another tab set. */
static void cmd_status(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                       policy_decision *d)
{
    (void)now;
    if (check_identity(s, obj, d) < 0)
        return;
    const char *why = NULL;
    int st = pres_cmd_status(obj, "status", &d->status, &why);
    int md =
        pres_cmd_metadata(obj, "metadata", p->opts.max_metadata_bytes, &d->owned_metadata, &why);
    if (st == PRES_CMD_INVALID || md == PRES_CMD_INVALID)
        return policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
    if (p->opts.jwt) {
        /* The token's presence claim is the metadata; a client cannot replace it. */
        free(d->owned_metadata);
        d->owned_metadata = NULL;
        md = PRES_CMD_ABSENT;
    }
    if (st == PRES_CMD_ABSENT && md == PRES_CMD_ABSENT)
        return policy_refuse(d, POLICY_E_INVALID_ARGUMENT,
                             p->opts.jwt ? "status is required (metadata comes from the token)"
                                         : "status or metadata is required");
    if (st == PRES_CMD_ABSENT)
        d->status = NULL;
    d->metadata = d->owned_metadata;
    d->act = POLICY_ACT_STATUS;
}

/* The userIds list of a command, at most max_bulk_ids. Returns 0, or -1 with `d` refused. */
static int read_ids(policy *p, const policy_sock *s, const cJSON *obj, policy_now now,
                    policy_decision *d)
{
    const char *why = "userIds is required";
    if (pres_cmd_names(obj, "userIds", p->opts.max_bulk_ids, &d->ids, &d->nids, &why) !=
        PRES_CMD_OK) {
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
        return -1;
    }
    /* Work grows with the ids named: beyond the message's own token, every POLICY_IDS_PER_TOKEN
     * ids cost one more, so that big queries cannot take more of the loop than small ones. */
    size_t extra = (d->nids - 1) / POLICY_IDS_PER_TOKEN;
    return extra ? policy_admit_cost(p, s->conn, now.ms, (double)extra, d) : 0;
}

/* Reading needs the read scope; it refreshes lastSeen like any command of a user. */
static int begin_read(const policy *p, const policy_sock *s, const char *room, policy_decision *d)
{
    const char *why = NULL;
    policy_code code = policy_read_scope(p, s, room, &why);
    if (code != POLICY_OK) {
        policy_refuse(d, code, why);
        return -1;
    }
    d->touch = s->user != NULL;
    return 0;
}

static void cmd_subscribe(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                          policy_decision *d)
{
    if (begin_read(p, s, NULL, d) < 0 || read_ids(p, s, obj, now, d) < 0)
        return;
    /* `ids` keeps, in place, only the users subscribed to now; those before one over the limit
     * stay subscribed. */
    size_t added = 0, max = p->opts.max_subscriptions_per_socket;
    for (size_t i = 0; i < d->nids; i++) {
        const char *id = d->ids[i];
        if (policy_sock_subscribed(s, id))
            continue;
        if (max && policy_sock_subscriptions(s) >= max) {
            policy_count_limit(d, "subscriptions_per_socket");
            policy_refuse(d, POLICY_E_LIMIT_EXCEEDED, "too many subscriptions on this socket");
            break;
        }
        if (policy_sock_subscribe(p, s, id) < 0) {
            policy_refuse(d, POLICY_E_INTERNAL, "out of memory");
            break;
        }
        d->ids[added++] = id;
    }
    d->nids = added;
    d->act = POLICY_ACT_SUBSCRIBE;
}

static void cmd_unsubscribe(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                            policy_decision *d)
{
    if (read_ids(p, s, obj, now, d) < 0)
        return;
    size_t removed = 0;
    for (size_t i = 0; i < d->nids; i++)
        if (policy_sock_unsubscribe(s, d->ids[i]))
            d->ids[removed++] = d->ids[i];
    d->nids = removed;
    d->touch = s->user != NULL;
    d->act = POLICY_ACT_UNSUBSCRIBE;
}

static void cmd_query(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                      policy_decision *d)
{
    if (begin_read(p, s, NULL, d) < 0 || read_ids(p, s, obj, now, d) < 0)
        return;
    /* Asking twice for one id answers once (and asks the store once). */
    size_t n = policy_ids_unique(p, d->ids, d->nids);
    if (n == (size_t)-1)
        return policy_refuse(d, POLICY_E_INTERNAL, "out of memory");
    d->nids = n;
    d->act = POLICY_ACT_QUERY;
}

/* Paging of a room's members: {limit?, cursor?} as GET /v1/rooms/{room} takes them. */
static int read_page(const cJSON *obj, policy_decision *d)
{
    d->page_limit = POLICY_ROOM_PAGE_DEFAULT;
    d->cursor = "";
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(obj, "limit");
    if (limit && !cJSON_IsNull(limit)) {
        double v = cJSON_IsNumber(limit) ? limit->valuedouble : 0;
        if (v < 1 || v > POLICY_ROOM_PAGE_MAX || v != (double)(uint32_t)v) {
            policy_refuse(d, POLICY_E_INVALID_ARGUMENT, "limit must be an integer from 1 to 1000");
            return -1;
        }
        d->page_limit = (uint32_t)v;
    }
    const cJSON *cursor = cJSON_GetObjectItemCaseSensitive(obj, "cursor");
    if (!cursor || cJSON_IsNull(cursor) || (cJSON_IsString(cursor) && !cursor->valuestring[0]))
        return 0;
    const char *why = NULL;
    if (pres_cmd_name(obj, "cursor", &d->cursor, &why) != PRES_CMD_OK) {
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT,
                      "cursor must be the nextCursor of a previous page");
        return -1;
    }
    return 0;
}

static void cmd_room_query(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                           policy_decision *d)
{
    (void)now;
    if (read_room(obj, d) < 0 || begin_read(p, s, d->room, d) < 0 || read_page(obj, d) < 0)
        return;
    d->act = POLICY_ACT_ROOM_PAGE;
}

/* The view of presence:sync and presence:unsync: {room} or {userIds}, and batch_ms. Returns 0,
 * or -1 with `d` refused. */
static int read_view(policy *p, const policy_sock *s, const cJSON *obj, policy_now now,
                     policy_decision *d)
{
    const char *why = "room or userIds is required";
    int rr = pres_cmd_name(obj, "room", &d->room, &why);
    if (rr == PRES_CMD_INVALID || (rr == PRES_CMD_ABSENT && read_ids(p, s, obj, now, d) < 0)) {
        if (!d->code)
            policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
        return -1;
    }
    d->batch_ms = POLICY_BATCH_DEFAULT_MS;
    if (pres_cmd_uint(obj, "batch_ms", POLICY_BATCH_MAX_MS, &d->batch_ms, &why) ==
        PRES_CMD_INVALID) {
        policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
        return -1;
    }
    return 0;
}

/* presence:sync: watching a view reads it, within the read scope (the room's, or users'). */
static void cmd_sync(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                     policy_decision *d)
{
    if (read_view(p, s, obj, now, d) < 0 || begin_read(p, s, d->room, d) < 0)
        return;
    d->act = POLICY_ACT_SYNC;
}

static void cmd_unsync(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                       policy_decision *d)
{
    if (read_view(p, s, obj, now, d) == 0)
        d->act = POLICY_ACT_UNSYNC;
}

typedef void (*cmd_fn)(policy *p, policy_sock *s, const cJSON *obj, policy_now now,
                       policy_decision *d);

/* The commands: each decides from the socket's state and its argument object. */
static const struct {
    const char *name;
    cmd_fn decide;
} commands[POLICY_NCMDS] = {
    [POLICY_CMD_IDENTIFY] = {"presence:identify", cmd_identify},
    [POLICY_CMD_REFRESH] = {"presence:refresh", cmd_refresh},
    [POLICY_CMD_HEARTBEAT] = {"presence:heartbeat", cmd_heartbeat},
    [POLICY_CMD_ROOM_JOIN] = {"presence:room:join", cmd_room_join},
    [POLICY_CMD_ROOM_LEAVE] = {"presence:room:leave", cmd_room_leave},
    [POLICY_CMD_STATUS] = {"presence:status", cmd_status},
    [POLICY_CMD_SUBSCRIBE] = {"presence:subscribe", cmd_subscribe},
    [POLICY_CMD_UNSUBSCRIBE] = {"presence:unsubscribe", cmd_unsubscribe},
    [POLICY_CMD_QUERY] = {"presence:query", cmd_query},
    [POLICY_CMD_ROOM_QUERY] = {"presence:room:query", cmd_room_query},
    [POLICY_CMD_SYNC] = {"presence:sync", cmd_sync},
    [POLICY_CMD_UNSYNC] = {"presence:unsync", cmd_unsync},
    [POLICY_CMD_UNKNOWN] = {NULL, NULL},
};

policy_cmd policy_cmd_of(const char *event)
{
    for (int i = 0; i < POLICY_CMD_UNKNOWN; i++)
        if (strcmp(commands[i].name, event) == 0)
            return (policy_cmd)i;
    return POLICY_CMD_UNKNOWN;
}

const char *policy_cmd_name(policy_cmd cmd)
{
    return (unsigned)cmd < POLICY_CMD_UNKNOWN ? commands[cmd].name : NULL;
}

/* Edits turning `a` into `b` (Levenshtein), both at most 64 bytes (longer: SIZE_MAX). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The command an unknown event most likely meant, or NULL: one whose name ends with the
 * event's last word ("presence:join" -> "presence:room:join"), else the nearest within a third
 * of the name's length. */
static const char *closest_command(const char *event)
{
    const char *word = strrchr(event, ':');
    word = word ? word : event;
    size_t wl = strlen(word), best_d = SIZE_MAX;
    const char *best = NULL;
    for (int i = 0; i < POLICY_CMD_UNKNOWN; i++) {
        const char *name = commands[i].name;
        size_t nl = strlen(name);
        if (wl > 1 && nl > wl && strcmp(name + nl - wl, word) == 0)
            return name;
        size_t dist = distance(event, name);
        if (dist < best_d) {
            best_d = dist;
            best = name;
        }
    }
    return best_d != SIZE_MAX && best_d * 3 <= strlen(event) ? best : NULL;
}

/* An event that is no command: answered (a client waiting for the ack would wait forever),
 * with the command it most likely meant. */
static void refuse_unknown(const char *event, policy_decision *d)
{
    const char *hint = closest_command(event);
    if (hint)
        snprintf(d->text, sizeof(d->text), "unknown event \"%.64s\"; did you mean \"%s\"?", event,
                 hint);
    else
        snprintf(d->text, sizeof(d->text),
                 "unknown event \"%.64s\"; the commands are listed in docs/protocol.md", event);
    policy_refuse(d, POLICY_E_UNKNOWN_EVENT, d->text);
}

void policy_command(policy *p, policy_sock *s, const char *event, const cJSON *args, policy_now now,
                    policy_decision *d)
{
    policy_decision_start(d, policy_cmd_of(event));
    if (policy_admit(p, s->conn, now.ms, d) < 0)
        return;
    if (d->cmd == POLICY_CMD_UNKNOWN)
        return refuse_unknown(event, d);
    const cJSON *obj = NULL;
    const char *why = NULL;
    if (pres_cmd_object(args, &obj, &why) == PRES_CMD_INVALID)
        return policy_refuse(d, POLICY_E_INVALID_ARGUMENT, why);
    commands[d->cmd].decide(p, s, obj, now, d);
}
