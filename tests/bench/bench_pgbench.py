#!/usr/bin/python3
"""rsproxy against pgbouncer 1.18 and a direct TLS connection, measured with pgbench.

Starts a PostgreSQL 15 with TLS (a CA made for the run), pgbouncer as the postgres user
(clients in plaintext, server TLS verify-full with that CA, session pooling) and rsproxy
(upstream TLS verify-full), initialises pgbench, then runs `pgbench -S` at -c1 and -c16
(-j2), simple and -M prepared, interleaving the three targets (A direct, B pgbouncer,
C rsproxy) in a rotating order, several repetitions. Prints a table of median TPS with the
ratios rsproxy/pgbouncer and rsproxy/direct, then the RSS of rsproxy and pgbouncer with N
idle logged-in clients.

Timing is reported, never asserted: these machines are shared and drift by up to 25%.

    /usr/bin/python3 tests/bench/bench_pgbench.py [--quick] [--rsproxy BUILD/proxy/rsproxy]
"""

import argparse
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

import pgwire  # noqa: E402
from pgharness import (CertAuthority, PgCluster, RsProxy, as_postgres, default_proxy_config,  # noqa: E402
                       free_port, give_to_postgres, make_workdir, pg_bin, run_when_gone,
                       wait_until)


def log(msg):
    print(msg, flush=True)


# ---- pgbouncer


class Pgbouncer:
    """Debian's pgbouncer, run as postgres (it refuses root), session pooling, server TLS
    verify-full against the run's CA, clients in plaintext with trust (as rsproxy's)."""

    def __init__(self, workdir, pg, ca_file, max_client_conn):
        self.dir = os.path.join(workdir, "pgbouncer")
        os.makedirs(self.dir)
        give_to_postgres(self.dir, 0o700)
        self.port = free_port()
        self.pidfile = os.path.join(self.dir, "pgbouncer.pid")
        self.logfile = os.path.join(self.dir, "pgbouncer.log")
        users = os.path.join(self.dir, "users.txt")
        with open(users, "w") as f:
            f.write(f'"scramuser" "{pg.passwords["scramuser"]}"\n')
        give_to_postgres(users, 0o600)
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(self.ini, "w") as f:
            f.write(f"""[databases]
* = host=localhost port={pg.port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = session
max_client_conn = {max_client_conn}
default_pool_size = 40
server_tls_sslmode = verify-full
server_tls_ca_file = {ca_file}
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = {self.logfile}
pidfile = {self.pidfile}
""")
        give_to_postgres(self.ini, 0o600)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(as_postgres(["/usr/sbin/pgbouncer", self.ini]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     cwd="/")
        # If this script is killed (ctest's timeout), pgbouncer must not outlive it.
        self.reaper = run_when_gone(["sh", "-c", f"kill -INT $(cat {self.pidfile})"])

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log_tail()}")
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return os.path.exists(self.pidfile)
        wait_until(up, 15, what="pgbouncer to accept")
        return self

    def pid(self):
        with open(self.pidfile) as f:
            return int(f.read().strip())

    def rss_kb(self):
        return proc_rss_kb(self.pid())

    def log_tail(self):
        try:
            with open(self.logfile) as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.pid(), signal.SIGINT)
            except (OSError, ValueError):
                self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "reaper", None):
            self.reaper.terminate()
            self.reaper.wait()


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# ---- pgbench


def run_pgbench(dsn, clients, threads, mode, seconds):
    argv = [pg_bin("pgbench"), "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(threads),
            "-T", str(seconds), dsn]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 4 + 60)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", p.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    if p.returncode != 0 or not m or (failed and failed.group(1) != "0"):
        raise RuntimeError(f"pgbench {' '.join(argv[1:-1])} failed ({p.returncode}):\n"
                           f"{p.stdout}\n{p.stderr}")
    return float(m.group(1))


# ---- idle clients


def idle_clients_rss(name, host, port, n, rss_fn):
    """Logs n clients in and keeps them idle; returns (rss before, rss with n idle)."""
    before = rss_fn()
    conns = []
    try:
        for i in range(n):
            c = pgwire.RawConn(host, port, timeout=30)
            c.login("scramuser", "bench", {"application_name": "idle"})
            conns.append(c)
        time.sleep(1.0)
        during = rss_fn()
    finally:
        for c in conns:
            try:
                c.send(pgwire.terminate())
            except OSError:
                pass
            c.close()
    return before, during


