/*
 * px_strerror(): one table for the project's error range, libuv's for the rest.
 */
#include "px_err.h"

#include <uv.h>

const char *px_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case PX_E_PROTO: return "protocol violation";
    case PX_E_TOOBIG: return "message too large";
    case PX_E_TLS: return "TLS error";
    case PX_E_TLS_VERIFY: return "certificate verification failed";
    case PX_E_NOSSL: return "server does not support SSL";
    case PX_E_UPSTREAM_EOF: return "server closed the connection";
    case PX_E_CLIENT_EOF: return "client closed the connection";
    case PX_E_REFUSED: return "refused by policy";
    case PX_E_SHUTDOWN: return "proxy is shutting down";
    case PX_E_UNSUPPORTED: return "not supported";
    case PX_E_STATE: return "invalid state";
    case CFG_E_PARSE: return "configuration syntax error";
    case CFG_E_UNKNOWN: return "unknown configuration key";
    case CFG_E_VALUE: return "invalid configuration value";
    case CFG_E_IO: return "cannot read configuration file";
    case AUTH_E_PROTO: return "malformed authentication message";
    case AUTH_E_MECH: return "authentication method not supported";
    case AUTH_E_VERIFY: return "authentication proof did not verify";
    case AUTH_E_FAILED: return "authentication failed";
    case AUTH_E_AWS: return "AWS returned an error";
    case AUTH_E_HTTP: return "cannot reach AWS endpoint";
    case AUTH_E_PARSE: return "malformed AWS response";
    case AUTH_E_NOCREDS: return "no AWS credentials found";
    case AUTH_E_EXPIRED: return "credentials expired";
    case AUTH_E_THROTTLED: return "AWS request throttled";
    case AUTH_E_TIMEOUT: return "AWS request timed out";
    case AUTH_E_CANCELED: return "request canceled";
    case S3_E_URL: return "malformed S3 URL";
    case S3_E_HTTP: return "S3 request failed";
    case S3_E_PARSE: return "malformed S3 response";
    default: break;
    }
    if (code < 0 && code > -10000)
        return uv_strerror(code);
    return "unknown error";
}
