/*
 * Parser for ~/.aws/config and ~/.aws/credentials (see auth_awsini.h for the rules it follows).
 * One pass over the text builds flat arrays of sections and keys; lookups are linear, which is
 * fine for files of a few dozen profiles and keeps the structure trivially freeable. No I/O: the
 * caller reads the file (off the event loop) and hands us the bytes.
 */
#include "auth_awsini.h"

#include "px_alloc.h"
#include "px_err.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

typedef struct ini_key {
    char *name;  /* lower-cased */
    char *value; /* continuation lines joined with '\n'; wiped on free */
    size_t section;
    int indent; /* indentation of the key line; deeper lines continue the value */
} ini_key_t;

struct auth_ini {
    char **sections;
    size_t nsections, capsections;
    ini_key_t *keys;
    size_t nkeys, capkeys;
};

void auth_ini_free(auth_ini_t *ini)
{
    if (!ini)
        return;
    for (size_t i = 0; i < ini->nkeys; i++) {
        px_free(ini->keys[i].name);
        px_free_secret(ini->keys[i].value);
    }
    for (size_t i = 0; i < ini->nsections; i++)
        px_free(ini->sections[i]);
    px_free(ini->keys);
    px_free(ini->sections);
    px_free(ini);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

/* Trims [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

static ssize_t find_section(const auth_ini_t *ini, const char *name, size_t n)
{
    for (size_t i = 0; i < ini->nsections; i++) {
        if (strlen(ini->sections[i]) == n && memcmp(ini->sections[i], name, n) == 0)
            return (ssize_t)i;
    }
    return -1;
}

static ini_key_t *find_key(const auth_ini_t *ini, size_t section, const char *name, size_t n)
{
    for (size_t i = 0; i < ini->nkeys; i++) {
        ini_key_t *k = &ini->keys[i];
        if (k->section == section && strlen(k->name) == n && memcmp(k->name, name, n) == 0)
            return k;
    }
    return NULL;
}

/* Appends "\n" + line to the key's value. The old buffer is wiped: values may be secrets. */
static int append_line(ini_key_t *k, const char *s, size_t n)
{
    size_t old = strlen(k->value);
    char *v = px_malloc(old + 1 + n + 1);
    if (!v)
        return UV_ENOMEM;
    memcpy(v, k->value, old);
    v[old] = '\n';
    memcpy(v + old + 1, s, n);
    v[old + 1 + n] = '\0';
    px_free_secret(k->value);
    k->value = v;
    return 0;
}

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        rc = (code);                                                                               \
        goto fail;                                                                                 \
    } while (0)

