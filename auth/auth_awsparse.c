/*
 * Pure parsers for what AWS sends back: timestamps, awsQuery XML (expat), JSON (jansson), error
 * bodies of both protocols, and the credential documents of STS, the container endpoint, IMDS
 * and credential_process; plus the helpers every AWS-facing file shares. expat and jansson are
 * well-kept Debian libraries with years of fuzzing behind them, which beats a hand-written
 * parser for bytes from the network; we still bound input size, depth and value length, refuse
 * DTDs outright, and wipe the documents' secrets (expat through a wiping allocator, jansson by
 * wiping secret values in place). No I/O, no clock, no logging.
 */
#include "auth_aws.h"

#include "px_alloc.h"
#include "px_err.h"

#include <expat.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* ---------------------------------------------------------------------------------------------
 * Services and errors
 */

static const struct {
    const char *signing, *env, *config;
} services[AUTH_SVC_COUNT] = {
    [AUTH_SVC_REDSHIFT] = {"redshift", "REDSHIFT", "redshift"},
    [AUTH_SVC_REDSHIFT_SERVERLESS] = {"redshift-serverless", "REDSHIFT_SERVERLESS",
                                      "redshift_serverless"},
    [AUTH_SVC_STS] = {"sts", "STS", "sts"},
    [AUTH_SVC_S3] = {"s3", "S3", "s3"},
};

const char *auth_aws_service_signing_name(auth_aws_service_t svc)
{
    return svc < AUTH_SVC_COUNT ? services[svc].signing : "";
}

const char *auth_aws_service_env_suffix(auth_aws_service_t svc)
{
    return svc < AUTH_SVC_COUNT ? services[svc].env : "";
}

const char *auth_aws_service_config_key(auth_aws_service_t svc)
{
    return svc < AUTH_SVC_COUNT ? services[svc].config : "";
}

void auth_aws_creds_clear(auth_aws_creds_t *c)
{
    if (!c)
        return;
    px_free(c->access_key_id);
    px_free_secret(c->secret_access_key);
    px_free_secret(c->session_token);
    memset(c, 0, sizeof(*c));
}

int auth_aws_creds_copy(auth_aws_creds_t *dst, const auth_aws_creds_t *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->expiration_ms = src->expiration_ms;
    if (src->access_key_id && !(dst->access_key_id = px_strdup(src->access_key_id)))
        goto fail;
    if (src->secret_access_key && !(dst->secret_access_key = px_strdup(src->secret_access_key)))
        goto fail;
    if (src->session_token && !(dst->session_token = px_strdup(src->session_token)))
        goto fail;
    return 0;
fail:
    auth_aws_creds_clear(dst);
    return UV_ENOMEM;
}

auth_aws_keys_t auth_aws_creds_keys(const auth_aws_creds_t *c)
{
    auth_aws_keys_t k = {
        .access_key_id = c->access_key_id,
        .secret_access_key = c->secret_access_key,
        .session_token = c->session_token,
    };
    return k;
}

/* Printable ASCII without spaces: what may go into an HTTP header or a signature unescaped. */
static bool is_token_text(const char *s, size_t minlen, size_t maxlen)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c <= 0x20 || c >= 0x7f || n >= maxlen)
            return false;
    }
    return n >= minlen;
}

