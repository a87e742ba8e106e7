/*
 * Turning text into values: the INI file through Debian's libinih, then RSPROXY_<SECTION>_<KEY>
 * environment overrides, both driven by the key table. Every problem is collected (never just
 * the first) as "file:line: section.key: message" or "env NAME: message"; secret values are never
 * quoted in messages. Cross-key rules are not checked here (cfg_validate.c), and nothing here
 * opens files: cfg_load hands over the text.
 *
 * inih is used through ini_parse_stream with our own line reader, so files, tests and the fuzzer
 * share one path, and so that we, not inih's build options, decide line numbers and line limits.
 */
#include "cfg_int.h"

#include "px_alloc.h"
#include "px_err.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/*
 * Debian's libinih 55 is compiled with INI_HANDLER_LINENO=1: its ini_parse_stream loads the line
 * number into the fifth argument register before every handler call (checked by disassembling
 * libinih.so.55). Its installed ini.h nevertheless defaults the macro to 0 and pkg-config adds no
 * -D flag, so we must say it here for our handler type to match the library's calls. We do not
 * rely on that argument, though: line numbers come from our own reader (ini_read_line below),
 * which is correct whichever way the library was built.
 */
#define INI_HANDLER_LINENO 1
#include <ini.h>

extern char **environ;

/*
 * inih's knobs are process-global variables (a Debian addition). They are set once, before the
 * first parse, and never changed afterwards, so concurrent loads (a reload on a worker thread)
 * read stable values.
 *  - Heap line buffer that may grow (ini_use_stack = false, ini_allow_realloc = true) up to
 *    ini_max_line: the stock 200-character stack buffer would cut IAM role chains and long
 *    tempdir URLs, and inih would then parse the rest of the line as a line of its own. Our
 *    pre-scan refuses lines above CFG_MAX_LINE, so with this limit no line is ever split.
 *  - No multi-line values: an indented line is a key of its own, never a silent continuation
 *    that would append to the previous value.
 *  - Inline comments after whitespace (";" preceded by a blank), as in ARCHITECTURE.md's sample.
 */
static pthread_once_t ini_once = PTHREAD_ONCE_INIT;

static void ini_knobs_set(void)
{
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_initial_alloc = 1024;
    ini_max_line = CFG_MAX_LINE + 16;
    ini_allow_multiline = false;
    ini_allow_inline_comments = true;
    ini_allow_bom = true;
    ini_stop_on_first_error = false;
    ini_allow_no_value = false;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

void cfg_value_quote(const char *v, char *buf, size_t buflen)
{
    /* Values can be 64 KiB long and come from anyone who can write the file or environment:
     * show a printable prefix only. */
    enum { SHOW = 60 };
    size_t o = 0, i = 0;
    if (buflen < 8) {
        if (buflen)
            buf[0] = '\0';
        return;
    }
    buf[o++] = '\'';
    for (; v[i] && i < SHOW && o + 6 < buflen; i++) {
        unsigned char ch = (unsigned char)v[i];
        buf[o++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    if (v[i] && o + 5 < buflen) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
}

static bool wrapped_in_quotes(const char *s, size_t n)
{
    return n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0];
}

static int set_string(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen)
{
    size_t n = strlen(text);
    /* inih takes values literally; quotes around a path or host are almost always meant as
     * syntax and would silently become part of the value. Secrets stay literal. */
    if (k->type == CFG_STR && wrapped_in_quotes(text, n)) {
        snprintf(msg, msglen,
                 "value is wrapped in quotes; write it without them (values are "
                 "taken literally)");
        return CFG_E_VALUE;
    }
    char *d = cfg_arena_strndup(&cfg_snap_of(c)->arena, text, n);
    if (!d)
        return UV_ENOMEM;
    *(char **)cfg_key_field(c, k) = d;
    return 0;
}

static int set_int(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen)
{
    char q[96];
    cfg_value_quote(text, q, sizeof(q));
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9') {
        snprintf(msg, msglen, "%s is not an integer", q);
        return CFG_E_VALUE;
    }
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0') {
        snprintf(msg, msglen, "%s is not an integer", q);
        return CFG_E_VALUE;
    }
    if (errno == ERANGE || v < k->min || v > k->max) {
        snprintf(msg, msglen, "%s is out of range (%d to %d)", q, k->min, k->max);
        return CFG_E_VALUE;
    }
    *(int *)cfg_key_field(c, k) = (int)v;
    return 0;
}

