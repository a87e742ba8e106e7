"""The README's quick-start command, tests/local-gateway.sh, run as a newcomer would (minus the
install and build steps, which run-tests.sh has just done): PostgreSQL, the AWS, S3 and
Redshift stand-ins and rsproxy in IAM mode. The test types exactly what the script prints —
the psql line, the "try this" statements, the S3 commands — and checks the effects where they
land: IAM:alice's login through DescribeClusters and GetClusterCredentials, the rows the COPY
loaded, the objects the UNLOAD wrote (read with boto3 from the S3 stand-in), the role rsproxy
added. Then Ctrl-C (SIGINT to the terminal's process group) must stop every process the
script started and remove its state, and no secret may appear in its output.

Every process the script starts inherits a marker variable from the test's environment, so
"nothing left behind" is checked by scanning /proc for it, and the teardown can kill what a
failed run leaves (only those processes, by pid)."""

import configparser
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from pgharness import free_port, pg_bin, wait_until

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "local-gateway.sh")
MARK = "RSPROXY_GATEWAY_TEST_MARK"
PORT_KNOBS = ("RSPROXY_GATEWAY_PORT", "RSPROXY_GATEWAY_PG_PORT", "RSPROXY_GATEWAY_REDSHIFT_PORT",
              "RSPROXY_GATEWAY_AWS_PORT", "RSPROXY_GATEWAY_S3_PORT")
