"""Tests of the AWS stand-in itself (tests/standins/aws), with boto3 as the client.

If the stand-in accepted a bad signature or answered in a shape boto3 cannot parse, every IAM
test of rsproxy built on it would prove nothing; so this file checks that real SDK clients
succeed against it, that each kind of broken request is refused with AWS's code, status and
shape, that minted passwords really log in to PostgreSQL (and stop working when they expire),
and that faults, the control API and the credential endpoints behave as documented.
"""

import http.client
import json
import re
import ssl
import time
import urllib.parse

import botocore
import psycopg
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from fixtures_aws import NOPERMS_KEY, PROXY_KEY, SCOPED_KEY, make_world, secret_of

GCC_BODY = ("Action=GetClusterCredentials&ClusterIdentifier=examplecluster&DbUser=alice"
            "&Version=2012-12-01")
FORM = "application/x-www-form-urlencoded; charset=utf-8"
JSON11 = "application/x-amz-json-1.1"
APP_ROLE = "arn:aws:iam::123456789012:role/rsproxy-app"
COPY_ROLE = "arn:aws:iam::123456789012:role/RedshiftCopy"
XACCT_ROLE = "arn:aws:iam::123456789012:role/CrossAccountS3"
WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.standin-web-identity-token.sig"


# -- helpers -----------------------------------------------------------------------------------


def amz_now(offset=0):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset))


def sign(standin, service, body, content_type=FORM, akid=PROXY_KEY, secret=None, token=None,
         ts=None, target=None, region=None):
    """A request signed by botocore at timestamp `ts` (default now), not yet sent."""
    headers = {"Content-Type": content_type}
    if target:
        headers["X-Amz-Target"] = target
    req = AWSRequest("POST", standin.url + "/", data=body.encode(), headers=headers)
    if secret is None:
        secret = secret_of(standin.world, akid)
    signer = SigV4Auth(Credentials(akid, secret, token), service, region or standin.region)
    req.context["timestamp"] = ts or amz_now()
    signer._modify_request_before_signing(req)
    canonical = signer.canonical_request(req)
    signer._inject_signature_to_request(
        req, signer.signature(signer.string_to_sign(req, canonical), req))
    return req


def send(standin, req=None, method="POST", path="/", body=b"", headers=None):
    """Sends a prepared AWSRequest (or raw parts); returns (status, headers, text)."""
    if req is not None:
        method, body = req.method, req.body
        headers = dict(req.headers.items())
        path = urllib.parse.urlsplit(req.url).path or "/"
    headers = dict(headers or {})
    headers.setdefault("Host", f"localhost:{standin.port}")
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, text
    finally:
        conn.close()


def query_error(text):
    """(Type, Code, Message) of an awsQuery ErrorResponse; asserts the shape."""
    m = re.search(r"<ErrorResponse[^>]*>\s*<Error>\s*<Type>(\w+)</Type>\s*<Code>(\w+)</Code>\s*"
                  r"<Message>(.*?)</Message>\s*</Error>\s*<RequestId>[0-9a-f-]{36}</RequestId>"
                  r"\s*</ErrorResponse>", text, re.S)
    assert m, f"not an awsQuery ErrorResponse: {text!r}"
    return m.group(1), m.group(2), m.group(3)


def client_error(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"]["Message"], \
        err["ResponseMetadata"]["HTTPStatusCode"]


def pg_login(pg, user, password, dbname="postgres"):
    return psycopg.connect(host="127.0.0.1", port=pg.port, user=user, password=password,
                           dbname=dbname, sslmode="disable", connect_timeout=10)


# -- real SDK clients succeed ------------------------------------------------------------------


def test_boto3_redshift(aws_standin, aws_pg):
    rs = aws_standin.client("redshift")
    cluster = rs.describe_clusters(ClusterIdentifier="examplecluster")["Clusters"][0]
    assert cluster["Endpoint"] == {"Address": "localhost", "Port": aws_pg.port}
    assert cluster["ClusterStatus"] == "available"
    assert cluster["IamRoles"][0]["IamRoleArn"] == COPY_ROLE
    assert len(rs.describe_clusters()["Clusters"]) == 2

    before = time.time()
    creds = rs.get_cluster_credentials(DbUser="alice", DbName="dev",
                                       ClusterIdentifier="examplecluster")
    assert creds["DbUser"] == "IAM:alice"
    pw = creds["DbPassword"]
    assert re.fullmatch(r"[A-Za-z0-9+/]{42}==", pw) and "/" in pw and "+" in pw
    assert before + 890 < creds["Expiration"].timestamp() < time.time() + 910
    again = rs.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster",
                                       DurationSeconds=3600)
    assert again["DbPassword"] != pw
    assert again["Expiration"].timestamp() > time.time() + 3500

    # CustomDomainName resolves to the cluster (raw: this botocore predates the parameter).
    body = ("Action=GetClusterCredentials&CustomDomainName=redshift.example.com&DbUser=alice"
            "&Version=2012-12-01")
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", body))
    assert status == 200 and "<DbUser>IAM:alice</DbUser>" in text, text
    status, _, text = send(aws_standin, sign(aws_standin, "redshift",
                                             body.replace("redshift.example", "other.example")))
    assert (status, query_error(text)[1]) == (404, "ClusterNotFound")

    with_iam = rs.get_cluster_credentials_with_iam(ClusterIdentifier="examplecluster")
    assert with_iam["DbUser"] == "IAM:rsproxy"
    assert "NextRefreshTime" in with_iam