static int set_bool(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    size_t n = strlen(text);
    for (size_t i = 0; i < PX_ARRAY_SIZE(yes); i++) {
        if (px_ascii_ieq(text, n, yes[i])) {
            *(bool *)cfg_key_field(c, k) = true;
            return 0;
        }
        if (px_ascii_ieq(text, n, no[i])) {
            *(bool *)cfg_key_field(c, k) = false;
            return 0;
        }
    }
    char q[96];
    cfg_value_quote(text, q, sizeof(q));
    snprintf(msg, msglen, "%s is not a boolean (true/false, yes/no, on/off, 1/0)", q);
    return CFG_E_VALUE;
}

static int set_enum(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen)
{
    size_t n = strlen(text);
    for (int i = 0; k->enums[i]; i++) {
        if (px_ascii_ieq(text, n, k->enums[i])) {
            *(int *)cfg_key_field(c, k) = i;
            return 0;
        }
    }
    char q[96], names[160];
    size_t o = 0;
    names[0] = '\0';
    for (int i = 0; k->enums[i] && o < sizeof(names); i++) {
        int w = snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "", k->enums[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    cfg_value_quote(text, q, sizeof(q));
    snprintf(msg, msglen, "%s is not one of: %s", q, names);
    return CFG_E_VALUE;
}

static int set_list(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen)
{
    cfg_arena_t *a = &cfg_snap_of(c)->arena;
    cfg_strlist_t *l = cfg_key_field(c, k);
    size_t n = 0;
    const char *s = text;
    while (*s && is_blank(*s))
        s++;
    if (*s == '\0') {
        l->items = NULL;
        l->n = 0;
        return 0;
    }
    for (const char *p = text; *p; p++)
        n += *p == ',';
    n++;
    char **items = cfg_arena_alloc(a, n * sizeof(*items));
    if (!items)
        return UV_ENOMEM;
    size_t i = 0;
    for (const char *p = text;; i++) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b == e) {
            snprintf(msg, msglen, "empty item in the comma-separated list");
            return CFG_E_VALUE;
        }
        if (wrapped_in_quotes(b, (size_t)(e - b))) {
            snprintf(msg, msglen,
                     "list item is wrapped in quotes; write it without them "
                     "(values are taken literally)");
            return CFG_E_VALUE;
        }
        items[i] = cfg_arena_strndup(a, b, (size_t)(e - b));
        if (!items[i])
            return UV_ENOMEM;
        if (!comma)
            break;
        p = comma + 1;
    }
    l->items = items;
    l->n = i + 1;
    return 0;
}

int cfg_value_set(cfg_t *c, const cfg_key_t *k, const char *text, char *msg, size_t msglen)
{
    msg[0] = '\0';
    if (*text == '\0' && (k->type == CFG_INT || k->type == CFG_BOOL || k->type == CFG_ENUM)) {
        snprintf(msg, msglen, "empty value (the default, %s, applies when the key is left out)",
                 k->def);
        return CFG_E_VALUE;
    }
    switch (k->type) {
    case CFG_STR:
    case CFG_SECRET:
        return set_string(c, k, text, msg, msglen);
    case CFG_INT:
        return set_int(c, k, text, msg, msglen);
    case CFG_BOOL:
        return set_bool(c, k, text, msg, msglen);
    case CFG_ENUM:
        return set_enum(c, k, text, msg, msglen);
    case CFG_LIST:
        return set_list(c, k, text, msg, msglen);
    }
    snprintf(msg, msglen, "internal error: unknown key type");
    return CFG_E_VALUE;
}

/* Line states from the pre-scan. */
enum {
    LINE_OK = 0,   /* handed to inih */
    LINE_BAD,      /* already reported; inih sees an empty line instead */
    LINE_SILENCED, /* in a section that was already reported as unknown or broken */
};

typedef struct parse {
    cfg_t *c;
    cfg_report_t *r;
    const char *text;
    size_t len;
    size_t pos;
    int line;             /* line of the text most recently handed to inih (1-based) */
    bool mid_line;        /* inih is reading the rest of a line it could not take at once */
    unsigned char *state; /* per line, index = line number */
    size_t nlines;
    int *set_line; /* per key: line where the file set it, 0 = not set */
} parse_t;

