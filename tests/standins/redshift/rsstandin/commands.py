"""Parses the statements the Redshift stand-in executes itself (COPY from S3, UNLOAD to S3)
and the ones it rejects as Redshift does (COPY FROM STDIN / TO STDOUT, COPY (query), DISCARD).

Pure functions over a statement's tokens (sqllex.Statement): they return a CopyCommand, an
UnloadCommand, a RsError to send instead of executing, or None for a statement that is relayed
to PostgreSQL unchanged. Error texts are Redshift's where a public source confirms them
(reference/redshift-aws.md §7.4, §7.5) and marked UNCONFIRMED where the stand-in had to choose.
Nothing here touches the network.
"""

import os
import re
from dataclasses import dataclass, field

from . import sqllex
from .sqllex import NUMBER, OP, QIDENT, STRING, WORD

# reference §7.4 (the newer wording, seen when a COPY lacked aws_iam_role). Redshift's text
# for a statement with no authorization at all, or with two kinds mixed, is UNCONFIRMED: the
# stand-in answers all three cases with this text.
INVALID_CREDENTIALS = ("Invalid credentials. Must be of the format: credentials "
                       "'aws_iam_role=...' or 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'")
COLUMNAR_KEYS = "COPY from this file format only accepts IAM_ROLE credentials."
LOAD_SOURCE = ("LOAD source is not supported. (Hint: only S3 or DynamoDB or EMR based load "
               "is allowed)")
UNLOAD_NOT_EMPTY = ("Specified unload destination on S3 is not empty. Consider using a different "
                    "bucket / prefix, manually removing the target files in S3, or using the "
                    "ALLOWOVERWRITE option.")


class RsError(Exception):
    """An ErrorResponse to send: SQLSTATE, message, and the optional fields."""

    def __init__(self, sqlstate, message, *, detail=None, hint=None, position=None,
                 severity="ERROR", context=None):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.detail = detail
        self.hint = hint
        self.position = position
        self.severity = severity
        self.context = context


def redshift_block(error, *, code=8001, context="", query=0, location="", pid=None):
    """Redshift's DETAIL block for errors raised by its leader node (reference §7.4)."""
    pid = os.getpid() if pid is None else pid
    rule = "  -----------------------------------------------"
    return "\n".join(["", rule,
                      f"  error:  {error}",
                      f"  code:      {code}",
                      f"  context:   {context}",
                      f"  query:     {query}",
                      f"  location:  {location}",
                      f"  process:   padbmaster [pid={pid}]",
                      rule, ""])


def internal_error(message, *, context="", location="", code=8001):
    """An XX000 error in Redshift's shape: the message, and the same text in the block."""
    return RsError("XX000", message,
                   detail=redshift_block(message, code=code, context=context, location=location))


def syntax_error(tok, sql_offset=0, text=None):
    """PostgreSQL's and Redshift's "syntax error at or near" for a token (None: at end)."""
    if tok is None:
        return RsError("42601", "syntax error at end of input",
                       position=(len(text) + 1 + sql_offset) if text is not None else None)
    near = text[tok.start:tok.end] if text is not None else tok.value
    return RsError("42601", f'syntax error at or near "{near}"', position=tok.start + 1 + sql_offset)


def not_implemented(what):
    return RsError("0A000", f"the Redshift stand-in does not implement {what}")


@dataclass
class Auth:
    kind: str                  # "role" | "keys"
    roles: str = None          # "arn[,arn...]" or "default"
    access_key_id: str = None
    secret_access_key: str = None
    session_token: str = None


@dataclass
class CopyCommand:
    table: list                        # name parts as the server should see them (quoted ones kept)
    table_sql: str                     # the table reference as written
    columns: list                      # column names as written (SQL text), or None
    source: str                        # 's3://bucket/key-or-prefix'
    auth: Auth
    fmt: str = "text"                  # "text" | "csv"
    delimiter: str = None
    quote: str = '"'
    null_as: str = "\\N"
    null_given: bool = False
    ignoreheader: int = 0
    compression: str = None            # None | "gzip" | "bzip2"
    manifest: bool = False
    region: str = None
    escape: bool = False
    removequotes: bool = False
    emptyasnull: bool = False
    blanksasnull: bool = False
    trimblanks: bool = False
    fillrecord: bool = False
    ignoreblanklines: bool = False
    truncatecolumns: bool = False
    acceptinvchars: str = None
    maxerror: int = 0
    options: list = field(default_factory=list)   # option keywords seen, for diagnostics


