"""IAM login end to end: real clients (psql, psycopg 3) through rsproxy in upstream.auth = iam
mode, AWS played by the stand-in (botocore verifies every signature), PostgreSQL 15 behind
TLS verify-full playing the cluster (fixtures_iam.py).

What is covered: the credential sources of the issue's "Done when" (environment, profile with
assume-role, web identity) plus container credentials and IMDSv2; provisioned clusters with
and without endpoint discovery, custom domain names, GetClusterCredentialsWithIAM, auto_create
with db_groups, Serverless with GetWorkgroup discovery; MD5- and SCRAM-stored upstream
secrets; single flight for 200 simultaneous clients; short-lived credentials and expired AWS
keys; AWS errors as ErrorResponses (28000 with AWS's code and message, 08001 when AWS is
unreachable or keeps throttling) with the process serving on; no secret in a trace-level log
(and, through iam_proxy_factory, in any test's log); and `rsproxy --check` in IAM mode.
"""

import os
import re
import subprocess
import threading
import time

import psycopg
import pytest

import pgwire
from fixtures_aws import NOPERMS_KEY, PROXY_KEY, SCOPED_KEY, secret_of
from fixtures_iam import harvest_secrets
from pgharness import pg_bin, wait_until

ACCOUNT = "123456789012"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/rsproxy-app"
# The shape of a database password the stand-in mints (and Redshift returns): 44 characters
# of base64 ending in "==". Nothing in rsproxy's log may look like one.
PASSWORD_SHAPE = re.compile(r"[A-Za-z0-9+/]{42}==")


# ----------------------------------------------------------------------------------------------
# Clients


def psql(p, *sql, user="alice", dbname=None, check=True, timeout=60):
    """psql exactly as a user types it: psql -h 127.0.0.1 -p <port> -U <user> [-d <db>]."""
    argv = [pg_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
            "-p", str(p.port), "-U", user]
    if dbname:
        argv += ["-d", dbname]
    for s in sql:
        argv += ["-c", s]
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", PGCONNECT_TIMEOUT="30")
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"psql exited {r.returncode}\nstdout: {r.stdout!r}\n"
                             f"stderr: {r.stderr!r}\n--- rsproxy log ---\n{p.log_tail(40)}")
    return r


def connect(p, user="alice", dbname="dev", **kw):
    return psycopg.connect(host="127.0.0.1", port=p.port, user=user, dbname=dbname,
                           sslmode="disable", connect_timeout=kw.pop("connect_timeout", 30),
                           autocommit=True, **kw)


WHO = ("SELECT current_user, s.ssl, s.version FROM pg_stat_ssl s "
       "WHERE s.pid = pg_backend_pid()")


def who(p, user="alice", dbname="dev"):
    """(current_user, upstream leg is TLS, TLS version) of a fresh psycopg session."""
    with connect(p, user, dbname) as c:
        return c.execute(WHO).fetchone()


def login_error(p, user="alice", dbname="dev", timeout=60):
    """The ErrorResponse fields rsproxy answers a startup with (raw protocol, so the SQLSTATE
    is visible); fails if the login succeeds or the connection just closes."""
    with pgwire.RawConn("127.0.0.1", p.port, timeout=timeout) as c:
        c.send(pgwire.startup({"user": user, "database": dbname}))
        while True:
            m = c.recv_msg()
            if m.type == b"E":
                return m.fields()
            if m.type == b"Z":
                raise AssertionError("the login succeeded where an error was expected")


def gcc_calls(standin):
    return standin.calls().get("GetClusterCredentials", 0)


def write_profile_files(p, standin):
    """A base profile with the proxy principal's long-term keys and a profile `app` that
    assumes rsproxy-app from it."""
    with open(os.path.join(p.aws_dir, "credentials"), "w") as f:
        f.write(f"[base]\naws_access_key_id = {PROXY_KEY}\n"
                f"aws_secret_access_key = {secret_of(standin.world, PROXY_KEY)}\n")
    with open(os.path.join(p.aws_dir, "config"), "w") as f:
        f.write(f"[profile app]\nrole_arn = {APP_ROLE}\nsource_profile = base\n"
                "role_session_name = rsproxy-e2e\n")