def test_boto3_serverless(aws_standin, aws_pg):
    sl = aws_standin.client("redshift-serverless")
    wg = sl.get_workgroup(workgroupName="wg1")["workgroup"]
    assert wg["endpoint"]["address"] == "localhost"
    assert wg["endpoint"]["port"] == aws_pg.port
    assert wg["workgroupArn"].startswith(
        "arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/")
    creds = sl.get_credentials(workgroupName="wg1", dbName="dev", durationSeconds=1800)
    assert creds["dbUser"] == "IAM:rsproxy"
    assert creds["expiration"].timestamp() > time.time() + 1700

    # Through an assumed role the database user is IAMR:<role name>.
    c = aws_standin.client("sts").assume_role(RoleArn=APP_ROLE,
                                              RoleSessionName="app")["Credentials"]
    sl2 = aws_standin.client("redshift-serverless", akid=c["AccessKeyId"],
                             secret=c["SecretAccessKey"], token=c["SessionToken"])
    assert sl2.get_credentials(workgroupName="wg1")["dbUser"] == "IAMR:rsproxy-app"
    rs2 = aws_standin.client("redshift", akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                             token=c["SessionToken"])
    assert rs2.get_cluster_credentials_with_iam(
        ClusterIdentifier="examplecluster")["DbUser"] == "IAMR:rsproxy-app"


def test_boto3_sts_assume_role_and_chaining(aws_standin):
    sts = aws_standin.client("sts")
    ident = sts.get_caller_identity()
    assert ident["Arn"] == "arn:aws:iam::123456789012:user/rsproxy"
    assert ident["Account"] == "123456789012"

    r = sts.assume_role(RoleArn=APP_ROLE, RoleSessionName="s1", DurationSeconds=7200)
    c = r["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and len(c["AccessKeyId"]) == 20
    assert r["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::123456789012:assumed-role/rsproxy-app/s1"
    assert 7100 < c["Expiration"].timestamp() - time.time() < 7300
    sts2 = aws_standin.client("sts", akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                              token=c["SessionToken"])
    assert sts2.get_caller_identity()["Arn"] == r["AssumedRoleUser"]["Arn"]

    # Role chaining: a role session assuming a role is capped at one hour.
    with pytest.raises(ClientError) as e:
        sts2.assume_role(RoleArn=APP_ROLE, RoleSessionName="s2", DurationSeconds=3601)
    assert client_error(e) == ("ValidationError", "The requested DurationSeconds exceeds the 1 "
                               "hour session limit for roles assumed by role chaining.", 400)
    # Beyond the role's MaxSessionDuration.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=APP_ROLE, RoleSessionName="s3", DurationSeconds=7201)
    assert client_error(e)[1] == ("The requested DurationSeconds exceeds the MaxSessionDuration "
                                  "set for this role.")
    # Untrusted, unknown and not-permitted all look the same: AccessDenied.
    for akid, role in ((PROXY_KEY, COPY_ROLE), (PROXY_KEY, APP_ROLE + "-missing"),
                       (NOPERMS_KEY, APP_ROLE)):
        with pytest.raises(ClientError) as e:
            aws_standin.client("sts", akid=akid).assume_role(RoleArn=role, RoleSessionName="x1")
        who = aws_standin.world["principals"][akid]["arn"]
        assert client_error(e) == ("AccessDenied", f"User: {who} is not authorized to perform: "
                                   f"sts:AssumeRole on resource: {role}", 403)
    # Parameter rules.
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=APP_ROLE, RoleSessionName="bad name!")
    code, msg, status = client_error(e)
    assert (code, status) == ("ValidationError", 400)
    assert msg == ("1 validation error detected: Value 'bad name!' at 'roleSessionName' failed "
                   "to satisfy constraint: Member must satisfy regular expression pattern: "
                   "[\\w+=,.@-]*")


def test_boto3_web_identity_is_unsigned(aws_standin):
    from botocore import UNSIGNED
    sts = aws_standin.client("sts", signature_version=UNSIGNED)
    r = sts.assume_role_with_web_identity(RoleArn=APP_ROLE, RoleSessionName="pod",
                                          WebIdentityToken=WEB_TOKEN)
    assert r["AssumedRoleUser"]["Arn"].endswith("assumed-role/rsproxy-app/pod")
    assert r["SubjectFromWebIdentityToken"]
    c = r["Credentials"]
    rs = aws_standin.client("redshift", akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                            token=c["SessionToken"])
    assert rs.get_cluster_credentials(DbUser="alice",
                                      ClusterIdentifier="examplecluster")["DbUser"] == "IAM:alice"

    with pytest.raises(ClientError) as e:
        sts.assume_role_with_web_identity(RoleArn=APP_ROLE, RoleSessionName="pod",
                                          WebIdentityToken="not-a-token-we-issued")
    assert client_error(e)[0] == "InvalidIdentityToken"
    assert "not-a-token" not in client_error(e)[1]
    with pytest.raises(ClientError) as e:
        sts.assume_role_with_web_identity(RoleArn=COPY_ROLE, RoleSessionName="pod",
                                          WebIdentityToken=WEB_TOKEN)
    assert client_error(e) == ("AccessDenied",
                               "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)


# -- every broken request is refused with AWS's code ---------------------------------------------


def test_good_raw_request_and_common_headers(aws_standin):
    status, headers, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY))
    assert status == 200, text
    assert "<DbUser>IAM:alice</DbUser>" in text
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["x-amzn-requestid"])
    assert headers["x-amzn-requestid"] in text
    date = time.mktime(time.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT"))
    assert abs(date - time.mktime(time.gmtime())) < 5


def test_wrong_secret(aws_standin):
    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift", secret="x" * 40).get_cluster_credentials(
            DbUser="alice", ClusterIdentifier="examplecluster")
    code, msg, status = client_error(e)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert msg.startswith("The request signature we calculated does not match")
    assert "The Canonical String for this request should have been" in msg

    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift-serverless", secret="x" * 40).get_workgroup(
            workgroupName="wg1")
    assert client_error(e)[0] == "InvalidSignatureException"


