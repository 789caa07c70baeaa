/* Fuzz the presence command argument readers with arbitrary JSON: no crash, no leak, and what they
 * accept satisfies their contract. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "presenced/codec/pres_cmd.h"
#include "presenced/codec/pres_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *args = cJSON_ParseWithLength((const char *)data, size);
    if (!args)
        return 0;
    const cJSON *obj;
    const char *why, *s;
    if (pres_cmd_object(args, &obj, &why) == PRES_CMD_OK) {
        if (pres_cmd_name(obj, "userId", &s, &why) == PRES_CMD_OK)
            FUZZ_CHECK(pres_name_valid(s, strlen(s)));
        if (pres_cmd_status(obj, "status", &s, &why) == PRES_CMD_OK)
            FUZZ_CHECK(pres_status_valid(s));
        char *meta = NULL;
        if (pres_cmd_metadata(obj, "metadata", 64, &meta, &why) == PRES_CMD_OK) {
            FUZZ_CHECK(strlen(meta) <= 64);
            cJSON *back = cJSON_Parse(meta);
            FUZZ_CHECK(back && cJSON_IsObject(back));
            cJSON_Delete(back);
            free(meta);
        }
        const char **ids;
        size_t n;
        if (pres_cmd_names(obj, "userIds", 50, &ids, &n, &why) == PRES_CMD_OK) {
            FUZZ_CHECK(n >= 1 && n <= 50);
            for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(pres_name_valid(ids[i], strlen(ids[i])));
            free(ids);
        }
        uint32_t ms;
        const cJSON *b =
            cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "batch_ms") : NULL;
        if (pres_cmd_uint(obj, "batch_ms", 10000, &ms, &why) == PRES_CMD_OK)
            FUZZ_CHECK(ms <= 10000 && b && cJSON_IsNumber(b) && b->valuedouble == (double)ms);
    }
    cJSON_Delete(args);
    return 0;
}
