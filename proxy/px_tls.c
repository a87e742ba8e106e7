/*
 * TLS engine: OpenSSL driven over a BIO of our own (h2o's and tlsuv's approach, STYLE.md §7.11)
 * with tlsuv's small result enum. The connection feeds ciphertext in and takes ciphertext out;
 * this file never sees a socket, so it runs unchanged in unit tests.
 *
 * Why not BIO_s_mem: on a relay carrying small messages, OpenSSL's memory BIO (BUF_MEM growth,
 * a ctrl call for every pending/ktls/flush query, a copy out of the BIO into a scratch buffer)
 * cost about a fifth of the proxy's instructions per round trip. Our BIO is two flat buffers
 * that the connection reads and consumes in place.
 *
 * Rules kept here (STYLE.md §5): an empty error queue before every SSL call whose failure must be
 * classified; SSL_get_error classified in one place (classify); an empty input reports "retry"
 * rather than EOF, so an empty buffer is never mistaken for a closed peer; renegotiation is
 * refused; TLS 1.2 is the floor. Backpressure is the caller's job; the buffers only have a hard
 * ceiling against bugs.
 */
#include "px_tls.h"

#include "px_alloc.h"
#include "px_err.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct px_tls_ctx {
    SSL_CTX *ssl_ctx; /* owned; SSL objects made from it hold their own reference */
    cfg_sslmode_t mode;
    int refs;
};

/* Ciphertext waiting in one direction: bytes [off, len) of data. */
typedef struct tls_buf {
    uint8_t *data; /* owned (px_malloc); NULL until first used and after a trim */
    size_t off, len, cap;
} tls_buf_t;

struct px_tls {
    SSL *ssl;      /* owned; frees the BIO */
    BIO *bio;      /* ours (see bio_method): reads `in`, appends to `out`; owned by ssl */
    tls_buf_t in;  /* ciphertext from the peer, not yet consumed by OpenSSL */
    tls_buf_t out; /* ciphertext for the peer, not yet taken */
    bool handshake_done;
    int bio_err; /* why our BIO refused output (UV_ENOBUFS: TLS_BUF_MAX; UV_ENOMEM) */
    int errcode;
    char *host;   /* owned; the name or address we were asked to reach (for error text) */
    char *errmsg; /* owned, made on the first error (idle sessions do not carry 640 bytes) */
};

#define TLS_ERRMSG_LEN 640
/* Ceiling on either buffer. The relay bounds both by itself (a side is not read while the other
 * has writes queued, and ciphertext is fed a read at a time), so this only stops a bug from
 * turning into unbounded memory. */
#define TLS_BUF_MAX (16u * 1024 * 1024)

/* The error queue must be empty before an SSL call, or SSL_get_error can misreport. Clearing
 * walks every slot of the queue, which costs more than the rest of a small record's handling,
 * so the queue is only cleared when something is in it. */
static inline void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* The error text buffer, made on first use; NULL when even that fails (the text then falls back
 * to "SSL error"). */
static char *errbuf(px_tls_t *t)
{
    if (!t->errmsg)
        t->errmsg = px_malloc(TLS_ERRMSG_LEN);
    return t->errmsg;
}

static void set_errmsg(px_tls_t *t, const char *fmt, ...) PX_PRINTF(2, 3);
static void set_errmsg(px_tls_t *t, const char *fmt, ...)
{
    char *b = errbuf(t);
    if (!b)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, TLS_ERRMSG_LEN, fmt, ap);
    va_end(ap);
}

static void tls_set_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (err && errlen)
        snprintf(err, errlen, "%s%s%s", what, reason ? ": " : "", reason ? reason : "");
    ERR_clear_error();
}