def test_tampered_body(aws_standin):
    req = sign(aws_standin, "redshift", GCC_BODY)
    req.data = GCC_BODY.replace("alice", "admin").encode()
    status, _, text = send(aws_standin, req)
    assert status == 403
    kind, code, msg = query_error(text)
    assert (kind, code) == ("Sender", "SignatureDoesNotMatch")
    # The JSON protocol: a changed body is caught the same way, with JSON's shape.
    body = json.dumps({"workgroupName": "wg1"})
    req = sign(aws_standin, "redshift-serverless", body, JSON11,
               target="RedshiftServerless.GetWorkgroup")
    req.data = body.replace("wg1", "wg2").encode()
    status, headers, text = send(aws_standin, req)
    assert status == 400
    assert headers["x-amzn-errortype"] == "InvalidSignatureException"
    doc = json.loads(text)
    assert doc["__type"].endswith("#InvalidSignatureException")
    assert doc["message"].startswith("The request signature we calculated does not match")


def test_wrong_service_scope(aws_standin):
    # Signed for sts but sent as a Redshift action.
    status, _, text = send(aws_standin, sign(aws_standin, "sts", GCC_BODY))
    assert status == 403
    assert query_error(text)[1:] == ("SignatureDoesNotMatch",
                                     "Credential should be scoped to correct service: "
                                     "'redshift'. ")
    # Serverless signed as "redshift".
    req = sign(aws_standin, "redshift", '{"workgroupName": "wg1"}', JSON11,
               target="RedshiftServerless.GetWorkgroup")
    status, headers, text = send(aws_standin, req)
    assert (status, headers["x-amzn-errortype"]) == (400, "InvalidSignatureException")
    assert "correct service: 'redshift-serverless'" in json.loads(text)["message"]
    # And the wrong region.
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY,
                                             region="eu-west-1"))
    assert query_error(text)[1] == "SignatureDoesNotMatch"
    assert "valid region, not 'eu-west-1'" in query_error(text)[2]


def test_stale_and_future_dates(aws_standin):
    stale = amz_now(-400)
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, ts=stale))
    assert status == 403
    _, code, msg = query_error(text)
    assert code == "SignatureDoesNotMatch"
    assert re.fullmatch(rf"Signature expired: {stale} is now earlier than \d{{8}}T\d{{6}}Z "
                        rf"\(\d{{8}}T\d{{6}}Z - 5 min\.\)", msg), msg
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY,
                                             ts=amz_now(400)))
    assert query_error(text)[2].startswith("Signature not yet current:")
    # Within the window is fine.
    status, _, _ = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, ts=amz_now(-200)))
    assert status == 200
    # JSON services answer InvalidSignatureException.
    req = sign(aws_standin, "redshift-serverless", '{"workgroupName": "wg1"}', JSON11,
               target="RedshiftServerless.GetWorkgroup", ts=stale)
    status, headers, text = send(aws_standin, req)
    assert headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert json.loads(text)["message"].startswith(f"Signature expired: {stale}")


def test_clock_offset_moves_date_header_and_window(aws_standin):
    aws_standin.patch_world({"clock_offset_seconds": 3600})
    status, headers, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY))
    assert query_error(text)[2].startswith("Signature expired:")
    server = time.mktime(time.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT"))
    assert abs(server - time.mktime(time.gmtime()) - 3600) < 5
    # A client that corrects its clock from Date is accepted.
    status, _, _ = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, ts=amz_now(3600)))
    assert status == 200


def test_token_rules(aws_standin):
    sts = aws_standin.client("sts")
    c = sts.assume_role(RoleArn=APP_ROLE, RoleSessionName="tok")["Credentials"]
    akid, secret, token = c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]
    # Missing token for a temporary key.
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, akid=akid,
                                             secret=secret))
    assert (status, query_error(text)[1:]) == (
        403, ("InvalidClientTokenId", "The security token included in the request is invalid."))
    # A wrong token.
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, akid=akid,
                                             secret=secret, token=token[:-4] + "AAAA"))
    assert query_error(text)[1] == "InvalidClientTokenId"
    # A token sent with long-term keys.
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, token=token))
    assert query_error(text)[1] == "InvalidClientTokenId"
    # The right token works, until the key expires.
    ok = sign(aws_standin, "redshift", GCC_BODY, akid=akid, secret=secret, token=token)
    assert send(aws_standin, ok)[0] == 200
    aws_standin.expire(akid)
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY, akid=akid,
                                             secret=secret, token=token))
    assert (status, query_error(text)[1:]) == (
        403, ("ExpiredToken", "The security token included in the request is expired"))
    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift-serverless", akid=akid, secret=secret,
                           token=token).get_workgroup(workgroupName="wg1")
    assert client_error(e)[0] == "ExpiredTokenException"


def test_short_sts_lifetime(aws_standin):
    aws_standin.patch_world({"lifetimes": {"sts": 2}})
    c = aws_standin.client("sts").assume_role(RoleArn=APP_ROLE,
                                              RoleSessionName="short")["Credentials"]
    assert c["Expiration"].timestamp() - time.time() < 5
    rs = aws_standin.client("redshift", akid=c["AccessKeyId"], secret=c["SecretAccessKey"],
                            token=c["SessionToken"])
    rs.describe_clusters()
    time.sleep(2.5)
    with pytest.raises(ClientError) as e:
        rs.describe_clusters()
    assert client_error(e)[0] == "ExpiredToken"


