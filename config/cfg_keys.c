/*
 * The declarative key table: every field of cfg_t with its type, default, reload rule, bounds and
 * user-facing description, in documentation order. Parsing, defaults, environment overrides,
 * reload comparison, --help, the README reference and the config dump all read this one table, so
 * a key added here is complete everywhere at once. Also the small lookups over it (by name, by
 * environment name, "did you mean" suggestions). No I/O and no policy beyond per-key bounds; the
 * cross-key rules live in cfg_validate.c.
 */
#include "cfg_int.h"

#include "px_log.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

/* Enum names: the index of a name is the value stored in cfg_t, so the order must follow the
 * corresponding C enum (checked by the static asserts below). */
static const char *const client_auth_names[] = {"trust", "scram-sha-256", NULL};
static const char *const upstream_auth_names[] = {"iam", "password", NULL};
static const char *const sslmode_names[] = {"verify-full", "verify-ca", "require", "disable", NULL};
static const char *const pool_mode_names[] = {"none", "session", NULL};
static const char *const log_level_names[] = {"error", "warn", "info", "debug", "trace", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};

static_assert(CFG_CLIENT_AUTH_SCRAM == 1, "client_auth_names order");
static_assert(CFG_UPSTREAM_AUTH_PASSWORD == 1, "upstream_auth_names order");
static_assert(CFG_SSLMODE_DISABLE == 3, "sslmode_names order");
static_assert(PX_LOG_TRACE == 4 && PX_LOG_ERROR == 0, "log_level_names order");
static_assert(PX_LOG_JSON == 1, "log_format_names order");
/* Enum fields are written through an int pointer. */
static_assert(sizeof(cfg_client_auth_t) == sizeof(int), "enum size");
static_assert(sizeof(cfg_upstream_auth_t) == sizeof(int), "enum size");
static_assert(sizeof(cfg_sslmode_t) == sizeof(int), "enum size");
static_assert(sizeof(cfg_pool_mode_t) == sizeof(int), "enum size");

#define OFF(field) offsetof(cfg_t, field)
#define RELOAD     true
#define RESTART    false

/* Field order of the initializers below: section, name, type, offset, def, reloadable, enums,
 * min, max, doc. (clang-format would break each into four lines.) */
/* clang-format off */
#define STR(sec, name, field, def, rl, doc)                                                        \
    {sec, name, CFG_STR, OFF(field), def, rl, NULL, 0, 0, doc}
#define SECRET(sec, name, field, def, rl, doc)                                                     \
    {sec, name, CFG_SECRET, OFF(field), def, rl, NULL, 0, 0, doc}
#define INT(sec, name, field, def, rl, lo, hi, doc)                                                \
    {sec, name, CFG_INT, OFF(field), def, rl, NULL, lo, hi, doc}
#define BOOL(sec, name, field, def, rl, doc)                                                       \
    {sec, name, CFG_BOOL, OFF(field), def, rl, NULL, 0, 0, doc}
#define ENUM(sec, name, field, def, rl, names, doc)                                                \
    {sec, name, CFG_ENUM, OFF(field), def, rl, names, 0, 0, doc}
#define LIST(sec, name, field, def, rl, doc)                                                       \
    {sec, name, CFG_LIST, OFF(field), def, rl, NULL, 0, 0, doc}
/* clang-format on */

