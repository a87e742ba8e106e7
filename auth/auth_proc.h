/*
 * Blocking helpers for libuv worker threads (uv_queue_work) only: running credential_process and
 * reading small files (token files, ~/.aws files, AWS_CA_BUNDLE). Never call these on the loop.
 */
#ifndef AUTH_PROC_H
#define AUTH_PROC_H

#include "px_buf.h"
#include "px_util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Lets the loop thread stop a running child (shutdown): auth__proc_cancel kills it. The pid is
 * published only while the child is unreaped, so a kill can never reach a recycled pid. */
typedef struct auth_proc_ctl {
    pthread_mutex_t lock;
    pid_t pid;     /* > 0 while the child runs and is not yet reaped */
    bool canceled; /* set by auth__proc_cancel; a child not yet started is not started */
} auth_proc_ctl_t;

void auth__proc_ctl_init(auth_proc_ctl_t *ctl);
void auth__proc_ctl_destroy(auth_proc_ctl_t *ctl);
/* From any thread. */
void auth__proc_cancel(auth_proc_ctl_t *ctl);

/* Runs argv (argv[0] searched in PATH) with stdin from /dev/null. stdout is appended to `out`
 * (its limit caps it; secret-safe growth); the first errcap-1 bytes of stderr go to errbuf.
 * Returns 0 with *exit_status set, UV_ENOENT (no such program), AUTH_E_TIMEOUT (killed after
 * timeout_ms), PX_E_TOOBIG (killed for too much output), AUTH_E_CANCELED (ctl canceled it) or
 * another negative errno. `ctl` may be NULL. */
int auth__run_process(char *const *argv, long timeout_ms, px_dbuf_t *out, char *errbuf,
                      size_t errcap, int *exit_status, auth_proc_ctl_t *ctl) PX_MUSTCHECK;

/* Reads a whole file into `out` (at most max bytes, else PX_E_TOOBIG). `secret` wipes as it
 * grows. 0 or a negative errno (UV_ENOENT when missing). */
int auth__read_file(const char *path, size_t max, bool secret, px_dbuf_t *out) PX_MUSTCHECK;

#endif
