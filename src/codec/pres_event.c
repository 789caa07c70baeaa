#include "presenced/codec/pres_event.h"

#include <stdlib.h>
#include <string.h>

#include "presenced/codec/buf.h"
#include "presenced/codec/json.h"
#include "presenced/codec/utf8.h"
#include "presenced/codec/vec.h"

static const char *const type_tags[] = {"online", "offline",    "room:join", "room:leave",
                                        "update", "disconnect", "reset"};
static const char *const event_names[] = {
    "presence:online", "presence:offline",    "presence:room:join", "presence:room:leave",
    "presence:update", "presence:disconnect", "presence:resync"};
#define NTYPES (sizeof(type_tags) / sizeof(type_tags[0]))

const char *pres_event_name(pres_event_type type)
{
    return (unsigned)type < NTYPES ? event_names[type] : "presence:unknown";
}

const char *pres_event_tag(pres_event_type type)
{
    return (unsigned)type < NTYPES ? type_tags[type] : "unknown";
}

/* "MS-SEQ" or "N" (sequence numbers of the memory store, read as "N-0"). */
static bool id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    *ms = *seq = 0;
    if (!id || *id < '0' || *id > '9')
        return false;
    uint64_t v = 0;
    const char *p = id;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    uint64_t s = 0;
    if (*p == '-') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (s > (UINT64_MAX - 9) / 10)
                return false;
            s = s * 10 + (uint64_t)(*p - '0');
        }
    }
    if (*p)
        return false;
    *ms = v;
    *seq = s;
    return true;
}

bool pres_event_id_valid(const char *id)
{
    uint64_t ms, seq;
    return id_parse(id, &ms, &seq);
}

int pres_event_id_cmp(const char *a, const char *b)
{
    uint64_t ams, aseq, bms, bseq;
    id_parse(a, &ams, &aseq);
    id_parse(b, &bms, &bseq);
    if (ams != bms)
        return ams < bms ? -1 : 1;
    return aseq < bseq ? -1 : aseq > bseq;
}

void pres_event_init(pres_event *ev, pres_event_type type)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
}

void pres_event_deinit(pres_event *ev)
{
    free(ev->user);
    free(ev->socket);
    free(ev->room);
    free(ev->status);
    free(ev->prev_status);
    free(ev->metadata);
    for (size_t i = 0; i < ev->nrooms; i++)
        free(ev->rooms[i]);
    free(ev->rooms);
    memset(ev, 0, sizeof(*ev));
}

int pres_event_set(char **field, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

int pres_event_add_room(pres_event *ev, const char *room)
{
    /* No cap: an event names every room its user is in (the input bounds them). */
    if (VEC_RESERVE(ev->rooms, ev->nrooms, ev->caprooms, 4) < 0)
        return -1;
    if (!(ev->rooms[ev->nrooms] = strdup(room)))
        return -1;
    ev->nrooms++;
    return 0;
}

/* ---- encoding ---- */

static int add_string(cJSON *o, const char *key, const char *value)
{
    return !value || cJSON_AddStringToObject(o, key, value) ? 0 : -1;
}

char *pres_event_encode(const pres_event *ev)
{
    if ((unsigned)ev->type >= NTYPES)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *rooms = NULL;
    char *text = NULL;
    buf b;
    buf_init(&b);
    if (!o || add_string(o, "t", type_tags[ev->type]) < 0 ||
        add_string(o, "u", ev->type == PRES_EV_RESET ? NULL : ev->user) < 0 ||
        add_string(o, "s", ev->socket) < 0 || add_string(o, "r", ev->room) < 0 ||
        add_string(o, "st", ev->status) < 0 || add_string(o, "ps", ev->prev_status) < 0)
        goto out;
    if (ev->metadata) {
        /* Metadata is JSON already: splice it in as it is. */
        cJSON *m = cJSON_CreateRaw(ev->metadata);
        if (!m || !cJSON_AddItemToObject(o, "m", m)) {
            cJSON_Delete(m);
            goto out;
        }
    }
    if (!cJSON_AddNumberToObject(o, "ls", (double)ev->last_seen) ||
        !cJSON_AddNumberToObject(o, "at", (double)ev->at))
        goto out;
    if (ev->nrooms) {
        if (!(rooms = cJSON_AddArrayToObject(o, "rs")))
            goto out;
        for (size_t i = 0; i < ev->nrooms; i++) {
            cJSON *r = cJSON_CreateString(ev->rooms[i]);
            if (!r || !cJSON_AddItemToArray(rooms, r)) {
                cJSON_Delete(r);
                goto out;
            }
        }
    }
    if (json_append(&b, o) == 0 && buf_append_byte(&b, 0) == 0) {
        text = (char *)b.data;
        buf_init(&b);
    }
out:
    buf_deinit(&b);
    cJSON_Delete(o);
    return text;
}

/* ---- decoding ---- */

/* An id, room or status: a string of 1..max bytes of UTF-8 without control characters. */
static bool valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || !utf8_valid((const uint8_t *)s, n))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* Copy an optional string member. Returns 0 (absent or copied) or -1 (wrong type, invalid). */
static int take_string(const cJSON *o, const char *key, size_t max, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return 0;
    if (!cJSON_IsString(v) || !valid_name(v->valuestring, max))
        return -1;
    return (*out = strdup(v->valuestring)) ? 0 : -1;
}