int auth_aws_creds_validate(const auth_aws_creds_t *c, auth_aws_error_t *err)
{
    /* The values end up in HTTP headers (X-Amz-Security-Token, Authorization) and in COPY
     * statements: a CR, LF, quote-free check here is what keeps a hostile credential source from
     * injecting headers. Messages name the field, never its value. */
    if (!c->access_key_id || !is_token_text(c->access_key_id, 3, 256)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "AccessKeyId is missing or malformed");
        return AUTH_E_PARSE;
    }
    for (const char *p = c->access_key_id; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) {
            auth_aws_error_set(err, AUTH_E_PARSE, NULL, "AccessKeyId is malformed");
            return AUTH_E_PARSE;
        }
    }
    if (!c->secret_access_key || !is_token_text(c->secret_access_key, 1, 1024)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "SecretAccessKey is missing or malformed");
        return AUTH_E_PARSE;
    }
    if (c->session_token && !is_token_text(c->session_token, 1, 64 * 1024)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "session token is malformed");
        return AUTH_E_PARSE;
    }
    for (const char *p = c->secret_access_key; *p; p++) {
        if (*p == '\'' || *p == '\\') {
            auth_aws_error_set(err, AUTH_E_PARSE, NULL, "SecretAccessKey is malformed");
            return AUTH_E_PARSE;
        }
    }
    return 0;
}

void auth_aws_sanitize(char *dst, size_t cap, const char *src, size_t n)
{
    if (cap == 0)
        return;
    size_t o = 0;
    size_t i = 0;
    while (i < n && o + 1 < cap) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x20 && c < 0x7f) {
            dst[o++] = (char)c;
            i++;
            continue;
        }
        /* Keep well-formed multi-byte UTF-8 sequences whole (names in messages may be
         * non-ASCII); everything else, control characters included, becomes '?'. */
        size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        bool ok = len > 0 && i + len <= n && o + len < cap;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)src[i + k] & 0xc0) == 0x80;
        if (ok) {
            memcpy(dst + o, src + i, len);
            o += len;
            i += len;
        } else {
            dst[o++] = '?';
            i++;
        }
    }
    dst[o] = '\0';
}

void auth_aws_error_set(auth_aws_error_t *e, int code, const char *aws_code, const char *fmt, ...)
{
    memset(e, 0, sizeof(*e));
    e->code = code;
    if (aws_code)
        auth_aws_sanitize(e->aws_code, sizeof(e->aws_code), aws_code, strlen(aws_code));
    char tmp[sizeof(e->message)];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    auth_aws_sanitize(e->message, sizeof(e->message), tmp, PX_MIN((size_t)n, sizeof(tmp) - 1));
}

static bool in_list(const char *code, const char *const *list, size_t n)
{
    if (!code || !*code)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return true;
    return false;
}

bool auth_aws_code_is_throttle(const char *aws_code)
{
    /* botocore retries/standard.py, reference §6. */
    static const char *const codes[] = {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "IDPCommunicationError", /* STS web identity: documented as retryable */
    };
    return in_list(aws_code, codes, PX_ARRAY_SIZE(codes));
}

bool auth_aws_code_is_skew(const char *aws_code)
{
    static const char *const codes[] = {
        "RequestTimeTooSkewed",  "RequestExpired", "InvalidSignatureException",
        "SignatureDoesNotMatch", "AuthFailure",    "RequestInTheFuture",
    };
    return in_list(aws_code, codes, PX_ARRAY_SIZE(codes));
}

bool auth_aws_status_is_transient(int status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504 ||
           status == 509;
}

/* ---------------------------------------------------------------------------------------------
 * Time
 */

/* Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

/* Reads exactly `width` digits at s[*i]. */
static bool get_digits(const char *s, size_t n, size_t *i, int width, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < width; k++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[*i] - '0');
        (*i)++;
    }
    *out = v;
    return true;
}

static bool civil_to_ms(unsigned y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned sec,
                        unsigned ms, int64_t *out)
{
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 60)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    *out = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + ms;
    return true;
}

