/*
 * Internals of the COPY/UNLOAD rewriter shared by its sources, its unit tests, its fuzz target and
 * its benchmark (never by the rest of the proxy: the contract is px_rewrite.h): the SQL lexer.
 *
 * The lexer follows Redshift's lexical rules, which are PostgreSQL 8.0's: backslash is an escape
 * character in every '...' string (Redshift has no standard_conforming_strings and no E''
 * syntax: E'x' lexes as the word E followed by an ordinary string, which has the same bounds),
 * '' doubles a quote, B'...' and X'...' bit strings have no escapes, "..." identifiers double
 * "", -- comments run to the end of the line, slash-star comments nest, $tag$ ... $tag$ quotes
 * anything, and two string literals separated only by whitespace containing a newline are one
 * literal.
 */
#ifndef PX_REWRITE_INT_H
#define PX_REWRITE_INT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum px_tok_kind {
    PX_TOK_EOF = 0, /* end of the text (start == end == text length) */
    PX_TOK_WORD,    /* unquoted identifier or keyword: [A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]* */
    PX_TOK_QIDENT,  /* "quoted identifier" */
    PX_TOK_STRING,  /* '...' (optionally prefixed E, N, B or X; continuations included) */
    PX_TOK_DOLLAR,  /* $tag$ ... $tag$ */
    PX_TOK_NUMBER,  /* a run of digits (the rest of a numeric literal follows as other tokens) */
    PX_TOK_PARAM,   /* $1 */
    PX_TOK_SEMI,    /* ; */
    PX_TOK_OTHER,   /* any other single byte: ( ) , . operators */
} px_tok_kind_t;

typedef struct px_tok {
    px_tok_kind_t kind;
    size_t start, end; /* [start, end) in the text */
    bool unterminated; /* a string, identifier or dollar quote ran to the end of the text */
    /* PX_TOK_STRING only: */
    unsigned char prefix; /* 0, or the prefix letter in lower case: 'e', 'n', 'b', 'x' */
    bool continued;       /* two or more quoted segments joined by whitespace with a newline */
    bool escapes;         /* backslash escapes apply in this literal */
    bool has_backslash;   /* a backslash escape occurs (only where escapes apply) */
    /* PX_TOK_DOLLAR only: length of the opening (and closing) delimiter, "$tag$". */
    size_t delim_len;
} px_tok_t;

typedef struct px_lex {
    const char *s;
    size_t n;
    size_t pos;
    /* Set when whitespace skipping ended inside an unterminated comment. */
    bool open_comment;
    /* Standard strings: backslash is an ordinary character in '...' and N'...' (only E'...'
     * has escapes), as in PostgreSQL with standard_conforming_strings = on. Off by default:
     * Redshift's rules. The rewriter uses it for a second, policy-only reading of texts that
     * the two rules split differently. */
    bool std_strings;
    /* Sticky: a '...' or N'...' literal contained \' (lexed as an escaped quote). Exactly then
     * the standard reading of the text can differ from Redshift's. */
    bool saw_quote_escape;
} px_lex_t;

void px_lex_init(px_lex_t *lx, const char *s, size_t n);

/* Skips whitespace and comments, then reads one token. Returns PX_TOK_EOF at the end. */
px_tok_kind_t px_lex_next(px_lex_t *lx, px_tok_t *t);

/* Skips whitespace and comments from pos; returns the new position. */
size_t px_lex_skip_space(px_lex_t *lx, size_t pos);

/* Whether c continues an unquoted word ([A-Za-z0-9_$\x80-\xff]): text inserted before such a
 * byte must end with a space or fuse with it. */
bool px_lex_word_char(unsigned char c);

/* Whether a quoted literal that ended right before pos would be continued by what follows:
 * a quote at pos ('' doubling) or whitespace with a newline and then a quote (continuation). */
bool px_lex_quote_fuses(const char *s, size_t n, size_t pos);

/* Whether a WORD token is `word` (lower-case ASCII), compared case-insensitively. */
bool px_tok_is(const char *s, const px_tok_t *t, const char *word);

/* Whether the token is a character string constant: STRING without a B/X prefix, or DOLLAR. */
bool px_tok_is_text(const px_tok_t *t);

/*
 * Decodes the value of a STRING or DOLLAR token into buf (cap bytes, NUL-terminated). Escapes
 * are decoded as PostgreSQL 8.0 did (\b \f \n \r \t, \ooo octal, \c for any other c), '' is a
 * quote, and continuation segments are joined. Returns the value's length, or (size_t)-1 when it
 * does not fit (or the token is not a string).
 */
size_t px_tok_text_value(const char *s, const px_tok_t *t, char *buf, size_t cap);

/*
 * Range of a STRING or DOLLAR token's first segment's raw content: the bytes between the opening
 * quote (or delimiter) and the closing one, as written.
 */
void px_tok_raw_content(const px_tok_t *t, const char *s, size_t *start, size_t *end);

#endif
