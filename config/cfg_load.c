/*
 * cfg_load: builds one snapshot in a fixed order (table defaults, then the INI file, then
 * RSPROXY_* environment overrides, then the generic cross-key checks, then the caller's hook)
 * and either returns it whole or returns every error found and frees it. Also the bounded file
 * reader shared with upstream.password_file. Nothing is logged here: errors go back as text.
 */
#include "cfg_int.h"

#include "px_alloc.h"
#include "px_err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

int cfg_read_file(const char *path, size_t max, char **out, size_t *len, int *mode,
                  const char **why)
{
    *out = NULL;
    *len = 0;
    *why = NULL;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer before the
     * regular-file check below could refuse it. It changes nothing for regular files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        /* A FIFO or device would block the loader or never end. */
        *why = "not a regular file";
        rc = UV_EINVAL;
        goto fail;
    }
    if (mode)
        *mode = (int)(st.st_mode & 07777);
    /* Read up to max+1 bytes whatever st_size says (files in /proc report 0, and a file may
     * grow while we read): one byte more than allowed tells us the file is too large. */
    buf = px_malloc(max + 1);
    if (!buf) {
        rc = UV_ENOMEM;
        goto fail;
    }
    size_t n = 0;
    while (n < max + 1) {
        ssize_t got = read(fd, buf + n, max + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            goto fail;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > max) {
        *why = "the file is too large";
        rc = UV_EFBIG;
        goto fail;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    if (buf) {
        px_wipe(buf, max + 1);
        px_free(buf);
    }
    close(fd);
    return rc;
}

/* Every key starts from its table default; a default that does not parse is a bug in the
 * table, reported like any other error so that tests catch it. */
static void apply_defaults(cfg_t *c, cfg_report_t *r)
{
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char msg[512];
        int rc = cfg_value_set(c, &keys[i], keys[i].def, msg, sizeof(msg));
        if (rc == UV_ENOMEM)
            r->oom = true;
        else if (rc != 0)
            cfg_report_add(r, rc, CFG_STAGE_FILE, 0, "internal error: default of %s.%s: %s",
                           keys[i].section, keys[i].name, msg);
    }
}

static void load_file(cfg_t *c, cfg_report_t *r, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    const char *why = NULL;
    int rc = cfg_read_file(path, CFG_MAX_FILE, &text, &len, NULL, &why);
    if (rc == UV_ENOMEM) {
        r->oom = true;
        return;
    }
    if (rc != 0) {
        if (rc == UV_EFBIG)
            cfg_report_add(r, CFG_E_IO, CFG_STAGE_FILE, 0, "%s: cannot read: %s (limit %d bytes)",
                           path, why, CFG_MAX_FILE);
        else
            cfg_report_add(r, CFG_E_IO, CFG_STAGE_FILE, 0, "%s: cannot read: %s", path,
                           why ? why : px_strerror(rc));
        return;
    }
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int line = 1;
        for (const char *q = text; q < nul; q++)
            line += *q == '\n';
        cfg_report_add(r, CFG_E_PARSE, CFG_STAGE_FILE, line, "%s:%d: NUL byte in line", path, line);
        /* Still check the lines before it, but not the cut-off line itself, whose value
         * would be judged without its tail. */
        while (nul > text && nul[-1] != '\n')
            nul--;
        len = (size_t)(nul - text);
    }
    cfg_parse_text(c, r, text, len);
    /* The text may hold upstream.password. */
    px_wipe(text, CFG_MAX_FILE + 1);
    px_free(text);
}

int cfg_load(const cfg_load_opts_t *opts, cfg_t **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!opts || !out)
        return UV_EINVAL;
    *out = NULL;

    cfg_report_t r;
    cfg_report_init(&r, opts->path ? opts->path : "config");
    size_t nkeys;
    cfg_keys(&nkeys);
    cfg_snap_t *s = px_calloc(1, sizeof(*s));
    if (!s) {
        r.oom = true;
        return cfg_report_finish(&r, err, errlen);
    }
    cfg_t *c = &s->cfg;
    c->_refs = 1;
    c->_origins = cfg_arena_alloc(&s->arena, nkeys * sizeof(*c->_origins));
    c->_norigins = nkeys;
    if (!c->_origins) {
        r.oom = true;
        goto done;
    }
    if (opts->path && !opts->text) {
        c->_path = cfg_arena_strndup(&s->arena, opts->path, strlen(opts->path));
        if (!c->_path)
            r.oom = true;
    }
    apply_defaults(c, &r);
    if (r.oom)
        goto done;

    /* Without text or path the configuration comes from defaults and the environment alone
     * (a container configured only through RSPROXY_* variables). */
    if (opts->text)
        cfg_parse_text(c, &r, opts->text, strlen(opts->text));
    else if (opts->path)
        load_file(c, &r, opts->path);
    cfg_parse_env(c, &r, opts->envp);

    /* Cross-key rules run on values that all parsed: with a value missing they would judge the
     * default in its place and report confusing follow-up errors. The hook runs only on a
     * configuration that passed them, so it may rely on the generic rules. */
    if (r.total == 0 && !r.oom) {
        r.stage = CFG_STAGE_CHECK;
        cfg_validate_generic(c, &r);
    }
    if (r.total == 0 && !r.oom && opts->validate) {
        r.stage = CFG_STAGE_HOOK;
        size_t before = r.total;
        int bad = opts->validate(c, &r, opts->validate_arg);
        if (bad < 0)
            cfg_report_add(&r, CFG_E_VALUE, CFG_STAGE_HOOK, 0, "%s: validation failed: %s", r.name,
                           px_strerror(bad));
        else if (bad > 0 && r.total == before)
            cfg_report_add(&r, CFG_E_VALUE, CFG_STAGE_HOOK, 0,
                           "%s: validation failed (%d problems not described)", r.name, bad);
    }

done:;
    int rc = cfg_report_finish(&r, err, errlen);
    cfg_report_free(&r);
    if (rc != 0) {
        cfg_unref(c);
        return rc;
    }
    *out = c;
    return 0;
}
