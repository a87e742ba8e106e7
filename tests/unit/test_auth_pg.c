/*
 * Unit tests for auth_pg (MD5, Redshift digest, SASL choice, SCRAM-SHA-256 client and server,
 * SASLprep) and px_b64: the vectors of reference/redshift-aws.md §1.3, RFC 7677's exchange in
 * both roles, verifiers made by a real PostgreSQL 15 for awkward passwords, round trips, wrong
 * passwords, tampered messages, malformed messages of many kinds, state misuse and allocation
 * failures; the client's split continue step (prepare / compute / final), also with compute on
 * libuv's thread pool.
 */
#include "auth_pg.h"
#include "px_alloc.h"
#include "px_b64.h"
#include "px_err.h"
#include "px_test.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <uv.h>

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static void hex_to(const char *hex, uint8_t *out)
{
    ASSERT(px_hex_decode(hex, strlen(hex), out));
}

/* Body of a SASLInitialResponse: mechanism, Int32 length, client-first-message. */
static void initial_body(px_dbuf_t *b, const char *mech, const char *msg)
{
    px_dbuf_reset(b);
    px_dbuf_put_str(b, mech);
    px_dbuf_put_u32(b, (uint32_t)strlen(msg));
    px_dbuf_put_cstr(b, msg);
}

/* One full exchange between our client and our server; returns the server's final result. */
static int exchange(const char *client_pw, const char *server_secret, int *client_rc)
{
    auth_scram_client_t *c = NULL;
    auth_scram_server_t *s = NULL;
    px_dbuf_t m1, m2, m3, m4;
    px_dbuf_init(&m1, 0);
    px_dbuf_init(&m2, 0);
    px_dbuf_init(&m3, 0);
    px_dbuf_init(&m4, 0);
    ASSERT_OK(auth_scram_client_new(client_pw, NULL, &c));
    ASSERT_OK(auth_scram_server_new(server_secret, NULL, &s));
    ASSERT_OK(auth_scram_client_initial(c, &m1));
    ASSERT_OK(auth_scram_server_first(s, m1.data, m1.len, &m2));
    ASSERT_OK(auth_scram_client_continue(c, m2.data, m2.len, &m3));
    int rc = auth_scram_server_final(s, m3.data, m3.len, &m4);
    *client_rc = rc == 0 ? auth_scram_client_finish(c, m4.data, m4.len) : 1;
    if (rc == 0 && *client_rc == 0)
        ASSERT(auth_scram_client_verified(c));
    else
        ASSERT(!auth_scram_client_verified(c));
    auth_scram_client_free(c);
    auth_scram_server_free(s);
    px_dbuf_free(&m1);
    px_dbuf_free(&m2);
    px_dbuf_free(&m3);
    px_dbuf_free(&m4);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* px_b64 */

PX_TEST(b64_rfc4648_vectors)
{
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(v); i++) {
        px_dbuf_reset(&b);
        px_b64_encode(&b, (const uint8_t *)v[i].in, strlen(v[i].in));
        ASSERT_STR_EQ(px_dbuf_cstr(&b), v[i].out);
        ASSERT_EQ(b.len, px_b64_encoded_len(strlen(v[i].in)));
        uint8_t dec[8];
        size_t n;
        ASSERT(px_b64_decode(v[i].out, strlen(v[i].out), dec, sizeof(dec), &n));
        ASSERT_EQ(n, strlen(v[i].in));
        ASSERT_MEM_EQ(dec, v[i].in, n);
    }
    /* Every byte value survives a round trip through the whole alphabet. */
    uint8_t all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    px_dbuf_reset(&b);
    px_b64_encode(&b, all, sizeof(all));
    size_t n;
    ASSERT(px_b64_decode((const char *)b.data, b.len, back, sizeof(back), &n));
    ASSERT_EQ(n, 256);
    ASSERT_MEM_EQ(back, all, 256);
    char small[9];
    px_b64_encode_to(small, (const uint8_t *)"abcd", 4);
    ASSERT_STR_EQ(small, "YWJjZA==");
    px_dbuf_free(&b);
}

PX_TEST(b64_strict)
{
    static const char *const bad[] = {
        "Zg=", /* length not a multiple of 4 */
        "Zg",    "Z",
        "Zm9vY", "Zg==Zg==", /* padding in the middle */
        "Z===",  "====",
        "Zm=v",  "=Zm9",
        "Zh==", /* non-canonical: unused bits set */
        "Zm9=",  "Zm 9",
        "Zm9\n", "Zm9-", /* URL-safe alphabet is not ours */
        "Zm9_",  "\xc3\xa9\xc3\xa9",
    };
    uint8_t out[16];
    size_t n;
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++)
        if (px_b64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n))
            PX_FAIL("accepted \"%s\"", bad[i]);
    /* Output that does not fit is refused, never truncated. */
    ASSERT(!px_b64_decode("Zm9vYmFy", 8, out, 5, &n));
    ASSERT(px_b64_decode("Zm9vYmFy", 8, out, 6, &n));
    ASSERT_EQ(n, 6);
    ASSERT(px_b64_decode("", 0, out, 0, &n));
    ASSERT_EQ(n, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* MD5 (code 5) */

PX_TEST(md5_vectors)
{
    char out[36];
    static const uint8_t salt[4] = {1, 2, 3, 4};
    /* reference/redshift-aws.md §1.3 */
    ASSERT_OK(auth_md5_response("alice", "secret", salt, out));
    ASSERT_STR_EQ(out, "md598a0412b9c31436fc53776e863350083");
    ASSERT_EQ(strlen(out), 35);
    ASSERT_OK(auth_md5_secret("alice", "secret", out));
    ASSERT_STR_EQ(out, "md54a0a68b43b6cd5cf266fa02f196e2371");
    /* The IAM: prefix is part of the user name that is hashed. */
    static const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};
    ASSERT_OK(auth_md5_secret("IAM:alice", "pw", out));
    ASSERT_STR_EQ(out, "md5067de3d1798f1463044f8f72beea1523");
    ASSERT_OK(auth_md5_response("IAM:alice", "pw", salt2, out));
    ASSERT_STR_EQ(out, "md5fa932affafa98b6a626052bcafa9df39");
    ASSERT_EQ(auth_md5_response(NULL, "pw", salt2, out), UV_EINVAL);
    ASSERT_STR_EQ(out, "");
    ASSERT_EQ(auth_md5_secret("u", NULL, out), UV_EINVAL);
}

/* ------------------------------------------------------------------------------------------ */
/* Redshift digest (code 13) */

static void digest_request(px_dbuf_t *b, uint32_t algo, const uint8_t *salt, size_t saltlen,
                           const uint8_t *nonce, size_t noncelen)
{
    px_dbuf_reset(b);
    px_dbuf_put_u32(b, algo);
    px_dbuf_put_u32(b, (uint32_t)saltlen);
    px_dbuf_put(b, salt, saltlen);
    px_dbuf_put_u32(b, (uint32_t)noncelen);
    px_dbuf_put(b, nonce, noncelen);
}