/*
 * Mirrors inih's ini_find_chars_or_comment() with our knobs: stops at any of `chars` or at an
 * inline comment, which is a ';' preceded by whitespace.
 */
static const char *find_chars_or_comment(const char *s, const char *e, const char *chars)
{
    bool was_space = false;
    while (s < e && !(chars && strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = is_blank(*s);
        s++;
    }
    return s;
}

static void report_line(parse_t *p, int line, int code, const char *fmt, ...) PX_PRINTF(4, 5);
static void report_line(parse_t *p, int line, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cfg_report_add(p->r, code, CFG_STAGE_FILE, line, "%s:%d: %s", p->r->name, line, msg);
}

static void report_unknown_section(parse_t *p, int line, const char *name, size_t len)
{
    size_t nsec;
    const char *const *secs = cfg_sections(&nsec);
    /* The name is arbitrary text from the file: show a bounded, printable copy. */
    char shown[72];
    size_t cp = PX_MIN(len, sizeof(shown) - 4), o = 0;
    for (size_t i = 0; i < cp; i++) {
        unsigned char ch = (unsigned char)name[i];
        shown[o++] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    if (cp < len) {
        memcpy(shown + o, "...", 3);
        o += 3;
    }
    shown[o] = '\0';
    const char *hint = cfg_suggest(name, len, secs, nsec);
    if (hint)
        report_line(p, line, CFG_E_UNKNOWN, "[%s]: unknown section (did you mean [%s]?)", shown,
                    hint);
    else
        report_line(p, line, CFG_E_UNKNOWN,
                    "[%s]: unknown section (known sections: [proxy], [upstream], [iam], [s3])",
                    shown);
}

/*
 * Checks every line's shape before inih sees it, because inih reports only the first syntax
 * error and cannot be told to refuse an over-long line. Lines found bad here are reported once
 * and replaced by empty lines for inih; lines under an unknown section are silenced so that one
 * misspelt section header gives one error, not one per key below it.
 */
static void prescan(parse_t *p)
{
    const char *s = p->text, *end_text = p->text + p->len;
    bool section_ok = true;
    for (int line = 1; s <= end_text && (size_t)line <= p->nlines; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end_text - s));
        const char *e = nl ? nl : end_text;
        const char *next = nl ? nl + 1 : end_text + 1;
        if (e > s && e[-1] == '\r')
            e--; /* CRLF line ends */
        size_t linelen = (size_t)(e - s);
        unsigned char *st = &p->state[line];
        if (linelen > CFG_MAX_LINE) {
            report_line(p, line, CFG_E_PARSE, "line is too long (%zu bytes; the limit is %d)",
                        linelen, CFG_MAX_LINE);
            *st = LINE_BAD;
            s = next;
            continue;
        }
        const char *ctl = NULL;
        for (const char *q = s; q < e && !ctl; q++)
            if (is_ctl((unsigned char)*q) && *q != '\t')
                ctl = q;
        if (ctl) {
            report_line(p, line, CFG_E_PARSE, "control character 0x%02x in line",
                        (unsigned char)*ctl);
            *st = LINE_BAD;
            s = next;
            continue;
        }
        const char *b = s;
        if (line == 1 && linelen >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0)
            b += 3; /* UTF-8 byte order mark, which inih skips too */
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        s = next;
        if (b == e || *b == ';' || *b == '#')
            continue;
        if (*b == '[') {
            const char *q = find_chars_or_comment(b + 1, e, "]");
            if (q == e || *q != ']') {
                report_line(p, line, CFG_E_PARSE, "unterminated section header (missing ']')");
                *st = LINE_BAD;
                section_ok = false;
                continue;
            }
            const char *rest = q + 1;
            while (rest < e && is_blank(*rest))
                rest++;
            if (rest < e && *rest != ';' && *rest != '#') {
                report_line(p, line, CFG_E_PARSE, "unexpected text after ']'");
                *st = LINE_BAD;
                section_ok = false;
                continue;
            }
            size_t nlen = (size_t)(q - (b + 1));
            if (nlen == 0) {
                report_line(p, line, CFG_E_PARSE, "empty section name");
                *st = LINE_BAD;
                section_ok = false;
            } else if (!cfg_section_known(b + 1, nlen)) {
                report_unknown_section(p, line, b + 1, nlen);
                *st = LINE_BAD;
                section_ok = false;
            } else {
                section_ok = true;
            }
            continue;
        }
        if (!section_ok) {
            *st = LINE_SILENCED;
            continue;
        }
        const char *q = find_chars_or_comment(b, e, "=:");
        if (q == e || (*q != '=' && *q != ':')) {
            report_line(p, line, CFG_E_PARSE,
                        "syntax error: expected 'key = value', '[section]' or a comment");
            *st = LINE_BAD;
            continue;
        }
        if (q == b) {
            report_line(p, line, CFG_E_PARSE, "missing key name before '%c'", *q);
            *st = LINE_BAD;
        }
    }
}

