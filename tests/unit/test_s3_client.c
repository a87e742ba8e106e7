/*
 * Loop tests for s3/'s client against a small fake S3 running in-process on the test's own loop
 * (tests/unit/test_auth_server.c): objects, ranged GETs, listings with EncodingType=url,
 * DeleteObjects with Content-MD5, multipart uploads, lifecycle configuration, and scripted
 * faults (SlowDown, 500s, RequestTimeTooSkewed, a wrong region, stalls, 200-with-<Error>).
 *
 * The fake re-signs every request it receives with auth/'s SigV4 signer from exactly the bytes
 * that arrived (method, path, query, the headers named in SignedHeaders, the payload hash) and
 * compares the Authorization header, so a request that was signed in one form and sent in
 * another (encoding, curl rewriting a path) fails here; the integration tests check the
 * signatures with an independent implementation (@smithy/signature-v4 in the S3 stand-in).
 */
#include "auth_http.h"
#include "auth_iam.h"
#include "auth_sigv4.h"
#include "cfg.h"
#include "px_alloc.h"
#include "px_b64.h"
#include "px_buf.h"
#include "px_err.h"
#include "px_test.h"
#include "s3_client.h"
#include "s3_lifecycle.h"
#include "s3_stage.h"
#include "test_auth_server.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#define BUCKET "rsproxy-test"
#define AKID   "AKIAS3TEST0000000001"
#define SECRET "s3TestSecretKey00000000000000000000001"
#define TOKEN  "s3-session-token-0123456789"

/* ---------------------------------------------------------------------------------------------
 * The fake S3
 */

typedef struct obj {
    char *key;
    size_t key_len;
    uint8_t *data;
    size_t len;
    char etag[40];
} obj_t;

typedef struct mpu {
    char id[32];
    char *key;
    uint8_t *parts[8];
    size_t lens[8];
    char etags[8][40];
    int nparts;
    bool live;
} mpu_t;

typedef struct logent {
    char method[16];
    char target[1024];
    char host[128];
    char range[64];
    char if_match[64];
    char sha[72];
    char ctype[64];
    bool token;
    char scope_region[32];
    int64_t amz_date;
} logent_t;

#define MAX_OBJS 64
#define MAX_LOG  256

typedef struct fake {
    obj_t objs[MAX_OBJS];
    int nobjs;
    mpu_t mpus[4];
    int nmpus;
    const char *token;  /* session token expected with AKID (NULL: none) */
    const char *region; /* the bucket's region */
    const char *lifecycle;
    int lifecycle_status; /* non-zero: answer GET ?lifecycle with this error status */
    int page_max;         /* server-side cap on listing pages */
    bool list_outside;    /* the listing includes a key outside the asked prefix */
    const char *deny;     /* DeleteObjects keys containing this are refused */
    /* Faults on the next requests. */
    int fail_count, fail_status;
    const char *fail_code;
    int complete_errors; /* 200-with-<Error> answers to CompleteMultipartUpload */
    int64_t skew_s;      /* the fake's clock runs this far ahead */
    bool stall;
    int change_etag_after; /* GETs after which the object's ETag changes (0: never) */
    /* What was seen. */
    int requests, sig_ok, sig_bad;
    char sig_err[256];
    logent_t log[MAX_LOG];
    int nlog;
    int creates, parts_put, completes, aborts, batch_deletes, single_deletes, gets;
} fake_t;

static void hex_sha256(const uint8_t *p, size_t n, char out[65])
{
    uint8_t md[32];
    EVP_Digest(p, n, md, NULL, EVP_sha256(), NULL);
    px_hex_encode(md, 32, out);
}

static void etag_of(const uint8_t *p, size_t n, char out[40])
{
    uint8_t md[16];
    char hex[33];
    EVP_Digest(p, n, md, NULL, EVP_md5(), NULL);
    px_hex_encode(md, 16, hex);
    snprintf(out, 40, "\"%s\"", hex);
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a malloc'd string; *len gets its length. */
static char *pct_decode(const char *s, size_t n, size_t *len)
{
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
            o[k++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = 0;
    *len = k;
    return o;
}

/* Value of a decoded query parameter (NULL when absent; "" for a bare name). */
static char *query_get(const char *query, const char *name, char *buf, size_t cap)
{
    if (!query)
        return NULL;
    size_t nl = strlen(name);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        if (klen == nl && memcmp(p, name, nl) == 0) {
            size_t vlen = 0;
            char *v = eq ? pct_decode(eq + 1, plen - klen - 1, &vlen) : strdup("");
            snprintf(buf, cap, "%s", v);
            free(v);
            return buf;
        }
        p += plen;
        if (*p == '&')
            p++;
    }
    return NULL;
}

static obj_t *obj_find(fake_t *f, const char *key, size_t len)
{
    for (int i = 0; i < f->nobjs; i++)
        if (f->objs[i].key_len == len && memcmp(f->objs[i].key, key, len) == 0)
            return &f->objs[i];
    return NULL;
}

static obj_t *obj_put(fake_t *f, const char *key, size_t klen, const uint8_t *data, size_t len)
{
    obj_t *o = obj_find(f, key, klen);
    if (!o) {
        if (f->nobjs >= MAX_OBJS)
            return NULL;
        o = &f->objs[f->nobjs++];
        o->key = malloc(klen + 1);
        memcpy(o->key, key, klen);
        o->key[klen] = 0;
        o->key_len = klen;
    } else {
        free(o->data);
    }
    o->data = malloc(len ? len : 1);
    if (len)
        memcpy(o->data, data, len);
    o->len = len;
    etag_of(data, len, o->etag);
    return o;
}

static void obj_del(fake_t *f, const char *key, size_t len)
{
    obj_t *o = obj_find(f, key, len);
    if (!o)
        return;
    free(o->key);
    free(o->data);
    *o = f->objs[--f->nobjs];
}

static void fake_free(fake_t *f)
{
    for (int i = 0; i < f->nobjs; i++) {
        free(f->objs[i].key);
        free(f->objs[i].data);
    }
    for (int i = 0; i < f->nmpus; i++) {
        free(f->mpus[i].key);
        for (int j = 0; j < f->mpus[i].nparts; j++)
            free(f->mpus[i].parts[j]);
    }
}

static void xml_error(ts_response_t *r, int status, const char *code, const char *msg,
                      const char *extra)
{
    r->status = status;
    snprintf(r->body, sizeof(r->body),
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
             "<Message>%s</Message>%s<RequestId>FAKE-%d</RequestId><HostId>h</HostId></Error>",
             code, msg, extra ? extra : "", status);
    strcat(r->headers, "Content-Type: application/xml\r\nx-amz-request-id: FAKEREQ\r\n");
}

/* The signed headers of the request, rebuilt from what arrived, re-signed with our signer. */
static bool verify_signature(fake_t *f, const ts_request_t *req, const char *path,
                             const char *query, logent_t *le)
{
    char auth[1024], date[32], sha[80], tok[256];
    if (!ts_header(req, "Authorization", auth, sizeof(auth)) ||
        !ts_header(req, "x-amz-date", date, sizeof(date)) ||
        !ts_header(req, "x-amz-content-sha256", sha, sizeof(sha))) {
        snprintf(f->sig_err, sizeof(f->sig_err), "missing Authorization/x-amz-date/sha256");
        return false;
    }
    snprintf(le->sha, sizeof(le->sha), "%.71s", sha);
    bool has_tok = ts_header(req, "x-amz-security-token", tok, sizeof(tok)) != NULL;
    le->token = has_tok;
    if ((f->token && (!has_tok || strcmp(tok, f->token) != 0)) || (!f->token && has_tok)) {
        snprintf(f->sig_err, sizeof(f->sig_err), "session token mismatch");
        return false;
    }
    /* Payload hash: either UNSIGNED-PAYLOAD or the body's SHA-256. */
    char body_sha[65];
    hex_sha256(req->body, req->bodylen, body_sha);
    if (strcmp(sha, "UNSIGNED-PAYLOAD") != 0 && strcmp(sha, body_sha) != 0) {
        snprintf(f->sig_err, sizeof(f->sig_err), "x-amz-content-sha256 does not match the body");
        return false;
    }
    const char *cred = strstr(auth, "Credential=");
    const char *sh = strstr(auth, "SignedHeaders=");
    if (!cred || !sh || strncmp(cred + 11, AKID "/", strlen(AKID) + 1) != 0) {
        snprintf(f->sig_err, sizeof(f->sig_err), "bad Authorization: %.200s", auth);
        return false;
    }
    /* Credential=AKID/date/region/s3/aws4_request */
    const char *r0 = strchr(cred + 11 + strlen(AKID) + 1, '/');
    const char *r1 = r0 ? strchr(r0 + 1, '/') : NULL;
    if (!r1 || strncmp(r1, "/s3/aws4_request", 16) != 0) {
        snprintf(f->sig_err, sizeof(f->sig_err), "bad scope in %.200s", auth);
        return false;
    }
    snprintf(le->scope_region, sizeof(le->scope_region), "%.*s", (int)(r1 - r0 - 1), r0 + 1);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(date, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    le->amz_date = (int64_t)timegm(&tm);
    /* Headers named in SignedHeaders, minus the ones the signer writes itself. */
    char names[512];
    snprintf(names, sizeof(names), "%.*s", (int)strcspn(sh + 14, ","), sh + 14);
    auth_http_header_t hv[16];
    char vals[16][512];
    size_t nh = 0;
    for (char *save = NULL, *n = strtok_r(names, ";", &save); n && nh < 16;
         n = strtok_r(NULL, ";", &save)) {
        if (!strcmp(n, "x-amz-date") || !strcmp(n, "x-amz-content-sha256") ||
            !strcmp(n, "x-amz-security-token"))
            continue;
        if (!ts_header(req, n, vals[nh], sizeof(vals[nh]))) {
            snprintf(f->sig_err, sizeof(f->sig_err), "signed header %s missing", n);
            return false;
        }
        hv[nh].name = strdup(n);
        hv[nh].value = vals[nh];
        nh++;
    }
    auth_sigv4_req_t sr = {
        .method = req->method,
        .path = path,
        .query = query,
        .headers = hv,
        .nheaders = nh,
        .body = req->body,
        .bodylen = req->bodylen,
        .payload_hash = sha,
        .region = le->scope_region,
        .service = "s3",
        .time_unix = le->amz_date,
        .s3 = true,
        .sign_session_token = true,
    };
    auth_aws_keys_t keys = {AKID, SECRET, has_tok ? tok : NULL};
    auth_sigv4_out_t out;
    memset(&out, 0, sizeof(out));
    int rc = auth_sigv4_sign(&sr, &keys, &out);
    bool ok = false;
    for (size_t i = 0; rc == 0 && i < out.nadd; i++)
        if (!strcmp(out.add[i].name, "Authorization"))
            ok = strcmp(out.add[i].value, auth) == 0;
    if (!ok)
        snprintf(f->sig_err, sizeof(f->sig_err), "signature mismatch (rc %d) for %s %.100s?%.100s",
                 rc, req->method, path, query ? query : "");
    auth_sigv4_out_free(&out);
    for (size_t i = 0; i < nh; i++)
        free((char *)hv[i].name);
    return ok;
}

static void url_encode_key(px_dbuf_t *d, const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == '/')
            px_dbuf_put_u8(d, c);
        else if (c == ' ')
            px_dbuf_put_u8(d, '+');
        else
            px_dbuf_printf(d, "%%%02X", c);
    }
}

