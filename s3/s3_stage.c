/*
 * Staging areas (s3_stage.h): a unique "<tempdir key>/<uuid>/" prefix per operation, and the
 * prefix cleanup that lists and deletes everything under it. The cleanup is one op walking
 * pages: ListObjectsV2 (1,000 keys) → DeleteObjects for the keys XML can carry → DeleteObject
 * for the others → the next page, until the listing is complete.
 *
 * Deleting is the dangerous direction, so the walk refuses to start on a prefix that is empty or
 * does not end in '/', and refuses to delete any listed key that does not start with the prefix
 * (whatever a misbehaving server lists). It never logs.
 */
#include "s3_stage.h"

#include "px_alloc.h"
#include "px_err.h"
#include "s3_int.h"
#include "s3_url.h"
#include "s3_xml.h"

#include <stdio.h>
#include <string.h>

struct s3_stage {
    char bucket[S3_BUCKET_MAX + 1];
    char *prefix; /* owned; ends in '/' */
    char *url;    /* owned; s3://bucket/prefix */
};

int s3_stage_new(const char *tempdir, s3_stage_t **out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (!tempdir || !*tempdir) {
        *why = "tempdir is not set";
        return S3_E_URL;
    }
    s3_url_t *u = px_calloc(1, sizeof(*u));
    if (!u)
        return UV_ENOMEM;
    int rc = s3_url_parse(tempdir, strlen(tempdir), u, why);
    /* The client carries credentials; the stage never needs them (s3_url_wipe clears the whole
     * struct, so only the secrets go now). */
    px_wipe(u->secret_access_key, sizeof(u->secret_access_key));
    px_wipe(u->access_key_id, sizeof(u->access_key_id));
    if (rc) {
        px_free(u);
        return S3_E_URL;
    }
    char uuid[37];
    rc = s3_uuid4(uuid);
    if (rc) {
        px_free(u);
        *why = "the random number generator failed";
        return rc;
    }
    size_t klen = u->key_len;
    while (klen > 0 && u->key[klen - 1] == '/')
        klen--;
    s3_stage_t *st = px_calloc(1, sizeof(*st));
    px_dbuf_t p, url;
    px_dbuf_init(&p, S3_KEY_MAX + 1);
    px_dbuf_init(&url, S3_KEY_MAX + 128);
    if (st) {
        px_dbuf_put(&p, u->key, klen);
        if (klen)
            px_dbuf_put_u8(&p, '/');
        px_dbuf_printf(&p, "%s/", uuid);
        px_dbuf_printf(&url, "s3://%s/", u->bucket);
        px_dbuf_put(&url, p.data, p.len);
        memcpy(st->bucket, u->bucket, sizeof(st->bucket));
    }
    px_free(u);
    if (!st || p.failed || url.failed || !px_dbuf_cstr(&p) || !px_dbuf_cstr(&url)) {
        /* The only bounded buffer is the key: a long tempdir key plus the UUID overflows it. */
        bool too_long = st && klen + 38 > S3_KEY_MAX;
        px_free(st);
        px_dbuf_free(&p);
        px_dbuf_free(&url);
        *why = too_long ? "tempdir key is too long for staged objects" : "out of memory";
        return too_long ? S3_E_URL : UV_ENOMEM;
    }
    size_t n;
    st->prefix = (char *)px_dbuf_steal(&p, &n);
    st->url = (char *)px_dbuf_steal(&url, &n);
    *out = st;
    return 0;
}

void s3_stage_free(s3_stage_t *st)
{
    if (!st)
        return;
    px_free(st->prefix);
    px_free(st->url);
    px_free(st);
}

const char *s3_stage_bucket(const s3_stage_t *st)
{
    return st->bucket;
}

const char *s3_stage_prefix(const s3_stage_t *st)
{
    return st->prefix;
}

const char *s3_stage_url(const s3_stage_t *st)
{
    return st->url;
}

