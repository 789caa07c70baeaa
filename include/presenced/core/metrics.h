/* metrics — counters, gauges and histograms rendered in the Prometheus text format (GET
 * /metrics). The app owns one registry and passes it (or NULL) to the modules that count; every
 * function accepts a NULL registry or series and then does nothing, so modules run without one
 * in tests.
 *
 * Labels are a fixed, small set of values chosen by the code (a transport, an event type), never
 * user ids or room names: each distinct value is a series kept forever.
 *
 * Pure code: no I/O, no clock, no globals.
 */
#ifndef PRESENCED_METRICS_H
#define PRESENCED_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics;
typedef struct metrics_family metrics_family;

typedef enum metrics_kind { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_kind;

metrics *metrics_new(void);
void metrics_free(metrics *m);

/* Declare a family (or find the one declared with that name): `name` and `help` are static
 * strings; `label` is the name of its one label, or NULL for none. Histograms take `nbounds`
 * ascending upper bounds (copied); the +Inf bucket is implied. Returns NULL (memory). */
metrics_family *metrics_family_get(metrics *m, metrics_kind kind, const char *name,
                                   const char *help, const char *label, const double *bounds,
                                   size_t nbounds);

/* Counters and gauges: add to / set the series of `label_value` (NULL when the family has no
 * label). Histograms: record one observation. */
void metrics_add(metrics_family *f, const char *label_value, double v);
void metrics_set(metrics_family *f, const char *label_value, double v);
void metrics_observe(metrics_family *f, const char *label_value, double v);
/* The current value of a counter or gauge series (0 if it does not exist). */
double metrics_value(const metrics_family *f, const char *label_value);

/* The whole registry in the Prometheus text exposition format 0.0.4. Returns a malloc'd
 * NUL-terminated text (caller frees) and its length, or NULL (memory). */
char *metrics_render(const metrics *m, size_t *len);

#endif
