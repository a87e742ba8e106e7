/*
 * libFuzzer target for the first, parsing step of the SCRAM-SHA-256 client
 * (auth_scram_client_prepare): the whole input is a server-first-message. prepare derives no
 * key, so unlike fuzz_scram_client this target takes any iteration count the input asks for,
 * up to the bounds and beyond. Checked: an accepted message has an iteration count within
 * [AUTH_SCRAM_MIN_ITERATIONS, AUTH_SCRAM_MAX_ITERATIONS]; a refused one leaves the object
 * refusing the later steps; final before compute is refused (PX_E_STATE) and writes nothing.
 */
#include "auth_pg.h"
#include "px_err.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_scram_client_t *c;
    px_dbuf_t out;
    px_dbuf_init(&out, 4096);
    if (auth_scram_client_new("pencil", "rOprNGfwEbeRWgbNEkqO", &c) != 0 ||
        auth_scram_client_set_user(c, "user") != 0 || auth_scram_client_initial(c, &out) != 0)
        abort();
    px_dbuf_reset(&out);
    int rc = auth_scram_client_prepare(c, data, size);
    if (rc == 0) {
        int it = auth_scram_client_iterations(c);
        if (it < AUTH_SCRAM_MIN_ITERATIONS || it > AUTH_SCRAM_MAX_ITERATIONS)
            abort();
        /* Out of order: the proof is not computed yet. */
        if (auth_scram_client_final(c, &out) != PX_E_STATE || out.len != 0)
            abort();
    } else {
        if (auth_scram_client_compute(c) == 0 || auth_scram_client_final(c, &out) == 0 ||
            out.len != 0)
            abort();
    }
    px_dbuf_free_secret(&out);
    auth_scram_client_free(c);
    return 0;
}
