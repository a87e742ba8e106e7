/*
 * Signing half of integration.sigv4_botocore: reads one JSON request per line on stdin, signs it
 * with auth_sigv4_sign and prints one JSON result per line (return code, the headers to add, the
 * canonical request and string to sign). check_botocore.py generates the requests, signs the
 * same ones with botocore and compares. Byte strings travel hex-encoded so that paths, queries
 * and bodies reach the signer byte for byte. Test tool only: exits on malformed input.
 */
#include "auth_sigv4.h"
#include "px_alloc.h"
#include "px_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "sigv4_xcheck: %s\n", what);
    exit(2);
}

/* Hex field -> NUL-terminated buffer (the API takes C strings); NULL for JSON null. */
static char *hex_field(json_t *obj, const char *key, size_t *len)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (len)
            *len = 0;
        return NULL;
    }
    const char *hex = json_string_value(v);
    if (!hex)
        die("hex field is not a string");
    size_t n = strlen(hex) / 2;
    char *out = px_malloc(n + 1);
    if (!out || !px_hex_decode(hex, strlen(hex), (uint8_t *)out))
        die("bad hex");
    out[n] = '\0';
    if (len)
        *len = n;
    return out;
}

static const char *str_field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && json_is_string(v) ? json_string_value(v) : NULL;
}

static void sign_one(json_t *in)
{
    size_t bodylen = 0;
    char *path = hex_field(in, "path_hex", NULL);
    char *query = hex_field(in, "query_hex", NULL);
    char *body = hex_field(in, "body_hex", &bodylen);
    json_t *jh = json_object_get(in, "headers");
    size_t nh = json_array_size(jh);
    if (nh > MAX_HEADERS)
        die("too many headers");
    auth_http_header_t hdrs[MAX_HEADERS];
    char *values[MAX_HEADERS];
    for (size_t i = 0; i < nh; i++) {
        json_t *pair = json_array_get(jh, i);
        hdrs[i].name = json_string_value(json_array_get(pair, 0));
        json_t *wrap = json_pack("{sO}", "v", json_array_get(pair, 1));
        values[i] = hex_field(wrap, "v", NULL);
        json_decref(wrap);
        hdrs[i].value = values[i];
        if (!hdrs[i].name || !hdrs[i].value)
            die("bad header");
    }
    auth_sigv4_req_t req = {
        .method = str_field(in, "method"),
        .path = path,
        .query = query,
        .headers = hdrs,
        .nheaders = nh,
        .body = (const uint8_t *)body,
        .bodylen = bodylen,
        .payload_hash = str_field(in, "payload_hash"),
        .region = str_field(in, "region"),
        .service = str_field(in, "service"),
        .time_unix = json_integer_value(json_object_get(in, "time")),
        .s3 = json_is_true(json_object_get(in, "s3")),
        .sign_session_token = json_is_true(json_object_get(in, "sign_token")),
    };
    auth_aws_keys_t keys = {str_field(in, "akid"), str_field(in, "secret"), str_field(in, "token")};
    auth_sigv4_out_t out;
    int rc = auth_sigv4_sign(&req, &keys, &out);

    json_t *res = json_object();
    json_object_set_new(res, "id", json_incref(json_object_get(in, "id")));
    json_object_set_new(res, "rc", json_integer(rc));
    json_t *add = json_array();
    for (size_t i = 0; i < out.nadd; i++)
        json_array_append_new(add, json_pack("[ss]", out.add[i].name, out.add[i].value));
    json_object_set_new(res, "add", add);
    json_object_set_new(
        res, "creq",
        json_stringn((const char *)out.canonical_request.data, out.canonical_request.len));
    json_object_set_new(
        res, "sts", json_stringn((const char *)out.string_to_sign.data, out.string_to_sign.len));
    if (json_dumpf(res, stdout, JSON_COMPACT) != 0)
        die("cannot write result");
    fputc('\n', stdout);
    json_decref(res);
    auth_sigv4_out_free(&out);
    for (size_t i = 0; i < nh; i++)
        px_free(values[i]);
    px_free(path);
    px_free(query);
    px_free(body);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long count = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t err;
        json_t *in = json_loadb(line, (size_t)n, 0, &err);
        if (!in) {
            fprintf(stderr, "sigv4_xcheck: line %ld: %s\n", count + 1, err.text);
            return 2;
        }
        sign_one(in);
        json_decref(in);
        count++;
    }
    free(line);
    fflush(stdout);
    return count > 0 ? 0 : 2;
}
