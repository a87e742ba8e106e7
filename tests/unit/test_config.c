/*
 * Unit tests for config/: table-driven bad files (tests/data/cfg/bad_*.ini, each with the
 * expected first error line in bad_*.expect), good files, defaults, environment overrides,
 * long values past inih's 200-character line buffer, origins, password_file rules, the
 * generated help and reference, dumps that never show a secret, reload comparison, the
 * validation hook and allocation failures. Every load uses an explicit envp so the developer's
 * environment cannot change a result.
 */
#include "cfg.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_log.h"
#include "px_test.h"
#include "px_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static char *const no_env[] = {NULL};

/* Enough for every error a test file can produce. */
#define ERRLEN 16384

static int load_text(const char *text, char *const *envp, cfg_t **out, char *err)
{
    cfg_load_opts_t o = {.path = "test.ini", .text = text, .envp = envp ? envp : no_env};
    return cfg_load(&o, out, err, ERRLEN);
}

/* Loads text that must be valid; fails the case with the errors otherwise. */
static cfg_t *must_load(const char *text, char *const *envp)
{
    static char err[ERRLEN];
    cfg_t *c = NULL;
    int rc = load_text(text, envp, &c, err);
    if (rc != 0)
        PX_FAIL("cfg_load failed (%s):\n%s", px_strerror(rc), err);
    ASSERT(c != NULL);
    ASSERT_STR_EQ(err, "");
    return c;
}

/* Loads text that must fail; returns its first error line (static storage). */
static const char *first_error(const char *text, char *const *envp, int *code)
{
    static char err[ERRLEN];
    static char line[ERRLEN];
    cfg_t *c = (cfg_t *)1;
    int rc = load_text(text, envp, &c, err);
    if (rc == 0)
        PX_FAIL("cfg_load accepted:\n%s", text);
    ASSERT(c == NULL);
    if (code)
        *code = rc;
    size_t n = strcspn(err, "\n");
    memcpy(line, err, n);
    line[n] = '\0';
    return line;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Reads a whole small file (expectations, generated output). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        PX_FAIL("cannot open %s: %s", path, strerror(errno));
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Runs a printer into a heap string. */
static char *capture(void (*print)(FILE *), const cfg_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ASSERT(f != NULL);
    if (print)
        print(f);
    else
        cfg_dump(c, f);
    fclose(f);
    return buf;
}

/* A temporary file with the given content and mode; the path is static storage. */
static const char *temp_file(const char *content, size_t len, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/rsproxy-cfg-XXXXXX");
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, content, len), (long long)len);
    ASSERT_OK(fchmod(fd, mode));
    close(fd);
    return path;
}

/* ---- table-driven bad files ---------------------------------------------------------------- */

PX_TEST(bad_files_table)
{
    /* Messages name the file as given, so load by relative name from the data directory. */
    char cwd[4096];
    ASSERT(getcwd(cwd, sizeof(cwd)) != NULL);
    ASSERT_OK(chdir(px_test_data("cfg")));
    DIR *d = opendir(".");
    ASSERT(d != NULL);
    struct dirent *e;
    int cases = 0, failures = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "bad_", 4) != 0 || n < 5 || strcmp(e->d_name + n - 4, ".ini"))
            continue;
        char expect_path[512];
        snprintf(expect_path, sizeof(expect_path), "%.*s.expect", (int)(n - 4), e->d_name);
        const char *want = slurp(expect_path);
        char expect[4096];
        size_t wl = PX_MIN(strcspn(want, "\n"), sizeof(expect) - 1);
        memcpy(expect, want, wl);
        expect[wl] = '\0';

        char err[ERRLEN];
        cfg_t *c = NULL;
        cfg_load_opts_t o = {.path = e->d_name, .envp = no_env};
        int rc = cfg_load(&o, &c, err, sizeof(err));
        char first[4096];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(err, "\n"), err);
        cases++;
        if (rc == 0 || c != NULL || strcmp(first, expect) != 0 || rc > -10100 || rc < -10104) {
            failures++;
            fprintf(stderr, "  %s: rc=%d\n    got:      %s\n    expected: %s\n", e->d_name, rc,
                    first, expect);
        }
        /* No file's errors may quote the test password. */
        if (strstr(err, "hunter2")) {
            failures++;
            fprintf(stderr, "  %s: error text shows the password:\n%s", e->d_name, err);
        }
        cfg_unref(c);
    }
    closedir(d);
    ASSERT_OK(chdir(cwd));
    ASSERT(cases >= 25);
    ASSERT_EQ(failures, 0);
}

PX_TEST(bad_file_codes)
{
    int code;
    first_error("[proxy]\nlisten_prot = 1\n", NULL, &code);
    ASSERT_EQ(code, CFG_E_UNKNOWN);
    first_error("[proxy]\nlisten_port 1\n", NULL, &code);
    ASSERT_EQ(code, CFG_E_PARSE);
    first_error("[proxy]\nlisten_port = 0\n", NULL, &code);
    ASSERT_EQ(code, CFG_E_VALUE);
    first_error("[iam]\n", NULL, &code);
    ASSERT_EQ(code, CFG_E_VALUE);

    char err[256];
    cfg_t *c = (cfg_t *)1;
    cfg_load_opts_t o = {.path = "/nonexistent/rsproxy.ini", .envp = no_env};
    ASSERT_EQ(cfg_load(&o, &c, err, sizeof(err)), CFG_E_IO);
    ASSERT(c == NULL);
    ASSERT_STR_EQ(err, "/nonexistent/rsproxy.ini: cannot read: no such file or directory\n");

    o.path = "/tmp";
    ASSERT_EQ(cfg_load(&o, &c, err, sizeof(err)), CFG_E_IO);
    ASSERT_STR_EQ(err, "/tmp: cannot read: not a regular file\n");
}

PX_TEST(all_errors_collected_in_line_order)
{
    char err[ERRLEN];
    cfg_t *c = NULL;
    ASSERT_OK(chdir(px_test_data("cfg")));
    cfg_load_opts_t o = {.path = "bad_many_errors.ini", .envp = no_env};
    ASSERT(cfg_load(&o, &c, err, sizeof(err)) < 0);
    ASSERT_STR_EQ(err, "bad_many_errors.ini:2: proxy.listen_port: 'x' is not an integer\n"
                       "bad_many_errors.ini:3: proxy.log_level: 'loud' is not one of: error, "
                       "warn, info, debug, trace\n"
                       "bad_many_errors.ini:4: [bogus]: unknown section (known sections: "
                       "[proxy], [upstream], [iam], [s3])\n"
                       "bad_many_errors.ini:7: upstream.prot: unknown key (did you mean port?)\n"
                       "bad_many_errors.ini:8: upstream.port: '0' is out of range (1 to 65535)\n");
}