static int obj_cmp(const void *a, const void *b)
{
    const obj_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len < y->key_len ? -1 : x->key_len > y->key_len);
}

static void do_list(fake_t *f, const char *query, ts_response_t *r)
{
    char prefix[1100] = "", token[1300] = "", mk[16] = "", enc[16] = "";
    query_get(query, "prefix", prefix, sizeof(prefix));
    query_get(query, "continuation-token", token, sizeof(token));
    query_get(query, "max-keys", mk, sizeof(mk));
    bool url = query_get(query, "encoding-type", enc, sizeof(enc)) && !strcmp(enc, "url");
    int max = mk[0] ? atoi(mk) : 1000;
    if (f->page_max && max > f->page_max)
        max = f->page_max;
    qsort(f->objs, (size_t)f->nobjs, sizeof(obj_t), obj_cmp);
    /* Like S3's, the token names the last key returned, so deletes between pages are fine. */
    int start = 0;
    if (token[0]) {
        uint8_t last[600];
        size_t ll = (strlen(token) - 4) / 2;
        px_hex_decode(token + 4, ll * 2, last);
        obj_t probe = {.key = (char *)last, .key_len = ll};
        while (start < f->nobjs && obj_cmp(&f->objs[start], &probe) <= 0)
            start++;
    }
    px_dbuf_t d;
    px_dbuf_init(&d, sizeof(r->body) - 1);
    px_dbuf_put_cstr(&d, "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    int n = 0, i, last = -1;
    size_t pl = strlen(prefix);
    for (i = start; i < f->nobjs && n < max; i++) {
        obj_t *o = &f->objs[i];
        if (o->key_len < pl || memcmp(o->key, prefix, pl) != 0)
            continue;
        last = i;
        px_dbuf_put_cstr(&d, "<Contents><Key>");
        if (url)
            url_encode_key(&d, o->key, o->key_len);
        else
            px_dbuf_put(&d, o->key, o->key_len);
        px_dbuf_printf(&d,
                       "</Key><LastModified>2024-05-01T10:00:00.000Z</LastModified>"
                       "<ETag>&quot;%.32s&quot;</ETag><Size>%zu</Size></Contents>",
                       o->etag + 1, o->len);
        n++;
    }
    if (f->list_outside)
        px_dbuf_put_cstr(&d, "<Contents><Key>outside/evil</Key><Size>1</Size></Contents>");
    /* More to come? */
    bool more = false;
    for (int j = i; j < f->nobjs; j++)
        if (f->objs[j].key_len >= pl && memcmp(f->objs[j].key, prefix, pl) == 0)
            more = true;
    px_dbuf_printf(&d, "<KeyCount>%d</KeyCount><IsTruncated>%s</IsTruncated>", n,
                   more ? "true" : "false");
    if (more && last >= 0) {
        char hex[1300];
        size_t kl = f->objs[last].key_len < 600 ? f->objs[last].key_len : 600;
        px_hex_encode((const uint8_t *)f->objs[last].key, kl, hex);
        px_dbuf_printf(&d, "<NextContinuationToken>tok-%s</NextContinuationToken>", hex);
    }
    if (url)
        px_dbuf_put_cstr(&d, "<EncodingType>url</EncodingType>");
    px_dbuf_put_cstr(&d, "</ListBucketResult>");
    memcpy(r->body, d.data, d.len);
    r->bodylen = d.len;
    px_dbuf_free(&d);
}

static char *xml_unescape_dup(const char *s, size_t n, size_t *len)
{
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        static const struct {
            const char *ent;
            char c;
        } ents[] = {{"&amp;", '&'},   {"&lt;", '<'},   {"&gt;", '>'},   {"&quot;", '"'},
                    {"&apos;", '\''}, {"&#13;", '\r'}, {"&#10;", '\n'}, {"&#9;", '\t'}};
        bool hit = false;
        for (size_t e = 0; e < sizeof(ents) / sizeof(ents[0]); e++) {
            size_t el = strlen(ents[e].ent);
            if (n - i >= el && memcmp(s + i, ents[e].ent, el) == 0) {
                o[k++] = ents[e].c;
                i += el - 1;
                hit = true;
                break;
            }
        }
        if (!hit)
            o[k++] = s[i];
    }
    o[k] = 0;
    *len = k;
    return o;
}

static void do_delete_objects(fake_t *f, const ts_request_t *req, ts_response_t *r)
{
    char md5[64];
    uint8_t md[16];
    EVP_Digest(req->body, req->bodylen, md, NULL, EVP_md5(), NULL);
    char want[32];
    px_b64_encode_to(want, md, 16);
    if (!ts_header(req, "Content-MD5", md5, sizeof(md5)) || strcmp(md5, want) != 0) {
        xml_error(r, 400, "InvalidRequest",
                  "Missing required header for this request: "
                  "Content-Md5",
                  NULL);
        return;
    }
    f->batch_deletes++;
    px_dbuf_t d;
    px_dbuf_init(&d, sizeof(r->body) - 1);
    px_dbuf_put_cstr(&d, "<DeleteResult>");
    const char *p = (const char *)req->body, *end = p + req->bodylen;
    while (p < end) {
        const char *k0 = memmem(p, (size_t)(end - p), "<Key>", 5);
        if (!k0)
            break;
        k0 += 5;
        const char *k1 = memmem(k0, (size_t)(end - k0), "</Key>", 6);
        if (!k1)
            break;
        size_t kl;
        char *key = xml_unescape_dup(k0, (size_t)(k1 - k0), &kl);
        if (f->deny && strstr(key, f->deny))
            px_dbuf_printf(&d,
                           "<Error><Key>%s</Key><Code>AccessDenied</Code>"
                           "<Message>Access Denied</Message></Error>",
                           key);
        else
            obj_del(f, key, kl);
        free(key);
        p = k1 + 6;
    }
    px_dbuf_put_cstr(&d, "</DeleteResult>");
    memcpy(r->body, d.data, d.len);
    r->bodylen = d.len;
    px_dbuf_free(&d);
}

static mpu_t *mpu_find(fake_t *f, const char *id)
{
    for (int i = 0; i < f->nmpus; i++)
        if (!strcmp(f->mpus[i].id, id) && f->mpus[i].live)
            return &f->mpus[i];
    return NULL;
}

static void do_complete(fake_t *f, mpu_t *m, const ts_request_t *req, ts_response_t *r)
{
    f->completes++;
    if (f->complete_errors > 0) {
        f->complete_errors--;
        r->status = 200;
        snprintf(r->body, sizeof(r->body),
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError</Code>"
                 "<Message>We encountered an internal error. Please try again.</Message></Error>");
        return;
    }
    /* Each <Part> must name part i+1 with its ETag, in order. */
    const char *p = (const char *)req->body, *end = p + req->bodylen;
    int i = 0;
    for (;; i++) {
        const char *pn = memmem(p, (size_t)(end - p), "<PartNumber>", 12);
        if (!pn)
            break;
        int num = atoi(pn + 12);
        const char *e0 = memmem(pn, (size_t)(end - pn), "<ETag>", 6);
        const char *e1 = e0 ? memmem(e0, (size_t)(end - e0), "</ETag>", 7) : NULL;
        if (!e1 || num != i + 1 || i >= m->nparts) {
            xml_error(r, 400, "InvalidPart",
                      "One or more of the specified parts could not be "
                      "found.",
                      NULL);
            return;
        }
        size_t el;
        char *etag = xml_unescape_dup(e0 + 6, (size_t)(e1 - e0 - 6), &el);
        bool ok = strcmp(etag, m->etags[i]) == 0;
        free(etag);
        if (!ok) {
            xml_error(r, 400, "InvalidPart", "ETag mismatch", NULL);
            return;
        }
        p = e1;
    }
    if (i != m->nparts) {
        xml_error(r, 400, "InvalidPartOrder", "parts missing", NULL);
        return;
    }
    size_t total = 0;
    for (int j = 0; j < m->nparts; j++)
        total += m->lens[j];
    uint8_t *all = malloc(total ? total : 1);
    size_t off = 0;
    for (int j = 0; j < m->nparts; j++) {
        memcpy(all + off, m->parts[j], m->lens[j]);
        off += m->lens[j];
    }
    obj_put(f, m->key, strlen(m->key), all, total);
    free(all);
    m->live = false;
    snprintf(r->body, sizeof(r->body),
             "<CompleteMultipartUploadResult><Bucket>" BUCKET "</Bucket><Key>%s</Key>"
             "<ETag>&quot;fake-%d&quot;</ETag></CompleteMultipartUploadResult>",
             m->key, m->nparts);
}

