"""Redshift (provisioned), awsQuery 2012-12-01: GetClusterCredentials,
GetClusterCredentialsWithIAM and DescribeClusters.

Validation follows the API reference and the observed service messages in reference §2 and §10;
where the exact AWS text is unknown the message is marked UNCONFIRMED. The order of checks is
AWS's: parameters, then IAM (which needs only the ARN, so a caller without permission learns
nothing about which clusters exist), then the cluster. Minted passwords are applied to the
cluster's PostgreSQL through pgroles.
"""

import re
import sys
import threading

from . import iam, pgroles
from .errors import ApiError
from .query import check_known, el, get_bool, get_int, get_list, iso_ms, response

NAMESPACE = "http://redshift.amazonaws.com/doc/2012-12-01/"
VERSION = "2012-12-01"

# Reference §10.5: the service's own text for a DbUser it refuses.
DBUSER_RULE = ("DbUser parameter must be lowercase, begin with a letter, contain only "
               "alphanumeric characters, underscore ('_'), plus sign ('+'), dot ('.'), at ('@'), "
               "or hyphen ('-'), and be less than 128 characters.")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_+.@-]*$")

_ensured = set()
_ensured_lock = threading.Lock()


def _name_ok(value):
    return bool(_NAME_RE.match(value)) and len(value) < 128 and value != "public"


def _duration_error(val):
    # UNCONFIRMED text; the range itself (900..3600) is documented.
    return ApiError("InvalidParameterValue",
                    f"The value of DurationSeconds ({val}) must be between 900 and 3600.", 400)


def _find_cluster(world, params):
    """(cluster id, cluster dict or None) from ClusterIdentifier or CustomDomainName."""
    cid = params.get("ClusterIdentifier")
    domain = params.get("CustomDomainName")
    if cid and domain:
        raise ApiError("InvalidParameterCombination",  # UNCONFIRMED text
                       "Specify either ClusterIdentifier or CustomDomainName, not both.", 400)
    clusters = world.section("clusters")
    if domain:
        for key, c in clusters.items():
            if c.get("custom_domain_name") == domain:
                return key, c
        raise ApiError("ClusterNotFound",  # UNCONFIRMED text
                       f"Cluster with custom domain name {domain} not found.", 404)
    if not cid:
        raise ApiError("MissingParameter",  # UNCONFIRMED text
                       "The request must contain the parameter ClusterIdentifier or "
                       "CustomDomainName.", 400)
    return cid, clusters.get(cid)


def _not_found(cid):
    return ApiError("ClusterNotFound", f"Cluster {cid} not found.", 404)


def _apply(world, cid, cluster, db_user, password, expires, create, groups):
    """Stores the password in the cluster's PostgreSQL, creating the world's declared users and
    groups the first time. A cluster without pg_admin_dsn only mints (tests of the API alone)."""
    dsn = cluster.get("pg_admin_dsn")
    if not dsn:
        return "not-applied", []
    users, dgroups = cluster.get("db_users", []), cluster.get("db_groups", [])
    key = (cid, dsn, tuple(users), tuple(dgroups))
    try:
        with _ensured_lock:
            if key not in _ensured:
                pgroles.ensure_roles(dsn, users, dgroups)
                _ensured.add(key)
        return pgroles.apply_password(dsn, db_user, password, expires,
                                      cluster.get("password_encryption", "md5"), create, groups)
    except pgroles.PgApplyError as e:
        # Not an AWS behaviour: the stand-in's own backend failed. Say so loudly.
        print(f"aws-standin: applying credentials for {db_user} on {cid} failed: {e}",
              file=sys.stderr, flush=True)
        raise ApiError("InternalFailure",
                       f"The stand-in could not apply the password in PostgreSQL: {e}", 500)


