/*
 * Fuzz target: the ParameterStatus set a pooled upstream session keeps for its next client
 * (px__pool_note_param). The input is a series of messages, each a length byte and that many
 * bytes of body, sent as ParameterStatus in turn; afterwards the kept set must be whole
 * messages that parse, one per name, with the value of the last message for each name, within
 * PX_POOL_PARAMS_MAX, unless the set was given up (params_bad).
 */
#include "px_conn.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The value of the last message of the input that names `name` (NULL: none does). */
static const char *last_value(const uint8_t *data, size_t size, const char *name)
{
    const char *found = NULL;
    size_t off = 0;
    while (off < size) {
        size_t n = data[off++];
        if (n > size - off)
            n = size - off;
        const char *nm, *val;
        if (px_msg_be_parse_param(data + off, n, &nm, &val) && strcmp(nm, name) == 0)
            found = val;
        off += n;
    }
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    px_server_t sv;
    memset(&sv, 0, sizeof(sv));
    uint8_t key = 0;
    sv.pool_key = &key; /* poolable: not freed here */
    px_dbuf_init(&sv.params, PX_POOL_PARAMS_MAX);
    size_t off = 0;
    while (off < size) {
        size_t n = data[off++];
        if (n > size - off)
            n = size - off;
        uint8_t m[5 + 255];
        m[0] = 'S';
        px_put_u32(m + 1, (uint32_t)(4 + n));
        memcpy(m + 5, data + off, n);
        off += n;
        px__pool_note_param(&sv, m, (uint32_t)(5 + n));
    }
    if (!sv.params_bad) {
        if (sv.params.len > PX_POOL_PARAMS_MAX)
            abort();
        size_t pos = 0;
        while (pos < sv.params.len) {
            const uint8_t *e = sv.params.data + pos;
            if (sv.params.len - pos < 5 || e[0] != 'S')
                abort();
            uint32_t total = 1 + px_get_u32(e + 1);
            if (total > sv.params.len - pos)
                abort();
            const char *name, *value;
            if (!px_msg_be_parse_param(e + 5, total - 5, &name, &value))
                abort();
            const char *want = last_value(data, size, name);
            if (!want || strcmp(want, value) != 0)
                abort();
            /* No later entry has the same name. */
            size_t q = pos + total;
            while (q < sv.params.len) {
                const uint8_t *f = sv.params.data + q;
                uint32_t ft = 1 + px_get_u32(f + 1);
                const char *n2, *v2;
                if (px_msg_be_parse_param(f + 5, ft - 5, &n2, &v2) && strcmp(n2, name) == 0)
                    abort();
                q += ft;
            }
            pos += total;
        }
    }
    px_dbuf_free(&sv.params);
    return 0;
}