static void handler(const ts_request_t *req, ts_response_t *r, void *arg)
{
    fake_t *f = arg;
    f->requests++;
    logent_t *le = &f->log[f->nlog < MAX_LOG ? f->nlog++ : MAX_LOG - 1];
    memset(le, 0, sizeof(*le));
    snprintf(le->method, sizeof(le->method), "%s", req->method);
    snprintf(le->target, sizeof(le->target), "%.1000s", req->target);
    ts_header(req, "Host", le->host, sizeof(le->host));
    ts_header(req, "Range", le->range, sizeof(le->range));
    ts_header(req, "If-Match", le->if_match, sizeof(le->if_match));
    ts_header(req, "Content-Type", le->ctype, sizeof(le->ctype));
    if (f->skew_s) {
        char d[40];
        ts_http_date((int64_t)time(NULL) + f->skew_s, d);
        snprintf(r->headers, sizeof(r->headers), "Date: %s\r\n", d);
    }
    if (f->stall) {
        r->stall = true;
        return;
    }
    char pathbuf[4096];
    snprintf(pathbuf, sizeof(pathbuf), "%s", req->target);
    char *q = strchr(pathbuf, '?');
    const char *query = NULL;
    if (q) {
        *q = 0;
        query = q + 1;
    }
    if (!verify_signature(f, req, pathbuf, query, le)) {
        f->sig_bad++;
        xml_error(r, 403, "SignatureDoesNotMatch",
                  "The request signature we calculated does not match the signature you "
                  "provided. Check your key and signing method.",
                  NULL);
        return;
    }
    f->sig_ok++;
    if (f->skew_s && llabs((long long)(le->amz_date - ((int64_t)time(NULL) + f->skew_s))) > 300) {
        xml_error(r, 403, "RequestTimeTooSkewed",
                  "The difference between the request time and the current time is too large.",
                  "<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>");
        return;
    }
    if (f->region && strcmp(le->scope_region, f->region) != 0) {
        char extra[96];
        snprintf(extra, sizeof(extra), "<Region>%s</Region>", f->region);
        xml_error(r, 400, "AuthorizationHeaderMalformed",
                  "The authorization header is malformed; the region is wrong", extra);
        return;
    }
    if (f->fail_count > 0) {
        f->fail_count--;
        xml_error(r, f->fail_status, f->fail_code, "scripted failure", NULL);
        return;
    }
    /* Path-style "/bucket/key" or virtual-hosted "bucket.localhost:port" + "/key". */
    const char *keyp;
    if (!strncmp(le->host, BUCKET ".", strlen(BUCKET) + 1)) {
        keyp = pathbuf + 1;
    } else {
        if (strncmp(pathbuf, "/" BUCKET, strlen(BUCKET) + 1) != 0) {
            xml_error(r, 404, "NoSuchBucket", "The specified bucket does not exist", NULL);
            return;
        }
        keyp = pathbuf + 1 + strlen(BUCKET);
        if (*keyp == '/')
            keyp++;
    }
    size_t klen;
    char *key = pct_decode(keyp, strlen(keyp), &klen);
    char v[1100];
    const char *m = req->method;
    if (klen == 0) {
        if (!strcmp(m, "GET") && query_get(query, "lifecycle", v, sizeof(v))) {
            if (f->lifecycle_status)
                xml_error(r, f->lifecycle_status, "AccessDenied", "Access Denied", NULL);
            else if (!f->lifecycle)
                xml_error(r, 404, "NoSuchLifecycleConfiguration",
                          "The lifecycle configuration does not exist", NULL);
            else
                snprintf(r->body, sizeof(r->body), "%s", f->lifecycle);
        } else if (!strcmp(m, "GET") && query_get(query, "list-type", v, sizeof(v))) {
            do_list(f, query, r);
        } else if (!strcmp(m, "POST") && query_get(query, "delete", v, sizeof(v))) {
            do_delete_objects(f, req, r);
        } else {
            xml_error(r, 400, "NotImplemented", "fake", NULL);
        }
        free(key);
        return;
    }
    char id[64];
    obj_t *o = obj_find(f, key, klen);
    if (!strcmp(m, "POST") && query_get(query, "uploads", v, sizeof(v))) {
        mpu_t *u = &f->mpus[f->nmpus++];
        memset(u, 0, sizeof(*u));
        snprintf(u->id, sizeof(u->id), "upload-%d", f->nmpus);
        u->key = strdup(key);
        u->live = true;
        f->creates++;
        snprintf(r->body, sizeof(r->body),
                 "<InitiateMultipartUploadResult><Bucket>" BUCKET "</Bucket><Key>k</Key>"
                 "<UploadId>%s</UploadId></InitiateMultipartUploadResult>",
                 u->id);
    } else if (query_get(query, "uploadId", id, sizeof(id))) {
        mpu_t *u = mpu_find(f, id);
        if (!u) {
            xml_error(r, 404, "NoSuchUpload", "The specified upload does not exist.", NULL);
        } else if (!strcmp(m, "PUT")) {
            int n = atoi(query_get(query, "partNumber", v, sizeof(v)) ? v : "0");
            if (n != u->nparts + 1 || n > 8) {
                xml_error(r, 400, "InvalidArgument", "part number out of order", NULL);
            } else {
                u->parts[n - 1] = malloc(req->bodylen);
                memcpy(u->parts[n - 1], req->body, req->bodylen);
                u->lens[n - 1] = req->bodylen;
                etag_of(req->body, req->bodylen, u->etags[n - 1]);
                u->nparts++;
                f->parts_put++;
                snprintf(r->headers + strlen(r->headers), 200, "ETag: %s\r\n", u->etags[n - 1]);
            }
        } else if (!strcmp(m, "POST")) {
            do_complete(f, u, req, r);
        } else if (!strcmp(m, "DELETE")) {
            u->live = false;
            f->aborts++;
            r->status = 204;
        }
    } else if (!strcmp(m, "PUT")) {
        o = obj_put(f, key, klen, req->body, req->bodylen);
        snprintf(r->headers + strlen(r->headers), 200, "ETag: %s\r\n", o->etag);
    } else if (!strcmp(m, "DELETE")) {
        obj_del(f, key, klen);
        f->single_deletes++;
        r->status = 204;
    } else if (!o) {
        if (!strcmp(m, "HEAD"))
            r->status = 404; /* no body, like S3 */
        else
            xml_error(r, 404, "NoSuchKey", "The specified key does not exist.", NULL);
    } else if (!strcmp(m, "HEAD")) {
        memcpy(r->body, o->data, o->len);
        r->bodylen = o->len;
        snprintf(r->headers + strlen(r->headers), 300,
                 "ETag: %s\r\nContent-Type: text/csv\r\nLast-Modified: Wed, 01 May 2024 "
                 "10:00:00 GMT\r\n",
                 o->etag);
        if (o->len == 0)
            r->bodylen = 0;
    } else if (!strcmp(m, "GET")) {
        f->gets++;
        if (f->change_etag_after && f->gets > f->change_etag_after)
            snprintf(o->etag, sizeof(o->etag), "\"changed\"");
        if (le->if_match[0] && strcmp(le->if_match, o->etag) != 0) {
            xml_error(r, 412, "PreconditionFailed",
                      "At least one of the pre-conditions you specified did not hold", NULL);
        } else if (le->range[0]) {
            unsigned long long a = 0, b = 0;
            sscanf(le->range, "bytes=%llu-%llu", &a, &b);
            if (a >= o->len) {
                xml_error(r, 416, "InvalidRange", "The requested range is not satisfiable", NULL);
            } else {
                if (b >= o->len)
                    b = o->len - 1;
                r->status = 206;
                memcpy(r->body, o->data + a, (size_t)(b - a + 1));
                r->bodylen = (size_t)(b - a + 1);
                snprintf(r->headers + strlen(r->headers), 300,
                         "ETag: %s\r\nContent-Range: bytes %llu-%llu/%zu\r\n", o->etag, a, b,
                         o->len);
            }
        } else {
            memcpy(r->body, o->data, o->len);
            r->bodylen = o->len;
            snprintf(r->headers + strlen(r->headers), 200, "ETag: %s\r\n", o->etag);
        }
    } else {
        xml_error(r, 405, "MethodNotAllowed", "fake", NULL);
    }
    free(key);
}

/* ---------------------------------------------------------------------------------------------
 * Test environment
 */

typedef struct env {
    uv_loop_t loop;
    uv_timer_t watchdog;
    ts_server_t *srv;
    int port;
    fake_t fake;
    auth_http_t *http;
    s3_client_t *c;
    bool http_closed, client_closed;
} env_t;

static void watchdog_cb(uv_timer_t *t)
{
    PX_UNUSED(t);
    PX_FAIL("watchdog: the test hung");
}

