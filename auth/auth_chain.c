/*
 * The credential provider chain on the event loop (auth_chain.h). A worker-thread load reads the
 * ~/.aws files and AWS_CA_BUNDLE and resolves the plan (auth_awscfg.c); a job then walks the
 * plan from the innermost source out: static keys, STS AssumeRole signed by its source, web
 * identity (token file read in a worker, STS unsigned), credential_process (a worker), the
 * container endpoint and IMDSv2 (HTTP). All decisions are in chain_run(), which runs only from
 * the 0 ms "kick" timer: jobs and workers store their outcome and kick, so no callback is ever
 * called from inside auth_chain_get, and the caching policy is in one place.
 */
#include "auth_chain.h"

#include "auth_awscfg.h"
#include "auth_proc.h"
#include "px_alloc.h"
#include "px_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES               (AUTH_MAX_ROLE_CHAIN + 2)
#define FILE_MAX                (1u << 20)
#define CA_MAX                  (4u << 20)
#define TOKEN_MAX               20000 /* AssumeRoleWithWebIdentity's WebIdentityToken limit */
#define PROCESS_OUT_MAX         (64u << 10)
#define USABLE_MARGIN_MS        10000 /* never hand out credentials this close to expiry */
#define INNER_MARGIN_MS         60000 /* a role's source must outlive the STS call comfortably */
#define RELOAD_AFTER_FAILURE_MS 5000

typedef enum load_state {
    LS_UNLOADED = 0,
    LS_LOADING,
    LS_READY,
    LS_FAILED,
} load_state_t;

struct auth_chain_req {
    auth_chain_t *ch;
    auth_chain_cb cb;
    void *arg;
    unsigned flags;
    uint64_t min_job; /* the completion of this job (or a later one) may answer us */
    struct auth_chain_req *prev, *next;
};

typedef enum work_kind {
    WK_LOAD = 0,
    WK_READ_TOKEN,
    WK_PROCESS,
} work_kind_t;

typedef struct chain_work {
    uv_work_t w;
    auth_chain_t *ch;
    uint64_t gen;
    work_kind_t kind;
    int node;
    /* inputs (owned) */
    char *region_override;
    char *path;
    char *command;
    long timeout_ms;
    char *const *envp;                        /* borrowed: the chain's copy outlives every job */
    auth_proc_ctl_t proc;                     /* WK_PROCESS: lets close kill the child */
    struct chain_work *next_proc, *prev_proc; /* the chain's running WK_PROCESS jobs */
    /* outputs */
    int rc;
    auth_aws_error_t err;
    auth_awscfg_t cfg;
    px_dbuf_t data; /* token; secret */
    px_dbuf_t ca;
    auth_aws_creds_t creds;
} chain_work_t;

typedef enum imds_stage {
    IMDS_TOKEN = 0,
    IMDS_ROLE,
    IMDS_CREDS,
    IMDS_REGION,
} imds_stage_t;

struct auth_chain {
    uv_loop_t *loop;
    auth_http_t *http;
    char **env; /* owned NULL-terminated copy of the environment */
    char *region_override;
    long refresh_ahead_ms;
    long process_timeout_ms;
    long min_refresh_interval_ms;
    int64_t root_fetched_ms; /* when the root credentials were last fetched */
    uv_timer_t kick;

    load_state_t ls;
    bool reload_pending;
    uint64_t gen;
    auth_aws_error_t load_err;
    int64_t load_failed_ms;
    auth_awscfg_t cfg;
    bool have_cfg;
    auth_src_t *nodes[MAX_NODES]; /* nodes[0] is the root; nodes[i+1] is nodes[i]'s source */
    int nnodes;
    auth_aws_creds_t ncreds[MAX_NODES];

    char *region;
    const char *region_source;
    bool region_tried;
    char endpoint[AUTH_SVC_COUNT][512];

    /* The job: at most one at a time. */
    bool job_active;
    uint64_t jobs_started, jobs_completed;
    bool last_ok;
    auth_aws_error_t last_err;
    int failures;
    int64_t retry_at_ms;
    auth_aws_call_t *call; /* the HTTP call of the job, for cancelation */
    int job_node;
    imds_stage_t imds_stage;
    bool imds_for_region;
    char *imds_token; /* secret-ish: a session token for the metadata service */
    char imds_role[256];
    char *op_token; /* web identity or container authorization token; secret */

    auth_chain_req_t *waiters, *waiters_tail;
    struct chain_work *procs; /* credential_process jobs in flight (killed by close) */
    int pending_work;
    int pending_closes;
    bool closing;
    void (*done)(void *);
    void *done_arg;
};

static void chain_kick(auth_chain_t *ch);
static void job_step(auth_chain_t *ch);

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static bool creds_valid_for(const auth_aws_creds_t *c, int64_t margin_ms)
{
    if (!c->access_key_id)
        return false;
    return c->expiration_ms == 0 || c->expiration_ms > px_now_unix_ms() + margin_ms;
}

static void set_endpoints(auth_chain_t *ch)
{
    for (int i = 0; i < AUTH_SVC_COUNT; i++) {
        if (ch->have_cfg && ch->cfg.endpoint[i])
            snprintf(ch->endpoint[i], sizeof(ch->endpoint[i]), "%s", ch->cfg.endpoint[i]);
        else
            auth_aws_default_endpoint((auth_aws_service_t)i, ch->region, ch->endpoint[i],
                                      sizeof(ch->endpoint[i]));
    }
}

static void build_info(const auth_chain_t *ch, auth_chain_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->region = ch->region;
    info->region_source = ch->region ? ch->region_source : NULL;
    info->provider = ch->nnodes > 0 ? ch->nodes[0]->desc : NULL;
    info->profile = ch->have_cfg ? ch->cfg.profile : NULL;
    for (int i = 0; i < AUTH_SVC_COUNT; i++) {
        info->endpoint[i] = ch->endpoint[i][0] ? ch->endpoint[i] : NULL;
        info->endpoint_overridden[i] = ch->have_cfg && ch->cfg.endpoint[i] != NULL;
    }
}

