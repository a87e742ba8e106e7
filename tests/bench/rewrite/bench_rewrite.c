/*
 * Rewriter benchmark: statements per second through px_rewrite_sql() for typical COPY and UNLOAD
 * bodies (what a client pays when its statement is rewritten), and nanoseconds per call of the
 * checks the proxy runs on every Query/Parse when rewriting is configured (px_rewrite_lead,
 * px_rewrite_maybe) on ordinary SELECTs, next to what a full lex of the same text would cost.
 * Each figure is the median of --repeat timed runs of about --seconds each. Not a test: it
 * prints numbers and exits 0; tests/bench/rewrite/run.sh builds and runs it.
 */
#include "px_buf.h"
#include "px_rewrite.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROLE "arn:aws:iam::123456789012:role/RedshiftCopy"

static volatile uint64_t sink; /* keeps the compiler from dropping the measured calls */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef enum what {
    W_REWRITE,
    W_LEAD,
    W_MAYBE,
} what_t;

typedef struct item {
    const char *name;
    what_t what;
    const char *sql;
} item_t;

static px_rewrite_opts_t opts;

/* Runs `iters` calls; returns seconds. */
static double run(const item_t *it, uint64_t iters, px_dbuf_t *out)
{
    size_t n = strlen(it->sql);
    px_rewrite_result_t res;
    double t0 = now_s();
    for (uint64_t i = 0; i < iters; i++) {
        switch (it->what) {
        case W_REWRITE:
            out->len = 0;
            if (px_rewrite_sql(&opts, it->sql, n, out, &res) != 0) {
                fprintf(stderr, "px_rewrite_sql failed\n");
                exit(1);
            }
            sink += (uint64_t)res.verdict + out->len;
            break;
        case W_LEAD:
            sink += (uint64_t)px_rewrite_lead(it->sql, n, true);
            break;
        case W_MAYBE:
            sink += (uint64_t)px_rewrite_maybe(it->sql, n);
            break;
        }
    }
    return now_s() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(const item_t *it, double seconds, int repeat)
{
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    size_t n = strlen(it->sql);
    /* Calibrate the iteration count to about `seconds` per run. */
    uint64_t iters = 16;
    double t;
    while ((t = run(it, iters, &out)) < seconds / 8)
        iters *= 2;
    iters = (uint64_t)((double)iters * seconds / t) + 1;
    double ns[16];
    if (repeat > 16)
        repeat = 16;
    for (int r = 0; r < repeat; r++)
        ns[r] = run(it, iters, &out) * 1e9 / (double)iters;
    qsort(ns, (size_t)repeat, sizeof(ns[0]), cmp_double);
    double med = ns[repeat / 2];
    const char *verdict = "";
    if (it->what == W_REWRITE) {
        px_rewrite_result_t res;
        out.len = 0;
        if (px_rewrite_sql(&opts, it->sql, n, &out, &res) == 0)
            verdict = res.verdict == PX_REWRITE_CHANGED     ? "changed"
                      : res.verdict == PX_REWRITE_UNCHANGED ? "unchanged"
                                                            : "refused";
    }
    printf("%-44s %7zu %12.1f %14.0f %10.1f  %s\n", it->name, n, med, 1e9 / med,
           (double)n / med * 1e3, verdict);
    px_dbuf_free(&out);
}

int main(int argc, char **argv)
{
    double seconds = 0.3;
    int repeat = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--seconds S] [--repeat N]\n", argv[0]);
            return 2;
        }
    }
    if (repeat < 1)
        repeat = 1;
    static char *allowed_items[] = {"arn:aws:iam::123456789012:role/Other"};
    static const cfg_strlist_t allowed = {allowed_items, 1};
    opts = (px_rewrite_opts_t){
        .iam_role = ROLE,
        .tempdir = "s3://rsproxy-test/tmp/",
        .allowed_iam_roles = &allowed,
        .allow_client_credentials = false,
    };

    /* A long analytic SELECT and a large INSERT: ordinary traffic that must stay cheap. */
    static char analytic[4096], insert[65536];
    snprintf(analytic, sizeof(analytic),
             "SELECT d.region, date_trunc('month', s.sold_at) AS month, count(*) AS n, "
             "sum(s.amount) AS total, avg(s.amount) AS mean FROM sales s JOIN dim_store d ON "
             "d.store_id = s.store_id WHERE s.sold_at >= '2024-01-01' AND s.sold_at < "
             "'2025-01-01' AND d.region IN ('north', 'south', 'east', 'west') /* report */ "
             "GROUP BY 1, 2 HAVING sum(s.amount) > 1000 ORDER BY 1, 2 LIMIT 500");
    size_t off = (size_t)snprintf(insert, sizeof(insert), "INSERT INTO events VALUES ");
    for (int i = 0; off + 80 < sizeof(insert); i++)
        off += (size_t)snprintf(insert + off, sizeof(insert) - off,
                                "%s(%d, 'user-%d', 'click', now(), '{\"k\": %d}')", i ? "," : "", i,
                                i * 7, i);

    const item_t items[] = {
        {"rewrite: COPY s3:// + IAM_ROLE", W_REWRITE,
         "COPY public.sales (sale_id, store_id, amount, sold_at) FROM "
         "'s3://rsproxy-test/data/sales/2024/' CSV IGNOREHEADER 1 DELIMITER ',' GZIP REGION "
         "'us-east-1';"},
        {"rewrite: COPY relative + IAM_ROLE", W_REWRITE, "COPY sales FROM 'data/sales.csv' CSV;"},
        {"rewrite: COPY s3a:// manifest (spark)", W_REWRITE,
         "COPY \"public\".\"sales\" (\"a\",\"b\",\"c\") FROM "
         "'s3a://rsproxy-test/tmp/0f8e1c2d-1111-2222-3333-444455556666/manifest.json' FORMAT "
         "AS CSV NULL AS '@NULL@' manifest"},
        {"rewrite: UNLOAD + IAM_ROLE", W_REWRITE,
         "UNLOAD ('SELECT \"c1\", \"c2\", \"c3\" FROM \"public\".\"t\" WHERE \"c1\" = ''x'' AND "
         "\"c2\" > 10') TO 's3://rsproxy-test/tmp/0f8e1c2d/' MANIFEST PARALLEL OFF "
         "ALLOWOVERWRITE"},
        {"rewrite: UNLOAD \\' escapes (policy 2 reads)", W_REWRITE,
         "UNLOAD ('SELECT \"c1\" FROM \"t\" WHERE \"c1\" = \\'x\\' AND \"c2\" LIKE \\'a%\\'') TO "
         "'s3://rsproxy-test/tmp/0f8e1c2d/' ESCAPE MANIFEST NULL AS '@NULL@'"},
        {"rewrite: UNLOAD already authorized", W_REWRITE,
         "UNLOAD ('SELECT * FROM t') TO 's3://rsproxy-test/tmp/x/' IAM_ROLE "
         "'arn:aws:iam::123456789012:role/Other' MANIFEST"},
        {"rewrite: BEGIN; 8 stmts incl. 2 COPY; COMMIT", W_REWRITE,
         "BEGIN; CREATE TEMP TABLE stage (LIKE sales); COPY stage FROM 'in/a.csv' CSV; "
         "DELETE FROM sales USING stage WHERE sales.id = stage.id; INSERT INTO sales SELECT * "
         "FROM stage; COPY audit FROM 's3://rsproxy-test/in/audit.json' JSON 'auto'; "
         "DROP TABLE stage; COMMIT;"},
        {"rewrite: analytic SELECT (not COPY)", W_REWRITE, analytic},
        {"lead: pgbench -S SELECT", W_LEAD,
         "SELECT abalance FROM pgbench_accounts WHERE aid = 48151;"},
        {"maybe: pgbench -S SELECT", W_MAYBE,
         "SELECT abalance FROM pgbench_accounts WHERE aid = 48151;"},
        {"lead: analytic SELECT", W_LEAD, analytic},
        {"maybe: analytic SELECT", W_MAYBE, analytic},
        {"lead: 64 KiB INSERT", W_LEAD, insert},
        {"maybe: 64 KiB INSERT", W_MAYBE, insert},
        {"rewrite: 64 KiB INSERT (full lex)", W_REWRITE, insert},
        {"lead: COPY", W_LEAD, "COPY sales FROM 'data/sales.csv' CSV;"},
    };
    printf("%-44s %7s %12s %14s %10s  %s\n", "case", "bytes", "ns/call", "calls/s", "MB/s",
           "verdict");
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++)
        bench(&items[i], seconds, repeat);
    return sink == 42 ? 1 : 0; /* use the sink */
}
