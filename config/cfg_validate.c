/*
 * Cross-key validation after parsing: the rules that belong to configuration as such (ports,
 * addresses, who may use trust, which login needs which keys, IAM targets, credential lifetimes,
 * role ARNs, characters that would end up inside SQL literals). Each violated rule is reported at
 * the place the offending value came from. Also reads upstream.password_file, the one file this
 * module opens besides the config itself. URL syntax of s3.tempdir is not judged here: the
 * proxy's validate hook does that.
 */
#include "cfg_int.h"

#include "px_alloc.h"
#include "px_err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <uv.h>

#define K(section, name) cfg_key_find(section, name)

/* Redshift's limit for IAM_ROLE chains (reference §7.1) and IAM's name limits. */
#define ROLE_CHAIN_MAX 10
#define ROLE_NAME_MAX  64
#define ROLE_PATH_MAX  512

typedef struct check {
    cfg_t *c;
    cfg_report_t *r;
} check_t;

static void fail(check_t *ck, const char *section, const char *name, const char *fmt, ...)
    PX_PRINTF(4, 5);
static void fail(check_t *ck, const char *section, const char *name, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cfg_report_key(ck->r, ck->c, K(section, name), CFG_E_VALUE, "%s", msg);
}

static bool has_blank(const char *s)
{
    for (; *s; s++)
        if (*s == ' ' || *s == '\t')
            return true;
    return false;
}

static bool only_chars(const char *s, const char *extra, bool upper_ok)
{
    for (; *s; s++) {
        char ch = *s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            (upper_ok && ch >= 'A' && ch <= 'Z') || (ch && strchr(extra, ch)))
            continue;
        return false;
    }
    return true;
}

/* 127.0.0.0/8, ::1 (also as IPv4-mapped or in brackets) and the name localhost. */
static bool is_loopback(const char *addr)
{
    char buf[64];
    size_t n = strlen(addr);
    if (px_ascii_ieq(addr, n, "localhost"))
        return true;
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, addr + 1, n - 2);
        buf[n - 2] = '\0';
        addr = buf;
    }
    unsigned char a[16];
    if (inet_pton(AF_INET, addr, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, addr, a) == 1) {
        static const unsigned char v6_loop[16] = {[15] = 1};
        static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
        if (memcmp(a, v6_loop, 16) == 0)
            return true;
        return memcmp(a, v4_mapped, 12) == 0 && a[12] == 127;
    }
    return false;
}

/*
 * One IAM role ARN: arn:aws[-a-z]*:iam::<12 digits>:role/<path/>name, where path segments and
 * the name use IAM's characters [A-Za-z0-9+=,.@_-]. A ',' cannot occur because values reaching
 * here were split at commas (Redshift chains roles with commas).
 */
static bool role_arn_valid(const char *s, size_t n, const char **why)
{
    const char *e = s + n;
    if (n < 8 || memcmp(s, "arn:aws", 7) != 0) {
        *why = "it does not start with arn:aws";
        return false;
    }
    const char *p = s + 7;
    while (p < e && ((*p >= 'a' && *p <= 'z') || *p == '-'))
        p++;
    if ((size_t)(e - p) < 6 || memcmp(p, ":iam::", 6) != 0) {
        *why = "it is not an IAM ARN (arn:<partition>:iam::<account>:role/<name>)";
        return false;
    }
    p += 6;
    for (int i = 0; i < 12; i++, p++) {
        if (p >= e || *p < '0' || *p > '9') {
            *why = "the account ID is not 12 digits";
            return false;
        }
    }
    if ((size_t)(e - p) < 6 || memcmp(p, ":role/", 6) != 0) {
        *why = "it is not a role ARN (expected :role/ after the account ID)";
        return false;
    }
    p += 6;
    /* What follows is path/to/Name: segments without empty ones, the last being the name. */
    const char *rest = p, *last_slash = NULL;
    for (const char *seg = p; p <= e; p++) {
        if (p < e && *p != '/') {
            char ch = *p;
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || (ch && strchr("+=,.@_-", ch)))) {
                *why = "the role name or path has a character IAM does not allow";
                return false;
            }
            continue;
        }
        if (p == seg) {
            *why = p == e ? "the role name is missing" : "the role path has an empty segment";
            return false;
        }
        if (p < e)
            last_slash = p;
        seg = p + 1;
    }
    const char *name = last_slash ? last_slash + 1 : rest;
    if (e - name > ROLE_NAME_MAX) {
        *why = "the role name is longer than 64 characters";
        return false;
    }
    /* IAM counts the path with its leading and trailing '/'. */
    if (last_slash && (size_t)(last_slash - rest) + 2 > ROLE_PATH_MAX) {
        *why = "the role path is longer than 512 characters";
        return false;
    }
    return true;
}

