/*
 * libFuzzer target for config/: arbitrary bytes as INI text through cfg_load, with an empty
 * environment. Beyond "no crash, no leak", it checks the loader's contract: a failed load returns
 * no snapshot and says why; a successful one says nothing, and its dump parses back into an
 * equal configuration (the dump is what operators copy into new files).
 */
#include "cfg.h"
#include "px_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *const no_env[] = {NULL};

static char *dump(const cfg_t *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort();
    cfg_dump(c, f);
    fclose(f);
    return buf;
}

static void check_round_trip(const cfg_t *c)
{
    /* With password_file set the dump carries both password (as ***) and the file, which a
     * load rightly refuses; every other configuration must come back unchanged. */
    if (c->upstream.password_file[0])
        return;
    char *text = dump(c);
    char err[4096];
    cfg_t *again = NULL;
    cfg_load_opts_t o = {.path = "dump.ini", .text = text, .envp = no_env};
    if (cfg_load(&o, &again, err, sizeof(err)) != 0) {
        fprintf(stderr, "dump does not load:\n%s\n--\n%s", text, err);
        abort();
    }
    char *text2 = dump(again);
    char changes[256];
    if (strcmp(text, text2) != 0 || cfg_nonreloadable_changes(c, again, changes, sizeof(changes))) {
        fprintf(stderr, "dump changed on reload:\n%s\n--\n%s", text, text2);
        abort();
    }
    free(text);
    free(text2);
    cfg_unref(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (2u << 20))
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    char err[8192];
    cfg_t *c = NULL;
    cfg_load_opts_t o = {.path = "fuzz.ini", .text = text, .envp = no_env};
    int rc = cfg_load(&o, &c, err, sizeof(err));
    if (rc == 0) {
        if (!c || err[0] != '\0')
            abort();
        check_round_trip(c);
        cfg_unref(c);
    } else {
        bool known = rc == CFG_E_PARSE || rc == CFG_E_UNKNOWN || rc == CFG_E_VALUE ||
                     rc == CFG_E_IO || rc == UV_ENOMEM;
        if (c || err[0] == '\0' || !known || !strchr(err, '\n'))
            abort();
    }
    free(text);
    return 0;
}