int s3_stage_key(const s3_stage_t *st, const char *name, px_dbuf_t *out)
{
    if (!name || !*name || name[0] == '/')
        return UV_EINVAL;
    size_t pl = strlen(st->prefix), nl = strlen(name);
    if (pl + nl > S3_KEY_MAX)
        return UV_EINVAL;
    char *k = px_malloc(pl + nl + 1);
    if (!k)
        return UV_ENOMEM;
    memcpy(k, st->prefix, pl);
    memcpy(k + pl, name, nl + 1);
    int rc = s3_key_check(k, pl + nl) ? UV_EINVAL : 0;
    if (!rc) {
        px_dbuf_put(out, k, pl + nl);
        rc = out->failed ? UV_ENOMEM : 0;
    }
    px_free(k);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Prefix cleanup
 */

typedef enum walk_step {
    WALK_LIST = 0,
    WALK_BATCH,
    WALK_SINGLE,
} walk_step_t;

typedef struct walk {
    char *prefix;
    size_t prefix_len;
    char *token; /* continuation token of the next page, NULL before the first */
    s3_list_page_t page;
    bool *single; /* per page object: delete one by one (XML cannot carry the key) */
    size_t single_next;
    size_t batch_n;
    walk_step_t step;
    uint64_t deleted;
    uint64_t failed;
    s3_error_t first_failure;
} walk_t;

static void walk_free(void *p)
{
    walk_t *w = p;
    if (!w)
        return;
    px_free(w->prefix);
    px_free(w->token);
    px_free(w->single);
    s3_list_page_free(&w->page);
    px_free(w);
}

static void walk_fail(s3_op_t *op, const s3_error_t *err)
{
    walk_t *w = op->ctx;
    op->cb.cleanup(w->deleted, err, op->arg);
}

static void walk_finish(s3_op_t *op)
{
    walk_t *w = op->ctx;
    if (w->failed) {
        s3_error_t e = w->first_failure;
        e.code = S3_E_HTTP;
        char first[sizeof(e.message)];
        snprintf(first, sizeof(first), "%s", e.message);
        snprintf(e.message, sizeof(e.message),
                 "%llu object(s) under the prefix could not be "
                 "deleted; the first: %.400s",
                 (unsigned long long)w->failed, first);
        s3__op_fail_now(op, &e);
        return;
    }
    s3__op_detach(op);
    op->cb.cleanup(w->deleted, NULL, op->arg);
    s3__op_done(op);
}

static void walk_record_failure(walk_t *w, const char *code, const char *message)
{
    if (w->failed++ == 0) {
        s3__error_set(&w->first_failure, S3_E_HTTP, "%s", message && *message ? message : code);
        snprintf(w->first_failure.s3_code, sizeof(w->first_failure.s3_code), "%s",
                 code && *code ? code : "InternalError");
    }
}

static void walk_send(s3_op_t *op);

static void walk_next(s3_op_t *op)
{
    walk_t *w = op->ctx;
    /* Single deletes still owed on this page? */
    while (w->single_next < w->page.nobjects && !w->single[w->single_next])
        w->single_next++;
    if (w->single_next < w->page.nobjects) {
        w->step = WALK_SINGLE;
        walk_send(op);
        return;
    }
    if (w->page.truncated) {
        px_free(w->token);
        w->token = w->page.next_token;
        w->page.next_token = NULL;
        s3_list_page_free(&w->page);
        px_free(w->single);
        w->single = NULL;
        w->step = WALK_LIST;
        walk_send(op);
        return;
    }
    walk_finish(op);
}

/* Sends the request of the current step; failures end the walk. */
static void walk_send(s3_op_t *op)
{
    walk_t *w = op->ctx;
    s3__op_reset_request(op);
    int rc = 0;
    if (w->step == WALK_LIST) {
        rc = s3__op_set_key(op, NULL, 0);
        s3_list_opts_t lo = {
            .prefix = w->prefix, .continuation_token = w->token, .max_keys = S3_LIST_MAX_KEYS};
        if (!rc)
            rc = s3__list_query(op, &lo);
    } else if (w->step == WALK_BATCH) {
        rc = s3__op_set_key(op, NULL, 0);
        const char **keys = px_calloc(w->batch_n, sizeof(*keys));
        size_t *lens = px_calloc(w->batch_n, sizeof(*lens));
        size_t k = 0;
        for (size_t i = 0; keys && lens && i < w->page.nobjects; i++) {
            if (w->single[i])
                continue;
            keys[k] = w->page.objects[i].key;
            lens[k] = w->page.objects[i].key_len;
            k++;
        }
        if (!keys || !lens)
            rc = UV_ENOMEM;
        if (!rc)
            rc = s3__delete_objects_request(op, keys, lens, k);
        px_free(keys);
        px_free(lens);
    } else {
        const s3_object_t *o = &w->page.objects[w->single_next];
        rc = s3__op_set_key(op, o->key, o->key_len);
        op->method = "DELETE";
        op->idempotent = true;
    }
    if (!rc)
        rc = s3__op_send(op);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "cannot continue deleting the staged objects: %s", px_strerror(rc));
        s3__op_fail_now(op, &e);
    }
}

