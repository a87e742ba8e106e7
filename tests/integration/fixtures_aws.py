"""Fixtures for the AWS stand-in (tests/standins/aws): start it with a world file and talk to it.

Loaded as a plugin by conftest.py. The stand-in is a separate process (Debian's
/usr/bin/python3) that verifies every signature with botocore; these fixtures only start it,
drive its control API and hand out boto3 clients and environments pointed at it.

Fixtures:
  aws_pg                 a PostgreSQL cluster for the stand-in's minted passwords, with an
                         `md5` pg_hba method (it serves md5 and SCRAM secrets alike)
  aws_world              the example world (tests/standins/aws/world.example.json) bound to
                         aws_pg; a dict a test may change before starting a stand-in
  aws_tls                (cert, key, ca_file) for a stand-in serving HTTPS on localhost
  aws_standin_factory    make(world=None, tls=False, start=True) -> AwsStandin; every stand-in
                         is stopped at the end of the test and must exit 0 without having
                         logged a secret
  aws_standin            aws_standin_factory() with aws_world, plain HTTP

Helpers for other fixtures (the IAM tests bind the world to the harness's own cluster):
  make_world(pg_cluster=None, **overrides) -> world dict; AwsStandin (.url, .client(),
  .env(), .calls(), .fault(), ... see the class).
"""

import copy
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from pgharness import HarnessError, conninfo

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN_DIR = os.path.join(os.path.dirname(HERE), "standins", "aws")
STANDIN = os.path.join(STANDIN_DIR, "aws_standin.py")
EXAMPLE_WORLD = os.path.join(STANDIN_DIR, "world.example.json")
PYTHON = "/usr/bin/python3"

# Long-term keys of the example world (the stand-in's fake account, not real AWS keys).
PROXY_KEY = "AKIAPROXYTEST0000001"
NOPERMS_KEY = "AKIANOPERMS000000002"
SCOPED_KEY = "AKIASCOPED0000000003"


def make_world(pg_cluster=None, **overrides):
    """The example world as a dict. With a PgCluster, every cluster and workgroup applies its
    passwords there (admin over the Unix socket) and advertises it as its endpoint."""
    with open(EXAMPLE_WORLD, encoding="utf-8") as f:
        world = json.load(f)
    for section, key_addr, key_port in (("clusters", "Address", "Port"),
                                        ("workgroups", "address", "port")):
        for item in world.get(section, {}).values():
            if pg_cluster is not None:
                item["pg_admin_dsn"] = conninfo({"host": pg_cluster.sockdir,
                                                 "port": pg_cluster.port, "user": "postgres",
                                                 "dbname": "postgres"})
                item["endpoint"] = {key_addr: "localhost", key_port: pg_cluster.port}
            elif item.get("pg_admin_dsn") == "@PG_ADMIN_DSN@":
                del item["pg_admin_dsn"]
    world.update(copy.deepcopy(overrides))
    return world


def secret_of(world, akid):
    return world["principals"][akid]["secret"]


class StandinError(AssertionError):
    pass


