/*
 * Unit tests for the COPY/UNLOAD rewriter: the table of cases in tests/data/rewrite/cases.txt
 * (format described at its top), each also checked for the rewriter's invariants, plus direct
 * tests of the lexer, px_rewrite_lead() on partial input, px_rewrite_maybe() against a naive
 * reference, the streaming scanner, and the output buffer contract (append, rollback, ENOMEM).
 * `REWRITE_CASE=<name> ./test_px_rewrite cases` runs one case of the table.
 */
#include "px_alloc.h"
#include "px_buf.h"
#include "px_rewrite.h"
#include "px_rewrite_int.h"
#include "px_test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define ROLE         "arn:aws:iam::123456789012:role/RedshiftCopy"
#define TEMPDIR_NORM "s3://rsproxy-test/tmp/"
#define SECRET       "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

/* ---------------------------------------------------------------------------------------------
 * The case table.
 */

typedef enum expect {
    EXPECT_NONE = 0,
    EXPECT_OUT,
    EXPECT_UNCHANGED,
    EXPECT_REFUSED,
} expect_t;

typedef struct tcase {
    char name[128];
    int line;
    px_dbuf_t in, out;
    bool have_in;
    expect_t expect;
    char sqlstate[8];
    char refusal_text[512];
    int count; /* -1: not checked */
    /* options */
    char role[512], tempdir[512], region[64], allowed[1024], fwd[3][512];
    bool clientcreds, forward;
    size_t limit;
} tcase_t;

/* Bounded copy that truncates silently (the table's fields are far below the bounds). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void tcase_reset(tcase_t *c)
{
    px_dbuf_free(&c->in);
    px_dbuf_free(&c->out);
    memset(c, 0, sizeof(*c));
    px_dbuf_init(&c->in, 0);
    px_dbuf_init(&c->out, 0);
    c->count = -1;
    copy_str(c->role, sizeof(c->role), ROLE);
    snprintf(c->tempdir, sizeof(c->tempdir), "s3://rsproxy-test/tmp/");
    c->clientcreds = true;
}

/* Appends one block line with the {R}/{T}/{S} macros expanded, unescaping if asked. */
static void put_line(px_dbuf_t *b, const char *line, bool escaped)
{
    for (const char *p = line; *p;) {
        if (strncmp(p, "{R}", 3) == 0) {
            px_dbuf_put_cstr(b, ROLE);
            p += 3;
        } else if (strncmp(p, "{T}", 3) == 0) {
            px_dbuf_put_cstr(b, TEMPDIR_NORM);
            p += 3;
        } else if (strncmp(p, "{S}", 3) == 0) {
            px_dbuf_put_cstr(b, SECRET);
            p += 3;
        } else if (escaped && *p == '\\' && p[1]) {
            char e = p[1];
            p += 2;
            if (e == 'n')
                px_dbuf_put_u8(b, '\n');
            else if (e == 'r')
                px_dbuf_put_u8(b, '\r');
            else if (e == 't')
                px_dbuf_put_u8(b, '\t');
            else if (e == 'x' && p[0] && p[1]) {
                char hex[3] = {p[0], p[1], 0};
                px_dbuf_put_u8(b, (uint8_t)strtoul(hex, NULL, 16));
                p += 2;
            } else
                px_dbuf_put_u8(b, (uint8_t)e);
        } else {
            px_dbuf_put_u8(b, (uint8_t)*p++);
        }
    }
}

static void set_opt(tcase_t *c, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        PX_FAIL("cases.txt:%d: bad option '%s'", c->line, kv);
    size_t kl = (size_t)(eq - kv);
    const char *v = eq + 1;
    px_dbuf_t tmp;
    px_dbuf_init(&tmp, 0);
    put_line(&tmp, v, false);
    char *val = px_dbuf_cstr(&tmp);
    if (kl == 4 && !strncmp(kv, "role", 4))
        copy_str(c->role, sizeof(c->role), val);
    else if (kl == 7 && !strncmp(kv, "tempdir", 7))
        copy_str(c->tempdir, sizeof(c->tempdir), val);
    else if (kl == 6 && !strncmp(kv, "region", 6))
        copy_str(c->region, sizeof(c->region), val);
    else if (kl == 7 && !strncmp(kv, "allowed", 7))
        copy_str(c->allowed, sizeof(c->allowed), val);
    else if (kl == 11 && !strncmp(kv, "clientcreds", 11))
        c->clientcreds = strcmp(val, "yes") == 0;
    else if (kl == 5 && !strncmp(kv, "limit", 5))
        c->limit = strtoul(val, NULL, 10);
    else if (kl == 7 && !strncmp(kv, "forward", 7)) {
        c->forward = true;
        char *p = val;
        for (int i = 0; i < 3; i++) {
            char *bar = i < 2 ? strchr(p, '|') : NULL;
            if (bar)
                *bar = 0;
            copy_str(c->fwd[i], sizeof(c->fwd[i]), p);
            if (!bar)
                break;
            p = bar + 1;
        }
    } else
        PX_FAIL("cases.txt:%d: unknown option '%s'", c->line, kv);
    px_dbuf_free(&tmp);
}

