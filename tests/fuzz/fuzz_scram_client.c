/*
 * libFuzzer target for the SCRAM-SHA-256 client (auth_scram_client_continue/_finish). Input: a
 * big-endian uint16 length, that many bytes of server-first-message, then the
 * server-final-message. The client is RFC 7677's (user "user", password "pencil", nonce
 * "rOprNGfwEbeRWgbNEkqO"), so the RFC's own messages are a seed that verifies. Inputs asking
 * for more than 4096 iterations are skipped: each costs real PBKDF2 time and would only slow
 * the fuzzer down; the iteration parser and its bounds are covered by the unit tests.
 */
#include "auth_pg.h"
#include "px_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True if any "i=<digits>" in the message asks for more than 4096 iterations. */
static bool expensive(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] != 'i' || p[i + 1] != '=')
            continue;
        uint64_t v = 0;
        for (size_t j = i + 2; j < n && p[j] >= '0' && p[j] <= '9' && v <= 4096; j++)
            v = v * 10 + (uint64_t)(p[j] - '0');
        if (v > 4096)
            return true;
    }
    return false;
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
    if (expensive(m1, n1))
        return 0;

    auth_scram_client_t *c;
    px_dbuf_t out;
    px_dbuf_init(&out, 4096);
    if (auth_scram_client_new("pencil", "rOprNGfwEbeRWgbNEkqO", &c) != 0 ||
        auth_scram_client_set_user(c, "user") != 0 || auth_scram_client_initial(c, &out) != 0)
        abort();
    px_dbuf_reset(&out);
    int rc = auth_scram_client_continue(c, m1, n1, &out);
    if (rc != 0 && out.len != 0)
        abort();
    if (rc == 0) {
        /* client-final: "c=biws,r=<the server's nonce>,p=<44 base64 characters>". */
        if (out.len < 9 + 3 + 44 || memcmp(out.data, "c=biws,r=", 9) != 0 ||
            memcmp(out.data + out.len - 47, ",p=", 3) != 0)
            abort();
        rc = auth_scram_client_finish(c, m2, n2);
        if ((rc == 0) != auth_scram_client_verified(c))
            abort();
        if (rc == 0 && auth_scram_client_finish(c, m2, n2) != PX_E_STATE)
            abort();
    } else if (auth_scram_client_verified(c)) {
        abort();
    }
    auth_scram_client_free(c);
    px_dbuf_free(&out);
    return 0;
}