int auth_time_parse_iso8601(const char *s, size_t n, int64_t *out_ms)
{
    size_t i = 0;
    unsigned y, mo, d, h, mi, sec, ms = 0;
    if (!get_digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !get_digits(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || !get_digits(s, n, &i, 2, &d))
        return AUTH_E_PARSE;
    if (i >= n || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return AUTH_E_PARSE;
    i++;
    if (!get_digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !get_digits(s, n, &i, 2, &mi) ||
        i >= n || s[i++] != ':' || !get_digits(s, n, &i, 2, &sec))
        return AUTH_E_PARSE;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        i++;
        int digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (digits < 3)
                ms = ms * 10 + (unsigned)(s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || digits > 12)
            return AUTH_E_PARSE;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t offset_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1;
        i++;
        unsigned oh, om = 0;
        if (!get_digits(s, n, &i, 2, &oh))
            return AUTH_E_PARSE;
        if (i < n && s[i] == ':') {
            i++;
            if (!get_digits(s, n, &i, 2, &om))
                return AUTH_E_PARSE;
        } else if (i < n) {
            if (!get_digits(s, n, &i, 2, &om))
                return AUTH_E_PARSE;
        }
        if (oh > 23 || om > 59)
            return AUTH_E_PARSE;
        offset_min = sign * (int64_t)(oh * 60 + om);
    }
    if (i != n)
        return AUTH_E_PARSE;
    int64_t t;
    if (!civil_to_ms(y, mo, d, h, mi, sec, ms, &t))
        return AUTH_E_PARSE;
    t -= offset_min * 60000;
    if (t < 0)
        return AUTH_E_PARSE;
    *out_ms = t;
    return 0;
}

int auth_time_parse_http_date(const char *s, size_t n, int64_t *out_ms)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    /* "Sun, 06 Nov 1994 08:49:37 GMT": the weekday is not checked against the date. */
    size_t i = 0;
    while (i < n && s[i] != ',')
        i++;
    if (i > 9 || i >= n)
        return AUTH_E_PARSE;
    i++;
    if (i >= n || s[i++] != ' ')
        return AUTH_E_PARSE;
    unsigned d, y, h, mi, sec, mo = 0;
    if (!get_digits(s, n, &i, 2, &d) || i + 5 > n || s[i] != ' ')
        return AUTH_E_PARSE;
    i++;
    for (unsigned k = 0; k < 12; k++) {
        if (memcmp(s + i, months + 3 * k, 3) == 0)
            mo = k + 1;
    }
    if (mo == 0)
        return AUTH_E_PARSE;
    i += 3;
    if (s[i++] != ' ' || !get_digits(s, n, &i, 4, &y) || i >= n || s[i++] != ' ' ||
        !get_digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !get_digits(s, n, &i, 2, &mi) ||
        i >= n || s[i++] != ':' || !get_digits(s, n, &i, 2, &sec))
        return AUTH_E_PARSE;
    if (n - i != 4 || memcmp(s + i, " GMT", 4) != 0)
        return AUTH_E_PARSE;
    int64_t t;
    if (!civil_to_ms(y, mo, d, h, mi, sec, 0, &t))
        return AUTH_E_PARSE;
    *out_ms = t;
    return 0;
}

int auth_time_from_epoch(double seconds, int64_t *out_ms)
{
    /* 253402300800 is 10000-01-01T00:00:00Z. */
    if (!isfinite(seconds) || seconds < 0 || seconds >= 253402300800.0)
        return AUTH_E_PARSE;
    *out_ms = (int64_t)(seconds * 1000.0);
    return 0;
}

void auth_time_format_iso8601(int64_t ms, char out[21])
{
    int64_t z = (ms < 0 ? 0 : ms) / 1000;
    int64_t days = z / 86400;
    int64_t rem = z % 86400;
    /* civil_from_days (H. Hinnant) */
    days += 719468;
    int64_t era = days / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%04d-%02u-%02uT%02u:%02u:%02uZ", (int)(y % 10000), m % 100, d % 100,
             (unsigned)(rem / 3600) % 100, (unsigned)(rem % 3600 / 60), (unsigned)(rem % 60));
    memcpy(out, tmp, 20);
    out[20] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Wiping allocators for expat: its buffers hold whole response documents, which carry database
 * passwords and secret keys. A size header lets free() wipe what it releases. expat takes the
 * allocator per parser. jansson only has a process-wide one (json_set_alloc_funcs, which must
 * precede every other jansson call in the process, something a library cannot promise), so for
 * JSON we instead wipe secret string values in place before json_decref.
 */

