/*
 * The PostgreSQL v3 wire codec, as pure functions over bytes: no sockets, no logging, no policy.
 * Messages are named by sender (STYLE.md 7.2): `fe` = sent by clients (frontends), `be` = sent by
 * servers (backends). The proxy parses only what it acts on (startup packets, the 5-byte header,
 * authentication requests, BackendKeyData, ErrorResponse, ReadyForQuery) and builds only what it
 * sends itself (errors, NegotiateProtocolVersion, its own BackendKeyData, the upstream startup,
 * CancelRequest, Terminate, rebuilt Query/Parse). Everything else is forwarded by length.
 */
#ifndef PX_MSG_H
#define PX_MSG_H

#include "px_buf.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Startup-packet codes (the Int32 after the length). */
#define PX_PROTO_MAJOR(v) ((uint32_t)(v) >> 16)
#define PX_PROTO_MINOR(v) ((uint32_t)(v)&0xffff)
#define PX_PROTO_V3       196608u   /* 3.0 */
#define PX_CANCEL_CODE    80877102u /* 1234.5678 */
#define PX_SSL_CODE       80877103u /* 1234.5679 */
#define PX_GSSENC_CODE    80877104u /* 1234.5680 */

/* PostgreSQL's MAX_STARTUP_PACKET_LENGTH: a startup packet (length word included) is at most
 * this long; a longer one is refused before it is read. */
#define PX_STARTUP_MAX 10000u
/* PQ_SMALL_MESSAGE_LIMIT and PQ_LARGE_MESSAGE_LIMIT from PostgreSQL's pqcomm.h: the bounds on
 * a frontend message's length word by message type. */
#define PX_MSG_SMALL_LIMIT 10000u
#define PX_MSG_LARGE_LIMIT 0x3fffffffu
/* Every message header: Byte1 type + Int32 length (which counts itself, not the type byte). */
#define PX_MSG_HDR 5u

/* Why a peer's bytes were refused: what the client is told (sqlstate + message). */
typedef struct px_msg_err {
    const char *sqlstate; /* static */
    char message[160];
} px_msg_err_t;

/* ---------------------------------------------------------------------------------------------
 * Startup packets (frontend, unframed: Int32 length then Int32 code).
 */

typedef enum px_startup_kind {
    PX_STARTUP_V3 = 0, /* StartupMessage, protocol 3.x */
    PX_STARTUP_SSL,    /* SSLRequest */
    PX_STARTUP_GSSENC, /* GSSENCRequest */
    PX_STARTUP_CANCEL, /* CancelRequest */
} px_startup_kind_t;

/* Bounds the number of _pq_.* options reported in NegotiateProtocolVersion. */
#define PX_STARTUP_MAX_PQ_OPTS 16

typedef struct px_startup {
    px_startup_kind_t kind;
    uint32_t version; /* as requested by the client (V3 only) */
    /* V3: pointers into the packet passed to the parser (each NUL-terminated there). */
    const char *user;     /* never NULL on success */
    const char *database; /* defaults to user */
    /* _pq_.* options the client asked for; PostgreSQL 15 recognises none, so all are listed in
     * NegotiateProtocolVersion and none is forwarded. */
    const char *pq_opts[PX_STARTUP_MAX_PQ_OPTS];
    unsigned npq_opts;
    bool need_negotiate; /* minor > 0 or any _pq_ option: send NegotiateProtocolVersion */
    /* CANCEL only. */
    uint32_t cancel_pid, cancel_key;
} px_startup_t;

/*
 * Reads the length word of a startup packet from its first 4 bytes. Returns false (with err) when
 * it is below 8 or above PX_STARTUP_MAX, as PostgreSQL's "invalid length of startup packet".
 */
bool px_msg_fe_startup_len(const uint8_t hdr[4], uint32_t *len, px_msg_err_t *err) PX_MUSTCHECK;

/*
 * Parses a complete startup packet, `pkt` pointing at the length word and `len` equal to it.
 * Checks what PostgreSQL 15's ProcessStartupPacket checks, with its SQLSTATEs and messages:
 * protocol major version 3 only (0A000), a well-formed key/value list ending with a NUL
 * (08P01), a user (28000). Minor versions above 0 and _pq_.* options are accepted and flagged for
 * NegotiateProtocolVersion. The strings in `out` point into `pkt`.
 */
bool px_msg_fe_parse_startup(const uint8_t *pkt, size_t len, px_startup_t *out,
                             px_msg_err_t *err) PX_MUSTCHECK;

/* Iterates the key/value pairs of a packet that px_msg_fe_parse_startup accepted. */
typedef struct px_startup_iter {
    const uint8_t *p;
    size_t len, off;
} px_startup_iter_t;

void px_msg_startup_iter_init(px_startup_iter_t *it, const uint8_t *pkt, size_t len);
bool px_msg_startup_iter_next(px_startup_iter_t *it, const char **key, const char **val);

/* Whether a startup key is forwarded upstream: everything but user, database and _pq_.*. */
bool px_msg_startup_key_forwarded(const char *key);

/* Startup packet for the upstream: protocol 3.0, user, database, then `extra` (a packet the
 * client sent, whose forwardable parameters are copied in order; may be NULL). */
void px_msg_fe_build_startup(px_dbuf_t *b, const char *user, const char *database,
                             const uint8_t *extra, size_t extralen);
void px_msg_fe_build_sslrequest(px_dbuf_t *b);
void px_msg_fe_build_cancel(px_dbuf_t *b, uint32_t pid, uint32_t key);
void px_msg_fe_build_terminate(px_dbuf_t *b);

/* ---------------------------------------------------------------------------------------------
 * Framing of typed messages (both directions).
 */

