/* Unit tests for redis_slot: hash slots (vectors computed by redis-server 7.0's CLUSTER KEYSLOT),
 * MOVED/ASK redirections and the slot map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/redis_slot.h"

static const struct {
    const char *key;
    uint16_t slot;
} slots[] = {
    {"123456789", 12739}, /* CRC16/XMODEM("123456789") = 0x31C3, the specification's check value */
    {"foo", 12182},
    {"bar", 5061},
    {"somekey", 11058},
    {"hello", 866},
    {"", 0},
    /* Hash tags: the first '{' and the first '}' after it, unless that is empty. */
    {"{user1000}.following", 3443},
    {"{user1000}.followers", 3443},
    {"foo{}{bar}", 8363},
    {"foo{{bar}}zap", 4015},
    {"foo{bar}{zap}", 5061},
    {"{}", 15257},
    {"{", 4092},
    {"}", 12090},
    {"a{b", 13340},
    {"presenced:{p0}u:3:bob", 15882},
    {"{p0}", 15882},
};

static void test_slot_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        uint16_t got = redis_slot(slots[i].key, strlen(slots[i].key));
        if (got != slots[i].slot)
            fail_msg("slot(\"%s\") = %u, want %u", slots[i].key, got, slots[i].slot);
    }
    /* Keys are binary: a NUL before the tag is part of the key. */
    static const char bin[] = {'x', '\0', '{', 'y', '}'};
    assert_int_equal(redis_slot(bin, sizeof(bin)), 12222);
    assert_int_equal(redis_slot(bin, sizeof(bin)), redis_slot("y", 1));
}

static void test_slot_range(void **state)
{
    (void)state;
    char key[16];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_true(redis_slot(key, (size_t)n) < REDIS_SLOTS);
    }
}

static void test_redirect_valid(void **state)
{
    (void)state;
    static const struct {
        const char *err;
        redis_redirect_kind kind;
        uint16_t slot;
        const char *host;
        uint16_t port;
    } v[] = {
        {"MOVED 3999 127.0.0.1:6381", REDIS_REDIRECT_MOVED, 3999, "127.0.0.1", 6381},
        {"ASK 0 10.0.0.2:7000", REDIS_REDIRECT_ASK, 0, "10.0.0.2", 7000},
        {"MOVED 16383 ::1:7002", REDIS_REDIRECT_MOVED, 16383, "::1", 7002},
        {"MOVED 12 redis-3.example:6379", REDIS_REDIRECT_MOVED, 12, "redis-3.example", 6379},
        /* A node that does not know its endpoint sends an empty host: "the one you asked". */
        {"MOVED 5 :6380", REDIS_REDIRECT_MOVED, 5, "", 6380},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        redis_redirect r;
        if (redis_redirect_parse(v[i].err, strlen(v[i].err), &r) != 0)
            fail_msg("refused \"%s\"", v[i].err);
        assert_int_equal(r.kind, v[i].kind);
        assert_int_equal(r.slot, v[i].slot);
        assert_string_equal(r.host, v[i].host);
        assert_int_equal(r.port, v[i].port);
    }
}

static void test_redirect_invalid(void **state)
{
    (void)state;
    static const char *const v[] = {
        "",
        "MOVED",
        "MOVED ",
        "MOVED 1",
        "MOVED 1 ",
        "MOVED 1 h",
        "MOVED 1 h:",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:12x",
        "MOVED 16384 h:1",
        "MOVED -1 h:1",
        "MOVED x h:1",
        "MOVED 1  h:1",
        "MOVED 1 h h:1",
        "moved 1 h:1",
        "ASKING 1 h:1",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "ERR unknown command",
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        redis_redirect r;
        if (redis_redirect_parse(v[i], strlen(v[i]), &r) != -1)
            fail_msg("accepted \"%s\"", v[i]);
    }
    /* Only `len` bytes count: what follows is not read. */
    redis_redirect r;
    assert_int_equal(redis_redirect_parse("MOVED 1 h:1234", 12, &r), 0);
    assert_int_equal(r.port, 12);
}