static int take_int(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* The event's metadata: JSON object `m` as json_append writes it. Returns 0 or -1. */
static int set_metadata(const cJSON *m, pres_event *ev)
{
    if (!cJSON_IsObject(m))
        return -1;
    buf b;
    buf_init(&b);
    if (json_append(&b, m) < 0 || buf_append_byte(&b, 0) < 0) {
        buf_deinit(&b);
        return -1;
    }
    ev->metadata = (char *)b.data;
    return 0;
}

static int take_metadata(const cJSON *o, pres_event *ev)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "m");
    return m ? set_metadata(m, ev) : 0;
}

static int take_rooms(const cJSON *o, pres_event *ev)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "rs");
    /* Redis's Lua cjson encodes an empty table as {}: read it as no rooms. */
    if (!rs || (cJSON_IsObject(rs) && !rs->child))
        return 0;
    if (!cJSON_IsArray(rs))
        return -1;
    for (const cJSON *r = rs->child; r; r = r->next)
        if (!cJSON_IsString(r) || !valid_name(r->valuestring, PRES_ID_MAX) ||
            pres_event_add_room(ev, r->valuestring) < 0)
            return -1;
    return 0;
}

/* Room events name their room. Returns 0 or -1. */
static int room_named(const pres_event *ev)
{
    bool room_event = ev->type == PRES_EV_ROOM_JOIN || ev->type == PRES_EV_ROOM_LEAVE;
    return room_event && !ev->room ? -1 : 0;
}

static int decode_object(const cJSON *o, pres_event *ev)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "t");
    if (!cJSON_IsString(t))
        return -1;
    size_t type = 0;
    while (type < NTYPES && strcmp(type_tags[type], t->valuestring) != 0)
        type++;
    if (type == NTYPES)
        return -1;
    ev->type = (pres_event_type)type;
    /* A reset names no user, whatever the entry says (its encoding has none): "" keeps `user`
     * always set for those who route by it. */
    if (ev->type == PRES_EV_RESET)
        ev->user = strdup("");
    else if (take_string(o, "u", PRES_ID_MAX, &ev->user) < 0)
        return -1;
    if (!ev->user || take_string(o, "s", PRES_ID_MAX, &ev->socket) < 0 ||
        take_string(o, "r", PRES_ID_MAX, &ev->room) < 0 ||
        take_string(o, "st", PRES_STATUS_MAX, &ev->status) < 0 ||
        take_string(o, "ps", PRES_STATUS_MAX, &ev->prev_status) < 0 ||
        take_int(o, "ls", &ev->last_seen) < 0 || take_int(o, "at", &ev->at) < 0 ||
        take_metadata(o, ev) < 0 || take_rooms(o, ev) < 0)
        return -1;
    return room_named(ev);
}

