/*
 * AWS Signature Version 4 for header-signed requests (reference/redshift-aws.md §6): canonical
 * URI, query and headers, string to sign, the HMAC key chain and the Authorization header.
 *
 * Pure: no clock, no logging, no I/O. The caller supplies the signing time and gets back the
 * headers to add; the secret key only ever lives in local buffers that are wiped before return.
 * Not here: presigned URLs (query signing), chunked/streaming payload signing and SigV4a. The
 * canonicalisation follows botocore (SigV4Auth and S3SigV4Auth) byte for byte, which the
 * integration test integration.sigv4_botocore checks on hundreds of generated requests.
 */
#include "auth_sigv4.h"

#include "px_alloc.h"
#include "px_err.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SV4_ALGORITHM "AWS4-HMAC-SHA256"
/* AWS secret keys are 40 characters; the bound only keeps "AWS4" + secret on the stack. */
#define SV4_MAX_SECRET 1024
/* Year 9999-12-31T23:59:59Z: X-Amz-Date has exactly four year digits. */
#define SV4_MAX_TIME INT64_C(253402300799)
#define SV4_REDACTED "<redacted>"

/*
 * Headers that are never signed. user-agent and expect as botocore does (x-amzn-trace-id too);
 * transfer-encoding is hop-by-hop and proxies may rewrite it (smithy-rs and the AWS CRT skip it).
 * Signing any of them would only make a correct request fail verification after a rewrite.
 */
static const char *const sv4_unsigned_headers[] = {"expect", "user-agent", "x-amzn-trace-id",
                                                   "transfer-encoding"};

typedef struct sv4_hdr {
    const char *name; /* as given; compared and written lower-cased */
    size_t nlen;
    const char *value; /* as given; trimmed and collapsed when written */
    size_t vlen;
    size_t order; /* position in the request, so duplicates keep their order */
    bool secret;  /* the session token: redacted in the debugging copy */
} sv4_hdr_t;

typedef struct sv4_param {
    const uint8_t *key; /* already re-encoded */
    size_t klen;
    const uint8_t *val;
    size_t vlen;
} sv4_param_t;

/* RFC 3986 unreserved characters: the only bytes SigV4 leaves unencoded (besides '/' in paths).
 * Everything else, reserved characters included, becomes %XX with upper-case hex. */
static bool sv4_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int sv4_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void sv4_encode_byte(px_dbuf_t *out, uint8_t c, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    if (sv4_unreserved(c) || (keep_slash && c == '/')) {
        px_dbuf_put_u8(out, c);
        return;
    }
    uint8_t esc[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
    px_dbuf_put(out, esc, 3);
}

void auth_uri_encode(px_dbuf_t *out, const char *s, size_t n, bool keep_slash)
{
    /* Runs of unreserved bytes are copied in one put; most paths and values are all safe. */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (sv4_unreserved(c) || (keep_slash && c == '/'))
            continue;
        px_dbuf_put(out, s + run, i - run);
        sv4_encode_byte(out, c, keep_slash);
        run = i + 1;
    }
    px_dbuf_put(out, s + run, n - run);
}

/* Percent-decodes s[0..n) and re-encodes every byte with the AWS rule, in one pass. A '%' that
 * is not followed by two hex digits makes the query ambiguous, so it is refused. */
static int sv4_reencode(px_dbuf_t *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '%') {
            if (n - i < 3)
                return AUTH_E_PROTO;
            int hi = sv4_hexval((uint8_t)s[i + 1]), lo = sv4_hexval((uint8_t)s[i + 2]);
            if (hi < 0 || lo < 0)
                return AUTH_E_PROTO;
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        }
        sv4_encode_byte(out, c, false);
    }
    return 0;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days). */
