/*
 * Fuzz target for everything auth/ parses out of AWS's XML (awsQuery results and errors, STS,
 * Redshift) and for the timestamp parsers those documents feed. Each parser must accept or
 * refuse any bytes without crashing, leaking or reading out of bounds; successful results are
 * freed through the same paths production uses.
 */
#include "auth_aws.h"
#include "auth_redshift.h"
#include "px_alloc.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_aws_error_t err;
    memset(&err, 0, sizeof(err));
    (void)auth_parse_xml_error(data, size, &err);

    auth_aws_creds_t c;
    if (auth_parse_sts_creds(data, size, "AssumeRole", &c, &err) == 0)
        auth_aws_creds_clear(&c);
    if (auth_parse_sts_creds(data, size, "AssumeRoleWithWebIdentity", &c, &err) == 0)
        auth_aws_creds_clear(&c);

    auth_rs_creds_t rc;
    if (auth_rs_parse_cluster_credentials(data, size, false, &rc, &err) == 0)
        auth_rs_creds_clear(&rc);
    if (auth_rs_parse_cluster_credentials(data, size, true, &rc, &err) == 0)
        auth_rs_creds_clear(&rc);
    char *host = NULL;
    int port;
    if (auth_rs_parse_describe_clusters(data, size, &host, &port, &err) == 0)
        px_free(host);

    /* The generic extractor with overlapping paths and wildcards. */
    auth_xml_field_t f[4] = {{.path = "*/*/Value"},
                             {.path = "*"},
                             {.path = "A/*/C/D"},
                             {.path = "*/Errors/Error/Code", .secret = true}};
    if (auth_xml_extract(data, size, f, 4) == 0)
        auth_xml_fields_free(f, 4);

    if (size < 256) {
        int64_t ms;
        if (auth_time_parse_iso8601((const char *)data, size, &ms) == 0 && ms < 0)
            __builtin_trap(); /* the parser promises non-negative Unix ms */
        if (auth_time_parse_http_date((const char *)data, size, &ms) == 0 && ms < 0)
            __builtin_trap();
    }
    return 0;
}