/* Parse `len` bytes of JSON text that must be one whole value. NULL: not JSON. */
static cJSON *parse_whole(const char *json, size_t len)
{
    /* json_lex_ok: a type, id or room with a NUL in it (raw or as \u0000) would read as cut
     * short there, so "reset\0..." would pass for "reset". */
    if (!utf8_valid((const uint8_t *)json, len) || !json_lex_ok((const uint8_t *)json, len))
        return NULL;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (o && end != json + len) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static int decode_json(const char *json, size_t len, pres_event *ev)
{
    cJSON *o = parse_whole(json, len);
    int rc = o && cJSON_IsObject(o) ? decode_object(o, ev) : -1;
    cJSON_Delete(o);
    return rc;
}

/* ---- the stream form ----
 * <tag>\t<user>[\t<key><value>]...[\tm<metadata>], a reset "x" alone (pres_event.h). */

/* The tag of each type, in pres_event_type's order. */
static const char stream_tags[] = "ofjludx";
_Static_assert(sizeof(stream_tags) - 1 == NTYPES, "one stream tag per type");

/* A copy of the `n` bytes at `p` into *out: a name of 1..max bytes (valid_name), met once. A NUL
 * would cut the copy short, so it is refused here; valid_name checks the rest. */
static int take_field(const char *p, size_t n, size_t max, char **out)
{
    if (*out || memchr(p, 0, n))
        return -1;
    if (!(*out = strndup(p, n)))
        return -1;
    return valid_name(*out, max) ? 0 : -1;
}

static int take_room_field(const char *p, size_t n, pres_event *ev)
{
    char *room = NULL;
    int rc = take_field(p, n, PRES_ID_MAX, &room);
    if (rc == 0)
        rc = pres_event_add_room(ev, room);
    free(room);
    return rc;
}

/* lastSeen: 1..16 decimal digits, at most 2^53 - 1 (what the JSON form allows). */
static int take_ms_field(const char *p, size_t n, bool *seen, int64_t *out)
{
    if (*seen || n == 0 || n > 16)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v > 9007199254740991LL)
        return -1;
    *seen = true;
    *out = v;
    return 0;
}

/* One `<key><value>` field (the value is `n` bytes at `p`). */
static int take_stream_field(char key, const char *p, size_t n, bool *ls_seen, pres_event *ev)
{
    switch (key) {
    case 's':
        return take_field(p, n, PRES_ID_MAX, &ev->socket);
    case 'r':
        return take_field(p, n, PRES_ID_MAX, &ev->room);
    case 't':
        return take_field(p, n, PRES_STATUS_MAX, &ev->status);
    case 'p':
        return take_field(p, n, PRES_STATUS_MAX, &ev->prev_status);
    case 'l':
        return take_ms_field(p, n, ls_seen, &ev->last_seen);
    case 'g':
        return take_room_field(p, n, ev);
    default:
        return -1;
    }
}

/* Metadata: the rest of the entry, one JSON object. */
static int take_stream_metadata(const char *p, size_t n, pres_event *ev)
{
    cJSON *m = parse_whole(p, n);
    int rc = m ? set_metadata(m, ev) : -1;
    cJSON_Delete(m);
    return rc;
}

static int decode_stream(const char *s, size_t len, pres_event *ev)
{
    const char *tag = len > 0 && s[0] ? strchr(stream_tags, s[0]) : NULL;
    if (!tag)
        return -1;
    ev->type = (pres_event_type)(tag - stream_tags);
    if (ev->type == PRES_EV_RESET)
        return len == 1 && (ev->user = strdup("")) ? 0 : -1;
    if (len < 3 || s[1] != '\t')
        return -1;
    const char *p = s + 2, *end = s + len;
    const char *tab = memchr(p, '\t', (size_t)(end - p));
    if (take_field(p, (size_t)((tab ? tab : end) - p), PRES_ID_MAX, &ev->user) < 0)
        return -1;
    bool ls_seen = false;
    for (p = tab; p; p = tab) {
        if (end - p < 2)
            return -1;
        char key = p[1];
        p += 2;
        if (key == 'm') /* the last field: metadata may hold tabs */
            return take_stream_metadata(p, (size_t)(end - p), ev) < 0 ? -1 : room_named(ev);
        tab = memchr(p, '\t', (size_t)(end - p));
        if (take_stream_field(key, p, (size_t)((tab ? tab : end) - p), &ls_seen, ev) < 0)
            return -1;
    }
    return room_named(ev);
}

int pres_event_decode(const char *text, size_t len, pres_event *ev)
{
    pres_event_init(ev, PRES_EV_ONLINE);
    int rc = len > 0 && text[0] == '{' ? decode_json(text, len, ev) : decode_stream(text, len, ev);
    if (rc < 0)
        pres_event_deinit(ev);
    return rc;
}

/* ---- client payload ---- */

int pres_event_metadata_add(cJSON *p, const char *metadata)
{
    cJSON *m = metadata ? cJSON_Parse(metadata) : cJSON_CreateNull();
    if (!m)
        m = cJSON_CreateNull();
    return m && cJSON_AddItemToObject(p, "metadata", m) ? 0 : (cJSON_Delete(m), -1);
}