static void sv4_civil(int64_t days, int *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static void sv4_put_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void auth_amz_date(int64_t t, char out[17])
{
    /* Clamped rather than failing: auth_sigv4_sign rejects out-of-range times before use. */
    if (t < 0)
        t = 0;
    if (t > SV4_MAX_TIME)
        t = SV4_MAX_TIME;
    int64_t days = t / 86400, secs = t % 86400;
    int y, m, d;
    sv4_civil(days, &y, &m, &d);
    sv4_put_digits(out, y, 4);
    sv4_put_digits(out + 4, m, 2);
    sv4_put_digits(out + 6, d, 2);
    out[8] = 'T';
    sv4_put_digits(out + 9, (int)(secs / 3600), 2);
    sv4_put_digits(out + 11, (int)(secs / 60 % 60), 2);
    sv4_put_digits(out + 13, (int)(secs % 60), 2);
    out[15] = 'Z';
    out[16] = '\0';
}

/* RFC 9110 token characters: header names and methods. */
static bool sv4_tchar(uint8_t c)
{
    if (sv4_unreserved(c))
        return true;
    return c != 0 && strchr("!#$%&'*+^`|", c) != NULL;
}

static bool sv4_is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!sv4_tchar((uint8_t)s[i]))
            return false;
    return true;
}

/* Field values: visible ASCII, SP, HTAB and obs-text. CR and LF would let a value smuggle
 * another header (and obsolete line folding is not accepted by AWS), so they are refused. */
static bool sv4_valid_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* A scope component (region, service) or access key: printable ASCII, no '/' (the scope
 * separator), no ',' or whitespace (the Authorization syntax). */
static bool sv4_valid_scope_part(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        uint8_t c = (uint8_t)*s;
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == ',')
            return false;
    }
    return true;
}

static bool sv4_name_is(const char *name, size_t nlen, const char *lower)
{
    return px_ascii_ieq(name, nlen, lower);
}

/* Header order: lower-cased name, byte by byte (a prefix sorts first), then position in the
 * request. qsort is not stable, so the position is what keeps duplicates in the order the
 * caller gave them, which the joined value "v1,v2" depends on. */
static int sv4_hdr_cmp(const void *pa, const void *pb)
{
    const sv4_hdr_t *a = pa, *b = pb;
    size_t n = PX_MIN(a->nlen, b->nlen);
    for (size_t i = 0; i < n; i++) {
        uint8_t x = (uint8_t)px_ascii_lower(a->name[i]), y = (uint8_t)px_ascii_lower(b->name[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    if (a->nlen != b->nlen)
        return a->nlen < b->nlen ? -1 : 1;
    return a->order < b->order ? -1 : (a->order > b->order);
}

static int sv4_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, PX_MIN(an, bn));
    if (c)
        return c;
    return an < bn ? -1 : (an > bn);
}

/* Sorted by encoded key, then encoded value, as pairs: "a" sorts before "a-b" whatever the
 * values, which comparing the joined "key=value" strings would get wrong. */
static int sv4_param_cmp(const void *pa, const void *pb)
{
    const sv4_param_t *a = pa, *b = pb;
    int c = sv4_bytes_cmp(a->key, a->klen, b->key, b->klen);
    return c ? c : sv4_bytes_cmp(a->val, a->vlen, b->val, b->vlen);
}

/* RFC 3986 pchar plus '/', with every '%' starting a valid escape: what an S3 path that was
 * encoded once looks like. S3 signs it exactly as sent, so anything else is a caller bug. */
static bool sv4_valid_s3_path(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c == '%') {
            if (n - i < 3 || sv4_hexval((uint8_t)p[i + 1]) < 0 || sv4_hexval((uint8_t)p[i + 2]) < 0)
                return false;
            i += 2;
            continue;
        }
        if (sv4_unreserved(c) || c == '/' || c == ':' || c == '@')
            continue;
        if (c != 0 && strchr("!$&'()*+,;=", c))
            continue;
        return false;
    }
    return true;
}

/* Any other path: the bytes are encoded again, so only what cannot be part of a request
 * target at all is refused (controls, and '?'/'#' that would start a query or fragment). */
