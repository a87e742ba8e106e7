/*
 * Unit tests for the TLS engine (proxy/px_tls.c) with no sockets: a client and a server px_tls_t
 * wired back to back through their memory BIOs. A CA, a server certificate (SAN
 * DNS:localhost, IP:127.0.0.1) and an unrelated CA are made at test time with OpenSSL and
 * written to a temporary directory. Covers verify-full (DNS name and IP literal), a wrong CA,
 * a self-signed root in the chain, a wrong host name, verify-ca accepting a wrong host, require
 * accepting anything, data both ways (1 MiB), close_notify, and trimming idle memory.
 */
#include "px_err.h"
#include "px_test.h"
#include "px_tls.h"
#include "test_px_certs.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *ca_path, *other_ca_path, *cert_path, *key_path, *chain_path;

/* Paths are needed as arguments before any test body runs: made when the binary loads. */
__attribute__((constructor)) static void setup(void)
{
    const px_test_certs_t *c = px_test_certs();
    ca_path = c->ca;
    other_ca_path = c->other_ca;
    cert_path = c->cert;
    key_path = c->key;
    chain_path = c->chain;
}

/* Moves up to cap bytes of a's ciphertext into b: a piece at a time, so that partly taken output
 * is exercised as a short socket write would. */
static size_t move_some(px_tls_t *a, px_tls_t *b, size_t cap)
{
    const uint8_t *p;
    size_t n = px_tls_out_peek(a, &p);
    if (n > cap)
        n = cap;
    if (n && px_tls_feed(b, p, n) != 0)
        abort();
    px_tls_out_consume(a, n);
    return n;
}

/* Moves ciphertext both ways until neither side has any; returns the number of bytes moved. */
static size_t pump(px_tls_t *a, px_tls_t *b)
{
    size_t moved = 0;
    for (;;) {
        size_t n1 = move_some(a, b, 4096);
        size_t n2 = move_some(b, a, 4096);
        moved += n1 + n2;
        if (!n1 && !n2)
            return moved;
    }
}

/* Runs the handshake to completion or failure; returns the client's last result. */
static px_tls_result_t handshake(px_tls_t *cli, px_tls_t *srv, px_tls_result_t *srv_res)
{
    px_tls_result_t rc = PX_TLS_AGAIN, rs = PX_TLS_AGAIN;
    for (int i = 0; i < 20; i++) {
        if (rc == PX_TLS_AGAIN)
            rc = px_tls_handshake(cli);
        if (rs == PX_TLS_AGAIN)
            rs = px_tls_handshake(srv);
        pump(cli, srv);
        if (rc != PX_TLS_AGAIN && rs != PX_TLS_AGAIN)
            break;
        if (rc == PX_TLS_ERR || rs == PX_TLS_ERR) {
            /* Let the alert reach the other side once. */
            if (rc == PX_TLS_AGAIN)
                rc = px_tls_handshake(cli);
            if (rs == PX_TLS_AGAIN)
                rs = px_tls_handshake(srv);
            break;
        }
    }
    if (srv_res)
        *srv_res = rs;
    return rc;
}

typedef struct pair {
    px_tls_ctx_t *cctx, *sctx;
    px_tls_t *cli, *srv;
} pair_t;

static void pair_make(pair_t *p, cfg_sslmode_t mode, const char *root, const char *host,
                      const char *server_cert)
{
    setup();
    char err[512] = "";
    memset(p, 0, sizeof(*p));
    if (px_tls_ctx_new_client(mode, root, &p->cctx, err, sizeof(err)) != 0)
        PX_FAIL("client ctx: %s", err);
    if (px_tls_ctx_new_server(server_cert ? server_cert : cert_path, key_path, &p->sctx, err,
                              sizeof(err)) != 0)
        PX_FAIL("server ctx: %s", err);
    ASSERT_OK(px_tls_new_client(p->cctx, host, &p->cli));
    ASSERT_OK(px_tls_new_server(p->sctx, &p->srv));
}

static void pair_free(pair_t *p)
{
    px_tls_free(p->cli);
    px_tls_free(p->srv);
    px_tls_ctx_unref(p->cctx);
    px_tls_ctx_unref(p->sctx);
}

/* Sends n bytes one way through write/out_peek/feed/read and checks they arrive intact. */
static void transfer(px_tls_t *from, px_tls_t *to, size_t n)
{
    uint8_t *src = malloc(n), *dst = malloc(n);
    ASSERT(src && dst);
    for (size_t i = 0; i < n; i++)
        src[i] = (uint8_t)(i * 7 + 3);
    size_t sent = 0, got = 0;
    while (got < n) {
        if (sent < n) {
            size_t chunk = n - sent > 20000 ? 20000 : n - sent;
            ASSERT_EQ(px_tls_write(from, src + sent, chunk), PX_TLS_OK);
            sent += chunk;
        }
        pump(from, to);
        for (;;) {
            size_t r = 0;
            px_tls_result_t res = px_tls_read(to, dst + got, n - got, &r);
            if (res == PX_TLS_AGAIN)
                break;
            ASSERT_EQ(res, PX_TLS_OK);
            got += r;
            if (got == n)
                break;
        }
        pump(from, to);
    }
    bool same = memcmp(src, dst, n) == 0;
    free(src);
    free(dst);
    ASSERT(same);
}

