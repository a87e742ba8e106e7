/*
 * Unit tests for the client auth file (proxy/px_authfile.c, pgbouncer's userlist.txt format):
 * quoting and escapes, comments, lookup, and the errors (with file and line, never a secret)
 * for malformed lines, MD5 secrets that cannot serve SCRAM, empty passwords, malformed
 * verifiers, duplicates and unreadable files; plaintext entries turned into verifiers at load
 * (keyed or random salts) that verify the right password and refuse a wrong one; and the mock
 * verifier for unknown users (stable per user within a process, different per user).
 *
 * PBKDF2 is counted by interposing PKCS5_PBKDF2_HMAC in this binary (auth/ is a static library
 * linked into it, so its call binds to the definition below, which forwards to libcrypto's). The
 * counts prove that a login, for a known or an unknown user, never runs PBKDF2 on the server
 * side, while loading runs it exactly once per plaintext entry.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif

#include "auth_pg.h"
#include "px_alloc.h"
#include "px_authfile.h"
#include "px_b64.h"
#include "px_buf.h"
#include "px_err.h"
#include "px_test.h"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ------------------------------------------------------------------------------------------ */
/* PBKDF2 counter.                                                                            */

static int pbkdf2_calls;

typedef int (*pbkdf2_fn)(const char *, int, const unsigned char *, int, int, const EVP_MD *, int,
                         unsigned char *);

int PKCS5_PBKDF2_HMAC(const char *pass, int passlen, const unsigned char *salt, int saltlen,
                      int iter, const EVP_MD *digest, int keylen, unsigned char *out)
{
    static pbkdf2_fn real;
    if (!real) {
        void *sym = dlsym(RTLD_NEXT, "PKCS5_PBKDF2_HMAC");
        if (!sym)
            abort();
        memcpy(&real, &sym, sizeof(real));
    }
    pbkdf2_calls++;
    return real(pass, passlen, salt, saltlen, iter, digest, keylen, out);
}

