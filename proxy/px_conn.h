/*
 * Internal to proxy/: the daemon object and the two connection objects, shared by px_proxy.c
 * (listeners, signals, reload, shutdown), px_client.c (client state machine), px_server.c
 * (upstream connection and login), px_relay.c (the forwarding hot path), px_intercept.c
 * (COPY/UNLOAD rewriting hooks) and px_cancel.c (cancel keys). Nothing outside proxy/ includes
 * this header.
 */
#ifndef PX_CONN_H
#define PX_CONN_H

#include "auth_iam.h"
#include "auth_pg.h"
#include "cfg.h"
#include "px_authfile.h"
#include "px_list.h"
#include "px_msg.h"
#include "px_proxy.h"
#include "px_sock.h"
#include "px_tls.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct px_client px_client_t;
typedef struct px_server px_server_t;
typedef struct px_icpt px_icpt_t;

/* How long a closing connection may take to flush its last bytes before it is cut. */
#define PX_CLOSE_FLUSH_MS 5000
/* PostgreSQL's authentication_timeout default: startup and client authentication together. */
#define PX_LOGIN_TIMEOUT_MS 60000
/* How long SIGTERM waits for open transactions before closing everything. */
#define PX_SHUTDOWN_DRAIN_MS 30000
/* A session quiet for this long gives back its TLS record buffers (about 34 KB). */
#define PX_IDLE_TRIM_MS 1000
/* Upstream connections opened only to forward a CancelRequest, at most at once. */
#define PX_MAX_CANCEL_CONNS 64

/* ---------------------------------------------------------------------------------------------
 * Client connections.
 */
typedef enum px_client_state {
    PX_CLIENT_STARTUP = 0,  /* reading SSLRequest/GSSENCRequest/StartupMessage/CancelRequest */
    PX_CLIENT_AUTH,         /* SCRAM exchange with the client */
    PX_CLIENT_CREDS,        /* waiting for IAM database credentials */
    PX_CLIENT_CONNECTING,   /* upstream DNS, TCP, TLS and login in progress */
    PX_CLIENT_LOGIN_PARAMS, /* AuthenticationOk sent; relaying ParameterStatus until ReadyForQuery
                             */
    PX_CLIENT_ACTIVE,       /* relaying both ways */
    PX_CLIENT_CLOSING,      /* closing: final bytes flushing, handles closing */
    PX_CLIENT_NSTATES
} px_client_state_t;

/* What the bytes of the client message being streamed through are used for. */
typedef enum px_body_mode {
    PX_BODY_FORWARD = 0, /* to the server as they are */
    PX_BODY_COLLECT,     /* into the interception buffer (COPY/UNLOAD to rewrite) */
    PX_BODY_DISCARD,     /* dropped (a refused statement larger than max_statement_size) */
    PX_BODY_SCAN,        /* to the server, after px__icpt_client_scan looked at them */
} px_body_mode_t;

struct px_client {
    px_proxy_t *px;
    cfg_t *cfg; /* a reference to the snapshot in force when the client connected */
    uint32_t id;
    uint32_t cancel_key; /* random; given to the client in BackendKeyData */
    px_client_state_t state;
    px_list_t link;         /* in px->clients[state] */
    px_client_t *hash_next; /* cancel-key map chain */
    bool in_hash;

    px_sock_t sock;
    uv_timer_t timer;   /* login timeout, then the close-flush deadline */
    int pending_closes; /* handles still closing; freed at 0 */

    px_server_t *server; /* linked upstream; cleared on either side's close */

    uint8_t *startup; /* owned copy of the StartupMessage; user/database point into it */
    size_t startup_len;
    px_startup_t st;
    bool ssl_done, gss_done; /* SSLRequest / GSSENCRequest already answered */

    auth_scram_server_t *scram; /* owned, during PX_CLIENT_AUTH */
    int scram_step;             /* 0: expecting SASLInitialResponse, 1: the final message */
    bool scram_known_user;      /* false: a mock exchange that must fail */
    auth_iam_req_t *iam_req;    /* in flight during PX_CLIENT_CREDS */

    /* Relay, client to server. */
    px_framer_t c2s;
    px_body_mode_t body_mode;
    px_icpt_t *icpt;  /* owned; NULL when COPY/UNLOAD rewriting is off */
    bool terminating; /* Terminate received: close both once the server has what came before */
    bool x_withheld;  /* ... and not forwarded, because the server may be pooled (px_pool.c) */
    bool c2s_cut;     /* the server has part of a message it must never see end: no Terminate */

