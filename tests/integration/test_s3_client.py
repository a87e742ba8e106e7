"""rsproxy's s3/ module against the S3 stand-in, without the proxy: every operation the COPY
emulation needs, signed by our SigV4 code and verified inside the stand-in by
@smithy/signature-v4, with keys the AWS stand-in owns (static principals and temporary keys it
mints).

Each test writes an rsproxy config, runs tests/s3_driver (one S3 operation exactly as the proxy
performs it, through s3_client_new_from_cfg) and checks what it printed, what the stand-in saw
and what boto3 reads back. No secret may appear in the driver's output.
"""

import concurrent.futures
import hashlib
import os
import subprocess

import botocore.exceptions
import pytest

from fixtures_aws import NOPERMS_KEY, PROXY_KEY, SCOPED_KEY, make_world, secret_of

BUCKET = "rsproxy-test"
OTHER = "rsproxy-other"
EU_BUCKET = "rsproxy-eu"
ROLE = "arn:aws:iam::123456789012:role/RedshiftCopy"
SPARK_WARN = ("The S3 bucket rsproxy-test does not have an object lifecycle configuration to "
              "ensure cleanup of temporary files. Consider configuring `tempdir` to point to a "
              "bucket with an object lifecycle policy that automatically deletes files after an "
              "expiration period. For more information, see "
              "https://docs.aws.amazon.com/AmazonS3/latest/dev/object-lifecycle-mgmt.html")


def _driver():
    path = os.environ.get("RSPROXY_S3_DRIVER")
    if not path:
        build = os.environ.get("RSPROXY_BUILD_DIR")
        if not build:
            here = os.path.dirname(os.path.abspath(__file__))
            build = os.path.join(here, "..", "..", "build")
        path = os.path.join(build, "tests", "s3_driver")
    if not os.access(path, os.X_OK):
        pytest.fail(f"s3_driver not built at {path} (cmake --build <dir> --target s3_driver)")
    return path


@pytest.fixture
def stack(aws_standin_factory, s3_standin_factory):
    world = make_world(None, buckets=[BUCKET, OTHER, {"name": EU_BUCKET, "region": "eu-west-1"}])
    aws = aws_standin_factory(world=world)
    s3 = s3_standin_factory(aws=aws)
    return aws, s3


class Run:
    def __init__(self, proc, secrets):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        for s in secrets:
            assert s not in self.out + self.err, "a secret appears in the driver's output"
        self.keys = []
        self.fields = {}
        for line in self.out.splitlines():
            word, _, rest = line.partition(" ")
            if word == "KEY":
                self.keys.append(bytes.fromhex(rest).decode("utf-8", "surrogateescape"))
            elif word in ("OK", "ERROR"):
                self.fields = {"status": word}
                if "message=" in rest:
                    rest, msg = rest.split("message=", 1)
                    self.fields["message"] = msg
                for kv in rest.split():
                    k, eq, v = kv.partition("=")
                    self.fields[k] = v if eq else True

    def __getitem__(self, k):
        return self.fields[k]

    def get(self, k, default=None):
        return self.fields.get(k, default)

    def __repr__(self):
        return f"<exit {self.code}: {self.out[-3000:]!r} {self.err[-2000:]!r}>"