typedef union wipe_hdr {
    size_t n;
    max_align_t align;
} wipe_hdr_t;

static void *wipe_malloc(size_t n)
{
    if (n > SIZE_MAX - sizeof(wipe_hdr_t))
        return NULL;
    wipe_hdr_t *h = px_malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->n = n;
    return h + 1;
}

static void wipe_free(void *p)
{
    if (!p)
        return;
    wipe_hdr_t *h = (wipe_hdr_t *)p - 1;
    px_wipe(h, sizeof(*h) + h->n);
    px_free(h);
}

static void *wipe_realloc(void *p, size_t n)
{
    if (!p)
        return wipe_malloc(n);
    wipe_hdr_t *h = (wipe_hdr_t *)p - 1;
    void *q = wipe_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, PX_MIN(n, h->n));
    wipe_free(p);
    return q;
}

/* Depth of [ and { outside strings; -1 when the text is not even lexically balanced enough. */
static int json_depth(const uint8_t *p, size_t n)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

json_t *auth__json_load(const uint8_t *p, size_t n)
{
    if (!p || n == 0 || n > AUTH_JSON_MAX_INPUT || json_depth(p, n) > AUTH_JSON_MAX_DEPTH)
        return NULL;
    json_error_t jerr;
    return json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &jerr);
}

/* ---------------------------------------------------------------------------------------------
 * XML extraction
 */

#define XML_MAX_FIELDS 32
#define XML_MAX_SEGS   12

typedef struct xml_seg {
    const char *s;
    size_t n;
} xml_seg_t;

typedef struct xml_ctx {
    XML_Parser parser;
    auth_xml_field_t *fields;
    size_t nfields;
    xml_seg_t segs[XML_MAX_FIELDS][XML_MAX_SEGS];
    int nsegs[XML_MAX_FIELDS];
    /* match[d]: bit f set when field f's first d segments equal the open elements 1..d. */
    uint32_t match[AUTH_XML_MAX_DEPTH + 1];
    int depth;
    uint32_t capture; /* fields the element being captured fills; 0 when not capturing */
    int capture_depth;
    px_dbuf_t text;
    int err; /* 0, AUTH_E_PARSE or UV_ENOMEM */
} xml_ctx_t;

static void xml_fail(xml_ctx_t *c, int err)
{
    if (!c->err)
        c->err = err;
    XML_StopParser(c->parser, XML_FALSE);
}

static const char *local_name(const XML_Char *name)
{
    const char *colon = strrchr(name, ':');
    return colon ? colon + 1 : name;
}

static void XMLCALL xml_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    xml_ctx_t *c = ud;
    PX_UNUSED(attrs);
    if (c->err)
        return;
    if (c->depth >= AUTH_XML_MAX_DEPTH) {
        xml_fail(c, AUTH_E_PARSE);
        return;
    }
    const char *ln = local_name(name);
    size_t lnn = strlen(ln);
    int d = ++c->depth;
    uint32_t m = 0;
    uint32_t prev = c->match[d - 1];
    for (size_t f = 0; f < c->nfields; f++) {
        if (!(prev & (1u << f)) || c->nsegs[f] < d)
            continue;
        const xml_seg_t *sg = &c->segs[f][d - 1];
        if ((sg->n == 1 && sg->s[0] == '*') || (sg->n == lnn && memcmp(sg->s, ln, lnn) == 0))
            m |= 1u << f;
    }
    c->match[d] = m;
    if (c->capture)
        return;
    for (size_t f = 0; f < c->nfields; f++) {
        if ((m & (1u << f)) && c->nsegs[f] == d && !c->fields[f].value)
            c->capture |= 1u << f;
    }
    if (c->capture) {
        c->capture_depth = d;
        px_dbuf_reset(&c->text);
    }
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
    xml_ctx_t *c = ud;
    PX_UNUSED(name);
    if (c->err)
        return;
    if (c->capture && c->depth == c->capture_depth) {
        const char *s = c->text.len ? (const char *)c->text.data : "";
        for (size_t f = 0; f < c->nfields; f++) {
            if (!(c->capture & (1u << f)))
                continue;
            c->fields[f].value = px_strndup(s, c->text.len);
            if (!c->fields[f].value) {
                xml_fail(c, UV_ENOMEM);
                return;
            }
        }
        c->capture = 0;
        px_wipe(c->text.data, c->text.cap);
        px_dbuf_reset(&c->text);
    }
    c->depth--;
}

