"""PostgreSQL protocol v3 message building and parsing for the Redshift stand-in.

Pure helpers over bytes: building the backend messages the stand-in writes itself, parsing
the few frontend messages it must look into (StartupMessage, Query, Parse, Bind, Describe,
Execute, Close) and the backend messages it inspects (ErrorResponse, RowDescription,
DataRow, CommandComplete). Every parser checks lengths and raises ProtocolError on malformed
input; none of them touches a socket.
"""

import struct

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

MAX_STARTUP = 10000           # PostgreSQL's own limit for a startup packet
MAX_MESSAGE = 256 * 1024 * 1024  # the stand-in's bound for any single message


class ProtocolError(Exception):
    pass


def msg(typ, body=b""):
    return typ + struct.pack("!I", len(body) + 4) + body


def cstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return s + b"\0"


def read_cstr(buf, pos):
    end = buf.find(b"\0", pos)
    if end < 0:
        raise ProtocolError("unterminated string")
    return buf[pos:end].decode("utf-8", "replace"), end + 1


def read_cbytes(buf, pos):
    end = buf.find(b"\0", pos)
    if end < 0:
        raise ProtocolError("unterminated string")
    return bytes(buf[pos:end]), end + 1


# -- backend messages the stand-in writes itself

def error_response(sqlstate, message, *, severity="ERROR", detail=None, hint=None,
                   position=None, context=None):
    fields = [(b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message)]
    if detail:
        fields.append((b"D", detail))
    if hint:
        fields.append((b"H", hint))
    if position:
        fields.append((b"P", str(position)))
    if context:
        fields.append((b"W", context))
    body = b"".join(k + cstr(v) for k, v in fields) + b"\0"
    return msg(b"E", body)


def notice_response(message, *, severity="INFO", sqlstate="00000"):
    fields = [(b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message)]
    return msg(b"N", b"".join(k + cstr(v) for k, v in fields) + b"\0")


def command_complete(tag):
    return msg(b"C", cstr(tag))


def ready_for_query(status):
    return msg(b"Z", status.encode("ascii"))


def parameter_status(name, value):
    return msg(b"S", cstr(name) + cstr(value))


def auth_request(code, payload=b""):
    return msg(b"R", struct.pack("!I", code) + payload)


PARSE_COMPLETE = msg(b"1")
BIND_COMPLETE = msg(b"2")
CLOSE_COMPLETE = msg(b"3")
NO_DATA = msg(b"n")
EMPTY_PARAMS = msg(b"t", struct.pack("!H", 0))


# -- frontend messages the stand-in builds (internal statements on the upstream session)

def fe_query(sql):
    return msg(b"Q", cstr(sql))


def fe_parse(name, sql, param_oids=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!H", len(param_oids)) +
               b"".join(struct.pack("!I", o) for o in param_oids))


def fe_bind(portal, stmt, params=(), result_formats=()):
    body = cstr(portal) + cstr(stmt) + struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            b = p.encode("utf-8") if isinstance(p, str) else p
            body += struct.pack("!i", len(b)) + b
    body += struct.pack("!H", len(result_formats)) + b"".join(
        struct.pack("!H", f) for f in result_formats)
    return msg(b"B", body)


def fe_describe(kind, name):
    return msg(b"D", kind + cstr(name))


def fe_execute(portal, max_rows=0):
    return msg(b"E", cstr(portal) + struct.pack("!I", max_rows))


def fe_close(kind, name):
    return msg(b"C", kind + cstr(name))


FE_SYNC = msg(b"S")
FE_FLUSH = msg(b"H")
FE_COPY_DONE = msg(b"c")


def fe_copy_data(data):
    return msg(b"d", data)


def fe_copy_fail(reason):
    return msg(b"f", cstr(reason))


def startup_message(params):
    body = struct.pack("!I", PROTOCOL_3)
    for k, v in params.items():
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


# -- parsers

def parse_startup(body):
    """Body of a StartupMessage after the length: (protocol, {key: value})."""
    if len(body) < 4:
        raise ProtocolError("startup packet too short")
    (proto,) = struct.unpack_from("!I", body, 0)
    params, pos = {}, 4
    while True:
        if pos >= len(body):
            raise ProtocolError("startup packet not terminated")
        if body[pos] == 0:
            break
        k, pos = read_cstr(body, pos)
        v, pos = read_cstr(body, pos)
        params[k] = v
    return proto, params


def parse_query(body):
    sql, _ = read_cstr(body, 0)
    return sql


def parse_parse(body):
    name, pos = read_cstr(body, 0)
    sql, pos = read_cstr(body, pos)
    if pos + 2 > len(body):
        raise ProtocolError("Parse message too short")
    (n,) = struct.unpack_from("!H", body, pos)
    if pos + 2 + 4 * n != len(body):
        raise ProtocolError("Parse message has a bad length")
    return name, sql, n


def parse_bind(body):
    """(portal, statement, number of parameter values)."""
    portal, pos = read_cstr(body, 0)
    stmt, pos = read_cstr(body, pos)
    if pos + 2 > len(body):
        raise ProtocolError("Bind message too short")
    (nfmt,) = struct.unpack_from("!H", body, pos)
    pos += 2 + 2 * nfmt
    if pos + 2 > len(body):
        raise ProtocolError("Bind message too short")
    (nparams,) = struct.unpack_from("!H", body, pos)
    return portal, stmt, nparams


def parse_describe_close(body):
    if len(body) < 2 or body[0:1] not in (b"S", b"P"):
        raise ProtocolError("bad Describe/Close message")
    name, pos = read_cstr(body, 1)
    if pos != len(body):
        raise ProtocolError("bad Describe/Close message")
    return body[0:1], name


def parse_execute(body):
    portal, pos = read_cstr(body, 0)
    if pos + 4 != len(body):
        raise ProtocolError("bad Execute message")
    return portal


def parse_error_fields(body):
    """ErrorResponse / NoticeResponse body -> {field code: value}."""
    fields, pos = {}, 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        val, pos = read_cstr(body, pos + 1)
        fields[code] = val
    return fields


def build_error_from_fields(fields, keep=("S", "V", "C", "M", "D", "H")):
    """An ErrorResponse with only the given fields of an upstream error (drops positions and
    contexts that point into the stand-in's internal statements)."""
    body = b"".join(k.encode() + cstr(fields[k]) for k in keep if k in fields) + b"\0"
    return msg(b"E", body)


def parse_row_description(body):
    """[(name, type_oid, typmod)]."""
    if len(body) < 2:
        raise ProtocolError("RowDescription too short")
    (n,) = struct.unpack_from("!H", body, 0)
    pos, cols = 2, []
    for _ in range(n):
        name, pos = read_cstr(body, pos)
        if pos + 18 > len(body):
            raise ProtocolError("RowDescription too short")
        _table, _attnum, oid, _size, typmod, _fmt = struct.unpack_from("!IhIhih", body, pos)
        pos += 18
        cols.append((name, oid, typmod))
    return cols


def parse_data_row(body):
    """[bytes or None] per column."""
    if len(body) < 2:
        raise ProtocolError("DataRow too short")
    (n,) = struct.unpack_from("!H", body, 0)
    pos, vals = 2, []
    ln = len(body)
    for _ in range(n):
        if pos + 4 > ln:
            raise ProtocolError("DataRow too short")
        (size,) = struct.unpack_from("!i", body, pos)
        pos += 4
        if size < 0:
            vals.append(None)
            continue
        if pos + size > ln:
            raise ProtocolError("DataRow too short")
        vals.append(bytes(body[pos:pos + size]))
        pos += size
    return vals
