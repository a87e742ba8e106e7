/*
 * Redshift (awsQuery) and Redshift Serverless (JSON 1.1) calls: request bodies, response parsing
 * and the async operations on the shared HTTP client (see auth_redshift.h). DbUser and DbGroups
 * are lower-cased before sending because the service rejects upper case (§10.5); the DbUser AWS
 * returns is kept exactly, prefix included, since the login and the MD5 hash use it (§1.7).
 *
 * No caching here: auth_iam.c owns the cache and decides when to call.
 */
#include "auth_redshift.h"

#include "px_alloc.h"
#include "px_err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void auth_rs_creds_clear(auth_rs_creds_t *c)
{
    if (!c)
        return;
    px_free(c->db_user);
    px_free_secret(c->db_password);
    memset(c, 0, sizeof(*c));
}

static bool set(const char *s)
{
    return s && *s;
}

/* ---------------------------------------------------------------------------------------------
 * Request bodies
 */

static void form_param(px_dbuf_t *b, const char *k, const char *v, bool lower)
{
    if (b->len)
        px_dbuf_put_u8(b, '&');
    px_dbuf_put_cstr(b, k);
    px_dbuf_put_u8(b, '=');
    if (!lower) {
        auth_uri_encode(b, v, strlen(v), false);
        return;
    }
    size_t n = strlen(v);
    char tmp[256];
    if (n >= sizeof(tmp)) {
        b->failed = true; /* names are at most 128 characters; refuse anything absurd */
        return;
    }
    for (size_t i = 0; i < n; i++)
        tmp[i] = px_ascii_lower(v[i]);
    auth_uri_encode(b, tmp, n, false);
}

int auth_rs_build_cluster_credentials(const auth_rs_request_t *r, bool by_domain, px_dbuf_t *body)
{
    if (by_domain ? !set(r->custom_domain_name) : !set(r->cluster_identifier))
        return UV_EINVAL;
    if (!r->with_iam && !set(r->db_user))
        return UV_EINVAL;
    /* Alphabetical order, as in reference vector 13 (the signature covers the body's hash, so
     * any order is valid; a fixed one makes requests reproducible). */
    form_param(body, "Action",
               r->with_iam ? "GetClusterCredentialsWithIAM" : "GetClusterCredentials", false);
    if (!r->with_iam && r->auto_create)
        form_param(body, "AutoCreate", "true", false);
    if (by_domain)
        form_param(body, "CustomDomainName", r->custom_domain_name, false);
    else
        form_param(body, "ClusterIdentifier", r->cluster_identifier, false);
    if (!r->with_iam) {
        for (size_t i = 0; i < r->ngroups; i++) {
            char k[48];
            snprintf(k, sizeof(k), "DbGroups.DbGroup.%zu", i + 1);
            form_param(body, k, r->db_groups[i], true);
        }
    }
    if (set(r->db_name))
        form_param(body, "DbName", r->db_name, false);
    if (!r->with_iam)
        form_param(body, "DbUser", r->db_user, true);
    if (r->duration_seconds > 0) {
        char d[16];
        snprintf(d, sizeof(d), "%d", r->duration_seconds);
        form_param(body, "DurationSeconds", d, false);
    }
    form_param(body, "Version", "2012-12-01", false);
    return body->failed ? UV_ENOMEM : 0;
}

int auth_rs_build_describe_clusters(const char *cluster_identifier, px_dbuf_t *body)
{
    if (!set(cluster_identifier))
        return UV_EINVAL;
    form_param(body, "Action", "DescribeClusters", false);
    form_param(body, "ClusterIdentifier", cluster_identifier, false);
    form_param(body, "Version", "2012-12-01", false);
    return body->failed ? UV_ENOMEM : 0;
}

static void json_str(px_dbuf_t *b, const char *s)
{
    px_dbuf_put_u8(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            px_dbuf_put_u8(b, '\\');
            px_dbuf_put_u8(b, *p);
        } else if (*p < 0x20) {
            px_dbuf_printf(b, "\\u%04x", *p);
        } else {
            px_dbuf_put_u8(b, *p);
        }
    }
    px_dbuf_put_u8(b, '"');
}