# ---- the run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a fast sanity run: scale 1, 2 s per run, 1 repetition, 100 idle")
    ap.add_argument("--rsproxy", default=os.environ.get("RSPROXY_BIN",
                                                        os.path.join(TOP, "build", "proxy",
                                                                     "rsproxy")))
    ap.add_argument("--seconds", type=int, help="pgbench -T per run (default 10, quick 2)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--scale", type=int, help="pgbench scale (default 10, quick 1)")
    ap.add_argument("--idle", type=int, help="idle clients for the RSS figure (default 1000)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    seconds = args.seconds or (2 if args.quick else 10)
    reps = args.reps or (1 if args.quick else 3)
    scale = args.scale or (1 if args.quick else 10)
    idle = args.idle if args.idle is not None else (100 if args.quick else 1000)
    if not os.access(args.rsproxy, os.X_OK):
        sys.exit(f"rsproxy binary {args.rsproxy} not found: build it or pass --rsproxy")
    if not os.access("/usr/sbin/pgbouncer", os.X_OK):
        sys.exit("pgbouncer not found: run tests/install-deps.sh")

    # 1,000 clients plus their upstreams need descriptors: raise the soft limit (inherited).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 8192))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    workdir = make_workdir("rsproxy-bench-")
    pg = pgb = proxy = None
    t_start = time.monotonic()
    try:
        certs = os.path.join(workdir, "certs")
        os.makedirs(certs)
        give_to_postgres(certs, 0o755)
        ca = CertAuthority(certs, "rsproxy bench CA")
        server = ca.issue("server", ["DNS:localhost", "IP:127.0.0.1"], owner_postgres=True)
        pg = PgCluster(workdir, cert=server, max_connections=idle + 100,
                       settings={"shared_buffers": "'256MB'"})
        pg.start().setup_roles()
        pg.sql("CREATE DATABASE bench OWNER scramuser")
        direct = pg.direct_dsn(dbname="bench", sslrootcert=ca.cert)
        log(f"== pgbench -i -s {scale} (direct, TLS verify-full)")
        subprocess.run([pg_bin("pgbench"), "-i", "-q", "-s", str(scale), direct], check=True,
                       capture_output=True, timeout=600)

        pgb = Pgbouncer(workdir, pg, ca.cert, max_client_conn=idle + 100).start()
        pdir = os.path.join(workdir, "rsproxy")
        os.makedirs(pdir)
        cfg = default_proxy_config(pg, ca.cert, free_port())
        cfg["proxy"]["log_level"] = "warn"
        cfg["proxy"]["max_client_conn"] = str(idle + 100)
        proxy = RsProxy(args.rsproxy, pdir, cfg, secrets_=pg.passwords.values()).start()

        targets = [
            ("direct", direct),
            ("pgbouncer", f"host=127.0.0.1 port={pgb.port} user=scramuser dbname=bench "
                          f"sslmode=disable"),
            ("rsproxy", proxy.dsn(dbname="bench", application_name="pgbench")),
        ]
        configs = [("-c1", 1, 1, "simple"), ("-c1", 1, 1, "prepared"),
                   ("-c16 -j2", 16, 2, "simple"), ("-c16 -j2", 16, 2, "prepared")]
        results = {(c[0], c[3], t[0]): [] for c in configs for t in targets}
        log(f"== pgbench -S -T {seconds}, {reps} repetition(s), targets interleaved")
        for rep in range(reps):
            for ci, (label, clients, threads, mode) in enumerate(configs):
                # Rotate the order so no target always runs first (cache, CPU frequency).
                k = (rep + ci) % len(targets)
                for name, dsn in targets[k:] + targets[:k]:
                    tps = run_pgbench(dsn, clients, threads, mode, seconds)
                    results[(label, mode, name)].append(tps)
                    log(f"   rep {rep + 1} {label:9} {mode:8} {name:9} {tps:10.0f} tps")
        if not proxy.alive():
            raise RuntimeError(f"rsproxy died during the benchmark:\n{proxy.log_tail()}")

        log(f"== RSS with {idle} idle clients")
        rss = {}
        rss["pgbouncer"] = idle_clients_rss("pgbouncer", "127.0.0.1", pgb.port, idle, pgb.rss_kb)
        rss["rsproxy"] = idle_clients_rss("rsproxy", proxy.host, proxy.port, idle,
                                          proxy.rss_kb)

        print_report(results, configs, targets, rss, idle, seconds, reps, scale,
                     time.monotonic() - t_start)
        proxy.stop_and_check()
        proxy = None
        return 0
    finally:
        if proxy:
            proxy.stop()
        if pgb:
            pgb.stop()
        if pg:
            pg.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def print_report(results, configs, targets, rss, idle, seconds, reps, scale, elapsed):
    med = {k: statistics.median(v) for k, v in results.items()}
    print()
    print(f"pgbench -S, scale {scale}, -T {seconds}, median of {reps}; "
          f"{os.cpu_count()} CPUs, {platform.machine()}; everything on this machine")
    print()
    print("| pgbench -S | direct TLS | pgbouncer 1.18 | rsproxy | rsproxy/pgbouncer "
          "| rsproxy/direct |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, _, _, mode in configs:
        d = med[(label, mode, "direct")]
        b = med[(label, mode, "pgbouncer")]
        r = med[(label, mode, "rsproxy")]
        print(f"| {label} -M {mode} | {d:.0f} | {b:.0f} | {r:.0f} | {r / b:.2f} | {r / d:.2f} |")
    print()
    print(f"| RSS, {idle} idle clients | before | with clients | per client |")
    print("|---|---:|---:|---:|")
    for name in ("pgbouncer", "rsproxy"):
        before, during = rss[name]
        per = (during - before) / idle if idle else 0
        print(f"| {name} | {before / 1024:.1f} MB | {during / 1024:.1f} MB | {per:.1f} kB |")
    print()
    print(f"(rsproxy holds one upstream TLS session per client; pgbouncer's idle clients hold "
          f"none.) Total run time {elapsed:.0f} s.")
    print("BENCH TABLE COMPLETE")


if __name__ == "__main__":
    sys.exit(main())
