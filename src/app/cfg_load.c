/* cfg_load — the sources of a configuration besides the command line: a file of KEY = VALUE
 * lines and PRESENCED_<KEY> environment variables.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_impl.h"

#define CFG_ENV_PREFIX "PRESENCED_"

int cfg_load_file(cfg *c, const char *path, char err[CFG_ERR_MAX])
{
    char inner[CFG_ERR_MAX];
    unsigned seen[CFG_KEYS_MAX] = {0}; /* line where each key was set, 0 = not yet */
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    int rc = 0;
    cfg tmp = *c; /* all-or-nothing: a bad line leaves `c` as it was */
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        cfg_errf(err, CFG_ERR_MAX, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        const char *s = line;
        size_t n = (size_t)len;
        int quoted = 0;

        lineno++;
        if (strlen(line) != n) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        /* Editors on some systems start UTF-8 files with a byte order mark. */
        if (lineno == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
        /* '#' starts a comment at the start of a line or after whitespace, outside quotes, so a
         * password like "pa#ss" in a URL needs no quoting. */
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '"')
                quoted = !quoted;
            else if (s[i] == '#' && !quoted && (i == 0 || cfg_is_space(s[i - 1]))) {
                n = i;
                break;
            }
        }
        cfg_trim(&s, &n);
        if (n == 0)
            continue;
        const char *eq = memchr(s, '=', n);
        if (eq == NULL) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: expected KEY = VALUE", path, lineno);
            rc = -1;
            break;
        }
        const char *key = s;
        size_t kn = (size_t)(eq - s);
        cfg_trim(&key, &kn);
        const cfg_key *k = cfg_key_find(key, kn);
        if (k != NULL && seen[k - cfg_keys] != 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: %s: already set on line %u", path, lineno, k->name,
                     seen[k - cfg_keys]);
            rc = -1;
            break;
        }
        if (cfg_set_n(&tmp, key, kn, eq + 1, n - (size_t)(eq + 1 - s), inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "%s:%u: %s", path, lineno, inner);
            rc = -1;
            break;
        }
        seen[k - cfg_keys] = lineno;
    }
    if (rc == 0 && ferror(f)) {
        cfg_errf(err, CFG_ERR_MAX, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc == 0)
        *c = tmp;
    return rc;
}

int cfg_load_env(cfg *c, char *const *envp, char err[CFG_ERR_MAX])
{
    const size_t plen = strlen(CFG_ENV_PREFIX);
    char inner[CFG_ERR_MAX], q[80], name[64];
    cfg tmp = *c;

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *var = envp[i];
        const char *eq = strchr(var, '=');
        const cfg_key *k = NULL;

        if (eq == NULL || strncmp(var, CFG_ENV_PREFIX, plen) != 0)
            continue;
        size_t n = (size_t)(eq - var) - plen;
        /* Only the upper-case spelling names a key, the way shells and unit files write it. */
        if (n < sizeof(name)) {
            int upper = 1;
            for (size_t j = 0; j < n; j++) {
                char ch = var[plen + j];
                upper = upper && !(ch >= 'a' && ch <= 'z');
                name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
            }
            name[n] = '\0';
            k = upper ? cfg_key_find(name, n) : NULL;
        }
        if (k == NULL) {
            size_t vn = (size_t)(eq - var);
            char vname[80];
            memcpy(vname, var, vn < sizeof(vname) - 1 ? vn : sizeof(vname) - 1);
            vname[vn < sizeof(vname) - 1 ? vn : sizeof(vname) - 1] = '\0';
            cfg_errf(err, CFG_ERR_MAX, "environment variable %s does not name a key",
                     cfg_quote(vname, q, sizeof(q)));
            return -1;
        }
        if (cfg_set(&tmp, k->name, eq + 1, inner) < 0) {
            cfg_errf(err, CFG_ERR_MAX, "environment variable %.*s: %s", (int)(eq - var), var,
                     inner);
            return -1;
        }
    }
    *c = tmp;
    return 0;
}