int px_tls_ctx_new_client(cfg_sslmode_t mode, const char *rootcert, px_tls_ctx_t **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    ERR_clear_error();
    px_tls_ctx_t *c = px_calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->refs = 1;
    c->mode = mode;
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ssl_ctx) {
        tls_set_err(err, errlen, "cannot create TLS context");
        goto fail;
    }
    SSL_CTX *s = c->ssl_ctx;
    if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION)) {
        tls_set_err(err, errlen, "cannot set the minimum TLS version");
        goto fail;
    }
    /* No renegotiation (h2o does the same); no compression (CRIME). The record buffers are not
     * released after every record (SSL_MODE_RELEASE_BUFFERS costs two allocations per record);
     * px_tls_trim gives them back once a session has gone quiet. */
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);

    if (mode == CFG_SSLMODE_VERIFY_FULL || mode == CFG_SSLMODE_VERIFY_CA) {
        if (!rootcert || !*rootcert || strcmp(rootcert, "system") == 0) {
            if (!SSL_CTX_set_default_verify_paths(s)) {
                tls_set_err(err, errlen, "cannot load the system trust store");
                goto fail;
            }
        } else if (!SSL_CTX_load_verify_locations(s, rootcert, NULL)) {
            char what[300];
            snprintf(what, sizeof(what), "cannot load sslrootcert \"%s\"", rootcert);
            tls_set_err(err, errlen, what);
            goto fail;
        }
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(s, SSL_VERIFY_NONE, NULL);
    }
    *out = c;
    return 0;
fail:
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    px_free(c);
    return PX_E_TLS;
}

int px_tls_ctx_new_server(const char *cert_file, const char *key_file, px_tls_ctx_t **out,
                          char *err, size_t errlen)
{
    *out = NULL;
    ERR_clear_error();
    px_tls_ctx_t *c = px_calloc(1, sizeof(*c));
    if (!c)
        return UV_ENOMEM;
    c->refs = 1;
    c->mode = CFG_SSLMODE_REQUIRE;
    c->ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (!c->ssl_ctx) {
        tls_set_err(err, errlen, "cannot create TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(c->ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(c->ssl_ctx, cert_file) != 1) {
        tls_set_err(err, errlen, "cannot load the certificate");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl_ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c->ssl_ctx) != 1) {
        tls_set_err(err, errlen, "cannot load the private key");
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    px_free(c);
    return PX_E_TLS;
}

px_tls_ctx_t *px_tls_ctx_ref(px_tls_ctx_t *ctx)
{
    /* Contexts are shared only on the loop thread; a reload builds a new one elsewhere and hands
     * it over whole, so a plain counter suffices. */
    ctx->refs++;
    return ctx;
}

void px_tls_ctx_unref(px_tls_ctx_t *ctx)
{
    if (!ctx || --ctx->refs > 0)
        return;
    SSL_CTX_free(ctx->ssl_ctx);
    px_free(ctx);
}

cfg_sslmode_t px_tls_ctx_mode(const px_tls_ctx_t *ctx)
{
    return ctx->mode;
}

/* ------------------------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------------------------ */
/* The BIO.                                                                                   */

/* Appends n bytes, growing the buffer (doubling, at least 4 KB) up to TLS_BUF_MAX. */
static int tbuf_append(tls_buf_t *b, const void *p, size_t n)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->cap - b->len < n) {
        size_t live = b->len - b->off;
        if (b->off > 0 && b->cap - live >= n) {
            /* Room enough once the consumed head is dropped. */
            memmove(b->data, b->data + b->off, live);
        } else {
            if (live + n > TLS_BUF_MAX)
                return UV_ENOBUFS;
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < live + n)
                cap *= 2;
            uint8_t *nd = px_malloc(cap);
            if (!nd)
                return UV_ENOMEM;
            if (live)
                memcpy(nd, b->data + b->off, live);
            px_free(b->data);
            b->data = nd;
            b->cap = cap;
        }
        b->off = 0;
        b->len = live;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline size_t tbuf_avail(const tls_buf_t *b)
{
    return b->len - b->off;
}

