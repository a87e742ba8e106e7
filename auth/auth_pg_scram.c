/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: the client the proxy uses to log
 * in upstream, the server it offers to its own clients against an auth file, verifier parsing
 * and building, and the SASL mechanism choice. No channel binding: the client sends "n,,", the
 * server accepts "n,," and "y,," and never offers SCRAM-SHA-256-PLUS.
 *
 * Every message from the peer is parsed strictly (attribute order, characters, base64, lengths,
 * nothing trailing) before any key is computed, and proofs and signatures are compared in
 * constant time. Keys, salted passwords and passwords are wiped before their memory is freed.
 * The client answers server-first in three steps (prepare, compute, final) so that the PBKDF2,
 * whose cost the server chooses, can run on a worker thread while the caller's loop goes on.
 * Not here: PostgreSQL message framing, SASLprep itself (auth_pg_saslprep.c), MD5 and digest.
 */
#include "auth_pg.h"

#include "px_alloc.h"
#include "px_b64.h"
#include "px_err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SCRAM_MECH          "SCRAM-SHA-256"
#define SCRAM_MECH_PLUS     "SCRAM-SHA-256-PLUS"
#define SCRAM_KEY_LEN       SHA256_DIGEST_LENGTH
#define SCRAM_RAW_NONCE_LEN 18   /* as libpq and the PostgreSQL server: 24 base64 characters */
#define SCRAM_MAX_NONCE     256  /* characters, for each side's part of the nonce */
#define SCRAM_MAX_SALT      1024 /* decoded bytes; PostgreSQL uses 16 */
/* Whole-message bounds. The largest legitimate messages are well under 1 KiB; the bounds keep
 * what a peer makes us store and hash small. */
#define SCRAM_MAX_MESSAGE     2048
#define SCRAM_VERIFIER_PREFIX "SCRAM-SHA-256$"

/* --------------------------------------------------------------------------------------------
 * Crypto helpers
 */

static bool scram_hmac(const uint8_t *key, size_t keylen, const void *msg, size_t len,
                       uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int outlen = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen) != NULL &&
           outlen == SCRAM_KEY_LEN;
}

static bool scram_sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int outlen = 0;
    return EVP_Digest(in, len, out, &outlen, EVP_sha256(), NULL) == 1 && outlen == SCRAM_KEY_LEN;
}

/* SaltedPassword = Hi(password, salt, i) = PBKDF2-HMAC-SHA-256; then ClientKey, StoredKey and
 * ServerKey (RFC 5802 §3). client_key may be NULL when only the verifier is wanted. */
static bool scram_derive(const char *password, const uint8_t *salt, size_t saltlen, int iterations,
                         uint8_t *client_key, uint8_t stored_key[SCRAM_KEY_LEN],
                         uint8_t server_key[SCRAM_KEY_LEN])
{
    uint8_t salted[SCRAM_KEY_LEN], ck[SCRAM_KEY_LEN];
    bool ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, iterations,
                                EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
              scram_hmac(salted, sizeof(salted), "Client Key", 10, ck) &&
              scram_sha256(ck, sizeof(ck), stored_key) &&
              scram_hmac(salted, sizeof(salted), "Server Key", 10, server_key);
    if (ok && client_key)
        memcpy(client_key, ck, sizeof(ck));
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ck, sizeof(ck));
    return ok;
}

/* SASLprep where it applies, the raw bytes otherwise: libpq and the PostgreSQL server both fall
 * back to the password as given when it is not valid UTF-8 or holds prohibited characters, so
 * the same fallback keeps our keys equal to theirs. */
static int scram_prep_password(const char *password, char **out)
{
    int rc = auth_saslprep(password, out);
    if (rc == AUTH_E_PROTO || rc == AUTH_E_FAILED) {
        *out = px_strdup(password);
        rc = *out ? 0 : UV_ENOMEM;
    }
    return rc;
}

/* A nonce we generate: 18 random bytes in base64. */
static int scram_random_nonce(char out[SCRAM_MAX_NONCE + 1])
{
    uint8_t raw[SCRAM_RAW_NONCE_LEN];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return UV_ENOMEM; /* the DRBG fails only when it cannot allocate or seed */
    px_b64_encode_to(out, raw, sizeof(raw));
    return 0;
}

/* --------------------------------------------------------------------------------------------
 * Parsing. SCRAM messages are ','-separated "a=value" attributes in a fixed order (RFC 5802
 * §7). The reader takes one attribute at a time and insists on the expected letter.
 */

typedef struct scram_rd {
    const char *p;
    size_t n;
    size_t off;
} scram_rd_t;

