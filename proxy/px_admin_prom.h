/*
 * Prometheus text exposition format 0.0.4 for /metrics: a small writer (families with HELP
 * and TYPE, samples with escaped label values) and the rendering of rsproxy's metrics from a
 * snapshot. Pure: it formats what it is given and reads no clock, socket or global.
 */
#ifndef PX_ADMIN_PROM_H
#define PX_ADMIN_PROM_H

#include "px_admin.h"
#include "px_buf.h"
#include "px_proxy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PX_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum px_prom_type {
    PX_PROM_COUNTER = 0,
    PX_PROM_GAUGE,
} px_prom_type_t;

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. Label names: [a-zA-Z_][a-zA-Z0-9_]*, and names
 * starting with "__" are reserved for Prometheus itself. */
bool px_prom_name_ok(const char *name);
bool px_prom_label_name_ok(const char *name);

/*
 * "# HELP <name> <help>" and "# TYPE <name> <type>" lines. Every sample of the family must
 * follow before the next family starts. An invalid name fails the buffer (b->failed): the
 * names are ours, so that is a bug a test catches, and a failed scrape beats a corrupt one.
 */
void px_prom_family(px_dbuf_t *b, const char *name, px_prom_type_t type, const char *help);

/*
 * One sample line. `labels` is NULL or a NULL-terminated array of name, value pairs; values
 * may hold any bytes and are escaped (backslash, double quote, line feed).
 */
void px_prom_sample(px_dbuf_t *b, const char *name, const char *const *labels, uint64_t value);
void px_prom_sample_f(px_dbuf_t *b, const char *name, const char *const *labels, double value);

/* The escaping rules on their own: a label value, and HELP text (backslash, line feed). */
void px_prom_put_label_value(px_dbuf_t *b, const char *v, size_t n);
void px_prom_put_help(px_dbuf_t *b, const char *help);

/* The label value of a login failure reason ("tls"); "other" when out of range. */
const char *px_admin_login_fail_name(px_login_fail_t r);

/* Everything /metrics shows, gathered at one instant by the proxy binding. */
typedef struct px_admin_metrics {
    px_proxy_stats_t stats;
    const char *version;
    double start_time_s;    /* process start, Unix seconds */
    int max_client_conn;    /* the current snapshot's limit */
    bool iam;               /* upstream.auth = iam: the AWS credential state is shown */
    bool ready;             /* what /readiness answers now */
    px_admin_stats_t admin; /* the endpoint's own traffic */
} px_admin_metrics_t;

/* Appends every rsproxy metric family. Counters the proxy keeps are shown as they are; labels
 * whose value would be zero are still emitted, so rate() works from the first scrape. */
void px_admin_metrics_render(px_dbuf_t *b, const px_admin_metrics_t *m);

#endif