def run_driver(tmp_path, aws, s3, *args, tempdir=None, tempdir_region=None, akid=PROXY_KEY,
               secret=None, token=None, env_extra=None, opts=(), endpoint=None, timeout=120):
    """The driver with an rsproxy config whose [s3] tempdir is `tempdir` and an environment
    whose provider chain holds `akid` (and `token`)."""
    tempdir = tempdir or f"s3://{BUCKET}/tmp/"
    cfg = tmp_path / "rsproxy.ini"
    text = ("[upstream]\nauth = iam\nhost = localhost\n[iam]\ncluster_identifier = "
            f"examplecluster\n[s3]\ntempdir = {tempdir}\n")
    if tempdir_region:
        text += f"tempdir_region = {tempdir_region}\n"
    cfg.write_text(text)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "AWS_ENDPOINT_URL": aws.url, "AWS_ENDPOINT_URL_S3": endpoint or s3.endpoint,
           "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
           "AWS_ACCESS_KEY_ID": akid,
           "AWS_SECRET_ACCESS_KEY": secret if secret is not None else
           aws.world["principals"][akid]["secret"]}
    if token:
        env["AWS_SESSION_TOKEN"] = token
    env.update(env_extra or {})
    proc = subprocess.run([_driver(), "-c", str(cfg), *opts, *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    secrets = [p["secret"] for p in aws.world["principals"].values()]
    secrets += [v for v in (secret, token) if v]
    return Run(proc, secrets)


def proxy_boto(aws, s3):
    return s3.client(PROXY_KEY, secret_of(aws.world, PROXY_KEY))


def ok(r):
    assert r.code == 0 and r.get("status") == "OK", r
    return r


# ----------------------------------------------------------------------------------------------
# Objects


def test_put_get_head_delete(tmp_path, stack):
    aws, s3 = stack
    src = tmp_path / "in.csv"
    src.write_bytes(b"id,name\n1,alice\n2,bob\n")
    key = "tmp/dir/a b+c=d~é.csv"
    r = ok(run_driver(tmp_path, aws, s3, "put", BUCKET, key, str(src)))
    c = proxy_boto(aws, s3)
    got = c.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == src.read_bytes()
    assert r["etag"] == got["ETag"]
    head = ok(run_driver(tmp_path, aws, s3, "head", BUCKET, key))
    assert int(head["size"]) == src.stat().st_size
    assert head["content_type"] == "application/octet-stream"
    out = tmp_path / "out.csv"
    g = ok(run_driver(tmp_path, aws, s3, "get", BUCKET, key, str(out)))
    assert out.read_bytes() == src.read_bytes() and g["chunks"] == "1"
    ok(run_driver(tmp_path, aws, s3, "delete", BUCKET, key))
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.head_object(Bucket=BUCKET, Key=key)
    assert ei.value.response["Error"]["Code"] == "404"
    miss = run_driver(tmp_path, aws, s3, "head", BUCKET, key)
    assert miss.code == 1 and miss["code"] == "S3_E_HTTP" and miss["status"] == "404", miss
    # (A plain key: s3rver writes non-ASCII keys in its error documents as HTML entities such
    # as &eacute;, which no XML parser accepts; the status-derived code is then all we get.)
    miss = run_driver(tmp_path, aws, s3, "get", BUCKET, "tmp/dir/missing.csv", str(out))
    assert (miss["code"], miss["status"], miss["s3_code"]) == ("S3_E_HTTP", "404", "NoSuchKey")
    assert miss["message"] == "The specified key does not exist."
    calls = s3.calls()
    assert calls["PutObject"] == 1 and calls["HeadObject"] >= 2 and calls["DeleteObject"] == 1


def test_get_in_chunks_with_backpressure(tmp_path, stack):
    aws, s3 = stack
    data = os.urandom(3 * 1024 * 1024 + 77)
    proxy_boto(aws, s3).put_object(Bucket=BUCKET, Key="unload/0000_part_00", Body=data)
    out = tmp_path / "out.bin"
    r = ok(run_driver(tmp_path, aws, s3, "get", BUCKET, "unload/0000_part_00", str(out),
                      opts=("--chunk", "65536", "--pause")))
    assert out.read_bytes() == data
    assert int(r["bytes"]) == len(data)
    assert int(r["chunks"]) == (len(data) + 65535) // 65536
    assert s3.calls()["GetObject"] == int(r["chunks"])


def test_get_empty_object(tmp_path, stack):
    """S3 answers a range request on an empty object with 416 InvalidRange; the client then
    fetches it plainly and delivers no data. (UNLOAD writes empty part files for empty slices.)
    The stand-in's front answers 416 as S3 does; s3rver 3.7.1 alone would answer 206 with a
    Content-Length of 1 and close the connection."""
    aws, s3 = stack
    proxy_boto(aws, s3).put_object(Bucket=BUCKET, Key="unload/empty", Body=b"")
    out = tmp_path / "out.bin"
    r = ok(run_driver(tmp_path, aws, s3, "get", BUCKET, "unload/empty", str(out)))
    assert r["bytes"] == "0" and r["chunks"] == "0" and out.read_bytes() == b""
    assert s3.calls()["GetObject"] == 2


def test_virtual_hosted_addressing(tmp_path, stack):
    """The stand-in resolves the bucket from Host "<bucket>.localhost:<port>" and checks the
    signature over that Host; a path-style request for the same key would name another object
    (the bucket would be taken as the first path segment)."""
    aws, s3 = stack
    src = tmp_path / "v.txt"
    src.write_bytes(b"virtual")
    ep = f"http://localhost:{s3.port}"
    ok(run_driver(tmp_path, aws, s3, "put", BUCKET, "vhost/k.txt", str(src), endpoint=ep,
                  opts=("--virtual",)))
    assert proxy_boto(aws, s3).get_object(Bucket=BUCKET, Key="vhost/k.txt")["Body"].read() == \
        b"virtual"
    out = tmp_path / "o.txt"
    ok(run_driver(tmp_path, aws, s3, "get", BUCKET, "vhost/k.txt", str(out), endpoint=ep,
                  opts=("--virtual",)))
    assert out.read_bytes() == b"virtual"


def test_list_pages_over_1000_keys(tmp_path, stack):
    aws, s3 = stack
    c = proxy_boto(aws, s3)
    special = ["list/with space", "list/plus+sign", "list/ütf-8 ✓", "list/amp&lt<gt>",
               "list/tilde~and%percent"]
    keys = [f"list/k{i:05d}" for i in range(1234)] + special
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=BUCKET, Key=k, Body=b"x"), keys))
    c.put_object(Bucket=BUCKET, Key="listing-neighbour", Body=b"x")
    r = ok(run_driver(tmp_path, aws, s3, "list", BUCKET, "list/"))
    assert int(r["keys"]) == len(keys)
    assert int(r["pages"]) == 2
    assert sorted(r.keys) == sorted(keys)
    r = ok(run_driver(tmp_path, aws, s3, "list", BUCKET, "list/k0000", "3"))
    assert r.keys == [f"list/k0000{i}" for i in range(10)] and r["pages"] == "4"


