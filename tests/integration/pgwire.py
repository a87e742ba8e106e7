"""A small PostgreSQL wire-protocol client over raw sockets, for tests that must send exactly
the bytes they mean (malformed input, _pq_ options, cancel keys) and for opening many idle
sessions cheaply (the benchmark's 1,000 idle clients).

It builds frontend messages and parses backend ones (protocol 3.0). It does not do TLS or
authentication beyond trust and cleartext; real clients are tested with real drivers.
"""

import socket
import struct
import time

PROTO_30 = 3 << 16
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


# ---- frontend messages


def startup(params, version=PROTO_30):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    return struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key)


def msg(type_, body=b""):
    return type_ + struct.pack("!I", len(body) + 4) + body


def query(sql):
    return msg(b"Q", sql.encode() + b"\0")


def terminate():
    return msg(b"X")


def parse(name, sql, param_oids=()):
    body = name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", len(param_oids))
    for oid in param_oids:
        body += struct.pack("!I", oid)
    return msg(b"P", body)


def bind(portal, stmt, params=()):
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!H", 0)
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            b = p.encode() if isinstance(p, str) else p
            body += struct.pack("!I", len(b)) + b
    body += struct.pack("!H", 0)
    return msg(b"B", body)


def describe(kind, name):
    return msg(b"D", kind + name.encode() + b"\0")


def execute(portal="", max_rows=0):
    return msg(b"E", portal.encode() + b"\0" + struct.pack("!I", max_rows))


def sync():
    return msg(b"S")


# ---- backend messages


class Msg:
    __slots__ = ("type", "body")

    def __init__(self, type_, body):
        self.type = type_
        self.body = body

    def __repr__(self):
        return f"Msg({self.type!r}, {self.body[:60]!r}{'...' if len(self.body) > 60 else ''})"

    def fields(self):
        """ErrorResponse / NoticeResponse fields as {code letter: text}."""
        out = {}
        for part in self.body.split(b"\0"):
            if part:
                out[chr(part[0])] = part[1:].decode("utf-8", "replace")
        return out

    @property
    def sqlstate(self):
        return self.fields().get("C")

    def auth_code(self):
        return struct.unpack("!I", self.body[:4])[0]


class Closed(Exception):
    """The peer closed the connection (EOF or reset)."""


class RawConn:
    def __init__(self, host, port, timeout=10.0, family=socket.AF_INET, path=None):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.backend_key = None
        self.params = {}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for the server")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed("connection reset")
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def recv_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_msg(self, timeout=None):
        """The next backend message; raises Closed on EOF and socket.timeout on silence."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < 5:
            self._fill(deadline)
        type_ = self.buf[0:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        if length < 4 or length > 1 << 30:
            raise AssertionError(f"server sent a bad length {length} for {type_!r}")
        while len(self.buf) < 1 + length:
            self._fill(deadline)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return Msg(type_, body)

    def wait_closed(self, timeout=None):
        """Reads until EOF, returning the messages seen before it; raises socket.timeout
        if the server keeps the connection open."""
        seen = []
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                seen.append(self.recv_msg(max(0.01, deadline - time.monotonic())))
        except Closed:
            return seen

    def read_until(self, types, timeout=None):
        """Messages up to and including the first whose type is in types."""
        out = []
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self.recv_msg(max(0.01, deadline - time.monotonic()))
            out.append(m)
            if m.type in types:
                return out

    def login(self, user, database, extra=None, password=None, timeout=None, version=PROTO_30):
        """Sends a startup and reads up to ReadyForQuery. Returns the messages; raises
        AssertionError on an ErrorResponse."""
        params = {"user": user, "database": database}
        params.update(extra or {})
        self.send(startup(params, version))
        msgs = []
        while True:
            m = self.recv_msg(timeout)
            msgs.append(m)
            if m.type == b"E":
                raise AssertionError(f"login failed: {m.fields()}")
            if m.type == b"R":
                code = m.auth_code()
                if code == 3 and password is not None:
                    self.send(msg(b"p", password.encode() + b"\0"))
                elif code != 0:
                    raise AssertionError(f"unsupported authentication request {code}")
            elif m.type == b"K":
                self.backend_key = struct.unpack("!II", m.body[:8])
            elif m.type == b"S":
                parts = m.body.split(b"\0")
                self.params[parts[0].decode()] = parts[1].decode() if len(parts) > 1 else ""
            elif m.type == b"Z":
                return msgs

    def simple_query(self, sql, timeout=None):
        """Runs one simple Query; returns (rows, command_tags, errors) up to ReadyForQuery.
        rows are lists of str|None."""
        self.send(query(sql))
        return self.collect(timeout)

    def collect(self, timeout=None):
        rows, tags, errors = [], [], []
        while True:
            m = self.recv_msg(timeout)
            if m.type == b"D":
                rows.append(parse_datarow(m.body))
            elif m.type == b"C":
                tags.append(m.body.rstrip(b"\0").decode())
            elif m.type == b"E":
                errors.append(m.fields())
            elif m.type == b"Z":
                return rows, tags, errors


def parse_datarow(body):
    (n,) = struct.unpack("!H", body[:2])
    pos = 2
    out = []
    for _ in range(n):
        (ln,) = struct.unpack("!i", body[pos:pos + 4])
        pos += 4
        if ln < 0:
            out.append(None)
        else:
            out.append(body[pos:pos + ln].decode("utf-8", "replace"))
            pos += ln
    return out