static void XMLCALL xml_text(void *ud, const XML_Char *s, int len)
{
    xml_ctx_t *c = ud;
    if (c->err || !c->capture || c->depth != c->capture_depth || len <= 0)
        return;
    if (c->text.len + (size_t)len > AUTH_XML_MAX_VALUE) {
        xml_fail(c, AUTH_E_PARSE);
        return;
    }
    /* Values can be passwords: grow without leaving unwiped copies behind. */
    if (!auth__secret_append(&c->text, s, (size_t)len))
        xml_fail(c, UV_ENOMEM);
}

bool auth__secret_append(px_dbuf_t *b, const void *p, size_t n)
{
    if (b->failed)
        return false;
    if (n > b->limit || b->len > b->limit - n) {
        b->failed = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = PX_MAX(PX_MAX(b->cap * 2, (size_t)1024), b->len + n + 1);
        uint8_t *nd = px_malloc(cap);
        if (!nd) {
            b->failed = true;
            return false;
        }
        if (b->len)
            memcpy(nd, b->data, b->len);
        if (b->data) {
            px_wipe(b->data, b->cap);
            px_free(b->data);
        }
        b->data = nd;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static void XMLCALL xml_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                const XML_Char *pubid, int has_internal_subset)
{
    PX_UNUSED(name);
    PX_UNUSED(sysid);
    PX_UNUSED(pubid);
    PX_UNUSED(has_internal_subset);
    /* AWS never sends a DTD; refusing it removes entity expansion as a concern entirely. */
    xml_fail(ud, AUTH_E_PARSE);
}

static void XMLCALL xml_entity_decl(void *ud, const XML_Char *name, int is_param,
                                    const XML_Char *value, int value_length, const XML_Char *base,
                                    const XML_Char *sysid, const XML_Char *pubid,
                                    const XML_Char *notation)
{
    PX_UNUSED(name);
    PX_UNUSED(is_param);
    PX_UNUSED(value);
    PX_UNUSED(value_length);
    PX_UNUSED(base);
    PX_UNUSED(sysid);
    PX_UNUSED(pubid);
    PX_UNUSED(notation);
    xml_fail(ud, AUTH_E_PARSE);
}

void auth_xml_fields_free(auth_xml_field_t *fields, size_t nfields)
{
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].secret)
            px_free_secret(fields[i].value);
        else
            px_free(fields[i].value);
        fields[i].value = NULL;
    }
}

