/*
 * Fuzz target for the JSON auth/ reads from peers: the container and IMDS credential documents,
 * credential_process output, JSON 1.1 error bodies, and Redshift Serverless results. Any bytes
 * must be accepted or refused cleanly, within the size and depth bounds.
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
    auth_aws_creds_t c;
    static const auth_json_creds_kind_t kinds[] = {AUTH_JSON_CREDS_CONTAINER, AUTH_JSON_CREDS_IMDS,
                                                   AUTH_JSON_CREDS_PROCESS};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (auth_parse_json_creds(data, size, kinds[i], &c, &err) == 0)
            auth_aws_creds_clear(&c);
    }
    memset(&err, 0, sizeof(err));
    (void)auth_parse_json_error(data, size, NULL, &err);
    memset(&err, 0, sizeof(err));
    (void)auth_parse_json_error(data, size, "Fallback:http://x", &err);

    auth_rs_creds_t rc;
    if (auth_rs_parse_serverless_credentials(data, size, &rc, &err) == 0)
        auth_rs_creds_clear(&rc);
    char *host = NULL;
    int port;
    if (auth_rs_parse_serverless_workgroup(data, size, &host, &port, &err) == 0)
        px_free(host);
    return 0;
}
