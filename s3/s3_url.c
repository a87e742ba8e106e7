/*
 * S3 URLs (s3://, s3a://, s3n://) with optional embedded credentials, IAM role ARNs, and the [s3]
 * section's config validation. Everything here is a pure function over bytes: no I/O, no logging,
 * no allocation (credentials are decoded into fixed buffers inside s3_url_t). Reasons for a
 * rejection are static strings, so no part of a URL, and in particular no embedded secret, can
 * reach an error message or a log line through this module.
 *
 * Bucket names follow S3's current naming rules (not the legacy us-east-1 rules); object keys are
 * kept exactly as written, without percent-decoding, because Redshift and S3 take the key bytes
 * of an s3:// URL literally. Only the credentials part (Hadoop's s3a://AKID:SECRET@bucket form) is
 * percent-decoded, as Hadoop requires a '/' in a secret key to be written %2F.
 */
#include "s3_url.h"
#include "px_err.h"

#include <string.h>
#include <uv.h>

/* Scheme as written, with its "://", and its length. */
static size_t scheme_len(const char *s, size_t n, s3_scheme_t *scheme)
{
    static const struct {
        const char *text;
        size_t len;
        s3_scheme_t scheme;
    } schemes[] = {
        {"s3://", 5, S3_SCHEME_S3},
        {"s3a://", 6, S3_SCHEME_S3A},
        {"s3n://", 6, S3_SCHEME_S3N},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(schemes); i++) {
        if (n < schemes[i].len)
            continue;
        bool eq = true;
        for (size_t j = 0; j < schemes[i].len && eq; j++)
            eq = px_ascii_lower(s[j]) == schemes[i].text[j];
        if (eq) {
            if (scheme)
                *scheme = schemes[i].scheme;
            return schemes[i].len;
        }
    }
    return 0;
}

bool s3_url_has_scheme(const char *s, size_t n)
{
    /* RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":". A relative reference
     * cannot have a ':' in its first segment (§4.2), so "s3:/b/x" or "C:\x" are not relative
     * locations: resolving such a typo under tempdir would write somewhere nobody meant. */
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '-' || c == '.')
            continue;
        return c == ':';
    }
    return false;
}

bool s3_url_is_s3(const char *s, size_t n)
{
    return scheme_len(s, n, NULL) > 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (cap bytes including the NUL). Control characters are
 * refused, decoded or not: no AWS key or secret contains one. */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return false;
            c = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= cap)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return o > 0;
}

/*
 * S3's bucket naming rules (docs: "Bucket naming rules", general purpose buckets): 3-63 of
 * [a-z0-9.-], starting and ending with a letter or digit, no "..", not shaped like an IPv4
 * address, and none of the reserved prefixes and suffixes.
 */
static const char *bucket_check(const char *b, size_t n)
{
    if (n < 3 || n > S3_BUCKET_MAX)
        return "bucket name must be 3 to 63 characters";
    size_t dots = 0;
    bool digits_and_dots = true;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return "bucket name may contain only lower-case letters, digits, '.' and '-'";
        if ((i == 0 || i == n - 1) && !alnum)
            return "bucket name must start and end with a letter or digit";
        if (c == '.') {
            dots++;
            if (b[i - 1] == '.')
                return "bucket name must not contain \"..\"";
        }
        if (!(c == '.' || (c >= '0' && c <= '9')))
            digits_and_dots = false;
    }
    if (digits_and_dots && dots == 3)
        return "bucket name must not be formatted as an IP address";
    static const char *const prefixes[] = {"xn--", "sthree-", "amzn-s3-demo-"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(prefixes); i++) {
        size_t pl = strlen(prefixes[i]);
        if (n >= pl && memcmp(b, prefixes[i], pl) == 0)
            return "bucket name uses a prefix S3 reserves";
    }
    static const char *const suffixes[] = {"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(suffixes); i++) {
        size_t sl = strlen(suffixes[i]);
        if (n >= sl && memcmp(b + n - sl, suffixes[i], sl) == 0)
            return "bucket name uses a suffix S3 reserves";
    }
    return NULL;
}

