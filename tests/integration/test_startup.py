"""The client side of the session start: SSLRequest and GSSENCRequest answered 'N', _pq_
options reported with NegotiateProtocolVersion, startup parameters relayed, max_client_conn
(53300), CancelRequest with the proxy's own key, listeners (several addresses, Unix socket),
and the configuration checks that keep trust on loopback."""

import os
import signal
import socket
import struct
import threading
import time

import psycopg
import pytest

import pgwire
import wirecheck
from pgharness import wait_until


def test_sslrequest_is_answered_n_and_libpq_falls_back(proxy):
    with pgwire.RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.ssl_request())
        assert c.recv_exact(1) == b"N"
        c.login("scramuser", "rsdb")
        assert c.simple_query("SELECT 1")[0] == [["1"]]
    # libpq's default sslmode=prefer sends SSLRequest first, then continues in plaintext.
    with psycopg.connect(proxy.dsn(sslmode="prefer")) as conn:
        assert conn.pgconn.ssl_in_use is False
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_client_requiring_ssl_gets_a_clear_error(proxy):
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="(?i)ssl"):
        psycopg.connect(proxy.dsn(sslmode="require"))
    assert time.monotonic() - t0 < 10


def test_gssencrequest_is_answered_n(proxy):
    with pgwire.RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.gssenc_request())
        assert c.recv_exact(1) == b"N"
        c.login("scramuser", "rsdb")
        assert c.simple_query("SELECT 2")[0] == [["2"]]
    # And both, in the order libpq uses (GSSENC first, then SSL).
    with pgwire.RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.gssenc_request())
        assert c.recv_exact(1) == b"N"
        c.send(pgwire.ssl_request())
        assert c.recv_exact(1) == b"N"
        c.login("scramuser", "rsdb")


def test_pq_options_get_negotiate_protocol_version(proxy):
    with pgwire.RawConn(proxy.host, proxy.port) as c:
        c.send(pgwire.startup({"user": "scramuser", "database": "rsdb",
                               "_pq_.test_option": "on", "_pq_.other": "1",
                               "application_name": "pq-test"}))
        msgs = c.read_until({b"Z", b"E"})
        types = [m.type for m in msgs]
        assert b"E" not in types, msgs
        negotiations = [m for m in msgs if m.type == b"v"]
        assert len(negotiations) == 1, msgs
        body = negotiations[0].body
        newest, count = struct.unpack("!II", body[:8])
        names = [n.decode() for n in body[8:].split(b"\0") if n]
        # PostgreSQL sends the full newest version, 3.0 (PG_PROTOCOL_LATEST), here.
        assert newest == pgwire.PROTO_30
        assert count == 2 and sorted(names) == ["_pq_.other", "_pq_.test_option"]
        # NegotiateProtocolVersion comes before the authentication exchange ends.
        assert types.index(b"v") < types.index(b"Z")
        assert any(m.type == b"R" and m.auth_code() == 0 for m in msgs)
        rows, _, errors = c.simple_query("SHOW application_name")
        assert rows == [["pq-test"]] and not errors


def test_startup_parameters_are_relayed(proxy):
    with psycopg.connect(proxy.dsn(options="-c statement_timeout=4321 -c search_path=pg_catalog",
                                   application_name="relay-check")) as c:
        assert c.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"
        assert c.execute("SHOW search_path").fetchone()[0] == "pg_catalog"
        assert c.execute("SHOW application_name").fetchone()[0] == "relay-check"
        # The ParameterStatus values the client saw came from upstream.
        assert c.info.parameter_status("server_version").startswith("15")
        assert c.info.parameter_status("application_name") == "relay-check"
        assert c.info.parameter_status("server_encoding") == "UTF8"


def test_missing_database_defaults_to_user_and_upstream_error_is_relayed(proxy):
    # PostgreSQL's rule: database defaults to the user name; no such database here (3D000).
    fields, _ = wirecheck.login_error(proxy.host, proxy.port, user="scramuser", database=None)
    assert fields.get("C") == "3D000", fields
    assert "scramuser" in fields.get("M", "")
    wirecheck.still_serves(proxy)


def test_nonexistent_database_error_is_relayed(proxy):
    fields, _ = wirecheck.login_error(proxy.host, proxy.port, database="no_such_db")
    assert fields.get("C") == "3D000", fields
    assert "no_such_db" in fields.get("M", "")


def test_max_client_conn(proxy_factory, pg):
    p = proxy_factory({"proxy": {"max_client_conn": "3"}})
    held = [wirecheck.login_ok(p.host, p.port) for _ in range(3)]
    try:
        fields, _ = wirecheck.login_error(p.host, p.port)
        assert fields.get("C") == "53300", fields
        # A refused client never reached upstream.
        assert len(pg.backends(user="scramuser")) == 3
        held.pop().close()
        # The slot frees up once the proxy sees the close.
        c = p.wait_until(lambda: try_login(p), 10, what="a free client slot")
        c.close()
    finally:
        for c in held:
            c.close()


