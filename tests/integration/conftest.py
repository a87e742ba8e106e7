"""pytest configuration for the integration suite.

Every tests/integration/fixtures_*.py is loaded as a plugin, so each stand-in (AWS, S3,
Redshift) can ship its fixtures in its own file without touching this one; fixtures_core.py
holds the PostgreSQL and rsproxy fixtures. This file also turns every skip into a failure:
the README's test command installs everything the tests need, so a skip could only hide a
broken install step.
"""

import glob
import os

import pytest

_here = os.path.dirname(os.path.abspath(__file__))

pytest_plugins = sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob(os.path.join(_here, "fixtures_*.py")))

# libpq reads these; a developer's environment must not change what a test connects to.
_LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD",
              "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGSSLMODE", "PGSSLROOTCERT",
              "PGSSLCERT", "PGSSLKEY", "PGREQUIRESSL", "PGOPTIONS", "PGCLIENTENCODING",
              "PGTARGETSESSIONATTRS", "PGCONNECT_TIMEOUT", "PGAPPNAME", "PGGSSENCMODE")


def pytest_configure(config):
    for name in _LIBPQ_ENV:
        os.environ.pop(name, None)
    # No password file or service file from the home directory either.
    os.environ["PGPASSFILE"] = "/nonexistent/rsproxy-tests-no-pgpass"
    os.environ["PGSERVICEFILE"] = "/nonexistent/rsproxy-tests-no-pg_service.conf"
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(
            "pytest-timeout is missing: run tests/install-deps.sh (python3-pytest-timeout)")


def _skip_reason(longrepr):
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return longrepr[2]
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail"):
        rep.outcome = "failed"
        rep.longrepr = ("a skipped test is a failure in this suite (install the missing "
                        "component with tests/install-deps.sh): " + _skip_reason(rep.longrepr))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = ("a skipped module is a failure in this suite: " +
                        _skip_reason(rep.longrepr))
