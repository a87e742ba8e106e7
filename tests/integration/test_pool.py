"""Session pooling ([pool] pool_mode = session) with real clients against PostgreSQL 15 over TLS,
and against the Redshift stand-in with IAM login: a session that ends between transactions is
reset and handed to the next client with the same startup packet (the same backend, with none
of the previous client's settings, prepared statements, temporary tables or LISTENs); clients
with other parameters get their own; sessions left in a transaction, with a query running, or
whose reset fails are closed, never reused; server_idle_timeout, max_idle_servers, reload and
SIGTERM end pooled sessions; cancel works on a reused session; pgbench -C (a new connection per
transaction) runs on a handful of upstream logins. Backends are identified with
pg_backend_pid(), which rsproxy does not touch (BackendKeyData is rewritten)."""

import signal
import subprocess
import threading
import time

import psycopg
import psycopg2
import psycopg2.extensions
import pytest

import pgwire
from pgharness import pg_bin, wait_until
from test_admin import admin_proxy, metrics

POOL = {"pool": {"pool_mode": "session"}}


def pool_config(**keys):
    return {"pool": {"pool_mode": "session", **{k: str(v) for k, v in keys.items()}}}


def backend_pid(dsn, **kw):
    with psycopg.connect(dsn, autocommit=True, **kw) as c:
        return c.execute("SELECT pg_backend_pid()").fetchone()[0]


def idle_backends(pg, query):
    """Backends of the test user sitting idle with `query` as their last statement."""
    return [r[0] for r in pg.backends(user="scramuser") if r[3] == "idle" and r[4] == query]


def wait_pooled(pg, pid, query="DISCARD ALL", timeout=10):
    wait_until(lambda: pid in idle_backends(pg, query), timeout,
               what=f"backend {pid} reset with {query} and idle")


def wait_gone(pg, pid, timeout=10):
    wait_until(lambda: pid not in [r[0] for r in pg.backends()], timeout,
               what=f"backend {pid} to exit")


def metric(p, name):
    return metrics(p)[(name, ())]  # a missing series fails the test


def cancel_when_sleeping(pg, pid, conn):
    """In a thread: cancels conn's query once backend pid runs its pg_sleep (a cancel sent
    before the query has started would find nothing to cancel)."""
    def run():
        wait_until(lambda: any(r[0] == pid and r[3] == "active" and "pg_sleep" in r[4]
                               for r in pg.backends()), 20, what="the sleep to start")
        conn.cancel()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ----------------------------------------------------------------------------------------------


