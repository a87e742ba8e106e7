/*
 * Snapshot lifetime and read-only views of a snapshot: the arena every cfg_t lives in, reference
 * counting, origins, the reload comparison and the INI dump. A snapshot is immutable once
 * cfg_load has returned it, so these functions may run on any thread that holds a reference.
 * Nothing here parses text or reads files.
 */
#include "cfg_int.h"

#include "px_alloc.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct cfg_chunk {
    cfg_chunk_t *next;
    size_t size; /* bytes in data */
    size_t used;
    max_align_t data[]; /* max_align_t keeps every allocation suitably aligned */
};

#define CHUNK_MIN   4096
#define ALIGN_UP(n) (((n) + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1))

void *cfg_arena_alloc(cfg_arena_t *a, size_t n)
{
    if (n > SIZE_MAX / 4)
        return NULL;
    n = ALIGN_UP(n ? n : 1);
    cfg_chunk_t *h = a->head;
    if (h && h->size - h->used >= n) {
        void *p = (unsigned char *)h->data + h->used;
        h->used += n;
        return p;
    }
    size_t size = PX_MAX(n, (size_t)CHUNK_MIN);
    cfg_chunk_t *c = px_calloc(1, sizeof(*c) + size);
    if (!c)
        return NULL;
    c->size = size;
    c->used = n;
    /* A large allocation gets a chunk of its own behind the head, so the head keeps serving the
     * small strings that make up most of a snapshot. */
    if (h && n > CHUNK_MIN / 4) {
        c->next = h->next;
        h->next = c;
    } else {
        c->next = h;
        a->head = c;
    }
    return c->data;
}

char *cfg_arena_strndup(cfg_arena_t *a, const char *s, size_t n)
{
    char *d = cfg_arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *cfg_arena_printf(cfg_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *d = cfg_arena_alloc(a, (size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void cfg_arena_free(cfg_arena_t *a)
{
    cfg_chunk_t *c = a->head;
    while (c) {
        cfg_chunk_t *next = c->next;
        /* Wipe everything, not just the secret fields: an overridden password (file, then
         * environment) also lives here, and no longer has a field pointing at it. */
        px_wipe(c->data, c->size);
        px_free(c);
        c = next;
    }
    a->head = NULL;
}

cfg_t *cfg_ref(cfg_t *c)
{
    if (c)
        __atomic_add_fetch(&c->_refs, 1, __ATOMIC_RELAXED);
    return c;
}

void cfg_unref(cfg_t *c)
{
    if (!c)
        return;
    /* Acquire-release so that the freeing thread sees every other holder's reads as done. */
    int left = __atomic_sub_fetch(&c->_refs, 1, __ATOMIC_ACQ_REL);
    assert(left >= 0);
    if (left != 0)
        return;
    cfg_snap_t *s = cfg_snap_of(c);
    cfg_arena_free(&s->arena);
    px_wipe(s, sizeof(*s));
    px_free(s);
}

const char *cfg_origin(const cfg_t *c, const char *section, const char *key)
{
    if (!c || !section || !key)
        return NULL;
    const cfg_key_t *k = cfg_key_find(section, key);
    if (!k || !c->_origins)
        return NULL;
    const char *w = c->_origins[cfg_key_index(k)].where;
    return w ? w : "default";
}

/* Whether key k holds the same value in both snapshots. */
static bool same_value(const cfg_t *a, const cfg_t *b, const cfg_key_t *k)
{
    const void *pa = cfg_key_field(a, k), *pb = cfg_key_field(b, k);
    switch (k->type) {
    case CFG_STR:
    case CFG_SECRET:
        return strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
    case CFG_INT:
    case CFG_ENUM:
        return *(const int *)pa == *(const int *)pb;
    case CFG_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    case CFG_LIST: {
        const cfg_strlist_t *la = pa, *lb = pb;
        if (la->n != lb->n)
            return false;
        for (size_t i = 0; i < la->n; i++)
            if (strcmp(la->items[i], lb->items[i]) != 0)
                return false;
        return true;
    }
    }
    assert(!"unknown key type");
    return false;
}

bool cfg_nonreloadable_changes(const cfg_t *old, const cfg_t *nw, char *buf, size_t buflen)
{
    size_t n, o = 0;
    bool any = false, cut = false;
    const cfg_key_t *keys = cfg_keys(&n);
    if (buflen)
        buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (keys[i].reloadable || same_value(old, nw, &keys[i]))
            continue;
        if (buflen && !cut) {
            int w = snprintf(buf + o, buflen - o, "%s%s.%s", any ? ", " : "", keys[i].section,
                             keys[i].name);
            if (w < 0 || (size_t)w >= buflen - o) {
                cut = true;
                /* Leave a visible marker that the list is incomplete. */
                if (buflen >= 4)
                    memcpy(buf + buflen - 4, "...", 4);
            } else {
                o += (size_t)w;
            }
        }
        any = true;
    }
    return any;
}

static bool value_empty(const cfg_t *c, const cfg_key_t *k)
{
    const void *p = cfg_key_field(c, k);
    if (k->type == CFG_STR || k->type == CFG_SECRET)
        return **(char *const *)p == '\0';
    if (k->type == CFG_LIST)
        return ((const cfg_strlist_t *)p)->n == 0;
    return false;
}

/* Writes one value the way the INI parser reads it back. */
static void dump_value(const cfg_t *c, const cfg_key_t *k, FILE *out)
{
    const void *p = cfg_key_field(c, k);
    switch (k->type) {
    case CFG_STR:
        fputs(*(char *const *)p, out);
        break;
    case CFG_SECRET:
        /* "***" says that a secret is set without saying anything about it; empty stays empty
         * so that a dump still shows when a password is missing. */
        if (**(char *const *)p)
            fputs("***", out);
        break;
    case CFG_INT:
        fprintf(out, "%d", *(const int *)p);
        break;
    case CFG_BOOL:
        fputs(*(const bool *)p ? "true" : "false", out);
        break;
    case CFG_ENUM:
        fputs(k->enums[*(const int *)p], out);
        break;
    case CFG_LIST: {
        const cfg_strlist_t *l = p;
        for (size_t i = 0; i < l->n; i++)
            fprintf(out, "%s%s", i ? "," : "", l->items[i]);
        break;
    }
    }
}

void cfg_dump(const cfg_t *c, FILE *out)
{
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    const char *section = NULL;
    for (size_t i = 0; i < n; i++) {
        const cfg_key_t *k = &keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            fprintf(out, "%s[%s]\n", section ? "\n" : "", k->section);
            section = k->section;
        }
        /* "key =" without a trailing blank for empty values keeps the dump diff-friendly. */
        fprintf(out, "%s =%s", k->name, value_empty(c, k) ? "" : " ");
        dump_value(c, k, out);
        fputc('\n', out);
    }
}