def test_unknown_key_and_missing_auth(aws_standin):
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY,
                                             akid="AKIAUNKNOWN000000000", secret="s" * 40))
    assert (status, query_error(text)[1]) == (403, "InvalidClientTokenId")
    status, _, text = send(aws_standin, body=GCC_BODY.encode(),
                           headers={"Content-Type": FORM})
    assert (status, query_error(text)[1:]) == (
        403, ("MissingAuthenticationToken", "Request is missing Authentication Token"))
    status, headers, text = send(aws_standin, body=b'{"workgroupName": "wg1"}',
                                 headers={"Content-Type": JSON11,
                                          "X-Amz-Target": "RedshiftServerless.GetWorkgroup"})
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    # A malformed Authorization header.
    status, _, text = send(aws_standin, body=GCC_BODY.encode(),
                           headers={"Content-Type": FORM, "X-Amz-Date": amz_now(),
                                    "Authorization": "AWS4-HMAC-SHA256 Credential=x"})
    assert query_error(text)[1] == "IncompleteSignature"


def test_query_get_is_accepted(aws_standin):
    """The API reference also shows awsQuery calls as GET with a query string."""
    query = urllib.parse.urlencode({"Action": "DescribeClusters", "Version": "2012-12-01",
                                    "ClusterIdentifier": "examplecluster"},
                                   quote_via=urllib.parse.quote)
    req = AWSRequest("GET", f"{aws_standin.url}/?{query}")
    signer = SigV4Auth(Credentials(PROXY_KEY, secret_of(aws_standin.world, PROXY_KEY)),
                       "redshift", "us-east-1")
    req.context["timestamp"] = amz_now()
    signer._modify_request_before_signing(req)
    signer._inject_signature_to_request(
        req, signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req))
    status, _, text = send(aws_standin, method="GET", path="/?" + query,
                           headers=dict(req.headers.items()))
    assert status == 200, text
    assert "<ClusterIdentifier>examplecluster</ClusterIdentifier>" in text
    # The same query with one parameter changed no longer verifies.
    status, _, text = send(aws_standin, method="GET",
                           path="/?" + query.replace("examplecluster", "scramcluster"),
                           headers=dict(req.headers.items()))
    assert (status, query_error(text)[1]) == (403, "SignatureDoesNotMatch")


# -- parameter validation --------------------------------------------------------------------


def test_redshift_parameter_errors(aws_standin):
    rs = aws_standin.client("redshift")

    def err(**kw):
        with pytest.raises(ClientError) as e:
            rs.get_cluster_credentials(**kw)
        return client_error(e)

    assert err(DbUser="Alice", ClusterIdentifier="examplecluster") == (
        "InvalidParameterValue",
        "DbUser parameter must be lowercase, begin with a letter, contain only alphanumeric "
        "characters, underscore ('_'), plus sign ('+'), dot ('.'), at ('@'), or hyphen ('-'), "
        "and be less than 128 characters.", 400)
    assert err(DbUser="1alice", ClusterIdentifier="examplecluster")[0] == \
        "InvalidParameterValue"
    assert err(DbUser="a" * 128, ClusterIdentifier="examplecluster")[0] == \
        "InvalidParameterValue"
    for bad in (899, 3601):
        code, msg, status = err(DbUser="alice", ClusterIdentifier="examplecluster",
                                DurationSeconds=bad)
        assert (code, status) == ("InvalidParameterValue", 400) and "900 and 3600" in msg
    assert err(DbUser="alice", ClusterIdentifier="nosuchcluster") == (
        "ClusterNotFound", "Cluster nosuchcluster not found.", 404)
    assert err(DbUser="alice", ClusterIdentifier="examplecluster",
               DbGroups=["Analysts"])[0] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        rs.describe_clusters(ClusterIdentifier="nosuchcluster")
    assert client_error(e)[::2] == ("ClusterNotFound", 404)
    with pytest.raises(ClientError) as e:
        rs.describe_clusters(MaxRecords=10)
    assert client_error(e)[0] == "InvalidParameterValue"


@pytest.mark.parametrize("body,code", [
    ("Action=GetClusterCredentials&ClusterIdentifier=examplecluster&Version=2012-12-01",
     "MissingParameter"),
    (GCC_BODY + "&DbGroups.member.1=analysts", "UnknownParameter"),
    (GCC_BODY + "&DbGroups.DbGroup.2=analysts", "InvalidParameterValue"),
    (GCC_BODY + "&AutoCreate=True", "InvalidParameterValue"),
    (GCC_BODY + "&DurationSeconds=abc", "InvalidParameterValue"),
    (GCC_BODY.replace("2012-12-01", "2011-06-15"), "NoSuchVersion"),
    (GCC_BODY.replace("GetClusterCredentials", "DeleteCluster"), "InvalidAction"),
    (GCC_BODY + "&DbUser=bob", "InvalidParameterValue"),
])
def test_redshift_raw_parameter_errors(aws_standin, body, code):
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", body))
    assert status == 400, text
    assert query_error(text)[1] == code


def test_db_groups_numbering_and_autocreate(aws_standin, aws_pg):
    body = ("Action=GetClusterCredentials&AutoCreate=true&ClusterIdentifier=examplecluster"
            "&DbGroups.DbGroup.1=analysts&DbUser=carol&Version=2012-12-01")
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", body))
    assert status == 200, text
    user = re.search(r"<DbUser>(.*?)</DbUser>", text).group(1)
    pw = re.search(r"<DbPassword>(.*?)</DbPassword>", text).group(1)
    assert user == "IAMA:carol:analysts"
    with pg_login(aws_pg, user, pw) as c:
        assert c.execute("SELECT pg_has_role(current_user, 'analysts', 'MEMBER')").fetchone()[0]