PX_TEST(digest_reference_vector)
{
    uint8_t salt[32], nonce[16];
    for (int i = 0; i < 32; i++)
        salt[i] = (uint8_t)i;
    memset(nonce, 0xAA, sizeof(nonce));
    px_dbuf_t req, out;
    px_dbuf_init(&req, 0);
    px_dbuf_init(&out, 0);
    digest_request(&req, 0, salt, 32, nonce, 16);
    ASSERT_OK(auth_digest_response(req.data, req.len, "secret", "1700000000000", &out));

    /* The full message of §1.3 is 'd', Int32 57, then this body. */
    uint8_t want[58];
    hex_to("6400000039"
           "00000020"
           "097dc698faa3d1b554296bb3e075f2e2b5bd2fdc877fc3ca962bd685f644349c"
           "0000000d"
           "31373030303030303030303030",
           want);
    ASSERT_EQ(out.len, 53);
    ASSERT_MEM_EQ(out.data, want + 5, 53);
    px_dbuf_t msg;
    px_dbuf_init(&msg, 0);
    size_t at = px_dbuf_frame_begin(&msg, 'd');
    px_dbuf_put(&msg, out.data, out.len);
    px_dbuf_frame_end(&msg, at);
    ASSERT_EQ(msg.len, 58);
    ASSERT_MEM_EQ(msg.data, want, 58);

    /* d1 of §1.3 is internal to the function; pin it through the definition the output must
     * satisfy: d1 = SHA256(password || salt) and d2 = SHA256(d1 || server nonce || client
     * nonce), with d2 the value the function produced above. */
    uint8_t d1[32], d1_want[32], d2[32];
    hex_to("ec4896ad884da7eb9ee3535f3cf6aabee49e926c581ee98f1afe14e711bf1fbf", d1_want);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ASSERT(ctx != NULL);
    ASSERT(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    ASSERT(EVP_DigestUpdate(ctx, "secret", 6) == 1 && EVP_DigestUpdate(ctx, salt, 32) == 1);
    ASSERT(EVP_DigestFinal_ex(ctx, d1, NULL) == 1);
    ASSERT_MEM_EQ(d1, d1_want, 32);
    ASSERT(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    ASSERT(EVP_DigestUpdate(ctx, d1, 32) == 1 && EVP_DigestUpdate(ctx, nonce, 16) == 1 &&
           EVP_DigestUpdate(ctx, "1700000000000", 13) == 1);
    ASSERT(EVP_DigestFinal_ex(ctx, d2, NULL) == 1);
    EVP_MD_CTX_free(ctx);
    ASSERT_MEM_EQ(d2, want + 9, 32);

    /* Another client nonce: d2 changes, the layout does not. */
    px_dbuf_reset(&out);
    ASSERT_OK(auth_digest_response(req.data, req.len, "secret", "1", &out));
    ASSERT_EQ(out.len, 4 + 32 + 4 + 1);
    ASSERT_EQ(px_get_u32(out.data + 36), 1);
    ASSERT_EQ(out.data[40], '1');
    ASSERT(memcmp(out.data + 4, want + 9, 32) != 0);

    /* Appends rather than replaces. */
    px_dbuf_reset(&out);
    px_dbuf_put_u8(&out, 'd');
    ASSERT_OK(auth_digest_response(req.data, req.len, "secret", "1700000000000", &out));
    ASSERT_MEM_EQ(out.data, want, 1);
    ASSERT_MEM_EQ(out.data + 1, want + 5, 53);

    /* NULL client nonce: the clock, as 13 digits for any date after 2001. */
    px_dbuf_reset(&out);
    ASSERT_OK(auth_digest_response(req.data, req.len, "secret", NULL, &out));
    ASSERT_EQ(px_get_u32(out.data + 36), 13);
    px_dbuf_free(&req);
    px_dbuf_free(&out);
    px_dbuf_free(&msg);
}

/* A second vector, computed with Python's hashlib, pins the hash inputs and their order
 * (password "pw", salt "s", server nonce "n", client nonce "42"), and the empty salt and nonce
 * edge. */
#define DIGEST2_PW_S_N_42   "119407eec227662b3f890a5c94a420512a0cbe4f726fafbb9363740b70821fc1"
#define DIGEST2_PW_EMPTY_42 "13b80e302e8072dda66164351260163b20308d2d56335d8c1f4d15a512fd9711"
PX_TEST(digest_second_vector)
{
    px_dbuf_t req, out;
    px_dbuf_init(&req, 0);
    px_dbuf_init(&out, 0);
    digest_request(&req, 0, (const uint8_t *)"s", 1, (const uint8_t *)"n", 1);
    ASSERT_OK(auth_digest_response(req.data, req.len, "pw", "42", &out));
    uint8_t d2[32];
    hex_to(DIGEST2_PW_S_N_42, d2);
    ASSERT_MEM_EQ(out.data + 4, d2, 32);
    /* Zero-length salt and nonce are well formed. */
    digest_request(&req, 0, NULL, 0, NULL, 0);
    px_dbuf_reset(&out);
    ASSERT_OK(auth_digest_response(req.data, req.len, "pw", "42", &out));
    hex_to(DIGEST2_PW_EMPTY_42, d2);
    ASSERT_MEM_EQ(out.data + 4, d2, 32);
    px_dbuf_free(&req);
    px_dbuf_free(&out);
}

PX_TEST(digest_malformed)
{
    uint8_t salt[32] = {0}, nonce[16] = {0};
    px_dbuf_t req, out;
    px_dbuf_init(&req, 0);
    px_dbuf_init(&out, 0);
    digest_request(&req, 0, salt, 32, nonce, 16);
    const size_t full = req.len;
    /* Every truncation is malformed. */
    for (size_t n = 0; n < full; n++)
        ASSERT_EQ(auth_digest_response(req.data, n, "pw", "1", &out), AUTH_E_PROTO);
    ASSERT_EQ(out.len, 0);
    /* Trailing bytes. */
    px_dbuf_put_u8(&req, 0);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    /* Lengths that lie: too big for the message, "negative", above the bound. */
    digest_request(&req, 0, salt, 32, nonce, 16);
    px_put_u32(req.data + 4, 33);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    px_put_u32(req.data + 4, 0xFFFFFFFFu);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    px_put_u32(req.data + 4, 31); /* salt shorter: the nonce length is then read from salt */
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    digest_request(&req, 0, salt, 32, nonce, 16);
    px_put_u32(req.data + 8 + 32, 17);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    px_put_u32(req.data + 8 + 32, 0x80000000u);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    uint8_t *big = px_calloc(1, 2000);
    digest_request(&req, 0, big, 1025, nonce, 16);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    digest_request(&req, 0, big, 1024, big, 1024);
    ASSERT_OK(auth_digest_response(req.data, req.len, "pw", "1", &out));
    px_dbuf_reset(&out);
    digest_request(&req, 0, salt, 32, big, 1025);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_PROTO);
    px_free(big);
    ASSERT_EQ(auth_digest_response(NULL, 0, "pw", "1", &out), AUTH_E_PROTO);
    ASSERT_EQ(out.len, 0);
    px_dbuf_free(&req);
    px_dbuf_free(&out);
}

PX_TEST(digest_mechanisms_and_arguments)
{
    uint8_t salt[32] = {0}, nonce[16] = {0};
    px_dbuf_t req, out;
    px_dbuf_init(&req, 0);
    px_dbuf_init(&out, 0);
    /* SCRYPT (1), ARGON2 (2) and anything else: unsupported, whatever follows. */
    static const uint32_t algos[] = {1, 2, 3, 0xFFFFFFFFu};
    for (size_t i = 0; i < PX_ARRAY_SIZE(algos); i++) {
        digest_request(&req, algos[i], salt, 32, nonce, 16);
        ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &out), AUTH_E_MECH);
        ASSERT_EQ(auth_digest_response(req.data, 4, "pw", "1", &out), AUTH_E_MECH);
    }
    digest_request(&req, 0, salt, 32, nonce, 16);
    static const char *const bad_nonces[] = {"", "12a", "-1", " 1", "123456789012345678901", "1.5"};
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad_nonces); i++)
        ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", bad_nonces[i], &out), UV_EINVAL);
    ASSERT_EQ(auth_digest_response(req.data, req.len, NULL, "1", &out), UV_EINVAL);
    ASSERT_EQ(out.len, 0);
    ASSERT_OK(auth_digest_response(req.data, req.len, "pw", "12345678901234567890", &out));
    /* A full output buffer is reported, not truncated silently. */
    px_dbuf_t tiny;
    px_dbuf_init(&tiny, 10);
    ASSERT_EQ(auth_digest_response(req.data, req.len, "pw", "1", &tiny), UV_ENOMEM);
    px_dbuf_free(&tiny);
    px_dbuf_free(&req);
    px_dbuf_free(&out);
}

/* ------------------------------------------------------------------------------------------ */
/* SASL mechanism choice (code 10) */

PX_TEST(sasl_choose)
{
    static const struct {
        const char *bytes;
        size_t len;
        int rc;
    } v[] = {
        {"SCRAM-SHA-256\0", 15, 0},
        {"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0", 34, 0},
        {"SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0", 34, 0},
        {"OTHER\0SCRAM-SHA-256\0", 21, 0},
        {"SCRAM-SHA-256-PLUS\0", 20, AUTH_E_MECH},
        {"scram-sha-256\0", 15, AUTH_E_MECH}, /* names are case-sensitive */
        {"SCRAM-SHA-1\0", 13, AUTH_E_MECH},
        {"", 1, AUTH_E_MECH}, /* an empty list */
        {"", 0, AUTH_E_PROTO},
        {"SCRAM-SHA-256", 13, AUTH_E_PROTO},       /* no NUL */
        {"SCRAM-SHA-256\0", 14, AUTH_E_PROTO},     /* no terminating empty name */
        {"SCRAM-SHA-256\0\0x", 16, AUTH_E_PROTO},  /* trailing bytes */
        {"SCRAM-SHA-256\0\0\0", 16, AUTH_E_PROTO}, /* trailing NUL */
        {"SCRAM-SHA-25\0"
         "6\0",
         15, AUTH_E_PROTO}, /* a split name, no terminator */
        {"SCRAM-SHA-25\0"
         "6\0",
         16, AUTH_E_MECH}, /* "SCRAM-SHA-25" and "6" */
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(v); i++) {
        int rc = auth_sasl_choose((const uint8_t *)v[i].bytes, v[i].len);
        if (rc != v[i].rc)
            PX_FAIL("case %zu: got %d, want %d", i, rc, v[i].rc);
    }
    ASSERT_EQ(auth_sasl_choose(NULL, 0), AUTH_E_PROTO);
}

/* ------------------------------------------------------------------------------------------ */
/* SCRAM: RFC 7677 §3 */

#define RFC_PASSWORD     "pencil"
#define RFC_CNONCE       "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE       "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL                                                                           \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

