/*
 * Client auth file (pgbouncer's userlist.txt format, see px_authfile.h): a small pure parser
 * over a byte range (quoted fields with "" escapes, comments, a bounded field length and file
 * size), the one-time derivation of SCRAM verifiers from plaintext entries, and the choice of
 * verifier for a login, including the HMAC-derived mock verifier for unknown users.
 *
 * Entries are kept in a sorted array for binary search; the file is read once per (re)load,
 * never on a connection path, and PBKDF2 runs only in px_authfile_derive. Nothing here logs;
 * errors name the file and line only, never a field's contents, so a secret cannot end up in a
 * message.
 */
#include "px_authfile.h"

#include "auth_pg.h"
#include "px_alloc.h"
#include "px_b64.h"
#include "px_buf.h"
#include "px_err.h"

#include <assert.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define VERIFIER_PREFIX "SCRAM-SHA-256$"
#define MAC_LEN         32 /* HMAC-SHA-256 output */

typedef struct af_entry {
    char *user;
    char *verifier; /* SCRAM verifier, from the file or derived; wiped on free */
    char *password; /* plaintext until derived, then NULL; wiped on free */
    int line;       /* for derive's error messages */
} af_entry_t;

struct px_authfile {
    af_entry_t *e;
    size_t n, cap;
    size_t pending; /* entries with a password and no verifier yet */
    char *name;     /* the file's name, for derive's error messages */
};

static void entry_clear(af_entry_t *e)
{
    px_free(e->user);
    px_free_secret(e->verifier);
    px_free_secret(e->password);
    e->user = e->verifier = e->password = NULL;
}

