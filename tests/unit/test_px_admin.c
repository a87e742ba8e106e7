/*
 * Unit tests for the admin endpoint's pure parts: the HTTP request parser (px_admin_http.c)
 * under every chunking, its limits and error statuses; the Prometheus text writer and the
 * rendering of rsproxy's metrics (px_admin_prom.c), checked line by line and by a small
 * exposition-format reader; and the probe decisions and login-failure classification that
 * /startup and /readiness rest on (px_admin_proxy.c).
 */
#include "px_admin.h"
#include "px_admin_http.h"
#include "px_admin_prom.h"
#include "px_err.h"
#include "px_test.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ------------------------------------------------------------------------------------------ */
/* Parser helpers.                                                                             */

#define MAXREQ 16

typedef struct parsed {
    int n;                      /* requests parsed */
    px_admin_req_t req[MAXREQ]; /* ... and the error, if any, at req[n] */
    size_t end[MAXREQ];         /* stream offset just after each request */
    int error;                  /* the error status, 0 when none */
    size_t consumed;            /* bytes consumed in all */
} parsed_t;

/* Feeds `s` in pieces of `chunk` bytes (0: all at once), as a socket would deliver it. */
static void parse(const char *s, size_t n, size_t chunk, parsed_t *out)
{
    px_admin_parser_t p;
    px_admin_parser_init(&p);
    memset(out, 0, sizeof(*out));
    size_t have = 0, pos = 0;
    while (pos < n || have < n) {
        size_t step = chunk ? chunk : n;
        have = have + step > n ? n : have + step;
        while (pos < have) {
            size_t used = 0;
            px_admin_req_t r;
            px_admin_parse_t rc =
                px_admin_parser_feed(&p, (const uint8_t *)s + pos, have - pos, &used, &r);
            ASSERT(used <= have - pos);
            pos += used;
            if (rc == PX_ADMIN_PARSE_MORE) {
                ASSERT_EQ(pos, have);
                continue;
            }
            if (rc == PX_ADMIN_PARSE_ERROR) {
                out->req[out->n < MAXREQ ? out->n : MAXREQ - 1] = r;
                out->error = r.status;
                out->consumed = pos;
                return;
            }
            ASSERT(out->n < MAXREQ - 1);
            out->req[out->n] = r;
            out->end[out->n] = pos;
            out->n++;
        }
        if (have == n)
            break;
    }
    out->consumed = pos;
}

#define S(lit) (lit), sizeof(lit) - 1

