/*
 * PostgreSQL and Redshift password exchanges as pure functions over bytes: cleartext (code 3),
 * MD5 (code 5), SCRAM-SHA-256 client and server (codes 10-12, RFC 5802/7677), and Redshift's
 * SHA-256 "extensible digest" (code 13; reference/redshift-aws.md §1.3).
 *
 * Nothing here frames PostgreSQL messages or touches sockets: the caller passes the payload of an
 * AuthenticationRequest after the Int32 code and gets back the body of the answer (what follows
 * the type byte and length of 'p' or 'd'). Every secret-bearing buffer is wiped before it is
 * freed. Errors are AUTH_E_* codes from px_err.h.
 */
#ifndef AUTH_PG_H
#define AUTH_PG_H

#include "px_buf.h"
#include "px_util.h"

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

/* MD5: "md5" + hex(md5(hex(md5(password || user)) || salt)), NUL-terminated in out[36]. `user`
 * is the startup user exactly (IAM:/IAMA:/IAMR: prefix included). */
void auth_md5_response(const char *user, const char *password, const uint8_t salt[4],
                       char out[36]);

/* The stored-secret form "md5" + hex(md5(password || user)) used by pg_authid and auth files. */
void auth_md5_secret(const char *user, const char *password, char out[36]);

/*
 * Redshift digest (code 13). `req` is the payload after the code: Int32 algo, Int32 saltLen,
 * salt, Int32 nonceLen, server nonce. `client_nonce` is the decimal milliseconds since the epoch
 * as ASCII (the caller passes it so tests are deterministic). Appends the body of the 'd'
 * message to out. Returns 0, AUTH_E_PROTO for a malformed request, AUTH_E_MECH for algo != 0.
 */
int auth_digest_response(const uint8_t *req, size_t reqlen, const char *password,
                         const char *client_nonce, px_dbuf_t *out) PX_MUSTCHECK;

/*
 * SASL mechanism choice: `req` is the payload of AuthenticationSASL (NUL-terminated names ending
 * with an empty name). Returns 0 when SCRAM-SHA-256 is offered, AUTH_E_MECH when not (only
 * SCRAM-SHA-256-PLUS, say), AUTH_E_PROTO when malformed.
 */
int auth_sasl_choose(const uint8_t *req, size_t reqlen) PX_MUSTCHECK;

/* SCRAM-SHA-256 client (no channel binding: "n,,"). One object per login. */
typedef struct auth_scram_client auth_scram_client_t;

/* `nonce` NULL: 18 random bytes, base64 (tests pass RFC 7677's nonce). The password is SASLprep'd
 * where it is ASCII-printable or valid UTF-8 (RFC 4013 subset); otherwise used as raw bytes, as
 * libpq does. */
int auth_scram_client_new(const char *password, const char *nonce,
                          auth_scram_client_t **out) PX_MUSTCHECK;
/* Body of SASLInitialResponse: "SCRAM-SHA-256\0" Int32 len client-first-message. */
int auth_scram_client_initial(auth_scram_client_t *s, px_dbuf_t *out) PX_MUSTCHECK;
/* Takes server-first (payload of code 11) and appends client-final (body of 'p'). */
int auth_scram_client_continue(auth_scram_client_t *s, const uint8_t *server_first, size_t n,
                               px_dbuf_t *out) PX_MUSTCHECK;
/* Verifies server-final (payload of code 12); AUTH_E_VERIFY when the server signature is wrong. */
int auth_scram_client_finish(auth_scram_client_t *s, const uint8_t *server_final,
                             size_t n) PX_MUSTCHECK;
void auth_scram_client_free(auth_scram_client_t *s);

/*
 * SCRAM-SHA-256 server, for client_auth = scram-sha-256 against an auth file. The verifier is
 * PostgreSQL's "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>"; a plaintext
 * password is turned into one with a random salt and 4096 iterations.
 */
typedef struct auth_scram_server auth_scram_server_t;

int auth_scram_server_new(const char *verifier_or_password, const char *nonce,
                          auth_scram_server_t **out) PX_MUSTCHECK;
/* Takes SASLInitialResponse's body; appends server-first (payload for code 11). AUTH_E_MECH for
 * another mechanism or channel binding, AUTH_E_PROTO when malformed. */
int auth_scram_server_first(auth_scram_server_t *s, const uint8_t *initial, size_t n,
                            px_dbuf_t *out) PX_MUSTCHECK;
/* Takes client-final; appends server-final (payload for code 12). AUTH_E_FAILED for a wrong
 * proof, AUTH_E_PROTO when malformed or when the nonce does not match. */
int auth_scram_server_final(auth_scram_server_t *s, const uint8_t *client_final, size_t n,
                            px_dbuf_t *out) PX_MUSTCHECK;
void auth_scram_server_free(auth_scram_server_t *s);

/* Builds a SCRAM verifier from a password (auth-file tooling and tests). */
int auth_scram_make_verifier(const char *password, const uint8_t *salt, size_t saltlen,
                             int iterations, px_dbuf_t *out) PX_MUSTCHECK;

#endif
