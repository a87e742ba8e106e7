/*
 * S3's XML documents as pure functions: one small expat walker (a stack of local element names,
 * the text of leaf elements, the guards of s3_xml.h) and, on top of it, one parser per document
 * S3 answers with, plus the two request bodies we build. Nothing here does I/O, logs or reads
 * the clock; parsers either fill their output completely or leave it empty.
 *
 * Values are kept byte for byte (object keys may legitimately start or end with spaces); only
 * booleans, numbers, codes and statuses are trimmed. Text that ends up in an error message goes
 * through auth_aws_sanitize, so a peer cannot put control characters into our logs.
 */
#include "s3_xml.h"

#include "auth_aws.h"
#include "px_alloc.h"
#include "px_err.h"

#include <expat.h>
#include <stdarg.h>
#include <string.h>
#include <uv.h>

#define NAME_MAX_LEN 48

/* ---------------------------------------------------------------------------------------------
 * The walker
 *
 * expat calls us per element start, end and piece of text. We keep the local names of the open
 * elements (so a parser asks "am I at ListBucketResult/Contents/Key?") and the text of the
 * current element; a document parser is then just two small functions reacting to paths. Text
 * is handed over only for leaf elements: mixed content (indentation between children) is noise
 * in every S3 document.
 */

typedef struct xw xw_t;
/* Called at every element start (depth already counts it) and end (with the text of a leaf
 * element; "" for an element that had children). They report failures through xw_fail. */
typedef void (*xw_start_fn)(xw_t *w);
typedef void (*xw_end_fn)(xw_t *w, const char *text, size_t len);

struct xw {
    XML_Parser parser;
    int depth; /* of the current element; the root is 1 */
    char names[S3_XML_MAX_DEPTH + 1][NAME_MAX_LEN];
    bool has_child[S3_XML_MAX_DEPTH + 1];
    px_dbuf_t text;
    int err;
    xw_start_fn start;
    xw_end_fn end;
    void *ud;
};

static void xw_fail(xw_t *w, int err)
{
    if (!w->err)
        w->err = err;
    XML_StopParser(w->parser, XML_FALSE);
}

/* Whether the element stack is exactly `path` ("A/B/C"). */
static bool xw_is(const xw_t *w, const char *path)
{
    int d = 1;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (d > w->depth || strlen(w->names[d]) != len || memcmp(w->names[d], p, len) != 0)
            return false;
        d++;
        p += len;
        if (*p == '/')
            p++;
    }
    return d == w->depth + 1;
}

static void XMLCALL xw_on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    xw_t *w = ud;
    PX_UNUSED(attrs);
    if (w->err)
        return;
    if (w->depth >= S3_XML_MAX_DEPTH) {
        xw_fail(w, S3_E_PARSE);
        return;
    }
    if (w->depth > 0)
        w->has_child[w->depth] = true;
    w->depth++;
    /* Namespace prefixes are dropped: S3 uses a default namespace, others may not. */
    const char *local = strrchr(name, ':');
    local = local ? local + 1 : name;
    size_t len = strlen(local);
    if (len >= NAME_MAX_LEN)
        len = NAME_MAX_LEN - 1; /* long names match nothing we look for */
    memcpy(w->names[w->depth], local, len);
    w->names[w->depth][len] = '\0';
    w->has_child[w->depth] = false;
    px_dbuf_reset(&w->text);
    if (w->start)
        w->start(w);
}

static void XMLCALL xw_on_end(void *ud, const XML_Char *name)
{
    xw_t *w = ud;
    PX_UNUSED(name);
    if (w->err)
        return;
    if (w->end) {
        if (w->has_child[w->depth]) {
            w->end(w, "", 0);
        } else {
            const char *t = px_dbuf_cstr(&w->text);
            if (!t) {
                xw_fail(w, UV_ENOMEM);
                return;
            }
            w->end(w, t, w->text.len);
        }
    }
    px_dbuf_reset(&w->text);
    w->depth--;
}