int auth_xml_extract(const uint8_t *xml, size_t n, auth_xml_field_t *fields, size_t nfields)
{
    for (size_t i = 0; i < nfields; i++)
        fields[i].value = NULL;
    if (nfields > XML_MAX_FIELDS || !xml || n == 0 || n > AUTH_XML_MAX_INPUT || n > INT32_MAX)
        return AUTH_E_PARSE;

    xml_ctx_t *c = px_calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->fields = fields;
    c->nfields = nfields;
    px_dbuf_init(&c->text, AUTH_XML_MAX_VALUE + 1);
    for (size_t f = 0; f < nfields; f++) {
        const char *p = fields[f].path;
        int k = 0;
        while (*p && k < XML_MAX_SEGS) {
            const char *e = strchr(p, '/');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            c->segs[f][k].s = p;
            c->segs[f][k].n = len;
            k++;
            p += len + (e ? 1 : 0);
        }
        c->nsegs[f] = k;
    }
    c->match[0] = nfields >= 32 ? UINT32_MAX : (1u << nfields) - 1;

    static const XML_Memory_Handling_Suite mem = {wipe_malloc, wipe_realloc, wipe_free};
    int rc = 0;
    c->parser = XML_ParserCreate_MM(NULL, &mem, NULL);
    if (!c->parser) {
        rc = UV_ENOMEM;
        goto out;
    }
    XML_SetUserData(c->parser, c);
    XML_SetElementHandler(c->parser, xml_start, xml_end);
    XML_SetCharacterDataHandler(c->parser, xml_text);
    XML_SetStartDoctypeDeclHandler(c->parser, xml_doctype);
    XML_SetEntityDeclHandler(c->parser, xml_entity_decl);
    if (XML_Parse(c->parser, (const char *)xml, (int)n, XML_TRUE) != XML_STATUS_OK && !c->err)
        c->err = XML_GetErrorCode(c->parser) == XML_ERROR_NO_MEMORY ? UV_ENOMEM : AUTH_E_PARSE;
    rc = c->err;
    XML_ParserFree(c->parser);
out:
    if (c->text.data)
        px_wipe(c->text.data, c->text.cap);
    px_dbuf_free(&c->text);
    px_free(c);
    if (rc)
        auth_xml_fields_free(fields, nfields);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Error bodies
 */

static void copy_text(char *dst, size_t cap, const char *src)
{
    if (src)
        auth_aws_sanitize(dst, cap, src, strlen(src));
}

/* Trims ASCII whitespace in place (XML text often carries indentation). */
static char *trim(char *s)
{
    if (!s)
        return s;
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

bool auth_parse_xml_error(const uint8_t *body, size_t n, auth_aws_error_t *err)
{
    enum { F_CODE, F_MSG, F_CODE2, F_MSG2, F_CODE3, F_MSG3, F_RID, F_RID2, F_RID3, F_N };
    auth_xml_field_t f[F_N] = {
        [F_CODE] = {.path = "ErrorResponse/Error/Code"},
        [F_MSG] = {.path = "ErrorResponse/Error/Message"},
        [F_CODE2] = {.path = "*/Errors/Error/Code"},
        [F_MSG2] = {.path = "*/Errors/Error/Message"},
        [F_CODE3] = {.path = "Error/Code"},
        [F_MSG3] = {.path = "Error/Message"},
        [F_RID] = {.path = "ErrorResponse/RequestId"},
        [F_RID2] = {.path = "*/RequestID"},
        [F_RID3] = {.path = "Error/RequestId"},
    };
    if (auth_xml_extract(body, n, f, F_N) != 0)
        return false;
    const char *code = f[F_CODE].value    ? f[F_CODE].value
                       : f[F_CODE2].value ? f[F_CODE2].value
                                          : f[F_CODE3].value;
    const char *msg = f[F_CODE].value    ? f[F_MSG].value
                      : f[F_CODE2].value ? f[F_MSG2].value
                                         : f[F_MSG3].value;
    const char *rid = f[F_RID].value    ? f[F_RID].value
                      : f[F_RID2].value ? f[F_RID2].value
                                        : f[F_RID3].value;
    bool found = false;
    char *tc = trim((char *)code);
    if (tc && *tc) {
        copy_text(err->aws_code, sizeof(err->aws_code), tc);
        copy_text(err->message, sizeof(err->message), msg ? trim((char *)msg) : "");
        found = true;
    }
    if (rid && !err->request_id[0])
        copy_text(err->request_id, sizeof(err->request_id), trim((char *)rid));
    auth_xml_fields_free(f, F_N);
    return found;
}

/* "ns#Code:extra" → "Code" into dst. */
static void error_code_from_type(char *dst, size_t cap, const char *t)
{
    const char *hash = strrchr(t, '#');
    if (hash)
        t = hash + 1;
    size_t len = strcspn(t, ":");
    auth_aws_sanitize(dst, cap, t, len);
}

bool auth_parse_json_error(const uint8_t *body, size_t n, const char *error_type_header,
                           auth_aws_error_t *err)
{
    json_t *root = auth__json_load(body, n);
    const char *type = NULL, *msg = NULL;
    if (root && json_is_object(root)) {
        static const char *const type_keys[] = {"__type", "code", "Code"};
        static const char *const msg_keys[] = {"message", "Message", "errorMessage"};
        for (size_t i = 0; i < PX_ARRAY_SIZE(type_keys) && !type; i++) {
            json_t *v = json_object_get(root, type_keys[i]);
            if (json_is_string(v) && json_string_length(v) > 0)
                type = json_string_value(v);
        }
        for (size_t i = 0; i < PX_ARRAY_SIZE(msg_keys) && !msg; i++) {
            json_t *v = json_object_get(root, msg_keys[i]);
            if (json_is_string(v))
                msg = json_string_value(v);
        }
    }
    if (!type && error_type_header && *error_type_header)
        type = error_type_header;
    bool found = false;
    if (type) {
        error_code_from_type(err->aws_code, sizeof(err->aws_code), type);
        found = err->aws_code[0] != '\0';
    }
    if (msg)
        copy_text(err->message, sizeof(err->message), msg);
    json_decref(root);
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * Credential documents
 */

void auth__json_wipe_string(json_t *v)
{
    if (json_is_string(v))
        px_wipe((char *)json_string_value(v), json_string_length(v));
}

static int json_take_str(json_t *obj, const char *key, bool required, char **out,
                         auth_aws_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!required)
            return 0;
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "credentials response has no %s", key);
        return AUTH_E_PARSE;
    }
    if (!json_is_string(v)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "credentials response: %s is not a string",
                           key);
        return AUTH_E_PARSE;
    }
    *out = px_strndup(json_string_value(v), json_string_length(v));
    /* The document's copy goes now rather than lingering in freed heap memory. */
    auth__json_wipe_string(v);
    if (!*out) {
        auth_aws_error_set(err, UV_ENOMEM, NULL, "out of memory");
        return UV_ENOMEM;
    }
    if (strlen(*out) != json_string_length(v)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "credentials response: %s has a NUL", key);
        return AUTH_E_PARSE;
    }
    return 0;
}

