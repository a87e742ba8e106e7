#!/usr/bin/python3
"""What COPY/UNLOAD rewriting costs ordinary traffic: pgbench -S through two rsproxy processes
that differ only in [s3] (one with aws_iam_role and tempdir set, so every Query and Parse is
checked by the rewriter's fast path; one without, so the relay never calls it), plus the
rewriter's own throughput figures (tests/bench/rewrite).

Upstream is a plain PostgreSQL 15 with TLS verify-full (upstream.auth = password), not the
Redshift stand-in: the stand-in is Python and would measure itself. Both proxies run at the
same time against the same cluster; runs are interleaved (A B, then B A, ...) at -c1 and
-c16 -j2, simple and -M prepared, several repetitions. Prints medians, the ratio
rewrite/plain, each side's spread (min-max as a share of the median) and the ratio of each
adjacent pair, so a reader can judge whether the difference is within noise.

Timing is reported, never asserted: these machines are shared and drift by up to 25%.

    /usr/bin/python3 tests/bench/bench_rewrite_pgbench.py [--quick] [--rsproxy BIN]
        [--bench-rewrite BIN | --rewrite-build DIR] [--seconds S] [--reps N] [--scale N]
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from pgharness import (CertAuthority, PgCluster, RsProxy, default_proxy_config,  # noqa: E402
                       free_port, give_to_postgres, make_workdir, pg_bin)

sys.path.insert(0, HERE)
from bench_pgbench import run_pgbench  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/RedshiftCopy"
TEMPDIR = "s3://rsproxy-bench/tmp/"


def log(msg):
    print(msg, flush=True)


def start_proxy(workdir, name, pg, ca, s3):
    d = os.path.join(workdir, name)
    os.makedirs(d)
    cfg = default_proxy_config(pg, ca, free_port())
    # The same log level for both: the rewrite's debug line must not tilt the figures.
    cfg["proxy"]["log_level"] = "warn"
    cfg["proxy"]["max_client_conn"] = "200"
    cfg["s3"].update(s3)
    return RsProxy(os.path.abspath(ARGS.rsproxy), d, cfg, name=name,
                   secrets_=pg.passwords.values()).start()


def check_rewriting(proxies):
    """Proves which proxy rewrites: PostgreSQL answers a COPY FROM 's3://...' with a syntax
    error at the IAM_ROLE rsproxy inserted, and without rewriting with a file error."""
    sql = "COPY pgbench_history FROM 's3://rsproxy-bench/none.csv' CSV"
    seen = {}
    for name, p in proxies.items():
        r = subprocess.run([pg_bin("psql"), "-X", "-At", "-d", p.dsn(dbname="bench"),
                            "-c", sql], capture_output=True, text=True, timeout=60)
        seen[name] = r.stderr.strip()
    if 'syntax error at or near "IAM_ROLE"' not in seen["rewrite"]:
        raise RuntimeError(f"the rewrite proxy did not rewrite: {seen['rewrite']}")
    if "IAM_ROLE" in seen["plain"]:
        raise RuntimeError(f"the plain proxy rewrote: {seen['plain']}")
    log(f"   rewrite proxy: {seen['rewrite'].splitlines()[0]}")
    log(f"   plain proxy:   {seen['plain'].splitlines()[0]}")


def rewriter_figures():
    """The rewriter benchmark's table (tests/bench/rewrite), as text."""
    if ARGS.bench_rewrite:
        argv = [ARGS.bench_rewrite]
        note = f"{ARGS.bench_rewrite} (the build type of that tree)"
    else:
        argv = ["sh", os.path.join(TOP, "tests", "bench", "rewrite", "run.sh")]
        if ARGS.rewrite_build:
            argv.append(ARGS.rewrite_build)
        argv.append("--")
        note = "tests/bench/rewrite/run.sh (Release build)"
    if ARGS.quick:
        argv += ["--seconds", "0.05", "--repeat", "1"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return note, r.stdout.rstrip()


def spread(values):
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med else 0.0


def print_report(results, pairs, configs, seconds, reps, scale, elapsed, rw_note, rw_text):
    print()
    print(f"pgbench -S through rsproxy, scale {scale}, -T {seconds}, {reps} interleaved "
          f"repetition(s); {os.cpu_count()} CPUs, {platform.machine()}; upstream PostgreSQL 15 "
          f"with TLS verify-full on this machine (not the Redshift stand-in)")
    print("plain = no [s3] settings (the relay never calls the rewriter); rewrite = [s3] "
          "aws_iam_role + tempdir (every Query/Parse goes through the rewriter's fast path)")
    print()
    print("| pgbench -S | plain TPS (median) | spread | rewrite TPS (median) | spread "
          "| rewrite/plain | paired ratios min-max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for label, _, _, mode in configs:
        a = results[(label, mode, "plain")]
        b = results[(label, mode, "rewrite")]
        ma, mb = statistics.median(a), statistics.median(b)
        pr = pairs[(label, mode)]
        ratio = mb / ma
        print(f"| {label} -M {mode} | {ma:.0f} | {spread(a) * 100:.1f}% | {mb:.0f} "
              f"| {spread(b) * 100:.1f}% | {ratio:.3f} | {min(pr):.3f}-{max(pr):.3f} |")
        noise = max(spread(a), spread(b))
        if len(a) < 2:
            judged = "one repetition: no spread to judge against"
        elif abs(1 - ratio) <= noise or min(pr) <= 1.0 <= max(pr):
            judged = "within noise"
        else:
            judged = "outside the observed noise"
        verdicts.append(f"{label} -M {mode}: rewrite/plain {ratio:.3f}, run-to-run spread "
                        f"{noise * 100:.1f}% -> {judged}")
    print()
    print("spread = (max - min) / median of that side's runs; paired ratios = rewrite/plain of "
          "the two runs made back to back in each repetition")
    for v in verdicts:
        print("  " + v)
    print()
    print(f"Rewriter throughput, from {rw_note}:")
    print()
    print(rw_text)
    print()
    print(f"Total run time {elapsed:.0f} s.")
    print("BENCH TABLE COMPLETE")


def main():
    # Quick runs still get 5 s: pgbench counts its connection phase (16 TLS logins through
    # rsproxy, slow on a loaded machine) against -T, and 2 s can end with no transaction.
    seconds = ARGS.seconds or (5 if ARGS.quick else 10)
    reps = ARGS.reps or (1 if ARGS.quick else 3)
    scale = ARGS.scale or (1 if ARGS.quick else 10)
    if not os.access(ARGS.rsproxy, os.X_OK):
        sys.exit(f"rsproxy binary {ARGS.rsproxy} not found: build it or pass --rsproxy")
    workdir = make_workdir("rsproxy-bench-rewrite-")
    pg = None
    proxies = {}
    t0 = time.monotonic()
    try:
        certs = os.path.join(workdir, "certs")
        os.makedirs(certs)
        give_to_postgres(certs, 0o755)
        ca = CertAuthority(certs, "rsproxy bench CA")
        server = ca.issue("server", ["DNS:localhost", "IP:127.0.0.1"], owner_postgres=True)
        pg = PgCluster(workdir, cert=server, max_connections=200,
                       settings={"shared_buffers": "'256MB'"})
        pg.start().setup_roles()
        pg.sql("CREATE DATABASE bench OWNER scramuser")
        log(f"== pgbench -i -s {scale} (direct, TLS verify-full)")
        subprocess.run([pg_bin("pgbench"), "-i", "-q", "-s", str(scale),
                        pg.direct_dsn(dbname="bench", sslrootcert=ca.cert)],
                       check=True, capture_output=True, timeout=600)
        proxies["plain"] = start_proxy(workdir, "plain", pg, ca.cert, {})
        proxies["rewrite"] = start_proxy(workdir, "rewrite", pg, ca.cert,
                                         {"aws_iam_role": ROLE, "tempdir": TEMPDIR})
        log("== which proxy rewrites (a COPY FROM S3 against PostgreSQL)")
        check_rewriting(proxies)

        # Warm both proxies, the cluster's caches and the CPU before anything is measured.
        for name in ("plain", "rewrite"):
            run_pgbench(proxies[name].dsn(dbname="bench", application_name="pgbench-warmup"),
                        4, 2, "simple", 1 if ARGS.quick else 3)
        configs = [("-c1", 1, 1, "simple"), ("-c1", 1, 1, "prepared"),
                   ("-c16 -j2", 16, 2, "simple"), ("-c16 -j2", 16, 2, "prepared")]
        names = ["plain", "rewrite"]
        results = {(c[0], c[3], n): [] for c in configs for n in names}
        pairs = {(c[0], c[3]): [] for c in configs}
        log(f"== pgbench -S -T {seconds}, {reps} repetition(s), plain and rewrite interleaved")
        for rep in range(reps):
            for ci, (label, clients, threads, mode) in enumerate(configs):
                order = names if (rep + ci) % 2 == 0 else names[::-1]
                got = {}
                for name in order:
                    dsn = proxies[name].dsn(dbname="bench", application_name="pgbench")
                    got[name] = run_pgbench(dsn, clients, threads, mode, seconds)[0]
                    results[(label, mode, name)].append(got[name])
                    log(f"   rep {rep + 1} {label:9} {mode:8} {name:8} {got[name]:10.0f} tps")
                pairs[(label, mode)].append(got["rewrite"] / got["plain"])
        for name, p in proxies.items():
            if not p.alive():
                raise RuntimeError(f"rsproxy {name} died during the benchmark:\n{p.log_tail()}")
        log("== rewriter throughput (tests/bench/rewrite)")
        rw_note, rw_text = rewriter_figures()
        print_report(results, pairs, configs, seconds, reps, scale, time.monotonic() - t0,
                     rw_note, rw_text)
        for name in list(proxies):
            proxies.pop(name).stop_and_check()
        return 0
    finally:
        for p in proxies.values():
            p.stop()
        if pg:
            pg.stop()
        if ARGS.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a fast sanity run: scale 1, 5 s per run, 1 repetition, short "
                         "rewriter figures")
    ap.add_argument("--rsproxy", default=os.environ.get(
        "RSPROXY_BIN", os.path.join(TOP, "build", "proxy", "rsproxy")))
    ap.add_argument("--bench-rewrite", help="a built bench_rewrite binary to run instead of "
                                            "tests/bench/rewrite/run.sh")
    ap.add_argument("--rewrite-build", help="build dir for run.sh (default: its own Release "
                                            "tree, build-bench-rewrite)")
    ap.add_argument("--seconds", type=int, help="pgbench -T per run (default 10, quick 5)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--scale", type=int, help="pgbench scale (default 10, quick 1)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    return ap.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    sys.exit(main())
