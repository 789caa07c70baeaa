/* Fuzz the presence policy's command decisions: the first byte picks the command (any other value
 * is an unknown event), the second the socket's state (anonymous or identified, anonymous_reads
 * on or off), the rest is the command's argument array as JSON. No crash, no leak, and every
 * decision keeps the contract: an error has a message, acts carry their arguments, local state
 * follows what was decided. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/pres_cmd.h"
#include "presenced/core/policy.h"

static void check(const policy_sock *s, const policy_decision *d)
{
    if (d->code != POLICY_OK)
        FUZZ_CHECK(d->message && d->message[0]);
    switch (d->act) {
    case POLICY_ACT_JOIN:
        FUZZ_CHECK(d->room && pres_name_valid(d->room, strlen(d->room)));
        FUZZ_CHECK(policy_sock_in_room(s, d->room));
        break;
    case POLICY_ACT_LEAVE:
        FUZZ_CHECK(d->room && !policy_sock_in_room(s, d->room));
        break;
    case POLICY_ACT_STATUS:
        /* No status keeps the user's: then the metadata is what changes. */
        FUZZ_CHECK(d->status ? pres_status_valid(d->status) : d->metadata != NULL);
        break;
    case POLICY_ACT_SUBSCRIBE:
        for (size_t i = 0; i < d->nids; i++)
            FUZZ_CHECK(policy_sock_subscribed(s, d->ids[i]));
        break;
    case POLICY_ACT_QUERY:
        FUZZ_CHECK(d->nids >= 1);
        for (size_t i = 0; i < d->nids; i++)
            for (size_t j = i + 1; j < d->nids && j < i + 8; j++)
                FUZZ_CHECK(strcmp(d->ids[i], d->ids[j]) != 0);
        break;
    case POLICY_ACT_ROOM_PAGE:
        FUZZ_CHECK(d->page_limit >= 1 && d->page_limit <= POLICY_ROOM_PAGE_MAX && d->cursor);
        break;
    default:
        break;
    }
    if (d->act != POLICY_ACT_NONE && d->act != POLICY_ACT_CLOSE && d->act != POLICY_ACT_SUBSCRIBE)
        FUZZ_CHECK(d->code == POLICY_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    cJSON *args = cJSON_ParseWithLength((const char *)data + 2, size - 2);
    if (!args)
        return 0;
    policy_opts o = {.anonymous_read = data[1] & 1,
                     .max_metadata_bytes = 64,
                     .max_bulk_ids = 50,
                     .max_sockets_per_user = 2,
                     .max_rooms_per_socket = 3,
                     .max_subscriptions_per_socket = 3,
                     .rate_limit = 100,
                     .rate_burst = 100,
                     .hash_seed = 7};
    policy *p = policy_new(&o);
    policy_conn *c = p ? policy_conn_new(p, "192.0.2.1") : NULL;
    policy_sock *s = c ? policy_sock_new(p, c, NULL) : NULL;
    if (s) {
        policy_now now = {.ms = 1000, .wall_s = 1700000000};
        cJSON *auth = data[1] & 2 ? cJSON_Parse("{\"userId\":\"fuzzer\"}") : NULL;
        policy_decision d;
        policy_connect(p, s, auth, now, &d);
        policy_decision_deinit(&d);
        cJSON_Delete(auth);
        const char *event = policy_cmd_name((policy_cmd)(data[0] % POLICY_NCMDS));
        for (int round = 0; round < 2; round++) {
            policy_command(p, s, event ? event : "presence:unknown", args, now, &d);
            check(s, &d);
            policy_decision_deinit(&d);
        }
    }
    policy_sock_free(p, s);
    policy_conn_free(p, c);
    policy_free(p);
    cJSON_Delete(args);
    return 0;
}
