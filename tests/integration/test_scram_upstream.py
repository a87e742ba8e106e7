"""SCRAM-SHA-256 upstream logins whose PBKDF2 is expensive: the server's stored verifier asks
for as many iterations as take about 1.5 s here (PostgreSQL 16's scram_iterations, or a
verifier made elsewhere, can do this to any proxy). rsproxy computes that proof on libuv's
thread pool, so while one client waits for it every other session is served.

Most tests put a relay between rsproxy and a plaintext PostgreSQL (upstream sslmode = disable)
that reads the protocol as it passes and writes, into one ordered event log shared with the
test, when a login's server-first reached the proxy and when its client-final came back. The
proof is being computed between those two events, so "the other session's queries were
answered in between" is an ordering, not a timing threshold. The relay can also speak for the
server in that window (a notice, or a FATAL error and a hang-up).

Also: the slow login succeeds over TLS against the real cluster; clients that leave, the
connect_timeout, SIGTERM and a server that hangs up during the computation each end the
login without sending the proof, the proxy keeps serving, and (under RSPROXY_SANITIZED) the
sanitizers see no leak or bad access when the work comes back to a closed connection.
"""

import hashlib
import os
import re
import secrets
import signal
import socket
import struct
import threading
import time

import psycopg
import pytest
from psycopg import sql

import pgwire
import wirecheck
from pgharness import scram_verifier, slow_factor

# One password for every role made here, so one rsproxy ([upstream] password) logs in both
# a fast role (PostgreSQL's 4096 iterations) and the slow ones.
PASSWORD = "scram-up-" + secrets.token_hex(12)
FAST, SLOW, SLOWEST = "fastscram", "slowscram", "slowestscram"
TARGET_SECONDS = 1.5
MAX_ITERATIONS = 10_000_000  # AUTH_SCRAM_MAX_ITERATIONS (auth/auth_pg.h)
# [upstream] connect_timeout where a slow login must succeed: its proof takes about
# TARGET_SECONDS on a quiet machine, but several times that under ASan on a loaded one, past
# the harness' 10 s. (The connect_timeout test sets its own.)
LOGIN_TIMEOUT = "120"


def pbkdf2_iterations_for(seconds):
    """How many PBKDF2-HMAC-SHA-256 iterations take about `seconds` on this machine now.
    Python's hashlib and rsproxy both call OpenSSL's PBKDF2, which ASan does not instrument,
    so the proxy needs about as long."""
    probe = 200_000
    t0 = time.perf_counter()
    hashlib.pbkdf2_hmac("sha256", b"probe", b"probe-salt", probe)
    per_iteration = (time.perf_counter() - t0) / probe
    return max(10_000, min(MAX_ITERATIONS, int(seconds / per_iteration)))


def proxy_slowdown():
    """How much slower rsproxy's PBKDF2 runs than Python's: under valgrind OpenSSL's code is
    emulated too. (Under ASan it is several times slower as well, through the allocation
    hooks OpenSSL calls per iteration, which only makes the windows longer.)"""
    return 20 if os.environ.get("RSPROXY_VALGRIND") else 1


@pytest.fixture(scope="module")
def iterations():
    """{role: iteration count}: SLOW takes about TARGET_SECONDS, SLOWEST the most the proxy
    accepts (for the connect_timeout test, which needs the proof to outlast one second)."""
    return {SLOW: pbkdf2_iterations_for(TARGET_SECONDS / proxy_slowdown()),
            SLOWEST: MAX_ITERATIONS // proxy_slowdown()}


@pytest.fixture(scope="module")
def verifiers(iterations):
    return {role: scram_verifier(PASSWORD, iterations=n) for role, n in iterations.items()}


def create_roles(cluster, verifiers):
    with cluster.admin() as c:
        c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(FAST), sql.Literal(PASSWORD)))
        for role, verifier in verifiers.items():
            c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(verifier)))


@pytest.fixture(scope="module")
def tls_pg(pg, verifiers):
    """The session's TLS cluster, with the roles."""
    create_roles(pg, verifiers)
    return pg


@pytest.fixture(scope="module")
def plain_pg(make_cluster, verifiers):
    """A cluster without TLS (hba: host ... scram-sha-256), for the relay to read."""
    c = make_cluster("plain", ssl=False, roles=False)
    create_roles(c, verifiers)
    return c


# --------------------------------------------------------------------------------------------
# The relay


