"""A lexer for Redshift SQL, enough to split statements and parse COPY / UNLOAD / DISCARD.

Redshift is PostgreSQL 8.0 underneath: ordinary '...' strings process backslash escapes
(standard_conforming_strings is effectively off, and E'...' is not Redshift syntax but lexes
the same way here), '' doubles a quote, "..." identifiers double "", dollar quoting
($tag$...$tag$) exists for function bodies, and /* */ comments nest. The lexer is a pure
function over the query text; it never raises: an unterminated string, identifier or comment
runs to the end of the text, the way PostgreSQL's scanner would report it at the end.
"""

from dataclasses import dataclass

# Token kinds.
WORD = "word"          # keyword or unquoted identifier (value: the text as written)
QIDENT = "qident"      # "quoted identifier" (value: decoded name)
STRING = "string"      # '...' (value: raw text between the quotes, undecoded)
DOLLAR = "dollar"      # $tag$...$tag$ (value: body)
NUMBER = "number"
PARAM = "param"        # $1
OP = "op"              # operator or punctuation, one token per run of operator characters
SEMI = "semi"          # ;

_OP_CHARS = set("+-*/<>=~!@#%^&|`?")
_PUNCT = set("(),[].:")


@dataclass
class Token:
    kind: str
    value: str
    start: int      # offset of the first character in the query text
    end: int        # offset just past the last character
    prefix: str = ""  # "E" for E'...' strings

    def upper(self):
        return self.value.upper() if self.kind == WORD else None


def _is_ident_start(c):
    return c.isalpha() or c == "_" or ord(c) >= 0x80


def _is_ident_char(c):
    return c.isalnum() or c in "_$" or ord(c) >= 0x80


def tokenize(sql):
    """Returns the list of tokens of sql; whitespace and comments are dropped."""
    toks = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
            continue
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth += 1
                    j += 2
                elif sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                else:
                    j += 1
            i = j
            continue
        if c == "'" or (c in "eE" and i + 1 < n and sql[i + 1] == "'"):
            prefix = ""
            if c != "'":
                prefix = "E"
                i += 1
            j, closed = _scan_string(sql, i + 1)
            raw = sql[i + 1:j - 1] if closed else sql[i + 1:j]
            toks.append(Token(STRING, raw, i - len(prefix), j, prefix))
            i = j
            continue
        if c == '"':
            j, buf = i + 1, []
            while j < n:
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    j += 1
                    break
                buf.append(sql[j])
                j += 1
            toks.append(Token(QIDENT, "".join(buf), i, j))
            i = j
            continue
        if c == "$":
            # $n parameter, or a dollar-quote opener $tag$ / $$.
            j = i + 1
            if j < n and sql[j].isdigit():
                while j < n and sql[j].isdigit():
                    j += 1
                toks.append(Token(PARAM, sql[i:j], i, j))
                i = j
                continue
            while j < n and (_is_ident_char(sql[j]) and sql[j] != "$"):
                j += 1
            if j < n and sql[j] == "$":
                tag = sql[i:j + 1]
                close = sql.find(tag, j + 1)
                end = n if close < 0 else close + len(tag)
                body = sql[j + 1:close if close >= 0 else n]
                toks.append(Token(DOLLAR, body, i, end))
                i = end
                continue
            toks.append(Token(OP, "$", i, i + 1))
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            j = i
            while j < n and (sql[j].isdigit() or sql[j] == "."):
                j += 1
            if j < n and sql[j] in "eE" and j + 1 < n and (sql[j + 1].isdigit() or
                                                           sql[j + 1] in "+-"):
                j += 2
                while j < n and sql[j].isdigit():
                    j += 1
            toks.append(Token(NUMBER, sql[i:j], i, j))
            i = j
            continue
        if _is_ident_start(c):
            j = i + 1
            while j < n and _is_ident_char(sql[j]):
                j += 1
            toks.append(Token(WORD, sql[i:j], i, j))
            i = j
            continue
        if c == ";":
            toks.append(Token(SEMI, ";", i, i + 1))
            i += 1
            continue
        if c in _PUNCT:
            if c == ":" and sql.startswith("::", i):
                toks.append(Token(OP, "::", i, i + 2))
                i += 2
                continue
            toks.append(Token(OP, c, i, i + 1))
            i += 1
            continue
        if c in _OP_CHARS:
            j = i
            while j < n and sql[j] in _OP_CHARS:
                # A comment start ends the operator, as in PostgreSQL.
                if sql.startswith("--", j) or sql.startswith("/*", j):
                    break
                j += 1
            if j == i:
                j = i + 1
            toks.append(Token(OP, sql[i:j], i, j))
            i = j
            continue
        toks.append(Token(OP, c, i, i + 1))
        i += 1
    return toks


