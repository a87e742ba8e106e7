/*
 * The client auth file for client_auth = scram-sha-256, in pgbouncer's userlist.txt format: one
 * user per line, `"name" "secret"`, where a double quote inside a field is written twice and the
 * secret is a plaintext password or a PostgreSQL SCRAM verifier
 * ("SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"). MD5 secrets ("md5...") cannot serve
 * SCRAM, and an empty password cannot log in: both are rejected with a line number, as is a
 * malformed SCRAM verifier. Blank lines and lines starting with ';' or '#' are ignored, as are
 * any fields after the second.
 *
 * A login only ever runs HMACs and SHA-256 against a stored verifier, never PBKDF2: plaintext
 * passwords are turned into verifiers when the file is loaded (at startup, or on reload off the
 * loop thread) and then wiped, and an unknown user gets a mock verifier derived by HMAC. So an
 * unauthenticated peer cannot make the event loop spend PBKDF2 time on its behalf.
 *
 * Parsing is a pure function (fuzzed) and does not run PBKDF2 either; px_authfile_derive does.
 */
#ifndef PX_AUTHFILE_H
#define PX_AUTHFILE_H

#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct px_authfile px_authfile_t;

/* Largest auth file accepted (bytes) and longest field. */
#define PX_AUTHFILE_MAX       (16u << 20)
#define PX_AUTHFILE_FIELD_MAX 1024u

/* Room for a mock verifier: "SCRAM-SHA-256$4096:" + 24 + "$" + 44 + ":" + 44 + NUL is 134. */
#define PX_AUTHFILE_MOCK_MAX 160u
/* Smallest key accepted for mock verifiers and keyed salts (bytes). */
#define PX_AUTHFILE_KEY_MIN 16u

/* Parses `text`; `name` is used in error messages ("name:line: message"). Plaintext entries stay
 * plaintext (px_authfile_pending counts them) until px_authfile_derive. Returns 0, UV_ENOMEM or
 * CFG_E_PARSE with the message in err. Never runs PBKDF2. */
int px_authfile_parse(const char *text, size_t n, const char *name, px_authfile_t **out, char *err,
                      size_t errlen) PX_MUSTCHECK;

/*
 * Turns every plaintext entry into a SCRAM verifier (PBKDF2-HMAC-SHA-256 with
 * AUTH_SCRAM_DEFAULT_ITERATIONS, the cost of one login each) and wipes the plaintext: CPU work
 * that belongs at startup or on a worker thread, never on the loop. With `key` (at least
 * PX_AUTHFILE_KEY_MIN bytes, e.g. the process's mock key) each salt is an HMAC of the user and
 * password, so reloading an unchanged file keeps every salt while a changed password gets a new
 * one, as in PostgreSQL; key NULL picks random salts. Returns 0, UV_EINVAL for a short key,
 * UV_ENOMEM or CFG_E_PARSE (with "name:line: ..." in err; the file's name is the one given to
 * parse). Entries already derived are left alone, so a second call does nothing.
 */
int px_authfile_derive(px_authfile_t *af, const uint8_t *key, size_t keylen, char *err,
                       size_t errlen) PX_MUSTCHECK;

/* Reads, parses and derives a file (keyed salts when key is not NULL). CFG_E_IO when it cannot
 * be read. Blocking file I/O and PBKDF2: startup or a worker thread only. */
int px_authfile_load_keyed(const char *path, const uint8_t *key, size_t keylen, px_authfile_t **out,
                           char *err, size_t errlen) PX_MUSTCHECK;
/* px_authfile_load_keyed with random salts for plaintext entries. */
int px_authfile_load(const char *path, px_authfile_t **out, char *err, size_t errlen) PX_MUSTCHECK;

/* The SCRAM verifier of a listed user, or NULL (unknown user, or a plaintext entry not derived
 * yet). The string belongs to af. */
const char *px_authfile_lookup(const px_authfile_t *af, const char *user);

/*
 * Mock verifier for a user who is not in the file, in PostgreSQL's default shape (16-byte salt,
 * 4096 iterations) so the exchange looks like a real one. Salt and keys are HMAC-SHA-256 of the
 * user name under `key` (random per process): repeated attempts for one name see the same salt,
 * as they would for a real user (PostgreSQL's scram_mock_salt), different names see different
 * ones, and nobody knows a password that matches. HMACs only, never PBKDF2. Writes a
 * NUL-terminated verifier into out (PX_AUTHFILE_MOCK_MAX bytes). Returns 0, UV_EINVAL (short
 * key or out), UV_ENOMEM (HMAC failed).
 */
int px_authfile_mock_verifier(const uint8_t *key, size_t keylen, const char *user, char *out,
                              size_t outcap) PX_MUSTCHECK;

/*
 * What a SCRAM login for `user` runs against: the user's verifier (*known = true), or for a user
 * not in the file (or af NULL) a mock verifier written into `mock` (*known = false), so both
 * take the same path at the same cost. The result always starts with "SCRAM-SHA-256$": feeding
 * it to auth_scram_server_new never runs PBKDF2. NULL when the mock cannot be computed or the
 * entry was never derived (a caller bug); the login must then fail. The caller wipes `mock`.
 */
const char *px_authfile_scram_verifier(const px_authfile_t *af, const uint8_t *key, size_t keylen,
                                       const char *user, char *mock, size_t mockcap, bool *known);

size_t px_authfile_count(const px_authfile_t *af);
/* Entries still holding a plaintext password (0 after px_authfile_derive). */
size_t px_authfile_pending(const px_authfile_t *af);
void px_authfile_free(px_authfile_t *af);

#endif