class RelayConn:
    """One upstream connection through the relay: `p` is rsproxy's side, `s` the server's."""

    def __init__(self, relay, p, s):
        self.relay = relay
        self.p, self.s = p, s
        self.user = None
        self.iterations = None
        self.server_first_seen = False
        self.final_seen = False
        self.hung_up = False
        self._closed = False
        self._lock = threading.Lock()

    def to_proxy(self, data):
        """Bytes to rsproxy as if the server had sent them."""
        self.p.sendall(data)

    def hang_up(self, last_words=b""):
        """The server's side ends the connection (after sending last_words to rsproxy)."""
        self.hung_up = True
        if last_words:
            self.p.sendall(last_words)
        self.close()

    def close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for sock in (self.p, self.s):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def pump_up(self):
        """rsproxy -> server: the startup packet (names the user), then typed messages."""
        buf, started = b"", False
        try:
            while True:
                chunk = self.p.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while True:
                    if not started:
                        if len(buf) < 4 or len(buf) < struct.unpack("!I", buf[:4])[0]:
                            break
                        n = struct.unpack("!I", buf[:4])[0]
                        self.user = startup_user(buf[:n])
                        buf, started = buf[n:], True
                        continue
                    if len(buf) < 5 or len(buf) < 1 + struct.unpack("!I", buf[1:5])[0]:
                        break
                    n = struct.unpack("!I", buf[1:5])[0]
                    type_, buf = buf[:1], buf[1 + n:]
                    if type_ == b"p" and self.server_first_seen and not self.final_seen:
                        self.final_seen = True
                        self.relay.record("client_final", self.user)
                self.s.sendall(chunk)
        except OSError:
            pass
        if not self.hung_up:
            self.relay.record("proxy_closed", self.user)
        self.close()

    def pump_down(self):
        """server -> rsproxy: forwards first, then notes what has reached rsproxy."""
        buf = b""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                self.p.sendall(chunk)
                buf += chunk
                while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!I", buf[1:5])[0]:
                    n = struct.unpack("!I", buf[1:5])[0]
                    type_, body, buf = buf[:1], buf[5:1 + n], buf[1 + n:]
                    if (type_ == b"R" and struct.unpack("!I", body[:4])[0] == 11
                            and not self.server_first_seen):
                        self.server_first_seen = True
                        m = re.search(rb",i=([0-9]+)$", body[4:])
                        self.iterations = int(m.group(1)) if m else None
                        self.relay.record("server_first", self.user)
                        hook = self.relay.after_server_first.get(self.user)
                        if hook:
                            hook(self)
        except OSError:
            pass
        self.close()


def startup_user(packet):
    parts = packet[8:].split(b"\0")
    params = dict(zip(parts[0::2], parts[1::2]))
    user = params.get(b"user")
    return user.decode() if user is not None else None


class Relay:
    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.events = []  # (kind, user, detail), in the order they happened
        self.cond = threading.Condition()
        self.conns = []
        self.after_server_first = {}  # user -> fn(RelayConn), run once server-first is sent
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                p, _ = self.listener.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                s.settimeout(None)
            except OSError:
                p.close()
                continue
            for sock in (p, s):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = RelayConn(self, p, s)
            with self.cond:
                self.conns.append(conn)
            threading.Thread(target=conn.pump_up, daemon=True).start()
            threading.Thread(target=conn.pump_down, daemon=True).start()

    def record(self, kind, user=None, detail=None):
        with self.cond:
            self.events.append((kind, user, detail))
            self.cond.notify_all()

    def count(self, kind, user):
        with self.cond:
            return sum(1 for k, u, _ in self.events if k == kind and u == user)

    def wait_for(self, kind, user, n=1, timeout=30):
        deadline = time.monotonic() + timeout * slow_factor()
        with self.cond:
            while sum(1 for k, u, _ in self.events if k == kind and u == user) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"relay: no {n} x {kind} for {user} within {timeout}s; "
                                         f"events: {self.events[-20:]}")
                self.cond.wait(left)

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def conns_of(self, user):
        with self.cond:
            return [c for c in self.conns if c.user == user]

    def close(self):
        self.listener.close()
        with self.cond:
            conns = list(self.conns)
        for c in conns:
            c.close()


@pytest.fixture
def relay(plain_pg):
    r = Relay(plain_pg.port)
    yield r
    r.close()


