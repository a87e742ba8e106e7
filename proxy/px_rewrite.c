/*
 * The COPY/UNLOAD rewriter (px_rewrite.h): walks the statements of a Query or Parse text with the
 * lexer of px_rewrite_lex.c, recognises COPY <table> [(cols)] FROM <location> and
 * UNLOAD (<query>) TO <location>, applies the policy keys to every authorization clause a client
 * wrote, and inserts the configured authorization right after the location of statements that
 * have none (and REGION '<tempdir_region>' after a location it resolved under tempdir). It edits
 * only a location literal's first bytes (scheme, tempdir prefix) and inserts after it; every
 * other byte of the text is copied unchanged.
 *
 * Pure: no I/O, no logging, no allocation except through `out`, which is written only once the
 * first edit is known (so UNCHANGED costs no copy), and rolled back on refusal.
 */
#include "px_rewrite.h"
#include "px_rewrite_int.h"
#include "s3_url.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* Longest literal value (role chain, CREDENTIALS string, location) decoded for a decision. An
 * S3 key is at most 1 KiB and a role chain of 10 ARNs well under 8 KiB; a session token inside
 * CREDENTIALS is a few KiB. Longer values are treated conservatively (see check_* below). */
#define VALUE_MAX 8192

/* Writes the output lazily: bytes of the input are copied only when an edit follows them. */
typedef struct emitter {
    const char *s;
    px_dbuf_t *out;
    size_t copied; /* input bytes [0, copied) are accounted for in out */
    size_t want;   /* length out would have without a limit, for the 54000 check */
    int edits;
} emitter_t;

static void em_put(emitter_t *e, const char *p, size_t n)
{
    e->want += n;
    px_dbuf_put(e->out, p, n);
}

static void em_copy_to(emitter_t *e, size_t pos)
{
    em_put(e, e->s + e->copied, pos - e->copied);
    e->copied = pos;
}

/* Text placed inside a '...' literal: quotes and backslashes doubled, which is correct under
 * Redshift's rules (backslash escapes on) and harmless otherwise. The values come from the
 * validated config and never contain either, so this is a second line of defence. */
static void em_put_escaped(emitter_t *e, const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\'' || p[i] == '\\') {
            em_put(e, p + start, i + 1 - start);
            em_put(e, p + i, 1);
            start = i + 1;
        }
    }
    em_put(e, p + start, n - start);
}

static void em_put_cstr(emitter_t *e, const char *s)
{
    em_put(e, s, strlen(s));
}

typedef struct ctx {
    const px_rewrite_opts_t *o;
    const char *s;
    size_t n;
    px_rewrite_result_t *res;
    emitter_t em;
    bool roles_policy; /* allowed_iam_roles is non-empty */
    bool refused;
    bool policy_only;  /* second reading: check policy, plan no edits */
    bool keys_written; /* forwarded keys were injected */
    /* "s3://bucket/prefix/" from tempdir, built on first use; tempdir_state: 0 not yet,
     * 1 ready, -1 no usable tempdir. */
    int tempdir_state;
    size_t prefix_len;
    char prefix[S3_BUCKET_MAX + S3_KEY_MAX + 16];
} ctx_t;

typedef enum stmt_kind {
    STMT_COPY,
    STMT_UNLOAD,
} stmt_kind_t;

static const char *kind_name(stmt_kind_t k)
{
    return k == STMT_COPY ? "COPY" : "UNLOAD";
}

