/*
 * The one allocator every module uses (libuv's uv__malloc design). Tests can make the Nth
 * allocation fail to exercise out-of-memory paths; px_alloc_install() hands the same functions
 * to libuv so one switch covers both.
 */
#ifndef PX_ALLOC_H
#define PX_ALLOC_H

#include <stddef.h>

void *px_malloc(size_t n);
void *px_calloc(size_t count, size_t n);
void *px_realloc(void *p, size_t n);
void px_free(void *p);
char *px_strdup(const char *s);
char *px_strndup(const char *s, size_t n);
/* Frees a NUL-terminated secret after wiping it. */
void px_free_secret(char *s);

/* Tests only: fail every allocation after `n` more succeed; n < 0 restores normal behaviour. */
void px_alloc_fail_after(long n);
/* Routes libuv's allocations through px_* (call once at startup, before any loop exists). */
int px_alloc_install(void);

#endif