/* The counter sees auth/'s PBKDF2: without this, a zero count would prove nothing. */
PX_TEST(pbkdf2_counter_sees_auth)
{
    px_dbuf_t v;
    px_dbuf_init(&v, 4096);
    int before = pbkdf2_calls;
    ASSERT_OK(auth_scram_make_verifier("pw", NULL, 0, 4096, &v));
    ASSERT_EQ(pbkdf2_calls - before, 1);
    px_dbuf_free(&v);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers.                                                                                   */

static const uint8_t key1[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t key2[32] = "fedcba9876543210fedcba9876543210";

/* A verifier with a fixed salt, made by auth/ (as an operator's tool or pg_authid would). */
static char *make_verifier(const char *password, const char *salt)
{
    px_dbuf_t v;
    px_dbuf_init(&v, 4096);
    ASSERT_OK(auth_scram_make_verifier(password, (const uint8_t *)salt, strlen(salt), 4096, &v));
    ASSERT(px_dbuf_cstr(&v));
    size_t n;
    return (char *)px_dbuf_steal(&v, &n);
}

static px_authfile_t *parse_ok(const char *text)
{
    px_authfile_t *af = NULL;
    char err[256] = "";
    int rc = px_authfile_parse(text, strlen(text), "users.txt", &af, err, sizeof(err));
    if (rc != 0)
        PX_FAIL("parse failed: %s", err);
    return af;
}

static void parse_err(const char *text, const char *want)
{
    px_authfile_t *af = NULL;
    char err[512] = "";
    ASSERT_EQ(px_authfile_parse(text, strlen(text), "users.txt", &af, err, sizeof(err)),
              CFG_E_PARSE);
    ASSERT(af == NULL);
    ASSERT_STR_EQ(err, want);
}

static char tmp_path[64];

static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/px_authfile_XXXXXX");
    int fd = mkstemp(tmp_path);
    ASSERT(fd >= 0);
    ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return tmp_path;
}

static px_authfile_t *load_ok(const char *text, const uint8_t *key)
{
    const char *path = write_tmp(text);
    px_authfile_t *af = NULL;
    char err[256] = "";
    int rc = px_authfile_load_keyed(path, key, key ? 32 : 0, &af, err, sizeof(err));
    unlink(path);
    if (rc != 0)
        PX_FAIL("load failed: %s", err);
    return af;
}

/* The "s=" value (base64 salt) and "i=" value of a verifier, into salt64 / *iter. */
static void verifier_parts(const char *v, char *salt64, size_t cap, int *iter)
{
    ASSERT(strncmp(v, "SCRAM-SHA-256$", 14) == 0);
    const char *colon = strchr(v + 14, ':');
    const char *dollar = colon ? strchr(colon, '$') : NULL;
    ASSERT(colon && dollar && (size_t)(dollar - colon - 1) < cap);
    *iter = atoi(v + 14);
    memcpy(salt64, colon + 1, (size_t)(dollar - colon - 1));
    salt64[dollar - colon - 1] = '\0';
}

/*
 * A whole SCRAM exchange against `verifier` with a real client that knows `password`. Returns
 * the server's verdict on the final message (0 or AUTH_E_FAILED); on 0 the client has also
 * checked the server's signature. *server_pbkdf2 counts the PBKDF2 calls made by the server
 * side only (the client derives its keys once, as libpq does, and that is not ours to count).
 */
static int exchange(const char *verifier, const char *password, int *server_pbkdf2)
{
    auth_scram_server_t *s = NULL;
    auth_scram_client_t *cl = NULL;
    px_dbuf_t a, b, c, d;
    px_dbuf_init(&a, 65536);
    px_dbuf_init(&b, 65536);
    px_dbuf_init(&c, 65536);
    px_dbuf_init(&d, 65536);
    int n0 = pbkdf2_calls;
    ASSERT_OK(auth_scram_server_new(verifier, NULL, &s));
    int server = pbkdf2_calls - n0;
    ASSERT_OK(auth_scram_client_new(password, NULL, &cl));
    ASSERT_OK(auth_scram_client_initial(cl, &a));
    n0 = pbkdf2_calls;
    ASSERT_OK(auth_scram_server_first(s, a.data, a.len, &b));
    server += pbkdf2_calls - n0;
    ASSERT_OK(auth_scram_client_continue(cl, b.data, b.len, &c));
    n0 = pbkdf2_calls;
    int rc = auth_scram_server_final(s, c.data, c.len, &d);
    server += pbkdf2_calls - n0;
    if (rc == 0) {
        ASSERT_OK(auth_scram_client_finish(cl, d.data, d.len));
        ASSERT(auth_scram_client_verified(cl));
    }
    auth_scram_server_free(s);
    auth_scram_client_free(cl);
    px_dbuf_free(&a);
    px_dbuf_free(&b);
    px_dbuf_free(&c);
    px_dbuf_free(&d);
    *server_pbkdf2 = server;
    return rc;
}

/*
 * What a peer that does not know any password does (a login flood with made-up names): a
 * client-first, then a client-final with an arbitrary proof, so that nothing on either side
 * runs PBKDF2. Returns the server's verdict and the server-first message in `first`.
 */
static int cheap_exchange(const char *verifier, px_dbuf_t *first)
{
    static const char cfirst[] = "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
    px_dbuf_t a, fin, out;
    px_dbuf_init(&a, 4096);
    px_dbuf_init(&fin, 4096);
    px_dbuf_init(&out, 4096);
    px_dbuf_put_str(&a, "SCRAM-SHA-256");
    px_dbuf_put_u32(&a, (uint32_t)strlen(cfirst));
    px_dbuf_put_cstr(&a, cfirst);
    auth_scram_server_t *s = NULL;
    ASSERT_OK(auth_scram_server_new(verifier, NULL, &s));
    px_dbuf_reset(first);
    ASSERT_OK(auth_scram_server_first(s, a.data, a.len, first));
    /* client-final = "c=biws,r=" <the whole nonce> ",p=" <base64 of 32 bytes>. */
    const char *r = (const char *)first->data + 2;
    const char *comma = memchr(r, ',', first->len - 2);
    ASSERT(comma);
    uint8_t proof[32];
    memset(proof, 0x5a, sizeof(proof));
    px_dbuf_put_cstr(&fin, "c=biws,r=");
    px_dbuf_put(&fin, r, (size_t)(comma - r));
    px_dbuf_put_cstr(&fin, ",p=");
    px_b64_encode(&fin, proof, sizeof(proof));
    ASSERT(!fin.failed);
    int rc = auth_scram_server_final(s, fin.data, fin.len, &out);
    auth_scram_server_free(s);
    px_dbuf_free(&a);
    px_dbuf_free(&fin);
    px_dbuf_free(&out);
    return rc;
}

/* The salt and iteration count a client sees in server-first ("r=...,s=<salt>,i=<n>"). */
static void first_salt(const px_dbuf_t *first, char *out, size_t cap)
{
    char buf[512];
    ASSERT(first->len < sizeof(buf));
    memcpy(buf, first->data, first->len);
    buf[first->len] = '\0';
    const char *s = strstr(buf, ",s=");
    ASSERT(s);
    snprintf(out, cap, "%s", s + 3);
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing.                                                                                   */

PX_TEST(basic_lookup)
{
    char *vb = make_verifier("bobpw", "0123456789abcdef");
    char text[1024];
    snprintf(text, sizeof(text),
             "; comment\n# another\n\n  \"alice\"   \"s3cret\"\n"
             "\"bob\" \"%s\" \"x\"\r\n"
             "\"we\"\"ird\" \"p\"\"w\"\n\"last\" \"noeol\"",
             vb);
    px_authfile_t *af = parse_ok(text);
    ASSERT_EQ(px_authfile_count(af), 4);
    /* Parsing alone keeps plaintext pending and hands out no password as a verifier. */
    ASSERT_EQ(px_authfile_pending(af), 3);
    ASSERT(px_authfile_lookup(af, "alice") == NULL);
    ASSERT_STR_EQ(px_authfile_lookup(af, "bob"), vb);
    ASSERT(px_authfile_lookup(af, "carol") == NULL);
    ASSERT(px_authfile_lookup(af, "Alice") == NULL);
    ASSERT(px_authfile_lookup(NULL, "alice") == NULL);
    /* A pending entry is a caller bug: no verifier, and the caller must fail the login. */
    char mock[PX_AUTHFILE_MOCK_MAX];
    bool known = false;
    ASSERT(px_authfile_scram_verifier(af, key1, sizeof(key1), "alice", mock, sizeof(mock),
                                      &known) == NULL);
    ASSERT(known);

    char err[256] = "";
    int before = pbkdf2_calls;
    ASSERT_OK(px_authfile_derive(af, key1, sizeof(key1), err, sizeof(err)));
    ASSERT_EQ(pbkdf2_calls - before, 3);
    ASSERT_EQ(px_authfile_pending(af), 0);
    /* A second derive has nothing left to do. */
    ASSERT_OK(px_authfile_derive(af, key1, sizeof(key1), err, sizeof(err)));
    ASSERT_EQ(pbkdf2_calls - before, 3);
    ASSERT_STR_EQ(px_authfile_lookup(af, "bob"), vb);
    const char *users[] = {"alice", "we\"ird", "last"};
    const char *pws[] = {"s3cret", "p\"w", "noeol"};
    for (int i = 0; i < 3; i++) {
        const char *v = px_authfile_lookup(af, users[i]);
        ASSERT(v && strncmp(v, "SCRAM-SHA-256$4096:", 19) == 0);
        int n;
        ASSERT_EQ(exchange(v, pws[i], &n), 0);
        ASSERT_EQ(n, 0);
    }
    px_authfile_free(af);
    px_free(vb);
}

PX_TEST(empty_file)
{
    px_authfile_t *af = parse_ok("");
    ASSERT_EQ(px_authfile_count(af), 0);
    px_authfile_free(af);
}

PX_TEST(errors_name_the_line_not_the_secret)
{
    parse_err("\"a\" \"1\"\nalice secret\n", "users.txt:2: expected a double-quoted field");
    parse_err("\"a\" \"unterminated\n", "users.txt:1: unterminated quoted field");
    parse_err("\"a\"\n", "users.txt:1: expected \"user\" \"password\"");
    parse_err("\"\" \"pw\"\n", "users.txt:1: empty user name");
    parse_err("\"a\" \"md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
              "users.txt:1: an MD5 secret cannot be used for scram-sha-256 client authentication "
              "(store the password or a SCRAM verifier)");
    parse_err("\"a\" \"1\"\n\"a\" \"2\"\n", "users.txt: user \"a\" is listed more than once");
    parse_err("\"a\" \"1\"\n\n\"b\" \"\"\n",
              "users.txt:3: empty password (PostgreSQL clients cannot log in with one)");
    static const char bad_verifier[] =
        "users.txt:1: malformed SCRAM-SHA-256 verifier (expected "
        "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, iterations 1-10000000)";
    /* Keys of the wrong length, a zero and an absurd iteration count, a missing part. */
    parse_err("\"a\" \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vydg==\"\n", bad_verifier);
    char *v = make_verifier("pw", "0123456789abcdef");
    char line[512];
    const char *iters[] = {"0", "2147483648", "10000001"};
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "\"a\" \"SCRAM-SHA-256$%s%s\"\n", iters[i], strchr(v, ':'));
        parse_err(line, bad_verifier);
    }
    snprintf(line, sizeof(line), "\"a\" \"%.*s\"\n", (int)(strrchr(v, ':') - v), v);
    parse_err(line, bad_verifier);
    px_free(v);
    char big[2000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "\"a\" \"", 5);
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = 0;
    parse_err(big, "users.txt:1: field too long");
}

