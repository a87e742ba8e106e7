"""rsproxy's IAM machinery against the AWS stand-in, without the proxy: every credential
provider of the chain, SigV4 (verified by botocore inside the stand-in), the Redshift and
Serverless APIs, retries and error codes.

Each test writes an rsproxy config and an environment, runs tests/iam_driver (which fetches
credentials once exactly as rsproxy does, through auth_iam.h) and checks what it printed and
what the stand-in saw. The driver prints the DbUser, never the password; no secret may appear
in its output.
"""

import json
import os
import stat
import subprocess

import pytest

from fixtures_aws import NOPERMS_KEY, PROXY_KEY, secret_of

ACCOUNT = "123456789012"
APP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/rsproxy-app"


def _driver():
    path = os.environ.get("RSPROXY_IAM_DRIVER")
    if not path:
        build = os.environ.get("RSPROXY_BUILD_DIR")
        if not build:
            here = os.path.dirname(os.path.abspath(__file__))
            build = os.path.join(here, "..", "..", "build")
        path = os.path.join(build, "tests", "iam_driver")
    if not os.access(path, os.X_OK):
        pytest.fail(f"iam_driver not built at {path} (cmake --build <dir> --target iam_driver)")
    return path


@pytest.fixture
def iam_world(aws_world):
    return aws_world


@pytest.fixture
def standin(aws_standin_factory, iam_world):
    return aws_standin_factory(iam_world)


class Run:
    def __init__(self, proc, secrets):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        text = self.out + self.err
        for s in secrets:
            assert s not in text, "a secret appears in the driver's output"
        self.fields = {}
        for line in self.out.splitlines():
            words = line.split(" ", 1)
            if words[0] == "INFO" and len(words) == 2 and "=" in words[1]:
                k, v = words[1].split("=", 1)
                self.fields[k] = v
                continue
            if words[0] in ("OK", "ERROR", "KEYS") and len(words) == 2:
                rest = words[1]
                # "message=" is last and may contain spaces.
                if "message=" in rest:
                    rest, msg = rest.split("message=", 1)
                    self.fields["message"] = msg
                for kv in rest.split():
                    if "=" in kv:
                        k, v = kv.split("=", 1)
                        self.fields[k] = v
                self.fields["status"] = words[0] if words[0] in ("OK", "ERROR") else \
                    self.fields.get("status")

    def __getitem__(self, k):
        return self.fields[k]

    def __repr__(self):
        return f"<exit {self.code}: {self.out!r} {self.err[-2000:]!r}>"