/* Refuses characters that could end a quoted SQL literal or smuggle text into a statement:
 * these values are written into COPY/UNLOAD between single quotes. */
static bool sql_safe(check_t *ck, const char *section, const char *name)
{
    const cfg_key_t *k = K(section, name);
    const char *v = *(char *const *)cfg_key_field(ck->c, k);
    for (const char *p = v; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\'' || ch == '"' || ch == '`' || ch == '\\') {
            fail(ck, section, name,
                 "contains a quote or backslash (%c), which is not allowed in a value that goes "
                 "into SQL",
                 *p);
            return false;
        }
        if (ch < 0x20 || ch == 0x7f) {
            fail(ck, section, name,
                 "contains a control character, which is not allowed in a "
                 "value that goes into SQL");
            return false;
        }
    }
    return true;
}

static void check_proxy(check_t *ck)
{
    cfg_t *c = ck->c;
    const cfg_strlist_t *la = &c->proxy.listen_addr;
    if (la->n == 0)
        fail(ck, "proxy", "listen_addr", "needs at least one address");
    for (size_t i = 0; i < la->n; i++) {
        if (has_blank(la->items[i])) {
            char q[96];
            cfg_value_quote(la->items[i], q, sizeof(q));
            fail(ck, "proxy", "listen_addr",
                 "%s is not an address (separate addresses with commas)", q);
            return;
        }
    }
    if (c->proxy.client_auth == CFG_CLIENT_AUTH_TRUST && !c->proxy.allow_remote_trust) {
        for (size_t i = 0; i < la->n; i++) {
            if (is_loopback(la->items[i]))
                continue;
            char q[96];
            cfg_value_quote(la->items[i], q, sizeof(q));
            fail(ck, "proxy", "listen_addr",
                 "client_auth = trust on the non-loopback address %s would give anyone who can "
                 "reach it a Redshift session; use client_auth = scram-sha-256, listen on "
                 "127.0.0.1, or set allow_remote_trust = true",
                 q);
            break;
        }
    }
    if (c->proxy.client_auth == CFG_CLIENT_AUTH_SCRAM && c->proxy.auth_file[0] == '\0')
        fail(ck, "proxy", "client_auth", "scram-sha-256 needs proxy.auth_file");
    if (c->proxy.unix_socket_dir[0]) {
        /* The socket path is <dir>/.s.PGSQL.<port>, and sun_path is a fixed array. */
        char tail[32];
        int tl = snprintf(tail, sizeof(tail), "/.s.PGSQL.%d", c->proxy.listen_port);
        size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1 - (size_t)tl;
        if (strlen(c->proxy.unix_socket_dir) > max)
            fail(ck, "proxy", "unix_socket_dir",
                 "is too long for a Unix socket path (at most %zu characters with this "
                 "listen_port)",
                 max);
    }
    if (c->proxy.admin_port != 0 && c->proxy.admin_addr[0] == '\0')
        fail(ck, "proxy", "admin_addr", "must not be empty while admin_port is not 0");
}

/* Reads upstream.password_file into upstream.password. */
static void read_password_file(check_t *ck)
{
    cfg_t *c = ck->c;
    const char *path = c->upstream.password_file;
    char *buf = NULL;
    size_t len = 0;
    int mode = 0;
    const char *why = NULL;
    int rc = cfg_read_file(path, CFG_MAX_PASSWORD_FILE, &buf, &len, &mode, &why);
    if (rc == UV_ENOMEM) {
        ck->r->oom = true;
        return;
    }
    if (rc != 0) {
        fail(ck, "upstream", "password_file", "cannot read %s: %s", path,
             why ? why : px_strerror(rc));
        return;
    }
    /* Owner-only, as libpq demands of ~/.pgpass: a password readable by others is already
     * leaked, and refusing to start is how the operator learns about it. */
    if (mode & 077) {
        fail(ck, "upstream", "password_file",
             "%s is accessible by group or others (mode %04o); run chmod 600 on it", path,
             mode & 07777);
        goto out;
    }
    if (len && buf[len - 1] == '\n')
        len--;
    if (len && buf[len - 1] == '\r')
        len--;
    if (memchr(buf, '\0', len)) {
        fail(ck, "upstream", "password_file", "%s contains a NUL byte", path);
        goto out;
    }
    if (memchr(buf, '\n', len) || memchr(buf, '\r', len)) {
        fail(ck, "upstream", "password_file", "%s must hold only the password, on one line", path);
        goto out;
    }
    if (len == 0) {
        fail(ck, "upstream", "password_file", "%s is empty", path);
        goto out;
    }
    char *pw = cfg_arena_strndup(&cfg_snap_of(c)->arena, buf, len);
    if (!pw) {
        ck->r->oom = true;
        goto out;
    }
    c->upstream.password = pw;
    /* The password now comes from where password_file was set. */
    size_t pi = cfg_key_index(K("upstream", "password"));
    size_t fi = cfg_key_index(K("upstream", "password_file"));
    c->_origins[pi] = c->_origins[fi];
out:
    px_wipe(buf, CFG_MAX_PASSWORD_FILE + 1);
    px_free(buf);
}

