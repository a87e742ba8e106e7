/*
 * rsproxy's entry point: command line (-c/--config, --check, --version, --help), configuration
 * load with the proxy's extra validation, logging setup, then either the one-shot --check or the
 * daemon: listeners, signal handlers, and the event loop until every handle has closed (exit 0
 * after SIGINT/SIGTERM). Everything else lives in the rs_proxy library so tests link the same
 * code.
 */
#include "cfg.h"
#include "px_alloc.h"
#include "px_log.h"
#include "px_proxy.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

/* OpenSSL's allocation hooks (CRYPTO_set_mem_functions), so that every allocation in the
 * process goes through px_malloc & co. as STYLE.md 7.7 asks. OpenSSL passes a size of 0 to
 * realloc to mean free. */
static void *ossl_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return px_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (n == 0) {
        px_free(p);
        return NULL;
    }
    return px_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    px_free(p);
}

static void usage(FILE *out)
{
    fprintf(out,
            "rsproxy %s: a PostgreSQL-protocol proxy for Amazon Redshift\n"
            "\n"
            "Usage:\n"
            "  rsproxy -c FILE | --config FILE     run with this configuration\n"
            "  rsproxy --check -c FILE             validate the configuration, get credentials\n"
            "                                      and log in upstream once; exit 0 or 1\n"
            "  rsproxy --version                   print the version\n"
            "  rsproxy --help                      this text\n"
            "\n"
            "Every key can also be set in the environment as RSPROXY_<SECTION>_<KEY>, which wins\n"
            "over the file. Signals: SIGHUP reloads the configuration, SIGINT/SIGTERM drain and\n"
            "stop (a second one stops at once).\n"
            "\n",
            RSPROXY_VERSION);
    cfg_print_help(out);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("rsproxy %s\n", RSPROXY_VERSION);
            return 0;
        }
        if (strcmp(a, "--check") == 0) {
            check = true;
        } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rsproxy: %s needs a file name\n", a);
                return 2;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else {
            fprintf(stderr, "rsproxy: unknown argument \"%s\" (see rsproxy --help)\n", a);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "rsproxy: no configuration file: use -c FILE (see rsproxy --help)\n");
        return 2;
    }

    /* A peer that closes while we write must give EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* libuv's thread pool (4 threads unless set) runs DNS lookups, reloads, AWS credential
     * processes and upstream SCRAM's PBKDF2 alike: a few logins to a server with a high SCRAM
     * iteration count must not hold up the DNS of every new upstream connection. Read once, at
     * the pool's first use; an operator's own setting wins. */
    (void)setenv("UV_THREADPOOL_SIZE", "16", 0);
    /* Every session holds two sockets: take every descriptor the hard limit allows, as
     * PostgreSQL and nginx do, rather than fail at 512 sessions under a default soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (px_alloc_install() != 0 ||
        !CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free)) {
        fprintf(stderr, "rsproxy: cannot install the allocator\n");
        return 1;
    }

    cfg_t *cfg = NULL;
    char err[8192];
    cfg_load_opts_t opts = {.path = path, .validate = px_cfg_validate};
    if (cfg_load(&opts, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s%s", err, err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
        if (check)
            fprintf(stdout, "config FAILED: %s is not valid (errors above)\n", path);
        return 1;
    }
    px_log_setup((px_log_level_t)cfg->proxy.log_level, (px_log_format_t)cfg->proxy.log_format,
                 NULL);

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "rsproxy: cannot create the event loop\n");
        cfg_unref(cfg);
        return 1;
    }

    int status = 0;
    if (check) {
        fprintf(stdout, "config ok: %s\n", path);
        status = px_proxy_check(&loop, cfg, stdout);
        goto out;
    }

    px_proxy_t *px = NULL;
    err[0] = '\0';
    if (px_proxy_new(&loop, cfg, path, &px, err, sizeof(err)) != 0) {
        px_log(PX_LOG_ERROR, "cannot start: %s", err);
        status = 1;
        goto out;
    }
    if (px_proxy_listen(px, err, sizeof(err)) != 0 || px_proxy_handle_signals(px) != 0) {
        px_log(PX_LOG_ERROR, "cannot start: %s", err[0] ? err : "signal setup failed");
        status = 1;
        px_proxy_shutdown(px, true);
        uv_run(&loop, UV_RUN_DEFAULT);
        px_proxy_free(px);
        goto out;
    }
    px_log(PX_LOG_INFO, "rsproxy %s started (pid %d)", RSPROXY_VERSION, (int)uv_os_getpid());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)cfg->proxy.max_client_conn * 2 + 32)
        px_log(PX_LOG_WARN,
               "the open-file limit (%llu) is too low for max_client_conn = %d: each session "
               "needs two descriptors (raise it with ulimit -n or LimitNOFILE=)",
               (unsigned long long)rl.rlim_cur, cfg->proxy.max_client_conn);
    uv_run(&loop, UV_RUN_DEFAULT);
    px_log(PX_LOG_INFO, "rsproxy stopped");
    px_proxy_free(px);
out:
    cfg_unref(cfg);
    /* Anything still open here is a bug: say so rather than hang or leak silently. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        px_log(PX_LOG_ERROR, "handles left open at exit");
        status = status ? status : 1;
    }
    return status;
}
