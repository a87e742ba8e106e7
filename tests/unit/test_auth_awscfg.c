/*
 * Unit tests for the ~/.aws file parser and the resolution of rsproxy's AWS settings: provider
 * order and profile rules (botocore's), role chains and their loop detection, container URL
 * rules, region and endpoint lookup orders, IMDS switches, shell-style splitting.
 */
#include "auth_awscfg.h"
#include "auth_awsini.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"

#include <string.h>
#include <uv.h>

static auth_ini_t *ini(const char *text)
{
    auth_ini_t *out = NULL;
    char err[160];
    int rc = auth_ini_parse(text, strlen(text), &out, err, sizeof(err));
    if (rc)
        PX_FAIL("parse failed: %s", err);
    return out;
}

static int ini_err(const char *text, char *err, size_t cap)
{
    auth_ini_t *out = NULL;
    int rc = auth_ini_parse(text, strlen(text), &out, err, cap);
    auth_ini_free(out);
    return rc;
}

PX_TEST(ini_basics)
{
    auth_ini_t *i = ini("\xef\xbb\xbf# comment\r\n"
                        "[default]\r\n"
                        "Region = us-west-2\r\n"
                        "; another comment\n"
                        "  # indented comment\n"
                        "output: json\n"
                        "empty =\n"
                        "[profile  dev ]\n"
                        "role_arn=arn:aws:iam::1:role/x\n"
                        "multi = first\n"
                        "   second\n"
                        "[services local]\n"
                        "redshift_serverless =\n"
                        "  endpoint_url = http://127.0.0.1:4566\n"
                        "  other = x = y\n"
                        "sts =\n"
                        "  endpoint_url=https://sts.local\n");
    ASSERT_STR_EQ(auth_ini_get(i, "default", "region"), "us-west-2"); /* keys lower-cased */
    ASSERT_STR_EQ(auth_ini_get(i, "default", "output"), "json");
    ASSERT_STR_EQ(auth_ini_get(i, "default", "empty"), "");
    ASSERT(auth_ini_get(i, "default", "Region") == NULL);
    ASSERT(auth_ini_has_section(i, "profile  dev"));
    ASSERT_STR_EQ(auth_ini_get(i, "profile  dev", "multi"), "first\nsecond");
    char v[128];
    ASSERT(auth_ini_get_nested(i, "services local", "redshift_serverless", "endpoint_url", v,
                               sizeof(v)));
    ASSERT_STR_EQ(v, "http://127.0.0.1:4566");
    ASSERT(auth_ini_get_nested(i, "services local", "redshift_serverless", "other", v, sizeof(v)));
    ASSERT_STR_EQ(v, "x = y");
    ASSERT(auth_ini_get_nested(i, "services local", "sts", "endpoint_url", v, sizeof(v)));
    ASSERT_STR_EQ(v, "https://sts.local");
    ASSERT(!auth_ini_get_nested(i, "services local", "s3", "endpoint_url", v, sizeof(v)));
    ASSERT(!auth_ini_get_nested(i, "default", "region", "x", v, sizeof(v)));
    ASSERT_STR_EQ(auth_ini_section_name(i, 0), "default");
    ASSERT(auth_ini_section_name(i, 3) == NULL);
    auth_ini_free(i);
}

PX_TEST(ini_long_values)
{
    /* Session tokens are far longer than inih's Debian line limit. */
    char text[5000];
    strcpy(text, "[default]\naws_session_token = ");
    size_t n = strlen(text);
    memset(text + n, 'T', 3000);
    strcpy(text + n + 3000, "\n");
    auth_ini_t *i = ini(text);
    ASSERT_EQ(strlen(auth_ini_get(i, "default", "aws_session_token")), 3000);
    auth_ini_free(i);
}

