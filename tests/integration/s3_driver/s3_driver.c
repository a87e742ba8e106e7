/*
 * s3_driver: runs one S3 operation through rsproxy's s3/ module exactly as the proxy would
 * (rsproxy config → auth_iam for the provider chain and the shared HTTP client →
 * s3_client_new_from_cfg, so keys embedded in [s3] tempdir win), for the integration tests
 * against the S3 stand-in (tests/integration/test_s3_client.py).
 *
 *   s3_driver -c FILE [--virtual|--path-style] [--chunk N] [--part-size N] [--pause]
 *             [--fast-retry] [--clock-skew-ms N] COMMAND ARGS...
 *
 * Prints one final line "OK ..." (exit 0) or "ERROR code=<px_err name> status=<http>
 * s3_code=<code> unreachable=0|1 message=<text>" (exit 1; 2 for usage and configuration
 * errors), plus "KEY <key>" lines for list. Never prints a secret.
 */
#include "auth_http.h"
#include "auth_iam.h"
#include "cfg.h"
#include "px_buf.h"
#include "px_err.h"
#include "px_util.h"
#include "s3_client.h"
#include "s3_lifecycle.h"
#include "s3_stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct drv {
    uv_loop_t loop;
    auth_iam_t *iam;
    s3_client_t *c;
    int exit_code;
    bool pause;
    size_t part_size;
    /* command state */
    const char *bucket, *key;
    uint8_t *data;
    size_t len, off;
    FILE *out;
    int chunks;
    s3_op_t *op;
    uv_timer_t resume;
    s3_upload_t *up;
    bool abort_after_first;
    int pages;
    size_t nkeys;
    char token[4096];
    const char *prefix;
    int max_keys;
    s3_stage_t *stage;
    int stage_n, stage_done;
    int steps;
    bool finished;
} drv_t;

static const char *code_name(int code)
{
    switch (code) {
    case S3_E_HTTP:
        return "S3_E_HTTP";
    case S3_E_PARSE:
        return "S3_E_PARSE";
    case S3_E_URL:
        return "S3_E_URL";
    case AUTH_E_HTTP:
        return "AUTH_E_HTTP";
    case AUTH_E_TIMEOUT:
        return "AUTH_E_TIMEOUT";
    case AUTH_E_THROTTLED:
        return "AUTH_E_THROTTLED";
    case AUTH_E_NOCREDS:
        return "AUTH_E_NOCREDS";
    case AUTH_E_AWS:
        return "AUTH_E_AWS";
    case AUTH_E_CANCELED:
        return "AUTH_E_CANCELED";
    case PX_E_TOOBIG:
        return "PX_E_TOOBIG";
    case UV_EINVAL:
        return "UV_EINVAL";
    case UV_ENOMEM:
        return "UV_ENOMEM";
    default:
        return "OTHER";
    }
}

static void finish(drv_t *d)
{
    fflush(stdout);
    if (d->finished)
        return;
    d->finished = true;
    s3_client_close(d->c, NULL, NULL);
    auth_iam_close(d->iam, NULL, NULL);
}

static void fail(drv_t *d, const s3_error_t *e)
{
    if (d->finished)
        return; /* the cancellations that follow a first failure */
    printf("ERROR code=%s status=%d s3_code=%s unreachable=%d request_id=%s message=%s\n",
           code_name(e->code), e->http_status, e->s3_code[0] ? e->s3_code : "-",
           e->unreachable ? 1 : 0, e->request_id[0] ? e->request_id : "-", e->message);
    d->exit_code = 1;
    finish(d);
}

static void fail_start(drv_t *d, int rc, const char *what)
{
    printf("ERROR code=%s status=0 s3_code=- unreachable=0 request_id=- message=cannot start %s: "
           "%s\n",
           code_name(rc), what, px_strerror(rc));
    d->exit_code = 1;
    finish(d);
}

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(n > 0 ? (size_t)n : 1);
    *len = n > 0 ? (size_t)n : 0;
    bool ok = *len == 0 || fread(*data, 1, *len, f) == *len;
    fclose(f);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * Commands
 */

static void put_cb(const char *etag, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    printf("OK etag=%s bytes=%zu\n", etag, d->len);
    finish(d);
}

static void head_cb(const s3_head_t *h, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    printf("OK size=%llu etag=%s content_type=%s\n", (unsigned long long)h->size, h->etag,
           h->content_type[0] ? h->content_type : "-");
    finish(d);
}