PX_TEST(syntax_errors_all_reported)
{
    /* inih itself reports only the first syntax error; every one must be listed. */
    char err[ERRLEN];
    cfg_t *c = NULL;
    ASSERT(load_text("[proxy]\nfoo\n[iam\nbar\n[s3]\nbaz\nkeep_staged = maybe\n", NULL, &c, err) <
           0);
    ASSERT_STR_EQ(err, "test.ini:2: syntax error: expected 'key = value', '[section]' or a "
                       "comment\n"
                       "test.ini:3: unterminated section header (missing ']')\n"
                       "test.ini:6: syntax error: expected 'key = value', '[section]' or a "
                       "comment\n"
                       "test.ini:7: s3.keep_staged: 'maybe' is not a boolean (true/false, "
                       "yes/no, on/off, 1/0)\n");
}

PX_TEST(unknown_section_reported_once)
{
    char err[ERRLEN];
    cfg_t *c = NULL;
    ASSERT(load_text("[S3]\ntempdir = s3://b/\ncopy_stdin = true\nwhatever = 1\n", NULL, &c, err) <
           0);
    ASSERT_STR_EQ(err, "test.ini:1: [S3]: unknown section (did you mean [s3]?)\n");
}

PX_TEST(control_characters_and_nul)
{
    ASSERT_STR_EQ(first_error("[proxy]\nlisten_port = 1\x01\n", NULL, NULL),
                  "test.ini:2: control character 0x01 in line");
    ASSERT_STR_EQ(first_error("[proxy]\rlisten_port = 1\n", NULL, NULL),
                  "test.ini:1: control character 0x0d in line");

    static const char text[] = "[proxy]\nlisten_port = 6000\nlog_level = in\0fo\n";
    const char *path = temp_file(text, sizeof(text) - 1, 0600);
    char err[ERRLEN];
    cfg_t *c = NULL;
    cfg_load_opts_t o = {.path = path, .envp = no_env};
    ASSERT_EQ(cfg_load(&o, &c, err, sizeof(err)), CFG_E_PARSE);
    char want[256];
    snprintf(want, sizeof(want), "%s:3: NUL byte in line\n", path);
    ASSERT_STR_EQ(err, want);
    unlink(path);
}

/* ---- good files ---------------------------------------------------------------------------- */

static cfg_t *load_data(const char *rel)
{
    char err[ERRLEN];
    cfg_t *c = NULL;
    cfg_load_opts_t o = {.path = px_test_data(rel), .envp = no_env};
    int rc = cfg_load(&o, &c, err, sizeof(err));
    if (rc != 0)
        PX_FAIL("%s: %s\n%s", rel, px_strerror(rc), err);
    return c;
}

PX_TEST(good_architecture_sample)
{
    cfg_t *c = load_data("cfg/good_architecture.ini");
    ASSERT_EQ(c->proxy.listen_addr.n, 1);
    ASSERT_STR_EQ(c->proxy.listen_addr.items[0], "127.0.0.1");
    ASSERT_STR_EQ(c->proxy.auth_file, ""); /* only an inline comment on that line */
    ASSERT_EQ(c->upstream.sslmode, CFG_SSLMODE_VERIFY_FULL);
    ASSERT_EQ(c->proxy.log_level, PX_LOG_INFO);
    ASSERT_STR_EQ(c->iam.cluster_identifier, "examplecluster");
    ASSERT_EQ(c->iam.db_groups.n, 0);
    ASSERT(c->_path != NULL);
    ASSERT(strstr(c->_path, "good_architecture.ini") != NULL);
    cfg_unref(c);
}

PX_TEST(good_full_every_key)
{
    cfg_t *c = load_data("cfg/good_full.ini");
    ASSERT_EQ(c->proxy.listen_addr.n, 3);
    ASSERT_STR_EQ(c->proxy.listen_addr.items[1], "::1");
    ASSERT_STR_EQ(c->proxy.listen_addr.items[2], "localhost");
    ASSERT_EQ(c->proxy.listen_port, 6432);
    ASSERT_STR_EQ(c->proxy.unix_socket_dir, "/run/rsproxy");
    ASSERT_EQ(c->proxy.client_auth, CFG_CLIENT_AUTH_SCRAM);
    ASSERT_STR_EQ(c->proxy.auth_file, "/etc/rsproxy/users.txt");
    ASSERT(c->proxy.allow_remote_trust);
    ASSERT_EQ(c->proxy.max_client_conn, 250);
    ASSERT_EQ(c->proxy.buffer_size, 32768);
    ASSERT_EQ(c->proxy.max_statement_size, 4194304);
    ASSERT_STR_EQ(c->proxy.admin_addr, "127.0.0.2");
    ASSERT_EQ(c->proxy.admin_port, 0);
    ASSERT_EQ(c->proxy.log_level, PX_LOG_DEBUG);
    ASSERT_EQ(c->proxy.log_format, PX_LOG_JSON);
    ASSERT_EQ(c->upstream.auth, CFG_UPSTREAM_AUTH_IAM);
    ASSERT_STR_EQ(c->upstream.host, "examplecluster.abc123xyz789.us-west-2.redshift.amazonaws.com");
    ASSERT_EQ(c->upstream.port, 5440);
    ASSERT_STR_EQ(c->upstream.dbname, "dev");
    ASSERT_EQ(c->upstream.sslmode, CFG_SSLMODE_VERIFY_CA);
    ASSERT_STR_EQ(c->upstream.sslrootcert, "/etc/ssl/amazon-trust-ca-bundle.crt");
    ASSERT_EQ(c->upstream.connect_timeout, 30);
    ASSERT_STR_EQ(c->iam.custom_domain_name, "warehouse.example.com");
    ASSERT_STR_EQ(c->iam.region, "us-west-2");
    ASSERT_STR_EQ(c->iam.db_user, "loader");
    ASSERT_EQ(c->iam.db_groups.n, 2);
    ASSERT_STR_EQ(c->iam.db_groups.items[0], "analysts");
    ASSERT_STR_EQ(c->iam.db_groups.items[1], "etl");
    ASSERT(c->iam.auto_create);
    ASSERT(!c->iam.with_iam);
    ASSERT_EQ(c->iam.duration_seconds, 3600);
    ASSERT_EQ(c->iam.refresh_margin_seconds, 300);
    ASSERT_STR_EQ(c->s3.aws_iam_role, "arn:aws:iam::123456789012:role/RedshiftCopy,"
                                      "arn:aws-cn:iam::210987654321:role/team/Target");
    ASSERT(!c->s3.forward_s3_credentials);
    ASSERT_STR_EQ(c->s3.tempdir, "s3a://rsproxy-test/staging/");
    ASSERT_STR_EQ(c->s3.tempdir_region, "eu-west-1");
    ASSERT(!c->s3.copy_stdin);
    ASSERT(!c->s3.check_lifecycle);
    ASSERT(c->s3.keep_staged);
    ASSERT_EQ(c->s3.allowed_iam_roles.n, 3);
    ASSERT_STR_EQ(c->s3.allowed_iam_roles.items[1], "arn:aws:iam::123456789012:role/path/Other");
    ASSERT_STR_EQ(c->s3.allowed_iam_roles.items[2], "default"); /* normalised from "Default" */
    ASSERT(!c->s3.allow_client_credentials);
    ASSERT_EQ(c->pool.mode, CFG_POOL_SESSION);
    ASSERT_STR_EQ(c->pool.server_reset_query, "RESET ALL");
    ASSERT_EQ(c->pool.server_idle_timeout, 30);
    ASSERT_EQ(c->pool.server_lifetime, 7200);
    ASSERT_EQ(c->pool.max_idle_servers, 5);

    /* Every key of the table was set by the file. */
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    for (size_t i = 0; i < n; i++) {
        const char *o = cfg_origin(c, keys[i].section, keys[i].name);
        bool unset_ok = !strcmp(keys[i].name, "workgroup_name") || !strcmp(keys[i].name, "user") ||
                        !strcmp(keys[i].name, "password") || !strcmp(keys[i].name, "password_file");
        if (!unset_ok && strcmp(o, "default") == 0)
            PX_FAIL("%s.%s not set by good_full.ini", keys[i].section, keys[i].name);
    }
    cfg_unref(c);
}