def try_login(p):
    try:
        return wirecheck.login_ok(p.host, p.port)
    except AssertionError:
        return None


def test_cancel_request_with_the_proxys_key(proxy, pg):
    with pgwire.RawConn(proxy.host, proxy.port, timeout=30) as c:
        c.login("scramuser", "rsdb", {"application_name": "raw-cancel"})
        assert c.backend_key is not None, "no BackendKeyData from the proxy"
        pid, key = c.backend_key
        c.send(pgwire.query("SELECT pg_sleep(30)"))
        wait_until(lambda: any(r[4] == "SELECT pg_sleep(30)" and r[3] == "active"
                               for r in pg.backends()), 10, what="pg_sleep upstream")
        # A wrong key cancels nothing; the proxy just closes that connection.
        with pgwire.RawConn(proxy.host, proxy.port) as bad:
            bad.send(pgwire.cancel_request(pid, key ^ 0x5A5A5A5A))
            assert bad.wait_closed(10) == []
        time.sleep(1)
        assert any(r[4] == "SELECT pg_sleep(30)" and r[3] == "active" for r in pg.backends())
        t0 = time.monotonic()
        with pgwire.RawConn(proxy.host, proxy.port) as cancel:
            cancel.send(pgwire.cancel_request(pid, key))
            assert cancel.wait_closed(10) == []
        rows, tags, errors = c.collect(timeout=10)
        assert [e.get("C") for e in errors] == ["57014"], errors
        assert time.monotonic() - t0 < 5
        rows, _, errors = c.simple_query("SELECT 'after cancel'")
        assert rows == [["after cancel"]]


def test_backend_keys_are_distinct_per_client(proxy):
    keys = set()
    conns = [wirecheck.login_ok(proxy.host, proxy.port) for _ in range(10)]
    try:
        for c in conns:
            keys.add(c.backend_key)
        assert len(keys) == 10
    finally:
        for c in conns:
            c.close()


def test_several_listen_addresses(proxy_factory):
    p = proxy_factory({"proxy": {"listen_addr": "127.0.0.1,127.0.0.2"}})
    for host in ("127.0.0.1", "127.0.0.2"):
        with psycopg.connect(p.dsn(host=host)) as c:
            assert c.execute("SELECT 1").fetchone()[0] == 1


@pytest.mark.parametrize("addr", ["localhost", "*"])
def test_listen_addr_by_host_name_and_wildcard(proxy_factory, addr):
    """A host name binds every address it resolves to, "*" every interface (IPv4 and, where
    the host has it, IPv6), all on the one port."""
    extra = {"allow_remote_trust": "true"} if addr == "*" else {}
    p = proxy_factory({"proxy": {"listen_addr": addr, **extra}})
    if addr == "localhost":
        hosts = sorted({ai[4][0] for ai in socket.getaddrinfo("localhost", None,
                                                             type=socket.SOCK_STREAM)})
    else:
        hosts = ["127.0.0.1"]
        if socket.has_ipv6 and os.path.exists("/proc/net/if_inet6"):
            hosts.append("::1")
    for host in hosts:
        with psycopg.connect(p.dsn(host=host)) as c:
            assert c.execute("SELECT 1").fetchone()[0] == 1


def test_unix_socket(proxy_factory, workdir):
    sockdir = os.path.join(workdir, "proxy-sock")
    os.makedirs(sockdir, exist_ok=True)
    p = proxy_factory({"proxy": {"unix_socket_dir": sockdir}})
    path = os.path.join(sockdir, f".s.PGSQL.{p.port}")
    wait_until(lambda: os.path.exists(path), 5, what="the Unix socket")
    with psycopg.connect(p.dsn(host=sockdir)) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "scramuser"
    with pgwire.RawConn(None, None, path=path) as c:
        c.login("scramuser", "rsdb")
        assert c.simple_query("SELECT 3")[0] == [["3"]]
    p.stop_and_check()
    # The socket file is removed on shutdown.
    assert not os.path.exists(path)


@pytest.mark.parametrize("addr", ["0.0.0.0", "::", "192.0.2.10", "127.0.0.1,0.0.0.0"])
def test_trust_on_a_non_loopback_address_is_refused(proxy_factory, addr):
    p = proxy_factory({"proxy": {"listen_addr": addr}}, start=False)
    rc, log = p.start_expect_failure()
    assert rc != 0
    assert "allow_remote_trust" in log
    check = p.run_check()
    assert check.returncode != 0
    assert "allow_remote_trust" in check.stdout


def test_trust_on_a_non_loopback_address_with_explicit_opt_in_passes_check(proxy_factory):
    p = proxy_factory({"proxy": {"listen_addr": "0.0.0.0", "allow_remote_trust": "true"}},
                      start=False)
    check = p.run_check()
    assert check.returncode == 0, check.stdout


