/*
 * A tiny HTTP/1.1 server on a libuv loop for auth/ loop tests: binds 127.0.0.1 on an ephemeral
 * port, parses requests (Content-Length bodies, keep-alive) and lets a handler script each
 * answer: status, headers, body, a stall (never answer) or a close without answering. It runs on
 * the test's own loop, so tests stay single-threaded and deterministic.
 */
#ifndef TEST_AUTH_SERVER_H
#define TEST_AUTH_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ts_request {
    char method[16];
    char target[4096];   /* path and query as sent */
    char headers[16384]; /* raw "Name: value\r\n" lines */
    uint8_t *body;
    size_t bodylen;
} ts_request_t;

typedef struct ts_response {
    int status;         /* 200 when left 0 */
    char headers[4096]; /* extra raw "Name: value\r\n" lines; a Date is added unless present */
    char body[65536];
    size_t bodylen; /* 0: strlen(body) */
    bool stall;     /* keep the connection open and never answer */
    bool drop;      /* close the connection without answering */
} ts_response_t;

typedef void (*ts_handler)(const ts_request_t *req, ts_response_t *resp, void *arg);

typedef struct ts_server ts_server_t;

int ts_start(uv_loop_t *loop, ts_handler h, void *arg, ts_server_t **out, int *port);
/* Closes the listener and every connection; memory goes in the close callbacks. */
void ts_stop(ts_server_t *s);
/* Requests answered or stalled so far. */
int ts_count(const ts_server_t *s);

/* Value of a request header (case-insensitive name) copied into buf; NULL when absent. */
const char *ts_header(const ts_request_t *r, const char *name, char *buf, size_t cap);
/* "Sun, 06 Nov 1994 08:49:37 GMT" for a Unix time (for skewed Date headers). */
void ts_http_date(int64_t unix_s, char out[40]);

/* Counts the handles still open on a loop (a leak check before px_test_loop_close). */
int ts_open_handles(uv_loop_t *loop);

#endif