@pytest.fixture
def relayed_proxy(proxy_factory, plain_pg, relay):
    """An rsproxy logging in to plain_pg through the relay; extra config merges over it."""
    def make(extra=None):
        cfg = {"upstream": {"host": "127.0.0.1", "port": relay.port, "sslmode": "disable",
                            "password": PASSWORD, "connect_timeout": LOGIN_TIMEOUT}}
        for section, keys in (extra or {}).items():
            cfg.setdefault(section, {}).update(keys)
        return proxy_factory(cfg, pg_cluster=plain_pg)
    return make


def backend_message(type_, fields):
    """An ErrorResponse or NoticeResponse with the given (code, value) fields."""
    body = b"".join(k.encode() + v.encode() + b"\0" for k, v in fields) + b"\0"
    return pgwire.msg(type_, body)


def login(proxy, user, timeout=60):
    c = pgwire.RawConn(proxy.host, proxy.port, timeout=timeout * slow_factor())
    c.login(user, "postgres", {"application_name": f"scramup-{user}"})
    return c


def discarded(proxy):
    return len(re.findall(r"upstream scram proof discarded", proxy.log_text()))


def still_serves(proxy):
    with login(proxy, FAST, timeout=20) as c:
        rows, _, errors = c.simple_query("SELECT current_user")
        assert rows == [[FAST]] and not errors, (rows, errors)


# --------------------------------------------------------------------------------------------
# The tests


