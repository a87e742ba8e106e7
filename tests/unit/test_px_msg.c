/*
 * Unit tests for the PostgreSQL wire codec (proxy/px_msg.c): startup packets with PostgreSQL 15's
 * checks and messages (lengths, versions, layout, user, _pq_ options), the streaming framer under
 * every chunking of a stream, backend messages the proxy parses, and the messages it builds
 * (ErrorResponse, NegotiateProtocolVersion, rebuilt Query/Parse) read back field by field.
 */
#include "px_msg.h"
#include "px_test.h"

#include <stdlib.h>
#include <string.h>

/* Builds a startup packet from a code and NUL-separated pairs ("k\0v\0k\0v\0"), adding the
 * final terminator; returns its length. */
static size_t mk_startup(uint8_t *buf, uint32_t code, const char *pairs, size_t pairs_len)
{
    size_t len = 8 + pairs_len + 1;
    px_put_u32(buf, (uint32_t)len);
    px_put_u32(buf + 4, code);
    memcpy(buf + 8, pairs, pairs_len);
    buf[8 + pairs_len] = 0;
    return len;
}

#define PAIRS(s) (s), sizeof(s) - 1

PX_TEST(startup_len_bounds)
{
    px_msg_err_t err;
    uint32_t len;
    uint8_t h[4];
    px_put_u32(h, 7);
    ASSERT(!px_msg_fe_startup_len(h, &len, &err));
    ASSERT_STR_EQ(err.sqlstate, "08P01");
    ASSERT_STR_EQ(err.message, "invalid length of startup packet");
    px_put_u32(h, 10001);
    ASSERT(!px_msg_fe_startup_len(h, &len, &err));
    px_put_u32(h, 0xffffffffu);
    ASSERT(!px_msg_fe_startup_len(h, &len, &err));
    px_put_u32(h, 10000);
    ASSERT(px_msg_fe_startup_len(h, &len, &err));
    ASSERT_EQ(len, 10000);
    px_put_u32(h, 8);
    ASSERT(px_msg_fe_startup_len(h, &len, &err));
}

