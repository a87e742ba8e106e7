/*
 * Socket transport: reads into a pooled buffer (or, for TLS, into a shared scratch area that is
 * fed to OpenSSL at once and decrypted into the pooled buffer), writes with uv_try_write first
 * and queues only the remainder, and turns libuv callbacks into a small set of events for the
 * owner. It moves bytes; what they mean is decided by px_client.c, px_server.c and px_relay.c.
 *
 * Memory: a connection holds a read buffer only while it has unconsumed bytes; buffers are
 * reference-counted so a queued write can point into the buffer of the other side (forwarding
 * without copying) even if that side closes meanwhile. Nothing grows without bound: the read
 * buffer has a fixed size, and TLS ciphertext is handed to the kernel only while no write is
 * queued, so it collects only while the relay has stopped reading the source.
 */
#include "px_sock.h"

#include "px_alloc.h"
#include "px_err.h"
#include "px_listen.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct px_wreq {
    uv_write_t req;
    px_sock_t *s;
    px_iobuf_t *ref; /* a reference to a borrowed read buffer, or NULL */
    uint8_t *owned;  /* bytes copied for this write (px_malloc), or NULL */
    px_wreq_t *next_free;
};

#define MAX_FREE_WREQS 256

/* ------------------------------------------------------------------------------------------ */

uint32_t px_io_effective_buf_size(uint32_t buf_size)
{
    /* A whole startup packet (up to 10,000 bytes) and every login-phase message must fit in
     * one buffer; anything larger than the buffer streams only after login. */
    return buf_size < PX_IO_MIN_BUF ? PX_IO_MIN_BUF : buf_size;
}

void px_io_init(px_io_t *io, uv_loop_t *loop, uint32_t buf_size, unsigned max_free_bufs)
{
    memset(io, 0, offsetof(px_io_t, cin));
    io->loop = loop;
    io->buf_size = px_io_effective_buf_size(buf_size);
    io->max_free_bufs = max_free_bufs;
}

static void drop_cached_bufs(px_io_t *io)
{
    while (io->free_bufs) {
        px_iobuf_t *b = io->free_bufs;
        io->free_bufs = b->next_free;
        px_free(b);
        io->bufs_live--;
    }
    io->nfree_bufs = 0;
}

void px_io_cleanup(px_io_t *io)
{
    drop_cached_bufs(io);
    while (io->free_wreqs) {
        px_wreq_t *w = io->free_wreqs;
        io->free_wreqs = w->next_free;
        px_free(w);
    }
    io->nfree_wreqs = 0;
}

static px_iobuf_t *iobuf_get(px_io_t *io)
{
    px_iobuf_t *b = io->free_bufs;
    if (b) {
        io->free_bufs = b->next_free;
        io->nfree_bufs--;
    } else {
        b = px_malloc(sizeof(*b) + io->buf_size);
        if (!b)
            return NULL;
        b->cap = io->buf_size;
        io->bufs_live++;
    }
    b->next_free = NULL;
    b->refs = 1;
    return b;
}

static void iobuf_unref(px_io_t *io, px_iobuf_t *b)
{
    assert(b->refs > 0);
    if (--b->refs > 0)
        return;
    /* Buffers of an old size (after a reload) and buffers beyond the cache cap go back to the
     * allocator, so 1,000 connections that were busy once do not pin 1,000 buffers. */
    if (b->cap == io->buf_size && io->nfree_bufs < io->max_free_bufs) {
        b->next_free = io->free_bufs;
        io->free_bufs = b;
        io->nfree_bufs++;
        return;
    }
    px_free(b);
    io->bufs_live--;
}

static px_wreq_t *wreq_get(px_io_t *io)
{
    px_wreq_t *w = io->free_wreqs;
    if (w) {
        io->free_wreqs = w->next_free;
        io->nfree_wreqs--;
        return w;
    }
    return px_malloc(sizeof(*w));
}

static void wreq_put(px_io_t *io, px_wreq_t *w)
{
    if (io->nfree_wreqs < MAX_FREE_WREQS) {
        w->next_free = io->free_wreqs;
        io->free_wreqs = w;
        io->nfree_wreqs++;
        return;
    }
    px_free(w);
}

