/*
 * The client auth file for client_auth = scram-sha-256, in pgbouncer's userlist.txt format: one
 * user per line, `"name" "secret"`, where a double quote inside a field is written twice and the
 * secret is a plaintext password or a PostgreSQL SCRAM verifier
 * ("SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"). MD5 secrets ("md5...") cannot serve
 * SCRAM and are rejected with a line number. Blank lines and lines starting with ';' or '#' are
 * ignored, as are any fields after the second.
 *
 * Parsing is a pure function (fuzzed); loading reads the file and runs at startup or, on reload,
 * off the loop thread. Secrets are wiped when the object is freed.
 */
#ifndef PX_AUTHFILE_H
#define PX_AUTHFILE_H

#include "px_util.h"

#include <stddef.h>

typedef struct px_authfile px_authfile_t;

/* Largest auth file accepted (bytes) and longest field. */
#define PX_AUTHFILE_MAX       (16u << 20)
#define PX_AUTHFILE_FIELD_MAX 1024u

/* Parses `text`; `name` is used in error messages ("name:line: message"). Returns 0, UV_ENOMEM
 * or CFG_E_PARSE with the message in err. */
int px_authfile_parse(const char *text, size_t n, const char *name, px_authfile_t **out, char *err,
                      size_t errlen) PX_MUSTCHECK;
/* Reads and parses a file. CFG_E_IO when it cannot be read. */
int px_authfile_load(const char *path, px_authfile_t **out, char *err, size_t errlen) PX_MUSTCHECK;
/* The secret for a user, or NULL. */
const char *px_authfile_lookup(const px_authfile_t *af, const char *user);
size_t px_authfile_count(const px_authfile_t *af);
void px_authfile_free(px_authfile_t *af);

#endif