static inline void tbuf_consume(tls_buf_t *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

/* Frees an empty buffer's memory. */
static void tbuf_trim(tls_buf_t *b)
{
    if (tbuf_avail(b) == 0 && b->data) {
        px_free(b->data);
        b->data = NULL;
        b->off = b->len = b->cap = 0;
    }
}

static int bio_write_ex(BIO *bio, const char *data, size_t n, size_t *written)
{
    px_tls_t *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    *written = 0;
    int rc = tbuf_append(&t->out, data, n);
    if (rc != 0) {
        t->bio_err = rc;
        return 0; /* OpenSSL then fails the call: the session is broken */
    }
    *written = n;
    return 1;
}

static int bio_read_ex(BIO *bio, char *data, size_t n, size_t *got)
{
    px_tls_t *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    size_t avail = tbuf_avail(&t->in);
    if (avail == 0) {
        /* "No data yet", never EOF: the peer's end of stream is reported by the socket. */
        BIO_set_retry_read(bio);
        *got = 0;
        return 0;
    }
    size_t k = n < avail ? n : avail;
    memcpy(data, t->in.data + t->in.off, k);
    tbuf_consume(&t->in, k);
    *got = k;
    return 1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    px_tls_t *t = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the connection takes the output; nothing to push here */
    case BIO_CTRL_PENDING:
        return (long)tbuf_avail(&t->in);
    case BIO_CTRL_WPENDING:
        return (long)tbuf_avail(&t->out);
    default:
        /* Everything else (kTLS queries, push/pop, duplication) is "not supported". */
        return 0;
    }
}

static const char *bio_err_text(int err)
{
    return err == UV_ENOBUFS ? "ciphertext buffer limit reached" : "out of memory";
}

static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_method_once = CRYPTO_ONCE_STATIC_INIT;

/* Made once per process and never freed (OpenSSL keeps a pointer in every BIO made from it). */
static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "rsproxy tls");
    if (!m)
        return;
    if (!BIO_meth_set_write_ex(m, bio_write_ex) || !BIO_meth_set_read_ex(m, bio_read_ex) ||
        !BIO_meth_set_ctrl(m, bio_ctrl)) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

static int tls_new(px_tls_ctx_t *ctx, px_tls_t **out)
{
    *out = NULL;
    ERR_clear_error();
    if (!CRYPTO_THREAD_run_once(&bio_method_once, bio_method_make) || !bio_method)
        return UV_ENOMEM;
    px_tls_t *t = px_calloc(1, sizeof(*t));
    if (!t)
        return UV_ENOMEM;
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->bio = BIO_new(bio_method);
    if (!t->ssl || !t->bio) {
        BIO_free(t->bio);
        SSL_free(t->ssl);
        px_free(t);
        ERR_clear_error();
        return UV_ENOMEM;
    }
    BIO_set_data(t->bio, t);
    BIO_set_init(t->bio, 1);
    /* One BIO both ways: SSL_set_bio takes the single reference we hold. */
    SSL_set_bio(t->ssl, t->bio, t->bio);
    /* Read-ahead: OpenSSL takes everything fed in one BIO call (instead of a header, then a
     * body, per record) and keeps what it has not decrypted yet, which SSL_has_pending sees. */
    SSL_set_read_ahead(t->ssl, 1);
    *out = t;
    return 0;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int px_tls_new_client(px_tls_ctx_t *ctx, const char *host, px_tls_t **out)
{
    px_tls_t *t;
    int rc = tls_new(ctx, &t);
    if (rc)
        return rc;
    t->host = px_strdup(host ? host : "");
    if (!t->host) {
        px_tls_free(t);
        return UV_ENOMEM;
    }
    bool ip = is_ip_literal(t->host);
    SSL_set_connect_state(t->ssl);
    if (t->host[0] && !ip && !SSL_set_tlsext_host_name(t->ssl, t->host))
        goto fail;
    if (ctx->mode == CFG_SSLMODE_VERIFY_FULL) {
        /* Host-name verification runs inside the chain verification, so a mismatch fails the
         * handshake with X509_V_ERR_HOSTNAME_MISMATCH like any other verification error. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        if (ip) {
            if (!X509_VERIFY_PARAM_set1_ip_asc(vp, t->host))
                goto fail;
        } else {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (!SSL_set1_host(t->ssl, t->host))
                goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    px_tls_free(t);
    ERR_clear_error();
    return PX_E_TLS;
}

int px_tls_new_server(px_tls_ctx_t *ctx, px_tls_t **out)
{
    px_tls_t *t;
    int rc = tls_new(ctx, &t);
    if (rc)
        return rc;
    SSL_set_accept_state(t->ssl);
    *out = t;
    return 0;
}

void px_tls_free(px_tls_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees the BIO */
    px_free(t->in.data);
    px_free(t->out.data);
    px_free(t->host);
    px_free(t->errmsg);
    px_free(t);
}

/* ------------------------------------------------------------------------------------------ */

/* The names a certificate is valid for, for the host-name mismatch message: DNS and IP SANs,
 * or the CN when there are none (the same choice libpq makes). */
static void describe_names(X509 *cert, char *first, size_t firstlen, int *count)
{
    *count = 0;
    first[0] = '\0';
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            char name[256] = "";
            if (g->type == GEN_DNS) {
                const ASN1_IA5STRING *s = g->d.dNSName;
                int l = s->length < (int)sizeof(name) - 1 ? s->length : (int)sizeof(name) - 1;
                memcpy(name, s->data, (size_t)l);
                name[l] = '\0';
            } else if (g->type == GEN_IPADD) {
                const ASN1_OCTET_STRING *s = g->d.iPAddress;
                if (s->length == 4)
                    inet_ntop(AF_INET, s->data, name, sizeof(name));
                else if (s->length == 16)
                    inet_ntop(AF_INET6, s->data, name, sizeof(name));
            } else {
                continue;
            }
            if (*count == 0)
                snprintf(first, firstlen, "%s", name);
            (*count)++;
        }
        GENERAL_NAMES_free(sans);
    }
    if (*count == 0) {
        X509_NAME *subj = X509_get_subject_name(cert);
        if (subj && X509_NAME_get_text_by_NID(subj, NID_commonName, first, (int)firstlen) > 0)
            *count = 1;
    }
}