int auth_rs_build_serverless_credentials(const auth_rs_request_t *r, bool by_domain,
                                         px_dbuf_t *body)
{
    if (by_domain ? !set(r->custom_domain_name) : !set(r->workgroup_name))
        return UV_EINVAL;
    px_dbuf_put_cstr(body, by_domain ? "{\"customDomainName\":" : "{\"workgroupName\":");
    json_str(body, by_domain ? r->custom_domain_name : r->workgroup_name);
    if (set(r->db_name)) {
        px_dbuf_put_cstr(body, ",\"dbName\":");
        json_str(body, r->db_name);
    }
    if (r->duration_seconds > 0)
        px_dbuf_printf(body, ",\"durationSeconds\":%d", r->duration_seconds);
    px_dbuf_put_u8(body, '}');
    return body->failed ? UV_ENOMEM : 0;
}

int auth_rs_build_serverless_workgroup(const char *workgroup, px_dbuf_t *body)
{
    if (!set(workgroup))
        return UV_EINVAL;
    px_dbuf_put_cstr(body, "{\"workgroupName\":");
    json_str(body, workgroup);
    px_dbuf_put_u8(body, '}');
    return body->failed ? UV_ENOMEM : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Response parsing
 */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* DbUser goes into the startup packet and logs: printable, no spaces, bounded. The password goes
 * into the password message: printable ASCII. */
static bool printable(const char *s, size_t max, bool allow_space)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c == 0x7f || (!allow_space && c == ' ') || n >= max)
            return false;
    }
    return n > 0;
}

static int take_creds(const char *user, const char *pass, auth_rs_creds_t *out,
                      auth_aws_error_t *err, const char *what)
{
    if (!user || !printable(user, 256, false)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s response has no usable DbUser", what);
        return AUTH_E_PARSE;
    }
    if (!pass || !printable(pass, 1024, false)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s response has no usable DbPassword", what);
        return AUTH_E_PARSE;
    }
    out->db_user = px_strdup(user);
    out->db_password = px_strdup(pass);
    if (!out->db_user || !out->db_password) {
        auth_rs_creds_clear(out);
        auth_aws_error_set(err, UV_ENOMEM, NULL, "out of memory");
        return UV_ENOMEM;
    }
    return 0;
}

int auth_rs_parse_cluster_credentials(const uint8_t *body, size_t n, bool with_iam,
                                      auth_rs_creds_t *out, auth_aws_error_t *err)
{
    memset(out, 0, sizeof(*out));
    const char *op = with_iam ? "GetClusterCredentialsWithIAM" : "GetClusterCredentials";
    char p[3][128];
    static const char *const leaf[3] = {"DbUser", "DbPassword", "Expiration"};
    auth_xml_field_t f[3];
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof(p[i]), "%sResponse/%sResult/%s", op, op, leaf[i]);
        f[i].path = p[i];
        f[i].secret = i == 1;
    }
    int rc = auth_xml_extract(body, n, f, 3);
    if (rc) {
        auth_aws_error_set(err, rc, NULL, "%s response is not well-formed XML", op);
        return rc;
    }
    if (!f[2].value) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s response has no Expiration", op);
        rc = AUTH_E_PARSE;
        goto out;
    }
    char *exp = trim(f[2].value);
    if (auth_time_parse_iso8601(exp, strlen(exp), &out->expiration_ms) != 0) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "%s response: Expiration is malformed", op);
        rc = AUTH_E_PARSE;
        goto out;
    }
    /* The password is taken as sent: AWS's are base64-like, and trimming could only hide a
     * broken response. DbUser is trimmed of formatting whitespace. */
    rc = take_creds(f[0].value ? trim(f[0].value) : NULL, f[1].value, out, err, op);
out:
    auth_xml_fields_free(f, 3);
    if (rc)
        auth_rs_creds_clear(out);
    return rc;
}

static int parse_port(const char *s, int *port)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > 65535)
        return AUTH_E_PARSE;
    *port = (int)v;
    return 0;
}

static bool valid_host(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '_'))
            return false;
    }
    return true;
}

