"""Fixtures for IAM login through rsproxy: a TLS-only PostgreSQL for the AWS stand-in's minted
passwords, a recording relay in front of the stand-in, and rsproxy processes in upstream.auth =
iam mode.

Loaded as a plugin by conftest.py. The chain under test is

    client --plaintext--> rsproxy --TLS verify-full--> iam_pg (PostgreSQL 15, hostssl md5 only)
                             \\--HTTP--> AwsRelay --> AWS stand-in (botocore checks every signature)

The relay forwards every request unchanged (the stand-in re-verifies the signature over the
headers as received) and keeps every secret the stand-in answered with (database passwords,
secret keys, session tokens), so each rsproxy log can be searched for all of them: anything
rsproxy ever learned from AWS, not only what /_standin/keys remembers.

Fixtures:
  iam_pg             session PostgreSQL with TLS (the session CA's localhost certificate), whose
                     only TCP rule is `hostssl all all 127.0.0.1/32 md5`, so every IAM login is
                     over TLS and both md5- and SCRAM-stored secrets log in; databases dev (the
                     example cluster's dbname) and alice (psql's default for -U alice)
  iam_world          the example world bound to iam_pg (a dict a test may change first)
  iam_standin        an AWS stand-in serving iam_world
  iam_proxy_factory  make(standin=None, iam=None, upstream=None, proxy=None, env=None,
                     akid=PROXY_KEY, aws_keys=True, relay=True, start=True) -> RsProxy in IAM
                     mode with .standin, .relay, .home and .aws_dir; at the end of the test
                     every secret the relay saw, every key the stand-in minted and every
                     principal's secret key is added to the proxy's secrets, which
                     proxy_factory then looks for in its log
Helpers: AwsRelay, aws_env_for(standin, url, ...), harvest_secrets(standin, relay).
"""

import http.client
import http.server
import json
import os
import re
import socket
import tempfile
import threading
import time

import pytest

from fixtures_aws import PROXY_KEY, make_world
from pgharness import free_port

# Fields of AWS answers that carry a secret: Redshift (DbPassword), Serverless (dbPassword),
# STS (SecretAccessKey, SessionToken), container and IMDS credentials (SecretAccessKey, Token).
_SECRET_XML = re.compile(r"<(DbPassword|SecretAccessKey|SessionToken)>([^<]+)</\1>")
_SECRET_JSON_FIELDS = ("dbPassword", "DbPassword", "SecretAccessKey", "secretAccessKey",
                       "SessionToken", "sessionToken", "Token")
# A developer's HTTP proxy settings would send rsproxy's AWS calls elsewhere.
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "expect"}


def _json_secrets(doc, out):
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in _SECRET_JSON_FIELDS and isinstance(v, str):
                out.add(v)
            else:
                _json_secrets(v, out)
    elif isinstance(doc, list):
        for v in doc:
            _json_secrets(v, out)


def secrets_in_answer(body):
    """Every secret value in one AWS answer (XML or JSON); unknown shapes give nothing."""
    text = body.decode("utf-8", "replace")
    found = {m.group(2) for m in _SECRET_XML.finditer(text)}
    try:
        _json_secrets(json.loads(text), found)
    except ValueError:
        pass
    return {s.replace("&#43;", "+").replace("&amp;", "&") for s in found if s}


class AwsRelay:
    """A transparent HTTP/1.1 relay to the stand-in that records the secrets in its answers.

    It binds a fixed loopback port that survives close()/reopen(), so a test can make AWS
    unreachable (connection refused) and reachable again without touching rsproxy's config.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.secrets = set()
        self.requests = 0
        self.lock = threading.Lock()
        self.port = None
        self.server = None
        self.thread = None
        self.conns = set()  # open client sockets, cut by close()

    @property
    def url(self):
        return f"http://localhost:{self.port}"

    def _handler(self):
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet: the stand-in logs every request
                pass

            def setup(self):
                super().setup()
                with relay.lock:
                    relay.conns.add(self.connection)

            def finish(self):
                with relay.lock:
                    relay.conns.discard(self.connection)
                super().finish()

            def _relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                conn = http.client.HTTPConnection("127.0.0.1", relay.target_port, timeout=120)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in _HOP_BY_HOP:
                            conn.putheader(k, v)
                    conn.endheaders(body if body else None)
                    resp = conn.getresponse()
                    data = resp.read()
                    headers = resp.getheaders()
                    status, reason = resp.status, resp.reason
                except (OSError, http.client.HTTPException):
                    # The stand-in went away mid-request: drop the client connection, as a
                    # dead endpoint would.
                    self.close_connection = True
                    return
                finally:
                    conn.close()
                with relay.lock:
                    relay.requests += 1
                    relay.secrets |= secrets_in_answer(data)
                self.send_response_only(status, reason)
                for k, v in headers:
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _relay

        return Handler

    def open(self):
        if self.port is None:
            self.port = free_port()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                              self._handler())
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def close(self):
        """Stops listening and cuts every open connection: new connections are refused and
        kept-alive ones fail, as for a stopped endpoint."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
            self.thread.join(10)
        with self.lock:
            conns, self.conns = list(self.conns), set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    reopen = open