def test_serverless_parameter_errors(aws_standin):
    sl = aws_standin.client("redshift-serverless")
    for kw, text in (({"workgroupName": "WG1"}, "regular expression pattern: ^[a-z0-9-]+$"),
                     ({"workgroupName": "wg1", "durationSeconds": 100},
                      "value greater than or equal to 900"),
                     ({"workgroupName": "wg1", "durationSeconds": 4000},
                      "value less than or equal to 3600")):
        with pytest.raises(ClientError) as e:
            sl.get_credentials(**kw)
        code, msg, status = client_error(e)
        assert (code, status) == ("ValidationException", 400)
        assert msg.startswith("1 validation error detected: Value ") and msg.endswith(text)
    # Shorter than botocore's own client-side minimum: sent raw.
    req = sign(aws_standin, "redshift-serverless", '{"workgroupName": "w"}', JSON11,
               target="RedshiftServerless.GetCredentials")
    status, headers, text = send(aws_standin, req)
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationException")
    assert json.loads(text)["message"].endswith("length greater than or equal to 3")
    with pytest.raises(ClientError) as e:
        sl.get_credentials(workgroupName="nosuch")
    assert client_error(e)[0] == "ResourceNotFoundException"
    assert e.value.response.get("resourceName") == "nosuch" or "nosuch" in client_error(e)[1]
    with pytest.raises(ClientError) as e:
        sl.get_workgroup(workgroupName="nosuch")
    assert client_error(e)[0] == "ResourceNotFoundException"


def test_iam_permissions(aws_standin):
    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift", akid=NOPERMS_KEY).get_cluster_credentials(
            DbUser="alice", ClusterIdentifier="examplecluster")
    assert client_error(e) == (
        "AccessDenied", "User: arn:aws:iam::123456789012:user/nobody is not authorized to "
        "perform: redshift:GetClusterCredentials on resource: "
        "arn:aws:redshift:us-east-1:123456789012:dbuser:examplecluster/alice", 403)
    # AccessDenied comes before ClusterNotFound: no permission, no information.
    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift", akid=NOPERMS_KEY).get_cluster_credentials(
            DbUser="alice", ClusterIdentifier="nosuchcluster")
    assert client_error(e)[0] == "AccessDenied"
    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift-serverless", akid=NOPERMS_KEY).get_credentials(
            workgroupName="wg1")
    code, msg, _ = client_error(e)
    assert code == "AccessDeniedException"
    assert "redshift-serverless:GetCredentials on resource: arn:aws:redshift-serverless:" in msg

    # A resource-scoped policy: alice yes, bob no, AutoCreate needs CreateClusterUser.
    scoped = aws_standin.client("redshift", akid=SCOPED_KEY)
    assert scoped.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster")
    with pytest.raises(ClientError) as e:
        scoped.get_cluster_credentials(DbUser="bob", ClusterIdentifier="examplecluster")
    assert client_error(e)[1].endswith("dbuser:examplecluster/bob")
    with pytest.raises(ClientError) as e:
        scoped.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster",
                                       AutoCreate=True)
    assert "redshift:CreateClusterUser" in client_error(e)[1]
    with pytest.raises(ClientError) as e:
        scoped.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster",
                                       DbGroups=["analysts"])
    assert "redshift:JoinGroup" in client_error(e)[1]


# -- minted passwords in PostgreSQL -----------------------------------------------------------