static void done_cb(const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    printf("OK\n");
    finish(d);
}

static void resume_cb(uv_timer_t *t)
{
    drv_t *d = container_of(t, drv_t, resume);
    s3_get_resume(d->op);
}

static int get_data_cb(const uint8_t *p, size_t n, uint64_t offset, uint64_t total, void *arg)
{
    drv_t *d = arg;
    if (fwrite(p, 1, n, d->out) != n) {
        fprintf(stderr, "s3_driver: write failed\n");
        exit(2);
    }
    d->chunks++;
    if (d->pause && offset + n < total) {
        /* Backpressure as a slow client causes it: no next chunk until the timer fires. */
        uv_timer_start(&d->resume, resume_cb, 2, 0);
        return S3_GET_PAUSE;
    }
    return S3_GET_CONTINUE;
}

static void get_done_cb(uint64_t total, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    fclose(d->out);
    d->out = NULL;
    if (!uv_is_closing((uv_handle_t *)&d->resume))
        uv_close((uv_handle_t *)&d->resume, NULL);
    if (err)
        return fail(d, err);
    printf("OK bytes=%llu chunks=%d\n", (unsigned long long)total, d->chunks);
    finish(d);
}

static void list_next(drv_t *d);

static void list_cb(const s3_list_page_t *page, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    d->pages++;
    for (size_t i = 0; i < page->nobjects; i++) {
        /* Hex, so keys with any byte compare exactly in the test. */
        char hex[2 * 1024 + 1];
        px_hex_encode((const uint8_t *)page->objects[i].key, page->objects[i].key_len, hex);
        printf("KEY %s\n", hex);
        d->nkeys++;
    }
    if (page->truncated) {
        snprintf(d->token, sizeof(d->token), "%s", page->next_token);
        list_next(d);
        return;
    }
    printf("OK keys=%zu pages=%d\n", d->nkeys, d->pages);
    finish(d);
}

static void list_next(drv_t *d)
{
    s3_list_opts_t lo = {.prefix = d->prefix,
                         .max_keys = d->max_keys,
                         .continuation_token = d->token[0] ? d->token : NULL};
    int rc = s3_list_objects(d->c, d->bucket, &lo, list_cb, d, NULL);
    if (rc)
        fail_start(d, rc, "ListObjectsV2");
}

static void delobjs_cb(const s3_delete_result_t *res, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    printf("OK failed=%zu", res->nerrors);
    for (size_t i = 0; i < res->nerrors; i++)
        printf(" %s:%s", res->errors[i].key, res->errors[i].code);
    printf("\n");
    finish(d);
}

static void upload_step(s3_upload_t *up, const s3_error_t *err, void *arg);

/* The next part, or complete once the file is sent. */
static void upload_next(drv_t *d)
{
    int rc;
    if (d->off < d->len) {
        size_t n = PX_MIN(d->part_size, d->len - d->off);
        rc = s3_upload_part(d->up, d->data + d->off, n, upload_step, d);
        d->off += n;
    } else {
        rc = s3_upload_complete(d->up, upload_step, d);
    }
    if (rc)
        fail_start(d, rc, "the next upload step");
}

static void upload_step(s3_upload_t *up, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    d->steps++;
    if (s3_upload_etag(up)) {
        printf("OK parts=%zu bytes=%llu etag=%s\n", s3_upload_parts(up),
               (unsigned long long)s3_upload_bytes(up), s3_upload_etag(up));
        finish(d);
        return;
    }
    if (!d->abort_after_first) {
        upload_next(d);
        return;
    }
    /* upload-abort: create, one part, abort. */
    int rc = 0;
    if (d->steps == 1) {
        rc = s3_upload_part(up, d->data, PX_MIN(d->part_size, d->len), upload_step, d);
    } else if (d->steps == 2) {
        rc = s3_upload_abort(up, upload_step, d);
    } else {
        printf("OK aborted parts=%zu\n", s3_upload_parts(up));
        finish(d);
    }
    if (rc)
        fail_start(d, rc, "the next upload step");
}