int auth_ini_parse(const char *text, size_t n, auth_ini_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen)
        err[0] = '\0';
    int rc = 0;
    auth_ini_t *ini = px_calloc(1, sizeof(*ini));
    if (!ini)
        return UV_ENOMEM;
    if (n > AUTH_INI_MAX_INPUT)
        FAIL(AUTH_E_PARSE, "file is larger than %u bytes", AUTH_INI_MAX_INPUT);

    ssize_t cursect = -1;
    ini_key_t *curkey = NULL; /* the option a deeper-indented line continues */
    size_t lineno = 0;
    size_t pos = 0;
    /* A UTF-8 byte order mark is skipped, as Python's utf-8-sig would. */
    if (n >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    while (pos < n) {
        lineno++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - line) : n - pos;
        pos += len + (nl ? 1 : 0);
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (memchr(line, '\0', len))
            FAIL(AUTH_E_PARSE, "line %zu: NUL byte", lineno);

        int indent = 0;
        while ((size_t)indent < len && is_space(line[indent]))
            indent++;
        const char *v = line;
        size_t vn = len;
        trim(&v, &vn);
        if (vn == 0 || v[0] == '#' || v[0] == ';')
            continue; /* blank lines and full-line comments never end a value in our use */

        if (curkey && indent > curkey->indent) {
            if ((rc = append_line(curkey, v, vn)) != 0)
                FAIL(rc, "out of memory");
            continue;
        }
        if (v[0] == '[') {
            /* RawConfigParser's SECTCRE "\[(?P<header>.+)\]": up to the last ']' on the line. */
            const char *close = NULL;
            for (size_t i = vn; i > 1; i--) {
                if (v[i - 1] == ']') {
                    close = v + i - 1;
                    break;
                }
            }
            if (!close || close == v + 1)
                FAIL(AUTH_E_PARSE, "line %zu: malformed section header", lineno);
            const char *name = v + 1;
            size_t nn = (size_t)(close - name);
            trim(&name, &nn);
            if (nn == 0)
                FAIL(AUTH_E_PARSE, "line %zu: empty section name", lineno);
            if (find_section(ini, name, nn) >= 0)
                FAIL(AUTH_E_PARSE, "line %zu: section [%.*s] appears twice", lineno,
                     (int)PX_MIN(nn, 64), name);
            if (ini->nsections >= AUTH_INI_MAX_SECTIONS)
                FAIL(AUTH_E_PARSE, "line %zu: too many sections", lineno);
            if (ini->nsections == ini->capsections) {
                size_t cap = ini->capsections ? ini->capsections * 2 : 8;
                char **ns = px_realloc(ini->sections, cap * sizeof(*ns));
                if (!ns)
                    FAIL(UV_ENOMEM, "out of memory");
                ini->sections = ns;
                ini->capsections = cap;
            }
            char *copy = px_strndup(name, nn);
            if (!copy)
                FAIL(UV_ENOMEM, "out of memory");
            ini->sections[ini->nsections] = copy;
            cursect = (ssize_t)ini->nsections++;
            curkey = NULL;
            continue;
        }
        if (cursect < 0)
            FAIL(AUTH_E_PARSE, "line %zu: key outside any [section]", lineno);
        /* OPTCRE: the first '=' or ':' separates the name from the value. */
        size_t sep = 0;
        while (sep < vn && v[sep] != '=' && v[sep] != ':')
            sep++;
        if (sep == vn)
            FAIL(AUTH_E_PARSE, "line %zu: expected \"key = value\"", lineno);
        const char *kn = v;
        size_t knn = sep;
        trim(&kn, &knn);
        if (knn == 0)
            FAIL(AUTH_E_PARSE, "line %zu: empty key name", lineno);
        const char *val = v + sep + 1;
        size_t valn = vn - sep - 1;
        trim(&val, &valn);
        char lower[256];
        if (knn >= sizeof(lower))
            FAIL(AUTH_E_PARSE, "line %zu: key name too long", lineno);
        for (size_t i = 0; i < knn; i++)
            lower[i] = px_ascii_lower(kn[i]);
        if (find_key(ini, (size_t)cursect, lower, knn))
            FAIL(AUTH_E_PARSE, "line %zu: key %.*s appears twice in [%s]", lineno, (int)knn, lower,
                 ini->sections[cursect]);
        if (ini->nkeys >= AUTH_INI_MAX_KEYS)
            FAIL(AUTH_E_PARSE, "line %zu: too many keys", lineno);
        if (ini->nkeys == ini->capkeys) {
            size_t cap = ini->capkeys ? ini->capkeys * 2 : 16;
            ini_key_t *nk = px_realloc(ini->keys, cap * sizeof(*nk));
            if (!nk)
                FAIL(UV_ENOMEM, "out of memory");
            ini->keys = nk;
            ini->capkeys = cap;
        }
        ini_key_t *k = &ini->keys[ini->nkeys];
        k->name = px_strndup(lower, knn);
        k->value = px_strndup(val, valn);
        k->section = (size_t)cursect;
        k->indent = indent;
        if (!k->name || !k->value) {
            px_free(k->name);
            px_free(k->value);
            FAIL(UV_ENOMEM, "out of memory");
        }
        ini->nkeys++;
        curkey = k;
    }
    *out = ini;
    return 0;
fail:
    auth_ini_free(ini);
    return rc;
}

bool auth_ini_has_section(const auth_ini_t *ini, const char *section)
{
    return ini && find_section(ini, section, strlen(section)) >= 0;
}

const char *auth_ini_get(const auth_ini_t *ini, const char *section, const char *key)
{
    if (!ini)
        return NULL;
    ssize_t s = find_section(ini, section, strlen(section));
    if (s < 0)
        return NULL;
    ini_key_t *k = find_key(ini, (size_t)s, key, strlen(key));
    return k ? k->value : NULL;
}

bool auth_ini_get_nested(const auth_ini_t *ini, const char *section, const char *key,
                         const char *subkey, char *out, size_t cap)
{
    const char *v = auth_ini_get(ini, section, key);
    if (!v || v[0] != '\n' || cap == 0)
        return false;
    size_t sklen = strlen(subkey);
    const char *p = v + 1;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq) {
            const char *k = p;
            size_t kn = (size_t)(eq - p);
            trim(&k, &kn);
            if (kn == sklen && memcmp(k, subkey, kn) == 0) {
                const char *val = eq + 1;
                size_t vn = len - (size_t)(eq + 1 - p);
                trim(&val, &vn);
                if (vn >= cap)
                    return false;
                memcpy(out, val, vn);
                out[vn] = '\0';
                return true;
            }
        }
        p += len + (e ? 1 : 0);
    }
    return false;
}

const char *auth_ini_section_name(const auth_ini_t *ini, size_t i)
{
    return ini && i < ini->nsections ? ini->sections[i] : NULL;
}