/* ------------------------------------------------------------------------------------------ */
/* Plaintext entries become verifiers when the file is loaded.                                */

PX_TEST(load_converts_plaintext_once)
{
    char *vv = make_verifier("verysecret", "fixedsaltfixedsa");
    char text[1024];
    snprintf(text, sizeof(text),
             "\"sam\" \"plainpw\"\n\"vera\" \"%s\"\n\"uli\" \"p\xc3\xa4ss w\xc3\xb6rd\"\n", vv);
    int before = pbkdf2_calls;
    px_authfile_t *af = load_ok(text, NULL);
    /* One PBKDF2 per plaintext entry at load, none for the stored verifier. */
    ASSERT_EQ(pbkdf2_calls - before, 2);
    ASSERT_EQ(px_authfile_count(af), 3);
    ASSERT_EQ(px_authfile_pending(af), 0);
    ASSERT_STR_EQ(px_authfile_lookup(af, "vera"), vv);
    const char *vs = px_authfile_lookup(af, "sam");
    ASSERT(vs && strncmp(vs, "SCRAM-SHA-256$4096:", 19) == 0);
    ASSERT(!strstr(vs, "plainpw"));
    char salt64[64];
    int iter;
    verifier_parts(vs, salt64, sizeof(salt64), &iter);
    ASSERT_EQ(iter, AUTH_SCRAM_DEFAULT_ITERATIONS);
    ASSERT_EQ(strlen(salt64), 24); /* 16 bytes, as PostgreSQL's */

    /* Logins: the right password verifies, a wrong one is refused; the server side never runs
     * PBKDF2, however many logins. */
    int n;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(exchange(vs, "plainpw", &n), 0);
        ASSERT_EQ(n, 0);
    }
    ASSERT_EQ(exchange(vs, "plainpW", &n), AUTH_E_FAILED);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(exchange(px_authfile_lookup(af, "vera"), "verysecret", &n), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(exchange(px_authfile_lookup(af, "vera"), "plainpw", &n), AUTH_E_FAILED);
    /* Non-ASCII: SASLprep'd on both sides, as PostgreSQL and libpq do. */
    ASSERT_EQ(exchange(px_authfile_lookup(af, "uli"), "p\xc3\xa4ss w\xc3\xb6rd", &n), 0);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(exchange(px_authfile_lookup(af, "uli"), "pass word", &n), AUTH_E_FAILED);

    /* Through the function the client code calls. */
    char mock[PX_AUTHFILE_MOCK_MAX];
    bool known = false;
    ASSERT(px_authfile_scram_verifier(af, key1, sizeof(key1), "sam", mock, sizeof(mock), &known) ==
           vs);
    ASSERT(known);
    px_authfile_free(af);
    px_free(vv);
}

