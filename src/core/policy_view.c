/* The presence policy, reading side: client error codes, the read scope, what a viewer sees of
 * events and users, and where events go.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_impl.h"

/* ---- codes ---- */

static const struct {
    const char *name;
    unsigned http;
} codes[] = {
    [POLICY_OK] = {"ok", 200},
    [POLICY_E_INVALID_ARGUMENT] = {"invalid_argument", 400},
    [POLICY_E_NOT_IDENTIFIED] = {"not_identified", 403},
    [POLICY_E_ALREADY_IDENTIFIED] = {"already_identified", 409},
    [POLICY_E_FORBIDDEN] = {"forbidden", 403},
    [POLICY_E_UNAUTHORIZED] = {"unauthorized", 401},
    [POLICY_E_LIMIT_EXCEEDED] = {"limit_exceeded", 429},
    [POLICY_E_RATE_LIMITED] = {"rate_limited", 429},
    [POLICY_E_INTERNAL] = {"internal", 500},
    [POLICY_E_UNKNOWN_EVENT] = {"unknown_event", 404},
};

const char *policy_code_name(policy_code code)
{
    return (unsigned)code < sizeof(codes) / sizeof(codes[0]) ? codes[code].name : "internal";
}

unsigned policy_code_http_status(policy_code code)
{
    return (unsigned)code < sizeof(codes) / sizeof(codes[0]) ? codes[code].http : 500;
}

/* ---- read scope ---- */

policy_code policy_read_scope(const policy *p, const policy_sock *s, const char *room,
                              const char **why)
{
    if (!s->user && !p->opts.anonymous_read) {
        *why = "identify first: anonymous sockets may not read presence (anonymous_reads = off)";
        return POLICY_E_NOT_IDENTIFIED;
    }
    /* The rooms claim says which rooms the token's holder may be in; whether a room's members
     * can be read follows the same list, so a token cannot reveal more than it could join. */
    if (room && !jwt_room_allowed(&s->claims, room)) {
        *why = "the token does not allow this room";
        return POLICY_E_FORBIDDEN;
    }
    return POLICY_OK;
}

/* ---- ids ---- */

typedef struct id_ref {
    const char *id;
    size_t pos;
} id_ref;

static int id_ref_cmp(const void *a, const void *b)
{
    const id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

size_t policy_ids_unique(const policy *p, const char **ids, size_t n)
{
    (void)p;
    if (n < 2)
        return n;
    /* Sorting a copy finds the repeats in n log n whatever the ids are (a hash set would need a
     * seed to stay linear against chosen ids); the first occurrence of each is kept in place. */
    id_ref *refs = malloc(n * sizeof(*refs));
    bool *drop = calloc(n, sizeof(*drop));
    if (!refs || !drop) {
        free(refs);
        free(drop);
        return (size_t)-1;
    }
    for (size_t i = 0; i < n; i++)
        refs[i] = (id_ref){ids[i], i};
    qsort(refs, n, sizeof(*refs), id_ref_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(refs[i].id, refs[i - 1].id) == 0)
            drop[refs[i].pos] = true;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!drop[i])
            ids[kept++] = ids[i];
    free(refs);
    free(drop);
    return kept;
}

/* ---- views ---- */

bool policy_is_invisible(const char *status)
{
    return status && strcmp(status, "invisible") == 0;
}

/* Whether the viewer sees invisible users as they are: their own user, or an API caller that
 * proved it holds the key. */
static bool sees_through(const policy *p, const policy_viewer *v)
{
    return v->api ? p->opts.api_privileged : v->self;
}