/* Every chunking gives the same requests and the same error. */
static void parse_every_chunking(const char *s, size_t n, parsed_t *whole)
{
    parse(s, n, 0, whole);
    for (size_t chunk = 1; chunk <= 7; chunk++) {
        parsed_t p;
        parse(s, n, chunk, &p);
        ASSERT_EQ(p.n, whole->n);
        ASSERT_EQ(p.error, whole->error);
        for (int i = 0; i < p.n; i++) {
            ASSERT_STR_EQ(p.req[i].path, whole->req[i].path);
            ASSERT_EQ(p.req[i].method, whole->req[i].method);
            ASSERT_EQ(p.req[i].keep_alive, whole->req[i].keep_alive);
            ASSERT_EQ(p.end[i], whole->end[i]);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Parser.                                                                                     */

PX_TEST(http_simple_get)
{
    parsed_t p;
    parse_every_chunking(S("GET /metrics HTTP/1.1\r\nHost: localhost:9187\r\n"
                           "User-Agent: Prometheus/2.45\r\nAccept: */*\r\n\r\n"),
                         &p);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(p.n, 1);
    ASSERT_STR_EQ(p.req[0].path, "/metrics");
    ASSERT_EQ(p.req[0].method, PX_ADMIN_GET);
    ASSERT_STR_EQ(p.req[0].method_name, "GET");
    ASSERT_EQ(p.req[0].http_major, 1);
    ASSERT_EQ(p.req[0].http_minor, 1);
    ASSERT(p.req[0].keep_alive);
    ASSERT_EQ(p.req[0].status, 0);
}

PX_TEST(http_kubelet_probe)
{
    /* What the kubelet sends (Go's net/http with keep-alives disabled). */
    parsed_t p;
    parse_every_chunking(S("GET /readiness HTTP/1.1\r\nHost: 10.0.0.7:9187\r\n"
                           "User-Agent: kube-probe/1.29\r\nAccept: */*\r\n"
                           "Connection: close\r\nAccept-Encoding: gzip\r\n\r\n"),
                         &p);
    ASSERT_EQ(p.n, 1);
    ASSERT_STR_EQ(p.req[0].path, "/readiness");
    ASSERT(!p.req[0].keep_alive);
}

PX_TEST(http_head_and_other_methods)
{
    parsed_t p;
    parse_every_chunking(S("HEAD /liveness HTTP/1.1\r\nHost: x\r\n\r\n"
                           "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                           "DELETE /startup HTTP/1.1\r\nHost: x\r\n\r\n"),
                         &p);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(p.n, 3);
    ASSERT_EQ(p.req[0].method, PX_ADMIN_HEAD);
    ASSERT_EQ(p.req[1].method, PX_ADMIN_OTHER);
    ASSERT_STR_EQ(p.req[1].method_name, "POST");
    ASSERT_EQ(p.req[2].method, PX_ADMIN_OTHER);
    ASSERT_STR_EQ(p.req[2].path, "/startup");
}

PX_TEST(http_pipelined_in_order)
{
    static const char s[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /b?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                            "\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    parsed_t p;
    parse_every_chunking(S(s), &p);
    ASSERT_EQ(p.n, 3);
    ASSERT_STR_EQ(p.req[0].path, "/a");
    ASSERT_STR_EQ(p.req[1].path, "/b");
    ASSERT_STR_EQ(p.req[2].path, "/c");
    ASSERT_EQ(p.end[0], strlen("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_EQ(p.end[2], sizeof(s) - 1);
    ASSERT(p.req[0].keep_alive && p.req[1].keep_alive && !p.req[2].keep_alive);
}

PX_TEST(http_partial_request_waits)
{
    parsed_t p;
    parse(S("GET /metrics HTTP/1.1\r\nHost: x\r\n"), 0, &p);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(p.consumed, strlen("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
}

PX_TEST(http_targets)
{
    static const struct {
        const char *target, *path;
    } cases[] = {
        {"/metrics", "/metrics"},
        {"/metrics?name[]=x", "/metrics"},
        {"/liveness#frag", "/liveness"},
        {"http://localhost:9187/startup?a", "/startup"},
        {"HTTPS://h/readiness", "/readiness"},
        {"http://localhost:9187", "/"},
        {"/%6Detrics", "/%6Detrics"}, /* not decoded: such a path is simply not found */
        {"//metrics", "//metrics"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        char req[256];
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", cases[i].target);
        parsed_t p;
        parse(req, (size_t)n, 0, &p);
        ASSERT_EQ(p.error, 0);
        ASSERT_EQ(p.n, 1);
        ASSERT_STR_EQ(p.req[0].path, cases[i].path);
    }
    parsed_t p;
    parse(S("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 400);
    parse(S("GET ftp://x/metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 400);
    parse(S("CONNECT localhost:9187 HTTP/1.1\r\nHost: x\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 400);
}

PX_TEST(http_host_rules)
{
    parsed_t p;
    parse_every_chunking(S("GET /metrics HTTP/1.1\r\n\r\n"), &p);
    ASSERT_EQ(p.error, 400);
    ASSERT_STR_EQ(p.req[p.n].error, "no Host header");
    parse_every_chunking(S("GET /metrics HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\n"), &p);
    ASSERT_EQ(p.error, 400);
    ASSERT_STR_EQ(p.req[p.n].error, "more than one Host header");
    /* HTTP/1.0 may omit it; "Hostname" is not "Host". */
    parse_every_chunking(S("GET /metrics HTTP/1.0\r\nHostname: a\r\n\r\n"), &p);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(p.n, 1);
    ASSERT(!p.req[0].keep_alive);
    parse_every_chunking(S("GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), &p);
    ASSERT_EQ(p.n, 1);
    ASSERT(p.req[0].keep_alive);
    ASSERT_EQ(p.req[0].http_minor, 0);
}

PX_TEST(http_body_refused)
{
    parsed_t p;
    parse_every_chunking(S("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
                         &p);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(p.error, 413);
    /* The body is never consumed as a request. */
    ASSERT(p.consumed <= strlen("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"));
    parse_every_chunking(
        S("GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
          "0\r\n\r\n"),
        &p);
    ASSERT_EQ(p.error, 413);
    parse_every_chunking(S("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), &p);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(p.n, 1);
    /* Two lengths, or a length with chunking, are request smuggling material: 400. */
    parse(S("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 400);
}

PX_TEST(http_limits)
{
    char *big = malloc(PX_ADMIN_MAX_HEAD * 3);
    ASSERT(big);
    /* A target just under the cap is fine; one byte more is 414. */
    size_t n = (size_t)sprintf(big, "GET /");
    memset(big + n, 'a', PX_ADMIN_MAX_TARGET - 1);
    n += PX_ADMIN_MAX_TARGET - 1;
    n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    parsed_t p;
    parse(big, n, 0, &p);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(strlen(p.req[0].path), PX_ADMIN_MAX_TARGET);
    n = (size_t)sprintf(big, "GET /");
    memset(big + n, 'a', PX_ADMIN_MAX_TARGET);
    n += PX_ADMIN_MAX_TARGET;
    n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    parse(big, n, 0, &p);
    ASSERT_EQ(p.error, 414);
    parse(big, n, 3, &p);
    ASSERT_EQ(p.error, 414);

    /* Too many header fields: 431. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < PX_ADMIN_MAX_HEADERS; i++)
        n += (size_t)sprintf(big + n, "X-%d: y\r\n", i);
    n += (size_t)sprintf(big + n, "\r\n");
    parse(big, n, 0, &p);
    ASSERT_EQ(p.error, 431);

    /* A head over 8 KiB in few headers: 431, whether it arrives whole or in pieces, and
     * before the end of the head when it never ends. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'v', PX_ADMIN_MAX_HEAD);
    n += PX_ADMIN_MAX_HEAD;
    size_t open_end = n;
    n += (size_t)sprintf(big + n, "\r\n\r\n");
    parse(big, n, 0, &p);
    ASSERT_EQ(p.error, 431);
    parse(big, n, 100, &p);
    ASSERT_EQ(p.error, 431);
    parse(big, open_end, 512, &p);
    ASSERT_EQ(p.error, 431);
    ASSERT(p.consumed <= PX_ADMIN_MAX_HEAD + 512);

    /* Just under the cap, exactly: accepted. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    size_t fill = PX_ADMIN_MAX_HEAD - n - 4;
    memset(big + n, 'v', fill);
    n += fill;
    n += (size_t)sprintf(big + n, "\r\n\r\n");
    ASSERT_EQ(n, PX_ADMIN_MAX_HEAD);
    parse(big, n, 0, &p);
    ASSERT_EQ(p.error, 0);
    ASSERT_EQ(p.n, 1);
    free(big);
}

PX_TEST(http_malformed)
{
#define C(lit)                                                                                     \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        C("hello\r\n\r\n"),
        C("GET\r\n\r\n"),
        C("GET /metrics HTTP/1.1\nHost: x\n\n"),
        C("GET /metrics HTTP/1.1\r\nHost x\r\n\r\n"),
        C("GET /met rics HTTP/1.1\r\nHost: x\r\n\r\n"),
        C("GET /metrics HTTP/1.1\r\n Host: x\r\n\r\n"),
        C("GET /metrics HTTP/1.1\r\nHo\x01st: x\r\n\r\n"),
        C("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), /* a TLS ClientHello */
        C("\x00\x00\x00\x08\x04\xd2\x16\x2f"),             /* a PostgreSQL SSLRequest */
    };
#undef C
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        parsed_t p;
        parse(bad[i].s, bad[i].n, 0, &p);
        if (p.error != 400)
            PX_FAIL("case %zu: status %d, expected 400", i, p.error);
        ASSERT_EQ(p.n, 0);
    }
    parsed_t p;
    /* HTTP/0.9 (no version at all) and versions other than 1.x: not supported. */
    parse(S("GET /metrics\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 505);
    parse(S("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 505);
    parse(S("GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n"), 0, &p);
    ASSERT_EQ(p.error, 505);
}

PX_TEST(http_error_is_sticky)
{
    px_admin_parser_t p;
    px_admin_parser_init(&p);
    px_admin_req_t r;
    size_t used;
    ASSERT_EQ(px_admin_parser_feed(&p, (const uint8_t *)"BAD STUFF\r\n", 11, &used, &r),
              PX_ADMIN_PARSE_ERROR);
    ASSERT_EQ(r.status, 400);
    static const char good[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(px_admin_parser_feed(&p, (const uint8_t *)good, sizeof(good) - 1, &used, &r),
              PX_ADMIN_PARSE_ERROR);
    ASSERT_EQ(used, 0);
    ASSERT_EQ(r.status, 400);
}

PX_TEST(http_upgrade_closes)
{
    parsed_t p;
    parse(S("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
          0, &p);
    ASSERT_EQ(p.n, 1);
    ASSERT(!p.req[0].keep_alive);
    /* Anything after it is not parsed as HTTP/1.1 any more. */
    ASSERT_EQ(p.error, 400);
}

PX_TEST(http_status_texts)
{
    ASSERT_STR_EQ(px_admin_status_text(200), "OK");
    ASSERT_STR_EQ(px_admin_status_text(404), "Not Found");
    ASSERT_STR_EQ(px_admin_status_text(431), "Request Header Fields Too Large");
    ASSERT_STR_EQ(px_admin_status_text(503), "Service Unavailable");
    for (int i = 0; i < PX_ADMIN_NCODES; i++)
        ASSERT(strcmp(px_admin_status_text(px_admin_codes[i]), "Unknown") != 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Prometheus text format.                                                                     */

static char *cstr(px_dbuf_t *b)
{
    char *s = px_dbuf_cstr(b);
    ASSERT(s);
    return s;
}

PX_TEST(prom_names)
{
    ASSERT(px_prom_name_ok("rsproxy_up"));
    ASSERT(px_prom_name_ok("a:b_c9"));
    ASSERT(px_prom_name_ok("_x"));
    ASSERT(!px_prom_name_ok(""));
    ASSERT(!px_prom_name_ok("9x"));
    ASSERT(!px_prom_name_ok("a-b"));
    ASSERT(!px_prom_name_ok("a b"));
    ASSERT(!px_prom_name_ok("é"));
    ASSERT(px_prom_label_name_ok("reason"));
    ASSERT(!px_prom_label_name_ok("__name__"));
    ASSERT(!px_prom_label_name_ok("a:b"));
    ASSERT(!px_prom_label_name_ok("1a"));
}

PX_TEST(prom_escaping)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    px_prom_family(&b, "m_total", PX_PROM_COUNTER, "Back\\slash and\nnew line \"kept\".");
    const char *const labels[] = {"path", "a\\b\"c\nd", "x", "", NULL};
    px_prom_sample(&b, "m_total", labels, 18446744073709551615ull);
    px_prom_sample(&b, "m_total", NULL, 0);
    ASSERT_STR_EQ(cstr(&b), "# HELP m_total Back\\\\slash and\\nnew line \"kept\".\n"
                            "# TYPE m_total counter\n"
                            "m_total{path=\"a\\\\b\\\"c\\nd\",x=\"\"} 18446744073709551615\n"
                            "m_total 0\n");
    ASSERT(!b.failed);
    px_dbuf_reset(&b);
    px_prom_sample_f(&b, "g", NULL, 1732680000.25);
    px_prom_sample_f(&b, "g", NULL, 0.0 / 0.0);
    px_prom_sample_f(&b, "g", NULL, -1.0 / 0.0);
    ASSERT_STR_EQ(cstr(&b), "g 1732680000.25\ng NaN\ng -Inf\n");
    /* Our own bugs fail the scrape instead of corrupting it. */
    px_dbuf_reset(&b);
    px_prom_family(&b, "bad-name", PX_PROM_GAUGE, "x");
    ASSERT(b.failed);
    px_dbuf_reset(&b);
    const char *const badlabel[] = {"__x", "v", NULL};
    px_prom_sample(&b, "ok", badlabel, 1);
    ASSERT(b.failed);
    px_dbuf_free(&b);
}

/*
 * A reader for the exposition format, strict enough to catch what Prometheus would reject:
 * HELP then TYPE once per family, before its samples; samples named after their family
 * (no suffixes for counters and gauges); valid metric and label names; quoted, properly
 * escaped label values; a numeric value; no duplicate series. Returns the number of samples.
 */
static int check_exposition(const char *text)
{
    char family[128] = "";
    char seen_families[64][128];
    int nfam = 0, nsamples = 0;
    static char series[512][256];
    int nseries = 0;
    const char *line = text;
    while (*line) {
        const char *eol = strchr(line, '\n');
        ASSERT(eol); /* every line ends with a line feed, the last one too */
        size_t len = (size_t)(eol - line);
        char buf[1024];
        ASSERT(len < sizeof(buf));
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (strncmp(buf, "# HELP ", 7) == 0) {
            char name[128];
            ASSERT(sscanf(buf + 7, "%127s", name) == 1);
            ASSERT(px_prom_name_ok(name));
            for (int i = 0; i < nfam; i++)
                if (strcmp(seen_families[i], name) == 0)
                    PX_FAIL("family %s appears twice", name);
            ASSERT(nfam < 64);
            snprintf(seen_families[nfam++], sizeof(seen_families[0]), "%s", name);
            snprintf(family, sizeof(family), "%s", name);
            /* The next line is its TYPE. */
            const char *next = eol + 1;
            char want[200];
            int wl = snprintf(want, sizeof(want), "# TYPE %s ", name);
            ASSERT(strncmp(next, want, (size_t)wl) == 0);
            ASSERT(strncmp(next + wl, "counter\n", 8) == 0 ||
                   strncmp(next + wl, "gauge\n", 6) == 0);
            line = strchr(next, '\n') + 1;
            continue;
        }
        ASSERT(buf[0] != '#');
        /* name{labels} value */
        size_t i = 0;
        while (buf[i] && buf[i] != '{' && buf[i] != ' ')
            i++;
        char name[128];
        ASSERT(i < sizeof(name));
        memcpy(name, buf, i);
        name[i] = '\0';
        if (strcmp(name, family) != 0)
            PX_FAIL("sample %s outside its family (current family %s)", name, family);
        if (buf[i] == '{') {
            i++;
            while (buf[i] != '}') {
                size_t ls = i;
                while (buf[i] && buf[i] != '=')
                    i++;
                char lname[64];
                ASSERT(buf[i] == '=' && i - ls < sizeof(lname));
                memcpy(lname, buf + ls, i - ls);
                lname[i - ls] = '\0';
                ASSERT(px_prom_label_name_ok(lname));
                i++;
                ASSERT(buf[i] == '"');
                i++;
                while (buf[i] != '"') {
                    ASSERT(buf[i]);
                    if (buf[i] == '\\') {
                        ASSERT(buf[i + 1] == '\\' || buf[i + 1] == '"' || buf[i + 1] == 'n');
                        i++;
                    }
                    i++;
                }
                i++;
                ASSERT(buf[i] == ',' || buf[i] == '}');
                if (buf[i] == ',')
                    i++;
            }
            i++;
        }
        ASSERT(buf[i] == ' ');
        char *end;
        const char *v = buf + i + 1;
        if (strcmp(v, "NaN") != 0 && strcmp(v, "+Inf") != 0 && strcmp(v, "-Inf") != 0) {
            strtod(v, &end);
            ASSERT(end != v && *end == '\0');
        }
        buf[i] = '\0';
        for (int k = 0; k < nseries; k++)
            if (strcmp(series[k], buf) == 0)
                PX_FAIL("series %s appears twice", buf);
        ASSERT(nseries < 512 && strlen(buf) < sizeof(series[0]));
        memcpy(series[nseries++], buf, strlen(buf) + 1);
        nsamples++;
        line = eol + 1;
    }
    return nsamples;
}

/* The sample line for `series` (name and labels exactly as printed), or NULL. */
static const char *find_line(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return p + n + 1;
    return NULL;
}

static void expect_value(const char *text, const char *series, const char *value)
{
    const char *v = find_line(text, series);
    if (!v)
        PX_FAIL("no sample %s in:\n%s", series, text);
    size_t n = strlen(value);
    if (strncmp(v, value, n) != 0 || v[n] != '\n')
        PX_FAIL("%s: got %.*s, expected %s", series, (int)(strcspn(v, "\n")), v, value);
}

static void fill_metrics(px_admin_metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    px_proxy_stats_t *s = &m->stats;
    s->clients_accepted = 1001;
    s->clients_refused = 30;
    s->clients_refused_limit = 12;
    s->logins_ok = 950;
    s->logins_failed = 44;
    s->cancels_forwarded = 5;
    s->cancel_requests = 7;
    s->statements_rewritten = 9;
    s->statements_refused = 2;
    s->bytes_from_clients = 123456789012ull;
    s->bytes_to_clients = 987654321ull;
    s->clients_login = 3;
    s->clients_active = 40;
    s->clients_closing = 1;
    s->servers = 42;
    s->read_buffers = 88;
    s->ready_for_query = 77777;
    s->transaction_blocks = 333;
    s->tls_handshake_failures = 4;
    s->login_failures[PX_LOGIN_FAIL_TLS] = 4;
    s->login_failures[PX_LOGIN_FAIL_AUTH] = 40;
    s->iam_requests_ok = 10;
    s->iam_requests_failed = 1;
    s->iam_fetches_ok = 3;
    s->iam_fetches_failed = 2;
    s->iam_refreshes = 1;
    s->health.creds = PX_CREDS_FAILED;
    m->version = "0.1.0-\"test\"";
    m->start_time_s = 1732680000.5;
    m->max_client_conn = 1000;
    m->iam = true;
    m->ready = false;
    m->admin.connections = 2;
    m->admin.connections_refused = 6;
    m->admin.connections_evicted = 8;
    m->admin.requests[0] = 100; /* 200 */
    m->admin.requests[2] = 3;   /* 404 */
}

PX_TEST(metrics_render)
{
    px_admin_metrics_t m;
    fill_metrics(&m);
    px_dbuf_t b;
    px_dbuf_init(&b, PX_ADMIN_MAX_RESPONSE);
    px_admin_metrics_render(&b, &m);
    ASSERT(!b.failed);
    const char *t = cstr(&b);
    int n = check_exposition(t);
    ASSERT(n >= 40);
    expect_value(t, "rsproxy_build_info{version=\"0.1.0-\\\"test\\\"\"}", "1");
    expect_value(t, "process_start_time_seconds", "1732680000.5");
    expect_value(t, "rsproxy_ready", "0");
    expect_value(t, "rsproxy_shutting_down", "0");
    expect_value(t, "rsproxy_max_client_conn", "1000");
    expect_value(t, "rsproxy_client_connections{state=\"login\"}", "3");
    expect_value(t, "rsproxy_client_connections{state=\"active\"}", "40");
    expect_value(t, "rsproxy_client_connections{state=\"closing\"}", "1");
    expect_value(t, "rsproxy_client_connections_accepted_total", "1001");
    expect_value(t, "rsproxy_client_connections_refused_total{reason=\"max_client_conn\"}", "12");
    expect_value(t, "rsproxy_client_connections_refused_total{reason=\"other\"}", "18");
    expect_value(t, "rsproxy_client_received_bytes_total", "123456789012");
    expect_value(t, "rsproxy_client_sent_bytes_total", "987654321");
    expect_value(t, "rsproxy_ready_for_query_total", "77777");
    expect_value(t, "rsproxy_transaction_blocks_total", "333");
    expect_value(t, "rsproxy_cancel_requests_total", "7");
    expect_value(t, "rsproxy_cancel_requests_forwarded_total", "5");
    expect_value(t, "rsproxy_statements_rewritten_total", "9");
    expect_value(t, "rsproxy_statements_refused_total", "2");
    expect_value(t, "rsproxy_upstream_connections", "42");
    expect_value(t, "rsproxy_upstream_logins_total", "950");
    expect_value(t, "rsproxy_upstream_login_failures_total{reason=\"tls\"}", "4");
    expect_value(t, "rsproxy_upstream_login_failures_total{reason=\"auth\"}", "40");
    expect_value(t, "rsproxy_upstream_login_failures_total{reason=\"iam\"}", "0");
    expect_value(t, "rsproxy_upstream_tls_handshake_failures_total", "4");
    expect_value(t, "rsproxy_iam_credential_requests_total{result=\"ok\"}", "10");
    expect_value(t, "rsproxy_iam_credential_requests_total{result=\"error\"}", "1");
    expect_value(t, "rsproxy_iam_credential_fetches_total{result=\"ok\"}", "3");
    expect_value(t, "rsproxy_iam_credential_fetches_total{result=\"error\"}", "2");
    expect_value(t, "rsproxy_iam_credential_refreshes_total", "1");
    expect_value(t, "rsproxy_aws_credentials{state=\"failed\"}", "1");
    expect_value(t, "rsproxy_aws_credentials{state=\"ok\"}", "0");
    expect_value(t, "rsproxy_read_buffers", "88");
    expect_value(t, "rsproxy_admin_connections", "2");
    expect_value(t, "rsproxy_admin_connections_refused_total", "6");
    expect_value(t, "rsproxy_admin_connections_evicted_total", "8");
    expect_value(t, "rsproxy_admin_requests_total{code=\"200\"}", "100");
    expect_value(t, "rsproxy_admin_requests_total{code=\"404\"}", "3");
    expect_value(t, "rsproxy_admin_requests_total{code=\"431\"}", "0");
    /* Every failure reason is there from the start, so rate() works on the first scrape. */
    static const char *const reasons[] = {"iam",  "dns",     "network",  "timeout", "tls",
                                          "auth", "refused", "protocol", "other"};
    uint64_t sum = 0;
    for (size_t i = 0; i < PX_ARRAY_SIZE(reasons); i++) {
        char series[128];
        snprintf(series, sizeof(series), "rsproxy_upstream_login_failures_total{reason=\"%s\"}",
                 reasons[i]);
        const char *v = find_line(t, series);
        ASSERT(v);
        sum += strtoull(v, NULL, 10);
    }
    ASSERT_EQ(sum, 44);

    /* Password mode: no AWS credential family. */
    px_dbuf_reset(&b);
    m.iam = false;
    m.ready = true;
    px_admin_metrics_render(&b, &m);
    t = cstr(&b);
    check_exposition(t);
    ASSERT(strstr(t, "rsproxy_aws_credentials") == NULL);
    expect_value(t, "rsproxy_ready", "1");
    px_dbuf_free(&b);
}

PX_TEST(metrics_render_bounded)
{
    /* A buffer too small for the whole text fails as a whole rather than truncating. */
    px_admin_metrics_t m;
    fill_metrics(&m);
    px_dbuf_t b;
    px_dbuf_init(&b, 512);
    px_admin_metrics_render(&b, &m);
    ASSERT(b.failed);
    px_dbuf_free(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* Probes and health.                                                                          */

static int probe(const px_proxy_stats_t *s, px_admin_probe_t which, uint64_t now, char *out,
                 size_t cap)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    int st = px_admin_eval_probe(s, which, now, &b);
    snprintf(out, cap, "%s", px_dbuf_cstr(&b) ? (char *)b.data : "?");
    px_dbuf_free(&b);
    return st;
}

PX_TEST(probe_password_mode)
{
    px_proxy_stats_t s;
    memset(&s, 0, sizeof(s));
    char body[512];
    ASSERT_EQ(probe(&s, PX_ADMIN_LIVENESS, 1000, body, sizeof(body)), 200);
    ASSERT_STR_EQ(body, "{\"status\":\"alive\"}\n");
    ASSERT_EQ(probe(&s, PX_ADMIN_STARTUP, 1000, body, sizeof(body)), 200);
    ASSERT_STR_EQ(body, "{\"status\":\"started\"}\n");
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, 1000, body, sizeof(body)), 200);
    ASSERT_STR_EQ(body, "{\"status\":\"ready\"}\n");
    ASSERT_EQ(px_admin_eval_probe(&s, PX_ADMIN_READINESS, 1000, NULL), 200);

    s.shutting_down = true;
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, 1000, body, sizeof(body)), 503);
    ASSERT_STR_EQ(body, "{\"status\":\"not_ready\",\"reason\":\"draining\"}\n");
    /* Draining is neither dead nor un-started. */
    ASSERT_EQ(probe(&s, PX_ADMIN_LIVENESS, 1000, body, sizeof(body)), 200);
    ASSERT_EQ(probe(&s, PX_ADMIN_STARTUP, 1000, body, sizeof(body)), 200);
}

PX_TEST(probe_iam_credentials)
{
    px_proxy_stats_t s;
    memset(&s, 0, sizeof(s));
    char body[512];
    s.health.creds = PX_CREDS_PENDING;
    ASSERT_EQ(probe(&s, PX_ADMIN_STARTUP, 1, body, sizeof(body)), 503);
    ASSERT_STR_EQ(body, "{\"status\":\"starting\",\"waiting_for\":\"aws_credentials\"}\n");
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, 1, body, sizeof(body)), 503);
    ASSERT_EQ(probe(&s, PX_ADMIN_LIVENESS, 1, body, sizeof(body)), 200);
    /* A failed chain has finished starting; readiness reports it. */
    s.health.creds = PX_CREDS_FAILED;
    ASSERT_EQ(probe(&s, PX_ADMIN_STARTUP, 1, body, sizeof(body)), 200);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, 1, body, sizeof(body)), 503);
    ASSERT_STR_EQ(body, "{\"status\":\"not_ready\",\"reason\":\"aws_credentials\"}\n");
    /* A client's credentials arriving proves the chain works again. */
    px_admin_health_iam(&s, true, false);
    ASSERT_EQ(s.health.creds, PX_CREDS_OK);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, 1, body, sizeof(body)), 200);
    /* An AWS API error that is not the chain's leaves the credential state alone. */
    px_admin_health_iam(&s, false, false);
    ASSERT_EQ(s.health.creds, PX_CREDS_OK);
    px_admin_health_iam(&s, false, true);
    ASSERT_EQ(s.health.creds, PX_CREDS_FAILED);
}

PX_TEST(probe_upstream_streak)
{
    px_proxy_stats_t s;
    memset(&s, 0, sizeof(s));
    char body[512];
    uint64_t t = 100000;
    /* Two proxy-wide failures are not enough: one blip must not take the pod out. */
    px_admin_health_login_failed(&s, PX_LOGIN_FAIL_TLS, true, t);
    px_admin_health_login_failed(&s, PX_LOGIN_FAIL_NETWORK, true, t + 10);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, t + 20, body, sizeof(body)), 200);
    px_admin_health_login_failed(&s, PX_LOGIN_FAIL_TIMEOUT, true, t + 2000);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, t + 4500, body, sizeof(body)), 503);
    ASSERT_STR_EQ(body, "{\"status\":\"not_ready\",\"reason\":\"upstream\","
                        "\"consecutive_failures\":3,\"last_failure\":\"timeout\","
                        "\"seconds_since_last_failure\":2}\n");
    ASSERT_EQ(s.login_failures[PX_LOGIN_FAIL_TLS], 1);
    ASSERT_EQ(s.login_failures[PX_LOGIN_FAIL_NETWORK], 1);
    ASSERT_EQ(s.login_failures[PX_LOGIN_FAIL_TIMEOUT], 1);
    /* Without new evidence, traffic may try again after the window. */
    ASSERT_EQ(
        probe(&s, PX_ADMIN_READINESS, t + 2000 + PX_ADMIN_UNREADY_WINDOW - 1, body, sizeof(body)),
        503);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, t + 2000 + PX_ADMIN_UNREADY_WINDOW, body, sizeof(body)),
              200);
    /* A client-specific failure counts but does not change readiness; upstream answering a
     * login, even with a refusal, proves it is reachable. */
    px_admin_health_login_failed(&s, PX_LOGIN_FAIL_AUTH, false, t + 3000);
    ASSERT_EQ(s.health.upstream_fail_streak, 0);
    ASSERT_EQ(s.login_failures[PX_LOGIN_FAIL_AUTH], 1);
    for (int i = 0; i < 3; i++)
        px_admin_health_login_failed(&s, PX_LOGIN_FAIL_DNS, true, t + 4000);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, t + 4001, body, sizeof(body)), 503);
    /* One login that works clears it at once. */
    px_admin_health_login_ok(&s, t + 5000);
    ASSERT_EQ(probe(&s, PX_ADMIN_READINESS, t + 5001, body, sizeof(body)), 200);
    ASSERT_EQ(s.health.upstream_last_ok_ms, t + 5000);
    /* Reasons out of range are counted as "other". */
    px_admin_health_login_failed(&s, (px_login_fail_t)99, false, t);
    ASSERT_EQ(s.login_failures[PX_LOGIN_FAIL_OTHER], 1);
}

PX_TEST(classify_login_failures)
{
    static const struct {
        int code;
        const char *sqlstate;
        bool upstream_said, fixed_user;
        px_login_fail_t reason;
        bool wide;
    } cases[] = {
        /* Upstream's own answers. */
        {AUTH_E_FAILED, "28P01", true, false, PX_LOGIN_FAIL_AUTH, false},
        {AUTH_E_FAILED, "28000", true, false, PX_LOGIN_FAIL_AUTH, false},
        {AUTH_E_FAILED, "28P01", true, true, PX_LOGIN_FAIL_AUTH, true},
        {AUTH_E_FAILED, "3D000", true, true, PX_LOGIN_FAIL_REFUSED, false},
        {AUTH_E_FAILED, "42501", true, false, PX_LOGIN_FAIL_REFUSED, false},
        {AUTH_E_FAILED, "53300", true, false, PX_LOGIN_FAIL_REFUSED, true},
        {AUTH_E_FAILED, "57P03", true, false, PX_LOGIN_FAIL_REFUSED, true},
        {AUTH_E_FAILED, "XX000", true, false, PX_LOGIN_FAIL_REFUSED, true},
        {AUTH_E_FAILED, NULL, true, false, PX_LOGIN_FAIL_REFUSED, false},
        /* The proxy's own findings. */
        {AUTH_E_FAILED, "28000", false, false, PX_LOGIN_FAIL_AUTH, false},
        {AUTH_E_VERIFY, "28000", false, true, PX_LOGIN_FAIL_AUTH, true},
        {PX_E_TLS, "08001", false, false, PX_LOGIN_FAIL_TLS, true},
        {PX_E_TLS_VERIFY, "08001", false, false, PX_LOGIN_FAIL_TLS, true},
        {PX_E_NOSSL, "08001", false, false, PX_LOGIN_FAIL_TLS, true},
        {UV_ETIMEDOUT, "08001", false, false, PX_LOGIN_FAIL_TIMEOUT, true},
        {UV_EAI_NONAME, "08001", false, false, PX_LOGIN_FAIL_DNS, true},
        {UV_EAI_AGAIN, "08001", false, false, PX_LOGIN_FAIL_DNS, true},
        {UV_ECONNREFUSED, "08001", false, false, PX_LOGIN_FAIL_NETWORK, true},
        {PX_E_UPSTREAM_EOF, "08001", false, false, PX_LOGIN_FAIL_NETWORK, true},
        {PX_E_PROTO, "08001", false, false, PX_LOGIN_FAIL_PROTOCOL, true},
        {UV_ENOMEM, "53200", false, false, PX_LOGIN_FAIL_OTHER, false},
        {AUTH_E_NOCREDS, NULL, false, false, PX_LOGIN_FAIL_IAM, false},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(cases); i++) {
        bool wide = !cases[i].wide;
        px_login_fail_t r = px_admin_classify_login(
            cases[i].code, cases[i].sqlstate, cases[i].upstream_said, cases[i].fixed_user, &wide);
        if (r != cases[i].reason || wide != cases[i].wide)
            PX_FAIL("case %zu (%s): reason %d wide %d, expected %d %d", i,
                    cases[i].sqlstate ? cases[i].sqlstate : "-", (int)r, wide, (int)cases[i].reason,
                    cases[i].wide);
    }
}

PX_TEST(classify_iam_failures)
{
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_HTTP, NULL, true));
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_NOCREDS, NULL, false));
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_THROTTLED, "ThrottlingException", false));
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_TIMEOUT, NULL, false));
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_AWS, "ClusterNotFound", false));
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_AWS, "InvalidClientTokenId", false));
    ASSERT(px_admin_iam_proxy_wide(AUTH_E_AWS, "ExpiredToken", false));
    /* A user name AWS refuses, or a policy that covers only some users: the client's. */
    ASSERT(!px_admin_iam_proxy_wide(AUTH_E_AWS, "InvalidParameterValue", false));
    ASSERT(!px_admin_iam_proxy_wide(AUTH_E_AWS, "AccessDenied", false));
    ASSERT(!px_admin_iam_proxy_wide(AUTH_E_AWS, NULL, false));
    ASSERT(!px_admin_iam_proxy_wide(AUTH_E_CANCELED, NULL, false));
}