static bool sv4_valid_path(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c < 0x20 || c == 0x7f || c == '?' || c == '#')
            return false;
    }
    return true;
}

/*
 * Non-S3 canonical URI, as botocore's normalize_url_path + quote(safe='/~'): empty segments
 * and "." are dropped, ".." pops, the leading '/' stays, a trailing '/' stays only when a
 * segment is left ("/a/b/" -> "/a/b/", "/a/.." -> "/"), then every byte is encoded again.
 */
static int sv4_canonical_path(px_dbuf_t *dst, const char *path, size_t len)
{
    size_t nseg = 1;
    for (size_t i = 0; i < len; i++)
        nseg += path[i] == '/';
    struct {
        const char *p;
        size_t n;
    } *seg = px_malloc(nseg * sizeof(*seg));
    if (!seg)
        return UV_ENOMEM;
    size_t top = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        const char *s = path + start;
        size_t n = i - start;
        start = i + 1;
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            if (top)
                top--;
            continue;
        }
        seg[top].p = s;
        seg[top].n = n;
        top++;
    }
    px_dbuf_put_u8(dst, '/');
    for (size_t i = 0; i < top; i++) {
        if (i)
            px_dbuf_put_u8(dst, '/');
        auth_uri_encode(dst, seg[i].p, seg[i].n, true);
    }
    if (top && path[len - 1] == '/')
        px_dbuf_put_u8(dst, '/');
    px_free(seg);
    return 0;
}

/* Canonical query string from the raw query. Empty pieces ("a=1&&b=2", a trailing '&') are
 * refused: signers disagree on them (botocore keeps "=", others drop them), so the service's
 * view of such a request is unpredictable. */
static int sv4_canonical_query(px_dbuf_t *dst, const char *q)
{
    if (!q || !*q)
        return 0;
    size_t qlen = strlen(q), n = 1;
    for (size_t i = 0; i < qlen; i++)
        n += q[i] == '&';
    sv4_param_t *prm = px_calloc(n, sizeof(*prm));
    size_t(*off)[2] = px_calloc(n, sizeof(*off));
    px_dbuf_t enc;
    px_dbuf_init(&enc, 0);
    int rc = 0;
    if (!prm || !off) {
        rc = UV_ENOMEM;
        goto out;
    }
    /* First pass: encode every key and value into one buffer, remembering offsets (the buffer
     * may move while it grows). Second pass: turn offsets into pointers, sort, write. */
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= qlen; i++) {
        if (i < qlen && q[i] != '&')
            continue;
        const char *s = q + start;
        size_t len = i - start;
        start = i + 1;
        if (len == 0) {
            rc = AUTH_E_PROTO;
            goto out;
        }
        const char *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        off[k][0] = enc.len;
        if ((rc = sv4_reencode(&enc, s, klen)) != 0)
            goto out;
        prm[k].klen = enc.len - off[k][0];
        off[k][1] = enc.len;
        if (eq && (rc = sv4_reencode(&enc, eq + 1, len - klen - 1)) != 0)
            goto out;
        prm[k].vlen = enc.len - off[k][1];
        k++;
    }
    if (enc.failed) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        prm[i].key = enc.data + off[i][0];
        prm[i].val = enc.data + off[i][1];
    }
    qsort(prm, n, sizeof(*prm), sv4_param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            px_dbuf_put_u8(dst, '&');
        px_dbuf_put(dst, prm[i].key, prm[i].klen);
        px_dbuf_put_u8(dst, '=');
        px_dbuf_put(dst, prm[i].val, prm[i].vlen);
    }
out:
    px_dbuf_free(&enc);
    px_free(off);
    px_free(prm);
    return rc;
}