static const cfg_key_t keys[] = {
    /* [proxy] */
    LIST("proxy", "listen_addr", proxy.listen_addr, "127.0.0.1", RESTART,
         "Comma-separated addresses to accept PostgreSQL clients on; 0.0.0.0 or :: listens on "
         "every interface. client_auth = trust is refused on any address other than loopback "
         "unless allow_remote_trust = true."),
    INT("proxy", "listen_port", proxy.listen_port, "5439", RESTART, 1, 65535,
        "TCP port for PostgreSQL clients."),
    STR("proxy", "unix_socket_dir", proxy.unix_socket_dir, "", RESTART,
        "Directory for a Unix-domain socket named .s.PGSQL.<listen_port>, where psql -h <dir> "
        "finds it. Empty means no Unix socket."),
    ENUM("proxy", "client_auth", proxy.client_auth, "trust", RESTART, client_auth_names,
         "How clients authenticate to the proxy: trust lets in anyone who can connect (meant "
         "for loopback and sidecars); scram-sha-256 checks passwords against auth_file."),
    STR("proxy", "auth_file", proxy.auth_file, "", RESTART,
        "File of user names and passwords (SCRAM-SHA-256 verifiers or plain passwords, turned "
        "into verifiers when read) that client_auth = scram-sha-256 checks clients against; "
        "reread on reload."),
    BOOL("proxy", "allow_remote_trust", proxy.allow_remote_trust, "false", RESTART,
         "Allow client_auth = trust on a non-loopback listen_addr. Anyone who can reach the port "
         "then gets a Redshift session, so enable it only behind a network boundary you "
         "control."),
    INT("proxy", "max_client_conn", proxy.max_client_conn, "1000", RELOAD, 1, 1000000,
        "Maximum number of client connections; clients beyond it are refused with SQLSTATE "
        "53300."),
    INT("proxy", "buffer_size", proxy.buffer_size, "16384", RESTART, 1024, 1048576,
        "Size in bytes of each connection's read buffer, per direction."),
    INT("proxy", "max_statement_size", proxy.max_statement_size, "1048576", RESTART, 1024,
        268435456,
        "Largest COPY or UNLOAD message (Query or Parse, in bytes) that the proxy holds in "
        "memory to rewrite; larger ones are refused. Other messages are relayed as they "
        "arrive, whatever their size."),
    STR("proxy", "admin_addr", proxy.admin_addr, "127.0.0.1", RESTART,
        "Address of the admin HTTP endpoint (/startup, /readiness, /liveness, /metrics)."),
    INT("proxy", "admin_port", proxy.admin_port, "9187", RESTART, 0, 65535,
        "Port of the admin HTTP endpoint; 0 disables the endpoint."),
    ENUM("proxy", "log_level", proxy.log_level, "info", RELOAD, log_level_names,
         "Least severe level that is logged. Secrets are never logged at any level; debug and "
         "trace are for troubleshooting."),
    ENUM("proxy", "log_format", proxy.log_format, "text", RELOAD, log_format_names,
         "Log line format: text for people, json (one object per line) for log collectors."),

    /* [upstream] */
    ENUM("upstream", "auth", upstream.auth, "iam", RESTART, upstream_auth_names,
         "How the proxy logs in to Redshift: iam gets temporary credentials from AWS as set in "
         "[iam]; password logs in with user and password (or password_file)."),
    STR("upstream", "host", upstream.host, "", RESTART,
        "Host name of the Redshift endpoint. With auth = iam it may stay empty: the endpoint is "
        "then looked up from iam.cluster_identifier or iam.workgroup_name."),
    INT("upstream", "port", upstream.port, "5439", RESTART, 1, 65535,
        "Port of the Redshift endpoint."),
    STR("upstream", "dbname", upstream.dbname, "", RESTART,
        "Database to connect to. Empty means the database the client asked for."),
    ENUM("upstream", "sslmode", upstream.sslmode, "verify-full", RESTART, sslmode_names,
         "TLS to Redshift: verify-full checks the certificate chain and the host name, "
         "verify-ca only the chain, require encrypts without checking, and disable turns TLS "
         "off (auth = password only, because IAM temporary credentials need TLS)."),
    STR("upstream", "sslrootcert", upstream.sslrootcert, "system", RELOAD,
        "CA certificates that Redshift's certificate must chain to: system for the system trust "
        "store, or the path of a PEM bundle such as Amazon's amazon-trust-ca-bundle.crt."),
    STR("upstream", "user", upstream.user, "", RESTART,
        "With auth = password: the Redshift user to log in as. Empty means the client's user "
        "name."),
    SECRET("upstream", "password", upstream.password, "", RELOAD,
           "With auth = password: the Redshift password. Prefer password_file or "
           "RSPROXY_UPSTREAM_PASSWORD, which keep the secret out of the config file."),
    STR("upstream", "password_file", upstream.password_file, "", RELOAD,
        "With auth = password: a file holding just the password (one trailing newline is "
        "ignored). It must not be readable or writable by group or others."),
    INT("upstream", "connect_timeout", upstream.connect_timeout, "10", RELOAD, 1, 300,
        "Seconds allowed for DNS, TCP, TLS and login to Redshift before the client gets an "
        "error."),

    /* [iam] */
    STR("iam", "cluster_identifier", iam.cluster_identifier, "", RELOAD,
        "Provisioned cluster to get credentials for (GetClusterCredentials) and, when "
        "upstream.host is empty, to look the endpoint up (DescribeClusters)."),
    STR("iam", "workgroup_name", iam.workgroup_name, "", RELOAD,
        "Redshift Serverless workgroup to get credentials for (GetCredentials) and, when "
        "upstream.host is empty, to look the endpoint up (GetWorkgroup)."),
    STR("iam", "custom_domain_name", iam.custom_domain_name, "", RELOAD,
        "Custom domain name of the cluster, sent as CustomDomainName. Set it instead of "
        "cluster_identifier and workgroup_name, or together with cluster_identifier, as the AWS "
        "API allows."),
    STR("iam", "region", iam.region, "", RELOAD,
        "AWS region of the cluster or workgroup. Empty follows the AWS SDKs: AWS_REGION, "
        "AWS_DEFAULT_REGION, the profile, then the instance metadata."),
    STR("iam", "db_user", iam.db_user, "", RELOAD,
        "Database user to get credentials for (DbUser). Empty means the client's user name. Not "
        "used with with_iam or workgroup_name, where the IAM identity decides the user."),
    LIST("iam", "db_groups", iam.db_groups, "", RELOAD,
         "Comma-separated database groups the session joins (DbGroups)."),
    BOOL("iam", "auto_create", iam.auto_create, "false", RELOAD,
         "Create db_user in the database when it does not exist (AutoCreate; the IAM policy "
         "needs redshift:CreateClusterUser)."),
    BOOL("iam", "with_iam", iam.with_iam, "false", RELOAD,
         "Use GetClusterCredentialsWithIAM: the database user follows the proxy's IAM identity "
         "(IAM:<user> or IAMR:<role>) instead of db_user."),
    INT("iam", "duration_seconds", iam.duration_seconds, "900", RELOAD, 900, 3600,
        "Lifetime in seconds of the temporary database password requested from AWS."),
    INT("iam", "refresh_margin_seconds", iam.refresh_margin_seconds, "60", RELOAD, 0, 3540,
        "Get new credentials this many seconds before the cached ones expire; at most "
        "duration_seconds - 60."),

    /* [s3] */
    STR("s3", "aws_iam_role", s3.aws_iam_role, "", RELOAD,
        "Role that COPY and UNLOAD statements without their own authorization get as IAM_ROLE: "
        "a role ARN, a comma-separated chain of up to 10 ARNs without spaces, or default for "
        "the cluster's default role."),
    BOOL("s3", "forward_s3_credentials", s3.forward_s3_credentials, "false", RELOAD,
         "Give COPY and UNLOAD the proxy's own temporary AWS keys instead of a role. Cannot be "
         "combined with aws_iam_role."),
    STR("s3", "tempdir", s3.tempdir, "", RELOAD,
        "S3 location for staged data and for COPY/UNLOAD locations written without a scheme, "
        "such as s3://bucket/prefix/ (s3a:// and s3n:// are accepted)."),
    STR("s3", "tempdir_region", s3.tempdir_region, "", RELOAD,
        "Region of the tempdir bucket when it differs from the cluster's: added as REGION to "
        "COPY and UNLOAD statements whose location was resolved under tempdir (unless they name "
        "a REGION themselves), and used to sign rsproxy's own S3 requests."),
    BOOL("s3", "copy_stdin", s3.copy_stdin, "true", RELOAD,
         "Emulate COPY ... FROM STDIN and COPY ... TO STDOUT, which Redshift lacks, by staging "
         "the data in tempdir."),
    BOOL("s3", "check_lifecycle", s3.check_lifecycle, "true", RELOAD,
         "At startup and after a reload that changes tempdir (or turns this on), read the "
         "tempdir bucket's lifecycle configuration and warn when no enabled rule covers staged "
         "objects (the covering rule is logged at info); never delays or fails startup."),
    BOOL("s3", "keep_staged", s3.keep_staged, "false", RELOAD,
         "Keep staged objects after a COPY emulation instead of deleting them (for "
         "debugging)."),
    LIST("s3", "allowed_iam_roles", s3.allowed_iam_roles, "", RELOAD,
         "Comma-separated role ARNs (and the word default, for IAM_ROLE default) that clients may "
         "name in their own IAM_ROLE clauses. Empty allows any role. The configured "
         "aws_iam_role is always allowed."),
    BOOL("s3", "allow_client_credentials", s3.allow_client_credentials, "true", RELOAD,
         "Let COPY and UNLOAD statements carry their own ACCESS_KEY_ID / SECRET_ACCESS_KEY or "
         "CREDENTIALS; false refuses such statements."),

    /* [pool] */
    ENUM("pool", "pool_mode", pool.mode, "none", RELOAD, pool_mode_names,
         "none: every client session opens its own Redshift session and closes it at the end. "
         "session: when a client leaves between transactions, its Redshift session is reset "
         "with server_reset_query and kept for the next client whose startup packet is the same "
         "(user, database and every parameter), which then skips the IAM call, TLS and login."),
    STR("pool", "server_reset_query", pool.server_reset_query, "DISCARD ALL", RELOAD,
        "Statement run on an upstream session before it is reused. Redshift has no DISCARD: "
        "use RESET ALL there, and only with clients that leave no prepared statements, temporary "
        "tables, cursors or SET SESSION AUTHORIZATION behind. A session whose reset fails is "
        "closed, never reused. Empty: reused without a reset."),
    INT("pool", "server_idle_timeout", pool.server_idle_timeout, "600", RELOAD, 1, 86400,
        "Seconds an unused upstream session is kept in the pool before it is closed."),
    INT("pool", "server_lifetime", pool.server_lifetime, "3600", RELOAD, 1, 604800,
        "Seconds after its login when an upstream session is no longer reused: it is closed "
        "when its client leaves."),
    INT("pool", "max_idle_servers", pool.max_idle_servers, "100", RELOAD, 0, 100000,
        "Unused upstream sessions kept at most, all users and databases together; the longest "
        "idle goes first. 0 keeps none."),
};