/* Upper bound for a frontend message's length word by type (PostgreSQL's SocketBackend), or 0
 * when the type is not a valid frontend message after login ("invalid frontend message type"). */
uint32_t px_msg_fe_limit(uint8_t type);

/*
 * A streaming framer over an arbitrary chunking of a message stream. Messages may be larger than
 * any buffer: after a header the body is delivered as BODY pieces. Pure; the relay uses it on
 * its read buffers and the fuzz target on random chunkings.
 */
typedef struct px_framer {
    uint32_t body_left; /* body bytes of the current message not yet delivered */
    uint8_t type;       /* type of the current message */
    uint32_t max_len;   /* largest accepted length word (4 <= len <= max_len) */
} px_framer_t;

typedef enum px_frame_ev {
    PX_FRAME_NEED = 0, /* fewer than 5 bytes at a message boundary: read more */
    PX_FRAME_HEADER,   /* a header: type and len are set; 5 bytes consumed */
    PX_FRAME_BODY,     /* n bytes of the current body consumed */
    PX_FRAME_BAD,      /* the length word is out of bounds: the stream is unusable */
} px_frame_ev_t;

typedef struct px_frame {
    px_frame_ev_t ev;
    uint8_t type;
    uint32_t len; /* the length word: body length + 4 */
    size_t n;     /* bytes consumed from the input by this step */
} px_frame_t;

void px_framer_init(px_framer_t *f, uint32_t max_len);
/* One step over [p, p+n). Never reads past n. */
void px_framer_step(px_framer_t *f, const uint8_t *p, size_t n, px_frame_t *out);
/* True when the framer sits between two messages (safe to inject a message of our own). */
static inline bool px_framer_at_boundary(const px_framer_t *f)
{
    return f->body_left == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Backend messages the proxy parses. Each takes the body (after the 5-byte header).
 */

/* 'R': the Int32 code; payload and plen get what follows it. */
bool px_msg_be_parse_auth(const uint8_t *body, size_t n, uint32_t *code, const uint8_t **payload,
                          size_t *plen) PX_MUSTCHECK;
/* 'K' BackendKeyData. */
bool px_msg_be_parse_keydata(const uint8_t *body, size_t n, uint32_t *pid,
                             uint32_t *key) PX_MUSTCHECK;
/* 'Z' ReadyForQuery: 'I', 'T' or 'E'. */
bool px_msg_be_parse_rfq(const uint8_t *body, size_t n, uint8_t *status) PX_MUSTCHECK;
/* 'S' ParameterStatus. */
bool px_msg_be_parse_param(const uint8_t *body, size_t n, const char **name,
                           const char **value) PX_MUSTCHECK;
/* 'v' NegotiateProtocolVersion: newest minor and the number of options the server refused. */
bool px_msg_be_parse_negotiate(const uint8_t *body, size_t n, uint32_t *minor,
                               uint32_t *nopts) PX_MUSTCHECK;

/* 'E' ErrorResponse / 'N' NoticeResponse: the fields the proxy looks at. Strings point into the
 * body; absent fields are NULL. */
typedef struct px_be_error {
    const char *severity; /* 'V' (non-localised) or else 'S' */
    const char *sqlstate; /* 'C' */
    const char *message;  /* 'M' */
    const char *detail;   /* 'D' */
    const char *hint;     /* 'H' */
} px_be_error_t;

bool px_msg_be_parse_error(const uint8_t *body, size_t n, px_be_error_t *out) PX_MUSTCHECK;

/* ---------------------------------------------------------------------------------------------
 * Backend messages the proxy builds (complete messages, header included).
 */

/* ErrorResponse with S, V, C, M and optional D and H. `severity` is "ERROR" or "FATAL". */
void px_msg_be_build_error(px_dbuf_t *b, const char *severity, const char *sqlstate,
                           const char *message, const char *detail, const char *hint);
/* An ErrorResponse copied field by field from `src` (a server's body) with C and M replaced;
 * every other field except position information is kept. */
void px_msg_be_rebuild_error(px_dbuf_t *b, const uint8_t *src, size_t n, const char *sqlstate,
                             const char *message);
/* NegotiateProtocolVersion: newest minor version supported (0) and the unrecognised options. */
void px_msg_be_build_negotiate(px_dbuf_t *b, uint32_t minor, const char *const *opts,
                               unsigned nopts);
/* 'R' with a code and an optional payload. */
void px_msg_be_build_auth(px_dbuf_t *b, uint32_t code, const void *payload, size_t n);
void px_msg_be_build_keydata(px_dbuf_t *b, uint32_t pid, uint32_t key);

/* ---------------------------------------------------------------------------------------------
 * Frontend Query and Parse: where the SQL sits, and rebuilding with other SQL.
 */

/*
 * Locates the SQL inside a Query or Parse body (after the 5-byte header). For Parse the statement
 * name is skipped; `*tail`/`*tail_len` get what follows the query's NUL (the parameter types).
 * Returns false when the body is malformed (no NUL). `n` may be a prefix of the body when
 * `complete` is false: then a missing query NUL is not an error and *sql_len counts what is
 * there, but a Parse whose statement name is not complete in the prefix returns false.
 */
bool px_msg_fe_locate_sql(uint8_t type, const uint8_t *body, size_t n, bool complete,
                          const char **sql, size_t *sql_len, const uint8_t **tail,
                          size_t *tail_len) PX_MUSTCHECK;

/* Rebuilds a Query ('Q') or Parse ('P') message around new SQL. For Parse, `name` is the
 * statement name (NUL-terminated) and `tail` the parameter-type part copied unchanged. */
void px_msg_fe_build_sql(px_dbuf_t *b, uint8_t type, const char *name, const char *sql,
                         size_t sql_len, const uint8_t *tail, size_t tail_len);

#endif
