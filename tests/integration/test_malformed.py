"""Malformed and hostile input over raw sockets (python socket/struct). Each case must be
answered with an ErrorResponse carrying the right SQLSTATE, or a clean close, within
seconds; and after each one another client must still get query results, and the proxy must
still be running (its exit status and sanitizer reports are checked at teardown).

Codes follow PostgreSQL: 08P01 protocol violation, 0A000 unsupported protocol version,
28000 no user name. A case may be answered by closing without an error where PostgreSQL
itself does (cancel requests, EOF mid-packet)."""

import random
import socket
import ssl
import struct
import threading
import time

import pytest

import pgwire
import wirecheck
from pgharness import rss_budget_kb, wait_until

PROTOCOL_VIOLATION = {"08P01"}


def half_close(sock):
    """shutdown(SHUT_WR), tolerating a proxy that already closed (ENOTCONN)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def raw(proxy, timeout=10.0):
    return pgwire.RawConn(proxy.host, proxy.port, timeout=timeout)


def refused(proxy, payload, codes=PROTOCOL_VIOLATION, shutdown=False, timeout=10.0):
    """Sends payload on a fresh connection and requires an error with one of codes or a
    clean close; then checks that the proxy still serves another client."""
    with raw(proxy, timeout) as c:
        c.send(payload)
        if shutdown:
            half_close(c.sock)
        kind, fields = wirecheck.error_or_close(c, timeout)
        if kind == "error":
            assert fields.get("C") in codes, fields
            assert fields.get("S") in ("FATAL", "ERROR"), fields
    wirecheck.still_serves(proxy)
    assert proxy.alive()
    return kind, fields


def logged_in(proxy, timeout=10.0):
    c = raw(proxy, timeout)
    c.login("scramuser", "rsdb", {"application_name": "malformed"})
    return c


def refused_after_login(proxy, payload, codes=PROTOCOL_VIOLATION, allow_ready=False):
    """As refused(), inside a session. With allow_ready the session may also survive the
    error (ErrorResponse, ReadyForQuery), as PostgreSQL's own does for a bad message body;
    it must then still answer queries."""
    with logged_in(proxy) as c:
        c.send(payload)
        kind, fields = wirecheck.error_or_close(c, allow_ready=allow_ready)
        if kind in ("error", "recovered"):
            assert fields.get("C") in codes, fields
        if kind == "recovered":
            rows, _, errors = c.simple_query("SELECT 'session survived'")
            assert rows == [["session survived"]] and not errors
    wirecheck.still_serves(proxy)
    assert proxy.alive()
    return kind, fields


def startup_body(params, version=pgwire.PROTO_30):
    body = struct.pack("!I", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    return body + b"\0"


# ---- startup packet framing


@pytest.mark.parametrize("length", [0, 1, 3, 4, 7])
def test_startup_length_below_minimum(proxy, length):
    refused(proxy, struct.pack("!I", length) + b"\0" * 8)


@pytest.mark.parametrize("length", [0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 10001, 1 << 30])
def test_startup_huge_or_negative_length_is_refused_at_once(proxy, length):
    # Only the header and a few bytes are sent: the proxy must refuse on the length alone,
    # not wait for (or allocate) the body.
    t0 = time.monotonic()
    refused(proxy, struct.pack("!II", length, pgwire.PROTO_30) + b"user\0")
    assert time.monotonic() - t0 < 8
    assert proxy.rss_kb() < rss_budget_kb(64)


def test_startup_over_10000_bytes(proxy):
    body = startup_body({"user": "scramuser", "database": "rsdb",
                         "application_name": "x" * 10100})
    refused(proxy, struct.pack("!I", len(body) + 4) + body)


def test_startup_of_9000_bytes_is_fine(proxy):
    with raw(proxy) as c:
        c.login("scramuser", "rsdb", {"application_name": "ok",
                                      "options": "-c search_path=" + "s" * 8900})
        rows, _, errors = c.simple_query("SELECT length(current_setting('search_path'))")
        assert not errors and rows == [["8900"]]


def test_truncated_startup_then_eof(proxy):
    body = startup_body({"user": "scramuser", "database": "rsdb"})
    payload = struct.pack("!I", len(body) + 4) + body
    refused(proxy, payload[:len(payload) // 2], shutdown=True)


def test_truncated_header_then_eof(proxy):
    refused(proxy, b"\x00\x00", shutdown=True)


@pytest.mark.parametrize("major,minor", [(1, 0), (2, 0), (4, 0), (0, 0), (1234, 5681)])
def test_unknown_protocol_versions(proxy, major, minor):
    body = startup_body({"user": "scramuser", "database": "rsdb"}, (major << 16) | minor)
    refused(proxy, struct.pack("!I", len(body) + 4) + body, codes={"0A000", "08P01"})


def test_protocol_3_99_is_negotiated_down_or_refused(proxy):
    body = startup_body({"user": "scramuser", "database": "rsdb"}, (3 << 16) | 99)
    with raw(proxy) as c:
        c.send(struct.pack("!I", len(body) + 4) + body)
        first = c.recv_msg()
        if first.type == b"v":
            # PostgreSQL's answer: NegotiateProtocolVersion with the newest version it speaks,
            # then the session goes on as 3.0.
            newest, count = struct.unpack("!II", first.body[:8])
            assert newest == pgwire.PROTO_30 and count == 0
            msgs = c.read_until({b"Z", b"E"})
            assert msgs[-1].type == b"Z", msgs
            assert c.simple_query("SELECT 1")[0] == [["1"]]
        else:
            assert first.type == b"E" and first.sqlstate in ("0A000", "08P01"), first
            assert c.wait_closed() == []
    wirecheck.still_serves(proxy)


def test_startup_without_user(proxy):
    body = startup_body({"database": "rsdb"})
    refused(proxy, struct.pack("!I", len(body) + 4) + body, codes={"28000", "08P01"})


def test_startup_without_final_terminator(proxy):
    body = struct.pack("!I", pgwire.PROTO_30) + b"user\0scramuser\0database\0rsdb\0"
    refused(proxy, struct.pack("!I", len(body) + 4) + body)


def test_startup_with_unterminated_value(proxy):
    body = struct.pack("!I", pgwire.PROTO_30) + b"user\0scramuser\0database\0rsdb"
    refused(proxy, struct.pack("!I", len(body) + 4) + body)


def test_startup_with_name_but_no_value(proxy):
    body = struct.pack("!I", pgwire.PROTO_30) + b"user\0scramuser\0database\0\0"
    # Either a layout error, or the empty-valued key is taken literally; both are fine as
    # long as the answer is an error or a session, never a hang or a crash.
    with raw(proxy) as c:
        c.send(struct.pack("!I", len(body) + 4) + body)
        m = c.recv_msg()
        assert m.type in (b"E", b"R"), m
        if m.type == b"E":
            assert m.sqlstate in ("08P01", "3D000", "28000"), m.fields()
    wirecheck.still_serves(proxy)


# ---- SSL/GSS/cancel preambles


def test_garbage_after_sslrequest(proxy):
    with raw(proxy) as c:
        c.send(pgwire.ssl_request())
        assert c.recv_exact(1) == b"N"
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        kind, fields = wirecheck.error_or_close(c)
        if kind == "error":
            assert fields["C"] == "08P01", fields
    wirecheck.still_serves(proxy)


def test_plaintext_pipelined_behind_sslrequest(proxy):
    """Bytes sent right behind an SSLRequest, before the answer (the CVE-2021-23214 class).
    Answering 'N' and reading them as the plaintext startup is safe (no TLS starts), and so
    is refusing them; anything else is not."""
    with raw(proxy) as c:
        c.send(pgwire.ssl_request() + pgwire.startup({"user": "scramuser", "database": "rsdb"}))
        first = c.recv_exact(1)
        if first == b"E":  # refused outright, without answering the SSLRequest
            c.buf = first + c.buf
            kind, fields = wirecheck.error_or_close(c)
            assert fields["C"] == "08P01", fields
        else:
            assert first == b"N"
            m = c.recv_msg()
            if m.type == b"E":
                assert m.sqlstate == "08P01"
            else:
                assert m.type == b"R" and m.auth_code() == 0, m
    wirecheck.still_serves(proxy)


def test_two_sslrequests(proxy):
    with raw(proxy) as c:
        c.send(pgwire.ssl_request())
        assert c.recv_exact(1) == b"N"
        c.send(pgwire.ssl_request())
        try:
            b = c.recv_exact(1)
        except pgwire.Closed:
            b = None
        if b == b"N":
            c.login("scramuser", "rsdb")
        elif b is not None:
            # The first byte of an ErrorResponse.
            assert b == b"E"
            c.buf = b"E" + c.buf
            kind, fields = wirecheck.error_or_close(c)
            # PostgreSQL reads the second one as protocol version 1234.5679: 0A000.
            assert fields["C"] in ("0A000", "08P01"), fields
    wirecheck.still_serves(proxy)


def client_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["postgresql"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_tls_clienthello_sent_directly(proxy):
    hello = client_hello()
    assert hello[0] == 0x16
    refused(proxy, hello)


@pytest.mark.parametrize("size", [12, 20, 8])
def test_cancel_request_with_wrong_size(proxy, size):
    payload = struct.pack("!II", size, pgwire.CANCEL_REQUEST_CODE) + b"\x01" * (size - 8)
    kind, _ = refused(proxy, payload)


def test_cancel_request_for_unknown_key(proxy):
    with raw(proxy) as c:
        c.send(pgwire.cancel_request(12345, 67890))
        assert c.wait_closed() == []
    wirecheck.still_serves(proxy)


def test_cancel_request_truncated(proxy):
    refused(proxy, struct.pack("!II", 16, pgwire.CANCEL_REQUEST_CODE) + b"\x00\x01",
            shutdown=True)


# ---- after login


def test_unknown_message_types_after_login(proxy):
    for t in (b"\x01", b"z", b"\xff", b"A"):
        refused_after_login(proxy, t + struct.pack("!I", 4))


def test_query_without_nul(proxy):
    # PostgreSQL answers "invalid string in message" as a plain ERROR and goes on.
    refused_after_login(proxy, b"Q" + struct.pack("!I", 4 + 8) + b"SELECT 1", allow_ready=True)


def test_message_length_below_4_after_login(proxy):
    refused_after_login(proxy, b"Q" + struct.pack("!I", 3))


def test_message_claiming_1gb(proxy):
    t0 = time.monotonic()
    refused_after_login(proxy, b"Q" + struct.pack("!I", 1 << 30) + b"SELECT 1",
                        codes={"08P01", "54000", "08006"})
    assert time.monotonic() - t0 < 10
    assert proxy.rss_kb() < rss_budget_kb(64)


def test_error_survives_the_rest_of_a_big_send(proxy):
    """A refused message followed by 8 MB more, in one send: rsproxy throws the rest away after
    its error (and FIN) instead of closing on unread input, which would send an RST that fails
    the client's send. The client finishes sending, then reads the error and the close."""
    with logged_in(proxy, timeout=30) as c:
        c.send(b"Q" + struct.pack("!I", 1 << 30) + b"x" * (8 << 20))
        msgs = c.wait_closed(30)
        assert [m.type for m in msgs] == [b"E"], msgs
        assert msgs[0].fields()["C"] in {"08P01", "54000"}, msgs[0].fields()
    wirecheck.still_serves(proxy)