int auth_rs_parse_describe_clusters(const uint8_t *body, size_t n, char **host, int *port,
                                    auth_aws_error_t *err)
{
    *host = NULL;
    auth_xml_field_t f[3] = {
        {.path = "DescribeClustersResponse/DescribeClustersResult/Clusters/Cluster/Endpoint/"
                 "Address"},
        {.path = "DescribeClustersResponse/DescribeClustersResult/Clusters/Cluster/Endpoint/Port"},
        {.path = "DescribeClustersResponse/DescribeClustersResult/Clusters/Cluster/ClusterStatus"},
    };
    int rc = auth_xml_extract(body, n, f, 3);
    if (rc) {
        auth_aws_error_set(err, rc, NULL, "DescribeClusters response is not well-formed XML");
        return rc;
    }
    if (!f[0].value || !f[1].value) {
        char st[64] = "unknown";
        if (f[2].value)
            auth_aws_sanitize(st, sizeof(st), f[2].value, strlen(f[2].value));
        auth_aws_error_set(err, AUTH_E_PARSE, NULL,
                           "DescribeClusters: the cluster has no endpoint yet (status %s)", st);
        rc = AUTH_E_PARSE;
        goto out;
    }
    char *h = trim(f[0].value);
    if (!valid_host(h) || parse_port(trim(f[1].value), port) != 0) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "DescribeClusters: malformed endpoint");
        rc = AUTH_E_PARSE;
        goto out;
    }
    *host = px_strdup(h);
    if (!*host) {
        auth_aws_error_set(err, UV_ENOMEM, NULL, "out of memory");
        rc = UV_ENOMEM;
    }
out:
    auth_xml_fields_free(f, 3);
    return rc;
}

int auth_rs_parse_serverless_credentials(const uint8_t *body, size_t n, auth_rs_creds_t *out,
                                         auth_aws_error_t *err)
{
    memset(out, 0, sizeof(*out));
    json_t *root = auth__json_load(body, n);
    json_t *p = NULL;
    int rc = 0;
    if (!json_is_object(root)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "GetCredentials response is not JSON");
        rc = AUTH_E_PARSE;
        goto out;
    }
    json_t *u = json_object_get(root, "dbUser");
    p = json_object_get(root, "dbPassword");
    json_t *e = json_object_get(root, "expiration");
    if (json_is_number(e)) {
        rc = auth_time_from_epoch(json_number_value(e), &out->expiration_ms);
    } else if (json_is_string(e)) {
        rc = auth_time_parse_iso8601(json_string_value(e), json_string_length(e),
                                     &out->expiration_ms);
    } else {
        rc = AUTH_E_PARSE;
    }
    if (rc) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL,
                           "GetCredentials response has no valid expiration");
        goto out;
    }
    const char *us = json_is_string(u) && strlen(json_string_value(u)) == json_string_length(u)
                         ? json_string_value(u)
                         : NULL;
    const char *ps = json_is_string(p) && strlen(json_string_value(p)) == json_string_length(p)
                         ? json_string_value(p)
                         : NULL;
    rc = take_creds(us, ps, out, err, "GetCredentials");
out:
    auth__json_wipe_string(p);
    json_decref(root);
    if (rc)
        auth_rs_creds_clear(out);
    return rc;
}