static const char *const sections[] = {"proxy", "upstream", "iam", "s3", "pool"};
static const char *const section_docs[] = {
    "Where rsproxy listens for clients, how they authenticate, the admin endpoint and logging.",
    "How rsproxy connects and logs in to Redshift.",
    "Temporary database credentials from AWS IAM, used when upstream.auth = iam.",
    "COPY and UNLOAD rewriting, and the COPY FROM STDIN / TO STDOUT emulation staged in S3.",
    "Reuse of upstream sessions between clients (session pooling).",
};
static_assert(PX_ARRAY_SIZE(sections) == PX_ARRAY_SIZE(section_docs), "section docs");

const cfg_key_t *cfg_keys(size_t *n)
{
    if (n)
        *n = PX_ARRAY_SIZE(keys);
    return keys;
}

const cfg_key_t *cfg_key_find(const char *section, const char *name)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

size_t cfg_key_index(const cfg_key_t *k)
{
    assert(k >= keys && k < keys + PX_ARRAY_SIZE(keys));
    return (size_t)(k - keys);
}

const char *const *cfg_sections(size_t *n)
{
    *n = PX_ARRAY_SIZE(sections);
    return sections;
}

bool cfg_section_known(const char *section, size_t len)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(sections); i++)
        if (strlen(sections[i]) == len && memcmp(sections[i], section, len) == 0)
            return true;
    return false;
}