static void waiter_unlink(auth_chain_t *ch, auth_chain_req_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        ch->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        ch->waiters_tail = w->prev;
    w->prev = w->next = NULL;
}

static void waiter_answer(auth_chain_t *ch, auth_chain_req_t *w, const auth_aws_creds_t *creds,
                          const auth_aws_error_t *err)
{
    waiter_unlink(ch, w);
    auth_chain_info_t info;
    build_info(ch, &info);
    auth_chain_cb cb = w->cb;
    void *arg = w->arg;
    px_free(w);
    cb(creds, &info, creds ? NULL : err, arg);
}

static void chain_maybe_done(auth_chain_t *ch)
{
    if (!ch->closing || ch->pending_closes > 0 || ch->pending_work > 0)
        return;
    void (*done)(void *) = ch->done;
    void *arg = ch->done_arg;
    for (int i = 0; i < MAX_NODES; i++)
        auth_aws_creds_clear(&ch->ncreds[i]);
    if (ch->have_cfg)
        auth_awscfg_free(&ch->cfg);
    px_free(ch->region);
    px_free(ch->region_override);
    px_free_secret(ch->imds_token);
    px_free_secret(ch->op_token);
    if (ch->env) {
        for (char **e = ch->env; *e; e++)
            px_free_secret(*e); /* the environment may hold AWS_SECRET_ACCESS_KEY */
        px_free(ch->env);
    }
    px_free(ch);
    if (done)
        done(arg);
}

/* ---------------------------------------------------------------------------------------------
 * Worker jobs
 */

static void work_free(chain_work_t *w)
{
    if (w->kind == WK_PROCESS)
        auth__proc_ctl_destroy(&w->proc);
    px_free(w->region_override);
    px_free(w->path);
    px_free(w->command);
    if (w->cfg.profile || w->cfg.src || w->cfg.region || w->cfg.imds_endpoint)
        auth_awscfg_free(&w->cfg);
    px_dbuf_free_secret(&w->data);
    px_dbuf_free(&w->ca);
    auth_aws_creds_clear(&w->creds);
    px_free(w);
}

static int read_ini(const char *path, auth_ini_t **out, auth_aws_error_t *err)
{
    *out = NULL;
    if (!path[0])
        return 0;
    px_dbuf_t b;
    px_dbuf_init(&b, FILE_MAX);
    int rc = auth__read_file(path, FILE_MAX, true, &b);
    if (rc == UV_ENOENT) {
        px_dbuf_free_secret(&b);
        return 0; /* a missing file is normal */
    }
    if (rc != 0) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "cannot read %s: %s", path, px_strerror(rc));
        px_dbuf_free_secret(&b);
        return AUTH_E_PARSE;
    }
    char msg[160];
    rc = auth_ini_parse((const char *)b.data, b.len, out, msg, sizeof(msg));
    px_dbuf_free_secret(&b);
    if (rc == UV_ENOMEM) {
        auth_aws_error_set(err, UV_ENOMEM, NULL, "out of memory reading %s", path);
        return rc;
    }
    if (rc != 0) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s: %s", path, msg);
        return AUTH_E_PARSE;
    }
    return 0;
}

static void work_load(chain_work_t *w)
{
    char cpath[1024], kpath[1024];
    auth_awscfg_paths(w->envp, cpath, sizeof(cpath), kpath, sizeof(kpath));
    auth_ini_t *config = NULL, *creds = NULL;
    if ((w->rc = read_ini(cpath, &config, &w->err)) != 0 ||
        (w->rc = read_ini(kpath, &creds, &w->err)) != 0)
        goto out;
    auth_awscfg_input_t in = {
        .envp = w->envp,
        .config = config,
        .credentials = creds,
        .config_path = cpath[0] ? cpath : NULL,
        .credentials_path = kpath[0] ? kpath : NULL,
        .region_override = w->region_override,
    };
    if ((w->rc = auth_awscfg_resolve(&in, &w->cfg)) != 0) {
        auth_aws_error_set(&w->err, w->rc, NULL, "out of memory resolving AWS settings");
        goto out;
    }
    if (w->cfg.ca_bundle) {
        char path[1024];
        const char *home = auth_env_get(w->envp, "HOME");
        if (w->cfg.ca_bundle[0] == '~' && w->cfg.ca_bundle[1] == '/' && home)
            snprintf(path, sizeof(path), "%s%s", home, w->cfg.ca_bundle + 1);
        else
            snprintf(path, sizeof(path), "%s", w->cfg.ca_bundle);
        px_dbuf_init(&w->ca, CA_MAX);
        int rc = auth__read_file(path, CA_MAX, false, &w->ca);
        if (rc != 0) {
            auth_aws_error_set(&w->err, AUTH_E_PARSE, NULL,
                               "cannot read the CA bundle %s (AWS_CA_BUNDLE or ca_bundle): %s",
                               path, px_strerror(rc));
            w->rc = AUTH_E_PARSE;
        }
    }
out:
    auth_ini_free(config);
    auth_ini_free(creds);
}

static void work_read_token(chain_work_t *w)
{
    px_dbuf_init(&w->data, TOKEN_MAX + 64);
    int rc = auth__read_file(w->path, TOKEN_MAX + 64, true, &w->data);
    if (rc != 0) {
        auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL, "cannot read the token file %s: %s",
                           w->path, rc == PX_E_TOOBIG ? "too large" : px_strerror(rc));
        w->rc = AUTH_E_NOCREDS;
        return;
    }
    /* kubelet and ECS write the token without a newline; editors add one. */
    while (w->data.len > 0 &&
           (w->data.data[w->data.len - 1] == '\n' || w->data.data[w->data.len - 1] == '\r' ||
            w->data.data[w->data.len - 1] == ' '))
        w->data.len--;
    bool bad = w->data.len == 0 || w->data.len > TOKEN_MAX;
    for (size_t i = 0; i < w->data.len && !bad; i++)
        bad = w->data.data[i] == '\r' || w->data.data[i] == '\n' || w->data.data[i] == 0;
    if (bad || !px_dbuf_cstr(&w->data)) {
        auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL,
                           "the token file %s is empty, too large or has line breaks", w->path);
        w->rc = AUTH_E_NOCREDS;
    }
}