def test_multipart_upload_byte_for_byte(tmp_path, stack):
    aws, s3 = stack
    data = os.urandom(12 * 1024 * 1024 + 123)
    src = tmp_path / "big.csv"
    src.write_bytes(data)
    r = ok(run_driver(tmp_path, aws, s3, "upload", BUCKET, "tmp/stage/big.csv", str(src)))
    assert r["parts"] == "3" and int(r["bytes"]) == len(data)
    calls = s3.calls()
    assert calls["CreateMultipartUpload"] == 1 and calls["UploadPart"] == 3
    assert calls["CompleteMultipartUpload"] == 1
    got = proxy_boto(aws, s3).get_object(Bucket=BUCKET, Key="tmp/stage/big.csv")
    body = got["Body"].read()
    assert len(body) == len(data)
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    assert got["ETag"] == r["etag"]
    assert got["ContentType"] == "text/csv"
    # Our GET of the same object, in 5 MiB ranges, gives the same bytes.
    out = tmp_path / "back.csv"
    ok(run_driver(tmp_path, aws, s3, "get", BUCKET, "tmp/stage/big.csv", str(out),
                  opts=("--chunk", str(5 * 1024 * 1024))))
    assert out.read_bytes() == data


def test_multipart_abort_leaves_nothing(tmp_path, stack):
    aws, s3 = stack
    src = tmp_path / "part.csv"
    src.write_bytes(os.urandom(6 * 1024 * 1024))
    ok(run_driver(tmp_path, aws, s3, "upload-abort", BUCKET, "tmp/stage/aborted.csv", str(src)))
    c = proxy_boto(aws, s3)
    assert "Uploads" not in c.list_multipart_uploads(Bucket=BUCKET, Prefix="tmp/stage/")
    assert "Contents" not in c.list_objects_v2(Bucket=BUCKET, Prefix="tmp/stage/aborted")
    assert s3.calls()["AbortMultipartUpload"] == 1