static void XMLCALL xw_on_text(void *ud, const XML_Char *s, int len)
{
    xw_t *w = ud;
    if (w->err || len <= 0)
        return;
    /* Text between child elements (indentation) is dropped with the rest of a non-leaf's text;
     * only leaves keep theirs, and only up to the bound. */
    if (w->depth > 0 && w->has_child[w->depth])
        return;
    if (w->text.len + (size_t)len > S3_XML_MAX_TEXT) {
        xw_fail(w, S3_E_PARSE);
        return;
    }
    px_dbuf_put(&w->text, s, (size_t)len);
    if (w->text.failed)
        xw_fail(w, UV_ENOMEM);
}

static void XMLCALL xw_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                                  const XML_Char *pubid, int has_internal_subset)
{
    PX_UNUSED(name);
    PX_UNUSED(sysid);
    PX_UNUSED(pubid);
    PX_UNUSED(has_internal_subset);
    /* S3 never sends a DTD; refusing one rules out entity expansion of every kind. */
    xw_fail(ud, S3_E_PARSE);
}

static void XMLCALL xw_on_entity_decl(void *ud, const XML_Char *name, int is_param,
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
    xw_fail(ud, S3_E_PARSE);
}

static void *xw_malloc(size_t n)
{
    return px_malloc(n);
}

static void *xw_realloc(void *p, size_t n)
{
    return px_realloc(p, n);
}

static void xw_free(void *p)
{
    px_free(p);
}

/* Runs the walker over a whole document. 0, S3_E_PARSE or UV_ENOMEM. `root` is the only
 * accepted root element (checked by the caller's start function through xw_is). */
static int xw_run(const uint8_t *body, size_t n, xw_start_fn start, xw_end_fn end, void *ud)
{
    if (!body || n == 0 || n > S3_XML_MAX_INPUT)
        return S3_E_PARSE;
    xw_t *w = px_calloc(1, sizeof(*w));
    if (!w)
        return UV_ENOMEM;
    w->start = start;
    w->end = end;
    w->ud = ud;
    px_dbuf_init(&w->text, S3_XML_MAX_TEXT + 1);
    static const XML_Memory_Handling_Suite mem = {xw_malloc, xw_realloc, xw_free};
    w->parser = XML_ParserCreate_MM(NULL, &mem, NULL);
    if (!w->parser) {
        px_dbuf_free(&w->text);
        px_free(w);
        return UV_ENOMEM;
    }
    XML_SetUserData(w->parser, w);
    XML_SetElementHandler(w->parser, xw_on_start, xw_on_end);
    XML_SetCharacterDataHandler(w->parser, xw_on_text);
    XML_SetStartDoctypeDeclHandler(w->parser, xw_on_doctype);
    XML_SetEntityDeclHandler(w->parser, xw_on_entity_decl);
    if (XML_Parse(w->parser, (const char *)body, (int)n, XML_TRUE) != XML_STATUS_OK && !w->err)
        w->err = XML_GetErrorCode(w->parser) == XML_ERROR_NO_MEMORY ? UV_ENOMEM : S3_E_PARSE;
    int rc = w->err;
    XML_ParserFree(w->parser);
    px_dbuf_free(&w->text);
    px_free(w);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Small value helpers
 */

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r' ||
                      (*s)[*n - 1] == '\n'))
        (*n)--;
}

/* "true" / "false" (trimmed); anything else is a parse error. */
static bool parse_bool(const char *s, size_t n, bool *out)
{
    trim(&s, &n);
    if (n == 4 && memcmp(s, "true", 4) == 0) {
        *out = true;
        return true;
    }
    if (n == 5 && memcmp(s, "false", 5) == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* A decimal uint64 without sign or exponent. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    trim(&s, &n);
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
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

/* Undoes EncodingType=url in place ('+' is a space, %XX a byte, as botocore's unquote_plus).
 * A malformed escape or an encoded NUL (keys never hold one) is a parse error. */
static bool url_decode_inplace(char *s, size_t *len)
{
    size_t o = 0, n = *len;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return false;
            c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            if (c == '\0')
                return false;
            i += 2;
        }
        s[o++] = c;
    }
    s[o] = '\0';
    *len = o;
    return true;
}

