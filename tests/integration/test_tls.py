"""Upstream TLS: verify-full (the default) accepts the right certificate by name and by IP,
and refuses a wrong CA, a wrong host name, and a server without SSL, each with a clear 08001
error within seconds (pgbouncer 1.18 leaves the client hanging instead); verify-ca accepts a
wrong host name but not a wrong CA; require needs no CA; sslmode = disable is explicit and
warned about."""

import threading

import psycopg
import pytest

import wirecheck

FAST = 5.0  # seconds within which a refused upstream must reach the client


@pytest.fixture(scope="module")
def wrongname_pg(make_cluster, certs):
    """A cluster whose certificate (from the test CA) names another host only."""
    cert = certs.issue("wrongname", ["DNS:db.wrong.example"])
    return make_cluster("wrongname", cert=cert)


@pytest.fixture(scope="module")
def nossl_pg(make_cluster):
    return make_cluster("nossl", ssl=False)


def upstream_ssl(proxy):
    with proxy.connect() as c:
        return c.execute("SELECT ssl, version FROM pg_stat_ssl "
                         "WHERE pid = pg_backend_pid()").fetchone()


def refused(proxy, slow, must_mention=()):
    fields, elapsed = wirecheck.login_error(proxy.host, proxy.port, timeout=30 * slow)
    assert fields.get("C") == "08001", fields
    assert elapsed < FAST * slow, f"error took {elapsed:.1f}s"
    msg = (fields.get("M", "") + " " + fields.get("D", "")).lower()
    if must_mention:
        assert any(w in msg for w in must_mention), fields
    # libpq shows the same error to a real client.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxy.dsn())
    return fields


def test_verify_full_is_the_default_and_works(proxy):
    assert proxy.config["upstream"]["sslmode"] == "verify-full"
    ssl, version = upstream_ssl(proxy)
    assert ssl is True and version in ("TLSv1.2", "TLSv1.3")


def test_verify_full_by_ip_address(proxy_factory):
    p = proxy_factory({"upstream": {"host": "127.0.0.1"}})
    assert upstream_ssl(p)[0] is True


def test_wrong_ca_is_refused_quickly(proxy_factory, certs, slow):
    p = proxy_factory({"upstream": {"sslrootcert": certs.other_ca.cert}})
    refused(p, slow, must_mention=("certificate", "verify"))


def test_system_store_does_not_trust_the_test_ca(proxy_factory, slow):
    p = proxy_factory({"upstream": {"sslrootcert": "system"}})
    refused(p, slow, must_mention=("certificate", "verify"))


def test_wrong_host_name_is_refused_under_verify_full(proxy_factory, wrongname_pg, slow):
    p = proxy_factory(pg_cluster=wrongname_pg)
    refused(p, slow, must_mention=("host", "name", "certificate"))


def test_verify_ca_accepts_a_wrong_host_name(proxy_factory, wrongname_pg):
    p = proxy_factory({"upstream": {"sslmode": "verify-ca"}}, pg_cluster=wrongname_pg)
    assert upstream_ssl(p)[0] is True


def test_verify_ca_still_checks_the_ca(proxy_factory, wrongname_pg, certs, slow):
    p = proxy_factory({"upstream": {"sslmode": "verify-ca",
                                    "sslrootcert": certs.other_ca.cert}},
                      pg_cluster=wrongname_pg)
    refused(p, slow, must_mention=("certificate", "verify"))


@pytest.mark.parametrize("cluster", ["pg", "wrongname"])
def test_require_works_without_a_ca(proxy_factory, pg, wrongname_pg, cluster):
    target = pg if cluster == "pg" else wrongname_pg
    # sslrootcert left at its default (the system store, which does not hold the test CA).
    p = proxy_factory({"upstream": {"sslmode": "require", "sslrootcert": None}},
                      pg_cluster=target)
    assert upstream_ssl(p)[0] is True


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca", "require"])
def test_server_without_ssl_is_refused(proxy_factory, nossl_pg, slow, sslmode):
    p = proxy_factory({"upstream": {"sslmode": sslmode}}, pg_cluster=nossl_pg)
    refused(p, slow)


def test_plaintext_only_with_explicit_disable(proxy_factory, nossl_pg):
    p = proxy_factory({"upstream": {"sslmode": "disable"}}, pg_cluster=nossl_pg)
    with p.connect() as c:
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                         ).fetchone()[0] is False
    assert p.log_contains(r"(?i)warn.*(disable|plaintext|unencrypted|without tls|not encrypted)")


def test_many_refused_logins_at_once(proxy_factory, certs, slow):
    """Twenty clients refused concurrently: each gets its 08001, and the proxy stays up."""
    p = proxy_factory({"upstream": {"sslrootcert": certs.other_ca.cert}})
    results = []

    def one():
        try:
            results.append(wirecheck.login_error(p.host, p.port, timeout=30 * slow)[0].get("C"))
        except AssertionError as e:
            results.append(repr(e))
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["08001"] * 20
    assert p.alive()
    refused(p, slow)