@dataclass
class UnloadCommand:
    query: str                         # the SELECT, decoded from its literal
    target: str                        # 's3://bucket/prefix'
    auth: Auth
    fmt: str = "text"                  # "text" | "csv"
    delimiter: str = None
    null_as: str = None                # None: the format's default (empty string)
    header: bool = False
    escape: bool = False
    addquotes: bool = False
    parallel: bool = True
    manifest: bool = False
    verbose: bool = False
    allowoverwrite: bool = False
    cleanpath: bool = False
    compression: str = None            # None | "gzip" | "bzip2"
    region: str = None
    maxfilesize: int = None            # bytes
    extension: str = None
    options: list = field(default_factory=list)


class _Cursor:
    """Walks a statement's tokens; errors carry positions relative to the query text."""

    def __init__(self, stmt, text, offset):
        self.toks = stmt.tokens
        self.i = 0
        self.text = text
        self.offset = offset   # added to token offsets for error positions (Parse vs Query)

    def peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self):
        t = self.peek()
        if t is not None:
            self.i += 1
        return t

    def word(self, k=0):
        t = self.peek(k)
        return t.value.upper() if t is not None and t.kind == WORD else None

    def accept_word(self, *words):
        if self.word() in words:
            return self.next()
        return None

    def error(self, tok=None):
        tok = tok if tok is not None else self.peek()
        return syntax_error(tok, self.offset, self.text)

    def expect_string(self):
        t = self.next()
        if t is None or t.kind != STRING:
            raise self.error(t)
        return t

    def expect_op(self, op):
        t = self.next()
        if t is None or t.kind != OP or t.value != op:
            raise self.error(t)
        return t

    def optional_as(self):
        self.accept_word("AS")

    def at_end(self):
        return self.i >= len(self.toks)


def classify(stmt, text, offset=0):
    """What the stand-in does with one statement of a Query or a Parse message.

    Returns None (relay to PostgreSQL), a CopyCommand or UnloadCommand (execute), or raises
    RsError (answer with that error). text is the whole query text the token offsets refer to;
    offset is added to error positions."""
    if not stmt.tokens or stmt.tokens[0].kind != WORD:
        return None
    head = stmt.tokens[0].value.upper()
    if head == "DISCARD":
        # Redshift (PostgreSQL 8.0) has no DISCARD statement: the parser fails on the keyword.
        raise syntax_error(stmt.tokens[0], offset, text)
    if head == "COPY":
        return _parse_copy(_Cursor(stmt, text, offset))
    if head == "UNLOAD":
        return _parse_unload(_Cursor(stmt, text, offset))
    return None


def _name_part(tok):
    if tok.kind == QIDENT:
        return '"' + tok.value.replace('"', '""') + '"'
    return tok.value