static char *dup_n(const char *s, size_t n)
{
    return px_strndup(s, n);
}

/* ---------------------------------------------------------------------------------------------
 * Error documents
 */

typedef struct err_ctx {
    s3_error_t *err;
    bool root_ok;
    bool found;
} err_ctx_t;

static void err_start(xw_t *w)
{
    err_ctx_t *c = w->ud;
    if (w->depth == 1)
        c->root_ok = xw_is(w, "Error") || xw_is(w, "ErrorResponse");
    else if (!c->root_ok)
        xw_fail(w, S3_E_PARSE);
}

static void copy_sanitized(char *dst, size_t cap, const char *s, size_t n, bool do_trim)
{
    if (do_trim)
        trim(&s, &n);
    auth_aws_sanitize(dst, cap, s, n);
}

static void err_end(xw_t *w, const char *t, size_t n)
{
    err_ctx_t *c = w->ud;
    s3_error_t *e = c->err;
    bool top = w->depth == 2 && xw_is(w, "Error/Code");
    bool wrapped = w->depth == 3 && xw_is(w, "ErrorResponse/Error/Code");
    if (top || wrapped) {
        copy_sanitized(e->s3_code, sizeof(e->s3_code), t, n, true);
        c->found = e->s3_code[0] != '\0';
    } else if (xw_is(w, "Error/Message") || xw_is(w, "ErrorResponse/Error/Message")) {
        copy_sanitized(e->message, sizeof(e->message), t, n, true);
    } else if (xw_is(w, "Error/RequestId") || xw_is(w, "ErrorResponse/RequestId")) {
        copy_sanitized(e->request_id, sizeof(e->request_id), t, n, true);
    } else if (xw_is(w, "Error/Region") || xw_is(w, "ErrorResponse/Error/Region")) {
        copy_sanitized(e->region, sizeof(e->region), t, n, true);
    }
}

bool s3_xml_parse_error(const uint8_t *body, size_t n, s3_error_t *err)
{
    /* Parse into a scratch copy, so a half-read document leaves err untouched. */
    s3_error_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    err_ctx_t c = {.err = &tmp};
    if (xw_run(body, n, err_start, err_end, &c) != 0 || !c.found)
        return false;
    memcpy(err->s3_code, tmp.s3_code, sizeof(err->s3_code));
    memcpy(err->message, tmp.message, sizeof(err->message));
    if (tmp.request_id[0])
        memcpy(err->request_id, tmp.request_id, sizeof(err->request_id));
    if (tmp.region[0])
        memcpy(err->region, tmp.region, sizeof(err->region));
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * ListObjectsV2
 */

void s3_list_page_free(s3_list_page_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nobjects; i++) {
        px_free(p->objects[i].key);
        px_free(p->objects[i].etag);
    }
    px_free(p->objects);
    for (size_t i = 0; i < p->nprefixes; i++)
        px_free(p->prefixes[i]);
    px_free(p->prefixes);
    px_free(p->next_token);
    memset(p, 0, sizeof(*p));
}