const char *cfg_section_doc(const char *section)
{
    for (size_t i = 0; i < PX_ARRAY_SIZE(sections); i++)
        if (strcmp(sections[i], section) == 0)
            return section_docs[i];
    return "";
}

void cfg_key_env_name(const cfg_key_t *k, char *buf, size_t buflen)
{
    size_t o = 0;
    const char *parts[] = {"RSPROXY_", k->section, "_", k->name};
    for (size_t p = 0; p < PX_ARRAY_SIZE(parts); p++)
        for (const char *s = parts[p]; *s && o + 1 < buflen; s++)
            buf[o++] = (*s >= 'a' && *s <= 'z') ? (char)(*s - 32) : *s;
    if (buflen)
        buf[o] = '\0';
}

/* Names longer than this get no suggestion; it also bounds the distance table. */
#define SUGGEST_MAX 64

/* Optimal string alignment distance (Levenshtein plus adjacent transposition), ASCII case
 * folded, so "listen_prot" is one edit from "listen_port". */
static size_t osa_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t d[SUGGEST_MAX + 1][SUGGEST_MAX + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            char ca = px_ascii_lower(a[i - 1]), cb = px_ascii_lower(b[j - 1]);
            size_t cost = ca == cb ? 0 : 1;
            size_t v = PX_MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
            v = PX_MIN(v, d[i - 1][j - 1] + cost);
            if (i > 1 && j > 1 && ca == px_ascii_lower(b[j - 2]) && px_ascii_lower(a[i - 2]) == cb)
                v = PX_MIN(v, d[i - 2][j - 2] + 1);
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

const char *cfg_suggest(const char *name, size_t len, const char *const *cands, size_t n)
{
    if (len == 0 || len > SUGGEST_MAX)
        return NULL;
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t lc = strlen(cands[i]);
        if (lc > SUGGEST_MAX)
            continue;
        size_t d = osa_distance(name, len, cands[i], lc);
        /* Short names tolerate one edit, longer ones up to a third of their length (max 3):
         * enough for typos, not so much that unrelated names look alike. */
        size_t limit = lc <= 4 ? 1 : PX_MIN((size_t)3, PX_MAX((size_t)1, lc / 3));
        if (d <= limit && d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}
