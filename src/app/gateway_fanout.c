/* The presence gateway: presence events from the store fanned out to the local sockets the
 * policy names (policy_route_event), in the form it gives each audience. */
#include <stdlib.h>
#include <string.h>

#include "gateway_impl.h"
#include "presenced/io/log.h"

/* The local sockets of `user` (malloc'd, *n of them; NULL when none or out of memory). */
static sio_sock **own_sockets(gateway *gw, const char *user, size_t *n)
{
    *n = 0;
    for (policy_sock *ps = policy_user_first(gw->pol, user); ps; ps = policy_sock_next_of_user(ps))
        (*n)++;
    sio_sock **out = *n ? malloc(*n * sizeof(*out)) : NULL;
    size_t i = 0;
    for (policy_sock *ps = policy_user_first(gw->pol, user); out && ps;
         ps = policy_sock_next_of_user(ps))
        out[i++] = ((gw_sock *)policy_sock_owner(ps))->sock;
    if (!out)
        *n = 0;
    return out;
}

/* To every socket in one of `groups`, but the user's own when the route says so. */
static void broadcast(gateway *gw, const policy_route *rt, const char *const *groups, size_t n,
                      const char *name, const cJSON *args)
{
    size_t nown = 0;
    sio_sock **own = rt->but_own ? own_sockets(gw, rt->ev->user, &nown) : NULL;
    sio_broadcast_except(gw->sio, NSP, groups, n, own, nown, name, args);
    free(own);
}

/* Scoped fan-out: the sockets subscribed to the user or in one of the rooms the event names. */
static void broadcast_watchers(gateway *gw, const policy_route *rt, const char *name,
                               const cJSON *args)
{
    const pres_event *ev = rt->ev;
    size_t ngroups = 1 + ev->nrooms;
    char(*names)[GROUP_MAX] = malloc(ngroups * sizeof(*names));
    const char **groups = malloc(ngroups * sizeof(*groups));
    if (names && groups) {
        gateway_group_name(names[0], GROUP_MAX, SUB_GROUP, ev->user);
        for (size_t i = 0; i < ev->nrooms; i++)
            gateway_group_name(names[i + 1], GROUP_MAX, ROOM_GROUP, ev->rooms[i]);
        for (size_t i = 0; i < ngroups; i++)
            groups[i] = names[i];
        broadcast(gw, rt, groups, ngroups, name, args);
    }
    free(groups);
    free(names);
}

/* A user's own sockets: they see their own invisibility as it is. */
static void send_own(gateway *gw, const pres_event *ev, const char *name, const cJSON *args)
{
    for (policy_sock *ps = policy_user_first(gw->pol, ev->user); ps;
         ps = policy_sock_next_of_user(ps))
        sio_emit(((gw_sock *)policy_sock_owner(ps))->sock, name, args, NULL);
}

/* An invisible user's room changes reach only their own sockets in the room. */
static void send_own_in_room(gateway *gw, const pres_event *ev, const char *name, const cJSON *args)
{
    for (policy_sock *ps = policy_user_first(gw->pol, ev->user); ps;
         ps = policy_sock_next_of_user(ps))
        if (policy_sock_in_room(ps, ev->room))
            sio_emit(((gw_sock *)policy_sock_owner(ps))->sock, name, args, NULL);
}

static void deliver(gateway *gw, const policy_route *rt);

/* The event as a room event of type `as` for each room it names, to that room's sockets. */
static void deliver_each_room(gateway *gw, const policy_route *rt)
{
    const pres_event *ev = rt->ev;
    for (size_t i = 0; i < ev->nrooms; i++) {
        pres_event room = {.type = rt->as,
                           .user = ev->user,
                           .room = ev->rooms[i],
                           .status = ev->status,
                           .at = ev->at};
        memcpy(room.id, ev->id, sizeof(room.id));
        deliver(gw, &(policy_route){POLICY_TO_ROOM, &room, 0, rt->but_own});
    }
}