typedef struct list_ctx {
    s3_list_page_t *page;
    size_t objcap, prefcap;
    bool url_encoded;
    bool saw_truncated;
    bool in_prefix_entry; /* a CommonPrefixes element whose Prefix has not been seen yet */
    bool obj_has_key, obj_has_size;
} list_ctx_t;

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = px_realloc(*arr, ncap * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

static void list_start(xw_t *w)
{
    list_ctx_t *c = w->ud;
    s3_list_page_t *p = c->page;
    if (w->depth == 1) {
        if (!xw_is(w, "ListBucketResult"))
            xw_fail(w, S3_E_PARSE);
        return;
    }
    if (w->depth != 2)
        return;
    if (p->nobjects + p->nprefixes >= S3_XML_MAX_ENTRIES &&
        (xw_is(w, "ListBucketResult/Contents") || xw_is(w, "ListBucketResult/CommonPrefixes"))) {
        xw_fail(w, S3_E_PARSE);
        return;
    }
    if (xw_is(w, "ListBucketResult/Contents")) {
        if (!grow((void **)&p->objects, &c->objcap, p->nobjects, sizeof(*p->objects))) {
            xw_fail(w, UV_ENOMEM);
            return;
        }
        s3_object_t *o = &p->objects[p->nobjects++];
        memset(o, 0, sizeof(*o));
        o->last_modified_ms = -1;
        c->obj_has_key = c->obj_has_size = false;
    } else if (xw_is(w, "ListBucketResult/CommonPrefixes")) {
        c->in_prefix_entry = true;
    }
}

static void list_end(xw_t *w, const char *t, size_t n)
{
    list_ctx_t *c = w->ud;
    s3_list_page_t *p = c->page;
    if (w->depth == 2) {
        if (xw_is(w, "ListBucketResult/IsTruncated")) {
            if (!parse_bool(t, n, &p->truncated))
                xw_fail(w, S3_E_PARSE);
            c->saw_truncated = true;
        } else if (xw_is(w, "ListBucketResult/NextContinuationToken")) {
            px_free(p->next_token);
            if (!(p->next_token = dup_n(t, n)))
                xw_fail(w, UV_ENOMEM);
        } else if (xw_is(w, "ListBucketResult/EncodingType")) {
            trim(&t, &n);
            c->url_encoded = n == 3 && memcmp(t, "url", 3) == 0;
        } else if (xw_is(w, "ListBucketResult/Contents")) {
            /* An entry without a Key or Size is not an object we could act on. */
            if (!c->obj_has_key || !c->obj_has_size)
                xw_fail(w, S3_E_PARSE);
        } else if (xw_is(w, "ListBucketResult/CommonPrefixes")) {
            if (c->in_prefix_entry)
                xw_fail(w, S3_E_PARSE);
        }
        return;
    }
    if (w->depth != 3)
        return;
    if (p->nobjects > 0 && xw_is(w, "ListBucketResult/Contents/Key")) {
        s3_object_t *o = &p->objects[p->nobjects - 1];
        if (c->obj_has_key || n == 0 || memchr(t, '\0', n)) {
            xw_fail(w, S3_E_PARSE);
            return;
        }
        if (!(o->key = dup_n(t, n))) {
            xw_fail(w, UV_ENOMEM);
            return;
        }
        o->key_len = n;
        c->obj_has_key = true;
    } else if (p->nobjects > 0 && xw_is(w, "ListBucketResult/Contents/Size")) {
        if (!parse_u64(t, n, &p->objects[p->nobjects - 1].size))
            xw_fail(w, S3_E_PARSE);
        c->obj_has_size = true;
    } else if (p->nobjects > 0 && xw_is(w, "ListBucketResult/Contents/ETag")) {
        s3_object_t *o = &p->objects[p->nobjects - 1];
        px_free(o->etag);
        if (!(o->etag = dup_n(t, n)))
            xw_fail(w, UV_ENOMEM);
    } else if (p->nobjects > 0 && xw_is(w, "ListBucketResult/Contents/LastModified")) {
        int64_t ms;
        trim(&t, &n);
        if (auth_time_parse_iso8601(t, n, &ms) == 0)
            p->objects[p->nobjects - 1].last_modified_ms = ms;
    } else if (xw_is(w, "ListBucketResult/CommonPrefixes/Prefix")) {
        if (!c->in_prefix_entry || memchr(t, '\0', n)) {
            xw_fail(w, S3_E_PARSE);
            return;
        }
        if (!grow((void **)&p->prefixes, &c->prefcap, p->nprefixes, sizeof(*p->prefixes))) {
            xw_fail(w, UV_ENOMEM);
            return;
        }
        if (!(p->prefixes[p->nprefixes] = dup_n(t, n))) {
            xw_fail(w, UV_ENOMEM);
            return;
        }
        p->nprefixes++;
        c->in_prefix_entry = false;
    }
}

/* Keys and prefixes are decoded only after the whole document is read, because
 * <EncodingType> may come after the entries it applies to. */
int s3_xml_parse_list(const uint8_t *body, size_t n, s3_list_page_t *out)
{
    memset(out, 0, sizeof(*out));
    list_ctx_t c = {.page = out};
    int rc = xw_run(body, n, list_start, list_end, &c);
    /* A page without IsTruncated could be read as "last page" and silently stop a cleanup
     * half-way; a truncated page without a token could loop forever. Both are refused. */
    if (rc == 0 && !c.saw_truncated)
        rc = S3_E_PARSE;
    if (rc == 0 && out->truncated && (!out->next_token || !out->next_token[0]))
        rc = S3_E_PARSE;
    if (rc == 0 && !out->truncated && out->next_token) {
        px_free(out->next_token);
        out->next_token = NULL;
    }
    for (size_t i = 0; rc == 0 && c.url_encoded && i < out->nobjects; i++) {
        if (!url_decode_inplace(out->objects[i].key, &out->objects[i].key_len) ||
            out->objects[i].key_len == 0)
            rc = S3_E_PARSE;
    }
    for (size_t i = 0; rc == 0 && c.url_encoded && i < out->nprefixes; i++) {
        size_t len = strlen(out->prefixes[i]);
        if (!url_decode_inplace(out->prefixes[i], &len))
            rc = S3_E_PARSE;
    }
    for (size_t i = 0; rc == 0 && i < out->nobjects; i++) {
        if (!out->objects[i].etag && !(out->objects[i].etag = px_strdup("")))
            rc = UV_ENOMEM;
    }
    if (rc != 0)
        s3_list_page_free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Lifecycle configuration
 */

void s3_lifecycle_free(s3_lifecycle_t *lc)
{
    if (!lc)
        return;
    for (size_t i = 0; i < lc->nrules; i++) {
        px_free(lc->rules[i].id);
        for (size_t j = 0; j < lc->rules[i].nprefixes; j++)
            px_free(lc->rules[i].prefixes[j]);
    }
    px_free(lc->rules);
    memset(lc, 0, sizeof(*lc));
}

typedef struct lc_ctx {
    s3_lifecycle_t *lc;
    size_t cap;
} lc_ctx_t;

static s3_lifecycle_rule_t *lc_cur(lc_ctx_t *c)
{
    return c->lc->nrules ? &c->lc->rules[c->lc->nrules - 1] : NULL;
}

static void lc_start(xw_t *w)
{
    lc_ctx_t *c = w->ud;
    if (w->depth == 1) {
        if (!xw_is(w, "LifecycleConfiguration"))
            xw_fail(w, S3_E_PARSE);
        return;
    }
    if (xw_is(w, "LifecycleConfiguration/Rule")) {
        if (c->lc->nrules >= S3_LIFECYCLE_MAX_RULES) {
            xw_fail(w, S3_E_PARSE);
            return;
        }
        if (!grow((void **)&c->lc->rules, &c->cap, c->lc->nrules, sizeof(*c->lc->rules))) {
            xw_fail(w, UV_ENOMEM);
            return;
        }
        memset(&c->lc->rules[c->lc->nrules++], 0, sizeof(s3_lifecycle_rule_t));
        return;
    }
    s3_lifecycle_rule_t *r = lc_cur(c);
    if (!r)
        return;
    if (xw_is(w, "LifecycleConfiguration/Rule/Filter"))
        r->has_filter = true;
    else if (xw_is(w, "LifecycleConfiguration/Rule/Expiration"))
        r->expires = true;
    else if (xw_is(w, "LifecycleConfiguration/Rule/Filter/Tag") ||
             xw_is(w, "LifecycleConfiguration/Rule/Filter/And/Tag"))
        r->has_tags = true;
}

static void lc_add_prefix(xw_t *w, s3_lifecycle_rule_t *r, const char *t, size_t n)
{
    if (r->nprefixes >= PX_ARRAY_SIZE(r->prefixes) || memchr(t, '\0', n)) {
        xw_fail(w, S3_E_PARSE);
        return;
    }
    if (!(r->prefixes[r->nprefixes] = dup_n(t, n))) {
        xw_fail(w, UV_ENOMEM);
        return;
    }
    r->nprefixes++;
}

static void lc_end(xw_t *w, const char *t, size_t n)
{
    lc_ctx_t *c = w->ud;
    s3_lifecycle_rule_t *r = lc_cur(c);
    if (!r || w->depth < 3)
        return;
    if (xw_is(w, "LifecycleConfiguration/Rule/ID")) {
        px_free(r->id);
        if (!(r->id = dup_n(t, n)))
            xw_fail(w, UV_ENOMEM);
    } else if (xw_is(w, "LifecycleConfiguration/Rule/Status")) {
        trim(&t, &n);
        r->enabled = n == 7 && memcmp(t, "Enabled", 7) == 0;
    } else if (xw_is(w, "LifecycleConfiguration/Rule/Prefix")) {
        r->has_legacy_prefix = true;
        lc_add_prefix(w, r, t, n);
    } else if (xw_is(w, "LifecycleConfiguration/Rule/Filter/Prefix") ||
               xw_is(w, "LifecycleConfiguration/Rule/Filter/And/Prefix")) {
        lc_add_prefix(w, r, t, n);
    } else if (xw_is(w, "LifecycleConfiguration/Rule/Filter/ObjectSizeGreaterThan") ||
               xw_is(w, "LifecycleConfiguration/Rule/Filter/ObjectSizeLessThan") ||
               xw_is(w, "LifecycleConfiguration/Rule/Filter/And/ObjectSizeGreaterThan") ||
               xw_is(w, "LifecycleConfiguration/Rule/Filter/And/ObjectSizeLessThan")) {
        r->has_size = true;
    }
}

int s3_xml_parse_lifecycle(const uint8_t *body, size_t n, s3_lifecycle_t *out)
{
    memset(out, 0, sizeof(*out));
    lc_ctx_t c = {.lc = out};
    int rc = xw_run(body, n, lc_start, lc_end, &c);
    for (size_t i = 0; rc == 0 && i < out->nrules; i++) {
        if (!out->rules[i].id && !(out->rules[i].id = px_strdup("")))
            rc = UV_ENOMEM;
    }
    if (rc != 0)
        s3_lifecycle_free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Multipart results
 */

typedef struct one_ctx {
    const char *root;
    const char *path;
    char *value;
} one_ctx_t;

static void one_start(xw_t *w)
{
    one_ctx_t *c = w->ud;
    if (w->depth == 1 && !xw_is(w, c->root))
        xw_fail(w, S3_E_PARSE);
}

static void one_end(xw_t *w, const char *t, size_t n)
{
    one_ctx_t *c = w->ud;
    if (!c->value && xw_is(w, c->path) && !(c->value = dup_n(t, n)))
        xw_fail(w, UV_ENOMEM);
}

static bool printable_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f)
            return false;
    }
    return true;
}

