"""Assertions shared by the raw-socket tests: what a client of rsproxy sees at the wire."""

import socket
import time

import pgwire


def login_error(host, port, user="scramuser", database="rsdb", timeout=10.0, extra=None):
    """Sends a startup and expects the proxy to refuse the session: returns (fields, seconds)
    of the ErrorResponse. Messages before it (an early AuthenticationOk, ParameterStatus) are
    allowed, ReadyForQuery is not. The connection must close after the error."""
    t0 = time.monotonic()
    with pgwire.RawConn(host, port, timeout=timeout) as c:
        params = {"user": user, "database": database}
        params.update(extra or {})
        c.send(pgwire.startup({k: v for k, v in params.items() if v is not None}))
        seen = []
        while True:
            try:
                m = c.recv_msg(timeout)
            except pgwire.Closed:
                raise AssertionError(f"connection closed without an ErrorResponse after {seen}")
            except socket.timeout:
                raise AssertionError(f"no ErrorResponse within {timeout}s (seen: {seen})")
            seen.append(m)
            if m.type == b"Z":
                raise AssertionError(f"the session was accepted: {seen}")
            if m.type == b"E":
                elapsed = time.monotonic() - t0
                try:
                    rest = c.wait_closed(timeout)
                except socket.timeout:
                    raise AssertionError("the connection stayed open after a fatal error")
                assert not rest, f"messages after the fatal error: {rest}"
                return m.fields(), elapsed


def login_ok(host, port, user="scramuser", database="rsdb", timeout=10.0, extra=None):
    """Logs in over a raw socket and runs SELECT 1; returns the RawConn (caller closes)."""
    c = pgwire.RawConn(host, port, timeout=timeout)
    c.login(user, database, extra)
    rows, tags, errors = c.simple_query("SELECT 1")
    assert rows == [["1"]] and not errors, (rows, errors)
    return c


def still_serves(proxy, timeout=10.0):
    """Another client still gets query results through the proxy."""
    with login_ok(proxy.host, proxy.port, timeout=timeout) as c:
        rows, _, errors = c.simple_query("SELECT 'still', 'serving'")
        assert rows == [["still", "serving"]] and not errors


def error_or_close(conn, timeout=10.0, allow_ready=False):
    """Reads what the proxy answers to something it must refuse: returns ("error", fields)
    for an ErrorResponse (and then requires the close), or ("closed", None) for a clean close.
    With allow_ready, an ErrorResponse followed by ReadyForQuery (PostgreSQL's answer to a
    malformed message body inside a session, a plain ERROR) returns ("recovered", fields).
    Any other message, or silence, fails."""
    try:
        m = conn.recv_msg(timeout)
    except pgwire.Closed:
        return "closed", None
    except socket.timeout:
        raise AssertionError(f"neither an error nor a close within {timeout}s")
    if m.type != b"E":
        raise AssertionError(f"expected ErrorResponse or close, got {m}")
    if allow_ready:
        try:
            nxt = conn.recv_msg(timeout)
        except pgwire.Closed:
            return "error", m.fields()
        except socket.timeout:
            raise AssertionError("neither ReadyForQuery nor a close after the error")
        assert nxt.type == b"Z", f"after the error: {nxt}"
        return "recovered", m.fields()
    try:
        rest = conn.wait_closed(timeout)
    except socket.timeout:
        raise AssertionError("the connection stayed open after a fatal error")
    assert not rest, f"messages after the fatal error: {rest}"
    return "error", m.fields()
