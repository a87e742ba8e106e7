/*
 * PostgreSQL and Redshift password exchanges as pure functions over bytes: cleartext (code 3),
 * MD5 (code 5), SCRAM-SHA-256 client and server (codes 10-12, RFC 5802/7677), and Redshift's
 * SHA-256 "extensible digest" (code 13; reference/redshift-aws.md §1.3).
 *
 * Nothing here frames PostgreSQL messages or touches sockets: the caller passes the payload of an
 * AuthenticationRequest after the Int32 code and gets back the body of the answer (what follows
 * the type byte and length of 'p' or 'd'). Every secret-bearing buffer is wiped before it is
 * freed. Errors are AUTH_E_* codes from px_err.h, plus UV_ENOMEM, UV_EINVAL for arguments that
 * come from our own side (configuration, caller) rather than from the peer, and PX_E_STATE for
 * SCRAM steps called out of order.
 */
#ifndef AUTH_PG_H
#define AUTH_PG_H

#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AuthenticationRequest codes (the Int32 after the length of an 'R' message). */
enum {
    AUTH_REQ_OK = 0,
    AUTH_REQ_CLEARTEXT = 3,
    AUTH_REQ_MD5 = 5,
    AUTH_REQ_SASL = 10,
    AUTH_REQ_SASL_CONTINUE = 11,
    AUTH_REQ_SASL_FINAL = 12,
    AUTH_REQ_DIGEST = 13,
};

/*
 * Iteration counts a SCRAM server may ask of our client, and that verifiers may carry.
 * Minimum 1: PostgreSQL's scram_iterations accepts 1 and libpq accepts any count >= 1.
 * Maximum 10,000,000: the count is CPU time a server can make the proxy spend per login (about
 * 0.19 s per million iterations on the test machines), on one of libuv's few thread-pool
 * threads when the proxy computes it there. Ten million (about 2 s) is 2,400 times
 * PostgreSQL's default of 4096 and 16 times OWASP's 2023 advice for PBKDF2-SHA-256, so no sane
 * server setting is refused, while a hostile or broken server cannot tie up a thread (or a
 * caller's loop) for minutes with i=2147483647.
 */
#define AUTH_SCRAM_MIN_ITERATIONS 1
#define AUTH_SCRAM_MAX_ITERATIONS 10000000
/* Iterations and salt length for verifiers made from plaintext (PostgreSQL's defaults). */
#define AUTH_SCRAM_DEFAULT_ITERATIONS 4096
#define AUTH_SCRAM_DEFAULT_SALT_LEN   16

/* MD5: "md5" + hex(md5(hex(md5(password || user)) || salt)), NUL-terminated in out[36]. `user`
 * is the startup user exactly (IAM:/IAMA:/IAMR: prefix included). Returns 0, or UV_ENOMEM when
 * OpenSSL cannot compute MD5 (out of memory, or MD5 disabled by a FIPS configuration); out is
 * then "". */
int auth_md5_response(const char *user, const char *password, const uint8_t salt[4],
                      char out[36]) PX_MUSTCHECK;

/* The stored-secret form "md5" + hex(md5(password || user)) used by pg_authid and auth files.
 * Returns as auth_md5_response. */
int auth_md5_secret(const char *user, const char *password, char out[36]) PX_MUSTCHECK;

/*
 * Redshift digest (code 13). `req` is the payload after the code: Int32 algo, Int32 saltLen,
 * salt, Int32 nonceLen, server nonce, and nothing after. `client_nonce` is the decimal
 * milliseconds since the epoch as ASCII digits (tests pass a fixed one; NULL reads the clock).
 * Appends the body of the 'd' message to out: Int32 32, d2, Int32 len, client nonce.
 * Returns 0, AUTH_E_PROTO for a malformed request (short, trailing bytes, negative or
 * out-of-bounds lengths, salt or nonce above 1024 bytes), AUTH_E_MECH for algo != 0,
 * UV_EINVAL for a client nonce that is not 1-20 digits, UV_ENOMEM.
 */
int auth_digest_response(const uint8_t *req, size_t reqlen, const char *password,
                         const char *client_nonce, px_dbuf_t *out) PX_MUSTCHECK;

