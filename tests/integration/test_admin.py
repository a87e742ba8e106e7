"""The admin HTTP endpoint of a real rsproxy: /liveness, /startup, /readiness and /metrics as
Kubernetes and Prometheus use them. Metrics are read with prometheus_client's own parser
(python3-prometheus-client), so a format error fails the test. Covers counters moving after
real psql and psycopg sessions, login failures by reason and what they do to readiness,
readiness going 503 while SIGTERM drains, malformed, oversized and slow HTTP answered or cut
without disturbing PostgreSQL clients, the connection limit, admin_port = 0, a port in use,
and in IAM mode /startup waiting for the AWS credential chain."""

import http.client
import os
import re
import signal
import select
import socket
import subprocess
import threading
import time

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgharness import HarnessError, free_port, pg_bin, wait_until

# ----------------------------------------------------------------------------------------------
# Helpers


def admin_proxy(proxy_factory, config=None, **kw):
    """An rsproxy with the admin endpoint on a free port (p.admin_port). A port taken by a
    parallel test between free_port() and the bind is retried with another one."""
    for attempt in range(3):
        port = free_port()
        cfg = {"proxy": {"admin_port": str(port)}}
        for section, keys in (config or {}).items():
            cfg.setdefault(section, {}).update(keys)
        try:
            p = proxy_factory(config=cfg, **kw)
        except HarnessError as e:
            if "in use" in str(e) and attempt < 2:
                continue
            raise
        p.admin_port = port
        # The harness waits for the client port. rsproxy binds the admin endpoint right after
        # the client listeners (so that /startup answering means they are bound), and a
        # loaded machine can run a test in between. Its log line comes once it listens; a
        # probing connection would count against the endpoint's connection limit.
        wait_until(lambda: f" port {port}: /startup" in p.log_text(), 10,
                   what=f"the admin endpoint on port {port}")
        return p
    raise AssertionError("unreachable")


