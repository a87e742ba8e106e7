/*
 * libFuzzer target for the COPY/UNLOAD rewriter (proxy/px_rewrite.c, px_rewrite_lex.c). The first
 * input byte picks the options (injection mode, tempdir, policy keys, output limit, a
 * tempdir_region or an allocation failure); the rest is the SQL text. Besides not crashing, it
 * checks invariants:
 *   - UNCHANGED and REFUSED leave the output buffer as it was; messages hold no secret;
 *   - CHANGED output is the input plus insertions of exactly the configured clause and the
 *     tempdir prefix, and s3a:// / s3n:// turned into s3://; a REGION clause only with a
 *     tempdir_region, never more of them than locations resolved under tempdir;
 *   - the CHANGED output fed back in is UNCHANGED (it is authorized and normalised);
 *   - px_rewrite_maybe() agrees with a naive scan and is true whenever the rewriter acts;
 *     px_rewrite_lead() on a prefix never contradicts it on the whole text; the streaming
 *     scanner agrees with px_rewrite_maybe() at any split;
 *   - the lexer's tokens are ordered, inside the text, separated only by space and comments.
 */
#include "px_alloc.h"
#include "px_buf.h"
#include "px_rewrite.h"
#include "px_rewrite_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROLE    "arn:aws:iam::123456789012:role/FuzzInjected"
#define CHAIN   "arn:aws:iam::123456789012:role/A,arn:aws:iam::210987654321:role/B"
#define TEMPDIR "s3a://rsproxy-test/fuzz//"
#define PREFIX  "s3://rsproxy-test/fuzz/"
#define AKID    "ASIAFUZZEXAMPLE"
#define SECRET  "FuzzSecretKeyValue0123456789/+abcdEXAMPLE"
#define TOKEN   "FuzzSessionToken+/=EXAMPLE"
#define REGION  " REGION 'eu-fuzz-1'"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_rewrite: invariant failed at line %d: %s\n", __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

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

static bool starts_with(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(s, lit, l) == 0;
}

static bool starts_with_ci(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && px_ascii_ieq(s, l, lit);
}

/*
 * Walks input and output together. Where they differ, the output must hold one of the edits the
 * rewriter makes: the injected clause, the REGION clause (`region`, NULL when none is
 * configured), the tempdir prefix (replacing leading '/' of a relative location), or "s3://" in
 * place of "s3a://" / "s3n://". An edit is taken only where the input does not already hold the
 * same text, so ordinary equal bytes never get mistaken for one. Counts the prefix and REGION
 * insertions.
 */
static bool only_insertions(const char *in, size_t n, const char *out, size_t m, const char *clause,
                            const char *region, int *prefixes, int *regions)
{
    size_t i = 0, j = 0;
    *prefixes = *regions = 0;
    while (i < n || j < m) {
        if (j < m && starts_with(out + j, m - j, clause) && !starts_with(in + i, n - i, clause)) {
            j += strlen(clause);
            /* A space that keeps IAM_ROLE default apart from a following word. */
            if (j < m && out[j] == ' ' && i < n && px_lex_word_char((unsigned char)in[i]) &&
                !(region && starts_with(out + j, m - j, region)))
                j++;
            continue;
        }
        if (region && j < m && starts_with(out + j, m - j, region) &&
            !starts_with(in + i, n - i, region)) {
            j += strlen(region);
            (*regions)++;
            continue;
        }
        if (j < m && starts_with(out + j, m - j, PREFIX) && !starts_with(in + i, n - i, PREFIX)) {
            j += strlen(PREFIX);
            while (i < n && in[i] == '/')
                i++;
            (*prefixes)++;
            continue;
        }
        if ((starts_with_ci(in + i, n - i, "s3a://") || starts_with_ci(in + i, n - i, "s3n://")) &&
            starts_with(out + j, m - j, "s3://")) {
            i += 6;
            j += 5;
            continue;
        }
        if (i < n && j < m && in[i] == out[j]) {
            i++;
            j++;
            continue;
        }
        return false;
    }
    return true;
}