PX_TEST(good_password_inline_semicolon)
{
    cfg_t *c = load_data("cfg/good_password.ini");
    ASSERT_EQ(c->upstream.auth, CFG_UPSTREAM_AUTH_PASSWORD);
    ASSERT_STR_EQ(c->upstream.password, "pa;ss=word");
    ASSERT_EQ(c->upstream.sslmode, CFG_SSLMODE_DISABLE);
    ASSERT_STR_EQ(c->upstream.user, "loader");
    cfg_unref(c);
}

PX_TEST(good_serverless_default_role)
{
    cfg_t *c = load_data("cfg/good_serverless.ini");
    ASSERT_STR_EQ(c->iam.workgroup_name, "wg1");
    ASSERT_STR_EQ(c->s3.aws_iam_role, "default"); /* normalised from DEFAULT */
    cfg_unref(c);
}

PX_TEST(defaults_match_the_contract)
{
    cfg_t *c = must_load("[iam]\ncluster_identifier = c1\n", NULL);
    ASSERT_EQ(c->proxy.listen_addr.n, 1);
    ASSERT_STR_EQ(c->proxy.listen_addr.items[0], "127.0.0.1");
    ASSERT_EQ(c->proxy.listen_port, 5439);
    ASSERT_STR_EQ(c->proxy.unix_socket_dir, "");
    ASSERT_EQ(c->proxy.client_auth, CFG_CLIENT_AUTH_TRUST);
    ASSERT_STR_EQ(c->proxy.auth_file, "");
    ASSERT(!c->proxy.allow_remote_trust);
    ASSERT_EQ(c->proxy.max_client_conn, 1000);
    ASSERT_STR_EQ(c->proxy.admin_addr, "127.0.0.1");
    ASSERT_EQ(c->proxy.admin_port, 9187);
    ASSERT_EQ(c->proxy.log_level, PX_LOG_INFO);
    ASSERT_EQ(c->proxy.log_format, PX_LOG_TEXT);
    ASSERT_EQ(c->proxy.buffer_size, 16384);
    ASSERT_EQ(c->proxy.max_statement_size, 1048576);
    ASSERT_EQ(c->upstream.auth, CFG_UPSTREAM_AUTH_IAM);
    ASSERT_STR_EQ(c->upstream.host, "");
    ASSERT_EQ(c->upstream.port, 5439);
    ASSERT_STR_EQ(c->upstream.dbname, "");
    ASSERT_EQ(c->upstream.sslmode, CFG_SSLMODE_VERIFY_FULL);
    ASSERT_STR_EQ(c->upstream.sslrootcert, "system");
    ASSERT_STR_EQ(c->upstream.user, "");
    ASSERT_STR_EQ(c->upstream.password, "");
    ASSERT_STR_EQ(c->upstream.password_file, "");
    ASSERT_EQ(c->upstream.connect_timeout, 10);
    ASSERT_STR_EQ(c->iam.workgroup_name, "");
    ASSERT_STR_EQ(c->iam.region, "");
    ASSERT(!c->iam.auto_create);
    ASSERT(!c->iam.with_iam);
    ASSERT_EQ(c->iam.duration_seconds, 900);
    ASSERT_EQ(c->iam.refresh_margin_seconds, 60);
    ASSERT_STR_EQ(c->s3.aws_iam_role, "");
    ASSERT(!c->s3.forward_s3_credentials);
    ASSERT_STR_EQ(c->s3.tempdir, "");
    ASSERT(c->s3.copy_stdin);
    ASSERT(c->s3.check_lifecycle);
    ASSERT(!c->s3.keep_staged);
    ASSERT_EQ(c->s3.allowed_iam_roles.n, 0);
    ASSERT(c->s3.allow_client_credentials);
    ASSERT_EQ(c->pool.mode, CFG_POOL_NONE);
    ASSERT_STR_EQ(c->pool.server_reset_query, "DISCARD ALL");
    ASSERT_EQ(c->pool.server_idle_timeout, 600);
    ASSERT_EQ(c->pool.server_lifetime, 3600);
    ASSERT_EQ(c->pool.max_idle_servers, 100);
    ASSERT(c->_path == NULL); /* loaded from text */
    cfg_unref(c);
}

PX_TEST(table_is_complete_and_sane)
{
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    ASSERT_EQ(n, 47); /* every field of cfg_t */
    for (size_t i = 0; i < n; i++) {
        const cfg_key_t *k = &keys[i];
        ASSERT(k->doc && strlen(k->doc) > 20);
        ASSERT(k->def != NULL);
        if (k->type == CFG_ENUM)
            ASSERT(k->enums && k->enums[0]);
        if (k->type == CFG_INT)
            ASSERT(k->min <= k->max);
        for (size_t j = 0; j < i; j++)
            ASSERT(strcmp(k->section, keys[j].section) || strcmp(k->name, keys[j].name));
    }
    /* The reload rules of the contract. */
    const char *reloadable[] = {"proxy.log_level",         "proxy.log_format",
                                "proxy.max_client_conn",   "upstream.password",
                                "upstream.password_file",  "upstream.sslrootcert",
                                "upstream.connect_timeout"};
    for (size_t i = 0; i < n; i++) {
        char full[96];
        snprintf(full, sizeof(full), "%s.%s", keys[i].section, keys[i].name);
        bool want = !strcmp(keys[i].section, "iam") || !strcmp(keys[i].section, "s3") ||
                    !strcmp(keys[i].section, "pool");
        for (size_t j = 0; j < PX_ARRAY_SIZE(reloadable); j++)
            want = want || !strcmp(full, reloadable[j]);
        if (keys[i].reloadable != want)
            PX_FAIL("%s: reloadable is %d", full, keys[i].reloadable);
    }
}

