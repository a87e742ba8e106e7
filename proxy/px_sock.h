/*
 * The transport under every connection (pgbouncer's sbuf): one libuv stream (TCP or Unix socket),
 * optionally TLS through px_tls, a read buffer taken from a capped freelist while the connection
 * is busy, and a write path that tries the kernel first and queues only what does not fit.
 *
 * px_sock moves bytes and reports events; it never decides what bytes mean. The owner (client or
 * server connection) gets one callback per event, reads the buffer through the cursors below and
 * writes to the other side, possibly straight out of this buffer ("borrowed": the buffer stays
 * referenced until the kernel has the bytes).
 */
#ifndef PX_SOCK_H
#define PX_SOCK_H

#include "px_tls.h"
#include "px_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* A reference-counted read buffer: the owning socket holds one reference and every queued write
 * that points into it holds another, so a socket may close while its bytes are still being
 * written to the other side. */
typedef struct px_iobuf {
    struct px_iobuf *next_free; /* freelist link while cached */
    uint32_t refs;
    uint32_t cap;
    uint8_t data[];
} px_iobuf_t;

typedef struct px_wreq px_wreq_t;

/* Per-loop I/O resources shared by every socket: buffer and write-request freelists, and a
 * scratch area for ciphertext that is fed to the TLS session before the read callback returns
 * (so no idle connection owns a ciphertext buffer). */
#define PX_IO_SCRATCH (64 * 1024)
typedef struct px_io {
    uv_loop_t *loop;
    uint32_t buf_size;      /* capacity of new read buffers (proxy.buffer_size) */
    px_iobuf_t *free_bufs;  /* cached buffers of buf_size */
    unsigned nfree_bufs;    /* ... how many */
    unsigned max_free_bufs; /* cap on the cache */
    px_wreq_t *free_wreqs;
    unsigned nfree_wreqs;
    uint64_t bufs_live;         /* buffers allocated and not freed (cached ones included) */
    uint8_t cin[PX_IO_SCRATCH]; /* ciphertext just read, before px_tls_feed */
} px_io_t;

/* The smallest read buffer: a 10,000-byte startup packet plus headroom. */
#define PX_IO_MIN_BUF 12288u
/* proxy.buffer_size as used: raised to PX_IO_MIN_BUF when smaller. */
uint32_t px_io_effective_buf_size(uint32_t buf_size);
void px_io_init(px_io_t *io, uv_loop_t *loop, uint32_t buf_size, unsigned max_free_bufs);
/* Frees the caches; every socket must be closed and every write finished. */
void px_io_cleanup(px_io_t *io);

typedef enum px_sock_ev {
    PX_EV_READ = 0,  /* new bytes in the read buffer (plaintext) */
    PX_EV_EOF,       /* the peer closed (or sent close_notify) */
    PX_EV_ERROR,     /* read/write/TLS failure: status says which */
    PX_EV_FLUSHED,   /* every queued write reached the kernel */
    PX_EV_TLS_READY, /* handshake finished */
    PX_EV_CLOSED,    /* the handle is closed: the owner may free the socket's memory */
} px_sock_ev_t;

typedef struct px_sock px_sock_t;

/*
 * Event callback. Called from libuv callbacks, never from inside a px_sock_* call made by the
 * owner (so the owner's stack is never re-entered). After px_sock_close only PX_EV_CLOSED is
 * delivered, exactly once. The owner may call px_sock_close from inside any event.
 */
typedef void (*px_sock_cb)(px_sock_t *s, px_sock_ev_t ev, int status);

struct px_sock {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    px_io_t *io;
    px_sock_cb cb;
    px_tls_t *tls; /* owned; NULL for plaintext */

    /* Read buffer cursors: 0 <= off <= pos <= end <= cap. [off, pos) has been examined and is
     * still needed (e.g. being written out), [pos, end) has not been examined yet. */
    px_iobuf_t *buf; /* one reference owned; NULL while idle */
    uint32_t off, pos, end;

    uint32_t nwrites;    /* uv_write requests in flight */
    uint64_t bytes_in;   /* plaintext bytes received */
    uint64_t bytes_out;  /* plaintext bytes handed to write */
    uint64_t last_io;    /* loop time (ms) of the last read or write */
    bool trimmed;        /* idle memory given back since last_io */
    bool inited;         /* the uv handle exists and must be closed */
    bool want_read;      /* the owner wants data */
    bool reading;        /* uv_read_start is active */
    bool tls_more;       /* decrypted data is waiting for buffer space */
    bool tls_eof;        /* close_notify arrived; reported once the data before it is out */
    bool closing;        /* px_sock_close was called */
    bool close_on_flush; /* close once the writes are done */
    bool lingering;      /* px_sock_close_lingering: input is discarded */
    bool fin_sent;       /* lingering, and half-closed */
    bool peer_eof;       /* lingering, and the peer has finished sending */
    uint32_t discarded;  /* bytes thrown away while lingering */
    uint32_t fin_after;  /* lingering: the FIN waits until this many are thrown away */
    bool error_reported; /* an ERROR/EOF event went out; no more of them */
};