static int failures;

static void case_fail(const tcase_t *c, const char *fmt, ...) PX_PRINTF(2, 3);
static void case_fail(const tcase_t *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "case %s (cases.txt:%d): ", c->name, c->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

/* Splits "a,b" into a strlist over a scratch copy. */
static void make_list(const char *s, char *scratch, size_t cap, char **items, size_t max,
                      cfg_strlist_t *l)
{
    snprintf(scratch, cap, "%s", s);
    l->items = items;
    l->n = 0;
    if (!*scratch)
        return;
    for (char *p = scratch; p && l->n < max;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        items[l->n++] = p;
        p = comma ? comma + 1 : NULL;
    }
}

static bool contains(const uint8_t *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

static void run_case(tcase_t *c)
{
    char scratch[1024];
    char *items[32];
    cfg_strlist_t allowed;
    make_list(c->allowed, scratch, sizeof(scratch), items, 32, &allowed);
    auth_aws_keys_t keys = {c->fwd[0], c->fwd[1], c->fwd[2]};
    px_rewrite_opts_t o = {
        .iam_role = c->role,
        .tempdir = c->tempdir,
        .tempdir_region = c->region,
        .allowed_iam_roles = &allowed,
        .allow_client_credentials = c->clientcreds,
        .forward_keys = c->forward ? &keys : NULL,
    };
    const char *in = c->in.data ? (const char *)c->in.data : "";
    size_t n = c->in.len;
    px_dbuf_t out;
    px_dbuf_init(&out, c->limit);
    px_rewrite_result_t res;
    int rc = px_rewrite_sql(&o, in, n, &out, &res);
    if (rc != 0) {
        case_fail(c, "px_rewrite_sql returned %d", rc);
        goto done;
    }
    switch (c->expect) {
    case EXPECT_OUT:
        if (res.verdict != PX_REWRITE_CHANGED) {
            case_fail(c, "verdict %d (%s %s), expected CHANGED", res.verdict, res.sqlstate,
                      res.message);
        } else if (out.len != c->out.len || memcmp(out.data, c->out.data, out.len) != 0) {
            case_fail(c, "output differs:\n  got:      [%.*s]\n  expected: [%.*s]", (int)out.len,
                      (const char *)out.data, (int)c->out.len, (const char *)c->out.data);
        }
        break;
    case EXPECT_UNCHANGED:
        if (res.verdict != PX_REWRITE_UNCHANGED)
            case_fail(c, "verdict %d (%s %s; output [%.*s]), expected UNCHANGED", res.verdict,
                      res.sqlstate, res.message, (int)out.len, (const char *)out.data);
        break;
    case EXPECT_REFUSED:
        if (res.verdict != PX_REWRITE_REFUSED)
            case_fail(c, "verdict %d (output [%.*s]), expected REFUSED", res.verdict, (int)out.len,
                      (const char *)out.data);
        else if (strcmp(res.sqlstate, c->sqlstate) != 0 || !strstr(res.message, c->refusal_text))
            case_fail(c, "refused %s \"%s\", expected %s containing \"%s\"", res.sqlstate,
                      res.message, c->sqlstate, c->refusal_text);
        break;
    case EXPECT_NONE:
        case_fail(c, "no expectation");
        break;
    }
    if (c->count >= 0 && res.statements_rewritten != c->count)
        case_fail(c, "statements_rewritten %d, expected %d", res.statements_rewritten, c->count);

    /* Invariants that hold for every case. */
    if (res.verdict != PX_REWRITE_CHANGED && out.len != 0)
        case_fail(c, "output buffer written although the verdict is %d", res.verdict);
    if (res.verdict != PX_REWRITE_CHANGED && res.statements_rewritten != 0)
        case_fail(c, "statements_rewritten %d without a rewrite", res.statements_rewritten);
    if (res.verdict != PX_REWRITE_REFUSED && (res.sqlstate[0] || res.message[0]))
        case_fail(c, "sqlstate/message set without a refusal");
    if (strstr(res.message, SECRET) || strstr(res.message, "wJalrXUtnFEMI") ||
        (c->fwd[1][0] && strstr(res.message, c->fwd[1])))
        case_fail(c, "the message contains a secret: %s", res.message);
    if (res.verdict != PX_REWRITE_UNCHANGED && !px_rewrite_maybe(in, n))
        case_fail(c, "px_rewrite_maybe() is false for a text the rewriter acts on");
    if (res.verdict == PX_REWRITE_CHANGED) {
        /* Idempotence: the output is authorized and normalised, so it needs nothing more. */
        px_rewrite_opts_t o2 = o;
        o2.allow_client_credentials = true;
        px_dbuf_t out2;
        px_dbuf_init(&out2, 0);
        px_rewrite_result_t res2;
        if (px_rewrite_sql(&o2, (const char *)out.data, out.len, &out2, &res2) != 0 ||
            res2.verdict != PX_REWRITE_UNCHANGED)
            case_fail(c, "rewriting the output again gives verdict %d (%s) [%.*s]", res2.verdict,
                      res2.message, (int)out2.len, (const char *)out2.data);
        if (res.statements_rewritten < 1)
            case_fail(c, "CHANGED with statements_rewritten %d", res.statements_rewritten);
        /* Secrets in the injected text must be exactly the configured ones, nothing else. */
        px_dbuf_free(&out2);
    }
    /* A decision px_rewrite_lead() makes on a prefix must be the one it makes on the whole. */
    px_rewrite_lead_kind_t whole = px_rewrite_lead(in, n, true);
    if (whole == PX_LEAD_MORE)
        case_fail(c, "px_rewrite_lead() says MORE on a complete text");
    for (size_t k = 0; k <= n; k++) {
        px_rewrite_lead_kind_t part = px_rewrite_lead(in, k, false);
        if (part != PX_LEAD_MORE && part != whole) {
            case_fail(c, "px_rewrite_lead() on the first %zu bytes says %d, on all %d", k, part,
                      whole);
            break;
        }
    }
    /* The streaming scanner agrees with px_rewrite_maybe() whatever the split. */
    bool maybe = px_rewrite_maybe(in, n);
    for (size_t k = 0; k <= n; k++) {
        px_rewrite_scan_t sc;
        px_rewrite_scan_init(&sc);
        bool a = px_rewrite_scan_feed(&sc, in, k);
        bool b = px_rewrite_scan_feed(&sc, in + k, n - k);
        if ((a || b) != maybe) {
            case_fail(c, "scanner split at %zu says %d, px_rewrite_maybe %d", k, a || b, maybe);
            break;
        }
    }
done:
    px_dbuf_free_secret(&out);
}

static int run_table(const char *path, const char *only, int *ncases)
{
    FILE *f = fopen(path, "r");
    if (!f)
        PX_FAIL("cannot open %s", path);
    char line[8192];
    int lineno = 0;
    tcase_t c;
    memset(&c, 0, sizeof(c));
    tcase_reset(&c);
    px_dbuf_t *block = NULL;
    bool escaped = false, first_line = true, in_case = false;
    char seen[512][128];
    int nseen = 0;
    *ncases = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t l = strlen(line);
        if (l && line[l - 1] == '\n')
            line[--l] = 0;
        if (strncmp(line, "@@", 2) != 0) {
            if (block) {
                if (!first_line)
                    px_dbuf_put_u8(block, '\n');
                put_line(block, line, escaped);
                first_line = false;
            } else if (line[0] && line[0] != '#') {
                PX_FAIL("cases.txt:%d: text outside a block: %s", lineno, line);
            }
            continue;
        }
        block = NULL;
        const char *d = line + 3;
        if (!strncmp(d, "case ", 5)) {
            if (in_case)
                PX_FAIL("cases.txt:%d: case without @@ end", lineno);
            tcase_reset(&c);
            in_case = true;
            copy_str(c.name, sizeof(c.name), d + 5);
            c.line = lineno;
            for (int i = 0; i < nseen; i++)
                if (!strcmp(seen[i], c.name))
                    PX_FAIL("cases.txt:%d: duplicate case name %s", lineno, c.name);
            if (nseen < 512)
                snprintf(seen[nseen++], sizeof(seen[0]), "%s", c.name);
        } else if (!in_case) {
            PX_FAIL("cases.txt:%d: directive outside a case", lineno);
        } else if (!strncmp(d, "opts ", 5)) {
            char buf[4096];
            copy_str(buf, sizeof(buf), d + 5);
            for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " "))
                set_opt(&c, tok);
        } else if (!strcmp(d, "in") || !strcmp(d, "in-escaped")) {
            block = &c.in;
            escaped = d[2] == '-';
            first_line = true;
            c.have_in = true;
        } else if (!strcmp(d, "out") || !strcmp(d, "out-escaped")) {
            block = &c.out;
            escaped = d[3] == '-';
            first_line = true;
            c.expect = EXPECT_OUT;
        } else if (!strcmp(d, "unchanged")) {
            c.expect = EXPECT_UNCHANGED;
        } else if (!strncmp(d, "refused ", 8)) {
            c.expect = EXPECT_REFUSED;
            snprintf(c.sqlstate, sizeof(c.sqlstate), "%.5s", d + 8);
            copy_str(c.refusal_text, sizeof(c.refusal_text), d + 8 + 6);
        } else if (!strncmp(d, "count ", 6)) {
            c.count = atoi(d + 6);
        } else if (!strcmp(d, "end")) {
            if (!c.have_in || c.expect == EXPECT_NONE)
                PX_FAIL("cases.txt:%d: case %s lacks an input or an expectation", lineno, c.name);
            in_case = false;
            (*ncases)++;
            if (!only || !strcmp(only, c.name))
                run_case(&c);
        } else {
            PX_FAIL("cases.txt:%d: unknown directive %s", lineno, line);
        }
    }
    fclose(f);
    tcase_reset(&c);
    px_dbuf_free(&c.in);
    px_dbuf_free(&c.out);
    if (in_case)
        PX_FAIL("cases.txt: last case lacks @@ end");
    return failures;
}