static void refuse(ctx_t *c, const char *sqlstate, const char *fmt, ...) PX_PRINTF(3, 4);
static void refuse(ctx_t *c, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    c->refused = true;
    c->res->verdict = PX_REWRITE_REFUSED;
    snprintf(c->res->sqlstate, sizeof(c->res->sqlstate), "%s", sqlstate);
    va_start(ap, fmt);
    vsnprintf(c->res->message, sizeof(c->res->message), fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------------
 * Policy. Each check sees one literal the client wrote after IAM_ROLE or CREDENTIALS.
 */

static bool in_allowed(const ctx_t *c, const char *v, size_t n)
{
    const cfg_strlist_t *l = c->o->allowed_iam_roles;
    for (size_t i = 0; l && i < l->n; i++)
        if (strlen(l->items[i]) == n && memcmp(l->items[i], v, n) == 0)
            return true;
    return false;
}

/*
 * A client-written role chain passes when it is exactly the configured aws_iam_role (the proxy
 * would have added that one anyway) or when every role of it is in allowed_iam_roles. The refusal
 * names the first role that is not allowed, but only if it looks like an ARN: whatever else a
 * client put there is not repeated back.
 */
static void check_roles(ctx_t *c, stmt_kind_t k, const char *v, size_t n)
{
    const char *role = c->o->iam_role;
    if (role && strlen(role) == n && memcmp(role, v, n) == 0)
        return;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && v[i] != ',')
            continue;
        const char *r = v + start;
        size_t rl = i - start;
        if (!in_allowed(c, r, rl)) {
            if (rl <= 160 && s3_iam_role_arn_valid(r, rl, NULL))
                refuse(c, "42501",
                       "%s refused: IAM_ROLE '%.*s' is not among rsproxy's allowed_iam_roles",
                       kind_name(k), (int)rl, r);
            else
                refuse(c, "42501",
                       "%s refused: its IAM_ROLE is not among rsproxy's allowed_iam_roles",
                       kind_name(k));
            return;
        }
        start = i + 1;
    }
}

static void check_iam_role_default(ctx_t *c, stmt_kind_t k)
{
    if (!c->roles_policy)
        return;
    const char *role = c->o->iam_role;
    if (in_allowed(c, "default", 7) || (role && px_ascii_ieq(role, strlen(role), "default")))
        return;
    refuse(c, "42501", "%s refused: IAM_ROLE default is not among rsproxy's allowed_iam_roles",
           kind_name(k));
}

/* Decodes a literal a policy decision depends on. Backslash escapes are refused there: how
 * Redshift decodes the rarer ones is not documented, and a role ARN never needs one. */
static size_t policy_value(ctx_t *c, stmt_kind_t k, const px_tok_t *t, char *buf)
{
    if (t->kind == PX_TOK_STRING && t->has_backslash) {
        refuse(c, "42501",
               "%s refused: rsproxy cannot check an IAM_ROLE or CREDENTIALS value written with "
               "backslash escapes",
               kind_name(k));
        return (size_t)-1;
    }
    size_t n = px_tok_text_value(c->s, t, buf, VALUE_MAX);
    if (n == (size_t)-1)
        refuse(c, "42501", "%s refused: its IAM_ROLE or CREDENTIALS value is too long to check",
               kind_name(k));
    return n;
}

static void check_role_literal(ctx_t *c, stmt_kind_t k, const px_tok_t *t)
{
    if (!c->roles_policy)
        return;
    char buf[VALUE_MAX];
    size_t n = policy_value(c, k, t, buf);
    if (n != (size_t)-1)
        check_roles(c, k, buf, n);
}

/*
 * CREDENTIALS '<k>=<v>;...' (reference §7.1). Only aws_iam_role (and master_symmetric_key, which
 * is not an AWS credential) keep a statement role-only; any other content, including content
 * Redshift would reject, counts as client keys, so a malformed string cannot slip past
 * allow_client_credentials = false.
 */
static void check_credentials(ctx_t *c, stmt_kind_t k, const px_tok_t *t, bool *client_keys)
{
    if (!c->roles_policy && c->o->allow_client_credentials)
        return; /* nothing to decide */
    char buf[VALUE_MAX];
    size_t n = policy_value(c, k, t, buf);
    if (n == (size_t)-1)
        return;
    bool role_seen = false;
    size_t start = 0;
    for (size_t i = 0; i <= n && !c->refused; i++) {
        if (i < n && buf[i] != ';')
            continue;
        const char *pair = buf + start;
        size_t pl = i - start;
        start = i + 1;
        const char *eq = memchr(pair, '=', pl);
        size_t kl = eq ? (size_t)(eq - pair) : pl;
        if (eq && px_ascii_ieq(pair, kl, "aws_iam_role")) {
            role_seen = true;
            if (c->roles_policy)
                check_roles(c, k, eq + 1, pl - kl - 1);
        } else if (eq && px_ascii_ieq(pair, kl, "master_symmetric_key")) {
            continue;
        } else {
            *client_keys = true;
        }
    }
    if (!role_seen)
        *client_keys = true;
}