static int expiration_from_json(json_t *v, int64_t *out, auth_aws_error_t *err)
{
    if (json_is_string(v)) {
        if (auth_time_parse_iso8601(json_string_value(v), json_string_length(v), out) == 0)
            return 0;
    } else if (json_is_number(v)) {
        if (auth_time_from_epoch(json_number_value(v), out) == 0)
            return 0;
    }
    auth_aws_error_set(err, AUTH_E_PARSE, NULL, "credentials response: Expiration is malformed");
    return AUTH_E_PARSE;
}

int auth_parse_json_creds(const uint8_t *body, size_t n, auth_json_creds_kind_t kind,
                          auth_aws_creds_t *out, auth_aws_error_t *err)
{
    memset(out, 0, sizeof(*out));
    json_t *root = auth__json_load(body, n);
    int rc;
    if (!root || !json_is_object(root)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "credentials response is not a JSON object");
        rc = AUTH_E_PARSE;
        goto out;
    }
    if (kind == AUTH_JSON_CREDS_PROCESS) {
        json_t *ver = json_object_get(root, "Version");
        if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
            auth_aws_error_set(err, AUTH_E_PARSE, NULL,
                               "credential_process output must have \"Version\": 1");
            rc = AUTH_E_PARSE;
            goto out;
        }
    }
    if (kind == AUTH_JSON_CREDS_IMDS) {
        json_t *code = json_object_get(root, "Code");
        if (code && (!json_is_string(code) || strcmp(json_string_value(code), "Success") != 0)) {
            json_t *msg = json_object_get(root, "Message");
            char c[64] = "", m[256] = "";
            if (json_is_string(code))
                copy_text(c, sizeof(c), json_string_value(code));
            if (json_is_string(msg))
                copy_text(m, sizeof(m), json_string_value(msg));
            auth_aws_error_set(err, AUTH_E_AWS, c, "instance metadata credentials: %s %s", c, m);
            rc = AUTH_E_AWS;
            goto out;
        }
    }
    const char *token_key = kind == AUTH_JSON_CREDS_PROCESS ? "SessionToken" : "Token";
    if ((rc = json_take_str(root, "AccessKeyId", true, &out->access_key_id, err)) != 0 ||
        (rc = json_take_str(root, "SecretAccessKey", true, &out->secret_access_key, err)) != 0 ||
        (rc = json_take_str(root, token_key, kind != AUTH_JSON_CREDS_PROCESS, &out->session_token,
                            err)) != 0)
        goto out;
    if (out->session_token && !out->session_token[0]) {
        px_free_secret(out->session_token);
        out->session_token = NULL;
    }
    json_t *exp = json_object_get(root, "Expiration");
    if (exp && !json_is_null(exp)) {
        if ((rc = expiration_from_json(exp, &out->expiration_ms, err)) != 0)
            goto out;
    } else if (kind != AUTH_JSON_CREDS_PROCESS) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "credentials response has no Expiration");
        rc = AUTH_E_PARSE;
        goto out;
    }
    rc = auth_aws_creds_validate(out, err);
