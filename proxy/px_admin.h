/*
 * The admin HTTP endpoint: /startup, /readiness, /liveness (Kubernetes probes) and /metrics
 * (Prometheus), on [proxy] admin_addr:admin_port, loopback by default.
 *
 * Two layers. px_admin_t is a small read-only HTTP/1.1 server on a libuv loop that knows
 * nothing about the proxy: its owner supplies the probe answers and the metrics text through
 * px_admin_ops_t (the unit tests supply fakes). px__admin_start() is the proxy's binding
 * (px_admin_proxy.c): it serves the daemon's state, decides what "started" and "ready" mean,
 * and keeps the endpoint up while sessions drain after SIGTERM.
 */
#ifndef PX_ADMIN_H
#define PX_ADMIN_H

#include "px_buf.h"
#include "px_proxy.h"
#include "px_util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct px_admin px_admin_t;

typedef enum px_admin_probe {
    PX_ADMIN_LIVENESS = 0,
    PX_ADMIN_READINESS,
    PX_ADMIN_STARTUP,
} px_admin_probe_t;

/*
 * What the endpoint serves. Both are called synchronously while a request is answered and
 * must neither block nor close the endpoint. `body` and `out` are bounded buffers: a callback
 * that overflows one makes the request answer 500.
 */
typedef struct px_admin_ops {
    /* A short JSON object for the probe; returns the HTTP status (200 or 503). */
    int (*probe)(void *arg, px_admin_probe_t which, px_dbuf_t *body);
    /* The Prometheus text exposition (format 0.0.4) of everything the owner measures. */
    void (*metrics)(void *arg, px_dbuf_t *out);
} px_admin_ops_t;

/* Defaults of px_admin_opts_t (a 0 field takes them). */
#define PX_ADMIN_DEFAULT_MAX_CONNS    32
#define PX_ADMIN_DEFAULT_HEAD_TIMEOUT 10000 /* ms: a request must arrive whole in this time */
#define PX_ADMIN_DEFAULT_IDLE_TIMEOUT 60000 /* ms: a kept-alive connection may idle this long */
#define PX_ADMIN_MAX_RESPONSE         (4u << 20) /* bytes: a body past this answers 500 */

typedef struct px_admin_opts {
    const char *addr; /* IP literal, "*" (every IPv4 and IPv6 address) or a host name */
    int port;         /* 0 picks a free port (tests); px_admin_port() tells which */
    unsigned max_conns;
    /* From the first byte of a request (or the accept) to its last; also bounds the time a
     * response may take to be written. Slow senders (slowloris) are cut by it. */
    unsigned head_timeout_ms;
    unsigned idle_timeout_ms; /* between requests on a kept-alive connection */
} px_admin_opts_t;

/* Status codes the endpoint answers with, in the order px_admin_stats_t counts them. */
#define PX_ADMIN_NCODES 11
extern const int px_admin_codes[PX_ADMIN_NCODES];

/* The endpoint's own traffic, for /metrics. */
typedef struct px_admin_stats {
    uint32_t connections;               /* now */
    uint64_t connections_refused;       /* over max_conns, none of them idle */
    uint64_t connections_evicted;       /* idle ones closed to make room for a new one */
    uint64_t requests[PX_ADMIN_NCODES]; /* answered, by status (px_admin_codes order) */
} px_admin_stats_t;

/*
 * Binds and starts serving. Host names are resolved now, synchronously: this runs at startup
 * only, before any client is served. On failure returns a negative code with a reason in
 * `err`; handles that were opened are closed through the loop, so run it before closing it.
 */
int px_admin_new(uv_loop_t *loop, const px_admin_opts_t *opts, const px_admin_ops_t *ops, void *arg,
                 px_admin_t **out, char *err, size_t errlen) PX_MUSTCHECK;

/* The TCP port bound (the first listener's, when a name resolved to several addresses). */
int px_admin_port(const px_admin_t *ad);
void px_admin_get_stats(const px_admin_t *ad, px_admin_stats_t *out);

/*
 * Stops listening and closes every connection at once (a response being written is cut).
 * `done` (may be NULL) runs from a close callback once every handle is closed, after which
 * the object is freed. Calling it twice is harmless: the second call is ignored.
 */
void px_admin_close(px_admin_t *ad, void (*done)(void *arg), void *arg);

/* ------------------------------------------------------------------------------------------
 * The proxy's binding (px_admin_proxy.c).
 */

/*
 * Called by px_proxy_listen once the client listeners are bound: starts the endpoint when
 * admin_port is not 0 (0 = disabled: returns 0 and does nothing). The endpoint then follows
 * the proxy: it keeps answering while sessions drain after SIGTERM (readiness 503) and is
 * closed by px__admin_stop when the last session has gone, so uv_run returns as it would
 * without it. Returns a negative code with a reason in err (the port is in use...).
 */
int px__admin_start(px_proxy_t *px, char *err, size_t errlen) PX_MUSTCHECK;
/* Shutdown, once no session is left: closes the endpoint (a no-op without one). */
void px__admin_stop(px_proxy_t *px);

/* Proxy-wide failures in a row that make /readiness answer 503, and for how long after the
 * last of them (no new evidence for that long lets traffic try again). */
#define PX_ADMIN_UNREADY_STREAK 3
#define PX_ADMIN_UNREADY_WINDOW 30000 /* ms */

/*
 * The probe decisions as pure functions of a stats snapshot (unit-tested directly). `now_ms`
 * is px_now_mono_ms(). Each returns the HTTP status and writes a JSON body.
 */
int px_admin_eval_probe(const px_proxy_stats_t *s, px_admin_probe_t which, uint64_t now_ms,
                        px_dbuf_t *body);

/*
 * How a failed upstream login is counted: its reason, and whether it says something about
 * the upstream as a whole (true) or only about this client (false: a wrong password, an
 * unknown database). `fixed_user`: every client logs in upstream as the same configured user
 * (password mode with [upstream] user set), so an authentication failure is everyone's.
 */
px_login_fail_t px_admin_classify_login(int code, const char *sqlstate, bool upstream_said,
                                        bool fixed_user, bool *proxy_wide);
/* Whether a failed IAM credential request is everyone's problem (AWS unreachable, no AWS
 * credentials, throttling, an unknown cluster) rather than this client's (its user name). */
bool px_admin_iam_proxy_wide(int code, const char *aws_code, bool unreachable);

/*
 * The bookkeeping behind the px_proxy_note_* hooks, on a stats object (unit-tested).
 *   _login_ok:     clears the failure streak.
 *   _login_failed: counts the reason; a proxy-wide failure extends the streak, while a
 *                  refusal upstream sent about this client proves upstream answers and ends it.
 *   _iam:          credentials obtained (ok) mark the chain as working; `chain_failed` (the
 *                  chain itself found no usable AWS credentials) marks it as failing.
 */
void px_admin_health_login_ok(px_proxy_stats_t *s, uint64_t now_ms);
void px_admin_health_login_failed(px_proxy_stats_t *s, px_login_fail_t reason, bool proxy_wide,
                                  uint64_t now_ms);
void px_admin_health_iam(px_proxy_stats_t *s, bool ok, bool chain_failed);

#endif
