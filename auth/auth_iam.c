/*
 * The temporary-credential cache behind auth_iam.h. One entry per key (target, DbUser, database,
 * groups, AutoCreate, WithIAM, duration, upstream host); a fetch runs the provider chain, then
 * endpoint discovery when [upstream] host is empty (cached, single flight), then the Redshift or
 * Serverless API, once however many clients wait. Fresh credentials (more than
 * refresh_margin_seconds left) are served from the cache and a janitor refreshes entries in use
 * just before the margin; inside it clients wait for the refresh, and if it fails while the old
 * credentials are valid they are served and the refresh backs off. Expired credentials are never
 * handed out. Every callback comes from the ready timer, never from the starting call.
 */
#include "auth_iam.h"

#include "auth_aws.h"
#include "auth_awscfg.h"
#include "auth_chain.h"
#include "auth_http.h"
#include "auth_redshift.h"
#include "px_alloc.h"
#include "px_err.h"

#include <stdio.h>
#include <string.h>

#define USABLE_MARGIN_MS   10000 /* below this, old credentials are not served even on failure */
#define JANITOR_MS         5000
#define PROACTIVE_EXTRA_MS 30000 /* refresh this long before the margin is reached */
#define ENDPOINT_TTL_MS    (3600 * 1000)
#define IDLE_DROP_MS       (15 * 60 * 1000)

typedef enum req_kind {
    RK_DB = 0,
    RK_CHECK,
    RK_KEYS,
} req_kind_t;

typedef enum entry_stage {
    ES_IDLE = 0,
    ES_CHAIN,    /* waiting for rsproxy's own AWS credentials */
    ES_ENDPOINT, /* parked until endpoint discovery completes */
    ES_API,      /* GetClusterCredentials / GetCredentials in flight */
} entry_stage_t;

typedef struct iam_entry iam_entry_t;

struct auth_iam_req {
    auth_iam_t *iam;
    req_kind_t kind;
    iam_entry_t *entry;          /* RK_DB / RK_CHECK while waiting on an entry */
    auth_chain_req_t *chain_req; /* RK_KEYS while waiting on the chain */
    bool ready;                  /* on iam->ready with its result */
    auth_iam_creds_cb cb;
    auth_iam_check_cb check_cb;
    auth_iam_keys_cb keys_cb;
    void *arg;
    /* The result, owned; secrets wiped in req_free. */
    int err_code;
    char *aws_code, *message;
    bool unreachable;
    auth_rs_creds_t creds;
    char *host;
    int port;
    auth_aws_creds_t keys;
    char *region, *s3_endpoint;
    char *info_provider, *info_profile, *info_region_source, *info_api, *info_api_endpoint;
    bool info_discovered;
    struct auth_iam_req *prev, *next;
};

typedef struct req_list {
    auth_iam_req_t *head, *tail;
} req_list_t;

struct iam_entry {
    auth_iam_t *iam;
    char *key;
    char *fingerprint; /* the configuration part of the key */
    char *db_user;     /* lower-cased; "" with WithIAM / Serverless */
    char *dbname;
    bool stale; /* the configuration changed: drop once idle */
    auth_rs_creds_t creds;
    bool have;
    char *host; /* where these credentials log in */
    int port;
    bool host_discovered;
    entry_stage_t stage;
    bool force; /* the current fetch ignores the provider cache (after ExpiredToken) */
    bool provider_retried;
    auth_chain_req_t *chain_req;
    auth_rs_op_t *op;
    auth_aws_creds_t pcreds; /* rsproxy's keys for this fetch */
    char *region;
    char *api_endpoint;
    req_list_t waiters;
    auth_aws_error_t last_err; /* of the last failed fetch, repeated while backing off */
    char last_api[48];
    int failures;
    int64_t retry_at_ms;
    int64_t last_used_ms;
    iam_entry_t *prev, *next; /* LRU: head is the most recent */
    iam_entry_t *ep_next;     /* parked for endpoint discovery */
};

struct auth_iam {
    uv_loop_t *loop;
    cfg_t *cfg;
    auth_http_t *http;
    auth_chain_t *chain;
    uv_timer_t ready_timer;
    uv_timer_t janitor;
    req_list_t ready;
    req_list_t keys_waiting;
    iam_entry_t *entries, *entries_tail;
    size_t nentries;
    /* Endpoint discovery, shared by all entries. */
    char *ep_host;
    int ep_port;
    int64_t ep_expires_ms;
    bool ep_fetching;
    uint64_t ep_gen;
    auth_rs_op_t *ep_op;
    iam_entry_t *ep_wait;
    /* What the last chain answer said, for --check. */
    char *last_provider, *last_profile, *last_region_source;
    bool closing;
    int pending_closes;
    void (*done)(void *);
    void *done_arg;
    auth_iam_fetch_cb observer; /* the proxy's log of fetches (may be NULL) */
    void *observer_arg;
};

static void entry_fetch(iam_entry_t *e);
static void entry_api(iam_entry_t *e);

/* ---------------------------------------------------------------------------------------------
 * Requests and their delivery
 */

