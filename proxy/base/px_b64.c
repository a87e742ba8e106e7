/*
 * Strict base64 encoder and decoder; see px_b64.h. Pure and allocation-free apart from the
 * px_dbuf_t the encoder appends to. Not constant-time: callers compare decoded secrets with
 * px_ct_equal, and what is decoded here (SCRAM proofs, salts, stored keys) either travels in
 * the clear or comes from our own configuration.
 */
#include "px_b64.h"

#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void px_b64_encode_to(char *out, const uint8_t *in, size_t n)
{
    size_t o = 0, i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

void px_b64_encode(px_dbuf_t *out, const uint8_t *in, size_t n)
{
    size_t len = px_b64_encoded_len(n);
    /* +1 for the terminator px_b64_encode_to writes; it is not counted in len. */
    if (!px_dbuf_reserve(out, len + 1))
        return;
    px_b64_encode_to((char *)out->data + out->len, in, n);
    out->len += len;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool px_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
{
    *outlen = 0;
    if (n % 4 != 0)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        /* Padding: only in the last group, as "xx==" or "xxx=". */
        size_t pad = 0;
        if (last && in[i + 3] == '=')
            pad = in[i + 2] == '=' ? 2 : 1;
        int v[4] = {0, 0, 0, 0};
        for (size_t k = 0; k < 4 - pad; k++) {
            v[k] = b64_value(in[i + k]);
            if (v[k] < 0)
                return false;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t nbytes = 3 - pad;
        /* Non-canonical: bits the padding says are unused must be zero ("QQ==" only, not
         * "QR=="). Otherwise two spellings would decode to the same bytes. */
        if ((pad == 2 && (w & 0xffff) != 0) || (pad == 1 && (w & 0xff) != 0))
            return false;
        if (cap - o < nbytes)
            return false;
        out[o++] = (uint8_t)(w >> 16);
        if (nbytes > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (nbytes > 2)
            out[o++] = (uint8_t)w;
    }
    *outlen = o;
    return true;
}
