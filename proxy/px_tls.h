/*
 * TLS over in-memory ciphertext buffers (STYLE.md §5, §7.11): the connection pushes ciphertext it
 * read in with px_tls_feed, pulls plaintext out with px_tls_read, pushes plaintext in with
 * px_tls_write and takes the ciphertext to send in place with px_tls_out_peek and
 * px_tls_out_consume. No sockets here, so the whole engine runs in unit tests
 * with a client and a server wired back to back.
 *
 * Contexts (px_tls_ctx_t) hold the SSL_CTX with the trust store and the verification mode; they
 * are built at startup or on reload (off the loop thread: loading CA files reads the disk), never
 * on a connection path, and are reference-counted so a reload does not disturb open sessions.
 */
#ifndef PX_TLS_H
#define PX_TLS_H

#include "cfg.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum px_tls_result {
    PX_TLS_OK = 0, /* done (handshake finished, bytes read or written) */
    PX_TLS_AGAIN,  /* needs more ciphertext from the peer (feed, then call again) */
    PX_TLS_EOF,    /* the peer sent close_notify */
    PX_TLS_ERR,    /* fatal: px_tls_errmsg() says why; the session is unusable */
} px_tls_result_t;

typedef struct px_tls_ctx px_tls_ctx_t;
typedef struct px_tls px_tls_t;

/*
 * A client context for upstream connections. `rootcert` is "system" (the default verify paths)
 * or a PEM file with one or more CA certificates; it is ignored for sslmode require. TLS 1.2 is
 * the minimum and renegotiation is refused. Returns 0, or PX_E_TLS with a reason in err.
 */
int px_tls_ctx_new_client(cfg_sslmode_t mode, const char *rootcert, px_tls_ctx_t **out, char *err,
                          size_t errlen) PX_MUSTCHECK;
/* A server context from PEM files (tests; client-side TLS later). */
int px_tls_ctx_new_server(const char *cert_file, const char *key_file, px_tls_ctx_t **out,
                          char *err, size_t errlen) PX_MUSTCHECK;
px_tls_ctx_t *px_tls_ctx_ref(px_tls_ctx_t *ctx);
void px_tls_ctx_unref(px_tls_ctx_t *ctx);
cfg_sslmode_t px_tls_ctx_mode(const px_tls_ctx_t *ctx);

/*
 * A client session. `host` is what the connection was asked to reach: a DNS name gets SNI and,
 * under verify-full, host-name verification (SSL_set1_host); an IP literal gets IP-address
 * verification and no SNI (RFC 6066 forbids literals there). Returns 0 or UV_ENOMEM/PX_E_TLS.
 */
int px_tls_new_client(px_tls_ctx_t *ctx, const char *host, px_tls_t **out) PX_MUSTCHECK;
int px_tls_new_server(px_tls_ctx_t *ctx, px_tls_t **out) PX_MUSTCHECK;
void px_tls_free(px_tls_t *t);

/* Steps the handshake: OK when finished, AGAIN while it needs the peer, ERR on failure. Take
 * the output after every call (the ClientHello comes out of the first one). */
px_tls_result_t px_tls_handshake(px_tls_t *t);
bool px_tls_handshake_done(const px_tls_t *t);

/* Pushes ciphertext received from the peer (copied). Returns 0, UV_ENOMEM, or UV_ENOBUFS when
 * more than 16 MiB would be waiting (the caller feeds a read at a time, so only a bug gets
 * there). */
int px_tls_feed(px_tls_t *t, const void *cipher, size_t n) PX_MUSTCHECK;
/* Ciphertext fed but not yet consumed by OpenSSL. */
size_t px_tls_pending_in(const px_tls_t *t);

/* Decrypts up to cap bytes into out. OK with *n > 0, AGAIN (feed more), EOF or ERR. */
px_tls_result_t px_tls_read(px_tls_t *t, void *out, size_t cap, size_t *n);
/* Encrypts all n bytes (n > 0) into the output BIO. OK or ERR. */
px_tls_result_t px_tls_write(px_tls_t *t, const void *plain, size_t n);
/* Queues close_notify (output to take). OK or ERR; harmless on a session that failed. */
px_tls_result_t px_tls_close_notify(px_tls_t *t);

/* Ciphertext waiting to be sent. */
size_t px_tls_pending_out(const px_tls_t *t);
/* The ciphertext waiting to be sent, in place: returns its length and points *p at it (valid
 * until the next px_tls_* call on t). px_tls_out_consume then drops the first n bytes. */
size_t px_tls_out_peek(const px_tls_t *t, const uint8_t **p);
void px_tls_out_consume(px_tls_t *t, size_t n);

/* Releases OpenSSL's record buffers and our empty ciphertext buffers (idle sessions keep
 * little). */
void px_tls_trim(px_tls_t *t);

/* After ERR: PX_E_TLS_VERIFY (certificate or host name) or PX_E_TLS, and a sentence for the
 * client such as "certificate verify failed: self-signed certificate in certificate chain" or
 * "server certificate for "a.example" does not match host name "b.example"". */
int px_tls_errcode(const px_tls_t *t);
const char *px_tls_errmsg(const px_tls_t *t);

/* After the handshake: protocol ("TLSv1.3"), cipher, and the peer certificate's subject
 * (for --check and debug logs). */
const char *px_tls_version(const px_tls_t *t);
const char *px_tls_cipher(const px_tls_t *t);
void px_tls_peer_subject(const px_tls_t *t, char *buf, size_t len);

#endif