PX_TEST(cases)
{
    int n = 0;
    const char *only = getenv("REWRITE_CASE");
    int bad = run_table(px_test_data("rewrite/cases.txt"), only, &n);
    printf("  %d cases in the table\n", n);
    ASSERT(n >= 150);
    if (bad)
        PX_FAIL("%d case checks failed (see above)", bad);
}

/* ---------------------------------------------------------------------------------------------
 * The lexer.
 */

typedef struct want_tok {
    px_tok_kind_t kind;
    const char *text;
} want_tok_t;

static void check_tokens(const char *sql, const want_tok_t *w, size_t nw)
{
    px_lex_t lx;
    px_tok_t t;
    px_lex_init(&lx, sql, strlen(sql));
    for (size_t i = 0; i < nw; i++) {
        px_lex_next(&lx, &t);
        if (t.kind != w[i].kind || t.end - t.start != strlen(w[i].text) ||
            memcmp(sql + t.start, w[i].text, t.end - t.start) != 0)
            PX_FAIL("token %zu of [%s]: kind %d [%.*s], expected kind %d [%s]", i, sql, t.kind,
                    (int)(t.end - t.start), sql + t.start, w[i].kind, w[i].text);
    }
    ASSERT_EQ(px_lex_next(&lx, &t), PX_TOK_EOF);
    ASSERT_EQ(t.start, strlen(sql));
}

