"""Fixtures for the Redshift SQL stand-in (tests/standins/redshift): start it and connect to it.

Loaded as a plugin by conftest.py. The stand-in is a Python process (Debian's /usr/bin/python3)
with TLS in front of a PostgreSQL 15 cluster of the harness; COPY and UNLOAD reach S3 through
the S3 stand-in with credentials from the AWS stand-in, so the full stack is four processes.

Fixtures:
  redshift_pg               a cluster whose TCP logins use the `md5` method (which also runs
                            SCRAM for SCRAM secrets), so the AWS stand-in's md5 IAM passwords
                            and the harness roles all log in; the stand-in reaches it over
                            plain loopback TCP and clients reach the stand-in over TLS
  redshift_tls              (cert, key) for the stand-in, issued by the session CA for
                            localhost / 127.0.0.1
  redshift_standin_factory  make(world=None, aws=None, s3=None, args=(), pg_cluster=None)
                            -> RedshiftStandin; stopped at the end of the test, must exit 0
                            with no traceback and no secret in its log
  redshift_stack            AWS + S3 + Redshift stand-ins on redshift_pg, one world: the
                            cluster `examplecluster` advertises the Redshift stand-in as its
                            endpoint (what rsproxy discovers with DescribeClusters)

Helpers: RedshiftStandin (.port, .dsn(user, dbname, **kw), .connect(user, dbname, **kw)), and
the process contract every stand-in follows (StandinProcess, standin_process_start), which
fixtures_s3 shares.
"""

import os
import signal
import subprocess
import tempfile
import threading
import time
import types

import pytest

from pgharness import HarnessError, conninfo

HERE = os.path.dirname(os.path.abspath(__file__))
RS_DIR = os.path.join(os.path.dirname(HERE), "standins", "redshift")
RS_MAIN = os.path.join(RS_DIR, "redshift_standin.py")
PYTHON = "/usr/bin/python3"
BUCKETS = ["rsproxy-test", "rsproxy-other"]


def standin_process_start(argv, logfile, timeout=60, env=None, what="stand-in"):
    """Starts a stand-in that prints `LISTENING <port>`; returns (Popen, port, logfile handle)."""
    log = open(logfile, "ab")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                            env=env)
    line = [None]

    def read_first():
        line[0] = proc.stdout.readline().decode(errors="replace").strip()

    t = threading.Thread(target=read_first, daemon=True)
    t.start()
    t.join(timeout)
    if not line[0] or not line[0].startswith("LISTENING "):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
        with open(logfile, errors="replace") as f:
            tail = f.read()[-3000:]
        raise HarnessError(f"{what} did not start (first line {line[0]!r}):\n{tail}")
    return proc, int(line[0].split()[1]), log


class StandinProcess:
    """The contract every stand-in follows: LISTENING <port>, clean exit on SIGTERM."""

    what = "stand-in"

    def __init__(self, workdir, name):
        self.dir = workdir
        self.name = name
        self.logfile = os.path.join(workdir, f"{name}.log")
        self.proc = None
        self.port = None
        self.exit_code = None
        self._log = None

    def argv(self):
        raise NotImplementedError

    def start(self, timeout=60):
        self.proc, self.port, self._log = standin_process_start(
            self.argv(), self.logfile, timeout=timeout, what=f"{self.what} {self.name}")
        return self

    def stop(self, timeout=15):
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = "hung"
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
        return self.exit_code

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def problems(self, secrets_=()):
        out = []
        if self.exit_code not in (0, None):
            out.append(f"exit status {self.exit_code} after SIGTERM")
        log = self.log_text()
        for marker in ("Traceback", "internal error", "TypeError", "ReferenceError"):
            if marker in log:
                out.append(f"{marker!r} in its log")
        if any(s and s in log for s in secrets_):
            out.append("a secret appears in its log")
        return out


