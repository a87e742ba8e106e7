/*
 * Fuzz target: the backend messages the proxy parses (authentication requests, BackendKeyData,
 * ReadyForQuery, ParameterStatus, NegotiateProtocolVersion, ErrorResponse) and what it builds
 * from them (a rebuilt ErrorResponse, which must parse back), plus locating the SQL in Query and
 * Parse bodies and rebuilding them. The first byte picks the message; the rest is its body.
 */
#include "px_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *b = data + 1;
    size_t n = size - 1;
    uint32_t u1, u2;
    const uint8_t *pl;
    size_t plen;
    const char *s1, *s2;
    uint8_t st;
    switch (sel % 8) {
    case 0:
        if (px_msg_be_parse_auth(b, n, &u1, &pl, &plen) && (pl != b + 4 || plen != n - 4))
            abort();
        break;
    case 1:
        (void)!px_msg_be_parse_keydata(b, n, &u1, &u2);
        (void)!px_msg_be_parse_rfq(b, n, &st);
        break;
    case 2:
        if (px_msg_be_parse_param(b, n, &s1, &s2) && strlen(s1) + strlen(s2) + 2 != n)
            abort();
        break;
    case 3:
        (void)!px_msg_be_parse_negotiate(b, n, &u1, &u2);
        break;
    case 4:
    case 5: {
        px_be_error_t e;
        bool ok = px_msg_be_parse_error(b, n, &e);
        px_dbuf_t out;
        px_dbuf_init(&out, PX_DBUF_NOLIMIT);
        px_msg_be_rebuild_error(&out, b, n, "42501", "refused");
        px_be_error_t e2;
        if (out.failed || !px_msg_be_parse_error(out.data + 5, out.len - 5, &e2) ||
            strcmp(e2.sqlstate, "42501") != 0 || strcmp(e2.message, "refused") != 0)
            abort();
        if (ok && e.message && strlen(e.message) >= n)
            abort();
        px_dbuf_free(&out);
        break;
    }
    default: {
        uint8_t type = (sel & 1) ? 'P' : 'Q';
        bool complete = (sel & 2) != 0;
        const char *sql;
        size_t sl, tl;
        const uint8_t *tail;
        if (!px_msg_fe_locate_sql(type, b, n, complete, &sql, &sl, &tail, &tl))
            break;
        if ((const uint8_t *)sql < b || (const uint8_t *)sql + sl > b + n)
            abort();
        if (tail && (tail < b || tail + tl > b + n))
            abort();
        px_dbuf_t out;
        px_dbuf_init(&out, PX_DBUF_NOLIMIT);
        px_msg_fe_build_sql(&out, type, type == 'P' ? (const char *)b : NULL, sql, sl, tail, tl);
        if (out.failed || px_get_u32(out.data + 1) != out.len - 1)
            abort();
        if (complete && tail && memcmp(out.data + 5, b, n) != 0)
            abort(); /* rebuilding with the same SQL gives the same body */
        px_dbuf_free(&out);
        break;
    }
    }
    return 0;
}
