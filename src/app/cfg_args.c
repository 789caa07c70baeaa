/* cfg_args — the command line: flags, the order in which sources apply, and --help. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_impl.h"

#ifndef PRESENCED_VERSION
#define PRESENCED_VERSION "unknown"
#endif

/* Flags of cfg_from_args; F_NONE marks an argument that is not a flag we know. */
typedef enum cfg_flag {
    F_NONE,
    F_CONFIG,
    F_LISTEN,
    F_STORE,
    F_REDIS,
    F_SET,
    F_CONFORMANCE,
    F_CHECK,
    F_VERSION,
    F_HELP,
} cfg_flag;

typedef struct cfg_flag_def {
    const char *name;
    cfg_flag flag;
    int value; /* 1: requires a value, 0: takes none, 2: optional (only as --flag=VALUE or FILE) */
} cfg_flag_def;

static const cfg_flag_def cfg_flags[] = {
    {"--config", F_CONFIG, 1},
    {"--listen", F_LISTEN, 1},
    {"--store", F_STORE, 1},
    {"--redis", F_REDIS, 1},
    {"--set", F_SET, 1},
    {"--conformance", F_CONFORMANCE, 2},
    {"--check-config", F_CHECK, 2},
    {"--version", F_VERSION, 0},
    {"--help", F_HELP, 0},
    {"-h", F_HELP, 0},
};

typedef struct cfg_op {
    cfg_flag flag;
    const char *name; /* as spelled, for messages */
    const char *value;
} cfg_op;

/* First pass over argv: recognise every flag and find its value, without applying anything, so
 * that --help works even when the rest of the configuration is broken. */
static int cfg_args_scan(int argc, char *const *argv, cfg_op *ops, size_t *nops, char *err)
{
    char q[80];

    *nops = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        const cfg_flag_def *d = NULL;

        for (size_t j = 0; j < sizeof(cfg_flags) / sizeof(cfg_flags[0]); j++)
            if (strlen(cfg_flags[j].name) == nlen && strncmp(cfg_flags[j].name, arg, nlen) == 0)
                d = &cfg_flags[j];
        if (d == NULL) {
            if (arg[0] == '-')
                cfg_errf(err, CFG_ERR_MAX, "unknown flag '%s' (see --help)",
                         cfg_quote(arg, q, sizeof(q)));
            else
                cfg_errf(err, CFG_ERR_MAX, "unexpected argument '%s' (see --help)",
                         cfg_quote(arg, q, sizeof(q)));
            return -1;
        }
        cfg_op *op = &ops[(*nops)++];
        op->flag = d->flag;
        op->name = d->name;
        op->value = eq != NULL ? eq + 1 : NULL;
        if (d->value == 0 && eq != NULL) {
            cfg_errf(err, CFG_ERR_MAX, "%s takes no value", d->name);
            return -1;
        }
        if (d->value == 1 && eq == NULL) {
            if (i + 1 >= argc) {
                cfg_errf(err, CFG_ERR_MAX, "%s needs a value", d->name);
                return -1;
            }
            op->value = argv[++i];
        }
        /* `--check-config FILE` is the natural way to check a file, so it takes one too; a
         * following flag is not mistaken for it. */
        if (d->flag == F_CHECK && eq == NULL && i + 1 < argc && argv[i + 1][0] != '-')
            op->value = argv[++i];
    }
    return 0;
}

/* Whether a --set KEY=VALUE argument sets "store" (it then counts as --store for --redis). */
static bool cfg_set_names_store(const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t n = eq != NULL ? (size_t)(eq - kv) : 0;

    cfg_trim(&kv, &n);
    return n == 5 && memcmp(kv, "store", 5) == 0;
}

/* What the flags say before any of them is applied. */
typedef struct cfg_survey {
    const char *config; /* --config / --check-config FILE */
    cfg_conformance preset;
    bool help, version, check, store_given, redis_given;
} cfg_survey;

