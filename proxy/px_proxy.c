/*
 * The daemon object: listeners (TCP on every listen_addr, names resolved at startup, and the
 * Unix socket), signal handling (SIGINT/SIGTERM drain then stop, SIGHUP reload), the reload
 * itself (a new snapshot, TLS context and auth file built off the loop thread, then swapped in),
 * and the shutdown sequence that ends with every handle closed so uv_run returns.
 *
 * Connections live in px_client.c and px_server.c; this file only creates them (accept) and
 * walks them (shutdown). Non-reloadable keys are read from the startup snapshot so that a reload
 * that changes them is reported and has no effect, rather than half an effect.
 */
#include "px_conn.h"

#include "px_admin.h"
#include "px_alloc.h"
#include "px_err.h"
#include "px_listen.h"
#include "px_log.h"
#include "s3_client.h"
#include "s3_lifecycle.h"
#include "s3_url.h"

#include <openssl/rand.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct px_listener {
    px_list_t link;
    px_proxy_t *px;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    bool pipe;
    bool closing;
    char name[300];
    char *path; /* Unix socket file to remove on close (owned) */
    uint64_t last_warn_ms;
} px_listener_t;

/* Read buffers kept for reuse when connections go idle; the rest go back to the allocator. */
#define MAX_CACHED_BUFS 64

static void check_done(px_proxy_t *px);
static void s3_setup(px_proxy_t *px, const cfg_t *cfg);
static void lifecycle_start(px_proxy_t *px);
static void s3_reload(px_proxy_t *px, bool tempdir_changed, bool region_changed, bool check_on);

/* ------------------------------------------------------------------------------------------ */
/* Configuration checks and derived objects.                                                  */

int px_cfg_validate(cfg_t *c, cfg_report_t *r, void *arg)
{
    int errors = s3_cfg_validate(c, r, arg);
    if (c->upstream.auth == CFG_UPSTREAM_AUTH_PASSWORD &&
        (!c->upstream.host || !c->upstream.host[0])) {
        cfg_report_error(r, c, "upstream", "host", "is required with auth = password");
        errors++;
    }
    if (c->upstream.sslmode != CFG_SSLMODE_DISABLE && c->upstream.sslmode != CFG_SSLMODE_REQUIRE &&
        c->upstream.sslrootcert && c->upstream.sslrootcert[0] &&
        strcmp(c->upstream.sslrootcert, "system") != 0 &&
        access(c->upstream.sslrootcert, R_OK) != 0) {
        cfg_report_error(r, c, "upstream", "sslrootcert", "cannot read \"%s\": %s",
                         c->upstream.sslrootcert, strerror(errno));
        errors++;
    }
    if (c->proxy.client_auth == CFG_CLIENT_AUTH_SCRAM &&
        (!c->proxy.auth_file || !c->proxy.auth_file[0])) {
        cfg_report_error(r, c, "proxy", "auth_file",
                         "is required with client_auth = scram-sha-256");
        errors++;
    }
    return errors;
}

/* The upstream TLS context for a snapshot; sslmode comes from the boot snapshot (restart-only),
 * the trust store from the new one (reloadable). Reads files: startup or the work thread only. */
static int build_tls(const cfg_t *boot, const cfg_t *cfg, px_tls_ctx_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (boot->upstream.sslmode == CFG_SSLMODE_DISABLE)
        return 0;
    return px_tls_ctx_new_client(boot->upstream.sslmode, cfg->upstream.sslrootcert, out, err,
                                 errlen);
}

/* Plaintext entries get salts keyed by the process's mock secret (which never changes after
 * startup, so the reload thread may read it): an unchanged password keeps its salt across
 * reloads, as an unknown user's mock salt does, so a reload does not tell them apart. */
static int build_authfile(const cfg_t *boot, const px_proxy_t *px, px_authfile_t **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (boot->proxy.client_auth != CFG_CLIENT_AUTH_SCRAM)
        return 0;
    return px_authfile_load_keyed(boot->proxy.auth_file, px->mock_secret, sizeof(px->mock_secret),
                                  out, err, errlen);
}

