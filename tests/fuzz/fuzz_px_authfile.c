/*
 * Fuzz target: the client auth file parser (px_authfile_parse, pgbouncer's userlist.txt
 * format) and the choice of verifier for a login (px_authfile_scram_verifier, whose user name
 * comes from a peer's startup packet). Arbitrary text must parse or be refused with a message;
 * a parsed file never hands out a plaintext password as a verifier; every verifier it hands
 * out, the mock one for unknown users included, is one the SCRAM server accepts without
 * PBKDF2 (only strings with the verifier prefix are parsed rather than stretched). Derivation
 * (PBKDF2) is left out on purpose: it would only make every input slow.
 */
#include "auth_pg.h"
#include "px_authfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[32] = "fuzz-key-fuzz-key-fuzz-key-fuzz-";

/* The verifier chosen for `user` must start with the prefix and be accepted by the server. */
static void check_user(const px_authfile_t *af, const char *user)
{
    char mock[PX_AUTHFILE_MOCK_MAX];
    bool known = false;
    const char *v =
        px_authfile_scram_verifier(af, key, sizeof(key), user, mock, sizeof(mock), &known);
    if (known && px_authfile_lookup(af, user) != v)
        abort();
    if (!v) {
        /* Only a plaintext entry that was never derived has no verifier. */
        if (!known || px_authfile_pending(af) == 0)
            abort();
        return;
    }
    if (strncmp(v, "SCRAM-SHA-256$", 14) != 0)
        abort();
    auth_scram_server_t *s = NULL;
    if (auth_scram_server_new(v, "fuzz", &s) != 0)
        abort();
    auth_scram_server_free(s);
    if (!known) {
        char again[PX_AUTHFILE_MOCK_MAX];
        if (px_authfile_mock_verifier(key, sizeof(key), user, again, sizeof(again)) != 0 ||
            strcmp(again, mock) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_authfile_t *af = NULL;
    char err[512];
    err[0] = '\0';
    /* A user name from the input: up to the first NUL or newline, at most 255 bytes. */
    char user[256];
    size_t ulen = 0;
    while (ulen < size && ulen < sizeof(user) - 1 && data[ulen] != 0 && data[ulen] != '\n')
        ulen++;
    memcpy(user, data, ulen);
    user[ulen] = '\0';

    int rc = px_authfile_parse((const char *)data, size, "fuzz", &af, err, sizeof(err));
    if (rc != 0) {
        if (af || !err[0])
            abort();
        check_user(NULL, user);
        return 0;
    }
    if (px_authfile_pending(af) > px_authfile_count(af))
        abort();
    check_user(af, "postgres");
    check_user(af, "");
    check_user(af, user);
    /* A user name that is a quoted first field, as the file would spell it. */
    if (ulen > 2 && user[0] == '"') {
        char *q = strchr(user + 1, '"');
        if (q) {
            *q = '\0';
            check_user(af, user + 1);
        }
    }
    px_authfile_free(af);
    return 0;
}
