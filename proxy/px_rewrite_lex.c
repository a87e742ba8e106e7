/*
 * The SQL lexer behind the COPY/UNLOAD rewriter (px_rewrite_int.h), and the two cheap tests the
 * proxy runs on every Query and Parse before deciding to lex at all: px_rewrite_lead() (the first
 * keyword, on possibly partial input) and px_rewrite_maybe() / px_rewrite_scan_*() (are the
 * letters "copy" or "unload" anywhere).
 *
 * The lexer only finds token boundaries; it does not know SQL grammar. It must agree with
 * Redshift's own lexer on where every string, identifier and comment ends, because a
 * disagreement would let a client hide an authorization clause from the policy checks (or make
 * the proxy insert text inside a literal). Redshift lexes as PostgreSQL 8.0 did; the rules are in
 * px_rewrite_int.h. Nothing here allocates, recurses or reads outside [s, s+n).
 */
#include "px_rewrite.h"
#include "px_rewrite_int.h"

#include <string.h>

static inline bool is_space(unsigned char c)
{
    /* PostgreSQL's {space}: [ \t\n\r\f]. */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/*
 * Between tokens, vertical tab counts as space too. PostgreSQL (and so Redshift) rejects the
 * whole text on a \v, so treating it as space can only make the rewriter see more statements
 * than the server would run, never fewer: a COPY after a \v is still checked.
 */
static inline bool is_gap(unsigned char c)
{
    return is_space(c) || c == '\v';
}

static inline bool is_newline(unsigned char c)
{
    return c == '\n' || c == '\r';
}

static inline bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Identifiers may contain '$' after the first character; dollar-quote tags may not. */
static inline bool is_ident_cont(unsigned char c)
{
    return is_ident_start(c) || is_digit(c) || c == '$';
}

static inline bool is_dolq_cont(unsigned char c)
{
    return is_ident_start(c) || is_digit(c);
}

/* Position of the end of a -- comment starting at pos (the newline, or n). */
static size_t line_end(const char *s, size_t n, size_t pos)
{
    while (pos < n && !is_newline((unsigned char)s[pos]))
        pos++;
    return pos;
}

/*
 * Skips a nested slash-star comment whose "/ *" is at pos. Returns the position after it, or n
 * with *open set when the text ends inside it. Counting depth (not recursing) keeps the cost
 * linear and the stack flat whatever a client sends.
 */
static size_t skip_block_comment(const char *s, size_t n, size_t pos, bool *open)
{
    size_t depth = 1;
    pos += 2;
    while (pos < n) {
        if (s[pos] == '/' && pos + 1 < n && s[pos + 1] == '*') {
            depth++;
            pos += 2;
        } else if (s[pos] == '*' && pos + 1 < n && s[pos + 1] == '/') {
            pos += 2;
            if (--depth == 0)
                return pos;
        } else {
            pos++;
        }
    }
    *open = true;
    return n;
}

void px_lex_init(px_lex_t *lx, const char *s, size_t n)
{
    memset(lx, 0, sizeof(*lx));
    lx->s = s;
    lx->n = n;
}

size_t px_lex_skip_space(px_lex_t *lx, size_t pos)
{
    const char *s = lx->s;
    size_t n = lx->n;
    lx->open_comment = false;
    while (pos < n) {
        unsigned char c = (unsigned char)s[pos];
        if (is_gap(c))
            pos++;
        else if (c == '-' && pos + 1 < n && s[pos + 1] == '-')
            pos = line_end(s, n, pos + 2);
        else if (c == '/' && pos + 1 < n && s[pos + 1] == '*')
            pos = skip_block_comment(s, n, pos, &lx->open_comment);
        else
            break;
    }
    return pos;
}

/*
 * After a closing quote at q-1: if whitespace containing a newline (and -- comments, as
 * PostgreSQL's {whitespace_with_newline} allows) leads to another quote, returns that quote's
 * position; otherwise 0. Such literals are one constant to the server ('a'<newline>'b' is 'ab'),
 * so the rewriter must treat them as one token and never insert text between the segments.
 */
static size_t continuation(const char *s, size_t n, size_t q)
{
    size_t k = q;
    while (k < n) {
        char c = s[k];
        if (c == ' ' || c == '\t' || c == '\f')
            k++;
        else if (c == '-' && k + 1 < n && s[k + 1] == '-')
            k = line_end(s, n, k + 2);
        else
            break;
    }
    if (k >= n || !is_newline((unsigned char)s[k]))
        return 0;
    k++;
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        if (is_space(c)) {
            k++;
        } else if (c == '-' && k + 1 < n && s[k + 1] == '-') {
            k = line_end(s, n, k + 2);
            if (k >= n)
                return 0; /* {special_whitespace} wants the comment's newline */
            k++;
        } else {
            break;
        }
    }
    return (k < n && s[k] == '\'') ? k : 0;
}

