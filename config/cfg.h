/*
 * rsproxy configuration: one immutable snapshot (cfg_t) built from an INI file, then environment
 * overrides (RSPROXY_<SECTION>_<KEY>), then validation. A declarative key table (cfg_keys.c)
 * drives parsing, defaults, validation, --help and the README's configuration reference.
 *
 * Snapshots are reference-counted: a reload builds a whole new cfg_t, validates it and swaps the
 * pointer; connections keep the snapshot they started with (cfg_ref/cfg_unref).
 *
 * This module reads the config file (and upstream.password_file) and nothing else.
 */
#ifndef CFG_H
#define CFG_H

#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum cfg_client_auth {
    CFG_CLIENT_AUTH_TRUST = 0,
    CFG_CLIENT_AUTH_SCRAM,
} cfg_client_auth_t;

typedef enum cfg_upstream_auth {
    CFG_UPSTREAM_AUTH_IAM = 0,
    CFG_UPSTREAM_AUTH_PASSWORD,
} cfg_upstream_auth_t;

typedef enum cfg_sslmode {
    CFG_SSLMODE_VERIFY_FULL = 0,
    CFG_SSLMODE_VERIFY_CA,
    CFG_SSLMODE_REQUIRE,
    CFG_SSLMODE_DISABLE,
} cfg_sslmode_t;

typedef enum cfg_pool_mode {
    CFG_POOL_NONE = 0, /* every client session opens and closes its own upstream session */
    CFG_POOL_SESSION,  /* a finished session's upstream connection is reset and reused */
} cfg_pool_mode_t;

/* A comma-separated value split into trimmed, non-empty items. */
typedef struct cfg_strlist {
    char **items; /* owned by the snapshot */
    size_t n;
} cfg_strlist_t;

typedef struct cfg cfg_t;
struct cfg {
    struct {
        cfg_strlist_t listen_addr;
        int listen_port;
        char *unix_socket_dir; /* "" = no Unix socket */
        cfg_client_auth_t client_auth;
        char *auth_file;
        bool allow_remote_trust;
        int max_client_conn;
        char *admin_addr;
        int admin_port;         /* 0 disables */
        int log_level;          /* px_log_level_t */
        int log_format;         /* px_log_format_t */
        int buffer_size;        /* bytes per connection read buffer */
        int max_statement_size; /* largest Query/Parse the proxy buffers to rewrite */
    } proxy;
    struct {
        cfg_upstream_auth_t auth;
        char *host; /* "" with iam: discovered */
        int port;
        char *dbname; /* "" = the client's database */
        cfg_sslmode_t sslmode;
        char *sslrootcert; /* "system" or a PEM file */
        char *user;        /* "" = the client's user */
        char *password;    /* secret; from password or password_file */
        char *password_file;
        int connect_timeout; /* seconds, DNS + TCP + TLS + login */
    } upstream;
    struct {
        char *cluster_identifier;
        char *workgroup_name;
        char *custom_domain_name;
        char *region;
        char *db_user;
        cfg_strlist_t db_groups;
        bool auto_create;
        bool with_iam;
        int duration_seconds;
        int refresh_margin_seconds;
    } iam;
    struct {
        char *aws_iam_role;
        bool forward_s3_credentials;
        char *tempdir;
        char *tempdir_region;
        bool copy_stdin;
        bool check_lifecycle;
        bool keep_staged;
        cfg_strlist_t allowed_iam_roles; /* empty = any role a client writes is allowed */
        bool allow_client_credentials;
    } s3;
    struct {
        cfg_pool_mode_t mode;
        char *server_reset_query;
        int server_idle_timeout; /* seconds an unused upstream session is kept */
        int server_lifetime;     /* seconds after which an upstream session is not reused */
        int max_idle_servers;    /* idle upstream sessions kept at most (all pools) */
    } pool;

    /* private */
    char *_path; /* file the snapshot came from; NULL when loaded from text */
    int _refs;
    struct cfg_origin *_origins; /* where each key that was set came from */
    size_t _norigins;
};

/* Key types in the table. */
typedef enum cfg_type {
    CFG_STR,
    CFG_SECRET, /* a string never printed (dumps show "***") */
    CFG_INT,
    CFG_BOOL,
    CFG_ENUM,
    CFG_LIST,
} cfg_type_t;

typedef struct cfg_key {
    const char *section;
    const char *name;
    cfg_type_t type;
    size_t offset;            /* into cfg_t */
    const char *def;          /* default, as text */
    bool reloadable;          /* SIGHUP applies it to new connections */
    const char *const *enums; /* CFG_ENUM: NULL-terminated names, index = stored value */
    int min, max;             /* CFG_INT bounds */
    const char *doc;          /* one or two sentences for --help and the README */
} cfg_key_t;

/* The whole table, in documentation order. */
const cfg_key_t *cfg_keys(size_t *n);

/*
 * Reports one validation error through the load context, formatted "file:line: section.key:
 * message" (or "env RSPROXY_X_Y: message" when the value came from the environment, or
 * "file: section.key: message" when the key holds its default). Never pass a secret value.
 */
typedef struct cfg_report cfg_report_t;
void cfg_report_error(cfg_report_t *r, const cfg_t *c, const char *section, const char *key,
                      const char *fmt, ...) PX_PRINTF(5, 6);

typedef struct cfg_load_opts {
    const char *path;  /* file to read; also used in messages */
    const char *text;  /* when not NULL, parse this text instead of reading path */
    char *const *envp; /* environment for RSPROXY_* overrides; NULL = the process environment */
    /* Extra validation run after the generic checks (proxy/ validates S3 URLs and ARNs here).
     * Called only when every value parsed and the generic checks passed, so it may rely on
     * them (e.g. aws_iam_role is "", "default" or a valid chain). Returns the number of errors
     * it reported; a positive count without a cfg_report_error call still fails the load. */
    int (*validate)(cfg_t *c, cfg_report_t *r, void *arg);
    void *validate_arg;
} cfg_load_opts_t;

/*
 * Builds a validated snapshot: table defaults, then the file (opts->text, or opts->path, or
 * neither for a configuration from the environment alone), then RSPROXY_* overrides, then the
 * generic cross-key checks, then opts->validate. On failure returns a negative code (the
 * CFG_E_* of the first error, or UV_ENOMEM) and writes every error, one per line, into err
 * (file errors in line order; beyond 100 errors a last line "... and N more errors"). Secrets
 * never appear in err. Safe to call from any thread; the snapshot is immutable afterwards.
 */
int cfg_load(const cfg_load_opts_t *opts, cfg_t **out, char *err, size_t errlen) PX_MUSTCHECK;

cfg_t *cfg_ref(cfg_t *c);
void cfg_unref(cfg_t *c);

/* "file:line", "env RSPROXY_...", or "default" for a key of this snapshot; NULL for a key that
 * is not in the table. upstream.password read from password_file reports password_file's
 * origin. */
const char *cfg_origin(const cfg_t *c, const char *section, const char *key);

/* Names of non-reloadable keys whose values differ ("proxy.listen_port, upstream.host") into
 * buf, which ends in "..." when too small; false if none. */
bool cfg_nonreloadable_changes(const cfg_t *old, const cfg_t *nw, char *buf, size_t buflen);

/* The configuration part of --help. */
void cfg_print_help(FILE *out);
/* The README's configuration reference (Markdown), generated from the table. */
void cfg_print_reference_md(FILE *out);
/* The effective configuration as INI, secrets redacted (a set secret prints as ***). */
void cfg_dump(const cfg_t *c, FILE *out);

#endif
