/*
 * "*", IP literals and host names for listening sockets (px_listen.h). The host-name case runs
 * uv_getaddrinfo without a callback, which resolves synchronously: acceptable only because it
 * happens at startup, before the loop serves anyone.
 */
#include "px_listen.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void px_listen_set_port(struct sockaddr *sa, int port)
{
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
}

void px_addr_name(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
    } else {
        snprintf(out, cap, "?");
    }
}

int px_listen_tcp(uv_tcp_t *tcp, const struct sockaddr *sa, int backlog, uv_connection_cb cb,
                  int *port)
{
    int rc = uv_tcp_bind(tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, backlog, cb);
    if (rc)
        return rc;
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    const struct sockaddr *got = sa; /* what was asked for, should the kernel not say */
    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &sl) == 0)
        got = (const struct sockaddr *)&ss;
    *port = ntohs(got->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)got)->sin6_port
                                             : ((const struct sockaddr_in *)got)->sin_port);
    return 0;
}

static bool parse_literal(const char *addr, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    return uv_ip4_addr(addr, port, (struct sockaddr_in *)ss) == 0 ||
           uv_ip6_addr(addr, port, (struct sockaddr_in6 *)ss) == 0;
}

int px_listen_each(uv_loop_t *loop, const char *key, const char *addr, int port,
                   px_listen_bind_fn bind, void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (strcmp(addr, "*") == 0) {
        parse_literal("0.0.0.0", port, &ss);
        int rc = bind(arg, (struct sockaddr *)&ss, err, errlen);
        if (rc)
            return rc;
        parse_literal("::", port, &ss);
        rc = bind(arg, (struct sockaddr *)&ss, err, errlen);
        if (rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL) {
            /* A host without IPv6 is fine with "*". */
            if (err && errlen)
                err[0] = '\0';
            return 0;
        }
        return rc;
    }
    if (parse_literal(addr, port, &ss))
        return bind(arg, (struct sockaddr *)&ss, err, errlen);

    uv_getaddrinfo_t req;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ports[16];
    snprintf(ports, sizeof(ports), "%d", port);
    int rc = uv_getaddrinfo(loop, &req, NULL, addr, ports, &hints);
    if (rc) {
        snprintf(err, errlen, "cannot resolve %s \"%s\": %s", key, addr, uv_strerror(rc));
        return rc;
    }
    int bound = 0;
    for (struct addrinfo *a = req.addrinfo; a && rc == 0; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        rc = bind(arg, a->ai_addr, err, errlen);
        bound += rc == 0;
    }
    uv_freeaddrinfo(req.addrinfo);
    if (rc == 0 && !bound) {
        snprintf(err, errlen, "%s \"%s\" has no IPv4 or IPv6 address", key, addr);
        rc = UV_EADDRNOTAVAIL;
    }
    return rc;
}
