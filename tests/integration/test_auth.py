"""Upstream authentication in password mode: SCRAM-SHA-256, MD5 (a real md5 secret) and
cleartext (hba method password, over TLS); a wrong password gives the client upstream's own
28P01 quickly; a fixed upstream user and database; password_file; the password never
appears in the log."""

import os

import psycopg
import pytest

import wirecheck


def whoami(proxy, **kw):
    with psycopg.connect(proxy.dsn(**kw)) as c:
        return c.execute("SELECT current_user, current_database(), ssl FROM pg_stat_ssl "
                         "WHERE pid = pg_backend_pid()").fetchone()


@pytest.mark.parametrize("user", ["scramuser", "md5user", "pwuser", "rsadmin"])
def test_password_exchanges(proxy_factory, pg, user):
    """Each role's hba method forces one exchange: scram-sha-256, md5 (the stored secret is an
    md5 hash, so PostgreSQL really asks for MD5), password (cleartext inside TLS)."""
    p = proxy_factory({"upstream": {"password": pg.passwords[user]}})
    assert whoami(p, user=user) == (user, "rsdb", True)


def test_md5_user_secret_is_md5(pg):
    # Guards the test above: without an md5 secret PostgreSQL would silently use SCRAM.
    assert pg.sql_value("SELECT rolpassword FROM pg_authid WHERE rolname = 'md5user'"
                        ).startswith("md5")


def test_fixed_upstream_user_and_database(proxy_factory, pg):
    p = proxy_factory({"upstream": {"user": "md5user", "password": pg.passwords["md5user"],
                                    "dbname": "postgres"}})
    assert whoami(p, user="whoever", dbname="rsdb") == ("md5user", "postgres", True)


@pytest.mark.parametrize("user", ["scramuser", "md5user", "pwuser"])
def test_wrong_password_gives_upstreams_error(proxy_factory, user):
    wrong = "wrong-" + "x" * 20
    p = proxy_factory({"upstream": {"password": wrong}})
    p.secrets.add(wrong)
    fields, elapsed = wirecheck.login_error(p.host, p.port, user=user)
    assert fields.get("C") == "28P01", fields
    assert elapsed < 5
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(p.dsn(user=user))


def test_unknown_upstream_user(proxy):
    fields, _ = wirecheck.login_error(proxy.host, proxy.port, user="no_such_role")
    assert fields.get("C") in ("28P01", "28000"), fields


def test_password_file(proxy_factory, pg, workdir):
    path = os.path.join(workdir, "upstream-password")
    with open(path, "w") as f:
        f.write(pg.passwords["scramuser"] + "\n")
    os.chmod(path, 0o600)
    p = proxy_factory({"upstream": {"password": None, "password_file": path}})
    assert whoami(p)[0] == "scramuser"


def test_password_file_readable_by_others_is_refused(proxy_factory, pg, workdir):
    path = os.path.join(workdir, "upstream-password-644")
    with open(path, "w") as f:
        f.write(pg.passwords["scramuser"] + "\n")
    os.chmod(path, 0o644)
    p = proxy_factory({"upstream": {"password": None, "password_file": path}}, start=False)
    rc, log = p.start_expect_failure()
    assert rc != 0 and "password_file" in log


def test_password_from_environment(proxy_factory, pg):
    p = proxy_factory({"upstream": {"password": "overridden-by-env"}},
                      env={"RSPROXY_UPSTREAM_PASSWORD": pg.passwords["scramuser"]})
    p.secrets.add("overridden-by-env")
    assert whoami(p)[0] == "scramuser"
