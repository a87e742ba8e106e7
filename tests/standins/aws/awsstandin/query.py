"""awsQuery helpers: typed parameter access with AWS's validation rules, and XML responses.

Parameters arrive as a flat dict of form fields. Lists use the member's locationName and are
numbered from 1 (`DbGroups.DbGroup.1`, reference §2). The stand-in is stricter than AWS in one
respect, on purpose: an unknown parameter is an error (UnknownParameter), because a silently
ignored `DbGroups.member.1` would hide a serialisation bug in rsproxy.
"""

import re
import time
from xml.sax.saxutils import escape

from .errors import ApiError

_INT_RE = re.compile(r"^-?[0-9]+$")


def check_known(params, names, list_prefixes=()):
    """Raises UnknownParameter for any field outside `names` and `list_prefixes` (+ '.N...')."""
    for key in params:
        if key in ("Action", "Version") or key in names:
            continue
        if any(re.fullmatch(re.escape(p) + r"\.[0-9]+(\.[A-Za-z]+)?", key) for p in list_prefixes):
            continue
        raise ApiError("UnknownParameter",
                       f"The parameter {key} is not recognized (stand-in rule: unknown "
                       f"parameters are refused).", 400)


def get_int(params, name, default, lo, hi, range_error):
    """An integer parameter in [lo, hi]; `range_error(value)` builds the out-of-range error."""
    raw = params.get(name)
    if raw is None:
        return default
    if not _INT_RE.match(raw):
        raise ApiError("InvalidParameterValue",
                       f"Invalid value '{raw}' for parameter {name}: must be an integer.", 400)
    val = int(raw)
    if val < lo or val > hi:
        raise range_error(val)
    return val


def get_bool(params, name, default):
    raw = params.get(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        # UNCONFIRMED text; AWS's query serialisers always send lower-case true/false.
        raise ApiError("InvalidParameterValue",
                       f"Invalid value '{raw}' for parameter {name}: must be true or false.", 400)
    return raw == "true"


def get_list(params, prefix):
    """The members of `prefix`.N in order; they must be numbered 1..n without gaps."""
    pat = re.compile(re.escape(prefix) + r"\.([0-9]+)$")
    found = {}
    for key, val in params.items():
        m = pat.match(key)
        if m:
            found[int(m.group(1))] = val
    if sorted(found) != list(range(1, len(found) + 1)):
        raise ApiError("InvalidParameterValue",
                       f"{prefix} members must be numbered from 1 without gaps; got "
                       f"{sorted(found)}.", 400)
    return [found[i] for i in range(1, len(found) + 1)]


def el(name, value):
    """One XML element; None renders nothing, bools render as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def iso_ms(epoch):
    """2019-12-27T19:44:51.001Z, the form Redshift uses for Expiration."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + \
        f".{int((epoch % 1) * 1000):03d}Z"


def iso_s(epoch):
    """2019-11-09T13:34:41Z, the form STS and the credential endpoints use."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def response(op, namespace, inner, request_id):
    return (f'<{op}Response xmlns="{namespace}">\n'
            f'  <{op}Result>\n{inner}\n  </{op}Result>\n'
            f'  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n'
            f'  </ResponseMetadata>\n</{op}Response>\n')