/* ---------------------------------------------------------------------------------------------
 * Authorization clauses. A keyword counts only when followed (after an optional AS) by the kind
 * of argument Redshift accepts there; anything else is a syntax error Redshift reports itself,
 * and ignoring it avoids refusing, say, a table named credentials.
 */

typedef enum auth_pending {
    AUTH_NONE = 0,
    AUTH_ROLE,
    AUTH_CREDENTIALS,
    AUTH_KEY,
} auth_pending_t;

typedef struct auth_scan {
    auth_pending_t pending;
    bool after_as;
    bool has_auth;
    bool client_keys;
} auth_scan_t;

static void auth_feed(ctx_t *c, stmt_kind_t k, auth_scan_t *a, const px_tok_t *t)
{
    const char *s = c->s;
    if (a->pending != AUTH_NONE) {
        auth_pending_t p = a->pending;
        if (!a->after_as && px_tok_is(s, t, "as")) {
            a->after_as = true;
            return;
        }
        a->pending = AUTH_NONE;
        a->after_as = false;
        bool text = px_tok_is_text(t);
        if (p == AUTH_ROLE && (text || px_tok_is(s, t, "default"))) {
            a->has_auth = true;
            if (text)
                check_role_literal(c, k, t);
            else
                check_iam_role_default(c, k);
            return;
        }
        if (p == AUTH_CREDENTIALS && text) {
            a->has_auth = true;
            check_credentials(c, k, t, &a->client_keys);
            return;
        }
        if (p == AUTH_KEY && text) {
            a->has_auth = true;
            a->client_keys = true;
            return;
        }
        /* Not an argument: look at the token as a keyword of its own below. */
    }
    if (t->kind != PX_TOK_WORD)
        return;
    if (px_tok_is(s, t, "iam_role"))
        a->pending = AUTH_ROLE;
    else if (px_tok_is(s, t, "credentials"))
        a->pending = AUTH_CREDENTIALS;
    else if (px_tok_is(s, t, "access_key_id") || px_tok_is(s, t, "secret_access_key") ||
             px_tok_is(s, t, "session_token"))
        a->pending = AUTH_KEY;
}

/* ---------------------------------------------------------------------------------------------
 * Locations.
 */

static bool tempdir_prefix(ctx_t *c)
{
    if (c->tempdir_state == 0) {
        c->tempdir_state = -1;
        const char *td = c->o->tempdir;
        s3_url_t u;
        if (td && *td && s3_url_parse(td, strlen(td), &u, NULL) == 0) {
            size_t kl = u.key_len;
            while (kl > 0 && u.key[kl - 1] == '/')
                kl--;
            int w = snprintf(c->prefix, sizeof(c->prefix), "s3://%s/%.*s%s", u.bucket, (int)kl,
                             u.key, kl ? "/" : "");
            if (w > 0 && (size_t)w < sizeof(c->prefix)) {
                c->prefix_len = (size_t)w;
                c->tempdir_state = 1;
            }
            s3_url_wipe(&u); /* the tempdir's embedded keys are the proxy's: never in SQL */
        }
    }
    return c->tempdir_state == 1;
}

typedef enum loc_class {
    LOC_OTHER = 0, /* non-S3 scheme or undecodable: left alone */
    LOC_S3,        /* s3:// */
    LOC_S3X,       /* s3a:// or s3n:// */
    LOC_RELATIVE,  /* no scheme */
} loc_class_t;