static void deliver(gateway *gw, const policy_route *rt)
{
    const pres_event *ev = rt->ev;
    if (rt->to == POLICY_TO_KICK_USER) {
        gateway_disconnect_user(gw, ev->user);
        return;
    }
    if (rt->to == POLICY_TO_EACH_ROOM)
        return deliver_each_room(gw, rt);
    const char *name = pres_event_name(ev->type);
    cJSON *args = cJSON_CreateArray(), *p = pres_event_payload(ev);
    if (!args || !p || !cJSON_AddItemToArray(args, p)) {
        cJSON_Delete(p);
        cJSON_Delete(args);
        return;
    }
    metrics_add(gw->events_out, name, 1);
    char group[GROUP_MAX];
    const char *one[1];
    switch (rt->to) {
    case POLICY_TO_READERS:
        one[0] = gateway_readers_group(gw);
        broadcast(gw, rt, one, 1, name, args);
        break;
    case POLICY_TO_WATCHERS:
        broadcast_watchers(gw, rt, name, args);
        break;
    case POLICY_TO_ROOM:
        gateway_group_name(group, sizeof(group), ROOM_GROUP, ev->room);
        one[0] = group;
        broadcast(gw, rt, one, 1, name, args);
        break;
    case POLICY_TO_OWN_IN_ROOM:
        send_own_in_room(gw, ev, name, args);
        break;
    case POLICY_TO_OWN:
        send_own(gw, ev, name, args);
        break;
    case POLICY_TO_KICK_USER:
    case POLICY_TO_EACH_ROOM:
        break;
    }
    cJSON_Delete(args);
}

/* The store lost its data and a new generation began (docs/presence-model.md, "Redis lost its
 * data"), or this instance missed events (its reader fell behind the stream's trimming): every
 * socket that may read is told, before any event that follows, that what it was told so far is
 * void (presence:resync {reset: true}); views start again from new snapshots. After a new
 * generation the events that follow also announce every live socket as it registers again. */
static void deliver_reset(gateway *gw, const pres_event *ev)
{
    watch_reset(gw->watch);
    cJSON *args = cJSON_CreateArray(), *p = pres_event_payload(ev);
    if (args && p && cJSON_AddItemToArray(args, p)) {
        p = NULL;
        metrics_add(gw->events_out, pres_event_name(ev->type), 1);
        sio_broadcast(gw->sio, NSP, gateway_readers_group(gw), pres_event_name(ev->type), args);
    }
    cJSON_Delete(p);
    cJSON_Delete(args);
    log_warn("views are void: clients were told to start again", "seq=%s", ev->id);
}

void gateway_on_event(const pres_event *ev, void *ud)
{
    gateway *gw = ud;
    metrics_add(gw->events_in, pres_event_tag(ev->type), 1);
    if (ev->type == PRES_EV_RESET) {
        deliver_reset(gw, ev);
        return;
    }
    policy_user_told(gw->pol, ev);
    watch_event(gw->watch, ev);
    pres_event scratch;
    policy_route routes[POLICY_ROUTES_MAX];
    size_t n = policy_route_event(gw->pol, ev, &scratch, routes);
    for (size_t i = 0; i < n; i++)
        deliver(gw, &routes[i]);
}

size_t gateway_disconnect_user(gateway *gw, const char *user)
{
    /* Closing runs the disconnect hook later, from the loop, so the list is stable here. */
    size_t n = 0;
    for (policy_sock *ps = policy_user_first(gw->pol, user); ps;
         ps = policy_sock_next_of_user(ps)) {
        if (!policy_close_graceful(ps))
            continue;
        policy_sock_kick(ps);
        sio_sock_disconnect(((gw_sock *)policy_sock_owner(ps))->sock, "server disconnect");
        n++;
    }
    if (n > 0)
        log_info("disconnected a user's sockets", "sockets=%zu", n);
    return n;
}