static void list_push(req_list_t *l, auth_iam_req_t *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(req_list_t *l, auth_iam_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

static void req_free(auth_iam_req_t *r)
{
    px_free(r->aws_code);
    px_free(r->message);
    auth_rs_creds_clear(&r->creds);
    px_free(r->host);
    auth_aws_creds_clear(&r->keys);
    px_free(r->region);
    px_free(r->s3_endpoint);
    px_free(r->info_provider);
    px_free(r->info_profile);
    px_free(r->info_region_source);
    px_free(r->info_api);
    px_free(r->info_api_endpoint);
    px_free(r);
}

static char *sdup(const char *s)
{
    return s ? px_strdup(s) : NULL;
}

static void ready_cb(uv_timer_t *t);

static void req_make_ready(auth_iam_t *iam, auth_iam_req_t *r)
{
    r->ready = true;
    r->entry = NULL;
    r->chain_req = NULL;
    list_push(&iam->ready, r);
    if (!iam->closing)
        uv_timer_start(&iam->ready_timer, ready_cb, 0, 0);
}

/* Records an error result; on allocation failure the message falls back to a static text. */
static void req_set_error(auth_iam_req_t *r, int code, const char *aws_code, const char *message,
                          bool unreachable)
{
    r->err_code = code ? code : AUTH_E_FAILED;
    r->aws_code = aws_code && *aws_code ? px_strdup(aws_code) : NULL;
    r->message = px_strdup(message ? message : "");
    r->unreachable = unreachable;
}

static void req_deliver(auth_iam_req_t *r)
{
    auth_iam_error_t err = {
        .code = r->err_code,
        .aws_code = r->aws_code,
        .message = r->message ? r->message : px_strerror(r->err_code),
        .unreachable = r->unreachable,
    };
    const auth_iam_error_t *e = r->err_code ? &err : NULL;
    if (r->kind == RK_KEYS) {
        auth_aws_keys_t k = auth_aws_creds_keys(&r->keys);
        r->keys_cb(e ? NULL : &k, e ? 0 : r->keys.expiration_ms, r->region, r->s3_endpoint, e,
                   r->arg);
        return;
    }
    auth_db_creds_t c = {
        .db_user = r->creds.db_user,
        .db_password = r->creds.db_password,
        .expiration_ms = r->creds.expiration_ms,
        .host = r->host,
        .port = r->port,
    };
    if (r->kind == RK_DB) {
        r->cb(e ? NULL : &c, e, r->arg);
        return;
    }
    auth_iam_check_info_t info = {
        .provider = r->info_provider,
        .profile = r->info_profile,
        .region = r->region,
        .region_source = r->info_region_source,
        .api = r->info_api,
        .api_endpoint = r->info_api_endpoint,
        .host_discovered = r->info_discovered,
    };
    r->check_cb(e ? NULL : &c, e, &info, r->arg);
}

static void ready_cb(uv_timer_t *t)
{
    auth_iam_t *iam = container_of(t, auth_iam_t, ready_timer);
    while (iam->ready.head && !iam->closing) {
        auth_iam_req_t *r = iam->ready.head;
        list_remove(&iam->ready, r);
        req_deliver(r);
        req_free(r);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Entries
 */

static const char *api_name(const cfg_t *cfg)
{
    if (cfg->iam.workgroup_name && cfg->iam.workgroup_name[0])
        return "redshift-serverless:GetCredentials";
    return cfg->iam.with_iam ? "redshift:GetClusterCredentialsWithIAM"
                             : "redshift:GetClusterCredentials";
}

static bool identity_based(const cfg_t *cfg)
{
    return cfg->iam.with_iam || (cfg->iam.workgroup_name && cfg->iam.workgroup_name[0]);
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static char *make_fingerprint(const cfg_t *cfg)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 16 * 1024);
    /* '\x1f' separates fields: it cannot occur in any of the configured values. */
    px_dbuf_printf(&b,
                   "c=%s\x1f"
                   "d=%s\x1f"
                   "w=%s\x1f"
                   "a=%d\x1f"
                   "i=%d\x1f"
                   "t=%d\x1f"
                   "h=%s:%d\x1f"
                   "g=",
                   nz(cfg->iam.cluster_identifier), nz(cfg->iam.custom_domain_name),
                   nz(cfg->iam.workgroup_name), cfg->iam.auto_create, cfg->iam.with_iam,
                   cfg->iam.duration_seconds, nz(cfg->upstream.host), cfg->upstream.port);
    for (size_t i = 0; i < cfg->iam.db_groups.n; i++) {
        for (const char *p = cfg->iam.db_groups.items[i]; *p; p++)
            px_dbuf_put_u8(&b, (uint8_t)px_ascii_lower(*p));
        px_dbuf_put_u8(&b, ',');
    }
    char *s = px_dbuf_cstr(&b) ? px_strdup((char *)b.data) : NULL;
    px_dbuf_free(&b);
    return s;
}

static void entry_unlink_lru(auth_iam_t *iam, iam_entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        iam->entries = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        iam->entries_tail = e->prev;
    e->prev = e->next = NULL;
}

static void entry_push_front(auth_iam_t *iam, iam_entry_t *e)
{
    e->prev = NULL;
    e->next = iam->entries;
    if (iam->entries)
        iam->entries->prev = e;
    else
        iam->entries_tail = e;
    iam->entries = e;
}

static void entry_free(iam_entry_t *e)
{
    auth_iam_t *iam = e->iam;
    entry_unlink_lru(iam, e);
    iam->nentries--;
    px_free(e->key);
    px_free(e->fingerprint);
    px_free(e->db_user);
    px_free(e->dbname);
    auth_rs_creds_clear(&e->creds);
    px_free(e->host);
    auth_aws_creds_clear(&e->pcreds);
    px_free(e->region);
    px_free(e->api_endpoint);
    px_free(e);
}

static bool entry_idle(const iam_entry_t *e)
{
    return e->stage == ES_IDLE && !e->waiters.head;
}

/* Drops idle entries beyond the bound, least recently used first. */
static void entries_trim(auth_iam_t *iam, size_t max)
{
    iam_entry_t *e = iam->entries_tail;
    while (iam->nentries > max && e) {
        iam_entry_t *prev = e->prev;
        if (entry_idle(e))
            entry_free(e);
        e = prev;
    }
}

static iam_entry_t *entry_get(auth_iam_t *iam, const char *client_user, const char *dbname, int *rc)
{
    const cfg_t *cfg = iam->cfg;
    char user[256];
    const char *u = cfg->iam.db_user && cfg->iam.db_user[0] ? cfg->iam.db_user : client_user;
    if (identity_based(cfg))
        u = ""; /* the IAM identity decides the database user, not the client */
    size_t ul = strlen(nz(u));
    if (ul >= sizeof(user)) {
        *rc = UV_EINVAL;
        return NULL;
    }
    for (size_t i = 0; i <= ul; i++)
        user[i] = px_ascii_lower(nz(u)[i]);
    const char *db =
        cfg->upstream.dbname && cfg->upstream.dbname[0] ? cfg->upstream.dbname : nz(dbname);
    char *fp = make_fingerprint(cfg);
    if (!fp) {
        *rc = UV_ENOMEM;
        return NULL;
    }
    px_dbuf_t kb;
    px_dbuf_init(&kb, 32 * 1024);
    px_dbuf_printf(&kb,
                   "%s\x1fu=%s\x1f"
                   "db=%s",
                   fp, user, db);
    const char *key = px_dbuf_cstr(&kb);
    iam_entry_t *e = NULL;
    if (key) {
        for (e = iam->entries; e; e = e->next)
            if (!e->stale && strcmp(e->key, key) == 0)
                break;
    }
    if (e) {
        px_free(fp);
        px_dbuf_free(&kb);
        entry_unlink_lru(iam, e);
        entry_push_front(iam, e);
        return e;
    }
    if (!key) {
        px_free(fp);
        px_dbuf_free(&kb);
        *rc = UV_ENOMEM;
        return NULL;
    }
    entries_trim(iam, AUTH_IAM_MAX_ENTRIES - 1);
    if (iam->nentries >= AUTH_IAM_MAX_ENTRIES) {
        px_free(fp);
        px_dbuf_free(&kb);
        *rc = PX_E_TOOBIG;
        return NULL;
    }
    e = px_calloc(1, sizeof(*e));
    if (e) {
        e->iam = iam;
        e->key = px_strdup(key);
        e->fingerprint = fp;
        e->db_user = px_strdup(user);
        e->dbname = px_strdup(db);
    } else {
        px_free(fp);
    }
    px_dbuf_free(&kb);
    if (!e || !e->key || !e->db_user || !e->dbname) {
        if (e) {
            px_free(e->key);
            px_free(e->fingerprint);
            px_free(e->db_user);
            px_free(e->dbname);
            px_free(e);
        }
        *rc = UV_ENOMEM;
        return NULL;
    }
    entry_push_front(iam, e);
    iam->nentries++;
    return e;
}

static bool entry_fresh(const auth_iam_t *iam, const iam_entry_t *e, int64_t now)
{
    int64_t margin = (int64_t)iam->cfg->iam.refresh_margin_seconds * 1000;
    return e->have && e->creds.expiration_ms - now > margin;
}

static bool entry_usable(const iam_entry_t *e, int64_t now)
{
    return e->have && e->creds.expiration_ms - now > USABLE_MARGIN_MS;
}

/* Copies the entry's credentials (or an error) into a waiting request and makes it ready. */
static void req_fill_from_entry(auth_iam_req_t *r, iam_entry_t *e)
{
    auth_iam_t *iam = r->iam;
    r->creds.db_user = sdup(e->creds.db_user);
    r->creds.db_password = sdup(e->creds.db_password);
    r->creds.expiration_ms = e->creds.expiration_ms;
    r->host = sdup(e->host);
    r->port = e->port;
    if (!r->creds.db_user || !r->creds.db_password || (e->host && !r->host)) {
        auth_rs_creds_clear(&r->creds);
        req_set_error(r, UV_ENOMEM, NULL, "out of memory", false);
    }
    if (r->kind == RK_CHECK) {
        r->region = sdup(e->region);
        r->info_provider = sdup(iam->last_provider);
        r->info_profile = sdup(iam->last_profile);
        r->info_region_source = sdup(iam->last_region_source);
        r->info_api = sdup(api_name(iam->cfg));
        r->info_api_endpoint = sdup(e->api_endpoint);
        r->info_discovered = e->host_discovered;
    }
}

static void entry_answer_all(iam_entry_t *e, const auth_aws_error_t *err, const char *api)
{
    auth_iam_t *iam = e->iam;
    int64_t now = px_now_unix_ms();
    while (e->waiters.head) {
        auth_iam_req_t *r = e->waiters.head;
        list_remove(&e->waiters, r);
        if (!err || entry_usable(e, now)) {
            /* On a failed refresh, credentials that are still valid are better than an error. */
            req_fill_from_entry(r, e);
        } else {
            char msg[700];
            snprintf(msg, sizeof(msg), "%s: %s%s%s%s", api, err->message,
                     err->request_id[0] ? " (request id " : "", err->request_id,
                     err->request_id[0] ? ")" : "");
            req_set_error(r, err->code, err->aws_code, msg, err->unreachable);
            if (r->kind == RK_CHECK) {
                r->region = sdup(e->region);
                r->info_provider = sdup(iam->last_provider);
                r->info_profile = sdup(iam->last_profile);
                r->info_region_source = sdup(iam->last_region_source);
                r->info_api = sdup(api);
                r->info_api_endpoint = sdup(e->api_endpoint);
            }
        }
        req_make_ready(iam, r);
    }
}

static void entry_end_fetch(iam_entry_t *e)
{
    e->stage = ES_IDLE;
    e->force = false;
    e->provider_retried = false;
    auth_aws_creds_clear(&e->pcreds);
    if (e->stale && entry_idle(e))
        entry_free(e);
}

static const char *target_name(const cfg_t *cfg)
{
    if (cfg->iam.workgroup_name && cfg->iam.workgroup_name[0])
        return cfg->iam.workgroup_name;
    if (cfg->iam.cluster_identifier && cfg->iam.cluster_identifier[0])
        return cfg->iam.cluster_identifier;
    return nz(cfg->iam.custom_domain_name);
}

/* Tells the observer how a fetch ended: `creds` on success, else `err` from stage `api`. */
static void entry_observe(const iam_entry_t *e, bool refresh, const auth_rs_creds_t *creds,
                          const auth_aws_error_t *err, const char *api)
{
    const auth_iam_t *iam = e->iam;
    if (!iam->observer)
        return;
    auth_iam_fetch_info_t info = {
        .ok = creds != NULL,
        .refresh = refresh,
        .target = target_name(iam->cfg),
        .api = api,
        .db_user = creds ? creds->db_user : e->db_user,
        .dbname = e->dbname,
        .expiration_ms = creds ? creds->expiration_ms : 0,
        .provider = iam->last_provider,
        .profile = iam->last_profile,
        .aws_code = err && err->aws_code[0] ? err->aws_code : NULL,
        .message = err ? err->message : NULL,
    };
    iam->observer(&info, iam->observer_arg);
}

static void entry_fail(iam_entry_t *e, const auth_aws_error_t *err, const char *api)
{
    entry_observe(e, e->have, NULL, err, api);
    e->failures++;
    int64_t backoff = 1000;
    for (int i = 1; i < e->failures && backoff < 60000; i++)
        backoff *= 2;
    e->retry_at_ms = px_now_unix_ms() + PX_MIN(backoff, (int64_t)60000);
    e->last_err = *err;
    snprintf(e->last_api, sizeof(e->last_api), "%s", api);
    entry_answer_all(e, err, api);
    entry_end_fetch(e);
}

static void entry_fail_msg(iam_entry_t *e, int code, const char *api, const char *msg)
{
    auth_aws_error_t err;
    auth_aws_error_set(&err, code, NULL, "%s", msg);
    entry_fail(e, &err, api);
}

/* ---------------------------------------------------------------------------------------------
 * Fetching: chain → (endpoint) → API
 */

static void fill_rs_request(const auth_iam_t *iam, const iam_entry_t *e, auth_rs_request_t *r)
{
    const cfg_t *cfg = iam->cfg;
    memset(r, 0, sizeof(*r));
    r->cluster_identifier = cfg->iam.cluster_identifier;
    r->custom_domain_name = cfg->iam.custom_domain_name;
    r->workgroup_name = cfg->iam.workgroup_name;
    r->db_user = e->db_user;
    r->db_name = e->dbname;
    r->db_groups = (const char *const *)cfg->iam.db_groups.items;
    r->ngroups = cfg->iam.db_groups.n;
    r->auto_create = cfg->iam.auto_create;
    r->with_iam = cfg->iam.with_iam;
    r->duration_seconds = cfg->iam.duration_seconds;
}

static void api_cb(const auth_rs_creds_t *creds, const auth_aws_error_t *err, void *arg)
{
    iam_entry_t *e = arg;
    auth_iam_t *iam = e->iam;
    e->op = NULL;
    const char *api = api_name(iam->cfg);
    if (err) {
        /* Our own temporary keys expired or were revoked under us: refresh them once. */
        if (!e->provider_retried && e->pcreds.session_token &&
            (strcmp(err->aws_code, "ExpiredToken") == 0 ||
             strcmp(err->aws_code, "ExpiredTokenException") == 0 ||
             strcmp(err->aws_code, "InvalidClientTokenId") == 0 ||
             strcmp(err->aws_code, "UnrecognizedClientException") == 0)) {
            e->provider_retried = true;
            e->force = true;
            entry_fetch(e);
            return;
        }
        entry_fail(e, err, api);
        return;
    }
    auth_rs_creds_t copy = {
        .db_user = px_strdup(creds->db_user),
        .db_password = px_strdup(creds->db_password),
        .expiration_ms = creds->expiration_ms,
    };
    if (!copy.db_user || !copy.db_password) {
        auth_rs_creds_clear(&copy);
        entry_fail_msg(e, UV_ENOMEM, api, "out of memory");
        return;
    }
    if (copy.expiration_ms <= px_now_unix_ms() + USABLE_MARGIN_MS) {
        auth_rs_creds_clear(&copy);
        entry_fail_msg(e, AUTH_E_EXPIRED, api,
                       "AWS returned credentials that are already expired (is the clock right?)");
        return;
    }
    entry_observe(e, e->have, &copy, NULL, api);
    auth_rs_creds_clear(&e->creds);
    e->creds = copy;
    e->have = true;
    e->failures = 0;
    e->retry_at_ms = 0;
    entry_answer_all(e, NULL, api);
    entry_end_fetch(e);
}

static int set_entry_host(iam_entry_t *e, const char *host, int port, bool discovered)
{
    char *h = px_strdup(host);
    if (!h)
        return UV_ENOMEM;
    px_free(e->host);
    e->host = h;
    e->port = port;
    e->host_discovered = discovered;
    return 0;
}

static void entry_api(iam_entry_t *e)
{
    auth_iam_t *iam = e->iam;
    e->stage = ES_API;
    auth_rs_request_t req;
    fill_rs_request(iam, e, &req);
    auth_rs_ctx_t ctx = {
        .http = iam->http,
        .endpoint = e->api_endpoint,
        .region = e->region,
        .creds = &e->pcreds,
    };
    int rc = auth_rs_get_credentials(&ctx, &req, api_cb, e, &e->op);
    if (rc != 0) {
        e->op = NULL;
        char msg[160];
        snprintf(msg, sizeof(msg), "cannot start the call: %s%s", px_strerror(rc),
                 rc == UV_EINVAL ? " (is [iam] cluster_identifier, custom_domain_name or "
                                   "workgroup_name set?)"
                                 : "");
        entry_fail_msg(e, rc, api_name(iam->cfg), msg);
    }
}

static void endpoint_cb(const char *host, int port, const auth_aws_error_t *err, void *arg)
{
    auth_iam_t *iam = arg;
    iam->ep_op = NULL;
    iam->ep_fetching = false;
    if (!err) {
        char *h = px_strdup(host);
        if (h) {
            px_free(iam->ep_host);
            iam->ep_host = h;
            iam->ep_port = port;
            iam->ep_expires_ms = px_now_unix_ms() + ENDPOINT_TTL_MS;
        }
    }
    const char *api = iam->cfg->iam.workgroup_name && iam->cfg->iam.workgroup_name[0]
                          ? "redshift-serverless:GetWorkgroup"
                          : "redshift:DescribeClusters";
    /* Continue (or fail) every entry parked on the discovery. */
    iam_entry_t *list = iam->ep_wait;
    iam->ep_wait = NULL;
    while (list) {
        iam_entry_t *e = list;
        list = e->ep_next;
        e->ep_next = NULL;
        if (err) {
            entry_fail(e, err, api);
        } else if (set_entry_host(e, host, port, true) != 0) {
            entry_fail_msg(e, UV_ENOMEM, api, "out of memory");
        } else {
            entry_api(e);
        }
    }
}

static void entry_endpoint(iam_entry_t *e)
{
    auth_iam_t *iam = e->iam;
    e->stage = ES_ENDPOINT;
    e->ep_next = iam->ep_wait;
    iam->ep_wait = e;
    if (iam->ep_fetching)
        return;
    auth_rs_request_t req;
    fill_rs_request(iam, e, &req);
    bool sls = auth_rs_is_serverless(&req);
    char ep[512];
    auth_aws_default_endpoint(sls ? AUTH_SVC_REDSHIFT_SERVERLESS : AUTH_SVC_REDSHIFT, e->region, ep,
                              sizeof(ep));
    auth_rs_ctx_t ctx = {
        .http = iam->http,
        .endpoint = e->api_endpoint ? e->api_endpoint : ep,
        .region = e->region,
        .creds = &e->pcreds,
    };
    iam->ep_fetching = true;
    iam->ep_gen++;
    int rc = auth_rs_get_endpoint(&ctx, &req, endpoint_cb, iam, &iam->ep_op);
    if (rc != 0) {
        iam->ep_fetching = false;
        iam->ep_op = NULL;
        iam_entry_t *list = iam->ep_wait;
        iam->ep_wait = NULL;
        while (list) {
            iam_entry_t *x = list;
            list = x->ep_next;
            x->ep_next = NULL;
            entry_fail_msg(x, rc, "endpoint discovery", px_strerror(rc));
        }
    }
}

static void chain_cb(const auth_aws_creds_t *creds, const auth_chain_info_t *info,
                     const auth_aws_error_t *err, void *arg)
{
    iam_entry_t *e = arg;
    auth_iam_t *iam = e->iam;
    e->chain_req = NULL;
    /* Remember where credentials come from, for --check and diagnostics. */
    char *p = sdup(info->provider), *pr = sdup(info->profile), *rs = sdup(info->region_source);
    px_free(iam->last_provider);
    px_free(iam->last_profile);
    px_free(iam->last_region_source);
    iam->last_provider = p;
    iam->last_profile = pr;
    iam->last_region_source = rs;
    if (err) {
        entry_fail(e, err, "AWS credentials");
        return;
    }
    const cfg_t *cfg = iam->cfg;
    if (!info->region) {
        entry_fail_msg(e, AUTH_E_NOCREDS, "AWS region",
                       "no AWS region: set [iam] region, AWS_REGION or a region in the AWS "
                       "profile");
        return;
    }
    bool sls = cfg->iam.workgroup_name && cfg->iam.workgroup_name[0];
    auth_aws_service_t svc = sls ? AUTH_SVC_REDSHIFT_SERVERLESS : AUTH_SVC_REDSHIFT;
    auth_aws_creds_clear(&e->pcreds);
    px_free(e->region);
    px_free(e->api_endpoint);
    e->region = px_strdup(info->region);
    e->api_endpoint = px_strdup(info->endpoint[svc]);
    if (auth_aws_creds_copy(&e->pcreds, creds) != 0 || !e->region || !e->api_endpoint) {
        entry_fail_msg(e, UV_ENOMEM, "AWS credentials", "out of memory");
        return;
    }
    /* Where to connect: the configured host, a custom domain (which is a DNS name for the
     * endpoint), or discovery through the API. */
    if (cfg->upstream.host && cfg->upstream.host[0]) {
        if (set_entry_host(e, cfg->upstream.host, cfg->upstream.port, false) != 0) {
            entry_fail_msg(e, UV_ENOMEM, "AWS credentials", "out of memory");
            return;
        }
        entry_api(e);
        return;
    }
    bool has_id = sls ? true : cfg->iam.cluster_identifier && cfg->iam.cluster_identifier[0];
    if (!has_id && cfg->iam.custom_domain_name && cfg->iam.custom_domain_name[0]) {
        if (set_entry_host(e, cfg->iam.custom_domain_name, cfg->upstream.port, false) != 0) {
            entry_fail_msg(e, UV_ENOMEM, "AWS credentials", "out of memory");
            return;
        }
        entry_api(e);
        return;
    }
    if (iam->ep_host && px_now_unix_ms() < iam->ep_expires_ms) {
        if (set_entry_host(e, iam->ep_host, iam->ep_port, true) != 0) {
            entry_fail_msg(e, UV_ENOMEM, "AWS credentials", "out of memory");
            return;
        }
        entry_api(e);
        return;
    }
    entry_endpoint(e);
}

static void entry_fetch(iam_entry_t *e)
{
    auth_iam_t *iam = e->iam;
    e->stage = ES_CHAIN;
    int rc = auth_chain_get(iam->chain, e->force ? AUTH_CHAIN_FORCE_REFRESH : 0, chain_cb, e,
                            &e->chain_req);
    if (rc != 0) {
        e->chain_req = NULL;
        entry_fail_msg(e, rc, "AWS credentials", px_strerror(rc));
    }
}

/* ---------------------------------------------------------------------------------------------
 * Janitor: refresh ahead of the margin, retry failed refreshes, drop idle and stale entries.
 */

static void janitor_cb(uv_timer_t *t)
{
    auth_iam_t *iam = container_of(t, auth_iam_t, janitor);
    int64_t now = px_now_unix_ms();
    int64_t margin = (int64_t)iam->cfg->iam.refresh_margin_seconds * 1000;
    int64_t used_window = (int64_t)PX_MAX(iam->cfg->iam.duration_seconds, 900) * 1000;
    iam_entry_t *e = iam->entries;
    while (e && !iam->closing) {
        iam_entry_t *next = e->next;
        if (e->stage == ES_IDLE && !e->waiters.head) {
            bool expired = !e->have || e->creds.expiration_ms <= now;
            if (e->stale || (expired && now - e->last_used_ms > IDLE_DROP_MS)) {
                entry_free(e);
            } else if (e->have && e->creds.expiration_ms - now < margin + PROACTIVE_EXTRA_MS &&
                       now - e->last_used_ms < used_window && now >= e->retry_at_ms &&
                       e->creds.expiration_ms > now) {
                entry_fetch(e);
            }
        }
        e = next;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Public API
 */

int auth_iam_new(uv_loop_t *loop, cfg_t *cfg, auth_iam_t **out)
{
    auth_iam_t *iam = px_calloc(1, sizeof(*iam));
    if (!iam)
        return UV_ENOMEM;
    iam->loop = loop;
    int rc = auth_http_new(loop, &iam->http);
    if (rc) {
        px_free(iam);
        return rc;
    }
    /* Refresh the proxy's AWS keys 20 minutes ahead (botocore's advisory refresh is 15): keys
     * forwarded to Redshift in a COPY must outlive the statement, so px_proxy.c asks for new
     * ones 15 minutes before expiry and should then get keys the chain has already renewed. */
    auth_chain_opts_t co = {.region_override = cfg->iam.region,
                            .refresh_ahead_ms = AUTH_IAM_AWS_KEYS_REFRESH_AHEAD_MS};
    rc = auth_chain_new(loop, iam->http, &co, &iam->chain);
    if (rc) {
        auth_http_close(iam->http, NULL, NULL);
        px_free(iam);
        return rc;
    }
    uv_timer_init(loop, &iam->ready_timer);
    uv_timer_init(loop, &iam->janitor);
    uv_timer_start(&iam->janitor, janitor_cb, JANITOR_MS, JANITOR_MS);
    /* The janitor alone must not keep a loop alive (tools run until their work is done). */
    uv_unref((uv_handle_t *)&iam->janitor);
    iam->cfg = cfg_ref(cfg);
    *out = iam;
    return 0;
}

void auth_iam_set_fetch_observer(auth_iam_t *iam, auth_iam_fetch_cb cb, void *arg)
{
    iam->observer = cb;
    iam->observer_arg = arg;
}

void auth_iam_set_config(auth_iam_t *iam, cfg_t *cfg)
{
    cfg_t *old = iam->cfg;
    iam->cfg = cfg_ref(cfg);
    char *fp = make_fingerprint(cfg);
    char *ofp = make_fingerprint(old);
    bool changed = !fp || !ofp || strcmp(fp, ofp) != 0;
    for (iam_entry_t *e = iam->entries, *next; e; e = next) {
        next = e->next;
        if (!fp || strcmp(e->fingerprint, fp) != 0) {
            e->stale = true;
            if (entry_idle(e))
                entry_free(e);
        }
    }
    if (changed && !iam->ep_fetching) {
        px_free(iam->ep_host);
        iam->ep_host = NULL;
        iam->ep_expires_ms = 0;
    }
    px_free(fp);
    px_free(ofp);
    /* SIGHUP also re-reads the AWS files; an allocation failure keeps the old settings. */
    if (auth_chain_reload(iam->chain, cfg->iam.region) != 0)
        (void)0;
    cfg_unref(old);
}

static auth_iam_req_t *req_new(auth_iam_t *iam, req_kind_t kind, void *arg)
{
    auth_iam_req_t *r = px_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->iam = iam;
    r->kind = kind;
    r->arg = arg;
    return r;
}

static int get_db(auth_iam_t *iam, auth_iam_req_t *r, const char *client_user, const char *dbname,
                  bool force)
{
    int rc = 0;
    iam_entry_t *e = entry_get(iam, nz(client_user), dbname, &rc);
    if (!e)
        return rc;
    int64_t now = px_now_unix_ms();
    e->last_used_ms = now;
    if (!force && entry_fresh(iam, e, now)) {
        req_fill_from_entry(r, e);
        req_make_ready(iam, r);
        return 0;
    }
    if (e->stage == ES_IDLE && !force && now < e->retry_at_ms) {
        /* Backing off after a failure: still-valid credentials, or the failure again quickly,
         * rather than one more call per connecting client. */
        if (entry_usable(e, now)) {
            req_fill_from_entry(r, e);
        } else {
            char msg[700];
            snprintf(msg, sizeof(msg), "%s: %s (a recent attempt; retrying after a backoff)",
                     e->last_api, e->last_err.message);
            req_set_error(r, e->last_err.code, e->last_err.aws_code, msg, e->last_err.unreachable);
        }
        req_make_ready(iam, r);
        return 0;
    }
    r->entry = e;
    list_push(&e->waiters, r);
    if (e->stage == ES_IDLE)
        entry_fetch(e);
    return 0;
}

int auth_iam_get_db_creds(auth_iam_t *iam, const char *client_user, const char *dbname,
                          auth_iam_creds_cb cb, void *arg, auth_iam_req_t **req)
{
    if (iam->closing)
        return PX_E_SHUTDOWN;
    if (!cb)
        return UV_EINVAL;
    auth_iam_req_t *r = req_new(iam, RK_DB, arg);
    if (!r)
        return UV_ENOMEM;
    r->cb = cb;
    int rc = get_db(iam, r, client_user, dbname, false);
    if (rc) {
        req_free(r);
        return rc;
    }
    if (req)
        *req = r;
    return 0;
}

int auth_iam_check(auth_iam_t *iam, const char *client_user, const char *dbname,
                   auth_iam_check_cb cb, void *arg)
{
    if (iam->closing)
        return PX_E_SHUTDOWN;
    if (!cb)
        return UV_EINVAL;
    auth_iam_req_t *r = req_new(iam, RK_CHECK, arg);
    if (!r)
        return UV_ENOMEM;
    r->check_cb = cb;
    int rc = get_db(iam, r, client_user, dbname, true);
    if (rc) {
        req_free(r);
        return rc;
    }
    return 0;
}

static void keys_cb(const auth_aws_creds_t *creds, const auth_chain_info_t *info,
                    const auth_aws_error_t *err, void *arg)
{
    auth_iam_req_t *r = arg;
    auth_iam_t *iam = r->iam;
    list_remove(&iam->keys_waiting, r);
    r->chain_req = NULL;
    if (err) {
        req_set_error(r, err->code, err->aws_code, err->message, err->unreachable);
    } else if (auth_aws_creds_copy(&r->keys, creds) != 0) {
        req_set_error(r, UV_ENOMEM, NULL, "out of memory", false);
    } else {
        r->region = sdup(info->region);
        r->s3_endpoint = sdup(info->endpoint[AUTH_SVC_S3]);
    }
    req_make_ready(iam, r);
}

int auth_iam_get_aws_keys(auth_iam_t *iam, auth_iam_keys_cb cb, void *arg, auth_iam_req_t **req)
{
    if (iam->closing)
        return PX_E_SHUTDOWN;
    if (!cb)
        return UV_EINVAL;
    auth_iam_req_t *r = req_new(iam, RK_KEYS, arg);
    if (!r)
        return UV_ENOMEM;
    r->keys_cb = cb;
    int rc = auth_chain_get(iam->chain, 0, keys_cb, r, &r->chain_req);
    if (rc) {
        req_free(r);
        return rc;
    }
    list_push(&iam->keys_waiting, r);
    if (req)
        *req = r;
    return 0;
}

void auth_iam_cancel(auth_iam_req_t *r)
{
    if (!r)
        return;
    auth_iam_t *iam = r->iam;
    if (r->ready) {
        list_remove(&iam->ready, r);
    } else if (r->kind == RK_KEYS) {
        list_remove(&iam->keys_waiting, r);
        auth_chain_cancel(r->chain_req);
    } else if (r->entry) {
        /* The entry's fetch goes on: its result is cached for the next client. */
        list_remove(&r->entry->waiters, r);
    }
    req_free(r);
}

struct auth_http *auth_iam_http(auth_iam_t *iam)
{
    return iam->http;
}

/* ---------------------------------------------------------------------------------------------
 * Close: requests → entries' operations → ready timer (delivers AUTH_E_CANCELED) → janitor →
 * chain → HTTP client → done.
 */

static void iam_maybe_done(auth_iam_t *iam)
{
    if (iam->pending_closes > 0)
        return;
    void (*done)(void *) = iam->done;
    void *arg = iam->done_arg;
    while (iam->entries)
        entry_free(iam->entries);
    px_free(iam->ep_host);
    px_free(iam->last_provider);
    px_free(iam->last_profile);
    px_free(iam->last_region_source);
    cfg_unref(iam->cfg);
    px_free(iam);
    if (done)
        done(arg);
}

static void handle_closed_cb(uv_handle_t *h)
{
    auth_iam_t *iam = h->data;
    iam->pending_closes--;
    iam_maybe_done(iam);
}

static void ready_closed_cb(uv_handle_t *h)
{
    auth_iam_t *iam = h->data;
    /* Everything owed is delivered from here: after close started, never inside it. */
    while (iam->ready.head) {
        auth_iam_req_t *r = iam->ready.head;
        list_remove(&iam->ready, r);
        req_deliver(r);
        req_free(r);
    }
    iam->pending_closes--;
    iam_maybe_done(iam);
}

static void http_closed_cb(void *arg)
{
    auth_iam_t *iam = arg;
    iam->pending_closes--;
    iam_maybe_done(iam);
}

static void chain_closed_cb(void *arg)
{
    auth_iam_t *iam = arg;
    auth_http_close(iam->http, http_closed_cb, iam);
}

void auth_iam_close(auth_iam_t *iam, void (*done)(void *arg), void *arg)
{
    if (iam->closing)
        return;
    iam->closing = true;
    iam->done = done;
    iam->done_arg = arg;
    if (iam->ep_op) {
        auth_rs_cancel(iam->ep_op);
        iam->ep_op = NULL;
    }
    iam->ep_wait = NULL;
    for (iam_entry_t *e = iam->entries; e; e = e->next) {
        if (e->chain_req)
            auth_chain_cancel(e->chain_req);
        if (e->op)
            auth_rs_cancel(e->op);
        e->chain_req = NULL;
        e->op = NULL;
        e->stage = ES_IDLE;
        while (e->waiters.head) {
            auth_iam_req_t *r = e->waiters.head;
            list_remove(&e->waiters, r);
            req_set_error(r, AUTH_E_CANCELED, NULL, "the proxy is shutting down", false);
            req_make_ready(iam, r);
        }
    }
    while (iam->keys_waiting.head) {
        auth_iam_req_t *r = iam->keys_waiting.head;
        list_remove(&iam->keys_waiting, r);
        auth_chain_cancel(r->chain_req);
        req_set_error(r, AUTH_E_CANCELED, NULL, "the proxy is shutting down", false);
        req_make_ready(iam, r);
    }
    /* Results already waiting for the ready timer are delivered as they are. */
    iam->ready_timer.data = iam;
    iam->janitor.data = iam;
    iam->pending_closes = 3; /* ready timer, janitor, chain + HTTP client */
    uv_close((uv_handle_t *)&iam->ready_timer, ready_closed_cb);
    uv_close((uv_handle_t *)&iam->janitor, handle_closed_cb);
    auth_chain_close(iam->chain, chain_closed_cb, iam);
}
