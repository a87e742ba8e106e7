"""Fixtures for the S3 stand-in (tests/standins/s3): start it and talk to it.

Loaded as a plugin by conftest.py. The stand-in is a Node.js process (front.js) in front of
s3rver; it verifies every SigV4 signature with @smithy/signature-v4 and looks keys up through
the AWS stand-in's control API, so these fixtures start it next to an AWS stand-in (or with a
static key file) and hand out boto3 clients pointed at it.

Fixtures:
  s3_standin_factory   make(world=None, aws=None, keys=None, name=None) -> S3Standin; with aws
                       (an AwsStandin) keys come from its /_standin/keys, with keys (a dict
                       {akid: {"secret", "session_token", "s3": [...], "expiration"}}) from a
                       key file; every stand-in is stopped at the end of the test and must
                       exit 0 without a secret or a crash in its log
  s3_standin           an AWS stand-in (fixtures_aws.aws_standin) plus an S3 stand-in using it

Helpers: S3Standin (.endpoint, .client(akid, secret, token=None, region=None, style="path"),
.calls(), .reset(), .fault(op, mode, count=1, **kw)).
"""

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request

import pytest

# The process contract shared by the stand-ins lives in fixtures_redshift (imported here, not
# the other way round: conftest loads the plugins in name order, and importing a plugin before
# pytest registers it would skip its assertion rewriting).
from fixtures_redshift import StandinProcess

HERE = os.path.dirname(os.path.abspath(__file__))
S3_DIR = os.path.join(os.path.dirname(HERE), "standins", "s3")
FRONT = os.path.join(S3_DIR, "front.js")


def node_binary():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run tests/install-deps.sh", pytrace=False)
    if not os.path.isdir(os.path.join(S3_DIR, "node_modules", "s3rver")):
        pytest.fail(f"{S3_DIR}/node_modules is missing: run tests/install-deps.sh (npm ci)",
                    pytrace=False)
    return node


class S3Standin(StandinProcess):
    what = "S3 stand-in"

    def __init__(self, workdir, world, aws=None, keys=None, name="s3"):
        super().__init__(workdir, name)
        self.world = world
        self.aws = aws
        self.keys = keys
        self.state = os.path.join(workdir, f"{name}-world.json")
        self.keyfile = os.path.join(workdir, f"{name}-keys.json") if keys else None
        self.data_dir = os.path.join(workdir, f"{name}-data")

    def argv(self):
        with open(self.state, "w", encoding="utf-8") as f:
            json.dump(self.world, f, indent=1)
        argv = [node_binary(), FRONT, "--port", "0", "--state", self.state,
                "--data-dir", self.data_dir]
        if self.aws is not None:
            argv += ["--aws-control", self.aws.url]
        if self.keys:
            with open(self.keyfile, "w", encoding="utf-8") as f:
                json.dump(self.keys, f)
            argv += ["--keys", self.keyfile]
        return argv

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def region(self):
        return self.world.get("region", "us-east-1")

    def secrets(self):
        out = [p.get("secret") for p in self.world.get("principals", {}).values()]
        for rec in (self.keys or {}).values():
            out += [rec.get("secret"), rec.get("session_token")]
        return [s for s in out if s]

    def client(self, akid, secret, token=None, region=None, style="path", **config):
        """A boto3 S3 client signed with these keys (SigV4, retries off)."""
        import boto3
        from botocore.config import Config
        cfg = {"signature_version": "s3v4", "s3": {"addressing_style": style},
               "retries": {"total_max_attempts": 1, "mode": "standard"},
               "connect_timeout": 5, "read_timeout": 60}
        cfg.update(config)
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=region or self.region,
                            aws_access_key_id=akid, aws_secret_access_key=secret,
                            aws_session_token=token, config=Config(**cfg))

    def _control(self, method, path, doc=None):
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(f"{self.endpoint}/_standin/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"S3 control {method} {path} -> {e.code}: {e.read()!r}") from e

    def calls(self):
        return self._control("GET", "calls")

    def reset(self):
        return self._control("POST", "reset", {})

    def fault(self, op, mode, count=1, **kw):
        """mode: error (kw code, status, message) | stall (kw seconds) | reset."""
        doc = {"op": op, "mode": mode, "count": count}
        doc.update(kw)
        return self._control("POST", "faults", doc)


@pytest.fixture
def s3_standin_factory(workdir, request):
    made = []
    test_name = request.node.name[:40].replace("/", "_").replace("[", "_").replace("]", "")

    def make(world=None, aws=None, keys=None, name=None):
        if world is None:
            world = aws.world if aws is not None else {"region": "us-east-1", "buckets": []}
        d = tempfile.mkdtemp(dir=workdir, prefix=f"s3-{test_name}-")
        s = S3Standin(d, world, aws=aws, keys=keys, name=name or f"s3{len(made)}")
        made.append(s)
        s.start()
        return s

    yield make
    problems = []
    for s in made:
        s.stop()
        for prob in s.problems(s.secrets()):
            problems.append(f"{s.name}: {prob}\n--- log tail ({s.logfile}) ---\n"
                            f"{s.log_text()[-4000:]}")
    if problems:
        pytest.fail("the S3 stand-in did not run cleanly:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def s3_standin(aws_standin, s3_standin_factory):
    return s3_standin_factory(aws=aws_standin)