def _parse_copy(c):
    c.next()  # COPY
    t = c.peek()
    if t is None:
        raise c.error(None)
    if t.kind == OP and t.value == "(":
        raise c.error(t)  # reference §7.5: COPY (SELECT ...) TO -> syntax error at or near "("
    if t.kind not in (WORD, QIDENT):
        raise c.error(t)
    parts = [_name_part(c.next())]
    while c.peek() is not None and c.peek().kind == OP and c.peek().value == "." and len(parts) < 3:
        c.next()
        p = c.next()
        if p is None or p.kind not in (WORD, QIDENT):
            raise c.error(p)
        parts.append(_name_part(p))
    columns = None
    t = c.peek()
    if t is not None and t.kind == OP and t.value == "(":
        c.next()
        columns = []
        while True:
            p = c.next()
            if p is None or p.kind not in (WORD, QIDENT):
                raise c.error(p)
            columns.append(_name_part(p))
            sep = c.next()
            if sep is not None and sep.kind == OP and sep.value == ",":
                continue
            if sep is not None and sep.kind == OP and sep.value == ")":
                break
            raise c.error(sep)
    direction = c.next()
    if direction is None:
        raise c.error(None)
    dword = direction.value.upper() if direction.kind == WORD else None
    if dword == "TO":
        t = c.peek()
        if t is None or (t.kind == WORD and t.value.upper() == "STDOUT"):
            raise c.error(t)  # reference §7.5: COPY t TO STDOUT -> at or near "STDOUT"
        # UNCONFIRMED: Redshift's answer to COPY <table> TO '<file>'.
        raise RsError("0A000", "COPY TO is not supported by Amazon Redshift; use UNLOAD")
    if dword != "FROM":
        raise c.error(direction)
    src = c.peek()
    if src is None:
        raise c.error(None)
    if src.kind == WORD and src.value.upper() in ("STDIN", "STDOUT"):
        raise c.error(src)  # reference §7.5: COPY ... FROM STDIN -> at or near "STDIN"
    if src.kind != STRING:
        raise c.error(src)
    c.next()
    source = sqllex.decode_string(src.value)
    cmd = CopyCommand(table=parts, table_sql=".".join(parts), columns=columns, source=source,
                      auth=None)
    auth = _AuthCollector()
    seen = set()
    fmt_kind = None

    def once(keyword, tok):
        if keyword in seen:
            raise RsError("42601", "conflicting or redundant options",
                          position=tok.start + 1 + c.offset)
        seen.add(keyword)
        cmd.options.append(keyword)

    while not c.at_end():
        t = c.next()
        if t.kind != WORD:
            raise c.error(t)
        w = t.value.upper()
        if auth.take(w, t, c):
            continue
        if w == "WITH":
            continue  # noise word ("WITH CREDENTIALS", PostgreSQL-style "WITH CSV")
        if w == "FORMAT":
            c.optional_as()
            f = c.next()
            if f is None or f.kind != WORD:
                raise c.error(f)
            w = f.value.upper()
            t = f
            if w not in ("CSV", "JSON", "AVRO", "PARQUET", "ORC", "FIXEDWIDTH", "SHAPEFILE"):
                raise c.error(f)
        if w == "CSV":
            once("FORMAT", t)
            cmd.fmt, fmt_kind = "csv", "CSV"
            if c.word() == "QUOTE":
                once("QUOTE", c.next())
                c.optional_as()
                cmd.quote = _single_char(c, sqllex.decode_option(c.expect_string().value), "QUOTE")
        elif w == "QUOTE":
            once("QUOTE", t)
            c.optional_as()
            cmd.quote = _single_char(c, sqllex.decode_option(c.expect_string().value), "QUOTE")
        elif w in ("JSON", "AVRO"):
            once("FORMAT", t)
            fmt_kind = w
            c.optional_as()
            if c.peek() is not None and c.peek().kind == STRING:
                c.next()
        elif w in ("PARQUET", "ORC", "SHAPEFILE"):
            once("FORMAT", t)
            fmt_kind = w
        elif w == "FIXEDWIDTH":
            once("FORMAT", t)
            fmt_kind = w
            c.optional_as()
            c.expect_string()
        elif w == "DELIMITER":
            once(w, t)
            c.optional_as()
            cmd.delimiter = _single_char(c, sqllex.decode_option(c.expect_string().value), "DELIMITER")
        elif w == "NULL":
            once(w, t)
            c.optional_as()
            cmd.null_as = sqllex.decode_option(c.expect_string().value)
            cmd.null_given = True
        elif w == "IGNOREHEADER":
            once(w, t)
            c.optional_as()
            cmd.ignoreheader = _integer(c)
        elif w in ("GZIP", "BZIP2", "LZOP", "ZSTD"):
            once("COMPRESSION", t)
            if w in ("LZOP", "ZSTD"):
                raise not_implemented(f"{w} input")
            cmd.compression = w.lower()
        elif w == "MANIFEST":
            once(w, t)
            cmd.manifest = True
        elif w == "REGION":
            once(w, t)
            c.optional_as()
            cmd.region = sqllex.decode_option(c.expect_string().value)
        elif w in ("ESCAPE", "REMOVEQUOTES", "EMPTYASNULL", "BLANKSASNULL", "TRIMBLANKS",
                   "FILLRECORD", "IGNOREBLANKLINES", "TRUNCATECOLUMNS"):
            once(w, t)
            setattr(cmd, w.lower(), True)
        elif w == "ACCEPTINVCHARS":
            once(w, t)
            c.optional_as()
            cmd.acceptinvchars = "?"
            if c.peek() is not None and c.peek().kind == STRING:
                cmd.acceptinvchars = _single_char(c, sqllex.decode_option(c.next().value),
                                                  "ACCEPTINVCHARS")
        elif w == "MAXERROR":
            once(w, t)
            c.optional_as()
            cmd.maxerror = _integer(c)
        elif w in ("COMPUPDATE", "STATUPDATE"):
            once(w, t)
            c.accept_word("ON", "OFF", "TRUE", "FALSE", "PRESET")
        elif w in ("EXPLICIT_IDS", "ROUNDEC", "ACCEPTANYDATE"):
            once(w, t)  # accepted; PostgreSQL's own conversions apply
        elif w in ("DATEFORMAT", "TIMEFORMAT"):
            once(w, t)
            c.optional_as()
            v = sqllex.decode_option(c.expect_string().value)
            if v.lower() != "auto":
                raise not_implemented(f"{w} '{v}'")
        elif w == "ENCODING":
            once(w, t)
            c.optional_as()
            e = c.next()
            if e is None or e.kind not in (WORD, STRING):
                raise c.error(e)
            if e.value.upper().replace("-", "") not in ("UTF8",):
                raise not_implemented(f"ENCODING {e.value}")
        elif w in ("ENCRYPTED", "MASTER_SYMMETRIC_KEY", "NOLOAD", "SSH", "READRATIO",
                   "SERIALIZETOJSON", "IGNOREALLERRORS"):
            raise not_implemented(w)
        else:
            raise c.error(t)

    cmd.auth = auth.result()
    if fmt_kind in ("PARQUET", "ORC") and cmd.auth.kind == "keys":
        raise internal_error(COLUMNAR_KEYS, location="xen_copy.cpp:159")
    if fmt_kind not in (None, "CSV"):
        raise not_implemented(f"COPY FORMAT {fmt_kind}")
    if cmd.fmt == "csv" and cmd.escape:
        # UNCONFIRMED text; Redshift refuses ESCAPE with CSV.
        raise RsError("42601", "ESCAPE cannot be used with CSV")
    if cmd.delimiter is None:
        cmd.delimiter = "," if cmd.fmt == "csv" else "|"
    if not re.match(r"^s3://", source):
        if re.match(r"^(emr|dynamodb)://", source, re.I):
            raise not_implemented("COPY from EMR or DynamoDB")
        raise internal_error(LOAD_SOURCE, location="copy.cpp:91")
    return cmd


