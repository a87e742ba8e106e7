/*
 * Listening addresses as users write them ([proxy] listen_addr, [proxy] admin_addr): "*" for
 * every IPv4 and IPv6 interface, an IP literal, or a host name resolved once, synchronously
 * (only at startup, before any client is served), whose every IPv4 and IPv6 address is bound.
 * Shared by the client listeners (px_proxy.c) and the admin endpoint (px_admin.c); binding is
 * the caller's callback.
 */
#ifndef PX_LISTEN_H
#define PX_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

/* Binds one address (its port is already set; a caller that asked for port 0 may overwrite it
 * with the port its first bind got, so that every address shares it). Returns 0 or a negative
 * libuv error with err filled. */
typedef int (*px_listen_bind_fn)(void *arg, struct sockaddr *sa, char *err, size_t errlen);

/* Calls bind for each address `addr` names, stopping at the first error. `key` names the
 * setting in error messages. With "*", a host without IPv6 is not an error. */
int px_listen_each(uv_loop_t *loop, const char *key, const char *addr, int port,
                   px_listen_bind_fn bind, void *arg, char *err, size_t errlen);

/* Sets the port of an AF_INET or AF_INET6 address. */
void px_listen_set_port(struct sockaddr *sa, int port);

/* "ip:port" or "[ip]:port" (IPv6) for logs and errors; "?" for another family. */
void px_addr_name(const struct sockaddr *sa, char *out, size_t cap);

/* Binds an initialised TCP handle to sa (an IPv6 address only for IPv6, so that "*" can bind
 * the same port for IPv4 too) and listens. *port gets the port actually bound (the kernel's
 * choice when sa asked for 0). Returns 0 or a libuv error; the caller closes the handle. */
int px_listen_tcp(uv_tcp_t *tcp, const struct sockaddr *sa, int backlog, uv_connection_cb cb,
                  int *port);

#endif