/*
 * SASL mechanism choice: `req` is the payload of AuthenticationSASL (NUL-terminated names ending
 * with an empty name, nothing after). Returns 0 when SCRAM-SHA-256 is offered, AUTH_E_MECH when
 * not (only SCRAM-SHA-256-PLUS, say, or an empty list), AUTH_E_PROTO when malformed.
 */
int auth_sasl_choose(const uint8_t *req, size_t reqlen) PX_MUSTCHECK;

/* SCRAM-SHA-256 client (no channel binding: "n,,"). One object per login. */
typedef struct auth_scram_client auth_scram_client_t;

/* `nonce` NULL: 18 random bytes, base64 (tests pass RFC 7677's nonce; a given nonce must be
 * 1-256 printable ASCII characters other than ','). The password is SASLprep'd where it is valid
 * UTF-8 without prohibited characters; otherwise used as raw bytes, as libpq does. */
int auth_scram_client_new(const char *password, const char *nonce,
                          auth_scram_client_t **out) PX_MUSTCHECK;
/* The SCRAM user name sent in client-first, before auth_scram_client_initial. The default is
 * empty, as libpq sends it: PostgreSQL takes the user from the startup packet and ignores this
 * one. Set it for servers that do not (and for RFC 7677's example). ',' and '=' are escaped. */
int auth_scram_client_set_user(auth_scram_client_t *s, const char *user) PX_MUSTCHECK;
/* Body of SASLInitialResponse: "SCRAM-SHA-256\0" Int32 len client-first-message. */
int auth_scram_client_initial(auth_scram_client_t *s, px_dbuf_t *out) PX_MUSTCHECK;
/* Takes server-first (payload of code 11) and appends client-final (body of 'p'). AUTH_E_PROTO
 * for a malformed message, a nonce that does not extend ours, or an iteration count outside
 * AUTH_SCRAM_MIN/MAX_ITERATIONS; AUTH_E_MECH for a mandatory extension ("m="). Runs PBKDF2
 * on the calling thread: the three steps below in a row. */
int auth_scram_client_continue(auth_scram_client_t *s, const uint8_t *server_first, size_t n,
                               px_dbuf_t *out) PX_MUSTCHECK;
/*
 * auth_scram_client_continue in three steps, so that the PBKDF2 (as many iterations as the
 * server asks, up to AUTH_SCRAM_MAX_ITERATIONS: seconds of CPU) can run on a worker thread:
 *
 * - prepare, on the owner's thread: checks server-first exactly as continue does and returns
 *   the same errors; derives no key, so malformed input fails fast. Builds AuthMessage.
 * - compute, on any one thread: PBKDF2, the proof and the server signature we will expect,
 *   kept in the object; wipes the password. 0, or UV_ENOMEM when OpenSSL cannot compute. It
 *   reads and writes only the object and allocates nothing itself (OpenSSL allocates inside,
 *   through the process's hooks, which px_malloc keeps thread-safe), so it may run on another
 *   thread provided nothing else touches the object from prepare's return until compute has
 *   returned (not even auth_scram_client_free) and the hand-over between the threads orders
 *   memory (a mutex, or uv_queue_work's own).
 * - final, on the owner's thread: appends client-final (body of 'p') and frees the password.
 *
 * Each returns PX_E_STATE out of order; any failure leaves the object refusing later calls.
 */
int auth_scram_client_prepare(auth_scram_client_t *s, const uint8_t *server_first,
                              size_t n) PX_MUSTCHECK;
int auth_scram_client_compute(auth_scram_client_t *s) PX_MUSTCHECK;
int auth_scram_client_final(auth_scram_client_t *s, px_dbuf_t *out) PX_MUSTCHECK;
/* The iteration count server-first asked for, once prepare accepted it (0 before; for logs). */
int auth_scram_client_iterations(const auth_scram_client_t *s);
/* Verifies server-final (payload of code 12); AUTH_E_VERIFY when the server signature is wrong,
 * AUTH_E_FAILED when the server reports an error ("e="), AUTH_E_PROTO when malformed. */
int auth_scram_client_finish(auth_scram_client_t *s, const uint8_t *server_final,
                             size_t n) PX_MUSTCHECK;
