"""Redshift's data formats for COPY input and UNLOAD output, as pure functions.

Input: a file's bytes in Redshift's pipe-delimited text format (with or without ESCAPE and
REMOVEQUOTES) or CSV, turned into PostgreSQL COPY text rows for the target table's columns,
with Redshift's NULL rules (NULL AS, empty and blank fields of non-character columns load as
NULL, EMPTYASNULL / BLANKSASNULL / TRIMBLANKS / FILLRECORD / TRUNCATECOLUMNS, IGNOREHEADER,
IGNOREBLANKLINES). Output: rows of an UNLOAD query (PostgreSQL text values) in Redshift's
delimited text or CSV, with HEADER, NULL AS, ESCAPE and ADDQUOTES. Sources: the Developer
Guide's COPY data conversion parameters and UNLOAD pages (reference/redshift-aws.md §7).
No I/O beyond the file objects handed in.
"""

import codecs
import csv
import io
from dataclasses import dataclass

# Type OIDs whose values Redshift treats as CHAR/VARCHAR for ESCAPE on UNLOAD.
STRING_OIDS = {18, 19, 25, 1042, 1043}

_PG_ESCAPE = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})

BATCH_BYTES = 64 * 1024
# Redshift's maximum input row (reference §7.2); also what bounds the stand-in's memory per row.
MAX_RECORD = 4 * 1024 * 1024
csv.field_size_limit(MAX_RECORD)


class LoadError(Exception):
    """A row Redshift would reject; reported through stl_load_errors' fields."""

    def __init__(self, reason, *, line=None, column=None, raw=None, filename=None, code=1214):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column
        self.raw = raw
        self.filename = filename
        self.code = code


@dataclass
class Column:
    name: str
    is_char: bool          # CHAR / VARCHAR / TEXT (typcategory 'S')
    max_bytes: int = None  # VARCHAR(n) / CHAR(n) length, for TRUNCATECOLUMNS


def _accept_handler(replacement):
    def handler(err):
        return replacement * (err.end - err.start), err.end
    return handler


def register_accept_invchars(ch):
    name = f"rs_standin_accept_{ord(ch)}"
    try:
        codecs.lookup_error(name)
    except LookupError:
        codecs.register_error(name, _accept_handler(ch))
    return name


def pg_copy_value(v):
    return "\\N" if v is None else v.translate(_PG_ESCAPE)


class CopyInput:
    """Turns the files of one COPY into PostgreSQL COPY text for the target columns."""

    def __init__(self, cmd, columns):
        self.cmd = cmd
        self.columns = columns
        self.rows = 0
        self.errors_left = cmd.maxerror
        self.errors = 0
        self.encoding_errors = "strict"
        if cmd.acceptinvchars:
            self.encoding_errors = register_accept_invchars(cmd.acceptinvchars)

    # -- per file

    def batches(self, binary, filename):
        """Yields bytes batches of PostgreSQL COPY text for one (decompressed) file."""
        text = io.TextIOWrapper(binary, encoding="utf-8", errors=self.encoding_errors,
                                newline="" if self.cmd.fmt == "csv" else "\n")
        out, size = [], 0
        try:
            for lineno, fields in self._records(text, filename):
                try:
                    row = self._convert(fields, lineno, filename)
                except LoadError:
                    if self.errors_left > 0:
                        self.errors_left -= 1
                        self.errors += 1
                        continue
                    raise
                line = "\t".join(pg_copy_value(v) for v in row) + "\n"
                out.append(line)
                size += len(line)
                self.rows += 1
                if size >= BATCH_BYTES:
                    yield "".join(out).encode("utf-8")
                    out, size = [], 0
        except UnicodeDecodeError as e:
            raise LoadError("Invalid UTF8", filename=filename, code=1220) from e
        except csv.Error as e:
            raise LoadError(f"CSV parse error: {e}", filename=filename, code=1214) from e
        if out:
            yield "".join(out).encode("utf-8")

    def _records(self, text, filename):
        """(line number, [(raw, value, quoted)]) per record, after IGNOREHEADER and
        IGNOREBLANKLINES."""
        cmd = self.cmd
        skip = cmd.ignoreheader
        if cmd.fmt == "csv":
            reader = csv.reader(text, delimiter=cmd.delimiter, quotechar=cmd.quote,
                                doublequote=True, strict=False)
            for rec in reader:
                lineno = reader.line_num
                if skip:
                    skip -= 1
                    continue
                if not rec:
                    if cmd.ignoreblanklines:
                        continue
                    rec = [""]
                yield lineno, [(v, v, False) for v in rec]
            return
        lineno = 0
        pending = None
        while True:
            line = text.readline(MAX_RECORD + 1)
            if not line:
                break
            lineno += 1
            if len(line) > MAX_RECORD or (pending is not None and
                                          len(pending) + len(line) > MAX_RECORD):
                # UNCONFIRMED wording of Redshift's stl_load_errors reason.
                raise LoadError("Record exceeds the 4 MB maximum row size", line=lineno,
                                filename=filename, code=1224)
            if pending is not None:
                line = pending + line
                pending = None
            if cmd.escape and line.endswith("\n"):
                # An odd run of backslashes before the newline escapes it: the record goes on.
                body = line[:-1]
                run = len(body) - len(body.rstrip("\\"))
                if run % 2 == 1:
                    pending = line
                    continue
            if line.endswith("\n"):
                line = line[:-1]
            if skip:
                skip -= 1
                continue
            if line == "" and cmd.ignoreblanklines:
                continue
            yield lineno, self._split_text(line, lineno, filename)
        if pending is not None:
            if skip:
                return
            yield lineno, self._split_text(pending, lineno, filename)

    def _split_text(self, line, lineno, filename):
        cmd = self.cmd
        d = cmd.delimiter
        if not cmd.escape and not cmd.removequotes:
            return [(f, f, False) for f in line.split(d)]
        fields, i, n = [], 0, len(line)
        while True:
            raw_start = i
            val = []
            quoted = False
            if cmd.removequotes and i < n and line[i] in "\"'":
                q = line[i]
                quoted = True
                i += 1
                closed = False
                while i < n:
                    c = line[i]
                    if cmd.escape and c == "\\" and i + 1 < n:
                        val.append(line[i + 1])
                        i += 2
                        continue
                    if c == q:
                        closed = True
                        i += 1
                        break
                    val.append(c)
                    i += 1
                if not closed:
                    raise LoadError("Missing closing quote", line=lineno, raw=line,
                                    filename=filename, code=1216)
                # Anything after the closing quote up to the delimiter is kept as text.
                while i < n and line[i] != d:
                    val.append(line[i])
                    i += 1
            else:
                while i < n:
                    c = line[i]
                    if cmd.escape and c == "\\" and i + 1 < n:
                        val.append(line[i + 1])
                        i += 2
                        continue
                    if c == d:
                        break
                    val.append(c)
                    i += 1
            fields.append((line[raw_start:i], "".join(val), quoted))
            if i >= n:
                break
            i += 1  # the delimiter
            if i == n:
                fields.append(("", "", False))
                break
        return fields

    def _convert(self, fields, lineno, filename):
        cmd, cols = self.cmd, self.columns
        if len(fields) < len(cols):
            if not cmd.fillrecord:
                raise LoadError("Delimiter not found", line=lineno, filename=filename,
                                column=cols[len(fields)].name, code=1214)
            fields = fields + [("", "", False)] * (len(cols) - len(fields))
        elif len(fields) > len(cols):
            raise LoadError("Extra column(s) found", line=lineno, filename=filename, code=1214)
        row = []
        for (raw, value, quoted), col in zip(fields, cols):
            if not quoted and (raw == cmd.null_as or (cmd.escape and value == cmd.null_as)):
                row.append(None)
                continue
            if "\0" in value:
                # NUL ends the record in Redshift; PostgreSQL refuses it in text anyway.
                value = value.split("\0", 1)[0]
            if col.is_char:
                if value == "" and not quoted and cmd.emptyasnull:
                    row.append(None)
                    continue
                if cmd.blanksasnull and value != "" and value.strip(" \t") == "":
                    row.append(None)
                    continue
                if cmd.trimblanks:
                    value = value.rstrip(" \t")
                if cmd.truncatecolumns and col.max_bytes is not None:
                    b = value.encode("utf-8")
                    if len(b) > col.max_bytes:
                        value = b[:col.max_bytes].decode("utf-8", "ignore")
                row.append(value)
            else:
                # Empty and blank fields of non-character columns always load as NULL.
                row.append(None if value.strip() == "" else value)
        return row


