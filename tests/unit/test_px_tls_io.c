/*
 * Unit tests for how px_tls moves ciphertext (proxy/px_tls.c's own BIO): taking output in place
 * with px_tls_out_peek/px_tls_out_consume in pieces, as a socket that accepts part of a write
 * does; feeding input a byte at a time and in pieces that split records (OpenSSL reads ahead
 * and must keep what it has not decrypted); trimming in the middle of a record; the ceiling on
 * buffered ciphertext; and allocation failures in our buffers. test_px_tls.c covers the
 * handshake and verification; these cover the I/O the relay relies on.
 */
#include "px_alloc.h"
#include "px_err.h"
#include "px_test.h"
#include "px_tls.h"
#include "test_px_certs.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct pair {
    px_tls_ctx_t *cctx, *sctx;
    px_tls_t *cli, *srv;
} pair_t;

/* Moves up to `max` bytes of a's output to b, `piece` bytes per feed, taking it in place. */
static size_t move(px_tls_t *a, px_tls_t *b, size_t piece, size_t max)
{
    size_t moved = 0;
    while (moved < max) {
        const uint8_t *p;
        size_t n = px_tls_out_peek(a, &p);
        if (n == 0)
            break;
        if (n > piece)
            n = piece;
        if (n > max - moved)
            n = max - moved;
        ASSERT(p != NULL);
        ASSERT_OK(px_tls_feed(b, p, n));
        px_tls_out_consume(a, n);
        moved += n;
    }
    return moved;
}

static void pump(px_tls_t *a, px_tls_t *b, size_t piece)
{
    while (move(a, b, piece, (size_t)-1) + move(b, a, piece, (size_t)-1) > 0) {
    }
}

static void handshake(pair_t *p)
{
    px_tls_result_t rc = PX_TLS_AGAIN, rs = PX_TLS_AGAIN;
    for (int i = 0; i < 20 && (rc == PX_TLS_AGAIN || rs == PX_TLS_AGAIN); i++) {
        if (rc == PX_TLS_AGAIN)
            rc = px_tls_handshake(p->cli);
        if (rs == PX_TLS_AGAIN)
            rs = px_tls_handshake(p->srv);
        pump(p->cli, p->srv, 1000);
    }
    ASSERT_EQ(rc, PX_TLS_OK);
    ASSERT_EQ(rs, PX_TLS_OK);
}

static void pair_make(pair_t *p)
{
    const px_test_certs_t *c = px_test_certs();
    char err[512] = "";
    memset(p, 0, sizeof(*p));
    if (px_tls_ctx_new_client(CFG_SSLMODE_VERIFY_FULL, c->ca, &p->cctx, err, sizeof(err)) != 0)
        PX_FAIL("client ctx: %s", err);
    if (px_tls_ctx_new_server(c->cert, c->key, &p->sctx, err, sizeof(err)) != 0)
        PX_FAIL("server ctx: %s", err);
    ASSERT_OK(px_tls_new_client(p->cctx, "localhost", &p->cli));
    ASSERT_OK(px_tls_new_server(p->sctx, &p->srv));
    handshake(p);
    /* A TLS 1.3 server sends its session tickets right after the handshake: let the client
     * take them, so each case starts with nothing in flight. */
    uint8_t b[1];
    size_t r = 0;
    ASSERT_EQ(px_tls_read(p->cli, b, sizeof(b), &r), PX_TLS_AGAIN);
    ASSERT_EQ(px_tls_pending_in(p->cli), 0);
    ASSERT_EQ(px_tls_pending_in(p->srv), 0);
}

static void pair_free(pair_t *p)
{
    px_tls_free(p->cli);
    px_tls_free(p->srv);
    px_tls_ctx_unref(p->cctx);
    px_tls_ctx_unref(p->sctx);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n ? n : 1);
    ASSERT(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 131 + seed);
    return b;
}

/* Reads everything that can be decrypted now into dst+*got, in reads of at most `cap`. */
static void drain(px_tls_t *t, uint8_t *dst, size_t n, size_t *got, size_t cap)
{
    while (*got < n) {
        size_t r = 0;
        size_t want = n - *got < cap ? n - *got : cap;
        px_tls_result_t res = px_tls_read(t, dst + *got, want, &r);
        if (res == PX_TLS_AGAIN)
            return;
        ASSERT_EQ(res, PX_TLS_OK);
        ASSERT(r > 0);
        *got += r;
    }
}