int s3_url_parse(const char *s, size_t n, s3_url_t *u, const char **why)
{
    const char *reason = NULL;
    memset(u, 0, sizeof(*u));
    size_t p = scheme_len(s, n, &u->scheme);
    if (p == 0) {
        reason = "not an s3://, s3a:// or s3n:// URL";
        goto fail;
    }
    /* The authority ends at the first '/'. A bucket name never contains '@', so any '@' in it
     * marks embedded credentials; the last one ends them (a secret may contain '@' if
     * percent-encoded, and an unencoded one would otherwise split the secret). */
    const char *auth = s + p;
    const char *slash = memchr(auth, '/', n - p);
    size_t auth_len = slash ? (size_t)(slash - auth) : n - p;
    const char *at = NULL;
    for (size_t i = auth_len; i > 0; i--) {
        if (auth[i - 1] == '@') {
            at = auth + i - 1;
            break;
        }
    }
    const char *bucket = auth;
    size_t bucket_len = auth_len;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        if (!colon) {
            reason = "embedded credentials must be written ACCESS_KEY_ID:SECRET@bucket";
            goto fail;
        }
        if (!pct_decode(auth, (size_t)(colon - auth), u->access_key_id, sizeof(u->access_key_id)) ||
            !pct_decode(colon + 1, (size_t)(at - colon - 1), u->secret_access_key,
                        sizeof(u->secret_access_key))) {
            reason = "embedded credentials are empty, too long or badly percent-encoded";
            goto fail;
        }
        u->has_credentials = true;
        bucket = at + 1;
        bucket_len = auth_len - (size_t)(bucket - auth);
    }
    reason = bucket_check(bucket, bucket_len);
    if (reason)
        goto fail;
    memcpy(u->bucket, bucket, bucket_len);
    u->bucket[bucket_len] = '\0';

    if (slash) {
        const char *key = slash + 1;
        size_t key_len = n - (size_t)(key - s);
        if (key_len > S3_KEY_MAX) {
            reason = "object key is longer than 1024 bytes";
            goto fail;
        }
        for (size_t i = 0; i < key_len; i++) {
            unsigned char c = (unsigned char)key[i];
            if (c < 0x20 || c == 0x7f) {
                reason = "object key contains a control character";
                goto fail;
            }
        }
        memcpy(u->key, key, key_len);
        u->key[key_len] = '\0';
        u->key_len = key_len;
    }
    if (why)
        *why = NULL;
    return 0;

fail:
    s3_url_wipe(u);
    if (why)
        *why = reason;
    return S3_E_URL;
}

void s3_url_wipe(s3_url_t *u)
{
    px_wipe(u, sizeof(*u));
}

void s3_url_format(const s3_url_t *u, px_dbuf_t *out)
{
    px_dbuf_put_cstr(out, "s3://");
    px_dbuf_put_cstr(out, u->bucket);
    px_dbuf_put_u8(out, '/');
    px_dbuf_put(out, u->key, u->key_len);
}

int s3_url_join(const char *tempdir, const char *rel, size_t rel_len, px_dbuf_t *out)
{
    s3_url_t u;
    if (!tempdir || s3_url_parse(tempdir, strlen(tempdir), &u, NULL) != 0)
        return S3_E_URL;
    size_t key_len = u.key_len;
    while (key_len > 0 && u.key[key_len - 1] == '/')
        key_len--;
    while (rel_len > 0 && rel[0] == '/') {
        rel++;
        rel_len--;
    }
    size_t total = key_len + (key_len ? 1 : 0) + rel_len;
    if (total > S3_KEY_MAX) {
        s3_url_wipe(&u);
        return S3_E_URL;
    }
    px_dbuf_put_cstr(out, "s3://");
    px_dbuf_put_cstr(out, u.bucket);
    px_dbuf_put_u8(out, '/');
    px_dbuf_put(out, u.key, key_len);
    if (key_len)
        px_dbuf_put_u8(out, '/');
    px_dbuf_put(out, rel, rel_len);
    s3_url_wipe(&u);
    return out->failed ? UV_ENOMEM : 0;
}

/* IAM's role-name characters ([\w+=,.@-]) without ',', which separates roles in a chain. */
static bool role_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '+' || c == '=' || c == '.' || c == '@' || c == '-';
}

static bool prefix_eq(const char *s, size_t n, size_t *p, const char *lit)
{
    size_t l = strlen(lit);
    if (n - *p < l || memcmp(s + *p, lit, l) != 0)
        return false;
    *p += l;
    return true;
}