static void check_iam_target(check_t *ck)
{
    cfg_t *c = ck->c;
    bool cl = c->iam.cluster_identifier[0], wg = c->iam.workgroup_name[0],
         cd = c->iam.custom_domain_name[0];
    if (!cl && !wg && !cd) {
        fail(ck, "upstream", "auth",
             "iam needs iam.cluster_identifier (provisioned), iam.workgroup_name (serverless) "
             "or iam.custom_domain_name");
        return;
    }
    if (cl && wg)
        fail(ck, "iam", "workgroup_name",
             "set either iam.cluster_identifier (provisioned) or iam.workgroup_name "
             "(serverless), not both");
    else if (wg && cd)
        fail(ck, "iam", "custom_domain_name",
             "cannot be combined with iam.workgroup_name; set one of them (only "
             "cluster_identifier may accompany custom_domain_name)");

    /* Keys that only GetClusterCredentials uses would be silently ignored otherwise. */
    const char *other = wg                ? "Redshift Serverless (iam.workgroup_name)"
                        : c->iam.with_iam ? "iam.with_iam = true"
                                          : NULL;
    if (wg && c->iam.with_iam)
        fail(ck, "iam", "with_iam",
             "applies to provisioned clusters only; Redshift Serverless always maps the IAM "
             "identity to the database user");
    if (other) {
        if (c->iam.db_user[0])
            fail(ck, "iam", "db_user",
                 "is not used with %s, where the IAM identity decides the database user", other);
        if (c->iam.db_groups.n)
            fail(ck, "iam", "db_groups", "is not used with %s", other);
        if (c->iam.auto_create)
            fail(ck, "iam", "auto_create", "is not used with %s", other);
    }
}

static void check_upstream(check_t *ck)
{
    cfg_t *c = ck->c;
    if (has_blank(c->upstream.host))
        fail(ck, "upstream", "host", "must not contain spaces");
    if (c->upstream.sslrootcert[0] == '\0')
        fail(ck, "upstream", "sslrootcert",
             "must not be empty (use system for the system trust store)");

    if (c->upstream.auth == CFG_UPSTREAM_AUTH_PASSWORD) {
        if (c->upstream.host[0] == '\0')
            fail(ck, "upstream", "host", "is required with upstream.auth = password");
        bool pw = c->upstream.password[0], pf = c->upstream.password_file[0];
        if (pw && pf)
            fail(ck, "upstream", "password",
                 "set either upstream.password or upstream.password_file, not both");
        else if (!pw && !pf)
            fail(ck, "upstream", "auth",
                 "password needs upstream.password or upstream.password_file");
        else if (pf)
            read_password_file(ck);
        return;
    }

    /* auth = iam */
    if (c->upstream.sslmode == CFG_SSLMODE_DISABLE)
        fail(ck, "upstream", "sslmode",
             "disable is not allowed with upstream.auth = iam: Redshift refuses IAM temporary "
             "credentials without TLS");
    if (c->upstream.user[0])
        fail(ck, "upstream", "user",
             "is used only with upstream.auth = password; with iam set iam.db_user");
    if (c->upstream.password[0])
        fail(ck, "upstream", "password",
             "is set but upstream.auth = iam; set upstream.auth = password to log in with it");
    if (c->upstream.password_file[0])
        fail(ck, "upstream", "password_file",
             "is set but upstream.auth = iam; set upstream.auth = password to log in with it");
    check_iam_target(ck);
}