PX_TEST(keyed_salts_follow_the_password)
{
    static const char v1[] = "\"a\" \"one\"\n\"b\" \"same\"\n";
    static const char v2[] = "\"a\" \"two\"\n\"b\" \"same\"\n";
    px_authfile_t *x = load_ok(v1, key1);
    px_authfile_t *y = load_ok(v1, key1);
    px_authfile_t *z = load_ok(v2, key1);
    px_authfile_t *w = load_ok(v1, key2);
    px_authfile_t *r1 = load_ok(v1, NULL);
    px_authfile_t *r2 = load_ok(v1, NULL);
    /* Reloading an unchanged file keeps each verifier (and so the salt a client sees). */
    ASSERT_STR_EQ(px_authfile_lookup(x, "a"), px_authfile_lookup(y, "a"));
    ASSERT_STR_EQ(px_authfile_lookup(x, "b"), px_authfile_lookup(z, "b"));
    /* A changed password gets a new salt; another process (key) another salt. */
    char s1[64], s2[64];
    int it;
    verifier_parts(px_authfile_lookup(x, "a"), s1, sizeof(s1), &it);
    verifier_parts(px_authfile_lookup(z, "a"), s2, sizeof(s2), &it);
    ASSERT(strcmp(s1, s2) != 0);
    verifier_parts(px_authfile_lookup(w, "a"), s2, sizeof(s2), &it);
    ASSERT(strcmp(s1, s2) != 0);
    /* Two users with one password still get different salts. */
    verifier_parts(px_authfile_lookup(x, "b"), s2, sizeof(s2), &it);
    ASSERT(strcmp(s1, s2) != 0);
    /* Without a key, salts are random. */
    ASSERT(strcmp(px_authfile_lookup(r1, "a"), px_authfile_lookup(r2, "a")) != 0);
    int n;
    ASSERT_EQ(exchange(px_authfile_lookup(z, "a"), "two", &n), 0);
    ASSERT_EQ(exchange(px_authfile_lookup(z, "a"), "one", &n), AUTH_E_FAILED);
    ASSERT_EQ(exchange(px_authfile_lookup(r2, "b"), "same", &n), 0);
    px_authfile_free(x);
    px_authfile_free(y);
    px_authfile_free(z);
    px_authfile_free(w);
    px_authfile_free(r1);
    px_authfile_free(r2);

    px_authfile_t *af = parse_ok(v1);
    char err[128] = "";
    ASSERT_EQ(px_authfile_derive(af, key1, 8, err, sizeof(err)), UV_EINVAL);
    ASSERT_EQ(px_authfile_pending(af), 2);
    px_authfile_free(af);
}