def aws_env_for(standin, url, akid=PROXY_KEY, aws_keys=True, home=None, aws_dir=None):
    """The AWS environment an rsproxy gets: the stand-in's env() with the endpoint replaced by
    `url`, instance metadata off, and AWS files under aws_dir (absent until a test writes them)."""
    env = standin.env(akid=akid, with_keys=aws_keys)
    env["AWS_ENDPOINT_URL"] = url
    if home:
        env["HOME"] = home
    if aws_dir:
        env["AWS_CONFIG_FILE"] = os.path.join(aws_dir, "config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(aws_dir, "credentials")
    return env


def harvest_secrets(standin, relay=None):
    """Every secret rsproxy may have seen: the principals' secret keys, each minted key's secret
    and session token (/_standin/keys for every key in the call counts and the request log) and
    what the relay recorded. Works on a stopped stand-in (then only the world and the relay)."""
    found = {p["secret"] for p in standin.world.get("principals", {}).values()}
    for tok in standin.world.get("web_identity", {}).get("issuer_tokens", []):
        found.add(tok if isinstance(tok, str) else tok.get("token", ""))
    if standin.world.get("container", {}).get("token"):
        found.add(standin.world["container"]["token"])
    if relay is not None:
        with relay.lock:
            found |= relay.secrets
    if standin.proc is not None and standin.proc.poll() is None:
        keys = set(standin.calls(by_key=True))
        for r in standin.requests():
            if r.get("access_key_id"):
                keys.add(r["access_key_id"])
            keys.update(re.findall(r"minted=(\S+)", r.get("note") or ""))
        for akid in keys:
            doc = standin.key(akid)
            if doc:
                found.update(v for v in (doc.get("secret"), doc.get("session_token")) if v)
    return {s for s in found if s}


@pytest.fixture(scope="session")
def iam_pg(make_cluster):
    c = make_cluster("iam-pg", ssl=True, roles=False, max_connections=300)
    path = os.path.join(c.data, "pg_hba.conf")
    with open(path, "w") as f:
        # No plain `host` line: an IAM login that is not TLS is refused by PostgreSQL itself.
        f.write("local all all trust\nhostssl all all 127.0.0.1/32 md5\n")
    c.reload()
    time.sleep(0.3)
    for db in ("dev", "alice"):
        c.sql(f"CREATE DATABASE {db}")
    return c


@pytest.fixture
def iam_world(iam_pg):
    return make_world(iam_pg)


@pytest.fixture
def iam_standin(aws_standin_factory, iam_world):
    return aws_standin_factory(iam_world)


@pytest.fixture
def iam_proxy_factory(request, proxy_factory, aws_standin_factory, iam_world, iam_pg, certs,
                      workdir):
    made = []

    def make(standin=None, iam=None, upstream=None, proxy=None, env=None, akid=PROXY_KEY,
             aws_keys=True, relay=True, start=True):
        if standin is None:
            standin = request.getfixturevalue("iam_standin")
        rl = AwsRelay(standin.port).open() if relay else None
        config = {
            "proxy": {"max_client_conn": "400"},
            "upstream": {"auth": "iam", "host": "localhost", "port": str(iam_pg.port),
                         "sslmode": "verify-full", "sslrootcert": certs.ca_file,
                         "password": None, "user": None},
            "iam": {"cluster_identifier": "examplecluster"},
        }
        for section, keys in (("proxy", proxy), ("upstream", upstream), ("iam", iam)):
            for k, v in (keys or {}).items():
                config[section][k] = v
        p = proxy_factory(config=config, pg_cluster=iam_pg, start=False)
        p.standin, p.relay = standin, rl
        p.home = tempfile.mkdtemp(dir=workdir, prefix="home-")
        p.aws_dir = os.path.join(p.home, ".aws")
        os.makedirs(p.aws_dir)
        # Nothing from the developer's AWS setup may leak in (profiles, tokens, roles).
        for k in [k for k in p.env if k.startswith("AWS_") or k.lower() in _PROXY_VARS]:
            del p.env[k]
        p.env.update(aws_env_for(standin, rl.url if rl else standin.url, akid=akid,
                                 aws_keys=aws_keys, home=p.home, aws_dir=p.aws_dir))
        for k, v in (env or {}).items():
            if v is None:
                p.env.pop(k, None)
            else:
                p.env[k] = v
        made.append(p)
        if start:
            _start_retrying_port(p)
        return p

    yield make
    for p in made:
        p.secrets |= harvest_secrets(p.standin, p.relay)
        if p.relay:
            p.relay.close()


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


def wait_port_closed(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"port {port} still accepts connections")