PX_TEST(ini_errors)
{
    char err[160];
    ASSERT_EQ(ini_err("key = v\n", err, sizeof(err)), AUTH_E_PARSE);
    ASSERT(strstr(err, "line 1"));
    ASSERT_EQ(ini_err("[a]\nx = 1\n[b]\n[a]\n", err, sizeof(err)), AUTH_E_PARSE);
    ASSERT(strstr(err, "line 4"));
    ASSERT_EQ(ini_err("[a]\nx = 1\nX = 2\n", err, sizeof(err)), AUTH_E_PARSE);
    ASSERT(strstr(err, "line 3"));
    ASSERT_EQ(ini_err("[a]\njust words\n", err, sizeof(err)), AUTH_E_PARSE);
    ASSERT_EQ(ini_err("[a\n", err, sizeof(err)), AUTH_E_PARSE);
    ASSERT_EQ(ini_err("[]\n", err, sizeof(err)), AUTH_E_PARSE);
    ASSERT_EQ(ini_err("[a]\n= v\n", err, sizeof(err)), AUTH_E_PARSE);
    auth_ini_t *out;
    ASSERT_EQ(auth_ini_parse("[a]\nx=\0y\n", 9, &out, err, sizeof(err)), AUTH_E_PARSE);
    ASSERT(out == NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Resolution
 */

typedef struct fixture {
    auth_ini_t *config, *creds;
    auth_awscfg_t out;
} fixture_t;

static void resolve(fixture_t *f, char *const *envp, const char *config, const char *creds,
                    const char *region_override)
{
    memset(f, 0, sizeof(*f));
    f->config = config ? ini(config) : NULL;
    f->creds = creds ? ini(creds) : NULL;
    auth_awscfg_input_t in = {
        .envp = envp,
        .config = f->config,
        .credentials = f->creds,
        .config_path = "/h/.aws/config",
        .credentials_path = "/h/.aws/credentials",
        .region_override = region_override,
    };
    ASSERT_OK(auth_awscfg_resolve(&in, &f->out));
}

static void done(fixture_t *f)
{
    auth_awscfg_free(&f->out);
    auth_ini_free(f->config);
    auth_ini_free(f->creds);
}

static char *const no_imds[] = {"AWS_EC2_METADATA_DISABLED=true", NULL};

PX_TEST(env_credentials_first)
{
    char *const env[] = {"AWS_ACCESS_KEY_ID=AKIAENV",
                         "AWS_SECRET_ACCESS_KEY=sec",
                         "AWS_SECURITY_TOKEN=legacy",
                         "AWS_PROFILE=p",
                         "AWS_CREDENTIAL_EXPIRATION=2030-01-01T00:00:00Z",
                         NULL};
    fixture_t f;
    resolve(&f, env, NULL, "[p]\naws_access_key_id = AKIAFILE\naws_secret_access_key = x\n", NULL);
    ASSERT_EQ(f.out.error, 0);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_STATIC);
    ASSERT_STR_EQ(f.out.src->desc, "environment");
    ASSERT_STR_EQ(f.out.src->creds.access_key_id, "AKIAENV");
    ASSERT_STR_EQ(f.out.src->creds.session_token, "legacy");
    ASSERT(f.out.src->creds.expiration_ms > 0);
    ASSERT_STR_EQ(f.out.profile, "p");
    done(&f);

    char *const partial[] = {"AWS_ACCESS_KEY_ID=AKIAENV", NULL};
    resolve(&f, partial, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(f.out.src == NULL);
    ASSERT(strstr(f.out.error_msg, "AWS_SECRET_ACCESS_KEY"));
    done(&f);
}

PX_TEST(profile_missing_is_an_error)
{
    char *const env[] = {"AWS_PROFILE=nope", "AWS_EC2_METADATA_DISABLED=true", NULL};
    fixture_t f;
    resolve(&f, env, "[default]\nregion=us-east-1\n", NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(strstr(f.out.error_msg, "nope"));
    done(&f);
    /* AWS_DEFAULT_PROFILE is botocore's fallback name for the same thing. */
    char *const env2[] = {"AWS_DEFAULT_PROFILE=p2", "AWS_EC2_METADATA_DISABLED=true", NULL};
    resolve(&f, env2, "[profile p2]\naws_access_key_id=AKIACFG\naws_secret_access_key=s\n", NULL,
            NULL);
    ASSERT_EQ(f.out.error, 0);
    ASSERT_STR_EQ(f.out.src->creds.access_key_id, "AKIACFG");
    done(&f);
}

PX_TEST(nothing_configured)
{
    fixture_t f;
    resolve(&f, no_imds, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_NOCREDS);
    ASSERT(f.out.src == NULL);
    done(&f);
    char *const env[] = {NULL};
    resolve(&f, env, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, 0);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_IMDS); /* the end of the chain */
    ASSERT_STR_EQ(f.out.imds_endpoint, "http://169.254.169.254");
    done(&f);
}

PX_TEST(credentials_file_order)
{
    fixture_t f;
    /* Credentials file static keys beat credential_process, which beats config-file keys. */
    resolve(&f, no_imds,
            "[default]\ncredential_process = /bin/creds\naws_access_key_id = AKIACONFIG\n"
            "aws_secret_access_key = c\n",
            "[default]\naws_access_key_id = AKIACREDS\naws_secret_access_key = k\n"
            "aws_session_token = tok\n",
            NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_STATIC);
    ASSERT_STR_EQ(f.out.src->creds.access_key_id, "AKIACREDS");
    ASSERT_STR_EQ(f.out.src->creds.session_token, "tok");
    ASSERT(strstr(f.out.src->desc, "/h/.aws/credentials"));
    done(&f);
    resolve(&f, no_imds,
            "[default]\ncredential_process = /bin/creds --x\naws_access_key_id = AKIACONFIG\n"
            "aws_secret_access_key = c\n",
            NULL, NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_PROCESS);
    ASSERT_STR_EQ(f.out.src->command, "/bin/creds --x");
    done(&f);
    resolve(&f, no_imds, "[default]\naws_access_key_id = AKIACONFIG\naws_secret_access_key = c\n",
            NULL, NULL);
    ASSERT_STR_EQ(f.out.src->creds.access_key_id, "AKIACONFIG");
    done(&f);
    /* [profile default] in the config file is the default profile too. */
    resolve(&f, no_imds, "[profile default]\naws_access_key_id = AKIAPD\naws_secret_access_key=c\n",
            NULL, NULL);
    ASSERT_STR_EQ(f.out.src->creds.access_key_id, "AKIAPD");
    done(&f);
    /* Only one of the two keys: an error naming the profile, not a silent fall-through. */
    resolve(&f, no_imds, NULL, "[default]\naws_access_key_id = AKIA\n", NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(strstr(f.out.error_msg, "default"));
    done(&f);
    /* A malformed key id from a file is refused before it reaches a header. */
    resolve(&f, no_imds, NULL, "[default]\naws_access_key_id = AK IA\naws_secret_access_key=s\n",
            NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    done(&f);
}

PX_TEST(assume_role_chains)
{
    char *const env[] = {"AWS_PROFILE=app", "AWS_EC2_METADATA_DISABLED=true", NULL};
    const char *config = "[profile app]\nrole_arn = arn:aws:iam::1:role/App\n"
                         "source_profile = mid\nexternal_id = ext-1\nrole_session_name = s1\n"
                         "duration_seconds = 1800\n"
                         "[profile mid]\nrole_arn = arn:aws:iam::1:role/Mid\n"
                         "source_profile = base\n";
    const char *creds = "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = b\n";
    fixture_t f;
    resolve(&f, env, config, creds, NULL);
    ASSERT_EQ(f.out.error, 0);
    auth_src_t *s = f.out.src;
    ASSERT_EQ(s->kind, AUTH_SRC_ASSUME_ROLE);
    ASSERT_STR_EQ(s->role_arn, "arn:aws:iam::1:role/App");
    ASSERT_STR_EQ(s->external_id, "ext-1");
    ASSERT_STR_EQ(s->session_name, "s1");
    ASSERT_EQ(s->duration_seconds, 1800);
    ASSERT_EQ(s->source->kind, AUTH_SRC_ASSUME_ROLE);
    ASSERT_STR_EQ(s->source->role_arn, "arn:aws:iam::1:role/Mid");
    ASSERT_EQ(s->source->source->kind, AUTH_SRC_STATIC);
    ASSERT_STR_EQ(s->source->source->creds.access_key_id, "AKIABASE");
    ASSERT(s->source->source->source == NULL);
    done(&f);

    /* role_arn in the credentials file counts too (botocore's merged profile map). */
    resolve(&f, env, "[profile app]\nsource_profile = base\n",
            "[app]\nrole_arn = arn:aws:iam::1:role/FromCreds\n"
            "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = b\n",
            NULL);
    ASSERT_EQ(f.out.error, 0);
    ASSERT_STR_EQ(f.out.src->role_arn, "arn:aws:iam::1:role/FromCreds");
    done(&f);

    /* A loop. */
    resolve(&f, env,
            "[profile app]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = other\n"
            "[profile other]\nrole_arn = arn:aws:iam::1:role/B\nsource_profile = app\n",
            NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(strstr(f.out.error_msg, "loop"));
    done(&f);

    /* A profile naming itself supplies its own static keys. */
    resolve(&f, env, "[profile app]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = app\n",
            "[app]\naws_access_key_id = AKIASELF\naws_secret_access_key = s\n", NULL);
    ASSERT_EQ(f.out.error, 0);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_ASSUME_ROLE);
    ASSERT_STR_EQ(f.out.src->source->creds.access_key_id, "AKIASELF");
    done(&f);

    /* Source profiles that are web identity or credential_process. */
    resolve(&f, env,
            "[profile app]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = p\n"
            "[profile p]\ncredential_process = get-creds\n",
            NULL, NULL);
    ASSERT_EQ(f.out.src->source->kind, AUTH_SRC_PROCESS);
    done(&f);
    resolve(&f, env,
            "[profile app]\nrole_arn = arn:aws:iam::1:role/A\nsource_profile = w\n"
            "[profile w]\nrole_arn = arn:aws:iam::1:role/W\nweb_identity_token_file = /t\n",
            NULL, NULL);
    ASSERT_EQ(f.out.src->source->kind, AUTH_SRC_WEB_IDENTITY);
    ASSERT_STR_EQ(f.out.src->source->role_arn, "arn:aws:iam::1:role/W");
    done(&f);

    static const struct {
        const char *config;
        const char *want;
    } bad[] = {
        {"[profile app]\nrole_arn = r\n", "neither"},
        {"[profile app]\nrole_arn = r\nsource_profile = b\ncredential_source = Environment\n",
         "both"},
        {"[profile app]\nrole_arn = r\nsource_profile = ghost\n", "does not exist"},
        {"[profile app]\nrole_arn = r\ncredential_source = Nowhere\n", "credential_source"},
        {"[profile app]\nrole_arn = r\nsource_profile = e\n[profile e]\nregion = x\n",
         "must have credentials"},
        {"[profile app]\nrole_arn = r\nmfa_serial = arn:mfa\nsource_profile = app\n", "MFA"},
        {"[profile app]\nrole_arn = r\ncredential_source = Environment\n", "AWS_ACCESS_KEY_ID"},
        {"[profile app]\nrole_arn = r\ncredential_source = Ec2InstanceMetadata\n", "DISABLED"},
        {"[profile app]\nrole_arn = r\ncredential_source = EcsContainer\n", "CONTAINER"},
        {"[profile app]\nrole_arn = r\nsource_profile = app\nduration_seconds = 60\n"
         "aws_access_key_id = AKIA\naws_secret_access_key = s\n",
         "duration_seconds"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        resolve(&f, env, bad[i].config, NULL, NULL);
        if (f.out.error == 0 || !strstr(f.out.error_msg, bad[i].want))
            PX_FAIL("case %zu: error %d \"%s\" (wanted \"%s\")", i, f.out.error, f.out.error_msg,
                    bad[i].want);
        done(&f);
    }

    /* A chain longer than AUTH_MAX_ROLE_CHAIN. */
    char big[8192] = "";
    for (int i = 0; i < AUTH_MAX_ROLE_CHAIN + 3; i++) {
        char sec[128];
        snprintf(sec, sizeof(sec), "[profile %s%d]\nrole_arn = r%d\nsource_profile = p%d\n",
                 i == 0 ? "app" : "p", i, i, i + 1);
        if (i == 0)
            snprintf(sec, sizeof(sec), "[profile app]\nrole_arn = r0\nsource_profile = p1\n");
        strcat(big, sec);
    }
    strcat(big, "[profile p13]\naws_access_key_id = AKIA\naws_secret_access_key = s\n");
    resolve(&f, env, big, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(strstr(f.out.error_msg, "chain"));
    done(&f);
}

PX_TEST(credential_source_variants)
{
    char *const env[] = {"AWS_PROFILE=app", "AWS_ACCESS_KEY_ID=AKIAENV", "AWS_SECRET_ACCESS_KEY=s",
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9/creds", NULL};
    fixture_t f;
    /* Environment keys win over a profile's role (env provider first). */
    resolve(&f, env, "[profile app]\nrole_arn = r\ncredential_source = EcsContainer\n", NULL, NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_STATIC);
    done(&f);
    char *const env2[] = {"AWS_PROFILE=app",
                          "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:9/creds", NULL};
    resolve(&f, env2, "[profile app]\nrole_arn = r\ncredential_source = EcsContainer\n", NULL,
            NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_ASSUME_ROLE);
    ASSERT_EQ(f.out.src->source->kind, AUTH_SRC_CONTAINER);
    ASSERT_STR_EQ(f.out.src->source->url, "http://127.0.0.1:9/creds");
    done(&f);
    char *const env3[] = {"AWS_PROFILE=app", NULL};
    resolve(&f, env3, "[profile app]\nrole_arn = r\ncredential_source = Ec2InstanceMetadata\n",
            NULL, NULL);
    ASSERT_EQ(f.out.src->source->kind, AUTH_SRC_IMDS);
    done(&f);
}

PX_TEST(web_identity)
{
    char *const env[] = {"AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token",
                         "AWS_ROLE_ARN=arn:aws:iam::1:role/Pod", "AWS_ROLE_SESSION_NAME=pod-1",
                         "AWS_EC2_METADATA_DISABLED=true", NULL};
    fixture_t f;
    resolve(&f, env, NULL, NULL, NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_WEB_IDENTITY);
    ASSERT_STR_EQ(f.out.src->token_file, "/var/run/token");
    ASSERT_STR_EQ(f.out.src->role_arn, "arn:aws:iam::1:role/Pod");
    ASSERT_STR_EQ(f.out.src->session_name, "pod-1");
    done(&f);
    char *const noarn[] = {"AWS_WEB_IDENTITY_TOKEN_FILE=/t", "AWS_EC2_METADATA_DISABLED=true",
                           NULL};
    resolve(&f, noarn, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(strstr(f.out.error_msg, "AWS_ROLE_ARN"));
    done(&f);
    /* Profile keys. */
    resolve(&f, no_imds,
            "[default]\nrole_arn = arn:aws:iam::1:role/P\nweb_identity_token_file=/p\n", NULL,
            NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_WEB_IDENTITY);
    ASSERT_STR_EQ(f.out.src->token_file, "/p");
    ASSERT(f.out.src->session_name == NULL);
    done(&f);
    /* SSO is refused with a hint, not skipped. */
    resolve(&f, no_imds, "[default]\nsso_session = corp\n", NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    ASSERT(strstr(f.out.error_msg, "credential_process"));
    done(&f);
}

PX_TEST(container_rules)
{
    fixture_t f;
    char *const rel[] = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/abc",
                         "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1/ignored",
                         "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok", NULL};
    resolve(&f, rel, NULL, NULL, NULL);
    ASSERT_EQ(f.out.src->kind, AUTH_SRC_CONTAINER);
    ASSERT_STR_EQ(f.out.src->url, "http://169.254.170.2/v2/credentials/abc");
    ASSERT_STR_EQ(f.out.src->auth_token, "tok");
    done(&f);
    char *const tf[] = {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok",
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/var/run/secrets/token", NULL};
    resolve(&f, tf, NULL, NULL, NULL);
    ASSERT_STR_EQ(f.out.src->auth_token_file, "/var/run/secrets/token"); /* the file wins */
    ASSERT(f.out.src->auth_token == NULL);
    done(&f);
    char *const crlf[] = {"AWS_CONTAINER_CREDENTIALS_FULL_URI=https://creds.example.com/x",
                          "AWS_CONTAINER_AUTHORIZATION_TOKEN=tok\r\nX-Evil: 1", NULL};
    resolve(&f, crlf, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    done(&f);
    char *const remote[] = {"AWS_CONTAINER_CREDENTIALS_FULL_URI=http://10.0.0.5/creds", NULL};
    resolve(&f, remote, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    done(&f);

    static const char *const ok[] = {
        "https://anything.example.com/creds",
        "http://127.0.0.1/c",
        "http://127.9.8.7:1234/c",
        "http://localhost:80/c",
        "http://169.254.170.2/c",
        "http://169.254.170.23/c",
        "http://[fd00:ec2::23]/c",
        "http://[::1]:5000/c",
        "HTTP://LOCALHOST/c",
    };
    static const char *const no[] = {
        "http://10.0.0.1/c",           "http://169.254.169.254/c", "http://127.0.0.1.evil.com/c",
        "http://localhost.evil.com/c", "http://user@127.0.0.1/c",  "ftp://127.0.0.1/c",
        "http://[fd00:ec2::24]/c",     "http://128.0.0.1/c",       "https:///c",
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(ok); i++)
        if (!auth_container_url_allowed(ok[i]))
            PX_FAIL("refused %s", ok[i]);
    for (size_t i = 0; i < PX_ARRAY_SIZE(no); i++)
        if (auth_container_url_allowed(no[i]))
            PX_FAIL("allowed %s", no[i]);
}

PX_TEST(region_order)
{
    char *const env[] = {"AWS_REGION=eu-west-1", "AWS_DEFAULT_REGION=eu-west-2",
                         "AWS_EC2_METADATA_DISABLED=true", NULL};
    fixture_t f;
    const char *config = "[default]\nregion = ap-south-1\n";
    resolve(&f, env, config, NULL, "us-west-1");
    ASSERT_STR_EQ(f.out.region, "us-west-1");
    ASSERT_STR_EQ(f.out.region_source, "[iam] region");
    done(&f);
    resolve(&f, env, config, NULL, NULL);
    ASSERT_STR_EQ(f.out.region, "eu-west-1");
    done(&f);
    char *const env2[] = {"AWS_DEFAULT_REGION=eu-west-2", NULL};
    resolve(&f, env2, config, NULL, "");
    ASSERT_STR_EQ(f.out.region, "eu-west-2");
    done(&f);
    resolve(&f, no_imds, config, NULL, NULL);
    ASSERT_STR_EQ(f.out.region, "ap-south-1");
    done(&f);
    resolve(&f, no_imds, NULL, NULL, NULL);
    ASSERT(f.out.region == NULL);
    done(&f);
    char *const bad[] = {"AWS_REGION=us-east-1/../x", NULL};
    resolve(&f, bad, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    done(&f);
}

PX_TEST(endpoint_overrides)
{
    char *const env[] = {"AWS_ENDPOINT_URL=https://global.local",
                         "AWS_ENDPOINT_URL_REDSHIFT_SERVERLESS=https://sls.local",
                         "AWS_EC2_METADATA_DISABLED=true", NULL};
    const char *config = "[default]\nservices = dev\nendpoint_url = https://profile.local\n"
                         "[services dev]\nsts =\n  endpoint_url = https://sts.section.local\n";
    fixture_t f;
    resolve(&f, env, config, NULL, NULL);
    ASSERT_STR_EQ(f.out.endpoint[AUTH_SVC_REDSHIFT_SERVERLESS], "https://sls.local");
    ASSERT_STR_EQ(f.out.endpoint[AUTH_SVC_REDSHIFT], "https://global.local");
    ASSERT_STR_EQ(f.out.endpoint[AUTH_SVC_STS], "https://global.local");
    done(&f);
    resolve(&f, no_imds, config, NULL, NULL);
    ASSERT_STR_EQ(f.out.endpoint[AUTH_SVC_STS], "https://sts.section.local");
    ASSERT_STR_EQ(f.out.endpoint[AUTH_SVC_REDSHIFT], "https://profile.local");
    done(&f);
    char *const ign[] = {"AWS_ENDPOINT_URL=https://global.local",
                         "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true", NULL};
    resolve(&f, ign, config, NULL, NULL);
    for (int i = 0; i < AUTH_SVC_COUNT; i++)
        ASSERT(f.out.endpoint[i] == NULL);
    done(&f);
    resolve(&f, no_imds,
            "[default]\nignore_configured_endpoint_urls = true\n"
            "endpoint_url = https://profile.local\n",
            NULL, NULL);
    ASSERT(f.out.endpoint[AUTH_SVC_REDSHIFT] == NULL);
    done(&f);
    char *const badurl[] = {"AWS_ENDPOINT_URL_STS=file:///etc/passwd", NULL};
    resolve(&f, badurl, NULL, NULL, NULL);
    ASSERT_EQ(f.out.error, AUTH_E_PARSE);
    done(&f);

    char ep[128];
    auth_aws_default_endpoint(AUTH_SVC_REDSHIFT, "us-east-1", ep, sizeof(ep));
    ASSERT_STR_EQ(ep, "https://redshift.us-east-1.amazonaws.com");
    auth_aws_default_endpoint(AUTH_SVC_REDSHIFT_SERVERLESS, "cn-north-1", ep, sizeof(ep));
    ASSERT_STR_EQ(ep, "https://redshift-serverless.cn-north-1.amazonaws.com.cn");
    auth_aws_default_endpoint(AUTH_SVC_STS, NULL, ep, sizeof(ep));
    ASSERT_STR_EQ(ep, "https://sts.amazonaws.com");
}

PX_TEST(imds_and_ca_settings)
{
    char *const env[] = {"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1234",
                         "AWS_EC2_METADATA_V1_DISABLED=true",
                         "AWS_METADATA_SERVICE_TIMEOUT=2.5",
                         "AWS_METADATA_SERVICE_NUM_ATTEMPTS=3",
                         "AWS_CA_BUNDLE=/etc/ca.pem",
                         NULL};
    fixture_t f;
    resolve(&f, env, "[default]\nca_bundle = /other.pem\n", NULL, NULL);
    ASSERT_STR_EQ(f.out.imds_endpoint, "http://127.0.0.1:1234");
    ASSERT(f.out.imds_v1_disabled);
    ASSERT(!f.out.imds_disabled);
    ASSERT_EQ(f.out.imds_timeout_ms, 2500);
    ASSERT_EQ(f.out.imds_attempts, 3);
    ASSERT_STR_EQ(f.out.ca_bundle, "/etc/ca.pem");
    done(&f);
    char *const v6[] = {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6", NULL};
    resolve(&f, v6, "[default]\nca_bundle = /other.pem\n", NULL, NULL);
    ASSERT_STR_EQ(f.out.imds_endpoint, "http://[fd00:ec2::254]");
    ASSERT_STR_EQ(f.out.ca_bundle, "/other.pem");
    done(&f);
}

PX_TEST(paths)
{
    char c[256], k[256];
    char *const env[] = {"HOME=/home/u", NULL};
    auth_awscfg_paths(env, c, sizeof(c), k, sizeof(k));
    ASSERT_STR_EQ(c, "/home/u/.aws/config");
    ASSERT_STR_EQ(k, "/home/u/.aws/credentials");
    char *const env2[] = {"HOME=/home/u", "AWS_CONFIG_FILE=~/cfg",
                          "AWS_SHARED_CREDENTIALS_FILE=/etc/aws/creds", NULL};
    auth_awscfg_paths(env2, c, sizeof(c), k, sizeof(k));
    ASSERT_STR_EQ(c, "/home/u/cfg");
    ASSERT_STR_EQ(k, "/etc/aws/creds");
    char *const none[] = {NULL};
    auth_awscfg_paths(none, c, sizeof(c), k, sizeof(k));
    ASSERT_STR_EQ(c, "");
}

PX_TEST(shell_split)
{
    char *argv[8];
    ASSERT_EQ(auth_shell_split("aws configure export-credentials --profile x", argv, 7), 5);
    ASSERT_STR_EQ(argv[0], "aws");
    ASSERT_STR_EQ(argv[4], "x");
    ASSERT(argv[5] == NULL);
    auth_shell_free(argv);
    ASSERT_EQ(
        auth_shell_split("  '/opt/my tool/bin' \"a \\\"b\\\" c\" d\\ e 'it''s' \"$x\\$\"", argv, 7),
        5);
    ASSERT_STR_EQ(argv[0], "/opt/my tool/bin");
    ASSERT_STR_EQ(argv[1], "a \"b\" c");
    ASSERT_STR_EQ(argv[2], "d e");
    ASSERT_STR_EQ(argv[3], "its");
    ASSERT_STR_EQ(argv[4], "$x$");
    auth_shell_free(argv);
    ASSERT_EQ(auth_shell_split("\"a\\nb\"", argv, 7), 1);
    ASSERT_STR_EQ(argv[0], "a\\nb"); /* backslash stays before ordinary characters in "" */
    auth_shell_free(argv);
    ASSERT_EQ(auth_shell_split("''", argv, 7), 1);
    ASSERT_STR_EQ(argv[0], "");
    auth_shell_free(argv);
    ASSERT_EQ(auth_shell_split("'unbalanced", argv, 7), AUTH_E_PARSE);
    ASSERT_EQ(auth_shell_split("\"unbalanced", argv, 7), AUTH_E_PARSE);
    ASSERT_EQ(auth_shell_split("trailing\\", argv, 7), AUTH_E_PARSE);
    ASSERT_EQ(auth_shell_split("   ", argv, 7), AUTH_E_PARSE);
    ASSERT_EQ(auth_shell_split("a b c d", argv, 3), AUTH_E_PARSE);
}

PX_TEST(resolve_survives_allocation_failures)
{
    char *const env[] = {"AWS_PROFILE=app", "AWS_REGION=us-east-1",
                         "AWS_ENDPOINT_URL=https://e.local", NULL};
    auth_ini_t *config = ini("[profile app]\nrole_arn = arn:aws:iam::1:role/A\n"
                             "source_profile = base\n");
    auth_ini_t *creds = ini("[base]\naws_access_key_id = AKIA\naws_secret_access_key = s\n");
    for (long n = 0; n < 80; n++) {
        auth_awscfg_input_t in = {.envp = env, .config = config, .credentials = creds};
        auth_awscfg_t out;
        px_alloc_fail_after(n);
        int rc = auth_awscfg_resolve(&in, &out);
        px_alloc_fail_after(-1);
        if (rc == 0) {
            ASSERT(out.src || out.error);
            auth_awscfg_free(&out);
        } else {
            ASSERT_EQ(rc, UV_ENOMEM);
        }
    }
    auth_ini_free(config);
    auth_ini_free(creds);
}
