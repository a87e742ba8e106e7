"""Core fixtures: certificates, a PostgreSQL 15 cluster with TLS, and rsproxy processes.

Loaded as a plugin by conftest.py (like every fixtures_*.py). ctest runs each test_*.py in its
own pytest process, so "session" here means "one test file": every file gets its own
cluster, ports and temp dir, and files run in parallel without colliding.

Fixtures:
  workdir        session temp dir (kept when RSPROXY_KEEP_TMP=1)
  certs          .ca (CertAuthority), .ca_file, .server (crt, key for localhost/127.0.0.1),
                 .other_ca (an unrelated CA), .issue(name, sans) -> (crt, key) owned by postgres
  pg             the session PgCluster (TLS on, roles md5user/scramuser/pwuser/rsadmin, db rsdb)
  make_cluster   factory for extra clusters (other certificates, ssl off, ...), stopped at the end
  rsproxy_bin    $RSPROXY_BIN (a failure, not a skip, when it is not set)
  proxy_factory  make(config={section: {key: value}}, pg_cluster=None, start=True, env=None)
                 -> a started RsProxy; each is stopped and checked (exit status 0, no sanitizer
                 report, no secret in its log) when the test ends
  proxy          proxy_factory() with the default configuration
"""

import os
import tempfile

import pytest

import pgharness
from pgharness import (CertAuthority, HarnessError, PgCluster, RsProxy, default_proxy_config,
                       free_port, give_to_postgres, make_workdir, remove_tree)


@pytest.fixture(scope="session")
def workdir():
    d = make_workdir("rsproxy-it-")
    yield d
    remove_tree(d)


class Certs:
    def __init__(self, base):
        self.dir = os.path.join(base, "certs")
        os.makedirs(self.dir)
        give_to_postgres(self.dir, 0o755)
        self.ca = CertAuthority(self.dir, "rsproxy test CA")
        self.ca_file = self.ca.cert
        self.other_ca = CertAuthority(self.dir, "unrelated CA")
        self.server = self.issue("server", ["DNS:localhost", "IP:127.0.0.1"])

    def issue(self, name, sans, ca=None):
        """A server certificate signed by ca (default: the test CA), readable by postgres."""
        return (ca or self.ca).issue(name, sans, directory=self.dir, owner_postgres=True)


@pytest.fixture(scope="session")
def certs(workdir):
    return Certs(workdir)


@pytest.fixture(scope="session")
def make_cluster(workdir, certs):
    made = []

    def make(name, cert=None, ssl=True, settings=None, max_connections=200, roles=True):
        c = PgCluster(workdir, name=name, cert=cert or (certs.server if ssl else None),
                      ssl=ssl, settings=settings, max_connections=max_connections)
        made.append(c)
        c.start()
        if roles:
            c.setup_roles()
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture(scope="session")
def pg(make_cluster):
    return make_cluster("pg")


@pytest.fixture(scope="session")
def rsproxy_bin():
    path = os.environ.get("RSPROXY_BIN")
    if not path:
        pytest.fail("RSPROXY_BIN is not set: run the integration tests through ctest, or set "
                    "RSPROXY_BIN=<build>/proxy/rsproxy", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"RSPROXY_BIN={path} is not an executable: build the rsproxy target",
                    pytrace=False)
    return path


def merge_config(base, overrides):
    for section, keys in (overrides or {}).items():
        base.setdefault(section, {})
        for k, v in keys.items():
            if v is None:
                base[section].pop(k, None)
            else:
                base[section][k] = str(v)
    return base


@pytest.fixture
def proxy_factory(request, pg, certs, rsproxy_bin, workdir):
    made = []
    test_name = request.node.name[:40].replace("/", "_").replace("[", "_").replace("]", "")

    def make(config=None, pg_cluster=None, start=True, env=None, binary=None):
        cluster = pg_cluster or pg
        d = tempfile.mkdtemp(dir=workdir, prefix=f"proxy-{test_name}-")
        # A port picked now can be taken by a parallel test before rsproxy binds it: retry.
        for attempt in range(3):
            cfg = merge_config(default_proxy_config(cluster, certs.ca_file, free_port()),
                               config)
            p = RsProxy(binary or rsproxy_bin, d, cfg, env=env,
                        name=f"rsproxy{len(made)}", secrets_=cluster.passwords.values())
            if not start:
                made.append(p)
                return p
            try:
                p.start()
                made.append(p)
                return p
            except HarnessError:
                log = p.log_text().lower()
                p.kill()
                if "in use" not in log or attempt == 2:
                    made.append(p)
                    raise
        raise AssertionError("unreachable")

    yield make
    problems = []
    for p in made:
        p.stop()
        for prob in p.problems():
            problems.append(f"{p.name}: {prob}\n--- log tail ({p.logfile}) ---\n"
                            f"{p.log_tail(60)}")
    if problems:
        pytest.fail("rsproxy did not run cleanly:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def proxy(proxy_factory):
    return proxy_factory()


@pytest.fixture(scope="session")
def slow():
    return pgharness.slow_factor()