/* A --conformance[=MODE] value. Returns 0 or -1 with `err`. */
static int cfg_preset_parse(const char *v, cfg_conformance *out, char *err)
{
    char q[80];
    if (v == NULL || strcmp(v, "socketio") == 0)
        *out = CFG_CONFORMANCE_SOCKETIO;
    else if (strcmp(v, "engineio") == 0)
        *out = CFG_CONFORMANCE_ENGINEIO;
    else {
        cfg_errf(err, CFG_ERR_MAX, "--conformance: '%s' is not one of socketio|engineio",
                 cfg_quote(v, q, sizeof(q)));
        return -1;
    }
    return 0;
}

/* Second look at the flags: what to do, which file and preset, whether the store was named.
 * Returns 0 or -1 with `err`. */
static int cfg_survey_flags(const cfg_op *ops, size_t nops, cfg_survey *sv, char *err)
{
    memset(sv, 0, sizeof(*sv));
    for (size_t i = 0; i < nops; i++) {
        const char *v = ops[i].value;
        switch (ops[i].flag) {
        case F_HELP:
            sv->help = true;
            break;
        case F_VERSION:
            sv->version = true;
            break;
        case F_CHECK:
        case F_CONFIG:
            sv->check = sv->check || ops[i].flag == F_CHECK;
            /* --check-config FILE names the file just like --config FILE; two files would
             * leave it unclear which one is meant. */
            if (v == NULL)
                break;
            if (sv->config != NULL) {
                char q[80];
                cfg_errf(err, CFG_ERR_MAX, "%s: a configuration file is already given (%s)",
                         ops[i].name, cfg_quote(sv->config, q, sizeof(q)));
                return -1;
            }
            sv->config = v;
            break;
        case F_CONFORMANCE:
            if (cfg_preset_parse(v, &sv->preset, err) < 0)
                return -1;
            break;
        case F_STORE:
            sv->store_given = true;
            break;
        case F_REDIS:
            sv->redis_given = true;
            break;
        case F_SET:
            sv->store_given = sv->store_given || cfg_set_names_store(v);
            break;
        case F_LISTEN:
        case F_NONE:
            break;
        }
    }
    return 0;
}

/* Apply --listen, --store, --redis and --set in command-line order. Returns 0 or -1 with `err`. */
static int cfg_apply_flags(cfg *c, const cfg_op *ops, size_t nops, char *err)
{
    char inner[CFG_ERR_MAX];
    for (size_t i = 0; i < nops; i++) {
        const char *v = ops[i].value;
        const char *key = NULL;
        switch (ops[i].flag) {
        case F_LISTEN:
            key = "listen";
            break;
        case F_STORE:
            key = "store";
            break;
        case F_REDIS:
            key = "redis";
            break;
        case F_SET: {
            const char *eq = strchr(v, '=');
            if (eq == NULL) {
                cfg_errf(err, CFG_ERR_MAX, "--set expects KEY=VALUE");
                return -1;
            }
            if (cfg_set_n(c, v, (size_t)(eq - v), eq + 1, strlen(eq + 1), inner) < 0) {
                cfg_errf(err, CFG_ERR_MAX, "--set: %s", inner);
                return -1;
            }
            break;
        }
        default:
            break;
        }
        if (key != NULL && cfg_set(c, key, v, inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s: %s", ops[i].name, inner);
            return -1;
        }
    }
    return 0;
}

/* Every source in order onto `tmp`: preset, file, environment, flags; then validation. */
static int cfg_from_sources(cfg *tmp, const cfg_survey *sv, const cfg_op *ops, size_t nops,
                            char *const *envp, char *err)
{
    if (sv->preset != CFG_CONFORMANCE_OFF)
        cfg_apply_conformance(tmp, sv->preset);
    if (sv->config != NULL && cfg_load_file(tmp, sv->config, err) < 0)
        return -1;
    if (cfg_load_env(tmp, envp, err) < 0 || cfg_apply_flags(tmp, ops, nops, err) < 0)
        return -1;
    /* Giving a Redis URL on the command line says which store is wanted. */
    if (sv->redis_given && !sv->store_given)
        tmp->store = CFG_STORE_REDIS;
    return cfg_validate(tmp, err);
}

int cfg_from_args(cfg *c, int argc, char *const *argv, char *const *envp, cfg_action *action,
                  char err[CFG_ERR_MAX])
{
    cfg tmp;
    size_t nops;
    cfg_survey sv;
    int rc = -1;

    *action = CFG_ACTION_RUN;
    cfg_init(&tmp);
    cfg_op *ops = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*ops));
    if (ops == NULL) {
        cfg_errf(err, CFG_ERR_MAX, "out of memory");
        return -1;
    }
    if (cfg_args_scan(argc, argv, ops, &nops, err) < 0 || cfg_survey_flags(ops, nops, &sv, err) < 0)
        goto out;
    if (sv.help || sv.version) {
        *action = sv.help ? CFG_ACTION_HELP : CFG_ACTION_VERSION;
    } else {
        if (cfg_from_sources(&tmp, &sv, ops, nops, envp, err) < 0)
            goto out;
        *action = sv.check ? CFG_ACTION_CHECK : CFG_ACTION_RUN;
    }
    *c = tmp;
    rc = 0;