/* What the location's value is. Sets *embedded when an s3 URL carries user:secret@. */
static loc_class_t classify(const char *v, size_t n, bool *embedded)
{
    *embedded = false;
    if (!s3_url_has_scheme(v, n))
        return LOC_RELATIVE;
    if (!s3_url_is_s3(v, n))
        return LOC_OTHER;
    const char *auth = memchr(v, ':', n) + 3;
    size_t rest = n - (size_t)(auth - v);
    const char *slash = memchr(auth, '/', rest);
    size_t al = slash ? (size_t)(slash - auth) : rest;
    /* Bucket names never contain '@': one in the authority is always user-info. */
    *embedded = memchr(auth, '@', al) != NULL;
    return px_ascii_lower(v[2]) == ':' ? LOC_S3 : LOC_S3X;
}

/*
 * Plans the location edit: [*ed_a, *ed_b) of the text is replaced by `repl` (escaped into a
 * '...' literal unless the token is dollar-quoted). Only the literal's first raw bytes change,
 * and only when those bytes are plain (no escape sequence, no continuation split inside them),
 * so the rest of the literal keeps its exact bytes and meaning. Returns false (and refuses) when
 * an edit is needed but cannot be made that way.
 */
static bool plan_location(ctx_t *c, stmt_kind_t k, const px_tok_t *loc, const char *v, size_t vn,
                          loc_class_t cls, size_t *ed_a, size_t *ed_b, const char **repl,
                          size_t *repl_len)
{
    size_t a, b;
    px_tok_raw_content(loc, c->s, &a, &b);
    const char *raw = c->s + a;
    size_t rn = b - a;
    *repl = NULL;
    if (cls == LOC_S3X) {
        if (rn >= 6 && memcmp(raw, v, 6) == 0) {
            *ed_a = a;
            *ed_b = a + 6;
            *repl = "s3://";
            *repl_len = 5;
            return true;
        }
    } else if (cls == LOC_RELATIVE) {
        if (!tempdir_prefix(c))
            return true; /* nothing to resolve against: Redshift reports the bad location */
        size_t kv = 0, kr = 0;
        while (kv < vn && v[kv] == '/')
            kv++;
        while (kr < rn && raw[kr] == '/')
            kr++;
        bool dollar_safe = loc->kind != PX_TOK_DOLLAR || !memchr(c->prefix, '$', c->prefix_len);
        if (kv == kr && dollar_safe) {
            *ed_a = a;
            *ed_b = a + kr;
            *repl = c->prefix;
            *repl_len = c->prefix_len;
            return true;
        }
    } else {
        return true;
    }
    refuse(c, "22023",
           "%s refused: rsproxy cannot rewrite this location (escape sequences or a split "
           "literal where it must edit); write it as one plain string",
           kind_name(k));
    return false;
}

static bool have_injection(const ctx_t *c)
{
    const auth_aws_keys_t *fk = c->o->forward_keys;
    if (fk && fk->access_key_id && *fk->access_key_id)
        return true;
    return c->o->iam_role && *c->o->iam_role;
}

/* Whether the clause emit_injection() writes ends with a bare word (IAM_ROLE default) rather
 * than a quoted literal. */
static bool injection_ends_in_word(const ctx_t *c)
{
    const auth_aws_keys_t *fk = c->o->forward_keys;
    if (fk && fk->access_key_id && *fk->access_key_id)
        return false;
    return px_ascii_ieq(c->o->iam_role, strlen(c->o->iam_role), "default");
}

static void emit_injection(ctx_t *c)
{
    emitter_t *e = &c->em;
    const auth_aws_keys_t *fk = c->o->forward_keys;
    if (fk && fk->access_key_id && *fk->access_key_id) {
        em_put_cstr(e, " ACCESS_KEY_ID '");
        em_put_escaped(e, fk->access_key_id, strlen(fk->access_key_id));
        em_put_cstr(e, "' SECRET_ACCESS_KEY '");
        if (fk->secret_access_key)
            em_put_escaped(e, fk->secret_access_key, strlen(fk->secret_access_key));
        em_put_cstr(e, "'");
        if (fk->session_token && *fk->session_token) {
            em_put_cstr(e, " SESSION_TOKEN '");
            em_put_escaped(e, fk->session_token, strlen(fk->session_token));
            em_put_cstr(e, "'");
        }
        return;
    }
    const char *role = c->o->iam_role;
    if (px_ascii_ieq(role, strlen(role), "default")) {
        em_put_cstr(e, " IAM_ROLE default");
        return;
    }
    em_put_cstr(e, " IAM_ROLE '");
    em_put_escaped(e, role, strlen(role));
    em_put_cstr(e, "'");
}

