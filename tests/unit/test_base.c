/*
 * Unit tests for proxy/base: buffers, reader, hex, error strings.
 */
#include "px_alloc.h"
#include "px_buf.h"
#include "px_err.h"
#include "px_log.h"
#include "px_util.h"
#include "px_test.h"

#include <stdlib.h>
#include <uv.h>

PX_TEST(dbuf_frames)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    size_t at = px_dbuf_frame_begin(&b, 'Q');
    px_dbuf_put_str(&b, "select 1");
    px_dbuf_frame_end(&b, at);
    static const uint8_t want[] = {'Q', 0, 0, 0, 13, 's', 'e', 'l', 'e', 'c', 't', ' ', '1', 0};
    ASSERT_EQ(b.len, sizeof(want));
    ASSERT_MEM_EQ(b.data, want, sizeof(want));

    px_dbuf_reset(&b);
    at = px_dbuf_frame_begin(&b, 0);
    px_dbuf_put_u32(&b, 80877103);
    px_dbuf_frame_end(&b, at);
    static const uint8_t ssl[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    ASSERT_MEM_EQ(b.data, ssl, 8);
    px_dbuf_free(&b);
}

PX_TEST(dbuf_limit_is_sticky)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 8);
    px_dbuf_put(&b, "12345678", 8);
    ASSERT(!b.failed);
    px_dbuf_put_u8(&b, 'x');
    ASSERT(b.failed);
    px_dbuf_put_u8(&b, 'y');
    ASSERT_EQ(b.len, 8);
    ASSERT(px_dbuf_cstr(&b) == NULL);
    px_dbuf_free(&b);
}

PX_TEST(dbuf_alloc_failure)
{
    px_dbuf_t b;
    px_dbuf_init(&b, 0);
    px_alloc_fail_after(0);
    px_dbuf_printf(&b, "%d", 42);
    px_alloc_fail_after(-1);
    ASSERT(b.failed);
    px_dbuf_free(&b);
}

PX_TEST(reader_bounds)
{
    static const uint8_t in[] = {0, 0, 0, 5, 'a', 'b', 0, 'c'};
    px_rd_t r;
    px_rd_init(&r, in, sizeof(in));
    ASSERT_EQ(px_rd_u32(&r), 5);
    size_t n;
    ASSERT_STR_EQ(px_rd_str(&r, &n), "ab");
    ASSERT_EQ(n, 2);
    ASSERT(!r.err);
    ASSERT(px_rd_str(&r, &n) == NULL); /* "c" has no NUL */
    ASSERT(r.err);
    ASSERT_EQ(px_rd_u16(&r), 0);
    ASSERT_EQ(px_rd_left(&r), 0);
}

PX_TEST(hex_roundtrip)
{
    uint8_t in[] = {0x00, 0x7f, 0xab, 0xff}, out[4];
    char hex[9];
    ASSERT_STR_EQ(px_hex_encode(in, 4, hex), "007fabff");
    ASSERT(px_hex_decode("007FABff", 8, out));
    ASSERT_MEM_EQ(out, in, 4);
    ASSERT(!px_hex_decode("0g", 2, out));
    ASSERT(!px_hex_decode("abc", 3, out));
}

PX_TEST(strerror_covers_both_ranges)
{
    ASSERT_STR_EQ(px_strerror(PX_E_TLS_VERIFY), "certificate verification failed");
    ASSERT_STR_EQ(px_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
    ASSERT_STR_EQ(px_strerror(-12345), "unknown error");
}

PX_TEST(ascii_ieq)
{
    ASSERT(px_ascii_ieq("CoPy", 4, "copy"));
    ASSERT(!px_ascii_ieq("copy", 3, "copy"));
    ASSERT(px_ct_equal("abc", "abc", 3));
    ASSERT(!px_ct_equal("abc", "abd", 3));
}

PX_TEST(dbuf_secret_growth_keeps_contents)
{
    px_dbuf_t b;
    px_dbuf_init_secret(&b, 0);
    for (int i = 0; i < 1000; i++)
        px_dbuf_printf(&b, "%03d", i % 1000);
    ASSERT(!b.failed);
    ASSERT(b.secret);
    ASSERT_EQ(b.len, 3000);
    ASSERT_MEM_EQ(b.data, "000001002", 9);
    ASSERT_MEM_EQ(b.data + 2997, "999", 3);
    px_dbuf_free_secret(&b);
    ASSERT(b.data == NULL);
}

PX_TEST(log_text_escapes_control_bytes)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    ASSERT(f != NULL);
    px_log_setup(PX_LOG_INFO, PX_LOG_TEXT, f);
    px_log_ctx(PX_LOG_INFO, "C-1 evil\nuser@db", "login user=%s", "a\n2026-01-01 error FAKE\x7f");
    px_log(PX_LOG_DEBUG, "not shown");
    fclose(f);
    px_log_setup(PX_LOG_INFO, PX_LOG_TEXT, NULL);
    /* One event, one line: the only newline is the terminator. */
    ASSERT(out != NULL);
    ASSERT_EQ(strchr(out, '\n') - out, (long long)outlen - 1);
    ASSERT(strstr(out, "C-1 evil\\x0auser@db: login user=a\\x0a2026-01-01 error FAKE\\x7f") !=
           NULL);
    ASSERT(strstr(out, "not shown") == NULL);
    free(out);
}