class AwsStandin:
    """One stand-in process: its world file, log, URL and control API."""

    def __init__(self, workdir, world, tls=None, name="aws"):
        self.dir = workdir
        self.world = world
        self.tls = tls  # (cert, key, ca_file) or None
        self.name = name
        self.state = os.path.join(workdir, f"{name}-world.json")
        self.logfile = os.path.join(workdir, f"{name}.log")
        self.proc = None
        self.port = None
        self.exit_code = None

    # -- process

    def start(self, timeout=20):
        with open(self.state, "w", encoding="utf-8") as f:
            json.dump(self.world, f, indent=1)
        argv = [PYTHON, STANDIN, "--port", "0", "--state", self.state]
        if self.tls:
            argv += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL)
        line = [None]

        def read_first():
            line[0] = self.proc.stdout.readline().decode(errors="replace").strip()

        reader = threading.Thread(target=read_first, daemon=True)
        reader.start()
        reader.join(timeout)
        if not line[0] or not line[0].startswith("LISTENING "):
            self.kill()
            raise HarnessError(f"AWS stand-in did not start (first line {line[0]!r}):\n"
                               f"{self.log_text()[-3000:]}")
        self.port = int(line[0].split()[1])
        return self

    def stop(self, timeout=10):
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
        self._close_files()
        return self.exit_code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def _close_files(self):
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_log", None):
            self._log.close()

    def log_text(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def problems(self, extra_secrets=()):
        out = []
        if self.exit_code not in (0, None):
            out.append(f"exit status {self.exit_code} after SIGTERM")
        log = self.log_text()
        if "Traceback" in log:
            out.append("a Python traceback in its log")
        secrets_ = [p["secret"] for p in self.world.get("principals", {}).values()]
        secrets_ += list(extra_secrets)
        if any(s and s in log for s in secrets_):
            out.append("a secret appears in its log")
        return out

    # -- addresses and clients

    @property
    def url(self):
        # "localhost" so that HTTPS clients verify the name against the certificate.
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    @property
    def region(self):
        return self.world["region"]

    def client(self, service, akid=PROXY_KEY, secret=None, token=None, **config):
        """A boto3 client for `service` pointed at the stand-in (retries off unless asked)."""
        import boto3
        from botocore.config import Config
        cfg = {"retries": {"total_max_attempts": 1, "mode": "standard"}, "connect_timeout": 5,
               "read_timeout": 30}
        cfg.update(config)
        return boto3.client(
            service, region_name=self.region, endpoint_url=self.url,
            aws_access_key_id=akid,
            aws_secret_access_key=secret if secret is not None else
            self.world["principals"].get(akid, {}).get("secret"),
            aws_session_token=token, verify=self.tls[2] if self.tls else None,
            config=Config(**cfg))

    def env(self, akid=PROXY_KEY, with_keys=True):
        """AWS_* variables that point an SDK (or rsproxy) at the stand-in."""
        env = {"AWS_ENDPOINT_URL": self.url, "AWS_REGION": self.region,
               "AWS_DEFAULT_REGION": self.region, "AWS_EC2_METADATA_DISABLED": "true",
               "AWS_CONFIG_FILE": "/nonexistent/aws-config",
               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}
        if with_keys:
            env["AWS_ACCESS_KEY_ID"] = akid
            env["AWS_SECRET_ACCESS_KEY"] = self.world["principals"][akid]["secret"]
        if self.tls:
            env["AWS_CA_BUNDLE"] = self.tls[2]
        return env

    @property
    def container_uri(self):
        return self.url + self.world.get("container", {}).get("path", "/v2/credentials/rsproxy")

    # -- control API

    def _control(self, method, path, doc=None, ok=(200,)):
        import ssl
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(self.url + "/_standin/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        ctx = ssl.create_default_context(cafile=self.tls[2]) if self.tls else None
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        result = json.loads(body) if body else None
        if status not in ok:
            raise StandinError(f"control {method} {path} -> {status}: {result}")
        return result

    def calls(self, by_key=False):
        return self._control("GET", "calls?by=key" if by_key else "calls")

    def reset(self):
        return self._control("POST", "reset", {})

    def fault(self, op, mode, count=1, **kw):
        """Arms a fault: mode throttle|error|stall|garbage|truncated|partial|internal|
        unavailable; kw: code, status, message (error), seconds (stall)."""
        doc = {"op": op, "mode": mode, "count": count}
        doc.update(kw)
        return self._control("POST", "faults", doc)

    def faults(self):
        return self._control("GET", "faults")

    def clear_faults(self):
        return self._control("DELETE", "faults")

    def key(self, akid):
        """The stand-in's record of a key, or None when it does not know it."""
        doc = self._control("GET", f"keys/{akid}", ok=(200, 404))
        return None if "error" in doc else doc

    def expire(self, akid):
        return self._control("POST", "expire", {"access_key_id": akid})

    def assume_for_redshift(self, cluster, roles, user=None):
        doc = {"cluster": cluster, "roles": roles}
        if user:
            doc["user"] = user
        return self._control("POST", "assume-for-redshift", doc)

    def requests(self):
        return self._control("GET", "requests")

    def live_world(self):
        return self._control("GET", "world")

    def patch_world(self, patch):
        """RFC 7386 merge patch of the running stand-in's world (null deletes a key)."""
        return self._control("PATCH", "world", patch)


@pytest.fixture(scope="session")
def aws_pg(make_cluster):
    """A cluster whose TCP logins use the `md5` method, which answers with MD5 or SCRAM
    depending on the stored secret, so both password_encryption choices can log in."""
    c = make_cluster("aws-pg", ssl=False, roles=False)
    with open(os.path.join(c.data, "pg_hba.conf"), "w") as f:
        f.write("local all all trust\nhost all all 127.0.0.1/32 md5\n")
    c.reload()
    time.sleep(0.3)
    return c


@pytest.fixture
def aws_world(aws_pg):
    return make_world(aws_pg)


@pytest.fixture(scope="session")
def aws_tls(certs):
    crt, key = certs.issue("aws-standin", ["DNS:localhost", "IP:127.0.0.1"])
    return crt, key, certs.ca_file


@pytest.fixture
def aws_standin_factory(workdir, request):
    made = []
    test_name = request.node.name[:40].replace("/", "_").replace("[", "_").replace("]", "")

    def make(world=None, tls=False, start=True, tls_files=None):
        if world is None:
            world = request.getfixturevalue("aws_world")
        if tls and tls_files is None:
            tls_files = request.getfixturevalue("aws_tls")
        d = tempfile.mkdtemp(dir=workdir, prefix=f"aws-{test_name}-")
        s = AwsStandin(d, world, tls=tls_files if tls else None, name=f"aws{len(made)}")
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    problems = []
    for s in made:
        s.stop()
        for prob in s.problems():
            problems.append(f"{s.name}: {prob}\n--- log tail ({s.logfile}) ---\n"
                            f"{s.log_text()[-4000:]}")
    if problems:
        pytest.fail("the AWS stand-in did not run cleanly:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def aws_standin(aws_standin_factory):
    return aws_standin_factory()