out:
    json_decref(root);
    if (rc)
        auth_aws_creds_clear(out);
    return rc;
}

int auth_parse_sts_creds(const uint8_t *body, size_t n, const char *op, auth_aws_creds_t *out,
                         auth_aws_error_t *err)
{
    memset(out, 0, sizeof(*out));
    char paths[4][128];
    static const char *const leaf[4] = {"AccessKeyId", "SecretAccessKey", "SessionToken",
                                        "Expiration"};
    auth_xml_field_t f[4];
    for (int i = 0; i < 4; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%sResponse/%sResult/Credentials/%s", op, op, leaf[i]);
        f[i].path = paths[i];
        f[i].secret = i == 1 || i == 2;
    }
    int rc = auth_xml_extract(body, n, f, 4);
    if (rc) {
        auth_aws_error_set(err, rc, NULL, "%s response is not well-formed XML", op);
        return rc;
    }
    if (!f[0].value || !f[1].value || !f[2].value || !f[3].value) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s response has no credentials", op);
        rc = AUTH_E_PARSE;
        goto out;
    }
    char *exp = trim(f[3].value);
    if (auth_time_parse_iso8601(exp, strlen(exp), &out->expiration_ms) != 0) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s response: Expiration is malformed", op);
        rc = AUTH_E_PARSE;
        goto out;
    }
    /* Whitespace around values is formatting, not content (AWS pretty-prints nothing, but
     * stand-ins and proxies might). Trim in place and move ownership. */
    char *v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = px_strdup(trim(f[i].value));
        if (!v[i]) {
            for (int k = 0; k < i; k++)
                px_free_secret(v[k]);
            auth_aws_error_set(err, UV_ENOMEM, NULL, "out of memory");
            rc = UV_ENOMEM;
            goto out;
        }
    }
    out->access_key_id = v[0];
    out->secret_access_key = v[1];
    out->session_token = v[2];
    rc = auth_aws_creds_validate(out, err);
out:
    auth_xml_fields_free(f, 4);
    if (rc)
        auth_aws_creds_clear(out);
    return rc;
}