PX_TEST(load_from_file)
{
    px_authfile_t *af = load_ok("\"u1\" \"p1\"\n\"u2\" \"p2\"\n", NULL);
    int n;
    ASSERT_EQ(exchange(px_authfile_lookup(af, "u2"), "p2", &n), 0);
    px_authfile_free(af);
    char err[256] = "";
    ASSERT_EQ(px_authfile_load("/nonexistent/users.txt", &af, err, sizeof(err)), CFG_E_IO);
    ASSERT(af == NULL);
    ASSERT(strstr(err, "/nonexistent/users.txt: cannot open"));
    /* Errors from the file name its path and line. */
    const char *path = write_tmp("\"u1\" \"p1\"\n\"u2\" \"\"\n");
    ASSERT_EQ(px_authfile_load(path, &af, err, sizeof(err)), CFG_E_PARSE);
    ASSERT(af == NULL);
    char want[128];
    snprintf(want, sizeof(want), "%s:2: empty password", path);
    ASSERT(strncmp(err, want, strlen(want)) == 0);
    unlink(path);
}

/* ------------------------------------------------------------------------------------------ */
/* Unknown users: the mock verifier.                                                          */

PX_TEST(mock_verifier_per_user_and_process)
{
    char a1[PX_AUTHFILE_MOCK_MAX], a2[PX_AUTHFILE_MOCK_MAX], b[PX_AUTHFILE_MOCK_MAX];
    char k2[PX_AUTHFILE_MOCK_MAX];
    int before = pbkdf2_calls;
    ASSERT_OK(px_authfile_mock_verifier(key1, sizeof(key1), "mallory", a1, sizeof(a1)));
    ASSERT_OK(px_authfile_mock_verifier(key1, sizeof(key1), "mallory", a2, sizeof(a2)));
    ASSERT_OK(px_authfile_mock_verifier(key1, sizeof(key1), "mallorz", b, sizeof(b)));
    ASSERT_OK(px_authfile_mock_verifier(key2, sizeof(key2), "mallory", k2, sizeof(k2)));
    ASSERT_EQ(pbkdf2_calls, before);
    ASSERT_STR_EQ(a1, a2);
    ASSERT(strcmp(a1, b) != 0);
    ASSERT(strcmp(a1, k2) != 0);
    /* PostgreSQL's default shape, like a verifier made from a password. */
    char s1[64], s2[64];
    int it;
    verifier_parts(a1, s1, sizeof(s1), &it);
    ASSERT_EQ(it, 4096);
    ASSERT_EQ(strlen(s1), 24);
    verifier_parts(b, s2, sizeof(s2), &it);
    ASSERT(strcmp(s1, s2) != 0);
    /* A well-formed verifier that the server accepts, and that no password matches. */
    int n;
    ASSERT_EQ(exchange(a1, "", &n), AUTH_E_FAILED);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(exchange(a1, "mallory", &n), AUTH_E_FAILED);
    /* Even the empty user name gets one. */
    ASSERT_OK(px_authfile_mock_verifier(key1, sizeof(key1), "", a2, sizeof(a2)));
    ASSERT(strcmp(a1, a2) != 0);
    /* Misuse. */
    ASSERT_EQ(px_authfile_mock_verifier(key1, 8, "x", a2, sizeof(a2)), UV_EINVAL);
    ASSERT_EQ(px_authfile_mock_verifier(NULL, 32, "x", a2, sizeof(a2)), UV_EINVAL);
    ASSERT_EQ(px_authfile_mock_verifier(key1, 32, "x", a2, 100), UV_EINVAL);
}