int s3_xml_parse_initiate(const uint8_t *body, size_t n, char **upload_id)
{
    *upload_id = NULL;
    one_ctx_t c = {.root = "InitiateMultipartUploadResult",
                   .path = "InitiateMultipartUploadResult/UploadId"};
    int rc = xw_run(body, n, one_start, one_end, &c);
    /* The id goes into query strings: refuse anything that is not a plain token. */
    if (rc == 0 && (!c.value || !printable_token(c.value)))
        rc = S3_E_PARSE;
    if (rc != 0) {
        px_free(c.value);
        return rc;
    }
    *upload_id = c.value;
    return 0;
}

typedef struct complete_ctx {
    bool is_error;
    char *etag;
} complete_ctx_t;

static void complete_start(xw_t *w)
{
    complete_ctx_t *c = w->ud;
    if (w->depth == 1) {
        if (xw_is(w, "Error"))
            c->is_error = true;
        else if (!xw_is(w, "CompleteMultipartUploadResult"))
            xw_fail(w, S3_E_PARSE);
    }
}

static void complete_end(xw_t *w, const char *t, size_t n)
{
    complete_ctx_t *c = w->ud;
    if (!c->is_error && !c->etag && xw_is(w, "CompleteMultipartUploadResult/ETag") &&
        !(c->etag = dup_n(t, n)))
        xw_fail(w, UV_ENOMEM);
}