def test_parse_claiming_2gb(proxy):
    refused_after_login(proxy, b"P" + struct.pack("!I", 0x7FFFFFF0) + b"\0SELECT",
                        codes={"08P01", "54000", "08006"})


def test_copydata_outside_copy_is_ignored(proxy):
    # PostgreSQL accepts and ignores CopyData/CopyDone outside COPY (protocol spec).
    with logged_in(proxy) as c:
        c.send(pgwire.msg(b"d", b"stray") + pgwire.msg(b"c"))
        rows, _, errors = c.simple_query("SELECT 'fine'")
        assert rows == [["fine"]] and not errors


def test_extended_protocol_errors_recover_at_sync(proxy):
    with logged_in(proxy) as c:
        c.send(pgwire.bind("", "no_such_statement") + pgwire.execute() + pgwire.sync())
        rows, tags, errors = c.collect()
        assert [e["C"] for e in errors] == ["26000"]
        c.send(pgwire.parse("s1", "SELECT $1::int + 1", (23,)) + pgwire.bind("", "s1", ["41"]) +
               pgwire.execute() + pgwire.sync())
        rows, tags, errors = c.collect()
        assert rows == [["42"]] and not errors


def test_pipelined_burst_of_queries(proxy):
    with logged_in(proxy, timeout=30) as c:
        c.send(b"".join(pgwire.query(f"SELECT {i}") for i in range(2000)))
        for i in range(2000):
            rows, _, errors = c.collect(30)
            assert rows == [[str(i)]] and not errors