def _stored_secret(pg, role):
    return pg.sql_value("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))


def test_minted_password_logs_in_md5_and_scram(aws_standin, aws_pg):
    rs = aws_standin.client("redshift")
    creds = rs.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster")
    assert _stored_secret(aws_pg, "IAM:alice").startswith("md5")
    with pg_login(aws_pg, "IAM:alice", creds["DbPassword"]) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "IAM:alice"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg_login(aws_pg, "IAM:alice", creds["DbPassword"][:-3] + "AA=")

    creds = rs.get_cluster_credentials(DbUser="alice", ClusterIdentifier="scramcluster")
    assert _stored_secret(aws_pg, "IAM:alice").startswith("SCRAM-SHA-256$4096:")
    with pg_login(aws_pg, "IAM:alice", creds["DbPassword"]) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_password_expires_in_postgres(aws_standin, aws_pg):
    aws_standin.patch_world({"lifetimes": {"db": 4}})
    creds = aws_standin.client("redshift").get_cluster_credentials(
        DbUser="alice", ClusterIdentifier="examplecluster")
    assert creds["Expiration"].timestamp() - time.time() < 5
    session = pg_login(aws_pg, "IAM:alice", creds["DbPassword"])
    time.sleep(max(0.0, creds["Expiration"].timestamp() - time.time()) + 0.5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg_login(aws_pg, "IAM:alice", creds["DbPassword"])
    # A session opened before expiry keeps working (PostgreSQL, like Redshift, checks only
    # at login).
    assert session.execute("SELECT 1").fetchone()[0] == 1
    session.close()


def test_autocreate_and_missing_user(aws_standin, aws_pg):
    rs = aws_standin.client("redshift")
    # Without AutoCreate a missing user still gets credentials; the login fails.
    creds = rs.get_cluster_credentials(DbUser="zed", ClusterIdentifier="examplecluster")
    assert creds["DbUser"] == "IAM:zed"
    assert aws_pg.sql_value("SELECT count(*) FROM pg_roles WHERE rolname = 'IAM:zed'") == 0
    with pytest.raises(psycopg.OperationalError):
        pg_login(aws_pg, "IAM:zed", creds["DbPassword"])
    creds = rs.get_cluster_credentials(DbUser="zed", ClusterIdentifier="examplecluster",
                                       AutoCreate=True)
    assert creds["DbUser"] == "IAMA:zed"
    with pg_login(aws_pg, "IAMA:zed", creds["DbPassword"]) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "IAMA:zed"
    # Serverless creates IAM:<user> / IAMR:<role> on first use.
    creds = aws_standin.client("redshift-serverless").get_credentials(workgroupName="wg1")
    with pg_login(aws_pg, creds["dbUser"], creds["dbPassword"]) as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "IAM:rsproxy"


# -- faults -----------------------------------------------------------------------------------


def test_fault_throttle_then_retry(aws_standin):
    rs = aws_standin.client("redshift")
    aws_standin.fault("GetClusterCredentials", "throttle")
    with pytest.raises(ClientError) as e:
        rs.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster")
    assert client_error(e) == ("Throttling", "Rate exceeded", 400)
    # botocore's standard retry mode retries Throttling; two faults then success.
    aws_standin.reset()
    aws_standin.fault("GetClusterCredentials", "throttle", count=2)
    retrying = aws_standin.client("redshift",
                                  retries={"total_max_attempts": 3, "mode": "standard"})
    out = retrying.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster")
    assert out["ResponseMetadata"]["RetryAttempts"] == 2
    assert aws_standin.calls() == {"GetClusterCredentials": 3}
    assert aws_standin.calls(by_key=True) == {PROXY_KEY: {"GetClusterCredentials": 3}}
    codes = [r["code"] for r in aws_standin.requests()]
    assert codes == ["Throttling", "Throttling", None]
    # JSON operations throttle with ThrottlingException.
    aws_standin.fault("GetCredentials", "throttle")
    with pytest.raises(ClientError) as e:
        aws_standin.client("redshift-serverless").get_credentials(workgroupName="wg1")
    assert client_error(e)[0] == "ThrottlingException"


def test_fault_error_and_5xx(aws_standin):
    rs = aws_standin.client("redshift")
    aws_standin.fault("DescribeClusters", "error", code="AccessDenied", status=403,
                      message="injected")
    with pytest.raises(ClientError) as e:
        rs.describe_clusters()
    assert client_error(e) == ("AccessDenied", "injected", 403)
    for mode, status in (("unavailable", 503), ("internal", 500), ("503", 503)):
        aws_standin.fault("DescribeClusters", mode)
        with pytest.raises(ClientError) as e:
            rs.describe_clusters()
        assert client_error(e)[2] == status
    rs.describe_clusters()  # every fault consumed
    # "*" matches any operation; a negative count lasts until reset.
    aws_standin.fault("*", "throttle", count=-1)
    for _ in range(3):
        with pytest.raises(ClientError):
            rs.describe_clusters()
    aws_standin.reset()
    rs.describe_clusters()


def test_fault_stall_garbage_truncated_partial(aws_standin):
    rs = aws_standin.client("redshift", read_timeout=10)
    aws_standin.fault("DescribeClusters", "stall", seconds=1.5)
    t0 = time.monotonic()
    rs.describe_clusters()
    assert time.monotonic() - t0 >= 1.4
    aws_standin.fault("DescribeClusters", "stall", seconds=5)
    quick = aws_standin.client("redshift", read_timeout=1)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        quick.describe_clusters()

    for mode in ("garbage", "partial"):
        aws_standin.fault("GetClusterCredentials", mode)
        status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY))
        assert status == 200
        assert "</GetClusterCredentialsResponse>" not in text
        aws_standin.fault("GetClusterCredentials", mode)
        with pytest.raises(Exception) as e:
            rs.get_cluster_credentials(DbUser="alice", ClusterIdentifier="examplecluster")
        assert not isinstance(e.value, ClientError) or \
            e.value.response["Error"].get("Code") != "SignatureDoesNotMatch"

    aws_standin.fault("GetClusterCredentials", "truncated")
    conn = http.client.HTTPConnection("127.0.0.1", aws_standin.port, timeout=10)
    req = sign(aws_standin, "redshift", GCC_BODY)
    headers = dict(req.headers.items())
    headers["Host"] = f"localhost:{aws_standin.port}"
    conn.request("POST", "/", body=req.body, headers=headers)
    r = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    conn.close()


def test_fault_validation(aws_standin):
    for doc in ({"mode": "throttle"}, {"op": "X", "mode": "explode"},
                {"op": "X", "mode": "error"}, {"op": "X", "mode": "throttle", "count": 0},
                {"op": "X", "mode": "stall", "seconds": "soon"}):
        with pytest.raises(AssertionError, match="-> 400"):
            aws_standin._control("POST", "faults", doc)


# -- control API --------------------------------------------------------------------------------


def test_keys_endpoint(aws_standin):
    static = aws_standin.key(PROXY_KEY)
    assert static["secret"] == secret_of(aws_standin.world, PROXY_KEY)
    assert static["session_token"] is None and static["expiration"] is None
    assert static["arn"] == "arn:aws:iam::123456789012:user/rsproxy"
    assert static["s3"] == ["s3://*"]
    assert aws_standin.key("AKIANOSUCHKEY0000000") is None

    c = aws_standin.client("sts").assume_role(RoleArn=APP_ROLE,
                                              RoleSessionName="kk")["Credentials"]
    minted = aws_standin.key(c["AccessKeyId"])
    assert minted["secret"] == c["SecretAccessKey"]
    assert minted["session_token"] == c["SessionToken"]
    assert abs(minted["expiration"] - c["Expiration"].timestamp()) < 1
    assert minted["role_arn"] == APP_ROLE