/*
 * inih's reader callback (fgets semantics: at most num-1 bytes, through the first '\n'; NULL at
 * the end). It hands out the text line by line and is the single source of line numbers: a call
 * that does not continue a partly read line starts a new one.
 */
static char *ini_read_line(char *str, int num, void *stream)
{
    parse_t *p = stream;
    if (p->pos >= p->len || num < 2)
        return NULL;
    if (!p->mid_line) {
        p->line++;
        if ((size_t)p->line < p->nlines + 1 && p->state[p->line] != LINE_OK) {
            const char *nl = memchr(p->text + p->pos, '\n', p->len - p->pos);
            p->pos = nl ? (size_t)(nl - p->text) + 1 : p->len;
            str[0] = '\n';
            str[1] = '\0';
            return str;
        }
    }
    const char *start = p->text + p->pos;
    const char *nl = memchr(start, '\n', p->len - p->pos);
    size_t n = nl ? (size_t)(nl - start) + 1 : p->len - p->pos;
    n = PX_MIN(n, (size_t)num - 1);
    memcpy(str, start, n);
    str[n] = '\0';
    p->pos += n;
    p->mid_line = n > 0 && str[n - 1] != '\n' && p->pos < p->len;
    return str;
}

/*
 * Finds what a misspelt key most likely meant: the same name in another section first (a key
 * put under the wrong header), then a close name in the same section, then anywhere.
 * *elsewhere tells whether the answer is in another section.
 */
static const cfg_key_t *suggest_key(const char *section, const char *name, size_t len,
                                    bool *elsewhere)
{
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    const char *cands[64];
    const cfg_key_t *owners[64];
    size_t nc = 0;
    *elsewhere = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].section, section) != 0 && px_ascii_ieq(name, len, keys[i].name)) {
            *elsewhere = true;
            return &keys[i];
        }
    for (int pass = 0; pass < 2; pass++) {
        nc = 0;
        for (size_t i = 0; i < n && nc < PX_ARRAY_SIZE(cands); i++) {
            bool same = strcmp(keys[i].section, section) == 0;
            if (same == (pass == 0)) {
                cands[nc] = keys[i].name;
                owners[nc++] = &keys[i];
            }
        }
        const char *hit = cfg_suggest(name, len, cands, nc);
        for (size_t i = 0; hit && i < nc; i++)
            if (cands[i] == hit) {
                *elsewhere = pass == 1;
                return owners[i];
            }
    }
    return NULL;
}

static void report_unknown_key(parse_t *p, int line, const char *section, const char *name)
{
    bool elsewhere;
    const cfg_key_t *k = suggest_key(section, name, strlen(name), &elsewhere);
    if (!k)
        report_line(p, line, CFG_E_UNKNOWN, "%s.%s: unknown key", section, name);
    else if (!elsewhere)
        report_line(p, line, CFG_E_UNKNOWN, "%s.%s: unknown key (did you mean %s?)", section, name,
                    k->name);
    else if (strcmp(k->name, name) == 0)
        report_line(p, line, CFG_E_UNKNOWN, "%s.%s: unknown key in [%s] (%s belongs in [%s])",
                    section, name, section, k->name, k->section);
    else
        report_line(p, line, CFG_E_UNKNOWN, "%s.%s: unknown key (did you mean [%s] %s?)", section,
                    name, k->section, k->name);
}

