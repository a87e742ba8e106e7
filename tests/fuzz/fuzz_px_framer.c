/*
 * Fuzz target: the streaming framer (px_framer_step) fed an arbitrary byte stream in arbitrary
 * chunkings, the way the relay sees socket reads. The first 8 bytes give chunk sizes; the rest
 * is the stream. Every chunking must yield the same headers and body byte count as framing the
 * whole stream at once, never consume more than it was given, and stop at the same bad length.
 */
#include "px_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct trace {
    uint32_t headers;
    uint64_t hsum; /* sum of type * 31 + len over headers, order-sensitive */
    uint64_t body;
    bool bad;
    size_t consumed;
} trace_t;

static void run(const uint8_t *s, size_t n, const uint8_t *chunks, size_t nchunks, trace_t *t)
{
    px_framer_t f;
    px_framer_init(&f, 1u << 16);
    memset(t, 0, sizeof(*t));
    size_t have = 0, pos = 0, ci = 0;
    while (pos <= n) {
        size_t c = nchunks ? (size_t)chunks[ci++ % nchunks] + 1 : n;
        have = have + c > n ? n : have + c;
        for (;;) {
            px_frame_t fr;
            px_framer_step(&f, s + pos, have - pos, &fr);
            if (fr.n > have - pos)
                abort();
            if (fr.ev == PX_FRAME_BAD) {
                t->bad = true;
                t->consumed = pos;
                return;
            }
            if (fr.ev == PX_FRAME_NEED)
                break;
            if (fr.ev == PX_FRAME_HEADER) {
                if (fr.n != PX_MSG_HDR || fr.len < 4)
                    abort();
                t->headers++;
                t->hsum = t->hsum * 1000003u + fr.type * 31u + fr.len;
            } else {
                t->body += fr.n;
            }
            pos += fr.n;
        }
        if (have == n)
            break;
    }
    t->consumed = pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    const uint8_t *s = data + 8;
    size_t n = size - 8;
    trace_t whole, chunked;
    run(s, n, NULL, 0, &whole);
    run(s, n, data, 8, &chunked);
    if (whole.headers != chunked.headers || whole.hsum != chunked.hsum ||
        whole.body != chunked.body || whole.bad != chunked.bad ||
        whole.consumed != chunked.consumed)
        abort();
    return 0;
}
