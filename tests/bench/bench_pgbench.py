#!/usr/bin/python3
"""rsproxy against pgbouncer 1.18 and a direct TLS connection, measured with pgbench.

Starts a PostgreSQL 15 with TLS (a CA made for the run), pgbouncer as the postgres user
(clients in plaintext, server TLS verify-full with that CA, session pooling) and rsproxy
(upstream TLS verify-full, [pool] pool_mode = session), initialises pgbench, then runs `pgbench -S` at -c1 and -c16 -j2,
simple and -M prepared, against the three targets (direct, pgbouncer, rsproxy). Prints a
table of median TPS with the min-max spread and the ratios rsproxy/pgbouncer and
rsproxy/direct, the CPU each proxy spent per transaction, how busy the machine was with
other work, and the RSS of rsproxy and pgbouncer with N idle clients (logged in, and after one
query each).

How the comparison is kept fair (everything shares the same 2 cores, so method matters):
  - Both proxies reach PostgreSQL over TLS 1.3 with verify-full against the same CA, and
    the negotiated protocol and cipher are checked to be the same for the three targets
    (pg_stat_ssl) before anything is measured.
  - Every target gets the same pgbench arguments (-c, -j, -M, -T); clients reach both proxies
    in plaintext over loopback TCP.
  - A warm-up pass (one short run per target and configuration) is discarded.
  - Many short rounds, interleaved: each round runs every target once per configuration in
    a rotating order, so drift on the shared machine spreads over all targets alike.
  - CPU placement: -c1 is measured twice. Once with pgbench, the proxy and PostgreSQL all
    on CPU 0: at -c1 the chain is serial anyway, and on these VMs (idle vCPUs halt without
    polling) every wake-up that crosses CPUs costs more than a proxy's own work, so where the
    scheduler happens to put the three processes swung unpinned -c1 results by up to 2x
    between repetitions (direct: 12k-29k tps in one run). On one CPU the result is the cost
    of a round trip, steady to a few percent. Once unpinned, as production would run. -c16
    runs unpinned: it needs both CPUs. The placement is applied before every run to the
    postmaster and all its backends (pgbouncer keeps its server connections, whose backends
    would otherwise keep the placement they were forked with), the proxies and pgbench.
  - pgbouncer runs with the open-files limit raised (runuser's PAM session resets it to 1024,
    which stopped pgbouncer at about 500 clients in the idle-clients measurement).
  - Each run also records the CPU time the proxy used (per transaction: the cost that does
    not depend on the machine's load) and the CPU time spent outside the benchmark's own
    processes, so a noisy run is visible in the report.

Timing is reported, never asserted: these machines are shared and drift by up to 25%.

    /usr/bin/python3 tests/bench/bench_pgbench.py [--quick] [--rsproxy BUILD/proxy/rsproxy]
"""

import argparse
import json
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

CLK_TCK = os.sysconf("SC_CLK_TCK")
# rsproxy's [pool] max_idle_servers here: what it may keep after the idle clients leave.
POOL_IDLE_MAX = 100


def log(msg):
    print(msg, flush=True)


def nofile_target():
    """The open-files limit the benchmark's processes get: enough for 1,000 clients and their
    upstream connections, within the hard limit this process may grant."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    return min(hard, max(soft, 16384))


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
        # default_pool_size = max_client_conn: in session mode every client that has run a
        # query holds its own server connection, as every rsproxy client does.
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
default_pool_size = {max_client_conn}
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
        # runuser opens a PAM session whose pam_limits resets RLIMIT_NOFILE to 1024, whatever
        # this process has: raise it again inside, for pgbouncer itself.
        n = nofile_target()
        argv = as_postgres(["prlimit", f"--nofile={n}:{n}", "--", "/usr/sbin/pgbouncer",
                            self.ini])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, cwd="/")
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


def proc_nofile(pid):
    """The soft open-files limit of a process (read from /proc: prlimit(2) on another user's
    process needs a capability these machines may not grant)."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                v = line.split()[3]
                return resource.RLIM_INFINITY if v == "unlimited" else int(v)
    raise RuntimeError("no open-files limit")


# ---- CPU accounting