    /* Transaction tracking from the server stream: ReadyForQuery counts against Query, Sync and
     * FunctionCall sent. */
    uint64_t rfq_expected, rfq_seen;
    uint8_t txstatus; /* 'I', 'T', 'E' (0 before the first ReadyForQuery) */
    /* A server in copy-in mode ignores Sync (libpq sends one after the Execute that starts an
     * extended-protocol COPY FROM STDIN, and another after CopyDone). Syncs sent since the last
     * Query or Execute are uncounted when the client ends a copy-in the server announced. */
    uint32_t syncs_since_exec;
    bool copy_in;  /* the server sent CopyInResponse; the client has not ended it yet */
    bool unsynced; /* extended-protocol messages sent since the last Sync (never pooled) */
    bool in_s2c;   /* px__relay_s2c is examining a server message (a close now is never pooled) */

    /* Relay, server to client: kept here because whether the client's stream is in the middle
     * of a message decides whether it can still be sent an ErrorResponse after the server has
     * gone. */
    px_framer_t s2c;
    bool fatal_seen; /* a FATAL/PANIC ErrorResponse was forwarded: no extra 08006 */
    bool draining;   /* shutdown: close at the next idle ReadyForQuery */

    char peer[64];
    bool loopback;
    char ctx[192]; /* log context: "C-12 alice@dev 127.0.0.1:50000" */
    uint64_t started_ms;
    uint64_t cfg_gen; /* px->cfg_gen of `cfg` */
};

/* ---------------------------------------------------------------------------------------------
 * Upstream connections.
 */
typedef enum px_server_state {
    PX_SERVER_INIT = 0,
    PX_SERVER_RESOLVING,
    PX_SERVER_CONNECTING,
    PX_SERVER_SSL_REQ, /* SSLRequest sent; one byte expected */
    PX_SERVER_TLS_HANDSHAKE,
    PX_SERVER_LOGIN,        /* startup sent; authentication exchange */
    PX_SERVER_LOGIN_PARAMS, /* AuthenticationOk received; ParameterStatus until ReadyForQuery */
    PX_SERVER_ACTIVE,       /* relaying */
    PX_SERVER_RESETTING,    /* pooling: its client left; server_reset_query in flight */
    PX_SERVER_IDLE,         /* pooling: reset, in px->pool, waiting for a client */
    PX_SERVER_CLOSING,
    PX_SERVER_NSTATES
} px_server_state_t;

typedef enum px_server_purpose {
    PX_SERVER_FOR_CLIENT = 0, /* a session for a client */
    PX_SERVER_FOR_CANCEL,     /* forwards one CancelRequest, then closes */
    PX_SERVER_FOR_CHECK,      /* --check: log in (or only handshake) and report */
} px_server_purpose_t;

/* Steps reported to the owner (--check prints them; sessions log them at debug). */
typedef enum px_server_step {
    PX_STEP_RESOLVED = 0, /* detail: "N address(es)" */
    PX_STEP_TCP,          /* detail: address connected to */
    PX_STEP_TLS,          /* detail: protocol, cipher, verification */
    PX_STEP_LOGIN,        /* detail: user */
} px_server_step_t;

/* A failure before the login finished. */
typedef struct px_server_fail {
    int code;             /* PX_E_*, AUTH_E_* or UV_E* */
    const char *sqlstate; /* for the client: 08001, 28000, 08P01, ... */
    const char *message;  /* for the client and the log; never a secret */
    /* When upstream refused the login with its own ErrorResponse: the whole message, to be
     * forwarded to the client unchanged. */
    const uint8_t *be_error;
    size_t be_error_len;
} px_server_fail_t;

/*
 * What a server tells its owner. Each is called from a libuv callback. on_fail is the last call
 * and the server closes itself right after it returns; after on_ready, CLIENT-purpose servers are
 * driven by the relay and CHECK ones are closed by their owner.
 */
typedef struct px_server_owner {
    void (*on_step)(px_server_t *sv, px_server_step_t step, const char *detail);
    void (*on_ready)(px_server_t *sv); /* login accepted (CLIENT, CHECK) */
    void (*on_fail)(px_server_t *sv, const px_server_fail_t *f);
} px_server_owner_t;