PX_TEST(startup_v3_basic)
{
    uint8_t buf[256];
    size_t n =
        mk_startup(buf, PX_PROTO_V3, PAIRS("user\0alice\0database\0dev\0application_name\0psql\0"));
    px_startup_t st;
    px_msg_err_t err;
    ASSERT(px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_EQ(st.kind, PX_STARTUP_V3);
    ASSERT_STR_EQ(st.user, "alice");
    ASSERT_STR_EQ(st.database, "dev");
    ASSERT(!st.need_negotiate);
    ASSERT_EQ(st.npq_opts, 0);
}

PX_TEST(startup_database_defaults_to_user)
{
    uint8_t buf[256];
    size_t n = mk_startup(buf, PX_PROTO_V3, PAIRS("user\0bob\0"));
    px_startup_t st;
    px_msg_err_t err;
    ASSERT(px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(st.database, "bob");
    n = mk_startup(buf, PX_PROTO_V3, PAIRS("user\0bob\0database\0\0"));
    ASSERT(px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(st.database, "bob");
}

PX_TEST(startup_missing_or_empty_user)
{
    uint8_t buf[256];
    px_startup_t st;
    px_msg_err_t err;
    size_t n = mk_startup(buf, PX_PROTO_V3, PAIRS("database\0dev\0"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.sqlstate, "28000");
    ASSERT_STR_EQ(err.message, "no PostgreSQL user name specified in startup packet");
    n = mk_startup(buf, PX_PROTO_V3, PAIRS("user\0\0"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.sqlstate, "28000");
}

PX_TEST(startup_unsupported_versions)
{
    uint8_t buf[256];
    px_startup_t st;
    px_msg_err_t err;
    size_t n = mk_startup(buf, 2u << 16, PAIRS("user\0a\0"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.sqlstate, "0A000");
    ASSERT_STR_EQ(err.message, "unsupported frontend protocol 2.0: server supports 3.0 to 3.0");
    n = mk_startup(buf, (4u << 16) | 1, PAIRS("user\0a\0"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.message, "unsupported frontend protocol 4.1: server supports 3.0 to 3.0");
    /* A garbage code, e.g. a TLS ClientHello's bytes read as a version. */
    n = mk_startup(buf, 0x16030100u, PAIRS("user\0a\0"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.sqlstate, "0A000");
}

PX_TEST(startup_minor_and_pq_options_negotiate)
{
    uint8_t buf[256];
    px_startup_t st;
    px_msg_err_t err;
    size_t n = mk_startup(buf, PX_PROTO_V3 | 2, PAIRS("user\0a\0"));
    ASSERT(px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT(st.need_negotiate);
    ASSERT_EQ(st.npq_opts, 0);
    n = mk_startup(buf, PX_PROTO_V3,
                   PAIRS("user\0a\0_pq_.compression\0lz4\0options\0-c x=1\0_pq_.other\0y\0"));
    ASSERT(px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT(st.need_negotiate);
    ASSERT_EQ(st.npq_opts, 2);
    ASSERT_STR_EQ(st.pq_opts[0], "_pq_.compression");
    ASSERT_STR_EQ(st.pq_opts[1], "_pq_.other");
}

PX_TEST(startup_layout_errors)
{
    uint8_t buf[256];
    px_startup_t st;
    px_msg_err_t err;
    /* No terminator: the last value's NUL is the last byte. */
    const char pairs[] = "user\0a";
    size_t n = 8 + sizeof(pairs);
    px_put_u32(buf, (uint32_t)n);
    px_put_u32(buf + 4, PX_PROTO_V3);
    memcpy(buf + 8, pairs, sizeof(pairs));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.sqlstate, "08P01");
    ASSERT_STR_EQ(err.message, "invalid startup packet layout: expected terminator as last byte");
    /* A key without a value. */
    n = mk_startup(buf, PX_PROTO_V3, PAIRS("user\0a\0lonely"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    ASSERT_STR_EQ(err.sqlstate, "08P01");
    /* Bytes after the terminator. */
    n = mk_startup(buf, PX_PROTO_V3, PAIRS("user\0a\0\0junk"));
    ASSERT(!px_msg_fe_parse_startup(buf, n, &st, &err));
    /* The length word disagrees with the buffer. */
    n = mk_startup(buf, PX_PROTO_V3, PAIRS("user\0a\0"));
    ASSERT(!px_msg_fe_parse_startup(buf, n - 1, &st, &err));
    /* Only the protocol code: no terminator at all. */
    px_put_u32(buf, 8);
    px_put_u32(buf + 4, PX_PROTO_V3);
    ASSERT(!px_msg_fe_parse_startup(buf, 8, &st, &err));
}

PX_TEST(startup_special_codes)
{
    uint8_t buf[16];
    px_startup_t st;
    px_msg_err_t err;
    px_put_u32(buf, 8);
    px_put_u32(buf + 4, PX_SSL_CODE);
    ASSERT(px_msg_fe_parse_startup(buf, 8, &st, &err));
    ASSERT_EQ(st.kind, PX_STARTUP_SSL);
    px_put_u32(buf + 4, PX_GSSENC_CODE);
    ASSERT(px_msg_fe_parse_startup(buf, 8, &st, &err));
    ASSERT_EQ(st.kind, PX_STARTUP_GSSENC);
    px_put_u32(buf, 16);
    px_put_u32(buf + 4, PX_CANCEL_CODE);
    px_put_u32(buf + 8, 1234);
    px_put_u32(buf + 12, 0xdeadbeef);
    ASSERT(px_msg_fe_parse_startup(buf, 16, &st, &err));
    ASSERT_EQ(st.kind, PX_STARTUP_CANCEL);
    ASSERT_EQ(st.cancel_pid, 1234);
    ASSERT_EQ(st.cancel_key, 0xdeadbeef);
    /* Wrong lengths for the fixed-size requests. */
    px_put_u32(buf, 12);
    ASSERT(!px_msg_fe_parse_startup(buf, 12, &st, &err));
    ASSERT_STR_EQ(err.message, "invalid length of startup packet");
    px_put_u32(buf, 16);
    px_put_u32(buf + 4, PX_SSL_CODE);
    ASSERT(!px_msg_fe_parse_startup(buf, 16, &st, &err));
}

PX_TEST(startup_max_size)
{
    uint8_t *buf = malloc(PX_STARTUP_MAX + 16);
    ASSERT(buf);
    /* user=a, then one big option filling the packet to exactly 10,000 bytes. */
    size_t len = PX_STARTUP_MAX;
    px_put_u32(buf, (uint32_t)len);
    px_put_u32(buf + 4, PX_PROTO_V3);
    size_t off = 8;
    memcpy(buf + off, "user\0a\0options\0", 15);
    off += 15;
    size_t vlen = len - off - 2;
    memset(buf + off, 'x', vlen);
    off += vlen;
    buf[off++] = 0;
    buf[off++] = 0;
    ASSERT_EQ(off, len);
    px_startup_t st;
    px_msg_err_t err;
    bool ok = px_msg_fe_parse_startup(buf, len, &st, &err);
    free(buf);
    ASSERT(ok);
}

PX_TEST(startup_build_forwards_all_but_user_database_pq)
{
    uint8_t buf[256];
    size_t n = mk_startup(buf, PX_PROTO_V3 | 1,
                          PAIRS("user\0alice\0database\0dev\0_pq_.x\0y\0application_name\0app\0"
                                "client_encoding\0UTF8\0options\0-c search_path=a\0"));
    px_startup_t st;
    px_msg_err_t err;
    ASSERT(px_msg_fe_parse_startup(buf, n, &st, &err));
    px_dbuf_t b;
    px_dbuf_init(&b, PX_DBUF_NOLIMIT);
    px_msg_fe_build_startup(&b, "IAM:alice", "prod", buf, n);
    ASSERT(!b.failed);
    static const char want_pairs[] = "user\0IAM:alice\0database\0prod\0application_name\0app\0"
                                     "client_encoding\0UTF8\0options\0-c search_path=a\0";
    uint8_t want[256];
    size_t wn = mk_startup(want, PX_PROTO_V3, want_pairs, sizeof(want_pairs) - 1);
    ASSERT_EQ(b.len, wn);
    ASSERT_MEM_EQ(b.data, want, wn);
    /* And it parses back without anything to negotiate. */
    px_startup_t st2;
    ASSERT(px_msg_fe_parse_startup(b.data, b.len, &st2, &err));
    ASSERT(!st2.need_negotiate);
    ASSERT_STR_EQ(st2.user, "IAM:alice");
    px_dbuf_free(&b);
}

PX_TEST(fixed_requests)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 1024);
    px_msg_fe_build_sslrequest(&b);
    static const uint8_t ssl[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    ASSERT_EQ(b.len, 8);
    ASSERT_MEM_EQ(b.data, ssl, 8);
    px_dbuf_reset(&b);
    px_msg_fe_build_cancel(&b, 7, 0x01020304);
    static const uint8_t cancel[16] = {0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 7, 1, 2, 3, 4};
    ASSERT_EQ(b.len, 16);
    ASSERT_MEM_EQ(b.data, cancel, 16);
    px_dbuf_reset(&b);
    px_msg_fe_build_terminate(&b);
    ASSERT_MEM_EQ(b.data, "X\0\0\0\4", 5);
    px_dbuf_free(&b);
}

PX_TEST(frontend_limits)
{
    ASSERT_EQ(px_msg_fe_limit('Q'), PX_MSG_LARGE_LIMIT);
    ASSERT_EQ(px_msg_fe_limit('d'), PX_MSG_LARGE_LIMIT);
    ASSERT_EQ(px_msg_fe_limit('S'), PX_MSG_SMALL_LIMIT);
    ASSERT_EQ(px_msg_fe_limit('X'), PX_MSG_SMALL_LIMIT);
    ASSERT_EQ(px_msg_fe_limit('p'), 0); /* only during authentication */
    ASSERT_EQ(px_msg_fe_limit('Z'), 0);
    ASSERT_EQ(px_msg_fe_limit(0), 0);
}

/* ------------------------------------------------------------------------------------------ */

/* Frames `stream` delivered in chunks of the given sizes (cycled); records each header and the
 * total body bytes. Returns false on BAD. */
static bool frame_chunked(const uint8_t *stream, size_t n, const size_t *chunks, size_t nchunks,
                          char *types, uint32_t *lens, size_t *nmsgs, size_t *body_total)
{
    px_framer_t f;
    px_framer_init(&f, 1u << 20);
    /* Bytes are fed through a window like a read buffer: unconsumed bytes stay. */
    size_t have_end = 0, pos = 0, ci = 0;
    *nmsgs = 0;
    *body_total = 0;
    while (pos < n) {
        if (have_end < n) {
            size_t c = chunks[ci++ % nchunks];
            have_end = have_end + c > n ? n : have_end + c;
        }
        for (;;) {
            px_frame_t fr;
            px_framer_step(&f, stream + pos, have_end - pos, &fr);
            if (fr.ev == PX_FRAME_BAD)
                return false;
            if (fr.ev == PX_FRAME_NEED)
                break;
            if (fr.ev == PX_FRAME_HEADER) {
                types[*nmsgs] = (char)fr.type;
                lens[*nmsgs] = fr.len;
                (*nmsgs)++;
            } else {
                *body_total += fr.n;
            }
            pos += fr.n;
        }
        if (have_end == n && pos < n)
            return false; /* truncated stream */
    }
    return px_framer_at_boundary(&f);
}

PX_TEST(framer_every_chunking)
{
    /* Three messages: an empty one, a small one and a 300-byte one. */
    uint8_t s[400];
    size_t n = 0;
    s[n++] = 'H';
    px_put_u32(s + n, 4);
    n += 4;
    s[n++] = 'Q';
    px_put_u32(s + n, 4 + 9);
    n += 4;
    memcpy(s + n, "select 1", 9);
    n += 9;
    s[n++] = 'd';
    px_put_u32(s + n, 4 + 300);
    n += 4;
    memset(s + n, 'z', 300);
    n += 300;
    for (size_t c1 = 1; c1 <= 12; c1++) {
        for (size_t c2 = 1; c2 <= 12; c2++) {
            size_t chunks[2] = {c1, c2};
            char types[8];
            uint32_t lens[8];
            size_t nm, body;
            ASSERT(frame_chunked(s, n, chunks, 2, types, lens, &nm, &body));
            ASSERT_EQ(nm, 3);
            ASSERT_EQ(types[0], 'H');
            ASSERT_EQ(lens[0], 4);
            ASSERT_EQ(types[1], 'Q');
            ASSERT_EQ(lens[1], 13);
            ASSERT_EQ(types[2], 'd');
            ASSERT_EQ(lens[2], 304);
            ASSERT_EQ(body, 9 + 300);
        }
    }
}

PX_TEST(framer_bad_lengths)
{
    px_framer_t f;
    px_framer_init(&f, 1000);
    uint8_t m[5] = {'Q', 0, 0, 0, 3};
    px_frame_t fr;
    px_framer_step(&f, m, 5, &fr);
    ASSERT_EQ(fr.ev, PX_FRAME_BAD);
    ASSERT_EQ(fr.len, 3);
    px_put_u32(m + 1, 1001);
    px_framer_step(&f, m, 5, &fr);
    ASSERT_EQ(fr.ev, PX_FRAME_BAD);
    px_put_u32(m + 1, 0x80000000u);
    px_framer_step(&f, m, 5, &fr);
    ASSERT_EQ(fr.ev, PX_FRAME_BAD);
    px_put_u32(m + 1, 1000);
    px_framer_step(&f, m, 5, &fr);
    ASSERT_EQ(fr.ev, PX_FRAME_HEADER);
    ASSERT(!px_framer_at_boundary(&f));
    /* Fewer than 5 bytes: need more, nothing consumed. */
    px_framer_init(&f, 1000);
    px_framer_step(&f, m, 4, &fr);
    ASSERT_EQ(fr.ev, PX_FRAME_NEED);
    ASSERT_EQ(fr.n, 0);
}

/* ------------------------------------------------------------------------------------------ */

PX_TEST(error_build_and_parse)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    px_msg_be_build_error(&b, "FATAL", "53300", "sorry, too many clients already", "d", "h");
    ASSERT(!b.failed);
    ASSERT_EQ(b.data[0], 'E');
    ASSERT_EQ(px_get_u32(b.data + 1), b.len - 1);
    px_be_error_t e;
    ASSERT(px_msg_be_parse_error(b.data + 5, b.len - 5, &e));
    ASSERT_STR_EQ(e.severity, "FATAL");
    ASSERT_STR_EQ(e.sqlstate, "53300");
    ASSERT_STR_EQ(e.message, "sorry, too many clients already");
    ASSERT_STR_EQ(e.detail, "d");
    ASSERT_STR_EQ(e.hint, "h");
    px_dbuf_free(&b);
}

PX_TEST(error_parse_rejects_malformed)
{
    px_be_error_t e;
    static const uint8_t no_term[] = "SERROR\0CXX000\0Mmsg"; /* last string unterminated */
    ASSERT(!px_msg_be_parse_error(no_term, sizeof(no_term) - 1, &e));
    static const uint8_t no_end[] = "SERROR\0C42601\0Mm\0"; /* no final zero byte */
    ASSERT(!px_msg_be_parse_error(no_end, sizeof(no_end) - 1, &e));
    static const uint8_t trailing[] = "Mm\0\0x";
    ASSERT(!px_msg_be_parse_error(trailing, sizeof(trailing) - 1, &e));
    static const uint8_t empty[] = "";
    ASSERT(px_msg_be_parse_error(empty, 1, &e)); /* just the terminator */
    ASSERT(!e.message);
    /* Only 'S' (older servers): severity falls back to it. */
    static const uint8_t old[] = "SERROR\0Mm\0";
    ASSERT(px_msg_be_parse_error(old, sizeof(old), &e));
    ASSERT_STR_EQ(e.severity, "ERROR");
}

PX_TEST(error_rebuild_replaces_code_and_message)
{
    static const uint8_t src[] = "SERROR\0VERROR\0C42601\0Msyntax error at or near "
                                 "\"RSPROXY_REFUSED_1_1\"\0P1\0Fscan.l\0L1188\0Rscanner_yyerror\0";
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    px_msg_be_rebuild_error(&b, src, sizeof(src), "42501", "COPY refused: role not allowed");
    ASSERT(!b.failed);
    px_be_error_t e;
    ASSERT(px_msg_be_parse_error(b.data + 5, b.len - 5, &e));
    ASSERT_STR_EQ(e.severity, "ERROR");
    ASSERT_STR_EQ(e.sqlstate, "42501");
    ASSERT_STR_EQ(e.message, "COPY refused: role not allowed");
    /* The position of the sentinel is dropped; other fields stay. */
    ASSERT(!memmem(b.data, b.len, "P1", 3));
    ASSERT(memmem(b.data, b.len, "Fscan.l", 8));
    px_dbuf_free(&b);
}

PX_TEST(negotiate_build_and_parse)
{
    const char *opts[] = {"_pq_.a", "_pq_.bb"};
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    px_msg_be_build_negotiate(&b, 0, opts, 2);
    ASSERT_EQ(b.data[0], 'v');
    /* PostgreSQL sends PG_PROTOCOL_LATEST (3.0 = 196608), then the count, then the names. */
    ASSERT_EQ(px_get_u32(b.data + 5), 196608);
    uint32_t minor, nopts;
    ASSERT(px_msg_be_parse_negotiate(b.data + 5, b.len - 5, &minor, &nopts));
    ASSERT_EQ(nopts, 2);
    ASSERT(memmem(b.data, b.len, "_pq_.bb", 8));
    /* A count larger than the names present is malformed. */
    px_put_u32(b.data + 9, 3);
    ASSERT(!px_msg_be_parse_negotiate(b.data + 5, b.len - 5, &minor, &nopts));
    px_dbuf_free(&b);
}

PX_TEST(backend_small_messages)
{
    uint32_t code, pid, key;
    const uint8_t *pl;
    size_t plen;
    static const uint8_t md5[] = {0, 0, 0, 5, 1, 2, 3, 4};
    ASSERT(px_msg_be_parse_auth(md5, sizeof(md5), &code, &pl, &plen));
    ASSERT_EQ(code, 5);
    ASSERT_EQ(plen, 4);
    ASSERT(!px_msg_be_parse_auth(md5, 3, &code, &pl, &plen));
    static const uint8_t kd[] = {0, 0, 0, 42, 0xde, 0xad, 0xbe, 0xef};
    ASSERT(px_msg_be_parse_keydata(kd, 8, &pid, &key));
    ASSERT_EQ(pid, 42);
    ASSERT_EQ(key, 0xdeadbeef);
    ASSERT(!px_msg_be_parse_keydata(kd, 7, &pid, &key));
    uint8_t st;
    ASSERT(px_msg_be_parse_rfq((const uint8_t *)"T", 1, &st));
    ASSERT_EQ(st, 'T');
    ASSERT(!px_msg_be_parse_rfq((const uint8_t *)"X", 1, &st));
    ASSERT(!px_msg_be_parse_rfq((const uint8_t *)"II", 2, &st));
    const char *name, *val;
    static const uint8_t ps[] = "server_version\0008.0.2\0";
    ASSERT(px_msg_be_parse_param(ps, sizeof(ps) - 1, &name, &val));
    ASSERT_STR_EQ(name, "server_version");
    ASSERT_STR_EQ(val, "8.0.2");
    ASSERT(!px_msg_be_parse_param(ps, sizeof(ps) - 2, &name, &val));
    px_dbuf_t b;
    px_dbuf_init(&b, 64);
    px_msg_be_build_keydata(&b, 9, 10);
    ASSERT_MEM_EQ(b.data, "K\0\0\0\x0c\0\0\0\x09\0\0\0\x0a", 13);
    px_dbuf_reset(&b);
    px_msg_be_build_auth(&b, 0, NULL, 0);
    ASSERT_MEM_EQ(b.data, "R\0\0\0\x08\0\0\0\0", 9);
    px_dbuf_free(&b);
}

PX_TEST(locate_and_rebuild_sql)
{
    /* Parse: name "s1", query, two parameter types. */
    static const uint8_t parse[] = "s1\0copy t from 'x'\0\0\x02\0\0\0\x17\0\0\0\x19";
    size_t n = sizeof(parse) - 1;
    const char *sql;
    size_t sl, tl;
    const uint8_t *tail;
    ASSERT(px_msg_fe_locate_sql('P', parse, n, true, &sql, &sl, &tail, &tl));
    ASSERT_EQ(sl, strlen("copy t from 'x'"));
    ASSERT(memcmp(sql, "copy t from 'x'", sl) == 0);
    ASSERT_EQ(tl, 10);
    px_dbuf_t b;
    px_dbuf_init(&b, 4096);
    px_msg_fe_build_sql(&b, 'P', (const char *)parse, "NEW", 3, tail, tl);
    ASSERT_EQ(b.data[0], 'P');
    ASSERT_EQ(px_get_u32(b.data + 1), b.len - 1);
    static const uint8_t want[] = "s1\0NEW\0\0\x02\0\0\0\x17\0\0\0\x19";
    ASSERT_EQ(b.len - 5, sizeof(want) - 1);
    ASSERT_MEM_EQ(b.data + 5, want, sizeof(want) - 1);
    /* A prefix of a Parse: the name is there, the query is cut. */
    ASSERT(px_msg_fe_locate_sql('P', parse, 8, false, &sql, &sl, &tail, &tl));
    ASSERT_EQ(sl, 5);
    /* The name is not complete in the prefix. */
    ASSERT(!px_msg_fe_locate_sql('P', parse, 2, false, &sql, &sl, &tail, &tl));
    /* Query: trailing bytes after the NUL are malformed. */
    static const uint8_t q[] = "select 1\0x";
    ASSERT(!px_msg_fe_locate_sql('Q', q, sizeof(q) - 1, true, &sql, &sl, &tail, &tl));
    ASSERT(px_msg_fe_locate_sql('Q', q, 9, true, &sql, &sl, &tail, &tl));
    ASSERT_EQ(sl, 8);
    /* Query without its NUL: malformed when complete, a prefix otherwise. */
    ASSERT(!px_msg_fe_locate_sql('Q', q, 8, true, &sql, &sl, &tail, &tl));
    ASSERT(px_msg_fe_locate_sql('Q', q, 8, false, &sql, &sl, &tail, &tl));
    px_dbuf_reset(&b);
    px_msg_fe_build_sql(&b, 'Q', NULL, "select 2", 8, NULL, 0);
    ASSERT_MEM_EQ(b.data, "Q\0\0\0\x0dselect 2\0", 14);
    px_dbuf_free(&b);
}