def test_reuse_resets_session_state(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    dsn = p.dsn(application_name="pooltest")
    with psycopg.connect(dsn, autocommit=True) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        c.execute("SET work_mem = '7MB'")
        c.execute("SET application_name = 'changed'")
        c.execute("PREPARE pool_q(int) AS SELECT $1 + 1")
        c.execute("SELECT %s::int * 2", (21,), prepare=True)  # a protocol-level statement
        c.execute("CREATE TEMP TABLE pool_tmp (v int)")
        c.execute("LISTEN pool_channel")
        assert c.info.parameter_status("application_name") == "changed"
    wait_pooled(pg, pid)

    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert c.execute("SHOW work_mem").fetchone()[0] == "4MB"
        assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
        assert c.execute("SELECT to_regclass('pg_temp.pool_tmp')").fetchone()[0] is None
        # The login the client saw: the parameters in force after the reset, our own key.
        assert c.info.parameter_status("application_name") == "pooltest"
        assert c.info.parameter_status("server_version").startswith("15")
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.info.backend_pid != pid
        assert c.execute("SELECT 40 + 2").fetchone()[0] == 42
    assert p.log_contains("reusing pooled upstream session")


def test_other_startup_parameters_get_their_own_session(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    a = backend_pid(p.dsn(application_name="pool_a"))
    wait_pooled(pg, a)
    b = backend_pid(p.dsn(application_name="pool_b"))
    assert b != a
    wait_pooled(pg, b)
    # Another database or user is another pool too.
    c = backend_pid(p.dsn(application_name="pool_a", dbname="postgres"))
    assert c not in (a, b)
    assert backend_pid(p.dsn(application_name="pool_a")) == a
    assert backend_pid(p.dsn(application_name="pool_b")) == b


def test_many_clients_psycopg2_and_psql(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    dsn = p.dsn(application_name="pool_many")
    # Four concurrent sessions, then forty short ones: no new logins for them.
    conns = [psycopg2.connect(dsn) for _ in range(4)]
    pids = set()
    for c in conns:
        cur = c.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pids.add(cur.fetchone()[0])
        c.commit()
    for c in conns:
        c.close()
    assert len(pids) == 4
    wait_until(lambda: len(set(idle_backends(pg, "DISCARD ALL")) & pids) == 4, 10,
               what="four pooled sessions")
    seen = set()
    for _ in range(40):
        c = psycopg2.connect(dsn)
        cur = c.cursor()
        cur.execute("SELECT pg_backend_pid()")
        seen.add(cur.fetchone()[0])
        c.rollback()
        c.close()
    assert seen <= pids, "a client got a new login although pooled sessions were idle"
    # psql's startup packet differs (application_name psql): its own session, reused too.
    env = {"PGAPPNAME": "pool_psql"}
    out1 = subprocess.run([pg_bin("psql"), "-XAtc", "SELECT pg_backend_pid()", p.dsn()],
                          capture_output=True, text=True, timeout=60, env=env, check=True)
    first = int(out1.stdout)
    wait_pooled(pg, first)
    out2 = subprocess.run([pg_bin("psql"), "-XAtc", "SELECT pg_backend_pid()", p.dsn()],
                          capture_output=True, text=True, timeout=60, env=env, check=True)
    assert int(out2.stdout) == first
    assert first not in pids


def test_unfinished_sessions_are_not_reused(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    dsn = p.dsn(application_name="pool_unfinished")
    # Left inside a transaction: closed, and what it did is rolled back.
    c = psycopg2.connect(dsn)
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("CREATE TABLE IF NOT EXISTS pool_tx_left (v int)")
    c.close()
    wait_gone(pg, pid)
    assert pg.sql_value("SELECT to_regclass('public.pool_tx_left') IS NULL", dbname="rsdb")

    # Gone while a query runs (psql killed): cancelled and closed.
    env = {"PGAPPNAME": "pool_unfinished"}
    sleeper = subprocess.Popen([pg_bin("psql"), "-XAtc", "SELECT pg_sleep(30)", p.dsn()],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid2 = wait_until(lambda: next((r[0] for r in pg.backends(user="scramuser")
                                        if r[3] == "active" and "pg_sleep" in r[4]), None), 10,
                          what="the sleep to start")
    finally:
        sleeper.kill()
        sleeper.wait()
    wait_gone(pg, pid2, timeout=15)

    # A fresh client gets neither.
    pid3 = backend_pid(dsn)
    assert pid3 not in (pid, pid2)


def test_extended_protocol_without_sync_is_not_reused(proxy_factory, pg):
    # Parse/Bind/Execute and Flush, never Sync: the INSERT runs in an implicit transaction that
    # only Sync (or the end of the session) closes. Pooled, the reset Query would commit it.
    p = proxy_factory(config=pool_config(server_reset_query="RESET ALL"))
    with psycopg.connect(p.dsn(), autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS pool_unsynced (v int)")
        c.execute("TRUNCATE pool_unsynced")
    extra = {"application_name": "pool_unsynced"}
    with pgwire.RawConn(p.host, p.port) as raw:
        raw.login("scramuser", "rsdb", extra)
        rows, _, _ = raw.simple_query("SELECT pg_backend_pid()")
        pid = int(rows[0][0])
        raw.send(pgwire.parse("", "INSERT INTO pool_unsynced VALUES (1)") + pgwire.bind("", "")
                 + pgwire.execute() + pgwire.msg(b"H"))
        got = raw.read_until((b"C", b"E"))
        assert got[-1].type == b"C", got
        raw.send(pgwire.terminate())
        raw.wait_closed()
    wait_gone(pg, pid)
    assert pg.sql_value("SELECT count(*) FROM pool_unsynced", dbname="rsdb") == 0
    p.wait_for_log(r"not pooled: transaction or request in progress")

    # The same with its Sync: committed, and the session is pooled.
    with pgwire.RawConn(p.host, p.port) as raw:
        raw.login("scramuser", "rsdb", extra)
        rows, _, _ = raw.simple_query("SELECT pg_backend_pid()")
        pid = int(rows[0][0])
        raw.send(pgwire.parse("", "INSERT INTO pool_unsynced VALUES (2)") + pgwire.bind("", "")
                 + pgwire.execute() + pgwire.sync())
        raw.read_until((b"Z",))
        raw.send(pgwire.terminate())
    wait_pooled(pg, pid, query="RESET ALL")
    assert pg.sql_value("SELECT count(*) FROM pool_unsynced", dbname="rsdb") == 1


def test_session_with_a_cancel_in_flight_is_not_reused(proxy_factory, pg):
    # A cancel sent for a session must not reach the next client's query: the session is
    # closed rather than pooled while one may still be on its way.
    p = proxy_factory(config=POOL)
    dsn = p.dsn(application_name="pool_cancelled")
    c = psycopg2.connect(dsn)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    canceller = cancel_when_sleeping(pg, pid, c)
    with pytest.raises(psycopg2.errors.QueryCanceled):
        cur.execute("SELECT pg_sleep(20)")
    canceller.join(5)
    c.close()
    wait_gone(pg, pid)
    p.wait_for_log(r"not pooled: a cancel request for it may still be on its way")


def test_failed_reset_closes_the_session(proxy_factory, pg):
    p = proxy_factory(config=pool_config(server_reset_query="SELECT 1/0"))
    dsn = p.dsn(application_name="pool_badreset")
    pid = backend_pid(dsn)
    wait_gone(pg, pid)
    p.wait_for_log(r"server_reset_query failed, session not reused: sqlstate=22012")
    pid2 = backend_pid(dsn)
    assert pid2 != pid


def test_empty_reset_query_keeps_state(proxy_factory, pg):
    # server_reset_query = "" reuses without a reset (documented): the setting survives.
    p = proxy_factory(config=pool_config(server_reset_query=""))
    dsn = p.dsn(application_name="pool_noreset")
    with psycopg.connect(dsn, autocommit=True) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        c.execute("SET work_mem = '9MB'")
    p.wait_for_log(r"pooled \(1 idle\)")
    with psycopg.connect(dsn, autocommit=True) as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
        assert c.execute("SHOW work_mem").fetchone()[0] == "9MB"


def test_max_idle_servers(proxy_factory, pg):
    p = proxy_factory(config=pool_config(max_idle_servers=2))
    dsn = p.dsn(application_name="pool_limits")
    conns = [psycopg.connect(dsn, autocommit=True) for _ in range(4)]
    pids = [c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in conns]
    # Closed one by one: the third and fourth push out the longest idle ones.
    for i, c in enumerate(conns):
        c.close()
        wait_pooled(pg, pids[i])
    wait_gone(pg, pids[0])
    wait_gone(pg, pids[1])
    assert set(idle_backends(pg, "DISCARD ALL")) >= {pids[2], pids[3]}
    assert p.log_contains(r"pool full \(max_idle_servers\)")


def test_server_idle_timeout(proxy_factory, pg):
    p = proxy_factory(config=pool_config(server_idle_timeout=2))
    pid = backend_pid(p.dsn(application_name="pool_idle"))
    wait_gone(pg, pid, timeout=15)
    p.wait_for_log(r"reason=\"server_idle_timeout\"")


def test_cancel_on_a_reused_session(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    dsn = p.dsn(application_name="pool_cancel")
    pid = backend_pid(dsn)
    wait_pooled(pg, pid)
    c = psycopg2.connect(dsn)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    assert cur.fetchone()[0] == pid
    canceller = cancel_when_sleeping(pg, pid, c)
    with pytest.raises(psycopg2.errors.QueryCanceled):
        cur.execute("SELECT pg_sleep(20)")
    canceller.join(5)
    cur.execute("SELECT 1")
    assert cur.fetchone()[0] == 1
    c.close()


def test_pgbench_new_connection_per_transaction(proxy_factory, pg):
    p = admin_proxy(proxy_factory, config=POOL)
    logins0 = metric(p, "rsproxy_upstream_logins_total")
    r = subprocess.run([pg_bin("pgbench"), "-n", "-C", "-c", "4", "-j", "2", "-t", "100", "-f",
                        "/dev/stdin", p.dsn()], input="SELECT 1;\n",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "number of transactions actually processed: 400/400" in r.stdout
    logins = metric(p, "rsproxy_upstream_logins_total") - logins0
    reused = metric(p, "rsproxy_pool_reused_total")
    assert reused >= 400 - logins and logins <= 8, (logins, reused)
    # Once the last sessions are reset and pooled, the gauge and PostgreSQL agree.
    wait_until(lambda: metric(p, "rsproxy_pool_idle_servers") ==
               len(idle_backends(pg, "DISCARD ALL")) > 0, 10, what="the pool gauge to settle")
    assert metric(p, "rsproxy_pool_reset_failures_total") == 0


def test_reload_retires_pooled_sessions(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    dsn = p.dsn(application_name="pool_reload")
    pid = backend_pid(dsn)
    wait_pooled(pg, pid)
    p.config["upstream"]["connect_timeout"] = "11"
    p.reload()
    p.wait_for_log("configuration reloaded")
    wait_gone(pg, pid)
    assert backend_pid(dsn) != pid


def test_pool_mode_none_by_default(proxy, pg):
    dsn = proxy.dsn(application_name="pool_default")
    pid = backend_pid(dsn)
    wait_gone(pg, pid)
    assert backend_pid(dsn) != pid


def test_sigterm_ends_pooled_sessions(proxy_factory, pg):
    p = proxy_factory(config=POOL)
    pid = backend_pid(p.dsn(application_name="pool_term"))
    wait_pooled(pg, pid)
    t0 = time.monotonic()
    p.signal(signal.SIGTERM)
    wait_until(lambda: not p.alive(), 10, what="rsproxy to exit")
    # Well under the 30 s drain that a session held open would cost.
    assert time.monotonic() - t0 < 20
    wait_gone(pg, pid)


# ----------------------------------------------------------------------------------------------
# Redshift: no DISCARD; RESET ALL works. IAM login happens once for the reused sessions.


def _standin_backend(c):
    return c.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_redshift_reset(cx):
    # The default reset fails on Redshift (no DISCARD statement): the session is closed.
    p = cx.proxy(start=False)
    p.config["pool"] = {"pool_mode": "session"}
    cx.start(p)
    dsn = p.dsn(user="alice", dbname="dev", application_name="pool_rs")
    with psycopg.connect(dsn, autocommit=True) as c:
        first = _standin_backend(c)
    p.wait_for_log(r"server_reset_query failed, session not reused: sqlstate=42601")
    with psycopg.connect(dsn, autocommit=True) as c:
        assert _standin_backend(c) != first
    p.stop()

    p = cx.proxy(start=False)
    p.config["pool"] = {"pool_mode": "session", "server_reset_query": "RESET ALL"}
    cx.start(p)
    dsn = p.dsn(user="alice", dbname="dev", application_name="pool_rs2")
    with psycopg.connect(dsn, autocommit=True) as c:
        first = _standin_backend(c)
        c.execute("SET search_path TO pg_catalog")
    p.wait_for_log(r"pooled \(1 idle\)")
    with psycopg.connect(dsn, autocommit=True) as c:
        assert _standin_backend(c) == first
        assert "public" in c.execute("SHOW search_path").fetchone()[0]
    assert p.log_contains("reusing pooled upstream session")