static bool set_origin_file(parse_t *p, const cfg_key_t *k, int line)
{
    struct cfg_origin *o = &p->c->_origins[cfg_key_index(k)];
    o->from = CFG_FROM_FILE;
    o->line = line;
    o->env = NULL;
    o->where = cfg_arena_printf(&cfg_snap_of(p->c)->arena, "%s:%d", p->r->name, line);
    return o->where != NULL;
}

/* inih's pair callback: returns non-zero for success. We always return 1 because every problem
 * is reported here with its own message; a 0 would only make inih remember the line again. */
static int ini_on_pair(void *user, const char *section, const char *name, const char *value,
                       int lineno)
{
    parse_t *p = user;
    int line = p->line; /* ours, not lineno: see INI_HANDLER_LINENO above */
    (void)lineno;
    if (section[0] == '\0') {
        bool elsewhere;
        const cfg_key_t *k = suggest_key("", name, strlen(name), &elsewhere);
        if (k && strcmp(k->name, name) == 0)
            report_line(p, line, CFG_E_UNKNOWN,
                        "%s: key outside of any section (it belongs in [%s])", name, k->section);
        else
            report_line(p, line, CFG_E_UNKNOWN,
                        "%s: key outside of any section; put it under [proxy], [upstream], "
                        "[iam] or [s3]",
                        name);
        return 1;
    }
    if (!cfg_section_known(section, strlen(section)))
        return 1; /* reported by the pre-scan, which also silenced these lines */
    const cfg_key_t *k = cfg_key_find(section, name);
    if (!k) {
        report_unknown_key(p, line, section, name);
        return 1;
    }
    size_t idx = cfg_key_index(k);
    if (p->set_line[idx]) {
        report_line(p, line, CFG_E_PARSE, "%s.%s: duplicate key (first set on line %d)", section,
                    name, p->set_line[idx]);
        goto out;
    }
    p->set_line[idx] = line;
    char msg[512];
    int rc = cfg_value_set(p->c, k, value, msg, sizeof(msg));
    if (rc == UV_ENOMEM) {
        p->r->oom = true;
    } else if (rc != 0) {
        report_line(p, line, rc, "%s.%s: %s", section, name, msg);
    } else if (!set_origin_file(p, k, line)) {
        p->r->oom = true;
    }
out:
    /* The line buffer is inih's and is freed without being cleared; wipe a secret we have
     * copied so that it does not linger in freed heap memory. The buffer is writable (it is
     * malloc'd by inih and only typed const for the handler), and inih does not look at the
     * value again after this call. */
    if (k->type == CFG_SECRET)
        px_wipe((char *)value, strlen(value));
    return 1;
}

void cfg_parse_text(cfg_t *c, cfg_report_t *r, const char *text, size_t len)
{
    size_t nkeys;
    cfg_keys(&nkeys);
    pthread_once(&ini_once, ini_knobs_set);

    parse_t p = {.c = c, .r = r, .text = text, .len = len};
    p.nlines = 1;
    for (const char *q = text; (q = memchr(q, '\n', len - (size_t)(q - text))) != NULL; q++)
        p.nlines++;
    p.state = px_calloc(p.nlines + 1, 1);
    p.set_line = px_calloc(nkeys, sizeof(*p.set_line));
    if (!p.state || !p.set_line) {
        r->oom = true;
        goto out;
    }
    prescan(&p);
    int rc = ini_parse_stream(ini_read_line, &p, ini_on_pair, &p);
    if (rc == -2) {
        r->oom = true;
    } else if (rc > 0) {
        /* inih found a syntax error in a line the pre-scan passed (lines it refused reach inih
         * as empty lines): the two disagree about the grammar. Report it rather than lose it. */
        report_line(&p, rc, CFG_E_PARSE, "syntax error");
    }
out:
    px_free(p.state);
    px_free(p.set_line);
}

/* Whether the environment variable's key part (after RSPROXY_<SECTION>_) names key k. */
static bool env_key_is(const cfg_key_t *k, const char *s, size_t n)
{
    if (strlen(k->name) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char want = k->name[i];
        if (want >= 'a' && want <= 'z')
            want = (char)(want - 32);
        if (s[i] != want)
            return false;
    }
    return true;
}

