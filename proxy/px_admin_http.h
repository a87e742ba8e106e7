/*
 * The admin endpoint's HTTP/1.x request parser: llhttp underneath, as a pure function over
 * bytes (no sockets, no clock, no allocation), so the fuzzer and the unit tests drive exactly
 * what the server runs. It takes a connection's byte stream in whatever pieces the socket
 * delivers and hands back one complete request at a time, so pipelined requests are answered
 * in order. Everything a peer controls is capped: the request head, the target, the number of
 * headers. Bodies are refused, because no admin endpoint takes one.
 */
#ifndef PX_ADMIN_HTTP_H
#define PX_ADMIN_HTTP_H

#include "px_util.h"

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Request line plus headers, in bytes (431 beyond). Probes and scrapers send about 200. */
#define PX_ADMIN_MAX_HEAD 8192
/* The request target (414 beyond). */
#define PX_ADMIN_MAX_TARGET 2048
/* Header fields per request (431 beyond). */
#define PX_ADMIN_MAX_HEADERS 64

typedef enum px_admin_method {
    PX_ADMIN_GET = 0,
    PX_ADMIN_HEAD,
    PX_ADMIN_OTHER, /* any other method llhttp knows; the server answers 405 */
} px_admin_method_t;

/* One parsed request, or the error to answer. Self-contained: no pointer into the input. */
typedef struct px_admin_req {
    int status;        /* 0: a request to route; else the error status (400, 413...) */
    const char *error; /* static reason for an error status, for the body and the log */
    px_admin_method_t method;
    const char *method_name;            /* static; "-" when the method was not understood */
    char path[PX_ADMIN_MAX_TARGET + 1]; /* the target's path, NUL-terminated; "" on error */
    uint8_t http_major, http_minor;
    /* The connection may carry another request after this one (HTTP/1.1 without
     * "Connection: close", HTTP/1.0 with "Connection: keep-alive", no Upgrade). */
    bool keep_alive;
} px_admin_req_t;

typedef enum px_admin_parse {
    PX_ADMIN_PARSE_MORE = 0, /* every byte was consumed and no request is complete yet */
    PX_ADMIN_PARSE_REQUEST,  /* a request ended after *used bytes: answer it, feed the rest */
    PX_ADMIN_PARSE_ERROR,    /* malformed or over a limit: answer req->status, then close */
} px_admin_parse_t;

/* One per connection. Fields are private; the struct is public so that it can be embedded. */
typedef struct px_admin_parser {
    llhttp_t _http;
    size_t _head; /* bytes of the current request seen so far */
    size_t _target_len;
    char _target[PX_ADMIN_MAX_TARGET + 1];
    char _field[8]; /* the current header name, enough to recognise "Host" */
    size_t _field_len;
    unsigned _nheaders;
    unsigned _nhost;
    int _status; /* error chosen by a callback, 0 otherwise */
    const char *_error;
    bool _complete; /* on_message_complete ran for the current request */
    bool _failed;   /* sticky: llhttp keeps returning its error, and so do we */
} px_admin_parser_t;

void px_admin_parser_init(px_admin_parser_t *p);

/*
 * Feeds the next `len` bytes of the stream. Returns MORE (all consumed, *used = len), REQUEST
 * (*used bytes consumed, ending with a complete request described in *req; call again with
 * the bytes after it once it is answered), or ERROR (*req has the status to answer; the
 * parser stays failed, because the stream cannot be resynchronised). Never reads beyond len.
 */
px_admin_parse_t px_admin_parser_feed(px_admin_parser_t *p, const uint8_t *data, size_t len,
                                      size_t *used, px_admin_req_t *req) PX_MUSTCHECK;

/* The standard reason phrase of a status this endpoint answers with ("Bad Request"). */
const char *px_admin_status_text(int status);

#endif