PX_TEST(scram_rfc7677_client)
{
    auth_scram_client_t *c;
    ASSERT_OK(auth_scram_client_new(RFC_PASSWORD, RFC_CNONCE, &c));
    ASSERT_OK(auth_scram_client_set_user(c, "user"));
    px_dbuf_t out, want;
    px_dbuf_init(&out, 0);
    px_dbuf_init(&want, 0);
    ASSERT_OK(auth_scram_client_initial(c, &out));
    initial_body(&want, "SCRAM-SHA-256", RFC_CLIENT_FIRST);
    ASSERT_EQ(out.len, want.len);
    ASSERT_MEM_EQ(out.data, want.data, want.len);

    px_dbuf_reset(&out);
    ASSERT_OK(auth_scram_client_continue(c, (const uint8_t *)RFC_SERVER_FIRST,
                                         strlen(RFC_SERVER_FIRST), &out));
    ASSERT_STR_EQ(px_dbuf_cstr(&out), RFC_CLIENT_FINAL);
    ASSERT(!auth_scram_client_verified(c));
    ASSERT_OK(
        auth_scram_client_finish(c, (const uint8_t *)RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
    ASSERT(auth_scram_client_verified(c));
    auth_scram_client_free(c);

    /* The default (PostgreSQL) form: empty user name, as libpq sends it. */
    ASSERT_OK(auth_scram_client_new(RFC_PASSWORD, RFC_CNONCE, &c));
    px_dbuf_reset(&out);
    ASSERT_OK(auth_scram_client_initial(c, &out));
    initial_body(&want, "SCRAM-SHA-256", "n,,n=,r=" RFC_CNONCE);
    ASSERT_EQ(out.len, want.len);
    ASSERT_MEM_EQ(out.data, want.data, want.len);
    /* The user name is part of AuthMessage, so the RFC's signature must now fail. */
    px_dbuf_reset(&out);
    ASSERT_OK(auth_scram_client_continue(c, (const uint8_t *)RFC_SERVER_FIRST,
                                         strlen(RFC_SERVER_FIRST), &out));
    ASSERT_EQ(
        auth_scram_client_finish(c, (const uint8_t *)RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)),
        AUTH_E_VERIFY);
    ASSERT(!auth_scram_client_verified(c));
    auth_scram_client_free(c);

    /* User names are escaped. */
    ASSERT_OK(auth_scram_client_new(RFC_PASSWORD, RFC_CNONCE, &c));
    ASSERT_OK(auth_scram_client_set_user(c, "a,b=c"));
    px_dbuf_reset(&out);
    ASSERT_OK(auth_scram_client_initial(c, &out));
    ASSERT(memmem(out.data, out.len, "n,,n=a=2Cb=3Dc,r=", 17) != NULL);
    ASSERT_EQ(auth_scram_client_set_user(c, "late"), PX_E_STATE);
    auth_scram_client_free(c);
    px_dbuf_free(&out);
    px_dbuf_free(&want);
}

PX_TEST(scram_rfc7677_server)
{
    uint8_t salt[16];
    size_t saltlen;
    ASSERT(px_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt), &saltlen));
    px_dbuf_t ver, in, out;
    px_dbuf_init(&ver, 0);
    px_dbuf_init(&in, 0);
    px_dbuf_init(&out, 0);
    ASSERT_OK(auth_scram_make_verifier(RFC_PASSWORD, salt, saltlen, 4096, &ver));
    auth_scram_server_t *s;
    ASSERT_OK(auth_scram_server_new(px_dbuf_cstr(&ver), RFC_SNONCE, &s));
    initial_body(&in, "SCRAM-SHA-256", RFC_CLIENT_FIRST);
    ASSERT_OK(auth_scram_server_first(s, in.data, in.len, &out));
    ASSERT_STR_EQ(px_dbuf_cstr(&out), RFC_SERVER_FIRST);
    px_dbuf_reset(&out);
    ASSERT_OK(auth_scram_server_final(s, (const uint8_t *)RFC_CLIENT_FINAL,
                                      strlen(RFC_CLIENT_FINAL), &out));
    ASSERT_STR_EQ(px_dbuf_cstr(&out), RFC_SERVER_FINAL);
    auth_scram_server_free(s);

    /* The same from the plaintext password needs the RFC's salt, so it can only be checked
     * through the verifier; a plaintext server picks its own salt and must still accept. */
    int crc;
    ASSERT_OK(exchange(RFC_PASSWORD, RFC_PASSWORD, &crc));
    ASSERT_OK(crc);
    ASSERT_OK(exchange(RFC_PASSWORD, px_dbuf_cstr(&ver), &crc));
    ASSERT_OK(crc);
    px_dbuf_free(&ver);
    px_dbuf_free(&in);
    px_dbuf_free(&out);
}

/* ------------------------------------------------------------------------------------------ */
/* SCRAM: verifiers made by PostgreSQL 15.18 (CREATE ROLE ... PASSWORD with
 * password_encryption = scram-sha-256 in a SQL_ASCII database, so that invalid UTF-8 reaches
 * pg_saslprep unchanged). Each covers a SASLprep rule: mapping, NFKC, Hangul, canonical order,
 * composition exclusions, prohibited characters, bidi, and the raw-password fallbacks. */