/* Applies one RSPROXY_<SECTION>_<KEY>=value entry whose section matched. */
static void env_apply(cfg_t *c, cfg_report_t *r, const char *var, size_t varlen,
                      const char *section, const char *keypart, size_t keylen, const char *value,
                      bool *seen)
{
    /* Variable names are attacker-sized only in theory; bound what messages show. */
    int shown = (int)PX_MIN(varlen, (size_t)128);
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n), *k = NULL;
    for (size_t i = 0; i < n && !k; i++)
        if (strcmp(keys[i].section, section) == 0 && env_key_is(&keys[i], keypart, keylen))
            k = &keys[i];
    if (!k) {
        bool elsewhere;
        char name[80];
        size_t cp = PX_MIN(keylen, sizeof(name) - 1);
        memcpy(name, keypart, cp);
        name[cp] = '\0';
        const cfg_key_t *hint = suggest_key(section, name, cp, &elsewhere);
        char envname[96];
        if (hint)
            cfg_key_env_name(hint, envname, sizeof(envname));
        cfg_report_add(r, CFG_E_UNKNOWN, CFG_STAGE_ENV, 0, "env %.*s: unknown key in [%s]%s%s%s",
                       shown, var, section, hint ? " (did you mean " : "", hint ? envname : "",
                       hint ? "?)" : "");
        return;
    }
    size_t idx = cfg_key_index(k);
    if (seen[idx])
        return; /* the first entry wins, as with getenv() */
    seen[idx] = true;

    for (const char *q = value; *q; q++) {
        if (is_ctl((unsigned char)*q)) {
            cfg_report_add(r, CFG_E_VALUE, CFG_STAGE_ENV, 0,
                           "env %.*s: control character 0x%02x in value", shown, var,
                           (unsigned char)*q);
            return;
        }
    }
    /* Non-secret values are trimmed as inih trims the file's; secrets are taken exactly. */
    const char *b = value, *e = value + strlen(value);
    if (k->type != CFG_SECRET) {
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
    }
    char *text = px_strndup(b, (size_t)(e - b));
    if (!text) {
        r->oom = true;
        return;
    }
    char msg[512];
    int rc = cfg_value_set(c, k, text, msg, sizeof(msg));
    if (k->type == CFG_SECRET)
        px_wipe(text, strlen(text));
    px_free(text);
    if (rc == UV_ENOMEM) {
        r->oom = true;
        return;
    }
    if (rc != 0) {
        cfg_report_add(r, rc, CFG_STAGE_ENV, 0, "env %.*s: %s", shown, var, msg);
        return;
    }
    struct cfg_origin *o = &c->_origins[idx];
    cfg_arena_t *a = &cfg_snap_of(c)->arena;
    o->from = CFG_FROM_ENV;
    o->line = 0;
    o->env = cfg_arena_strndup(a, var, varlen);
    o->where = o->env ? cfg_arena_printf(a, "env %s", o->env) : NULL;
    if (!o->where)
        r->oom = true;
}

void cfg_parse_env(cfg_t *c, cfg_report_t *r, char *const *envp)
{
    static const char prefix[] = "RSPROXY_";
    size_t nkeys, nsec;
    cfg_keys(&nkeys);
    const char *const *secs = cfg_sections(&nsec);
    if (!envp)
        envp = environ;
    bool *seen = px_calloc(nkeys, sizeof(*seen));
    if (!seen) {
        r->oom = true;
        return;
    }
    for (size_t i = 0; envp && envp[i]; i++) {
        const char *e = envp[i];
        if (strncmp(e, prefix, sizeof(prefix) - 1) != 0)
            continue;
        const char *eq = strchr(e, '=');
        if (!eq)
            continue;
        const char *rest = e + sizeof(prefix) - 1;
        for (size_t s = 0; s < nsec; s++) {
            /* RSPROXY_<SECTION>_ in upper case; anything else under RSPROXY_ is not ours to
             * judge (wrappers and scripts use that prefix for their own settings). */
            size_t sl = strlen(secs[s]);
            bool match = (size_t)(eq - rest) > sl + 1 && rest[sl] == '_';
            for (size_t j = 0; match && j < sl; j++) {
                char want = secs[s][j];
                if (want >= 'a' && want <= 'z')
                    want = (char)(want - 32);
                match = rest[j] == want;
            }
            if (!match)
                continue;
            env_apply(c, r, e, (size_t)(eq - e), secs[s], rest + sl + 1,
                      (size_t)(eq - (rest + sl + 1)), eq + 1, seen);
            break;
        }
    }
    px_free(seen);
}
