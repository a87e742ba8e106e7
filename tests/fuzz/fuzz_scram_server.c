/*
 * libFuzzer target for the SCRAM-SHA-256 server (auth_scram_server_first/_final) and, on the
 * same bytes, SASLprep. Input: a big-endian uint16 length, that many bytes of
 * SASLInitialResponse body, then the client-final-message. The server uses a fixed verifier
 * (password "pencil", salt "fuzz-salt-16byte", 16 iterations) and the fixed nonce "snonce", so
 * seeds recorded from real exchanges (tests/fuzz/corpus/scram_server) reach the successful
 * path too. Aborts on any broken invariant of what the server produces.
 */
#include "auth_pg.h"
#include "px_alloc.h"
#include "px_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char verifier[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    px_dbuf_t v;
    px_dbuf_init(&v, 0);
    if (auth_scram_make_verifier("pencil", (const uint8_t *)"fuzz-salt-16byte", 16, 16, &v) != 0 ||
        v.len >= sizeof(verifier))
        abort();
    memcpy(verifier, v.data, v.len);
    px_dbuf_free(&v);
    return 0;
}

/* SASLprep on the input as a string: whatever it accepts must come out as valid UTF-8. */
static void fuzz_saslprep(const uint8_t *data, size_t size)
{
    char *str = px_malloc(size + 1);
    if (!str)
        return;
    memcpy(str, data, size);
    str[size] = '\0';
    char *prep = NULL, *again = NULL;
    if (auth_saslprep(str, &prep) == 0) {
        if (auth_saslprep(prep, &again) == AUTH_E_PROTO)
            abort();
    }
    px_free(again);
    px_free(prep);
    px_free(str);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1 = size, n2 = 0;
    const uint8_t *m1 = data, *m2 = (const uint8_t *)"";
    if (size >= 2) {
        n1 = (size_t)data[0] << 8 | data[1];
        if (n1 > size - 2)
            n1 = size - 2;
        m1 = data + 2;
        m2 = m1 + n1;
        n2 = size - 2 - n1;
    }

    auth_scram_server_t *s;
    if (auth_scram_server_new(verifier, "snonce", &s) != 0)
        abort(); /* the fixed verifier must parse */
    px_dbuf_t out;
    px_dbuf_init(&out, 4096);
    int rc = auth_scram_server_first(s, m1, n1, &out);
    if (rc != 0 && out.len != 0)
        abort(); /* a refused first message produces nothing */
    if (rc == 0) {
        if (out.len < 2 || memcmp(out.data, "r=", 2) != 0 ||
            !memmem(out.data, out.len, "snonce,s=", 9))
            abort();
        px_dbuf_reset(&out);
        rc = auth_scram_server_final(s, m2, n2, &out);
        if (rc == 0 && (out.len != 46 || memcmp(out.data, "v=", 2) != 0))
            abort();
        if (rc != 0 && out.len != 0)
            abort(); /* nothing may be produced for a refused proof */
    }
    auth_scram_server_free(s);
    px_dbuf_free(&out);

    fuzz_saslprep(data, size);
    return 0;
}