static void check_cb(const s3_lifecycle_result_t *res, void *arg)
{
    drv_t *d = arg;
    static const char *const names[] = {"COVERED", "NOT_COVERED", "UNKNOWN"};
    printf("OK verdict=%s rule=%s s3_code=%s message=%s\n", names[res->verdict],
           res->rule_id && res->rule_id[0] ? res->rule_id : "-",
           res->err && res->err->s3_code[0] ? res->err->s3_code : "-", res->message);
    finish(d);
}

static void lifecycle_raw_cb(const s3_lifecycle_t *lc, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    if (!lc) {
        printf("OK none\n");
    } else {
        printf("OK rules=%zu", lc->nrules);
        for (size_t i = 0; i < lc->nrules; i++)
            printf(" %s:%s:%zu", lc->rules[i].id, lc->rules[i].enabled ? "on" : "off",
                   lc->rules[i].nprefixes);
        printf("\n");
    }
    finish(d);
}

static void cleanup_cb(uint64_t deleted, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    if (err)
        return fail(d, err);
    printf("OK deleted=%llu prefix=%s\n", (unsigned long long)deleted,
           d->stage ? s3_stage_prefix(d->stage) : d->prefix);
    s3_stage_free(d->stage);
    d->stage = NULL;
    finish(d);
}

static void stage_put_cb(const char *etag, const s3_error_t *err, void *arg)
{
    drv_t *d = arg;
    PX_UNUSED(etag);
    if (err)
        return fail(d, err);
    if (++d->stage_done < d->stage_n)
        return;
    printf("STAGED %d url=%s\n", d->stage_n, s3_stage_url(d->stage));
    int rc = s3_stage_cleanup(d->c, d->stage, cleanup_cb, d, NULL);
    if (rc)
        fail_start(d, rc, "cleanup");
}

/* ---------------------------------------------------------------------------------------------
 * main
 */

