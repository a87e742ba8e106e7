"""The control API under /_standin/ (never signed; the stand-in binds loopback only).

Tests read call counts and the request log, arm faults, patch the world, expire keys, and the
other stand-ins look keys up (the S3 front) or assume role chains the way Redshift does (the
Redshift SQL stand-in). Answers are JSON; a malformed control request is a 400 with {"error"}.
"""

import json
import re

from . import iam
from .world import WorldError

FAULT_MODES = {"throttle", "error", "stall", "garbage", "truncated", "partial", "internal",
               "unavailable", "500", "503"}
MAX_ROLE_CHAIN = 10

# Redshift's error text when it may not assume a role for a COPY/UNLOAD (seen in the field as
# "User arn:aws:redshift:...:dbuser:<cluster>/<user> is not authorized to assume IAM Role <arn>").
_NOT_AUTHORIZED = "User {who} is not authorized to assume IAM Role {role}"


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _json_body(req):
    if not req.body:
        return {}
    try:
        doc = json.loads(req.body)
    except ValueError as e:
        raise ControlError(400, f"body is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ControlError(400, "body must be a JSON object")
    return doc


def _fault(world, doc):
    op, mode = doc.get("op"), str(doc.get("mode"))
    if not isinstance(op, str) or not op:
        raise ControlError(400, "fault: \"op\" (an operation name or \"*\") is required")
    if mode not in FAULT_MODES:
        raise ControlError(400, f"fault: mode must be one of {sorted(FAULT_MODES)}")
    count = doc.get("count", 1)
    if not isinstance(count, int) or count == 0:
        raise ControlError(400, "fault: count must be a non-zero integer (negative: until reset)")
    if mode == "error" and not isinstance(doc.get("code"), str):
        raise ControlError(400, "fault: mode error needs \"code\" (and optionally \"status\", "
                                "\"message\")")
    fault = {
        "op": op, "mode": {"500": "internal", "503": "unavailable"}.get(mode, mode),
        "remaining": count, "fired": 0,
        "code": doc.get("code"), "status": int(doc.get("status", 400)),
        "message": doc.get("message"), "seconds": float(doc.get("seconds", 30)),
    }
    with world.lock:
        world.faults.append(fault)
    return fault


def _key_doc(world, principal):
    return {
        "access_key_id": principal["access_key_id"],
        "secret": principal["secret"],
        "session_token": principal["session_token"],
        "arn": principal["arn"],
        "role_arn": principal["role_arn"],
        "s3": world.s3_patterns(principal),
        "allow": principal["policy"].get("allow", []),
        "deny": principal["policy"].get("deny", []),
        "expiration": principal["expiration"],
        "temporary": principal["temporary"],
    }


def assume_for_redshift(world, doc):
    """Assumes a comma-separated role chain for a cluster, as Redshift does for COPY/UNLOAD.

    Returns the temporary keys of the last role, or {"error": <Redshift-style text>}.
    """
    cid, roles = doc.get("cluster"), doc.get("roles")
    if not isinstance(cid, str) or not isinstance(roles, str):
        raise ControlError(400, "assume-for-redshift: \"cluster\" and \"roles\" are required "
                                "strings")
    cluster = world.section("clusters").get(cid)
    if cluster is None:
        return {"error": f"Cluster {cid} not found."}
    who = iam.redshift_arn(world, "dbuser", f"{cid}/{doc.get('user', 'rdsdb')}")
    if roles.strip().lower() == "default":
        if not cluster.get("default_iam_role"):
            # UNCONFIRMED text.
            return {"error": "Default IAM role is not set for the cluster."}
        roles = cluster["default_iam_role"]
    chain = roles.split(",")
    if any(r != r.strip() or not r for r in chain):
        # Reference §7.1: the ARNs are separated by commas with no spaces. UNCONFIRMED text.
        return {"error": f"Invalid IAM role chain '{roles}': ARNs must be separated by commas "
                         "without spaces."}
    if len(chain) > MAX_ROLE_CHAIN:
        # Reference §7.1: at most 10 roles. UNCONFIRMED text.
        return {"error": f"IAM role chain can contain at most {MAX_ROLE_CHAIN} roles."}
    known = world.section("roles")
    for r in chain:
        if not re.match(r"^arn:aws:iam::[0-9]{12}:role/.+$", r):
            # UNCONFIRMED text.
            return {"error": f"Invalid IAM Role ARN '{r}'."}
    first = chain[0]
    if first not in cluster.get("iam_roles", []) or first not in known or \
            "redshift.amazonaws.com" not in known[first].get("trust", []):
        return {"error": _NOT_AUTHORIZED.format(who=who, role=first)}
    prev = first
    for r in chain[1:]:
        role = known.get(r)
        if role is None or not iam.trusts(world, role, prev, prev):
            # The previous role is the one asking; UNCONFIRMED that Redshift names it.
            return {"error": _NOT_AUTHORIZED.format(who=prev, role=r)}
        prev = r
    rec = world.mint_temp(iam.assumed_role_arn(world, prev, "RedshiftIamRoleSession"), prev,
                          world.lifetime("redshift_role"), "redshift", chained=len(chain) > 1)
    return {
        "access_key_id": rec["access_key_id"], "secret_access_key": rec["secret"],
        "session_token": rec["session_token"], "expiration": rec["expiration"],
        "arn": rec["arn"], "role_arn": prev,
        "s3": list(known[prev].get("s3", [])),
    }


def handle(world, req):
    """(status, JSON-able document) for a /_standin/ request."""
    path, method = req.path, req.method
    try:
        if path == "/_standin/health":
            return 200, {"ok": True}
        if path == "/_standin/calls" and method == "GET":
            with world.lock:
                if "by=key" in (req.query or ""):
                    return 200, {k: dict(v) for k, v in world.calls_by_key.items()}
                return 200, dict(world.calls)
        if path == "/_standin/reset" and method == "POST":
            world.reset()
            return 200, {"ok": True}
        if path == "/_standin/requests" and method == "GET":
            with world.lock:
                return 200, list(world.requests)
        if path == "/_standin/faults":
            if method == "POST":
                return 200, {"ok": True, "fault": _fault(world, _json_body(req))}
            if method == "GET":
                with world.lock:
                    return 200, [dict(f) for f in world.faults]
            if method == "DELETE":
                with world.lock:
                    world.faults.clear()
                return 200, {"ok": True}
        if path.startswith("/_standin/keys/") and method == "GET":
            principal = world.lookup_key(path[len("/_standin/keys/"):])
            if principal is None:
                return 404, {"error": "unknown access key"}
            return 200, _key_doc(world, principal)
        if path == "/_standin/expire" and method == "POST":
            akid = _json_body(req).get("access_key_id")
            if not world.expire_key(akid):
                return 404, {"error": "not a temporary key the stand-in minted"}
            return 200, {"ok": True}
        if path == "/_standin/assume-for-redshift" and method == "POST":
            return 200, assume_for_redshift(world, _json_body(req))
        if path == "/_standin/world":
            if method == "GET":
                with world.lock:
                    return 200, world.data
            if method in ("POST", "PATCH"):
                try:
                    world.patch(_json_body(req))
                except WorldError as e:
                    raise ControlError(400, f"world: {e}") from e
                return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {method} {path}"}
    except ControlError as e:
        return e.status, {"error": str(e)}
    except (TypeError, ValueError) as e:
        # A field of the wrong type (e.g. "seconds": "soon").
        return 400, {"error": f"bad control request: {e}"}
