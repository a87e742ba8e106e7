"""Command line, configuration and listener of the Redshift SQL stand-in.

Reads the shared world file (region, the cluster's digest users), opens the TLS listener,
prints `LISTENING <port>` once it accepts connections, runs one Session per client and exits
cleanly on SIGTERM. The upstream PostgreSQL is given as a libpq-style conninfo string.
"""

import argparse
import asyncio
import binascii
import concurrent.futures
import json
import os
import signal
import ssl
import sys

from .session import Session


class Config:
    def __init__(self, args, world):
        self.world = world
        clusters = world.get("clusters") or {}
        self.cluster = args.cluster or (next(iter(clusters)) if clusters else "examplecluster")
        cluster = clusters.get(self.cluster, {})
        self.region = args.region or cluster.get("region") or world.get("region") or "us-east-1"
        up = parse_conninfo(args.upstream or cluster.get("pg_upstream", ""))
        self.up_host = up.get("host", "127.0.0.1")
        self.up_port = int(up.get("port", "5432"))
        mode = up.get("sslmode", "prefer")
        self.up_sslmode = mode
        self.up_ssl = None
        if mode in ("require", "verify-ca", "verify-full", "prefer"):
            ctx = ssl.create_default_context(cafile=up.get("sslrootcert"))
            if mode in ("require", "prefer"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif mode == "verify-ca":
                ctx.check_hostname = False
            self.up_ssl = ctx
        self.server_ssl = None
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            self.server_ssl = ctx
        self.require_ssl = args.require_ssl
        self.aws_control = args.aws_control
        self.s3_endpoint = args.s3_endpoint
        self.s3_ca = args.s3_ca
        self.slices = args.slices
        self.max_protocol_version = args.max_protocol_version
        self.show_discovery = args.show_discovery
        self.copy_count = args.copy_count
        self.standard_conforming_strings = args.standard_conforming_strings
        self.digest_users = {}
        self._salts = {}
        for user, spec in (cluster.get("digest_users") or {}).items():
            pw = spec if isinstance(spec, str) else spec["password"]
            self.digest_users[user] = pw
            if isinstance(spec, dict) and spec.get("salt"):
                self._salts[user] = binascii.unhexlify(spec["salt"])
        for item in args.digest_user or []:
            user, _, pw = item.partition("=")
            self.digest_users[user] = pw

    def digest_salt(self, user):
        if user not in self._salts:
            self._salts[user] = os.urandom(32)
        return self._salts[user]


def parse_conninfo(s):
    """'host=h port=5432 sslmode=require' -> dict (values may be single-quoted)."""
    out, i, n = {}, 0, len(s)
    while i < n:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            break
        eq = s.find("=", i)
        if eq < 0:
            raise ValueError(f"bad conninfo near {s[i:]!r}")
        key = s[i:eq].strip()
        i = eq + 1
        while i < n and s[i].isspace():
            i += 1
        if i < n and s[i] == "'":
            i += 1
            val = []
            while i < n and s[i] != "'":
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                val.append(s[i])
                i += 1
            i += 1
            out[key] = "".join(val)
        else:
            j = i
            while j < n and not s[j].isspace():
                j += 1
            out[key] = s[i:j]
            i = j
    return out


def build_parser():
    p = argparse.ArgumentParser(prog="redshift_standin.py",
                                description="Redshift SQL stand-in in front of PostgreSQL")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--state", help="world JSON file shared by the stand-ins")
    p.add_argument("--cluster", help="cluster of the world file this stand-in plays")
    p.add_argument("--region", help="the cluster's region (default: the world's)")
    p.add_argument("--upstream", help="PostgreSQL conninfo: host= port= sslmode= sslrootcert=")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--require-ssl", action="store_true")
    p.add_argument("--aws-control", help="base URL of the AWS stand-in (control API)")
    p.add_argument("--s3-endpoint", help="URL of the S3 stand-in")
    p.add_argument("--s3-ca", help="CA bundle for an https S3 endpoint")
    p.add_argument("--slices", type=int, default=2,
                   help="slices UNLOAD writes in parallel (files per UNLOAD)")
    p.add_argument("--max-protocol-version", type=int, default=0,
                   help="highest client_protocol_version negotiated (the stand-in speaks 0)")
    p.add_argument("--show-discovery", type=int, default=0)
    p.add_argument("--copy-count", action="store_true",
                   help='answer COPY with "COPY n" instead of "COPY"')
    p.add_argument("--standard-conforming-strings", choices=("on", "off"), default="off")
    p.add_argument("--digest-user", action="append", metavar="USER=PASSWORD",
                   help="authenticate USER with Redshift's SHA-256 digest (code 13)")
    p.add_argument("--quiet", action="store_true")
    return p


async def serve(cfg, args, log):
    sessions = set()

    async def on_client(reader, writer):
        s = Session(cfg, reader, writer, log)
        task = asyncio.current_task()
        sessions.add(task)
        try:
            await s.run()
        finally:
            sessions.discard(task)

    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=64))
    server = await asyncio.start_server(on_client, args.host, args.port, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()
    log(f"serving on {args.host}:{port} cluster={cfg.cluster} upstream={cfg.up_host}:"
        f"{cfg.up_port} s3={cfg.s3_endpoint} aws={cfg.aws_control} pid={os.getpid()}")
    await stop.wait()
    server.close()
    for t in list(sessions):
        t.cancel()
    await asyncio.gather(*sessions, return_exceptions=True)
    await server.wait_closed()


def main(argv=None):
    args = build_parser().parse_args(argv)
    world = {}
    if args.state:
        with open(args.state) as f:
            world = json.load(f)
    cfg = Config(args, world)

    def log(line):
        if not args.quiet:
            sys.stderr.write(f"redshift-standin: {line}\n")
            sys.stderr.flush()

    asyncio.run(serve(cfg, args, log))
    return 0