def test_assume_for_redshift(aws_standin):
    ok = aws_standin.assume_for_redshift("examplecluster", COPY_ROLE)
    assert "error" not in ok, ok
    assert ok["role_arn"] == COPY_ROLE and ok["s3"] == ["s3://rsproxy-test/*"]
    assert aws_standin.key(ok["access_key_id"])["session_token"] == ok["session_token"]
    chained = aws_standin.assume_for_redshift("examplecluster", f"{COPY_ROLE},{XACCT_ROLE}")
    assert chained["role_arn"] == XACCT_ROLE and chained["s3"] == ["s3://rsproxy-other/*"]
    assert aws_standin.assume_for_redshift("examplecluster", "default")["role_arn"] == COPY_ROLE

    # Not attached to the cluster (the first role must be).
    err = aws_standin.assume_for_redshift("examplecluster", XACCT_ROLE, user="alice")["error"]
    assert err == ("User arn:aws:redshift:us-east-1:123456789012:dbuser:examplecluster/alice "
                   f"is not authorized to assume IAM Role {XACCT_ROLE}")
    # A broken chain: the second role does not trust the first.
    err = aws_standin.assume_for_redshift("examplecluster", f"{COPY_ROLE},{APP_ROLE}")["error"]
    assert err.endswith(f"is not authorized to assume IAM Role {APP_ROLE}")
    assert "at most 10" in aws_standin.assume_for_redshift(
        "examplecluster", ",".join([COPY_ROLE] * 11))["error"]
    assert "spaces" in aws_standin.assume_for_redshift(
        "examplecluster", f"{COPY_ROLE}, {XACCT_ROLE}")["error"]
    assert aws_standin.assume_for_redshift("nosuch", COPY_ROLE)["error"] == \
        "Cluster nosuch not found."
    # The scramcluster has no role attached.
    assert "not authorized" in aws_standin.assume_for_redshift("scramcluster",
                                                               COPY_ROLE)["error"]


def test_world_patch_validation(aws_standin):
    with pytest.raises(AssertionError, match="-> 400"):
        aws_standin.patch_world({"account": "12"})
    with pytest.raises(AssertionError, match="-> 400"):
        aws_standin.patch_world({"lifetimes": {"nonsense": 1}})
    aws_standin.patch_world({"principals": {NOPERMS_KEY: None}})
    assert NOPERMS_KEY not in aws_standin.live_world()["principals"]
    assert aws_standin.key(NOPERMS_KEY) is None
    # A cluster still being created has no endpoint (discovery must cope).
    aws_standin.patch_world({"clusters": {"scramcluster": {"endpoint": None,
                                                           "status": "creating"}}})
    c = aws_standin.client("redshift").describe_clusters(
        ClusterIdentifier="scramcluster")["Clusters"][0]
    assert c["ClusterStatus"] == "creating" and "Endpoint" not in c


def test_concurrent_requests_are_served_while_one_stalls(aws_standin):
    import concurrent.futures
    aws_standin.fault("DescribeClusters", "stall", seconds=8)
    with concurrent.futures.ThreadPoolExecutor(max_workers=21) as pool:
        slow = pool.submit(aws_standin.client("redshift").describe_clusters)
        time.sleep(0.3)
        fast = [pool.submit(lambda: aws_standin.client("redshift").get_cluster_credentials(
            DbUser="alice", ClusterIdentifier="examplecluster")) for _ in range(20)]
        users = {f.result()["DbUser"] for f in fast}
        # All twenty were answered while the stalled call was still waiting.
        assert not slow.done()
        assert slow.result()["Clusters"]
    assert users == {"IAM:alice"}
    assert aws_standin.calls()["GetClusterCredentials"] == 20


# -- credential endpoints ---------------------------------------------------------------------


def test_imds_v2_flow(aws_standin):
    from botocore.utils import InstanceMetadataFetcher
    fetcher = InstanceMetadataFetcher(timeout=5, num_attempts=1,
                                      base_url=aws_standin.url + "/")
    creds = fetcher.retrieve_iam_role_credentials()
    assert creds["role_name"] == "rsproxy-instance-role"
    sts = aws_standin.client("sts", akid=creds["access_key"], secret=creds["secret_key"],
                             token=creds["token"])
    assert sts.get_caller_identity()["Arn"].startswith(
        "arn:aws:sts::123456789012:assumed-role/rsproxy-instance-role/")

    # The raw rules: a token needs a valid TTL header; metadata needs a valid token.
    status, _, _ = send(aws_standin, method="PUT", path="/latest/api/token")
    assert status == 400
    status, _, _ = send(aws_standin, method="PUT", path="/latest/api/token",
                        headers={"x-aws-ec2-metadata-token-ttl-seconds": "21601"})
    assert status == 400
    status, _, _ = send(aws_standin, method="PUT", path="/latest/api/token",
                        headers={"x-aws-ec2-metadata-token-ttl-seconds": "60",
                                 "X-Forwarded-For": "10.0.0.1"})
    assert status == 403
    status, _, token = send(aws_standin, method="PUT", path="/latest/api/token",
                            headers={"x-aws-ec2-metadata-token-ttl-seconds": "1"})
    assert status == 200 and token
    path = "/latest/meta-data/iam/security-credentials/"
    assert send(aws_standin, method="GET", path=path)[0] == 401
    assert send(aws_standin, method="GET", path=path,
                headers={"x-aws-ec2-metadata-token": "bogus"})[0] == 401
    good = {"x-aws-ec2-metadata-token": token}
    assert send(aws_standin, method="GET", path=path, headers=good)[2] == "rsproxy-instance-role"
    assert send(aws_standin, method="GET", path=path + "other-role", headers=good)[0] == 404
    assert send(aws_standin, method="GET", path="/latest/meta-data/placement/region",
                headers=good)[2] == "us-east-1"
    time.sleep(1.2)
    assert send(aws_standin, method="GET", path=path, headers=good)[0] == 401
    calls = aws_standin.calls()
    assert calls["IMDSToken"] == 5 and calls["IMDSCredentials"] == 2  # one was a 404