int px_proxy_new(uv_loop_t *loop, cfg_t *cfg, const char *cfg_path, px_proxy_t **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    px_proxy_t *px = px_calloc(1, sizeof(*px));
    if (!px)
        return UV_ENOMEM;
    px->loop = loop;
    px->boot = cfg_ref(cfg);
    px->cfg = cfg_ref(cfg);
    px_list_init(&px->listeners);
    px_list_init(&px->servers);
    px_list_init(&px->pool);
    for (int i = 0; i < PX_CLIENT_NSTATES; i++)
        px_list_init(&px->clients[i]);
    int rc = UV_ENOMEM;
    if (cfg_path && !(px->cfg_path = px_strdup(cfg_path)))
        goto fail;
    px->io = px_malloc(sizeof(*px->io));
    if (!px->io)
        goto fail;
    px_io_init(px->io, loop, (uint32_t)cfg->proxy.buffer_size, MAX_CACHED_BUFS);
    if (px->io->buf_size != (uint32_t)cfg->proxy.buffer_size)
        px_log(PX_LOG_INFO, "buffer_size %d raised to %u: a whole startup packet must fit",
               cfg->proxy.buffer_size, px->io->buf_size);

    if (RAND_bytes(px->mock_secret, sizeof(px->mock_secret)) != 1) {
        snprintf(err, errlen, "no randomness available");
        rc = PX_E_TLS;
        goto fail;
    }
    rc = build_tls(cfg, cfg, &px->tls_ctx, err, errlen);
    if (rc)
        goto fail;
    rc = build_authfile(cfg, px, &px->authfile, err, errlen);
    if (rc)
        goto fail;
    /* The AWS side serves IAM logins, the keys forward_s3_credentials injects, and the S3
     * client's requests (signed with the proxy's keys, sent through its HTTP client). */
    if (cfg->upstream.auth == CFG_UPSTREAM_AUTH_IAM || cfg->s3.forward_s3_credentials ||
        (cfg->s3.tempdir && cfg->s3.tempdir[0])) {
        rc = auth_iam_new(loop, cfg, &px->iam);
        if (rc) {
            snprintf(err, errlen, "cannot set up IAM authentication: %s", px_strerror(rc));
            goto fail;
        }
    }
    s3_setup(px, cfg);
    if (cfg->upstream.sslmode == CFG_SSLMODE_DISABLE)
        px_log(PX_LOG_WARN, "upstream TLS is disabled (sslmode = disable): passwords and data "
                            "cross the network in plaintext");
    *out = px;
    return 0;
fail:
    if (rc == UV_ENOMEM && err && errlen && !err[0])
        snprintf(err, errlen, "out of memory");
    px_proxy_free(px);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Listeners.                                                                                 */

static void on_connection(uv_stream_t *server, int status)
{
    px_listener_t *l = container_of(server, px_listener_t, h.stream);
    px_proxy_t *px = l->px;
    if (status < 0) {
        /* EMFILE and friends come in bursts: one line per second is enough. */
        uint64_t now = px_now_mono_ms();
        if (now - l->last_warn_ms >= 1000) {
            l->last_warn_ms = now;
            px_log(PX_LOG_WARN, "accept on %s failed: %s", l->name, uv_strerror(status));
        }
        return;
    }
    if (px->shutting_down) {
        px__proxy_reject(px, server, l->pipe);
        return;
    }
    px__client_accept(px, server, l->pipe);
}

static void on_listener_closed(uv_handle_t *h)
{
    px_listener_t *l = container_of(h, px_listener_t, h.handle);
    if (l->path) {
        unlink(l->path);
        px_free(l->path);
    }
    px_list_remove(&l->link);
    px_free(l);
}

static void close_listeners(px_proxy_t *px)
{
    px_list_t *pos, *tmp;
    px_list_for_each_safe(pos, tmp, &px->listeners)
    {
        px_listener_t *l = container_of(pos, px_listener_t, link);
        if (!l->closing) {
            l->closing = true;
            uv_close(&l->h.handle, on_listener_closed);
        }
    }
}

/* One address. With listen_port = 0 (tests), every address after the first gets the port the
 * first one was given. */
static int listen_tcp(px_proxy_t *px, struct sockaddr *sa, char *err, size_t errlen)
{
    if (px->bound_port)
        px_listen_set_port(sa, px->bound_port);
    px_listener_t *l = px_calloc(1, sizeof(*l));
    if (!l)
        return UV_ENOMEM;
    l->px = px;
    px_list_init(&l->link);
    px_addr_name(sa, l->name, sizeof(l->name));
    int rc = uv_tcp_init(px->loop, &l->h.tcp);
    if (rc) {
        px_free(l);
        return rc;
    }
    px_list_append(&px->listeners, &l->link);
    int port = 0;
    rc = px_listen_tcp(&l->h.tcp, sa, 1024, on_connection, &port);
    if (rc) {
        snprintf(err, errlen, "cannot listen on %s: %s", l->name, uv_strerror(rc));
        l->closing = true;
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    if (px->bound_port == 0) {
        px->bound_port = port;
        px_listen_set_port(sa, port);
        px_addr_name(sa, l->name, sizeof(l->name));
    }
    px_log(PX_LOG_INFO, "listening on %s", l->name);
    return 0;
}

static int bind_cb(void *arg, struct sockaddr *sa, char *err, size_t errlen)
{
    return listen_tcp(arg, sa, err, errlen);
}

static int listen_unix(px_proxy_t *px, const char *dir, int port, char *err, size_t errlen)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", dir, port);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, errlen, "unix_socket_dir \"%s\" is too long for a socket path", dir);
        return UV_ENAMETOOLONG;
    }
    /* A socket file left by a process that died is removed; anything else at that path is an
     * error rather than something to delete. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            return UV_EEXIST;
        }
        unlink(path);
    }
    px_listener_t *l = px_calloc(1, sizeof(*l));
    if (!l)
        return UV_ENOMEM;
    l->px = px;
    l->pipe = true;
    px_list_init(&l->link);
    snprintf(l->name, sizeof(l->name), "%s", path);
    int rc = uv_pipe_init(px->loop, &l->h.pipe, 0);
    if (rc) {
        px_free(l);
        return rc;
    }
    px_list_append(&px->listeners, &l->link);
    rc = uv_pipe_bind(&l->h.pipe, path);
    if (rc == 0) {
        l->path = px_strdup(path);
        /* Everyone who can reach the directory may connect, as with PostgreSQL's default
         * unix_socket_permissions. */
        if (chmod(path, 0777) != 0)
            rc = uv_translate_sys_error(errno);
    }
    if (rc == 0)
        rc = uv_listen(&l->h.stream, 1024, on_connection);
    if (rc) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
        l->closing = true;
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    px_log(PX_LOG_INFO, "listening on %s", path);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The proxy's own AWS keys for forward_s3_credentials.                                       */

