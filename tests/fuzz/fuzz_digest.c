/*
 * libFuzzer target for the small parsers of server authentication requests: the Redshift
 * digest request (code 13, auth_digest_response), the AuthenticationSASL mechanism list
 * (auth_sasl_choose), and strict base64 (px_b64_decode), all fed the same bytes. Oracles: a
 * digest answer has exactly the documented layout, and base64 round-trips both ways.
 */
#include "auth_pg.h"
#include "px_b64.h"
#include "px_err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_b64(const uint8_t *data, size_t size)
{
    uint8_t *dec = malloc(px_b64_decoded_max(size) + 1);
    if (!dec)
        return;
    size_t n;
    if (px_b64_decode((const char *)data, size, dec, px_b64_decoded_max(size), &n)) {
        /* Strictness means one spelling per byte string: re-encoding gives the input back. */
        px_dbuf_t enc;
        px_dbuf_init(&enc, 0);
        px_b64_encode(&enc, dec, n);
        if (enc.failed || enc.len != size || memcmp(enc.data, data, size) != 0)
            abort();
        px_dbuf_free(&enc);
    }
    /* And any bytes survive encode then decode. */
    px_dbuf_t enc;
    px_dbuf_init(&enc, 0);
    px_b64_encode(&enc, data, size);
    uint8_t *back = malloc(size + 1);
    if (!enc.failed && back &&
        (!px_b64_decode((const char *)enc.data, enc.len, back, size, &n) || n != size ||
         memcmp(back, data, size) != 0))
        abort();
    free(back);
    px_dbuf_free(&enc);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_dbuf_t out;
    px_dbuf_init(&out, 0);
    int rc = auth_digest_response(data, size, "secret", "1700000000000", &out);
    if (rc == 0) {
        /* Int32 32, d2, Int32 13, the 13 digits: 53 bytes, whatever the request held. */
        if (out.len != 53 || px_get_u32(out.data) != 32 || px_get_u32(out.data + 36) != 13 ||
            memcmp(out.data + 40, "1700000000000", 13) != 0)
            abort();
    } else if (rc != AUTH_E_PROTO && rc != AUTH_E_MECH) {
        abort();
    } else if (out.len != 0) {
        abort();
    }
    px_dbuf_free(&out);

    rc = auth_sasl_choose(data, size);
    if (rc != 0 && rc != AUTH_E_MECH && rc != AUTH_E_PROTO)
        abort();
    if (rc == 0 && !memmem(data, size, "SCRAM-SHA-256", 14)) /* 14: with its NUL */
        abort();

    fuzz_b64(data, size);
    return 0;
}