/* Bit strings (B'', X'') have neither escapes nor '' doubling, as in PostgreSQL's <xb>/<xh>. */
static inline bool is_bit_prefix(unsigned char prefix)
{
    return prefix == 'b' || prefix == 'x';
}

/*
 * One quoted segment whose opening quote is at q: returns the position of its closing quote, or
 * n when unterminated. With escapes a backslash takes the next byte whatever it is; with
 * doubling (every literal but bit strings) '' is a quote.
 */
static size_t segment_close(const char *s, size_t n, size_t q, bool escapes, bool doubling,
                            bool *backslash, bool *quote_escape)
{
    size_t i = q + 1;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && escapes) {
            *backslash = true;
            if (i + 1 < n && s[i + 1] == '\'')
                *quote_escape = true;
            i += 2;
            continue;
        }
        if (c == '\'') {
            if (doubling && i + 1 < n && s[i + 1] == '\'') {
                i += 2;
                continue;
            }
            return i;
        }
        i++;
    }
    return n;
}

static void lex_string(px_lex_t *lx, px_tok_t *t, size_t q, unsigned char prefix)
{
    const char *s = lx->s;
    size_t n = lx->n;
    bool escapes = lx->std_strings ? prefix == 'e' : !is_bit_prefix(prefix);
    bool doubling = !is_bit_prefix(prefix);
    bool quote_escape = false;
    t->kind = PX_TOK_STRING;
    t->prefix = prefix;
    t->escapes = escapes;
    for (;;) {
        size_t close = segment_close(s, n, q, escapes, doubling, &t->has_backslash, &quote_escape);
        /* E'...' reads the same under both rules; only plain literals can be ambiguous. */
        if (quote_escape && prefix != 'e')
            lx->saw_quote_escape = true;
        if (close >= n) {
            t->unterminated = true;
            t->end = n;
            return;
        }
        size_t next = continuation(s, n, close + 1);
        if (!next) {
            t->end = close + 1;
            return;
        }
        t->continued = true;
        q = next;
    }
}

px_tok_kind_t px_lex_next(px_lex_t *lx, px_tok_t *t)
{
    const char *s = lx->s;
    size_t n = lx->n;
    size_t pos = px_lex_skip_space(lx, lx->pos);
    memset(t, 0, sizeof(*t));
    t->start = pos;
    if (pos >= n) {
        t->kind = PX_TOK_EOF;
        t->start = t->end = n;
        lx->pos = n;
        return t->kind;
    }
    unsigned char c = (unsigned char)s[pos];
    if (c == ';') {
        t->kind = PX_TOK_SEMI;
        t->end = pos + 1;
    } else if (c == '\'') {
        lex_string(lx, t, pos, 0);
    } else if (c == '"') {
        size_t i = pos + 1;
        for (;;) {
            const char *q = memchr(s + i, '"', n - i);
            if (!q) {
                t->unterminated = true;
                i = n;
                break;
            }
            i = (size_t)(q - s) + 1;
            if (i < n && s[i] == '"') {
                i++; /* "" is a quote inside the identifier */
                continue;
            }
            break;
        }
        t->kind = PX_TOK_QIDENT;
        t->end = i;
    } else if (c == '$') {
        size_t j = pos + 1;
        if (j < n && is_digit((unsigned char)s[j])) {
            while (j < n && is_digit((unsigned char)s[j]))
                j++;
            t->kind = PX_TOK_PARAM;
            t->end = j;
        } else {
            if (j < n && is_ident_start((unsigned char)s[j]))
                while (j < n && is_dolq_cont((unsigned char)s[j]))
                    j++;
            if (j < n && s[j] == '$') {
                /* $tag$ ... $tag$: the body ends at the first exact repeat of the delimiter,
                 * which is where PostgreSQL's <xdolq> state ends it too. */
                size_t dl = j + 1 - pos;
                const char *end = memmem(s + j + 1, n - j - 1, s + pos, dl);
                t->kind = PX_TOK_DOLLAR;
                t->delim_len = dl;
                if (end) {
                    t->end = (size_t)(end - s) + dl;
                } else {
                    t->end = n;
                    t->unterminated = true;
                }
            } else {
                /* "$abc" without a closing '$': PostgreSQL returns the '$' alone. */
                t->kind = PX_TOK_OTHER;
                t->end = pos + 1;
            }
        }
    } else if (is_ident_start(c)) {
        size_t j = pos + 1;
        while (j < n && is_ident_cont((unsigned char)s[j]))
            j++;
        unsigned char lc = (unsigned char)px_ascii_lower((char)c);
        if (j == pos + 1 && j < n && s[j] == '\'' &&
            (lc == 'e' || lc == 'n' || lc == 'b' || lc == 'x')) {
            lex_string(lx, t, j, lc);
        } else {
            t->kind = PX_TOK_WORD;
            t->end = j;
        }
    } else if (is_digit(c)) {
        size_t j = pos + 1;
        while (j < n && is_digit((unsigned char)s[j]))
            j++;
        t->kind = PX_TOK_NUMBER;
        t->end = j;
    } else {
        t->kind = PX_TOK_OTHER;
        t->end = pos + 1;
    }
    lx->pos = t->end;
    return t->kind;
}