def test_delete_objects_and_staging_cleanup(tmp_path, stack):
    aws, s3 = stack
    c = proxy_boto(aws, s3)
    for k in ("tmp/s1/a", "tmp/s1/b c", "tmp/s1/d&e", "tmp/s10/neighbour", "tmp/keep"):
        c.put_object(Bucket=BUCKET, Key=k, Body=b"1")
    r = ok(run_driver(tmp_path, aws, s3, "delete-objects", BUCKET, "tmp/s1/a", "tmp/s1/d&e",
                      "tmp/absent"))
    assert r["failed"] == "0"
    assert s3.calls()["DeleteObjects"] == 1
    left = [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="tmp/")["Contents"]]
    assert left == ["tmp/keep", "tmp/s1/b c", "tmp/s10/neighbour"]
    # A prefix walk deletes its own objects only ("tmp/s1/" never matches "tmp/s10/...").
    c.put_object(Bucket=BUCKET, Key="tmp/s1/sub/deep", Body=b"1")
    r = ok(run_driver(tmp_path, aws, s3, "delete-prefix", BUCKET, "tmp/s1/"))
    assert r["deleted"] == "2"
    left = [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="tmp/")["Contents"]]
    assert left == ["tmp/keep", "tmp/s10/neighbour"]
    # A staging area: unique prefix under tempdir, filled, then cleaned up.
    r = ok(run_driver(tmp_path, aws, s3, "stage", "7"))
    assert r["deleted"] == "7"
    staged = [line for line in r.out.splitlines() if line.startswith("STAGED ")][0]
    prefix = r["prefix"]
    assert prefix.startswith("tmp/") and len(prefix) == len("tmp/") + 37
    assert staged.endswith(f"url=s3://{BUCKET}/{prefix}")
    assert "Contents" not in c.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    assert [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="tmp/")["Contents"]] == \
        ["tmp/keep", "tmp/s10/neighbour"]


def test_staging_cleanup_over_many_pages(tmp_path, stack):
    aws, s3 = stack
    c = proxy_boto(aws, s3)
    keys = [f"tmp/big-stage/f{i:05d}" for i in range(2100)]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=BUCKET, Key=k, Body=b"x"), keys))
    r = ok(run_driver(tmp_path, aws, s3, "delete-prefix", BUCKET, "tmp/big-stage/"))
    assert r["deleted"] == str(len(keys))
    assert s3.calls()["DeleteObjects"] == 3
    assert "Contents" not in c.list_objects_v2(Bucket=BUCKET, Prefix="tmp/big-stage/")


# ----------------------------------------------------------------------------------------------
# The tempdir lifecycle check


def test_lifecycle_not_covered_without_configuration(tmp_path, stack):
    aws, s3 = stack
    r = ok(run_driver(tmp_path, aws, s3, "lifecycle"))
    assert r["verdict"] == "NOT_COVERED"
    assert r["message"] == SPARK_WARN
    assert s3.calls()["GetBucketLifecycleConfiguration"] == 1
    raw = ok(run_driver(tmp_path, aws, s3, "lifecycle-raw", BUCKET))
    assert raw.get("none") is True


