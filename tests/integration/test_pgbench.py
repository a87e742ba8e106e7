"""pgbench through rsproxy: initialisation (client-side COPY FROM STDIN), the simple, extended
and prepared query modes, write transactions, a reconnect per transaction (-C), and pipelining
(\\startpipeline). Counts are checked in the database, never timings."""

import os
import re
import subprocess

import pytest

from pgharness import pg_bin, wait_until


def pgbench(dsn, *args, timeout=180):
    argv = [pg_bin("pgbench")] + list(args) + [dsn]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, LANG="C.UTF-8"))
    if p.returncode != 0:
        raise AssertionError(f"pgbench {' '.join(args)} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p.stdout + p.stderr


def processed(output):
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", output)
    assert m, output
    failed = re.search(r"number of failed transactions: (\d+)", output)
    assert failed and failed.group(1) == "0", output
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def bench_db(pg, certs):
    """A pgbench scale-1 database made directly (TLS), shared by the run tests."""
    pg.sql("CREATE DATABASE pgbench OWNER scramuser")
    pgbench(pg.direct_dsn(dbname="pgbench", sslrootcert=certs.ca_file), "-i", "-s", "1", "-q")
    return "pgbench"


def test_init_through_proxy_uses_copy(proxy, pg):
    out = pgbench(proxy.dsn(), "-i", "-s", "2", "-I", "dtgvp")
    assert "done" in out
    assert pg.sql_value("SELECT count(*) FROM pgbench_accounts", dbname="rsdb") == 200000
    assert pg.sql_value("SELECT count(*) FROM pgbench_branches", dbname="rsdb") == 2
    assert pg.sql_value("SELECT sum(abalance) FROM pgbench_accounts", dbname="rsdb") == 0
    pgbench(proxy.dsn(), "-i", "-I", "d")


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_select_only(proxy, bench_db, mode):
    out = pgbench(proxy.dsn(dbname=bench_db), "-n", "-S", "-M", mode, "-c", "4", "-j", "2",
                  "-t", "300")
    assert processed(out) == (1200, 1200)


@pytest.mark.parametrize("mode", ["simple", "prepared"])
def test_tpcb_writes(proxy, pg, bench_db, mode):
    before = pg.sql_value("SELECT count(*) FROM pgbench_history", dbname=bench_db)
    out = pgbench(proxy.dsn(dbname=bench_db), "-n", "-M", mode, "-c", "4", "-j", "2",
                  "-t", "100")
    assert processed(out) == (400, 400)
    after = pg.sql_value("SELECT count(*) FROM pgbench_history", dbname=bench_db)
    assert after - before == 400
    # The balances moved by the history rows: the transactions really committed.
    assert pg.sql_value("SELECT sum(delta) FROM pgbench_history", dbname=bench_db) == \
        pg.sql_value("SELECT sum(abalance) FROM pgbench_accounts", dbname=bench_db)


def test_reconnect_each_transaction(proxy, pg, bench_db):
    out = pgbench(proxy.dsn(dbname=bench_db), "-n", "-S", "-C", "-c", "2", "-j", "2",
                  "-t", "100")
    assert processed(out) == (200, 200)
    wait_until(lambda: not pg.backends(dbname=bench_db), 10,
               what="upstream sessions of pgbench -C to end")


def test_pipeline_mode(proxy, bench_db, workdir):
    script = os.path.join(workdir, "pipeline.sql")
    with open(script, "w") as f:
        f.write("\\set aid random(1, 100000)\n"
                "\\startpipeline\n"
                "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
                "SELECT 1 / (:aid::int - :aid::int + 1);\n"
                "SELECT count(*) FROM pgbench_branches;\n"
                "\\endpipeline\n")
    os.chmod(script, 0o644)
    for mode in ("extended", "prepared"):
        out = pgbench(proxy.dsn(dbname=bench_db), "-n", "-M", mode, "-f", script, "-c", "2",
                      "-t", "200")
        assert processed(out) == (400, 400)