void px_authfile_free(px_authfile_t *af)
{
    if (!af)
        return;
    for (size_t i = 0; i < af->n; i++)
        entry_clear(&af->e[i]);
    px_free(af->e);
    px_free(af->name);
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

static bool is_verifier(const char *s)
{
    return strncmp(s, VERIFIER_PREFIX, strlen(VERIFIER_PREFIX)) == 0;
}

/* A verifier from the file is checked now, so that a typo fails the (re)load with a line number
 * instead of failing that one user's logins later with an error that tells a peer the user
 * exists. auth_scram_server_new only parses a string with the prefix (no PBKDF2); the fixed
 * nonce spares the random generator. */
static int check_verifier(const char *v)
{
    auth_scram_server_t *s = NULL;
    int rc = auth_scram_server_new(v, "check", &s);
    auth_scram_server_free(s);
    return rc;
}

/* Which error a secret field earns, or NULL when it is acceptable. */
static const char *secret_problem(const char *secret, int *rc)
{
    *rc = CFG_E_PARSE;
    if (secret[0] == '\0')
        return "empty password (PostgreSQL clients cannot log in with one)";
    if (strncmp(secret, "md5", 3) == 0 && strlen(secret) == 35)
        return "an MD5 secret cannot be used for scram-sha-256 client authentication (store the "
               "password or a SCRAM verifier)";
    if (is_verifier(secret)) {
        int vrc = check_verifier(secret);
        if (vrc == UV_ENOMEM) {
            *rc = UV_ENOMEM;
            return "out of memory";
        }
        if (vrc != 0)
            return "malformed SCRAM-SHA-256 verifier (expected "
                   "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, iterations "
                   "1-10000000)";
    }
    return NULL;
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
    if (!af || !user || !secret || !(af->name = px_strdup(name)))
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
        why = secret_problem(secret, &rc);
        if (why) {
            if (rc == CFG_E_PARSE)
                snprintf(err, errlen, "%s:%d: %s", name, line, why);
            goto fail;
        }
        rc = UV_ENOMEM;
        if (af->n == af->cap) {
            size_t nc = af->cap ? af->cap * 2 : 16;
            af_entry_t *ne = px_realloc(af->e, nc * sizeof(*ne));
            if (!ne)
                goto fail;
            af->e = ne;
            af->cap = nc;
        }
        af_entry_t *e = &af->e[af->n];
        memset(e, 0, sizeof(*e));
        e->line = line;
        e->user = px_strdup(user);
        bool plain = !is_verifier(secret);
        char *copy = px_strdup(secret);
        if (plain)
            e->password = copy;
        else
            e->verifier = copy;
        if (!e->user || !copy) {
            entry_clear(e);
            goto fail;
        }
        af->n++;
        af->pending += plain;
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

/* HMAC-SHA-256; false only when OpenSSL cannot allocate. */
static bool mac(const uint8_t *key, size_t keylen, const void *msg, size_t len,
                uint8_t out[MAC_LEN])
{
    unsigned int olen = MAC_LEN;
    return HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &olen) != NULL && olen == MAC_LEN;
}

/*
 * Per-user key: HMAC(key, user). Everything derived for a user is an HMAC under this key with a
 * distinct label (or, for the salt of a password, under a labelled subkey), so no two derived
 * values can coincide whatever the user name or password holds.
 */
static bool user_key(const uint8_t *key, size_t keylen, const char *user, uint8_t out[MAC_LEN])
{
    return mac(key, keylen, user, strlen(user), out);
}

static bool labelled(const uint8_t uk[MAC_LEN], const char *label, uint8_t out[MAC_LEN])
{
    return mac(uk, MAC_LEN, label, strlen(label), out);
}

/* Keyed salt for a plaintext entry: HMAC(HMAC(user key, "password-salt"), password), the first
 * AUTH_SCRAM_DEFAULT_SALT_LEN bytes. It depends on the password so that a changed password gets
 * a new salt, and on the secret key so that it says nothing about the password. */
static bool keyed_salt(const uint8_t *key, size_t keylen, const char *user, const char *password,
                       uint8_t salt[AUTH_SCRAM_DEFAULT_SALT_LEN])
{
    uint8_t uk[MAC_LEN], sk[MAC_LEN], full[MAC_LEN];
    bool ok = user_key(key, keylen, user, uk) && labelled(uk, "password-salt", sk) &&
              mac(sk, sizeof(sk), password, strlen(password), full);
    if (ok)
        memcpy(salt, full, AUTH_SCRAM_DEFAULT_SALT_LEN);
    px_wipe(uk, sizeof(uk));
    px_wipe(sk, sizeof(sk));
    px_wipe(full, sizeof(full));
    return ok;
}

int px_authfile_derive(px_authfile_t *af, const uint8_t *key, size_t keylen, char *err,
                       size_t errlen)
{
    if (key && keylen < PX_AUTHFILE_KEY_MIN) {
        snprintf(err, errlen, "%s: key for password salts too short", af->name);
        return UV_EINVAL;
    }
    static_assert(AUTH_SCRAM_DEFAULT_SALT_LEN <= MAC_LEN, "salt is a truncated HMAC");
    for (size_t i = 0; i < af->n && af->pending > 0; i++) {
        af_entry_t *e = &af->e[i];
        if (!e->password)
            continue;
        uint8_t salt[AUTH_SCRAM_DEFAULT_SALT_LEN];
        if (key && !keyed_salt(key, keylen, e->user, e->password, salt)) {
            snprintf(err, errlen, "%s: out of memory", af->name);
            return UV_ENOMEM;
        }
        px_dbuf_t v;
        px_dbuf_init_secret(&v, PX_AUTHFILE_FIELD_MAX);
        int rc = auth_scram_make_verifier(e->password, key ? salt : NULL, sizeof(salt),
                                          AUTH_SCRAM_DEFAULT_ITERATIONS, &v);
        px_wipe(salt, sizeof(salt));
        if (rc == 0 && !px_dbuf_cstr(&v))
            rc = UV_ENOMEM;
        if (rc) {
            px_dbuf_free_secret(&v);
            if (rc == UV_ENOMEM)
                snprintf(err, errlen, "%s: out of memory", af->name);
            else
                snprintf(err, errlen, "%s:%d: cannot make a SCRAM verifier from the password: %s",
                         af->name, e->line, px_strerror(rc));
            return rc == UV_ENOMEM ? UV_ENOMEM : CFG_E_PARSE;
        }
        size_t len;
        e->verifier = (char *)px_dbuf_steal(&v, &len);
        px_free_secret(e->password);
        e->password = NULL;
        af->pending--;
    }
    return 0;
}

int px_authfile_load_keyed(const char *path, const uint8_t *key, size_t keylen, px_authfile_t **out,
                           char *err, size_t errlen)
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
            /* Copy and wipe rather than realloc: the old block holds passwords. */
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
    px_authfile_t *af = NULL;
    if (rc == 0)
        rc = px_authfile_parse(buf ? buf : "", len, path, &af, err, errlen);
    if (buf) {
        px_wipe(buf, cap);
        px_free(buf);
    }
    if (rc == 0)
        rc = px_authfile_derive(af, key, keylen, err, errlen);
    if (rc) {
        px_authfile_free(af);
        return rc;
    }
    *out = af;
    return 0;
}