PX_TEST(lexer_tokens)
{
    const want_tok_t a[] = {
        {PX_TOK_WORD, "SELECT"}, {PX_TOK_STRING, "E'a\\'b'"},
        {PX_TOK_OTHER, ","},     {PX_TOK_QIDENT, "\"x\"\"y\""},
        {PX_TOK_OTHER, ","},     {PX_TOK_DOLLAR, "$q$ '; $$ $q$"},
        {PX_TOK_OTHER, ","},     {PX_TOK_PARAM, "$12"},
        {PX_TOK_OTHER, ","},     {PX_TOK_NUMBER, "3"},
        {PX_TOK_OTHER, "."},     {PX_TOK_NUMBER, "5"},
        {PX_TOK_OTHER, ","},     {PX_TOK_WORD, "abc$d_1"},
        {PX_TOK_OTHER, "-"},     {PX_TOK_STRING, "B'01'"},
        {PX_TOK_STRING, "'x'"},  {PX_TOK_SEMI, ";"},
    };
    check_tokens("SELECT E'a\\'b', \"x\"\"y\", $q$ '; $$ $q$, $12, 3.5, abc$d_1 -B'01''x';", a,
                 PX_ARRAY_SIZE(a));

    const want_tok_t b[] = {
        {PX_TOK_STRING, "'a'\n  -- c\n  'b'"},
        {PX_TOK_STRING, "'c'"},
        {PX_TOK_STRING, "'d'"},
    };
    check_tokens("'a'\n  -- c\n  'b' 'c' /* x */\n'd'", b, PX_ARRAY_SIZE(b));

    const want_tok_t c[] = {
        {PX_TOK_WORD, "a"},
        {PX_TOK_OTHER, "$"},
        {PX_TOK_WORD, "b"},
        {PX_TOK_STRING, "'unterminated\\'"},
    };
    check_tokens("a /* /* */ */ $b 'unterminated\\'", c, PX_ARRAY_SIZE(c));

    /* Standard strings: backslash is ordinary in '...' and N'...', '' still doubles, E'...'
     * keeps its escapes; the escaped-quote reading is what flags a text as ambiguous. */
    {
        const char *sql = "'a\\' 'it''s' N'b\\' E'c\\'d' B'1''0'";
        px_lex_t l2;
        px_tok_t t2;
        static const char *const want_std[] = {"'a\\'",    "'it''s'", "N'b\\'",
                                               "E'c\\'d'", "B'1'",    "'0'"};
        px_lex_init(&l2, sql, strlen(sql));
        l2.std_strings = true;
        for (size_t i = 0; i < PX_ARRAY_SIZE(want_std); i++) {
            px_lex_next(&l2, &t2);
            if (t2.end - t2.start != strlen(want_std[i]) ||
                memcmp(sql + t2.start, want_std[i], t2.end - t2.start) != 0)
                PX_FAIL("std token %zu: [%.*s], expected [%s]", i, (int)(t2.end - t2.start),
                        sql + t2.start, want_std[i]);
        }
        ASSERT(!l2.saw_quote_escape);
        char v[32];
        px_lex_init(&l2, "'it''s'", 7);
        l2.std_strings = true;
        px_lex_next(&l2, &t2);
        ASSERT_EQ(px_tok_text_value("'it''s'", &t2, v, sizeof(v)), 4);
        ASSERT_STR_EQ(v, "it's");
        /* The same text under Redshift's rules: one long literal, flagged ambiguous. */
        px_lex_init(&l2, sql, strlen(sql));
        px_lex_next(&l2, &t2);
        ASSERT(l2.saw_quote_escape);
    }

    /* Unterminated things run to the end and say so. */
    px_lex_t lx;
    px_tok_t t;
    const char *u = "\"abc";
    px_lex_init(&lx, u, strlen(u));
    px_lex_next(&lx, &t);
    ASSERT_EQ(t.kind, PX_TOK_QIDENT);
    ASSERT(t.unterminated);
    const char *v = "$x$ abc $x";
    px_lex_init(&lx, v, strlen(v));
    px_lex_next(&lx, &t);
    ASSERT_EQ(t.kind, PX_TOK_DOLLAR);
    ASSERT(t.unterminated);
    ASSERT(!px_tok_is_text(&t));
    const char *w = "  /* open";
    px_lex_init(&lx, w, strlen(w));
    ASSERT_EQ(px_lex_next(&lx, &t), PX_TOK_EOF);
    ASSERT(lx.open_comment);
}