static void env_start_opts(env_t *e, s3_client_opts_t *o)
{
    memset(e, 0, sizeof(*e));
    ASSERT_OK(uv_loop_init(&e->loop));
    uv_timer_init(&e->loop, &e->watchdog);
    uv_timer_start(&e->watchdog, watchdog_cb, 60000, 0);
    uv_unref((uv_handle_t *)&e->watchdog);
    ASSERT_OK(ts_start(&e->loop, handler, &e->fake, &e->srv, &e->port));
    ASSERT_OK(auth_http_new(&e->loop, &e->http));
    auth_http_set_retry(e->http, 5, 20);
    static char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", e->port);
    static auth_aws_keys_t keys = {AKID, SECRET, NULL};
    o->http = e->http;
    if (!o->keys && !o->iam)
        o->keys = &keys;
    if (!o->endpoint)
        o->endpoint = ep;
    if (!o->region)
        o->region = "us-east-1";
    ASSERT_OK(s3_client_new(&e->loop, o, &e->c));
}

static void env_start(env_t *e)
{
    s3_client_opts_t o = {0};
    env_start_opts(e, &o);
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

static void run(env_t *e)
{
    uv_run(&e->loop, UV_RUN_DEFAULT);
}

static void env_finish(env_t *e)
{
    if (e->c)
        s3_client_close(e->c, set_flag, &e->client_closed);
    run(e);
    if (e->c)
        ASSERT(e->client_closed);
    auth_http_close(e->http, set_flag, &e->http_closed);
    ts_stop(e->srv);
    uv_timer_stop(&e->watchdog);
    uv_close((uv_handle_t *)&e->watchdog, NULL);
    run(e);
    ASSERT(e->http_closed);
    if (e->fake.sig_bad)
        PX_FAIL("the fake saw %d badly signed request(s): %s", e->fake.sig_bad, e->fake.sig_err);
    fake_free(&e->fake);
    px_test_loop_close(&e->loop);
}

/* Results of the callbacks. */
typedef struct res {
    int calls;
    s3_error_t err;
    bool ok;
    char etag[128];
    uint64_t size, total;
    s3_head_t head;
    px_dbuf_t data;
    int data_calls;
    uint64_t last_offset;
    size_t nkeys;
    char keys[16][256];
    size_t key_lens[16];
    char token[1300];
    bool truncated;
    size_t ndeleted, nerrors;
    char first_error_key[64];
    bool lc_null;
    size_t nrules;
    s3_lifecycle_verdict_t verdict;
    char message[1024];
    char rule_id[64];
    s3_upload_t *up;
} res_t;

static void record_err(res_t *r, const s3_error_t *err)
{
    r->calls++;
    r->ok = err == NULL;
    if (err)
        r->err = *err;
}

static void put_cb(const char *etag, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    if (etag)
        snprintf(r->etag, sizeof(r->etag), "%s", etag);
}

static void head_cb(const s3_head_t *h, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    if (h) {
        r->size = h->size;
        r->head.last_modified_ms = h->last_modified_ms;
        snprintf(r->etag, sizeof(r->etag), "%s", h->etag);
    }
}

static void done_cb(const s3_error_t *err, void *arg)
{
    record_err(arg, err);
}

static void get_done_cb(uint64_t total, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    r->total = total;
}

static int get_data_cb(const uint8_t *p, size_t n, uint64_t offset, uint64_t total, void *arg)
{
    res_t *r = arg;
    if (offset != r->data.len)
        PX_FAIL("chunk at offset %llu after %zu bytes", (unsigned long long)offset, r->data.len);
    px_dbuf_put(&r->data, p, n);
    r->data_calls++;
    r->last_offset = offset;
    r->total = total;
    return S3_GET_CONTINUE;
}

static void list_cb(const s3_list_page_t *page, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    if (!page)
        return;
    for (size_t i = 0; i < page->nobjects && r->nkeys < 16; i++) {
        memcpy(r->keys[r->nkeys], page->objects[i].key, page->objects[i].key_len + 1);
        r->key_lens[r->nkeys] = page->objects[i].key_len;
        r->nkeys++;
    }
    r->truncated = page->truncated;
    snprintf(r->token, sizeof(r->token), "%s", page->next_token ? page->next_token : "");
}

static void delobjs_cb(const s3_delete_result_t *res, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    if (res) {
        r->ndeleted = res->ndeleted;
        r->nerrors = res->nerrors;
        if (res->nerrors)
            snprintf(r->first_error_key, sizeof(r->first_error_key), "%s", res->errors[0].key);
    }
}

static void lifecycle_cb(const s3_lifecycle_t *lc, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    r->lc_null = lc == NULL;
    r->nrules = lc ? lc->nrules : 0;
}

static void check_cb(const s3_lifecycle_result_t *res, void *arg)
{
    res_t *r = arg;
    r->calls++;
    r->verdict = res->verdict;
    snprintf(r->message, sizeof(r->message), "%s", res->message);
    snprintf(r->rule_id, sizeof(r->rule_id), "%s", res->rule_id ? res->rule_id : "(null)");
    if (res->err)
        r->err = *res->err;
}

static void upload_cb(s3_upload_t *up, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    r->up = up;
}

static void cleanup_cb(uint64_t deleted, const s3_error_t *err, void *arg)
{
    res_t *r = arg;
    record_err(r, err);
    r->total = deleted;
}

/* Runs the loop until `r` has seen `n` callbacks. */
static void wait_calls(env_t *e, res_t *r, int n)
{
    while (r->calls < n) {
        if (uv_run(&e->loop, UV_RUN_ONCE) == 0 && r->calls < n)
            PX_FAIL("the loop stopped with %d of %d callbacks", r->calls, n);
    }
}

static void put_sync(env_t *e, const char *key, const char *data)
{
    res_t r = {0};
    ASSERT_OK(s3_put_object(e->c, BUCKET, key, (const uint8_t *)data, strlen(data), NULL, put_cb,
                            &r, NULL));
    wait_calls(e, &r, 1);
    if (!r.ok)
        PX_FAIL("put %s: %s %s", key, r.err.s3_code, r.err.message);
}

/* ---------------------------------------------------------------------------------------------
 * Single objects
 */

PX_TEST(put_head_get_delete)
{
    env_t e;
    env_start(&e);
    res_t r = {0};
    const char *body = "id,name\n1,alice\n";
    s3_op_t *op = NULL;
    ASSERT_OK(s3_put_object(e.c, BUCKET, "tmp/a b+c.csv", (const uint8_t *)body, strlen(body),
                            "text/csv", put_cb, &r, &op));
    ASSERT(op != NULL);
    ASSERT_EQ(r.calls, 0); /* never synchronously */
    wait_calls(&e, &r, 1);
    ASSERT(r.ok);
    ASSERT_STR_EQ(r.etag, e.fake.objs[0].etag);
    ASSERT_STR_EQ(e.fake.log[0].target, "/" BUCKET "/tmp/a%20b%2Bc.csv");
    ASSERT_STR_EQ(e.fake.log[0].ctype, "text/csv");
    /* Over plain http the payload is always signed. */
    char sha[65];
    hex_sha256((const uint8_t *)body, strlen(body), sha);
    ASSERT_STR_EQ(e.fake.log[0].sha, sha);
    ASSERT_STR_EQ(e.fake.log[0].scope_region, "us-east-1");
    ASSERT(!e.fake.log[0].token);

    res_t h = {0};
    ASSERT_OK(s3_head_object(e.c, BUCKET, "tmp/a b+c.csv", head_cb, &h, NULL));
    wait_calls(&e, &h, 1);
    ASSERT(h.ok);
    ASSERT_EQ(h.size, strlen(body));
    ASSERT_STR_EQ(h.etag, r.etag);
    ASSERT_EQ(h.head.last_modified_ms, 1714557600000LL);

    res_t g = {0};
    px_dbuf_init(&g.data, 1 << 20);
    ASSERT_OK(s3_get_object(e.c, BUCKET, "tmp/a b+c.csv", get_data_cb, get_done_cb, &g, NULL));
    wait_calls(&e, &g, 1);
    ASSERT(g.ok);
    ASSERT_EQ(g.total, strlen(body));
    ASSERT_EQ(g.data.len, strlen(body));
    ASSERT_MEM_EQ(g.data.data, body, strlen(body));
    px_dbuf_free(&g.data);

    res_t d = {0};
    ASSERT_OK(s3_delete_object(e.c, BUCKET, "tmp/a b+c.csv", done_cb, &d, NULL));
    wait_calls(&e, &d, 1);
    ASSERT(d.ok);
    ASSERT_EQ(e.fake.nobjs, 0);

    res_t h2 = {0};
    ASSERT_OK(s3_head_object(e.c, BUCKET, "tmp/a b+c.csv", head_cb, &h2, NULL));
    wait_calls(&e, &h2, 1);
    ASSERT(!h2.ok);
    ASSERT_EQ(h2.err.code, S3_E_HTTP);
    ASSERT_EQ(h2.err.http_status, 404);
    ASSERT_STR_EQ(h2.err.s3_code, "NotFound");
    ASSERT_EQ(s3_client_ops(e.c), 0);
    env_finish(&e);
}

PX_TEST(argument_checks)
{
    env_t e;
    env_start(&e);
    res_t r = {0};
    uint8_t b[4] = {0};
    ASSERT_EQ(s3_put_object(e.c, "ab", "k", b, 4, NULL, put_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(s3_put_object(e.c, BUCKET, "a/../k", b, 4, NULL, put_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(s3_put_object(e.c, BUCKET, "", b, 4, NULL, put_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(s3_put_object(e.c, BUCKET, "k", b, S3_PUT_MAX + 1, NULL, put_cb, &r, NULL),
              UV_EINVAL);
    ASSERT_EQ(s3_get_object(e.c, BUCKET, "k", NULL, get_done_cb, &r, NULL), UV_EINVAL);
    s3_list_opts_t lo = {.max_keys = 1001};
    ASSERT_EQ(s3_list_objects(e.c, BUCKET, &lo, list_cb, &r, NULL), UV_EINVAL);
    const char *keys[] = {"ok", "bad\x01"};
    ASSERT_EQ(s3_delete_objects(e.c, BUCKET, keys, 2, delobjs_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(s3_delete_objects(e.c, BUCKET, keys, 0, delobjs_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(s3_delete_prefix(e.c, BUCKET, "", cleanup_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(s3_delete_prefix(e.c, BUCKET, "tmp", cleanup_cb, &r, NULL), UV_EINVAL);
    ASSERT_EQ(r.calls, 0);
    ASSERT_EQ(s3_client_ops(e.c), 0);
    /* Nothing reached the server. */
    run(&e);
    ASSERT_EQ(e.fake.requests, 0);
    env_finish(&e);

    /* Client options. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    s3_client_t *c;
    auth_aws_keys_t k = {AKID, SECRET, NULL};
    s3_client_opts_t o = {.keys = &k};
    ASSERT_EQ(s3_client_new(&loop, &o, &c), UV_EINVAL); /* no http */
    auth_http_t *http;
    ASSERT_OK(auth_http_new(&loop, &http));
    o.http = http;
    o.get_chunk = 10;
    ASSERT_EQ(s3_client_new(&loop, &o, &c), UV_EINVAL);
    o.get_chunk = 0;
    o.endpoint = "ftp://x";
    ASSERT_EQ(s3_client_new(&loop, &o, &c), UV_EINVAL);
    o.endpoint = NULL;
    auth_aws_keys_t bad = {AKID, "has space", NULL};
    o.keys = &bad;
    ASSERT_EQ(s3_client_new(&loop, &o, &c), UV_EINVAL);
    o.keys = NULL;
    ASSERT_EQ(s3_client_new(&loop, &o, &c), UV_EINVAL); /* neither keys nor iam */
    auth_http_close(http, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    px_test_loop_close(&loop);
}

PX_TEST(session_token_and_unsigned_payload)
{
    env_t e;
    static auth_aws_keys_t keys = {AKID, SECRET, TOKEN};
    s3_client_opts_t o = {.keys = &keys, .payload = S3_PAYLOAD_UNSIGNED};
    env_start_opts(&e, &o);
    e.fake.token = TOKEN;
    put_sync(&e, "k1", "hello");
    ASSERT(e.fake.log[0].token);
    ASSERT_STR_EQ(e.fake.log[0].sha, "UNSIGNED-PAYLOAD");
    env_finish(&e);
}

PX_TEST(virtual_hosted_addressing)
{
    env_t e;
    char ep[64];
    s3_client_opts_t o = {.addressing = S3_ADDR_VIRTUAL};
    env_start_opts(&e, &o); /* 127.0.0.1: an IP literal cannot be virtual-hosted */
    put_sync(&e, "k", "v");
    ASSERT_STR_EQ(e.fake.log[0].target, "/" BUCKET "/k");
    s3_client_close(e.c, NULL, NULL);
    e.c = NULL;
    /* Through "localhost" (curl resolves *.localhost to loopback itself). */
    snprintf(ep, sizeof(ep), "http://localhost:%d", e.port);
    static auth_aws_keys_t keys = {AKID, SECRET, NULL};
    s3_client_opts_t o2 = {.http = e.http,
                           .keys = &keys,
                           .endpoint = ep,
                           .region = "us-east-1",
                           .addressing = S3_ADDR_VIRTUAL};
    ASSERT_OK(s3_client_new(&e.loop, &o2, &e.c));
    put_sync(&e, "dir/k2", "v2");
    logent_t *le = &e.fake.log[e.fake.nlog - 1];
    ASSERT_STR_EQ(le->target, "/dir/k2");
    char host[80];
    snprintf(host, sizeof(host), BUCKET ".localhost:%d", e.port);
    ASSERT_STR_EQ(le->host, host);
    ASSERT(obj_find(&e.fake, "dir/k2", 6) != NULL);
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * GetObject in chunks
 */

typedef struct pauser {
    res_t r;
    s3_op_t *op;
    uv_timer_t t;
    int pauses;
    int cancel_at; /* cancel from inside the n-th data callback (0: never) */
} pauser_t;

static void resume_cb(uv_timer_t *t)
{
    pauser_t *p = container_of(t, pauser_t, t);
    s3_get_resume(p->op);
}

static int pausing_data_cb(const uint8_t *d, size_t n, uint64_t offset, uint64_t total, void *arg)
{
    pauser_t *p = arg;
    get_data_cb(d, n, offset, total, &p->r);
    if (p->cancel_at && p->r.data_calls == p->cancel_at) {
        s3_op_cancel(p->op);
        return S3_GET_CONTINUE;
    }
    if (offset + n >= total)
        return S3_GET_CONTINUE; /* the last chunk: the op ends after this call */
    p->pauses++;
    uv_timer_start(&p->t, resume_cb, 5, 0);
    return S3_GET_PAUSE;
}

static void pauser_done_cb(uint64_t total, const s3_error_t *err, void *arg)
{
    pauser_t *p = arg;
    get_done_cb(total, err, &p->r);
}

PX_TEST(get_chunks_with_backpressure)
{
    env_t e;
    s3_client_opts_t o = {.get_chunk = S3_GET_CHUNK_MIN};
    env_start_opts(&e, &o);
    uint8_t big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 3);
    obj_put(&e.fake, "tmp/big.bin", 11, big, sizeof(big));
    pauser_t p;
    memset(&p, 0, sizeof(p));
    px_dbuf_init(&p.r.data, 1 << 20);
    uv_timer_init(&e.loop, &p.t);
    ASSERT_OK(
        s3_get_object(e.c, BUCKET, "tmp/big.bin", pausing_data_cb, pauser_done_cb, &p, &p.op));
    wait_calls(&e, &p.r, 1);
    ASSERT(p.r.ok);
    ASSERT_EQ(p.r.total, sizeof(big));
    ASSERT_EQ(p.r.data.len, sizeof(big));
    ASSERT_MEM_EQ(p.r.data.data, big, sizeof(big));
    ASSERT_EQ(p.r.data_calls, 5); /* 4 x 1 KiB + 904 bytes */
    ASSERT_EQ(e.fake.gets, 5);
    /* Ranges in order; If-Match from the second chunk on. */
    ASSERT_STR_EQ(e.fake.log[0].range, "bytes=0-1023");
    ASSERT_STR_EQ(e.fake.log[0].if_match, "");
    ASSERT_STR_EQ(e.fake.log[4].range, "bytes=4096-5119");
    ASSERT_STR_EQ(e.fake.log[4].if_match, e.fake.objs[0].etag);
    uv_close((uv_handle_t *)&p.t, NULL);
    px_dbuf_free(&p.r.data);
    env_finish(&e);
}

PX_TEST(get_empty_object_and_missing)
{
    env_t e;
    env_start(&e);
    obj_put(&e.fake, "empty", 5, (const uint8_t *)"", 0);
    res_t g = {0};
    px_dbuf_init(&g.data, 1024);
    ASSERT_OK(s3_get_object(e.c, BUCKET, "empty", get_data_cb, get_done_cb, &g, NULL));
    wait_calls(&e, &g, 1);
    ASSERT(g.ok);
    ASSERT_EQ(g.total, 0);
    ASSERT_EQ(g.data_calls, 0);
    /* 416 to the range, then one plain GET. */
    ASSERT_EQ(e.fake.nlog, 2);
    ASSERT_STR_EQ(e.fake.log[1].range, "");
    px_dbuf_free(&g.data);

    res_t m = {0};
    ASSERT_OK(s3_get_object(e.c, BUCKET, "missing", get_data_cb, get_done_cb, &m, NULL));
    wait_calls(&e, &m, 1);
    ASSERT(!m.ok);
    ASSERT_EQ(m.err.code, S3_E_HTTP);
    ASSERT_STR_EQ(m.err.s3_code, "NoSuchKey");
    ASSERT_STR_EQ(m.err.message, "The specified key does not exist.");
    ASSERT_STR_EQ(m.err.request_id, "FAKE-404");
    env_finish(&e);
}

PX_TEST(get_object_changed_midway)
{
    env_t e;
    s3_client_opts_t o = {.get_chunk = S3_GET_CHUNK_MIN};
    env_start_opts(&e, &o);
    uint8_t big[3000];
    memset(big, 'x', sizeof(big));
    obj_put(&e.fake, "k", 1, big, sizeof(big));
    e.fake.change_etag_after = 1;
    res_t g = {0};
    px_dbuf_init(&g.data, 1 << 20);
    ASSERT_OK(s3_get_object(e.c, BUCKET, "k", get_data_cb, get_done_cb, &g, NULL));
    wait_calls(&e, &g, 1);
    ASSERT(!g.ok);
    ASSERT_EQ(g.err.http_status, 412);
    ASSERT(strstr(g.err.message, "changed while it was being read"));
    ASSERT_EQ(g.data_calls, 1);
    px_dbuf_free(&g.data);
    env_finish(&e);
}

PX_TEST(get_cancel_inside_data_callback)
{
    env_t e;
    s3_client_opts_t o = {.get_chunk = S3_GET_CHUNK_MIN};
    env_start_opts(&e, &o);
    uint8_t big[4000];
    memset(big, 'y', sizeof(big));
    obj_put(&e.fake, "k", 1, big, sizeof(big));
    pauser_t p;
    memset(&p, 0, sizeof(p));
    p.cancel_at = 2;
    px_dbuf_init(&p.r.data, 1 << 20);
    uv_timer_init(&e.loop, &p.t);
    ASSERT_OK(s3_get_object(e.c, BUCKET, "k", pausing_data_cb, pauser_done_cb, &p, &p.op));
    run(&e);
    ASSERT_EQ(p.r.data_calls, 2);
    ASSERT_EQ(p.r.calls, 0); /* canceled: no done callback */
    ASSERT_EQ(e.fake.gets, 2);
    ASSERT_EQ(s3_client_ops(e.c), 0);
    uv_close((uv_handle_t *)&p.t, NULL);
    px_dbuf_free(&p.r.data);
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Listing, batch delete, staging cleanup
 */

PX_TEST(list_pages_and_decoding)
{
    env_t e;
    env_start(&e);
    const char *names[] = {"tmp/a",   "tmp/b c", "tmp/d+e", "tmp/f\x01g",
                           "tmp/h&i", "other/x", "tmp/j"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++)
        obj_put(&e.fake, names[i], strlen(names[i]), (const uint8_t *)"x", 1);
    res_t all = {0};
    char token[1300] = "";
    int pages = 0;
    do {
        res_t r = {0};
        s3_list_opts_t lo = {
            .prefix = "tmp/", .max_keys = 2, .continuation_token = token[0] ? token : NULL};
        ASSERT_OK(s3_list_objects(e.c, BUCKET, &lo, list_cb, &r, NULL));
        wait_calls(&e, &r, 1);
        ASSERT(r.ok);
        for (size_t i = 0; i < r.nkeys; i++) {
            memcpy(all.keys[all.nkeys], r.keys[i], r.key_lens[i] + 1);
            all.nkeys++;
        }
        snprintf(token, sizeof(token), "%s", r.token);
        pages++;
        ASSERT(pages < 10);
    } while (token[0]);
    ASSERT_EQ(pages, 3);
    ASSERT_EQ(all.nkeys, 6);
    ASSERT_STR_EQ(all.keys[0], "tmp/a");
    ASSERT_STR_EQ(all.keys[1], "tmp/b c");
    ASSERT_STR_EQ(all.keys[2], "tmp/d+e");
    ASSERT_STR_EQ(all.keys[3], "tmp/f\x01g");
    ASSERT_STR_EQ(all.keys[4], "tmp/h&i");
    ASSERT_STR_EQ(all.keys[5], "tmp/j");
    /* The request asked for URL-encoded keys, with the query signed as sent. */
    ASSERT(strstr(e.fake.log[0].target, "list-type=2&encoding-type=url&prefix=tmp%2F&max-keys=2"));
    ASSERT(strstr(e.fake.log[1].target, "continuation-token=tok-"));
    env_finish(&e);
}

PX_TEST(delete_objects_batch)
{
    env_t e;
    env_start(&e);
    put_sync(&e, "tmp/1", "a");
    put_sync(&e, "tmp/2&<x>", "b");
    put_sync(&e, "tmp/deny-me", "c");
    e.fake.deny = "deny";
    const char *keys[] = {"tmp/1", "tmp/2&<x>", "tmp/deny-me", "tmp/absent"};
    res_t r = {0};
    ASSERT_OK(s3_delete_objects(e.c, BUCKET, keys, 4, delobjs_cb, &r, NULL));
    wait_calls(&e, &r, 1);
    ASSERT(r.ok);
    ASSERT_EQ(r.nerrors, 1);
    ASSERT_STR_EQ(r.first_error_key, "tmp/deny-me");
    ASSERT_EQ(e.fake.nobjs, 1);
    ASSERT_EQ(e.fake.batch_deletes, 1);
    ASSERT_STR_EQ(e.fake.log[e.fake.nlog - 1].ctype, "application/xml");
    env_finish(&e);
}

PX_TEST(stage_cleanup_walks_pages)
{
    env_t e;
    env_start(&e);
    e.fake.page_max = 2; /* force several pages */
    s3_stage_t *st;
    ASSERT_OK(s3_stage_new("s3://" BUCKET "/tmp/", &st, NULL));
    px_dbuf_t k;
    px_dbuf_init(&k, 4096);
    const char *names[] = {"a.csv", "b.csv", "sub/c.csv", "d\x01.csv", "e.csv"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++) {
        px_dbuf_reset(&k);
        ASSERT_OK(s3_stage_key(st, names[i], &k));
        obj_put(&e.fake, (const char *)k.data, k.len, (const uint8_t *)"1", 1);
    }
    /* Neighbours that must survive: the tempdir itself and a sibling stage. */
    obj_put(&e.fake, "tmp/keep", 8, (const uint8_t *)"1", 1);
    obj_put(&e.fake, "tmp/zzz/keep", 12, (const uint8_t *)"1", 1);
    res_t r = {0};
    ASSERT_OK(s3_stage_cleanup(e.c, st, cleanup_cb, &r, NULL));
    s3_stage_free(st); /* the op copied what it needs */
    wait_calls(&e, &r, 1);
    if (!r.ok)
        PX_FAIL("cleanup: %s %s", r.err.s3_code, r.err.message);
    ASSERT_EQ(r.total, 5);
    ASSERT_EQ(e.fake.nobjs, 2);
    ASSERT(obj_find(&e.fake, "tmp/keep", 8) && obj_find(&e.fake, "tmp/zzz/keep", 12));
    /* The key XML cannot carry went alone, the others in batches. */
    ASSERT_EQ(e.fake.single_deletes, 1);
    ASSERT(e.fake.batch_deletes >= 2);
    px_dbuf_free(&k);
    env_finish(&e);
}

PX_TEST(delete_prefix_refusals_and_partial_failure)
{
    env_t e;
    env_start(&e);
    obj_put(&e.fake, "tmp/s/1", 7, (const uint8_t *)"1", 1);
    obj_put(&e.fake, "tmp/s/deny", 10, (const uint8_t *)"1", 1);
    obj_put(&e.fake, "tmp/s/2", 7, (const uint8_t *)"1", 1);
    e.fake.deny = "deny";
    res_t r = {0};
    ASSERT_OK(s3_delete_prefix(e.c, BUCKET, "tmp/s/", cleanup_cb, &r, NULL));
    wait_calls(&e, &r, 1);
    ASSERT(!r.ok);
    ASSERT_EQ(r.err.code, S3_E_HTTP);
    ASSERT_STR_EQ(r.err.s3_code, "AccessDenied");
    ASSERT(strstr(r.err.message, "1 object(s) under the prefix could not be deleted"));
    ASSERT_EQ(r.total, 2);
    ASSERT_EQ(e.fake.nobjs, 1);

    /* A listing with a key outside the prefix stops everything before any delete. */
    obj_put(&e.fake, "tmp/t/1", 7, (const uint8_t *)"1", 1);
    e.fake.list_outside = true;
    int before = e.fake.batch_deletes;
    res_t r2 = {0};
    ASSERT_OK(s3_delete_prefix(e.c, BUCKET, "tmp/t/", cleanup_cb, &r2, NULL));
    wait_calls(&e, &r2, 1);
    ASSERT(!r2.ok);
    ASSERT_EQ(r2.err.code, S3_E_PARSE);
    ASSERT_EQ(e.fake.batch_deletes, before);
    ASSERT(obj_find(&e.fake, "tmp/t/1", 7));
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle
 */

PX_TEST(lifecycle_get_and_check)
{
    env_t e;
    env_start(&e);
    res_t r = {0};
    ASSERT_OK(s3_get_bucket_lifecycle(e.c, BUCKET, lifecycle_cb, &r, NULL));
    wait_calls(&e, &r, 1);
    ASSERT(r.ok && r.lc_null); /* 404 NoSuchLifecycleConfiguration: no rules */
    ASSERT(strstr(e.fake.log[0].target, "?lifecycle"));

    res_t c1 = {0};
    ASSERT_OK(s3_lifecycle_check(e.c, "s3a://AKIAX:secret@" BUCKET "/tmp", check_cb, &c1, NULL));
    wait_calls(&e, &c1, 1);
    ASSERT_EQ(c1.verdict, S3_LIFECYCLE_NOT_COVERED);
    ASSERT(strncmp(c1.message, "The S3 bucket " BUCKET " does not have an object lifecycle", 54) ==
           0);

    e.fake.lifecycle = "<LifecycleConfiguration><Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix>"
                       "</Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>"
                       "</Rule><Rule><ID>tmp-rule</ID><Filter><And><Prefix>tmp/</Prefix></And>"
                       "</Filter><Status>Enabled</Status><Expiration><Days>1</Days>"
                       "</Expiration></Rule></LifecycleConfiguration>";
    res_t c2 = {0};
    ASSERT_OK(s3_lifecycle_check(e.c, "s3://" BUCKET "/tmp", check_cb, &c2, NULL));
    wait_calls(&e, &c2, 1);
    ASSERT_EQ(c2.verdict, S3_LIFECYCLE_COVERED);
    ASSERT_STR_EQ(c2.rule_id, "tmp-rule");
    ASSERT_STR_EQ(c2.message, "The S3 bucket " BUCKET " has lifecycle rule 'tmp-rule' covering "
                              "s3://" BUCKET "/tmp");

    res_t c3 = {0};
    ASSERT_OK(s3_lifecycle_check(e.c, "s3://" BUCKET "/other/", check_cb, &c3, NULL));
    wait_calls(&e, &c3, 1);
    ASSERT_EQ(c3.verdict, S3_LIFECYCLE_NOT_COVERED);

    e.fake.lifecycle_status = 403;
    res_t c4 = {0};
    ASSERT_OK(s3_lifecycle_check(e.c, "s3://" BUCKET "/tmp/", check_cb, &c4, NULL));
    wait_calls(&e, &c4, 1);
    ASSERT_EQ(c4.verdict, S3_LIFECYCLE_UNKNOWN);
    ASSERT_STR_EQ(c4.err.s3_code, "AccessDenied");
    ASSERT_STR_EQ(c4.message, "An error occurred while trying to read the S3 bucket lifecycle "
                              "configuration: Access Denied (AccessDenied)");

    ASSERT_EQ(s3_lifecycle_check(e.c, "https://x/y", check_cb, &c4, NULL), S3_E_URL);
    /* Canceling a check frees its context (checked by the leak-free loop close and ASan). */
    s3_op_t *op;
    res_t c5 = {0};
    ASSERT_OK(s3_lifecycle_check(e.c, "s3://" BUCKET "/tmp/", check_cb, &c5, &op));
    s3_op_cancel(op);
    run(&e);
    ASSERT_EQ(c5.calls, 0);
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Multipart upload
 */

PX_TEST(multipart_upload)
{
    env_t e;
    env_start(&e);
    size_t n1 = S3_PART_MIN + 17, n2 = 100;
    uint8_t *p1 = malloc(n1), *p2 = malloc(n2);
    for (size_t i = 0; i < n1; i++)
        p1[i] = (uint8_t)(i % 251);
    memset(p2, 'z', n2);
    res_t r = {0};
    s3_upload_t *up;
    ASSERT_OK(s3_upload_new(e.c, BUCKET, "tmp/stage/data.csv", "text/csv", upload_cb, &r, &up));
    ASSERT(s3_upload_id(up) == NULL);
    ASSERT_EQ(s3_upload_complete(up, upload_cb, &r), UV_EBUSY);
    wait_calls(&e, &r, 1);
    ASSERT(r.ok && r.up == up);
    ASSERT_STR_EQ(s3_upload_id(up), "upload-1");
    ASSERT_STR_EQ(e.fake.log[0].ctype, "text/csv");
    ASSERT_EQ(s3_upload_complete(up, upload_cb, &r), UV_EINVAL); /* no parts yet */

    ASSERT_OK(s3_upload_part(up, p1, n1, upload_cb, &r));
    ASSERT_EQ(s3_upload_part(up, p2, n2, upload_cb, &r), UV_EBUSY); /* one step at a time */
    wait_calls(&e, &r, 2);
    ASSERT(r.ok);
    /* Large part over http: hashed (off the loop) into the signature. */
    char sha[65];
    hex_sha256(p1, n1, sha);
    ASSERT_STR_EQ(e.fake.log[1].sha, sha);
    ASSERT(strstr(e.fake.log[1].target, "?uploadId=upload-1&partNumber=1"));

    ASSERT_OK(s3_upload_part(up, p2, n2, upload_cb, &r));
    wait_calls(&e, &r, 3);
    ASSERT(r.ok);
    /* A short part was the last one. */
    ASSERT_EQ(s3_upload_part(up, p2, n2, upload_cb, &r), UV_EINVAL);
    ASSERT_EQ(s3_upload_parts(up), 2);
    ASSERT_EQ(s3_upload_bytes(up), n1 + n2);

    e.fake.complete_errors = 1; /* 200 with <Error>InternalError: retried */
    ASSERT_OK(s3_upload_complete(up, upload_cb, &r));
    wait_calls(&e, &r, 4);
    if (!r.ok)
        PX_FAIL("complete: %s %s", r.err.s3_code, r.err.message);
    ASSERT_EQ(e.fake.completes, 2);
    ASSERT_STR_EQ(s3_upload_etag(up), "\"fake-2\"");
    obj_t *o = obj_find(&e.fake, "tmp/stage/data.csv", 18);
    ASSERT(o && o->len == n1 + n2);
    ASSERT_MEM_EQ(o->data, p1, n1);
    ASSERT_MEM_EQ(o->data + n1, p2, n2);
    ASSERT_EQ(s3_upload_abort(up, upload_cb, &r), PX_E_STATE);
    int before = e.fake.requests;
    s3_upload_free(up); /* completed: nothing to abort */
    run(&e);
    ASSERT_EQ(e.fake.requests, before);
    free(p1);
    free(p2);
    env_finish(&e);
}

PX_TEST(multipart_complete_error_in_200_exhausted)
{
    env_t e;
    env_start(&e);
    res_t r = {0};
    s3_upload_t *up;
    ASSERT_OK(s3_upload_new(e.c, BUCKET, "k", NULL, upload_cb, &r, &up));
    wait_calls(&e, &r, 1);
    ASSERT_OK(s3_upload_part(up, (const uint8_t *)"tiny", 4, upload_cb, &r));
    wait_calls(&e, &r, 2);
    e.fake.complete_errors = 5;
    ASSERT_OK(s3_upload_complete(up, upload_cb, &r));
    wait_calls(&e, &r, 3);
    ASSERT(!r.ok);
    ASSERT_EQ(r.err.code, S3_E_HTTP);
    ASSERT_EQ(r.err.http_status, 200);
    ASSERT_STR_EQ(r.err.s3_code, "InternalError");
    ASSERT_EQ(e.fake.completes, 3); /* first try and two retries */
    /* The upload is still there: abort it. */
    ASSERT_OK(s3_upload_abort(up, upload_cb, &r));
    wait_calls(&e, &r, 4);
    ASSERT(r.ok);
    ASSERT_EQ(e.fake.aborts, 1);
    s3_upload_free(up);
    env_finish(&e);
}

PX_TEST(multipart_free_aborts_in_background)
{
    env_t e;
    env_start(&e);
    res_t r = {0};
    s3_upload_t *up;
    ASSERT_OK(s3_upload_new(e.c, BUCKET, "k", NULL, upload_cb, &r, &up));
    wait_calls(&e, &r, 1);
    ASSERT_OK(s3_upload_part(up, (const uint8_t *)"data", 4, upload_cb, &r));
    /* Freed with a part in flight: no more callbacks, and the upload is aborted. */
    s3_upload_free(up);
    run(&e);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(e.fake.aborts, 1);
    ASSERT_EQ(s3_client_ops(e.c), 0);

    /* A failed create leaves nothing to abort. */
    e.fake.fail_count = 1;
    e.fake.fail_status = 403;
    e.fake.fail_code = "AccessDenied";
    res_t r2 = {0};
    ASSERT_OK(s3_upload_new(e.c, BUCKET, "k2", NULL, upload_cb, &r2, &up));
    wait_calls(&e, &r2, 1);
    ASSERT(!r2.ok);
    ASSERT_STR_EQ(r2.err.s3_code, "AccessDenied");
    ASSERT_EQ(s3_upload_part(up, (const uint8_t *)"x", 1, upload_cb, &r2), PX_E_STATE);
    s3_upload_free(up);
    run(&e);
    ASSERT_EQ(e.fake.aborts, 1);
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Errors, retries, skew, regions
 */

PX_TEST(retries_on_slowdown_and_500)
{
    env_t e;
    env_start(&e);
    e.fake.fail_count = 2;
    e.fake.fail_status = 503;
    e.fake.fail_code = "SlowDown";
    put_sync(&e, "k", "v");
    ASSERT_EQ(e.fake.requests, 3);

    e.fake.fail_count = 10;
    e.fake.fail_status = 500;
    e.fake.fail_code = "InternalError";
    res_t r = {0};
    ASSERT_OK(s3_head_object(e.c, BUCKET, "k", head_cb, &r, NULL));
    wait_calls(&e, &r, 1);
    ASSERT(!r.ok);
    ASSERT_EQ(r.err.code, S3_E_HTTP);
    ASSERT(r.err.unreachable);
    ASSERT_EQ(r.err.http_status, 500);
    ASSERT_EQ(e.fake.requests, 6); /* 3 attempts */
    e.fake.fail_count = 0;

    e.fake.fail_count = 10;
    e.fake.fail_status = 503;
    e.fake.fail_code = "SlowDown";
    res_t r2 = {0};
    ASSERT_OK(s3_delete_object(e.c, BUCKET, "k", done_cb, &r2, NULL));
    wait_calls(&e, &r2, 1);
    ASSERT_EQ(r2.err.code, AUTH_E_THROTTLED);
    ASSERT_STR_EQ(r2.err.s3_code, "SlowDown");
    e.fake.fail_count = 0;
    env_finish(&e);
}

PX_TEST(signature_error_is_reported)
{
    env_t e;
    static auth_aws_keys_t wrong = {AKID, "wrongSecret000000000000000000000000000", NULL};
    s3_client_opts_t o = {.keys = &wrong};
    env_start_opts(&e, &o);
    res_t r = {0};
    ASSERT_OK(s3_put_object(e.c, BUCKET, "k", (const uint8_t *)"v", 1, NULL, put_cb, &r, NULL));
    wait_calls(&e, &r, 1);
    ASSERT(!r.ok);
    ASSERT_EQ(r.err.code, S3_E_HTTP);
    ASSERT_EQ(r.err.http_status, 403);
    ASSERT_STR_EQ(r.err.s3_code, "SignatureDoesNotMatch");
    ASSERT(strncmp(r.err.message, "The request signature we calculated", 35) == 0);
    ASSERT(!r.err.unreachable);
    ASSERT_EQ(e.fake.requests, 1); /* not a skew: no retry */
    e.fake.sig_bad = 0;            /* expected here */
    env_finish(&e);
}

PX_TEST(clock_skew_is_corrected)
{
    env_t e;
    env_start(&e);
    e.fake.skew_s = 3600;
    put_sync(&e, "k", "v");
    ASSERT_EQ(e.fake.requests, 2);
    ASSERT(llabs((long long)(e.fake.log[1].amz_date - (time(NULL) + 3600))) < 120);
    ASSERT(auth_http_clock_skew_ms(e.http) > 3500000);
    env_finish(&e);
}

PX_TEST(bucket_region_redirect)
{
    env_t e;
    env_start(&e);
    e.fake.region = "eu-west-1";
    put_sync(&e, "k", "v");
    ASSERT_EQ(e.fake.requests, 2);
    ASSERT_STR_EQ(e.fake.log[0].scope_region, "us-east-1");
    ASSERT_STR_EQ(e.fake.log[1].scope_region, "eu-west-1");
    /* Remembered: the next request goes to the right region at once. */
    put_sync(&e, "k2", "v");
    ASSERT_EQ(e.fake.requests, 3);
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Timeouts, cancel, close
 */

PX_TEST(timeout_and_cancel)
{
    env_t e;
    s3_client_opts_t o = {.timeout_ms = 300, .max_attempts = 1};
    env_start_opts(&e, &o);
    e.fake.stall = true;
    res_t r = {0};
    ASSERT_OK(s3_head_object(e.c, BUCKET, "k", head_cb, &r, NULL));
    wait_calls(&e, &r, 1);
    ASSERT_EQ(r.err.code, AUTH_E_TIMEOUT);
    ASSERT(r.err.unreachable);

    res_t r2 = {0};
    s3_op_t *op;
    ASSERT_OK(s3_head_object(e.c, BUCKET, "k", head_cb, &r2, &op));
    s3_op_cancel(op);
    run(&e);
    ASSERT_EQ(r2.calls, 0);
    env_finish(&e);
}

PX_TEST(close_cancels_everything)
{
    env_t e;
    env_start(&e);
    e.fake.stall = true;
    res_t r1 = {0}, r2 = {0}, r3 = {0};
    s3_upload_t *up;
    ASSERT_OK(s3_head_object(e.c, BUCKET, "k", head_cb, &r1, NULL));
    ASSERT_OK(s3_upload_new(e.c, BUCKET, "k", NULL, upload_cb, &r2, &up));
    uint8_t *big = calloc(1, S3_PART_MIN); /* would be hashed on the thread pool */
    ASSERT_OK(s3_put_object(e.c, BUCKET, "big", big, 1 << 20, NULL, put_cb, &r3, NULL));
    uv_run(&e.loop, UV_RUN_NOWAIT);
    s3_client_close(e.c, set_flag, &e.client_closed);
    ASSERT_EQ(r1.calls + r2.calls + r3.calls, 0); /* not from inside close */
    ASSERT_EQ(s3_head_object(e.c, BUCKET, "k", head_cb, &r1, NULL), PX_E_SHUTDOWN);
    run(&e);
    ASSERT(e.client_closed);
    ASSERT_EQ(r1.calls, 1);
    ASSERT_EQ(r1.err.code, AUTH_E_CANCELED);
    ASSERT_EQ(r2.calls, 1);
    ASSERT_EQ(r2.err.code, AUTH_E_CANCELED);
    ASSERT_EQ(r3.calls, 1);
    ASSERT_EQ(r3.err.code, AUTH_E_CANCELED);
    /* The detached upload handle is still ours to free. */
    ASSERT_EQ(s3_upload_abort(up, upload_cb, &r2), PX_E_SHUTDOWN);
    s3_upload_free(up);
    free(big);
    e.c = NULL;
    env_finish(&e);
}

/* ---------------------------------------------------------------------------------------------
 * Credentials from the provider chain and from the tempdir URL
 */

static cfg_t *load_cfg(const char *text)
{
    cfg_t *c = NULL;
    char err[1024];
    char *const empty_env[] = {NULL};
    cfg_load_opts_t o = {.path = "test.ini", .text = text, .envp = empty_env};
    if (cfg_load(&o, &c, err, sizeof(err)) != 0)
        PX_FAIL("config: %s", err);
    return c;
}

PX_TEST(keys_from_the_chain_and_from_tempdir)
{
    env_t e;
    memset(&e, 0, sizeof(e));
    ASSERT_OK(uv_loop_init(&e.loop));
    ASSERT_OK(ts_start(&e.loop, handler, &e.fake, &e.srv, &e.port));
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", e.port);
    setenv("AWS_ACCESS_KEY_ID", AKID, 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("AWS_SESSION_TOKEN", TOKEN, 1);
    setenv("AWS_REGION", "eu-central-1", 1);
    setenv("AWS_ENDPOINT_URL_S3", ep, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    unsetenv("AWS_PROFILE");
    cfg_t *cfg = load_cfg("[upstream]\nauth = iam\nhost = localhost\n[iam]\n"
                          "cluster_identifier = c1\n[s3]\ntempdir = s3://" BUCKET "/tmp/\n");
    auth_iam_t *iam;
    ASSERT_OK(auth_iam_new(&e.loop, cfg, &iam));
    e.fake.token = TOKEN;
    e.fake.region = "eu-central-1";
    const char *why = NULL;
    ASSERT_OK(s3_client_new_from_cfg(&e.loop, iam, cfg, NULL, NULL, &e.c, &why));
    put_sync(&e, "from-chain", "1");
    ASSERT(e.fake.log[0].token);
    ASSERT_STR_EQ(e.fake.log[0].scope_region, "eu-central-1");
    s3_client_close(e.c, NULL, NULL);
    run(&e);
    cfg_unref(cfg);

    /* Keys in the tempdir URL win over the chain (which would send a session token). */
    e.fake.token = NULL;
    e.fake.region = "ap-south-1";
    cfg = load_cfg("[upstream]\nauth = iam\nhost = localhost\n[iam]\ncluster_identifier = c1\n"
                   "[s3]\ntempdir = s3a://" AKID ":" SECRET "@" BUCKET "/tmp/\n"
                   "tempdir_region = ap-south-1\n");
    ASSERT_OK(s3_client_new_from_cfg(&e.loop, iam, cfg, NULL, NULL, &e.c, &why));
    put_sync(&e, "from-url", "2");
    logent_t *le = &e.fake.log[e.fake.nlog - 1];
    ASSERT(!le->token);
    ASSERT_STR_EQ(le->scope_region, "ap-south-1");
    s3_client_close(e.c, NULL, NULL);
    e.c = NULL;
    run(&e);
    cfg_unref(cfg);

    cfg = load_cfg("[upstream]\nauth = iam\nhost = localhost\n[iam]\ncluster_identifier = c1\n");
    ASSERT_EQ(s3_client_new_from_cfg(&e.loop, iam, cfg, NULL, NULL, &e.c, &why), S3_E_URL);
    ASSERT(why && strstr(why, "tempdir"));
    cfg_unref(cfg);

    bool closed = false;
    auth_iam_close(iam, set_flag, &closed);
    ts_stop(e.srv);
    run(&e);
    ASSERT(closed);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL_S3");
    if (e.fake.sig_bad)
        PX_FAIL("bad signature: %s", e.fake.sig_err);
    fake_free(&e.fake);
    px_test_loop_close(&e.loop);
}

/* ---------------------------------------------------------------------------------------------
 * Allocation failures while starting operations: each entry point, failing at every allocation
 * in turn, either returns an error and never calls back, or starts and completes normally; ASan
 * checks that nothing leaks either way.
 */

static int start_op(env_t *e, int which, res_t *r, s3_upload_t **up)
{
    static const char *const keys[] = {"tmp/gone1", "tmp/gone2"};
    s3_list_opts_t lo = {.prefix = "tmp/", .max_keys = 10};
    switch (which) {
    case 0:
        return s3_put_object(e->c, BUCKET, "tmp/a", (const uint8_t *)"abc", 3, "text/plain", put_cb,
                             r, NULL);
    case 1:
        return s3_get_object(e->c, BUCKET, "tmp/a", get_data_cb, get_done_cb, r, NULL);
    case 2:
        return s3_list_objects(e->c, BUCKET, &lo, list_cb, r, NULL);
    case 3:
        return s3_delete_objects(e->c, BUCKET, keys, 2, delobjs_cb, r, NULL);
    case 4:
        return s3_upload_new(e->c, BUCKET, "tmp/u", NULL, upload_cb, r, up);
    case 5:
        return s3_lifecycle_check(e->c, "s3://" BUCKET "/tmp/", check_cb, r, NULL);
    case 6:
        return s3_delete_prefix(e->c, BUCKET, "tmp/x/", cleanup_cb, r, NULL);
    default:
        return s3_head_object(e->c, BUCKET, "tmp/a", head_cb, r, NULL);
    }
}

PX_TEST(start_paths_survive_allocation_failures)
{
    env_t e;
    env_start(&e);
    put_sync(&e, "tmp/a", "abc");
    for (int which = 0; which < 8; which++) {
        bool started = false;
        for (long n = 0; !started && n < 200; n++) {
            res_t r = {0};
            px_dbuf_init(&r.data, 1 << 16);
            s3_upload_t *up = NULL;
            px_alloc_fail_after(n);
            int rc = start_op(&e, which, &r, &up);
            px_alloc_fail_after(-1);
            if (rc == 0) {
                /* Started: it ends in success, or in UV_ENOMEM reported through the callback
                 * (an allocation that failed inside the synchronous part of the start, such as
                 * signing, which auth_aws_call reports from the loop). */
                wait_calls(&e, &r, 1);
                bool ok = which == 5 ? r.verdict == S3_LIFECYCLE_NOT_COVERED : r.ok;
                if (!ok && r.err.code != UV_ENOMEM)
                    PX_FAIL("op %d after %ld allocations: %d %s %s", which, n, r.err.code,
                            r.err.s3_code, r.err.message);
                started = ok;
            } else {
                if (rc != UV_ENOMEM)
                    PX_FAIL("op %d after %ld allocations returned %d (%s)", which, n, rc,
                            px_strerror(rc));
                run(&e);
                ASSERT_EQ(r.calls, 0);
            }
            if (up) {
                s3_upload_free(up); /* a created upload is aborted in the background */
                run(&e);
            }
            px_dbuf_free(&r.data);
            if (s3_client_ops(e.c) != 0)
                PX_FAIL("op %d after %ld allocations (rc %d): %zu op(s) left", which, n, rc,
                        s3_client_ops(e.c));
        }
        if (!started)
            PX_FAIL("op %d never started", which);
    }
    run(&e);
    env_finish(&e);
}