/* ---------------------------------------------------------------------------------------------
 * Statements.
 */

typedef enum phase {
    PH_TABLE,       /* COPY: expecting a name part */
    PH_TABLE_AFTER, /* COPY: after a name part: '.', '(' or FROM */
    PH_COLUMNS,     /* COPY: inside the column list */
    PH_FROM,        /* COPY: after the column list */
    PH_LPAREN,      /* UNLOAD: expecting '(' */
    PH_QUERY,       /* UNLOAD: expecting the query literal */
    PH_RPAREN,      /* UNLOAD: expecting ')' */
    PH_TO,          /* UNLOAD: expecting TO */
    PH_LOCATION,    /* expecting the location literal */
    PH_DONE,        /* location found */
    PH_FAILED,      /* not a form we rewrite */
} phase_t;

static bool is_char(const char *s, const px_tok_t *t, char ch)
{
    return t->kind == PX_TOK_OTHER && s[t->start] == ch;
}

/* Advances the recogniser by one token. */
static phase_t step(const char *s, phase_t ph, const px_tok_t *t, int *depth)
{
    switch (ph) {
    case PH_TABLE:
        return (t->kind == PX_TOK_WORD || t->kind == PX_TOK_QIDENT) ? PH_TABLE_AFTER : PH_FAILED;
    case PH_TABLE_AFTER:
        if (is_char(s, t, '.'))
            return PH_TABLE;
        if (is_char(s, t, '(')) {
            *depth = 1;
            return PH_COLUMNS;
        }
        return px_tok_is(s, t, "from") ? PH_LOCATION : PH_FAILED;
    case PH_COLUMNS:
        if (is_char(s, t, '('))
            ++*depth;
        else if (is_char(s, t, ')') && --*depth == 0)
            return PH_FROM;
        return PH_COLUMNS;
    case PH_FROM:
        return px_tok_is(s, t, "from") ? PH_LOCATION : PH_FAILED;
    case PH_LPAREN:
        return is_char(s, t, '(') ? PH_QUERY : PH_FAILED;
    case PH_QUERY:
        return px_tok_is_text(t) ? PH_RPAREN : PH_FAILED;
    case PH_RPAREN:
        return is_char(s, t, ')') ? PH_TO : PH_FAILED;
    case PH_TO:
        return px_tok_is(s, t, "to") ? PH_LOCATION : PH_FAILED;
    case PH_LOCATION:
        return px_tok_is_text(t) ? PH_DONE : PH_FAILED;
    case PH_DONE:
    case PH_FAILED:
        return ph;
    }
    return PH_FAILED;
}

/*
 * One COPY or UNLOAD statement, from the token after the keyword up to its ';' or the end.
 * The authorization scan runs over every token, recognised form or not, so a statement the
 * recogniser does not understand still cannot carry a refused role or key past the policy.
 */
