/*
 * Allocation wrappers with test-only failure injection. Not thread-safe by design: the failure
 * counter is only armed by single-threaded unit tests.
 */
#include "px_alloc.h"
#include "px_util.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

static long fail_after = -1;

static int should_fail(void)
{
    if (fail_after < 0)
        return 0;
    if (fail_after == 0)
        return 1;
    fail_after--;
    return 0;
}

void px_alloc_fail_after(long n)
{
    fail_after = n;
}

void *px_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *px_calloc(size_t count, size_t n)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, n ? n : 1);
}

void *px_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void px_free(void *p)
{
    free(p);
}

char *px_strndup(const char *s, size_t n)
{
    char *d = px_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *px_strdup(const char *s)
{
    return s ? px_strndup(s, strlen(s)) : NULL;
}

void px_free_secret(char *s)
{
    if (s) {
        px_wipe(s, strlen(s));
        free(s);
    }
}

int px_alloc_install(void)
{
    return uv_replace_allocator(px_malloc, px_realloc, px_calloc, px_free);
}
