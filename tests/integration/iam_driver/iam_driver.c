/*
 * iam_driver: fetches IAM database credentials once, the way rsproxy does (auth_iam.h over the
 * provider chain, SigV4, HTTP and the Redshift APIs), for the integration tests against the AWS
 * stand-in. Prints the DbUser, host and expiry, never the password or an AWS secret:
 *   iam_driver -c FILE [--user U] [--db D] [--check] [--keys] [--twice]
 * One line "OK db_user=... host=... port=... expires_in=..." (exit 0), or "ERROR code=AUTH_E_...
 * aws_code=... unreachable=0|1 message=..." (exit 1; 2 for usage or configuration errors).
 */
#include "auth_iam.h"
#include "cfg.h"
#include "px_err.h"
#include "px_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct state {
    int exit_code;
    int remaining;
    auth_iam_t *iam;
} state_t;

/* A symbolic name for the tests to match on (px_strerror's text has spaces). */
static const char *code_name(int code)
{
    switch (code) {
    case AUTH_E_AWS:
        return "AUTH_E_AWS";
    case AUTH_E_HTTP:
        return "AUTH_E_HTTP";
    case AUTH_E_PARSE:
        return "AUTH_E_PARSE";
    case AUTH_E_NOCREDS:
        return "AUTH_E_NOCREDS";
    case AUTH_E_EXPIRED:
        return "AUTH_E_EXPIRED";
    case AUTH_E_THROTTLED:
        return "AUTH_E_THROTTLED";
    case AUTH_E_TIMEOUT:
        return "AUTH_E_TIMEOUT";
    case AUTH_E_CANCELED:
        return "AUTH_E_CANCELED";
    case AUTH_E_FAILED:
        return "AUTH_E_FAILED";
    default:
        return "OTHER";
    }
}

static void print_error(const auth_iam_error_t *err)
{
    printf("ERROR code=%s aws_code=%s unreachable=%d message=%s\n", code_name(err->code),
           err->aws_code ? err->aws_code : "-", err->unreachable ? 1 : 0, err->message);
}

static void done_one(state_t *s)
{
    if (--s->remaining == 0)
        auth_iam_close(s->iam, NULL, NULL);
}

static void creds_cb(const auth_db_creds_t *c, const auth_iam_error_t *err, void *arg)
{
    state_t *s = arg;
    if (err) {
        print_error(err);
        s->exit_code = 1;
    } else {
        printf("OK db_user=%s host=%s port=%d expires_in=%lld password_len=%zu\n", c->db_user,
               c->host ? c->host : "-", c->port,
               (long long)((c->expiration_ms - px_now_unix_ms()) / 1000), strlen(c->db_password));
    }
    fflush(stdout);
    done_one(s);
}

static void check_cb(const auth_db_creds_t *c, const auth_iam_error_t *err,
                     const auth_iam_check_info_t *info, void *arg)
{
    /* One item per line: values may contain spaces. */
    printf("INFO provider=%s\n", info->provider ? info->provider : "-");
    printf("INFO profile=%s\n", info->profile ? info->profile : "-");
    printf("INFO region=%s\n", info->region ? info->region : "-");
    printf("INFO region_source=%s\n", info->region_source ? info->region_source : "-");
    printf("INFO api=%s\n", info->api ? info->api : "-");
    printf("INFO endpoint=%s\n", info->api_endpoint ? info->api_endpoint : "-");
    printf("INFO discovered=%d\n", info->host_discovered);
    creds_cb(c, err, arg);
}

static void keys_cb(const auth_aws_keys_t *k, int64_t exp, const char *region,
                    const char *s3_endpoint, const auth_iam_error_t *err, void *arg)
{
    state_t *s = arg;
    if (err) {
        print_error(err);
        s->exit_code = 1;
    } else {
        printf("KEYS access_key_id=%s session_token=%s expires=%lld region=%s s3=%s\n",
               k->access_key_id, k->session_token && *k->session_token ? "yes" : "no",
               (long long)exp, region ? region : "-", s3_endpoint ? s3_endpoint : "-");
    }
    fflush(stdout);
    done_one(s);
}

static int usage(void)
{
    fprintf(stderr, "usage: iam_driver -c FILE [--user U] [--db D] [--check] [--keys] "
                    "[--twice]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *user = "alice", *db = "dev";
    bool check = false, keys = false, twice = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            config = argv[++i];
        else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
            user = argv[++i];
        else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
            db = argv[++i];
        else if (strcmp(argv[i], "--check") == 0)
            check = true;
        else if (strcmp(argv[i], "--keys") == 0)
            keys = true;
        else if (strcmp(argv[i], "--twice") == 0)
            twice = true;
        else
            return usage();
    }
    if (!config)
        return usage();

    cfg_t *cfg = NULL;
    char err[4096];
    cfg_load_opts_t lo = {.path = config};
    if (cfg_load(&lo, &cfg, err, sizeof(err)) != 0) {
        printf("ERROR code=config aws_code=- unreachable=0 message=%s\n", err);
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    state_t s = {0};
    int rc = auth_iam_new(&loop, cfg, &s.iam);
    if (rc != 0) {
        printf("ERROR code=%s aws_code=- unreachable=0 message=cannot start: %s\n", code_name(rc),
               px_strerror(rc));
        cfg_unref(cfg);
        return 1;
    }
    s.remaining = twice ? 2 : 1;
    for (int i = 0; i < s.remaining && rc == 0; i++) {
        if (keys)
            rc = auth_iam_get_aws_keys(s.iam, keys_cb, &s, NULL);
        else if (check)
            rc = auth_iam_check(s.iam, user, db, check_cb, &s);
        else
            rc = auth_iam_get_db_creds(s.iam, user, db, creds_cb, &s, NULL);
    }
    if (rc != 0) {
        printf("ERROR code=%s aws_code=- unreachable=0 message=cannot start: %s\n", code_name(rc),
               px_strerror(rc));
        auth_iam_close(s.iam, NULL, NULL);
        s.exit_code = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        printf("ERROR code=leak aws_code=- unreachable=0 message=a handle was left open\n");
        s.exit_code = 1;
    }
    cfg_unref(cfg);
    return s.exit_code;
}