PX_TEST(values_booleans_enums_lists)
{
    const char *yes[] = {"true", "YES", "On", "1"}, *no[] = {"false", "No", "OFF", "0"};
    for (size_t i = 0; i < 4; i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[iam]\ncluster_identifier = c\nauto_create = %s\nwith_iam = %s\n", yes[i], no[i]);
        cfg_t *c = must_load(text, NULL);
        ASSERT(c->iam.auto_create);
        ASSERT(!c->iam.with_iam);
        cfg_unref(c);
    }
    cfg_t *c = must_load("[proxy]\nlog_level = TRACE\nlisten_port = +6000\n"
                         "[iam]\ncluster_identifier = c\ndb_groups = a , b,c\n",
                         NULL);
    ASSERT_EQ(c->proxy.log_level, PX_LOG_TRACE);
    ASSERT_EQ(c->proxy.listen_port, 6000);
    ASSERT_EQ(c->iam.db_groups.n, 3);
    ASSERT_STR_EQ(c->iam.db_groups.items[0], "a");
    ASSERT_STR_EQ(c->iam.db_groups.items[2], "c");
    cfg_unref(c);

    ASSERT_STR_EQ(first_error("[proxy]\nlisten_port = 99999999999999999999\n", NULL, NULL),
                  "test.ini:2: proxy.listen_port: '99999999999999999999' is out of range (1 to "
                  "65535)");
    ASSERT_STR_EQ(first_error("[proxy]\nlisten_port = 0x10\n", NULL, NULL),
                  "test.ini:2: proxy.listen_port: '0x10' is not an integer");
    ASSERT_STR_EQ(first_error("[proxy]\nlisten_port = -\n", NULL, NULL),
                  "test.ini:2: proxy.listen_port: '-' is not an integer");
    ASSERT_STR_EQ(first_error("[proxy]\nlisten_addr = '::1'\n", NULL, NULL),
                  "test.ini:2: proxy.listen_addr: list item is wrapped in quotes; write it "
                  "without them (values are taken literally)");
    ASSERT_STR_EQ(first_error("[proxy]\nlisten_addr =\n", NULL, NULL),
                  "test.ini:2: proxy.listen_addr: needs at least one address");
}

PX_TEST(loopback_rules_for_trust)
{
    const char *ok[] = {"127.0.0.1", "127.1.2.3",       "::1", "localhost", "LOCALHOST",
                        "[::1]",     "::ffff:127.0.0.1"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(ok); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[proxy]\nlisten_addr = %s\n[iam]\ncluster_identifier = c\n",
                 ok[i]);
        cfg_unref(must_load(text, NULL));
    }
    const char *remote[] = {"0.0.0.0", "::", "*", "10.0.0.1", "db.internal", "128.0.0.1", "::2"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(remote); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[proxy]\nlisten_addr = ::1,%s\n[iam]\ncluster_identifier = c\n", remote[i]);
        const char *e = first_error(text, NULL, NULL);
        ASSERT(strstr(e, "client_auth = trust on the non-loopback address") != NULL);
        /* Allowed when asked for, or with scram-sha-256. */
        snprintf(text, sizeof(text),
                 "[proxy]\nlisten_addr = %s\nallow_remote_trust = true\n"
                 "[iam]\ncluster_identifier = c\n",
                 remote[i]);
        cfg_unref(must_load(text, NULL));
        snprintf(text, sizeof(text),
                 "[proxy]\nlisten_addr = %s\nclient_auth = scram-sha-256\nauth_file = /a\n"
                 "[iam]\ncluster_identifier = c\n",
                 remote[i]);
        cfg_unref(must_load(text, NULL));
    }
}

PX_TEST(iam_targets)
{
    cfg_unref(must_load("[iam]\ncustom_domain_name = db.example.com\n", NULL));
    cfg_unref(
        must_load("[iam]\ncluster_identifier = c\ncustom_domain_name = db.example.com\n", NULL));
    cfg_unref(must_load("[iam]\nworkgroup_name = wg-1\n", NULL));
    ASSERT(strstr(first_error("[iam]\ncluster_identifier = c\nworkgroup_name = w1\n"
                              "custom_domain_name = d.example.com\n",
                              NULL, NULL),
                  "not both") != NULL);
    ASSERT_STR_EQ(first_error("[iam]\nworkgroup_name = WG\n", NULL, NULL),
                  "test.ini:2: iam.workgroup_name: must be 3 to 64 characters of lower-case "
                  "letters, digits and hyphens");
    ASSERT_STR_EQ(first_error("[iam]\nworkgroup_name = wg1\nwith_iam = true\n", NULL, NULL),
                  "test.ini:3: iam.with_iam: applies to provisioned clusters only; Redshift "
                  "Serverless always maps the IAM identity to the database user");
    ASSERT_STR_EQ(first_error("[iam]\ncluster_identifier = c\ndb_user = 1alice\n", NULL, NULL),
                  "test.ini:3: iam.db_user: must start with a letter and contain only letters, "
                  "digits and _+.@-");
    /* Password mode needs no IAM target. */
    cfg_unref(must_load("[upstream]\nauth = password\nhost = h\npassword = p\n", NULL));
}