static const struct {
    const char *password;
    const char *verifier;
} pg_verifiers[] = {
    /* pencil */ {"pencil",
                  "SCRAM-SHA-256$4096:b1AlKlCYyrAbpgCPFehKhg==$OMoKDslEvczazQJvGFasdMg250og7F7v/F6/"
                  "5CHreLs=:PUZO05CuFdWlGpVOSFBa3T+iI1JFH7X7saYjAK+mPPU="},
    /* p\xe4ss w\xf6rd */
    {"p\xc3\xa4ss w\xc3\xb6rd",
     "SCRAM-SHA-256$4096:fpycglEypMEXAv3w0afWLw==$jt7hbti1evgM2zZYG4VFZ+gRhOaeyOK+LL8qOYE5K0k=:"
     "mTiUCbGojxpThU6pMKWw+pEYy9M8gltZEzx79MPtKrA="},
    /* \uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44 */
    {"\xef\xbd\x90\xef\xbd\x81\xef\xbd\x93\xef\xbd\x93\xef\xbd\x97\xef\xbd\x8f\xef\xbd\x92\xef\xbd"
     "\x84",
     "SCRAM-SHA-256$4096:pv5hdPk1kWXesLBTXQXpHQ==$vsFnOYA7EheaE08EzvgH1T27Mv7JI7Yq2DBB6fCk/"
     "1c=:VRqNUWXT/vwg9RGOEPFKO/E/0yWyi5Iqsij6Azv4lkY="},
    /* I\xadX */
    {"I\xc2\xadX", "SCRAM-SHA-256$4096:CYU0PX6wVkTOPykNu5+WPA==$PrvFc7RJU97Gs+nLeTM8K1WFWmSyskS+Ug/"
                   "JGHp6SeI=:RKeR1MIldee4DeCnwIFzTdryj6k6L7CmO/1aK9mpXYY="},
    /* \xaa */
    {"\xc2\xaa", "SCRAM-SHA-256$4096:ok398yxU6LlLaCfpWKhODA==$4MuTpb08wtbgEIIZL/"
                 "rii4fUCVvel0H7ZYhKTvzIr4g=:FKegjAQ6lHoTG/3zFILTgHJqbwkG2FnZh7/kJ0E7YPg="},
    /* \u2168 */
    {"\xe2\x85\xa8",
     "SCRAM-SHA-256$4096:WmfZVJdG1nCiK/+Ka7e2tw==$aCr/Ula2y8/"
     "6+2DRoS1qjQUBfThPQXx8zFU7huEBygA=:TTlI7bq2wylTduwEcfbjAMJoPJwF2JGjT5HJWShi7jI="},
    /* a\xa0b */
    {"a\xc2\xa0"
     "b",
     "SCRAM-SHA-256$4096:XikE9vfOLmZXLcLwnklUig==$eKyYrj9cGGmHaepVbobnzFJpDYX1+lJEM5NWUAb3V90=:"
     "IFZzbMsv7HDIhpvVABr49C4c2gUFR5Tmmxc8EC9rCic="},
    /* a\u200bb */
    {"a\xe2\x80\x8b"
     "b",
     "SCRAM-SHA-256$4096:ooFOoeXz/"
     "HpDedkGux7Ttw==$mp++MgQ4HaTu8kOX1ldOFpmadO2J4faTmuKpWi8Pnfg=:"
     "NUXp7BRkVomYxwwtYW1OQcs2OAJgB3ddCrea/IzAzZg="},
    /* e\u0301tude */
    {"e\xcc\x81tude", "SCRAM-SHA-256$4096:405eFzZI9PMt86769LvI2w==$TwNUQOyCC4iK1C/"
                      "+NRmp9w5RjQ0FKiQe7KA/gcCaDP4=:LQvlqihke/aNrP0/+aVJ1mgwPK2VgfHhZiIhdS8JeME="},
    /* \u1100\u1161\u11a8 */
    {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8",
     "SCRAM-SHA-256$4096:M6/"
     "Kqxd759Nktiz7hRZHkw==$SDOI7A2MUGocBTXkLGP03ETPUhuHSzbpf7tS7waHIaM=:"
     "oi4REe1mt7ZKupxZKL18pRH97Z1X3jnqA0XwiYyEm0M="},
    /* \uac01x */
    {"\xea\xb0\x81x",
     "SCRAM-SHA-256$4096:kG7kgWtoq8KbAbbRaRLIAw==$dF7H/"
     "SromM4Ae8fzsaMNcyXZUucQGmS9heReKHZAlWI=:CwrRVBurFrfOnPsklMM5Cj/asXRQVGI3uUnVzKWizgg="},
    /* \ufb01ne */
    {"\xef\xac\x81ne", "SCRAM-SHA-256$4096:XPsD39bFV1t8GQkoU1JgSQ==$qrIU1PDYk3oTqo0BHYUGABn/"
                       "f5l3coafbvA0W2CrZdc=:kvJ/Jcxx9TYfKwVfP2ZTSdepgytz31wdWbmWMlZ/Ems="},
    /* \u0627\u0628 */
    {"\xd8\xa7\xd8\xa8", "SCRAM-SHA-256$4096:JIiqoBEKfCDGUbK+DBhnvA==$RPbn9gODLfbHeTj446p/E/"
                         "L2d3UGApXXz9shszERdgY=:GA106sQrxswhf00gVT3eUD7+hDyuknr3XE3fzeH5oes="},
    /* \u0627a */
    {"\xd8\xa7"
     "a",
     "SCRAM-SHA-256$4096:ArXYj3CeHN//"
     "ZDhBttvV1A==$8Zfuo+2VQNx2ZGC4R6NVU4xJRU+enrC5UWctP8Pk5bs=:nMpFu5hd17bcFiYNxBwN2t/"
     "KLeTM8b1gCi17hIQ9pA4="},
    /* \xad */
    {"\xc2\xad",
     "SCRAM-SHA-256$4096:2mg8p3ccW46BiB8SgVbChg==$Bm0C0l6aNZl6HuBtrZlAcd9tJR39PoVx2gksT0hUnKQ=:"
     "pS3rvVRgQeiy3AQzeqo0fWDyTxfwB+vQW2zZO2beorM="},
    /* invalid UTF-8 */
    {"\xff\xfepass", "SCRAM-SHA-256$4096:AGsKkkjuN5Fe2OTSuAdCdA==$zLMzdPmQhj6hd04x4ObL/"
                     "fD8m0x8RQkUieX1/skJJH8=:4psAHq15fymm8i7EbAE+1kXM0ZrQAS1nZQjymhuKU14="},
    /* a\u0221 */
    {"a\xc8\xa1", "SCRAM-SHA-256$4096:+Cb6FTvX4oYy+JEbnw7G0Q==$j2oEBstO6QDkILYFtqpQSL5hqgC/"
                  "SDM0XklXKtw4WcY=:VELA9AOKQ7kiMwnrn/gbZhNlrNHSkqGCWeXYmeLfFFU="},
    /* x\x07\xe9 */
    {"x\x07\xc3\xa9", "SCRAM-SHA-256$4096:JvOcxLwEqS0eA30e71uMtQ==$V5ibDYJ6lqo5Fu88QNPVpZZ+"
                      "usfaK4xlmOvnlRFNOoE=:HZs0VembMrh4GpEK2W05tpCkK0GqmT2VvPwg0CSYYA4="},
    /* \x07bell */
    {"\x07"
     "bell",
     "SCRAM-SHA-256$4096:I7jFywPjtYfjPSzwfcziOQ==$mMFtWsOn9HANE4rNUiiwN1A8uqMaQDDhb9VMi3N6TM8=:"
     "Mok2Q+0JOxt3OFWUeZaI3LHLe05AKTyjX0/OgPndi6g="},
    /* a\u0323\u0307 */
    {"a\xcc\xa3\xcc\x87", "SCRAM-SHA-256$4096:RqR7bykeMTvdfIVd0yZcBA==$8QCvgbzhX8wE25G0lO7Vq4yt34p+"
                          "09wBcaoebU5ZaMw=:VbAmZeebzb/tbqowZBQrpBZJ6q2s3wwcjVfzpMiYJvI="},
    /* \u1e9b\u0323 */
    {"\xe1\xba\x9b\xcc\xa3",
     "SCRAM-SHA-256$4096:9Pykcg51DViDE1Ul36eMrg==$tlbGFvEii79kn9mIjTNFflFZp2rGO1LsB6MfP1tG/"
     "aA=:y4owCvcWnibJBR6aZns1RKswaM14JlEsSFKsHd2a8NM="},
    /* \u212b */
    {"\xe2\x84\xab", "SCRAM-SHA-256$4096:9WZ6PxWJnSqB41+5UpKGMA==$sd40gqu+9S/qB0Qgzd55RM/"
                     "Kk0NcbzS82yeIVIKDngc=:rqaAvfxg94pcKxcoZSBsH2WA/oo6+v5z9UdBFLMch1I="},
    /* \U0001d400bc */
    {"\xf0\x9d\x90\x80"
     "bc",
     "SCRAM-SHA-256$4096:f66rPj4vTzmhP/eae118ew==$ujKUenpx00s6RxoRupNgy5j/"
     "5VPzINC6ckIMid79hq4=:CAVe7fYjRSPeSoZx2RLnoOMk7O/R2MoaMxxsW7Cnw+E="},
    /* \ufdfa */
    {"\xef\xb7\xba",
     "SCRAM-SHA-256$4096:hQqepJTaDIYBuIsHsrI1lw==$BFZj142Q6fz0FcuCilTKe7HJrE1geoeqs5fgyVgSqEU=:"
     "NXcHolI3vOLGmzlF16Vh3dWq2vsNDgcVrRaGGOYZFWk="},
    /* A\u030a\u0301 */
    {"A\xcc\x8a\xcc\x81",
     "SCRAM-SHA-256$4096:HDNZ9Q2IpBNcbsm737xIpw==$BZBWTPsGTcr0JFlyC9Rt2INjxBKoQc2jL5x0eFd1y4E=:"
     "mJFS53oy8qNBSN+45NBSsgnyzBOAuaq22CsxjD6PGSs="},
    /* \u3000password */
    {"\xe3\x80\x80password",
     "SCRAM-SHA-256$4096:CCc+raoGHyXcKi6dtsOD4Q==$sVlVcec5x/Uy8Ex0WgIrjitecpEr/"
     "R8P5k8+ZgzPPnQ=:FEmlvkredYgF8EjA7V7uPTwAB/YSRRnf3WRjLgjgYdg="},
    /* \uff8a\uff9f\uff7d\uff9c\uff70\uff84\uff9e */
    {"\xef\xbe\x8a\xef\xbe\x9f\xef\xbd\xbd\xef\xbe\x9c\xef\xbd\xb0\xef\xbe\x84\xef\xbe\x9e",
     "SCRAM-SHA-256$4096:W4FcsxubNyO9j8moLJxbAA==$HHNMnSx8/1T7bs4eCxB1Jf9Ngm0HHI1/"
     "cuhSMrqy90I=:DY4aMbTxzeurdf9eViDUsFk8001WW6oHcLBtcXLp48A="},
    /* \u0958 */
    {"\xe0\xa5\x98",
     "SCRAM-SHA-256$4096:mxrnaaYbvchvo2rz+k8ezA==$b0ga/Qp26wDnv7WF9XRyIp1GHOZWoDEb0zDhMhurnnU=:/"
     "M9DwMmYyqo11vkNcUDU6pi4gD4Rb6FZcrfuVxSaeMA="},
    /* \xe9 */
    {"\xc3\xa9", "SCRAM-SHA-256$4096:lw2jsOoZWa/FKq3gt+tnWg==$ewvwm3O/L/"
                 "SjVDB7YaZdpg8tMCBP7UcVl0ZVmxze/Xs=:faaCLInZnnSxVbZW+99xJdD+PyNCWk0GTlKhrryUhZU="},
    /* x\u0345\u0301\u0315\u0300y */
    {"x\xcd\x85\xcc\x81\xcc\x95\xcc\x80y",
     "SCRAM-SHA-256$4096:QKe9bd5lgBFwYiXZLEqxhw==$qPe2PCvwRYfNfYVgvsBImHeLp+T4cYzZPHL8ZNReLA0=:"
     "Z0E3XDoAumLjc14pA0anRQb5HBIAJPZnG7r5IFWpMGI="},
    /* \u2460\u33a1\xbd */
    {"\xe2\x91\xa0\xe3\x8e\xa1\xc2\xbd",
     "SCRAM-SHA-256$4096:oOTB1L2rRDnae2MccOe6Zg==$wSjGHGcm6e9aJ2p5kgaUoX13hLmaKYFq7JlPY/t/"
     "8n8=:rhskMgtXqburSuePqZ3EyOc+lpFP7PCpqBLHm2NElzE="},
    /* \u06271\u0628 */
    {"\xd8\xa7"
     "1\xd8\xa8",
     "SCRAM-SHA-256$4096:DMeUP5T2juYIgLKsvRjXkw==$0NJMo9BM2trftepvX9fnYSs8cbm9DMEnyKehQHLYolU=:"
     "1TJrTKw4xa9+gdDw0T6WOWAcbXDNntUHycLOppKDor0="},
    /* \u05d0\u05b7 */
    {"\xd7\x90\xd6\xb7",
     "SCRAM-SHA-256$4096:wgWuq482/r3/loL00Y70lA==$IZ+8kOx5jE9JpKRjQP698WGENTu3Yd/"
     "539GQZmiwOqQ=:cfeiIEMS3f72QqoowvXShvIXa6kIxgf7tdvHadfv/EM="},
    /* \ud7a3\u11c2 */
    {"\xed\x9e\xa3\xe1\x87\x82",
     "SCRAM-SHA-256$4096:fTA2KWWu2rtlVEx0o6sh9g==$tIdNArBoa5LlXXIl8OTd5cu0Zqup87uA7Bmw3rKb2J0=:"
     "dM9ibnL3JvLGXe3Kk2WoECLzn9O4srZJSCRHdNj/SkM="},
    /* \u1100\uac00\u11a8 */
    {"\xe1\x84\x80\xea\xb0\x80\xe1\x86\xa8",
     "SCRAM-SHA-256$4096:3wEoLyVVcS6N6jRtOo2dlw==$25fnmgOCGz3Z0ah1CrzUYzkunCPqP05x+16k/"
     "fyC3aU=:FX+uFQc0HTw4pqSCUfj5k03hNqtJOPK4KTxy6Gf3Mag="}};

static void split_verifier(const char *v, uint8_t *salt, size_t *saltlen, int *iter)
{
    const char *p = strchr(v, '$') + 1;
    *iter = atoi(p);
    const char *s = strchr(p, ':') + 1, *e = strchr(s, '$');
    ASSERT(px_b64_decode(s, (size_t)(e - s), salt, 64, saltlen));
}

PX_TEST(scram_postgresql_verifiers)
{
    px_dbuf_t ver;
    px_dbuf_init(&ver, 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(pg_verifiers); i++) {
        uint8_t salt[64];
        size_t saltlen;
        int iter;
        split_verifier(pg_verifiers[i].verifier, salt, &saltlen, &iter);
        px_dbuf_reset(&ver);
        ASSERT_OK(auth_scram_make_verifier(pg_verifiers[i].password, salt, saltlen, iter, &ver));
        if (strcmp(px_dbuf_cstr(&ver), pg_verifiers[i].verifier) != 0)
            PX_FAIL("password #%zu: got %s, PostgreSQL made %s", i, px_dbuf_cstr(&ver),
                    pg_verifiers[i].verifier);
        /* And a login against PostgreSQL's verifier works with our client. */
        int crc;
        ASSERT_OK(exchange(pg_verifiers[i].password, pg_verifiers[i].verifier, &crc));
        ASSERT_OK(crc);
    }
    /* Different spellings of one NFKC password log in with each other's verifier. */
    int crc;
    ASSERT_OK(exchange("\xef\xbd\x90\xef\xbd\x81\xef\xbd\x93\xef\xbd\x93\xef\xbd\x97\xef\xbd\x8f"
                       "\xef\xbd\x92\xef\xbd\x84",
                       "password", &crc));
    ASSERT_OK(crc);
    ASSERT_OK(exchange("\xc2\xadpass\xe2\x80\x8dword", "password", &crc)); /* mapped out */
    ASSERT_OK(crc);
    ASSERT_EQ(exchange("\xc2\xa0password", "password", &crc), AUTH_E_FAILED); /* a space */
    ASSERT_EQ(exchange("\xc3\xa9", "e\xcc\x81", &crc), 0);
    px_dbuf_free(&ver);
}