bool px_lex_word_char(unsigned char c)
{
    return is_ident_cont(c);
}

bool px_lex_quote_fuses(const char *s, size_t n, size_t pos)
{
    return (pos < n && s[pos] == '\'') || continuation(s, n, pos) != 0;
}

bool px_tok_is(const char *s, const px_tok_t *t, const char *word)
{
    return t->kind == PX_TOK_WORD && px_ascii_ieq(s + t->start, t->end - t->start, word);
}

bool px_tok_is_text(const px_tok_t *t)
{
    if (t->unterminated)
        return false;
    if (t->kind == PX_TOK_DOLLAR)
        return true;
    return t->kind == PX_TOK_STRING && !is_bit_prefix(t->prefix);
}

void px_tok_raw_content(const px_tok_t *t, const char *s, size_t *start, size_t *end)
{
    if (t->kind == PX_TOK_DOLLAR) {
        *start = t->start + t->delim_len;
        *end = t->unterminated ? t->end : t->end - t->delim_len;
        return;
    }
    size_t q = t->start + (t->prefix ? 1 : 0);
    bool bs = false, qe = false;
    *start = q + 1;
    *end = segment_close(s, t->end, q, t->escapes, !is_bit_prefix(t->prefix), &bs, &qe);
}

size_t px_tok_text_value(const char *s, const px_tok_t *t, char *buf, size_t cap)
{
    size_t o = 0;
    if (!px_tok_is_text(t) || cap == 0)
        return (size_t)-1;
    if (t->kind == PX_TOK_DOLLAR) {
        size_t a, b;
        px_tok_raw_content(t, s, &a, &b);
        if (b - a >= cap)
            return (size_t)-1;
        memcpy(buf, s + a, b - a);
        buf[b - a] = '\0';
        return b - a;
    }
    size_t q = t->start + (t->prefix ? 1 : 0);
    size_t n = t->end;
    for (;;) {
        size_t i = q + 1;
        for (;;) {
            char c = s[i];
            if (c == '\'') {
                if (i + 1 < n && s[i + 1] == '\'') {
                    c = '\'';
                    i += 2;
                } else {
                    break; /* the segment's closing quote */
                }
            } else if (c == '\\' && t->escapes) {
                /* PostgreSQL 8.0's escapes; any other escaped byte stands for itself. */
                char e = s[i + 1];
                i += 2;
                switch (e) {
                case 'b':
                    c = '\b';
                    break;
                case 'f':
                    c = '\f';
                    break;
                case 'n':
                    c = '\n';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case 't':
                    c = '\t';
                    break;
                default:
                    if (e >= '0' && e <= '7') {
                        unsigned v = (unsigned)(e - '0');
                        for (int k = 0; k < 2 && s[i] >= '0' && s[i] <= '7'; k++)
                            v = v * 8 + (unsigned)(s[i++] - '0');
                        c = (char)(v & 0xff);
                    } else {
                        c = e;
                    }
                    break;
                }
            } else {
                i++;
            }
            if (o + 1 >= cap)
                return (size_t)-1;
            buf[o++] = c;
        }
        size_t next = continuation(s, n, i + 1);
        if (!next || next >= n)
            break;
        q = next;
    }
    buf[o] = '\0';
    return o;
}

/* -------------------------------------------------------------------------------------------
 * The hot-path tests. They run on every Query and Parse when rewriting is configured, so they
 * look at as few bytes as possible and never build tokens.
 */

/* Whether [s, s+n) is a case-insensitive prefix of `word` (lower case). */
static bool is_prefix_of(const char *s, size_t n, const char *word)
{
    size_t wl = strlen(word);
    if (n > wl)
        return false;
    for (size_t i = 0; i < n; i++)
        if (px_ascii_lower(s[i]) != word[i])
            return false;
    return true;
}