/* printable = %x21-2B / %x2D-7E: what a nonce may contain. */
static bool scram_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c < 0x21 || c > 0x7E || c == ',')
            return false;
    }
    return true;
}

/* A message is text: no NUL (which would also cut a C string short) and nothing above what a
 * peer may reasonably send. */
static bool scram_text(const uint8_t *p, size_t n)
{
    return n > 0 && n <= SCRAM_MAX_MESSAGE && memchr(p, '\0', n) == NULL;
}

static bool scram_at_end(const scram_rd_t *r)
{
    return r->off == r->n;
}

/* Reads `attr`=value up to the next ',' (consumed) or the end. An empty value is allowed only
 * where the grammar allows it (`may_be_empty`). */
static bool scram_attr(scram_rd_t *r, char attr, bool may_be_empty, const char **val, size_t *vlen)
{
    if (r->n - r->off < 2 || r->p[r->off] != attr || r->p[r->off + 1] != '=')
        return false;
    size_t start = r->off + 2, end = start;
    while (end < r->n && r->p[end] != ',')
        end++;
    if (end == start && !may_be_empty)
        return false;
    *val = r->p + start;
    *vlen = end - start;
    r->off = end;
    if (end < r->n) {
        r->off++; /* the ',' */
        if (r->off == r->n)
            return false; /* a trailing ',' promises an attribute that never comes */
    }
    return true;
}

/* True if the next attribute is `attr` (without consuming it). */
static bool scram_next_is(const scram_rd_t *r, char attr)
{
    return r->n - r->off >= 2 && r->p[r->off] == attr && r->p[r->off + 1] == '=';
}

/* Extensions: "x=value" with a letter for x and a non-empty value. */
static bool scram_extension(scram_rd_t *r)
{
    if (r->n - r->off < 2)
        return false;
    char a = r->p[r->off];
    if (!((a >= 'a' && a <= 'z') || (a >= 'A' && a <= 'Z')))
        return false;
    const char *v;
    size_t vlen;
    return scram_attr(r, a, false, &v, &vlen);
}

/* saslname: any characters but ',' with '=' only in "=2C" or "=3D" (RFC 5802 §5.1). */
static bool scram_saslname(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ',')
            return false;
        if (s[i] == '=') {
            if (n - i < 3 ||
                !((s[i + 1] == '2' && s[i + 2] == 'C') || (s[i + 1] == '3' && s[i + 2] == 'D')))
                return false;
            i += 2;
        }
    }
    return true;
}

/* posit-number = %x31-39 *DIGIT, within the iteration bounds. */
static bool scram_iterations(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 10 || s[0] < '1' || s[0] > '9')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < AUTH_SCRAM_MIN_ITERATIONS || v > AUTH_SCRAM_MAX_ITERATIONS)
        return false;
    *out = (int)v;
    return true;
}

/* --------------------------------------------------------------------------------------------
 * SASL mechanism choice
 */

int auth_sasl_choose(const uint8_t *req, size_t reqlen)
{
    /* px_rd_str would hand an empty (possibly NULL) buffer to memchr: rule it out first. */
    if (!req || reqlen == 0)
        return AUTH_E_PROTO;
    px_rd_t r;
    px_rd_init(&r, req, reqlen);
    bool scram = false;
    for (;;) {
        size_t n;
        const char *name = px_rd_str(&r, &n);
        if (!name)
            return AUTH_E_PROTO; /* a name without its NUL, or no terminating empty name */
        if (n == 0)
            break;
        if (n == strlen(SCRAM_MECH) && memcmp(name, SCRAM_MECH, n) == 0)
            scram = true;
    }
    if (px_rd_left(&r) != 0)
        return AUTH_E_PROTO;
    return scram ? 0 : AUTH_E_MECH;
}

/* --------------------------------------------------------------------------------------------
 * Client
 */

enum scram_client_state {
    SCRAM_CLIENT_NEW,        /* initial not sent yet */
    SCRAM_CLIENT_FIRST_SENT, /* waiting for server-first */
    SCRAM_CLIENT_PREPARED,   /* server-first checked, AuthMessage built: compute next */
    SCRAM_CLIENT_COMPUTED,   /* proof and server signature known: final next */
    SCRAM_CLIENT_FINAL_SENT, /* waiting for server-final */
    SCRAM_CLIENT_VERIFIED,   /* server signature checked */
    SCRAM_CLIENT_FAILED,     /* any error: every later call is refused */
};