static void record_verify_error(px_tls_t *t, long vr)
{
    t->errcode = PX_E_TLS_VERIFY;
    if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        /* The leaf is in the peer chain even though verification failed (the session's peer
         * certificate is only set on success). */
        STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
        X509 *leaf = chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
        char first[256];
        int count = 0;
        if (leaf)
            describe_names(leaf, first, sizeof(first), &count);
        const char *host = t->host ? t->host : "";
        if (count == 0)
            set_errmsg(t, "could not get server's host name from server certificate");
        else if (count == 1)
            set_errmsg(t, "server certificate for \"%s\" does not match host name \"%s\"", first,
                       host);
        else
            set_errmsg(t,
                       "server certificate for \"%s\" (and %d other name%s) does not match host "
                       "name \"%s\"",
                       first, count - 1, count - 1 == 1 ? "" : "s", host);
        return;
    }
    set_errmsg(t, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
}

/*
 * The one place SSL_get_error is interpreted. WANT_WRITE cannot mean "socket full" with memory
 * BIOs, so it is folded into AGAIN with WANT_READ; SYSCALL and SSL are fatal, with the reason
 * taken from the verification result first (it is the useful one after a failed handshake) and
 * from the error queue otherwise.
 */
static px_tls_result_t classify(px_tls_t *t, int ret)
{
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_NONE:
        return PX_TLS_OK;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return PX_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return PX_TLS_EOF;
    default:
        break;
    }
    if (t->errcode == 0) {
        long vr = SSL_get_verify_result(t->ssl);
        if (!t->handshake_done && vr != X509_V_OK &&
            SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
            record_verify_error(t, vr);
        } else {
            unsigned long q = ERR_peek_last_error();
            const char *reason = q ? ERR_reason_error_string(q) : NULL;
            t->errcode = PX_E_TLS;
            if (t->bio_err)
                reason = bio_err_text(t->bio_err);
            set_errmsg(t, "SSL error: %s",
                       reason ? reason
                              : (e == SSL_ERROR_SYSCALL ? "unexpected end of stream"
                                                        : "protocol failure"));
        }
    }
    ERR_clear_error();
    return PX_TLS_ERR;
}

px_tls_result_t px_tls_handshake(px_tls_t *t)
{
    if (t->handshake_done)
        return PX_TLS_OK;
    if (t->errcode)
        return PX_TLS_ERR;
    clear_errors();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->handshake_done = true;
        return PX_TLS_OK;
    }
    px_tls_result_t res = classify(t, r);
    return res == PX_TLS_EOF ? PX_TLS_ERR : res;
}

bool px_tls_handshake_done(const px_tls_t *t)
{
    return t->handshake_done;
}