def get(p, path, method="GET", headers=None, timeout=10):
    """(status, headers with lower-case names, body) of one request on a new connection."""
    c = http.client.HTTPConnection("127.0.0.1", p.admin_port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def metrics(p):
    """Every sample as {(name, ((label, value), ...)): value}, parsed by prometheus_client."""
    status, headers, body = get(p, "/metrics")
    assert status == 200, body
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for fam in text_string_to_metric_families(body.decode("utf-8")):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def m(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def psql(p, *commands, user="scramuser", dbname="rsdb", check=True):
    argv = [pg_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", p.dsn(user, dbname)]
    for c in commands:
        argv += ["-c", c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def raw_exchange(p, data, timeout=15):
    """Sends raw bytes and reads until the server closes: (bytes read, closed by the server)."""
    s = socket.create_connection(("127.0.0.1", p.admin_port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may stop reading (and close) before taking everything
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return got, True
            except socket.timeout:
                return got, False
            if not chunk:
                return got, True
            got += chunk
    finally:
        s.close()


def listening_ports(pid):
    """TCP ports the process listens on, from /proc (its socket inodes in LISTEN state)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        mm = re.match(r"socket:\[(\d+)\]", link)
        if mm:
            inodes.add(mm.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:
                    ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def status_line(data):
    return data.split(b"\r\n", 1)[0].decode("latin-1")


# ----------------------------------------------------------------------------------------------
# The endpoints


def test_endpoints_answer(proxy_factory, rsproxy_bin):
    p = admin_proxy(proxy_factory)
    for path, body in (("/liveness", b'{"status":"alive"}\n'),
                       ("/startup", b'{"status":"started"}\n'),
                       ("/readiness", b'{"status":"ready"}\n')):
        status, headers, got = get(p, path)
        assert (status, got) == (200, body), path
        assert headers["content-type"] == "application/json"
        assert headers["cache-control"] == "no-store"
        assert "date" in headers

    # HEAD: the same head without a body; other paths and methods.
    status, headers, got = get(p, "/metrics", method="HEAD")
    assert status == 200 and got == b"" and int(headers["content-length"]) > 1000
    status, _, got = get(p, "/metrics/")
    assert status == 404 and b"/readiness" in got
    status, headers, _ = get(p, "/metrics", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, _, _ = get(p, "/readiness?verbose=1")
    assert status == 200

    ms = metrics(p)
    version = subprocess.run([rsproxy_bin, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert m(ms, "rsproxy_build_info", version=version) == 1
    start = m(ms, "process_start_time_seconds")
    assert time.time() - 120 < start <= time.time()
    assert m(ms, "rsproxy_ready") == 1 and m(ms, "rsproxy_shutting_down") == 0
    assert m(ms, "rsproxy_max_client_conn") == 100
    assert all(name.startswith(("rsproxy_", "process_")) for name, _ in ms)
    # Password mode: no AWS credential state.
    assert not any(name == "rsproxy_aws_credentials" for name, _ in ms)
    # The admin's own traffic is counted (this scrape not included).
    assert m(ms, "rsproxy_admin_requests_total", code="200") >= 5
    assert m(ms, "rsproxy_admin_requests_total", code="404") == 1
    assert m(ms, "rsproxy_admin_requests_total", code="405") == 1

    # One debug line per request, and no secret anywhere in what the endpoint serves.
    assert p.log_contains(r'admin: peer=127\.0\.0\.1:\d+ method=HEAD path="/metrics" '
                          r'status=200')
    everything = b"".join(get(p, path)[2] for path in
                          ("/metrics", "/readiness", "/startup", "/liveness", "/nope"))
    for secret in p.secrets:
        if secret.encode() in everything:  # not an assert: pytest would print the secret
            pytest.fail("a password appears in what the admin endpoint serves", pytrace=False)


def test_metrics_move_with_real_sessions(proxy_factory, pg):
    p = admin_proxy(proxy_factory)
    before = metrics(p)
    r = psql(p, "SELECT 1", "BEGIN", "SELECT 2", "COMMIT")
    assert r.stdout.split() == ["1", "BEGIN", "2", "COMMIT"]
    after = metrics(p)

    def delta(name, **labels):
        return m(after, name, **labels) - m(before, name, **labels)

    assert delta("rsproxy_client_connections_accepted_total") == 1
    assert delta("rsproxy_upstream_logins_total") == 1
    assert delta("rsproxy_ready_for_query_total") >= 4
    assert delta("rsproxy_transaction_blocks_total") == 1
    assert delta("rsproxy_client_received_bytes_total") > 60
    assert delta("rsproxy_client_sent_bytes_total") > 100
    assert sum(delta("rsproxy_upstream_login_failures_total", reason=r) for r in
               ("iam", "dns", "network", "timeout", "tls", "auth", "refused", "protocol",
                "other")) == 0

    # An open session shows in the gauges; a cancel is counted and forwarded.
    with psycopg.connect(p.dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        ms = metrics(p)
        assert m(ms, "rsproxy_client_connections", state="active") == 1
        assert m(ms, "rsproxy_upstream_connections") >= 1
        errors = []

        def sleeper():
            try:
                conn.execute("SELECT pg_sleep(30)")
            except psycopg.errors.QueryCanceled as e:
                errors.append(e)

        t = threading.Thread(target=sleeper)
        t.start()
        # Cancel once the sleep runs: earlier, the cancel would find nothing to cancel.
        wait_until(lambda: any(r[3] == "active" and "pg_sleep" in r[4]
                               for r in pg.backends(user="scramuser")), 20,
                   what="the sleep to start")
        conn.cancel()
        t.join(20)
        assert errors, "the query was not canceled"
        ms = metrics(p)
        assert m(ms, "rsproxy_cancel_requests_total") == 1
        assert m(ms, "rsproxy_cancel_requests_forwarded_total") == 1
    wait_until(lambda: m(metrics(p), "rsproxy_client_connections", state="active") == 0, 10,
               what="the session to be gone from the gauge")


def test_client_mistakes_do_not_make_it_unready(proxy_factory):
    # Upstream logs in every client with its own user name and the configured password:
    # md5user's login is refused by PostgreSQL (28P01), which is that client's problem.
    p = admin_proxy(proxy_factory)
    for _ in range(5):
        r = psql(p, "SELECT 1", user="md5user", check=False)
        assert r.returncode != 0 and "password authentication failed" in r.stderr
    ms = metrics(p)
    assert m(ms, "rsproxy_upstream_login_failures_total", reason="auth") == 5
    assert get(p, "/readiness")[0] == 200
    assert m(ms, "rsproxy_ready") == 1
    psql(p, "SELECT 1")


def test_upstream_down_makes_it_unready(proxy_factory):
    dead = free_port()  # nothing listens there
    p = admin_proxy(proxy_factory, config={"upstream": {"port": str(dead)}})
    for i in range(3):
        assert get(p, "/readiness")[0] == 200, f"unready after {i} failures"
        r = psql(p, "SELECT 1", check=False)
        assert r.returncode != 0
    status, _, body = get(p, "/readiness")
    assert status == 503
    assert re.fullmatch(rb'\{"status":"not_ready","reason":"upstream","consecutive_failures":3,'
                        rb'"last_failure":"network","seconds_since_last_failure":\d+\}\n', body)
    ms = metrics(p)
    assert m(ms, "rsproxy_upstream_login_failures_total", reason="network") == 3
    assert m(ms, "rsproxy_ready") == 0
    # Alive and started all the same: a restart would not bring the upstream back.
    assert get(p, "/liveness")[0] == 200 and get(p, "/startup")[0] == 200


def test_tls_failures_are_counted(proxy_factory, certs):
    # The upstream certificate does not chain to this CA.
    p = admin_proxy(proxy_factory, config={"upstream": {"sslrootcert": certs.other_ca.cert}})
    r = psql(p, "SELECT 1", check=False)
    assert r.returncode != 0
    ms = metrics(p)
    assert m(ms, "rsproxy_upstream_login_failures_total", reason="tls") == 1
    assert m(ms, "rsproxy_upstream_tls_handshake_failures_total") == 1


def test_max_client_conn_refusals(proxy_factory):
    p = admin_proxy(proxy_factory, config={"proxy": {"max_client_conn": "1"}})
    with psycopg.connect(p.dsn()) as held:
        held.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            psycopg.connect(p.dsn())
        ms = metrics(p)
        assert m(ms, "rsproxy_client_connections_refused_total", reason="max_client_conn") == 1
        assert m(ms, "rsproxy_client_connections_refused_total", reason="other") == 0
        assert m(ms, "rsproxy_max_client_conn") == 1


# ----------------------------------------------------------------------------------------------
# Shutdown


def test_readiness_goes_503_while_sigterm_drains(proxy_factory):
    p = admin_proxy(proxy_factory)
    conn = psycopg.connect(p.dsn())
    conn.execute("SELECT 1")  # psycopg opened a transaction: the drain waits for it
    assert get(p, "/readiness")[0] == 200
    p.signal(signal.SIGTERM)
    wait_until(lambda: get(p, "/readiness")[0] == 503, 10, what="readiness to go 503")
    status, _, body = get(p, "/readiness")
    assert body == b'{"status":"not_ready","reason":"draining"}\n'
    # Still alive and started: the kubelet must not kill a draining pod.
    assert get(p, "/liveness")[0] == 200 and get(p, "/startup")[0] == 200
    ms = metrics(p)
    assert m(ms, "rsproxy_shutting_down") == 1 and m(ms, "rsproxy_ready") == 0
    # The session in its transaction is still served while the endpoint says so.
    assert conn.execute("SELECT 2").fetchone()[0] == 2
    conn.commit()
    conn.close()
    # Once the last session is gone the process exits 0, and the endpoint is gone with it.
    assert p.proc.wait(30) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p.admin_port), timeout=2).close()


# ----------------------------------------------------------------------------------------------
# Malformed, oversized and slow HTTP


def test_malformed_http_leaves_clients_alone(proxy_factory):
    p = admin_proxy(proxy_factory)
    conn = psycopg.connect(p.dsn(), autocommit=True)
    assert conn.execute("SELECT 1").fetchone()[0] == 1

    got, closed = raw_exchange(p, b"HELLO WORLD\r\n\r\n")
    assert status_line(got) == "HTTP/1.1 400 Bad Request" and closed
    got, closed = raw_exchange(p, b"GET /metrics HTTP/1.1\r\n\r\n")  # no Host
    assert status_line(got) == "HTTP/1.1 400 Bad Request" and closed
    got, closed = raw_exchange(p, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                               b"a" * 65536 + b"\r\n\r\n")
    assert status_line(got) == "HTTP/1.1 431 Request Header Fields Too Large" and closed
    got, closed = raw_exchange(p, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_line(got) == "HTTP/1.1 414 URI Too Long" and closed
    got, closed = raw_exchange(p, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000"
                               b"\r\n\r\n" + b"b" * 100000)
    assert status_line(got) == "HTTP/1.1 413 Content Too Large" and closed
    # TLS and PostgreSQL spoken to the HTTP port.
    got, closed = raw_exchange(p, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32))
    assert status_line(got) == "HTTP/1.1 400 Bad Request" and closed
    got, closed = raw_exchange(p, b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
    assert status_line(got) == "HTTP/1.1 400 Bad Request" and closed
    # Pipelined requests are answered in order on one connection.
    got, closed = raw_exchange(p, b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /startup HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.count(b"HTTP/1.1 200 OK") == 2 and closed
    assert got.index(b"alive") < got.index(b"started")

    assert conn.execute("SELECT 2").fetchone()[0] == 2
    psql(p, "SELECT 3")
    ms = metrics(p)
    assert m(ms, "rsproxy_admin_requests_total", code="400") == 4
    assert m(ms, "rsproxy_admin_requests_total", code="431") == 1
    assert m(ms, "rsproxy_admin_requests_total", code="414") == 1
    assert m(ms, "rsproxy_admin_requests_total", code="413") == 1
    conn.close()


def test_slowloris_is_cut_while_clients_are_served(proxy_factory, slow):
    p = admin_proxy(proxy_factory)
    conn = psycopg.connect(p.dsn(), autocommit=True)
    s = socket.create_connection(("127.0.0.1", p.admin_port), timeout=30)
    start = time.monotonic()
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
    answer = b""
    for i in range(len(head)):
        try:
            s.sendall(head[i:i + 1])
        except OSError:
            break
        # PostgreSQL clients are served at full speed meanwhile.
        if i % 10 == 0:
            assert conn.execute("SELECT %s::int", (i,)).fetchone()[0] == i
        s.settimeout(0.25)
        try:
            answer = s.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        break
    elapsed = time.monotonic() - start
    s.close()
    # The head timeout is 10 s (deadlines are checked every second).
    assert 9 <= elapsed < 20 * slow, elapsed
    assert status_line(answer) == "HTTP/1.1 408 Request Timeout", answer
    assert conn.execute("SELECT 1").fetchone()[0] == 1
    conn.close()


def test_admin_connection_limit(proxy_factory):
    p = admin_proxy(proxy_factory)
    socks = [socket.create_connection(("127.0.0.1", p.admin_port), timeout=5) for _ in range(40)]
    # 32 are kept: each new one over the limit took the place of the longest-open idle one.
    # (A connection that sends nothing is also closed after 10 s, so the evicted ones must go
    # well before that: 5 s each at most.)
    for s in socks[:8]:
        try:
            assert s.recv(1) == b"", "an evicted connection got data"
        except ConnectionResetError:
            pass
    readable, _, _ = select.select(socks[8:], [], [], 0.3)
    assert not readable, f"{len(readable)} of the 32 newest were closed too"
    # Idle connections holding every slot do not lock a probe out.
    assert get(p, "/liveness")[0] == 200
    psql(p, "SELECT 1")
    ms = metrics(p)
    assert m(ms, "rsproxy_admin_connections_evicted_total") >= 9
    assert m(ms, "rsproxy_admin_connections_refused_total") == 0
    for s in socks:
        s.close()


# ----------------------------------------------------------------------------------------------
# Configuration


def test_admin_port_zero_disables_the_endpoint(proxy_factory):
    p = proxy_factory()  # the harness' default config says admin_port = 0
    assert p.config["proxy"]["admin_port"] == "0"
    psql(p, "SELECT 1")
    assert listening_ports(p.pid) == {p.port}
    assert not p.log_contains(r"admin endpoint")
    q = admin_proxy(proxy_factory)
    assert listening_ports(q.pid) == {q.port, q.admin_port}
    assert q.log_contains(rf"admin endpoint on 127\.0\.0\.1 port {q.admin_port}")


def test_admin_port_in_use_stops_startup(proxy_factory):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        p = proxy_factory(config={"proxy": {"admin_port": str(port)}}, start=False)
        rc, log = p.start_expect_failure()
        assert rc == 1
        assert f"admin endpoint 127.0.0.1:{port}: address already in use" in log
    finally:
        holder.close()


# ----------------------------------------------------------------------------------------------
# IAM mode: /startup waits for the AWS credential chain


def test_iam_startup_waits_for_the_credential_chain(iam_proxy_factory, iam_standin):
    # Container credentials whose answers stall past the provider's 2 s timeout, for all three
    # attempts the chain makes: /startup is 503 until the chain has answered, the failure is
    # reported by /readiness, and the endpoint's own retry makes it ready.
    iam_standin.fault("ContainerCredentials", "stall", count=3, seconds=3)
    port = free_port()
    p = iam_proxy_factory(aws_keys=False, start=False, proxy={"admin_port": str(port)})
    p.admin_port = port
    p.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = (
        p.relay.url + iam_standin.world["container"]["path"])
    p.env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = iam_standin.world["container"]["token"]
    p.start()
    status, _, body = get(p, "/startup")
    assert (status, body) == (503, b'{"status":"starting","waiting_for":"aws_credentials"}\n')
    assert get(p, "/readiness")[2] == b'{"status":"not_ready","reason":"starting"}\n'
    assert get(p, "/liveness")[0] == 200
    seen = set()

    def ready():
        seen.add(get(p, "/readiness")[2])
        return get(p, "/startup")[0] == 200 and get(p, "/readiness")[0] == 200
    p.wait_until(ready, 30, what="startup and readiness")
    assert b'{"status":"not_ready","reason":"aws_credentials"}\n' in seen, seen
    assert p.log_contains(r"admin: cannot get AWS credentials")
    assert p.log_contains(r"admin: the AWS credential chain produced keys")
    ms = metrics(p)
    assert m(ms, "rsproxy_aws_credentials", state="ok") == 1
    assert m(ms, "rsproxy_aws_credentials", state="failed") == 0
    calls = iam_standin.calls().get("ContainerCredentials")
    assert calls >= 4, iam_standin.calls()

    # A login uses the keys the chain already has.
    r = psql(p, "SELECT current_user", user="alice", dbname="alice")
    assert r.stdout.strip() == "IAM:alice"
    assert iam_standin.calls().get("ContainerCredentials") == calls
    # A second client of the same user and database is served from the cache.
    psql(p, "SELECT 1", user="alice", dbname="alice")
    ms = metrics(p)
    assert m(ms, "rsproxy_iam_credential_requests_total", result="ok") == 2
    assert m(ms, "rsproxy_iam_credential_fetches_total", result="ok") == 1
    assert m(ms, "rsproxy_iam_credential_refreshes_total") == 0
    assert m(ms, "rsproxy_upstream_logins_total") == 2
    assert iam_standin.calls().get("GetClusterCredentials") == 1


def test_iam_without_credentials_is_started_but_not_ready(iam_proxy_factory, iam_standin):
    port = free_port()
    p = iam_proxy_factory(aws_keys=False, proxy={"admin_port": str(port)})
    p.admin_port = port
    # Started (there is nothing a restart would fix), alive, and not ready.
    p.wait_until(lambda: get(p, "/startup")[0] == 200, 10, what="startup")
    status, _, body = get(p, "/readiness")
    assert (status, body) == (503, b'{"status":"not_ready","reason":"aws_credentials"}\n')
    assert get(p, "/liveness")[0] == 200
    ms = metrics(p)
    assert m(ms, "rsproxy_aws_credentials", state="failed") == 1
    assert m(ms, "rsproxy_ready") == 0
    r = psql(p, "SELECT 1", user="alice", dbname="alice", check=False)
    assert r.returncode != 0
    ms = metrics(p)
    assert m(ms, "rsproxy_iam_credential_requests_total", result="error") == 1
    assert m(ms, "rsproxy_upstream_login_failures_total", reason="iam") == 1
    assert get(p, "/readiness")[0] == 503