/* Prepares a socket; the handle is created by px_sock_open_tcp/accept. */
void px_sock_init(px_sock_t *s, px_io_t *io, px_sock_cb cb);
int px_sock_open_tcp(px_sock_t *s) PX_MUSTCHECK;
/* Accepts a pending connection from `server` into a new TCP or pipe handle. */
int px_sock_accept(px_sock_t *s, uv_stream_t *server, bool pipe) PX_MUSTCHECK;

/* Read interest. Reading really happens only while there is buffer space; the owner calls
 * px_sock_read_start again after consuming data from a full buffer. */
void px_sock_read_start(px_sock_t *s);
void px_sock_read_stop(px_sock_t *s);

/* Decrypts ciphertext already received into free buffer space (TLS only); returns bytes added
 * (0 when nothing more is available now), or a negative code with the session broken. */
int px_sock_tls_fill(px_sock_t *s) PX_MUSTCHECK;

/* Bytes not yet examined / the free tail. */
static inline uint32_t px_sock_unread(const px_sock_t *s)
{
    return s->end - s->pos;
}
static inline uint8_t *px_sock_data(const px_sock_t *s)
{
    return s->buf ? s->buf->data : NULL;
}
static inline uint32_t px_sock_cap(const px_sock_t *s)
{
    return s->buf ? s->buf->cap : s->io->buf_size;
}
/* Ensures a buffer is attached (for owners that parse before the first read). */
int px_sock_buf_get(px_sock_t *s) PX_MUSTCHECK;
/* Moves [off, end) to the front when nothing references the buffer; returns whether it did. */
bool px_sock_compact(px_sock_t *s);
/* Marks everything up to `pos` consumed and, when the buffer is empty, gives it back. */
void px_sock_consumed(px_sock_t *s);
/* The end of a parsing pass over whole messages: marks what was examined consumed, then (TLS)
 * decrypts what has already been received into the space that freed. Returns px_sock_tls_fill's
 * result: > 0 for more bytes to parse now, 0 to wait for the next read, < 0 when broken. */
static inline int px_sock_refill(px_sock_t *s)
{
    px_sock_consumed(s);
    return px_sock_tls_fill(s);
}

/*
 * Writes. Both return 0 or a negative code (the peer is gone: the owner closes).
 * - borrowed: the bytes live in `from`'s read buffer; a reference to it is kept until written.
 *   With TLS they are encrypted at once.
 * - copy: the bytes are copied if they cannot be written at once.
 * A write that cannot complete at once is queued; px_sock_write_pending() then stays true until
 * PX_EV_FLUSHED.
 */
int px_sock_write_borrowed(px_sock_t *s, px_sock_t *from, const uint8_t *p, size_t n) PX_MUSTCHECK;
int px_sock_write_copy(px_sock_t *s, const void *p, size_t n) PX_MUSTCHECK;
bool px_sock_write_pending(const px_sock_t *s);

/* TLS: attaches `tls` (ownership moves) and starts the handshake; PX_EV_TLS_READY or
 * PX_EV_ERROR follows. Bytes already in the read buffer are refused by the caller first. */
int px_sock_tls_start(px_sock_t *s, px_tls_t *tls) PX_MUSTCHECK;
/* Queues close_notify (TLS) and closes once every write is out; the owner keeps a timer. */
void px_sock_close_graceful(px_sock_t *s);
/* Most input px_sock_close_lingering throws away before it gives up and closes. */
#define PX_LINGER_MAX_BYTES (64u << 20)

/*
 * For a peer that may still be sending when we give up on it (an error in the middle of its
 * message): like px_sock_close_graceful, but unread input and whatever else arrives is read and
 * thrown away. Once every write is out and `fin_after` bytes (counted from the unread input, so
 * the rest of the peer's message) have been thrown away, the socket is half-closed (FIN); it
 * stays open until the peer closes too, PX_LINGER_MAX_BYTES have come, or the owner's timer
 * closes it. Closing with unread input would send an RST instead of the FIN, and an RST fails
 * the peer's send and can destroy our last message (an ErrorResponse) before the peer reads
 * it. No events but PX_EV_CLOSED follow. Plaintext only: with TLS this is
 * px_sock_close_graceful.
 */
void px_sock_close_lingering(px_sock_t *s, uint64_t fin_after);
/* Closes now; queued writes are dropped. Idempotent. */
void px_sock_close(px_sock_t *s);

/* Gives back what an idle connection does not need (TLS record buffers and grown BIOs) when
 * nothing happened for idle_ms. Cheap to call often; does the work once per idle period and
 * returns true when it did. */
bool px_sock_trim_idle(px_sock_t *s, uint64_t now, uint64_t idle_ms);

/* Peer address as "ip:port" (or "unix"), for logs and loopback checks. */
void px_sock_peer_name(const px_sock_t *s, char *buf, size_t len, bool *loopback);

#endif