/* socketId: the socket whose connect or disconnect caused an online or offline. None caused
 * one that an invisible toggle or the server made: the key is left out rather than empty. */
static int add_socket(cJSON *p, const pres_event *ev)
{
    if (!ev->socket || !ev->socket[0])
        return 0;
    return cJSON_AddStringToObject(p, "socketId", ev->socket) ? 0 : -1;
}

cJSON *pres_event_payload(const pres_event *ev)
{
    cJSON *p = cJSON_CreateObject();
    if (!p || (ev->type == PRES_EV_RESET ? !cJSON_AddTrueToObject(p, "reset")
                                         : !cJSON_AddStringToObject(p, "userId", ev->user)))
        goto fail;
    switch (ev->type) {
    case PRES_EV_ONLINE:
        if (add_socket(p, ev) < 0 ||
            !cJSON_AddStringToObject(p, "status", ev->status ? ev->status : "online") ||
            (ev->metadata && pres_event_metadata_add(p, ev->metadata) < 0))
            goto fail;
        break;
    case PRES_EV_OFFLINE:
        if (add_socket(p, ev) < 0 || !cJSON_AddNumberToObject(p, "lastSeen", (double)ev->last_seen))
            goto fail;
        break;
    case PRES_EV_ROOM_JOIN:
    case PRES_EV_ROOM_LEAVE:
        if (!cJSON_AddStringToObject(p, "room", ev->room ? ev->room : ""))
            goto fail;
        break;
    case PRES_EV_UPDATE:
        if (!cJSON_AddStringToObject(p, "status", ev->status ? ev->status : "online") ||
            (ev->prev_status && !cJSON_AddStringToObject(p, "prevStatus", ev->prev_status)) ||
            pres_event_metadata_add(p, ev->metadata) < 0)
            goto fail;
        break;
    case PRES_EV_DISCONNECT:
    case PRES_EV_RESET:
        break;
    }
    /* The store's order: a client that also holds a snapshot drops what the snapshot covers. */
    if (ev->id[0] && !cJSON_AddStringToObject(p, "seq", ev->id))
        goto fail;
    return p;
fail:
    cJSON_Delete(p);
    return NULL;
}

static const char *const public_types[] = {"user.online", "user.offline", "room.join", "room.leave",
                                           "user.update", NULL,           "reset"};

const char *pres_event_public_type(pres_event_type type)
{
    return (unsigned)type < NTYPES ? public_types[type] : NULL;
}

cJSON *pres_event_public(const pres_event *ev)
{
    const char *type = pres_event_public_type(ev->type);
    if (!type)
        return NULL;
    cJSON *p = cJSON_CreateObject();
    if (!p || !cJSON_AddStringToObject(p, "id", ev->id) ||
        !cJSON_AddStringToObject(p, "type", type) ||
        (ev->type == PRES_EV_RESET ? !cJSON_AddStringToObject(p, "reason", "store_empty")
                                   : !cJSON_AddStringToObject(p, "userId", ev->user)))
        goto fail;
    switch (ev->type) {
    case PRES_EV_ONLINE:
        if (add_socket(p, ev) < 0 ||
            !cJSON_AddStringToObject(p, "status", ev->status ? ev->status : "online") ||
            pres_event_metadata_add(p, ev->metadata) < 0)
            goto fail;
        break;
    case PRES_EV_OFFLINE:
        if (add_socket(p, ev) < 0 || !cJSON_AddNumberToObject(p, "lastSeen", (double)ev->last_seen))
            goto fail;
        break;
    case PRES_EV_ROOM_JOIN:
    case PRES_EV_ROOM_LEAVE:
        if (!cJSON_AddStringToObject(p, "room", ev->room ? ev->room : ""))
            goto fail;
        break;
    case PRES_EV_UPDATE:
        if (!cJSON_AddStringToObject(p, "status", ev->status ? ev->status : "online") ||
            !cJSON_AddStringToObject(p, "prevStatus", ev->prev_status ? ev->prev_status : "") ||
            pres_event_metadata_add(p, ev->metadata) < 0)
            goto fail;
        break;
    case PRES_EV_DISCONNECT:
        goto fail;
    case PRES_EV_RESET:
        break;
    }
    if (!cJSON_AddNumberToObject(p, "at", (double)ev->at))
        goto fail;
    return p;
fail:
    cJSON_Delete(p);
    return NULL;
}
