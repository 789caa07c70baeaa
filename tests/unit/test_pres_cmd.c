/* Validation of presence command arguments: tables of JSON and what each reader makes of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presenced/codec/pres_cmd.h"

static cJSON *obj_of(const char *json)
{
    cJSON *args = cJSON_Parse(json);
    assert_non_null(args);
    return args;
}

static void test_names(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int rc;
        const char *want;
    } cases[] = {
        {"[{\"userId\":\"alice\"}]", PRES_CMD_OK, "alice"},
        {"[{\"userId\":\"u1:sockets\"}]", PRES_CMD_OK, "u1:sockets"},
        {"[{\"userId\":\"\xc3\xa9\xf0\x9f\x98\x80\"}]", PRES_CMD_OK, "\xc3\xa9\xf0\x9f\x98\x80"},
        {"[{}]", PRES_CMD_ABSENT, NULL},
        {"[{\"userId\":null}]", PRES_CMD_ABSENT, NULL},
        {"[{\"userId\":\"\"}]", PRES_CMD_INVALID, NULL},
        {"[{\"userId\":7}]", PRES_CMD_INVALID, NULL},
        {"[{\"userId\":\"a\\nb\"}]", PRES_CMD_INVALID, NULL},
        {"[{\"userId\":\"a\\u007fb\"}]", PRES_CMD_INVALID, NULL},
        {"[{\"userId\":\"a\\u0085b\"}]", PRES_CMD_INVALID, NULL},
        {"[{\"userId\":\"a\",\"userId\":\"b\"}]", PRES_CMD_INVALID, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *args = obj_of(cases[i].args);
        const cJSON *obj;
        const char *out = NULL, *why = NULL;
        assert_int_equal(pres_cmd_object(args, &obj, &why), PRES_CMD_OK);
        assert_int_equal(pres_cmd_name(obj, "userId", &out, &why), cases[i].rc);
        if (cases[i].want)
            assert_string_equal(out, cases[i].want);
        if (cases[i].rc == PRES_CMD_INVALID)
            assert_non_null(why);
        cJSON_Delete(args);
    }
    char long_id[130];
    memset(long_id, 'x', sizeof(long_id));
    assert_true(pres_name_valid(long_id, 128));
    assert_false(pres_name_valid(long_id, 129));
    assert_false(pres_name_valid("\xff", 1));
}

static void test_object_status_metadata(void **state)
{
    (void)state;
    const cJSON *obj;
    const char *why, *status;
    cJSON *args = obj_of("[]");
    assert_int_equal(pres_cmd_object(args, &obj, &why), PRES_CMD_ABSENT);
    cJSON_Delete(args);
    args = obj_of("[\"x\"]");
    assert_int_equal(pres_cmd_object(args, &obj, &why), PRES_CMD_INVALID);
    cJSON_Delete(args);

    args = obj_of("[{\"status\":\"away\",\"metadata\":{\"a\":[1,2],\"b\":\"c\"}}]");
    assert_int_equal(pres_cmd_object(args, &obj, &why), PRES_CMD_OK);
    assert_int_equal(pres_cmd_status(obj, "status", &status, &why), PRES_CMD_OK);
    assert_string_equal(status, "away");
    char *meta = NULL;
    assert_int_equal(pres_cmd_metadata(obj, "metadata", 4096, &meta, &why), PRES_CMD_OK);
    assert_string_equal(meta, "{\"a\":[1,2],\"b\":\"c\"}");
    free(meta);
    /* 19 bytes of metadata do not fit in 18. */
    assert_int_equal(pres_cmd_metadata(obj, "metadata", 18, &meta, &why), PRES_CMD_INVALID);
    cJSON_Delete(args);

    static const char *const bad_status[] = {"[{\"status\":\"sleeping\"}]", "[{\"status\":1}]",
                                             "[{\"status\":\"Online\"}]"};
    for (size_t i = 0; i < 3; i++) {
        args = obj_of(bad_status[i]);
        pres_cmd_object(args, &obj, &why);
        assert_int_equal(pres_cmd_status(obj, "status", &status, &why), PRES_CMD_INVALID);
        cJSON_Delete(args);
    }
    args = obj_of("[{\"metadata\":[1]}]");
    pres_cmd_object(args, &obj, &why);
    assert_int_equal(pres_cmd_metadata(obj, "metadata", 100, &meta, &why), PRES_CMD_INVALID);
    cJSON_Delete(args);
}

static void test_id_lists(void **state)
{
    (void)state;
    const cJSON *obj;
    const char *why, **ids;
    size_t n;
    cJSON *args = obj_of("[{\"userIds\":[\"a\",\"b\",\"a\"]}]");
    pres_cmd_object(args, &obj, &why);
    assert_int_equal(pres_cmd_names(obj, "userIds", 10, &ids, &n, &why), PRES_CMD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(ids[1], "b");
    free(ids);
    assert_int_equal(pres_cmd_names(obj, "userIds", 2, &ids, &n, &why), PRES_CMD_INVALID);
    cJSON_Delete(args);
    static const char *const bad[] = {"[{\"userIds\":[]}]", "[{\"userIds\":\"a\"}]",
                                      "[{\"userIds\":[\"a\",1]}]", "[{\"userIds\":[\"\"]}]"};
    for (size_t i = 0; i < 4; i++) {
        args = obj_of(bad[i]);
        pres_cmd_object(args, &obj, &why);
        assert_int_equal(pres_cmd_names(obj, "userIds", 10, &ids, &n, &why), PRES_CMD_INVALID);
        cJSON_Delete(args);
    }
}

static void test_uint(void **state)
{
    (void)state;
    static const struct {
        const char *args;
        int rc;
        uint32_t value;
    } cases[] = {
        {"[{\"n\":0}]", PRES_CMD_OK, 0},          {"[{\"n\":250}]", PRES_CMD_OK, 250},
        {"[{\"n\":10000}]", PRES_CMD_OK, 10000},  {"[{}]", PRES_CMD_ABSENT, 0},
        {"[{\"n\":10001}]", PRES_CMD_INVALID, 0}, {"[{\"n\":-1}]", PRES_CMD_INVALID, 0},
        {"[{\"n\":1.5}]", PRES_CMD_INVALID, 0},   {"[{\"n\":1e300}]", PRES_CMD_INVALID, 0},
        {"[{\"n\":\"5\"}]", PRES_CMD_INVALID, 0}, {"[{\"n\":5,\"n\":6}]", PRES_CMD_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const cJSON *obj;
        const char *why = NULL;
        uint32_t v = 0;
        cJSON *args = obj_of(cases[i].args);
        pres_cmd_object(args, &obj, &why);
        assert_int_equal(pres_cmd_uint(obj, "n", 10000, &v, &why), cases[i].rc);
        if (cases[i].rc == PRES_CMD_OK)
            assert_int_equal(v, cases[i].value);
        cJSON_Delete(args);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uint),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_object_status_metadata),
        cmocka_unit_test(test_id_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