/* What a server connects to and how it logs in. Strings are copied. */
typedef struct px_server_params {
    px_server_purpose_t purpose;
    const char *host; /* name or literal: DNS, SNI and certificate checks use it */
    int port;
    /* Connect to this address instead of resolving host (cancels go to the session's server). */
    const struct sockaddr *addr;
    const char *user;     /* login user (CLIENT, CHECK); NULL for CHECK = TLS only */
    const char *password; /* secret, may be NULL */
    const char *database;
    const uint8_t *client_startup; /* forwarded parameters come from here (may be NULL) */
    size_t client_startup_len;
    uint32_t cancel_pid, cancel_key; /* CANCEL */
    int connect_timeout_ms;
} px_server_params_t;

struct px_server {
    px_proxy_t *px;
    uint32_t id; /* the client's id, or a cancel/check id */
    px_server_state_t state;
    px_server_purpose_t purpose;
    px_list_t link; /* in px->servers */
    const px_server_owner_t *owner;
    void *owner_arg;
    px_client_t *client; /* linked client (CLIENT purpose), NULL once unlinked */

    px_sock_t sock;
    uv_timer_t timer; /* connect timeout (whole login), then the close deadline */
    uv_getaddrinfo_t gai;
    uv_connect_t conn_req;
    int pending_closes; /* handles and requests still to finish; freed at 0 */
    bool gai_active;
    bool timer_inited;
    bool fixed_addr; /* connect to `addr` without DNS (cancels) */
    bool fixed_tried;
    int connect_timeout_ms;
    uint64_t deadline_ms; /* loop time when the login must be done */

    struct addrinfo *ai;          /* owned result list */
    struct addrinfo *ai_next;     /* next address to try */
    struct sockaddr_storage addr; /* address of the current attempt */
    char addr_str[64];
    char last_error[512]; /* why the previous address failed */

    px_tls_ctx_t *tls_ctx; /* reference; NULL for sslmode disable */
    char host[256];
    int port;
    char *user;     /* owned */
    char *password; /* owned secret; wiped when freed */
    px_dbuf_t out;  /* startup packet or CancelRequest being prepared */
    uint32_t cancel_pid, cancel_key;

    auth_scram_client_t *scram; /* owned during SASL */
    bool sasl_started, sasl_done;
    /* SCRAM's PBKDF2 runs on the thread pool (px_server.c). While scram_busy, the worker owns
     * `scram` (the loop neither reads nor frees it), login messages wait unparsed in the read
     * buffer, and the request counts in pending_closes so the object outlives it. */
    uv_work_t scram_work;
    int scram_rc;         /* written by the worker: auth_scram_client_compute's result */
    uint64_t scram_t0_ms; /* loop time the work was queued (for the debug log) */
    bool scram_busy;

    uint32_t be_pid, be_key; /* upstream's BackendKeyData */
    bool have_key;
    char server_version[64]; /* --check reports it */

    /* Session pooling (px_pool.c). A server can be reused only by a client whose startup packet
     * is byte for byte the one this session was opened for, under the same configuration. */
    uint8_t *pool_key; /* owned copy of that startup packet; NULL: never reused */
    uint32_t pool_key_len;
    uint64_t cfg_gen;    /* px->cfg_gen at the login */
    uint64_t born_ms;    /* loop time of the login (server_lifetime) */
    uint64_t idle_ms;    /* loop time it went into the pool (server_idle_timeout) */
    uint64_t cancel_ms;  /* loop time a cancel for this session was last sent (0: never) */
    px_dbuf_t params;    /* ParameterStatus messages in force, whole, one per name */
    bool params_bad;     /* one was malformed or they outgrew PX_POOL_PARAMS_MAX */
    px_list_t pool_link; /* in px->pool while IDLE; self-linked otherwise */
    unsigned reuses;     /* clients served after the first */

    char ctx[448];
};

/* ---------------------------------------------------------------------------------------------
 * The daemon.
 */
struct px_proxy {
    uv_loop_t *loop;
    /* Keys marked RESTART in the key table are read from `boot`, the snapshot the process
     * started with, so a reload really ignores changes to them (and says so); everything else
     * comes from the connection's own snapshot. */
    cfg_t *boot;             /* startup snapshot (reference) */
    cfg_t *cfg;              /* current snapshot (reference) */
    char *cfg_path;          /* owned; re-read on SIGHUP */
    px_tls_ctx_t *tls_ctx;   /* current upstream TLS context (reference), NULL for disable */
    px_authfile_t *authfile; /* current client auth file (owned), NULL unless scram */
    auth_iam_t *iam;         /* IAM mode only */
    px_io_t *io;             /* owned (large: scratch buffers) */