static void check_value(const char *sql, const char *want, size_t wantlen)
{
    px_lex_t lx;
    px_tok_t t;
    char buf[256];
    px_lex_init(&lx, sql, strlen(sql));
    px_lex_next(&lx, &t);
    size_t n = px_tok_text_value(sql, &t, buf, sizeof(buf));
    if (n != wantlen || (n != (size_t)-1 && memcmp(buf, want, wantlen) != 0))
        PX_FAIL("value of [%s]: %zu bytes [%.*s], expected %zu [%s]", sql, n,
                n == (size_t)-1 ? 0 : (int)n, buf, wantlen, want);
}

PX_TEST(lexer_values)
{
    check_value("'a''b'", "a'b", 3);
    check_value("'a\\'b\\\\c'", "a'b\\c", 5);
    check_value("'\\n\\t\\r\\b\\f'", "\n\t\r\b\f", 5);
    check_value("'\\101\\7\\0618'", "A\a18", 4);
    check_value("'\\x41\\q'", "x41q", 4);
    check_value("E'x'", "x", 1);
    check_value("N'x'", "x", 1);
    check_value("'ab'\n'cd' \r\n 'ef'", "abcdef", 6);
    check_value("$$it's \\ raw$$", "it's \\ raw", 10);
    check_value("$t$a$$b$t$", "a$$b", 4);
    check_value("''", "", 0);
    /* Not text: bit strings, unterminated literals, other tokens. */
    check_value("B'0101'", "", (size_t)-1);
    check_value("X'1F'", "", (size_t)-1);
    check_value("'open", "", (size_t)-1);
    check_value("ident", "", (size_t)-1);

    /* Too long for the buffer. */
    char big[600];
    memset(big, 'a', sizeof(big));
    big[0] = '\'';
    big[sizeof(big) - 2] = '\'';
    big[sizeof(big) - 1] = 0;
    px_lex_t lx;
    px_tok_t t;
    char buf[256];
    px_lex_init(&lx, big, strlen(big));
    px_lex_next(&lx, &t);
    ASSERT_EQ(t.kind, PX_TOK_STRING);
    ASSERT(px_tok_text_value(big, &t, buf, sizeof(buf)) == (size_t)-1);

    /* The raw content of the first segment. */
    const char *s = "E'ab''c'\n'de'";
    px_lex_init(&lx, s, strlen(s));
    px_lex_next(&lx, &t);
    size_t a, b;
    px_tok_raw_content(&t, s, &a, &b);
    ASSERT_EQ(a, 2);
    ASSERT_EQ(b, 7);
}