/* Fetch again this long before the keys expire; use them only while this much is left. */
#define FWD_REFRESH_BEFORE_MS (15 * 60 * 1000)
#define FWD_MIN_LEFT_MS       (5 * 60 * 1000)
/* The chain answered with the keys already held (it renews them in the background, see
 * AUTH_IAM_AWS_KEYS_REFRESH_AHEAD_MS): ask again this much later, without a log line. */
#define FWD_SAME_RETRY_MS 2000

static void fwd_clear(px_proxy_t *px)
{
    px_free(px->fwd.access_key_id);
    px_free_secret(px->fwd.secret_access_key);
    px_free_secret(px->fwd.session_token);
    px->fwd.access_key_id = px->fwd.secret_access_key = px->fwd.session_token = NULL;
    px->fwd.expiration_ms = 0;
}

static void on_fwd_keys(const auth_aws_keys_t *keys, int64_t expiration_ms, const char *region,
                        const char *s3_endpoint, const auth_iam_error_t *err, void *arg)
{
    px_proxy_t *px = arg;
    (void)region;
    (void)s3_endpoint;
    px->fwd.req = NULL;
    if (err || !keys || !keys->access_key_id || !keys->secret_access_key) {
        px->fwd.failures++;
        unsigned shift = px->fwd.failures < 6 ? px->fwd.failures : 6;
        px->fwd.next_try = uv_now(px->loop) + (1000u << shift); /* 2 s ... 64 s */
        snprintf(px->fwd.last_error, sizeof(px->fwd.last_error), "%s%s%s",
                 err && err->aws_code ? err->aws_code : "", err && err->aws_code ? ": " : "",
                 err && err->message ? err->message : "no AWS credentials");
        px_log(PX_LOG_WARN, "forward_s3_credentials: cannot get AWS credentials: %s",
               px->fwd.last_error);
        return;
    }
    if (px->fwd.access_key_id && px->fwd.expiration_ms == expiration_ms &&
        strcmp(px->fwd.access_key_id, keys->access_key_id) == 0) {
        px->fwd.failures = 0;
        px->fwd.next_try = uv_now(px->loop) + FWD_SAME_RETRY_MS;
        return;
    }
    fwd_clear(px);
    px->fwd.access_key_id = px_strdup(keys->access_key_id);
    px->fwd.secret_access_key = px_strdup(keys->secret_access_key);
    px->fwd.session_token =
        keys->session_token && keys->session_token[0] ? px_strdup(keys->session_token) : NULL;
    if (!px->fwd.access_key_id || !px->fwd.secret_access_key ||
        (keys->session_token && keys->session_token[0] && !px->fwd.session_token)) {
        fwd_clear(px);
        snprintf(px->fwd.last_error, sizeof(px->fwd.last_error), "out of memory");
        return;
    }
    px->fwd.expiration_ms = expiration_ms;
    px->fwd.failures = 0;
    px->fwd.last_error[0] = '\0';
    px_log(PX_LOG_INFO, "forward_s3_credentials: AWS credentials ready (%s)",
           expiration_ms ? "temporary" : "long-term");
}

