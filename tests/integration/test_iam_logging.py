"""What rsproxy's log tells operators about the database credentials it uses (px_proxy.c,
auth_iam's fetch observer): one INFO line per fetch or refresh (target, API, DbUser, database,
seconds valid, which AWS credential source signed the call), one WARN line per failed fetch with
AWS's code and message, and nothing per cache hit, so the log grows with AWS calls, not with
logins. Never a secret, at any level (the trace-level secret tests are in test_iam_login.py).
"""

import re

import pytest

from fixtures_aws import PROXY_KEY, SCOPED_KEY
from test_iam_login import (ACCOUNT, APP_ROLE, PASSWORD_SHAPE, gcc_calls, login_error, psql,
                            relay_db_passwords, who, write_profile_files)

FETCHED = re.compile(r" info IAM database credentials (fetched|refreshed) (.*)$", re.M)
FAILED = re.compile(r" warn IAM database credentials could not be (fetched|refreshed) (.*)$",
                    re.M)


def fields(rest):
    """key=value pairs of one line (message="..." may hold spaces)."""
    out = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', rest))
    return {k: v.strip('"') for k, v in out.items()}


def fetch_lines(p):
    return [(kind, fields(rest)) for kind, rest in FETCHED.findall(p.log_text())]


def fail_lines(p):
    return [(kind, fields(rest)) for kind, rest in FAILED.findall(p.log_text())]


def test_fetch_is_logged_once_not_per_login(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory()
    for _ in range(3):
        assert who(p)[0] == "IAM:alice"
    assert gcc_calls(iam_standin) == 1
    lines = fetch_lines(p)
    assert len(lines) == 1, p.log_text()
    kind, f = lines[0]
    assert kind == "fetched"
    assert f["target"] == "examplecluster"
    assert f["api"] == "redshift:GetClusterCredentials"
    assert f["db_user"] == "IAM:alice" and f["dbname"] == "dev"
    assert 880 <= int(f["valid_s"]) <= 900, f
    assert f["aws_credentials"] == "environment", f
    # Another database is another cache key: a second fetch, a second line.
    assert who(p, dbname="alice")[0] == "IAM:alice"
    assert [f["dbname"] for _, f in fetch_lines(p)] == ["dev", "alice"]


def test_refresh_is_logged_with_the_profile(iam_proxy_factory, iam_standin):
    iam_standin.patch_world({"lifetimes": {"db": 12}})
    p = iam_proxy_factory(aws_keys=False, start=False, env={"AWS_PROFILE": "app"},
                          iam={"refresh_margin_seconds": "1"})
    write_profile_files(p, iam_standin)
    p.start()
    assert who(p)[0] == "IAM:alice"
    # The janitor refreshes credentials in use before they expire: a "refreshed" line.
    p.wait_until(lambda: any(k == "refreshed" for k, _ in fetch_lines(p)), timeout=30,
                 what="a refresh line")
    kinds = [k for k, _ in fetch_lines(p)]
    assert kinds[0] == "fetched" and "refreshed" in kinds, kinds
    for _, f in fetch_lines(p):
        # Which credentials signed the call: the role the profile assumes, not a secret.
        assert f["aws_credentials"].startswith(f"assume role {APP_ROLE}"), f
        assert f["profile"] == "app", f
        assert int(f["valid_s"]) <= 12
    # Checked without assert, whose failure report would print the secret it found.
    log = p.log_text()
    if any(secret in log for secret in relay_db_passwords(p.relay)):
        pytest.fail("a database password the relay handed out appears in the log", pytrace=False)
    if PASSWORD_SHAPE.search(log):
        pytest.fail("something shaped like a temporary password appears in the log",
                    pytrace=False)


def test_failed_fetch_is_a_warning_with_aws_code(iam_proxy_factory, aws_standin_factory,
                                                 iam_world):
    iam_world["principals"][SCOPED_KEY]["allow"].append(
        {"action": "redshift:GetClusterCredentials",
         "resource": f"arn:aws:redshift:us-east-1:{ACCOUNT}:dbname:examplecluster/*"})
    p = iam_proxy_factory(standin=aws_standin_factory(iam_world), akid=SCOPED_KEY)
    err = login_error(p, user="bob")
    assert err["C"] == "28000", err
    lines = fail_lines(p)
    assert len(lines) == 1, p.log_text()
    kind, f = lines[0]
    assert kind == "fetched"
    assert f["target"] == "examplecluster" and f["api"] == "redshift:GetClusterCredentials"
    assert f["db_user"] == "bob" and f["code"] == "AccessDenied", f
    assert "is not authorized to perform: redshift:GetClusterCredentials" in f["message"], f
    # Clients refused while the failure backs off repeat it without another fetch or line.
    r = psql(p, "SELECT 1", user="bob", check=False)
    assert r.returncode == 2 and "AccessDenied" in r.stderr
    assert len(fail_lines(p)) <= 2
    assert who(p, user="alice", dbname="alice")[0] == "IAM:alice"
    assert len(fetch_lines(p)) == 1


def test_no_aws_credentials_is_a_warning(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(aws_keys=False)
    login_error(p)
    lines = fail_lines(p)
    assert len(lines) == 1, p.log_text()
    _, f = lines[0]
    assert f["api"] == "AWS credentials", f  # the step that failed: no API was called
    assert "no AWS credentials" in f["message"], f
    assert f["code"] == "-" and f["db_user"] == "alice", f
    assert iam_standin.calls() == {}
    assert PROXY_KEY not in p.log_text()