def test_check_reports_file_and_line(proxy_factory):
    p = proxy_factory({"proxy": {"no_such_key": "1"}}, start=False)
    check = p.run_check()
    assert check.returncode != 0
    assert f"{p.ini}:" in check.stdout and "no_such_key" in check.stdout, check.stdout


def test_check_connects_upstream(proxy_factory, certs):
    ok = proxy_factory(start=False).run_check()
    assert ok.returncode == 0, ok.stdout
    bad = proxy_factory({"upstream": {"sslrootcert": certs.other_ca.cert}}, start=False)
    out = bad.run_check()
    assert out.returncode != 0 and "certificate" in out.stdout.lower(), out.stdout


def test_concurrent_logins(proxy, pg):
    """Fifty clients log in at once, each runs a query; all succeed, all upstreams close."""
    errors = []

    def one(i):
        try:
            with psycopg.connect(proxy.dsn()) as c:
                assert c.execute("SELECT %s::int", (i,)).fetchone()[0] == i
        except Exception as e:  # collected and asserted below
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    wait_until(lambda: not pg.backends(user="scramuser"), 10, what="upstreams to close")


def test_idle_session_survives_a_while(proxy):
    with psycopg.connect(proxy.dsn()) as c:
        c.execute("SELECT 1")
        time.sleep(3)
        assert c.execute("SELECT 2").fetchone()[0] == 2


def test_reload_keeps_sessions(proxy):
    with psycopg.connect(proxy.dsn()) as c:
        cfg = proxy.config
        cfg["proxy"]["max_client_conn"] = "50"
        proxy.reload(cfg)
        time.sleep(0.5)
        assert proxy.alive()
        assert c.execute("SELECT 'kept'").fetchone()[0] == "kept"
    with psycopg.connect(proxy.dsn()) as c:
        assert c.execute("SELECT 'new'").fetchone()[0] == "new"


def test_restart_with_a_session_open(proxy):
    """SIGTERM while a client is connected: rsproxy drains and exits 0, then starts again on
    the same port."""
    c = wirecheck.login_ok(proxy.host, proxy.port)
    try:
        assert proxy.restart() == 0
    finally:
        c.close()
    wirecheck.still_serves(proxy)


def test_drain_closes_a_session_idle_after_an_extended_copy_in(proxy):
    """libpq's extended-protocol COPY FROM STDIN (PQexecParams, then PQputCopyEnd) sends a
    Sync after the Execute, which the server ignores in copy-in mode, and another after
    CopyDone: two Syncs, one ReadyForQuery. The session is idle afterwards, so SIGTERM's drain
    closes it at once with 57P01 like any idle session, instead of waiting out the drain
    timeout (30 s) for an answer that never comes."""
    c = wirecheck.login_ok(proxy.host, proxy.port)
    try:
        rows, _, errors = c.simple_query("CREATE TEMP TABLE xcopy (a int)")
        assert not errors, errors
        c.send(pgwire.parse("", "COPY xcopy FROM STDIN") + pgwire.bind("", "")
               + pgwire.describe(b"P", "") + pgwire.execute() + pgwire.sync())
        got = [m.type for m in c.read_until({b"G"})]
        assert got == [b"1", b"2", b"n", b"G"], got
        c.send(pgwire.msg(b"d", b"1\n2\n") + pgwire.msg(b"c") + pgwire.sync())
        got = [m.type for m in c.read_until({b"Z"})]
        assert got == [b"C", b"Z"], got
        rows, _, errors = c.simple_query("SELECT count(*) FROM xcopy")
        assert rows == [["2"]] and not errors, (rows, errors)
        proxy.signal(signal.SIGTERM)
        kind, fields = wirecheck.error_or_close(c, timeout=10)
        assert kind == "error" and fields["C"] == "57P01", (kind, fields)
    finally:
        c.close()
    assert proxy.proc.wait(30) == 0  # drained: exits by itself
    proxy.restart()
    wirecheck.still_serves(proxy)


def test_raw_socket_helpers_work_against_postgres_directly(pg):
    """The raw-socket client used by these tests, checked against PostgreSQL's own answers
    (over the Unix socket, trust)."""
    path = os.path.join(pg.sockdir, f".s.PGSQL.{pg.port}")
    with pgwire.RawConn(None, None, path=path) as c:
        c.send(pgwire.startup({"user": "postgres", "database": "postgres",
                               "_pq_.x": "1"}))
        msgs = c.read_until({b"Z"})
        assert msgs[0].type == b"v"
        assert struct.unpack("!II", msgs[0].body[:8]) == (pgwire.PROTO_30, 1)
    with pgwire.RawConn(None, None, path=path) as c:
        c.send(pgwire.startup({"user": "postgres"}, version=4 << 16))
        kind, fields = wirecheck.error_or_close(c)
        assert kind == "error" and fields["C"] == "0A000"
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.close()
