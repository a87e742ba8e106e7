/*
 * Base64 (RFC 4648 §4, standard alphabet, '=' padding) for SCRAM messages and verifiers and for
 * AWS headers. The decoder is strict: the length must be a multiple of four, padding may only
 * end the input, and the unused bits of the last group must be zero, so every byte string has
 * exactly one accepted spelling (a peer cannot smuggle variants past a comparison).
 */
#ifndef PX_B64_H
#define PX_B64_H

#include "px_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters px_b64_encode writes for n input bytes (without a terminator). */
static inline size_t px_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Largest number of bytes px_b64_decode can produce from n characters. */
static inline size_t px_b64_decoded_max(size_t n)
{
    return n / 4 * 3;
}

/* Appends the encoding of in[0..n) to out (no NUL; px_dbuf_cstr adds one). */
void px_b64_encode(px_dbuf_t *out, const uint8_t *in, size_t n);

/* Encodes into a caller buffer of at least px_b64_encoded_len(n) + 1 bytes; NUL-terminates. */
void px_b64_encode_to(char *out, const uint8_t *in, size_t n);

/*
 * Decodes in[0..n) into out (room for `cap` bytes); *outlen gets the decoded length. False for
 * any malformed input (bad character, bad length, misplaced or non-canonical padding) or when
 * the result does not fit; out may then hold partial data, which the caller must ignore.
 */
bool px_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen);

#endif