static int usage(void)
{
    fprintf(stderr,
            "usage: s3_driver -c FILE [--virtual|--path-style] [--chunk N] [--part-size N]\n"
            "                 [--pause] [--fast-retry] [--clock-skew-ms N] COMMAND ARGS...\n"
            "commands: put B K FILE | get B K OUT | head B K | delete B K | list B PREFIX [MAX]\n"
            "          delete-objects B K... | upload B K FILE | upload-abort B K FILE\n"
            "          lifecycle | lifecycle-raw B | delete-prefix B PREFIX | stage N\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    s3_client_opts_t tune = {0};
    drv_t d;
    memset(&d, 0, sizeof(d));
    d.part_size = S3_PART_MIN;
    bool fast_retry = false;
    long long skew_ms = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-c") && i + 1 < argc)
            config = argv[++i];
        else if (!strcmp(argv[i], "--virtual"))
            tune.addressing = S3_ADDR_VIRTUAL;
        else if (!strcmp(argv[i], "--path-style"))
            tune.addressing = S3_ADDR_PATH;
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            tune.get_chunk = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--part-size") && i + 1 < argc)
            d.part_size = (size_t)strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--pause"))
            d.pause = true;
        else if (!strcmp(argv[i], "--fast-retry"))
            fast_retry = true;
        else if (!strcmp(argv[i], "--clock-skew-ms") && i + 1 < argc)
            skew_ms = strtoll(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (!config || i >= argc)
        return usage();
    const char *cmd = argv[i++];
    char **args = argv + i;
    int nargs = argc - i;

    cfg_t *cfg = NULL;
    char err[4096];
    cfg_load_opts_t lo = {.path = config};
    if (cfg_load(&lo, &cfg, err, sizeof(err)) != 0) {
        printf("ERROR code=config status=0 s3_code=- unreachable=0 request_id=- message=%s\n", err);
        return 2;
    }
    uv_loop_init(&d.loop);
    int rc = auth_iam_new(&d.loop, cfg, &d.iam);
    if (rc) {
        printf("ERROR code=%s status=0 s3_code=- unreachable=0 request_id=- message=iam: %s\n",
               code_name(rc), px_strerror(rc));
        return 2;
    }
    if (fast_retry)
        auth_http_set_retry(auth_iam_http(d.iam), 10, 50);
    /* A wrong local clock, as the skew correction would have learnt it: requests are signed
     * this far off until S3's RequestTimeTooSkewed answer corrects it. */
    if (skew_ms)
        auth_http_set_clock_skew_ms(auth_iam_http(d.iam), skew_ms);
    const char *why = NULL;
    rc = s3_client_new_from_cfg(&d.loop, d.iam, cfg, &tune, NULL, &d.c, &why);
    if (rc) {
        printf("ERROR code=%s status=0 s3_code=- unreachable=0 request_id=- message=%s\n",
               code_name(rc), why ? why : px_strerror(rc));
        auth_iam_close(d.iam, NULL, NULL);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        cfg_unref(cfg);
        return 2;
    }
    uv_timer_init(&d.loop, &d.resume);
    bool resume_used = false;

    if (!strcmp(cmd, "put") && nargs == 3) {
        d.bucket = args[0];
        if (read_file(args[2], &d.data, &d.len) != 0)
            return usage();
        rc = s3_put_object(d.c, args[0], args[1], d.data, d.len, "application/octet-stream", put_cb,
                           &d, NULL);
    } else if (!strcmp(cmd, "get") && nargs == 3) {
        d.out = fopen(args[2], "wb");
        if (!d.out)
            return usage();
        resume_used = true;
        rc = s3_get_object(d.c, args[0], args[1], get_data_cb, get_done_cb, &d, &d.op);
    } else if (!strcmp(cmd, "head") && nargs == 2) {
        rc = s3_head_object(d.c, args[0], args[1], head_cb, &d, NULL);
    } else if (!strcmp(cmd, "delete") && nargs == 2) {
        rc = s3_delete_object(d.c, args[0], args[1], done_cb, &d, NULL);
    } else if (!strcmp(cmd, "list") && (nargs == 2 || nargs == 3)) {
        d.bucket = args[0];
        d.prefix = args[1];
        d.max_keys = nargs == 3 ? atoi(args[2]) : 0;
        rc = 0;
        list_next(&d);
    } else if (!strcmp(cmd, "delete-objects") && nargs >= 2) {
        rc = s3_delete_objects(d.c, args[0], (const char *const *)(args + 1), (size_t)nargs - 1,
                               delobjs_cb, &d, NULL);
    } else if ((!strcmp(cmd, "upload") || !strcmp(cmd, "upload-abort")) && nargs == 3) {
        if (read_file(args[2], &d.data, &d.len) != 0)
            return usage();
        d.abort_after_first = !strcmp(cmd, "upload-abort");
        rc = s3_upload_new(d.c, args[0], args[1], "text/csv", upload_step, &d, &d.up);
    } else if (!strcmp(cmd, "lifecycle") && nargs == 0) {
        rc = s3_lifecycle_check(d.c, cfg->s3.tempdir, check_cb, &d, NULL);
    } else if (!strcmp(cmd, "lifecycle-raw") && nargs == 1) {
        rc = s3_get_bucket_lifecycle(d.c, args[0], lifecycle_raw_cb, &d, NULL);
    } else if (!strcmp(cmd, "delete-prefix") && nargs == 2) {
        d.prefix = args[1];
        rc = s3_delete_prefix(d.c, args[0], args[1], cleanup_cb, &d, NULL);
    } else if (!strcmp(cmd, "stage") && nargs == 1) {
        d.stage_n = atoi(args[0]);
        rc = s3_stage_new(cfg->s3.tempdir, &d.stage, &why);
        for (int k = 0; rc == 0 && k < d.stage_n; k++) {
            px_dbuf_t key;
            px_dbuf_init(&key, 2048);
            char name[32], body[64];
            snprintf(name, sizeof(name), "part-%04d.csv", k);
            int bl = snprintf(body, sizeof(body), "%d,row %d\n", k, k);
            rc = s3_stage_key(d.stage, name, &key);
            if (!rc)
                rc = s3_put_object(d.c, s3_stage_bucket(d.stage), px_dbuf_cstr(&key),
                                   (const uint8_t *)body, (size_t)bl, "text/csv", stage_put_cb, &d,
                                   NULL);
            px_dbuf_free(&key);
        }
    } else {
        return usage();
    }
    if (!resume_used || rc)
        uv_close((uv_handle_t *)&d.resume, NULL);
    if (rc)
        fail_start(&d, rc, cmd);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    if (d.up)
        s3_upload_free(d.up);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&d.loop) != 0) {
        printf("ERROR code=leak status=0 s3_code=- unreachable=0 request_id=- message=a handle "
               "was left open\n");
        d.exit_code = 1;
    }
    s3_stage_free(d.stage);
    free(d.data);
    cfg_unref(cfg);
    return d.exit_code;
}