static void check_lexer(const char *s, size_t n, bool std)
{
    px_lex_t lx;
    px_tok_t t;
    px_lex_init(&lx, s, n);
    lx.std_strings = std;
    size_t prev_end = 0;
    char buf[256];
    for (int guard = 0;; guard++) {
        CHECK(guard <= (int)n + 1);
        px_lex_next(&lx, &t);
        CHECK(t.start >= prev_end && t.start <= n && t.end <= n);
        /* Only space and comments between tokens. */
        px_lex_t again;
        px_lex_init(&again, s, n);
        CHECK(px_lex_skip_space(&again, prev_end) == t.start);
        if (t.kind == PX_TOK_EOF) {
            CHECK(t.start == n && t.end == n);
            break;
        }
        CHECK(t.end > t.start);
        if (px_tok_is_text(&t)) {
            size_t a, b;
            px_tok_raw_content(&t, s, &a, &b);
            CHECK(a <= b && a > t.start && b < t.end);
            size_t vl = px_tok_text_value(s, &t, buf, sizeof(buf));
            CHECK(vl == (size_t)-1 || vl < sizeof(buf));
        }
        prev_end = t.end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const char *sql = (const char *)data + 1;
    size_t n = size - 1;

    /* Options from the selector byte. */
    static char *allowed_items[] = {"arn:aws:iam::123456789012:role/Other", "default"};
    static const cfg_strlist_t allowed = {allowed_items, 2};
    static const auth_aws_keys_t keys = {AKID, SECRET, TOKEN};
    px_rewrite_opts_t o = {0};
    const char *clause;
    switch (sel & 3) {
    case 0:
        o.iam_role = ROLE;
        clause = " IAM_ROLE '" ROLE "'";
        break;
    case 1:
        o.iam_role = "default";
        clause = " IAM_ROLE default";
        break;
    case 2:
        o.iam_role = CHAIN;
        clause = " IAM_ROLE '" CHAIN "'";
        break;
    default:
        o.forward_keys = &keys;
        clause =
            " ACCESS_KEY_ID '" AKID "' SECRET_ACCESS_KEY '" SECRET "' SESSION_TOKEN '" TOKEN "'";
        break;
    }
    o.tempdir = (sel & 4) ? TEMPDIR : "";
    o.allowed_iam_roles = (sel & 8) ? &allowed : NULL;
    o.allow_client_credentials = !(sel & 16);
    size_t limit = (sel & 32) ? n + 40 : 0;
    bool fail_alloc = (sel & 0xc0) == 0xc0;
    o.tempdir_region = (sel & 0xc0) == 0x40 ? "eu-fuzz-1" : NULL;

    /* Hot-path helpers. */
    bool maybe = px_rewrite_maybe(sql, n);
    CHECK(maybe == naive_maybe(sql, n));
    size_t split = n ? (size_t)sel % (n + 1) : 0;
    px_rewrite_scan_t sc;
    px_rewrite_scan_init(&sc);
    bool s1 = px_rewrite_scan_feed(&sc, sql, split);
    bool s2 = px_rewrite_scan_feed(&sc, sql + split, n - split);
    CHECK((s1 || s2) == maybe);
    px_rewrite_lead_kind_t whole = px_rewrite_lead(sql, n, true);
    CHECK(whole != PX_LEAD_MORE);
    for (size_t k = 0; k <= n && k <= 96; k++) {
        px_rewrite_lead_kind_t part = px_rewrite_lead(sql, k, false);
        CHECK(part == PX_LEAD_MORE || part == whole);
    }
    check_lexer(sql, n, false);
    check_lexer(sql, n, true);

    /* The rewriter. */
    px_dbuf_t out;
    px_dbuf_init(&out, limit);
    px_rewrite_result_t res;
    if (fail_alloc)
        px_alloc_fail_after(sel & 1);
    int rc = px_rewrite_sql(&o, sql, n, &out, &res);
    px_alloc_fail_after(-1);
    CHECK(rc == 0 || (rc == UV_ENOMEM && fail_alloc));
    CHECK(!out.failed);
    CHECK(res.statements_rewritten >= 0);
    if (rc != 0 || res.verdict != PX_REWRITE_CHANGED) {
        CHECK(out.len == 0);
        CHECK(res.statements_rewritten == 0);
    }
    /* The proxy's secrets never reach a message (unless the client itself sent that text). */
    if (!memmem(sql, n, SECRET, strlen(SECRET)))
        CHECK(!strstr(res.message, SECRET));
    if (!memmem(sql, n, TOKEN, strlen(TOKEN)))
        CHECK(!strstr(res.message, TOKEN));
    if (rc == 0 && res.verdict == PX_REWRITE_REFUSED) {
        CHECK(strlen(res.sqlstate) == 5 && res.message[0]);
        CHECK(!strcmp(res.sqlstate, "42501") || !strcmp(res.sqlstate, "22023") ||
              !strcmp(res.sqlstate, "54000"));
    } else {
        CHECK(res.sqlstate[0] == 0 && res.message[0] == 0);
    }
    if (rc == 0 && res.verdict != PX_REWRITE_UNCHANGED)
        CHECK(maybe);
    if (rc == 0 && res.verdict == PX_REWRITE_CHANGED) {
        const char *o1 = (const char *)out.data;
        CHECK(res.statements_rewritten >= 1);
        CHECK(limit == 0 || out.len <= limit);
        int prefixes, regions;
        CHECK(only_insertions(sql, n, o1, out.len, clause, o.tempdir_region ? REGION : NULL,
                              &prefixes, &regions));
        /* REGION only follows a location that was resolved under tempdir. */
        CHECK(regions <= prefixes);
        CHECK(regions == 0 || (o.tempdir_region && o.tempdir[0]));
        /* Authorized and normalised now: nothing more to do (client keys are ours). */
        px_rewrite_opts_t o2 = o;
        o2.allow_client_credentials = true;
        px_dbuf_t out2;
        px_dbuf_init(&out2, 0);
        px_rewrite_result_t res2;
        CHECK(px_rewrite_sql(&o2, o1, out.len, &out2, &res2) == 0);
        if (res2.verdict != PX_REWRITE_UNCHANGED) {
            fprintf(stderr, "re-fed output: verdict %d %s\n[%.*s]\n", res2.verdict, res2.message,
                    (int)out.len, o1);
            CHECK(res2.verdict == PX_REWRITE_UNCHANGED);
        }
        px_dbuf_free(&out2);
    }
    px_dbuf_free_secret(&out);
    return 0;
}