def _creds_xml(db_user, password, expires, next_refresh=None):
    return "\n".join(x for x in (
        "    " + el("DbUser", db_user),
        "    " + el("DbPassword", password),
        "    " + el("Expiration", iso_ms(expires)),
        ("    " + el("NextRefreshTime", iso_ms(next_refresh))) if next_refresh else "",
    ) if x)


def get_cluster_credentials(ctx):
    world, p = ctx.world, ctx.params
    check_known(p, {"DbUser", "DbName", "ClusterIdentifier", "DurationSeconds", "AutoCreate",
                    "CustomDomainName"}, ["DbGroups.DbGroup"])
    user = p.get("DbUser")
    if user is None:
        raise ApiError("MissingParameter",  # UNCONFIRMED text
                       "The request must contain the parameter DbUser.", 400)
    if not _name_ok(user):
        raise ApiError("InvalidParameterValue", DBUSER_RULE, 400)
    db_name = p.get("DbName")
    if db_name is not None and not _name_ok(db_name):
        raise ApiError("InvalidParameterValue",  # UNCONFIRMED text, modelled on DBUSER_RULE
                       DBUSER_RULE.replace("DbUser", "DbName"), 400)
    duration = get_int(p, "DurationSeconds", 900, 900, 3600, _duration_error)
    auto_create = get_bool(p, "AutoCreate", False)
    groups = get_list(p, "DbGroups.DbGroup")
    for g in groups:
        if not _name_ok(g):
            raise ApiError("InvalidParameterValue",  # UNCONFIRMED text, modelled on DBUSER_RULE
                           DBUSER_RULE.replace("DbUser parameter", "DbGroups parameter"), 400)

    # A custom domain must be resolved to know the ARN; a missing cluster id is reported only
    # after the IAM check.
    cid, cluster = _find_cluster(world, p)
    principal = ctx.principal
    iam.require(principal, "redshift:GetClusterCredentials",
                iam.redshift_arn(world, "dbuser", f"{cid}/{user}"))
    if db_name:
        iam.require(principal, "redshift:GetClusterCredentials",
                    iam.redshift_arn(world, "dbname", f"{cid}/{db_name}"))
    if auto_create:
        iam.require(principal, "redshift:CreateClusterUser",
                    iam.redshift_arn(world, "dbuser", f"{cid}/{user}"))
    for g in groups:
        iam.require(principal, "redshift:JoinGroup",
                    iam.redshift_arn(world, "dbgroup", f"{cid}/{g}"))
    if cluster is None:
        raise _not_found(cid)

    # The returned name carries the prefix (reference §2): IAM: for an existing user, IAMA: when
    # AutoCreate; with AutoCreate and groups the CLI example shows "IAMA:user:group". Joining
    # several groups with ':' is UNCONFIRMED.
    db_user = ("IAMA:" if auto_create else "IAM:") + user
    if auto_create and groups:
        db_user += ":" + ":".join(groups)
    password = pgroles.mint_password()
    expires = world.now() + world.lifetime("db", duration)
    outcome, joined = _apply(world, cid, cluster, db_user, password, expires, auto_create, groups)
    ctx.note = f"db_user={db_user} pg={outcome}" + (f" groups={','.join(joined)}" if joined else "")
    return response("GetClusterCredentials", NAMESPACE,
                    _creds_xml(db_user, password, expires), ctx.request_id)


def get_cluster_credentials_with_iam(ctx):
    world, p = ctx.world, ctx.params
    check_known(p, {"DbName", "ClusterIdentifier", "DurationSeconds", "CustomDomainName"})
    db_name = p.get("DbName")
    if db_name is not None and not _name_ok(db_name):
        raise ApiError("InvalidParameterValue", DBUSER_RULE.replace("DbUser", "DbName"), 400)
    duration = get_int(p, "DurationSeconds", 900, 900, 3600, _duration_error)
    cid, cluster = _find_cluster(world, p)
    dbn = db_name or (cluster or {}).get("dbname", "dev")
    iam.require(ctx.principal, "redshift:GetClusterCredentialsWithIAM",
                iam.redshift_arn(world, "dbname", f"{cid}/{dbn}"))
    if cluster is None:
        raise _not_found(cid)
    # The database user is the caller's identity; Redshift creates it on first use.
    db_user = iam.db_user_for(ctx.principal)
    password = pgroles.mint_password()
    now = world.now()
    expires = now + world.lifetime("db", duration)
    outcome, _ = _apply(world, cid, cluster, db_user, password, expires, True, ())
    ctx.note = f"db_user={db_user} pg={outcome}"
    return response("GetClusterCredentialsWithIAM", NAMESPACE,
                    _creds_xml(db_user, password, expires, next_refresh=expires),
                    ctx.request_id)