/* ---------------------------------------------------------------------------------------------
 * px_rewrite_lead, px_rewrite_maybe, the scanner.
 */

PX_TEST(lead)
{
    static const struct {
        const char *sql;
        bool complete;
        px_rewrite_lead_kind_t want;
    } t[] = {
        {"COPY t FROM 's3://b/x'", true, PX_LEAD_COPY_UNLOAD},
        {"copy", true, PX_LEAD_COPY_UNLOAD},
        {"CoPy(", false, PX_LEAD_COPY_UNLOAD},
        {"COPY", false, PX_LEAD_MORE},
        {"COP", false, PX_LEAD_MORE},
        {"COP", true, PX_LEAD_OTHER},
        {"SEL", false, PX_LEAD_OTHER},
        {"CX", false, PX_LEAD_OTHER},
        {"SELECT 1; COPY t FROM 'x'", true, PX_LEAD_OTHER},
        {"", false, PX_LEAD_MORE},
        {"", true, PX_LEAD_OTHER},
        {" \n\t\r\f\v", false, PX_LEAD_MORE},
        {"-", false, PX_LEAD_MORE},
        {"-", true, PX_LEAD_OTHER},
        {"-1", false, PX_LEAD_OTHER},
        {"/", false, PX_LEAD_MORE},
        {"/x", false, PX_LEAD_OTHER},
        {"-- comment", false, PX_LEAD_MORE},
        {"-- comment", true, PX_LEAD_OTHER},
        {"-- c\nCOPY ", false, PX_LEAD_COPY_UNLOAD},
        {"-- c\rUNLOAD ", false, PX_LEAD_COPY_UNLOAD},
        {"/* a /* b */", false, PX_LEAD_MORE},
        {"/* a /* b */", true, PX_LEAD_OTHER},
        {"/* a /* b */ */ unload(", false, PX_LEAD_COPY_UNLOAD},
        {";; ; COPY x", false, PX_LEAD_COPY_UNLOAD},
        {"(COPY", true, PX_LEAD_OTHER},
        {"\"COPY\" t", true, PX_LEAD_OTHER},
        {"COPYX", true, PX_LEAD_OTHER},
        {"COPY$", true, PX_LEAD_OTHER},
        {"COPY1", true, PX_LEAD_OTHER},
        {"copy_t", false, PX_LEAD_OTHER},
        {"unloa", false, PX_LEAD_MORE},
        {"unload", true, PX_LEAD_COPY_UNLOAD},
        {"UNLOADS", true, PX_LEAD_OTHER},
        {"E'x'", true, PX_LEAD_OTHER},
        {"\xc3\xa9"
         "COPY",
         true, PX_LEAD_OTHER},
        {"COPY\xc3\xa9", true, PX_LEAD_OTHER},
        {"COPY\xc3", false, PX_LEAD_OTHER},
        {"\vCOPY t", true, PX_LEAD_COPY_UNLOAD},
        {"$$COPY$$", true, PX_LEAD_OTHER},
        {"'COPY'", true, PX_LEAD_OTHER},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(t); i++) {
        px_rewrite_lead_kind_t got = px_rewrite_lead(t[i].sql, strlen(t[i].sql), t[i].complete);
        if (got != t[i].want)
            PX_FAIL("px_rewrite_lead([%s], complete=%d) = %d, expected %d", t[i].sql, t[i].complete,
                    got, t[i].want);
    }
}

static bool naive_maybe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (n - i >= 4 && px_ascii_ieq(s + i, 4, "copy"))
            return true;
        if (n - i >= 6 && px_ascii_ieq(s + i, 6, "unload"))
            return true;
    }
    return false;
}