PX_TEST(verify_full_dns_name)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "localhost", NULL);
    px_tls_result_t rs;
    px_tls_result_t rc = handshake(p.cli, p.srv, &rs);
    if (rc != PX_TLS_OK)
        PX_FAIL("handshake: %s / server: %s", px_tls_errmsg(p.cli), px_tls_errmsg(p.srv));
    ASSERT_EQ(rs, PX_TLS_OK);
    ASSERT(px_tls_handshake_done(p.cli));
    char subj[256];
    px_tls_peer_subject(p.cli, subj, sizeof(subj));
    ASSERT(strstr(subj, "CN=localhost"));
    ASSERT(strncmp(px_tls_version(p.cli), "TLSv1.", 6) == 0);
    transfer(p.cli, p.srv, 100);
    transfer(p.srv, p.cli, 1 << 20);
    transfer(p.cli, p.srv, 1 << 20);
    pair_free(&p);
}

PX_TEST(verify_full_ip_literal)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "127.0.0.1", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_OK);
    pair_free(&p);
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "127.0.0.2", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_ERR);
    ASSERT_EQ(px_tls_errcode(p.cli), PX_E_TLS_VERIFY);
    ASSERT_STR_EQ(px_tls_errmsg(p.cli),
                  "server certificate for \"localhost\" (and 1 other name) does not match host "
                  "name \"127.0.0.2\"");
    pair_free(&p);
}

PX_TEST(wrong_ca)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, other_ca_path, "localhost", NULL);
    px_tls_result_t rs;
    ASSERT_EQ(handshake(p.cli, p.srv, &rs), PX_TLS_ERR);
    ASSERT_EQ(px_tls_errcode(p.cli), PX_E_TLS_VERIFY);
    ASSERT_STR_EQ(px_tls_errmsg(p.cli),
                  "certificate verify failed: unable to get local issuer certificate");
    /* The server learns of it through the alert. */
    ASSERT_EQ(rs, PX_TLS_ERR);
    /* Nothing can be sent on a failed session. */
    ASSERT_EQ(px_tls_write(p.cli, "x", 1), PX_TLS_ERR);
    pair_free(&p);
}

PX_TEST(self_signed_root_in_chain)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, other_ca_path, "localhost", chain_path);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_ERR);
    ASSERT_STR_EQ(px_tls_errmsg(p.cli),
                  "certificate verify failed: self-signed certificate in certificate chain");
    pair_free(&p);
}

PX_TEST(wrong_host_name)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "db.example.com", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_ERR);
    ASSERT_EQ(px_tls_errcode(p.cli), PX_E_TLS_VERIFY);
    ASSERT_STR_EQ(px_tls_errmsg(p.cli),
                  "server certificate for \"localhost\" (and 1 other name) does not match host "
                  "name \"db.example.com\"");
    pair_free(&p);
}

PX_TEST(verify_ca_accepts_wrong_host)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_CA, ca_path, "db.example.com", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_OK);
    transfer(p.cli, p.srv, 1000);
    pair_free(&p);
    /* ... but not a wrong CA. */
    pair_make(&p, CFG_SSLMODE_VERIFY_CA, other_ca_path, "localhost", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_ERR);
    ASSERT_EQ(px_tls_errcode(p.cli), PX_E_TLS_VERIFY);
    pair_free(&p);
}

PX_TEST(require_accepts_unverified)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_REQUIRE, "/nonexistent", "db.example.com", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_OK);
    transfer(p.srv, p.cli, 5000);
    pair_free(&p);
}

PX_TEST(bad_rootcert_file)
{
    setup();
    px_tls_ctx_t *c = NULL;
    char err[512] = "";
    ASSERT_EQ(
        px_tls_ctx_new_client(CFG_SSLMODE_VERIFY_FULL, "/nonexistent/ca.pem", &c, err, sizeof(err)),
        PX_E_TLS);
    ASSERT(c == NULL);
    ASSERT(strstr(err, "cannot load sslrootcert \"/nonexistent/ca.pem\""));
    /* A file that is not PEM at all. */
    ASSERT_EQ(px_tls_ctx_new_client(CFG_SSLMODE_VERIFY_CA, key_path, &c, err, sizeof(err)),
              PX_E_TLS);
}

PX_TEST(close_notify_is_eof)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "localhost", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_OK);
    transfer(p.cli, p.srv, 10);
    ASSERT_EQ(px_tls_close_notify(p.srv), PX_TLS_OK);
    ASSERT(px_tls_pending_out(p.srv) > 0);
    pump(p.srv, p.cli);
    uint8_t buf[16];
    size_t n;
    ASSERT_EQ(px_tls_read(p.cli, buf, sizeof(buf), &n), PX_TLS_EOF);
    pair_free(&p);
}

PX_TEST(garbage_is_an_error)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "localhost", NULL);
    ASSERT_EQ(px_tls_handshake(p.cli), PX_TLS_AGAIN); /* ClientHello out */
    ASSERT(px_tls_pending_out(p.cli) > 0);
    static const char junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    ASSERT_OK(px_tls_feed(p.cli, junk, sizeof(junk) - 1));
    ASSERT_EQ(px_tls_handshake(p.cli), PX_TLS_ERR);
    ASSERT_EQ(px_tls_errcode(p.cli), PX_E_TLS);
    ASSERT(strncmp(px_tls_errmsg(p.cli), "SSL error: ", 11) == 0);
    pair_free(&p);
}

PX_TEST(trim_keeps_session_working)
{
    pair_t p;
    pair_make(&p, CFG_SSLMODE_VERIFY_FULL, ca_path, "localhost", NULL);
    ASSERT_EQ(handshake(p.cli, p.srv, NULL), PX_TLS_OK);
    transfer(p.srv, p.cli, 300000);
    px_tls_trim(p.cli);
    px_tls_trim(p.srv);
    ASSERT_EQ(px_tls_pending_in(p.cli), 0);
    transfer(p.srv, p.cli, 300000);
    transfer(p.cli, p.srv, 300000);
    pair_free(&p);
}