def assert_all_verified(standin):
    """Every request the stand-in saw passed botocore's signature check (and every other)."""
    bad = [r for r in standin.requests() if r["code"] is not None]
    assert not bad, bad


def used_keys(standin, op):
    """Access key ids that signed at least one call of op."""
    return {k for k, v in standin.calls(by_key=True).items() if op in v}


# ----------------------------------------------------------------------------------------------
# The "Done when": only AWS credentials and a cluster name


def test_environment_keys_psql_logs_in_as_iam_user(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory()
    # psql -h 127.0.0.1 -p <port> -U alice, nothing else: database alice, TLS to the upstream
    # verified against the test CA for the name localhost.
    r = psql(p, "SELECT current_user, current_database(), s.ssl FROM pg_stat_ssl s "
                "WHERE s.pid = pg_backend_pid()")
    assert r.stdout.strip() == "IAM:alice|alice|t"
    assert gcc_calls(iam_standin) == 1
    assert used_keys(iam_standin, "GetClusterCredentials") == {PROXY_KEY}

    # psycopg 3 gets the cached credentials (same user and database): no second call.
    user, ssl, version = who(p, dbname="alice")
    assert (user, ssl) == ("IAM:alice", True)
    assert version.startswith("TLSv1.")
    assert gcc_calls(iam_standin) == 1
    assert p.log_contains(r"certificate chain and host name verified")
    assert_all_verified(iam_standin)


def test_profile_with_assume_role(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(aws_keys=False, start=False, env={"AWS_PROFILE": "app"})
    write_profile_files(p, iam_standin)
    p.start()
    r = psql(p, "SELECT current_user")
    assert r.stdout.strip() == "IAM:alice"
    calls = iam_standin.calls()
    assert calls.get("AssumeRole") == 1
    assert calls.get("GetClusterCredentials") == 1
    signer = used_keys(iam_standin, "GetClusterCredentials")
    assert len(signer) == 1 and PROXY_KEY not in signer, signer
    rec = iam_standin.key(signer.pop())
    assert rec["temporary"] and rec["role_arn"] == APP_ROLE
    assert_all_verified(iam_standin)


def test_web_identity(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(aws_keys=False, start=False)
    token = os.path.join(p.home, "web-identity-token")
    with open(token, "w") as f:
        f.write(iam_standin.world["web_identity"]["issuer_tokens"][0])
    p.env.update({"AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": APP_ROLE,
                  "AWS_ROLE_SESSION_NAME": "rsproxy-pod"})
    p.start()
    r = psql(p, "SELECT current_user")
    assert r.stdout.strip() == "IAM:alice"
    calls = iam_standin.calls()
    assert calls.get("AssumeRoleWithWebIdentity") == 1
    assert calls.get("GetClusterCredentials") == 1
    assert PROXY_KEY not in used_keys(iam_standin, "GetClusterCredentials")
    assert_all_verified(iam_standin)


def test_instance_metadata(iam_proxy_factory, iam_standin):
    # IMDSv2 (token, role name, credentials) as on EC2; the only test with it enabled.
    p = iam_proxy_factory(aws_keys=False, start=False)
    p.env.pop("AWS_EC2_METADATA_DISABLED")
    p.env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = p.relay.url
    p.start()
    assert who(p)[0] == "IAM:alice"
    calls = iam_standin.calls()
    assert calls.get("IMDSToken", 0) >= 1 and calls.get("IMDSCredentials", 0) >= 1, calls
    signer = used_keys(iam_standin, "GetClusterCredentials")
    assert iam_standin.key(signer.pop())["role_arn"].endswith(":role/rsproxy-instance-role")


def test_container_credentials(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(aws_keys=False, start=False)
    p.env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = (
        p.relay.url + iam_standin.world["container"]["path"])
    p.env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = iam_standin.world["container"]["token"]
    p.start()
    assert who(p)[0] == "IAM:alice"
    assert iam_standin.calls().get("ContainerCredentials") == 1


# ----------------------------------------------------------------------------------------------
# Targets: discovery, Serverless, WithIAM, auto_create, custom domain, md5 and SCRAM


def test_provisioned_endpoint_discovery(iam_proxy_factory, iam_standin):
    # Host empty and a port that leads nowhere: only DescribeClusters can get this right.
    p = iam_proxy_factory(upstream={"host": "", "port": "1"})
    assert who(p)[:2] == ("IAM:alice", True)
    assert who(p, dbname="alice")[0] == "IAM:alice"
    calls = iam_standin.calls()
    assert calls.get("DescribeClusters") == 1, calls
    assert calls.get("GetClusterCredentials") == 2, calls  # two databases, two cache keys


def test_serverless_workgroup_discovery(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(upstream={"host": "", "port": "1"},
                          iam={"cluster_identifier": "", "workgroup_name": "wg1"})
    # The database user follows the IAM identity (the long-term user rsproxy), whatever the
    # client's startup user.
    assert who(p, user="whoever")[:2] == ("IAM:rsproxy", True)
    calls = iam_standin.calls()
    assert calls.get("GetWorkgroup") == 1, calls
    assert calls.get("GetCredentials") == 1, calls
    assert "GetClusterCredentials" not in calls


def test_serverless_with_role_gives_iamr_user(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(aws_keys=False, start=False, env={"AWS_PROFILE": "app"},
                          iam={"cluster_identifier": "", "workgroup_name": "wg1"})
    write_profile_files(p, iam_standin)
    p.start()
    assert psql(p, "SELECT current_user", dbname="dev").stdout.strip() == "IAMR:rsproxy-app"
    assert iam_standin.calls().get("GetCredentials") == 1


def test_with_iam(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(iam={"with_iam": "true"})
    assert who(p, user="anyone")[0] == "IAM:rsproxy"
    calls = iam_standin.calls()
    assert calls.get("GetClusterCredentialsWithIAM") == 1, calls
    assert "GetClusterCredentials" not in calls


def test_auto_create_with_db_groups(iam_proxy_factory, iam_standin, iam_pg):
    p = iam_proxy_factory(iam={"auto_create": "true", "db_groups": "analysts"})
    with connect(p, user="bob") as c:
        user, member = c.execute(
            "SELECT current_user, pg_has_role(current_user, 'analysts', 'MEMBER')").fetchone()
    assert user == "IAMA:bob:analysts"
    assert member is True
    assert iam_pg.sql_value("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (user,)) is True


def test_custom_domain_name(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(iam={"cluster_identifier": "",
                               "custom_domain_name": "redshift.example.com"})
    assert who(p)[0] == "IAM:alice"
    assert gcc_calls(iam_standin) == 1
    # The domain really is what identifies the cluster: another one is not found.
    q = iam_proxy_factory(standin=iam_standin,
                          iam={"cluster_identifier": "",
                               "custom_domain_name": "other.example.com"})
    err = login_error(q)
    assert err["C"] == "28000", err
    assert "ClusterNotFound" in err["M"] and "other.example.com" in err["M"], err


@pytest.mark.parametrize("cluster,stored", [("examplecluster", "md5"),
                                            ("scramcluster", "SCRAM-SHA-256$")])
def test_md5_and_scram_upstream(iam_proxy_factory, iam_standin, iam_pg, cluster, stored):
    p = iam_proxy_factory(iam={"cluster_identifier": cluster})
    r = psql(p, "SELECT current_user", "SELECT count(*) FROM pg_stat_ssl "
                "WHERE pid = pg_backend_pid() AND ssl", dbname="dev")
    assert r.stdout.split() == ["IAM:alice", "1"]
    # The secret PostgreSQL holds decides the exchange under the `md5` hba method: MD5 for an
    # md5 secret (its hash covers the DbUser with its IAM: prefix), SCRAM for a SCRAM one.
    secret = iam_pg.sql_value("SELECT rolpassword FROM pg_authid WHERE rolname = 'IAM:alice'")
    assert secret.startswith(stored)


def test_lower_cases_the_db_user(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory()
    # GetClusterCredentials refuses an upper-case DbUser; rsproxy sends it lower-cased.
    assert psql(p, "SELECT current_user", user="ALICE", dbname="dev").stdout.strip() == \
        "IAM:alice"


def test_upstream_certificate_is_verified(iam_proxy_factory, iam_standin, certs):
    p = iam_proxy_factory(upstream={"sslrootcert": certs.other_ca.cert})
    err = login_error(p)
    assert err["C"].startswith("08"), err
    assert "certificate" in err["M"].lower(), err
    assert p.alive()


# ----------------------------------------------------------------------------------------------
# Single flight


@pytest.mark.timeout(300)
def test_200_clients_at_once_one_api_call(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(proxy={"log_level": "info"})
    # The call takes 2 s, so every client arrives while it is in flight.
    iam_standin.fault("GetClusterCredentials", "stall", count=1, seconds=2)
    n = 200
    start = threading.Barrier(n)
    hold = threading.Barrier(n + 1, timeout=240)
    results, errors = [None] * n, []

    def client(i):
        try:
            start.wait(60)
            with connect(p, connect_timeout=120) as c:
                results[i] = c.execute("SELECT current_user").fetchone()[0]
                hold.wait()
        except Exception as exc:  # reported below, with the proxy log
            errors.append(f"client {i}: {exc!r}")
            hold.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        hold.wait()  # all 200 sessions open at the same time
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join(240)
    assert not errors, "\n".join(errors[:10]) + "\n" + p.log_tail(30)
    assert results == ["IAM:alice"] * n
    assert gcc_calls(iam_standin) == 1
    assert iam_standin.faults()[0]["fired"] == 1


# ----------------------------------------------------------------------------------------------
# Short-lived credentials


def relay_db_passwords(relay):
    with relay.lock:
        return [s for s in relay.secrets if PASSWORD_SHAPE.fullmatch(s)]


def test_short_lived_credentials(iam_proxy_factory, iam_standin, iam_pg, certs):
    # The stand-in's world lifetime makes database passwords expire after 12 s (AWS's minimum
    # is 900 s; rsproxy refuses credentials with less than 10 s left as already expired, so
    # this is about the shortest lifetime it accepts).
    lifetime = 12
    iam_standin.patch_world({"lifetimes": {"db": lifetime}})
    p = iam_proxy_factory(iam={"refresh_margin_seconds": "1"})
    before = time.time()
    old = connect(p)
    try:
        assert old.execute("SELECT current_user").fetchone()[0] == "IAM:alice"
        first = relay_db_passwords(p.relay)
        assert len(first) == 1

        # Past the first password's expiry (minted after `before`, so it expired by
        # before + lifetime): PostgreSQL no longer takes it, whether it expired or was
        # replaced by a refresh in between.
        time.sleep(max(0.0, before + lifetime + 1 - time.time()))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(iam_pg.direct_dsn(user="IAM:alice", dbname="dev",
                                              sslrootcert=certs.ca_file,
                                              password=first[0])).close()

        # The session opened before expiry keeps working.
        assert old.execute("SELECT current_user, 41 + 1").fetchone() == ("IAM:alice", 42)
        # A new login gets fresh credentials: at least one more call, a new password, and a
        # login that works (expired credentials would be refused by PostgreSQL).
        assert who(p)[0] == "IAM:alice"
        assert gcc_calls(iam_standin) >= 2
        assert len(relay_db_passwords(p.relay)) >= 2
        assert old.execute("SELECT 'still here'").fetchone()[0] == "still here"
    finally:
        old.close()


def test_credentials_too_short_lived_are_refused(iam_proxy_factory, iam_standin):
    # Credentials that would expire within seconds of arriving are not handed out: the client
    # gets a clear 28000 instead of a login that fails upstream.
    iam_standin.patch_world({"lifetimes": {"db": 3}})
    p = iam_proxy_factory()
    err = login_error(p)
    assert err["C"] == "28000", err
    assert "expired" in err["M"], err
    assert p.alive()


# ----------------------------------------------------------------------------------------------
# AWS errors reach the client; the process serves on


def test_throttling_is_retried(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory()
    iam_standin.fault("GetClusterCredentials", "throttle", count=2)
    assert psql(p, "SELECT current_user").stdout.strip() == "IAM:alice"
    assert gcc_calls(iam_standin) == 3


def test_throttling_exhausted_is_08001(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory()
    iam_standin.fault("GetClusterCredentials", "throttle", count=-1)
    err = login_error(p)
    # Still throttled after rsproxy's retries: AWS cannot serve now, like unreachable.
    assert err["C"] == "08001", err
    assert "Throttling" in err["M"] and "Rate exceeded" in err["M"], err
    calls = gcc_calls(iam_standin)
    assert 2 <= calls <= 5, calls
    iam_standin.clear_faults()
    wait_until(lambda: psql(p, "SELECT current_user", check=False).stdout.strip() ==
               "IAM:alice", 60, interval=0.5, what="a login once the throttling stops")


def test_missing_database_user(iam_proxy_factory, iam_standin):
    # Like Redshift, GetClusterCredentials succeeds for a user that does not exist in the
    # database (without auto_create); the login then fails upstream, and the client sees
    # PostgreSQL's (Redshift's) own error.
    p = iam_proxy_factory()
    r = psql(p, "SELECT 1", user="carol", dbname="dev", check=False)
    assert r.returncode == 2, r
    assert 'password authentication failed for user "IAM:carol"' in r.stderr, r
    assert gcc_calls(iam_standin) == 1
    assert who(p)[0] == "IAM:alice"


def test_expired_aws_keys_are_replaced(iam_proxy_factory, iam_standin):
    # The assumed role's temporary keys expire (or are revoked) under rsproxy: AWS answers
    # ExpiredToken, rsproxy assumes the role again and the login works.
    p = iam_proxy_factory(aws_keys=False, start=False, env={"AWS_PROFILE": "app"})
    write_profile_files(p, iam_standin)
    p.start()
    assert who(p)[0] == "IAM:alice"
    first = used_keys(iam_standin, "GetClusterCredentials")
    assert len(first) == 1
    iam_standin.expire(next(iter(first)))
    assert who(p, dbname="alice")[0] == "IAM:alice"  # a new cache key: a new API call
    calls = iam_standin.calls()
    assert calls.get("AssumeRole") == 2, calls
    second = used_keys(iam_standin, "GetClusterCredentials") - first
    assert len(second) == 1, iam_standin.calls(by_key=True)
    codes = [r["code"] for r in iam_standin.requests() if r["op"] == "GetClusterCredentials"]
    assert codes == [None, "ExpiredToken", None], codes


def test_no_aws_credentials(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(aws_keys=False)
    err = login_error(p)
    assert err["C"] == "28000", err
    assert "no AWS credentials" in err["M"], err
    assert "AWS_ACCESS_KEY_ID" in err["M"], err  # it says where it looked
    assert iam_standin.calls() == {}
    assert p.alive()


def test_access_denied(iam_proxy_factory, aws_standin_factory, iam_world):
    # The scoped principal may get credentials for dbuser alice only (and, here, any database).
    iam_world["principals"][SCOPED_KEY]["allow"].append(
        {"action": "redshift:GetClusterCredentials",
         "resource": f"arn:aws:redshift:us-east-1:{ACCOUNT}:dbname:examplecluster/*"})
    p = iam_proxy_factory(standin=aws_standin_factory(iam_world), akid=SCOPED_KEY)
    err = login_error(p, user="bob")
    assert err["C"] == "28000", err
    assert err["S"] == "FATAL", err
    assert "AccessDenied" in err["M"], err
    assert (f"is not authorized to perform: redshift:GetClusterCredentials on resource: "
            f"arn:aws:redshift:us-east-1:{ACCOUNT}:dbuser:examplecluster/bob") in err["M"], err
    r = psql(p, "SELECT 1", user="bob", check=False)
    assert r.returncode == 2 and "AccessDenied" in r.stderr, r
    # The same process serves a user the policy allows.
    assert who(p, user="alice", dbname="alice")[0] == "IAM:alice"
    assert p.alive()


def test_unknown_cluster(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(iam={"cluster_identifier": "nosuchcluster"})
    err = login_error(p)
    assert err["C"] == "28000", err
    assert "ClusterNotFound" in err["M"] and "Cluster nosuchcluster not found." in err["M"], err
    r = psql(p, "SELECT 1", check=False)
    assert r.returncode == 2 and "ClusterNotFound" in r.stderr, r
    # Once the cluster exists, the same process logs clients in (a failure is not cached
    # for long, if at all).
    cluster = dict(iam_standin.world["clusters"]["examplecluster"])
    iam_standin.patch_world({"clusters": {"nosuchcluster": cluster}})
    wait_until(lambda: psql(p, "SELECT current_user", check=False).stdout.strip() ==
               "IAM:alice", 30, interval=0.5, what="a login once the cluster exists")


def test_rejected_signature(iam_proxy_factory, iam_standin):
    wrong = "WRONG" + secret_of(iam_standin.world, PROXY_KEY)[5:]
    p = iam_proxy_factory(env={"AWS_SECRET_ACCESS_KEY": wrong})
    p.secrets.add(wrong)
    err = login_error(p)
    assert err["C"] == "28000", err
    assert "SignatureDoesNotMatch" in err["M"], err
    # Nothing botocore computed (canonical request, string to sign) is passed on verbatim
    # beyond AWS's message, and never the secret itself.
    assert wrong not in err["M"]
    assert p.alive()
    # The key's secret changes on the AWS side to what rsproxy has: the same process works.
    iam_standin.patch_world({"principals": {PROXY_KEY: {"secret": wrong}}})
    wait_until(lambda: psql(p, "SELECT current_user", check=False).stdout.strip() ==
               "IAM:alice", 30, interval=0.5, what="a login once the secret matches")


def test_aws_unreachable_then_back(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(proxy={"log_level": "info"})
    assert who(p, dbname="alice")[0] == "IAM:alice"  # a kept-alive connection to "AWS"
    p.relay.close()  # connection refused from now on, and the open connection is cut
    t0 = time.monotonic()
    err = login_error(p)
    assert err["C"] == "08001", err
    assert "IAM" in err["M"], err
    assert time.monotonic() - t0 < 60
    r = psql(p, "SELECT 1", dbname="dev", check=False)
    assert r.returncode == 2 and "could not get IAM database credentials" in r.stderr, r
    assert p.alive()
    p.relay.reopen()
    wait_until(lambda: psql(p, "SELECT current_user", dbname="dev",
                            check=False).stdout.strip() == "IAM:alice",
               60, interval=0.5, what="a login once AWS is back")


def test_aws_stopped(iam_proxy_factory, aws_standin_factory, iam_world):
    standin = aws_standin_factory(iam_world)
    p = iam_proxy_factory(standin=standin, relay=False)
    assert who(p)[0] == "IAM:alice"
    p.secrets |= harvest_secrets(standin)
    assert standin.stop() == 0
    # Cached credentials still log clients in while AWS is gone...
    assert who(p)[0] == "IAM:alice"
    # ...but a cache key never fetched needs AWS: 08001.
    err = login_error(p, dbname="alice")
    assert err["C"] == "08001", err
    assert p.alive()
    assert who(p)[0] == "IAM:alice"


# ----------------------------------------------------------------------------------------------
# Secrets stay out of the log


def test_trace_log_holds_no_secret(iam_proxy_factory, iam_standin):
    # Short lifetimes make rsproxy refresh while the test runs, so refreshes are logged too.
    iam_standin.patch_world({"lifetimes": {"db": 12, "sts": 900}})
    # Environment keys against a provisioned cluster; a profile with assume-role (temporary
    # keys with session tokens) against Serverless.
    a = iam_proxy_factory(proxy={"log_level": "trace"}, iam={"refresh_margin_seconds": "1"})
    b = iam_proxy_factory(proxy={"log_level": "trace"}, aws_keys=False, start=False,
                          env={"AWS_PROFILE": "app"},
                          iam={"cluster_identifier": "", "workgroup_name": "wg1",
                               "refresh_margin_seconds": "1"})
    write_profile_files(b, iam_standin)
    b.start()
    assert who(a)[0] == "IAM:alice"
    assert who(b)[0] == "IAMR:rsproxy-app"
    for p in (a, b):
        wait_until(lambda: len(relay_db_passwords(p.relay)) >= 2, 30, interval=0.2,
                   what="a credential refresh")
    assert who(a)[0] == "IAM:alice"
    assert who(b)[0] == "IAMR:rsproxy-app"
    err = login_error(a, user="bad user")  # refused by AWS: its message goes to the log
    assert err["C"] == "28000", err
    # Every secret the stand-in knows of, gathered while it still runs.
    secrets = {p.name: harvest_secrets(p.standin, p.relay) for p in (a, b)}
    a.stop()
    b.stop()

    signer = used_keys(iam_standin, "GetCredentials") - {PROXY_KEY}
    assert signer, "b must have signed with the assumed role's temporary key"
    tokens = {iam_standin.key(k)["session_token"] for k in signer}
    assert None not in tokens and tokens <= secrets[b.name]
    for p in (a, b):
        log = p.log_text()
        assert len(relay_db_passwords(p.relay)) >= 2, "the test must have seen passwords"
        assert re.search(r" trace .*IAM", log), "not a trace log of IAM logins"
        leaked = [s[:4] + "..." for s in secrets[p.name] if len(s) >= 8 and s in log]
        assert not leaked, f"{p.name}: secrets in the trace log: {leaked}"
        assert not PASSWORD_SHAPE.search(log), \
            f"{p.name}: something shaped like a database password is logged"


# ----------------------------------------------------------------------------------------------
# rsproxy --check in IAM mode


def test_check_ok(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(start=False, iam={"db_user": "alice"}, upstream={"dbname": "dev"})
    r = p.run_check()
    assert r.returncode == 0, r.stdout
    out = r.stdout
    assert "credentials from environment" in out, out
    assert "redshift:GetClusterCredentials" in out, out
    assert "database user IAM:alice" in out, out
    assert 'logged in as user "IAM:alice"' in out, out
    assert "verified" in out, out
    assert gcc_calls(iam_standin) == 1
    for s in (secret_of(iam_standin.world, PROXY_KEY), *relay_db_passwords(p.relay)):
        assert s not in out


def test_check_without_dbname_uses_the_users_database(iam_proxy_factory, iam_standin, iam_pg):
    # No upstream.dbname: like psql -U alice, the check logs in to database alice (the one it
    # asked AWS for), not to a database named after the IAM:-prefixed user.
    p = iam_proxy_factory(start=False, iam={"db_user": "alice"})
    mark = len(iam_pg.log_text())
    r = p.run_check()
    assert r.returncode == 0, r.stdout
    assert 'logged in as user "IAM:alice"' in r.stdout, r.stdout
    refused = [l for l in iam_pg.log_text()[mark:].splitlines() if "FATAL" in l]
    assert not refused, f"PostgreSQL refused the check's login: {refused}"


def test_check_fails_when_the_login_fails_after_authentication(iam_proxy_factory, iam_standin):
    # PostgreSQL (and Redshift) report a missing database, or a role that may not connect,
    # after AuthenticationOk: the check must wait for ReadyForQuery before it says ok.
    p = iam_proxy_factory(start=False, iam={"db_user": "alice"},
                          upstream={"dbname": "nosuchdb"})
    r = p.run_check()
    assert r.returncode == 1, r.stdout
    assert 'database "nosuchdb" does not exist' in r.stdout, r.stdout
    assert "result ok" not in r.stdout, r.stdout


def test_check_access_denied(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(start=False, akid=NOPERMS_KEY, iam={"db_user": "alice"},
                          upstream={"dbname": "dev"})
    r = p.run_check()
    assert r.returncode == 1, r.stdout
    assert "AccessDenied" in r.stdout and "is not authorized to perform" in r.stdout, r.stdout
    assert "FAILED" in r.stdout


def test_check_unknown_cluster(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(start=False, iam={"db_user": "alice",
                                            "cluster_identifier": "nosuchcluster"},
                          upstream={"dbname": "dev"})
    r = p.run_check()
    assert r.returncode == 1, r.stdout
    assert "ClusterNotFound" in r.stdout and "nosuchcluster" in r.stdout, r.stdout
    assert "FAILED" in r.stdout


def test_check_without_aws_credentials(iam_proxy_factory, iam_standin):
    p = iam_proxy_factory(start=False, aws_keys=False, iam={"db_user": "alice"},
                          upstream={"dbname": "dev"})
    r = p.run_check()
    assert r.returncode == 1, r.stdout
    assert "no AWS credentials" in r.stdout, r.stdout
    # Plain words only: no line about an API endpoint that was never called.
    assert " at ?" not in r.stdout, r.stdout
    assert iam_standin.calls() == {}
