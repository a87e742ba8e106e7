/*
 * Small utilities shared by every module: container_of, attributes, array size, time, hex and
 * secret wiping. Nothing here allocates, does I/O or knows about policy.
 */
#ifndef PX_UTIL_H
#define PX_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Fallible functions carry this so that ignoring their result is a compile error under -Werror. */
#define PX_MUSTCHECK __attribute__((warn_unused_result))
#define PX_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define PX_UNUSED(x) ((void)(x))

#define PX_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PX_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PX_MAX(a, b) ((a) > (b) ? (a) : (b))

/* The enclosing object of an embedded member (libuv handles are embedded, never first-member
 * cast). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t px_now_unix_ms(void);
/* Monotonic milliseconds (CLOCK_MONOTONIC), for deadlines and intervals. */
uint64_t px_now_mono_ms(void);

/* Lower-case hex of n bytes into out, which must hold 2*n+1 bytes; returns out. */
char *px_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes 2*n hex digits (either case) into n bytes; false on a bad digit. */
bool px_hex_decode(const char *in, size_t hexlen, uint8_t *out);

/* Wipes a secret so the compiler cannot drop the store (passwords, keys, tokens). */
void px_wipe(void *p, size_t n);
/* Constant-time comparison of two equal-length byte strings. */
bool px_ct_equal(const void *a, const void *b, size_t n);

/* Big-endian integer access for wire formats. */
static inline uint32_t px_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t px_get_u16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}
static inline void px_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void px_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* ASCII-only case folding; SQL keywords and HTTP header names are ASCII by definition. */
static inline char px_ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}
bool px_ascii_ieq(const char *a, size_t alen, const char *b);

#endif
