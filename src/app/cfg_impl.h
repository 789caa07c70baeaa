/* cfg_impl — what the files of the configuration module share: the key table's type, the table
 * itself (cfg.c) and the text helpers and value checks (cfg_check.c). Private to src/app/cfg*.c;
 * the contract is presenced/app/cfg.h.
 *
 * The files, one job each:
 *   cfg.c        the table of keys, and setting, reading and validating a configuration
 *   cfg_check.c  the syntax of values: numbers, hosts, paths, URLs, lists; error texts
 *   cfg_load.c   the sources: a configuration file and the environment
 *   cfg_args.c   the command line and --help
 */
#ifndef PRESENCED_CFG_IMPL_H
#define PRESENCED_CFG_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presenced/app/cfg.h"

/* Longest value text accepted before parsing: a full string field plus two quotes. */
#define CFG_VALUE_MAX (CFG_STR_MAX + 2)

typedef enum cfg_type {
    CFG_TYPE_STRING,   /* checked and normalised by the key's check function */
    CFG_TYPE_UINT,     /* uint32_t, decimal, within [min, max] */
    CFG_TYPE_ENUM,     /* int-sized enum, value = index in `names` */
    CFG_TYPE_HOSTPORT, /* char[] host at `offset`, uint16_t port at `offset2` */
} cfg_type;

/* Validates `in` and writes its normalised form (at most `outlen` bytes with the NUL) to `out`.
 * Returns 0, or -1 with a reason (without the key name) in `why`. */
typedef int (*cfg_check_fn)(const char *in, char *out, size_t outlen, char *why, size_t whylen);

typedef struct cfg_key {
    const char *name;
    cfg_type type;
    const char *def;          /* default, as text accepted by cfg_set */
    uint32_t min, max;        /* CFG_TYPE_UINT */
    const char *const *names; /* CFG_TYPE_ENUM, NULL-terminated */
    size_t offset;
    size_t offset2; /* CFG_TYPE_HOSTPORT: the port */
    size_t size;    /* CFG_TYPE_STRING / HOSTPORT: size of the char array */
    cfg_check_fn check;
    const char *syntax; /* shown in --help, e.g. "HOST:PORT" */
    const char *help;
} cfg_key;

/* The one description of every key (cfg.c), in the order of --help and the docs. */
extern const cfg_key cfg_keys[];
extern const size_t cfg_nkeys;
#define CFG_KEYS_MAX 128 /* for arrays indexed by key; cfg.c checks the table fits */

/* The key named by name[0..n), or NULL. */
const cfg_key *cfg_key_find(const char *name, size_t n);
/* cfg_set on a key/value given as (pointer, length) pairs: the file reader passes slices of a
 * line, the other callers whole strings. */
int cfg_set_n(cfg *c, const char *key, size_t kn, const char *value, size_t vn, char *err);

/* ---- cfg_check.c ---- */

/* Formats into `err` when the caller gave one (`len` bytes). */
__attribute__((format(printf, 3, 4))) void cfg_errf(char *err, size_t len, const char *fmt, ...);
/* `s` fit for an error message, in `buf` (`len` bytes): shortened, control characters as '?'. */
const char *cfg_quote(const char *s, char *buf, size_t len);
int cfg_is_space(char ch);
/* Trims [*s, *s + *n) in place (pointer and length). */
void cfg_trim(const char **s, size_t *n);
/* A decimal integer within [min, max]. Returns 0, or -1 with a reason in `why`. */
int cfg_parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out, char *why,
                   size_t whylen);
/* The check functions of string keys (cfg_check_fn). */
int cfg_check_path(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_redis(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_origins(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_namespaces(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_prefix(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_secret(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_file(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_admin(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_webhook(const char *in, char *out, size_t outlen, char *why, size_t whylen);
int cfg_check_proxies(const char *in, char *out, size_t outlen, char *why, size_t whylen);

#endif