    px_list_t listeners;
    px_list_t clients[PX_CLIENT_NSTATES];
    uint32_t nclients[PX_CLIENT_NSTATES];
    px_list_t servers;
    uint32_t nservers;
    uint32_t ncancel_conns;

    /* Cancel-key map: client id -> client. */
    px_client_t **hash;
    uint32_t hash_size; /* power of two */
    uint32_t hash_count;

    uint32_t next_id;
    uint64_t cfg_gen; /* bumped by each reload: pooled servers of older ones are not reused */
    px_list_t pool;   /* idle upstream sessions (px_pool.c), the longest idle first */
    uint32_t npool;
    px_proxy_stats_t stats;
    uint8_t mock_secret[32]; /* random per process: salts of fake SCRAM verifiers */

    uv_signal_t sig_int, sig_term, sig_hup;
    bool signals_inited;
    uv_timer_t drain_timer;
    bool drain_timer_inited;
    uv_timer_t janitor; /* periodic: gives idle connections' memory back */
    bool janitor_inited;

    /* forward_s3_credentials: the proxy's own AWS keys, fetched ahead of need and refreshed
     * before they expire, because a COPY is rewritten synchronously on the relay path. */
    struct {
        char *access_key_id;     /* owned */
        char *secret_access_key; /* owned secret */
        char *session_token;     /* owned secret, may be NULL */
        int64_t expiration_ms;   /* Unix ms; 0 = does not expire */
        auth_iam_req_t *req;     /* fetch in flight */
        uint64_t next_try;       /* loop time of the next attempt after a failure */
        unsigned failures;
        char last_error[256];
    } fwd;
    /* [s3] tempdir: the proxy's S3 client (px_proxy.c), the lifecycle check in flight on it,
     * and how many replaced clients are still closing (auth_iam, whose HTTP client they use,
     * closes after the last of them). */
    struct admin_glue *admin; /* the admin endpoint (px_admin_proxy.c), NULL when off or closed */
    struct s3_client *s3;
    struct s3_op *s3_check;
    unsigned s3_closing;
    bool shutting_down;
    bool reloading;
    bool iam_closing;
    int bound_port;
};

/* px_client.c */
void px__client_accept(px_proxy_t *px, uv_stream_t *server, bool pipe);
void px__client_set_state(px_client_t *c, px_client_state_t next);
/* Sends a FATAL ErrorResponse (when the client can still receive it) and closes. */
void px__client_fail(px_client_t *c, const char *sqlstate, const char *fmt, ...) PX_PRINTF(3, 4);
/* Closes without a message to the client; `reason` is logged. */
void px__client_close(px_client_t *c, const char *reason);
/* The same after a last message (an error) to a client that may be in the middle of sending
 * its own: the rest of it is drained first (px_sock_close_lingering). */
void px__client_close_after_error(px_client_t *c, const char *reason);
/* The shutdown drain: closes the client now if it is between transactions. */
void px__client_drain_check(px_client_t *c);
void px__client_update_ctx(px_client_t *c);

/* px_server.c */
int px__server_start(px_proxy_t *px, uint32_t id, const px_server_params_t *p,
                     const px_server_owner_t *owner, void *owner_arg,
                     px_server_t **out) PX_MUSTCHECK;
/* Ends the session politely: Terminate (at a message boundary), close_notify, then close. */
void px__server_terminate(px_server_t *sv, const char *reason);
/* Closes at once; no owner callback. */
void px__server_close(px_server_t *sv, const char *reason);
void px__server_set_state(px_server_t *sv, px_server_state_t next);

/* px_relay.c */
/* Hands [*sent, pos) of the client's buffer to the server; false when the connection closed. */
bool px__relay_flush_c2s(px_client_t *c, uint32_t *sent);
void px__relay_s2c(px_client_t *c);
void px__relay_c2s(px_client_t *c);
/* Server socket events once the server is linked and logged in. */
void px__relay_server_event(px_server_t *sv, px_sock_ev_t ev, int status);
/* The upstream is gone while relaying: tell the client (08006) unless mid-message, close. */
void px__relay_upstream_lost(px_client_t *c, const char *why);
/* The first ReadyForQuery of a session (login, or a pooled server attached): the session is
 * open. */
void px__relay_activate(px_client_t *c, px_server_t *sv);

/* px_intercept.c (rewriting COPY/UNLOAD; see the file comment) */
bool px__icpt_enabled(const cfg_t *cfg);
int px__icpt_new(px_client_t *c) PX_MUSTCHECK;
void px__icpt_free(px_icpt_t *ic);
/* Client->server: a Query or Parse header at the client buffer's pos (the framer has read the
 * header). `sent` is how far the relay has handed bytes to the server; the hook flushes up to
 * the message before writing a replacement, and moves pos and sent past what it consumed. */