static void walk_on_list(s3_op_t *op, const auth_http_resp_t *resp)
{
    walk_t *w = op->ctx;
    s3_list_page_free(&w->page);
    int rc = s3_xml_parse_list(resp->body, resp->bodylen, &w->page);
    if (rc) {
        s3_error_t e;
        s3__error_set(&e, rc, "ListObjectsV2 answer is not a listing: %s", px_strerror(rc));
        s3__op_fail_now(op, &e);
        return;
    }
    px_free(w->single);
    w->single = px_calloc(w->page.nobjects ? w->page.nobjects : 1, sizeof(bool));
    if (!w->single) {
        s3_error_t e;
        s3__error_set(&e, UV_ENOMEM, "out of memory");
        s3__op_fail_now(op, &e);
        return;
    }
    w->batch_n = 0;
    w->single_next = 0;
    for (size_t i = 0; i < w->page.nobjects; i++) {
        const s3_object_t *o = &w->page.objects[i];
        if (o->key_len < w->prefix_len || memcmp(o->key, w->prefix, w->prefix_len) != 0) {
            s3_error_t e;
            s3__error_set(&e, S3_E_PARSE,
                          "the listing returned a key outside the prefix; "
                          "nothing more is deleted");
            s3__op_fail_now(op, &e);
            return;
        }
        if (s3_xml_text_ok(o->key, o->key_len)) {
            w->batch_n++;
        } else if (s3_key_check(o->key, o->key_len)) {
            walk_record_failure(w, "InvalidArgument", "a key neither XML nor a URL path can carry");
        } else {
            w->single[i] = true;
        }
    }
    if (w->batch_n) {
        w->step = WALK_BATCH;
        walk_send(op);
        return;
    }
    walk_next(op);
}

static void walk_resp(s3_op_t *op, const s3_error_t *err, const auth_http_resp_t *resp)
{
    walk_t *w = op->ctx;
    if (err && w->step == WALK_SINGLE && err->code == S3_E_HTTP) {
        /* One refused key does not stop the cleanup of the others. */
        walk_record_failure(w, err->s3_code, err->message);
        w->single_next++;
        walk_next(op);
        return;
    }
    if (err) {
        s3__op_fail_now(op, err);
        return;
    }
    switch (w->step) {
    case WALK_LIST:
        walk_on_list(op, resp);
        return;
    case WALK_BATCH: {
        s3_delete_result_t res;
        int rc = s3_xml_parse_delete_result(resp->body, resp->bodylen, &res);
        if (rc) {
            s3_error_t e;
            s3__error_set(&e, rc, "DeleteObjects answer is not a result: %s", px_strerror(rc));
            s3__op_fail_now(op, &e);
            return;
        }
        size_t nerr = PX_MIN(res.nerrors, w->batch_n);
        w->deleted += w->batch_n - nerr;
        for (size_t i = 0; i < res.nerrors; i++)
            walk_record_failure(w, res.errors[i].code, res.errors[i].message);
        s3_delete_result_free(&res);
        walk_next(op);
        return;
    }
    case WALK_SINGLE:
        w->deleted++;
        w->single_next++;
        walk_next(op);
        return;
    }
}

int s3_delete_prefix(s3_client_t *c, const char *bucket, const char *prefix, s3_cleanup_cb cb,
                     void *arg, s3_op_t **out)
{
    if (!cb || !prefix)
        return UV_EINVAL;
    size_t pl = strlen(prefix);
    /* Never a whole bucket, never a prefix that also matches its siblings ("tmp/a" would
     * match "tmp/ab/..."). */
    if (pl == 0 || prefix[pl - 1] != '/' || pl > S3_KEY_MAX)
        return UV_EINVAL;
    if (c->closing)
        return PX_E_SHUTDOWN;
    if (!s3_bucket_name_ok(bucket))
        return UV_EINVAL;
    walk_t *w = px_calloc(1, sizeof(*w));
    if (!w || !(w->prefix = px_strdup(prefix))) {
        px_free(w);
        return UV_ENOMEM;
    }
    w->prefix_len = pl;
    s3_op_t *op = s3__op_new(c, bucket, walk_resp, walk_fail, arg);
    if (!op) {
        walk_free(w);
        return UV_ENOMEM;
    }
    op->cb.cleanup = cb;
    op->ctx = w;
    op->ctx_free = walk_free;
    s3_list_opts_t lo = {.prefix = prefix, .max_keys = S3_LIST_MAX_KEYS};
    int rc = s3__list_query(op, &lo);
    if (!rc)
        rc = s3__op_send(op);
    if (rc) {
        s3__op_abandon(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

int s3_stage_cleanup(s3_client_t *c, const s3_stage_t *st, s3_cleanup_cb cb, void *arg,
                     s3_op_t **op)
{
    if (!st)
        return UV_EINVAL;
    return s3_delete_prefix(c, st->bucket, st->prefix, cb, arg, op);
}