px_rewrite_lead_kind_t px_rewrite_lead(const char *sql, size_t n, bool complete)
{
    /* Without the rest of the text, anything still open could turn out either way. */
    const px_rewrite_lead_kind_t undecided = complete ? PX_LEAD_OTHER : PX_LEAD_MORE;
    size_t pos = 0;
    for (;;) {
        while (pos < n && is_gap((unsigned char)sql[pos]))
            pos++;
        if (pos >= n)
            return undecided;
        unsigned char c = (unsigned char)sql[pos];
        if (c == ';') {
            pos++; /* empty statements before the first real one */
            continue;
        }
        if (c == '-' || c == '/') {
            if (pos + 1 >= n)
                return undecided; /* could be the start of a comment */
            if (c == '-' && sql[pos + 1] == '-') {
                pos = line_end(sql, n, pos + 2);
                if (pos >= n)
                    return undecided;
                continue;
            }
            if (c == '/' && sql[pos + 1] == '*') {
                bool open = false;
                pos = skip_block_comment(sql, n, pos, &open);
                if (open)
                    return undecided;
                continue;
            }
            return PX_LEAD_OTHER;
        }
        if (!is_ident_start(c))
            return PX_LEAD_OTHER;
        size_t j = pos + 1;
        while (j < n && is_ident_cont((unsigned char)sql[j]))
            j++;
        const char *w = sql + pos;
        size_t wl = j - pos;
        if (j >= n && !complete)
            return (is_prefix_of(w, wl, "copy") || is_prefix_of(w, wl, "unload")) ? PX_LEAD_MORE
                                                                                  : PX_LEAD_OTHER;
        return (px_ascii_ieq(w, wl, "copy") || px_ascii_ieq(w, wl, "unload")) ? PX_LEAD_COPY_UNLOAD
                                                                              : PX_LEAD_OTHER;
    }
}

static inline bool lower_eq(const char *p, const char *word, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != word[i])
            return false;
    return true;
}

/*
 * Both words contain an 'o' ("cOpy", "unlOad"), so the scan looks for 'o'/'O' eight bytes at a
 * time (SWAR: OR-ing 0x20 folds 'O' onto 'o' and no other byte onto it) and checks the words
 * around each hit. Typical SQL has few o's, so this is several times faster than a byte loop.
 */
bool px_rewrite_maybe(const char *sql, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const uint64_t lows = 0x2020202020202020ull, os = 0x6f6f6f6f6f6f6f6full;
    size_t i = 0;
    for (;;) {
        size_t hit = n;
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, sql + i, 8);
            uint64_t x = (w | lows) ^ os; /* zero bytes where the input is 'o' or 'O' */
            if (((x - ones) & ~x & highs) != 0)
                break;
            i += 8;
        }
        for (; i < n; i++) {
            if ((sql[i] | 0x20) == 'o') {
                hit = i;
                break;
            }
        }
        if (hit >= n)
            return false;
        if (hit >= 1 && n - hit >= 3 && lower_eq(sql + hit - 1, "copy", 4))
            return true;
        if (hit >= 3 && n - hit >= 3 && lower_eq(sql + hit - 3, "unload", 6))
            return true;
        i = hit + 1;
    }
}

void px_rewrite_scan_init(px_rewrite_scan_t *sc)
{
    memset(sc, 0, sizeof(*sc));
}

bool px_rewrite_scan_feed(px_rewrite_scan_t *sc, const char *p, size_t n)
{
    if (sc->hit)
        return true;
    /* A word split across two pieces: check the kept tail joined with the new piece's start. */
    char join[2 * sizeof(sc->tail)];
    size_t head = PX_MIN(n, sizeof(sc->tail));
    memcpy(join, sc->tail, sc->ntail);
    memcpy(join + sc->ntail, p, head);
    if (px_rewrite_maybe(join, sc->ntail + head) || px_rewrite_maybe(p, n)) {
        sc->hit = true;
        return true;
    }
    /* Keep the last (at most 5) bytes of everything seen: one less than "unload". */
    if (n >= sizeof(sc->tail)) {
        memcpy(sc->tail, p + n - sizeof(sc->tail), sizeof(sc->tail));
        sc->ntail = sizeof(sc->tail);
    } else {
        size_t keep = PX_MIN(sc->ntail, sizeof(sc->tail) - n);
        memmove(sc->tail, sc->tail + sc->ntail - keep, keep);
        memcpy(sc->tail + keep, p, n);
        sc->ntail = (unsigned char)(keep + n);
    }
    return false;
}