/* True once finish verified the server's signature. A server that sends AuthenticationOk
 * before that has not proven it knows the password: the caller must refuse the login. */
bool auth_scram_client_verified(const auth_scram_client_t *s);
void auth_scram_client_free(auth_scram_client_t *s);

/*
 * SCRAM-SHA-256 server, for client_auth = scram-sha-256 against an auth file. The verifier is
 * PostgreSQL's "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>"; a plaintext
 * password is turned into one with a random salt and 4096 iterations. NULL runs a mock exchange
 * for an unknown user that fails at the final step like a wrong password; its salt is random per
 * call, so callers that must hide which users exist should pass a fixed fake verifier instead.
 * A string that starts with "SCRAM-SHA-256$" but is malformed is UV_EINVAL.
 */
typedef struct auth_scram_server auth_scram_server_t;

int auth_scram_server_new(const char *verifier_or_password, const char *nonce,
                          auth_scram_server_t **out) PX_MUSTCHECK;
/* Takes SASLInitialResponse's body; appends server-first (payload for code 11). AUTH_E_MECH for
 * another mechanism, channel binding ("p=" or SCRAM-SHA-256-PLUS), an authorization identity or
 * a mandatory extension; AUTH_E_PROTO when malformed. "y,," is accepted: we never offer
 * channel binding, so a client that could use it is right to proceed without. */
int auth_scram_server_first(auth_scram_server_t *s, const uint8_t *initial, size_t n,
                            px_dbuf_t *out) PX_MUSTCHECK;
/* Takes client-final; appends server-final (payload for code 12). AUTH_E_FAILED for a wrong
 * proof (or a mock exchange), AUTH_E_PROTO when malformed or when the nonce or channel-binding
 * data does not match. */
int auth_scram_server_final(auth_scram_server_t *s, const uint8_t *client_final, size_t n,
                            px_dbuf_t *out) PX_MUSTCHECK;
void auth_scram_server_free(auth_scram_server_t *s);

/* Builds a SCRAM verifier from a password (auth-file tooling and tests); salt NULL picks
 * AUTH_SCRAM_DEFAULT_SALT_LEN random bytes. UV_EINVAL for an empty salt or iterations outside
 * AUTH_SCRAM_MIN/MAX_ITERATIONS. */
int auth_scram_make_verifier(const char *password, const uint8_t *salt, size_t saltlen,
                             int iterations, px_dbuf_t *out) PX_MUSTCHECK;

/*
 * SASLprep (RFC 4013) exactly as PostgreSQL's pg_saslprep applies it: pure ASCII passes
 * unchanged; otherwise non-ASCII spaces map to U+0020, "commonly mapped to nothing" characters
 * are dropped, the result is NFKC-normalised, and prohibited or unassigned (Unicode 3.2)
 * characters and bad bidirectional strings are refused. On 0, *out is a px_malloc'd string
 * the caller frees with px_free_secret. AUTH_E_PROTO: not valid UTF-8; AUTH_E_FAILED:
 * prohibited (or empty after mapping); UV_ENOMEM.
 */
int auth_saslprep(const char *in, char **out) PX_MUSTCHECK;

/* Internal to auth_pg_*.c: the Unicode tables generated into auth_pg_unicode.c. */
int auth_pg__ccc(uint32_t cp);
/* Full compatibility decomposition of cp (Hangul excluded): its code points, or NULL. */
const uint32_t *auth_pg__decompose(uint32_t cp, size_t *len);
/* Primary composite of (a, b) (Hangul excluded), or 0. */
uint32_t auth_pg__compose(uint32_t a, uint32_t b);
enum auth_pg__sp_table {
    AUTH_PG_SP_SPACE,      /* RFC 3454 C.1.2, mapped to U+0020 */
    AUTH_PG_SP_NOTHING,    /* B.1, mapped to nothing */
    AUTH_PG_SP_PROHIBITED, /* C.1.2, C.2.1, C.2.2, C.3-C.9 */
    AUTH_PG_SP_UNASSIGNED, /* A.1 */
    AUTH_PG_SP_RANDAL,     /* D.1 */
    AUTH_PG_SP_L,          /* D.2 */
};
bool auth_pg__sp_in(enum auth_pg__sp_table t, uint32_t cp);

#endif
