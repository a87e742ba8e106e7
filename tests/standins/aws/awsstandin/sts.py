"""STS, awsQuery 2011-06-15: AssumeRole (signed), AssumeRoleWithWebIdentity (unsigned) and
GetCallerIdentity.

Keys minted here are recorded in the world, so later requests signed with them verify, and the
S3 front can look them up. Validation errors use STS's ValidationError with the Coral message
form; unknown roles and roles that do not trust the caller both answer AccessDenied, as AWS does
(it never reveals whether a role exists).
"""

import hashlib
import re
import secrets
import string

from . import iam
from .errors import ApiError
from .query import check_known, el, iso_s, response

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"

_SESSION_RE = re.compile(r"^[\w+=,.@-]*$")
_ROLE_ARN_RE = re.compile(r"^arn:aws:iam::[0-9]{12}:role/.+$")
_COMMON_PARAMS = {"RoleArn", "RoleSessionName", "DurationSeconds", "Policy"}
_LIST_PARAMS = ["PolicyArns.member", "Tags.member", "TransitiveTagKeys.member",
                "ProvidedContexts.member"]


def _validate(p, token_field=None):
    """Collects Coral-style validation errors for the AssumeRole* parameters."""
    errors = []

    def bad(value, field, constraint):
        shown = "null" if value is None else f"'{value}'"
        errors.append(f"Value {shown} at '{field}' failed to satisfy constraint: {constraint}")

    arn = p.get("RoleArn")
    if arn is None:
        bad(None, "roleArn", "Member must not be null")
    elif len(arn) < 20:
        bad(arn, "roleArn", "Member must have length greater than or equal to 20")
    elif len(arn) > 2048:
        bad(arn, "roleArn", "Member must have length less than or equal to 2048")
    name = p.get("RoleSessionName")
    if name is None:
        bad(None, "roleSessionName", "Member must not be null")
    elif len(name) < 2:
        bad(name, "roleSessionName", "Member must have length greater than or equal to 2")
    elif len(name) > 64:
        bad(name, "roleSessionName", "Member must have length less than or equal to 64")
    elif not _SESSION_RE.match(name):
        bad(name, "roleSessionName",
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*")
    dur = p.get("DurationSeconds")
    if dur is not None:
        if not dur.isdigit():
            bad(dur, "durationSeconds", "Member must be an integer")
        elif int(dur) < 900:
            bad(dur, "durationSeconds", "Member must have value greater than or equal to 900")
        elif int(dur) > 43200:
            bad(dur, "durationSeconds", "Member must have value less than or equal to 43200")
    ext = p.get("ExternalId")
    if ext is not None and not 2 <= len(ext) <= 1224:
        bad(ext, "externalId", "Member must have length between 2 and 1224")
    if token_field:
        tok = p.get("WebIdentityToken")
        if tok is None:
            bad(None, "webIdentityToken", "Member must not be null")
        elif not 4 <= len(tok) <= 20000:
            # Never echo a token back: it is a credential.
            errors.append("Value at 'webIdentityToken' failed to satisfy constraint: Member "
                          "must have length between 4 and 20000")
    if errors:
        n = len(errors)
        raise ApiError("ValidationError",
                       f"{n} validation error{'s' if n > 1 else ''} detected: " +
                       "; ".join(errors), 400)
    if not _ROLE_ARN_RE.match(arn):
        raise ApiError("ValidationError", f"{arn} is invalid", 400)  # UNCONFIRMED text


def _role_id(role_arn):
    # A stable AROA... id per role, like IAM's unique role ids.
    h = int.from_bytes(hashlib.sha256(role_arn.encode()).digest()[:12], "big")
    chars = string.ascii_uppercase + string.digits
    out = ""
    for _ in range(17):
        h, r = divmod(h, 36)
        out += chars[r]
    return "AROA" + out


def _creds_xml(rec, role_arn, session):
    return "\n".join([
        "    <Credentials>",
        "      " + el("AccessKeyId", rec["access_key_id"]),
        "      " + el("SecretAccessKey", rec["secret"]),
        "      " + el("SessionToken", rec["session_token"]),
        "      " + el("Expiration", iso_s(rec["expiration"])),
        "    </Credentials>",
        "    <AssumedRoleUser>",
        "      " + el("AssumedRoleId", f"{_role_id(role_arn)}:{session}"),
        "      " + el("Arn", rec["arn"]),
        "    </AssumedRoleUser>",
    ])


def _session_duration(world, role, p, chained):
    requested = int(p.get("DurationSeconds") or 3600)
    if chained and requested > 3600:
        raise ApiError("ValidationError",
                       "The requested DurationSeconds exceeds the 1 hour session limit for roles "
                       "assumed by role chaining.", 400)
    if requested > int(role.get("max_session_duration", 3600)):
        raise ApiError("ValidationError",
                       "The requested DurationSeconds exceeds the MaxSessionDuration set for this "
                       "role.", 400)
    return requested


def assume_role(ctx):
    world, p, caller = ctx.world, ctx.params, ctx.principal
    check_known(p, _COMMON_PARAMS | {"ExternalId", "SerialNumber", "TokenCode",
                                      "SourceIdentity"}, _LIST_PARAMS)
    _validate(p)
    role_arn = p["RoleArn"]
    denied = ApiError("AccessDenied", f"User: {caller['arn']} is not authorized to perform: "
                      f"sts:AssumeRole on resource: {role_arn}", 403)
    role = world.section("roles").get(role_arn)
    if (role is None or not iam.is_allowed(caller, "sts:AssumeRole", role_arn)
            or not iam.trusts(world, role, caller["arn"], caller.get("role_arn"))):
        raise denied
    if role.get("external_id") is not None and p.get("ExternalId") != role["external_id"]:
        raise denied
    chained = caller["temporary"]
    duration = _session_duration(world, role, p, chained)
    session = p["RoleSessionName"]
    rec = world.mint_temp(iam.assumed_role_arn(world, role_arn, session), role_arn,
                          world.lifetime("sts", duration), "AssumeRole", chained)
    ctx.note = f"role={role_arn} minted={rec['access_key_id']}"
    inner = _creds_xml(rec, role_arn, session)
    if p.get("SourceIdentity"):
        inner += "\n    " + el("SourceIdentity", p["SourceIdentity"])
    return response("AssumeRole", NAMESPACE, inner, ctx.request_id)


def _find_web_token(world, token):
    """The world's entry for a web identity token (normalised to a dict), or None."""
    for entry in world.section("web_identity").get("issuer_tokens", []):
        if isinstance(entry, str):
            entry = {"token": entry}
        if secrets.compare_digest(entry.get("token", "").encode(), token.encode()):
            return entry
    return None


def assume_role_with_web_identity(ctx):
    world, p = ctx.world, ctx.params
    check_known(p, _COMMON_PARAMS | {"WebIdentityToken", "ProviderId"}, ["PolicyArns.member"])
    _validate(p, token_field=True)
    entry = _find_web_token(world, p["WebIdentityToken"])
    if entry is None:
        # The model's documented description of InvalidIdentityTokenException.
        raise ApiError("InvalidIdentityToken",
                       "The web identity token that was passed could not be validated by AWS. "
                       "Get a new identity token from the identity provider and then retry the "
                       "request.", 400)
    now = world.now()
    if entry.get("expires") is not None and entry["expires"] <= now:
        raise ApiError("ExpiredTokenException",
                       f"Token expired: current date/time {int(now)} must be before the "
                       f"expiration date/time {int(entry['expires'])}", 400)
    role_arn = p["RoleArn"]
    role = world.section("roles").get(role_arn)
    if role is None or "web_identity" not in role.get("trust", []):
        raise ApiError("AccessDenied", "Not authorized to perform "
                       "sts:AssumeRoleWithWebIdentity", 403)
    duration = _session_duration(world, role, p, False)
    session = p["RoleSessionName"]
    rec = world.mint_temp(iam.assumed_role_arn(world, role_arn, session), role_arn,
                          world.lifetime("sts", duration), "AssumeRoleWithWebIdentity")
    ctx.note = f"role={role_arn} minted={rec['access_key_id']}"
    wi = world.section("web_identity")
    provider = wi.get("provider", f"oidc.eks.{world.region}.amazonaws.com/id/STANDIN")
    inner = "\n".join([
        _creds_xml(rec, role_arn, session),
        "    " + el("SubjectFromWebIdentityToken",
                    entry.get("sub", "system:serviceaccount:default:rsproxy")),
        "    " + el("Provider", provider),
        "    " + el("Audience", wi.get("audience", "sts.amazonaws.com")),
    ])
    return response("AssumeRoleWithWebIdentity", NAMESPACE, inner, ctx.request_id)


def get_caller_identity(ctx):
    check_known(ctx.params, set())
    caller = ctx.principal
    if caller["temporary"]:
        user_id = f"{_role_id(caller['role_arn'])}:{caller['arn'].rsplit('/', 1)[-1]}"
    else:
        user_id = "AIDA" + _role_id(caller["arn"])[4:]
    inner = "\n".join(["    " + el("UserId", user_id),
                       "    " + el("Account", ctx.world.account),
                       "    " + el("Arn", caller["arn"])])
    return response("GetCallerIdentity", NAMESPACE, inner, ctx.request_id)


OPERATIONS = {
    "AssumeRole": assume_role,
    "AssumeRoleWithWebIdentity": assume_role_with_web_identity,
    "GetCallerIdentity": get_caller_identity,
}
UNSIGNED = {"AssumeRoleWithWebIdentity"}