int s3_xml_parse_complete(const uint8_t *body, size_t n, char **etag, s3_error_t *err)
{
    *etag = NULL;
    complete_ctx_t c = {0};
    int rc = xw_run(body, n, complete_start, complete_end, &c);
    if (rc == 0 && c.is_error) {
        px_free(c.etag);
        if (!s3_xml_parse_error(body, n, err))
            return S3_E_PARSE;
        return S3_E_HTTP;
    }
    if (rc == 0 && !c.etag && !(c.etag = px_strdup("")))
        rc = UV_ENOMEM;
    if (rc != 0) {
        px_free(c.etag);
        return rc;
    }
    *etag = c.etag;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * DeleteObjects results
 */

void s3_delete_result_free(s3_delete_result_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nerrors; i++) {
        px_free(r->errors[i].key);
        px_free(r->errors[i].code);
        px_free(r->errors[i].message);
    }
    px_free(r->errors);
    memset(r, 0, sizeof(*r));
}

typedef struct del_ctx {
    s3_delete_result_t *r;
    size_t cap;
} del_ctx_t;

static void del_start(xw_t *w)
{
    del_ctx_t *c = w->ud;
    if (w->depth == 1) {
        if (!xw_is(w, "DeleteResult"))
            xw_fail(w, S3_E_PARSE);
        return;
    }
    if (xw_is(w, "DeleteResult/Deleted")) {
        c->r->ndeleted++;
    } else if (xw_is(w, "DeleteResult/Error")) {
        if (c->r->nerrors >= S3_XML_MAX_ENTRIES) {
            xw_fail(w, S3_E_PARSE);
            return;
        }
        if (!grow((void **)&c->r->errors, &c->cap, c->r->nerrors, sizeof(*c->r->errors))) {
            xw_fail(w, UV_ENOMEM);
            return;
        }
        memset(&c->r->errors[c->r->nerrors++], 0, sizeof(s3_delete_error_t));
    }
}