/* Trimall: leading and trailing SP/HTAB dropped, inner runs collapsed to one space. */
static void sv4_put_trimmed(px_dbuf_t *dst, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (n > i && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    bool space = false;
    for (; i < n; i++) {
        if (v[i] == ' ' || v[i] == '\t') {
            space = true;
            continue;
        }
        if (space)
            px_dbuf_put_u8(dst, ' ');
        space = false;
        px_dbuf_put_u8(dst, (uint8_t)v[i]);
    }
}

static void sv4_put_lower(px_dbuf_t *dst, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        px_dbuf_put_u8(dst, (uint8_t)px_ascii_lower(s[i]));
}

static bool sv4_same_name(const sv4_hdr_t *a, const sv4_hdr_t *b)
{
    return a->nlen == b->nlen && px_ascii_ieq(a->name, a->nlen, b->name);
}

/* The header block ("name:v1,v2\n" per distinct name, sorted) and, into `signed_hdrs`, the
 * ';'-joined names. `redact` writes the session token as a placeholder (debugging copy). */
static void sv4_put_headers(px_dbuf_t *dst, px_dbuf_t *signed_hdrs, const sv4_hdr_t *h, size_t n,
                            bool redact)
{
    for (size_t i = 0; i < n; i++) {
        bool first = i == 0 || !sv4_same_name(&h[i - 1], &h[i]);
        if (first) {
            if (i)
                px_dbuf_put_u8(dst, '\n');
            sv4_put_lower(dst, h[i].name, h[i].nlen);
            px_dbuf_put_u8(dst, ':');
            if (signed_hdrs) {
                if (i)
                    px_dbuf_put_u8(signed_hdrs, ';');
                sv4_put_lower(signed_hdrs, h[i].name, h[i].nlen);
            }
        } else {
            px_dbuf_put_u8(dst, ',');
        }
        if (redact && h[i].secret)
            px_dbuf_put_cstr(dst, SV4_REDACTED);
        else
            sv4_put_trimmed(dst, h[i].value, h[i].vlen);
    }
    px_dbuf_put_u8(dst, '\n');
}

/* Everything a canonical request needs, computed once and written twice (real and redacted). */
typedef struct sv4_parts {
    px_dbuf_t uri;
    px_dbuf_t query;
    px_dbuf_t signed_hdrs;
    sv4_hdr_t *hdrs;
    size_t nhdrs;
    const char *method;
    char payload_hash[SHA256_DIGEST_LENGTH * 2 + 1];
    const char *payload; /* payload_hash or the caller's literal */
} sv4_parts_t;

/* CanonicalRequest = Method \n URI \n Query \n Headers (each "name:value\n") \n SignedHeaders
 * \n PayloadHash. The blank line after the headers comes from the header block's own final
 * newline followed by the separator. */
static void sv4_put_canonical(px_dbuf_t *dst, sv4_parts_t *p, bool redact)
{
    px_dbuf_put_cstr(dst, p->method);
    px_dbuf_put_u8(dst, '\n');
    px_dbuf_put(dst, p->uri.data, p->uri.len);
    px_dbuf_put_u8(dst, '\n');
    px_dbuf_put(dst, p->query.data, p->query.len);
    px_dbuf_put_u8(dst, '\n');
    /* The signed-header list is the same both times; build it on the first (real) pass. */
    sv4_put_headers(dst, redact ? NULL : &p->signed_hdrs, p->hdrs, p->nhdrs, redact);
    px_dbuf_put_u8(dst, '\n');
    px_dbuf_put(dst, p->signed_hdrs.data, p->signed_hdrs.len);
    px_dbuf_put_u8(dst, '\n');
    px_dbuf_put_cstr(dst, p->payload);
}

static bool sv4_hmac(const void *key, size_t keylen, const void *msg, size_t msglen,
                     uint8_t out[SHA256_DIGEST_LENGTH])
{
    unsigned int outlen = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &outlen) != NULL &&
           outlen == SHA256_DIGEST_LENGTH;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"),
 * then the signature over the string to sign. Every intermediate key is wiped. */
static int sv4_signature(const char *secret, const char *date8, const char *region,
                         const char *service, const px_dbuf_t *sts,
                         char sig_hex[SHA256_DIGEST_LENGTH * 2 + 1])
{
    uint8_t kbuf[4 + SV4_MAX_SECRET];
    uint8_t k1[SHA256_DIGEST_LENGTH], k2[SHA256_DIGEST_LENGTH], sig[SHA256_DIGEST_LENGTH];
    size_t slen = strlen(secret);
    memcpy(kbuf, "AWS4", 4);
    memcpy(kbuf + 4, secret, slen);
    bool ok = sv4_hmac(kbuf, 4 + slen, date8, 8, k1) &&
              sv4_hmac(k1, sizeof(k1), region, strlen(region), k2) &&
              sv4_hmac(k2, sizeof(k2), service, strlen(service), k1) &&
              sv4_hmac(k1, sizeof(k1), "aws4_request", 12, k2) &&
              sv4_hmac(k2, sizeof(k2), sts->data, sts->len, sig);
    if (ok)
        px_hex_encode(sig, sizeof(sig), sig_hex);
    OPENSSL_cleanse(kbuf, sizeof(kbuf));
    OPENSSL_cleanse(k1, sizeof(k1));
    OPENSSL_cleanse(k2, sizeof(k2));
    OPENSSL_cleanse(sig, sizeof(sig));
    /* HMAC() fails only when OpenSSL cannot allocate its context. */
    return ok ? 0 : UV_ENOMEM;
}

/* Checks the caller's headers and collects the ones to sign, plus the signer's own. */
static int sv4_collect_headers(const auth_sigv4_req_t *req, const auth_aws_keys_t *keys,
                               const char *amz_date, const char *payload, sv4_parts_t *p)
{
    bool token = keys->session_token && *keys->session_token;
    p->hdrs = px_calloc(req->nheaders + 3, sizeof(*p->hdrs));
    if (!p->hdrs)
        return UV_ENOMEM;
    bool host = false;
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const auth_http_header_t *h = &req->headers[i];
        if (!h->name || !h->value)
            return AUTH_E_PROTO;
        size_t nlen = strlen(h->name), vlen = strlen(h->value);
        if (!sv4_is_token(h->name, nlen) || !sv4_valid_value(h->value, vlen))
            return AUTH_E_PROTO;
        /* Headers the signer writes itself: a second copy from the caller would be sent
         * alongside ours and make the request ambiguous, so refuse it outright. */
        if (sv4_name_is(h->name, nlen, "authorization") ||
            sv4_name_is(h->name, nlen, "x-amz-date") ||
            (token && sv4_name_is(h->name, nlen, "x-amz-security-token")) ||
            (req->s3 && sv4_name_is(h->name, nlen, "x-amz-content-sha256")))
            return AUTH_E_PROTO;
        /* Outside S3 the header is not the signer's, but AWS (and botocore) take its value as
         * the payload hash line; a value that disagrees with the body would sign one payload
         * and announce another. */
        if (!req->s3 && sv4_name_is(h->name, nlen, "x-amz-content-sha256") &&
            strcmp(h->value, payload) != 0)
            return AUTH_E_PROTO;
        bool skip = false;
        for (size_t j = 0; j < PX_ARRAY_SIZE(sv4_unsigned_headers); j++)
            skip = skip || sv4_name_is(h->name, nlen, sv4_unsigned_headers[j]);
        if (skip)
            continue;
        host = host || sv4_name_is(h->name, nlen, "host");
        p->hdrs[n++] = (sv4_hdr_t){h->name, nlen, h->value, vlen, i, false};
    }
    if (!host)
        return AUTH_E_PROTO;
    size_t order = req->nheaders;
    p->hdrs[n++] = (sv4_hdr_t){"x-amz-date", 10, amz_date, 16, order++, false};
    if (token && req->sign_session_token)
        p->hdrs[n++] = (sv4_hdr_t){"x-amz-security-token",      20,      keys->session_token,
                                   strlen(keys->session_token), order++, true};
    if (req->s3)
        p->hdrs[n++] =
            (sv4_hdr_t){"x-amz-content-sha256", 20, payload, strlen(payload), order++, false};
    p->nhdrs = n;
    qsort(p->hdrs, n, sizeof(*p->hdrs), sv4_hdr_cmp);
    return 0;
}