/* ------------------------------------------------------------------------------------------ */
/* SCRAM round trips and failures */

PX_TEST(scram_round_trips)
{
    static const char *const pws[] = {
        "pencil",   "",     "p@ss w0rd,=",   "\xd0\xbf\xd0\xb0\xd1\x80",
        "\xff\xfe", "\x07", "x\xe2\x80\x8by"};
    px_dbuf_t ver;
    px_dbuf_init(&ver, 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(pws); i++) {
        int crc;
        ASSERT_OK(exchange(pws[i], pws[i], &crc)); /* plaintext on the server */
        ASSERT_OK(crc);
        px_dbuf_reset(&ver);
        ASSERT_OK(auth_scram_make_verifier(pws[i], NULL, 0, 1, &ver)); /* 1 iteration is legal */
        ASSERT_OK(exchange(pws[i], px_dbuf_cstr(&ver), &crc));
        ASSERT_OK(crc);
    }
    px_dbuf_free(&ver);
}

PX_TEST(scram_wrong_password)
{
    int crc;
    ASSERT_EQ(exchange("pencil2", "pencil", &crc), AUTH_E_FAILED);
    ASSERT_EQ(exchange("Pencil", "pencil", &crc), AUTH_E_FAILED);
    ASSERT_EQ(exchange("", "pencil", &crc), AUTH_E_FAILED);
    ASSERT_EQ(exchange("pencil", "", &crc), AUTH_E_FAILED);
    /* A mock server (unknown user) fails every password, including a right guess. */
    ASSERT_EQ(exchange("pencil", NULL, &crc), AUTH_E_FAILED);
    ASSERT_EQ(exchange("", NULL, &crc), AUTH_E_FAILED);
}

/* Our client against our server, with the server's answers tampered with. */
PX_TEST(scram_tampered_server)
{
    auth_scram_client_t *c;
    auth_scram_server_t *s;
    px_dbuf_t m1, m2, m3, m4;
    px_dbuf_init(&m1, 0);
    px_dbuf_init(&m2, 0);
    px_dbuf_init(&m3, 0);
    px_dbuf_init(&m4, 0);
    for (int variant = 0; variant < 4; variant++) {
        px_dbuf_reset(&m1);
        px_dbuf_reset(&m2);
        px_dbuf_reset(&m3);
        px_dbuf_reset(&m4);
        ASSERT_OK(auth_scram_client_new("pencil", NULL, &c));
        ASSERT_OK(auth_scram_server_new("pencil", NULL, &s));
        ASSERT_OK(auth_scram_client_initial(c, &m1));
        ASSERT_OK(auth_scram_server_first(s, m1.data, m1.len, &m2));
        ASSERT_OK(auth_scram_client_continue(c, m2.data, m2.len, &m3));
        ASSERT_OK(auth_scram_server_final(s, m3.data, m3.len, &m4));
        int want;
        if (variant == 0) {
            /* One bit of one base64 character of the signature: either the character is no
             * longer base64 (malformed) or it decodes to a different signature. The signature
             * is random, so decide which with the decoder rather than by hand. */
            m4.data[4] ^= 0x01;
            uint8_t sig[40];
            size_t siglen;
            want = px_b64_decode((const char *)m4.data + 2, m4.len - 2, sig, sizeof(sig), &siglen)
                       ? AUTH_E_VERIFY
                       : AUTH_E_PROTO;
        } else if (variant == 1) { /* a valid signature of something else */
            memcpy(m4.data + 2, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 44);
            want = AUTH_E_VERIFY;
        } else if (variant == 2) { /* the server reports an error instead */
            px_dbuf_reset(&m4);
            px_dbuf_put_cstr(&m4, "e=invalid-proof");
            want = AUTH_E_FAILED;
        } else { /* a truncated signature */
            m4.len -= 4;
            want = AUTH_E_PROTO;
        }
        int rc = auth_scram_client_finish(c, m4.data, m4.len);
        if (rc != want)
            PX_FAIL("variant %d: got %d, want %d", variant, rc, want);
        ASSERT(!auth_scram_client_verified(c));
        /* Once failed, the exchange stays failed. */
        ASSERT_EQ(auth_scram_client_finish(c, m4.data, m4.len), PX_E_STATE);
        auth_scram_client_free(c);
        auth_scram_server_free(s);
    }
    px_dbuf_free(&m1);
    px_dbuf_free(&m2);
    px_dbuf_free(&m3);
    px_dbuf_free(&m4);
}

