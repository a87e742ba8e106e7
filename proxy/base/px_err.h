/*
 * Error codes for every module. Functions that can fail return 0 or a negative code: libuv's
 * negative errno values (UV_E*) plus the project's own range below -10000, listed here so that
 * one px_strerror() prints them all and callers can switch on them.
 */
#ifndef PX_ERR_H
#define PX_ERR_H

enum px_err {
    /* proxy/: PostgreSQL protocol and connections */
    PX_E_PROTO = -10001,       /* peer broke the PostgreSQL protocol */
    PX_E_TOOBIG = -10002,      /* message or value above its configured bound */
    PX_E_TLS = -10003,         /* TLS failure (handshake, record, alert) */
    PX_E_TLS_VERIFY = -10004,  /* certificate chain or host name verification failed */
    PX_E_NOSSL = -10005,       /* server refused SSLRequest */
    PX_E_UPSTREAM_EOF = -10006, /* upstream closed the connection */
    PX_E_CLIENT_EOF = -10007,  /* client closed the connection */
    PX_E_REFUSED = -10008,     /* refused by policy */
    PX_E_SHUTDOWN = -10009,    /* the proxy is shutting down */
    PX_E_UNSUPPORTED = -10010, /* feature or mechanism not supported */
    PX_E_STATE = -10011,       /* operation not valid in the current state */

    /* config/ */
    CFG_E_PARSE = -10101,   /* syntax error in the file */
    CFG_E_UNKNOWN = -10102, /* unknown section or key */
    CFG_E_VALUE = -10103,   /* invalid value */
    CFG_E_IO = -10104,      /* cannot read the file */

    /* auth/: password exchanges and AWS */
    AUTH_E_PROTO = -10201,    /* malformed authentication message */
    AUTH_E_MECH = -10202,     /* authentication method not supported */
    AUTH_E_VERIFY = -10203,   /* server or client proof did not verify */
    AUTH_E_FAILED = -10204,   /* credentials refused */
    AUTH_E_AWS = -10205,      /* AWS answered with an error code */
    AUTH_E_HTTP = -10206,     /* HTTP transport failure talking to AWS */
    AUTH_E_PARSE = -10207,    /* unparseable AWS response */
    AUTH_E_NOCREDS = -10208,  /* no AWS credentials in the provider chain */
    AUTH_E_EXPIRED = -10209,  /* credentials expired */
    AUTH_E_THROTTLED = -10210, /* AWS throttled the call after retries */
    AUTH_E_TIMEOUT = -10211,  /* AWS call timed out */
    AUTH_E_CANCELED = -10212, /* request canceled (shutdown) */

    /* s3/ */
    S3_E_URL = -10301,  /* malformed S3 URL */
    S3_E_HTTP = -10302, /* S3 answered with an error status */
    S3_E_PARSE = -10303, /* unparseable S3 response */
};

/* Human-readable text for any code this project or libuv returns; never NULL. */
const char *px_strerror(int code);

#endif