def proc_cpu_s(pid, children=False):
    """utime+stime of a process (plus its reaped children's with children=True), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime is field 14, stime 15, cutime 16, cstime 17.
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / CLK_TCK


def tree_cpu_s(pid):
    """CPU seconds of a process, its reaped children and its live children: continuous across
    a child's exit (its time moves from the live sum into the parent's cutime). PostgreSQL's
    backends are children of the postmaster; pgbouncer keeps its server connections open, so
    their backends must be counted while they live."""
    total = proc_cpu_s(pid, children=True)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:  # ppid is field 4
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) \
                / CLK_TCK
    return total


def machine_cpu_s():
    """(busy, steal) CPU seconds of the whole machine so far (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuWatch:
    """CPU used during one pgbench run: by the proxy, by PostgreSQL (the postmaster and all its
    backends), by pgbench, and by everything else on the machine."""

    def __init__(self, proxy_pid, pg_pid):
        self.proxy_pid, self.pg_pid = proxy_pid, pg_pid

    def __enter__(self):
        self.t0 = time.monotonic()
        self.m0 = machine_cpu_s()
        self.c0 = children_cpu_s()
        self.p0 = proc_cpu_s(self.proxy_pid) if self.proxy_pid else 0.0
        self.g0 = tree_cpu_s(self.pg_pid)
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        # Backends exit when pgbench disconnects; give the postmaster a moment to reap them,
        # so their CPU time lands in its children's counters.
        time.sleep(0.15)
        self.wall = time.monotonic() - self.t0
        busy1, steal1 = machine_cpu_s()
        self.busy = busy1 - self.m0[0]
        self.steal = steal1 - self.m0[1]
        self.pgbench = children_cpu_s() - self.c0
        self.proxy = (proc_cpu_s(self.proxy_pid) - self.p0) if self.proxy_pid else 0.0
        self.pg = tree_cpu_s(self.pg_pid) - self.g0
        self.other = max(0.0, self.busy - self.pgbench - self.proxy - self.pg)
        return False


# ---- pgbench


def run_pgbench(dsn, clients, threads, mode, seconds):
    """Returns (tps, transactions)."""
    argv = [pg_bin("pgbench"), "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(threads),
            "-T", str(seconds), dsn]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 4 + 60)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", p.stdout)
    n = re.search(r"number of transactions actually processed: (\d+)", p.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    if p.returncode != 0 or not m or not n or (failed and failed.group(1) != "0"):
        raise RuntimeError(f"pgbench {' '.join(argv[1:-1])} failed ({p.returncode}):\n"
                           f"{p.stdout}\n{p.stderr}")
    return float(m.group(1)), int(n.group(1))


def tls_of(dsn):
    """(version, cipher) of the server-side TLS session a client of dsn ends up on."""
    p = subprocess.run([pg_bin("psql"), "-XAtc",
                        "SELECT version || ' ' || cipher FROM pg_stat_ssl "
                        "WHERE pid = pg_backend_pid()", dsn],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"psql failed: {p.stderr}")
    return p.stdout.strip()


# ---- idle clients


def idle_clients_rss(host, port, n, rss_fn, with_query):
    """Logs n clients in (and with with_query runs one query on each, so a session pooler
    holds a server connection for it) and keeps them idle; returns (rss before, rss with n
    idle). The figure is taken once the clients have been quiet for a few seconds: rsproxy
    gives an idle session's TLS buffers back after one quiet second."""
    before = rss_fn()
    conns = []
    try:
        for _ in range(n):
            c = pgwire.RawConn(host, port, timeout=30)
            c.login("scramuser", "bench", {"application_name": "idle"})
            if with_query:
                rows, _, errors = c.simple_query("SELECT 1")
                if errors or rows != [["1"]]:
                    raise RuntimeError(f"query on an idle client failed: {errors}")
            conns.append(c)
        time.sleep(3.0)
        during = rss_fn()
    finally:
        for c in conns:
            try:
                c.send(pgwire.terminate())
            except OSError:
                pass
            c.close()
    return before, during


def wait_backends_gone(pg, baseline, timeout=60):
    """Waits until no more backends serve database bench than before the idle clients came,
    plus the sessions rsproxy keeps pooled (both proxies keep pooled server connections, so
    that is not zero)."""
    wait_until(lambda: len(pg.backends(dbname="bench")) <= baseline + POOL_IDLE_MAX, timeout,
               what="the idle clients' backends to exit")


# ---- the run


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except OSError:
            continue
    return out


def place(cpus, pg_pid, proxy_pids):
    """Restricts the postmaster with all its processes, the proxies and (through this process,
    whose affinity pgbench inherits) pgbench to `cpus`."""
    for pid in [pg_pid] + children_of(pg_pid) + list(proxy_pids):
        try:
            os.sched_setaffinity(pid, cpus)
        except ProcessLookupError:
            pass  # a backend that just exited
    os.sched_setaffinity(0, cpus)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a fast sanity run: scale 1, 2 s per run, 1 round, no warm-up, "
                         "100 idle")
    ap.add_argument("--rsproxy", default=os.environ.get("RSPROXY_BIN",
                                                        os.path.join(TOP, "build", "proxy",
                                                                     "rsproxy")))
    ap.add_argument("--seconds", type=int, help="pgbench -T per run (default 4, quick 2)")
    ap.add_argument("--rounds", "--reps", dest="rounds", type=int,
                    help="interleaved rounds (default 6, quick 1)")
    ap.add_argument("--warmup", type=int, help="seconds of the discarded warm-up run per "
                                               "target and configuration (default 2, quick 0)")
    ap.add_argument("--scale", type=int, help="pgbench scale (default 10, quick 1)")
    ap.add_argument("--idle", type=int, help="idle clients for the RSS figure (default 1000)")
    ap.add_argument("--only", help="comma-separated configurations to run, out of "
                                   "c1cpu0-simple, c1cpu0-prepared, c1-simple, c1-prepared, "
                                   "c16-simple, c16-prepared")
    ap.add_argument("--json", help="also write every run's figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    seconds = args.seconds or (2 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 6)
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    scale = args.scale or (1 if args.quick else 10)
    idle = args.idle if args.idle is not None else (100 if args.quick else 1000)
    if not os.access(args.rsproxy, os.X_OK):
        sys.exit(f"rsproxy binary {args.rsproxy} not found: build it or pass --rsproxy")
    if not os.access("/usr/sbin/pgbouncer", os.X_OK):
        sys.exit("pgbouncer not found: run tests/install-deps.sh")

    # 1,000 clients plus their upstreams need descriptors: raise the soft limit (inherited by
    # rsproxy and pgbench; pgbouncer gets it through prlimit, see Pgbouncer.start).
    nofile = nofile_target()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    workdir = make_workdir("rsproxy-bench-")
    pg = pgb = proxy = None
    t_start = time.monotonic()
    load_start = os.getloadavg()
    try:
        certs = os.path.join(workdir, "certs")
        os.makedirs(certs)
        give_to_postgres(certs, 0o755)
        ca = CertAuthority(certs, "rsproxy bench CA")
        server = ca.issue("server", ["DNS:localhost", "IP:127.0.0.1"], owner_postgres=True)
        pg = PgCluster(workdir, cert=server, max_connections=idle + 100 + POOL_IDLE_MAX,
                       settings={"shared_buffers": "'256MB'"})
        pg.start().setup_roles()
        pg.sql("CREATE DATABASE bench OWNER scramuser")
        pg_pid = int(open(os.path.join(pg.data, "postmaster.pid")).readline())
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
        # Session pooling, as pgbouncer runs here: a pgbench run's clients get the previous
        # run's upstream sessions, whose backends are warm (PostgreSQL's caches, and the page
        # tables a new backend builds as it first touches shared memory, which cost a run of
        # fresh backends about 10% at -c16).
        cfg["pool"] = {"pool_mode": "session", "max_idle_servers": str(POOL_IDLE_MAX)}
        proxy = RsProxy(args.rsproxy, pdir, cfg, secrets_=pg.passwords.values()).start()
        for name, pid in (("pgbouncer", pgb.pid()), ("rsproxy", proxy.pid)):
            soft = proc_nofile(pid)
            if soft != resource.RLIM_INFINITY and soft < idle * 2 + 64:
                raise RuntimeError(f"{name} may open only {soft} files: too few for "
                                   f"{idle} idle clients")

        targets = [
            ("direct", direct, None),
            ("pgbouncer", f"host=127.0.0.1 port={pgb.port} user=scramuser dbname=bench "
                          f"sslmode=disable", pgb.pid()),
            ("rsproxy", proxy.dsn(dbname="bench", application_name="pgbench"), proxy.pid),
        ]
        tls = {name: tls_of(dsn) for name, dsn, _ in targets}
        log("== upstream TLS: " + ", ".join(f"{k} {v}" for k, v in tls.items()))
        if len(set(tls.values())) != 1:
            raise RuntimeError(f"the targets reach PostgreSQL with different TLS: {tls}")

        all_cpus = os.sched_getaffinity(0)
        one_cpu = {min(os.sched_getaffinity(0))}
        # (label, clients, threads, mode, CPUs, name for --only)
        configs = [("-c1, 1 CPU", 1, 1, "simple", one_cpu, "c1cpu0-simple"),
                   ("-c1, 1 CPU", 1, 1, "prepared", one_cpu, "c1cpu0-prepared"),
                   ("-c1", 1, 1, "simple", all_cpus, "c1-simple"),
                   ("-c1", 1, 1, "prepared", all_cpus, "c1-prepared"),
                   ("-c16 -j2", 16, 2, "simple", all_cpus, "c16-simple"),
                   ("-c16 -j2", 16, 2, "prepared", all_cpus, "c16-prepared")]
        if args.only:
            want = set(args.only.split(","))
            configs = [c for c in configs if c[5] in want]
        proxy_pids = [pid for _, _, pid in targets if pid]
        runs = []
        if warmup:
            log(f"== warm-up: pgbench -S -T {warmup} per target and configuration "
                "(discarded)")
            for label, clients, threads, mode, cpus, _ in configs:
                for name, dsn, _ in targets:
                    place(cpus, pg_pid, proxy_pids)
                    run_pgbench(dsn, clients, threads, mode, warmup)
        log(f"== pgbench -S -T {seconds}, {rounds} round(s), targets interleaved")
        for rnd in range(rounds):
            for ci, (label, clients, threads, mode, cpus, _) in enumerate(configs):
                # Rotate the order so no target always runs first or right after another.
                k = (rnd + ci) % len(targets)
                for name, dsn, ppid in targets[k:] + targets[:k]:
                    place(cpus, pg_pid, proxy_pids)
                    load1 = os.getloadavg()[0]
                    with CpuWatch(ppid, pg_pid) as w:
                        tps, ntx = run_pgbench(dsn, clients, threads, mode, seconds)
                    r = {"round": rnd + 1, "config": label, "mode": mode, "target": name,
                         "tps": tps, "tx": ntx, "wall_s": w.wall, "load1": load1,
                         "cpu_proxy_s": w.proxy, "cpu_pg_s": w.pg, "cpu_pgbench_s": w.pgbench,
                         "cpu_other_s": w.other, "steal_s": w.steal, "busy_s": w.busy}
                    runs.append(r)
                    per_tx = f"{w.proxy / ntx * 1e6:5.1f} us/tx" if ppid else " " * 11
                    log(f"   round {rnd + 1} {label:11} {mode:8} {name:9} {tps:8.0f} tps  "
                        f"proxy {per_tx}  other load {w.other / w.wall * 100:4.0f}% "
                        f"of a CPU")
        place(all_cpus, pg_pid, proxy_pids)
        if not proxy.alive():
            raise RuntimeError(f"rsproxy died during the benchmark:\n{proxy.log_tail()}")

        # pgbouncer keeps the server connections its clients made in its pool, so the
        # round in which its clients run a query comes last (PostgreSQL's max_connections has
        # room for one set of idle clients at a time).
        rss = {}
        baseline = len(pg.backends(dbname="bench"))
        for name, with_query in (("pgbouncer", False), ("rsproxy", False),
                                 ("rsproxy", True), ("pgbouncer", True)):
            what = "after one query each" if with_query else "logged in"
            log(f"== RSS of {name} with {idle} idle clients ({what})")
            if name == "pgbouncer":
                rss[(name, with_query)] = idle_clients_rss("127.0.0.1", pgb.port, idle,
                                                           pgb.rss_kb, with_query)
            else:
                rss[(name, with_query)] = idle_clients_rss(proxy.host, proxy.port, idle,
                                                           proxy.rss_kb, with_query)
            if (name, with_query) != ("pgbouncer", True):
                wait_backends_gone(pg, baseline)

        elapsed = time.monotonic() - t_start
        print_report(runs, configs, targets, rss, idle, seconds, rounds, warmup, scale, tls,
                     load_start, os.getloadavg(), elapsed)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"runs": runs, "rss": {f"{k[0]}/{'query' if k[1] else 'login'}": v
                                                 for k, v in rss.items()},
                           "seconds": seconds, "rounds": rounds, "scale": scale},
                          f, indent=1)
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


