"""Redshift Serverless, JSON 1.1 (X-Amz-Target RedshiftServerless.*): GetCredentials and
GetWorkgroup.

Validation messages follow the Coral/Smithy form AWS JSON services use ("1 validation error
detected: Value 'x' at 'field' failed to satisfy constraint: ..."). The database user is the
caller's identity (IAM:<user> or IAMR:<role>), created in PostgreSQL on first use.
"""

import re
import uuid

from . import iam, pgroles
from .errors import ApiError
from .redshift import _apply

NAMESPACE = "com.amazonaws.redshiftserverless"
_WG_RE = re.compile(r"^[a-z0-9-]+$")


def _validation(field, value, constraint):
    shown = "null" if value is None else f"'{value}'"
    return ApiError("ValidationError",
                    f"1 validation error detected: Value {shown} at '{field}' failed to satisfy "
                    f"constraint: {constraint}", 400, json_code="ValidationException")


def _check_fields(body, allowed):
    if not isinstance(body, dict):
        raise ApiError("SerializationException", "Start of structure or map found where not "
                       "expected.", 400, json_code="SerializationException")
    for key in body:
        if key not in allowed:
            # Stricter than AWS on purpose (see query.check_known).
            raise ApiError("ValidationError", f"Unknown field '{key}' (stand-in rule: unknown "
                           "fields are refused).", 400, json_code="ValidationException")


def _check_wg_name(name):
    if not isinstance(name, str):
        raise _validation("workgroupName", name, "Member must not be null")
    if len(name) < 3:
        raise _validation("workgroupName", name,
                          "Member must have length greater than or equal to 3")
    if len(name) > 64:
        raise _validation("workgroupName", name,
                          "Member must have length less than or equal to 64")
    if not _WG_RE.match(name):
        raise _validation("workgroupName", name,
                          "Member must satisfy regular expression pattern: ^[a-z0-9-]+$")


def _wg_id(world, name):
    # Stable per (account, name), like a real workgroup's id for the life of the workgroup.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{world.account}/{name}"))


def _wg_arn(world, name):
    return (f"arn:aws:redshift-serverless:{world.region}:{world.account}:workgroup/"
            f"{_wg_id(world, name)}")


def _not_found(name):
    # UNCONFIRMED text.
    return ApiError("ResourceNotFound", f"Workgroup {name} not found.", 400,
                    json_code="ResourceNotFoundException", extra={"resourceName": name})


def get_credentials(ctx):
    world, b = ctx.world, ctx.params
    _check_fields(b, {"workgroupName", "customDomainName", "dbName", "durationSeconds"})
    name, domain = b.get("workgroupName"), b.get("customDomainName")
    if name is not None:
        _check_wg_name(name)
    if domain is not None and (not isinstance(domain, str) or not 1 <= len(domain) <= 253):
        raise _validation("customDomainName", domain,
                          "Member must have length between 1 and 253")
    if (name is None) == (domain is None):
        raise ApiError("ValidationError",  # UNCONFIRMED text
                       "You must provide either workgroupName or customDomainName.", 400,
                       json_code="ValidationException")
    duration = b.get("durationSeconds", 900)
    if not isinstance(duration, int) or isinstance(duration, bool):
        raise ApiError("SerializationException", "STRING_VALUE can not be converted to an "
                       "Integer", 400, json_code="SerializationException")
    if duration < 900:
        raise _validation("durationSeconds", duration,
                          "Member must have value greater than or equal to 900")
    if duration > 3600:
        raise _validation("durationSeconds", duration,
                          "Member must have value less than or equal to 3600")
    db_name = b.get("dbName")
    if db_name is not None and not isinstance(db_name, str):
        raise _validation("dbName", db_name, "Member must be a string")

    wgs = world.section("workgroups")
    if domain is not None:
        name = next((k for k, w in wgs.items() if w.get("custom_domain_name") == domain), None)
        if name is None:
            raise _not_found(domain)
    iam.require(ctx.principal, "redshift-serverless:GetCredentials", _wg_arn(world, name))
    wg = wgs.get(name)
    if wg is None:
        raise _not_found(name)

    db_user = iam.db_user_for(ctx.principal)
    password = pgroles.mint_password()
    expires = world.now() + world.lifetime("db", duration)
    outcome, _ = _apply(world, "workgroup/" + name, wg, db_user, password, expires, True, ())
    ctx.note = f"db_user={db_user} pg={outcome}"
    return {"dbUser": db_user, "dbPassword": password, "expiration": round(expires, 3),
            "nextRefreshTime": round(expires, 3)}


def get_workgroup(ctx):
    world, b = ctx.world, ctx.params
    _check_fields(b, {"workgroupName"})
    name = b.get("workgroupName")
    _check_wg_name(name)
    iam.require(ctx.principal, "redshift-serverless:GetWorkgroup", _wg_arn(world, name))
    wg = world.section("workgroups").get(name)
    if wg is None:
        raise _not_found(name)
    ep = wg["endpoint"]
    out = {
        "workgroupName": name,
        "workgroupId": _wg_id(world, name),
        "workgroupArn": _wg_arn(world, name),
        "namespaceName": wg.get("namespace", name + "-ns"),
        "status": wg.get("status", "AVAILABLE"),
        "baseCapacity": wg.get("base_capacity", 128),
        "enhancedVpcRouting": False,
        "publiclyAccessible": False,
        "port": ep["port"],
        "creationDate": 1704067200.0,
        "configParameters": [],
        "securityGroupIds": [],
        "subnetIds": [],
        "endpoint": {"address": ep["address"], "port": ep["port"], "vpcEndpoints": []},
    }
    if wg.get("custom_domain_name"):
        out["customDomainName"] = wg["custom_domain_name"]
    return {"workgroup": out}


OPERATIONS = {
    "GetCredentials": get_credentials,
    "GetWorkgroup": get_workgroup,
}
