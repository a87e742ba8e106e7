"""Fixtures for COPY and UNLOAD through rsproxy, end to end (issue 4): the stand-in stack
(AWS, S3, Redshift SQL over PostgreSQL) once per test file, and rsproxy in IAM mode in front of
it with [s3] settings per test.

Loaded as a plugin by conftest.py. The chain under test is

    client --plaintext--> rsproxy --TLS verify-full--> Redshift stand-in --> redshift_pg (PG 15)
                             |                                  \\--> S3 stand-in (SigV4 checked)
                             \\--HTTP--> AwsRelay --> AWS stand-in (GetClusterCredentials,
                                                     roles Redshift assumes for COPY/UNLOAD)

The client writes no credentials: rsproxy logs in with GetClusterCredentials (IAM:alice) and
adds the configured IAM role (or its own keys) to each COPY and UNLOAD; the Redshift stand-in
assumes that role through the AWS stand-in and reads or writes S3 with the role's keys, which
the S3 stand-in checks against the role's bucket permissions.

Fixtures:
  copy_stack          module-scoped namespace (pg, world, aws, s3, redshift, s3c): the three
                      stand-ins on one world, database `dev` on redshift_pg; every process must
                      exit cleanly, without a secret in its log, when the file is done
  cx                  per test: empty buckets, fresh tables t (a int, b varchar(20), c text) and
                      t2 (same) in dev, and helpers (see CopyCtx): .proxy(...) starts rsproxy
  copy_jdbc_classes   java/CopyUnloadJdbc.java compiled once per file

Helpers (importable): ROLE, OTHER_ROLE, CHAIN_ROLE, UNATTACHED, BUCKET, OTHER_BUCKET, EU_BUCKET,
TEMPDIR,
psql(), connect(), rows_of(), s3_keys(), s3_get(), jdbc_run().
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import types

import psycopg
import pytest

from fixtures_aws import PROXY_KEY, AwsStandin, make_world, secret_of
from pgharness import HarnessError, free_port, pg_bin

HERE = os.path.dirname(os.path.abspath(__file__))
JDBC_JAR = os.environ.get("RSPROXY_JDBC_JAR", "/usr/share/java/postgresql.jar")

ACCOUNT = "123456789012"
# Attached to examplecluster in the example world, the cluster's default role, trusted by
# redshift.amazonaws.com; S3 access to rsproxy-test (and here also rsproxy-eu).
ROLE = f"arn:aws:iam::{ACCOUNT}:role/RedshiftCopy"
# Trusts RedshiftCopy (a chain RedshiftCopy,CrossAccountS3), S3 access to rsproxy-other only.
CHAIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/CrossAccountS3"
# Added here: attached to the cluster as well, S3 access to rsproxy-other only.
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/RedshiftOther"
# Added here: trusts Redshift but is not attached to the cluster.
UNATTACHED = f"arn:aws:iam::{ACCOUNT}:role/RedshiftUnattached"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/rsproxy-app"

BUCKET = "rsproxy-test"
OTHER_BUCKET = "rsproxy-other"
EU_BUCKET = "rsproxy-eu"  # in eu-west-1, the cluster in us-east-1
TEMPDIR = f"s3://{BUCKET}/tmp/"
DEFAULT_S3 = {"aws_iam_role": ROLE, "tempdir": TEMPDIR}

INVALID_CREDS = ("Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' "
                 "or 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'")


def copy_world(pg_cluster):
    world = make_world(pg_cluster, buckets=[BUCKET, OTHER_BUCKET,
                                            {"name": EU_BUCKET, "region": "eu-west-1"}])
    world["roles"][ROLE]["s3"] = [f"s3://{BUCKET}/*", f"s3://{EU_BUCKET}/*"]
    world["roles"][OTHER_ROLE] = {"trust": ["redshift.amazonaws.com"], "allow": ["s3:*"],
                                  "s3": [f"s3://{OTHER_BUCKET}/*"]}
    world["roles"][UNATTACHED] = {"trust": ["redshift.amazonaws.com"], "allow": ["s3:*"],
                                  "s3": [f"s3://{BUCKET}/*"]}
    # The role the proxy assumes through a profile (forward_s3_credentials with temporary
    # keys): it needs S3 on the bucket as well as its Redshift permissions.
    app = world["roles"][APP_ROLE]
    app["allow"] = list(app["allow"]) + ["s3:*"]
    app["s3"] = [f"s3://{BUCKET}/*"]
    world["clusters"]["examplecluster"]["iam_roles"] = [ROLE, OTHER_ROLE]
    return world


@pytest.fixture(scope="module")
def copy_stack(redshift_pg, workdir, certs, redshift_tls):
    # Imported here, not at the top: conftest registers the plugins in name order, and
    # importing a later plugin first would skip its assertion rewriting.
    from fixtures_redshift import RedshiftStandin
    from fixtures_s3 import S3Standin
    if not redshift_pg.sql_value("SELECT count(*) FROM pg_database WHERE datname = 'dev'"):
        redshift_pg.sql("CREATE DATABASE dev")
        # IAM:alice is created by the AWS stand-in at its first GetClusterCredentials.
        redshift_pg.sql("GRANT ALL ON SCHEMA public TO PUBLIC", dbname="dev")
    world = copy_world(redshift_pg)
    d = tempfile.mkdtemp(dir=workdir, prefix="copy-stack-")
    procs = []
    try:
        aws = AwsStandin(d, world).start()
        procs.append(aws)
        s3 = S3Standin(d, world, aws=aws).start()
        procs.append(s3)
        rs = RedshiftStandin(d, world, redshift_pg, redshift_tls, certs.ca_file, aws=aws,
                             s3=s3).start()
        procs.append(rs)
        aws.patch_world({"clusters": {"examplecluster": {
            "endpoint": {"Address": "localhost", "Port": rs.port}}}})
        key = secret_of(world, PROXY_KEY)
        yield types.SimpleNamespace(pg=redshift_pg, world=world, aws=aws, s3=s3, redshift=rs,
                                    s3c=s3.client(PROXY_KEY, key),
                                    s3c_eu=s3.client(PROXY_KEY, key, region="eu-west-1"))
    finally:
        problems = []
        for p in reversed(procs):
            p.stop()
            found = p.problems() if isinstance(p, AwsStandin) else p.problems(p.secrets())
            problems += [f"{p.name}: {prob}\n{p.log_text()[-3000:]}" for prob in found]
        if problems:
            pytest.fail("a stand-in did not run cleanly:\n" + "\n".join(problems),
                        pytrace=False)


def _empty_bucket(s3c, bucket):
    for page in s3c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            s3c.delete_objects(Bucket=bucket, Delete={"Objects": objs})


def _client(stack, bucket):
    return stack.s3c_eu if bucket == EU_BUCKET else stack.s3c


def s3_keys(stack, prefix, bucket=BUCKET):
    out = []
    for page in _client(stack, bucket).get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def s3_get(stack, key, bucket=BUCKET):
    return _client(stack, bucket).get_object(Bucket=bucket, Key=key)["Body"].read()


def s3_put(stack, key, data, bucket=BUCKET):
    _client(stack, bucket).put_object(Bucket=bucket, Key=key, Body=data)


def rows_of(stack, sql="SELECT a, b, c FROM t ORDER BY a"):
    """Rows read directly from PostgreSQL (no proxy, no stand-in): what the COPY really did."""
    return [tuple(r) for r in stack.pg.sql(sql, dbname="dev")]


def _start_retrying_port(p):
    """A port picked now can be taken by a parallel test before rsproxy binds it: retry."""
    for attempt in range(3):
        try:
            p.start()
            return p
        except Exception:
            log = p.log_text().lower()
            p.kill()
            if "in use" not in log or attempt == 2:
                raise
            p.config["proxy"]["listen_port"] = str(free_port())
    return p


class CopyCtx:
    """Per-test handle: the stack plus rsproxy processes and helpers."""

    def __init__(self, stack, iam_proxy_factory):
        self.stack = stack
        self._factory = iam_proxy_factory
        self.rs_log_start = len(stack.redshift.log_text())
        self.s3_log_start = len(stack.s3.log_text())

    def proxy(self, s3=DEFAULT_S3, proxy=None, iam=None, env=None, start=True, relay=True,
              aws_keys=True):
        """rsproxy in IAM mode for cluster examplecluster, upstream = the Redshift stand-in
        (TLS verify-full against the session CA), with these [s3] keys (None removes one).
        aws_keys: the proxy principal's long-term keys in its environment (else set env or
        write AWS files under p.aws_dir before start)."""
        p = self._factory(standin=self.stack.aws,
                          upstream={"host": "localhost", "port": str(self.stack.redshift.port)},
                          proxy=proxy, iam=iam, env=env, start=False, relay=relay,
                          aws_keys=aws_keys)
        section = p.config.setdefault("s3", {})
        for k, v in (s3 or {}).items():
            if v is None:
                section.pop(k, None)
            else:
                section[k] = str(v).lower() if isinstance(v, bool) else str(v)
        if start:
            _start_retrying_port(p)
        return p

    @staticmethod
    def start(p):
        """Starts a proxy made with start=False."""
        return _start_retrying_port(p)

    def rs_log(self):
        """What the Redshift stand-in logged during this test (one line per COPY/UNLOAD with
        its target and authorization kind, never credentials)."""
        return self.stack.redshift.log_text()[self.rs_log_start:]

    def s3_log(self):
        return self.stack.s3.log_text()[self.s3_log_start:]

    def keys(self, prefix, bucket=BUCKET):
        return s3_keys(self.stack, prefix, bucket)

    def get(self, key, bucket=BUCKET):
        return s3_get(self.stack, key, bucket)

    def put(self, key, data, bucket=BUCKET):
        s3_put(self.stack, key, data if isinstance(data, bytes) else data.encode(), bucket)

    def rows(self, sql="SELECT a, b, c FROM t ORDER BY a"):
        return rows_of(self.stack, sql)

    def load(self, rows, table="t"):
        """Inserts rows directly (harness connection) for UNLOAD tests."""
        with self.stack.pg.admin(dbname="dev") as c:
            with c.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", rows)


@pytest.fixture
def cx(copy_stack, iam_proxy_factory):
    for b in (BUCKET, OTHER_BUCKET, EU_BUCKET):
        _empty_bucket(_client(copy_stack, b), b)
    with copy_stack.pg.admin(dbname="dev") as c:
        c.execute("DROP TABLE IF EXISTS t, t2 CASCADE")
        for name in ("t", "t2"):
            c.execute(f"CREATE TABLE {name} (a int, b varchar(20), c text)")
            c.execute(f"GRANT ALL ON {name} TO PUBLIC")
    return CopyCtx(copy_stack, iam_proxy_factory)


# ---------------------------------------------------------------------------------------------
# Clients


def psql(p, *sql, user="alice", dbname="dev", check=True, timeout=120, stdin=None,
         args=()):
    """psql as a user types it (-h 127.0.0.1 -p <port> -U alice -d dev), each sql as one -c
    (one simple Query message each, however many statements it holds)."""
    argv = [pg_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-p", str(p.port), "-U", user, "-d", dbname] + list(args)
    for s in sql:
        argv += ["-c", s]
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", PGCONNECT_TIMEOUT="30",
               PGSSLMODE="disable")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       input=stdin)
    if check and r.returncode != 0:
        raise AssertionError(f"psql exited {r.returncode}\nstdout: {r.stdout!r}\n"
                             f"stderr: {r.stderr!r}\n--- rsproxy log ---\n{p.log_tail(40)}")
    return r


def connect(p, user="alice", dbname="dev", autocommit=True, **kw):
    """psycopg 3 through rsproxy (plaintext to the proxy, as designed)."""
    conn = psycopg.connect(host="127.0.0.1", port=p.port, user=user, dbname=dbname,
                           sslmode="disable", connect_timeout=30, autocommit=autocommit, **kw)
    conn.notices = []
    conn.add_notice_handler(lambda d: conn.notices.append(d.message_primary))
    return conn


@pytest.fixture(scope="module")
def copy_jdbc_classes(workdir):
    for tool in ("javac", "java"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: run tests/install-deps.sh (default-jdk-headless)",
                        pytrace=False)
    if not os.path.exists(JDBC_JAR):
        pytest.fail(f"{JDBC_JAR} missing: run tests/install-deps.sh (libpostgresql-jdbc-java)",
                    pytrace=False)
    out = os.path.join(workdir, "copy-java-classes")
    os.makedirs(out, exist_ok=True)
    p = subprocess.run(["javac", "-encoding", "UTF-8", "-d", out, "-cp", JDBC_JAR,
                        os.path.join(HERE, "java", "CopyUnloadJdbc.java")],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return out


class JdbcResult:
    def __init__(self, stdout):
        self.stdout = stdout
        self.steps = {}
        self.rows = {}
        self.notices = {}
        for line in stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind not in ("STEP", "ROW", "NOTICE"):
                continue
            n, _, text = rest.partition(" ")
            n = int(n)
            if kind == "STEP":
                self.steps[n] = text
            elif kind == "ROW":
                self.rows.setdefault(n, []).append(tuple(
                    None if v == "\\N" else v for v in text.split("\t")))
            else:
                self.notices.setdefault(n, []).append(text)

    def ok(self, n):
        assert self.steps.get(n, "").startswith("OK"), (n, self.steps.get(n), self.stdout)
        return self.steps[n][3:]

    def err(self, n):
        """(sqlstate, message) of a failed step."""
        text = self.steps.get(n, "")
        assert text.startswith("ERR "), (n, text, self.stdout)
        _, state, msg = text.split(" ", 2)
        return state, msg


def jdbc_run(classes, p, steps, workdir, user="alice", dbname="dev", **params):
    """Runs [(verb, sql), ...] with pgjdbc through rsproxy; returns a JdbcResult.
    prepareThreshold=1: every PreparedStatement is a named server-side statement."""
    q = {"user": user, "sslmode": "disable", "prepareThreshold": "1",
         "ApplicationName": "rsproxy-copy-jdbc", "connectTimeout": "30"}
    q.update(params)
    url = (f"jdbc:postgresql://127.0.0.1:{p.port}/{dbname}?" +
           "&".join(f"{k}={v}" for k, v in q.items()))
    fd, script = tempfile.mkstemp(dir=workdir, prefix="jdbc-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n----\n".join(f"{verb}\n{sql}" if sql else verb for verb, sql in steps))
        f.write("\n")
    r = subprocess.run(["java", "-Dfile.encoding=UTF-8", "-cp", f"{classes}:{JDBC_JAR}",
                        "CopyUnloadJdbc", url, script],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "DONE" in r.stdout, \
        f"exit {r.returncode}\n{r.stdout}\n{r.stderr}\n--- rsproxy log ---\n{p.log_tail(30)}"
    return JdbcResult(r.stdout)


def wait_for(predicate, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out waiting for {what}")
        time.sleep(0.1)


def manifest_urls(doc):
    return [e["url"] for e in json.loads(doc)["entries"]]
