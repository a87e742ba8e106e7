/*
 * The daemon as main.c, the admin endpoint and the loopback tests see it: one px_proxy_t per
 * event loop owns the listeners, the client and server connections, the upstream TLS context,
 * the IAM credential source, the cancel-key map and the signal handlers. Configuration comes in
 * as a cfg_t snapshot; SIGHUP builds a new one off the loop thread and swaps it in, and every
 * connection keeps the snapshot it started with.
 */
#ifndef PX_PROXY_H
#define PX_PROXY_H

#include "cfg.h"
#include "px_util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

typedef struct px_proxy px_proxy_t;

typedef struct px_proxy_stats {
    uint64_t clients_accepted;  /* connections accepted since start */
    uint64_t clients_refused;   /* refused before login (limits, protocol, auth) */
    uint64_t logins_ok;         /* upstream logins that reached ReadyForQuery */
    uint64_t logins_failed;     /* upstream logins that failed */
    uint64_t cancels_forwarded; /* CancelRequests sent upstream */
    uint64_t statements_rewritten;
    uint64_t statements_refused;
    uint64_t bytes_from_clients; /* plaintext, both closed and open connections */
    uint64_t bytes_to_clients;
    uint32_t clients_login;   /* now: in startup, authentication or upstream login */
    uint32_t clients_active;  /* now: relaying */
    uint32_t clients_closing; /* now: closing */
    uint32_t servers;         /* now: upstream connections, cancels included */
    uint64_t read_buffers;    /* now: read buffers allocated (cached ones included) */
    bool shutting_down;
} px_proxy_stats_t;

/*
 * cfg_load's validate hook for what the key table cannot check alone: the [s3] section
 * (s3_cfg_validate), and upstream settings that depend on each other (a host in password
 * mode, a readable sslrootcert file). Returns the number of errors reported.
 */
int px_cfg_validate(cfg_t *c, cfg_report_t *r, void *arg);

/*
 * Builds the daemon for `cfg` (a reference is taken): the upstream TLS context, the IAM
 * credential source in IAM mode, the client auth file in scram-sha-256 mode. `cfg_path` is
 * re-read on reload (NULL: reload is refused). Returns 0 or a negative code with a reason in
 * err; nothing is bound yet.
 */
int px_proxy_new(uv_loop_t *loop, cfg_t *cfg, const char *cfg_path, px_proxy_t **out, char *err,
                 size_t errlen) PX_MUSTCHECK;

/* Binds every listen_addr (names resolved now) and the Unix socket. */
int px_proxy_listen(px_proxy_t *px, char *err, size_t errlen) PX_MUSTCHECK;
/* The TCP port actually bound (listen_port 0 in tests picks one). */
int px_proxy_port(const px_proxy_t *px);

/* SIGINT/SIGTERM drain and stop; SIGHUP reloads. */
int px_proxy_handle_signals(px_proxy_t *px) PX_MUSTCHECK;

/*
 * Stops accepting, lets each connection finish its current transaction (bounded), then closes
 * everything; the loop then runs out of handles and uv_run returns. `fast` closes every
 * connection at once. Calling it again with fast = true hurries a drain along.
 */
void px_proxy_shutdown(px_proxy_t *px, bool fast);

/* Reloads cfg_path off the loop thread and swaps the snapshot in; logs the outcome. */
void px_proxy_reload(px_proxy_t *px);

/* The current snapshot (borrowed). */
cfg_t *px_proxy_cfg(const px_proxy_t *px);
void px_proxy_get_stats(const px_proxy_t *px, px_proxy_stats_t *out);

/*
 * `rsproxy --check`: builds a proxy for `cfg` on `loop` without listening, logs in upstream once
 * (getting IAM credentials first in IAM mode) and prints each step to `out`. Returns the exit
 * status: 0 when everything worked, 1 otherwise. Runs the loop until every handle is closed.
 */
int px_proxy_check(uv_loop_t *loop, cfg_t *cfg, FILE *out);

/* Frees the object once uv_run has returned (every handle closed). */
void px_proxy_free(px_proxy_t *px);

#endif