static void check_iam(check_t *ck)
{
    cfg_t *c = ck->c;
    if (c->iam.refresh_margin_seconds > c->iam.duration_seconds - 60)
        fail(ck, "iam", "refresh_margin_seconds",
             "must be at most iam.duration_seconds - 60 (%d), so that fetched credentials are "
             "used for at least a minute",
             c->iam.duration_seconds - 60);
    if (!only_chars(c->iam.cluster_identifier, "-", true))
        fail(ck, "iam", "cluster_identifier", "may contain only letters, digits and hyphens");
    size_t wl = strlen(c->iam.workgroup_name);
    if (wl && (wl < 3 || wl > 64 || !only_chars(c->iam.workgroup_name, "-", false)))
        fail(ck, "iam", "workgroup_name",
             "must be 3 to 64 characters of lower-case letters, digits and hyphens");
    if (strlen(c->iam.custom_domain_name) > 253 ||
        !only_chars(c->iam.custom_domain_name, ".-", true))
        fail(ck, "iam", "custom_domain_name", "is not a valid DNS name");
    if (!only_chars(c->iam.region, "-", false))
        fail(ck, "iam", "region",
             "may contain only lower-case letters, digits and hyphens (like us-east-1)");

    /* Redshift's DbUser and group rules (reference §2): a letter first, then letters, digits
     * and _+.@- (the proxy lower-cases them before calling AWS). */
    const char *u = c->iam.db_user;
    if (u[0] && (!((u[0] >= 'a' && u[0] <= 'z') || (u[0] >= 'A' && u[0] <= 'Z')) ||
                 !only_chars(u, "_+.@-", true)))
        fail(ck, "iam", "db_user",
             "must start with a letter and contain only letters, digits and _+.@-");
    for (size_t i = 0; i < c->iam.db_groups.n; i++) {
        if (!only_chars(c->iam.db_groups.items[i], "_+.@-", true)) {
            char q[96];
            cfg_value_quote(c->iam.db_groups.items[i], q, sizeof(q));
            fail(ck, "iam", "db_groups", "group %s may contain only letters, digits and _+.@-", q);
            break;
        }
    }
}

static void check_role_chain(check_t *ck)
{
    cfg_t *c = ck->c;
    const char *v = c->s3.aws_iam_role;
    size_t n = strlen(v);
    if (n == 0)
        return;
    if (px_ascii_ieq(v, n, "default")) {
        /* Redshift's keyword; stored in one spelling so consumers can compare with strcmp. */
        c->s3.aws_iam_role = cfg_arena_strndup(&cfg_snap_of(c)->arena, "default", 7);
        if (!c->s3.aws_iam_role) {
            ck->r->oom = true;
            c->s3.aws_iam_role = (char *)v;
        }
        return;
    }
    if (has_blank(v)) {
        fail(ck, "s3", "aws_iam_role",
             "must not contain spaces (Redshift chains roles as ARN,ARN without spaces)");
        return;
    }
    int count = 0;
    for (const char *p = v;; count++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *why;
        if (count == ROLE_CHAIN_MAX) {
            fail(ck, "s3", "aws_iam_role", "a role chain has at most %d roles", ROLE_CHAIN_MAX);
            return;
        }
        if (len == 0) {
            fail(ck, "s3", "aws_iam_role", "role %d of the chain is empty", count + 1);
            return;
        }
        if (!role_arn_valid(p, len, &why)) {
            char item[128], q[96];
            size_t cp = PX_MIN(len, sizeof(item) - 1);
            memcpy(item, p, cp);
            item[cp] = '\0';
            cfg_value_quote(item, q, sizeof(q));
            if (!comma && count == 0)
                fail(ck, "s3", "aws_iam_role",
                     "%s is not an IAM role ARN, a chain of them, or default: %s", q, why);
            else
                fail(ck, "s3", "aws_iam_role", "role %d of the chain, %s, is not valid: %s",
                     count + 1, q, why);
            return;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
}

static void check_s3(check_t *ck)
{
    cfg_t *c = ck->c;
    if (sql_safe(ck, "s3", "aws_iam_role"))
        check_role_chain(ck);
    if (c->s3.aws_iam_role[0] && c->s3.forward_s3_credentials)
        fail(ck, "s3", "forward_s3_credentials",
             "cannot be combined with s3.aws_iam_role; choose the role or the proxy's keys");
    for (size_t i = 0; i < c->s3.allowed_iam_roles.n; i++) {
        char *item = c->s3.allowed_iam_roles.items[i];
        const char *why;
        if (px_ascii_ieq(item, strlen(item), "default")) {
            /* Lets clients write IAM_ROLE default; one spelling so consumers can strcmp. */
            memcpy(item, "default", 7);
            continue;
        }
        if (!role_arn_valid(item, strlen(item), &why)) {
            char q[96];
            cfg_value_quote(item, q, sizeof(q));
            fail(ck, "s3", "allowed_iam_roles", "%s is not an IAM role ARN or default: %s", q,
                 why);
            break;
        }
    }
    sql_safe(ck, "s3", "tempdir");
    if (sql_safe(ck, "s3", "tempdir_region") && !only_chars(c->s3.tempdir_region, "-", false))
        fail(ck, "s3", "tempdir_region",
             "may contain only lower-case letters, digits and hyphens (like us-east-1)");
}

void cfg_validate_generic(cfg_t *c, cfg_report_t *r)
{
    check_t ck = {.c = c, .r = r};
    check_proxy(&ck);
    check_upstream(&ck);
    check_iam(&ck);
    check_s3(&ck);
}