static void rewrite_statement(ctx_t *c, px_lex_t *lx, stmt_kind_t k)
{
    const char *s = c->s;
    phase_t ph = k == STMT_COPY ? PH_TABLE : PH_LPAREN;
    int depth = 0;
    auth_scan_t auth = {0};
    px_tok_t t, loc = {0};
    bool ssh = false;
    bool has_region = false; /* a REGION word after the location: the client chose one */

    while (px_lex_next(lx, &t) != PX_TOK_EOF && t.kind != PX_TOK_SEMI) {
        if (ph != PH_DONE && ph != PH_FAILED) {
            ph = step(s, ph, &t, &depth);
            if (ph == PH_DONE) {
                loc = t;
                continue;
            }
        } else if (ph == PH_DONE && px_tok_is(s, &t, "ssh")) {
            ssh = true;
        } else if (ph == PH_DONE && px_tok_is(s, &t, "region")) {
            has_region = true;
        }
        auth_feed(c, k, &auth, &t);
        if (c->refused)
            return;
    }
    if (auth.client_keys && !c->o->allow_client_credentials) {
        refuse(c, "42501",
               "%s refused: rsproxy does not allow statements that carry their own AWS "
               "credentials (allow_client_credentials = false)",
               kind_name(k));
        return;
    }
    if (ph != PH_DONE || c->policy_only)
        return;

    char v[VALUE_MAX];
    size_t vn = px_tok_text_value(s, &loc, v, sizeof(v));
    if (vn == (size_t)-1)
        return; /* far longer than any S3 URL: Redshift rejects it */
    bool embedded;
    loc_class_t cls = classify(v, vn, &embedded);
    if (embedded) {
        refuse(c, "22023",
               "%s refused: the S3 URL embeds AWS credentials (s3://KEY:SECRET@bucket/...); "
               "write an authorization clause instead, or none to use rsproxy's",
               kind_name(k));
        return;
    }
    if (cls == LOC_OTHER || ssh)
        return; /* emr://, dynamodb://, SSH manifests: not ours to authorize */
    bool inject = !auth.has_auth && have_injection(c);
    if (!auth.has_auth && !inject)
        return; /* nothing to add: Redshift refuses the statement itself */
    /* A location resolved under tempdir lives in the tempdir bucket, whose region the operator
     * configured; the client's own REGION (it may know better) is never doubled. */
    const char *region = c->o->tempdir_region;
    bool add_region = cls == LOC_RELATIVE && region && *region && !has_region && tempdir_prefix(c);
    /*
     * The inserted clauses go between the location and whatever follows it, and must stay
     * clauses of their own: "default" before a word byte would fuse into one word ('...'CSV is
     * legal SQL, so a space is added), and a closing quote before a quote or a
     * newline-and-quote would turn the inserted literal and the client's next one into a single
     * constant. The second can only follow a dollar-quoted location and is a syntax error for
     * Redshift anyway: nothing is inserted then, Redshift reports the statement.
     */
    bool space_after = false;
    if (inject || add_region) {
        bool ends_in_word = !add_region && injection_ends_in_word(c);
        if (ends_in_word) {
            space_after = loc.end < c->n && px_lex_word_char((unsigned char)s[loc.end]);
        } else if (px_lex_quote_fuses(s, c->n, loc.end)) {
            if (inject)
                return; /* unauthorized and left so: no location edit either */
            add_region = false;
        }
    }

    size_t ed_a = 0, ed_b = 0, repl_len = 0;
    const char *repl = NULL;
    /* A relative location with a tempdir is either moved under it (repl = the prefix) or
     * refused here, so add_region still holds only for a location now under tempdir. */
    if (!plan_location(c, k, &loc, v, vn, cls, &ed_a, &ed_b, &repl, &repl_len))
        return;
    if (!repl && !inject)
        return;
    emitter_t *e = &c->em;
    if (repl) {
        em_copy_to(e, ed_a);
        if (loc.kind == PX_TOK_DOLLAR)
            em_put(e, repl, repl_len);
        else
            em_put_escaped(e, repl, repl_len);
        e->copied = ed_b;
    }
    if (inject || add_region) {
        em_copy_to(e, loc.end);
        if (inject) {
            emit_injection(c);
            c->keys_written = c->o->forward_keys && c->o->forward_keys->access_key_id &&
                              *c->o->forward_keys->access_key_id;
        }
        if (add_region) {
            em_put_cstr(e, " REGION '");
            em_put_escaped(e, region, strlen(region));
            em_put_cstr(e, "'");
        }
        if (space_after)
            em_put(e, " ", 1);
    }
    e->edits++;
    c->res->statements_rewritten++;
}