class UnloadOutput:
    """Formats UNLOAD rows (PostgreSQL text values) as Redshift writes them."""

    def __init__(self, cmd, columns):
        """columns: [(name, type_oid, typmod)] from the query's RowDescription."""
        self.cmd = cmd
        self.names = [c[0] for c in columns]
        self.is_char = [c[1] in STRING_OIDS for c in columns]
        self.null = cmd.null_as if cmd.null_as is not None else ""
        d = cmd.delimiter
        if cmd.fmt == "csv":
            self._needs_quote = (d, '"', "\n", "\r")
        esc = {"\\": "\\\\", "\n": "\\\n", "\r": "\\\r", d: "\\" + d}
        if cmd.addquotes:
            esc['"'] = '\\"'
            esc["'"] = "\\'"
        self._esc = str.maketrans(esc)

    def _field(self, v, is_char):
        cmd = self.cmd
        if v is None:
            return f'"{self.null}"' if cmd.addquotes else self.null
        if cmd.fmt == "csv":
            if cmd.addquotes or any(ch in v for ch in self._needs_quote):
                return '"' + v.replace('"', '""') + '"'
            return v
        if cmd.escape and is_char:
            v = v.translate(self._esc)
        return f'"{v}"' if cmd.addquotes else v

    def header(self):
        return self.cmd.delimiter.join(self._field(n, True) for n in self.names) + "\n"

    def row(self, values):
        """values: [bytes or None] from a DataRow in text format."""
        out = []
        for v, is_char in zip(values, self.is_char):
            out.append(self._field(None if v is None else v.decode("utf-8"), is_char))
        return self.cmd.delimiter.join(out) + "\n"


_TYPE_NAMES = {
    16: "boolean", 18: "char", 19: "name", 20: "bigint", 21: "smallint", 23: "integer",
    25: "text", 700: "real", 701: "double precision", 1042: "character",
    1043: "character varying", 1082: "date", 1083: "time without time zone",
    1114: "timestamp without time zone", 1184: "timestamp with time zone",
    1266: "time with time zone", 1700: "numeric", 17: "bytea", 114: "json", 3802: "jsonb",
    2950: "uuid", 1186: "interval", 869: "inet",
}


def manifest_type(oid, typmod):
    """The "type" object of a MANIFEST VERBOSE schema element."""
    t = {"base": _TYPE_NAMES.get(oid, f"oid {oid}")}
    if oid in (1042, 1043) and typmod >= 4:
        t["length"] = typmod - 4
    if oid == 1700 and typmod >= 4:
        t["precision"] = (typmod - 4) >> 16
        t["scale"] = (typmod - 4) & 0xFFFF
    return t