static void test_slotmap(void **state)
{
    (void)state;
    redis_slotmap m;
    redis_slotmap_init(&m);
    assert_null(redis_slotmap_owner(&m, 0));
    assert_int_equal(redis_slotmap_covered(&m), 0);
    assert_int_equal(redis_slotmap_assign(&m, 0, 5460, "127.0.0.1", 7000), 0);
    assert_int_equal(redis_slotmap_assign(&m, 5461, 10922, "127.0.0.1", 7001), 1);
    assert_int_equal(redis_slotmap_assign(&m, 10923, 16383, "::1", 7002), 2);
    assert_int_equal(redis_slotmap_covered(&m), REDIS_SLOTS);
    assert_int_equal(redis_slotmap_owner(&m, 5460)->port, 7000);
    assert_int_equal(redis_slotmap_owner(&m, 5461)->port, 7001);
    assert_string_equal(redis_slotmap_owner(&m, 16383)->host, "::1");
    /* A node seen again keeps its index; a moved range changes owners. */
    assert_int_equal(redis_slotmap_assign(&m, 100, 199, "127.0.0.1", 7001), 1);
    assert_int_equal(redis_slotmap_owner(&m, 99)->port, 7000);
    assert_int_equal(redis_slotmap_owner(&m, 150)->port, 7001);
    assert_int_equal(redis_slotmap_owner(&m, 200)->port, 7000);
    assert_int_equal(redis_slotmap_find(&m, "::1", 7002), 2);
    assert_int_equal(redis_slotmap_find(&m, "::1", 7003), -1);
    /* Bad ranges and hosts change nothing. */
    assert_int_equal(redis_slotmap_assign(&m, 10, 5, "h", 1), -1);
    assert_int_equal(redis_slotmap_assign(&m, 0, REDIS_SLOTS, "h", 1), -1);
    assert_int_equal(redis_slotmap_assign(&m, 0, 1, "", 1), -1);
    assert_int_equal(redis_slotmap_assign(&m, 0, 1, "h", 0), -1);
    assert_int_equal(m.nnodes, 3);
    for (int i = 0; i < 100; i++) {
        char host[16];
        snprintf(host, sizeof(host), "n%d", i);
        assert_int_equal(redis_slotmap_assign(&m, (uint32_t)i, (uint32_t)i, host, 1), 3 + i);
    }
    assert_string_equal(redis_slotmap_owner(&m, 42)->host, "n42");
    redis_slotmap_deinit(&m);
    assert_int_equal(m.nnodes, 0);
    assert_null(redis_slotmap_owner(&m, 42));
}

/* Partition tags land in their own range of slots, for every count; ids spread over partitions. */
static void test_partitions(void **state)
{
    (void)state;
    static const unsigned counts[] = {1, 2, 3, 12, 30, 1024};
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        unsigned n = counts[c];
        for (unsigned k = 0; k < n; k++) {
            char tag[REDIS_TAG_MAX];
            uint16_t slot = redis_partition_tag(k, n, tag);
            assert_int_equal(slot, redis_slot(tag, strlen(tag)));
            assert_true(slot >= (uint64_t)k * REDIS_SLOTS / n);
            assert_true(slot < (uint64_t)(k + 1) * REDIS_SLOTS / n);
        }
    }
    char tag[REDIS_TAG_MAX];
    redis_partition_tag(0, 3, tag);
    assert_string_equal(tag, "0-0"); /* slot 8142 is not below 5461: the search goes on */
    unsigned hist[12] = {0};
    char id[16];
    for (int i = 0; i < 12000; i++) {
        int len = snprintf(id, sizeof(id), "user-%d", i);
        unsigned p = redis_partition_of(id, (size_t)len, 12);
        assert_true(p < 12);
        hist[p]++;
    }
    for (int p = 0; p < 12; p++)
        assert_true(hist[p] > 800 && hist[p] < 1200);
    assert_int_equal(redis_partition_of("anything", 8, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_vectors),   cmocka_unit_test(test_slot_range),
        cmocka_unit_test(test_redirect_valid), cmocka_unit_test(test_redirect_invalid),
        cmocka_unit_test(test_slotmap),        cmocka_unit_test(test_partitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
