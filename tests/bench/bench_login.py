#!/usr/bin/python3
"""Login latency through rsproxy in IAM mode with cached credentials, against a direct TLS login
to PostgreSQL, and AWS API calls per 1,000 logins.

Starts a PostgreSQL 15 with TLS (a CA made for the run; the only TCP rule is `hostssl ... md5`),
the AWS stand-in (tests/standins/aws, botocore-verified SigV4) whose example cluster is that
PostgreSQL, and rsproxy with upstream.auth = iam (TLS verify-full). One cold login fills the
credential cache; then, in interleaved rounds (A B, B A, ...):

  direct   psycopg connect (TLS verify-full, MD5 exchange as md5user) + SELECT 1 + close
  rsproxy  psycopg connect to rsproxy (plaintext, trust) as alice + SELECT 1 + close; rsproxy
           takes the cached IAM:alice credentials and does TLS verify-full + MD5 upstream

and, unless --no-pgbench, `pgbench -n -C -c1 -f SELECT1` against both, also interleaved
(connections per second, reconnecting for every transaction). Prints medians, p90 and the
rsproxy/direct ratio, the cold first login, and the stand-in's call counts per 1,000 logins.
Timing is reported, never asserted: these machines are shared and drift by up to 25%.

    /usr/bin/python3 tests/bench/bench_login.py [--quick] [--rsproxy BUILD/proxy/rsproxy]
        [--rounds N] [--logins N] [--pgbench-seconds N] [--no-pgbench] [--keep]
"""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import psycopg  # noqa: E402

from fixtures_aws import AwsStandin, make_world  # noqa: E402
from pgharness import (CertAuthority, PgCluster, RsProxy, conninfo,  # noqa: E402
                       default_proxy_config, free_port, give_to_postgres, make_workdir,
                       pg_bin)


def log(msg):
    print(msg, flush=True)


def login_once(dsn):
    """Seconds for connect + SELECT 1 + close."""
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as c:
        if c.execute("SELECT 1").fetchone()[0] != 1:
            raise RuntimeError("SELECT 1 did not return 1")
    return time.perf_counter() - t0


