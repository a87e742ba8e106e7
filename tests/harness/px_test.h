/*
 * A small unit-test harness (after libuv's task.h and tinytest): PX_TEST(name) registers a case,
 * the ASSERT_* macros print both sides and abandon the case, and px_test_main() runs all cases or
 * the ones named on the command line, so `ctest -R unit.x` and `./test_x case` both work.
 * Event-loop tests create their own uv_loop_t and end with px_test_loop_close(), which fails the
 * case if a handle leaked.
 */
#ifndef PX_TEST_H
#define PX_TEST_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef void (*px_test_fn)(void);

void px_test_register(const char *name, px_test_fn fn);
void px__test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
void px__test_hexdump(const char *label, const void *p, size_t n);

#define PX_TEST(name)                                                                              \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void)                                      \
    {                                                                                              \
        px_test_register(#name, test_##name);                                                      \
    }                                                                                              \
    static void test_##name(void)

#define PX_FAIL(...) px__test_fail(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            PX_FAIL("assertion failed: %s", #cond);                                                \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b)                                                                              \
            PX_FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b);                                     \
    } while (0)

#define ASSERT_NE(a, b)                                                                            \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a == _b)                                                                              \
            PX_FAIL("%s != %s: both %lld", #a, #b, _a);                                            \
    } while (0)

#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        long long _r = (long long)(expr);                                                          \
        if (_r != 0)                                                                               \
            PX_FAIL("%s returned %lld", #expr, _r);                                                \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                                     \
            PX_FAIL("%s == %s:\n  got:      \"%s\"\n  expected: \"%s\"", #a, #b,                   \
                    _a ? _a : "(null)", _b ? _b : "(null)");                                       \
    } while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
    do {                                                                                           \
        const void *_a = (a), *_b = (b);                                                           \
        size_t _n = (n);                                                                           \
        if (memcmp(_a, _b, _n) != 0) {                                                             \
            px__test_hexdump("got", _a, _n);                                                       \
            px__test_hexdump("expected", _b, _n);                                                  \
            PX_FAIL("%s == %s (%zu bytes) differ", #a, #b, _n);                                    \
        }                                                                                          \
    } while (0)

/* Path of a file under tests/data (set by CMake as PX_TEST_DATA_DIR). */
const char *px_test_data(const char *rel);

struct uv_loop_s;
/* Closes every handle, runs the loop until they are gone, and fails if uv_loop_close fails. */
void px_test_loop_close(struct uv_loop_s *loop);

int px_test_main(int argc, char **argv);

#endif
