/* Fuzz the decoder of presence events read from the Redis stream (either of pres_event.h's forms):
 * no crash, and whatever decodes re-encodes to something that decodes to the same event. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/pres_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pres_event ev;
    if (pres_event_decode((const char *)data, size, &ev) < 0)
        return 0;
    char *json = pres_event_encode(&ev);
    FUZZ_CHECK(json != NULL);
    pres_event back;
    FUZZ_CHECK(pres_event_decode(json, strlen(json), &back) == 0);
    FUZZ_CHECK(back.type == ev.type && strcmp(back.user, ev.user) == 0);
    FUZZ_CHECK(back.nrooms == ev.nrooms && back.last_seen == ev.last_seen);
    FUZZ_CHECK((back.metadata == NULL) == (ev.metadata == NULL));
    cJSON *p = pres_event_payload(&ev);
    FUZZ_CHECK(p != NULL);
    cJSON_Delete(p);
    free(json);
    pres_event_deinit(&back);
    pres_event_deinit(&ev);
    return 0;
}
