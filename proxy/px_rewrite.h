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
    const char *iam_role; /* [s3] aws_iam_role, validated ARN or chain; "" or NULL: none */
    const char *tempdir;  /* [s3] tempdir as s3://bucket/prefix/ without embedded keys; "" none */
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
    char sqlstate[6];  /* "42501" for policy, "54000" for too large, "42601" for unparseable */
    char message[256]; /* for the client's ErrorResponse; never contains a secret */
} px_rewrite_result_t;

/* What a message body starts with, after whitespace and comments. */
typedef enum px_rewrite_lead_kind {
    PX_LEAD_OTHER = 0, /* first keyword is neither COPY nor UNLOAD */
    PX_LEAD_COPY_UNLOAD,
    PX_LEAD_MORE, /* not decidable from the bytes given and the text is not complete */
} px_rewrite_lead_kind_t;

/* Looks only at leading whitespace, comments and the first keyword. `complete` says whether
 * [sql, sql+n) is the whole text. Never returns PX_LEAD_MORE when complete. */
px_rewrite_lead_kind_t px_rewrite_lead(const char *sql, size_t n, bool complete);

/* A fast test for whole texts already in memory: false when no statement in it can be a COPY or
 * UNLOAD (no "copy"/"unload" letters at all), so the lexer need not run. */
bool px_rewrite_maybe(const char *sql, size_t n);

/* Rewrites the text. Returns 0 (see res->verdict) or UV_ENOMEM. */
int px_rewrite_sql(const px_rewrite_opts_t *opts, const char *sql, size_t n, px_dbuf_t *out,
                   px_rewrite_result_t *res) PX_MUSTCHECK;

#endif