def _single_char(c, value, what):
    if len(value) != 1:
        raise RsError("42601", f"{what} must be a single character")  # UNCONFIRMED text
    return value


def _integer(c):
    t = c.next()
    if t is None or t.kind != NUMBER or not t.value.isdigit():
        raise c.error(t)
    return int(t.value)


class _AuthCollector:
    """Collects the authorization clauses of a COPY or UNLOAD and checks there is exactly
    one kind (reference §7.1)."""

    def __init__(self):
        self.kinds = []
        self.role = None
        self.akid = self.secret = self.token = None
        self.creds = None

    def take(self, w, tok, c):
        if w == "IAM_ROLE":
            v = c.next()
            if v is not None and v.kind == WORD and v.value.upper() == "DEFAULT":
                self.role = "default"
            elif v is not None and v.kind == STRING:
                self.role = sqllex.decode_option(v.value)
            else:
                raise c.error(v)
            self.kinds.append("IAM_ROLE")
            return True
        if w in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN"):
            c.optional_as()
            v = c.expect_string()
            val = sqllex.decode_option(v.value)
            if w == "ACCESS_KEY_ID":
                self.akid = val
            elif w == "SECRET_ACCESS_KEY":
                self.secret = val
            else:
                self.token = val
            self.kinds.append(w)
            return True
        if w == "CREDENTIALS":
            c.optional_as()
            self.creds = sqllex.decode_option(c.expect_string().value)
            self.kinds.append("CREDENTIALS")
            return True
        return False

    def result(self):
        bad = internal_error(INVALID_CREDENTIALS, location="aws_credentials_parser.cpp:114")
        k = self.kinds
        groups = set("KEYS" if x in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN") else x
                     for x in k)
        if len(groups) != 1 or len(k) != len(set(k)):
            raise bad
        g = groups.pop()
        if g == "IAM_ROLE":
            return Auth("role", roles=self.role)
        if g == "KEYS":
            if not self.akid or not self.secret:
                raise bad
            return Auth("keys", access_key_id=self.akid, secret_access_key=self.secret,
                        session_token=self.token)
        return parse_credentials_string(self.creds, bad)


def parse_credentials_string(s, bad):
    """'aws_iam_role=arn' or 'aws_access_key_id=..;aws_secret_access_key=..[;token=..]'."""
    if not s or any(ch.isspace() for ch in s):
        raise bad
    kv = {}
    for part in s.split(";"):
        if part == "":
            continue
        if "=" not in part:
            raise bad
        k, v = part.split("=", 1)
        if k in kv or k not in ("aws_iam_role", "aws_access_key_id", "aws_secret_access_key",
                                "token", "master_symmetric_key"):
            raise bad
        kv[k] = v
    if "master_symmetric_key" in kv:
        raise not_implemented("master_symmetric_key")
    if "aws_iam_role" in kv:
        if len(kv) != 1 or not kv["aws_iam_role"]:
            raise bad
        return Auth("role", roles=kv["aws_iam_role"])
    if not kv.get("aws_access_key_id") or not kv.get("aws_secret_access_key"):
        raise bad
    return Auth("keys", access_key_id=kv["aws_access_key_id"],
                secret_access_key=kv["aws_secret_access_key"], session_token=kv.get("token"))