def run_driver(tmp_path, standin, env_extra=None, config_extra="", iam="", upstream=None,
               args=(), with_keys=True, akid=PROXY_KEY, secret=None, timeout=60):
    """Writes the config, builds the environment (stand-in endpoint, no real AWS files, no
    instance metadata unless the test asks) and runs the driver."""
    if upstream is None:
        upstream = "host = localhost\nport = 5439\n"
    cfg = tmp_path / "rsproxy.ini"
    cfg.write_text("[upstream]\nauth = iam\n" + upstream + "[iam]\n" +
                   (iam or "cluster_identifier = examplecluster\n") + config_extra)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    env.update(standin.env(akid=akid, with_keys=with_keys))
    if with_keys and secret is not None:
        env["AWS_SECRET_ACCESS_KEY"] = secret
    env["AWS_CONFIG_FILE"] = str(tmp_path / "aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "aws-credentials")
    env.update(env_extra or {})
    env = {k: v for k, v in env.items() if v is not None}
    proc = subprocess.run([_driver(), "-c", str(cfg), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    secrets = [p["secret"] for p in standin.world["principals"].values()]
    return Run(proc, secrets)


def gcc_calls(standin):
    return standin.calls().get("GetClusterCredentials", 0)


# ----------------------------------------------------------------------------------------------
# Providers


def test_environment(tmp_path, standin):
    r = run_driver(tmp_path, standin, args=("--check",))
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert r["host"] == "localhost"
    assert int(r["expires_in"]) > 800
    assert int(r["password_len"]) > 10
    assert r["provider"] == "environment"
    assert r["api"] == "redshift:GetClusterCredentials"
    assert gcc_calls(standin) == 1


def test_profile_assume_role(tmp_path, standin):
    (tmp_path / "aws-credentials").write_text(
        f"[base]\naws_access_key_id = {PROXY_KEY}\n"
        f"aws_secret_access_key = {secret_of(standin.world, PROXY_KEY)}\n")
    (tmp_path / "aws-config").write_text(
        f"[profile app]\nrole_arn = {APP_ROLE}\nsource_profile = base\n"
        "role_session_name = rsproxy-it\n")
    r = run_driver(tmp_path, standin, with_keys=False, env_extra={"AWS_PROFILE": "app"},
                   args=("--check",))
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert r["profile"] == "app"
    calls = standin.calls()
    assert calls.get("AssumeRole") == 1
    assert calls.get("GetClusterCredentials") == 1
    # GetClusterCredentials was signed with the assumed role's temporary key.
    by_key = standin.calls(by_key=True)
    assert not any(k == PROXY_KEY and "GetClusterCredentials" in v
                   for k, v in by_key.items()), by_key


def test_credential_process(tmp_path, standin):
    script = tmp_path / "creds tool.sh"
    script.write_text("#!/bin/sh\n"
                      f"printf '{{\"Version\": 1, \"AccessKeyId\": \"%s\", "
                      f"\"SecretAccessKey\": \"%s\"}}' '{PROXY_KEY}' "
                      f"'{secret_of(standin.world, PROXY_KEY)}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "aws-config").write_text(f"[default]\ncredential_process = \"{script}\"\n")
    r = run_driver(tmp_path, standin, with_keys=False, args=("--check",))
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert "credential_process" in r["provider"]


def test_web_identity(tmp_path, standin):
    token = tmp_path / "token"
    token.write_text(standin.world["web_identity"]["issuer_tokens"][0])
    r = run_driver(tmp_path, standin, with_keys=False, args=("--check",), env_extra={
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": APP_ROLE,
        "AWS_ROLE_SESSION_NAME": "pod-1"})
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert "web identity" in r["provider"]
    assert standin.calls().get("AssumeRoleWithWebIdentity") == 1

    # A token the issuer does not know is refused by STS, and the code comes back.
    token.write_text("eyJ.not-a-known-token.sig")
    r = run_driver(tmp_path, standin, with_keys=False, env_extra={
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ROLE_ARN": APP_ROLE})
    assert r.code == 1, r
    assert r["aws_code"] in ("InvalidIdentityToken", "AccessDenied"), r


def test_container(tmp_path, standin):
    tok = standin.world["container"]["token"]
    tfile = tmp_path / "ctoken"
    tfile.write_text(tok)
    r = run_driver(tmp_path, standin, with_keys=False, args=("--check",), env_extra={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": standin.container_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tfile)})
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert r["provider"] == "container credentials"

    # The token from the environment works too; a wrong one is refused.
    r = run_driver(tmp_path, standin, with_keys=False, env_extra={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": standin.container_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": tok})
    assert r.code == 0, r
    r = run_driver(tmp_path, standin, with_keys=False, env_extra={
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": standin.container_uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-token"})
    assert r.code == 1, r
    assert "container credentials" in r["message"]


def test_imds_v2(tmp_path, standin):
    r = run_driver(tmp_path, standin, with_keys=False, args=("--check",), env_extra={
        "AWS_EC2_METADATA_DISABLED": None,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": standin.url})
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert r["provider"] == "EC2 instance metadata"


def test_imds_supplies_region(tmp_path, standin):
    r = run_driver(tmp_path, standin, with_keys=False, args=("--check",), env_extra={
        "AWS_EC2_METADATA_DISABLED": None, "AWS_REGION": None, "AWS_DEFAULT_REGION": None,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": standin.url})
    assert r.code == 0, r
    assert r["region"] == standin.region
    assert r["region_source"] == "instance metadata"


def test_proxy_keys(tmp_path, standin):
    r = run_driver(tmp_path, standin, args=("--keys",))
    assert r.code == 0, r
    assert r["access_key_id"] == PROXY_KEY
    assert r["session_token"] == "no"
    assert r["region"] == standin.region


# ----------------------------------------------------------------------------------------------
# APIs, retries and errors


def test_single_flight_in_one_process(tmp_path, standin):
    r = run_driver(tmp_path, standin, args=("--twice",))
    assert r.code == 0, r
    assert r.out.count("OK db_user=IAM:alice") == 2
    assert gcc_calls(standin) == 1


def test_throttling_retried_then_success(tmp_path, standin):
    standin.fault("GetClusterCredentials", "throttle", count=2)
    r = run_driver(tmp_path, standin)
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    assert gcc_calls(standin) == 3


def test_throttling_exhausted(tmp_path, standin):
    standin.fault("GetClusterCredentials", "throttle", count=10)
    r = run_driver(tmp_path, standin)
    assert r.code == 1, r
    assert r["aws_code"] == "Throttling"
    assert r["code"] == "AUTH_E_THROTTLED", r
    assert r["unreachable"] == "1"
    assert gcc_calls(standin) == 3


def test_access_denied(tmp_path, standin):
    r = run_driver(tmp_path, standin, akid=NOPERMS_KEY)
    assert r.code == 1, r
    assert r["aws_code"] == "AccessDenied"
    assert r["unreachable"] == "0"
    assert "not authorized" in r["message"]


def test_unknown_cluster(tmp_path, standin):
    r = run_driver(tmp_path, standin, iam="cluster_identifier = nosuchcluster\n")
    assert r.code == 1, r
    assert r["aws_code"] == "ClusterNotFound"
    assert r["unreachable"] == "0"


def test_rejected_signature(tmp_path, standin):
    r = run_driver(tmp_path, standin, secret="WRONG" + secret_of(standin.world, PROXY_KEY)[5:])
    assert r.code == 1, r
    assert r["aws_code"] == "SignatureDoesNotMatch"
    assert r["unreachable"] == "0"
    assert gcc_calls(standin) <= 1  # a wrong secret is not mistaken for clock skew


def test_server_errors_retried(tmp_path, standin):
    standin.fault("GetClusterCredentials", "unavailable", count=1)
    r = run_driver(tmp_path, standin)
    assert r.code == 0, r
    assert gcc_calls(standin) == 2


def test_garbage_answer(tmp_path, standin):
    standin.fault("GetClusterCredentials", "garbage", count=1)
    r = run_driver(tmp_path, standin)
    assert r.code == 1, r
    assert r["code"] == "AUTH_E_PARSE", r


def test_unreachable(tmp_path, standin):
    r = run_driver(tmp_path, standin, env_extra={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    assert r.code == 1, r
    assert r["unreachable"] == "1"
    assert r["aws_code"] == "-"


def test_lowercase_user_and_groups(tmp_path, standin):
    r = run_driver(tmp_path, standin, args=("--user", "ALICE"),
                   config_extra="db_groups = Analysts\n")
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"


def test_auto_create(tmp_path, standin):
    r = run_driver(tmp_path, standin, args=("--user", "newbie"),
                   config_extra="auto_create = true\n")
    assert r.code == 0, r
    assert r["db_user"].startswith("IAMA:newbie")


def test_provisioned_endpoint_discovery(tmp_path, standin):
    r = run_driver(tmp_path, standin, upstream="", args=("--check",))
    assert r.code == 0, r
    cluster = standin.world["clusters"]["examplecluster"]["endpoint"]
    assert r["host"] == cluster["Address"]
    assert int(r["port"]) == cluster["Port"]
    assert r["discovered"] == "1"
    assert standin.calls().get("DescribeClusters") == 1


def test_serverless_with_endpoint_discovery(tmp_path, standin):
    r = run_driver(tmp_path, standin, upstream="", iam="workgroup_name = wg1\n",
                   args=("--check",))
    assert r.code == 0, r
    wg = standin.world["workgroups"]["wg1"]["endpoint"]
    assert r["db_user"] == "IAM:rsproxy"
    assert r["host"] == wg["address"]
    assert int(r["port"]) == wg["port"]
    assert r["api"] == "redshift-serverless:GetCredentials"
    calls = standin.calls()
    assert calls.get("GetWorkgroup") == 1
    assert calls.get("GetCredentials") == 1


def test_serverless_unknown_workgroup(tmp_path, standin):
    r = run_driver(tmp_path, standin, iam="workgroup_name = nosuchwg\n")
    assert r.code == 1, r
    assert r["aws_code"] == "ResourceNotFoundException"


def test_https_needs_the_ca_bundle(tmp_path, aws_standin_factory, iam_world):
    s = aws_standin_factory(iam_world, tls=True)
    r = run_driver(tmp_path, s)
    assert r.code == 0, r
    assert r["db_user"] == "IAM:alice"
    # Without AWS_CA_BUNDLE the stand-in's certificate is not trusted: verification stays on.
    r = run_driver(tmp_path, s, env_extra={"AWS_CA_BUNDLE": None})
    assert r.code == 1, r
    assert r["unreachable"] == "1"