/* Server-first messages our client must refuse (its nonce is "cnonce"). */
PX_TEST(scram_client_malformed_server_first)
{
    static const struct {
        const char *msg;
        int rc;
    } v[] = {
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096", 0},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=1", 0},
        {"", AUTH_E_PROTO},
        {"m=ext,r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_MECH},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096,x=ext", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096,", AUTH_E_PROTO},
        {"r=cnonce,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},    /* no server part */
        {"r=cnoncX,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},    /* not our nonce */
        {"r=cnonc,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},     /* shorter than ours */
        {"r=cnonceS X,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO}, /* space in nonce */
        {"r=cnonceS\x7f,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},
        {"s=QSXCR+Q6sek8bf92,r=cnonceS,i=4096", AUTH_E_PROTO}, /* order */
        {"r=cnonceS,i=4096,s=QSXCR+Q6sek8bf92", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92", AUTH_E_PROTO},
        {"r=cnonceS,s=,i=4096", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf9,i=4096", AUTH_E_PROTO},  /* bad base64 length */
        {"r=cnonceS,s=QSXCR-Q6sek8bf92,i=4096", AUTH_E_PROTO}, /* bad base64 char */
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=0", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=04096", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=-1", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=+4096", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096x", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=10000001", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=2147483647", AUTH_E_PROTO},
        {"r=cnonceS,s=QSXCR+Q6sek8bf92,i=99999999999", AUTH_E_PROTO},
        {"R=cnonceS,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},
        {"r=cnonceS,,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},
        {"r:cnonceS,s=QSXCR+Q6sek8bf92,i=4096", AUTH_E_PROTO},
        {"e=other-error", AUTH_E_PROTO},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", AUTH_E_PROTO},
    };
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(v); i++) {
        auth_scram_client_t *c;
        ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_client_initial(c, &out));
        px_dbuf_reset(&out);
        int rc = auth_scram_client_continue(c, (const uint8_t *)v[i].msg, strlen(v[i].msg), &out);
        if (rc != v[i].rc)
            PX_FAIL("\"%s\": got %d, want %d", v[i].msg, rc, v[i].rc);
        if (rc) {
            ASSERT_EQ(out.len, 0);
            ASSERT_EQ(auth_scram_client_finish(c, (const uint8_t *)"v=", 2), PX_E_STATE);
        }
        auth_scram_client_free(c);
        /* The split API's first step decides alone, before any key is derived. */
        ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_client_initial(c, &out));
        rc = auth_scram_client_prepare(c, (const uint8_t *)v[i].msg, strlen(v[i].msg));
        if (rc != v[i].rc)
            PX_FAIL("prepare \"%s\": got %d, want %d", v[i].msg, rc, v[i].rc);
        auth_scram_client_free(c);
    }
    /* Binary junk: a NUL inside, and an oversized message. */
    static const uint8_t nul[] = "r=cnonceS\0,s=QSXCR+Q6sek8bf92,i=4096";
    char *huge = px_malloc(5000);
    memset(huge, 'a', 4999);
    memcpy(huge, "r=cnonce", 8);
    huge[4999] = '\0';
    const struct {
        const uint8_t *p;
        size_t n;
    } raw[] = {{nul, sizeof(nul) - 1}, {(const uint8_t *)huge, 4999}};
    for (size_t i = 0; i < PX_ARRAY_SIZE(raw); i++) {
        auth_scram_client_t *c;
        ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_client_initial(c, &out));
        ASSERT_EQ(auth_scram_client_continue(c, raw[i].p, raw[i].n, &out), AUTH_E_PROTO);
        auth_scram_client_free(c);
        ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_client_initial(c, &out));
        ASSERT_EQ(auth_scram_client_prepare(c, raw[i].p, raw[i].n), AUTH_E_PROTO);
        auth_scram_client_free(c);
    }
    px_free(huge);
    px_dbuf_free(&out);
}

/* Server-final messages our client must refuse, after a valid server-first. */
PX_TEST(scram_client_malformed_server_final)
{
    static const char *const v[] = {"",
                                    "v=",
                                    "v=c2hvcnQ=",
                                    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1",
                                    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,",
                                    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
                                    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA",
                                    "V=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
                                    "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
                                    "r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096"};
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    static const char first[] = "r=cnonceS,s=QSXCR+Q6sek8bf92,i=4096";
    for (size_t i = 0; i < PX_ARRAY_SIZE(v); i++) {
        auth_scram_client_t *c;
        ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_client_initial(c, &out));
        ASSERT_OK(auth_scram_client_continue(c, (const uint8_t *)first, strlen(first), &out));
        int rc = auth_scram_client_finish(c, (const uint8_t *)v[i], strlen(v[i]));
        if (rc != AUTH_E_PROTO)
            PX_FAIL("\"%s\": got %d", v[i], rc);
        ASSERT(!auth_scram_client_verified(c));
        auth_scram_client_free(c);
    }
    px_dbuf_free(&out);
}

/* SASLInitialResponse bodies our server must refuse. */
PX_TEST(scram_server_malformed_initial)
{
    static const struct {
        const char *mech, *msg;
        int rc;
    } v[] = {
        {"SCRAM-SHA-256", "n,,n=,r=abc", 0},
        {"SCRAM-SHA-256", "y,,n=,r=abc", 0},
        {"SCRAM-SHA-256", "n,,n=user,r=abc", 0},
        {"SCRAM-SHA-256", "n,,n=a=2Cb=3D,r=abc", 0},
        {"SCRAM-SHA-256", "n,,n=,r=abc,x=ext,Y=2", 0},
        {"SCRAM-SHA-256", "n,,n=\xc3\xa9,r=abc", 0},
        {"SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc", AUTH_E_MECH},
        {"PLAIN", "n,,n=,r=abc", AUTH_E_MECH},
        {"", "n,,n=,r=abc", AUTH_E_MECH},
        {"SCRAM-SHA-256", "p=tls-server-end-point,,n=,r=abc", AUTH_E_MECH},
        {"SCRAM-SHA-256", "n,a=bob,n=,r=abc", AUTH_E_MECH},
        {"SCRAM-SHA-256", "n,,m=ext,n=,r=abc", AUTH_E_MECH},
        {"SCRAM-SHA-256", "", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "x,,n=,r=abc", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,n=,r=abc", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,r=abc", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=a=b,r=abc", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=a=2,r=abc", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=abc,", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=abc,1=2", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=abc,x=", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=ab,c", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=a b", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,n=,r=a\x80", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "n,,r=abc,n=", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "N,,n=,r=abc", AUTH_E_PROTO},
        {"SCRAM-SHA-256", "y,a,n=,r=abc", AUTH_E_PROTO},
    };
    px_dbuf_t in, out;
    px_dbuf_init(&in, 0);
    px_dbuf_init(&out, 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(v); i++) {
        auth_scram_server_t *s;
        ASSERT_OK(auth_scram_server_new("pencil", "snonce", &s));
        initial_body(&in, v[i].mech, v[i].msg);
        px_dbuf_reset(&out);
        int rc = auth_scram_server_first(s, in.data, in.len, &out);
        if (rc != v[i].rc)
            PX_FAIL("%s \"%s\": got %d, want %d", v[i].mech, v[i].msg, rc, v[i].rc);
        if (rc == 0)
            ASSERT(strncmp(px_dbuf_cstr(&out), "r=abcsnonce,s=", 14) == 0);
        else
            ASSERT_EQ(out.len, 0);
        auth_scram_server_free(s);
    }

    /* Framing of the SASLInitialResponse itself. */
    auth_scram_server_t *s;
    static const uint8_t no_nul[] = "SCRAM-SHA-256";
    static const uint8_t no_len[] = "SCRAM-SHA-256\0\0\0";
    static const uint8_t minus1[] = "SCRAM-SHA-256\0\xff\xff\xff\xff";
    static const uint8_t longer[] = "SCRAM-SHA-256\0\0\0\0\x0cn,,n=,r=abc";
    static const uint8_t shorter[] = "SCRAM-SHA-256\0\0\0\0\x0an,,n=,r=abc";
    static const uint8_t nul_in[] = "SCRAM-SHA-256\0\0\0\0\x0bn,,n=\0r=abc";
    const struct {
        const uint8_t *p;
        size_t n;
    } raw[] = {{no_nul, sizeof(no_nul) - 1},
               {no_len, sizeof(no_len) - 1},
               {minus1, sizeof(minus1) - 1},
               {longer, sizeof(longer) - 1},
               {shorter, sizeof(shorter) - 1},
               {nul_in, sizeof(nul_in) - 1},
               {NULL, 0}};
    for (size_t i = 0; i < PX_ARRAY_SIZE(raw); i++) {
        ASSERT_OK(auth_scram_server_new("pencil", "snonce", &s));
        int rc = auth_scram_server_first(s, raw[i].p, raw[i].n, &out);
        if (rc != AUTH_E_PROTO)
            PX_FAIL("raw case %zu: got %d", i, rc);
        auth_scram_server_free(s);
    }
    /* An oversized client-first. */
    char *huge = px_malloc(4000);
    memset(huge, 'a', 3999);
    huge[3999] = '\0';
    memcpy(huge, "n,,n=,r=", 8);
    initial_body(&in, "SCRAM-SHA-256", huge);
    ASSERT_OK(auth_scram_server_new("pencil", "snonce", &s));
    ASSERT_EQ(auth_scram_server_first(s, in.data, in.len, &out), AUTH_E_PROTO);
    auth_scram_server_free(s);
    px_free(huge);
    px_dbuf_free(&in);
    px_dbuf_free(&out);
}

/* Client-final messages our server must refuse, after a valid first step with nonce
 * "abc" + "snonce". The proof is well formed but wrong unless stated. */
PX_TEST(scram_server_malformed_final)
{
#define PROOF "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    static const struct {
        const char *first, *final;
        int rc;
    } v[] = {
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,p=" PROOF, AUTH_E_FAILED},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,x=ext,p=" PROOF, AUTH_E_FAILED},
        {"y,,n=,r=abc", "c=eSws,r=abcsnonce,p=" PROOF, AUTH_E_FAILED},
        {"n,,n=,r=abc", "c=eSws,r=abcsnonce,p=" PROOF, AUTH_E_PROTO}, /* header changed */
        {"y,,n=,r=abc", "c=biws,r=abcsnonce,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonc,p=" PROOF, AUTH_E_PROTO}, /* nonce changed */
        {"n,,n=,r=abc", "c=biws,r=abcsnoncex,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=xbcsnonce,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,p=", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,p=c2hvcnQ=", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,p=" PROOF ",x=1", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,p=" PROOF ",", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,p=" PROOF "AAAA", AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,r=abcsnonce,1=x,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "r=abcsnonce,c=biws,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biws,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=bi,r=abcsnonce,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=,r=abcsnonce,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "c=biwsbiws,r=abcsnonce,p=" PROOF, AUTH_E_PROTO},
        {"n,,n=,r=abc", "", AUTH_E_PROTO},
    };
#undef PROOF
    px_dbuf_t in, out;
    px_dbuf_init(&in, 0);
    px_dbuf_init(&out, 0);
    for (size_t i = 0; i < PX_ARRAY_SIZE(v); i++) {
        auth_scram_server_t *s;
        ASSERT_OK(auth_scram_server_new("pencil", "snonce", &s));
        initial_body(&in, "SCRAM-SHA-256", v[i].first);
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_server_first(s, in.data, in.len, &out));
        px_dbuf_reset(&out);
        int rc = auth_scram_server_final(s, (const uint8_t *)v[i].final, strlen(v[i].final), &out);
        if (rc != v[i].rc)
            PX_FAIL("\"%s\": got %d, want %d", v[i].final, rc, v[i].rc);
        ASSERT_EQ(out.len, 0);
        /* Failed for good. */
        ASSERT_EQ(auth_scram_server_final(s, (const uint8_t *)v[i].final, strlen(v[i].final), &out),
                  PX_E_STATE);
        auth_scram_server_free(s);
    }
    px_dbuf_free(&in);
    px_dbuf_free(&out);
}

PX_TEST(scram_states)
{
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    auth_scram_client_t *c;
    ASSERT_OK(auth_scram_client_new("pw", "n", &c));
    ASSERT_EQ(auth_scram_client_continue(c, (const uint8_t *)"r=nX,s=QQ==,i=1", 15, &out),
              PX_E_STATE);
    ASSERT_EQ(auth_scram_client_finish(c, (const uint8_t *)"v=", 2), PX_E_STATE);
    ASSERT_OK(auth_scram_client_initial(c, &out));
    ASSERT_EQ(auth_scram_client_initial(c, &out), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_finish(c, (const uint8_t *)"v=", 2), PX_E_STATE);
    auth_scram_client_free(c);
    auth_scram_client_free(NULL);

    auth_scram_server_t *s;
    ASSERT_OK(auth_scram_server_new("pw", "n", &s));
    ASSERT_EQ(auth_scram_server_final(s, (const uint8_t *)"c=biws", 6, &out), PX_E_STATE);
    auth_scram_server_free(s);
    auth_scram_server_free(NULL);

    /* Arguments from our own side. */
    ASSERT_EQ(auth_scram_client_new(NULL, NULL, &c), UV_EINVAL);
    ASSERT(c == NULL);
    ASSERT_EQ(auth_scram_client_new("pw", "", &c), UV_EINVAL);
    ASSERT_EQ(auth_scram_client_new("pw", "a,b", &c), UV_EINVAL);
    ASSERT_EQ(auth_scram_client_new("pw", "a b", &c), UV_EINVAL);
    ASSERT_EQ(auth_scram_server_new("pw", "a,b", &s), UV_EINVAL);
    ASSERT(s == NULL);
    char longnonce[300];
    memset(longnonce, 'n', sizeof(longnonce) - 1);
    longnonce[sizeof(longnonce) - 1] = '\0';
    ASSERT_EQ(auth_scram_client_new("pw", longnonce, &c), UV_EINVAL);
    longnonce[256] = '\0';
    ASSERT_OK(auth_scram_client_new("pw", longnonce, &c));
    auth_scram_client_free(c);
    /* Generated nonces are 24 base64 characters and differ. */
    char n1[64], n2[64];
    for (int k = 0; k < 2; k++) {
        ASSERT_OK(auth_scram_client_new("pw", NULL, &c));
        px_dbuf_reset(&out);
        ASSERT_OK(auth_scram_client_initial(c, &out));
        char *r = memmem(out.data, out.len, "r=", 2);
        ASSERT(r != NULL);
        ASSERT_EQ((size_t)(out.data + out.len - (uint8_t *)r), 26);
        snprintf(k ? n2 : n1, 64, "%.*s", 24, r + 2);
        auth_scram_client_free(c);
    }
    ASSERT(strcmp(n1, n2) != 0);
    px_dbuf_free(&out);
}

/* ------------------------------------------------------------------------------------------ */
/* The client's continue step in three (prepare / compute / final), as the proxy runs it: the
 * compute step on libuv's thread pool. */

/* RFC 7677's client with client-first sent. */
static auth_scram_client_t *rfc_client(void)
{
    auth_scram_client_t *c = NULL;
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    ASSERT_OK(auth_scram_client_new(RFC_PASSWORD, RFC_CNONCE, &c));
    ASSERT_OK(auth_scram_client_set_user(c, "user"));
    ASSERT_OK(auth_scram_client_initial(c, &out));
    px_dbuf_free(&out);
    return c;
}

#define RFC_SF    ((const uint8_t *)RFC_SERVER_FIRST)
#define RFC_SFLEN (strlen(RFC_SERVER_FIRST))

PX_TEST(scram_client_split_rfc7677)
{
    px_dbuf_t one, split;
    px_dbuf_init(&one, 0);
    px_dbuf_init(&split, 0);
    auth_scram_client_t *c = rfc_client();
    ASSERT_OK(auth_scram_client_continue(c, RFC_SF, RFC_SFLEN, &one));
    auth_scram_client_free(c);

    c = rfc_client();
    ASSERT_EQ(auth_scram_client_iterations(c), 0);
    ASSERT_OK(auth_scram_client_prepare(c, RFC_SF, RFC_SFLEN));
    ASSERT_EQ(auth_scram_client_iterations(c), 4096);
    ASSERT_OK(auth_scram_client_compute(c));
    ASSERT_OK(auth_scram_client_final(c, &split));
    /* The same bytes as the one-shot call, and both the RFC's. */
    ASSERT_EQ(split.len, one.len);
    ASSERT_MEM_EQ(split.data, one.data, one.len);
    ASSERT_STR_EQ(px_dbuf_cstr(&split), RFC_CLIENT_FINAL);
    ASSERT(!auth_scram_client_verified(c));
    ASSERT_OK(
        auth_scram_client_finish(c, (const uint8_t *)RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)));
    ASSERT(auth_scram_client_verified(c));
    ASSERT_EQ(auth_scram_client_iterations(c), 4096);
    auth_scram_client_free(c);

    /* A wrong signature still fails after the split, as after the one-shot call. */
    c = rfc_client();
    ASSERT_OK(auth_scram_client_prepare(c, RFC_SF, RFC_SFLEN));
    ASSERT_OK(auth_scram_client_compute(c));
    px_dbuf_reset(&split);
    ASSERT_OK(auth_scram_client_final(c, &split));
    ASSERT_EQ(auth_scram_client_finish(
                  c, (const uint8_t *)"v=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", 46),
              AUTH_E_VERIFY);
    ASSERT(!auth_scram_client_verified(c));
    auth_scram_client_free(c);
    px_dbuf_free(&one);
    px_dbuf_free(&split);
}