def _parse_unload(c):
    c.next()  # UNLOAD
    c.expect_op("(")
    q = c.next()
    if q is None or q.kind != STRING:
        raise c.error(q)
    c.expect_op(")")
    to = c.next()
    if to is None or to.kind != WORD or to.value.upper() != "TO":
        raise c.error(to)
    target = sqllex.decode_string(c.expect_string().value)
    cmd = UnloadCommand(query=sqllex.decode_string(q.value), target=target, auth=None)
    auth = _AuthCollector()
    seen = set()
    fmt_kind = None

    def once(keyword, tok):
        if keyword in seen:
            raise RsError("42601", "conflicting or redundant options",
                          position=tok.start + 1 + c.offset)
        seen.add(keyword)
        cmd.options.append(keyword)

    while not c.at_end():
        t = c.next()
        if t.kind != WORD:
            raise c.error(t)
        w = t.value.upper()
        if auth.take(w, t, c):
            continue
        if w == "WITH":
            continue
        if w == "FORMAT":
            c.optional_as()
            f = c.next()
            if f is None or f.kind != WORD or f.value.upper() not in ("CSV", "PARQUET", "JSON"):
                raise c.error(f)
            t, w = f, f.value.upper()
        if w in ("CSV", "PARQUET", "JSON"):
            once("FORMAT", t)
            fmt_kind = w
            if w == "CSV":
                cmd.fmt = "csv"
        elif w == "PARTITION":
            raise not_implemented("UNLOAD PARTITION BY")
        elif w == "MANIFEST":
            once(w, t)
            cmd.manifest = True
            if c.accept_word("VERBOSE"):
                cmd.verbose = True
        elif w == "HEADER":
            once(w, t)
            cmd.header = True
        elif w == "DELIMITER":
            once(w, t)
            c.optional_as()
            cmd.delimiter = _single_char(c, sqllex.decode_option(c.expect_string().value), "DELIMITER")
        elif w == "NULL":
            once(w, t)
            c.optional_as()
            cmd.null_as = sqllex.decode_option(c.expect_string().value)
        elif w in ("ESCAPE", "ADDQUOTES", "ALLOWOVERWRITE", "CLEANPATH"):
            once(w, t)
            setattr(cmd, w.lower(), True)
        elif w in ("GZIP", "BZIP2", "ZSTD"):
            once("COMPRESSION", t)
            if w == "ZSTD":
                raise not_implemented("ZSTD output")
            cmd.compression = w.lower()
        elif w == "PARALLEL":
            once(w, t)
            v = c.accept_word("ON", "TRUE", "OFF", "FALSE")
            cmd.parallel = v is None or v.value.upper() in ("ON", "TRUE")
        elif w == "MAXFILESIZE":
            once(w, t)
            c.optional_as()
            n = c.next()
            if n is None or n.kind != NUMBER:
                raise c.error(n)
            unit = c.accept_word("MB", "GB")
            mult = 1024 ** 3 if unit is not None and unit.value.upper() == "GB" else 1024 ** 2
            size = float(n.value) * mult
            if size < 5 * 1024 ** 2 or size > 6.2 * 1024 ** 3:
                # UNCONFIRMED text; the range is documented (5 MB - 6.2 GB).
                raise RsError("22023", "MAXFILESIZE must be between 5 MB and 6.2 GB")
            cmd.maxfilesize = int(size)
        elif w == "REGION":
            once(w, t)
            c.optional_as()
            cmd.region = sqllex.decode_option(c.expect_string().value)
        elif w == "EXTENSION":
            once(w, t)
            cmd.extension = sqllex.decode_option(c.expect_string().value).lstrip(".")
        elif w in ("FIXEDWIDTH", "ENCRYPTED", "KMS_KEY_ID", "MASTER_SYMMETRIC_KEY",
                   "ROWGROUPSIZE"):
            raise not_implemented(f"UNLOAD {w}")
        else:
            raise c.error(t)

    cmd.auth = auth.result()
    if fmt_kind in ("PARQUET", "JSON"):
        raise not_implemented(f"UNLOAD FORMAT {fmt_kind}")
    if cmd.cleanpath and cmd.allowoverwrite:
        # Documented restriction; the text is UNCONFIRMED.
        raise RsError("42601", "CLEANPATH and ALLOWOVERWRITE cannot be used together")
    if cmd.delimiter is None:
        cmd.delimiter = "," if cmd.fmt == "csv" else "|"
    if not cmd.target.startswith("s3://"):
        raise internal_error("UNLOAD destination must be an S3 path (s3://bucket/prefix)",
                             location="unload.cpp:123")  # UNCONFIRMED text
    return cmd
