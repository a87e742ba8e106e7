"""Tests of the S3 stand-in itself (tests/standins/s3): S3 operations through boto3 succeed,
and every way of getting a signature or a permission wrong is refused with S3's own code.

The stand-in runs next to the AWS stand-in, which owns the keys (static principals and the
temporary keys it mints for Redshift role chains). Raw requests are signed with botocore's
S3SigV4Auth and sent with http.client, so a test can tamper with exactly one thing.
"""

import datetime
import hashlib
import http.client
import io
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from unittest import mock

import boto3
import botocore.auth
import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fixtures_aws import NOPERMS_KEY, PROXY_KEY, make_world, secret_of
from fixtures_s3 import S3_DIR, node_binary

BUCKET = "rsproxy-test"
OTHER = "rsproxy-other"
ROLE = "arn:aws:iam::123456789012:role/RedshiftCopy"


@pytest.fixture
def stack(aws_standin_factory, s3_standin_factory):
    world = make_world(None, buckets=[BUCKET, OTHER])
    aws = aws_standin_factory(world=world)
    s3 = s3_standin_factory(aws=aws)
    return aws, s3


def proxy_client(aws, s3, **kw):
    return s3.client(PROXY_KEY, secret_of(aws.world, PROXY_KEY), **kw)


def error_of(excinfo):
    e = excinfo.value.response
    return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]


def signed(s3, method, path, akid, secret, *, body=b"", token=None, region="us-east-1",
           headers=None, host=None):
    """A botocore-signed request for http://<host>/<path> (path includes the query)."""
    host = host or f"127.0.0.1:{s3.port}"
    h = {"Host": host}
    h.update(headers or {})
    req = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=h)
    botocore.auth.S3SigV4Auth(Credentials(akid, secret, token), "s3", region).add_auth(req)
    return req


def send(s3, req, body=None, path=None):
    """Sends a signed request to the stand-in; returns (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=30)
    url = req.url.split("://", 1)[1]
    target = path or url[url.index("/"):]
    conn.request(req.method, target, body=req.body if body is None else body,
                 headers=dict(req.headers.items()))
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def xml_error(data):
    root = ET.fromstring(data)
    assert root.tag == "Error", data
    return {child.tag: child.text for child in root}


def test_selftest_vectors_and_helpers():
    """The verification path reproduces the S3 documentation's signatures."""
    r = subprocess.run([node_binary(), os.path.join(S3_DIR, "selftest.js")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("ok ") >= 10


def test_put_get_head_delete(stack):
    aws, s3 = stack
    c = proxy_client(aws, s3)
    c.put_object(Bucket=BUCKET, Key="dir/a b+c=d.txt", Body=b"hello world",
                 ContentType="text/plain", Metadata={"k": "v"})
    got = c.get_object(Bucket=BUCKET, Key="dir/a b+c=d.txt")
    assert got["Body"].read() == b"hello world"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"k": "v"}
    head = c.head_object(Bucket=BUCKET, Key="dir/a b+c=d.txt")
    assert head["ContentLength"] == 11
    assert c.get_object(Bucket=BUCKET, Key="dir/a b+c=d.txt", Range="bytes=0-4")["Body"].read() \
        == b"hello"
    assert c.get_object(Bucket=BUCKET, Key="dir/a b+c=d.txt", Range="bytes=-5")["Body"].read() \
        == b"world"
    c.put_object(Bucket=BUCKET, Key="dir/empty", Body=b"")
    for rng in ("bytes=0-65535", "bytes=-10", "bytes=5-"):
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            c.get_object(Bucket=BUCKET, Key="dir/empty", Range=rng)
        status, code, err = error_of(ei)
        assert (status, code, err["ActualObjectSize"]) == (416, "InvalidRange", "0")
    assert c.get_object(Bucket=BUCKET, Key="dir/empty")["Body"].read() == b""
    c.delete_object(Bucket=BUCKET, Key="dir/a b+c=d.txt")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.get_object(Bucket=BUCKET, Key="dir/a b+c=d.txt")
    assert error_of(ei)[:2] == (404, "NoSuchKey")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.get_object(Bucket="no-such-bucket", Key="x")
    assert error_of(ei)[:2] == (404, "NoSuchBucket")
    # Errors about non-ASCII keys are well-formed XML (s3rver's own use HTML entities).
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.get_object(Bucket=BUCKET, Key="dir/été ✓.csv")
    status, code, err = error_of(ei)
    assert (status, code, err.get("Key")) == (404, "NoSuchKey", "dir/été ✓.csv")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.put_object(Bucket=BUCKET, Key="a/../../escape", Body=b"x")
    assert error_of(ei)[:2] == (400, "InvalidArgument")


def test_list_with_paging_and_delete_objects(stack):
    aws, s3 = stack
    c = proxy_client(aws, s3)
    keys = [f"page/{i:02d}" for i in range(7)]
    for k in keys:
        c.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    c.put_object(Bucket=BUCKET, Key="elsewhere", Body=b"x")
    pages = list(c.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="page/", PaginationConfig={"PageSize": 3}))
    assert len(pages) == 3
    assert pages[0]["IsTruncated"] and pages[0]["KeyCount"] == 3
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys
    r = c.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[:4]]})
    assert sorted(d["Key"] for d in r["Deleted"]) == keys[:4]
    left = c.list_objects_v2(Bucket=BUCKET, Prefix="page/")
    assert [o["Key"] for o in left["Contents"]] == keys[4:]
    # Deletes that empty a "directory" at the same time (rsproxy cleans staged parts in
    # parallel) all succeed.
    many = [f"par/d/{i}" for i in range(24)]
    for k in many:
        c.put_object(Bucket=BUCKET, Key=k, Body=b"x")
    errors = []

    def delete(k):
        try:
            proxy_client(aws, s3).delete_object(Bucket=BUCKET, Key=k)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
    threads = [threading.Thread(target=delete, args=(k,)) for k in many]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert "Contents" not in c.list_objects_v2(Bucket=BUCKET, Prefix="par/")