/* Writes n bytes in `chunk`-sized writes and moves the ciphertext `piece` bytes per feed. */
static void transfer(px_tls_t *from, px_tls_t *to, size_t n, size_t chunk, size_t piece,
                     size_t read_cap)
{
    uint8_t *src = pattern(n, 7), *dst = malloc(n ? n : 1);
    ASSERT(dst);
    size_t sent = 0, got = 0;
    while (got < n) {
        if (sent < n) {
            size_t k = n - sent < chunk ? n - sent : chunk;
            ASSERT_EQ(px_tls_write(from, src + sent, k), PX_TLS_OK);
            sent += k;
        }
        while (move(from, to, piece, piece * 3) > 0)
            drain(to, dst, n, &got, read_cap);
        drain(to, dst, n, &got, read_cap);
    }
    ASSERT_EQ(px_tls_pending_out(from), 0);
    bool same = memcmp(src, dst, n) == 0;
    free(src);
    free(dst);
    ASSERT(same);
}

PX_TEST(output_taken_in_place_in_pieces)
{
    pair_t p;
    pair_make(&p);
    /* Small messages, as the relay sees them, in odd pieces. */
    transfer(p.cli, p.srv, 5000, 37, 13, 64);
    transfer(p.srv, p.cli, 5000, 91, 17, 1000);
    /* Large writes (several records each), taken out in big and in tiny pieces. */
    transfer(p.cli, p.srv, 300000, 65536, 4096, 16384);
    transfer(p.srv, p.cli, 100000, 20000, 1, 100000);
    pair_free(&p);
}

PX_TEST(peek_is_stable_until_consumed)
{
    pair_t p;
    pair_make(&p);
    ASSERT_EQ(px_tls_write(p.cli, "hello", 5), PX_TLS_OK);
    const uint8_t *a, *b;
    size_t na = px_tls_out_peek(p.cli, &a);
    size_t nb = px_tls_out_peek(p.cli, &b);
    ASSERT(na > 5);
    ASSERT_EQ(na, nb);
    ASSERT(a == b);
    ASSERT_EQ(px_tls_pending_out(p.cli), na);
    px_tls_out_consume(p.cli, 3);
    const uint8_t *c;
    ASSERT_EQ(px_tls_out_peek(p.cli, &c), na - 3);
    ASSERT(c == a + 3);
    /* Consuming more than there is takes what there is. */
    px_tls_out_consume(p.cli, na);
    ASSERT_EQ(px_tls_out_peek(p.cli, &c), 0);
    ASSERT_EQ(px_tls_pending_out(p.cli), 0);
    pair_free(&p);
}

PX_TEST(records_split_across_feeds)
{
    pair_t p;
    pair_make(&p);
    /* Two records' worth, fed one byte at a time: every read before the last byte of a record
     * must say AGAIN, and nothing may be lost between the pieces OpenSSL reads ahead. */
    uint8_t *src = pattern(20000, 3);
    ASSERT_EQ(px_tls_write(p.srv, src, 20000), PX_TLS_OK);
    uint8_t *dst = malloc(20000);
    ASSERT(dst);
    size_t got = 0, fed = 0;
    const uint8_t *q;
    while (px_tls_out_peek(p.srv, &q) > 0) {
        ASSERT_OK(px_tls_feed(p.cli, q, 1));
        px_tls_out_consume(p.srv, 1);
        fed++;
        drain(p.cli, dst, 20000, &got, 20000);
    }
    ASSERT(fed > 20000);
    ASSERT_EQ(got, 20000);
    ASSERT_MEM_EQ(dst, src, 20000);
    uint8_t one;
    size_t r = 1;
    ASSERT_EQ(px_tls_read(p.cli, &one, 1, &r), PX_TLS_AGAIN);
    ASSERT_EQ(r, 0);
    free(src);
    free(dst);
    pair_free(&p);
}

PX_TEST(pending_in_counts_unconsumed_ciphertext)
{
    pair_t p;
    pair_make(&p);
    ASSERT_EQ(px_tls_pending_in(p.cli), 0);
    ASSERT_EQ(px_tls_write(p.srv, "abc", 3), PX_TLS_OK);
    size_t n = move(p.srv, p.cli, 1 << 20, 4);
    ASSERT_EQ(n, 4);
    ASSERT_EQ(px_tls_pending_in(p.cli), 4);
    uint8_t buf[8];
    size_t r = 0;
    /* A header alone is not a record. */
    ASSERT_EQ(px_tls_read(p.cli, buf, sizeof(buf), &r), PX_TLS_AGAIN);
    move(p.srv, p.cli, 1 << 20, (size_t)-1);
    ASSERT_EQ(px_tls_read(p.cli, buf, sizeof(buf), &r), PX_TLS_OK);
    ASSERT_EQ(r, 3);
    ASSERT_MEM_EQ(buf, "abc", 3);
    ASSERT_EQ(px_tls_pending_in(p.cli), 0);
    pair_free(&p);
}