/* A caller's payload hash travels in a header for S3 and in the canonical request always:
 * printable ASCII without spaces ("UNSIGNED-PAYLOAD", a hex digest, a STREAMING-* literal). */
static bool sv4_valid_payload_literal(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((uint8_t)*s <= 0x20 || (uint8_t)*s >= 0x7f)
            return false;
    return true;
}

/* Everything that can be checked before any work is done; see the input rules in
 * auth_sigv4.h. Refusing here means no partial output and no secret ever copied. */
static int sv4_check_request(const auth_sigv4_req_t *req, const auth_aws_keys_t *keys)
{
    if (!req->method || !sv4_is_token(req->method, strlen(req->method)))
        return AUTH_E_PROTO;
    if (!sv4_valid_scope_part(req->region) || !sv4_valid_scope_part(req->service))
        return AUTH_E_PROTO;
    if (!keys || !sv4_valid_scope_part(keys->access_key_id) || !keys->secret_access_key ||
        !*keys->secret_access_key || strlen(keys->secret_access_key) > SV4_MAX_SECRET)
        return AUTH_E_PROTO;
    if (keys->session_token && !sv4_valid_value(keys->session_token, strlen(keys->session_token)))
        return AUTH_E_PROTO;
    if (req->time_unix < 0 || req->time_unix > SV4_MAX_TIME)
        return AUTH_E_PROTO;
    if (!req->headers && req->nheaders)
        return AUTH_E_PROTO;
    if (!req->body && req->bodylen)
        return AUTH_E_PROTO;
    if (req->payload_hash && !sv4_valid_payload_literal(req->payload_hash))
        return AUTH_E_PROTO;
    const char *path = req->path ? req->path : "";
    size_t plen = strlen(path);
    if (plen && path[0] != '/')
        return AUTH_E_PROTO;
    if (req->s3 ? !sv4_valid_s3_path(path, plen) : !sv4_valid_path(path, plen))
        return AUTH_E_PROTO;
    return 0;
}