int px_tls_feed(px_tls_t *t, const void *cipher, size_t n)
{
    return n == 0 ? 0 : tbuf_append(&t->in, cipher, n);
}

size_t px_tls_pending_in(const px_tls_t *t)
{
    return tbuf_avail(&t->in);
}

px_tls_result_t px_tls_read(px_tls_t *t, void *out, size_t cap, size_t *n)
{
    *n = 0;
    if (t->errcode)
        return PX_TLS_ERR;
    if (cap == 0)
        return PX_TLS_OK;
    /* Nothing decrypted and no ciphertext waiting: SSL_read could only say WANT_READ. The
     * relay asks once more after every batch, so answering that here saves a trip through the
     * record layer and SSL_get_error per read. */
    if (t->handshake_done && tbuf_avail(&t->in) == 0 && !SSL_has_pending(t->ssl))
        return PX_TLS_AGAIN;
    clear_errors();
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, out, cap, &got);
    if (r == 1) {
        *n = got;
        return PX_TLS_OK;
    }
    return classify(t, 0);
}

px_tls_result_t px_tls_write(px_tls_t *t, const void *plain, size_t n)
{
    if (t->errcode)
        return PX_TLS_ERR;
    if (n == 0)
        return PX_TLS_OK;
    /* No clear_errors here, unlike before the other SSL calls: our BIO takes everything and
     * renegotiation is off, so any failure is fatal whatever SSL_get_error would say, and the
     * reason is the newest error in the queue (ERR_peek_last_error), which a stale entry left by
     * other code cannot mask. That saves a walk to the thread's error state per write. */
    size_t written = 0;
    int r = SSL_write_ex(t->ssl, plain, n, &written);
    if (r == 1 && written == n)
        return PX_TLS_OK;
    px_tls_result_t res = classify(t, r == 1 ? 0 : r);
    if (res != PX_TLS_ERR && t->errcode == 0) {
        t->errcode = PX_E_TLS;
        set_errmsg(t, "SSL error: %s", t->bio_err ? bio_err_text(t->bio_err) : "incomplete write");
    }
    return PX_TLS_ERR;
}

px_tls_result_t px_tls_close_notify(px_tls_t *t)
{
    if (t->errcode || !t->handshake_done)
        return PX_TLS_OK; /* nothing sensible can be said on a broken session */
    clear_errors();
    int r = SSL_shutdown(t->ssl);
    if (r >= 0)
        return PX_TLS_OK;
    ERR_clear_error();
    return PX_TLS_ERR;
}

size_t px_tls_pending_out(const px_tls_t *t)
{
    return tbuf_avail(&t->out);
}

size_t px_tls_out_peek(const px_tls_t *t, const uint8_t **p)
{
    *p = t->out.data ? t->out.data + t->out.off : NULL;
    return tbuf_avail(&t->out);
}

void px_tls_out_consume(px_tls_t *t, size_t n)
{
    if (n > tbuf_avail(&t->out))
        n = tbuf_avail(&t->out);
    tbuf_consume(&t->out, n);
}

void px_tls_trim(px_tls_t *t)
{
    /* About 34 KB of record buffers; fails harmlessly while a record is half read. */
    if (t->handshake_done) {
        int freed = SSL_free_buffers(t->ssl);
        (void)freed;
    }
    /* Our ciphertext buffers go too once empty: an idle session then holds none, and its next
     * message allocates one again (once per idle period, so no churn on a busy session). */
    tbuf_trim(&t->in);
    tbuf_trim(&t->out);
    clear_errors();
}

int px_tls_errcode(const px_tls_t *t)
{
    return t->errcode;
}

const char *px_tls_errmsg(const px_tls_t *t)
{
    return t->errmsg && t->errmsg[0] ? t->errmsg : "SSL error";
}

const char *px_tls_version(const px_tls_t *t)
{
    return SSL_get_version(t->ssl);
}

const char *px_tls_cipher(const px_tls_t *t)
{
    return SSL_get_cipher_name(t->ssl);
}

void px_tls_peer_subject(const px_tls_t *t, char *buf, size_t len)
{
    buf[0] = '\0';
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer)
        X509_NAME_oneline(X509_get_subject_name(peer), buf, (int)len);
}