@pytest.mark.parametrize("rule,covered", [
    ({"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled"}, True),
    ({"ID": "tmp-noslash", "Filter": {"Prefix": "tmp"}, "Status": "Enabled"}, True),
    ({"ID": "all", "Filter": {}, "Status": "Enabled"}, True),
    ({"ID": "empty-prefix", "Filter": {"Prefix": ""}, "Status": "Enabled"}, True),
    ({"ID": "and", "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "k", "Value": "v"}]}},
      "Status": "Enabled"}, True),
    ({"ID": "tag-only", "Filter": {"Tag": {"Key": "k", "Value": "v"}}, "Status": "Enabled"}, True),
    ({"ID": "legacy", "Prefix": "tmp/", "Status": "Enabled"}, True),
    ({"ID": "disabled", "Filter": {"Prefix": "tmp/"}, "Status": "Disabled"}, False),
    ({"ID": "other", "Filter": {"Prefix": "logs/"}, "Status": "Enabled"}, False),
    ({"ID": "deeper", "Filter": {"Prefix": "tmp/x"}, "Status": "Enabled"}, False),
    ({"ID": "and-other", "Filter": {"And": {"Prefix": "logs/",
                                            "Tags": [{"Key": "k", "Value": "v"}]}},
      "Status": "Enabled"}, False),
])
def test_lifecycle_rules(tmp_path, stack, rule, covered):
    aws, s3 = stack
    rule = dict(rule, Expiration={"Days": 1})
    proxy_boto(aws, s3).put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration={"Rules": [rule]})
    r = ok(run_driver(tmp_path, aws, s3, "lifecycle", tempdir=f"s3://{BUCKET}/tmp"))
    if covered:
        assert r["verdict"] == "COVERED" and r["rule"] == rule["ID"], r
        assert r["message"] == (f"The S3 bucket {BUCKET} has lifecycle rule '{rule['ID']}' "
                                f"covering s3://{BUCKET}/tmp")
    else:
        assert r["verdict"] == "NOT_COVERED", r
        assert r["message"] == SPARK_WARN


def test_lifecycle_unreadable(tmp_path, stack):
    aws, s3 = stack
    # The scoped key has no S3 permission at all: the check cannot tell, and says why.
    r = ok(run_driver(tmp_path, aws, s3, "lifecycle", akid=SCOPED_KEY))
    assert r["verdict"] == "UNKNOWN" and r["s3_code"] == "AccessDenied"
    assert r["message"] == ("An error occurred while trying to read the S3 bucket lifecycle "
                            "configuration: Access Denied (AccessDenied)")


# ----------------------------------------------------------------------------------------------
# Credentials and their failures


def test_wrong_secret_is_signature_does_not_match(tmp_path, stack):
    aws, s3 = stack
    bad = "wrongSecretKey000000000000000000000000001"
    src = tmp_path / "x"
    src.write_bytes(b"x")
    # Keys embedded in the tempdir URL are the ones used for S3 (spark-redshift's precedence),
    # here with a wrong secret while the chain holds the right one.
    r = run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/x", str(src),
                   tempdir=f"s3a://{PROXY_KEY}:{bad}@{BUCKET}/tmp/", env_extra={})
    assert bad not in r.out + r.err
    assert r.code == 1, r
    assert (r["code"], r["status"], r["s3_code"]) == ("S3_E_HTTP", "403", "SignatureDoesNotMatch")
    assert r["message"].startswith("The request signature we calculated does not match")
    assert r["unreachable"] == "0" and r["request_id"] != "-"
    # Not retried: a wrong secret is not clock skew.
    assert s3.calls()["PutObject"] == 1


def test_embedded_keys_win_over_the_chain(tmp_path, stack):
    aws, s3 = stack
    src = tmp_path / "x"
    src.write_bytes(b"embedded")
    # The chain holds a key without S3 permission; the URL's keys are the proxy's.
    url = f"s3a://{PROXY_KEY}:{secret_of(aws.world, PROXY_KEY)}@{BUCKET}/tmp/"
    ok(run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/embedded", str(src), tempdir=url,
                  akid=NOPERMS_KEY))
    r = run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/embedded", str(src), akid=NOPERMS_KEY)
    assert (r["s3_code"], r["status"]) == ("AccessDenied", "403"), r


def test_key_without_permission_is_access_denied(tmp_path, stack):
    aws, s3 = stack
    src = tmp_path / "x"
    src.write_bytes(b"x")
    r = run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/x", str(src), akid=NOPERMS_KEY)
    assert r.code == 1
    assert (r["code"], r["status"], r["s3_code"]) == ("S3_E_HTTP", "403", "AccessDenied")
    assert r["message"] == "Access Denied"
    r = run_driver(tmp_path, aws, s3, "list", BUCKET, "tmp/", akid=NOPERMS_KEY)
    assert r["s3_code"] == "AccessDenied", r


