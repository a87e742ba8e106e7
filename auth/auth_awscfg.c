/*
 * Resolution of rsproxy's AWS settings and credential plan from the environment and the parsed
 * ~/.aws files, following botocore's providers and lookup orders (reference §5). Pure: the
 * caller reads the files off the loop, auth_chain.c runs the plan. Profile values come from the
 * credentials file first, then the config file (botocore's merged profile map). Configuration
 * mistakes (a source_profile loop, a role with no source, a container URL outside the allowed
 * hosts) become an error in the result rather than a silent fall-through to another provider.
 */
#include "auth_awscfg.h"

#include "px_alloc.h"
#include "px_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

const char *auth_env_get(char *const *envp, const char *name)
{
    if (!envp)
        return NULL;
    size_t n = strlen(name);
    for (char *const *e = envp; *e; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    }
    return NULL;
}

/* Set and non-empty. */
static const char *env_val(char *const *envp, const char *name)
{
    const char *v = auth_env_get(envp, name);
    return v && *v ? v : NULL;
}

static bool is_true(const char *v)
{
    return v && strcasecmp(v, "true") == 0;
}

static void expand_home(char *const *envp, const char *path, char *out, size_t cap)
{
    const char *home = env_val(envp, "HOME");
    if (path[0] == '~' && (path[1] == '/' || path[1] == '\0') && home)
        snprintf(out, cap, "%s%s", home, path + 1);
    else
        snprintf(out, cap, "%s", path);
}

void auth_awscfg_paths(char *const *envp, char *config_path, size_t ccap, char *creds_path,
                       size_t crcap)
{
    const char *c = env_val(envp, "AWS_CONFIG_FILE");
    const char *k = env_val(envp, "AWS_SHARED_CREDENTIALS_FILE");
    const char *home = env_val(envp, "HOME");
    config_path[0] = creds_path[0] = '\0';
    if (c)
        expand_home(envp, c, config_path, ccap);
    else if (home)
        snprintf(config_path, ccap, "%s/.aws/config", home);
    if (k)
        expand_home(envp, k, creds_path, crcap);
    else if (home)
        snprintf(creds_path, crcap, "%s/.aws/credentials", home);
}

void auth_aws_default_endpoint(auth_aws_service_t svc, const char *region, char *out, size_t cap)
{
    const char *name = auth_aws_service_signing_name(svc);
    if (!region || !*region) {
        /* Only STS has a global endpoint; others need a region, and callers check for one. */
        snprintf(out, cap, "https://%s.amazonaws.com", name);
        return;
    }
    const char *suffix = strncmp(region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
    snprintf(out, cap, "https://%s.%s.%s", name, region, suffix);
}

bool auth_container_url_allowed(const char *url)
{
    if (strncasecmp(url, "https://", 8) == 0)
        return url[8] != '\0' && url[8] != '/';
    if (strncasecmp(url, "http://", 7) != 0)
        return false;
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || memchr(a, '@', alen))
        return false;
    char host[256];
    size_t hlen;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return false;
        hlen = (size_t)(rb - a) + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon ? (size_t)(colon - a) : alen;
    }
    if (hlen >= sizeof(host))
        return false;
    memcpy(host, a, hlen);
    host[hlen] = '\0';
    for (char *p = host; *p; p++)
        *p = px_ascii_lower(*p);
    static const char *const allowed[] = {"localhost", "169.254.170.2", "169.254.170.23",
                                          "[fd00:ec2::23]", "[::1]"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(allowed); i++)
        if (strcmp(host, allowed[i]) == 0)
            return true;
    /* Any IPv4 loopback address 127.0.0.0/8, written as four decimal octets. */
    unsigned o[4];
    char tail;
    if (sscanf(host, "%3u.%3u.%3u.%3u%c", &o[0], &o[1], &o[2], &o[3], &tail) == 4 && o[0] == 127 &&
        o[1] < 256 && o[2] < 256 && o[3] < 256)
        return true;
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Shell-style splitting
 */

void auth_shell_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        px_free(*a);
}