/* Skips the rest of a statement that is neither COPY nor UNLOAD. */
static void skip_statement(px_lex_t *lx)
{
    px_tok_t t;
    while (px_lex_next(lx, &t) != PX_TOK_EOF && t.kind != PX_TOK_SEMI)
        ;
}

/* One pass over the whole text. Returns whether the text is ambiguous (see px_rewrite_sql). */
static bool read_text(ctx_t *c, bool std_strings)
{
    px_lex_t lx;
    px_lex_init(&lx, c->s, c->n);
    lx.std_strings = std_strings;
    px_tok_t t;
    while (!c->refused && px_lex_next(&lx, &t) != PX_TOK_EOF) {
        if (t.kind == PX_TOK_SEMI)
            continue;
        if (px_tok_is(c->s, &t, "copy"))
            rewrite_statement(c, &lx, STMT_COPY);
        else if (px_tok_is(c->s, &t, "unload"))
            rewrite_statement(c, &lx, STMT_UNLOAD);
        else
            skip_statement(&lx);
    }
    return lx.saw_quote_escape;
}

int px_rewrite_sql(const px_rewrite_opts_t *opts, const char *sql, size_t n, px_dbuf_t *out,
                   px_rewrite_result_t *res)
{
    memset(res, 0, sizeof(*res));
    ctx_t c = {
        .o = opts,
        .s = sql,
        .n = n,
        .res = res,
        .em = {.s = sql, .out = out, .want = out->len},
        .roles_policy = opts->allowed_iam_roles && opts->allowed_iam_roles->n > 0,
    };
    const size_t base_len = out->len;
    const bool base_failed = out->failed;
    bool ambiguous = read_text(&c, false);
    int rc = 0;
    bool changed = false;
    if (!c.refused && c.em.edits > 0) {
        em_copy_to(&c.em, n);
        if (!out->failed)
            changed = true;
        else if (c.em.want > out->limit)
            refuse(&c, "54000", "the rewritten statement would exceed rsproxy's size limit");
        else
            rc = UV_ENOMEM;
    }
    /*
     * A plain literal with \' reads differently under standard strings, where the backslash is
     * an ordinary character and the quote ends the literal. Redshift uses the escape reading
     * (PostgreSQL 8.0 rules, reference §7.3), but nothing here should depend on that being true
     * in every Redshift version: the policy must hold under both readings, and the proxy's own
     * keys must never be placed where the other reading would put them inside a client's
     * literal (from which an INSERT or an error message could hand them back).
     *
     * The second reading checks the text that will actually be sent: an insertion made under
     * the first reading can shift how the second one pairs quotes further on. The inserted
     * text adds no \' of its own, so the output is ambiguous exactly when the input is.
     */
    if (ambiguous && rc == 0 && !c.refused) {
        if (c.keys_written) {
            refuse(&c, "22023",
                   "COPY/UNLOAD refused: with forwarded credentials rsproxy does not rewrite a "
                   "text whose string literals contain \\' escapes; write quotes as '' instead");
        } else if (c.roles_policy || !opts->allow_client_credentials) {
            c.policy_only = true;
            if (changed) {
                c.s = (const char *)out->data + base_len;
                c.n = out->len - base_len;
            }
            read_text(&c, true);
        }
    }
    if (changed && !c.refused) {
        res->verdict = PX_REWRITE_CHANGED;
        return 0;
    }
    /* UNCHANGED, REFUSED or failed: leave out as it was. What was written may hold forwarded
     * keys, so wipe it rather than merely forgetting it. */
    if (out->data && out->len > base_len)
        px_wipe(out->data + base_len, out->len - base_len);
    out->len = base_len;
    out->failed = base_failed;
    res->statements_rewritten = 0; /* nothing rewritten is sent */
    if (rc != 0)
        memset(res, 0, sizeof(*res));
    else if (!c.refused)
        res->verdict = PX_REWRITE_UNCHANGED;
    return rc;
}