int px_authfile_load(const char *path, px_authfile_t **out, char *err, size_t errlen)
{
    return px_authfile_load_keyed(path, NULL, 0, out, err, errlen);
}

static const af_entry_t *find(const px_authfile_t *af, const char *user)
{
    if (!af)
        return NULL;
    size_t lo = 0, hi = af->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(af->e[mid].user, user);
        if (c == 0)
            return &af->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *px_authfile_lookup(const px_authfile_t *af, const char *user)
{
    const af_entry_t *e = find(af, user);
    return e ? e->verifier : NULL;
}

int px_authfile_mock_verifier(const uint8_t *key, size_t keylen, const char *user, char *out,
                              size_t outcap)
{
    if (!key || keylen < PX_AUTHFILE_KEY_MIN || !out || outcap < PX_AUTHFILE_MOCK_MAX)
        return UV_EINVAL;
    out[0] = '\0';
    /* StoredKey and ServerKey need not be secret from the peer's point of view (the exchange
     * fails whatever the proof), but deriving them too keeps the object identical on every
     * attempt, and nobody can know a ClientKey whose hash is an HMAC output. */
    uint8_t uk[MAC_LEN], salt[MAC_LEN], stored[MAC_LEN], server[MAC_LEN];
    int rc = UV_ENOMEM;
    if (user_key(key, keylen, user, uk) && labelled(uk, "mock-salt", salt) &&
        labelled(uk, "mock-stored-key", stored) && labelled(uk, "mock-server-key", server)) {
        char s64[48], st64[48], sv64[48];
        static_assert(sizeof(s64) > 4 * ((AUTH_SCRAM_DEFAULT_SALT_LEN + 2) / 3), "salt b64");
        static_assert(sizeof(st64) > 4 * ((MAC_LEN + 2) / 3), "key b64");
        px_b64_encode_to(s64, salt, AUTH_SCRAM_DEFAULT_SALT_LEN);
        px_b64_encode_to(st64, stored, MAC_LEN);
        px_b64_encode_to(sv64, server, MAC_LEN);
        int n = snprintf(out, outcap, VERIFIER_PREFIX "%d:%s$%s:%s", AUTH_SCRAM_DEFAULT_ITERATIONS,
                         s64, st64, sv64);
        rc = n > 0 && (size_t)n < outcap ? 0 : UV_EINVAL;
        px_wipe(st64, sizeof(st64));
        px_wipe(sv64, sizeof(sv64));
    }
    px_wipe(uk, sizeof(uk));
    px_wipe(stored, sizeof(stored));
    px_wipe(server, sizeof(server));
    if (rc)
        px_wipe(out, outcap);
    return rc;
}

const char *px_authfile_scram_verifier(const px_authfile_t *af, const uint8_t *key, size_t keylen,
                                       const char *user, char *mock, size_t mockcap, bool *known)
{
    const af_entry_t *e = find(af, user);
    *known = e != NULL;
    if (e)
        return e->verifier; /* NULL only for an entry px_authfile_derive never saw */
    /* Unknown user: the mock is computed on every attempt rather than cached, so a flood of
     * made-up names costs four HMACs each and no memory. */
    if (px_authfile_mock_verifier(key, keylen, user, mock, mockcap) != 0)
        return NULL;
    return mock;
}

size_t px_authfile_count(const px_authfile_t *af)
{
    return af ? af->n : 0;
}

size_t px_authfile_pending(const px_authfile_t *af)
{
    return af ? af->pending : 0;
}