PX_TEST(trim_in_the_middle_of_a_record)
{
    pair_t p;
    pair_make(&p);
    uint8_t *src = pattern(3000, 9);
    ASSERT_EQ(px_tls_write(p.srv, src, 3000), PX_TLS_OK);
    size_t total = px_tls_pending_out(p.srv);
    /* Half a record in, read (OpenSSL takes it into its own buffer), trim both sides: the half
     * record must survive, and the rest complete it. */
    move(p.srv, p.cli, 1 << 20, total / 2);
    uint8_t dst[3000];
    size_t got = 0;
    drain(p.cli, dst, sizeof(dst), &got, sizeof(dst));
    ASSERT_EQ(got, 0);
    px_tls_trim(p.cli);
    px_tls_trim(p.srv);
    move(p.srv, p.cli, 1 << 20, (size_t)-1);
    drain(p.cli, dst, sizeof(dst), &got, sizeof(dst));
    ASSERT_EQ(got, 3000);
    ASSERT_MEM_EQ(dst, src, 3000);
    /* Fully idle now: trimming again and carrying on works both ways. */
    px_tls_trim(p.cli);
    px_tls_trim(p.srv);
    ASSERT_EQ(px_tls_pending_in(p.cli), 0);
    ASSERT_EQ(px_tls_pending_out(p.srv), 0);
    transfer(p.cli, p.srv, 10000, 1000, 700, 500);
    transfer(p.srv, p.cli, 10000, 1000, 700, 500);
    free(src);
    pair_free(&p);
}

PX_TEST(input_ceiling)
{
    pair_t p;
    pair_make(&p);
    /* More than 16 MiB of ciphertext that nobody reads: refused, not grown without bound. */
    size_t chunk = 1 << 20;
    uint8_t *junk = calloc(1, chunk);
    ASSERT(junk);
    int rc = 0;
    size_t fed = 0;
    while (rc == 0 && fed <= (size_t)64 << 20) {
        rc = px_tls_feed(p.cli, junk, chunk);
        if (rc == 0)
            fed += chunk;
    }
    ASSERT_EQ(rc, UV_ENOBUFS);
    ASSERT(fed >= (size_t)15 << 20);
    ASSERT(fed <= (size_t)16 << 20);
    free(junk);
    pair_free(&p);
}

PX_TEST(output_ceiling_fails_the_session)
{
    pair_t p;
    pair_make(&p);
    size_t chunk = 1 << 20;
    uint8_t *data = pattern(chunk, 1);
    px_tls_result_t r = PX_TLS_OK;
    size_t written = 0;
    while (r == PX_TLS_OK && written <= (size_t)64 << 20) {
        r = px_tls_write(p.cli, data, chunk);
        if (r == PX_TLS_OK)
            written += chunk;
    }
    ASSERT_EQ(r, PX_TLS_ERR);
    ASSERT(written >= (size_t)15 << 20);
    ASSERT_EQ(px_tls_errcode(p.cli), PX_E_TLS);
    ASSERT(strstr(px_tls_errmsg(p.cli), "ciphertext buffer limit") != NULL);
    /* The session stays failed. */
    ASSERT_EQ(px_tls_write(p.cli, data, 10), PX_TLS_ERR);
    free(data);
    pair_free(&p);
}

PX_TEST(allocation_failures)
{
    pair_t p;
    pair_make(&p);
    /* Our buffers are allocated with px_malloc, so a refused allocation reaches them (OpenSSL's
     * own allocations use its default allocator in this test). */
    px_tls_trim(p.cli);
    px_tls_trim(p.srv);
    px_alloc_fail_after(0);
    int frc = px_tls_feed(p.cli, "x", 1);
    px_tls_result_t wrc = px_tls_write(p.srv, "hello", 5);
    px_alloc_fail_after(-1); /* before any ASSERT: a failed case must not leave it armed */
    ASSERT_EQ(frc, UV_ENOMEM);
    ASSERT_EQ(px_tls_pending_in(p.cli), 0);
    ASSERT_EQ(wrc, PX_TLS_ERR);
    ASSERT_EQ(px_tls_errcode(p.srv), PX_E_TLS);
    /* A session whose error text could not be allocated still has a message. */
    ASSERT(px_tls_errmsg(p.srv)[0] != '\0');
    pair_free(&p);
}

PX_TEST(fresh_session_has_generic_message)
{
    pair_t p;
    pair_make(&p);
    ASSERT_STR_EQ(px_tls_errmsg(p.cli), "SSL error");
    ASSERT_EQ(px_tls_errcode(p.cli), 0);
    pair_free(&p);
}