def pgbench_connect_rate(dsn, seconds, script):
    """(logins per second, transactions, average connection ms) of `pgbench -C -c1`: a new
    connection for every SELECT 1."""
    argv = [pg_bin("pgbench"), "-n", "-C", "-c", "1", "-j", "1", "-T", str(seconds), "-f",
            script, dsn]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 4 + 60)
    tps = re.search(r"tps = ([0-9.]+) \(including reconnection times\)", p.stdout)
    done = re.search(r"number of transactions actually processed: (\d+)", p.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    conn_ms = re.search(r"average connection time = ([0-9.]+) ms", p.stdout)
    if p.returncode != 0 or not tps or not done or (failed and failed.group(1) != "0"):
        raise RuntimeError(f"pgbench -C failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return float(tps.group(1)), int(done.group(1)), (float(conn_ms.group(1)) if conn_ms
                                                     else None)


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a sanity run: 2 rounds of 20 logins, pgbench 1 s")
    ap.add_argument("--rsproxy", default=os.environ.get("RSPROXY_BIN",
                                                        os.path.join(TOP, "build", "proxy",
                                                                     "rsproxy")))
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 10, quick 2)")
    ap.add_argument("--logins", type=int, help="logins per target per round (default 100, "
                                               "quick 20)")
    ap.add_argument("--pgbench-seconds", type=int, help="pgbench -T per run (default 5, "
                                                        "quick 1)")
    ap.add_argument("--no-pgbench", action="store_true", help="skip the pgbench -C figures")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    rounds = args.rounds or (2 if args.quick else 10)
    per_round = args.logins or (20 if args.quick else 100)
    pgb_seconds = args.pgbench_seconds or (1 if args.quick else 5)
    if not os.access(args.rsproxy, os.X_OK):
        sys.exit(f"rsproxy binary {args.rsproxy} not found: build it or pass --rsproxy")

    workdir = make_workdir("rsproxy-bench-login-")
    pg = standin = proxy = None
    t_start = time.monotonic()
    try:
        certs = os.path.join(workdir, "certs")
        os.makedirs(certs)
        give_to_postgres(certs, 0o755)
        ca = CertAuthority(certs, "rsproxy bench CA")
        server = ca.issue("server", ["DNS:localhost", "IP:127.0.0.1"], owner_postgres=True)
        pg = PgCluster(workdir, cert=server, max_connections=100)
        pg.start().setup_roles()
        # One rule for every TCP login: TLS, and MD5 or SCRAM as the stored secret says. The
        # stand-in stores md5 verifiers for the example cluster; md5user has one too, so both
        # targets run the same exchange.
        hba = os.path.join(pg.data, "pg_hba.conf")
        with open(hba, "w") as f:
            f.write("local all all trust\nhostssl all all 127.0.0.1/32 md5\n")
        give_to_postgres(hba, 0o600)
        pg.reload()
        time.sleep(0.3)
        pg.sql("CREATE DATABASE dev")

        sdir = os.path.join(workdir, "aws")
        os.makedirs(sdir)
        standin = AwsStandin(sdir, make_world(pg)).start()

        pdir = os.path.join(workdir, "rsproxy")
        os.makedirs(pdir)
        cfg = default_proxy_config(pg, ca.cert, free_port())
        cfg["proxy"]["log_level"] = "warn"
        cfg["upstream"].update({"auth": "iam", "host": "localhost", "port": str(pg.port)})
        for k in ("password", "user"):
            cfg["upstream"].pop(k, None)
        cfg["iam"] = {"cluster_identifier": "examplecluster"}
        proxy = RsProxy(args.rsproxy, pdir, cfg, secrets_=pg.passwords.values())
        for k in [k for k in proxy.env if k.startswith("AWS_")]:
            del proxy.env[k]
        proxy.env.update(standin.env())
        proxy.env["HOME"] = pdir
        proxy.start()

        direct = pg.direct_dsn(user="md5user", dbname="dev", sslrootcert=ca.cert)
        via = conninfo({"host": "127.0.0.1", "port": proxy.port, "user": "alice",
                        "dbname": "dev", "sslmode": "disable", "connect_timeout": 10})
        targets = [("direct", direct), ("rsproxy", via)]

        cold = login_once(via)  # GetClusterCredentials, then the login
        calls_after_cold = dict(standin.calls())
        login_once(direct)

        samples = {name: [] for name, _ in targets}
        log(f"== {rounds} round(s) x {per_round} logins per target, interleaved")
        for r in range(rounds):
            order = targets if r % 2 == 0 else targets[::-1]
            for name, dsn in order:
                for _ in range(per_round):
                    samples[name].append(login_once(dsn))
                log(f"   round {r + 1} {name:8} median "
                    f"{statistics.median(samples[name][-per_round:]) * 1000:.2f} ms")

        pgb = {name: [] for name, _ in targets}
        if not args.no_pgbench:
            script = os.path.join(workdir, "select1.sql")
            with open(script, "w") as f:
                f.write("SELECT 1;\n")
            pgb_rounds = 2 if args.quick else 3
            log(f"== pgbench -C -c1 -T {pgb_seconds}, {pgb_rounds} round(s), interleaved")
            for r in range(pgb_rounds):
                order = targets if r % 2 == 0 else targets[::-1]
                for name, dsn in order:
                    tps, done, conn_ms = pgbench_connect_rate(dsn, pgb_seconds, script)
                    pgb[name].append((tps, done, conn_ms))
                    log(f"   round {r + 1} {name:8} {tps:8.0f} logins/s, connection "
                        f"{conn_ms if conn_ms is not None else float('nan'):.2f} ms")

        if not proxy.alive():
            raise RuntimeError(f"rsproxy died during the benchmark:\n{proxy.log_tail()}")
        calls = dict(standin.calls())
        logins = 1 + rounds * per_round + sum(done for _, done, _ in pgb["rsproxy"])
        print_report(samples, pgb, cold, calls_after_cold, calls, logins, pgb_seconds,
                     time.monotonic() - t_start)
        proxy.stop_and_check()
        proxy = None
        return 0
    finally:
        if proxy:
            proxy.stop()
        if standin:
            standin.stop()
        if pg:
            pg.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_report(samples, pgb, cold, calls_cold, calls, logins, pgb_seconds, elapsed):
    ms = {k: [v * 1000 for v in vs] for k, vs in samples.items()}
    d, r = statistics.median(ms["direct"]), statistics.median(ms["rsproxy"])
    print()
    print(f"Login = connect + SELECT 1 + close with psycopg 3; {len(ms['direct'])} logins per "
          f"target; {os.cpu_count()} CPUs, {platform.machine()}; everything on this machine")
    print()
    print("| login | median | p90 | rsproxy/direct (median) |")
    print("|---|---:|---:|---:|")
    print(f"| direct TLS verify-full, MD5 | {d:.2f} ms | {pct(ms['direct'], 0.9):.2f} ms | |")
    print(f"| rsproxy IAM, cached credentials | {r:.2f} ms | {pct(ms['rsproxy'], 0.9):.2f} ms "
          f"| {r / d:.2f} |")
    print(f"| rsproxy IAM, first login (cold cache) | {cold * 1000:.2f} ms | | |")
    if pgb["direct"] and pgb["rsproxy"]:
        bd = statistics.median(t for t, _, _ in pgb["direct"])
        br = statistics.median(t for t, _, _ in pgb["rsproxy"])

        def conn(name):
            v = [c for _, _, c in pgb[name] if c is not None]
            return f"{statistics.median(v):.2f} ms" if v else "-"
        print()
        print(f"| pgbench -n -C -c1 -T {pgb_seconds} (SELECT 1) | logins/s (median) "
              "| connection time (median) | rsproxy/direct (logins/s) |")
        print("|---|---:|---:|---:|")
        print(f"| direct TLS verify-full, MD5 | {bd:.0f} | {conn('direct')} | |")
        print(f"| rsproxy IAM, cached credentials | {br:.0f} | {conn('rsproxy')} "
              f"| {br / bd:.2f} |")
    print()
    ops = sorted(set(calls) | set(calls_cold))
    print(f"| AWS API calls (stand-in counts) | first login | total | per 1,000 logins "
          f"({logins} logins through rsproxy) |")
    print("|---|---:|---:|---:|")
    if not ops:
        print("| (none) | 0 | 0 | 0 |")
    for op in ops:
        n = calls.get(op, 0)
        print(f"| {op} | {calls_cold.get(op, 0)} | {n} | {n * 1000 / logins:.2f} |")
    print()
    print(f"Total run time {elapsed:.0f} s.")
    print("BENCH TABLE COMPLETE")


if __name__ == "__main__":
    sys.exit(main())