static void work_process(chain_work_t *w)
{
    char *argv[257];
    int n = auth_shell_split(w->command, argv, 256);
    if (n < 0) {
        auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL,
                           "credential_process: cannot split the command line (unbalanced "
                           "quotes?)");
        w->rc = AUTH_E_NOCREDS;
        return;
    }
    px_dbuf_init(&w->data, PROCESS_OUT_MAX);
    char errtext[256];
    int status = -1;
    int rc = auth__run_process(argv, w->timeout_ms, &w->data, errtext, sizeof(errtext), &status,
                               &w->proc);
    if (rc != 0) {
        if (rc == AUTH_E_TIMEOUT)
            auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL,
                               "credential_process %s did not finish within %ld ms", argv[0],
                               w->timeout_ms);
        else if (rc == PX_E_TOOBIG)
            auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL,
                               "credential_process %s wrote more than %u bytes", argv[0],
                               PROCESS_OUT_MAX);
        else
            auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL,
                               "credential_process: cannot run %s: %s", argv[0], px_strerror(rc));
        w->rc = AUTH_E_NOCREDS;
    } else if (status != 0) {
        size_t el = strcspn(errtext, "\n");
        errtext[el] = '\0';
        auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL,
                           "credential_process %s exited with status %d%s%s", argv[0], status,
                           errtext[0] ? ": " : "", errtext);
        w->rc = AUTH_E_NOCREDS;
    } else {
        auth_aws_error_t perr;
        rc = auth_parse_json_creds(w->data.data, w->data.len, AUTH_JSON_CREDS_PROCESS, &w->creds,
                                   &perr);
        if (rc != 0) {
            auth_aws_error_set(&w->err, AUTH_E_NOCREDS, NULL, "credential_process %s: %s", argv[0],
                               perr.message);
            w->rc = AUTH_E_NOCREDS;
        }
    }
    auth_shell_free(argv);
}

static void work_cb(uv_work_t *req)
{
    chain_work_t *w = container_of(req, chain_work_t, w);
    switch (w->kind) {
    case WK_LOAD:
        work_load(w);
        break;
    case WK_READ_TOKEN:
        work_read_token(w);
        break;
    case WK_PROCESS:
        work_process(w);
        break;
    }
}

static void load_done(auth_chain_t *ch, chain_work_t *w);
static void token_done(auth_chain_t *ch, chain_work_t *w);
static void process_done(auth_chain_t *ch, chain_work_t *w);

static void after_work_cb(uv_work_t *req, int status)
{
    chain_work_t *w = container_of(req, chain_work_t, w);
    auth_chain_t *ch = w->ch;
    ch->pending_work--;
    if (w->kind == WK_PROCESS) {
        if (w->prev_proc)
            w->prev_proc->next_proc = w->next_proc;
        else
            ch->procs = w->next_proc;
        if (w->next_proc)
            w->next_proc->prev_proc = w->prev_proc;
    }
    if (ch->closing || w->gen != ch->gen) {
        work_free(w);
        if (ch->closing)
            chain_maybe_done(ch);
        return;
    }
    if (status != 0 && w->rc == 0) {
        w->rc = status;
        auth_aws_error_set(&w->err, status, NULL, "worker job failed: %s", px_strerror(status));
    }
    switch (w->kind) {
    case WK_LOAD:
        load_done(ch, w);
        break;
    case WK_READ_TOKEN:
        token_done(ch, w);
        break;
    case WK_PROCESS:
        process_done(ch, w);
        break;
    }
    work_free(w);
}

