/*
 * Fuzz target: client startup packets (px_msg_fe_parse_startup) as read from a socket, then the
 * upstream startup packet built from an accepted one, which must itself parse. The input is the
 * packet; a second pass forces the length word to the input size to reach the key/value walk.
 */
#include "px_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *p, size_t n)
{
    px_startup_t st;
    px_msg_err_t err;
    if (n >= 4) {
        uint32_t len;
        (void)!px_msg_fe_startup_len(p, &len, &err);
    }
    if (!px_msg_fe_parse_startup(p, n, &st, &err)) {
        if (!err.sqlstate || strlen(err.sqlstate) != 5)
            abort();
        return;
    }
    if (st.kind != PX_STARTUP_V3)
        return;
    if (!st.user || !st.user[0] || !st.database)
        abort();
    px_startup_iter_t it;
    const char *k, *v;
    size_t pairs = 0;
    px_msg_startup_iter_init(&it, p, n);
    while (px_msg_startup_iter_next(&it, &k, &v)) {
        if ((const uint8_t *)k < p || (const uint8_t *)v >= p + n)
            abort();
        pairs++;
    }
    px_dbuf_t b;
    px_dbuf_init(&b, PX_DBUF_NOLIMIT);
    px_msg_fe_build_startup(&b, st.user, st.database, p, n);
    px_startup_t st2;
    if (b.failed || !px_msg_fe_parse_startup(b.data, b.len, &st2, &err) || st2.need_negotiate ||
        strcmp(st2.user, st.user) != 0)
        abort();
    px_dbuf_free(&b);
    (void)pairs;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size >= 8 && size <= PX_STARTUP_MAX) {
        uint8_t *copy = malloc(size);
        if (!copy)
            return 0;
        memcpy(copy, data, size);
        px_put_u32(copy, (uint32_t)size);
        one(copy, size);
        free(copy);
    }
    return 0;
}