bool s3_iam_role_arn_valid(const char *s, size_t n, const char **why)
{
    const char *reason = NULL;
    size_t p = 0;
    if (!prefix_eq(s, n, &p, "arn:")) {
        reason = "an IAM role ARN starts with arn:";
        goto fail;
    }
    /* Partition: aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, ... */
    if (!prefix_eq(s, n, &p, "aws")) {
        reason = "ARN partition must be aws, aws-cn, aws-us-gov or another aws-* partition";
        goto fail;
    }
    while (p < n && s[p] == '-') {
        size_t q = ++p;
        while (p < n && s[p] >= 'a' && s[p] <= 'z')
            p++;
        if (p == q) {
            reason = "ARN partition must be aws, aws-cn, aws-us-gov or another aws-* partition";
            goto fail;
        }
    }
    if (!prefix_eq(s, n, &p, ":iam::")) {
        reason = "ARN must name the iam service with an empty region (arn:aws:iam::)";
        goto fail;
    }
    for (int i = 0; i < 12; i++, p++) {
        if (p >= n || s[p] < '0' || s[p] > '9') {
            reason = "ARN account must be 12 digits";
            goto fail;
        }
    }
    if (!prefix_eq(s, n, &p, ":role/")) {
        reason = "ARN resource must be role/<name>";
        goto fail;
    }
    /* [path/]name. IAM allows any printable ASCII in a path; this accepts the name characters
     * in every segment, as config/ does, because the rewriter quotes a refused ARN back to the
     * client and a narrow alphabet keeps anything else out of that message. Empty segments
     * ("role//x") are refused. */
    size_t last_slash = p - 1;
    for (size_t i = p; i < n; i++)
        if (s[i] == '/')
            last_slash = i;
    if (last_slash + 1 - p > 512) {
        reason = "role path is longer than 512 characters";
        goto fail;
    }
    /* s[p - 1] is the '/' of ":role/", so an empty first segment is caught too. */
    for (size_t i = p; i <= last_slash; i++) {
        if (s[i] == '/' ? s[i - 1] == '/' : !role_name_char(s[i])) {
            reason = "role path may contain only letters, digits, + = . @ _ - and single '/'";
            goto fail;
        }
    }
    size_t name_len = n - last_slash - 1;
    if (name_len < 1 || name_len > 64) {
        reason = "role name must be 1 to 64 characters";
        goto fail;
    }
    for (size_t i = last_slash + 1; i < n; i++) {
        if (!role_name_char(s[i])) {
            reason = "role name may contain only letters, digits and + = . @ _ -";
            goto fail;
        }
    }
    if (why)
        *why = NULL;
    return true;
fail:
    if (why)
        *why = reason;
    return false;
}

int s3_iam_role_chain_check(const char *s, size_t n, const char **why)
{
    int count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        if (++count > S3_ROLE_CHAIN_MAX) {
            if (why)
                *why = "a role chain has at most 10 roles";
            return -1;
        }
        if (i == start) {
            if (why)
                *why = "empty role in the chain (roles are separated by single commas, no spaces)";
            return -1;
        }
        if (!s3_iam_role_arn_valid(s + start, i - start, why))
            return -1;
        start = i + 1;
    }
    if (why)
        *why = NULL;
    return count;
}

/*
 * Only the tempdir is judged here: config/ already checked every [s3] value for quotes,
 * backslashes and control characters (they go into SQL), the role ARNs and chains, the region's
 * characters and the aws_iam_role / forward_s3_credentials exclusion, and it calls this hook only
 * when those passed. What config/ cannot judge is S3 URL syntax.
 */
int s3_cfg_validate(cfg_t *c, cfg_report_t *r, void *arg)
{
    PX_UNUSED(arg);
    const char *tempdir = c->s3.tempdir ? c->s3.tempdir : "";
    if (!*tempdir)
        return 0;
    s3_url_t u;
    const char *why = NULL;
    int errors = 0;
    /* The messages never quote the value: it may embed a secret key. */
    if (s3_url_parse(tempdir, strlen(tempdir), &u, &why) != 0) {
        cfg_report_error(r, c, "s3", "tempdir", "is not a valid S3 URL: %s", why);
        return 1;
    }
    /* The prefix is pasted into SQL literals (relative COPY/UNLOAD locations, the COPY
     * emulation's staging paths); config/ refuses quotes already, this keeps it true even if
     * that check moves. */
    for (size_t i = 0; i < u.key_len; i++) {
        if (u.key[i] == '\'' || u.key[i] == '\\') {
            cfg_report_error(r, c, "s3", "tempdir",
                             "the prefix must not contain a quote or a backslash");
            errors++;
            break;
        }
    }
    if (u.key_len + 64 > S3_KEY_MAX) {
        cfg_report_error(r, c, "s3", "tempdir",
                         "the prefix is too long to leave room for object names (S3 keys are at "
                         "most 1024 bytes)");
        errors++;
    }
    s3_url_wipe(&u);
    return errors;
}