def test_multipart_upload_and_streamed_download(stack):
    aws, s3 = stack
    c = proxy_client(aws, s3)
    data = os.urandom(13 * 1024 * 1024)
    c.upload_fileobj(io.BytesIO(data), BUCKET, "big/object",
                     Config=TransferConfig(multipart_threshold=5 * 1024 * 1024,
                                           multipart_chunksize=5 * 1024 * 1024))
    assert s3.calls().get("UploadPart") == 3
    assert s3.calls().get("CompleteMultipartUpload") == 1
    # S3's multipart ETag: MD5 of the parts' MD5s, "-", the number of parts.
    part_md5s = b"".join(hashlib.md5(data[i:i + (5 << 20)]).digest()
                         for i in range(0, len(data), 5 << 20))
    etag = f'"{hashlib.md5(part_md5s).hexdigest()}-3"'
    assert c.head_object(Bucket=BUCKET, Key="big/object")["ETag"] == etag
    assert c.list_objects_v2(Bucket=BUCKET, Prefix="big/")["Contents"][0]["ETag"] == etag
    body = c.get_object(Bucket=BUCKET, Key="big/object")["Body"]
    h = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        h.update(chunk)
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    # An aborted upload leaves nothing behind, and is gone for good.
    up = c.create_multipart_upload(Bucket=BUCKET, Key="big/aborted")
    uid = up["UploadId"]
    etag = c.upload_part(Bucket=BUCKET, Key="big/aborted", UploadId=uid, PartNumber=1,
                         Body=b"x" * 100)["ETag"]
    listed = c.list_multipart_uploads(Bucket=BUCKET, Prefix="big/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("big/aborted", uid)]
    parts = c.list_parts(Bucket=BUCKET, Key="big/aborted", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [(1, 100, etag)]
    c.abort_multipart_upload(Bucket=BUCKET, Key="big/aborted", UploadId=uid)
    assert [o["Key"] for o in c.list_objects_v2(Bucket=BUCKET, Prefix="big/")["Contents"]] == \
        ["big/object"]
    assert "Uploads" not in c.list_multipart_uploads(Bucket=BUCKET, Prefix="big/")
    for call in (lambda: c.upload_part(Bucket=BUCKET, Key="big/aborted", UploadId=uid,
                                       PartNumber=2, Body=b"y"),
                 lambda: c.complete_multipart_upload(
                     Bucket=BUCKET, Key="big/aborted", UploadId=uid,
                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}),
                 lambda: c.abort_multipart_upload(Bucket=BUCKET, Key="big/aborted",
                                                  UploadId=uid)):
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            call()
        assert error_of(ei)[:2] == (404, "NoSuchUpload")


def test_multipart_part_rules(stack):
    """CompleteMultipartUpload enforces S3's rules: parts but the last at least 5 MiB,
    ascending, existing with the right ETag."""
    aws, s3 = stack
    c = proxy_client(aws, s3)
    uid = c.create_multipart_upload(Bucket=BUCKET, Key="mp/rules")["UploadId"]
    e1 = c.upload_part(Bucket=BUCKET, Key="mp/rules", UploadId=uid, PartNumber=1,
                       Body=b"a" * 1000)["ETag"]
    e2 = c.upload_part(Bucket=BUCKET, Key="mp/rules", UploadId=uid, PartNumber=2,
                       Body=b"b" * 10)["ETag"]
    cases = [([(1, e1), (2, e2)], "EntityTooSmall"),
             ([(2, e2), (1, e1)], "InvalidPartOrder"),
             ([(1, e2)], "InvalidPart"),
             ([(3, e1)], "InvalidPart")]
    for parts, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            c.complete_multipart_upload(
                Bucket=BUCKET, Key="mp/rules", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
        assert error_of(ei)[:2] == (400, code)
    # A single small part is a valid (last) part.
    c.complete_multipart_upload(Bucket=BUCKET, Key="mp/rules", UploadId=uid,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert c.get_object(Bucket=BUCKET, Key="mp/rules")["Body"].read() == b"a" * 1000
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.upload_part(Bucket=BUCKET, Key="mp/other", UploadId="0" * 32, PartNumber=1, Body=b"x")
    assert error_of(ei)[:2] == (404, "NoSuchUpload")


def test_front_memory_stays_bounded(stack):
    """A 64 MiB object crosses the front both ways without being held in its memory."""
    aws, s3 = stack
    c = proxy_client(aws, s3)
    blob = os.urandom(1 << 20) * 64
    c.put_object(Bucket=BUCKET, Key="mem/blob", Body=blob)
    body = c.get_object(Bucket=BUCKET, Key="mem/blob")["Body"]
    total = sum(len(ch) for ch in iter(lambda: body.read(1 << 20), b""))
    assert total == len(blob)
    with open(f"/proc/{s3.proc.pid}/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    assert hwm < 160 * 1024, f"front peak RSS {hwm} kB for a 64 MiB object"


def test_lifecycle_configuration(stack):
    aws, s3 = stack
    c = proxy_client(aws, s3)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.get_bucket_lifecycle_configuration(Bucket=BUCKET)
    status, code, err = error_of(ei)
    assert (status, code) == (404, "NoSuchLifecycleConfiguration")
    assert err["BucketName"] == BUCKET
    rules = [{"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
              "Expiration": {"Days": 1}},
             {"ID": "old", "Filter": {}, "Status": "Disabled",
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]
    c.put_bucket_lifecycle_configuration(Bucket=BUCKET,
                                         LifecycleConfiguration={"Rules": rules})
    got = c.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert got[0] == rules[0]
    assert got[1]["ID"] == "old" and got[1]["Status"] == "Disabled"
    assert got[1]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.put_bucket_lifecycle_configuration(
            Bucket=BUCKET, LifecycleConfiguration={"Rules": [{"ID": "x", "Filter": {},
                                                              "Status": "Enabled"}]})
    assert error_of(ei)[:2] == (400, "InvalidRequest")
    c.delete_bucket_lifecycle(Bucket=BUCKET)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.get_bucket_lifecycle_configuration(Bucket=BUCKET)
    assert error_of(ei)[:2] == (404, "NoSuchLifecycleConfiguration")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.get_bucket_lifecycle_configuration(Bucket="no-such-bucket")
    assert error_of(ei)[:2] == (404, "NoSuchBucket")


def test_wrong_secret_is_signature_does_not_match(stack):
    aws, s3 = stack
    c = s3.client(PROXY_KEY, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.put_object(Bucket=BUCKET, Key="x", Body=b"x")
    status, code, err = error_of(ei)
    assert (status, code) == (403, "SignatureDoesNotMatch")
    assert err["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert err["AWSAccessKeyId"] == PROXY_KEY
    assert "PUT\n/rsproxy-test/x\n" in err["CanonicalRequest"]


def test_tampered_body_is_refused_and_not_stored(stack):
    aws, s3 = stack
    req = signed(s3, "PUT", f"/{BUCKET}/tampered", PROXY_KEY, secret_of(aws.world, PROXY_KEY),
                 body=b"original body")
    status, _h, data = send(s3, req, body=b"tampered body")
    assert status == 400
    err = xml_error(data)
    assert err["Code"] == "XAmzContentSHA256Mismatch"
    assert err["S3ComputedContentSHA256"] == hashlib.sha256(b"tampered body").hexdigest()
    # A tampered large body (spooled to disk) is refused the same way.
    big = b"a" * (3 << 20)
    req = signed(s3, "PUT", f"/{BUCKET}/tampered", PROXY_KEY, secret_of(aws.world, PROXY_KEY),
                 body=big)
    status, _h, data = send(s3, req, body=b"b" * (3 << 20))
    assert status == 400 and xml_error(data)["Code"] == "XAmzContentSHA256Mismatch"
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        proxy_client(aws, s3).head_object(Bucket=BUCKET, Key="tampered")
    assert error_of(ei)[0] == 404
    # Tampering with a signed query parameter or the path breaks the signature.
    req = signed(s3, "GET", f"/{BUCKET}?list-type=2&prefix=a", PROXY_KEY,
                 secret_of(aws.world, PROXY_KEY))
    status, _h, data = send(s3, req, path=f"/{BUCKET}?list-type=2&prefix=b")
    assert status == 403 and xml_error(data)["Code"] == "SignatureDoesNotMatch"


def test_unknown_key_and_anonymous(stack):
    aws, s3 = stack
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        s3.client("AKIAUNKNOWN000000009", "whatever").list_objects_v2(Bucket=BUCKET)
    status, code, err = error_of(ei)
    assert (status, code) == (403, "InvalidAccessKeyId")
    assert err["Message"] == "The AWS Access Key Id you provided does not exist in our records."
    with urllib.request.urlopen(f"{s3.endpoint}/_standin/calls") as r:
        assert r.status == 200  # the control API answers unsigned
    try:
        urllib.request.urlopen(f"{s3.endpoint}/{BUCKET}/anything")
        raise AssertionError("anonymous GET succeeded")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and xml_error(e.read())["Code"] == "AccessDenied"


def test_key_not_allowed_for_bucket(stack):
    aws, s3 = stack
    proxy_client(aws, s3).put_object(Bucket=OTHER, Key="secret.csv", Body=b"1")
    nobody = s3.client(NOPERMS_KEY, secret_of(aws.world, NOPERMS_KEY))
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        nobody.get_object(Bucket=BUCKET, Key="x")
    assert error_of(ei)[:2] == (403, "AccessDenied")
    keys = aws.assume_for_redshift("examplecluster", ROLE)
    role = s3.client(keys["access_key_id"], keys["secret_access_key"], keys["session_token"])
    role.put_object(Bucket=BUCKET, Key="role/ok", Body=b"ok")
    assert role.get_object(Bucket=BUCKET, Key="role/ok")["Body"].read() == b"ok"
    r = role.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "role/ok"}]})
    assert [d["Key"] for d in r["Deleted"]] == ["role/ok"]
    r = role.delete_objects(Bucket=OTHER, Delete={"Objects": [{"Key": "secret.csv"}]})
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("secret.csv", "AccessDenied")]
    assert proxy_client(aws, s3).head_object(Bucket=OTHER, Key="secret.csv")["ContentLength"] == 1
    role.put_object(Bucket=BUCKET, Key="role/ok", Body=b"ok")
    for call in (lambda: role.get_object(Bucket=OTHER, Key="secret.csv"),
                 lambda: role.put_object(Bucket=OTHER, Key="x", Body=b"x"),
                 lambda: role.list_objects_v2(Bucket=OTHER),
                 lambda: role.copy_object(Bucket=BUCKET, Key="stolen",
                                          CopySource={"Bucket": OTHER, "Key": "secret.csv"})):
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            call()
        assert error_of(ei)[:2] == (403, "AccessDenied")


def test_temporary_key_token_rules(stack):
    aws, s3 = stack
    keys = aws.assume_for_redshift("examplecluster", ROLE)
    akid, secret, token = keys["access_key_id"], keys["secret_access_key"], keys["session_token"]
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        s3.client(akid, secret).list_objects_v2(Bucket=BUCKET, Prefix="x")
    status, code, err = error_of(ei)
    assert (status, code) == (400, "MissingSecurityHeader")
    assert err["MissingHeaderName"] == "x-amz-security-token"
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        s3.client(akid, secret, token[:-4] + "AAAA").list_objects_v2(Bucket=BUCKET, Prefix="x")
    assert error_of(ei)[:2] == (400, "InvalidToken")
    # A long-term key must not carry a token.
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        s3.client(PROXY_KEY, secret_of(aws.world, PROXY_KEY), "bogus").list_objects_v2(
            Bucket=BUCKET)
    assert error_of(ei)[:2] == (400, "InvalidToken")
    ok = s3.client(akid, secret, token)
    ok.list_objects_v2(Bucket=BUCKET, Prefix="x")
    aws.expire(akid)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        ok.list_objects_v2(Bucket=BUCKET, Prefix="x")
    assert error_of(ei)[:2] == (400, "ExpiredToken")


class _SkewedDatetime(datetime.datetime):
    offset = datetime.timedelta(0)

    @classmethod
    def utcnow(cls):
        return datetime.datetime.fromtimestamp(time.time() + cls.offset.total_seconds(),
                                               datetime.timezone.utc).replace(tzinfo=None)


def test_clock_skew(stack):
    aws, s3 = stack
    secret = secret_of(aws.world, PROXY_KEY)
    for minutes, ok in ((-16, False), (17, False), (-10, True)):
        _SkewedDatetime.offset = datetime.timedelta(minutes=minutes)
        with mock.patch.object(botocore.auth.datetime, "datetime", _SkewedDatetime):
            req = signed(s3, "GET", f"/{BUCKET}?list-type=2", PROXY_KEY, secret)
        status, _h, data = send(s3, req)
        if ok:
            assert status == 200, data
        else:
            assert status == 403, data
            err = xml_error(data)
            assert err["Code"] == "RequestTimeTooSkewed"
            assert err["MaxAllowedSkewMilliseconds"] == "900000"


def test_presigned_urls(stack):
    aws, s3 = stack
    c = proxy_client(aws, s3)
    c.put_object(Bucket=BUCKET, Key="pre/signed.txt", Body=b"presigned")
    url = c.generate_presigned_url("get_object", Params={"Bucket": BUCKET,
                                                         "Key": "pre/signed.txt"}, ExpiresIn=60)
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"presigned"
    bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")[:-1]
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(bad)
    assert ei.value.code == 403 and xml_error(ei.value.read())["Code"] == "SignatureDoesNotMatch"
    _SkewedDatetime.offset = datetime.timedelta(minutes=-5)
    with mock.patch.object(botocore.auth.datetime, "datetime", _SkewedDatetime):
        old = c.generate_presigned_url("get_object", Params={"Bucket": BUCKET,
                                                             "Key": "pre/signed.txt"},
                                       ExpiresIn=60)
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(old)
    err = xml_error(ei.value.read())
    assert ei.value.code == 403 and err["Code"] == "AccessDenied"
    assert err["Message"] == "Request has expired"
    # A presigned PUT with a temporary key.
    keys = aws.assume_for_redshift("examplecluster", ROLE)
    t = s3.client(keys["access_key_id"], keys["secret_access_key"], keys["session_token"])
    put_url = t.generate_presigned_url("put_object", Params={"Bucket": BUCKET,
                                                             "Key": "pre/put.txt"})
    req = urllib.request.Request(put_url, data=b"put via url", method="PUT")
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
    assert c.get_object(Bucket=BUCKET, Key="pre/put.txt")["Body"].read() == b"put via url"


def test_virtual_hosted_style(stack):
    aws, s3 = stack
    secret = secret_of(aws.world, PROXY_KEY)
    host = f"{BUCKET}.localhost:{s3.port}"
    req = signed(s3, "PUT", "/vhost/key.txt", PROXY_KEY, secret, body=b"vhost", host=host)
    status, _h, data = send(s3, req)
    assert status == 200, data
    req = signed(s3, "GET", "/vhost/key.txt", PROXY_KEY, secret, host=host)
    status, _h, data = send(s3, req)
    assert (status, data) == (200, b"vhost")
    aws_host = f"{BUCKET}.s3.us-east-1.amazonaws.com"
    req = signed(s3, "GET", "/?list-type=2&prefix=vhost%2F", PROXY_KEY, secret, host=aws_host)
    status, _h, data = send(s3, req)
    assert status == 200 and b"<Key>vhost/key.txt</Key>" in data, data


def test_wrong_region_and_unsigned_headers(stack):
    aws, s3 = stack
    secret = secret_of(aws.world, PROXY_KEY)
    req = signed(s3, "GET", f"/{BUCKET}?list-type=2", PROXY_KEY, secret, region="eu-west-1")
    status, _h, data = send(s3, req)
    err = xml_error(data)
    assert (status, err["Code"], err["Region"]) == (400, "AuthorizationHeaderMalformed",
                                                    "us-east-1")
    req = signed(s3, "GET", f"/{BUCKET}?list-type=2", PROXY_KEY, secret)
    req.headers["x-amz-meta-sneaky"] = "added after signing"
    status, _h, data = send(s3, req)
    err = xml_error(data)
    assert (status, err["Code"]) == (403, "AccessDenied")
    assert "x-amz-meta-sneaky" in err["HeadersNotSigned"]


def test_expect_continue_refused_before_body(stack):
    """With Expect: 100-continue a refused upload gets its final answer instead of 100."""
    aws, s3 = stack
    req = signed(s3, "PUT", f"/{BUCKET}/expect", PROXY_KEY, "wrong-secret", body=b"z" * 1000,
                 headers={"Expect": "100-continue"})
    conn = http.client.HTTPConnection("127.0.0.1", s3.port, timeout=10)
    conn.putrequest("PUT", f"/{BUCKET}/expect", skip_host=True, skip_accept_encoding=True)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", "1000")
    conn.endheaders()
    r = conn.getresponse()  # sent no body: the answer must come anyway
    assert r.status == 403
    assert xml_error(r.read())["Code"] == "SignatureDoesNotMatch"
    conn.close()


def test_faults(stack):
    aws, s3 = stack
    c = proxy_client(aws, s3)
    s3.fault("PutObject", "error", count=1, code="SlowDown", status=503)
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        c.put_object(Bucket=BUCKET, Key="f", Body=b"1")
    assert error_of(ei)[:2] == (503, "SlowDown")
    c.put_object(Bucket=BUCKET, Key="f", Body=b"1")
    assert s3.calls()["PutObject"] == 2
    s3.reset()
    assert s3.calls() == {}


def test_boto3_resource_api(stack):
    """The higher-level API (what most tools use) works too, including copy."""
    aws, s3 = stack
    res = boto3.resource("s3", endpoint_url=s3.endpoint, region_name="us-east-1",
                         aws_access_key_id=PROXY_KEY,
                         aws_secret_access_key=secret_of(aws.world, PROXY_KEY),
                         config=botocore.config.Config(signature_version="s3v4"))
    b = res.Bucket(BUCKET)
    b.put_object(Key="res/a", Body=b"A")
    res.Object(BUCKET, "res/b").copy_from(CopySource={"Bucket": BUCKET, "Key": "res/a"})
    assert sorted(o.key for o in b.objects.filter(Prefix="res/")) == ["res/a", "res/b"]
    assert res.Object(BUCKET, "res/b").get()["Body"].read() == b"A"