int auth_rs_parse_serverless_workgroup(const uint8_t *body, size_t n, char **host, int *port,
                                       auth_aws_error_t *err)
{
    *host = NULL;
    json_t *root = auth__json_load(body, n);
    int rc = AUTH_E_PARSE;
    json_t *ep = json_object_get(json_object_get(root, "workgroup"), "endpoint");
    json_t *a = json_object_get(ep, "address");
    json_t *pt = json_object_get(ep, "port");
    if (!json_is_string(a) || !json_is_integer(pt)) {
        json_t *st = json_object_get(json_object_get(root, "workgroup"), "status");
        char s[64] = "unknown";
        if (json_is_string(st))
            auth_aws_sanitize(s, sizeof(s), json_string_value(st), json_string_length(st));
        auth_aws_error_set(err, AUTH_E_PARSE, NULL,
                           "GetWorkgroup: the workgroup has no endpoint (status %s)", s);
        goto out;
    }
    json_int_t pv = json_integer_value(pt);
    const char *h = json_string_value(a);
    if (pv < 1 || pv > 65535 || strlen(h) != json_string_length(a) || !valid_host(h)) {
        auth_aws_error_set(err, AUTH_E_PARSE, NULL, "GetWorkgroup: malformed endpoint");
        goto out;
    }
    *port = (int)pv;
    *host = px_strdup(h);
    if (!*host) {
        auth_aws_error_set(err, UV_ENOMEM, NULL, "out of memory");
        rc = UV_ENOMEM;
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Async operations
 */

struct auth_rs_op {
    auth_http_t *http;
    char *endpoint, *region;
    auth_aws_creds_t creds;
    /* Owned copy of the request. */
    auth_rs_request_t req;
    char *cluster, *domain, *workgroup, *user, *dbname;
    char **groups;
    bool want_endpoint;
    bool by_domain;
    auth_aws_call_t *call;
    auth_rs_creds_cb creds_cb;
    auth_rs_endpoint_cb endpoint_cb;
    void *arg;
};

static void op_free(auth_rs_op_t *op)
{
    px_free(op->endpoint);
    px_free(op->region);
    auth_aws_creds_clear(&op->creds);
    px_free(op->cluster);
    px_free(op->domain);
    px_free(op->workgroup);
    px_free(op->user);
    px_free(op->dbname);
    if (op->groups) {
        for (size_t i = 0; i < op->req.ngroups; i++)
            px_free(op->groups[i]);
        px_free(op->groups);
    }
    px_free(op);
}

static char *cdup(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = px_strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static auth_rs_op_t *op_new(const auth_rs_ctx_t *ctx, const auth_rs_request_t *r)
{
    auth_rs_op_t *op = px_calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    bool oom = false;
    op->http = ctx->http;
    op->endpoint = cdup(ctx->endpoint, &oom);
    op->region = cdup(ctx->region, &oom);
    if (!oom && auth_aws_creds_copy(&op->creds, ctx->creds) != 0)
        oom = true;
    op->req = *r;
    op->req.cluster_identifier = op->cluster = cdup(r->cluster_identifier, &oom);
    op->req.custom_domain_name = op->domain = cdup(r->custom_domain_name, &oom);
    op->req.workgroup_name = op->workgroup = cdup(r->workgroup_name, &oom);
    op->req.db_user = op->user = cdup(r->db_user, &oom);
    op->req.db_name = op->dbname = cdup(r->db_name, &oom);
    op->req.db_groups = NULL;
    if (!oom && r->ngroups) {
        op->groups = px_calloc(r->ngroups, sizeof(char *));
        if (!op->groups)
            oom = true;
        for (size_t i = 0; !oom && i < r->ngroups; i++)
            op->groups[i] = cdup(r->db_groups[i], &oom);
        op->req.db_groups = (const char *const *)op->groups;
    }
    if (oom) {
        op_free(op);
        return NULL;
    }
    return op;
}

static void op_call_cb(const auth_aws_error_t *err, const auth_http_resp_t *resp, void *arg);

/* Starts the next call for op (credentials or endpoint, by domain or by identifier). */
static int op_start(auth_rs_op_t *op)
{
    bool sls = auth_rs_is_serverless(&op->req);
    px_dbuf_t body;
    px_dbuf_init(&body, 64 * 1024);
    int rc;
    const char *target = NULL;
    if (op->want_endpoint) {
        rc = sls ? auth_rs_build_serverless_workgroup(op->req.workgroup_name, &body)
                 : auth_rs_build_describe_clusters(op->req.cluster_identifier, &body);
        target = "RedshiftServerless.GetWorkgroup";
    } else if (sls) {
        rc = auth_rs_build_serverless_credentials(&op->req, op->by_domain, &body);
        target = "RedshiftServerless.GetCredentials";
    } else {
        rc = auth_rs_build_cluster_credentials(&op->req, op->by_domain, &body);
    }
    if (rc) {
        px_dbuf_free(&body);
        return rc;
    }
    auth_http_header_t hdr[2];
    size_t nh = 0;
    if (sls) {
        hdr[nh++] = (auth_http_header_t){"Content-Type", "application/x-amz-json-1.1"};
        hdr[nh++] = (auth_http_header_t){"X-Amz-Target", target};
    } else {
        hdr[nh++] = (auth_http_header_t){"Content-Type",
                                         "application/x-www-form-urlencoded; charset=utf-8"};
    }
    auth_aws_call_opts_t o = {
        .method = "POST",
        .endpoint = op->endpoint,
        .path = "/",
        .headers = hdr,
        .nheaders = nh,
        .body = body.data,
        .bodylen = body.len,
        .service = sls ? AUTH_SVC_REDSHIFT_SERVERLESS : AUTH_SVC_REDSHIFT,
        .region = op->region,
        .creds = &op->creds,
        .proto = sls ? AUTH_PROTO_JSON : AUTH_PROTO_QUERY,
        /* Minting a second password is harmless, and the drivers retry these calls too. */
        .idempotent = true,
        .secret_body = !op->want_endpoint,
    };
    rc = auth_aws_call(op->http, &o, op_call_cb, op, &op->call);
    px_dbuf_free(&body);
    return rc;
}

static void op_deliver_error(auth_rs_op_t *op, const auth_aws_error_t *err)
{
    if (op->want_endpoint)
        op->endpoint_cb(NULL, 0, err, op->arg);
    else
        op->creds_cb(NULL, err, op->arg);
    op_free(op);
}

static void op_call_cb(const auth_aws_error_t *err, const auth_http_resp_t *resp, void *arg)
{
    auth_rs_op_t *op = arg;
    op->call = NULL;
    bool sls = auth_rs_is_serverless(&op->req);
    if (err) {
        /* §10.7: a CustomDomainName the service rejects is retried by ClusterIdentifier. */
        if (!op->want_endpoint && op->by_domain && err->code == AUTH_E_AWS &&
            set(op->req.cluster_identifier) && !sls) {
            op->by_domain = false;
            int rc = op_start(op);
            if (rc == 0)
                return;
            auth_aws_error_t e;
            auth_aws_error_set(&e, rc, NULL, "cannot retry by ClusterIdentifier: %s",
                               px_strerror(rc));
            op_deliver_error(op, &e);
            return;
        }
        op_deliver_error(op, err);
        return;
    }
    auth_aws_error_t perr;
    if (op->want_endpoint) {
        char *host = NULL;
        int port = 0;
        int rc =
            sls ? auth_rs_parse_serverless_workgroup(resp->body, resp->bodylen, &host, &port, &perr)
                : auth_rs_parse_describe_clusters(resp->body, resp->bodylen, &host, &port, &perr);
        if (rc) {
            op_deliver_error(op, &perr);
            return;
        }
        op->endpoint_cb(host, port, NULL, op->arg);
        px_free(host);
        op_free(op);
        return;
    }
    auth_rs_creds_t c;
    int rc = sls ? auth_rs_parse_serverless_credentials(resp->body, resp->bodylen, &c, &perr)
                 : auth_rs_parse_cluster_credentials(resp->body, resp->bodylen, op->req.with_iam,
                                                     &c, &perr);
    if (rc) {
        op_deliver_error(op, &perr);
        return;
    }
    op->creds_cb(&c, NULL, op->arg);
    auth_rs_creds_clear(&c);
    op_free(op);
}

int auth_rs_get_credentials(const auth_rs_ctx_t *ctx, const auth_rs_request_t *r,
                            auth_rs_creds_cb cb, void *arg, auth_rs_op_t **out)
{
    if (!ctx->creds || !ctx->endpoint || !ctx->region)
        return UV_EINVAL;
    bool sls = auth_rs_is_serverless(r);
    if (!sls && !set(r->cluster_identifier) && !set(r->custom_domain_name))
        return UV_EINVAL;
    auth_rs_op_t *op = op_new(ctx, r);
    if (!op)
        return UV_ENOMEM;
    op->creds_cb = cb;
    op->arg = arg;
    /* Serverless: the workgroup name when given, else the custom domain. Provisioned: the
     * custom domain first when given (the drivers' order), else the identifier. */
    op->by_domain = sls ? !set(r->workgroup_name) : set(r->custom_domain_name);
    int rc = op_start(op);
    if (rc) {
        op_free(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

int auth_rs_get_endpoint(const auth_rs_ctx_t *ctx, const auth_rs_request_t *r,
                         auth_rs_endpoint_cb cb, void *arg, auth_rs_op_t **out)
{
    if (!ctx->creds || !ctx->endpoint || !ctx->region)
        return UV_EINVAL;
    if (auth_rs_is_serverless(r) ? !set(r->workgroup_name) : !set(r->cluster_identifier))
        return UV_EINVAL;
    auth_rs_op_t *op = op_new(ctx, r);
    if (!op)
        return UV_ENOMEM;
    op->endpoint_cb = cb;
    op->arg = arg;
    op->want_endpoint = true;
    int rc = op_start(op);
    if (rc) {
        op_free(op);
        return rc;
    }
    if (out)
        *out = op;
    return 0;
}

void auth_rs_cancel(auth_rs_op_t *op)
{
    if (!op)
        return;
    if (op->call)
        auth_aws_call_cancel(op->call);
    op_free(op);
}