static void fwd_refresh(px_proxy_t *px)
{
    if (!px->cfg->s3.forward_s3_credentials || !px->iam || px->iam_closing || px->fwd.req ||
        px->shutting_down)
        return;
    int64_t now = px_now_unix_ms();
    bool have = px->fwd.access_key_id != NULL;
    if (have && (px->fwd.expiration_ms == 0 || px->fwd.expiration_ms - now > FWD_REFRESH_BEFORE_MS))
        return;
    if (uv_now(px->loop) < px->fwd.next_try)
        return;
    int rc = auth_iam_get_aws_keys(px->iam, on_fwd_keys, px, &px->fwd.req);
    if (rc) {
        px->fwd.req = NULL;
        snprintf(px->fwd.last_error, sizeof(px->fwd.last_error), "%s", px_strerror(rc));
        px->fwd.next_try = uv_now(px->loop) + 5000;
    }
}

const auth_aws_keys_t *px__fwd_keys(px_proxy_t *px, auth_aws_keys_t *view, const char **why)
{
    int64_t now = px_now_unix_ms();
    if (!px->fwd.access_key_id ||
        (px->fwd.expiration_ms && px->fwd.expiration_ms - now < FWD_MIN_LEFT_MS)) {
        fwd_refresh(px);
        *why = px->fwd.last_error[0] ? px->fwd.last_error : "not fetched yet";
        return NULL;
    }
    view->access_key_id = px->fwd.access_key_id;
    view->secret_access_key = px->fwd.secret_access_key;
    view->session_token = px->fwd.session_token;
    return view;
}

/* ------------------------------------------------------------------------------------------ */
/* Which database credentials rsproxy fetched, for operators.                                 */

/*
 * One line per fetch that ended (auth_iam's observer), never per client: INFO with where the
 * credentials are for, which API gave them, the DbUser, how long they are valid and which AWS
 * credential source signed the call; WARN with AWS's code and message when a fetch failed.
 * Nothing here is a secret: auth_iam never hands the observer a password or a key.
 */
static void on_iam_fetch(const auth_iam_fetch_info_t *f, void *arg)
{
    px_proxy_note_iam_fetch(arg, f->ok, f->refresh); /* /metrics */
    /* Values that may hold spaces are quoted, so the line stays key=value for grep and
     * log parsers. */
    char src[200];
    snprintf(src, sizeof(src), "aws_credentials=\"%s\"%s%s", f->provider ? f->provider : "none",
             f->profile ? " profile=" : "", f->profile ? f->profile : "");
    if (f->ok) {
        long long left = (long long)((f->expiration_ms - px_now_unix_ms()) / 1000);
        px_log(PX_LOG_INFO,
               "IAM database credentials %s target=%s api=%s db_user=%s dbname=%s valid_s=%lld %s",
               f->refresh ? "refreshed" : "fetched", f->target, f->api, f->db_user, f->dbname, left,
               src);
        return;
    }
    px_log(PX_LOG_WARN,
           "IAM database credentials could not be %s target=%s api=\"%s\" db_user=%s dbname=%s "
           "%s code=%s message=\"%s\"",
           f->refresh ? "refreshed" : "fetched", f->target, f->api,
           f->db_user && f->db_user[0] ? f->db_user : "-", f->dbname, src,
           f->aws_code ? f->aws_code : "-", f->message ? f->message : "");
}

/* Time-driven work in one place (STYLE.md 7.3): walks the upstream connections once a second
 * and lets those that went quiet give their TLS buffers back; keeps forwarded keys fresh. */
static void on_janitor(uv_timer_t *t)
{
    px_proxy_t *px = container_of(t, px_proxy_t, janitor);
    fwd_refresh(px);
    uint64_t now = uv_now(px->loop);
    px_list_t *pos;
    unsigned trimmed = 0;
    for (pos = px->servers.next; pos != &px->servers; pos = pos->next) {
        px_server_t *sv = container_of(pos, px_server_t, link);
        if ((sv->state == PX_SERVER_ACTIVE || sv->state == PX_SERVER_IDLE) &&
            px_sock_trim_idle(&sv->sock, now, PX_IDLE_TRIM_MS))
            trimmed++;
    }
    px__pool_sweep(px, false);
#ifdef __GLIBC__
    /* Freed record buffers sit between live objects, so glibc cannot shrink the heap by
     * itself; malloc_trim hands their whole pages back to the kernel. Only after a pass that
     * freed something, so a busy proxy does not pay for it. */
    if (trimmed > 0)
        malloc_trim(0);
#endif
}