def _scan_string(sql, j):
    """(index just past the closing quote, True) for a string whose body starts at j, or
    (len(sql), False) when the string is not terminated."""
    n = len(sql)
    while j < n:
        c = sql[j]
        if c == "\\":
            j += 2
            continue
        if c == "'":
            if j + 1 < n and sql[j + 1] == "'":
                j += 2
                continue
            return j + 1, True
        j += 1
    return n, False


_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def decode_string(raw):
    """The value of a '...' literal as Redshift reads it: '' is a quote, and backslash
    escapes are processed (\\b \\f \\n \\r \\t, octal \\ooo, hex \\xhh, any other character
    stands for itself)."""
    out, i, n = [], 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'" and i + 1 < n and raw[i + 1] == "'":
            out.append("'")
            i += 2
            continue
        if c == "\\" and i + 1 < n:
            d = raw[i + 1]
            if d in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[d])
                i += 2
                continue
            if d in "01234567":
                j = i + 1
                while j < n and j < i + 4 and raw[j] in "01234567":
                    j += 1
                out.append(chr(int(raw[i + 1:j], 8) & 0xFF))
                i = j
                continue
            if d == "x" and i + 2 < n and raw[i + 2] in "0123456789abcdefABCDEF":
                j = i + 2
                while j < n and j < i + 4 and raw[j] in "0123456789abcdefABCDEF":
                    j += 1
                out.append(chr(int(raw[i + 2:j], 16)))
                i = j
                continue
            out.append(d)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def decode_option(raw):
    """The value of a COPY/UNLOAD option string (DELIMITER, QUOTE, NULL AS ...).

    COPY interprets these itself: '' is a quote, \\t a tab, \\n a newline, \\\\ a backslash,
    \\' a quote, \\ooo an octal byte; every other backslash sequence is kept as written, so
    NULL AS '\\N' is the two characters backslash and N (the documented default null string)
    and NULL AS '\\0' is the NUL marker. UNCONFIRMED beyond the documented examples."""
    out, i, n = [], 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'" and i + 1 < n and raw[i + 1] == "'":
            out.append("'")
            i += 2
            continue
        if c == "\\" and i + 1 < n:
            d = raw[i + 1]
            if d == "t":
                out.append("\t")
            elif d == "n":
                out.append("\n")
            elif d == "\\":
                out.append("\\")
            elif d == "'":
                out.append("'")
            elif d in "01234567":
                j = i + 1
                while j < n and j < i + 4 and raw[j] in "01234567":
                    j += 1
                code = int(raw[i + 1:j], 8)
                out.append("\\0" if code == 0 else chr(code))
                i = j
                continue
            else:
                out.append("\\" + d)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@dataclass
class Statement:
    text: str        # the statement's text, without the terminating semicolon
    start: int       # offset of text in the whole query
    tokens: list     # its tokens (offsets relative to the whole query)


def split_statements(sql, tokens=None):
    """Splits a query into statements at top-level semicolons. Statements that contain
    no token at all (empty, or comments only) are dropped, as PostgreSQL does."""
    if tokens is None:
        tokens = tokenize(sql)
    stmts, cur, start = [], [], 0
    for t in tokens:
        if t.kind == SEMI:
            if cur:
                stmts.append(Statement(sql[start:t.start], start, cur))
            cur, start = [], t.end
            continue
        if not cur:
            start = t.start
        cur.append(t)
    if cur:
        stmts.append(Statement(sql[start:], start, cur))
    return stmts


def first_word(sql):
    """The first keyword of sql in upper case (after comments and whitespace), or ''.
    Cheap enough for the hot path: it stops at the first token."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
        elif c == "(":
            return "("
        else:
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            return sql[i:j].upper()
    return ""