static void del_end(xw_t *w, const char *t, size_t n)
{
    del_ctx_t *c = w->ud;
    if (w->depth != 3 || c->r->nerrors == 0)
        return;
    s3_delete_error_t *e = &c->r->errors[c->r->nerrors - 1];
    char **slot = NULL;
    bool sanitize = true;
    if (xw_is(w, "DeleteResult/Error/Key")) {
        slot = &e->key;
        sanitize = false;
    } else if (xw_is(w, "DeleteResult/Error/Code")) {
        slot = &e->code;
    } else if (xw_is(w, "DeleteResult/Error/Message")) {
        slot = &e->message;
    }
    if (!slot || *slot)
        return;
    if (sanitize) {
        char buf[512];
        trim(&t, &n);
        auth_aws_sanitize(buf, sizeof(buf), t, n);
        *slot = px_strdup(buf);
    } else {
        *slot = memchr(t, '\0', n) ? px_strdup("") : dup_n(t, n);
    }
    if (!*slot)
        xw_fail(w, UV_ENOMEM);
}

int s3_xml_parse_delete_result(const uint8_t *body, size_t n, s3_delete_result_t *out)
{
    memset(out, 0, sizeof(*out));
    del_ctx_t c = {.r = out};
    int rc = xw_run(body, n, del_start, del_end, &c);
    for (size_t i = 0; rc == 0 && i < out->nerrors; i++) {
        s3_delete_error_t *e = &out->errors[i];
        if ((!e->key && !(e->key = px_strdup(""))) || (!e->code && !(e->code = px_strdup(""))) ||
            (!e->message && !(e->message = px_strdup(""))))
            rc = UV_ENOMEM;
    }
    if (rc != 0)
        s3_delete_result_free(out);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Request bodies
 *
 * Keys travel inside XML in DeleteObjects. XML 1.0 cannot carry most C0 control characters at
 * all (not even as character references), and parsers normalise CR and CRLF to LF in text, so
 * such keys are refused here (callers delete them one by one, through the URL path) and CR, LF
 * and TAB are written as references to survive byte for byte.
 */

/* Length of the UTF-8 sequence at s (at most n bytes) that XML 1.0 can carry, or 0. */
static size_t xml_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') ? 1 : 0;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates, beyond U+10FFFF, and the two non-characters XML excludes. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff)
        return 0;
    return len;
}

