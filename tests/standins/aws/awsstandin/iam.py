"""IAM as far as the stand-in needs it: ARNs, permission checks and role trust.

A policy is the world file's "allow" and "deny" lists on a principal (long-term keys) or on a role
(every temporary key minted for it). An entry is "service:Action" (any resource) or
{"action": pattern(s), "resource": pattern(s)}; patterns use * and ?, actions compare without case
as IAM does, resources with case. An explicit deny wins; no matching allow is an implicit deny.
"""

from fnmatch import fnmatchcase

from .errors import ApiError


def _as_list(val):
    return val if isinstance(val, list) else [val]


def _matches(stmt, action, resource):
    if isinstance(stmt, str):
        actions, resources = [stmt], ["*"]
    else:
        actions, resources = _as_list(stmt["action"]), _as_list(stmt.get("resource", "*"))
    return (any(fnmatchcase(action.lower(), a.lower()) for a in actions)
            and any(fnmatchcase(resource, r) for r in resources))


def is_allowed(principal, action, resource):
    policy = principal["policy"]
    if any(_matches(s, action, resource) for s in policy.get("deny", [])):
        return False
    return any(_matches(s, action, resource) for s in policy.get("allow", []))


def require(principal, action, resource):
    """Raises AWS's AccessDenied unless the principal may perform `action` on `resource`."""
    if not is_allowed(principal, action, resource):
        raise ApiError("AccessDenied",
                       f"User: {principal['arn']} is not authorized to perform: {action} on "
                       f"resource: {resource}", 403)


def name_of(arn):
    """The last path element of an IAM user or role ARN ('arn:...:user/path/alice' -> 'alice')."""
    return arn.rsplit("/", 1)[-1]


def db_user_for(principal):
    """The database user a principal maps to under WithIAM and Serverless: IAM:<user> for an IAM
    user, IAMR:<role> for a role session (MG data-api-access.md)."""
    if principal.get("role_arn"):
        return "IAMR:" + name_of(principal["role_arn"])
    return "IAM:" + name_of(principal["arn"])


def trusts(world, role, caller_arn, caller_role_arn=None):
    """Whether a role's trust list admits the caller.

    Trust entries are principal ARNs (an IAM user or a role; a role entry admits every session of
    that role), the account root "arn:aws:iam::<acct>:root" (any principal of the account),
    service principals such as "redshift.amazonaws.com", "web_identity", or "*".
    """
    trust = role.get("trust", [])
    if "*" in trust or caller_arn in trust:
        return True
    if caller_role_arn and caller_role_arn in trust:
        return True
    root = f"arn:aws:iam::{world.account}:root"
    return root in trust and caller_arn.split(":")[4] == world.account


def assumed_role_arn(world, role_arn, session):
    return f"arn:aws:sts::{world.account}:assumed-role/{name_of(role_arn)}/{session}"


def redshift_arn(world, kind, rest):
    return f"arn:aws:redshift:{world.region}:{world.account}:{kind}:{rest}"