/* ------------------------------------------------------------------------------------------ */

void px_sock_init(px_sock_t *s, px_io_t *io, px_sock_cb cb)
{
    memset(s, 0, sizeof(*s));
    s->io = io;
    s->cb = cb;
}

int px_sock_open_tcp(px_sock_t *s)
{
    int rc = uv_tcp_init(s->io->loop, &s->h.tcp);
    if (rc)
        return rc;
    s->inited = true;
    /* Applied when libuv creates the socket at connect time. Small request/response messages
     * must not wait for Nagle's algorithm. */
    (void)uv_tcp_nodelay(&s->h.tcp, 1);
    (void)uv_tcp_keepalive(&s->h.tcp, 1, 60);
    return 0;
}

int px_sock_accept(px_sock_t *s, uv_stream_t *server, bool pipe)
{
    int rc = pipe ? uv_pipe_init(s->io->loop, &s->h.pipe, 0) : uv_tcp_init(s->io->loop, &s->h.tcp);
    if (rc)
        return rc;
    s->inited = true;
    rc = uv_accept(server, &s->h.stream);
    if (rc)
        return rc; /* the caller closes the handle */
    if (!pipe)
        (void)uv_tcp_nodelay(&s->h.tcp, 1);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int px_sock_buf_get(px_sock_t *s)
{
    if (s->buf)
        return 0;
    s->buf = iobuf_get(s->io);
    if (!s->buf)
        return UV_ENOMEM;
    s->off = s->pos = s->end = 0;
    return 0;
}

static void buf_release(px_sock_t *s)
{
    if (s->buf) {
        iobuf_unref(s->io, s->buf);
        s->buf = NULL;
    }
    s->off = s->pos = s->end = 0;
}

bool px_sock_compact(px_sock_t *s)
{
    if (!s->buf || s->off == 0)
        return false;
    uint32_t keep = s->end - s->off;
    if (s->buf->refs == 1) {
        memmove(s->buf->data, s->buf->data + s->off, keep);
    } else {
        /* A queued write still points into this buffer: move the live tail to a fresh one
         * instead of overwriting bytes the kernel has not taken yet. */
        px_iobuf_t *nb = iobuf_get(s->io);
        if (!nb)
            return false;
        memcpy(nb->data, s->buf->data + s->off, keep);
        iobuf_unref(s->io, s->buf);
        s->buf = nb;
    }
    s->pos -= s->off;
    s->end -= s->off;
    s->off = 0;
    return true;
}

void px_sock_consumed(px_sock_t *s)
{
    s->off = s->pos;
    if (s->buf && s->off == s->end)
        buf_release(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
static void linger_step(px_sock_t *s);

static bool has_space(const px_sock_t *s)
{
    return !s->buf || s->end < s->buf->cap || s->off > 0;
}

static void update_reading(px_sock_t *s)
{
    bool want;
    if (s->lingering)
        want = s->inited && !s->closing && !s->peer_eof;
    else
        want = s->want_read && s->inited && !s->closing && !s->error_reported && !s->tls_more &&
               (s->tls ? true : has_space(s));
    if (want && !s->reading) {
        if (uv_read_start(&s->h.stream, on_alloc, on_read) == 0)
            s->reading = true;
    } else if (!want && s->reading) {
        uv_read_stop(&s->h.stream);
        s->reading = false;
    }
}

static void emit(px_sock_t *s, px_sock_ev_t ev, int status)
{
    if (ev == PX_EV_EOF || ev == PX_EV_ERROR) {
        if (s->error_reported)
            return;
        s->error_reported = true;
        update_reading(s);
    }
    s->cb(s, ev, status);
}

/* ------------------------------------------------------------------------------------------ */

static int plain_write(px_sock_t *s, const uint8_t *p, size_t n, px_iobuf_t *ref);
static void on_write(uv_write_t *req, int status);

static int tls_flush(px_sock_t *s)
{
    /* One write in flight at a time for TLS: while it is queued, new ciphertext collects in the
     * session's output buffer (the relay keeps it small by not reading the source meanwhile) and
     * goes out as one write when the queued one completes. The kernel gets the bytes straight
     * from that buffer; only what it does not take now is copied into the queued write. */
    if (s->nwrites > 0)
        return 0;
    const uint8_t *p;
    size_t n = px_tls_out_peek(s->tls, &p);
    if (n == 0)
        return 0;
    int rc = plain_write(s, p, n, NULL);
    px_tls_out_consume(s->tls, n);
    return rc;
}

/* Writes to the kernel now if nothing is queued; queues the rest. `ref` set: p points into that
 * buffer and stays valid while referenced; NULL: p is copied if it must wait. */
static int plain_write(px_sock_t *s, const uint8_t *p, size_t n, px_iobuf_t *ref)
{
    if (n == 0)
        return 0;
    if (s->nwrites == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write(&s->h.stream, &b, 1);
        if (w >= 0 && (size_t)w == n)
            return 0;
        if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS)
            return w;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
    }
    px_wreq_t *wr = wreq_get(s->io);
    if (!wr)
        return UV_ENOMEM;
    wr->s = s;
    wr->ref = NULL;
    wr->owned = NULL;
    if (ref) {
        wr->ref = ref;
    } else {
        wr->owned = px_malloc(n);
        if (!wr->owned) {
            wreq_put(s->io, wr);
            return UV_ENOMEM;
        }
        memcpy(wr->owned, p, n);
        p = wr->owned;
    }
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int rc = uv_write(&wr->req, &s->h.stream, &b, 1, on_write);
    if (rc) {
        px_free(wr->owned);
        wreq_put(s->io, wr);
        return rc;
    }
    if (ref)
        ref->refs++;
    s->nwrites++;
    return 0;
}

static void on_write(uv_write_t *req, int status)
{
    px_wreq_t *wr = container_of(req, px_wreq_t, req);
    px_sock_t *s = wr->s;
    if (wr->ref)
        iobuf_unref(s->io, wr->ref);
    px_free(wr->owned);
    wreq_put(s->io, wr);
    assert(s->nwrites > 0);
    s->nwrites--;
    if (s->closing)
        return;
    if (status < 0) {
        emit(s, PX_EV_ERROR, status);
        return;
    }
    if (s->tls) {
        int rc = tls_flush(s);
        if (rc) {
            emit(s, PX_EV_ERROR, rc);
            return;
        }
    }
    if (px_sock_write_pending(s))
        return;
    if (s->close_on_flush) {
        if (s->lingering && !s->peer_eof)
            linger_step(s);
        else
            px_sock_close(s);
        return;
    }
    emit(s, PX_EV_FLUSHED, 0);
}

int px_sock_write_borrowed(px_sock_t *s, px_sock_t *from, const uint8_t *p, size_t n)
{
    if (s->closing)
        return UV_ECANCELED;
    s->bytes_out += n;
    s->last_io = uv_now(s->io->loop);
    s->trimmed = false;
    if (s->tls) {
        if (px_tls_write(s->tls, p, n) != PX_TLS_OK)
            return PX_E_TLS;
        return tls_flush(s);
    }
    return plain_write(s, p, n, from->buf);
}

int px_sock_write_copy(px_sock_t *s, const void *p, size_t n)
{
    if (s->closing)
        return UV_ECANCELED;
    s->bytes_out += n;
    s->last_io = uv_now(s->io->loop);
    s->trimmed = false;
    if (s->tls) {
        if (px_tls_write(s->tls, p, n) != PX_TLS_OK)
            return PX_E_TLS;
        return tls_flush(s);
    }
    return plain_write(s, p, n, NULL);
}

bool px_sock_write_pending(const px_sock_t *s)
{
    /* Every path that makes TLS output (write, read, handshake, close_notify, write completion)
     * ends in tls_flush, which either hands all of it to the kernel or queues a write: so
     * ciphertext waiting in the BIO always comes with nwrites > 0, and the BIO need not be
     * asked here, on the relay's hottest check. */
    return s->nwrites > 0;
}

/* ------------------------------------------------------------------------------------------ */

int px_sock_tls_fill(px_sock_t *s)
{
    if (!s->tls || !px_tls_handshake_done(s->tls) || s->closing)
        return 0;
    if (s->tls_eof)
        return UV_EOF;
    int rc = px_sock_buf_get(s);
    if (rc)
        return rc;
    int total = 0;
    for (;;) {
        if (s->end == s->buf->cap && !px_sock_compact(s)) {
            /* Full: whatever OpenSSL still holds waits until the owner makes room. */
            s->tls_more = true;
            break;
        }
        size_t n = 0;
        px_tls_result_t r = px_tls_read(s->tls, s->buf->data + s->end, s->buf->cap - s->end, &n);
        if (r == PX_TLS_OK) {
            s->end += (uint32_t)n;
            s->bytes_in += n;
            total += (int)n;
            continue;
        }
        if (r == PX_TLS_AGAIN) {
            s->tls_more = false;
            break;
        }
        if (r == PX_TLS_EOF) {
            s->tls_more = false;
            s->tls_eof = true;
            break;
        }
        return px_tls_errcode(s->tls) ? px_tls_errcode(s->tls) : PX_E_TLS;
    }
    /* Reading can produce output (alerts, key updates): send it now. */
    rc = tls_flush(s);
    if (rc)
        return rc;
    if (total == 0 && s->tls_eof)
        return UV_EOF;
    if (s->buf && s->off == s->end)
        buf_release(s);
    return total;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    px_sock_t *s = container_of(h, px_sock_t, h.handle);
    (void)suggested;
    if (s->tls || s->lingering) {
        /* Ciphertext lands in the shared scratch area and is fed to OpenSSL before the read
         * callback returns, so no connection owns a ciphertext buffer; input being thrown
         * away (lingering) lands there too. */
        *b = uv_buf_init((char *)s->io->cin, sizeof(s->io->cin));
        return;
    }
    if (px_sock_buf_get(s) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    if (s->end == s->buf->cap)
        (void)px_sock_compact(s);
    *b = uv_buf_init((char *)s->buf->data + s->end, s->buf->cap - s->end);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    px_sock_t *s = container_of(st, px_sock_t, h.stream);
    (void)b;
    if (s->closing)
        return;
    if (s->lingering) {
        /* Thrown away. The peer's EOF ends the linger once our last bytes are out (a peer may
         * half-close and then read); an error or too much input ends it at once. */
        if (nread == UV_EOF && px_sock_write_pending(s)) {
            s->peer_eof = true;
            s->close_on_flush = true;
            update_reading(s);
            return;
        }
        if (nread < 0 || (uint64_t)s->discarded + (uint64_t)nread > PX_LINGER_MAX_BYTES) {
            px_sock_close(s);
            return;
        }
        s->discarded += (uint32_t)nread;
        linger_step(s);
        return;
    }
    if (nread == 0) {
        /* EAGAIN: nothing arrived; an empty buffer goes back to the pool. */
        if (s->buf && s->off == s->end && s->pos == s->end)
            buf_release(s);
        return;
    }
    if (nread == UV_ENOBUFS) {
        /* No buffer space: stop until the owner consumes (it calls px_sock_read_start). */
        s->want_read = false;
        update_reading(s);
        if (px_sock_buf_get(s) != 0)
            emit(s, PX_EV_ERROR, UV_ENOMEM);
        return;
    }
    if (nread < 0) {
        emit(s, nread == UV_EOF ? PX_EV_EOF : PX_EV_ERROR, (int)nread);
        return;
    }
    s->last_io = uv_now(s->io->loop);
    s->trimmed = false;
    if (!s->tls) {
        s->end += (uint32_t)nread;
        s->bytes_in += (uint64_t)nread;
        emit(s, PX_EV_READ, 0);
        return;
    }

    int frc = px_tls_feed(s->tls, s->io->cin, (size_t)nread);
    if (frc != 0) {
        emit(s, PX_EV_ERROR, frc);
        return;
    }
    if (!px_tls_handshake_done(s->tls)) {
        px_tls_result_t r = px_tls_handshake(s->tls);
        int rc = tls_flush(s);
        if (r == PX_TLS_ERR) {
            emit(s, PX_EV_ERROR, px_tls_errcode(s->tls) ? px_tls_errcode(s->tls) : PX_E_TLS);
            return;
        }
        if (rc) {
            emit(s, PX_EV_ERROR, rc);
            return;
        }
        if (r == PX_TLS_OK)
            emit(s, PX_EV_TLS_READY, 0);
        return;
    }
    int n = px_sock_tls_fill(s);
    if (n > 0) {
        emit(s, PX_EV_READ, 0);
        return;
    }
    if (n == UV_EOF)
        emit(s, PX_EV_EOF, UV_EOF);
    else if (n < 0)
        emit(s, PX_EV_ERROR, n);
    else
        update_reading(s);
}

void px_sock_read_start(px_sock_t *s)
{
    s->want_read = true;
    update_reading(s);
}

void px_sock_read_stop(px_sock_t *s)
{
    s->want_read = false;
    update_reading(s);
}

int px_sock_tls_start(px_sock_t *s, px_tls_t *tls)
{
    assert(!s->tls);
    s->tls = tls;
    s->tls_more = false;
    px_tls_result_t r = px_tls_handshake(tls);
    if (r == PX_TLS_ERR)
        return px_tls_errcode(tls) ? px_tls_errcode(tls) : PX_E_TLS;
    return tls_flush(s);
}

static void on_close(uv_handle_t *h)
{
    px_sock_t *s = container_of(h, px_sock_t, h.handle);
    s->cb(s, PX_EV_CLOSED, 0);
}

void px_sock_close(px_sock_t *s)
{
    if (s->closing)
        return;
    s->closing = true;
    buf_release(s);
    if (s->tls) {
        px_tls_free(s->tls);
        s->tls = NULL;
    }
    if (s->inited) {
        if (s->reading)
            uv_read_stop(&s->h.stream);
        s->reading = false;
        uv_close(&s->h.handle, on_close);
    }
}

/* The FIN goes once our writes are out and the peer's message has come whole; reading goes
 * on until the peer closes. */
static void linger_step(px_sock_t *s)
{
    if (s->fin_sent || s->discarded < s->fin_after)
        return;
    if (px_sock_write_pending(s)) {
        s->close_on_flush = true;
        return;
    }
    s->close_on_flush = false;
    s->fin_sent = true;
    uv_os_fd_t fd;
    if (uv_fileno(&s->h.handle, &fd) != 0 || shutdown(fd, SHUT_WR) != 0)
        px_sock_close(s);
}

void px_sock_close_lingering(px_sock_t *s, uint64_t fin_after)
{
    if (s->closing)
        return;
    if (s->tls || !s->inited || s->error_reported) {
        px_sock_close_graceful(s);
        return;
    }
    s->lingering = true;
    s->fin_after = (uint32_t)PX_MIN(fin_after, (uint64_t)PX_LINGER_MAX_BYTES);
    /* Our view of the unread input goes (it counts as drained); writes still referencing the
     * buffer keep it alive. */
    s->discarded = px_sock_unread(s);
    buf_release(s);
    update_reading(s);
    linger_step(s);
}

void px_sock_close_graceful(px_sock_t *s)
{
    if (s->closing)
        return;
    if (s->tls && px_tls_handshake_done(s->tls) && !s->error_reported) {
        (void)px_tls_close_notify(s->tls);
        if (tls_flush(s) != 0) {
            px_sock_close(s);
            return;
        }
    }
    if (px_sock_write_pending(s) && !s->error_reported) {
        s->close_on_flush = true;
        px_sock_read_stop(s);
        return;
    }
    px_sock_close(s);
}

bool px_sock_trim_idle(px_sock_t *s, uint64_t now, uint64_t idle_ms)
{
    if (s->trimmed || s->closing || !s->tls || s->nwrites > 0 || now - s->last_io < idle_ms)
        return false;
    s->trimmed = true;
    px_tls_trim(s->tls);
    return true;
}

void px_sock_peer_name(const px_sock_t *s, char *buf, size_t len, bool *loopback)
{
    *loopback = false;
    snprintf(buf, len, "?");
    if (!s->inited)
        return;
    if (s->h.handle.type == UV_NAMED_PIPE) {
        snprintf(buf, len, "unix");
        *loopback = true;
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    px_addr_name((struct sockaddr *)&ss, buf, len);
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        *loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        const uint8_t *b = a->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        *loopback =
            IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || (memcmp(b, v4mapped, 12) == 0 && b[12] == 127);
    }
}