out:
    free(ops);
    return rc;
}

/* Prints `text` indented by `indent` spaces, wrapped at spaces to stay within `width` columns,
 * so that help strings in the table can be written without thinking about line length. */
static void cfg_print_wrapped(FILE *f, const char *text, int indent, int width)
{
    int col = 0;

    while (*text != '\0') {
        int n = (int)strcspn(text, " ");
        if (col > indent && col + 1 + n > width) {
            fputc('\n', f);
            col = 0;
        }
        if (col == 0)
            col = fprintf(f, "%*s", indent, "");
        else
            col += fprintf(f, " ");
        col += fprintf(f, "%.*s", n, text);
        text += n;
        while (*text == ' ')
            text++;
    }
    fputc('\n', f);
}

void cfg_print_help(void *out)
{
    FILE *f = out;

    fprintf(f,
            "presenced " PRESENCED_VERSION
            " - presence daemon (Engine.IO v4 / Socket.IO v5 server)\n"
            "\n"
            "Usage: presenced [OPTIONS]\n"
            "\n"
            "Options:\n"
            "  --config FILE           read KEY = VALUE settings from FILE ('#' starts a comment)\n"
            "  --listen HOST:PORT      same as --set listen=HOST:PORT\n"
            "  --store memory|redis    same as --set store=...\n"
            "  --redis URL             same as --set redis=URL; also sets store=redis unless\n"
            "                          --store or --set store=... is given\n"
            "  --set KEY=VALUE         set any key below (repeatable)\n"
            "  --conformance[=MODE]    apply the protocol test-suite preset first; MODE is\n"
            "                          socketio (the default) or engineio\n"
            "  --check-config [FILE]   load and validate the configuration (FILE as with\n"
            "                          --config), then exit\n"
            "  --version               print the version and exit\n"
            "  -h, --help              print this help and exit\n"
            "Flags with a value also accept --flag=VALUE.\n"
            "\n"
            "Settings are applied in this order, later wins: defaults, the --conformance preset,\n"
            "the --config file, PRESENCED_<KEY> environment variables (e.g. "
            "PRESENCED_PING_INTERVAL),\n"
            "then --listen, --store, --redis and --set in command-line order.\n"
            "\n"
            "Keys (file: KEY = VALUE, environment: PRESENCED_<KEY>, flag: --set KEY=VALUE):\n");
    /* Columns as wide as the longest name and syntax, so that every default lines up. */
    int wname = 0, wsyntax = 0;
    for (size_t i = 0; i < cfg_nkeys; i++) {
        int n = (int)strlen(cfg_keys[i].name), s = (int)strlen(cfg_keys[i].syntax);
        wname = n > wname ? n : wname;
        wsyntax = s > wsyntax ? s : wsyntax;
    }
    for (size_t i = 0; i < cfg_nkeys; i++) {
        const cfg_key *k = &cfg_keys[i];
        fprintf(f, "  %-*s %-*s default \"%s\"\n", wname, k->name, wsyntax, k->syntax, k->def);
        char text[512];
        if (k->type == CFG_TYPE_UINT)
            snprintf(text, sizeof(text), "%s Range %u..%u.", k->help, k->min, k->max);
        else
            snprintf(text, sizeof(text), "%s", k->help);
        cfg_print_wrapped(f, text, 6, 80);
    }
}