def test_verifiers_are_stored_as_made(tls_pg, plain_pg, iterations):
    # Guards every test below: PostgreSQL must keep our verifier (and so ask for its count),
    # not hash the string as a plaintext password.
    for cluster in (tls_pg, plain_pg):
        for role, n in iterations.items():
            stored = cluster.sql_value("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                       (role,))
            assert stored.startswith(f"SCRAM-SHA-256${n}:"), (role, stored[:40])


def test_slow_login_over_tls_succeeds(proxy_factory, tls_pg, iterations):
    p = proxy_factory({"upstream": {"password": PASSWORD, "connect_timeout": LOGIN_TIMEOUT}},
                      pg_cluster=tls_pg)
    with psycopg.connect(p.dsn(user=SLOW, dbname="postgres", connect_timeout=60)) as c:
        row = c.execute("SELECT current_user, ssl FROM pg_stat_ssl "
                        "WHERE pid = pg_backend_pid()").fetchone()
    assert row == (SLOW, True)
    # The proof took the server's count, off the loop (rsproxy's debug line).
    assert p.log_contains(rf"upstream scram proof computed iterations={iterations[SLOW]} ")
    with psycopg.connect(p.dsn(user=FAST, dbname="postgres")) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == FAST


def test_other_sessions_are_served_while_the_proof_is_computed(relayed_proxy, relay,
                                                               iterations):
    p = relayed_proxy()
    bystander = login(p, FAST)
    assert bystander.simple_query("SELECT 1")[0] == [["1"]]
    # A notice from the server while the proof is computed: it waits in rsproxy's buffer and
    # is read (and skipped) afterwards; the login must not notice.
    relay.after_server_first[SLOW] = lambda conn: conn.to_proxy(backend_message(
        b"N", [("S", "NOTICE"), ("V", "NOTICE"), ("C", "00000"), ("M", "while you compute")]))

    outcome = {}

    def slow_login():
        try:
            with login(p, SLOW) as c:
                relay.record("slow_login_done", SLOW)
                outcome["rows"] = c.simple_query("SELECT current_user")[0]
        except Exception as exc:  # reported by the main thread
            outcome["error"] = exc

    t = threading.Thread(target=slow_login)
    t.start()
    try:
        relay.wait_for("server_first", SLOW)
        n = 0
        while t.is_alive() and n < 100_000:
            n += 1
            rows, _, errors = bystander.simple_query(f"SELECT {n}")
            assert rows == [[str(n)]] and not errors, (rows, errors)
            relay.record("answer", FAST, n)
            time.sleep(0.002)
    finally:
        t.join(120 * slow_factor())
    assert "error" not in outcome, outcome.get("error")
    assert outcome.get("rows") == [[SLOW]]
    bystander.close()

    (slow_conn,) = relay.conns_of(SLOW)
    assert slow_conn.iterations == iterations[SLOW]
    events = relay.snapshot()
    first = events.index(("server_first", SLOW, None))
    final = events.index(("client_final", SLOW, None))
    done = events.index(("slow_login_done", SLOW, None))
    assert first < final < done
    answered = [e for e in events[first + 1:final] if e[0] == "answer"]
    # Blocking the loop for the PBKDF2 would leave at most a query already on its way here.
    assert len(answered) >= 3, (
        f"only {len(answered)} of the other session's queries were answered while the slow "
        f"login's proof was computed ({len([e for e in events if e[0] == 'answer'])} in all)")


def test_clients_leaving_during_the_computation(relayed_proxy, relay):
    """Six at once: libuv's four pool threads take four proofs, two wait in its queue and are
    cancelled there; either way the work comes back to a closed connection."""
    p = relayed_proxy()
    bystander = login(p, FAST)
    leavers = []
    for i in range(6):
        c = pgwire.RawConn(p.host, p.port, timeout=30)
        c.send(pgwire.startup({"user": SLOW, "database": "postgres",
                               "application_name": f"leaver{i}"}))
        leavers.append(c)
    relay.wait_for("server_first", SLOW, n=6)
    for c in leavers:
        c.close()
    # The upstream connections go at once; the proofs are never sent.
    relay.wait_for("proxy_closed", SLOW, n=6)
    assert relay.count("client_final", SLOW) == 0
    rows, _, errors = bystander.simple_query("SELECT 'served'")
    assert rows == [["served"]] and not errors
    p.wait_until(lambda: discarded(p) >= 6, timeout=60, what="the six proofs to come back")
    still_serves(p)
    bystander.close()


def test_sigterm_during_the_computation(relayed_proxy, relay):
    p = relayed_proxy()
    c = pgwire.RawConn(p.host, p.port, timeout=30)
    c.send(pgwire.startup({"user": SLOW, "database": "postgres"}))
    relay.wait_for("server_first", SLOW)
    p.signal(signal.SIGTERM)
    kind, fields = wirecheck.error_or_close(c, timeout=30)
    if kind == "error":
        assert fields["C"] == "57P03", fields
    c.close()
    # The process waits for the pool thread, then exits cleanly (status 0; the fixture also
    # checks the log for sanitizer reports).
    assert p.proc.wait(60 * slow_factor()) == 0
    assert relay.count("client_final", SLOW) == 0


def test_server_hangs_up_during_the_computation(relayed_proxy, relay):
    """PostgreSQL's authentication_timeout or a shutdown: a FATAL error, then the close. The
    client gets that error, not "server closed the connection"."""
    p = relayed_proxy()
    relay.after_server_first[SLOW] = lambda conn: conn.hang_up(backend_message(
        b"E", [("S", "FATAL"), ("V", "FATAL"), ("C", "57P01"),
               ("M", "terminating connection due to administrator command")]))
    fields, _ = wirecheck.login_error(p.host, p.port, user=SLOW, database="postgres",
                                      timeout=30)
    assert fields["C"] == "57P01", fields
    assert "administrator command" in fields["M"]
    p.wait_until(lambda: discarded(p) >= 1, timeout=60, what="the proof to come back")
    still_serves(p)


def test_connect_timeout_during_the_computation(relayed_proxy, relay):
    """connect_timeout covers the whole login; at 1 s it fires while the slowest proof the
    proxy accepts (10 million iterations, about 2 s) is still being computed."""
    p = relayed_proxy({"upstream": {"connect_timeout": "1"}})
    fields, _ = wirecheck.login_error(p.host, p.port, user=SLOWEST, database="postgres",
                                      timeout=30)
    assert fields["C"] == "08001", fields
    assert "timeout expired" in fields["M"], fields
    assert relay.count("server_first", SLOWEST) == 1
    assert relay.count("client_final", SLOWEST) == 0
    p.wait_until(lambda: discarded(p) >= 1, timeout=60, what="the proof to come back")
    still_serves(p)


def test_check_logs_in_with_a_slow_verifier(proxy_factory, tls_pg):
    """rsproxy --check runs its own loop until the verdict: the login's proof comes back from
    the thread pool there too, and the process exits cleanly after it."""
    p = proxy_factory({"upstream": {"password": PASSWORD, "user": SLOW, "dbname": "postgres",
                                    "connect_timeout": LOGIN_TIMEOUT}},
                      pg_cluster=tls_pg, start=False)
    r = p.run_check()
    assert r.returncode == 0, r.stdout
    assert "ok: upstream login works" in r.stdout, r.stdout