PX_TEST(role_arns)
{
    const char *good[] = {
        "arn:aws:iam::123456789012:role/A",
        "arn:aws-us-gov:iam::123456789012:role/service-role/My+Role=x.y@w_v-u",
        "arn:aws:iam::123456789012:role/a,arn:aws:iam::210987654321:role/b",
        "default",
        "Default",
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(good); i++) {
        char text[512];
        snprintf(text, sizeof(text), "[iam]\ncluster_identifier = c\n[s3]\naws_iam_role = %s\n",
                 good[i]);
        cfg_unref(must_load(text, NULL));
    }
    struct {
        const char *arn, *why;
    } bad[] = {
        {"arn:aws:iam::123456789012:role/", "the role name is missing"},
        {"arn:aws:iam::123456789012:role//A", "the role path has an empty segment"},
        {"arn:aws:iam::123456789012:role/a/", "the role name is missing"},
        {"arn:aws:s3:::bucket", "it is not an IAM ARN"},
        {"arn:gcp:iam::123456789012:role/A", "it does not start with arn:aws"},
        {"arn:aws:iam::1234567890123:role/A", "it is not a role ARN"},
        {"arn:aws:iam::123456789012:role/A$", "a character IAM does not allow"},
        {"RedshiftCopy", "it does not start with arn:aws"},
        {"arn:aws:iam::123456789012:role/"
         "N234567890123456789012345678901234567890123456789012345678901234X",
         "the role name is longer than 64 characters"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        char text[512];
        snprintf(text, sizeof(text), "[iam]\ncluster_identifier = c\n[s3]\naws_iam_role = %s\n",
                 bad[i].arn);
        const char *e = first_error(text, NULL, NULL);
        if (!strstr(e, bad[i].why))
            PX_FAIL("%s: got %s", bad[i].arn, e);
    }
    /* IAM's path limit: 512 characters including the leading and trailing '/'. */
    char longpath[1200];
    int o = snprintf(longpath, sizeof(longpath),
                     "[iam]\ncluster_identifier = c\n[s3]\naws_iam_role = "
                     "arn:aws:iam::123456789012:role/");
    for (int i = 0; i < 51; i++)
        o += snprintf(longpath + o, sizeof(longpath) - (size_t)o, "abcdefghi/");
    snprintf(longpath + o, sizeof(longpath) - (size_t)o, "Name\n");
    cfg_unref(must_load(longpath, NULL)); /* 1 + 510 = 511 characters of path */
    snprintf(longpath + o, sizeof(longpath) - (size_t)o, "abc/Name\n");
    ASSERT(strstr(first_error(longpath, NULL, NULL),
                  "the role path is longer than 512 characters") != NULL);

    /* Exactly ten roles are fine; an empty link is not. */
    char chain[2048] = "";
    for (int i = 0; i < 10; i++)
        snprintf(chain + strlen(chain), sizeof(chain) - strlen(chain),
                 "%sarn:aws:iam::%012d:role/R%d", i ? "," : "", i, i);
    char text[4096];
    snprintf(text, sizeof(text), "[iam]\ncluster_identifier = c\n[s3]\naws_iam_role = %s\n", chain);
    cfg_t *c = must_load(text, NULL);
    ASSERT_STR_EQ(c->s3.aws_iam_role, chain);
    cfg_unref(c);
    ASSERT_STR_EQ(
        first_error("[iam]\ncluster_identifier = c\n[s3]\naws_iam_role = "
                    "arn:aws:iam::123456789012:role/A,,arn:aws:iam::123456789012:role/B\n",
                    NULL, NULL),
        "test.ini:4: s3.aws_iam_role: role 2 of the chain is empty");
}

/* ---- long values ---------------------------------------------------------------------------- */

PX_TEST(long_values_past_inih_line_buffer)
{
    /* A 5,000-character tempdir and a ten-role chain of long role paths (~4,900 characters),
     * followed by an error whose line number must still be right. */
    static char text[32768];
    char tempdir[5001];
    memcpy(tempdir, "s3://rsproxy-test/", 18);
    for (size_t i = 18; i < 5000; i++)
        tempdir[i] = (i % 50 == 0) ? '/' : (char)('a' + i % 26);
    tempdir[5000] = '\0';
    char chain[6000] = "";
    for (int i = 0; i < 10; i++) {
        char path[460];
        memset(path, 'p', 440);
        for (int j = 40; j < 440; j += 40)
            path[j] = '/';
        path[440] = '\0';
        snprintf(chain + strlen(chain), sizeof(chain) - strlen(chain),
                 "%sarn:aws:iam::123456789012:role/%s/R%d", i ? "," : "", path, i);
    }
    ASSERT(strlen(chain) > 4500);
    snprintf(text, sizeof(text),
             "[iam]\ncluster_identifier = c\n[s3]\ntempdir = %s\naws_iam_role = %s\n", tempdir,
             chain);
    cfg_t *c = must_load(text, NULL);
    ASSERT_EQ(strlen(c->s3.tempdir), 5000);
    ASSERT_STR_EQ(c->s3.tempdir, tempdir);
    ASSERT_STR_EQ(c->s3.aws_iam_role, chain);
    ASSERT_STR_EQ(cfg_origin(c, "s3", "aws_iam_role"), "test.ini:5");
    cfg_unref(c);

    /* A 300-character value straddles inih's stock 200-character buffer. */
    snprintf(text, sizeof(text),
             "[iam]\ncluster_identifier = c\n[s3]\ntempdir = %.300s\n"
             "keep_staged = yes\n",
             tempdir);
    c = must_load(text, NULL);
    ASSERT_EQ(strlen(c->s3.tempdir), 300);
    ASSERT(c->s3.keep_staged);
    cfg_unref(c);

    snprintf(text, sizeof(text), "[s3]\ntempdir = %s\n\n\nbogus = 1\n", tempdir);
    ASSERT_STR_EQ(first_error(text, NULL, NULL), "test.ini:5: s3.bogus: unknown key");
}

PX_TEST(over_long_line_is_refused_not_split)
{
    /* A line above the limit must be one error, and its tail must not be parsed as a line of
     * its own (inih would do exactly that with a buffer that stopped growing). */
    size_t big = 70000;
    char *text = malloc(big + 256);
    ASSERT(text != NULL);
    int o = sprintf(text, "[s3]\ntempdir = s3://b/");
    memset(text + o, 'x', big);
    o += (int)big;
    o += sprintf(text + o, "keep_staged = maybe\n[proxy]\nlisten_port = 0\n");
    text[o] = '\0';
    char err[ERRLEN];
    cfg_t *c = NULL;
    ASSERT(load_text(text, NULL, &c, err) < 0);
    free(text);
    ASSERT_STR_EQ(err, "test.ini:2: line is too long (70036 bytes; the limit is 65536)\n"
                       "test.ini:4: proxy.listen_port: '0' is out of range (1 to 65535)\n");
}

PX_TEST(crlf_bom_comments_and_colon)
{
    cfg_t *c = must_load("\xEF\xBB\xBF; comment\r\n# another\r\n[proxy]\r\n"
                         "  listen_port : 7000   ; trailing\r\n"
                         "\tlog_level = warn\r\n[iam]\r\ncluster_identifier=c\r\n",
                         NULL);
    ASSERT_EQ(c->proxy.listen_port, 7000);
    ASSERT_EQ(c->proxy.log_level, PX_LOG_WARN);
    ASSERT_STR_EQ(cfg_origin(c, "proxy", "log_level"), "test.ini:5");
    cfg_unref(c);
}

/* ---- environment ---------------------------------------------------------------------------- */

PX_TEST(env_overrides_win)
{
    char *env[] = {"HOME=/root",
                   "RSPROXY_PROXY_LISTEN_PORT=7000",
                   "RSPROXY_PROXY_LISTEN_ADDR= 127.0.0.1 , ::1 ",
                   "RSPROXY_IAM_CLUSTER_IDENTIFIER=from-env",
                   "RSPROXY_PROXY_LISTEN_PORT=8000",  /* the first one wins, as with getenv */
                   "RSPROXY_CONFIG=/etc/rsproxy.ini", /* not a section: ignored */
                   "RSPROXY_PROXYX_FOO=1",
                   "rsproxy_proxy_listen_port=9",
                   NULL};
    cfg_t *c = must_load("[proxy]\nlisten_port = 6000\nlog_level = warn\n"
                         "[iam]\ncluster_identifier = from-file\n",
                         env);
    ASSERT_EQ(c->proxy.listen_port, 7000);
    ASSERT_EQ(c->proxy.listen_addr.n, 2);
    ASSERT_STR_EQ(c->proxy.listen_addr.items[1], "::1");
    ASSERT_STR_EQ(c->iam.cluster_identifier, "from-env");
    ASSERT_EQ(c->proxy.log_level, PX_LOG_WARN);
    ASSERT_STR_EQ(cfg_origin(c, "proxy", "listen_port"), "env RSPROXY_PROXY_LISTEN_PORT");
    ASSERT_STR_EQ(cfg_origin(c, "proxy", "log_level"), "test.ini:3");
    ASSERT_STR_EQ(cfg_origin(c, "proxy", "admin_port"), "default");
    ASSERT(cfg_origin(c, "proxy", "no_such_key") == NULL);
    ASSERT(cfg_origin(c, "nope", "listen_port") == NULL);
    cfg_unref(c);
}

PX_TEST(env_only_configuration)
{
    char *env[] = {"RSPROXY_IAM_WORKGROUP_NAME=wg1", "RSPROXY_S3_TEMPDIR=s3://b/t/", NULL};
    char err[ERRLEN];
    cfg_t *c = NULL;
    cfg_load_opts_t o = {.envp = env};
    ASSERT_OK(cfg_load(&o, &c, err, sizeof(err)));
    ASSERT_STR_EQ(c->iam.workgroup_name, "wg1");
    ASSERT_STR_EQ(c->s3.tempdir, "s3://b/t/");
    cfg_unref(c);
}

PX_TEST(env_errors)
{
    char *bad_value[] = {"RSPROXY_PROXY_LISTEN_PORT=abc", NULL};
    ASSERT_STR_EQ(first_error("[iam]\ncluster_identifier = c\n", bad_value, NULL),
                  "env RSPROXY_PROXY_LISTEN_PORT: 'abc' is not an integer");
    char *unknown[] = {"RSPROXY_PROXY_LISTEN_PROT=1", NULL};
    int code;
    ASSERT_STR_EQ(first_error("[iam]\ncluster_identifier = c\n", unknown, &code),
                  "env RSPROXY_PROXY_LISTEN_PROT: unknown key in [proxy] (did you mean "
                  "RSPROXY_PROXY_LISTEN_PORT?)");
    ASSERT_EQ(code, CFG_E_UNKNOWN);
    char *lower[] = {"RSPROXY_S3_tempdir=s3://b/", NULL};
    ASSERT_STR_EQ(first_error("[iam]\ncluster_identifier = c\n", lower, NULL),
                  "env RSPROXY_S3_tempdir: unknown key in [s3] (did you mean "
                  "RSPROXY_S3_TEMPDIR?)");
    char *far[] = {"RSPROXY_IAM_ZZZZZZZZZZ=1", NULL};
    ASSERT_STR_EQ(first_error("[iam]\ncluster_identifier = c\n", far, NULL),
                  "env RSPROXY_IAM_ZZZZZZZZZZ: unknown key in [iam]");
    /* A validation error on a value from the environment points at the variable. */
    char *sslmode[] = {"RSPROXY_UPSTREAM_SSLMODE=disable", NULL};
    ASSERT_STR_EQ(first_error("[iam]\ncluster_identifier = c\n", sslmode, NULL),
                  "env RSPROXY_UPSTREAM_SSLMODE: disable is not allowed with upstream.auth = "
                  "iam: Redshift refuses IAM temporary credentials without TLS");
    /* A bad value in the file is still an error when the environment overrides it. */
    char *port[] = {"RSPROXY_PROXY_LISTEN_PORT=7000", NULL};
    ASSERT_STR_EQ(first_error("[proxy]\nlisten_port = x\n", port, NULL),
                  "test.ini:2: proxy.listen_port: 'x' is not an integer");
}

PX_TEST(env_secret_never_echoed)
{
    char *env[] = {"RSPROXY_UPSTREAM_PASSWORD=  sp ace\x01hunter2  ", NULL};
    char err[ERRLEN];
    cfg_t *c = NULL;
    ASSERT(load_text("[upstream]\nauth = password\nhost = h\n", env, &c, err) < 0);
    ASSERT_STR_EQ(err, "env RSPROXY_UPSTREAM_PASSWORD: control character 0x01 in value\n");

    /* Secrets from the environment are taken exactly, blanks included. */
    char *env2[] = {"RSPROXY_UPSTREAM_PASSWORD=  hunter2  ", NULL};
    c = must_load("[upstream]\nauth = password\nhost = h\n", env2);
    ASSERT_STR_EQ(c->upstream.password, "  hunter2  ");
    ASSERT_STR_EQ(cfg_origin(c, "upstream", "password"), "env RSPROXY_UPSTREAM_PASSWORD");
    cfg_unref(c);
}

/* ---- secrets ------------------------------------------------------------------------------- */

PX_TEST(dump_never_prints_a_secret)
{
    cfg_t *c = must_load("[upstream]\nauth = password\nhost = h\npassword = hunter2-xyz\n", NULL);
    char *out = capture(NULL, c);
    ASSERT(strstr(out, "hunter2") == NULL);
    ASSERT(strstr(out, "\npassword = ***\n") != NULL);
    ASSERT(strstr(out, "\nhost = h\n") != NULL);
    ASSERT(strstr(out, "[proxy]\nlisten_addr = 127.0.0.1\n") == out);
    ASSERT(strstr(out, "\nunix_socket_dir =\n") != NULL);
    free(out);
    cfg_unref(c);

    /* Errors about secret-bearing lines never quote the value either. */
    char err[ERRLEN];
    c = NULL;
    ASSERT(load_text("[upstream]\npassword = hunter2-a\npassword = hunter2-b\n"
                     "[proxy]\npassword = hunter2-c\n[iam]\ncluster_identifier = c\n",
                     NULL, &c, err) < 0);
    ASSERT(strstr(err, "hunter2") == NULL);
    ASSERT(strstr(err, "test.ini:3: upstream.password: duplicate key (first set on line 2)") !=
           NULL);
    ASSERT(strstr(err, "test.ini:5: proxy.password: unknown key (did you mean [upstream] "
                       "password?)") == NULL); /* same name elsewhere: the "belongs in" form */
    ASSERT(strstr(err, "test.ini:5: proxy.password: unknown key in [proxy] (password belongs "
                       "in [upstream])") != NULL);
}

PX_TEST(dump_round_trips)
{
    cfg_t *a = load_data("cfg/good_full.ini");
    char *text = capture(NULL, a);
    cfg_t *b = must_load(text, NULL);
    free(text);
    char buf[1024];
    ASSERT(!cfg_nonreloadable_changes(a, b, buf, sizeof(buf)));
    ASSERT_STR_EQ(buf, "");
    char *t1 = capture(NULL, a), *t2 = capture(NULL, b);
    ASSERT_STR_EQ(t1, t2);
    free(t1);
    free(t2);
    cfg_unref(a);
    cfg_unref(b);
}

PX_TEST(password_file)
{
    const char *path = temp_file("s3cr3t;value \r\n", 15, 0600);
    char text[512];
    snprintf(text, sizeof(text), "[upstream]\nauth = password\nhost = h\npassword_file = %s\n",
             path);
    cfg_t *c = must_load(text, NULL);
    ASSERT_STR_EQ(c->upstream.password, "s3cr3t;value ");
    ASSERT_STR_EQ(c->upstream.password_file, path);
    ASSERT_STR_EQ(cfg_origin(c, "upstream", "password"), "test.ini:4");
    char *dump = capture(NULL, c);
    ASSERT(strstr(dump, "s3cr3t") == NULL);
    free(dump);
    cfg_unref(c);

    ASSERT_OK(chmod(path, 0640));
    char want[512];
    snprintf(want, sizeof(want),
             "test.ini:4: upstream.password_file: %s is accessible by group or others (mode "
             "0640); run chmod 600 on it",
             path);
    ASSERT_STR_EQ(first_error(text, NULL, NULL), want);
    unlink(path);

    struct {
        const char *content, *msg;
    } bad[] = {{"", "is empty"},
               {"\n", "is empty"},
               {"a\nb\n", "must hold only the password"},
               {"a\rb", "must hold only the password"}};
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        path = temp_file(bad[i].content, strlen(bad[i].content), 0400);
        snprintf(text, sizeof(text), "[upstream]\nauth = password\nhost = h\npassword_file = %s\n",
                 path);
        const char *e = first_error(text, NULL, NULL);
        if (!strstr(e, bad[i].msg))
            PX_FAIL("content %zu: %s", i, e);
        unlink(path);
    }
    /* A FIFO is refused at once instead of blocking the loader until a writer appears. */
    char fifo[] = "/tmp/rsproxy-cfg-fifo-XXXXXX";
    ASSERT(mkdtemp(fifo) != NULL);
    char fifo_path[64];
    snprintf(fifo_path, sizeof(fifo_path), "%s/pw", fifo);
    ASSERT_OK(mkfifo(fifo_path, 0600));
    snprintf(text, sizeof(text), "[upstream]\nauth = password\nhost = h\npassword_file = %s\n",
             fifo_path);
    snprintf(want, sizeof(want),
             "test.ini:4: upstream.password_file: cannot read %s: not a regular file", fifo_path);
    ASSERT_STR_EQ(first_error(text, NULL, NULL), want);
    unlink(fifo_path);
    rmdir(fifo);

    static char huge[5000];
    memset(huge, 'a', sizeof(huge));
    path = temp_file(huge, sizeof(huge), 0600);
    snprintf(text, sizeof(text), "[upstream]\nauth = password\nhost = h\npassword_file = %s\n",
             path);
    ASSERT(strstr(first_error(text, NULL, NULL), "the file is too large") != NULL);
    unlink(path);
}