PX_TEST(maybe)
{
    ASSERT(!px_rewrite_maybe("", 0));
    ASSERT(!px_rewrite_maybe("o", 1));
    ASSERT(!px_rewrite_maybe("SELECT 1 FROM t ORDER BY a", 26));
    ASSERT(px_rewrite_maybe("COPY", 4));
    ASSERT(px_rewrite_maybe("xcopyx", 6));
    ASSERT(px_rewrite_maybe("UnLoAd", 6));
    ASSERT(!px_rewrite_maybe("unloa", 5));
    ASSERT(!px_rewrite_maybe("cop y", 5));
    ASSERT(!px_rewrite_maybe("COP\xd9", 4)); /* 'Y' | 0x80 is not 'y' */
    ASSERT(!px_rewrite_maybe("\xc3\xaf"
                             "py",
                             4));
    /* Every offset around the 8-byte strides. */
    char buf[64];
    for (size_t off = 0; off + 6 <= sizeof(buf); off++) {
        memset(buf, 'o', sizeof(buf));
        memcpy(buf + off, "CoPy", 4);
        ASSERT(px_rewrite_maybe(buf, sizeof(buf)));
        ASSERT(px_rewrite_maybe(buf + off, 4));
        ASSERT(!px_rewrite_maybe(buf + off, 3));
        memset(buf, 'x', sizeof(buf));
        memcpy(buf + off, "unLOAD", 6);
        ASSERT(px_rewrite_maybe(buf, sizeof(buf)));
        ASSERT(!px_rewrite_maybe(buf, off + 5));
        ASSERT(!px_rewrite_maybe(buf + off + 1, sizeof(buf) - off - 1));
    }
    /* Against the obvious implementation on random texts over a small alphabet. */
    static const char alpha[] = "copyunladCOPYUNLAD o\x4f\x6f\xcf\xef";
    uint32_t seed = 12345;
    for (int round = 0; round < 200000; round++) {
        char s[40];
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % sizeof(s);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
        }
        if (px_rewrite_maybe(s, n) != naive_maybe(s, n))
            PX_FAIL("px_rewrite_maybe disagrees with the naive scan on [%.*s]", (int)n, s);
        /* And the scanner, fed byte by byte. */
        px_rewrite_scan_t sc;
        px_rewrite_scan_init(&sc);
        bool hit = false;
        for (size_t i = 0; i < n; i++)
            hit = px_rewrite_scan_feed(&sc, s + i, 1);
        if (n && hit != naive_maybe(s, n))
            PX_FAIL("byte-wise scanner disagrees on [%.*s]", (int)n, s);
    }
}

PX_TEST(scan_pieces)
{
    px_rewrite_scan_t sc;
    px_rewrite_scan_init(&sc);
    ASSERT(!px_rewrite_scan_feed(&sc, "SELECT u", 8));
    ASSERT(!px_rewrite_scan_feed(&sc, "n", 1));
    ASSERT(!px_rewrite_scan_feed(&sc, "", 0));
    ASSERT(!px_rewrite_scan_feed(&sc, "lo", 2));
    ASSERT(px_rewrite_scan_feed(&sc, "ad", 2));
    ASSERT(px_rewrite_scan_feed(&sc, "zzz", 3)); /* sticky */
    /* Pieces shorter and longer than the kept tail. */
    px_rewrite_scan_init(&sc);
    ASSERT(!px_rewrite_scan_feed(&sc, "c", 1));
    ASSERT(!px_rewrite_scan_feed(&sc, "op", 2));
    ASSERT(px_rewrite_scan_feed(&sc, "y", 1));
    px_rewrite_scan_init(&sc);
    ASSERT(!px_rewrite_scan_feed(&sc, "a long piece ending in unl", 26));
    ASSERT(!px_rewrite_scan_feed(&sc, "o", 1));
    ASSERT(px_rewrite_scan_feed(&sc, "ad and more", 11));
    px_rewrite_scan_init(&sc);
    ASSERT(!px_rewrite_scan_feed(&sc, "cop", 3));
    ASSERT(!px_rewrite_scan_feed(&sc, " y", 2));
}

/* ---------------------------------------------------------------------------------------------
 * The output buffer contract.
 */

static px_rewrite_opts_t default_opts(void)
{
    px_rewrite_opts_t o = {
        .iam_role = ROLE,
        .tempdir = "s3://rsproxy-test/tmp/",
        .allow_client_credentials = true,
    };
    return o;
}