int px_proxy_listen(px_proxy_t *px, char *err, size_t errlen)
{
    if (!px->janitor_inited && uv_timer_init(px->loop, &px->janitor) == 0) {
        px->janitor_inited = true;
        uv_timer_start(&px->janitor, on_janitor, PX_IDLE_TRIM_MS, PX_IDLE_TRIM_MS);
        uv_unref((uv_handle_t *)&px->janitor); /* never the reason the loop keeps running */
    }
    if (px->iam)
        auth_iam_set_fetch_observer(px->iam, on_iam_fetch, px);
    fwd_refresh(px);     /* the first COPY should not have to wait for keys */
    lifecycle_start(px); /* once at startup; its verdict is logged when S3 answers */
    const cfg_t *c = px->boot;
    int port = c->proxy.listen_port;
    for (size_t i = 0; i < c->proxy.listen_addr.n; i++) {
        int rc = px_listen_each(px->loop, "listen_addr", c->proxy.listen_addr.items[i],
                                px->bound_port ? px->bound_port : port, bind_cb, px, err, errlen);
        if (rc)
            return rc;
    }
    if (!px->bound_port)
        px->bound_port = port;
    if (c->proxy.unix_socket_dir && c->proxy.unix_socket_dir[0]) {
        int rc = listen_unix(px, c->proxy.unix_socket_dir, px->bound_port, err, errlen);
        if (rc)
            return rc;
    }
    if (px_list_empty(&px->listeners)) {
        snprintf(err, errlen, "nothing to listen on: listen_addr is empty and no unix_socket_dir");
        return UV_EINVAL;
    }
    /* Last, so that the admin endpoint answering /startup means the listeners are bound. */
    return px__admin_start(px, err, errlen);
}

int px_proxy_port(const px_proxy_t *px)
{
    return px->bound_port;
}

/* A connection we cannot serve at all (no memory, shutting down): accepted and closed at once so
 * the listener does not stall on it. */
static void on_reject_closed(uv_handle_t *h)
{
    px_free(h);
}

void px__proxy_reject(px_proxy_t *px, uv_stream_t *server, bool pipe)
{
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } *h = px_malloc(sizeof(*h));
    if (!h)
        return;
    int rc = pipe ? uv_pipe_init(px->loop, &h->pipe, 0) : uv_tcp_init(px->loop, &h->tcp);
    if (rc) {
        px_free(h);
        return;
    }
    (void)uv_accept(server, (uv_stream_t *)h);
    uv_close((uv_handle_t *)h, on_reject_closed);
}

/* ------------------------------------------------------------------------------------------ */
/* The S3 client for [s3] tempdir, and the tempdir lifecycle check.                           */

/*
 * One client per tempdir setting, built after auth_iam (whose HTTP client and AWS keys it
 * uses). Neither building it nor the lifecycle check may block or fail startup: a proxy whose
 * S3 side does not work still relays sessions, and what needs S3 reports the problem when used.
 */
static void s3_setup(px_proxy_t *px, const cfg_t *cfg)
{
    if (!cfg->s3.tempdir || !cfg->s3.tempdir[0] || px->s3)
        return;
    if (!px->iam) {
        px_log(PX_LOG_WARN, "[s3] tempdir was set by a reload: the AWS side is set up at "
                            "startup, so restart rsproxy to use it");
        return;
    }
    const char *why = NULL;
    s3_client_t *s3 = NULL;
    int rc = s3_client_new_from_cfg(px->loop, px->iam, cfg, NULL, NULL, &s3, &why);
    if (rc) {
        /* `why` never holds the tempdir's embedded keys: it names what is wrong. */
        px_log(PX_LOG_WARN, "[s3] tempdir: cannot set up the S3 client: %s",
               why ? why : px_strerror(rc));
        return;
    }
    px->s3 = s3;
}

static void on_lifecycle(const s3_lifecycle_result_t *res, void *arg)
{
    px_proxy_t *px = arg;
    px->s3_check = NULL;
    /* A cleanup rule covers what a crash leaves behind; without one staged objects pile up. */
    px_log(res->verdict == S3_LIFECYCLE_COVERED ? PX_LOG_INFO : PX_LOG_WARN,
           "tempdir lifecycle check: %s", res->message);
}

/* Runs the check once on the current client (a check still running for an older tempdir is
 * dropped: its answer is about a bucket no longer in use). */
