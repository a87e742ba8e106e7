"""Connection loss on either side, and upstreams that cannot be reached or misbehave.

Upstream side: a backend killed with pg_terminate_backend (idle or mid-query), the whole
server going down, nothing listening, a peer that never answers (connect_timeout), garbage
instead of the SSLRequest answer. The client must get an ErrorResponse (upstream's own code,
or 08006 connection lost / 08001 cannot connect) and a close, quickly; other clients go on.

Client side: a client that vanishes mid-query, mid-transaction or mid-result; its upstream
session must go away (the running query cancelled, the transaction rolled back)."""

import socket
import struct
import threading
import time

import psycopg
import pytest

import pgwire
import wirecheck
from pgharness import free_port, rss_budget_kb, wait_until

LOST = {"57P01", "08006", "57P02", "57P03", "08P01"}


def backend_pid(pg, appname):
    rows = pg.sql("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                  (appname,))
    return rows[0][0] if rows else None


def raw_session(proxy, appname, timeout=10.0):
    c = pgwire.RawConn(proxy.host, proxy.port, timeout=timeout)
    c.login("scramuser", "rsdb", {"application_name": appname})
    return c


# ---- upstream loses the session


def test_terminated_idle_backend(proxy, pg):
    other = raw_session(proxy, "bystander")
    with raw_session(proxy, "victim-idle") as c:
        pid = wait_until(lambda: backend_pid(pg, "victim-idle"), 5, what="victim backend")
        assert pg.sql_value("SELECT pg_terminate_backend(%s)", (pid,)) is True
        # The client is idle: the proxy must relay the loss without being asked.
        kind, fields = wirecheck.error_or_close(c, timeout=10)
        if kind == "error":
            assert fields["C"] in LOST, fields
    rows, _, errors = other.simple_query("SELECT 'unaffected'")
    assert rows == [["unaffected"]]
    other.close()
    wirecheck.still_serves(proxy)


def test_terminated_backend_mid_query(proxy, pg):
    with psycopg.connect(proxy.dsn(application_name="victim-busy")) as c, \
            psycopg.connect(proxy.dsn(application_name="bystander2")) as other:
        def kill_when_running():
            pid = wait_until(lambda: backend_pid(pg, "victim-busy"), 5, what="victim")
            wait_until(lambda: pg.sql_value("SELECT state FROM pg_stat_activity WHERE pid = %s",
                                            (pid,)) == "active", 10, what="the query")
            pg.sql("SELECT pg_terminate_backend(%s)", (pid,))
        t = threading.Thread(target=kill_when_running)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            c.execute("SELECT pg_sleep(60)")
        t.join()
        assert time.monotonic() - t0 < 15
        assert ei.value.sqlstate in LOST | {None}, ei.value.sqlstate
        assert "terminat" in str(ei.value) or "lost" in str(ei.value) or \
            "closed" in str(ei.value), str(ei.value)
        assert other.execute("SELECT 'still here'").fetchone()[0] == "still here"


def test_server_going_down_and_coming_back(proxy_factory, make_cluster):
    down = make_cluster("goesdown")
    p = proxy_factory(pg_cluster=down)
    c = raw_session(p, "server-down")
    down.stop(mode="fast")
    kind, fields = wirecheck.error_or_close(c, timeout=15)
    if kind == "error":
        assert fields["C"] in LOST, fields
    c.close()
    # Nothing listens now: a new client is refused with 08001, quickly.
    fields, elapsed = wirecheck.login_error(p.host, p.port)
    assert fields["C"] == "08001", fields
    assert elapsed < 5
    # The proxy did not give up on the upstream for good.
    down.start(port=down.port)
    wirecheck.still_serves(p)


def test_nothing_listening_upstream(proxy_factory, slow):
    p = proxy_factory({"upstream": {"port": str(free_port())}})
    fields, elapsed = wirecheck.login_error(p.host, p.port)
    assert fields["C"] == "08001", fields
    assert elapsed < 5 * slow
    wirecheck.login_error(p.host, p.port)  # and again: nothing was left half-open
    assert p.alive()


class FakeUpstream:
    """A TCP server on loopback that misbehaves in one way per connection."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            try:
                if self.mode == "silent":
                    continue  # accept and never answer
                c.settimeout(5)
                req = c.recv(8)
                if self.mode == "garbage":
                    c.sendall(b"X")
                elif self.mode == "close-after-s":
                    c.sendall(b"S")
                    c.close()
                elif self.mode == "not-tls":
                    c.sendall(b"S" + b"this is not a TLS server hello\r\n" * 10)
                elif self.mode == "http":
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    c.close()
                assert len(req) in (0, 8)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("mode", ["garbage", "close-after-s", "not-tls", "http"])
def test_misbehaving_upstream(proxy_factory, mode, slow):
    fake = FakeUpstream(mode)
    try:
        p = proxy_factory({"upstream": {"port": str(fake.port), "host": "localhost"}})
        fields, elapsed = wirecheck.login_error(p.host, p.port)
        assert fields["C"] == "08001", fields
        assert elapsed < 8 * slow
    finally:
        fake.close()


def test_silent_upstream_hits_connect_timeout(proxy_factory, slow):
    fake = FakeUpstream("silent")
    try:
        p = proxy_factory({"upstream": {"port": str(fake.port), "connect_timeout": "2"}})
        fields, elapsed = wirecheck.login_error(p.host, p.port, timeout=30)
        assert fields["C"] == "08001", fields
        assert 1.5 <= elapsed < 2 + 3 * slow, f"refused after {elapsed:.1f}s"
    finally:
        fake.close()


# A DNS label longer than 63 bytes cannot be put in a query: glibc's resolver fails it
# without sending anything, so this test never talks to a name server off this machine.
UNRESOLVABLE = "x" * 70 + ".invalid"


def test_unresolvable_upstream_host(proxy_factory):
    p = proxy_factory({"upstream": {"host": UNRESOLVABLE, "connect_timeout": "3"}})
    fields, elapsed = wirecheck.login_error(p.host, p.port, timeout=30)
    assert fields["C"] == "08001", fields
    assert elapsed < 3 + 3


# ---- the client goes away


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_vanishes_mid_query(proxy, pg, how):
    """The running query is cancelled and the backend ends, without waiting for the query
    (PostgreSQL alone would not notice a closed socket while pg_sleep runs)."""
    c = raw_session(proxy, f"vanish-{how}")
    c.send(pgwire.query("SELECT pg_sleep(60)"))
    pid = wait_until(lambda: backend_pid(pg, f"vanish-{how}"), 5, what="backend")
    wait_until(lambda: pg.sql_value("SELECT state FROM pg_stat_activity WHERE pid = %s",
                                    (pid,)) == "active", 10, what="the query to run")
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    wait_until(lambda: backend_pid(pg, f"vanish-{how}") is None, 10,
               what="the backend of the vanished client to end")
    wirecheck.still_serves(proxy)


def test_client_vanishes_mid_transaction(proxy, pg):
    pg.sql("CREATE TABLE IF NOT EXISTS vanish_tx (v int)", dbname="rsdb")
    pg.sql("GRANT ALL ON vanish_tx TO scramuser", dbname="rsdb")
    c = raw_session(proxy, "vanish-tx")
    for q in ("BEGIN", "INSERT INTO vanish_tx VALUES (1)"):
        rows, tags, errors = c.simple_query(q)
        assert not errors
    c.close()
    wait_until(lambda: backend_pid(pg, "vanish-tx") is None, 10, what="the backend to end")
    assert pg.sql_value("SELECT count(*) FROM vanish_tx", dbname="rsdb") == 0


def test_client_vanishes_mid_result(proxy, pg):
    """A client that stops reading a 300 MB result and then disappears: the proxy holds only
    bounded buffers meanwhile, and the backend ends."""
    c = raw_session(proxy, "vanish-result", timeout=30)
    c.send(pgwire.query("SELECT repeat('x', 1000) FROM generate_series(1, 300000)"))
    got = 0
    while got < 2_000_000:
        chunk = c.sock.recv(65536)
        assert chunk
        got += len(chunk)
    time.sleep(2)  # not reading: the proxy must stop reading upstream too
    rss = proxy.rss_kb()
    c.close()
    assert rss < rss_budget_kb(64), f"rsproxy RSS {rss} kB while a client stalled"
    wait_until(lambda: backend_pid(pg, "vanish-result") is None, 15, what="the backend to end")
    wirecheck.still_serves(proxy)


def test_client_killed_with_psql(proxy, pg):
    import os
    import signal
    import subprocess
    from pgharness import pg_bin
    proc = subprocess.Popen([pg_bin("psql"), "-X", "-d", proxy.dsn(application_name="killed"),
                             "-c", "SELECT pg_sleep(60)"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: pg.sql_value("SELECT state FROM pg_stat_activity WHERE "
                                        "application_name = 'killed'") == "active", 10,
                   what="psql's query")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_until(lambda: backend_pid(pg, "killed") is None, 10, what="the backend to end")
    finally:
        if proc.poll() is None:
            proc.kill()
