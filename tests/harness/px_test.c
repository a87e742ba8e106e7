/*
 * Runner for px_test.h: registry, failure reporting through longjmp, run-by-name, and loop
 * teardown that turns a leaked libuv handle into a failed case.
 */
#include "px_test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <uv.h>

#define MAX_TESTS 1024

static struct {
    const char *name;
    px_test_fn fn;
} tests[MAX_TESTS];
static size_t ntests;
static jmp_buf fail_jmp;
static char data_path[4096];

void px_test_register(const char *name, px_test_fn fn)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void px__test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    longjmp(fail_jmp, 1);
}

void px__test_hexdump(const char *label, const void *p, size_t n)
{
    const unsigned char *b = p;
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%s%02x", i % 32 ? " " : "\n    ", b[i]);
    fputc('\n', stderr);
}

const char *px_test_data(const char *rel)
{
#ifdef PX_TEST_DATA_DIR
    snprintf(data_path, sizeof(data_path), "%s/%s", PX_TEST_DATA_DIR, rel);
#else
    snprintf(data_path, sizeof(data_path), "tests/data/%s", rel);
#endif
    return data_path;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void px_test_loop_close(uv_loop_t *loop)
{
    uv_walk(loop, close_walk_cb, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(loop);
    if (rc != 0)
        PX_FAIL("uv_loop_close: %s (a handle leaked)", uv_strerror(rc));
}

static bool selected(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return true;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

/* Runs one case; kept separate so no local of the loop lives across setjmp. */
static bool run_one(size_t i)
{
    if (setjmp(fail_jmp) != 0)
        return false;
    tests[i].fn();
    return true;
}

int px_test_main(int argc, char **argv)
{
    size_t run = 0, failed = 0;
    for (size_t i = 0; i < ntests; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        run++;
        bool ok = run_one(i);
        if (!ok)
            failed++;
        printf("%s %zu - %s\n", ok ? "ok" : "not ok", run, tests[i].name);
        fflush(stdout);
    }
    if (run == 0) {
        fprintf(stderr, "no test matched\n");
        return 2;
    }
    printf("# %zu run, %zu failed\n", run, failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    return px_test_main(argc, argv);
}
