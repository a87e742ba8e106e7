/*
 * Runs a credential_process command and captures its output. Blocking by design: it is called
 * only from a libuv worker thread (uv_queue_work), never on the event loop. The child gets
 * /dev/null as stdin and our environment; stdout is captured up to a cap (it carries a secret
 * key, so the buffer grows without leaving unwiped copies), stderr only as a short excerpt for
 * the error message. A child that outlives the timeout or floods stdout is killed.
 */
#include "auth_proc.h"

#include "auth_aws.h"
#include "px_alloc.h"
#include "px_err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

void auth__proc_ctl_init(auth_proc_ctl_t *ctl)
{
    pthread_mutex_init(&ctl->lock, NULL);
    ctl->pid = 0;
    ctl->canceled = false;
}

void auth__proc_ctl_destroy(auth_proc_ctl_t *ctl)
{
    pthread_mutex_destroy(&ctl->lock);
}

void auth__proc_cancel(auth_proc_ctl_t *ctl)
{
    pthread_mutex_lock(&ctl->lock);
    ctl->canceled = true;
    if (ctl->pid > 0)
        kill(-ctl->pid, SIGKILL); /* the whole group: a shell's children hold our pipes too */
    pthread_mutex_unlock(&ctl->lock);
}

int auth__run_process(char *const *argv, long timeout_ms, px_dbuf_t *out, char *errbuf,
                      size_t errcap, int *exit_status, auth_proc_ctl_t *ctl)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    int rc = 0;
    pid_t pid = -1;
    size_t errlen = 0;
    if (errcap)
        errbuf[0] = '\0';
    *exit_status = -1;

    if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        rc = -errno;
        goto out;
    }
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        rc = UV_ENOMEM;
        goto out;
    }
    /* dup2 clears close-on-exec on the targets; everything else we hold stays CLOEXEC. */
    int frc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (!frc)
        frc = posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    if (!frc)
        frc = posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawnattr_t attr;
    if (!frc)
        frc = posix_spawnattr_init(&attr);
    if (frc) {
        posix_spawn_file_actions_destroy(&fa);
        rc = UV_ENOMEM;
        goto out;
    }
    /* The child starts with default signal dispositions and an empty mask, whatever the
     * proxy's threads have blocked or ignored (SIGPIPE in particular). */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    /* Its own process group, so a timeout or a shutdown can kill what it started as well. */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    /* Spawn under the lock so a cancel either stops us before the child exists or sees its
     * pid. */
    if (ctl)
        pthread_mutex_lock(&ctl->lock);
    int src =
        ctl && ctl->canceled ? ECANCELED : posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    if (ctl && src == 0)
        ctl->pid = pid;
    if (ctl)
        pthread_mutex_unlock(&ctl->lock);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (src != 0) {
        pid = -1;
        rc = src == ENOENT ? UV_ENOENT : src == ECANCELED ? AUTH_E_CANCELED : -src;
        goto out;
    }
    close_fd(&outp[1]);
    close_fd(&errp[1]);

    uint64_t deadline = uv_hrtime() / 1000000 + (uint64_t)timeout_ms;
    while (outp[0] >= 0 || errp[0] >= 0) {
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= deadline) {
            rc = AUTH_E_TIMEOUT;
            break;
        }
        if (ctl) {
            pthread_mutex_lock(&ctl->lock);
            bool canceled = ctl->canceled;
            pthread_mutex_unlock(&ctl->lock);
            if (canceled) {
                rc = AUTH_E_CANCELED;
                break;
            }
        }
        struct pollfd pf[2] = {{.fd = outp[0], .events = POLLIN},
                               {.fd = errp[0], .events = POLLIN}};
        /* Short slices, so a cancel is noticed even while a grandchild keeps a pipe open. */
        int pr = poll(pf, 2, (int)PX_MIN(deadline - now, (uint64_t)100));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        char buf[4096];
        if (outp[0] >= 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(outp[0], buf, sizeof(buf));
            if (n > 0) {
                bool ok = auth__secret_append(out, buf, (size_t)n);
                px_wipe(buf, sizeof(buf));
                if (!ok) {
                    rc = PX_E_TOOBIG;
                    break;
                }
            } else if (n == 0 || errno != EINTR) {
                close_fd(&outp[0]);
            }
        }
        if (errp[0] >= 0 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(errp[0], buf, sizeof(buf));
            if (n > 0) {
                size_t take = errcap > errlen + 1 ? PX_MIN((size_t)n, errcap - errlen - 1) : 0;
                memcpy(errbuf + errlen, buf, take);
                errlen += take;
                errbuf[errlen] = '\0';
            } else if (n == 0 || errno != EINTR) {
                close_fd(&errp[0]);
            }
        }
    }
out:
    close_fd(&outp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    if (pid > 0) {
        if (rc != 0)
            kill(-pid, SIGKILL);
        int st;
        /* Unpublish before reaping: once reaped, the pid may belong to someone else. */
        if (ctl) {
            pthread_mutex_lock(&ctl->lock);
            ctl->pid = 0;
            if (ctl->canceled && rc == 0)
                rc = AUTH_E_CANCELED;
            pthread_mutex_unlock(&ctl->lock);
        }
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (rc == 0)
            *exit_status =
                WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
    return rc;
}

int auth__read_file(const char *path, size_t max, bool secret, px_dbuf_t *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max) {
            rc = PX_E_TOOBIG;
            break;
        }
        bool ok = secret ? auth__secret_append(out, buf, (size_t)n)
                         : (px_dbuf_put(out, buf, (size_t)n), !out->failed);
        if (!ok) {
            rc = UV_ENOMEM;
            break;
        }
    }
    px_wipe(buf, sizeof(buf));
    close(fd);
    return rc;
}