static void lifecycle_start(px_proxy_t *px)
{
    const cfg_t *c = px->cfg;
    if (!px->s3 || !c->s3.check_lifecycle || px->shutting_down)
        return;
    if (px->s3_check) {
        s3_op_cancel(px->s3_check);
        px->s3_check = NULL;
    }
    int rc = s3_lifecycle_check(px->s3, c->s3.tempdir, on_lifecycle, px, &px->s3_check);
    if (rc) {
        px->s3_check = NULL;
        px_log(PX_LOG_WARN, "tempdir lifecycle check: cannot start it: %s", px_strerror(rc));
    }
}

static void on_iam_closed(void *arg);

/* auth_iam goes last: every S3 client still closing sends through its HTTP client. */
static void close_iam_if_ready(px_proxy_t *px)
{
    if (px->iam_closing && px->s3_closing == 0 && px->iam)
        auth_iam_close(px->iam, on_iam_closed, px);
}

static void on_s3_closed(void *arg)
{
    px_proxy_t *px = arg;
    px->s3_closing--;
    if (px->s3_closing == 0)
        close_iam_if_ready(px);
}

/* NULL and "" are the same setting: the key is unset. */
static bool same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Closes the current client: its operations end (the lifecycle check without a callback). */
static void s3_retire(px_proxy_t *px)
{
    if (px->s3_check) {
        s3_op_cancel(px->s3_check);
        px->s3_check = NULL;
    }
    if (px->s3) {
        s3_client_t *s3 = px->s3;
        px->s3 = NULL;
        px->s3_closing++;
        s3_client_close(s3, on_s3_closed, px);
    }
}

/* A reload: a new client when the tempdir or its region changed (keys embedded in the URL are
 * part of the tempdir), and the check again when the tempdir changed or the check was just
 * turned on. */
static void s3_reload(px_proxy_t *px, bool tempdir_changed, bool region_changed, bool check_on)
{
    const cfg_t *c = px->cfg;
    bool want = c->s3.tempdir && c->s3.tempdir[0];
    if (tempdir_changed || region_changed || !want)
        s3_retire(px);
    if (want && !px->s3)
        s3_setup(px, c);
    if (want && (tempdir_changed || check_on))
        lifecycle_start(px);
}

void px__proxy_close_aws(px_proxy_t *px)
{
    if (px->iam_closing)
        return;
    px->iam_closing = true;
    if (px->fwd.req) {
        auth_iam_cancel(px->fwd.req);
        px->fwd.req = NULL;
    }
    s3_retire(px);
    close_iam_if_ready(px);
}

/* ------------------------------------------------------------------------------------------ */
/* Shutdown.                                                                                  */

static void on_iam_closed(void *arg)
{
    px_proxy_t *px = arg;
    px->iam = NULL;
}

static void on_handle_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void check_done(px_proxy_t *px)
{
    if (!px->shutting_down)
        return;
    uint32_t live = 0;
    for (int i = 0; i < PX_CLIENT_NSTATES; i++)
        live += px->nclients[i];
    if (live > 0)
        return;
    /* No client left: stop everything that would keep the loop alive. Servers still closing
     * (Terminate, close_notify) finish on their own and hold the loop until then. */
    if (px->signals_inited) {
        px->signals_inited = false;
        uv_close((uv_handle_t *)&px->sig_int, on_handle_closed_noop);
        uv_close((uv_handle_t *)&px->sig_term, on_handle_closed_noop);
        uv_close((uv_handle_t *)&px->sig_hup, on_handle_closed_noop);
    }
    if (px->drain_timer_inited) {
        px->drain_timer_inited = false;
        uv_close((uv_handle_t *)&px->drain_timer, on_handle_closed_noop);
    }
    if (px->janitor_inited) {
        px->janitor_inited = false;
        uv_close((uv_handle_t *)&px->janitor, on_handle_closed_noop);
    }
    px__admin_stop(px);
    px__proxy_close_aws(px);
}

static void on_drain_timeout(uv_timer_t *t)
{
    px_proxy_t *px = container_of(t, px_proxy_t, drain_timer);
    px_log(PX_LOG_WARN, "shutdown: sessions still busy after %d s, closing them",
           PX_SHUTDOWN_DRAIN_MS / 1000);
    px_proxy_shutdown(px, true);
}