def test_imds_short_lifetime(aws_standin):
    aws_standin.patch_world({"lifetimes": {"imds": 2}})
    status, _, token = send(aws_standin, method="PUT", path="/latest/api/token",
                            headers={"x-aws-ec2-metadata-token-ttl-seconds": "60"})
    status, _, body = send(aws_standin, method="GET",
                           path="/latest/meta-data/iam/security-credentials/"
                                "rsproxy-instance-role",
                           headers={"x-aws-ec2-metadata-token": token})
    doc = json.loads(body)
    assert doc["Code"] == "Success" and doc["Type"] == "AWS-HMAC"
    rs = aws_standin.client("redshift", akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"],
                            token=doc["Token"])
    rs.describe_clusters()
    time.sleep(2.2)
    with pytest.raises(ClientError) as e:
        rs.describe_clusters()
    assert client_error(e)[0] == "ExpiredToken"


def test_container_credentials(aws_standin, monkeypatch):
    from botocore.credentials import ContainerProvider
    token = aws_standin.world["container"]["token"]
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": aws_standin.container_uri,
           "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}
    creds = ContainerProvider(environ=env).load().get_frozen_credentials()
    assert creds.access_key.startswith("ASIA")
    sts = aws_standin.client("sts", akid=creds.access_key, secret=creds.secret_key,
                             token=creds.token)
    assert "assumed-role/rsproxy-task-role/" in sts.get_caller_identity()["Arn"]
    path = urllib.parse.urlsplit(aws_standin.container_uri).path
    assert send(aws_standin, method="GET", path=path)[0] == 401
    assert send(aws_standin, method="GET", path=path,
                headers={"Authorization": token + "x"})[0] == 403
    status, _, body = send(aws_standin, method="GET", path=path,
                           headers={"Authorization": token})
    doc = json.loads(body)
    assert status == 200 and set(doc) >= {"AccessKeyId", "SecretAccessKey", "Token",
                                          "Expiration"}
    # Faults apply to the credential endpoints too.
    aws_standin.fault("ContainerCredentials", "unavailable")
    assert send(aws_standin, method="GET", path=path,
                headers={"Authorization": token})[0] == 503


# -- TLS and the process contract ------------------------------------------------------------


def test_tls(aws_standin_factory, aws_world, aws_tls):
    s = aws_standin_factory(world=aws_world, tls=True)
    assert s.url.startswith("https://localhost:")
    ident = s.client("sts").get_caller_identity()
    assert ident["Arn"].endswith(":user/rsproxy")
    assert s.calls() == {"GetCallerIdentity": 1}
    # A client that does not trust the test CA refuses the stand-in.
    import boto3
    bare = boto3.client("sts", region_name="us-east-1", endpoint_url=s.url,
                        aws_access_key_id=PROXY_KEY,
                        aws_secret_access_key=secret_of(aws_world, PROXY_KEY),
                        config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.SSLError):
        bare.get_caller_identity()
    # Plain HTTP to the TLS port fails too.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/_standin/health")
        conn.getresponse().read()
    conn.close()
    ctx = ssl.create_default_context(cafile=aws_tls[2])
    conn = http.client.HTTPSConnection("localhost", s.port, timeout=5, context=ctx)
    conn.request("GET", "/_standin/health")
    assert json.loads(conn.getresponse().read()) == {"ok": True}
    conn.close()


def test_log_and_clean_exit(aws_standin_factory, aws_world):
    s = aws_standin_factory(world=aws_world)
    c = s.client("sts").assume_role(RoleArn=APP_ROLE, RoleSessionName="log")["Credentials"]
    s.client("redshift").get_cluster_credentials(DbUser="alice",
                                                 ClusterIdentifier="examplecluster")
    assert s.stop() == 0
    log = s.log_text()
    assert "op=AssumeRole key=AKIAPROXYTEST0000001" in log
    assert "op=GetClusterCredentials" in log and "-> 200" in log
    assert c["SecretAccessKey"] not in log and c["SessionToken"] not in log
    assert "aws-standin: stopped" in log


def test_bad_world_file_fails_startup(aws_standin_factory):
    bad = make_world()
    bad["account"] = "not-an-account"
    s = aws_standin_factory(world=bad, start=False)
    with pytest.raises(Exception, match="did not start"):
        s.start(timeout=10)
    assert "account: a 12-digit string" in s.log_text()
    s.exit_code = 0  # it exited with 2 by design; the fixture's exit check is not about this


def test_malformed_http_and_bodies(aws_standin):
    import socket
    # Not HTTP at all: an error page (http.server takes it for HTTP/0.9), then the stand-in
    # keeps serving.
    with socket.create_connection(("127.0.0.1", aws_standin.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        assert b"Error code: 400" in s.recv(4096)
    # Malformed JSON to a JSON 1.1 operation.
    status, headers, text = send(aws_standin, sign(aws_standin, "redshift-serverless", "{not json",
                                                   JSON11,
                                                   target="RedshiftServerless.GetWorkgroup"))
    assert (status, headers["x-amzn-errortype"]) == (400, "SerializationException")
    # An unknown JSON target and a query body with the wrong content type.
    status, headers, _ = send(aws_standin, sign(aws_standin, "redshift-serverless", "{}",
                                                JSON11, target="RedshiftServerless.DropAll"))
    assert headers["x-amzn-errortype"] == "UnknownOperationException"
    status, _, text = send(aws_standin, sign(aws_standin, "redshift", GCC_BODY,
                                             content_type="text/plain"))
    assert (status, query_error(text)[1]) == (400, "InvalidParameterValue")
    # An oversized body is refused before it is read.
    status, _, _ = send(aws_standin, body=b"x", headers={"Content-Length": str(2 << 20)})
    assert status == 413
    assert aws_standin.client("redshift").describe_clusters()["Clusters"]