def _cluster_xml(world, cid, c):
    ep = c.get("endpoint")
    roles = "".join(
        f"<ClusterIamRole>{el('IamRoleArn', r)}{el('ApplyStatus', 'in-sync')}</ClusterIamRole>"
        for r in c.get("iam_roles", []))
    parts = [
        el("ClusterIdentifier", cid),
        el("NodeType", c.get("node_type", "ra3.xlplus")),
        el("ClusterStatus", c.get("status", "available")),
        el("ClusterAvailabilityStatus", c.get("availability_status", "Available")),
        el("MasterUsername", c.get("master_username", "awsuser")),
        el("DBName", c.get("dbname", "dev")),
        (f"<Endpoint>{el('Address', ep['Address'])}{el('Port', ep['Port'])}</Endpoint>"
         if ep else ""),
        el("ClusterCreateTime", c.get("create_time", "2024-01-01T00:00:00.000Z")),
        el("NumberOfNodes", c.get("number_of_nodes", 1)),
        el("PubliclyAccessible", c.get("publicly_accessible", False)),
        el("Encrypted", c.get("encrypted", True)),
        f"<IamRoles>{roles}</IamRoles>",
        el("DefaultIamRoleArn", c.get("default_iam_role")),
        el("CustomDomainName", c.get("custom_domain_name")),
        el("ClusterNamespaceArn",
           f"arn:aws:redshift:{world.region}:{world.account}:namespace:{cid}"),
    ]
    return "      <Cluster>" + "".join(parts) + "</Cluster>"


def describe_clusters(ctx):
    world, p = ctx.world, ctx.params
    check_known(p, {"ClusterIdentifier", "MaxRecords", "Marker"},
                ["TagKeys.TagKey", "TagValues.TagValue"])
    max_records = get_int(
        p, "MaxRecords", 100, 20, 100,
        lambda v: ApiError("InvalidParameterValue",
                           f"MaxRecords must be between 20 and 100, got {v}.", 400))
    cid = p.get("ClusterIdentifier")
    resource = iam.redshift_arn(world, "cluster", cid or "*")
    iam.require(ctx.principal, "redshift:DescribeClusters", resource)
    clusters = world.section("clusters")
    if cid is not None:
        if cid not in clusters:
            raise _not_found(cid)
        ids = [cid]
    else:
        ids = sorted(clusters)
    marker = p.get("Marker")
    start = 0
    if marker is not None:
        if not marker.isdigit() or int(marker) > len(ids):
            raise ApiError("InvalidParameterValue", f"Invalid Marker '{marker}'.", 400)
        start = int(marker)
    page = ids[start:start + max_records]
    nxt = start + max_records if start + max_records < len(ids) else None
    inner = ("    <Clusters>\n" + "\n".join(_cluster_xml(world, i, clusters[i]) for i in page) +
             "\n    </Clusters>" + (("\n    " + el("Marker", nxt)) if nxt else ""))
    return response("DescribeClusters", NAMESPACE, inner, ctx.request_id)


OPERATIONS = {
    "GetClusterCredentials": get_cluster_credentials,
    "GetClusterCredentialsWithIAM": get_cluster_credentials_with_iam,
    "DescribeClusters": describe_clusters,
}