struct auth_scram_client {
    enum scram_client_state state;
    char *password; /* prepared; wiped by compute, freed by final (or free) */
    char nonce[SCRAM_MAX_NONCE + 1];
    char *user;           /* escaped SCRAM user name, NULL for "" */
    px_dbuf_t first_bare; /* "n=<user>,r=<nonce>", part of AuthMessage */
    /* From prepare to final. prepare writes them on the caller's thread; compute reads the
     * inputs and writes the outputs, possibly on another thread; final reads the outputs back
     * on the caller's. Fixed arrays rather than allocations, so compute allocates nothing. */
    px_dbuf_t auth_msg; /* AuthMessage; client-final-without-proof starts at wp_start */
    size_t wp_start;
    int iterations;
    size_t saltlen;
    uint8_t salt[SCRAM_MAX_SALT];
    uint8_t proof[SCRAM_KEY_LEN]; /* secret until sent: wiped by final */
    uint8_t server_signature[SCRAM_KEY_LEN];
};

int auth_scram_client_new(const char *password, const char *nonce, auth_scram_client_t **out)
{
    *out = NULL;
    if (!password)
        return UV_EINVAL;
    if (nonce) {
        size_t n = strlen(nonce);
        if (n == 0 || n > SCRAM_MAX_NONCE || !scram_printable(nonce, n))
            return UV_EINVAL;
    }
    auth_scram_client_t *s = px_calloc(1, sizeof(*s));
    if (!s)
        return UV_ENOMEM;
    px_dbuf_init(&s->first_bare, 0);
    px_dbuf_init(&s->auth_msg, 0);
    int rc = scram_prep_password(password, &s->password);
    if (rc == 0) {
        if (nonce)
            memcpy(s->nonce, nonce, strlen(nonce) + 1);
        else
            rc = scram_random_nonce(s->nonce);
    }
    if (rc) {
        auth_scram_client_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int auth_scram_client_set_user(auth_scram_client_t *s, const char *user)
{
    if (s->state != SCRAM_CLIENT_NEW)
        return PX_E_STATE;
    /* Escaping at most triples the length; the bound keeps client-first within our limit. */
    if (!user || strlen(user) > SCRAM_MAX_MESSAGE / 4)
        return UV_EINVAL;
    /* saslname escaping (RFC 5802 §5.1): ',' -> "=2C", '=' -> "=3D". */
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    for (const char *p = user; *p; p++) {
        if (*p == ',')
            px_dbuf_put_cstr(&b, "=2C");
        else if (*p == '=')
            px_dbuf_put_cstr(&b, "=3D");
        else
            px_dbuf_put_u8(&b, (uint8_t)*p);
    }
    char *escaped = px_dbuf_cstr(&b);
    if (!escaped) {
        px_dbuf_free(&b);
        return UV_ENOMEM;
    }
    px_free(s->user);
    s->user = escaped;
    return 0;
}

int auth_scram_client_initial(auth_scram_client_t *s, px_dbuf_t *out)
{
    if (s->state != SCRAM_CLIENT_NEW)
        return PX_E_STATE;
    /* PostgreSQL takes the user from the startup packet, so by default the SCRAM user name is
     * empty, exactly as libpq sends it. */
    px_dbuf_printf(&s->first_bare, "n=%s,r=%s", s->user ? s->user : "", s->nonce);
    if (s->first_bare.failed) {
        s->state = SCRAM_CLIENT_FAILED;
        return UV_ENOMEM;
    }
    px_dbuf_put_str(out, SCRAM_MECH);
    px_dbuf_put_u32(out, (uint32_t)(3 + s->first_bare.len));
    px_dbuf_put(out, "n,,", 3);
    px_dbuf_put(out, s->first_bare.data, s->first_bare.len);
    if (out->failed) {
        s->state = SCRAM_CLIENT_FAILED;
        return UV_ENOMEM;
    }
    s->state = SCRAM_CLIENT_FIRST_SENT;
    return 0;
}

/* server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count
 * ["," extensions]. Like libpq we accept no extensions: PostgreSQL never sends any. */
static int scram_client_parse_first(auth_scram_client_t *s, const uint8_t *msg, size_t n,
                                    const char **rnonce, size_t *rlen, uint8_t *salt,
                                    size_t *saltlen, int *iterations)
{
    if (!scram_text(msg, n))
        return AUTH_E_PROTO;
    scram_rd_t r = {(const char *)msg, n, 0};
    if (scram_next_is(&r, 'm'))
        return AUTH_E_MECH; /* a mandatory extension we cannot know */
    const char *sv, *iv;
    size_t svlen, ivlen;
    if (!scram_attr(&r, 'r', false, rnonce, rlen) || !scram_attr(&r, 's', false, &sv, &svlen) ||
        !scram_attr(&r, 'i', false, &iv, &ivlen) || !scram_at_end(&r))
        return AUTH_E_PROTO;
    /* The server's nonce must extend ours with at least one character of its own. */
    size_t cn = strlen(s->nonce);
    if (*rlen <= cn || *rlen > cn + SCRAM_MAX_NONCE || memcmp(*rnonce, s->nonce, cn) != 0 ||
        !scram_printable(*rnonce, *rlen))
        return AUTH_E_PROTO;
    if (!px_b64_decode(sv, svlen, salt, SCRAM_MAX_SALT, saltlen) || *saltlen == 0)
        return AUTH_E_PROTO;
    if (!scram_iterations(iv, ivlen, iterations))
        return AUTH_E_PROTO;
    return 0;
}

int auth_scram_client_prepare(auth_scram_client_t *s, const uint8_t *server_first, size_t n)
{
    if (s->state != SCRAM_CLIENT_FIRST_SENT)
        return PX_E_STATE;
    const char *rnonce;
    size_t rlen;
    int rc = scram_client_parse_first(s, server_first, n, &rnonce, &rlen, s->salt, &s->saltlen,
                                      &s->iterations);
    if (rc == 0) {
        /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof,
         * where the latter is "c=biws,r=<nonce>" ("biws" is base64 of the "n,," header). */
        px_dbuf_reset(&s->auth_msg);
        px_dbuf_put(&s->auth_msg, s->first_bare.data, s->first_bare.len);
        px_dbuf_put_u8(&s->auth_msg, ',');
        px_dbuf_put(&s->auth_msg, server_first, n);
        px_dbuf_put_u8(&s->auth_msg, ',');
        s->wp_start = s->auth_msg.len;
        px_dbuf_put_cstr(&s->auth_msg, "c=biws,r=");
        px_dbuf_put(&s->auth_msg, rnonce, rlen);
        if (s->auth_msg.failed)
            rc = UV_ENOMEM;
    }
    s->state = rc ? SCRAM_CLIENT_FAILED : SCRAM_CLIENT_PREPARED;
    return rc;
}

int auth_scram_client_compute(auth_scram_client_t *s)
{
    if (s->state != SCRAM_CLIENT_PREPARED)
        return PX_E_STATE;
    uint8_t client_key[SCRAM_KEY_LEN], stored_key[SCRAM_KEY_LEN], server_key[SCRAM_KEY_LEN];
    uint8_t client_sig[SCRAM_KEY_LEN];
    int rc = 0;
    if (!scram_derive(s->password, s->salt, s->saltlen, s->iterations, client_key, stored_key,
                      server_key) ||
        !scram_hmac(stored_key, sizeof(stored_key), s->auth_msg.data, s->auth_msg.len,
                    client_sig) ||
        !scram_hmac(server_key, sizeof(server_key), s->auth_msg.data, s->auth_msg.len,
                    s->server_signature)) {
        rc = UV_ENOMEM; /* OpenSSL fails here only when it cannot allocate */
    } else {
        for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
            s->proof[i] = client_key[i] ^ client_sig[i];
    }
    /* The password is not needed any more. Wiped here, as soon as possible; its memory is
     * freed on the caller's thread (final or free), so this step never touches the allocator. */
    px_wipe(s->password, strlen(s->password));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored_key, sizeof(stored_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    OPENSSL_cleanse(client_sig, sizeof(client_sig));
    s->state = rc ? SCRAM_CLIENT_FAILED : SCRAM_CLIENT_COMPUTED;
    return rc;
}

int auth_scram_client_final(auth_scram_client_t *s, px_dbuf_t *out)
{
    if (s->state != SCRAM_CLIENT_COMPUTED)
        return PX_E_STATE;
    px_dbuf_put(out, s->auth_msg.data + s->wp_start, s->auth_msg.len - s->wp_start);
    px_dbuf_put_cstr(out, ",p=");
    px_b64_encode(out, s->proof, sizeof(s->proof));
    int rc = out->failed ? UV_ENOMEM : 0;
    OPENSSL_cleanse(s->proof, sizeof(s->proof));
    px_free_secret(s->password);
    s->password = NULL;
    px_dbuf_free(&s->auth_msg);
    s->state = rc ? SCRAM_CLIENT_FAILED : SCRAM_CLIENT_FINAL_SENT;
    return rc;
}

int auth_scram_client_continue(auth_scram_client_t *s, const uint8_t *server_first, size_t n,
                               px_dbuf_t *out)
{
    int rc = auth_scram_client_prepare(s, server_first, n);
    if (rc == 0)
        rc = auth_scram_client_compute(s);
    if (rc == 0)
        rc = auth_scram_client_final(s, out);
    return rc;
}

int auth_scram_client_iterations(const auth_scram_client_t *s)
{
    switch (s->state) {
    case SCRAM_CLIENT_PREPARED:
    case SCRAM_CLIENT_COMPUTED:
    case SCRAM_CLIENT_FINAL_SENT:
    case SCRAM_CLIENT_VERIFIED:
        return s->iterations;
    default:
        return 0;
    }
}

int auth_scram_client_finish(auth_scram_client_t *s, const uint8_t *server_final, size_t n)
{
    if (s->state != SCRAM_CLIENT_FINAL_SENT)
        return PX_E_STATE;
    s->state = SCRAM_CLIENT_FAILED; /* until proven otherwise */
    if (!scram_text(server_final, n))
        return AUTH_E_PROTO;
    scram_rd_t r = {(const char *)server_final, n, 0};
    const char *v;
    size_t vlen;
    if (scram_next_is(&r, 'e'))
        return AUTH_E_FAILED;       /* server-error: the server refused the proof */
    uint8_t sig[SCRAM_KEY_LEN + 3]; /* room to notice an over-long signature */
    size_t siglen;
    if (!scram_attr(&r, 'v', false, &v, &vlen) || !scram_at_end(&r) ||
        !px_b64_decode(v, vlen, sig, sizeof(sig), &siglen) || siglen != SCRAM_KEY_LEN)
        return AUTH_E_PROTO;
    if (!px_ct_equal(sig, s->server_signature, SCRAM_KEY_LEN))
        return AUTH_E_VERIFY;
    s->state = SCRAM_CLIENT_VERIFIED;
    return 0;
}

bool auth_scram_client_verified(const auth_scram_client_t *s)
{
    return s && s->state == SCRAM_CLIENT_VERIFIED;
}

void auth_scram_client_free(auth_scram_client_t *s)
{
    if (!s)
        return;
    px_free_secret(s->password);
    px_free(s->user);
    px_dbuf_free(&s->first_bare);
    px_dbuf_free(&s->auth_msg);
    OPENSSL_cleanse(s, sizeof(*s)); /* salt, proof, server signature */
    px_free(s);
}

/* --------------------------------------------------------------------------------------------
 * Verifiers
 */

typedef struct scram_verifier {
    int iterations;
    uint8_t salt[SCRAM_MAX_SALT];
    size_t saltlen;
    uint8_t stored_key[SCRAM_KEY_LEN];
    uint8_t server_key[SCRAM_KEY_LEN];
} scram_verifier_t;

/* "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>", every part checked. */
static bool scram_parse_verifier(const char *v, scram_verifier_t *out)
{
    size_t plen = strlen(SCRAM_VERIFIER_PREFIX);
    if (strncmp(v, SCRAM_VERIFIER_PREFIX, plen) != 0)
        return false;
    const char *it = v + plen;
    const char *colon1 = strchr(it, ':');
    const char *dollar = colon1 ? strchr(colon1 + 1, '$') : NULL;
    const char *colon2 = dollar ? strchr(dollar + 1, ':') : NULL;
    if (!colon2 || strchr(colon2 + 1, ':') || strchr(colon2 + 1, '$'))
        return false;
    size_t keylen;
    uint8_t key[SCRAM_KEY_LEN + 3];
    if (!scram_iterations(it, (size_t)(colon1 - it), &out->iterations))
        return false;
    if (!px_b64_decode(colon1 + 1, (size_t)(dollar - colon1 - 1), out->salt, sizeof(out->salt),
                       &out->saltlen) ||
        out->saltlen == 0)
        return false;
    if (!px_b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), key, sizeof(key), &keylen) ||
        keylen != SCRAM_KEY_LEN)
        return false;
    memcpy(out->stored_key, key, SCRAM_KEY_LEN);
    if (!px_b64_decode(colon2 + 1, strlen(colon2 + 1), key, sizeof(key), &keylen) ||
        keylen != SCRAM_KEY_LEN)
        return false;
    memcpy(out->server_key, key, SCRAM_KEY_LEN);
    OPENSSL_cleanse(key, sizeof(key));
    return true;
}

static int scram_verifier_from_password(const char *password, const uint8_t *salt, size_t saltlen,
                                        int iterations, scram_verifier_t *v)
{
    if (saltlen == 0 || saltlen > SCRAM_MAX_SALT || iterations < AUTH_SCRAM_MIN_ITERATIONS ||
        iterations > AUTH_SCRAM_MAX_ITERATIONS)
        return UV_EINVAL;
    v->iterations = iterations;
    v->saltlen = saltlen;
    if (salt)
        memcpy(v->salt, salt, saltlen);
    else if (RAND_bytes(v->salt, (int)saltlen) != 1)
        return UV_ENOMEM;
    char *prepared;
    int rc = scram_prep_password(password, &prepared);
    if (rc)
        return rc;
    if (!scram_derive(prepared, v->salt, v->saltlen, iterations, NULL, v->stored_key,
                      v->server_key))
        rc = UV_ENOMEM;
    px_free_secret(prepared);
    return rc;
}

int auth_scram_make_verifier(const char *password, const uint8_t *salt, size_t saltlen,
                             int iterations, px_dbuf_t *out)
{
    if (!password)
        return UV_EINVAL;
    if (!salt)
        saltlen = AUTH_SCRAM_DEFAULT_SALT_LEN;
    scram_verifier_t *v = px_calloc(1, sizeof(*v));
    if (!v)
        return UV_ENOMEM;
    int rc = scram_verifier_from_password(password, salt, saltlen, iterations, v);
    if (rc == 0) {
        px_dbuf_printf(out, SCRAM_VERIFIER_PREFIX "%d:", v->iterations);
        px_b64_encode(out, v->salt, v->saltlen);
        px_dbuf_put_u8(out, '$');
        px_b64_encode(out, v->stored_key, SCRAM_KEY_LEN);
        px_dbuf_put_u8(out, ':');
        px_b64_encode(out, v->server_key, SCRAM_KEY_LEN);
        if (out->failed)
            rc = UV_ENOMEM;
    }
    OPENSSL_cleanse(v, sizeof(*v));
    px_free(v);
    return rc;
}

/* --------------------------------------------------------------------------------------------
 * Server
 */

enum scram_server_state {
    SCRAM_SERVER_NEW,        /* waiting for SASLInitialResponse */
    SCRAM_SERVER_FIRST_SENT, /* waiting for client-final */
    SCRAM_SERVER_DONE,       /* proof verified, server-final produced */
    SCRAM_SERVER_FAILED,
};

struct auth_scram_server {
    enum scram_server_state state;
    bool mock; /* unknown user: go through the motions, then fail */
    scram_verifier_t v;
    char nonce[SCRAM_MAX_NONCE + 1]; /* our part */
    char gs2[4];                     /* "n,," or "y,," as the client sent it */
    px_dbuf_t first_bare;            /* client-first-message-bare */
    px_dbuf_t server_first;
    size_t full_nonce_len; /* the nonce is the "r=" value at the start of server_first */
};

int auth_scram_server_new(const char *verifier_or_password, const char *nonce,
                          auth_scram_server_t **out)
{
    *out = NULL;
    if (nonce) {
        size_t n = strlen(nonce);
        if (n == 0 || n > SCRAM_MAX_NONCE || !scram_printable(nonce, n))
            return UV_EINVAL;
    }
    auth_scram_server_t *s = px_calloc(1, sizeof(*s));
    if (!s)
        return UV_ENOMEM;
    px_dbuf_init(&s->first_bare, SCRAM_MAX_MESSAGE);
    px_dbuf_init(&s->server_first, 0);
    int rc = 0;
    if (!verifier_or_password) {
        /* Mock: a random verifier nobody can match, with PostgreSQL's default parameters so
         * the exchange looks like any other. */
        s->mock = true;
        s->v.iterations = AUTH_SCRAM_DEFAULT_ITERATIONS;
        s->v.saltlen = AUTH_SCRAM_DEFAULT_SALT_LEN;
        if (RAND_bytes(s->v.salt, (int)s->v.saltlen) != 1 ||
            RAND_bytes(s->v.stored_key, SCRAM_KEY_LEN) != 1 ||
            RAND_bytes(s->v.server_key, SCRAM_KEY_LEN) != 1)
            rc = UV_ENOMEM;
    } else if (strncmp(verifier_or_password, SCRAM_VERIFIER_PREFIX,
                       strlen(SCRAM_VERIFIER_PREFIX)) == 0) {
        if (!scram_parse_verifier(verifier_or_password, &s->v))
            rc = UV_EINVAL;
    } else {
        rc = scram_verifier_from_password(verifier_or_password, NULL, AUTH_SCRAM_DEFAULT_SALT_LEN,
                                          AUTH_SCRAM_DEFAULT_ITERATIONS, &s->v);
    }
    if (rc == 0) {
        if (nonce)
            memcpy(s->nonce, nonce, strlen(nonce) + 1);
        else
            rc = scram_random_nonce(s->nonce);
    }
    if (rc) {
        auth_scram_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/*
 * client-first-message = gs2-header client-first-message-bare, with
 *   gs2-header = gs2-cbind-flag "," [authzid] ","
 *   client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions].
 * On success s->gs2, s->first_bare and the client nonce (*cnonce) are set.
 */
static int scram_server_parse_first(auth_scram_server_t *s, const uint8_t *msg, size_t n,
                                    const char **cnonce, size_t *cnlen)
{
    if (!scram_text(msg, n))
        return AUTH_E_PROTO;
    const char *m = (const char *)msg;
    /* gs2-cbind-flag: "p=<name>" asks for channel binding we never offered. */
    if (n >= 2 && m[0] == 'p' && m[1] == '=')
        return AUTH_E_MECH;
    if (n < 3 || (m[0] != 'n' && m[0] != 'y') || m[1] != ',')
        return AUTH_E_PROTO;
    /* authzid: PostgreSQL does not support acting as another user, and neither do we. */
    if (m[2] == 'a' && n >= 4 && m[3] == '=')
        return AUTH_E_MECH;
    if (m[2] != ',')
        return AUTH_E_PROTO;
    memcpy(s->gs2, m, 3);
    s->gs2[3] = '\0';

    scram_rd_t r = {m + 3, n - 3, 0};
    if (scram_next_is(&r, 'm'))
        return AUTH_E_MECH;
    const char *user;
    size_t ulen;
    /* The user name is ignored (PostgreSQL uses the startup packet's) but must be well
     * formed; clients send it empty or as the login name. */
    if (!scram_attr(&r, 'n', true, &user, &ulen) || !scram_saslname(user, ulen))
        return AUTH_E_PROTO;
    if (!scram_attr(&r, 'r', false, cnonce, cnlen) || *cnlen > SCRAM_MAX_NONCE ||
        !scram_printable(*cnonce, *cnlen))
        return AUTH_E_PROTO;
    while (!scram_at_end(&r))
        if (!scram_extension(&r))
            return AUTH_E_PROTO;
    px_dbuf_put(&s->first_bare, m + 3, n - 3);
    return s->first_bare.failed ? UV_ENOMEM : 0;
}

int auth_scram_server_first(auth_scram_server_t *s, const uint8_t *initial, size_t n,
                            px_dbuf_t *out)
{
    if (s->state != SCRAM_SERVER_NEW)
        return PX_E_STATE;
    s->state = SCRAM_SERVER_FAILED;
    if (!initial || n == 0)
        return AUTH_E_PROTO;
    /* SASLInitialResponse: String mechanism, Int32 length (-1: none), bytes. */
    px_rd_t r;
    px_rd_init(&r, initial, n);
    size_t mlen;
    const char *mech = px_rd_str(&r, &mlen);
    uint32_t len = px_rd_u32(&r);
    if (!mech || r.err)
        return AUTH_E_PROTO;
    if (mlen != strlen(SCRAM_MECH) || memcmp(mech, SCRAM_MECH, mlen) != 0)
        return AUTH_E_MECH; /* SCRAM-SHA-256-PLUS or anything else we did not offer */
    if (len == UINT32_MAX || len != px_rd_left(&r))
        return AUTH_E_PROTO;
    const uint8_t *data = px_rd_bytes(&r, len);
    const char *cnonce;
    size_t cnlen;
    int rc = scram_server_parse_first(s, data, len, &cnonce, &cnlen);
    if (rc)
        return rc;

    /* server-first-message = "r=" c-nonce s-nonce ",s=" salt ",i=" iterations */
    px_dbuf_put_cstr(&s->server_first, "r=");
    px_dbuf_put(&s->server_first, cnonce, cnlen);
    px_dbuf_put_cstr(&s->server_first, s->nonce);
    s->full_nonce_len = cnlen + strlen(s->nonce);
    px_dbuf_put_cstr(&s->server_first, ",s=");
    px_b64_encode(&s->server_first, s->v.salt, s->v.saltlen);
    px_dbuf_printf(&s->server_first, ",i=%d", s->v.iterations);
    px_dbuf_put(out, s->server_first.data, s->server_first.len);
    if (s->server_first.failed || out->failed)
        return UV_ENOMEM;
    s->state = SCRAM_SERVER_FIRST_SENT;
    return 0;
}

/*
 * client-final-message = "c=" base64(gs2-header) ",r=" nonce ["," extensions] ",p=" proof.
 * *without_proof_len is the length of everything before ",p=" (part of AuthMessage).
 */
static int scram_server_parse_final(auth_scram_server_t *s, const uint8_t *msg, size_t n,
                                    uint8_t proof[SCRAM_KEY_LEN], size_t *without_proof_len)
{
    if (!scram_text(msg, n))
        return AUTH_E_PROTO;
    scram_rd_t r = {(const char *)msg, n, 0};
    const char *c, *nonce, *p;
    size_t clen, noncelen, plen, cblen;
    uint8_t cb[8];
    if (!scram_attr(&r, 'c', false, &c, &clen) || !px_b64_decode(c, clen, cb, sizeof(cb), &cblen))
        return AUTH_E_PROTO;
    /* Channel binding data must repeat the header of the first message exactly; a mismatch
     * means the first message was altered in transit. */
    if (cblen != 3 || memcmp(cb, s->gs2, 3) != 0)
        return AUTH_E_PROTO;
    if (!scram_attr(&r, 'r', false, &nonce, &noncelen) || noncelen != s->full_nonce_len ||
        memcmp(nonce, s->server_first.data + 2, noncelen) != 0)
        return AUTH_E_PROTO;
    while (!scram_next_is(&r, 'p')) {
        if (scram_at_end(&r) || !scram_extension(&r))
            return AUTH_E_PROTO;
    }
    *without_proof_len = r.off - 1; /* up to, not including, the ',' before "p=" */
    uint8_t buf[SCRAM_KEY_LEN + 3];
    size_t prooflen;
    if (!scram_attr(&r, 'p', false, &p, &plen) || !scram_at_end(&r) ||
        !px_b64_decode(p, plen, buf, sizeof(buf), &prooflen) || prooflen != SCRAM_KEY_LEN)
        return AUTH_E_PROTO;
    memcpy(proof, buf, SCRAM_KEY_LEN);
    return 0;
}

int auth_scram_server_final(auth_scram_server_t *s, const uint8_t *client_final, size_t n,
                            px_dbuf_t *out)
{
    if (s->state != SCRAM_SERVER_FIRST_SENT)
        return PX_E_STATE;
    s->state = SCRAM_SERVER_FAILED;
    uint8_t proof[SCRAM_KEY_LEN], client_sig[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
    uint8_t stored[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
    size_t wplen = 0;
    px_dbuf_t auth_msg;
    px_dbuf_init(&auth_msg, 0);
    int rc = scram_server_parse_final(s, client_final, n, proof, &wplen);
    if (rc)
        goto out;

    px_dbuf_put(&auth_msg, s->first_bare.data, s->first_bare.len);
    px_dbuf_put_u8(&auth_msg, ',');
    px_dbuf_put(&auth_msg, s->server_first.data, s->server_first.len);
    px_dbuf_put_u8(&auth_msg, ',');
    px_dbuf_put(&auth_msg, client_final, wplen);
    if (auth_msg.failed) {
        rc = UV_ENOMEM;
        goto out;
    }
    /* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); it is right iff H(ClientKey) is the
     * StoredKey. The comparison is constant-time and also runs for the mock verifier. */
    if (!scram_hmac(s->v.stored_key, SCRAM_KEY_LEN, auth_msg.data, auth_msg.len, client_sig)) {
        rc = UV_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
        client_key[i] = proof[i] ^ client_sig[i];
    if (!scram_sha256(client_key, sizeof(client_key), stored)) {
        rc = UV_ENOMEM;
        goto out;
    }
    if (!px_ct_equal(stored, s->v.stored_key, SCRAM_KEY_LEN) || s->mock) {
        rc = AUTH_E_FAILED;
        goto out;
    }
    if (!scram_hmac(s->v.server_key, SCRAM_KEY_LEN, auth_msg.data, auth_msg.len, server_sig)) {
        rc = UV_ENOMEM;
        goto out;
    }
    px_dbuf_put_cstr(out, "v=");
    px_b64_encode(out, server_sig, sizeof(server_sig));
    if (out->failed) {
        rc = UV_ENOMEM;
        goto out;
    }
    s->state = SCRAM_SERVER_DONE;

out:
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(client_sig, sizeof(client_sig));
    OPENSSL_cleanse(stored, sizeof(stored));
    OPENSSL_cleanse(server_sig, sizeof(server_sig));
    OPENSSL_cleanse(proof, sizeof(proof));
    px_dbuf_free(&auth_msg);
    return rc;
}

void auth_scram_server_free(auth_scram_server_t *s)
{
    if (!s)
        return;
    px_dbuf_free(&s->first_bare);
    px_dbuf_free(&s->server_first);
    OPENSSL_cleanse(s, sizeof(*s)); /* the verifier keys */
    px_free(s);
}