static int queue_work(auth_chain_t *ch, chain_work_t *w)
{
    w->ch = ch;
    w->gen = ch->gen;
    w->envp = ch->env;
    int rc = uv_queue_work(ch->loop, &w->w, work_cb, after_work_cb);
    if (rc == 0)
        ch->pending_work++;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Loading the configuration
 */

static void start_load(auth_chain_t *ch)
{
    chain_work_t *w = px_calloc(1, sizeof(*w));
    ch->reload_pending = false;
    ch->gen++;
    if (w && ch->region_override && !(w->region_override = px_strdup(ch->region_override))) {
        px_free(w);
        w = NULL;
    }
    if (!w || queue_work(ch, (w->kind = WK_LOAD, w)) != 0) {
        if (w)
            work_free(w);
        ch->ls = LS_FAILED;
        ch->load_failed_ms = px_now_unix_ms();
        auth_aws_error_set(&ch->load_err, UV_ENOMEM, NULL, "cannot start loading AWS settings");
        chain_kick(ch);
        return;
    }
    ch->ls = LS_LOADING;
}

static void load_done(auth_chain_t *ch, chain_work_t *w)
{
    if (w->rc != 0) {
        ch->ls = LS_FAILED;
        ch->load_err = w->err;
        ch->load_failed_ms = px_now_unix_ms();
        chain_kick(ch);
        return;
    }
    /* A new plan. Fetched credentials of a step that is still the same step (same kind and
     * description at the same depth) are kept: a reload, or a re-read after a failed refresh,
     * must not throw away keys that are still valid. Everything else is dropped, since the plan
     * may name other principals now. Static keys always come from the new plan. */
    char olddesc[MAX_NODES][sizeof(((auth_src_t *)0)->desc)];
    auth_src_kind_t oldkind[MAX_NODES];
    int oldn = ch->nnodes;
    for (int i = 0; i < oldn; i++) {
        memcpy(olddesc[i], ch->nodes[i]->desc, sizeof(olddesc[i]));
        oldkind[i] = ch->nodes[i]->kind;
    }
    if (ch->have_cfg)
        auth_awscfg_free(&ch->cfg);
    ch->cfg = w->cfg;
    memset(&w->cfg, 0, sizeof(w->cfg));
    ch->have_cfg = true;
    ch->nnodes = 0;
    for (auth_src_t *s = ch->cfg.src; s && ch->nnodes < MAX_NODES; s = s->source)
        ch->nodes[ch->nnodes++] = s;
    bool oom = false;
    for (int i = 0; i < MAX_NODES; i++) {
        bool keep = i < ch->nnodes && i < oldn && ch->nodes[i]->kind != AUTH_SRC_STATIC &&
                    ch->nodes[i]->kind == oldkind[i] && strcmp(ch->nodes[i]->desc, olddesc[i]) == 0;
        if (!keep)
            auth_aws_creds_clear(&ch->ncreds[i]);
        if (i < ch->nnodes && ch->nodes[i]->kind == AUTH_SRC_STATIC &&
            auth_aws_creds_copy(&ch->ncreds[i], &ch->nodes[i]->creds) != 0)
            oom = true;
    }
    px_free(ch->region);
    ch->region = ch->cfg.region ? px_strdup(ch->cfg.region) : NULL;
    if (ch->cfg.region && !ch->region)
        oom = true;
    ch->region_source = ch->cfg.region_source;
    ch->region_tried = false;
    set_endpoints(ch);
    if (auth_http_set_ca_bundle(ch->http, ch->cfg.ca_bundle ? w->ca.data : NULL,
                                ch->cfg.ca_bundle ? w->ca.len : 0) != 0)
        oom = true;
    if (oom) {
        ch->ls = LS_FAILED;
        ch->load_failed_ms = px_now_unix_ms();
        auth_aws_error_set(&ch->load_err, UV_ENOMEM, NULL, "out of memory loading AWS settings");
    } else if (!ch->cfg.src) {
        /* Settings are usable for info (region, endpoints) but there is nothing to sign with. */
        ch->ls = LS_FAILED;
        ch->load_failed_ms = px_now_unix_ms();
        auth_aws_error_set(&ch->load_err, ch->cfg.error ? ch->cfg.error : AUTH_E_NOCREDS, NULL,
                           "%s", ch->cfg.error_msg);
    } else {
        ch->ls = LS_READY;
    }
    chain_kick(ch);
}

/* ---------------------------------------------------------------------------------------------
 * The job
 */

static void job_finish(auth_chain_t *ch, const auth_aws_error_t *err)
{
    ch->job_active = false;
    ch->call = NULL;
    ch->jobs_completed++;
    px_free_secret(ch->op_token);
    ch->op_token = NULL;
    px_free_secret(ch->imds_token);
    ch->imds_token = NULL;
    if (!err) {
        ch->last_ok = true;
        ch->failures = 0;
        ch->retry_at_ms = 0;
    } else {
        ch->last_ok = false;
        ch->last_err = *err;
        ch->failures++;
        int64_t backoff = 1000;
        for (int i = 1; i < ch->failures && backoff < 60000; i++)
            backoff *= 2;
        ch->retry_at_ms = px_now_unix_ms() + PX_MIN(backoff, (int64_t)60000);
        /* A file fixed by the operator should be picked up without a restart. */
        if (err->code == AUTH_E_NOCREDS || err->code == AUTH_E_PARSE)
            ch->reload_pending = true;
    }
    chain_kick(ch);
}

static void job_fail(auth_chain_t *ch, int code, const char *fmt, const char *detail)
{
    auth_aws_error_t err;
    auth_aws_error_set(&err, code, NULL, fmt, detail);
    job_finish(ch, &err);
}

static void node_done(auth_chain_t *ch, int i, auth_aws_creds_t *creds)
{
    auth_aws_creds_clear(&ch->ncreds[i]);
    ch->ncreds[i] = *creds;
    memset(creds, 0, sizeof(*creds));
    if (i == 0) {
        ch->root_fetched_ms = px_now_unix_ms();
        job_finish(ch, NULL);
    } else
        job_step(ch);
}

/* Prefixes the node's description so the operator knows which step failed. */
static void node_error(auth_chain_t *ch, int i, const auth_aws_error_t *e)
{
    auth_aws_error_t err = *e;
    const char *d = ch->nodes[i]->desc;
    size_t dl = PX_MIN(strlen(d), sizeof(err.message) / 2);
    size_t ml = PX_MIN(strlen(e->message), sizeof(err.message) - dl - 3);
    memcpy(err.message, d, dl);
    memcpy(err.message + dl, ": ", 2);
    memcpy(err.message + dl + 2, e->message, ml);
    err.message[dl + 2 + ml] = '\0';
    job_finish(ch, &err);
}

static const char *sts_region(const auth_chain_t *ch)
{
    return ch->region ? ch->region : "us-east-1";
}

static void session_name(const auth_src_t *s, char *out, size_t cap)
{
    if (s->session_name)
        snprintf(out, cap, "%s", s->session_name);
    else
        snprintf(out, cap, "rsproxy-%lld", (long long)px_now_unix_ms());
}

static void form_param(px_dbuf_t *b, const char *k, const char *v)
{
    if (b->len)
        px_dbuf_put_u8(b, '&');
    px_dbuf_put_cstr(b, k);
    px_dbuf_put_u8(b, '=');
    auth_uri_encode(b, v, strlen(v), false);
}

typedef struct sts_ctx {
    const char *op;
} sts_ctx_t;

static void sts_cb(const auth_aws_error_t *err, const auth_http_resp_t *resp, void *arg)
{
    auth_chain_t *ch = arg;
    ch->call = NULL;
    int i = ch->job_node;
    const char *op =
        ch->nodes[i]->kind == AUTH_SRC_ASSUME_ROLE ? "AssumeRole" : "AssumeRoleWithWebIdentity";
    if (err) {
        node_error(ch, i, err);
        return;
    }
    auth_aws_creds_t creds;
    auth_aws_error_t perr;
    if (auth_parse_sts_creds(resp->body, resp->bodylen, op, &creds, &perr) != 0) {
        node_error(ch, i, &perr);
        return;
    }
    node_done(ch, i, &creds);
}

static void sts_call(auth_chain_t *ch, int i, const auth_aws_creds_t *signer, px_dbuf_t *body)
{
    static const auth_http_header_t hdr[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
    };
    auth_aws_call_opts_t o = {
        .method = "POST",
        .endpoint = ch->endpoint[AUTH_SVC_STS],
        .path = "/",
        .headers = hdr,
        .nheaders = 1,
        .body = body->data,
        .bodylen = body->len,
        .service = AUTH_SVC_STS,
        .region = sts_region(ch),
        .creds = signer,
        .proto = AUTH_PROTO_QUERY,
        .idempotent = true,
        .secret_body = true,
    };
    int rc = body->failed ? UV_ENOMEM : auth_aws_call(ch->http, &o, sts_cb, ch, &ch->call);
    px_dbuf_free_secret(body);
    if (rc != 0)
        job_fail(ch, rc, "cannot call STS: %s", px_strerror(rc));
}

static void fetch_assume_role(auth_chain_t *ch, int i)
{
    const auth_src_t *s = ch->nodes[i];
    char sess[96];
    session_name(s, sess, sizeof(sess));
    px_dbuf_t body;
    px_dbuf_init(&body, 64 * 1024);
    form_param(&body, "Action", "AssumeRole");
    form_param(&body, "Version", "2011-06-15");
    form_param(&body, "RoleArn", s->role_arn);
    form_param(&body, "RoleSessionName", sess);
    if (s->duration_seconds) {
        char d[16];
        snprintf(d, sizeof(d), "%d", s->duration_seconds);
        form_param(&body, "DurationSeconds", d);
    }
    if (s->external_id)
        form_param(&body, "ExternalId", s->external_id);
    sts_call(ch, i, &ch->ncreds[i + 1], &body);
}

static void queue_token_read(auth_chain_t *ch, int i, const char *path)
{
    chain_work_t *w = px_calloc(1, sizeof(*w));
    if (!w || !(w->path = px_strdup(path))) {
        px_free(w);
        job_fail(ch, UV_ENOMEM, "%s", "out of memory");
        return;
    }
    w->kind = WK_READ_TOKEN;
    w->node = i;
    int rc = queue_work(ch, w);
    if (rc != 0) {
        work_free(w);
        job_fail(ch, rc, "cannot queue a file read: %s", px_strerror(rc));
    }
}

static void container_get(auth_chain_t *ch, int i);

static void token_done(auth_chain_t *ch, chain_work_t *w)
{
    int i = w->node;
    if (!ch->job_active || i != ch->job_node)
        return;
    if (w->rc != 0) {
        node_error(ch, i, &w->err);
        return;
    }
    px_free_secret(ch->op_token);
    ch->op_token = px_strndup((const char *)w->data.data, w->data.len);
    if (!ch->op_token) {
        job_fail(ch, UV_ENOMEM, "%s", "out of memory");
        return;
    }
    const auth_src_t *s = ch->nodes[i];
    if (s->kind == AUTH_SRC_WEB_IDENTITY) {
        char sess[96];
        session_name(s, sess, sizeof(sess));
        px_dbuf_t body;
        px_dbuf_init(&body, 128 * 1024);
        form_param(&body, "Action", "AssumeRoleWithWebIdentity");
        form_param(&body, "Version", "2011-06-15");
        form_param(&body, "RoleArn", s->role_arn);
        form_param(&body, "RoleSessionName", sess);
        form_param(&body, "WebIdentityToken", ch->op_token);
        /* Unsigned by design: the token is the proof (the model marks it noAuth). */
        sts_call(ch, i, NULL, &body);
    } else {
        container_get(ch, i);
    }
}

static void process_done(auth_chain_t *ch, chain_work_t *w)
{
    int i = w->node;
    if (!ch->job_active || i != ch->job_node)
        return;
    if (w->rc != 0) {
        job_finish(ch, &w->err);
        return;
    }
    node_done(ch, i, &w->creds);
}

static void fetch_process(auth_chain_t *ch, int i)
{
    chain_work_t *w = px_calloc(1, sizeof(*w));
    if (!w || !(w->command = px_strdup(ch->nodes[i]->command))) {
        px_free(w);
        job_fail(ch, UV_ENOMEM, "%s", "out of memory");
        return;
    }
    w->kind = WK_PROCESS;
    w->node = i;
    w->timeout_ms = ch->process_timeout_ms;
    auth__proc_ctl_init(&w->proc);
    int rc = queue_work(ch, w);
    if (rc != 0) {
        work_free(w);
        job_fail(ch, rc, "cannot queue credential_process: %s", px_strerror(rc));
        return;
    }
    w->next_proc = ch->procs;
    if (ch->procs)
        ch->procs->prev_proc = w;
    ch->procs = w;
}

/* Splits "scheme://authority/path?query" for auth_aws_call. */
static bool split_url(const char *url, char *ep, size_t epcap, char *path, size_t pcap, char *query,
                      size_t qcap)
{
    const char *a = strstr(url, "://");
    if (!a)
        return false;
    a += 3;
    size_t alen = strcspn(a, "/?#");
    const char *rest = a + alen;
    size_t eplen = (size_t)(rest - url);
    if (eplen >= epcap)
        return false;
    memcpy(ep, url, eplen);
    ep[eplen] = '\0';
    size_t plen = strcspn(rest, "?#");
    if (plen + 2 > pcap)
        return false;
    if (plen == 0)
        snprintf(path, pcap, "/");
    else
        snprintf(path, pcap, "%.*s", (int)plen, rest);
    query[0] = '\0';
    if (rest[plen] == '?') {
        size_t qlen = strcspn(rest + plen + 1, "#");
        if (qlen >= qcap)
            return false;
        memcpy(query, rest + plen + 1, qlen);
        query[qlen] = '\0';
    }
    return true;
}

static void container_cb(const auth_aws_error_t *err, const auth_http_resp_t *resp, void *arg)
{
    auth_chain_t *ch = arg;
    ch->call = NULL;
    int i = ch->job_node;
    if (err) {
        node_error(ch, i, err);
        return;
    }
    auth_aws_creds_t creds;
    auth_aws_error_t perr;
    if (auth_parse_json_creds(resp->body, resp->bodylen, AUTH_JSON_CREDS_CONTAINER, &creds,
                              &perr) != 0) {
        node_error(ch, i, &perr);
        return;
    }
    node_done(ch, i, &creds);
}

static void container_get(auth_chain_t *ch, int i)
{
    const auth_src_t *s = ch->nodes[i];
    char ep[1024], path[2048], query[2048];
    if (!split_url(s->url, ep, sizeof(ep), path, sizeof(path), query, sizeof(query))) {
        job_fail(ch, AUTH_E_PARSE, "%s", "the container credentials URL is malformed");
        return;
    }
    const char *token = ch->op_token ? ch->op_token : s->auth_token;
    if (token && strpbrk(token, "\r\n")) {
        job_fail(ch, AUTH_E_NOCREDS, "%s",
                 "the container authorization token contains a line break");
        return;
    }
    auth_http_header_t hdr[2] = {{"Accept", "application/json"}, {"Authorization", token}};
    auth_aws_call_opts_t o = {
        .method = "GET",
        .endpoint = ep,
        .path = path,
        .query = query[0] ? query : NULL,
        .headers = hdr,
        .nheaders = token ? 2 : 1,
        .service = AUTH_SVC_STS, /* unused: unsigned */
        .proto = AUTH_PROTO_NONE,
        .idempotent = true,
        .max_attempts = 3,
        .connect_timeout_ms = 2000,
        .timeout_ms = 2000,
        .max_body = 64 * 1024,
        .secret_body = true,
    };
    int rc = auth_aws_call(ch->http, &o, container_cb, ch, &ch->call);
    if (rc != 0)
        job_fail(ch, rc, "cannot call the container credentials endpoint: %s", px_strerror(rc));
}

static void fetch_container(auth_chain_t *ch, int i)
{
    const auth_src_t *s = ch->nodes[i];
    if (s->auth_token_file)
        queue_token_read(ch, i, s->auth_token_file); /* re-read on every fetch */
    else
        container_get(ch, i);
}

/* IMDSv2: PUT a session token, then GET the role name, then its credentials (or the region). */
static void imds_send(auth_chain_t *ch);

static void imds_fail(auth_chain_t *ch, const auth_aws_error_t *err)
{
    if (ch->imds_for_region) {
        /* No region from instance metadata is not fatal here: the caller reports a missing
         * region if it needs one. */
        ch->imds_for_region = false;
        ch->region_tried = true;
        job_step(ch);
        return;
    }
    node_error(ch, ch->job_node, err);
}

static void imds_cb(const auth_aws_error_t *err, const auth_http_resp_t *resp, void *arg)
{
    auth_chain_t *ch = arg;
    ch->call = NULL;
    if (ch->imds_stage == IMDS_TOKEN) {
        if (!err) {
            px_free_secret(ch->imds_token);
            ch->imds_token = px_strndup((const char *)resp->body, resp->bodylen);
            if (!ch->imds_token || strpbrk(ch->imds_token, "\r\n") || !ch->imds_token[0]) {
                auth_aws_error_t e;
                auth_aws_error_set(&e, AUTH_E_PARSE, NULL, "instance metadata token is malformed");
                imds_fail(ch, &e);
                return;
            }
        } else if ((err->http_status == 403 || err->http_status == 404 ||
                    err->http_status == 405) &&
                   !ch->cfg.imds_v1_disabled) {
            /* IMDSv2 unavailable: fall back to v1 (no token), as the SDKs do. */
            px_free_secret(ch->imds_token);
            ch->imds_token = NULL;
        } else {
            imds_fail(ch, err);
            return;
        }
        ch->imds_stage = ch->imds_for_region ? IMDS_REGION : IMDS_ROLE;
        imds_send(ch);
        return;
    }
    if (err) {
        imds_fail(ch, err);
        return;
    }
    if (ch->imds_stage == IMDS_REGION) {
        size_t n = 0;
        while (n < resp->bodylen && resp->body[n] != '\r' && resp->body[n] != '\n')
            n++;
        char *r = px_strndup((const char *)resp->body, n);
        bool ok = r && n > 0 && n < 64;
        for (size_t k = 0; ok && k < n; k++)
            ok = (r[k] >= 'a' && r[k] <= 'z') || (r[k] >= '0' && r[k] <= '9') || r[k] == '-';
        ch->imds_for_region = false;
        ch->region_tried = true;
        if (ok) {
            px_free(ch->region);
            ch->region = r;
            ch->region_source = "instance metadata";
            set_endpoints(ch);
        } else {
            px_free(r);
        }
        job_step(ch);
        return;
    }
    if (ch->imds_stage == IMDS_ROLE) {
        size_t n = 0;
        while (n < resp->bodylen && resp->body[n] != '\n' && resp->body[n] != '\r')
            n++;
        bool ok = n > 0 && n < sizeof(ch->imds_role);
        for (size_t k = 0; ok && k < n; k++) {
            uint8_t c = resp->body[k];
            ok = c > 0x20 && c < 0x7f && c != '/' && c != '?' && c != '#' && c != '%';
        }
        if (!ok) {
            auth_aws_error_t e;
            auth_aws_error_set(&e, AUTH_E_NOCREDS, NULL,
                               "instance metadata lists no usable IAM role for this instance");
            imds_fail(ch, &e);
            return;
        }
        memcpy(ch->imds_role, resp->body, n);
        ch->imds_role[n] = '\0';
        ch->imds_stage = IMDS_CREDS;
        imds_send(ch);
        return;
    }
    auth_aws_creds_t creds;
    auth_aws_error_t perr;
    if (auth_parse_json_creds(resp->body, resp->bodylen, AUTH_JSON_CREDS_IMDS, &creds, &perr) !=
        0) {
        imds_fail(ch, &perr);
        return;
    }
    node_done(ch, ch->job_node, &creds);
}

static void imds_send(auth_chain_t *ch)
{
    char path[512];
    auth_http_header_t hdr[1];
    size_t nh = 0;
    const char *method = "GET";
    switch (ch->imds_stage) {
    case IMDS_TOKEN:
        method = "PUT";
        snprintf(path, sizeof(path), "/latest/api/token");
        hdr[nh++] = (auth_http_header_t){"x-aws-ec2-metadata-token-ttl-seconds", "21600"};
        break;
    case IMDS_ROLE:
        snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/");
        break;
    case IMDS_CREDS:
        snprintf(path, sizeof(path), "/latest/meta-data/iam/security-credentials/%s",
                 ch->imds_role);
        break;
    case IMDS_REGION:
        snprintf(path, sizeof(path), "/latest/meta-data/placement/region");
        break;
    }
    if (ch->imds_stage != IMDS_TOKEN && ch->imds_token)
        hdr[nh++] = (auth_http_header_t){"x-aws-ec2-metadata-token", ch->imds_token};
    auth_aws_call_opts_t o = {
        .method = method,
        .endpoint = ch->cfg.imds_endpoint,
        .path = path,
        .headers = hdr,
        .nheaders = nh,
        .service = AUTH_SVC_STS, /* unused: unsigned */
        .proto = AUTH_PROTO_NONE,
        .idempotent = true,
        .max_attempts = ch->cfg.imds_attempts,
        .connect_timeout_ms = ch->cfg.imds_timeout_ms,
        .timeout_ms = ch->cfg.imds_timeout_ms,
        .max_body = 64 * 1024,
        .secret_body = true,
    };
    int rc = auth_aws_call(ch->http, &o, imds_cb, ch, &ch->call);
    if (rc != 0) {
        auth_aws_error_t e;
        auth_aws_error_set(&e, rc, NULL, "cannot call instance metadata: %s", px_strerror(rc));
        imds_fail(ch, &e);
    }
}

static void start_imds(auth_chain_t *ch, bool for_region)
{
    ch->imds_for_region = for_region;
    ch->imds_stage = IMDS_TOKEN;
    imds_send(ch);
}

/* Picks the next node to fetch: the shallowest one whose source (if any) is valid. */
static void job_step(auth_chain_t *ch)
{
    if (ch->closing)
        return;
    if (!ch->region && !ch->region_tried && !ch->cfg.imds_disabled) {
        start_imds(ch, true);
        return;
    }
    int i = 0;
    while (i + 1 < ch->nnodes && ch->nodes[i]->kind == AUTH_SRC_ASSUME_ROLE &&
           !creds_valid_for(&ch->ncreds[i + 1], INNER_MARGIN_MS))
        i++;
    ch->job_node = i;
    const auth_src_t *s = ch->nodes[i];
    switch (s->kind) {
    case AUTH_SRC_STATIC: {
        if (creds_valid_for(&s->creds, USABLE_MARGIN_MS)) {
            /* A forced refresh of static keys: they are what they are (a reload re-reads the
             * files they came from). */
            auth_aws_creds_t copy;
            if (auth_aws_creds_copy(&copy, &s->creds) != 0) {
                job_fail(ch, UV_ENOMEM, "%s", "out of memory");
                return;
            }
            node_done(ch, i, &copy);
            return;
        }
        char when[21];
        auth_time_format_iso8601(s->creds.expiration_ms, when);
        auth_aws_error_t e;
        auth_aws_error_set(&e, AUTH_E_EXPIRED, "ExpiredToken", "%s: the credentials expired at %s",
                           s->desc, when);
        job_finish(ch, &e);
        return;
    }
    case AUTH_SRC_ASSUME_ROLE:
        fetch_assume_role(ch, i);
        return;
    case AUTH_SRC_WEB_IDENTITY:
        queue_token_read(ch, i, s->token_file); /* re-read on every refresh: kubelet rotates it */
        return;
    case AUTH_SRC_PROCESS:
        fetch_process(ch, i);
        return;
    case AUTH_SRC_CONTAINER:
        fetch_container(ch, i);
        return;
    case AUTH_SRC_IMDS:
        start_imds(ch, false);
        return;
    }
}

static void start_job(auth_chain_t *ch)
{
    ch->job_active = true;
    ch->jobs_started++;
    job_step(ch);
}

/* ---------------------------------------------------------------------------------------------
 * Policy: who gets what, when to load, when to fetch
 */

static void chain_run(auth_chain_t *ch)
{
    if (ch->closing || !ch->waiters)
        return;
    int64_t now = px_now_unix_ms();
    if (ch->ls == LS_UNLOADED || (ch->reload_pending && !ch->job_active && ch->ls != LS_LOADING)) {
        start_load(ch);
        return;
    }
    if (ch->ls == LS_LOADING)
        return;
    if (ch->ls == LS_FAILED) {
        if (now - ch->load_failed_ms >= RELOAD_AFTER_FAILURE_MS) {
            start_load(ch);
            return;
        }
        while (ch->waiters && !ch->closing)
            waiter_answer(ch, ch->waiters, NULL, &ch->load_err);
        return;
    }

    const auth_aws_creds_t *root = &ch->ncreds[0];
    for (;;) {
        if (ch->closing)
            return;
        bool usable = creds_valid_for(root, USABLE_MARGIN_MS);
        auth_chain_req_t *serve = NULL;
        bool with_creds = false;
        for (auth_chain_req_t *w = ch->waiters; w; w = w->next) {
            bool force = w->flags & AUTH_CHAIN_FORCE_REFRESH;
            /* Still-valid credentials are served at once, even while a refresh ahead of
             * expiry runs (or backs off after failing) in the background. */
            if (!force && usable) {
                serve = w;
                with_creds = true;
                break;
            }
            if (ch->jobs_completed >= w->min_job) {
                serve = w;
                with_creds = usable && ch->last_ok;
                break;
            }
            if (!ch->job_active && !usable && !force && ch->jobs_completed > 0 && !ch->last_ok &&
                now < ch->retry_at_ms) {
                serve = w; /* fail fast while backing off from a failure */
                break;
            }
        }
        if (!serve)
            break;
        auth_aws_error_t soon;
        const auth_aws_error_t *why = &ch->last_err;
        if (!with_creds && (ch->last_ok || !ch->last_err.code)) {
            /* The fetch worked but what it returned is already about to expire. */
            auth_aws_error_set(&soon, AUTH_E_EXPIRED, NULL,
                               "%s: the credentials returned expire within %d s",
                               ch->nnodes ? ch->nodes[0]->desc : "AWS", USABLE_MARGIN_MS / 1000);
            why = &soon;
        }
        waiter_answer(ch, serve, with_creds ? root : NULL, why);
    }
    if (ch->closing || ch->job_active)
        return;
    bool need = false;
    for (auth_chain_req_t *w = ch->waiters; w; w = w->next)
        if (w->min_job > ch->jobs_started)
            need = true;
    if (!creds_valid_for(root, ch->refresh_ahead_ms) && creds_valid_for(root, USABLE_MARGIN_MS) &&
        now >= ch->retry_at_ms && now - ch->root_fetched_ms >= ch->min_refresh_interval_ms)
        need = true; /* refresh ahead of expiry in the background */
    if (need)
        start_job(ch);
}

static void kick_cb(uv_timer_t *t)
{
    auth_chain_t *ch = container_of(t, auth_chain_t, kick);
    chain_run(ch);
}

static void chain_kick(auth_chain_t *ch)
{
    if (ch->closing)
        return;
    uv_timer_start(&ch->kick, kick_cb, 0, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Public API
 */

int auth_chain_new(uv_loop_t *loop, auth_http_t *http, const auth_chain_opts_t *o,
                   auth_chain_t **out)
{
    extern char **environ;
    auth_chain_t *ch = px_calloc(1, sizeof(*ch));
    if (!ch)
        return UV_ENOMEM;
    ch->loop = loop;
    ch->http = http;
    ch->refresh_ahead_ms = o && o->refresh_ahead_ms > 0 ? o->refresh_ahead_ms : 5 * 60000;
    ch->process_timeout_ms = o && o->process_timeout_ms > 0 ? o->process_timeout_ms : 60000;
    ch->min_refresh_interval_ms =
        o && o->min_refresh_interval_ms > 0 ? o->min_refresh_interval_ms : 30000;
    char *const *envp = o && o->envp ? o->envp : environ;
    size_t n = 0;
    while (envp && envp[n])
        n++;
    ch->env = px_calloc(n + 1, sizeof(char *));
    if (!ch->env)
        goto oom;
    for (size_t i = 0; i < n; i++)
        if (!(ch->env[i] = px_strdup(envp[i])))
            goto oom;
    if (o && o->region_override && *o->region_override &&
        !(ch->region_override = px_strdup(o->region_override)))
        goto oom;
    int rc = uv_timer_init(loop, &ch->kick);
    if (rc) {
        ch->closing = true;
        chain_maybe_done(ch);
        return rc;
    }
    set_endpoints(ch);
    *out = ch;
    return 0;
oom:
    ch->closing = true;
    chain_maybe_done(ch);
    return UV_ENOMEM;
}

int auth_chain_reload(auth_chain_t *ch, const char *region_override)
{
    char *r = NULL;
    if (region_override && *region_override && !(r = px_strdup(region_override)))
        return UV_ENOMEM;
    px_free(ch->region_override);
    ch->region_override = r;
    ch->reload_pending = true;
    return 0;
}

int auth_chain_get(auth_chain_t *ch, unsigned flags, auth_chain_cb cb, void *arg,
                   auth_chain_req_t **out)
{
    if (ch->closing)
        return PX_E_SHUTDOWN;
    auth_chain_req_t *w = px_calloc(1, sizeof(*w));
    if (!w)
        return UV_ENOMEM;
    w->ch = ch;
    w->cb = cb;
    w->arg = arg;
    w->flags = flags;
    /* A job already running answers us only if it can give fresh results; for a forced
     * refresh it must be one that starts after this call. */
    w->min_job = ch->job_active && !(flags & AUTH_CHAIN_FORCE_REFRESH) ? ch->jobs_started
                                                                       : ch->jobs_started + 1;
    w->prev = ch->waiters_tail;
    if (ch->waiters_tail)
        ch->waiters_tail->next = w;
    else
        ch->waiters = w;
    ch->waiters_tail = w;
    if (out)
        *out = w;
    chain_kick(ch);
    return 0;
}

void auth_chain_cancel(auth_chain_req_t *r)
{
    if (!r)
        return;
    waiter_unlink(r->ch, r);
    px_free(r);
}

static void kick_closed_cb(uv_handle_t *h)
{
    auth_chain_t *ch = container_of((uv_timer_t *)h, auth_chain_t, kick);
    auth_aws_error_t err;
    auth_aws_error_set(&err, AUTH_E_CANCELED, NULL, "the credential provider is shutting down");
    while (ch->waiters)
        waiter_answer(ch, ch->waiters, NULL, &err);
    ch->pending_closes--;
    chain_maybe_done(ch);
}

void auth_chain_close(auth_chain_t *ch, void (*done)(void *arg), void *arg)
{
    if (ch->closing)
        return;
    ch->closing = true;
    ch->done = done;
    ch->done_arg = arg;
    if (ch->call) {
        auth_aws_call_cancel(ch->call);
        ch->call = NULL;
    }
    /* A credential_process still running would hold the shutdown for up to its timeout. */
    for (chain_work_t *w = ch->procs; w; w = w->next_proc)
        auth__proc_cancel(&w->proc);
    ch->pending_closes++;
    uv_close((uv_handle_t *)&ch->kick, kick_closed_cb);
}