int auth_shell_split(const char *cmd, char **argv, int max)
{
    int n = 0;
    argv[0] = NULL;
    size_t len = strlen(cmd);
    char *word = px_malloc(len + 1);
    if (!word)
        return UV_ENOMEM;
    size_t wl = 0;
    bool in_word = false;
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = cmd[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (in_word) {
                if (n >= max) {
                    rc = AUTH_E_PARSE;
                    goto out;
                }
                if (!(argv[n] = px_strndup(word, wl))) {
                    rc = UV_ENOMEM;
                    goto out;
                }
                argv[++n] = NULL;
                wl = 0;
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if (c == '\\') {
            if (i + 1 >= len) {
                rc = AUTH_E_PARSE;
                goto out;
            }
            word[wl++] = cmd[++i];
        } else if (c == '\'') {
            const char *end = strchr(cmd + i + 1, '\'');
            if (!end) {
                rc = AUTH_E_PARSE;
                goto out;
            }
            size_t k = (size_t)(end - (cmd + i + 1));
            memcpy(word + wl, cmd + i + 1, k);
            wl += k;
            i += k + 1;
        } else if (c == '"') {
            i++;
            for (;; i++) {
                if (i >= len) {
                    rc = AUTH_E_PARSE;
                    goto out;
                }
                if (cmd[i] == '"')
                    break;
                if (cmd[i] == '\\' && i + 1 < len &&
                    (cmd[i + 1] == '"' || cmd[i + 1] == '\\' || cmd[i + 1] == '$' ||
                     cmd[i + 1] == '`')) {
                    word[wl++] = cmd[++i];
                    continue;
                }
                if (cmd[i] == '\\' && i + 1 < len && cmd[i + 1] == '\n') {
                    i++;
                    continue;
                }
                word[wl++] = cmd[i];
            }
        } else {
            word[wl++] = c;
        }
    }
    if (in_word) {
        if (n >= max) {
            rc = AUTH_E_PARSE;
            goto out;
        }
        if (!(argv[n] = px_strndup(word, wl))) {
            rc = UV_ENOMEM;
            goto out;
        }
        argv[++n] = NULL;
    }
    if (n == 0)
        rc = AUTH_E_PARSE;
out:
    px_free(word);
    if (rc) {
        auth_shell_free(argv);
        argv[0] = NULL;
        return rc;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Profiles
 */

typedef struct rctx {
    const auth_awscfg_input_t *in;
    auth_awscfg_t *out;
    const char *visited[AUTH_MAX_ROLE_CHAIN + 2];
    int nvisited;
    bool oom;
} rctx_t;

static const char *ini_val(const auth_ini_t *ini, const char *section, const char *key)
{
    const char *v = auth_ini_get(ini, section, key);
    return v && *v ? v : NULL;
}

static const char *config_get(const rctx_t *c, const char *profile, const char *key)
{
    char sect[320];
    snprintf(sect, sizeof(sect), "profile %s", profile);
    const char *v = ini_val(c->in->config, sect, key);
    if (!v && strcmp(profile, "default") == 0)
        v = ini_val(c->in->config, "default", key);
    return v;
}

static const char *creds_get(const rctx_t *c, const char *profile, const char *key)
{
    return ini_val(c->in->credentials, profile, key);
}

/* botocore's merged profile map: credentials-file values override config-file values. */
static const char *prof_get(const rctx_t *c, const char *profile, const char *key)
{
    const char *v = creds_get(c, profile, key);
    return v ? v : config_get(c, profile, key);
}

static bool profile_exists(const rctx_t *c, const char *profile)
{
    char sect[320];
    snprintf(sect, sizeof(sect), "profile %s", profile);
    if (auth_ini_has_section(c->in->credentials, profile) ||
        auth_ini_has_section(c->in->config, sect))
        return true;
    return strcmp(profile, "default") == 0 && auth_ini_has_section(c->in->config, "default");
}

static void set_error(rctx_t *c, int code, const char *fmt, ...) PX_PRINTF(3, 4);
static void set_error(rctx_t *c, int code, const char *fmt, ...)
{
    if (c->out->error)
        return; /* the first cause is the one worth reporting */
    c->out->error = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->out->error_msg, sizeof(c->out->error_msg), fmt, ap);
    va_end(ap);
}

static char *sdup(rctx_t *c, const char *s)
{
    if (!s)
        return NULL;
    char *d = px_strdup(s);
    if (!d)
        c->oom = true;
    return d;
}

static auth_src_t *node_new(rctx_t *c, auth_src_kind_t kind, const char *fmt, ...) PX_PRINTF(3, 4);
static auth_src_t *node_new(rctx_t *c, auth_src_kind_t kind, const char *fmt, ...)
{
    auth_src_t *s = px_calloc(1, sizeof(*s));
    if (!s) {
        c->oom = true;
        return NULL;
    }
    s->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->desc, sizeof(s->desc), fmt, ap);
    va_end(ap);
    return s;
}

void auth_src_free(auth_src_t *s)
{
    while (s) {
        auth_src_t *next = s->source;
        auth_aws_creds_clear(&s->creds);
        px_free(s->role_arn);
        px_free(s->session_name);
        px_free(s->external_id);
        px_free(s->token_file);
        px_free(s->command);
        px_free(s->url);
        px_free_secret(s->auth_token);
        px_free(s->auth_token_file);
        px_free(s);
        s = next;
    }
}

static auth_src_t *static_node(rctx_t *c, const char *akid, const char *secret, const char *token,
                               const char *desc)
{
    auth_src_t *s = node_new(c, AUTH_SRC_STATIC, "%s", desc);
    if (!s)
        return NULL;
    s->creds.access_key_id = sdup(c, akid);
    s->creds.secret_access_key = sdup(c, secret);
    s->creds.session_token = sdup(c, token);
    if (c->oom) {
        auth_src_free(s);
        return NULL;
    }
    auth_aws_error_t err;
    if (auth_aws_creds_validate(&s->creds, &err) != 0) {
        set_error(c, AUTH_E_PARSE, "%s: %s", desc, err.message);
        auth_src_free(s);
        return NULL;
    }
    return s;
}

/* Static keys of a profile in one file (`file_is_creds`), or NULL; partial keys are an error. */
static auth_src_t *profile_static(rctx_t *c, const char *profile, bool file_is_creds)
{
    const char *(*get)(const rctx_t *, const char *, const char *) =
        file_is_creds ? creds_get : config_get;
    const char *akid = get(c, profile, "aws_access_key_id");
    const char *secret = get(c, profile, "aws_secret_access_key");
    const char *token = get(c, profile, "aws_session_token");
    if (!token)
        token = get(c, profile, "aws_security_token");
    const char *path = file_is_creds ? c->in->credentials_path : c->in->config_path;
    if (!akid && !secret)
        return NULL;
    if (!akid || !secret) {
        set_error(c, AUTH_E_PARSE,
                  "profile %s in %s has only one of aws_access_key_id and aws_secret_access_key",
                  profile, path ? path : "?");
        return NULL;
    }
    char desc[192];
    snprintf(desc, sizeof(desc), "profile %s in %s", profile, path ? path : "?");
    return static_node(c, akid, secret, token, desc);
}

static bool profile_has_static(const rctx_t *c, const char *profile)
{
    return prof_get(c, profile, "aws_access_key_id") != NULL;
}

static auth_src_t *env_static(rctx_t *c, bool required)
{
    char *const *envp = c->in->envp;
    const char *akid = env_val(envp, "AWS_ACCESS_KEY_ID");
    const char *secret = env_val(envp, "AWS_SECRET_ACCESS_KEY");
    const char *token = env_val(envp, "AWS_SESSION_TOKEN");
    if (!token)
        token = env_val(envp, "AWS_SECURITY_TOKEN");
    if (!akid && !secret) {
        if (required)
            set_error(c, AUTH_E_NOCREDS,
                      "credential_source = Environment, but AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY are not set");
        return NULL;
    }
    if (!akid || !secret) {
        set_error(c, AUTH_E_PARSE,
                  "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
        return NULL;
    }
    auth_src_t *s = static_node(c, akid, secret, token, "environment");
    const char *exp = env_val(envp, "AWS_CREDENTIAL_EXPIRATION");
    if (s && exp) {
        if (auth_time_parse_iso8601(exp, strlen(exp), &s->creds.expiration_ms) != 0) {
            set_error(c, AUTH_E_PARSE, "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time");
            auth_src_free(s);
            return NULL;
        }
    }
    return s;
}

static auth_src_t *container_node(rctx_t *c, bool required)
{
    char *const *envp = c->in->envp;
    const char *rel = env_val(envp, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_val(envp, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!rel && !full) {
        if (required)
            set_error(c, AUTH_E_NOCREDS,
                      "credential_source = EcsContainer, but neither "
                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI is set");
        return NULL;
    }
    char url[2048];
    if (rel) {
        if (rel[0] != '/') {
            set_error(c, AUTH_E_PARSE, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with /");
            return NULL;
        }
        snprintf(url, sizeof(url), "http://169.254.170.2%s", rel);
    } else {
        if (!auth_container_url_allowed(full)) {
            set_error(c, AUTH_E_PARSE,
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback "
                      "address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]");
            return NULL;
        }
        snprintf(url, sizeof(url), "%s", full);
    }
    if (strpbrk(url, "\r\n \t")) {
        set_error(c, AUTH_E_PARSE, "the container credentials URI contains whitespace");
        return NULL;
    }
    auth_src_t *s = node_new(c, AUTH_SRC_CONTAINER, "container credentials");
    if (!s)
        return NULL;
    s->url = sdup(c, url);
    const char *tf = env_val(envp, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = env_val(envp, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (tf) {
        s->auth_token_file = sdup(c, tf);
    } else if (tok) {
        if (strpbrk(tok, "\r\n")) {
            set_error(c, AUTH_E_PARSE, "AWS_CONTAINER_AUTHORIZATION_TOKEN contains a line break");
            auth_src_free(s);
            return NULL;
        }
        s->auth_token = sdup(c, tok);
    }
    if (c->oom) {
        auth_src_free(s);
        return NULL;
    }
    return s;
}

static auth_src_t *imds_node(rctx_t *c, bool required)
{
    if (c->out->imds_disabled) {
        if (required)
            set_error(c, AUTH_E_NOCREDS,
                      "credential_source = Ec2InstanceMetadata, but AWS_EC2_METADATA_DISABLED "
                      "is true");
        return NULL;
    }
    return node_new(c, AUTH_SRC_IMDS, "EC2 instance metadata");
}

static auth_src_t *web_identity_node(rctx_t *c, const char *role_arn, const char *token_file,
                                     const char *session, const char *where)
{
    if (!role_arn) {
        set_error(c, AUTH_E_PARSE, "%s: a web identity token file needs a role ARN (%s)", where,
                  strcmp(where, "environment") == 0 ? "AWS_ROLE_ARN" : "role_arn");
        return NULL;
    }
    auth_src_t *s = node_new(c, AUTH_SRC_WEB_IDENTITY, "web identity (%s) for %s", where, role_arn);
    if (!s)
        return NULL;
    s->role_arn = sdup(c, role_arn);
    s->token_file = sdup(c, token_file);
    s->session_name = sdup(c, session);
    if (c->oom) {
        auth_src_free(s);
        return NULL;
    }
    return s;
}

static auth_src_t *process_node(rctx_t *c, const char *profile, const char *cmd)
{
    auth_src_t *s = node_new(c, AUTH_SRC_PROCESS, "credential_process of profile %s", profile);
    if (!s)
        return NULL;
    s->command = sdup(c, cmd);
    if (c->oom) {
        auth_src_free(s);
        return NULL;
    }
    return s;
}

static bool visited(const rctx_t *c, const char *profile)
{
    for (int i = 0; i < c->nvisited; i++)
        if (strcmp(c->visited[i], profile) == 0)
            return true;
    return false;
}

static auth_src_t *assume_role_node(rctx_t *c, const char *profile);

/* Credentials of a source_profile (botocore _resolve_credentials_from_profile). */
static auth_src_t *source_profile_node(rctx_t *c, const char *profile)
{
    if (profile_has_static(c, profile)) {
        auth_src_t *s = profile_static(c, profile, true);
        if (!s && !c->out->error)
            s = profile_static(c, profile, false);
        return s;
    }
    if (prof_get(c, profile, "role_arn") && !prof_get(c, profile, "web_identity_token_file"))
        return assume_role_node(c, profile);
    const char *wif = prof_get(c, profile, "web_identity_token_file");
    if (wif)
        return web_identity_node(c, prof_get(c, profile, "role_arn"), wif,
                                 prof_get(c, profile, "role_session_name"), "profile");
    const char *cp = prof_get(c, profile, "credential_process");
    if (cp)
        return process_node(c, profile, cp);
    set_error(c, AUTH_E_PARSE, "the source profile %s must have credentials", profile);
    return NULL;
}

static auth_src_t *assume_role_node(rctx_t *c, const char *profile)
{
    if (c->nvisited > AUTH_MAX_ROLE_CHAIN) {
        set_error(c, AUTH_E_PARSE, "profile %s: role chain longer than %d", profile,
                  AUTH_MAX_ROLE_CHAIN);
        return NULL;
    }
    c->visited[c->nvisited++] = profile;
    const char *role = prof_get(c, profile, "role_arn");
    const char *sp = prof_get(c, profile, "source_profile");
    const char *cs = prof_get(c, profile, "credential_source");
    if (prof_get(c, profile, "mfa_serial")) {
        set_error(c, AUTH_E_PARSE,
                  "profile %s uses mfa_serial, which needs an interactive MFA code; rsproxy "
                  "cannot prompt (use credential_process or a session from aws sts instead)",
                  profile);
        return NULL;
    }
    if (sp && cs) {
        set_error(c, AUTH_E_PARSE,
                  "profile %s has both source_profile and credential_source; use one", profile);
        return NULL;
    }
    if (!sp && !cs) {
        set_error(c, AUTH_E_PARSE,
                  "profile %s has role_arn but neither source_profile nor credential_source",
                  profile);
        return NULL;
    }
    auth_src_t *src = NULL;
    if (cs) {
        if (strcmp(cs, "Environment") == 0)
            src = env_static(c, true);
        else if (strcmp(cs, "Ec2InstanceMetadata") == 0)
            src = imds_node(c, true);
        else if (strcmp(cs, "EcsContainer") == 0)
            src = container_node(c, true);
        else
            set_error(c, AUTH_E_PARSE,
                      "profile %s: credential_source must be Environment, Ec2InstanceMetadata or "
                      "EcsContainer",
                      profile);
    } else if (!profile_exists(c, sp)) {
        set_error(c, AUTH_E_PARSE, "the source_profile %s referenced in profile %s does not exist",
                  sp, profile);
    } else if (visited(c, sp)) {
        /* A profile may name itself to combine its own static keys with role_arn. */
        if (strcmp(sp, profile) == 0 && profile_has_static(c, sp)) {
            src = profile_static(c, sp, true);
            if (!src && !c->out->error)
                src = profile_static(c, sp, false);
        } else {
            set_error(c, AUTH_E_PARSE, "source_profile loop: profile %s leads back to %s", profile,
                      sp);
        }
    } else {
        src = source_profile_node(c, sp);
    }
    if (!src)
        return NULL;
    auth_src_t *s = node_new(c, AUTH_SRC_ASSUME_ROLE, "assume role %s (profile %s)", role, profile);
    if (!s) {
        auth_src_free(src);
        return NULL;
    }
    s->source = src;
    s->role_arn = sdup(c, role);
    s->external_id = sdup(c, prof_get(c, profile, "external_id"));
    s->session_name = sdup(c, prof_get(c, profile, "role_session_name"));
    const char *dur = prof_get(c, profile, "duration_seconds");
    if (dur) {
        char *end;
        long d = strtol(dur, &end, 10);
        if (*end || d < 900 || d > 43200) {
            set_error(c, AUTH_E_PARSE, "profile %s: duration_seconds must be 900..43200", profile);
            auth_src_free(s);
            return NULL;
        }
        s->duration_seconds = (int)d;
    }
    if (c->oom) {
        auth_src_free(s);
        return NULL;
    }
    return s;
}

/* The top of the chain, in botocore's order. */
static auth_src_t *resolve_chain(rctx_t *c)
{
    char *const *envp = c->in->envp;
    const char *profile = c->out->profile;

    auth_src_t *s = env_static(c, false);
    if (s || c->out->error)
        return s;

    if (prof_get(c, profile, "role_arn") && !prof_get(c, profile, "web_identity_token_file"))
        return assume_role_node(c, profile);

    const char *wif = env_val(envp, "AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *warn = env_val(envp, "AWS_ROLE_ARN");
    const char *wsess = env_val(envp, "AWS_ROLE_SESSION_NAME");
    const char *where = "environment";
    if (!wif) {
        wif = prof_get(c, profile, "web_identity_token_file");
        where = "profile";
    }
    if (!warn)
        warn = prof_get(c, profile, "role_arn");
    if (!wsess)
        wsess = prof_get(c, profile, "role_session_name");
    if (wif)
        return web_identity_node(c, warn, wif, wsess, where);

    if (prof_get(c, profile, "sso_start_url") || prof_get(c, profile, "sso_session")) {
        set_error(c, AUTH_E_PARSE,
                  "profile %s uses IAM Identity Center (SSO), which rsproxy does not support; "
                  "use credential_process = aws configure export-credentials --profile %s",
                  profile, profile);
        return NULL;
    }

    if ((s = profile_static(c, profile, true)) || c->out->error)
        return s;
    const char *cp = prof_get(c, profile, "credential_process");
    if (cp)
        return process_node(c, profile, cp);
    if ((s = profile_static(c, profile, false)) || c->out->error)
        return s;
    if ((s = container_node(c, false)) || c->out->error)
        return s;
    return imds_node(c, false);
}

static bool valid_region(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = r[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
    }
    return true;
}

static bool valid_url(const char *u)
{
    return (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) &&
           !strpbrk(u, "\r\n \t");
}

static void resolve_endpoints(rctx_t *c)
{
    char *const *envp = c->in->envp;
    const char *profile = c->out->profile;
    const char *ign = env_val(envp, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (!ign)
        ign = prof_get(c, profile, "ignore_configured_endpoint_urls");
    if (is_true(ign))
        return;
    const char *services = prof_get(c, profile, "services");
    char svc_section[320] = "";
    if (services)
        snprintf(svc_section, sizeof(svc_section), "services %s", services);
    for (int i = 0; i < AUTH_SVC_COUNT; i++) {
        char name[96];
        snprintf(name, sizeof(name), "AWS_ENDPOINT_URL_%s", auth_aws_service_env_suffix(i));
        const char *v = env_val(envp, name);
        const char *origin = name;
        if (!v) {
            v = env_val(envp, "AWS_ENDPOINT_URL");
            origin = "AWS_ENDPOINT_URL";
        }
        char nested[1024];
        if (!v && services &&
            auth_ini_get_nested(c->in->config, svc_section, auth_aws_service_config_key(i),
                                "endpoint_url", nested, sizeof(nested)) &&
            nested[0]) {
            v = nested;
            origin = "a [services] section";
        }
        if (!v) {
            v = prof_get(c, profile, "endpoint_url");
            origin = "the profile's endpoint_url";
        }
        if (!v)
            continue;
        if (!valid_url(v)) {
            set_error(c, AUTH_E_PARSE, "the endpoint URL from %s is not an http(s) URL", origin);
            continue;
        }
        c->out->endpoint[i] = sdup(c, v);
    }
}

int auth_awscfg_resolve(const auth_awscfg_input_t *in, auth_awscfg_t *out)
{
    memset(out, 0, sizeof(*out));
    rctx_t c = {.in = in, .out = out};
    char *const *envp = in->envp;

    const char *p = env_val(envp, "AWS_PROFILE");
    if (!p)
        p = env_val(envp, "AWS_DEFAULT_PROFILE");
    out->profile_explicit = p != NULL;
    out->profile = sdup(&c, p ? p : "default");
    if (c.oom)
        goto oom;
    if (out->profile_explicit && !profile_exists(&c, out->profile))
        set_error(&c, AUTH_E_PARSE, "the profile %s (from AWS_PROFILE) is in neither %s nor %s",
                  out->profile, in->config_path ? in->config_path : "the config file",
                  in->credentials_path ? in->credentials_path : "the credentials file");

    /* Region: [iam] region, AWS_REGION, AWS_DEFAULT_REGION, the profile; IMDS comes later. */
    const char *r = NULL;
    if (in->region_override && *in->region_override) {
        r = in->region_override;
        out->region_source = "[iam] region";
    } else if ((r = env_val(envp, "AWS_REGION"))) {
        out->region_source = "AWS_REGION";
    } else if ((r = env_val(envp, "AWS_DEFAULT_REGION"))) {
        out->region_source = "AWS_DEFAULT_REGION";
    } else if ((r = prof_get(&c, out->profile, "region"))) {
        out->region_source = "the profile's region";
    }
    if (r) {
        if (!valid_region(r))
            set_error(&c, AUTH_E_PARSE, "region \"%.64s\" (from %s) is not a valid region name", r,
                      out->region_source);
        else
            out->region = sdup(&c, r);
    }

    const char *ca = env_val(envp, "AWS_CA_BUNDLE");
    if (!ca)
        ca = prof_get(&c, out->profile, "ca_bundle");
    out->ca_bundle = sdup(&c, ca);

    out->imds_disabled = is_true(env_val(envp, "AWS_EC2_METADATA_DISABLED"));
    const char *v1 = env_val(envp, "AWS_EC2_METADATA_V1_DISABLED");
    if (!v1)
        v1 = prof_get(&c, out->profile, "ec2_metadata_v1_disabled");
    out->imds_v1_disabled = is_true(v1);
    const char *ie = env_val(envp, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!ie)
        ie = prof_get(&c, out->profile, "ec2_metadata_service_endpoint");
    if (!ie) {
        const char *mode = env_val(envp, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        if (!mode)
            mode = prof_get(&c, out->profile, "ec2_metadata_service_endpoint_mode");
        ie = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                   : "http://169.254.169.254";
    }
    if (!valid_url(ie))
        set_error(&c, AUTH_E_PARSE, "AWS_EC2_METADATA_SERVICE_ENDPOINT is not an http(s) URL");
    out->imds_endpoint = sdup(&c, ie);
    out->imds_timeout_ms = 1000;
    out->imds_attempts = 1;
    const char *to = env_val(envp, "AWS_METADATA_SERVICE_TIMEOUT");
    if (!to)
        to = prof_get(&c, out->profile, "metadata_service_timeout");
    if (to) {
        double s = strtod(to, NULL);
        if (s > 0 && s <= 300)
            out->imds_timeout_ms = (long)(s * 1000);
    }
    const char *na = env_val(envp, "AWS_METADATA_SERVICE_NUM_ATTEMPTS");
    if (!na)
        na = prof_get(&c, out->profile, "metadata_service_num_attempts");
    if (na) {
        long n = strtol(na, NULL, 10);
        if (n >= 1 && n <= 10)
            out->imds_attempts = (int)n;
    }

    resolve_endpoints(&c);
    if (!out->error)
        out->src = resolve_chain(&c);
    if (c.oom)
        goto oom;
    if (out->error) {
        auth_src_free(out->src);
        out->src = NULL;
    } else if (!out->src) {
        out->error = AUTH_E_NOCREDS;
        snprintf(out->error_msg, sizeof(out->error_msg),
                 "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in "
                 "%s or %s, a web identity token, or run where container or instance "
                 "credentials exist (instance metadata is disabled)",
                 in->credentials_path ? in->credentials_path : "~/.aws/credentials",
                 in->config_path ? in->config_path : "~/.aws/config");
    }
    return 0;
oom:
    auth_awscfg_free(out);
    return UV_ENOMEM;
}

void auth_awscfg_free(auth_awscfg_t *c)
{
    px_free(c->profile);
    px_free(c->region);
    for (int i = 0; i < AUTH_SVC_COUNT; i++)
        px_free(c->endpoint[i]);
    px_free(c->ca_bundle);
    px_free(c->imds_endpoint);
    auth_src_free(c->src);
    memset(c, 0, sizeof(*c));
}