def test_query_sent_one_byte_at_a_time(proxy):
    with logged_in(proxy) as c:
        for b in pgwire.query("SELECT 'trickled'"):
            c.send(bytes([b]))
            time.sleep(0.002)
        rows, _, errors = c.collect()
        assert rows == [["trickled"]]


def test_terminate_then_garbage(proxy, pg):
    with logged_in(proxy) as c:
        c.send(pgwire.terminate() + b"\xde\xad\xbe\xef" * 100)
        assert c.wait_closed() == []
    wait_until(lambda: not pg.backends(user="scramuser"), 10, what="the backend to go")
    wirecheck.still_serves(proxy)


def test_random_bytes_as_startup(proxy):
    rng = random.Random(20240501)
    for i in range(40):
        n = rng.choice([1, 4, 7, 8, 9, 16, 100, 1000, 5000])
        payload = bytes(rng.getrandbits(8) for _ in range(n))
        with raw(proxy, timeout=10) as c:
            try:
                c.send(payload)
            except (BrokenPipeError, ConnectionResetError):
                continue  # closed while we were still sending: a clean refusal
            half_close(c.sock)
            try:
                msgs = c.wait_closed(10)
            except socket.timeout:
                raise AssertionError(f"no close for random startup #{i}: {payload[:16]!r}")
            assert all(m.type in (b"E", b"N") for m in msgs), (i, msgs)
    wirecheck.still_serves(proxy)