def test_temporary_keys_with_session_token(tmp_path, stack):
    aws, s3 = stack
    keys = aws.assume_for_redshift("examplecluster", ROLE)
    akid, secret, token = keys["access_key_id"], keys["secret_access_key"], keys["session_token"]
    env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret}
    src = tmp_path / "t"
    src.write_bytes(b"temporary")
    ok(run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/temp.txt", str(src), akid=PROXY_KEY,
                  secret=secret, token=token, env_extra=env))
    assert proxy_boto(aws, s3).get_object(Bucket=BUCKET, Key="tmp/temp.txt")["Body"].read() == \
        b"temporary"
    out = tmp_path / "o"
    ok(run_driver(tmp_path, aws, s3, "get", BUCKET, "tmp/temp.txt", str(out), secret=secret,
                  token=token, env_extra=env))
    assert out.read_bytes() == b"temporary"
    # The role may use rsproxy-test only.
    r = run_driver(tmp_path, aws, s3, "put", OTHER, "tmp/temp.txt", str(src), secret=secret,
                   token=token, env_extra=env)
    assert (r["status"], r["s3_code"]) == ("403", "AccessDenied"), r
    # A wrong token is refused by S3 with its own code.
    r = run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/temp.txt", str(src), secret=secret,
                   token=token[:-4] + "AAAA", env_extra=env)
    assert (r["status"], r["s3_code"]) == ("400", "InvalidToken"), r


# ----------------------------------------------------------------------------------------------
# Retries, regions


def test_retries_on_slowdown_and_internal_errors(tmp_path, stack):
    aws, s3 = stack
    src = tmp_path / "x"
    src.write_bytes(b"retry")
    s3.fault("PutObject", "error", count=2, code="SlowDown", status=503)
    ok(run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/retry", str(src),
                  opts=("--fast-retry",)))
    assert s3.calls()["PutObject"] == 3
    s3.reset()
    s3.fault("HeadObject", "error", count=10, code="InternalError", status=500)
    r = run_driver(tmp_path, aws, s3, "head", BUCKET, "tmp/retry", opts=("--fast-retry",))
    assert (r["code"], r["status"], r["unreachable"]) == ("S3_E_HTTP", "500", "1"), r
    assert s3.calls()["HeadObject"] == 3
    s3.reset()
    s3.fault("GetObject", "error", count=10, code="SlowDown", status=503)
    r = run_driver(tmp_path, aws, s3, "get", BUCKET, "tmp/retry", str(tmp_path / "o"),
                   opts=("--fast-retry",))
    assert (r["code"], r["s3_code"]) == ("AUTH_E_THROTTLED", "SlowDown"), r


def test_bucket_in_another_region(tmp_path, stack):
    """The stand-in's rsproxy-eu lives in eu-west-1: the first request, signed for us-east-1,
    gets AuthorizationHeaderMalformed naming the region, and is re-signed for it."""
    aws, s3 = stack
    src = tmp_path / "x"
    src.write_bytes(b"eu")
    ok(run_driver(tmp_path, aws, s3, "put", EU_BUCKET, "tmp/eu", str(src)))
    assert s3.calls()["PutObject"] == 2
    s3.reset()
    ok(run_driver(tmp_path, aws, s3, "put", EU_BUCKET, "tmp/eu", str(src),
                  tempdir=f"s3://{EU_BUCKET}/tmp/", tempdir_region="eu-west-1"))
    assert s3.calls()["PutObject"] == 1


def test_clock_skew_is_corrected(tmp_path, stack):
    """Signed 20 minutes in the past (beyond S3's 15-minute window), the first request gets
    RequestTimeTooSkewed; auth_http learns the offset from the answer's Date and re-signs."""
    aws, s3 = stack
    src = tmp_path / "x"
    src.write_bytes(b"skew")
    r = ok(run_driver(tmp_path, aws, s3, "put", BUCKET, "tmp/skew", str(src),
                      opts=("--clock-skew-ms", str(-20 * 60 * 1000))))
    assert s3.calls()["PutObject"] == 2, r
    assert proxy_boto(aws, s3).get_object(Bucket=BUCKET, Key="tmp/skew")["Body"].read() == \
        b"skew"
