#include "presenced/codec/pres_cmd.h"

#include <stdlib.h>
#include <string.h>

#include "presenced/codec/buf.h"
#include "presenced/codec/json.h"
#include "presenced/codec/pres_event.h"
#include "presenced/codec/utf8.h"

bool pres_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > PRES_ID_MAX || !utf8_valid((const uint8_t *)s, len))
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
        /* C1 controls U+0080..U+009F are encoded as C2 80..C2 9F. */
        if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return false;
    }
    return true;
}

bool pres_status_valid(const char *s)
{
    static const char *const statuses[] = {"online", "away", "busy", "dnd", "invisible"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (strcmp(s, statuses[i]) == 0)
            return true;
    return false;
}

int pres_cmd_object(const cJSON *args, const cJSON **obj, const char **why)
{
    *obj = NULL;
    const cJSON *first = cJSON_IsArray(args) ? args->child : NULL;
    if (!first)
        return PRES_CMD_ABSENT;
    if (!cJSON_IsObject(first)) {
        *why = "the argument must be an object";
        return PRES_CMD_INVALID;
    }
    *obj = first;
    return PRES_CMD_OK;
}

/* The single member named `key`, or NULL; *dup is set when the key appears more than once. */
static const cJSON *member(const cJSON *obj, const char *key, bool *dup)
{
    const cJSON *found = NULL;
    *dup = false;
    for (const cJSON *c = obj ? obj->child : NULL; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) {
            if (found)
                *dup = true;
            found = c;
        }
    return found;
}

static const cJSON *field(const cJSON *obj, const char *key, int *rc, const char **why)
{
    bool dup;
    const cJSON *v = member(obj, key, &dup);
    *rc = PRES_CMD_OK;
    if (dup) {
        *why = "a field is given twice";
        *rc = PRES_CMD_INVALID;
    } else if (!v || cJSON_IsNull(v)) {
        *rc = PRES_CMD_ABSENT;
    }
    return v;
}

int pres_cmd_name(const cJSON *obj, const char *key, const char **out, const char **why)
{
    int rc;
    const cJSON *v = field(obj, key, &rc, why);
    if (rc != PRES_CMD_OK)
        return rc;
    if (!cJSON_IsString(v) || !pres_name_valid(v->valuestring, strlen(v->valuestring))) {
        *why = "must be a string of 1 to 128 bytes of UTF-8 without control characters";
        return PRES_CMD_INVALID;
    }
    *out = v->valuestring;
    return PRES_CMD_OK;
}

int pres_cmd_status(const cJSON *obj, const char *key, const char **out, const char **why)
{
    int rc;
    const cJSON *v = field(obj, key, &rc, why);
    if (rc != PRES_CMD_OK)
        return rc;
    if (!cJSON_IsString(v) || !pres_status_valid(v->valuestring)) {
        *why = "status must be one of online, away, busy, dnd, invisible";
        return PRES_CMD_INVALID;
    }
    *out = v->valuestring;
    return PRES_CMD_OK;
}

int pres_cmd_uint(const cJSON *obj, const char *key, uint32_t max, uint32_t *out, const char **why)
{
    int rc;
    const cJSON *v = field(obj, key, &rc, why);
    if (rc != PRES_CMD_OK)
        return rc;
    /* A double holds every integer up to 2^53 exactly, so the comparison with max is exact. */
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)max ||
        v->valuedouble != (double)(uint32_t)v->valuedouble) {
        *why = "expected an integer in range";
        return PRES_CMD_INVALID;
    }
    *out = (uint32_t)v->valuedouble;
    return PRES_CMD_OK;
}

int pres_cmd_metadata(const cJSON *obj, const char *key, size_t max, char **out, const char **why)
{
    int rc;
    const cJSON *v = field(obj, key, &rc, why);
    if (rc != PRES_CMD_OK)
        return rc;
    if (!cJSON_IsObject(v)) {
        *why = "metadata must be a JSON object";
        return PRES_CMD_INVALID;
    }
    buf b;
    buf_init(&b);
    if (json_append(&b, v) < 0 || buf_append_byte(&b, 0) < 0) {
        buf_deinit(&b);
        *why = "out of memory";
        return PRES_CMD_INVALID;
    }
    if (b.len - 1 > max) {
        buf_deinit(&b);
        *why = "metadata is larger than max_metadata_bytes";
        return PRES_CMD_INVALID;
    }
    *out = (char *)b.data;
    return PRES_CMD_OK;
}

int pres_cmd_names(const cJSON *obj, const char *key, size_t max, const char ***out, size_t *n,
                   const char **why)
{
    int rc;
    const cJSON *v = field(obj, key, &rc, why);
    if (rc != PRES_CMD_OK)
        return rc;
    int count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (count < 1 || (size_t)count > max) {
        *why = "must be an array of 1 to max_bulk_ids user ids";
        return PRES_CMD_INVALID;
    }
    const char **ids = malloc((size_t)count * sizeof(*ids));
    if (!ids) {
        *why = "out of memory";
        return PRES_CMD_INVALID;
    }
    size_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !pres_name_valid(c->valuestring, strlen(c->valuestring))) {
            free(ids);
            *why = "every user id must be a string of 1 to 128 bytes of UTF-8 without control "
                   "characters";
            return PRES_CMD_INVALID;
        }
        ids[i++] = c->valuestring;
    }
    *out = ids;
    *n = i;
    return PRES_CMD_OK;
}