/* ---- reload --------------------------------------------------------------------------------- */

PX_TEST(reload_comparison)
{
    cfg_t *a = must_load("[proxy]\nlisten_port = 6000\nlog_level = info\n"
                         "[iam]\ncluster_identifier = c\n",
                         NULL);
    cfg_t *b = must_load("[proxy]\nlisten_port = 6000\nlog_level = debug\n"
                         "[iam]\ncluster_identifier = d\nduration_seconds = 1800\n",
                         NULL);
    char buf[256];
    ASSERT(!cfg_nonreloadable_changes(a, b, buf, sizeof(buf)));
    ASSERT_STR_EQ(buf, "");
    cfg_t *c = must_load("[proxy]\nlisten_port = 6001\nlisten_addr = 127.0.0.1,::1\n"
                         "[upstream]\nhost = other\n[iam]\ncluster_identifier = c\n",
                         NULL);
    ASSERT(cfg_nonreloadable_changes(a, c, buf, sizeof(buf)));
    ASSERT_STR_EQ(buf, "proxy.listen_addr, proxy.listen_port, upstream.host");
    char tiny[12];
    ASSERT(cfg_nonreloadable_changes(a, c, tiny, sizeof(tiny)));
    ASSERT_EQ(strlen(tiny), sizeof(tiny) - 1);
    ASSERT(strcmp(tiny + sizeof(tiny) - 4, "...") == 0);
    ASSERT(cfg_nonreloadable_changes(a, c, NULL, 0));
    cfg_unref(a);
    cfg_unref(b);
    cfg_unref(c);
}

