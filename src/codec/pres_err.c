/* pres_err — the presence error table's columns, by code (see presenced/codec/pres_err.h). */
#include "presenced/codec/pres_err.h"

#include <stddef.h>

typedef struct pres_err_row {
    int err;
    const char *message;
    const char *code;
    unsigned status;
} pres_err_row;

#define PRES_ERR_ROW(name, value, message, code, status) {value, message, code, status},
/* clang-format off */
static const pres_err_row rows[] = {
    {PRES_OK, "ok", "ok", 200},
    PRES_ERR_TABLE(PRES_ERR_ROW)
};
/* clang-format on */
#undef PRES_ERR_ROW

static const pres_err_row *row(int err)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (rows[i].err == err)
            return &rows[i];
    return row(PRES_ERR_INTERNAL);
}

const char *pres_err_message(int err)
{
    return row(err)->message;
}

const char *pres_err_code(int err)
{
    return row(err)->code;
}

unsigned pres_err_status(int err)
{
    return row(err)->status;
}