def print_report(runs, configs, targets, rss, idle, seconds, rounds, warmup, scale, tls,
                 load_start, load_end, elapsed):
    def sel(label, mode, name, key):
        return [r[key] for r in runs if r["config"] == label and r["mode"] == mode
                and r["target"] == name]

    def med(label, mode, name):
        return statistics.median(sel(label, mode, name, "tps"))

    def spread(label, mode, name):
        v = sel(label, mode, name, "tps")
        return f"{min(v):.0f}-{max(v):.0f}"

    def cpu_us(label, mode, name):
        per = [r["cpu_proxy_s"] / r["tx"] * 1e6 for r in runs if r["config"] == label
               and r["mode"] == mode and r["target"] == name and r["tx"]]
        return statistics.median(per)

    print()
    print(f"pgbench -S, scale {scale}, -T {seconds}, median of {rounds} interleaved rounds "
          f"(min-max), {warmup} s warm-up per cell discarded; {os.cpu_count()} CPUs, "
          f"{platform.machine()}; everything on this machine. \"1 CPU\": pgbench, the proxy "
          f"and PostgreSQL all on CPU {min(min(c[4]) for c in configs)}; otherwise unpinned.")
    print(f"Upstream TLS for all three targets: {next(iter(tls.values()))}, verify-full")
    print()
    print("| pgbench -S | direct TLS | pgbouncer 1.18 | rsproxy | rsproxy/pgbouncer "
          "| rsproxy/direct |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, _, _, mode, _, _ in configs:
        d, b, r = (med(label, mode, n) for n in ("direct", "pgbouncer", "rsproxy"))
        print(f"| {label} -M {mode} | {d:.0f} ({spread(label, mode, 'direct')}) "
              f"| {b:.0f} ({spread(label, mode, 'pgbouncer')}) "
              f"| {r:.0f} ({spread(label, mode, 'rsproxy')}) | {r / b:.2f} | {r / d:.2f} |")
    print()
    print("Proxy CPU per transaction (median; user+system time of the proxy process):")
    print()
    print("| pgbench -S | pgbouncer 1.18 | rsproxy | rsproxy/pgbouncer |")
    print("|---|---:|---:|---:|")
    for label, _, _, mode, _, _ in configs:
        b, r = cpu_us(label, mode, "pgbouncer"), cpu_us(label, mode, "rsproxy")
        print(f"| {label} -M {mode} | {b:.1f} us | {r:.1f} us | {r / b:.2f} |")
    print()
    other = [r["cpu_other_s"] / r["wall_s"] * 100 for r in runs]
    steal = [r["steal_s"] / r["wall_s"] * 100 for r in runs]
    load1 = [r["load1"] for r in runs]
    print(f"Machine load during the runs: CPU used outside the benchmark's processes median "
          f"{statistics.median(other):.0f}% of one CPU (max {max(other):.0f}%), steal median "
          f"{statistics.median(steal):.0f}% (max {max(steal):.0f}%); 1-min load average "
          f"{min(load1):.1f}-{max(load1):.1f} (at start {load_start[0]:.1f}, at end "
          f"{load_end[0]:.1f}).")
    print()
    print(f"| RSS, {idle} idle clients | before | logged in | per client "
          f"| after one query each | per client |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("pgbouncer", "rsproxy"):
        # Both per-client figures are against the RSS before the first set of clients: the
        # second set reuses memory the first one freed, which the process keeps.
        b0, d0 = rss[(name, False)]
        _, d1 = rss[(name, True)]
        per0 = (d0 - b0) / idle if idle else 0
        per1 = (d1 - b0) / idle if idle else 0
        print(f"| {name} | {b0 / 1024:.1f} MB | {d0 / 1024:.1f} MB | {per0:.1f} kB "
              f"| {d1 / 1024:.1f} MB | {per1:.1f} kB |")
    print()
    print("(rsproxy logs every client in upstream before answering it, so each of its idle "
          "clients holds an upstream TLS session; pgbouncer's hold one only once they have "
          f"run a query.) Total run time {elapsed:.0f} s.")
    print("BENCH TABLE COMPLETE")


if __name__ == "__main__":
    sys.exit(main())
