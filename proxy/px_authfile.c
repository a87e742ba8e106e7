/*
 * Client auth file parsing (pgbouncer's userlist.txt format, see px_authfile.h). A small pure
 * parser over a byte range: quoted fields with "" escapes, comments, a bounded field length and
 * file size. Entries are kept in a sorted array for binary search; the file is read once per
 * (re)load, never on a connection path. Nothing here logs; errors name the file and line only,
 * never a field's contents, so a secret cannot end up in a message.
 */
#include "px_authfile.h"

#include "px_alloc.h"
#include "px_err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct af_entry {
    char *user;
    char *secret; /* wiped on free */
} af_entry_t;

struct px_authfile {
    af_entry_t *e;
    size_t n, cap;
};

void px_authfile_free(px_authfile_t *af)
{
    if (!af)
        return;
    for (size_t i = 0; i < af->n; i++) {
        px_free(af->e[i].user);
        px_free_secret(af->e[i].secret);
    }
    px_free(af->e);
    px_free(af);
}

/* Reads one quoted field at *pos within [.., end). Returns 1 with the field, 0 when the line has
 * no more fields, -1 on a syntax error. */
static int read_field(const char *s, size_t end, size_t *pos, char *out, size_t outcap,
                      const char **why)
{
    size_t p = *pos;
    while (p < end && (s[p] == ' ' || s[p] == '\t' || s[p] == '\r'))
        p++;
    if (p >= end) {
        *pos = p;
        return 0;
    }
    if (s[p] != '"') {
        *why = "expected a double-quoted field";
        return -1;
    }
    p++;
    size_t o = 0;
    for (;;) {
        if (p >= end) {
            *why = "unterminated quoted field";
            return -1;
        }
        char ch = s[p++];
        if (ch == '"') {
            if (p < end && s[p] == '"') {
                p++;
            } else {
                break;
            }
        } else if (ch == '\0') {
            *why = "NUL byte in field";
            return -1;
        }
        if (o + 1 >= outcap) {
            *why = "field too long";
            return -1;
        }
        out[o++] = ch;
    }
    out[o] = '\0';
    *pos = p;
    return 1;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const af_entry_t *)a)->user, ((const af_entry_t *)b)->user);
}

int px_authfile_parse(const char *text, size_t n, const char *name, px_authfile_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (n > PX_AUTHFILE_MAX) {
        snprintf(err, errlen, "%s: file too large", name);
        return CFG_E_PARSE;
    }
    px_authfile_t *af = px_calloc(1, sizeof(*af));
    char *user = px_malloc(PX_AUTHFILE_FIELD_MAX);
    char *secret = px_malloc(PX_AUTHFILE_FIELD_MAX);
    int rc = UV_ENOMEM;
    if (!af || !user || !secret)
        goto fail;

    size_t pos = 0;
    int line = 0;
    while (pos < n) {
        line++;
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - text) : n;
        size_t p = pos;
        while (p < end && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r'))
            p++;
        if (p == end || text[p] == ';' || text[p] == '#') {
            pos = end + 1;
            continue;
        }
        const char *why = NULL;
        int r1 = read_field(text, end, &p, user, PX_AUTHFILE_FIELD_MAX, &why);
        int r2 = r1 == 1 ? read_field(text, end, &p, secret, PX_AUTHFILE_FIELD_MAX, &why) : -1;
        if (r1 != 1 || r2 != 1) {
            snprintf(err, errlen, "%s:%d: %s", name, line,
                     why ? why : "expected \"user\" \"password\"");
            rc = CFG_E_PARSE;
            goto fail;
        }
        if (user[0] == '\0') {
            snprintf(err, errlen, "%s:%d: empty user name", name, line);
            rc = CFG_E_PARSE;
            goto fail;
        }
        if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35) {
            snprintf(err, errlen,
                     "%s:%d: an MD5 secret cannot be used for scram-sha-256 client "
                     "authentication (store the password or a SCRAM verifier)",
                     name, line);
            rc = CFG_E_PARSE;
            goto fail;
        }
        if (af->n == af->cap) {
            size_t nc = af->cap ? af->cap * 2 : 16;
            af_entry_t *ne = px_realloc(af->e, nc * sizeof(*ne));
            if (!ne)
                goto fail;
            af->e = ne;
            af->cap = nc;
        }
        af->e[af->n].user = px_strdup(user);
        af->e[af->n].secret = px_strdup(secret);
        if (!af->e[af->n].user || !af->e[af->n].secret) {
            px_free(af->e[af->n].user);
            px_free_secret(af->e[af->n].secret);
            goto fail;
        }
        af->n++;
        px_wipe(secret, PX_AUTHFILE_FIELD_MAX);
        pos = end + 1;
    }
    if (af->n > 1)
        qsort(af->e, af->n, sizeof(af->e[0]), cmp_entry);
    /* A user listed twice is ambiguous: pgbouncer takes one silently; refusing is safer. */
    for (size_t i = 1; i < af->n; i++) {
        if (strcmp(af->e[i - 1].user, af->e[i].user) == 0) {
            snprintf(err, errlen, "%s: user \"%s\" is listed more than once", name, af->e[i].user);
            rc = CFG_E_PARSE;
            goto fail;
        }
    }
    px_free(user);
    px_wipe(secret, PX_AUTHFILE_FIELD_MAX);
    px_free(secret);
    *out = af;
    return 0;
fail:
    if (rc == UV_ENOMEM)
        snprintf(err, errlen, "%s: out of memory", name);
    px_free(user);
    if (secret) {
        px_wipe(secret, PX_AUTHFILE_FIELD_MAX);
        px_free(secret);
    }
    px_authfile_free(af);
    return rc;
}

int px_authfile_load(const char *path, px_authfile_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return CFG_E_IO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= PX_AUTHFILE_MAX + 1) {
                snprintf(err, errlen, "%s: file too large", path);
                rc = CFG_E_PARSE;
                break;
            }
            size_t nc = cap ? cap * 2 : 4096;
            char *nb = px_malloc(nc);
            if (!nb) {
                rc = UV_ENOMEM;
                snprintf(err, errlen, "%s: out of memory", path);
                break;
            }
            if (buf) {
                memcpy(nb, buf, len);
                px_wipe(buf, len);
                px_free(buf);
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error", path);
                rc = CFG_E_IO;
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = px_authfile_parse(buf ? buf : "", len, path, out, err, errlen);
    if (buf) {
        px_wipe(buf, cap);
        px_free(buf);
    }
    return rc;
}

const char *px_authfile_lookup(const px_authfile_t *af, const char *user)
{
    if (!af)
        return NULL;
    size_t lo = 0, hi = af->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(af->e[mid].user, user);
        if (c == 0)
            return af->e[mid].secret;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t px_authfile_count(const px_authfile_t *af)
{
    return af ? af->n : 0;
}