PX_TEST(unknown_users_never_run_pbkdf2)
{
    char *vv = make_verifier("verysecret", "fixedsaltfixedsa");
    char text[512];
    snprintf(text, sizeof(text), "\"sam\" \"plainpw\"\n\"vera\" \"%s\"\n", vv);
    px_authfile_t *af = load_ok(text, key1);
    px_dbuf_t first;
    px_dbuf_init(&first, 4096);
    char mock[PX_AUTHFILE_MOCK_MAX];
    char salt_a[128] = "", salt[128];
    int before = pbkdf2_calls;
    /* A flood of logins with made-up names, then a repeat: salts stable per name. */
    for (int i = 0; i < 200; i++) {
        char user[32];
        snprintf(user, sizeof(user), "nobody%d", i % 100);
        bool known = true;
        const char *v =
            px_authfile_scram_verifier(af, key1, sizeof(key1), user, mock, sizeof(mock), &known);
        ASSERT(v == mock);
        ASSERT(!known);
        ASSERT_EQ(cheap_exchange(v, &first), AUTH_E_FAILED);
        first_salt(&first, salt, sizeof(salt));
        ASSERT(strstr(salt, ",i=4096"));
        if (i == 0)
            snprintf(salt_a, sizeof(salt_a), "%s", salt);
        else if (i == 100)
            ASSERT_STR_EQ(salt, salt_a);
        else
            ASSERT(strcmp(salt, salt_a) != 0);
    }
    /* Known users (a converted plaintext entry and a stored verifier) cost no PBKDF2 either. */
    for (int i = 0; i < 10; i++) {
        bool known = false;
        const char *v = px_authfile_scram_verifier(af, key1, sizeof(key1), i % 2 ? "sam" : "vera",
                                                   mock, sizeof(mock), &known);
        ASSERT(known && v != mock);
        ASSERT_EQ(cheap_exchange(v, &first), AUTH_E_FAILED);
    }
    /* No file at all (af NULL): every user is unknown. */
    bool known = true;
    const char *v =
        px_authfile_scram_verifier(NULL, key1, sizeof(key1), "sam", mock, sizeof(mock), &known);
    ASSERT(v == mock && !known);
    ASSERT_EQ(pbkdf2_calls, before);
    /* The stored verifier's own salt reaches the client. */
    v = px_authfile_scram_verifier(af, key1, sizeof(key1), "vera", mock, sizeof(mock), &known);
    ASSERT_EQ(cheap_exchange(v, &first), AUTH_E_FAILED);
    first_salt(&first, salt, sizeof(salt));
    ASSERT_STR_EQ(salt, "Zml4ZWRzYWx0Zml4ZWRzYQ==,i=4096");
    px_dbuf_free(&first);
    px_authfile_free(af);
    px_free(vv);
}