void px_proxy_shutdown(px_proxy_t *px, bool fast)
{
    if (!px->shutting_down) {
        px->shutting_down = true;
        px->stats.shutting_down = true;
        uint32_t live = 0;
        for (int i = 0; i < PX_CLIENT_CLOSING; i++)
            live += px->nclients[i];
        px_log(PX_LOG_INFO, "shutting down: no new connections; %u session%s to finish", live,
               live == 1 ? "" : "s");
        close_listeners(px);
        px__pool_sweep(px, true);
        if (!fast && uv_timer_init(px->loop, &px->drain_timer) == 0) {
            px->drain_timer_inited = true;
            uv_timer_start(&px->drain_timer, on_drain_timeout, PX_SHUTDOWN_DRAIN_MS, 0);
            uv_unref((uv_handle_t *)&px->drain_timer);
        }
    }
    for (int st = 0; st < PX_CLIENT_CLOSING; st++) {
        px_list_t *pos, *tmp;
        px_list_for_each_safe(pos, tmp, &px->clients[st])
        {
            px_client_t *c = container_of(pos, px_client_t, link);
            if (fast || st < PX_CLIENT_LOGIN_PARAMS)
                px__client_fail(c, c->state == PX_CLIENT_ACTIVE ? "57P01" : "57P03",
                                c->state == PX_CLIENT_ACTIVE
                                    ? "terminating connection due to administrator command"
                                    : "the database system is shutting down");
            else
                px__client_drain_check(c);
        }
    }
    check_done(px);
}

void px__proxy_client_gone(px_proxy_t *px)
{
    check_done(px);
}

void px__proxy_server_gone(px_proxy_t *px)
{
    (void)px;
}

/* ------------------------------------------------------------------------------------------ */
/* Reload.                                                                                    */

typedef struct reload_work {
    uv_work_t req;
    px_proxy_t *px;
    cfg_t *boot; /* reference held while the work runs */
    char *path;
    cfg_t *cfg;
    px_tls_ctx_t *tls;
    px_authfile_t *af;
    int rc;
    char err[4096];
} reload_work_t;

static void reload_work(uv_work_t *req)
{
    /* Runs on the thread pool: reading the config, the CA file and the auth file never blocks
     * client traffic. Touches nothing shared but the immutable boot snapshot. */
    reload_work_t *w = container_of(req, reload_work_t, req);
    cfg_load_opts_t opts = {.path = w->path, .validate = px_cfg_validate};
    w->rc = cfg_load(&opts, &w->cfg, w->err, sizeof(w->err));
    if (w->rc)
        return;
    w->rc = build_tls(w->boot, w->cfg, &w->tls, w->err, sizeof(w->err));
    if (w->rc)
        return;
    w->rc = build_authfile(w->boot, w->px, &w->af, w->err, sizeof(w->err));
}

static void reload_done(uv_work_t *req, int status)
{
    reload_work_t *w = container_of(req, reload_work_t, req);
    px_proxy_t *px = w->px;
    px->reloading = false;
    if (status == 0 && w->rc == 0 && !px->shutting_down) {
        const cfg_t *was = px->cfg, *now = w->cfg;
        bool tempdir_changed = !same_str(was->s3.tempdir, now->s3.tempdir);
        bool region_changed = !same_str(was->s3.tempdir_region, now->s3.tempdir_region);
        bool check_on = now->s3.check_lifecycle && !was->s3.check_lifecycle;
        char changed[1024];
        if (cfg_nonreloadable_changes(px->boot, w->cfg, changed, sizeof(changed)))
            px_log(PX_LOG_WARN,
                   "reload: these keys only change on restart and keep their "
                   "startup values: %s",
                   changed);
        cfg_unref(px->cfg);
        px->cfg = w->cfg;
        px->cfg_gen++; /* pooled sessions of the old configuration are not reused */
        w->cfg = NULL;
        px_tls_ctx_unref(px->tls_ctx);
        px->tls_ctx = w->tls;
        w->tls = NULL;
        if (w->af) {
            px_authfile_free(px->authfile);
            px->authfile = w->af;
            w->af = NULL;
        }
        px_log_setup((px_log_level_t)px->cfg->proxy.log_level,
                     (px_log_format_t)px->cfg->proxy.log_format, NULL);
        if (px->iam)
            auth_iam_set_config(px->iam, px->cfg);
        else if (px->cfg->s3.forward_s3_credentials)
            px_log(PX_LOG_WARN, "reload: forward_s3_credentials was turned on; the AWS "
                                "credential chain is set up at startup, so restart rsproxy");
        if (!px->cfg->s3.forward_s3_credentials)
            fwd_clear(px);
        fwd_refresh(px);
        s3_reload(px, tempdir_changed, region_changed, check_on);
        px_log(PX_LOG_INFO, "configuration reloaded from %s", w->path);
    } else if (!px->shutting_down) {
        px_log(PX_LOG_ERROR, "reload failed, keeping the current configuration: %s",
               status ? uv_strerror(status) : w->err);
    }
    if (w->cfg)
        cfg_unref(w->cfg);
    px_tls_ctx_unref(w->tls);
    px_authfile_free(w->af);
    cfg_unref(w->boot);
    px_free(w->path);
    px_free(w);
}

