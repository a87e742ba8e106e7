/*
 * Pure helpers for S3 requests (s3_req.h): name rules, endpoint and region precedence, path-style
 * versus virtual-hosted addressing, encoding, Content-Range, and random staging names. They turn
 * caller input into exactly what auth_aws_call signs and sends; nothing here does I/O, keeps
 * state or logs. The addressing rule itself is documented in the header, next to the API.
 */
#include "s3_req.h"

#include "auth_awscfg.h"
#include "auth_http.h"
#include "auth_sigv4.h"
#include "px_err.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool s3_bucket_name_ok(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool s3_bucket_dns_compatible(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n < 3 || n > 63 || !is_lower_alnum(b[0]) || !is_lower_alnum(b[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_alnum(b[i]) && b[i] != '-')
            return false;
    }
    return true;
}

const char *s3_key_check(const char *key, size_t n)
{
    if (!key || n == 0)
        return "object key is empty";
    if (n > 1024)
        return "object key is longer than 1024 bytes";
    if (memchr(key, '\0', n))
        return "object key contains a NUL byte";
    /* Segments are the runs between '/' (the first starts at 0, the last ends at n). */
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && key[i] != '/')
            continue;
        size_t len = i - start;
        if ((len == 1 && key[start] == '.') ||
            (len == 2 && key[start] == '.' && key[start + 1] == '.'))
            return "object key has a \".\" or \"..\" path segment, which HTTP clients rewrite";
        start = i + 1;
    }
    return NULL;
}

/* The host part of an endpoint's host header, without the port, lower case (as parsed). */
static bool endpoint_host(const char *endpoint, char *host, size_t hcap, char *base, size_t bcap,
                          bool *https)
{
    if (!endpoint || auth_http_endpoint_parse(endpoint, host, hcap, base, bcap, https) != 0)
        return false;
    return true;
}

static bool host_is_ip_literal(const char *host)
{
    if (host[0] == '[')
        return true;
    size_t n = strcspn(host, ":");
    for (size_t i = 0; i < n; i++) {
        if (!((host[i] >= '0' && host[i] <= '9') || host[i] == '.'))
            return false;
    }
    return n > 0;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t sl = strlen(suffix);
    return n >= sl && memcmp(s + n - sl, suffix, sl) == 0;
}

bool s3_endpoint_is_aws(const char *endpoint)
{
    char host[S3_ENDPOINT_MAX], base[S3_ENDPOINT_MAX];
    bool https;
    if (!endpoint_host(endpoint, host, sizeof(host), base, sizeof(base), &https) || base[0])
        return false;
    size_t n = strcspn(host, ":"); /* without the port */
    if (!ends_with(host, n, ".amazonaws.com") && !ends_with(host, n, ".amazonaws.com.cn"))
        return false;
    return (n > 3 && memcmp(host, "s3.", 3) == 0) || (n > 3 && memcmp(host, "s3-", 3) == 0);
}

int s3_build_location(const char *endpoint, s3_addressing_t mode, const char *bucket,
                      const char *key, size_t key_len, px_dbuf_t *ep_out, px_dbuf_t *path_out,
                      bool *virtual_out)
{
    char host[S3_ENDPOINT_MAX], base[S3_ENDPOINT_MAX];
    bool https;
    if (!endpoint_host(endpoint, host, sizeof(host), base, sizeof(base), &https))
        return UV_EINVAL;
    if (!s3_bucket_name_ok(bucket))
        return UV_EINVAL;
    if (key && s3_key_check(key, key_len))
        return UV_EINVAL;
    bool virt = false;
    switch (mode) {
    case S3_ADDR_AUTO:
        virt = s3_endpoint_is_aws(endpoint) && s3_bucket_dns_compatible(bucket);
        break;
    case S3_ADDR_VIRTUAL:
        virt = s3_bucket_dns_compatible(bucket) && !host_is_ip_literal(host);
        break;
    case S3_ADDR_PATH:
        virt = false;
        break;
    }
    size_t ep0 = ep_out->len, p0 = path_out->len;
    if (virt) {
        px_dbuf_printf(ep_out, "%s://%s.%s%s", https ? "https" : "http", bucket, host, base);
        px_dbuf_put_u8(path_out, '/');
    } else {
        px_dbuf_printf(ep_out, "%s://%s%s", https ? "https" : "http", host, base);
        px_dbuf_put_u8(path_out, '/');
        auth_uri_encode(path_out, bucket, strlen(bucket), false);
        if (key)
            px_dbuf_put_u8(path_out, '/');
    }
    if (key)
        auth_uri_encode(path_out, key, key_len, true);
    if (ep_out->failed || path_out->failed || !px_dbuf_cstr(ep_out) || !px_dbuf_cstr(path_out)) {
        ep_out->len = ep0;
        path_out->len = p0;
        return UV_ENOMEM;
    }
    *virtual_out = virt;
    return 0;
}