bool s3_xml_text_ok(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = xml_char_len(u + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

bool s3_xml_escape(px_dbuf_t *out, const char *s, size_t n)
{
    if (!s3_xml_text_ok(s, n))
        return false;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        case '\n':
            rep = "&#10;";
            break;
        case '\t':
            rep = "&#9;";
            break;
        default:
            continue;
        }
        px_dbuf_put(out, s + run, i - run);
        px_dbuf_put_cstr(out, rep);
        run = i + 1;
    }
    px_dbuf_put(out, s + run, n - run);
    return true;
}

int s3_xml_build_complete(const char *const *etags, size_t n, px_dbuf_t *out)
{
    if (n == 0 || n > S3_PART_MAX_COUNT)
        return UV_EINVAL;
    size_t start = out->len;
    px_dbuf_put_cstr(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                          "<CompleteMultipartUpload "
                          "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < n; i++) {
        px_dbuf_printf(out, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
        if (!etags[i] || !s3_xml_escape(out, etags[i], strlen(etags[i]))) {
            out->len = start;
            return UV_EINVAL;
        }
        px_dbuf_put_cstr(out, "</ETag></Part>");
    }
    px_dbuf_put_cstr(out, "</CompleteMultipartUpload>");
    return out->failed ? UV_ENOMEM : 0;
}

int s3_xml_build_delete(const char *const *keys, const size_t *key_lens, size_t n, bool quiet,
                        px_dbuf_t *out)
{
    if (n == 0 || n > S3_DELETE_MAX_KEYS)
        return UV_EINVAL;
    size_t start = out->len;
    px_dbuf_put_cstr(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                          "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    if (quiet)
        px_dbuf_put_cstr(out, "<Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++) {
        size_t len = key_lens ? key_lens[i] : (keys[i] ? strlen(keys[i]) : 0);
        px_dbuf_put_cstr(out, "<Object><Key>");
        if (!keys[i] || len == 0 || !s3_xml_escape(out, keys[i], len)) {
            out->len = start;
            return UV_EINVAL;
        }
        px_dbuf_put_cstr(out, "</Key></Object>");
    }
    px_dbuf_put_cstr(out, "</Delete>");
    return out->failed ? UV_ENOMEM : 0;
}