BUCKET = "rsproxy-demo"
ROLE = "arn:aws:iam::123456789012:role/RedshiftCopyUnload"
CITIES = [("1", "Tokyo", "JP", "37194000"), ("2", "Delhi", "IN", "32941000"),
          ("3", "Shanghai", "CN", "29210000"), ("4", "São Paulo", "BR", "22620000"),
          ("5", "Mexico City", "MX", "22281000")]
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def marked_pids(mark):
    """Processes whose environment carries this run's marker (everything the script started,
    PostgreSQL included: runuser and pg_ctl pass the environment on)."""
    needle = f"{MARK}={mark}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{d}/stat", "rb") as f:
                state = f.read().rsplit(b") ", 1)[1][:1]
        except OSError:
            continue
        if needle in env and state != b"Z":
            out.append(int(d))
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def port_closed(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


class Gateway:
    """One run of the script in its own session (the terminal it would run in)."""

    def __init__(self, rsproxy_bin, workdir, name="gateway-state", env=None):
        self.state = os.path.join(workdir, name)
        self.mark = uuid.uuid4().hex
        self.env = dict(os.environ, RSPROXY_SKIP_INSTALL="1", RSPROXY_BIN=rsproxy_bin,
                        RSPROXY_GATEWAY_DIR=self.state, RSPROXY_GATEWAY_ADMIN_PORT="0",
                        LANG="C.UTF-8", LC_ALL="C.UTF-8")
        self.env[MARK] = self.mark
        for knob in PORT_KNOBS:
            self.env[knob] = str(free_port())
        # The script must ignore a developer's real AWS setup: give it a poisoned one.
        self.env.update(AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG0", AWS_SECRET_ACCESS_KEY="x" * 40,
                        AWS_PROFILE="no-such-profile", AWS_ENDPOINT_URL="http://127.0.0.1:9")
        self.env.update(env or {})
        self.proc = None
        self.lines = []
        self.reader = None
        self.started = None

    def port(self, knob):
        return int(self.env[knob])

    def start(self):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["bash", SCRIPT], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)

        def read():
            for raw in self.proc.stdout:
                self.lines.append(raw.decode("utf-8", "replace"))
        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        return self

    @property
    def output(self):
        return "".join(self.lines)

    def wait_ready(self, timeout):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"local-gateway.sh exited {self.proc.returncode}:\n"
                                     + self.output)
            return "rsproxy is running" in self.output and self.block("then try:")
        wait_until(ready, timeout, what="the gateway to be ready")
        return time.monotonic() - self.started

    def block(self, heading):
        """The indented lines printed after `heading` (one command each)."""
        out, inside = [], False
        for line in self.output.splitlines():
            if line.strip() == heading or line.startswith(heading):
                inside = True
                continue
            if inside:
                if line.startswith("    "):
                    out.append(line.strip())
                elif out:
                    break
        return out

    def psql_dsn(self):
        for line in self.output.splitlines():
            m = re.match(r'\s+psql "([^"]+)"\s*$', line)
            if m:
                return m.group(1)
        raise AssertionError("no psql line in the output:\n" + self.output)

    def interrupt(self, timeout):
        """Ctrl-C in the terminal: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        rc = self.proc.wait(timeout)
        self.reader.join(5)
        return rc

    def kill_everything(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # What a failed run left in sessions of its own: only processes carrying our marker.
        for pid in marked_pids(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def gateway_factory(rsproxy_bin, workdir):
    made = []

    def make(**kw):
        g = Gateway(rsproxy_bin, workdir, **kw)
        made.append(g)
        return g
    yield make
    for g in made:
        g.kill_everything()


# ---------------------------------------------------------------------------------------------
# Helpers that read what the script set up, the way a user could


def aws_keys(state):
    cp = configparser.ConfigParser()
    cp.read(os.path.join(state, "aws", "credentials"))
    sec = cp["rsproxy-gateway"]
    return sec["aws_access_key_id"], sec["aws_secret_access_key"]


def s3_client(g):
    import boto3
    from botocore.config import Config
    akid, secret = aws_keys(g.state)
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{g.port('RSPROXY_GATEWAY_S3_PORT')}",
                        region_name="us-east-1", aws_access_key_id=akid,
                        aws_secret_access_key=secret,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"total_max_attempts": 1}))


def aws_control(g, path):
    url = f"http://127.0.0.1:{g.port('RSPROXY_GATEWAY_AWS_PORT')}/_standin/{path}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def minted_secrets(g):
    """Secret keys and session tokens of every key the stand-ins saw: the principal's (AWS
    calls) and the role sessions the AWS stand-in minted for the COPY and UNLOAD (S3 calls)."""
    keys = set(aws_control(g, "calls?by=key"))
    with open(os.path.join(g.state, "logs", "s3.log"), errors="replace") as f:
        keys.update(re.findall(r"akid=(\w+)", f.read()))
    found = set()
    for akid in keys:
        try:
            doc = aws_control(g, f"keys/{akid}")
        except urllib.error.HTTPError:
            continue
        found.update(v for v in (doc.get("secret"), doc.get("session_token")) if v)
    return found


def psql(dsn, *sql, timeout=60):
    argv = [pg_bin("psql"), "-X", "-At", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", dsn]
    for s in sql:
        argv += ["-c", s]
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", PGCONNECT_TIMEOUT="30")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_local_gateway_end_to_end(gateway_factory, slow):
    admin_port = free_port()
    g = gateway_factory(env={"RSPROXY_GATEWAY_ADMIN_PORT": str(admin_port)}).start()
    took = g.wait_ready(60 * slow)
    # "Start-up should take seconds, not minutes" (about 3 s on the 2-core test machines).
    assert took < 30 * slow, f"the gateway took {took:.1f} s to start\n{g.output}"
    running = {pid: cmdline(pid) for pid in marked_pids(g.mark)}
    for what in ("rsproxy", "aws_standin.py", "front.js", "s3rver-child.js",
                 "redshift_standin.py", "postgres -D"):
        assert any(what in c for c in running.values()), (what, running)

    # The psql line, exactly as printed (plaintext to rsproxy on loopback: libpq's default
    # sslmode=prefer falls back when rsproxy answers the SSLRequest with N).
    dsn = g.psql_dsn()
    assert dsn == (f"host=127.0.0.1 port={g.port('RSPROXY_GATEWAY_PORT')} dbname=dev "
                   "user=alice"), dsn

    # The "try this" statements, as printed, one psql -c each.
    tries = g.block("then try:")
    assert [t.split()[0] for t in tries] == ["SELECT", "COPY", "SELECT", "UNLOAD"], tries
    assert not any(re.search(r"IAM_ROLE|CREDENTIALS|ACCESS_KEY", t, re.I) for t in tries)
    r = psql(dsn, *tries)
    assert r.returncode == 0, r.stderr + "\n" + g.output
    lines = r.stdout.splitlines()
    assert lines[0] == "IAM:alice", r.stdout
    assert lines[1] == "COPY", r.stdout
    assert [tuple(l.split("|")) for l in lines[2:7]] == CITIES, r.stdout
    assert lines[7:] == ["UNLOAD"], r.stdout
    assert "Load into table 'cities' completed, 5 record(s) loaded successfully." in r.stderr
    assert "UNLOAD completed, 5 record(s) unloaded successfully." in r.stderr

    # The rows are in the database behind "Redshift" (a new session, a new connection).
    r = psql(dsn, "SELECT count(*), sum(population) FROM cities",
             "SELECT count(*) FROM events", "SELECT current_user")
    assert r.returncode == 0, r.stderr
    total = sum(int(c[3]) for c in CITIES)
    assert r.stdout.split() == [f"5|{total}", "1000", "IAM:alice"], r.stdout

    # The objects the UNLOAD wrote under the tempdir, read with boto3 from the S3 stand-in:
    # the cluster's 2 slices each wrote one file of Redshift's pipe-delimited text.
    s3 = s3_client(g)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="tmp/exports/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    assert keys == ["tmp/exports/cities_0000_part_00", "tmp/exports/cities_0001_part_00"], keys
    bodies = {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}
    unloaded = sorted(line for b in bodies.values() for line in b.decode().splitlines())
    assert unloaded == sorted("|".join(c) for c in CITIES), unloaded
    # The lifecycle rule on the tempdir, so rsproxy's startup check finds it covered.
    rules = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert any(ru["Status"] == "Enabled" and ru.get("Filter", {}).get("Prefix") == "tmp/"
               for ru in rules), rules

    # The health and metrics lines as printed: ready, and the logins above are counted.
    health = [l.split(":", 1)[1].strip() if l.startswith("Health") else l.strip()
              for l in g.output.splitlines() if f"localhost:{admin_port}/" in l]
    assert len(health) == 2 and health[0].endswith("/readiness"), g.output
    r = subprocess.run(["bash", "-c", health[0]], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout) == {"status": "ready"}, r
    r = subprocess.run(["bash", "-c", health[1]], capture_output=True, text=True, timeout=30)
    logins = re.search(r"(?m)^rsproxy_upstream_logins_total (\d+)", r.stdout)
    reused = re.search(r"(?m)^rsproxy_pool_reused_total (\d+)", r.stdout)
    assert r.returncode == 0 and logins and reused, r.stdout
    # Three sessions at least; the test's second psql got the first one's pooled session.
    assert int(logins.group(1)) + int(reused.group(1)) >= 3 and int(reused.group(1)) >= 1, \
        r.stdout

    # What the gateway's text promises: psql again, the same backend.
    pids = [psql(dsn, "SELECT pg_backend_pid()") for _ in range(2)]
    assert all(p.returncode == 0 for p in pids), [p.stderr for p in pids]
    assert pids[0].stdout == pids[1].stdout, [p.stdout for p in pids]

    # The S3 commands as printed.
    cmds = g.block("The S3 objects")
    assert len(cmds) == 2 and cmds[0].endswith("/s3 ls") and " cat " in cmds[1], cmds
    # In the test's environment, whose AWS_* variables point elsewhere: the helper must use
    # the gateway's profile all the same.
    r = subprocess.run(["bash", "-c", cmds[0]], capture_output=True, text=True, timeout=60,
                       env=g.env)
    assert r.returncode == 0, r.stderr
    for k in keys + ["data/cities.csv"]:
        assert f"s3://{BUCKET}/{k}" in r.stdout, r.stdout
    r = subprocess.run(["bash", "-c", cmds[1]], capture_output=True, timeout=60, env=g.env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == bodies["tmp/exports/cities_0000_part_00"]

    # Each hop saw what it should: rsproxy found the cluster with DescribeClusters and got
    # alice's password with GetClusterCredentials, signed with the profile's keys (not the
    # poisoned environment); the Redshift stand-in ran both statements with the role rsproxy
    # added, at the location the client wrote and the one resolved under the tempdir.
    akid, secret = aws_keys(g.state)
    by_key = aws_control(g, "calls?by=key")
    assert by_key.get(akid, {}).get("DescribeClusters", 0) >= 1, by_key
    assert by_key.get(akid, {}).get("GetClusterCredentials", 0) >= 1, by_key
    assert "AKIAWRONGWRONGWRONG0" not in by_key
    with open(os.path.join(g.state, "logs", "redshift.log")) as f:
        rs_log = f.read()
    assert f"COPY s3://{BUCKET}/data/cities.csv auth=role" in rs_log, rs_log
    assert f"UNLOAD s3://{BUCKET}/tmp/exports/cities_ auth=role" in rs_log, rs_log
    assert "tls=True" in rs_log and "user=IAM:alice" in rs_log, rs_log

    # The configuration: IAM, discovery, verify-full, the role and tempdir; no secret in it.
    ini = os.path.join(g.state, "rsproxy.ini")
    for path in (ini, os.path.join(g.state, "aws", "credentials"),
                 os.path.join(g.state, "world.json")):
        assert os.stat(path).st_mode & 0o077 == 0, path
    with open(ini) as f:
        text = f.read()
    for line in ("auth = iam", "host =", "sslmode = verify-full",
                 "cluster_identifier = examplecluster", f"aws_iam_role = {ROLE}",
                 f"tempdir = s3://{BUCKET}/tmp/"):
        assert re.search(rf"(?m)^{re.escape(line)}$", text), (line, text)
    assert secret not in text
    secrets = minted_secrets(g) | {secret}
    assert len(secrets) >= 3  # the principal's, and a role session's secret and token

    # Ctrl-C: everything stops, the state goes, nothing listens or runs any more.
    rc = g.interrupt(30 * slow)
    out = g.output
    assert rc == 0, out
    assert "== stopping" in out and "stopped; removed" in out, out
    assert not os.path.exists(g.state)
    leaked = [s for s in secrets if s in out]
    assert not leaked, "a secret appears in the gateway's output"
    assert not any(m in out for m in SANITIZER_MARKERS), out
    try:
        wait_until(lambda: not marked_pids(g.mark), 10, what="every process to end")
    except Exception:
        raise AssertionError(f"left behind: {[cmdline(p) for p in marked_pids(g.mark)]}")
    for knob in PORT_KNOBS:
        port = g.port(knob)
        wait_until(lambda: port_closed(port), 10, what=f"port {port} to close")


@pytest.mark.timeout(180)
def test_a_killed_gateway_is_cleaned_up_by_the_next(gateway_factory, slow):
    """kill -9 of the script leaves the stand-ins (in sessions of their own) and PostgreSQL
    running; the next run with the same state directory and ports stops them and starts."""
    first = gateway_factory(name="gw-killed").start()
    first.wait_ready(60 * slow)
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    survivors = marked_pids(first.mark)
    assert survivors, "expected the stand-ins to outlive a SIGKILLed script"

    env = {k: first.env[k] for k in PORT_KNOBS}
    second = gateway_factory(name="gw-killed", env=env).start()
    second.wait_ready(60 * slow)
    out = second.output
    assert "left over in" in out, out
    assert not [p for p in survivors if p in marked_pids(first.mark)], \
        [cmdline(p) for p in marked_pids(first.mark)]
    r = psql(second.psql_dsn(), "SELECT current_user")
    assert r.returncode == 0 and r.stdout.strip() == "IAM:alice", r.stderr
    assert second.interrupt(30 * slow) == 0, second.output
    wait_until(lambda: not marked_pids(second.mark), 10, what="no process left")


@pytest.mark.parametrize("knob", ["RSPROXY_GATEWAY_PORT", "RSPROXY_GATEWAY_AWS_PORT"])
def test_local_gateway_refuses_a_busy_port(rsproxy_bin, workdir, knob):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        g = Gateway(rsproxy_bin, workdir, name=f"gw-busy-{knob}", env={knob: str(busy)})
        t0 = time.monotonic()
        p = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, env=g.env,
                           timeout=60)
        assert p.returncode != 0
        assert f"port {busy} is in use; set {knob}" in p.stderr, p.stderr
        assert time.monotonic() - t0 < 30
        assert not os.path.exists(g.state)
    finally:
        s.close()


def test_local_gateway_never_removes_a_foreign_directory(rsproxy_bin, workdir):
    g = Gateway(rsproxy_bin, workdir, name="not-a-gateway")
    os.makedirs(g.state)
    precious = os.path.join(g.state, "precious.txt")
    with open(precious, "w") as f:
        f.write("keep me\n")
    p = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, env=g.env, timeout=60)
    assert p.returncode != 0
    assert "was not made by this script" in p.stderr, p.stderr
    with open(precious) as f:
        assert f.read() == "keep me\n"