void px_proxy_reload(px_proxy_t *px)
{
    if (!px->cfg_path) {
        px_log(PX_LOG_WARN, "reload: no configuration file to read");
        return;
    }
    if (px->reloading || px->shutting_down) {
        px_log(PX_LOG_INFO, "reload: %s", px->reloading ? "already in progress" : "shutting down");
        return;
    }
    reload_work_t *w = px_calloc(1, sizeof(*w));
    if (!w || !(w->path = px_strdup(px->cfg_path))) {
        px_free(w);
        px_log(PX_LOG_ERROR, "reload: out of memory");
        return;
    }
    w->px = px;
    w->boot = cfg_ref(px->boot);
    px_log(PX_LOG_INFO, "reloading configuration from %s", px->cfg_path);
    if (uv_queue_work(px->loop, &w->req, reload_work, reload_done) != 0) {
        cfg_unref(w->boot);
        px_free(w->path);
        px_free(w);
        px_log(PX_LOG_ERROR, "reload: cannot queue the work");
        return;
    }
    px->reloading = true;
}

/* ------------------------------------------------------------------------------------------ */

static void on_signal(uv_signal_t *h, int signum)
{
    px_proxy_t *px = h->data;
    switch (signum) {
    case SIGHUP:
        px_proxy_reload(px);
        return;
    case SIGINT:
    case SIGTERM:
        if (px->shutting_down) {
            px_log(PX_LOG_INFO, "second %s: closing every session now",
                   signum == SIGINT ? "SIGINT" : "SIGTERM");
            px_proxy_shutdown(px, true);
            return;
        }
        px_log(PX_LOG_INFO, "%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
        px_proxy_shutdown(px, false);
        return;
    default:
        return;
    }
}

int px_proxy_handle_signals(px_proxy_t *px)
{
    int rc = uv_signal_init(px->loop, &px->sig_int);
    if (rc == 0)
        rc = uv_signal_init(px->loop, &px->sig_term);
    if (rc == 0)
        rc = uv_signal_init(px->loop, &px->sig_hup);
    if (rc)
        return rc;
    px->signals_inited = true;
    px->sig_int.data = px->sig_term.data = px->sig_hup.data = px;
    rc = uv_signal_start(&px->sig_int, on_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&px->sig_term, on_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&px->sig_hup, on_signal, SIGHUP);
    /* Signals alone must not keep the loop running once everything else has stopped. */
    uv_unref((uv_handle_t *)&px->sig_int);
    uv_unref((uv_handle_t *)&px->sig_term);
    uv_unref((uv_handle_t *)&px->sig_hup);
    return rc;
}

cfg_t *px_proxy_cfg(const px_proxy_t *px)
{
    return px->cfg;
}

void px_proxy_get_stats(const px_proxy_t *px, px_proxy_stats_t *out)
{
    *out = px->stats;
    out->clients_login = px->nclients[PX_CLIENT_STARTUP] + px->nclients[PX_CLIENT_AUTH] +
                         px->nclients[PX_CLIENT_CREDS] + px->nclients[PX_CLIENT_CONNECTING] +
                         px->nclients[PX_CLIENT_LOGIN_PARAMS];
    out->clients_active = px->nclients[PX_CLIENT_ACTIVE];
    out->clients_closing = px->nclients[PX_CLIENT_CLOSING];
    out->servers = px->nservers;
    out->read_buffers = px->io ? px->io->bufs_live : 0;
    /* Open connections' bytes are added to the totals when they close; count them now too. */
    for (int st = 0; st < PX_CLIENT_NSTATES; st++) {
        px_list_t *pos;
        for (pos = px->clients[st].next; pos != &px->clients[st]; pos = pos->next) {
            const px_client_t *c = container_of(pos, px_client_t, link);
            out->bytes_from_clients += c->sock.bytes_in;
            out->bytes_to_clients += c->sock.bytes_out;
        }
    }
}

void px_proxy_free(px_proxy_t *px)
{
    if (!px)
        return;
    if (px->io) {
        px_io_cleanup(px->io);
        px_free(px->io);
    }
    px__cancel_cleanup(px);
    px_tls_ctx_unref(px->tls_ctx);
    px_authfile_free(px->authfile);
    px_wipe(px->mock_secret, sizeof(px->mock_secret));
    fwd_clear(px);
    if (px->cfg)
        cfg_unref(px->cfg);
    if (px->boot)
        cfg_unref(px->boot);
    px_free(px->cfg_path);
    px_free(px);
}
