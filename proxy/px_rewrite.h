/*
 * COPY/UNLOAD rewriting (reference/redshift-aws.md §7-8): a pure function over the bytes of a
 * Query body or a Parse query string. A lexer that follows PostgreSQL/Redshift lexical rules
 * splits the text into statements; each COPY ... FROM <location> and UNLOAD (...) TO <location>
 * without an authorization clause gets IAM_ROLE '<role>' (or the proxy's forwarded temporary
 * keys); a location without a URL scheme is resolved under tempdir; s3a:// and s3n:// become
 * s3://. Everything else stays byte-identical. Policy (allowed roles, client credentials) can
 * refuse a statement, with SQLSTATE 42501.
 *
 * No I/O, no logging, no allocation outside `out`. The proxy calls px_rewrite_lead() on the first
 * bytes of a message to decide whether the message must be buffered and rewritten at all.
 *
 * Decisions (see also px_rewrite.c):
 * - Backslash escapes apply in every '...' literal, as in Redshift (PostgreSQL 8.0 rules). A
 *   text with a \' escape in a plain literal would read differently with standard strings; for
 *   it the policy is also checked under that reading, and forwarded keys are not injected (22023).
 * - A location whose first segment has a ':' (RFC 3986 scheme: "s3:/b/x", "C:\x") is not
 *   relative; s3://, s3a://, s3n:// are S3; anything else is left alone.
 * - A location URL with embedded keys (s3://AKID:SECRET@bucket/...) is refused (22023), never
 *   stripped: stripping would run the statement with other credentials than the client wrote.
 *   Only the tempdir's own embedded keys are stripped (they are the proxy's, reference §8.2).
 * - Non-S3 sources (emr://, dynamodb://, COPY ... SSH) get no injection and no location change,
 *   but the policy checks apply to every COPY and UNLOAD, recognised or not.
 * - A location resolved under tempdir gets REGION '<tempdir_region>' right after the
 *   location and the injected authorization, unless the statement already has a REGION word
 *   after its location (the client's own wins; two would be a syntax error).
 * - IAM_ROLE default passes allowed_iam_roles only when the list contains "default" (or the
 *   configured aws_iam_role is default); a client writing exactly the configured aws_iam_role
 *   always passes. Role ARNs compare exactly (case-sensitive).
 * - A statement left without authorization because nothing can be injected is left whole.
 * - allowed_iam_roles guards COPY and UNLOAD texts only: roles in CREATE EXTERNAL SCHEMA, in
 *   procedure bodies or in dynamic SQL are out of its reach (IAM and GRANT ASSUMEROLE are the
 *   real boundary).
 */
#ifndef PX_REWRITE_H
#define PX_REWRITE_H

#include "auth_sigv4.h"
#include "cfg.h"
#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct px_rewrite_opts {
    const char
        *iam_role; /* [s3] aws_iam_role: validated ARN, chain, or "default"; "" or NULL: none */
    const char *tempdir; /* [s3] tempdir (s3/s3a/s3n URL; embedded keys are dropped); "" none */
    /* [s3] tempdir_region (validated: letters, digits, '-'); "" or NULL: none. Added as
     * REGION '<r>' to a statement whose location was resolved under tempdir and that has no
     * REGION of its own; absolute locations are the client's and keep their region. */
    const char *tempdir_region;
    const cfg_strlist_t *allowed_iam_roles; /* NULL or empty: any client-written role passes */
    bool allow_client_credentials;          /* false: refuse statements carrying their own keys */
    const auth_aws_keys_t *forward_keys;    /* non-NULL: inject these keys instead of the role */
} px_rewrite_opts_t;

typedef enum px_rewrite_verdict {
    PX_REWRITE_UNCHANGED = 0, /* out untouched: forward the original bytes */
    PX_REWRITE_CHANGED,       /* out holds the complete new SQL text (no trailing NUL) */
    PX_REWRITE_REFUSED,       /* refuse: sqlstate and message say why */
} px_rewrite_verdict_t;

typedef struct px_rewrite_result {
    px_rewrite_verdict_t verdict;
    int statements_rewritten;
    /* "42501" for policy, "22023" for a location rsproxy will not rewrite (embedded keys, escape
     * sequences where it must edit), "54000" when the rewritten text exceeds out's limit; "" unless
     * REFUSED. */
    char sqlstate[6];
    char message[256]; /* for the client's ErrorResponse; never contains a secret */
} px_rewrite_result_t;

/* What a message body starts with, after whitespace and comments. */
typedef enum px_rewrite_lead_kind {
    PX_LEAD_OTHER = 0, /* first keyword is neither COPY nor UNLOAD */
    PX_LEAD_COPY_UNLOAD,
    PX_LEAD_MORE, /* not decidable from the bytes given and the text is not complete */
} px_rewrite_lead_kind_t;

/* Looks only at leading whitespace, comments, empty statements (';') and the first keyword.
 * `complete` says whether [sql, sql+n) is the whole text. Never returns PX_LEAD_MORE when
 * complete. Returns PX_LEAD_OTHER as soon as the first word cannot become COPY or UNLOAD.
 *
 * Caution: OTHER says nothing about later statements of a multi-statement Query
 * ("SELECT 1; COPY ..."). When policy keys are set (allowed_iam_roles, allow_client_credentials
 * = false), also check whole texts with px_rewrite_maybe() or px_rewrite_scan_feed(), or such a
 * COPY escapes both injection and policy. */
px_rewrite_lead_kind_t px_rewrite_lead(const char *sql, size_t n, bool complete);

/* A fast test for whole texts already in memory: false when no statement in it can be a COPY or
 * UNLOAD (no "copy"/"unload" letters at all, in any case), so the lexer need not run. */
bool px_rewrite_maybe(const char *sql, size_t n);

/* px_rewrite_maybe() over a text that arrives in pieces (a message relayed as it is read):
 * feed every piece in order; once it returns true it stays true. */
typedef struct px_rewrite_scan {
    char tail[5]; /* last bytes seen: a word may span two pieces */
    unsigned char ntail;
    bool hit;
} px_rewrite_scan_t;
void px_rewrite_scan_init(px_rewrite_scan_t *sc);
bool px_rewrite_scan_feed(px_rewrite_scan_t *sc, const char *p, size_t n);

/* Rewrites the text. Returns 0 (see res->verdict) or UV_ENOMEM. `out` is appended to only when
 * the verdict is CHANGED; otherwise its length is left as it was. With forward_keys, out holds
 * secrets: release it with px_dbuf_free_secret(). A rewritten text longer than out->limit is
 * REFUSED with 54000. */
int px_rewrite_sql(const px_rewrite_opts_t *opts, const char *sql, size_t n, px_dbuf_t *out,
                   px_rewrite_result_t *res) PX_MUSTCHECK;

#endif
