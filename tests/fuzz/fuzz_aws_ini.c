/*
 * Fuzz target for the ~/.aws file parser and the settings resolution built on it. The input is
 * split on the first two "\n--\n" separators into environment lines (NAME=VALUE), the config
 * file and the credentials file; both files are parsed, every rule of auth_awscfg_resolve runs
 * over them, and the resulting plan's credential_process command goes through the shell-style
 * splitter. Nothing here touches the filesystem, the network or the clock.
 */
#include "auth_awscfg.h"
#include "auth_awsini.h"
#include "px_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *split(const char *p, const char *end, size_t *len)
{
    const char *sep = memmem(p, (size_t)(end - p), "\n--\n", 4);
    *len = sep ? (size_t)(sep - p) : (size_t)(end - p);
    return sep ? sep + 4 : end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    const char *p = (const char *)data, *end = p + size;
    size_t elen, clen, klen;
    const char *cfg = split(p, end, &elen);
    const char *creds = split(cfg, end, &clen);
    klen = (size_t)(end - creds);

    /* Environment: up to 32 lines with '=' and no NUL. */
    char *envbuf = malloc(elen + 1);
    memcpy(envbuf, p, elen);
    envbuf[elen] = '\0';
    char *envp[33];
    int n = 0;
    for (char *line = strtok(envbuf, "\n"); line && n < 32; line = strtok(NULL, "\n"))
        if (strchr(line, '='))
            envp[n++] = line;
    envp[n] = NULL;

    char err[160];
    auth_ini_t *config = NULL, *credentials = NULL;
    /* A file that does not parse is used as "absent", as a load error would stop the plan. */
    if (auth_ini_parse(cfg, clen, &config, err, sizeof(err)) != 0 && config)
        __builtin_trap(); /* failure must leave nothing behind */
    if (auth_ini_parse(creds, klen, &credentials, err, sizeof(err)) != 0 && credentials)
        __builtin_trap();

    auth_awscfg_input_t in = {
        .envp = envp,
        .config = config,
        .credentials = credentials,
        .config_path = "config",
        .credentials_path = "credentials",
        .region_override = n > 0 && envp[0][0] == 'R' ? "us-east-1" : NULL,
    };
    auth_awscfg_t out;
    if (auth_awscfg_resolve(&in, &out) == 0) {
        for (auth_src_t *s = out.src; s; s = s->source) {
            if (s->command) {
                char *argv[65];
                if (auth_shell_split(s->command, argv, 64) > 0)
                    auth_shell_free(argv);
            }
            if (s->url)
                (void)auth_container_url_allowed(s->url);
        }
        auth_awscfg_free(&out);
    }
    auth_ini_free(config);
    auth_ini_free(credentials);
    free(envbuf);
    return 0;
}