/* prepare checks everything before any key is derived: the largest count the client accepts
 * is taken (and could be abandoned without running it), one more is refused there. */
PX_TEST(scram_client_prepare_checks)
{
    static const char ok_max[] = "r=cnonceS,s=QSXCR+Q6sek8bf92,i=10000000";
    static const char too_many[] = "r=cnonceS,s=QSXCR+Q6sek8bf92,i=10000001";
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    auth_scram_client_t *c;
    ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
    ASSERT_OK(auth_scram_client_initial(c, &out));
    ASSERT_OK(auth_scram_client_prepare(c, (const uint8_t *)ok_max, strlen(ok_max)));
    ASSERT_EQ(auth_scram_client_iterations(c), AUTH_SCRAM_MAX_ITERATIONS);
    auth_scram_client_free(c); /* abandoned before compute: nothing leaks */

    ASSERT_OK(auth_scram_client_new("pencil", "cnonce", &c));
    px_dbuf_reset(&out);
    ASSERT_OK(auth_scram_client_initial(c, &out));
    ASSERT_EQ(auth_scram_client_prepare(c, (const uint8_t *)too_many, strlen(too_many)),
              AUTH_E_PROTO);
    ASSERT_EQ(auth_scram_client_iterations(c), 0);
    /* A refused server-first leaves the exchange failed: no step runs after it. */
    ASSERT_EQ(auth_scram_client_compute(c), PX_E_STATE);
    px_dbuf_reset(&out);
    ASSERT_EQ(auth_scram_client_final(c, &out), PX_E_STATE);
    ASSERT_EQ(out.len, 0);
    ASSERT_EQ(auth_scram_client_prepare(c, (const uint8_t *)ok_max, strlen(ok_max)), PX_E_STATE);
    auth_scram_client_free(c);
    px_dbuf_free(&out);
}

PX_TEST(scram_client_split_states)
{
    static const char sf[] = "r=nX,s=QQ==,i=1";
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    auth_scram_client_t *c;
    ASSERT_OK(auth_scram_client_new("pw", "n", &c));
    /* Before client-first. */
    ASSERT_EQ(auth_scram_client_prepare(c, (const uint8_t *)sf, strlen(sf)), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_compute(c), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_final(c, &out), PX_E_STATE);
    ASSERT_OK(auth_scram_client_initial(c, &out));
    px_dbuf_reset(&out);
    /* After client-first, only prepare (or continue). Refusals leave the state alone. */
    ASSERT_EQ(auth_scram_client_compute(c), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_final(c, &out), PX_E_STATE);
    ASSERT_OK(auth_scram_client_prepare(c, (const uint8_t *)sf, strlen(sf)));
    /* Prepared: only compute. */
    ASSERT_EQ(auth_scram_client_prepare(c, (const uint8_t *)sf, strlen(sf)), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_continue(c, (const uint8_t *)sf, strlen(sf), &out), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_final(c, &out), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_finish(c, (const uint8_t *)"v=", 2), PX_E_STATE);
    ASSERT_OK(auth_scram_client_compute(c));
    /* Computed: only final. */
    ASSERT_EQ(auth_scram_client_compute(c), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_prepare(c, (const uint8_t *)sf, strlen(sf)), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_finish(c, (const uint8_t *)"v=", 2), PX_E_STATE);
    ASSERT_EQ(out.len, 0); /* no refused call wrote anything */
    ASSERT_OK(auth_scram_client_final(c, &out));
    ASSERT(out.len > 14 && memcmp(out.data, "c=biws,r=nX,p=", 14) == 0);
    ASSERT_EQ(auth_scram_client_final(c, &out), PX_E_STATE);
    ASSERT_EQ(auth_scram_client_compute(c), PX_E_STATE);
    auth_scram_client_free(c);

    /* Abandoned after compute, before final: the proof and the (wiped) password are freed
     * with the object (the ASan and valgrind runs would report a leak). */
    ASSERT_OK(auth_scram_client_new("pw", "n", &c));
    ASSERT_OK(auth_scram_client_initial(c, &out));
    ASSERT_OK(auth_scram_client_prepare(c, (const uint8_t *)sf, strlen(sf)));
    ASSERT_OK(auth_scram_client_compute(c));
    auth_scram_client_free(c);
    px_dbuf_free(&out);
}

/* compute allocates nothing through px_*: it still works with every px allocation failing.
 * prepare and final do allocate, and report it. */
PX_TEST(scram_client_split_out_of_memory)
{
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    auth_scram_client_t *c = rfc_client();
    ASSERT_OK(auth_scram_client_prepare(c, RFC_SF, RFC_SFLEN));
    px_alloc_fail_after(0);
    int rc = auth_scram_client_compute(c);
    px_alloc_fail_after(-1);
    ASSERT_OK(rc);
    ASSERT_OK(auth_scram_client_final(c, &out));
    ASSERT_STR_EQ(px_dbuf_cstr(&out), RFC_CLIENT_FINAL);
    auth_scram_client_free(c);

    int failures = 0;
    for (long n = 0; n < 100; n++) {
        c = rfc_client();
        px_dbuf_reset(&out);
        px_alloc_fail_after(n);
        rc = auth_scram_client_prepare(c, RFC_SF, RFC_SFLEN);
        if (rc == 0)
            rc = auth_scram_client_compute(c);
        if (rc == 0)
            rc = auth_scram_client_final(c, &out);
        px_alloc_fail_after(-1);
        if (rc == 0) {
            ASSERT_STR_EQ(px_dbuf_cstr(&out), RFC_CLIENT_FINAL);
            auth_scram_client_free(c);
            break;
        }
        if (rc != UV_ENOMEM)
            PX_FAIL("after %ld allocations: rc %d", n, rc);
        ASSERT_EQ(auth_scram_client_final(c, &out), PX_E_STATE);
        auth_scram_client_free(c);
        failures++;
    }
    ASSERT(failures >= 2); /* AuthMessage in prepare, client-final in final */
    px_dbuf_free(&out);
}

/* The way the proxy uses it: compute on libuv's thread pool, several exchanges at once, prepare
 * and final on the loop's thread. Each gives the RFC's bytes. A job cancelled before a thread
 * took it comes back with UV_ECANCELED and its exchange unfinished. */
typedef struct split_job {
    uv_work_t req;
    auth_scram_client_t *c;
    int compute_rc; /* written on the pool thread */
    int status;     /* the after-work callback's */
    int final_rc;
    int after_calls;
    px_dbuf_t out;
} split_job_t;

static void split_work(uv_work_t *w)
{
    split_job_t *j = container_of(w, split_job_t, req);
    j->compute_rc = auth_scram_client_compute(j->c);
}

static void split_after(uv_work_t *w, int status)
{
    split_job_t *j = container_of(w, split_job_t, req);
    j->after_calls++;
    j->status = status;
    j->final_rc = auth_scram_client_final(j->c, &j->out);
}