typedef enum px_icpt_action {
    PX_ICPT_FORWARD = 0, /* forward the message as it is (streaming) */
    PX_ICPT_WAIT,        /* the whole message is needed: wait for more bytes */
    PX_ICPT_DONE,        /* consumed: replaced, collected or discarded */
    PX_ICPT_FAIL,        /* the connection was failed */
} px_icpt_action_t;
px_icpt_action_t px__icpt_client_msg(px_client_t *c, uint8_t type, uint32_t len, uint32_t *sent);
/* Client->server body bytes for a collected/discarded message; returns false on failure. */
bool px__icpt_client_body(px_client_t *c, const uint8_t *p, size_t n, bool last);
/* Client->server body bytes of a Query streamed under a policy (PX_BODY_SCAN), before they are
 * forwarded; returns false when the session was ended instead. */
bool px__icpt_client_scan(px_client_t *c, const uint8_t *p, size_t n);
/* Server->client: whether ErrorResponses must be inspected now. */
bool px__icpt_watching_errors(const px_client_t *c);
/* An ErrorResponse body: returns true and fills `out` when it must be replaced. */
bool px__icpt_server_error(px_client_t *c, const uint8_t *body, size_t n, px_dbuf_t *out);
/* A ReadyForQuery was seen: forget refusals whose statement has been answered. */
void px__icpt_server_rfq(px_client_t *c);

/* px_pool.c (session pooling; see the file comment) */
/* Largest set of ParameterStatus messages a pooled server keeps to replay to its next client. */
#define PX_POOL_PARAMS_MAX 16384
/* At login: remembers the client's startup packet as the server's pool key (pooling on). */
int px__pool_server_init(px_server_t *sv, const px_client_t *c) PX_MUSTCHECK;
/* A ParameterStatus from the server (m: the whole message, total bytes). */
void px__pool_note_param(px_server_t *sv, const uint8_t *m, uint32_t total);
/* The client is leaving: takes its server into the pool (reset first) when the session is
 * between transactions and reusable; returns false to let the caller end it instead. */
bool px__pool_release(px_client_t *c);
/* A client ready to log in upstream: attaches a pooled server and opens the session; returns
 * false when none matches (the caller logs in as usual). */
bool px__pool_take(px_client_t *c);
/* Takes a server out of px->pool if it is there (idempotent; begin_close calls it). */
void px__pool_forget(px_server_t *sv);
/* Socket events of a RESETTING or IDLE server. */
void px__pool_server_event(px_server_t *sv, px_sock_ev_t ev, int status);
/* Janitor: ends idle servers past server_idle_timeout or server_lifetime, or of an older
 * configuration; with `all`, every idle one (shutdown). */
void px__pool_sweep(px_proxy_t *px, bool all);

/* px_cancel.c */
void px__cancel_register(px_proxy_t *px, px_client_t *c);
void px__cancel_unregister(px_proxy_t *px, px_client_t *c);
/* A CancelRequest from any client: forwards it when the key is known, ignores it otherwise. */
void px__cancel_request(px_proxy_t *px, uint32_t pid, uint32_t key);
/* The client is going away with a request still running upstream: cancel it, because the
 * server would otherwise notice the closed connection only when the query ends (a pg_sleep(60)
 * or a long scan keeps running, holding locks and a connection slot). */
void px__cancel_inflight(px_proxy_t *px, px_client_t *c);
void px__cancel_cleanup(px_proxy_t *px);

/* px_proxy.c */
/* Keys to inject for forward_s3_credentials, valid for at least a few more minutes, or NULL
 * with *why set. `view` receives pointers to the proxy's copies (valid until the next loop
 * turn). */
const auth_aws_keys_t *px__fwd_keys(px_proxy_t *px, auth_aws_keys_t *view, const char **why);
void px__proxy_client_gone(px_proxy_t *px); /* a client was freed: finish a shutdown */
/* Closes the AWS side: the S3 clients first, then auth_iam once they are all closed. */
void px__proxy_close_aws(px_proxy_t *px);
/* Accepts a pending connection and closes it at once (no memory for a client object). */
void px__proxy_reject(px_proxy_t *px, uv_stream_t *server, bool pipe);
void px__proxy_server_gone(px_proxy_t *px);

#endif
