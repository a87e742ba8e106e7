/*
 * Where rsproxy's own AWS identity comes from, decided as the AWS SDKs decide it (reference §5):
 * the profile, the region, the endpoint overrides, the CA bundle, and a plan for the credential
 * provider chain in botocore's order: environment → assume-role (role_arn + source_profile or
 * credential_source) → web identity → (SSO: refused with a clear message) → shared credentials
 * file → credential_process → config file → container → EC2 instance metadata.
 *
 * A pure function of the environment and the parsed config/credentials files, so every rule is
 * unit-tested without a loop; auth_chain.c executes the plan. Nothing here reads files, the clock
 * or the network.
 */
#ifndef AUTH_AWSCFG_H
#define AUTH_AWSCFG_H

#include "auth_aws.h"
#include "auth_awsini.h"
#include "px_util.h"

#include <stdbool.h>

typedef enum auth_src_kind {
    AUTH_SRC_STATIC = 0,   /* keys known now (environment or a profile) */
    AUTH_SRC_ASSUME_ROLE,  /* STS AssumeRole signed with `source`'s credentials */
    AUTH_SRC_WEB_IDENTITY, /* STS AssumeRoleWithWebIdentity (unsigned) with a token file */
    AUTH_SRC_PROCESS,      /* credential_process */
    AUTH_SRC_CONTAINER,    /* ECS / EKS Pod Identity endpoint */
    AUTH_SRC_IMDS,         /* EC2 instance metadata, IMDSv2 with v1 fallback */
} auth_src_kind_t;

/* One step of the plan. Strings are px_malloc'd and owned by the node. */
typedef struct auth_src {
    auth_src_kind_t kind;
    char desc[192];          /* "environment", "profile dev in /root/.aws/credentials", ... */
    auth_aws_creds_t creds;  /* STATIC */
    char *role_arn;          /* ASSUME_ROLE, WEB_IDENTITY */
    char *session_name;      /* NULL: generated per call */
    char *external_id;       /* ASSUME_ROLE */
    int duration_seconds;    /* ASSUME_ROLE; 0: STS's default */
    char *token_file;        /* WEB_IDENTITY */
    char *command;           /* PROCESS */
    char *url;               /* CONTAINER: full URL */
    char *auth_token;        /* CONTAINER: secret; used when auth_token_file is NULL */
    char *auth_token_file;   /* CONTAINER: re-read on every fetch */
    struct auth_src *source; /* ASSUME_ROLE: where the signing credentials come from */
} auth_src_t;

#define AUTH_MAX_ROLE_CHAIN 10

typedef struct auth_awscfg {
    char *profile;                  /* selected profile name */
    bool profile_explicit;          /* from AWS_PROFILE / AWS_DEFAULT_PROFILE */
    char *region;                   /* NULL: not configured (IMDS may supply it) */
    const char *region_source;      /* static text: "[iam] region", "AWS_REGION", ... */
    char *endpoint[AUTH_SVC_COUNT]; /* configured override URL, or NULL for the default */
    char *ca_bundle;       /* path from AWS_CA_BUNDLE or the profile's ca_bundle; NULL: system */
    char *imds_endpoint;   /* base URL of instance metadata */
    bool imds_disabled;    /* AWS_EC2_METADATA_DISABLED=true */
    bool imds_v1_disabled; /* no fallback to IMDSv1 */
    long imds_timeout_ms;  /* AWS_METADATA_SERVICE_TIMEOUT (s), default 1 s */
    int imds_attempts;     /* AWS_METADATA_SERVICE_NUM_ATTEMPTS, default 1 */
    auth_src_t *src;       /* NULL when no provider applies: see error */
    /* When src is NULL: why (AUTH_E_NOCREDS: nothing configured; AUTH_E_PARSE: a
     * configuration error such as a source_profile loop). */
    int error;
    char error_msg[384];
} auth_awscfg_t;

/* Everything the resolver reads. envp is "NAME=VALUE" strings (NULL-terminated); config and
 * credentials may be NULL (file missing); the paths are only for messages. */
typedef struct auth_awscfg_input {
    char *const *envp;
    const auth_ini_t *config;
    const auth_ini_t *credentials;
    const char *config_path;
    const char *credentials_path;
    const char *region_override; /* [iam] region; NULL or "" for none */
} auth_awscfg_input_t;

/* Fills out. Returns 0 (out->src may still be NULL with out->error set) or UV_ENOMEM. */
int auth_awscfg_resolve(const auth_awscfg_input_t *in, auth_awscfg_t *out) PX_MUSTCHECK;
/* Frees every string and node, wiping secrets. */
void auth_awscfg_free(auth_awscfg_t *c);
void auth_src_free(auth_src_t *s);

/* Value of NAME in an envp array, NULL when unset. */
const char *auth_env_get(char *const *envp, const char *name);
/* Config and credentials file locations: AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE or
 * $HOME/.aws/{config,credentials} ("~/" expanded). Writes "" when nothing applies. */
void auth_awscfg_paths(char *const *envp, char *config_path, size_t ccap, char *creds_path,
                       size_t crcap);

/* The default endpoint of a service in a region: https://<svc>.<region>.amazonaws.com (or
 * .amazonaws.com.cn for cn-*; sts without a region: https://sts.amazonaws.com). */
void auth_aws_default_endpoint(auth_aws_service_t svc, const char *region, char *out, size_t cap);

/* Checks a container credentials URL the way botocore does: https to any host, http only to
 * loopback, 169.254.170.2, 169.254.170.23, [fd00:ec2::23] or localhost. */
bool auth_container_url_allowed(const char *url);

/* POSIX shell-style word splitting (Python's shlex.split(posix=True) as botocore uses it for
 * credential_process): whitespace separates words, '...' is literal, "..." allows \" \\ \$ \`
 * escapes, a backslash outside quotes escapes the next character. Returns the number of words
 * (at most max; argv entries are px_malloc'd, argv[n] = NULL) or AUTH_E_PARSE (unbalanced
 * quotes, nothing to run, too many words) or UV_ENOMEM. */
int auth_shell_split(const char *cmd, char **argv, int max) PX_MUSTCHECK;
void auth_shell_free(char **argv);

#endif
