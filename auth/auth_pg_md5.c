/*
 * The two hash-only password answers: PostgreSQL's MD5 (AuthenticationMD5Password, code 5) and
 * Redshift's SHA-256 "extensible digest" (code 13, reference/redshift-aws.md §1.3), plus the MD5
 * stored-secret form. Pure functions over bytes through OpenSSL's EVP interface; no framing, no
 * I/O. Intermediate hashes that are password-equivalent (the inner MD5, the digest's d1) are
 * wiped. SCRAM is in auth_pg_scram.c.
 */
#include "auth_pg.h"

#include "px_err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* Bounds on what a server may send in a digest request. Redshift sends a 32-byte salt and a
 * short nonce; anything near these limits is an attack or a bug, not a login. */
#define DIGEST_MAX_SALT         1024
#define DIGEST_MAX_NONCE        1024
#define DIGEST_MAX_CLIENT_NONCE 20 /* digits of a uint64; ms since 1970 need 13 */

/* Hash of up to three parts with one EVP context; false when OpenSSL fails (allocation, or the
 * algorithm unavailable, e.g. MD5 under a FIPS provider). */
static bool pg_hash3(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                     const void *c, size_t clen, uint8_t *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return false;
    unsigned int len = 0;
    bool ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
              EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestUpdate(ctx, c, clen) == 1 &&
              EVP_DigestFinal_ex(ctx, out, &len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* out = "md5" + hex(md5(a || b)), 35 characters and a NUL. */
static int pg_md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[36])
{
    uint8_t dig[16];
    if (!pg_hash3(EVP_md5(), a, alen, b, blen, "", 0, dig)) {
        out[0] = '\0';
        return UV_ENOMEM;
    }
    memcpy(out, "md5", 3);
    px_hex_encode(dig, sizeof(dig), out + 3);
    OPENSSL_cleanse(dig, sizeof(dig));
    return 0;
}

int auth_md5_secret(const char *user, const char *password, char out[36])
{
    if (!user || !password) {
        out[0] = '\0';
        return UV_EINVAL;
    }
    return pg_md5_hex(password, strlen(password), user, strlen(user), out);
}

int auth_md5_response(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
    /* The inner hash is what pg_authid stores: knowing it is enough to log in, so it is as
     * secret as the password and wiped like it. */
    char inner[36];
    int rc = auth_md5_secret(user, password, inner);
    if (rc == 0)
        rc = pg_md5_hex(inner + 3, 32, salt, 4, out);
    else
        out[0] = '\0';
    OPENSSL_cleanse(inner, sizeof(inner));
    return rc;
}

/* A length field of the digest request: Int32, non-negative, within `max` and within what is
 * left of the message. */
static bool digest_len(px_rd_t *r, size_t max, size_t *len)
{
    uint32_t v = px_rd_u32(r);
    if (r->err || v > max || v > px_rd_left(r))
        return false;
    *len = v;
    return true;
}

int auth_digest_response(const uint8_t *req, size_t reqlen, const char *password,
                         const char *client_nonce, px_dbuf_t *out)
{
    char nowbuf[24];
    if (!password)
        return UV_EINVAL;
    if (!client_nonce) {
        snprintf(nowbuf, sizeof(nowbuf), "%lld", (long long)px_now_unix_ms());
        client_nonce = nowbuf;
    }
    size_t cnlen = strlen(client_nonce);
    if (cnlen == 0 || cnlen > DIGEST_MAX_CLIENT_NONCE ||
        strspn(client_nonce, "0123456789") != cnlen)
        return UV_EINVAL;

    /* Parse everything before computing anything: algo first (other algorithms may lay the
     * rest out differently, so their bytes are not judged), then exactly salt and nonce. */
    px_rd_t r;
    px_rd_init(&r, req, reqlen);
    uint32_t algo = px_rd_u32(&r);
    if (r.err)
        return AUTH_E_PROTO;
    if (algo != 0)
        return AUTH_E_MECH; /* 1 = SCRYPT, 2 = ARGON2 in the JDBC driver; neither supported */
    size_t saltlen, noncelen;
    if (!digest_len(&r, DIGEST_MAX_SALT, &saltlen))
        return AUTH_E_PROTO;
    const uint8_t *salt = px_rd_bytes(&r, saltlen);
    if (!digest_len(&r, DIGEST_MAX_NONCE, &noncelen))
        return AUTH_E_PROTO;
    const uint8_t *nonce = px_rd_bytes(&r, noncelen);
    if (r.err || px_rd_left(&r) != 0)
        return AUTH_E_PROTO;

    /* d1 = SHA256(password || salt) is what Redshift stores for a 'sha256|' user: wipe it. */
    uint8_t d1[32], d2[32];
    int rc = 0;
    if (!pg_hash3(EVP_sha256(), password, strlen(password), salt, saltlen, "", 0, d1) ||
        !pg_hash3(EVP_sha256(), d1, sizeof(d1), nonce, noncelen, client_nonce, cnlen, d2)) {
        rc = UV_ENOMEM;
        goto out;
    }
    px_dbuf_put_u32(out, sizeof(d2));
    px_dbuf_put(out, d2, sizeof(d2));
    px_dbuf_put_u32(out, (uint32_t)cnlen);
    px_dbuf_put(out, client_nonce, cnlen);
    if (out->failed)
        rc = UV_ENOMEM;
out:
    OPENSSL_cleanse(d1, sizeof(d1));
    OPENSSL_cleanse(d2, sizeof(d2));
    return rc;
}