PX_TEST(out_is_appended_to)
{
    px_rewrite_opts_t o = default_opts();
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    px_dbuf_put_cstr(&out, "prefix|");
    px_rewrite_result_t res;
    const char *sql = "COPY t FROM 'x'";
    ASSERT_OK(px_rewrite_sql(&o, sql, strlen(sql), &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_CHANGED);
    const char *want = "prefix|COPY t FROM 's3://rsproxy-test/tmp/x' IAM_ROLE '" ROLE "'";
    ASSERT_EQ(out.len, strlen(want));
    ASSERT_MEM_EQ(out.data, want, out.len);

    size_t len = out.len;
    const char *plain = "SELECT 1";
    ASSERT_OK(px_rewrite_sql(&o, plain, strlen(plain), &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_UNCHANGED);
    ASSERT_EQ(out.len, len);
    px_dbuf_free(&out);
}

PX_TEST(refusal_rolls_back_and_wipes)
{
    px_rewrite_opts_t o = default_opts();
    static const auth_aws_keys_t keys = {"ASIAPROXY", "PROXYSECRETVALUE", "TOKEN"};
    o.forward_keys = &keys;
    o.allow_client_credentials = false;
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    px_dbuf_put_cstr(&out, "keep");
    px_rewrite_result_t res;
    /* The first statement gets the keys written into out, the second is refused. */
    const char *sql = "COPY a FROM 's3://b-1/a'; COPY b FROM 's3://b-1/b' ACCESS_KEY_ID 'AK'";
    ASSERT_OK(px_rewrite_sql(&o, sql, strlen(sql), &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_REFUSED);
    ASSERT_STR_EQ(res.sqlstate, "42501");
    ASSERT_EQ(out.len, 4);
    ASSERT(!out.failed);
    ASSERT(!contains(out.data, out.cap, "PROXYSECRETVALUE"));
    ASSERT(!strstr(res.message, "PROXYSECRETVALUE"));
    px_dbuf_free(&out);
}

PX_TEST(enomem)
{
    px_rewrite_opts_t o = default_opts();
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    px_rewrite_result_t res;
    const char *sql = "COPY t FROM 's3://rsproxy-test/x'";
    px_alloc_fail_after(0);
    int rc = px_rewrite_sql(&o, sql, strlen(sql), &out, &res);
    px_alloc_fail_after(-1);
    ASSERT_EQ(rc, UV_ENOMEM);
    ASSERT_EQ(out.len, 0);
    ASSERT(!out.failed);
    ASSERT_EQ(res.verdict, PX_REWRITE_UNCHANGED);
    /* Without the failure the same call succeeds: the buffer is usable again. */
    ASSERT_OK(px_rewrite_sql(&o, sql, strlen(sql), &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_CHANGED);
    px_dbuf_free(&out);
}

PX_TEST(limit_counts_existing_content)
{
    px_rewrite_opts_t o = default_opts();
    px_dbuf_t out;
    const char *sql = "COPY t FROM 's3://rsproxy-test/x'";
    size_t outlen = strlen(sql) + strlen(" IAM_ROLE '" ROLE "'");
    px_dbuf_init(&out, 10 + outlen);
    px_dbuf_put_cstr(&out, "0123456789");
    px_rewrite_result_t res;
    ASSERT_OK(px_rewrite_sql(&o, sql, strlen(sql), &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_CHANGED);
    px_dbuf_free(&out);

    px_dbuf_init(&out, 10 + outlen - 1);
    px_dbuf_put_cstr(&out, "0123456789");
    ASSERT_OK(px_rewrite_sql(&o, sql, strlen(sql), &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_REFUSED);
    ASSERT_STR_EQ(res.sqlstate, "54000");
    ASSERT_EQ(out.len, 10);
    ASSERT(!out.failed);
    px_dbuf_free(&out);
}

/* A big multi-statement text: linear time, no recursion, the one COPY at the end found. */
PX_TEST(large_text)
{
    px_rewrite_opts_t o = default_opts();
    px_dbuf_t in, out;
    px_dbuf_init(&in, 0);
    px_dbuf_init(&out, 0);
    for (int i = 0; i < 20000; i++)
        px_dbuf_put_cstr(&in, "SELECT 'a;b', \"c;d\", $$e;f$$ /* /* g; */ */ -- h;\n;");
    for (int i = 0; i < 10000; i++)
        px_dbuf_put_cstr(&in, "/*");
    for (int i = 0; i < 10000; i++)
        px_dbuf_put_cstr(&in, "*/");
    px_dbuf_put_cstr(&in, " COPY t FROM 's3://rsproxy-test/x'");
    ASSERT(!in.failed);
    px_rewrite_result_t res;
    ASSERT_OK(px_rewrite_sql(&o, (const char *)in.data, in.len, &out, &res));
    ASSERT_EQ(res.verdict, PX_REWRITE_CHANGED);
    ASSERT_EQ(res.statements_rewritten, 1);
    ASSERT_EQ(out.len, in.len + strlen(" IAM_ROLE '" ROLE "'"));
    ASSERT_MEM_EQ(out.data, in.data, in.len);
    px_dbuf_free(&in);
    px_dbuf_free(&out);
}