PX_TEST(refcounting)
{
    cfg_t *c = must_load("[iam]\ncluster_identifier = c\n", NULL);
    ASSERT(cfg_ref(c) == c);
    ASSERT_EQ(c->_refs, 2);
    cfg_unref(c);
    ASSERT_EQ(c->_refs, 1);
    ASSERT_STR_EQ(c->iam.cluster_identifier, "c");
    cfg_unref(c);
    cfg_unref(NULL);
    ASSERT(cfg_ref(NULL) == NULL);
}

/* ---- the validation hook -------------------------------------------------------------------- */

static int hook_calls;

static int hook_tempdir(cfg_t *c, cfg_report_t *r, void *arg)
{
    hook_calls++;
    ASSERT_STR_EQ(arg, "arg");
    if (strncmp(c->s3.tempdir, "s3://", 5) != 0) {
        cfg_report_error(r, c, "s3", "tempdir", "is not an s3:// URL");
        return 1;
    }
    return 0;
}

static int hook_silent(cfg_t *c, cfg_report_t *r, void *arg)
{
    (void)c, (void)r, (void)arg;
    return 2;
}

PX_TEST(validate_hook)
{
    char err[ERRLEN];
    cfg_t *c = NULL;
    cfg_load_opts_t o = {.path = "h.ini",
                         .text = "[iam]\ncluster_identifier = c\n[s3]\ntempdir = http://x/\n",
                         .envp = no_env,
                         .validate = hook_tempdir,
                         .validate_arg = "arg"};
    hook_calls = 0;
    ASSERT_EQ(cfg_load(&o, &c, err, sizeof(err)), CFG_E_VALUE);
    ASSERT_EQ(hook_calls, 1);
    ASSERT_STR_EQ(err, "h.ini:4: s3.tempdir: is not an s3:// URL\n");

    /* Not called when the generic rules already failed. */
    o.text = "[s3]\ntempdir = http://x/\n";
    hook_calls = 0;
    ASSERT(cfg_load(&o, &c, err, sizeof(err)) < 0);
    ASSERT_EQ(hook_calls, 0);

    o.text = "[iam]\ncluster_identifier = c\n[s3]\ntempdir = s3://b/\n";
    ASSERT_OK(cfg_load(&o, &c, err, sizeof(err)));
    ASSERT_EQ(hook_calls, 1);
    cfg_unref(c);

    /* Errors about keys at their defaults name the file, and env values name the variable. */
    char *env[] = {"RSPROXY_S3_TEMPDIR=gs://b/", NULL};
    o.envp = env;
    o.text = "[iam]\ncluster_identifier = c\n";
    ASSERT_EQ(cfg_load(&o, &c, err, sizeof(err)), CFG_E_VALUE);
    ASSERT_STR_EQ(err, "env RSPROXY_S3_TEMPDIR: is not an s3:// URL\n");

    o.envp = no_env;
    o.validate = hook_silent;
    ASSERT_EQ(cfg_load(&o, &c, err, sizeof(err)), CFG_E_VALUE);
    ASSERT_STR_EQ(err, "h.ini: validation failed (2 problems not described)\n");
}

