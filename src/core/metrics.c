/* A small metrics registry: families in declaration order, each with a short list of series
 * (one per label value). Lookups are linear: families are a few dozen and label values a
 * handful, and counting must not allocate after the first use of a label value. */
#include "presenced/core/metrics.h"

#include "presenced/codec/vec.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presenced/codec/buf.h"

typedef struct metrics_series {
    char *label_value; /* NULL for the family without a label */
    double value;      /* counter, gauge; histogram: the sum */
    uint64_t count;    /* histogram: observations */
    uint64_t *buckets; /* histogram: per bound, not cumulative; [nbounds] is +Inf */
} metrics_series;

struct metrics_family {
    metrics_kind kind;
    const char *name, *help, *label;
    double *bounds;
    size_t nbounds;
    metrics_series *series;
    size_t nseries, capseries;
    struct metrics_family *next;
};

struct metrics {
    metrics_family *head, *tail;
};

metrics *metrics_new(void)
{
    return calloc(1, sizeof(metrics));
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    metrics_family *f = m->head;
    while (f) {
        metrics_family *next = f->next;
        for (size_t i = 0; i < f->nseries; i++) {
            free(f->series[i].label_value);
            free(f->series[i].buckets);
        }
        free(f->series);
        free(f->bounds);
        free(f);
        f = next;
    }
    free(m);
}

metrics_family *metrics_family_get(metrics *m, metrics_kind kind, const char *name,
                                   const char *help, const char *label, const double *bounds,
                                   size_t nbounds)
{
    if (!m)
        return NULL;
    for (metrics_family *f = m->head; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f->kind == kind ? f : NULL;
    metrics_family *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->kind = kind;
    f->name = name;
    f->help = help;
    f->label = label;
    if (kind == METRICS_HISTOGRAM && nbounds > 0) {
        if (!(f->bounds = malloc(nbounds * sizeof(*f->bounds)))) {
            free(f);
            return NULL;
        }
        memcpy(f->bounds, bounds, nbounds * sizeof(*f->bounds));
        f->nbounds = nbounds;
    }
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    return f;
}

static bool same_label(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static metrics_series *series_find(const metrics_family *f, const char *label_value)
{
    for (size_t i = 0; i < f->nseries; i++)
        if (same_label(f->series[i].label_value, label_value))
            return &f->series[i];
    return NULL;
}

static metrics_series *series_get(metrics_family *f, const char *label_value)
{
    metrics_series *s = series_find(f, label_value);
    if (s)
        return s;
    if (VEC_RESERVE(f->series, f->nseries, f->capseries, 4) < 0)
        return NULL;
    s = &f->series[f->nseries];
    memset(s, 0, sizeof(*s));
    if (label_value && !(s->label_value = strdup(label_value)))
        return NULL;
    if (f->kind == METRICS_HISTOGRAM &&
        !(s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets)))) {
        free(s->label_value);
        return NULL;
    }
    f->nseries++;
    return s;
}

void metrics_add(metrics_family *f, const char *label_value, double v)
{
    metrics_series *s = f && f->kind != METRICS_HISTOGRAM ? series_get(f, label_value) : NULL;
    if (s)
        s->value += v;
}

void metrics_set(metrics_family *f, const char *label_value, double v)
{
    metrics_series *s = f && f->kind != METRICS_HISTOGRAM ? series_get(f, label_value) : NULL;
    if (s)
        s->value = v;
}

void metrics_observe(metrics_family *f, const char *label_value, double v)
{
    metrics_series *s = f && f->kind == METRICS_HISTOGRAM ? series_get(f, label_value) : NULL;
    if (!s)
        return;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    s->buckets[i]++;
    s->count++;
    s->value += v;
}

double metrics_value(const metrics_family *f, const char *label_value)
{
    const metrics_series *s = f ? series_find(f, label_value) : NULL;
    return s ? s->value : 0;
}

__attribute__((format(printf, 2, 3))) static int out(buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    return buf_append(b, tmp, (size_t)n);
}

/* A label value escaped as the text format asks (backslash, quote, newline). */
static int out_label(buf *b, const char *name, const char *value, const char *extra_name,
                     const char *extra_value)
{
    if (!name && !extra_name)
        return 0;
    int rc = buf_append(b, "{", 1);
    if (name) {
        rc |= out(b, "%s=\"", name);
        for (const char *p = value; *p; p++) {
            if (*p == '\\' || *p == '"')
                rc |= buf_append(b, "\\", 1) | buf_append(b, p, 1);
            else if (*p == '\n')
                rc |= buf_append(b, "\\n", 2);
            else
                rc |= buf_append(b, p, 1);
        }
        rc |= buf_append(b, "\"", 1);
    }
    if (extra_name)
        rc |= out(b, "%s%s=\"%s\"", name ? "," : "", extra_name, extra_value);
    return rc | buf_append(b, "}", 1);
}

/* The shortest of 15 or 17 significant digits that reads back as v: 9 digits turned a start
 * time in seconds since the epoch (1.79631806e+09) into a 10-second step. */
static int out_number(buf *b, double v)
{
    if (isinf(v))
        return out(b, v > 0 ? "+Inf" : "-Inf");
    if (v == floor(v) && fabs(v) < 1e15)
        return out(b, "%.0f", v);
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        snprintf(tmp, sizeof(tmp), "%.17g", v);
    return out(b, "%s", tmp);
}

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

char *metrics_render(const metrics *m, size_t *len)
{
    buf b;
    buf_init(&b);
    int rc = 0;
    for (const metrics_family *f = m ? m->head : NULL; f && rc == 0; f = f->next) {
        rc |=
            out(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, kind_names[f->kind]);
        for (size_t i = 0; i < f->nseries && rc == 0; i++) {
            const metrics_series *s = &f->series[i];
            const char *lname = s->label_value ? f->label : NULL;
            if (f->kind != METRICS_HISTOGRAM) {
                rc |= out(&b, "%s", f->name) | out_label(&b, lname, s->label_value, NULL, NULL) |
                      buf_append(&b, " ", 1) | out_number(&b, s->value) | buf_append(&b, "\n", 1);
                continue;
            }
            uint64_t cum = 0;
            for (size_t k = 0; k <= f->nbounds; k++) {
                cum += s->buckets[k];
                char le[32];
                if (k < f->nbounds)
                    snprintf(le, sizeof(le), "%g", f->bounds[k]);
                else
                    snprintf(le, sizeof(le), "+Inf");
                rc |= out(&b, "%s_bucket", f->name) |
                      out_label(&b, lname, s->label_value, "le", le) |
                      out(&b, " %llu\n", (unsigned long long)cum);
            }
            rc |= out(&b, "%s_sum", f->name) | out_label(&b, lname, s->label_value, NULL, NULL) |
                  buf_append(&b, " ", 1) | out_number(&b, s->value) | buf_append(&b, "\n", 1);
            rc |= out(&b, "%s_count", f->name) | out_label(&b, lname, s->label_value, NULL, NULL) |
                  out(&b, " %llu\n", (unsigned long long)s->count);
        }
    }
    if (rc != 0 || buf_append(&b, "", 1) < 0) {
        buf_deinit(&b);
        return NULL;
    }
    *len = b.len - 1;
    return (char *)b.data;
}