PX_TEST(scram_client_split_thread_pool)
{
    enum { NJOBS = 12 };
    static split_job_t jobs[NJOBS];
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    for (int i = 0; i < NJOBS; i++) {
        split_job_t *j = &jobs[i];
        memset(j, 0, sizeof(*j));
        px_dbuf_init(&j->out, 0);
        j->c = rfc_client();
        j->compute_rc = -1;
        ASSERT_OK(auth_scram_client_prepare(j->c, RFC_SF, RFC_SFLEN));
        ASSERT_OK(uv_queue_work(&loop, &j->req, split_work, split_after));
    }
    /* The last one was queued behind eleven others on (by default) four threads. */
    bool cancelled = uv_cancel((uv_req_t *)&jobs[NJOBS - 1].req) == 0;
    ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    for (int i = 0; i < NJOBS; i++) {
        split_job_t *j = &jobs[i];
        ASSERT_EQ(j->after_calls, 1);
        if (i == NJOBS - 1 && cancelled) {
            ASSERT_EQ(j->status, UV_ECANCELED);
            ASSERT_EQ(j->compute_rc, -1); /* never ran */
            ASSERT_EQ(j->final_rc, PX_E_STATE);
            ASSERT_EQ(j->out.len, 0);
        } else {
            ASSERT_OK(j->status);
            ASSERT_OK(j->compute_rc);
            ASSERT_OK(j->final_rc);
            ASSERT_STR_EQ(px_dbuf_cstr(&j->out), RFC_CLIENT_FINAL);
            ASSERT_OK(auth_scram_client_finish(j->c, (const uint8_t *)RFC_SERVER_FINAL,
                                               strlen(RFC_SERVER_FINAL)));
        }
        auth_scram_client_free(j->c);
        px_dbuf_free(&j->out);
    }
    px_test_loop_close(&loop);
}

PX_TEST(scram_verifier_parsing)
{
    static const char good[] = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7"
                               "BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2"
                               "dU=";
    auth_scram_server_t *s;
    ASSERT_OK(auth_scram_server_new(good, NULL, &s));
    auth_scram_server_free(s);
    /* The RFC's password through that verifier. */
    int crc;
    ASSERT_OK(exchange("pencil", good, &crc));
    ASSERT_OK(crc);
    static const char *const bad[] = {
        "SCRAM-SHA-256$",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
        "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$x:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3Otc=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:extra",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=$",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
        "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2d=",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:",
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++) {
        int rc = auth_scram_server_new(bad[i], NULL, &s);
        if (rc != UV_EINVAL)
            PX_FAIL("accepted verifier #%zu (rc %d)", i, rc);
        ASSERT(s == NULL);
    }
    /* A string that does not start with the prefix is a password (even one that looks like an
     * MD5 secret). */
    ASSERT_OK(exchange("md5abc", "md5abc", &crc));
    ASSERT_OK(crc);

    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    ASSERT_EQ(auth_scram_make_verifier("pw", (const uint8_t *)"s", 0, 4096, &out), UV_EINVAL);
    ASSERT_EQ(auth_scram_make_verifier("pw", (const uint8_t *)"s", 1, 0, &out), UV_EINVAL);
    ASSERT_EQ(auth_scram_make_verifier("pw", (const uint8_t *)"s", 1, AUTH_SCRAM_MAX_ITERATIONS + 1,
                                       &out),
              UV_EINVAL);
    ASSERT_EQ(auth_scram_make_verifier(NULL, NULL, 0, 4096, &out), UV_EINVAL);
    ASSERT_EQ(out.len, 0);
    ASSERT_OK(auth_scram_make_verifier("pencil", NULL, 0, 4096, &out));
    ASSERT(strncmp(px_dbuf_cstr(&out), "SCRAM-SHA-256$4096:", 19) == 0);
    ASSERT_EQ(out.len, 19 + 24 + 1 + 44 + 1 + 44); /* 16-byte salt */
    px_dbuf_free(&out);
}

/* ------------------------------------------------------------------------------------------ */
/* SASLprep */

static void check_prep(const char *in, int want_rc, const char *want)
{
    char *out = NULL;
    int rc = auth_saslprep(in, &out);
    if (rc != want_rc)
        PX_FAIL("saslprep(\"%s\"): rc %d, want %d", in, rc, want_rc);
    if (rc == 0) {
        ASSERT_STR_EQ(out, want);
        px_free_secret(out);
    } else {
        ASSERT(out == NULL);
    }
}

PX_TEST(saslprep_rfc4013_examples)
{
    /* RFC 4013 §3, with PostgreSQL's one deviation: pure ASCII is never checked, so the
     * control character U+0007 passes instead of being refused. */
    check_prep("I\xc2\xadX", 0, "IX");   /* SOFT HYPHEN mapped to nothing */
    check_prep("user", 0, "user");       /* no transformation */
    check_prep("USER", 0, "USER");       /* case preserved */
    check_prep("\xc2\xaa", 0, "a");      /* NFKC: ª */
    check_prep("\xe2\x85\xa8", 0, "IX"); /* NFKC: Ⅸ */
    check_prep("\x07", 0, "\x07");       /* RFC: prohibited; PostgreSQL: pure ASCII */
    check_prep("\xd8\xa7"
               "1",
               AUTH_E_FAILED, NULL); /* bidi: must end with RandALCat */
}

PX_TEST(saslprep_rules)
{
    check_prep("", 0, "");
    check_prep("a\xc2\xa0"
               "b",
               0, "a b"); /* non-ASCII space */
    check_prep("a\xe3\x80\x80"
               "b",
               0, "a b"); /* ideographic space */
    check_prep("a\xe2\x80\x8b"
               "b",
               0, "a b"); /* U+200B: space first, as PostgreSQL */
    check_prep("a\xef\xbb\xbf"
               "b",
               0, "ab");                         /* U+FEFF mapped to nothing */
    check_prep("\xc2\xad", AUTH_E_FAILED, NULL); /* empty after mapping */
    check_prep("e\xcc\x81", 0, "\xc3\xa9");      /* composition */
    check_prep("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 0, "\xea\xb0\x81"); /* Hangul LVT */
    check_prep("\xea\xb0\x80\xe1\x86\xa8", 0, "\xea\xb0\x81");             /* Hangul LV + T */
    check_prep("\xe0\xa5\x98", 0, "\xe0\xa4\x95\xe0\xa4\xbc");             /* exclusion */
    check_prep("\xe1\xba\x9b\xcc\xa3", 0, "\xe1\xb9\xa9");                 /* UAX #15 */
    check_prep("a\xcc\x87\xcc\xa3", 0, "\xe1\xba\xa1\xcc\x87");            /* reordering */
    check_prep("\xef\xac\x81", 0, "fi");
    check_prep("\xf0\x9d\x90\x80", 0, "A");
    check_prep("\xcc\x81"
               "a",
               0,
               "\xcc\x81"
               "a");                                  /* a leading mark composes with nothing */
    check_prep("a\xc8\xa1", AUTH_E_FAILED, NULL);     /* unassigned in Unicode 3.2 */
    check_prep("x\x07\xc3\xa9", AUTH_E_FAILED, NULL); /* control with non-ASCII */
    check_prep("\xc3\xa9\xe2\x80\x8e", AUTH_E_FAILED, NULL); /* LRM: C.8 */
    check_prep("\xc3\xa9\xee\x80\x80", AUTH_E_FAILED, NULL); /* private use: C.3 */
    check_prep("\xd8\xa7\xd8\xa8", 0, "\xd8\xa7\xd8\xa8");   /* RandAL only */
    check_prep("\xd8\xa7"
               "a\xd8\xa8",
               AUTH_E_FAILED, NULL); /* RandAL with L */
    check_prep("\xd8\xa7"
               "1\xd8\xa8",
               0,
               "\xd8\xa7"
               "1\xd8\xa8");
}

PX_TEST(saslprep_invalid_utf8)
{
    static const char *const bad[] = {
        "\xff",                 /* never valid */
        "\xc3",                 /* truncated */
        "\xc3(",                /* bad continuation */
        "\xc0\xaf",             /* overlong '/' */
        "\xe0\x80\xaf",         /* overlong '/' */
        "\xed\xa0\x80",         /* surrogate */
        "\xf4\x90\x80\x80",     /* above U+10FFFF */
        "\xf8\x88\x80\x80\x80", /* five-byte form */
        "\xe2\x82",             /* truncated */
        "a\x80z",               /* stray continuation */
        "\xf0\x9f\x98",         /* truncated */
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(bad); i++)
        check_prep(bad[i], AUTH_E_PROTO, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Allocation failures: every step reports UV_ENOMEM and leaks nothing (ASan and valgrind). */

static int oom_exchange(void)
{
    auth_scram_client_t *c = NULL;
    auth_scram_server_t *s = NULL;
    px_dbuf_t m1, m2, m3, m4;
    px_dbuf_init(&m1, 0);
    px_dbuf_init(&m2, 0);
    px_dbuf_init(&m3, 0);
    px_dbuf_init(&m4, 0);
    int rc = auth_scram_client_new("p\xc3\xa4ss", NULL, &c);
    if (!rc)
        rc = auth_scram_client_set_user(c, "u,=");
    if (!rc)
        rc = auth_scram_server_new("p\xc3\xa4ss", NULL, &s);
    if (!rc)
        rc = auth_scram_client_initial(c, &m1);
    if (!rc)
        rc = auth_scram_server_first(s, m1.data, m1.len, &m2);
    if (!rc)
        rc = auth_scram_client_continue(c, m2.data, m2.len, &m3);
    if (!rc)
        rc = auth_scram_server_final(s, m3.data, m3.len, &m4);
    if (!rc)
        rc = auth_scram_client_finish(c, m4.data, m4.len);
    px_dbuf_t v;
    px_dbuf_init(&v, 0);
    if (!rc)
        rc = auth_scram_make_verifier("\xc3\xa9", NULL, 0, 2, &v);
    char *prep = NULL;
    if (!rc)
        rc = auth_saslprep("\xef\xac\x81x\xcc\x81", &prep);
    px_free(prep);
    px_dbuf_free(&v);
    auth_scram_client_free(c);
    auth_scram_server_free(s);
    px_dbuf_free(&m1);
    px_dbuf_free(&m2);
    px_dbuf_free(&m3);
    px_dbuf_free(&m4);
    return rc;
}

PX_TEST(out_of_memory)
{
    int failures = 0;
    for (long n = 0; n < 1000; n++) {
        px_alloc_fail_after(n);
        int rc = oom_exchange();
        px_alloc_fail_after(-1);
        if (rc == 0)
            break;
        if (rc != UV_ENOMEM)
            PX_FAIL("after %ld allocations: rc %d", n, rc);
        failures++;
    }
    ASSERT(failures >= 10);
    ASSERT_OK(oom_exchange());
}