class RedshiftStandin(StandinProcess):
    what = "Redshift stand-in"

    def __init__(self, workdir, world, pg, tls, ca_file, aws=None, s3=None, args=(),
                 name="redshift"):
        super().__init__(workdir, name)
        self.world = world
        self.pg = pg
        self.tls = tls
        self.ca_file = ca_file
        self.aws = aws
        self.s3 = s3
        self.args = list(args)
        self.state = os.path.join(workdir, f"{name}-world.json")

    def argv(self):
        import json
        with open(self.state, "w", encoding="utf-8") as f:
            json.dump(self.world, f, indent=1)
        # Plain TCP on loopback: over TLS, PostgreSQL would offer SCRAM-SHA-256-PLUS, and a
        # client binding to the stand-in's certificate could never match PostgreSQL's.
        upstream = conninfo({"host": "127.0.0.1", "port": self.pg.port, "sslmode": "disable"})
        argv = [PYTHON, RS_MAIN, "--port", "0", "--state", self.state, "--upstream", upstream,
                "--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        if self.aws is not None:
            argv += ["--aws-control", self.aws.url]
        if self.s3 is not None:
            argv += ["--s3-endpoint", self.s3.endpoint]
        return argv + self.args

    def dsn(self, user="scramuser", dbname="rsdb", password=None, sslmode="verify-full", **kw):
        parts = {"host": "localhost", "port": self.port, "user": user, "dbname": dbname,
                 "password": password if password is not None else
                 self.pg.passwords.get(user, ""),
                 "sslmode": sslmode, "sslrootcert": self.ca_file, "connect_timeout": 10}
        parts.update(kw)
        return conninfo(parts)

    def connect(self, user="scramuser", dbname="rsdb", autocommit=True, **kw):
        import psycopg
        return psycopg.connect(self.dsn(user, dbname, **kw), autocommit=autocommit)

    def secrets(self):
        out = list(self.pg.passwords.values())
        out += [p.get("secret") for p in self.world.get("principals", {}).values()]
        for c in self.world.get("clusters", {}).values():
            for spec in (c.get("digest_users") or {}).values():
                out.append(spec if isinstance(spec, str) else spec.get("password"))
        return [s for s in out if s]


@pytest.fixture(scope="session")
def redshift_pg(make_cluster):
    c = make_cluster("rs-pg")
    with open(os.path.join(c.data, "pg_hba.conf"), "w") as f:
        f.write("local all all trust\nhost all all 127.0.0.1/32 md5\n")
    c.reload()
    time.sleep(0.3)
    return c


@pytest.fixture(scope="session")
def redshift_tls(certs):
    return certs.issue("redshift-standin", ["DNS:localhost", "IP:127.0.0.1"])


@pytest.fixture
def redshift_standin_factory(workdir, redshift_pg, redshift_tls, certs, request):
    made = []
    test_name = request.node.name[:40].replace("/", "_").replace("[", "_").replace("]", "")

    def make(world=None, aws=None, s3=None, args=(), pg_cluster=None):
        if world is None:
            world = aws.world if aws is not None else {"region": "us-east-1", "clusters": {}}
        d = tempfile.mkdtemp(dir=workdir, prefix=f"rs-{test_name}-")
        r = RedshiftStandin(d, world, pg_cluster or redshift_pg, redshift_tls, certs.ca_file,
                            aws=aws, s3=s3, args=args, name=f"redshift{len(made)}")
        made.append(r)
        r.start()
        return r

    yield make
    problems = []
    for r in made:
        r.stop()
        for prob in r.problems(r.secrets()):
            problems.append(f"{r.name}: {prob}\n--- log tail ({r.logfile}) ---\n"
                            f"{r.log_text()[-4000:]}")
    if problems:
        pytest.fail("the Redshift stand-in did not run cleanly:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def redshift_stack(redshift_pg, aws_standin_factory, s3_standin_factory,
                   redshift_standin_factory):
    """The three stand-ins on one world; returns a namespace (pg, world, aws, s3, redshift)."""
    from fixtures_aws import make_world
    world = make_world(redshift_pg, buckets=list(BUCKETS))
    aws = aws_standin_factory(world=world)
    s3 = s3_standin_factory(aws=aws)
    rs = redshift_standin_factory(world=world, aws=aws, s3=s3)
    endpoint = {"Address": "localhost", "Port": rs.port}
    aws.patch_world({"clusters": {name: {"endpoint": endpoint}
                                  for name in world.get("clusters", {})}})
    return types.SimpleNamespace(pg=redshift_pg, world=world, aws=aws, s3=s3, redshift=rs)