void s3_query_add(px_dbuf_t *q, const char *name, const char *value, size_t vlen)
{
    if (q->len)
        px_dbuf_put_u8(q, '&');
    auth_uri_encode(q, name, strlen(name), false);
    if (value) {
        px_dbuf_put_u8(q, '=');
        auth_uri_encode(q, value, vlen, false);
    }
}

/* Whether `ep` is AWS's default S3 endpoint for `region` (or the global one). */
static bool is_default_endpoint(const char *ep, const char *region)
{
    char def[S3_ENDPOINT_MAX];
    auth_aws_default_endpoint(AUTH_SVC_S3, region, def, sizeof(def));
    size_t n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/')
        n--;
    return (strlen(def) == n && strncasecmp(ep, def, n) == 0) ||
           (n == strlen("https://s3.amazonaws.com") &&
            strncasecmp(ep, "https://s3.amazonaws.com", n) == 0);
}

int s3_resolve_target(const char *opt_endpoint, const char *opt_region, const char *chain_endpoint,
                      const char *chain_region, const char *bucket_region, char *endpoint,
                      size_t epcap, char *region, size_t rcap, bool *aws_default)
{
    const char *r = bucket_region && *bucket_region ? bucket_region
                    : opt_region && *opt_region     ? opt_region
                    : chain_region && *chain_region ? chain_region
                                                    : "us-east-1";
    int n = snprintf(region, rcap, "%s", r);
    if (n < 0 || (size_t)n >= rcap)
        return UV_EINVAL;
    *aws_default = false;
    if (opt_endpoint && *opt_endpoint) {
        n = snprintf(endpoint, epcap, "%s", opt_endpoint);
    } else if (chain_endpoint && *chain_endpoint &&
               !is_default_endpoint(chain_endpoint, chain_region)) {
        n = snprintf(endpoint, epcap, "%s", chain_endpoint);
    } else {
        auth_aws_default_endpoint(AUTH_SVC_S3, region, endpoint, epcap);
        n = (int)strlen(endpoint);
        *aws_default = true;
    }
    if (n < 0 || (size_t)n >= epcap)
        return UV_EINVAL;
    return 0;
}

/* Reads decimal digits at *p into *out (no sign, at most 20 digits, no overflow). */
static bool read_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (++digits > 20 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        s++;
    }
    if (digits == 0)
        return false;
    *p = s;
    *out = v;
    return true;
}

int s3_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total)
{
    if (!v || strncasecmp(v, "bytes ", 6) != 0)
        return S3_E_PARSE;
    const char *p = v + 6;
    while (*p == ' ')
        p++;
    uint64_t a, b, t;
    if (!read_u64(&p, &a) || *p++ != '-' || !read_u64(&p, &b) || *p++ != '/' || !read_u64(&p, &t))
        return S3_E_PARSE;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0' || a > b || b >= t)
        return S3_E_PARSE;
    *first = a;
    *last = b;
    *total = t;
    return 0;
}

int s3_parse_content_length(const char *v, uint64_t *out)
{
    if (!v)
        return S3_E_PARSE;
    const char *p = v;
    while (*p == ' ')
        p++;
    uint64_t n;
    if (!read_u64(&p, &n))
        return S3_E_PARSE;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0')
        return S3_E_PARSE;
    *out = n;
    return 0;
}

void s3_status_code_name(int status, char *out, size_t cap)
{
    static const struct {
        int status;
        const char *code;
    } names[] = {
        {301, "PermanentRedirect"}, {304, "NotModified"},        {400, "BadRequest"},
        {403, "Forbidden"},         {404, "NotFound"},           {405, "MethodNotAllowed"},
        {409, "Conflict"},          {412, "PreconditionFailed"}, {416, "InvalidRange"},
        {500, "InternalError"},     {503, "ServiceUnavailable"},
    };
    for (size_t i = 0; i < PX_ARRAY_SIZE(names); i++) {
        if (names[i].status == status) {
            snprintf(out, cap, "%s", names[i].code);
            return;
        }
    }
    snprintf(out, cap, "HTTP%d", status);
}

void s3_uuid4_format(const uint8_t rnd[16], char out[37])
{
    uint8_t b[16];
    memcpy(b, rnd, 16);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}

int s3_uuid4(char out[37])
{
    uint8_t rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return UV_EIO;
    s3_uuid4_format(rnd, out);
    return 0;
}