def test_random_messages_after_login(proxy):
    rng = random.Random(7)
    valid = set(b"BCDEFHPQSXcdfp")
    for i in range(20):
        t = rng.choice([x for x in range(256) if x not in valid])
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        refused_after_login(proxy, bytes([t]) + struct.pack("!I", len(body) + 4) + body)


# ---- timing attacks on the proxy's resources


def test_slowloris_startup_trickled_byte_by_byte(proxy):
    payload = pgwire.startup({"user": "scramuser", "database": "rsdb"})
    with raw(proxy, timeout=30) as c:
        for i, b in enumerate(payload):
            c.send(bytes([b]))
            time.sleep(0.03)
            if i == len(payload) // 2:
                # Half-way through, other clients are served as usual.
                wirecheck.still_serves(proxy)
        msgs = c.read_until({b"Z", b"E"})
        assert msgs[-1].type == b"Z", msgs
        assert c.simple_query("SELECT 'slow but fine'")[0] == [["slow but fine"]]


def test_stalled_startups_do_not_block_others(proxy):
    stalled = []
    try:
        for _ in range(20):
            c = raw(proxy)
            c.send(pgwire.startup({"user": "scramuser", "database": "rsdb"})[:10])
            stalled.append(c)
        for _ in range(3):
            wirecheck.still_serves(proxy)
    finally:
        for c in stalled:
            c.close()
    wirecheck.still_serves(proxy)


def test_half_close_after_startup(proxy, pg):
    with raw(proxy) as c:
        c.send(pgwire.startup({"user": "scramuser", "database": "rsdb",
                               "application_name": "half-close"}))
        half_close(c.sock)
        msgs = c.wait_closed(10)
        assert all(m.type in (b"R", b"S", b"K", b"Z", b"E") for m in msgs), msgs
    wait_until(lambda: not pg.backends(user="scramuser"), 10, what="the backend to go")
    wirecheck.still_serves(proxy)


def test_half_close_after_query(proxy, pg):
    with logged_in(proxy) as c:
        c.send(pgwire.query("SELECT 'answered'"))
        half_close(c.sock)
        msgs = c.wait_closed(10)
        # Either the answer comes back before the close, or the proxy closes at once.
        datarows = [m for m in msgs if m.type == b"D"]
        assert datarows == [] or pgwire.parse_datarow(datarows[0].body) == ["answered"]
    wait_until(lambda: not pg.backends(user="scramuser"), 10, what="the backend to go")


def test_many_connections_opened_and_dropped(proxy, pg):
    base_fds = proxy.open_fds()
    startup = pgwire.startup({"user": "scramuser", "database": "rsdb"})

    def churn(kind, n):
        for _ in range(n):
            s = socket.create_connection((proxy.host, proxy.port), timeout=10)
            if kind == "partial":
                s.sendall(startup[:7])
            elif kind == "full":
                s.sendall(startup)
            elif kind == "ssl":
                s.sendall(pgwire.ssl_request())
            if kind == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    threads = [threading.Thread(target=churn, args=(k, 60))
               for k in ("bare", "partial", "full", "ssl", "rst")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The kernel may still hold dropped connections in the listen backlog. rsproxy accepts them
    # in one burst and counts each until it reads its EOF: a login in that loop turn can meet
    # 53300 (over max_client_conn, 100) or a close at once (over the hard cap of 2 x 100 + 64
    # descriptors). Both are the right answers at that instant, so retry on them (and only on
    # them); on a loaded 2-core machine under ASan the 60 upstream logins may take seconds. Then
    # every dropped client's upstream (for the "full" ones) and descriptor must be released.
    deadline = time.monotonic() + 30
    while True:
        try:
            wirecheck.still_serves(proxy, timeout=30)
            break
        except (AssertionError, pgwire.Closed, ConnectionError) as e:
            if isinstance(e, AssertionError) and "'53300'" not in str(e):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    wait_until(lambda: not pg.backends(user="scramuser"), 40, what="upstreams to close")
    wait_until(lambda: proxy.open_fds() <= base_fds + 2, 40,
               what=f"file descriptors back near {base_fds} (leak?)")
