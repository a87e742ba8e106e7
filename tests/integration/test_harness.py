"""Tests of the harness itself, against PostgreSQL directly (no rsproxy): the cluster really
has TLS with the session CA and the roles it promises, and the Proxy checks really catch a
crash, a sanitizer report or a leaked secret (with a fake binary). If these fail, the other
integration tests cannot be trusted."""

import os
import stat
import subprocess
import tempfile
import glob

import psycopg
import pytest

import pgharness
from pgharness import RsProxy, default_proxy_config, free_port

FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakes", "fake_rsproxy.py")


def test_direct_tls_verify_full(pg, certs):
    dsn = pg.direct_dsn(sslrootcert=certs.ca_file)
    with psycopg.connect(dsn) as c:
        ssl, version = c.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert ssl is True
        assert version in ("TLSv1.2", "TLSv1.3")
        assert c.execute("SELECT current_user").fetchone()[0] == "scramuser"


def test_direct_tls_verify_full_by_ip(pg, certs):
    dsn = pg.direct_dsn(sslrootcert=certs.ca_file, host="127.0.0.1")
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_plaintext_tcp_is_refused(pg):
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        psycopg.connect(pg.direct_dsn(sslmode="disable"))


def test_wrong_ca_is_refused_by_libpq(pg, certs):
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(pg.direct_dsn(sslrootcert=certs.other_ca.cert))


def test_roles_have_the_promised_secrets(pg, certs):
    rows = dict(pg.sql("SELECT rolname, rolpassword FROM pg_authid "
                       "WHERE rolname IN ('md5user', 'scramuser', 'pwuser', 'rsadmin')"))
    assert rows["md5user"].startswith("md5")
    for r in ("scramuser", "pwuser", "rsadmin"):
        assert rows[r].startswith("SCRAM-SHA-256$"), r
    assert pg.sql_value("SELECT rolsuper FROM pg_roles WHERE rolname = 'rsadmin'") is True
    for user in ("md5user", "pwuser", "scramuser", "rsadmin"):
        with psycopg.connect(pg.direct_dsn(user=user, sslrootcert=certs.ca_file)) as c:
            assert c.execute("SELECT current_user").fetchone()[0] == user


def test_wrong_password_is_refused(pg, certs):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.direct_dsn(user="md5user", password="wrong",
                                      sslrootcert=certs.ca_file))


def test_server_key_is_private_to_postgres(pg, certs):
    st = os.stat(certs.server[1])
    assert stat.S_IMODE(st.st_mode) == 0o600
    if os.geteuid() == 0:
        assert st.st_uid == pgharness.postgres_ids()[0]


def test_every_fixtures_file_is_a_plugin(request):
    here = os.path.dirname(os.path.abspath(__file__))
    names = [os.path.splitext(os.path.basename(p))[0]
             for p in glob.glob(os.path.join(here, "fixtures_*.py"))]
    assert "fixtures_core" in names
    for n in names:
        assert request.config.pluginmanager.get_plugin(n) is not None, n


def test_rsproxy_binary_reports_its_version(rsproxy_bin):
    out = subprocess.run([rsproxy_bin, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith("rsproxy ")


def fake_proxy(pg, certs, mode):
    d = tempfile.mkdtemp(dir=os.path.dirname(pg.base))
    cfg = default_proxy_config(pg, certs.ca_file, free_port())
    return RsProxy(FAKE, d, cfg, env={"FAKE_RSPROXY_MODE": mode},
                   secrets_=pg.passwords.values())


@pytest.mark.parametrize("mode,expect", [
    ("clean", None),
    ("asan", "AddressSanitizer"),
    ("ubsan", "runtime error"),
    ("secret", "secret"),
    ("abort", "SIGABRT"),
    ("exit3", "exit status 3"),
])
def test_proxy_checks_catch_bad_exits(pg, certs, mode, expect):
    p = fake_proxy(pg, certs, mode)
    p.start()
    assert p.alive()
    p.stop()
    problems = p.problems()
    if expect is None:
        assert problems == []
    else:
        assert any(expect in x for x in problems), problems
        with pytest.raises(AssertionError):
            p.stop_and_check()