/* ---- documentation -------------------------------------------------------------------------- */

PX_TEST(help_and_reference_cover_every_key)
{
    char *help = capture(cfg_print_help, NULL);
    char *md = capture(cfg_print_reference_md, NULL);
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char pat[128];
        snprintf(pat, sizeof(pat), "\n  %s =", keys[i].name);
        if (!strstr(help, pat))
            PX_FAIL("help lacks %s", keys[i].name);
        snprintf(pat, sizeof(pat), "| `%s` |", keys[i].name);
        if (!strstr(md, pat))
            PX_FAIL("reference lacks %s", keys[i].name);
        char env[96] = "`RSPROXY_";
        size_t o = strlen(env);
        for (const char *s = keys[i].section; *s; s++)
            env[o++] = (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s);
        env[o++] = '_';
        for (const char *s = keys[i].name; *s; s++)
            env[o++] = (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s);
        env[o++] = '`';
        env[o] = '\0';
        if (!strstr(md, env))
            PX_FAIL("reference lacks %s", env);
    }
    ASSERT(strstr(md, "### [proxy]") && strstr(md, "### [upstream]") && strstr(md, "### [iam]") &&
           strstr(md, "### [s3]"));
    /* Angle brackets and pipes would break the Markdown table. */
    ASSERT(strstr(md, "IAM:&lt;user&gt;") != NULL);
    ASSERT(strstr(md, "`trust`, `scram-sha-256`") != NULL);
    /* Help lines are wrapped at 100 columns. */
    for (char *line = help; *line;) {
        size_t len = strcspn(line, "\n");
        if (len > 100)
            PX_FAIL("help line longer than 100 columns: %.*s", (int)len, line);
        line += len + (line[len] ? 1 : 0);
    }
    ASSERT(strstr(help, "  listen_port = 5439  (1..65535; restart)\n") != NULL);
    ASSERT(strstr(help, "  log_level = info  (error | warn | info | debug | trace; reloadable)\n"));
    free(help);
    free(md);
}

/* ---- robustness ----------------------------------------------------------------------------- */

PX_TEST(error_buffer_bounds)
{
    char err[64];
    cfg_t *c = NULL;
    cfg_load_opts_t o = {.path = "t.ini",
                         .text = "[proxy]\nlisten_port = x\nlog_level = y\nmax_client_conn = z\n",
                         .envp = no_env};
    memset(err, 'Z', sizeof(err));
    ASSERT_EQ(cfg_load(&o, &c, err, 60), CFG_E_VALUE);
    ASSERT(memchr(err, '\0', 60) != NULL);
    ASSERT(err[60] == 'Z');
    ASSERT(strncmp(err, "t.ini:2: proxy.listen_port: 'x' is not an integer\n", 50) == 0);
    ASSERT(strstr(err, "... and 2 more errors") == NULL || strlen(err) < 60);

    char big[ERRLEN];
    ASSERT_EQ(cfg_load(&o, &c, big, 100), CFG_E_VALUE);
    ASSERT_STR_EQ(big, "t.ini:2: proxy.listen_port: 'x' is not an integer\n... and 2 more "
                       "errors\n");
    ASSERT_EQ(cfg_load(&o, &c, NULL, 0), CFG_E_VALUE);
    ASSERT_EQ(cfg_load(NULL, &c, big, sizeof(big)), UV_EINVAL);
}

PX_TEST(many_errors_are_capped)
{
    /* Thousands of bad lines: the report keeps the first ones and counts the rest. */
    size_t nlines = 3000;
    char *text = malloc(nlines * 16 + 16);
    ASSERT(text != NULL);
    size_t o = 0;
    for (size_t i = 0; i < nlines; i++)
        o += (size_t)sprintf(text + o, "junk line\n");
    text[o] = '\0';
    char *err = malloc(1 << 20);
    cfg_t *c = NULL;
    ASSERT_EQ(load_text(text, NULL, &c, err), CFG_E_PARSE);
    ASSERT(strncmp(err, "test.ini:1: syntax error", 24) == 0);
    ASSERT_EQ(count_lines(err), 101);
    ASSERT(strstr(err, "\n... and 2900 more errors\n") != NULL);
    free(text);
    free(err);
}

PX_TEST(allocation_failures)
{
    /* Fail the Nth allocation for every N until a load succeeds: each attempt must either
     * succeed or fail cleanly with UV_ENOMEM (leaks show up under ASan). */
    char err[ERRLEN];
    const char *text = "[proxy]\nlisten_addr = 127.0.0.1,::1\n[upstream]\nauth = password\n"
                       "host = h\npassword = p\n[iam]\ndb_groups = a,b\n";
    char *env[] = {"RSPROXY_PROXY_LISTEN_PORT=7000", NULL};
    int ok_at = -1;
    for (long n = 0; n < 2000 && ok_at < 0; n++) {
        cfg_t *c = NULL;
        cfg_load_opts_t o = {.path = "t.ini", .text = text, .envp = env};
        px_alloc_fail_after(n);
        int rc = cfg_load(&o, &c, err, sizeof(err));
        px_alloc_fail_after(-1);
        if (rc == 0) {
            ASSERT_EQ(c->proxy.listen_port, 7000);
            cfg_unref(c);
            ok_at = (int)n;
        } else if (rc != UV_ENOMEM) {
            PX_FAIL("n=%ld: rc=%d %s", n, rc, err);
        }
    }
    ASSERT(ok_at > 5);
}