void auth_sigv4_out_free(auth_sigv4_out_t *out)
{
    if (!out)
        return;
    /* strings holds the session token and the signature: wipe before freeing. */
    px_dbuf_free_secret(&out->strings);
    px_dbuf_free(&out->canonical_request);
    px_dbuf_free(&out->string_to_sign);
    memset(out->add, 0, sizeof(out->add));
    out->nadd = 0;
}

int auth_sigv4_sign(const auth_sigv4_req_t *req, const auth_aws_keys_t *keys, auth_sigv4_out_t *out)
{
    assert(out);
    memset(out, 0, sizeof(*out));
    px_dbuf_init(&out->strings, 0);
    px_dbuf_init(&out->canonical_request, 0);
    px_dbuf_init(&out->string_to_sign, 0);
    if (!req)
        return AUTH_E_PROTO;

    sv4_parts_t p;
    memset(&p, 0, sizeof(p));
    px_dbuf_init(&p.uri, 0);
    px_dbuf_init(&p.query, 0);
    px_dbuf_init(&p.signed_hdrs, 0);
    px_dbuf_t creq; /* the real canonical request: holds the session token, so wiped */
    px_dbuf_init(&creq, 0);
    /* sig_hex is wiped at the end even though the signature is sent: until the request is
     * actually sent it is a credential for that request, and it costs nothing. */
    char amz_date[17], sig_hex[SHA256_DIGEST_LENGTH * 2 + 1];
    uint8_t digest[SHA256_DIGEST_LENGTH];
    char digest_hex[SHA256_DIGEST_LENGTH * 2 + 1];

    int rc = sv4_check_request(req, keys);
    if (rc)
        goto out;
    p.method = req->method;
    auth_amz_date(req->time_unix, amz_date);

    if (req->payload_hash) {
        p.payload = req->payload_hash;
    } else {
        SHA256(req->body ? req->body : (const uint8_t *)"", req->bodylen, digest);
        px_hex_encode(digest, sizeof(digest), p.payload_hash);
        p.payload = p.payload_hash;
    }

    const char *path = req->path ? req->path : "";
    size_t plen = strlen(path);
    if (plen == 0)
        px_dbuf_put_u8(&p.uri, '/');
    else if (req->s3)
        px_dbuf_put(&p.uri, path, plen); /* S3: the once-encoded path exactly as sent */
    else if ((rc = sv4_canonical_path(&p.uri, path, plen)) != 0)
        goto out;
    if ((rc = sv4_canonical_query(&p.query, req->query)) != 0)
        goto out;
    if ((rc = sv4_collect_headers(req, keys, amz_date, p.payload, &p)) != 0)
        goto out;

    /* The real canonical request is hashed and wiped; the copy handed back for tests and
     * debugging is identical except for the session token. */
    sv4_put_canonical(&creq, &p, false);
    sv4_put_canonical(&out->canonical_request, &p, true);
    if (creq.failed || p.uri.failed || p.query.failed || p.signed_hdrs.failed) {
        rc = UV_ENOMEM;
        goto out;
    }
    SHA256(creq.data, creq.len, digest);
    px_hex_encode(digest, sizeof(digest), digest_hex);

    /* String to sign: algorithm, time, scope, hash of the canonical request. */
    px_dbuf_t *sts = &out->string_to_sign;
    px_dbuf_printf(sts, SV4_ALGORITHM "\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date, amz_date,
                   req->region, req->service, digest_hex);
    if (sts->failed) {
        rc = UV_ENOMEM;
        goto out;
    }
    if ((rc = sv4_signature(keys->secret_access_key, amz_date, req->region, req->service, sts,
                            sig_hex)) != 0)
        goto out;

    /* All output strings go into one buffer; pointers are taken only once it stops growing. */
    px_dbuf_t *s = &out->strings;
    bool token = keys->session_token && *keys->session_token;
    size_t o_date = s->len;
    px_dbuf_put_str(s, amz_date);
    size_t o_token = s->len;
    if (token)
        px_dbuf_put_str(s, keys->session_token);
    size_t o_payload = s->len;
    if (req->s3)
        px_dbuf_put_str(s, p.payload);
    size_t o_auth = s->len;
    px_dbuf_printf(s, SV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=",
                   keys->access_key_id, amz_date, req->region, req->service);
    px_dbuf_put(s, p.signed_hdrs.data, p.signed_hdrs.len);
    px_dbuf_printf(s, ", Signature=%s", sig_hex);
    px_dbuf_put_u8(s, '\0');
    if (s->failed) {
        rc = UV_ENOMEM;
        goto out;
    }
    const char *base = (const char *)s->data;
    out->add[out->nadd++] = (auth_http_header_t){"X-Amz-Date", base + o_date};
    if (token)
        out->add[out->nadd++] = (auth_http_header_t){"X-Amz-Security-Token", base + o_token};
    if (req->s3)
        out->add[out->nadd++] = (auth_http_header_t){"X-Amz-Content-Sha256", base + o_payload};
    out->add[out->nadd++] = (auth_http_header_t){"Authorization", base + o_auth};
    rc = 0;

out:
    px_dbuf_free_secret(&creq);
    px_dbuf_free(&p.uri);
    px_dbuf_free(&p.query);
    px_dbuf_free(&p.signed_hdrs);
    px_free(p.hdrs);
    OPENSSL_cleanse(sig_hex, sizeof(sig_hex));
    if (rc) {
        /* Leave nothing half-built behind: the caller must not send a partial set. */
        auth_sigv4_out_free(out);
        px_dbuf_init(&out->strings, 0);
        px_dbuf_init(&out->canonical_request, 0);
        px_dbuf_init(&out->string_to_sign, 0);
    }
    return rc;
}