const pres_event *policy_view(const policy *p, const pres_event *ev, const policy_viewer *v,
                              pres_event *scratch)
{
    if (ev->type == PRES_EV_DISCONNECT)
        return NULL;
    if (v->api && p->opts.api_privileged)
        return ev;
    if (!v->api && !v->identified && !p->opts.anonymous_read)
        return NULL;
    bool now = policy_is_invisible(ev->status);
    switch (ev->type) {
    case PRES_EV_ONLINE:
    case PRES_EV_OFFLINE:
        /* An invisible user's comings and goings are nobody's business. */
        return now ? NULL : ev;
    case PRES_EV_ROOM_JOIN:
    case PRES_EV_ROOM_LEAVE:
        /* Nor are the rooms they open, except to their own other tabs. */
        return now && !sees_through(p, v) ? NULL : ev;
    case PRES_EV_UPDATE:
        break;
    case PRES_EV_RESET:
        /* The store lost its data: what every reader was told before is void. */
        return ev;
    default:
        return NULL;
    }
    /* The user's own tabs see the change as it is: they are not told they went offline. */
    if (sees_through(p, v))
        return ev;
    bool was = policy_is_invisible(ev->prev_status);
    if (was && now)
        return NULL;
    if (!was && !now)
        return ev;
    /* Crossing the invisible line reads as going offline (lastSeen: that moment) or coming
     * online. */
    *scratch = *ev;
    scratch->type = now ? PRES_EV_OFFLINE : PRES_EV_ONLINE;
    scratch->last_seen = ev->at;
    scratch->socket = NULL;
    return scratch;
}

bool policy_view_rooms(const policy *p, const pres_event *ev, const policy_viewer *v,
                       pres_event_type *as)
{
    if (ev->type != PRES_EV_UPDATE || sees_through(p, v) ||
        (!v->api && !v->identified && !p->opts.anonymous_read))
        return false;
    bool was = policy_is_invisible(ev->prev_status), now = policy_is_invisible(ev->status);
    if (was == now)
        return false;
    *as = now ? PRES_EV_ROOM_LEAVE : PRES_EV_ROOM_JOIN;
    return true;
}

void policy_user_view(const policy *p, const policy_viewer *v, bool online, const char *status,
                      bool *shown_online, const char **shown_status)
{
    /* An invisible user reads as offline to everyone but themselves. */
    bool hide = online && policy_is_invisible(status) && !sees_through(p, v);
    *shown_online = online && !hide;
    *shown_status = *shown_online ? status : "offline";
}

/* ---- routes ---- */

bool policy_readers_identified_only(const policy *p)
{
    return !p->opts.anonymous_read;
}

size_t policy_route_event(const policy *p, const pres_event *ev, pres_event *scratch,
                          policy_route out[POLICY_ROUTES_MAX])
{
    const policy_viewer other = {.identified = true}, self = {.identified = true, .self = true};
    const pres_event *shown;
    switch (ev->type) {
    case PRES_EV_DISCONNECT:
        out[0] = (policy_route){POLICY_TO_KICK_USER, ev, 0, false};
        return 1;
    case PRES_EV_ROOM_JOIN:
    case PRES_EV_ROOM_LEAVE:
        /* Room events go to the room; the room's sockets all belong to identified users (joining
         * needs an identity). */
        if ((shown = policy_view(p, ev, &other, scratch))) {
            out[0] = (policy_route){POLICY_TO_ROOM, shown, 0, false};
            return 1;
        }
        if ((shown = policy_view(p, ev, &self, scratch))) {
            out[0] = (policy_route){POLICY_TO_OWN_IN_ROOM, shown, 0, false};
            return 1;
        }
        return 0;
    default: {
        if (!(shown = policy_view(p, ev, &other, scratch)))
            return 0;
        /* broadcast = scoped: those subscribed to the user and those sharing a room with them
         * (the rooms the event names); else everyone who may read. */
        policy_route main = {p->opts.scoped ? POLICY_TO_WATCHERS : POLICY_TO_READERS, shown, 0,
                             false};
        pres_event_type as;
        if (!policy_view_rooms(p, ev, &other, &as)) {
            out[0] = main;
            return 1;
        }
        /* Rooms are left before going offline and joined after coming online, as a close and an
         * open of the user's sockets would do it. The user's own tabs see the update itself. */
        policy_route rooms = {POLICY_TO_EACH_ROOM, ev, as, true};
        main.but_own = true;
        out[0] = as == PRES_EV_ROOM_LEAVE ? rooms : main;
        out[1] = as == PRES_EV_ROOM_LEAVE ? main : rooms;
        out[2] = (policy_route){POLICY_TO_OWN, policy_view(p, ev, &self, scratch), 0, false};
        return 3;
    }
    }
}
