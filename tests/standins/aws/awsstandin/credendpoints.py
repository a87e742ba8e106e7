"""The credential endpoints of the provider chain: ECS/EKS container credentials and EC2 IMDSv2.

Container: GET on the world's container path, with the Authorization header equal to the world's
token when one is set; the answer is botocore's expected JSON (AccessKeyId, SecretAccessKey,
Token, Expiration). IMDSv2: PUT /latest/api/token with the TTL header yields a session token; the
metadata paths then require it in x-aws-ec2-metadata-token (401 without a valid one, unless the
world enables IMDSv1). Every fetch of credentials mints fresh temporary keys for the configured
role, with the world's lifetimes, so tests can watch a provider refresh.
"""

import json
import secrets

from . import iam
from .query import iso_s
from .wire import Response, json_response

IMDS_PREFIX = "/latest/"
CREDS_PATH = "/latest/meta-data/iam/security-credentials/"


def container_path(world):
    return world.section("container").get("path", "/v2/credentials/rsproxy")


def identify(world, method, path):
    """The operation name for a credential-endpoint request, or None if the path is not one."""
    if world.data.get("container") is not None and path == container_path(world):
        return "ContainerCredentials"
    if not path.startswith(IMDS_PREFIX):
        return None
    if path == "/latest/api/token":
        return "IMDSToken"
    if path == CREDS_PATH:
        return "IMDSRoleName"
    if path.startswith(CREDS_PATH):
        return "IMDSCredentials"
    return "IMDSMetadata"


def _role_arn(world, name_or_arn):
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:iam::{world.account}:role/{name_or_arn}"


def authorize(world, req):
    """None when the request may proceed, else the error Response."""
    if req.op == "ContainerCredentials":
        want = world.section("container").get("token")
        if req.method != "GET":
            return Response(405, "Method Not Allowed")
        if want is None:
            return None
        got = req.headers.get("Authorization")
        if got is None:
            return json_response(401, {"code": "AccessDenied",
                                       "message": "Missing Authorization header"},
                                 code="AccessDenied")
        if not secrets.compare_digest(got.encode(), want.encode()):
            return json_response(403, {"code": "AccessDenied",
                                       "message": "Invalid Authorization token"},
                                 code="AccessDenied")
        return None
    imds = world.data.get("imds")
    if imds is None:
        return Response(404, "Not Found")
    if req.op == "IMDSToken":
        if req.method != "PUT":
            return Response(405, "Method Not Allowed")
        if req.headers.get("X-Forwarded-For") is not None:
            # IMDS refuses token requests that went through a proxy.
            return Response(403, "Forbidden")
        ttl = req.headers.get("x-aws-ec2-metadata-token-ttl-seconds")
        if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return Response(400, "Bad Request")
        return None
    if req.method != "GET":
        return Response(405, "Method Not Allowed")
    token = req.headers.get("x-aws-ec2-metadata-token")
    if token is None:
        return None if imds.get("v1") else Response(401, "Unauthorized")
    with world.lock:
        expiry = world.imds_tokens.get(token)
    if expiry is None or expiry <= world.now():
        return Response(401, "Unauthorized")
    return None


def serve(world, req):
    if req.op == "ContainerCredentials":
        c = world.section("container")
        role_arn = _role_arn(world, c.get("role", "rsproxy-task-role"))
        rec = world.mint_temp(iam.assumed_role_arn(world, role_arn, secrets.token_hex(16)),
                              role_arn, world.lifetime("container"), "container")
        req.note = f"minted={rec['access_key_id']}"
        return json_response(200, {
            "AccessKeyId": rec["access_key_id"], "SecretAccessKey": rec["secret"],
            "Token": rec["session_token"], "Expiration": iso_s(rec["expiration"]),
            "RoleArn": role_arn, "AccountId": world.account})

    imds = world.section("imds")
    if req.op == "IMDSToken":
        ttl = int(req.headers.get("x-aws-ec2-metadata-token-ttl-seconds"))
        token = "AQAEA" + secrets.token_urlsafe(40)
        with world.lock:
            now = world.now()
            # Forget expired tokens as new ones are issued, so the table stays small.
            for t in [t for t, exp in world.imds_tokens.items() if exp <= now]:
                del world.imds_tokens[t]
            world.imds_tokens[token] = now + ttl
        return Response(200, token, headers={"x-aws-ec2-metadata-token-ttl-seconds": str(ttl)})

    role_name = imds.get("role", "rsproxy-instance-role")
    role_arn = _role_arn(world, imds.get("role_arn", role_name))
    region = imds.get("region", world.region)
    if req.op == "IMDSRoleName":
        return Response(200, role_name)
    if req.op == "IMDSCredentials":
        if req.path[len(CREDS_PATH):] != role_name:
            return Response(404, "Not Found")
        rec = world.mint_temp(iam.assumed_role_arn(world, role_arn, "i-0standin0000000"),
                              role_arn, world.lifetime("imds"), "imds")
        req.note = f"minted={rec['access_key_id']}"
        doc = {"Code": "Success", "LastUpdated": iso_s(world.now()), "Type": "AWS-HMAC",
               "AccessKeyId": rec["access_key_id"], "SecretAccessKey": rec["secret"],
               "Token": rec["session_token"], "Expiration": iso_s(rec["expiration"])}
        return Response(200, json.dumps(doc, indent=2))
    az = imds.get("availability_zone", region + "a")
    static = {
        "/latest/meta-data/placement/region": region,
        "/latest/meta-data/placement/availability-zone": az,
        "/latest/meta-data/instance-id": "i-0standin0000000",
        "/latest/meta-data/iam/info": json.dumps({
            "Code": "Success", "LastUpdated": iso_s(world.now()),
            "InstanceProfileArn": f"arn:aws:iam::{world.account}:instance-profile/{role_name}",
            "InstanceProfileId": "AIPASTANDIN000000000"}, indent=2),
        "/latest/dynamic/instance-identity/document": json.dumps({
            "accountId": world.account, "availabilityZone": az, "region": region,
            "instanceId": "i-0standin0000000", "instanceType": "m5.large"}, indent=2),
    }
    if req.path in static:
        return Response(200, static[req.path])
    return Response(404, "Not Found")
