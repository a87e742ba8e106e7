"""SigV4 verification of incoming requests, done by botocore rather than by rsproxy's signer.

The request is rebuilt as a botocore AWSRequest carrying exactly the headers the client listed in
SignedHeaders, with the values as received, and botocore's SigV4Auth computes the canonical
request, string to sign and signature at the client's X-Amz-Date. The signatures are compared in
constant time. Around that, the checks AWS's front end makes come first, in AWS's order and with
its error codes: a parsable Authorization header, the credential scope (date, region, service,
terminator), a known key, the session token of temporary keys, their expiry, and the 5-minute
clock-skew window. Presigned (query-string) requests are not supported: rsproxy never sends them.
"""

import calendar
import hashlib
import hmac
import time
from urllib.parse import unquote

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .errors import ApiError, MSG_BAD_SIGNATURE, MSG_EXPIRED_TOKEN, MSG_INVALID_TOKEN

SKEW_SECONDS = 300
_TS_FMT = "%Y%m%dT%H%M%SZ"


def _ts(epoch):
    return time.strftime(_TS_FMT, time.gmtime(epoch))


def _parse_ts(value):
    try:
        return calendar.timegm(time.strptime(value, _TS_FMT))
    except ValueError:
        return None


def parse_authorization(value):
    """Splits 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'.

    Returns a dict with the three fields, or raises ApiError(IncompleteSignature).
    """
    algo, _, rest = value.strip().partition(" ")
    if algo != "AWS4-HMAC-SHA256":
        raise ApiError("IncompleteSignature", f"Unsupported AWS 'algorithm': '{algo}'", 400)
    fields = {}
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if eq:
            fields[key] = val
    missing = [k for k in ("Credential", "Signature", "SignedHeaders") if not fields.get(k)]
    if missing:
        msg = " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        raise ApiError("IncompleteSignature", msg, 400)
    return fields


def access_key_of(headers):
    """The access key id a request claims, for accounting; None when absent or unparsable."""
    value = headers.get("Authorization")
    if not value:
        return None
    try:
        return parse_authorization(value)["Credential"].split("/", 1)[0] or None
    except ApiError:
        return None


def _query_pairs(raw_query):
    """Decoded (key, value) pairs of a raw query string, '+' kept literally (SigV4 rule)."""
    pairs = []
    if raw_query:
        for item in raw_query.split("&"):
            if item == "":
                continue
            key, _, val = item.partition("=")
            pairs.append((unquote(key), unquote(val)))
    return pairs


def verify(world, method, raw_path, raw_query, headers, body, service):
    """Verifies a signed request; returns the principal dict (World.lookup_key) or raises.

    `headers` is an http.client.HTTPMessage (case-insensitive, repeated headers kept).
    """
    auth_value = headers.get("Authorization")
    if not auth_value:
        if "X-Amz-Signature=" in (raw_query or ""):
            raise ApiError("IncompleteSignature",
                           "The stand-in does not accept presigned (query-string) requests.", 400)
        raise ApiError("MissingAuthenticationToken", "Request is missing Authentication Token",
                       403)
    fields = parse_authorization(auth_value)

    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise ApiError("IncompleteSignature",
                       f"Credential should be of the form 'AKID/YYYYMMDD/region/service/"
                       f"aws4_request', not '{'/'.join(scope[1:])}'.", 400)
    akid, scope_date, region, scope_service, terminator = scope

    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        raise ApiError("IncompleteSignature",
                       "Authorization header requires existence of either a 'X-Amz-Date' or a "
                       "'Date' header.", 400)
    t = _parse_ts(amz_date)
    if t is None:
        raise ApiError("IncompleteSignature",
                       f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.", 400)
    if terminator != "aws4_request":
        raise ApiError("SignatureDoesNotMatch",
                       f"Credential should be scoped with a valid terminator: 'aws4_request', "
                       f"not '{terminator}'.", 403)
    if scope_date != amz_date[:8]:
        raise ApiError("SignatureDoesNotMatch",
                       f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                       f"of date from HTTP: '{scope_date}' != '{amz_date[:8]}', from "
                       f"'{amz_date}'.", 403)
    if region != world.region:
        raise ApiError("SignatureDoesNotMatch",
                       f"Credential should be scoped to a valid region, not '{region}'. ", 403)
    if scope_service != service:
        raise ApiError("SignatureDoesNotMatch",
                       f"Credential should be scoped to correct service: '{service}'. ", 403)

    principal = world.lookup_key(akid)
    if principal is None:
        raise ApiError("InvalidClientTokenId", MSG_INVALID_TOKEN, 403)
    token = headers.get("X-Amz-Security-Token")
    if principal["temporary"]:
        if not token or not hmac.compare_digest(token.encode(),
                                                principal["session_token"].encode()):
            raise ApiError("InvalidClientTokenId", MSG_INVALID_TOKEN, 403)
        if principal["expiration"] <= world.now():
            raise ApiError("ExpiredToken", MSG_EXPIRED_TOKEN, 403)
    elif token:
        # A session token sent with long-term keys is rejected by AWS the same way.
        raise ApiError("InvalidClientTokenId", MSG_INVALID_TOKEN, 403)

    now = world.now()
    if t < now - SKEW_SECONDS:
        raise ApiError("SignatureDoesNotMatch",
                       f"Signature expired: {amz_date} is now earlier than "
                       f"{_ts(now - SKEW_SECONDS)} ({_ts(now)} - 5 min.)", 403)
    if t > now + SKEW_SECONDS:
        raise ApiError("SignatureDoesNotMatch",
                       f"Signature not yet current: {amz_date} is still later than "
                       f"{_ts(now + SKEW_SECONDS)} ({_ts(now)} + 5 min.)", 403)

    signed = [h for h in fields["SignedHeaders"].split(";") if h]
    if signed != sorted(set(signed)) or any(h != h.lower() for h in signed):
        raise ApiError("SignatureDoesNotMatch",
                       "SignedHeaders must be lower-case, sorted and unique.", 403)
    if "host" not in signed:
        raise ApiError("SignatureDoesNotMatch",
                       "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                       "Authorization.", 403)
    if "x-amz-date" not in signed:
        raise ApiError("SignatureDoesNotMatch",
                       "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.", 403)
    if token and "x-amz-security-token" not in signed:
        # AWS accepts an unsigned token header, but rsproxy must sign it (reference §6); being
        # stricter here catches a signer that forgets it.
        raise ApiError("SignatureDoesNotMatch",
                       "'X-Amz-Security-Token' must be a 'SignedHeader' (stand-in rule).", 403)
    for name in signed:
        if name in SIGNED_HEADERS_BLACKLIST:
            # botocore (and the AWS SDKs) never sign these; rsproxy must not either.
            raise ApiError("SignatureDoesNotMatch",
                           f"The header '{name}' must not be signed (the AWS SDKs never sign "
                           f"it; stand-in rule).", 403)
        if headers.get(name) is None:
            raise ApiError("SignatureDoesNotMatch",
                           f"The header '{name}' is listed in SignedHeaders but is not present.",
                           403)
    declared = headers.get("X-Amz-Content-SHA256")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        raise ApiError("SignatureDoesNotMatch",
                       "The provided 'x-amz-content-sha256' header does not match what was "
                       "computed.", 403)

    # Rebuild the request with exactly the signed headers, as received (repeated ones kept in
    # order), and let botocore sign it at the client's timestamp.
    req = AWSRequest(method=method, url=f"http://{headers.get('Host')}{raw_path}", data=body,
                     params=_query_pairs(raw_query))
    for name in signed:
        for value in headers.get_all(name) or []:
            req.headers[name] = value
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(akid, principal["secret"]), service, region)
    canonical = signer.canonical_request(req)
    string_to_sign = signer.string_to_sign(req, canonical)
    expected = signer.signature(string_to_sign, req)
    if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
        # Like AWS, say what the canonical request should have been: it is what a signer's
        # author needs. The session token is a secret and is masked.
        shown = canonical
        if token:
            shown = shown.replace(token, "<redacted>")
        raise ApiError("SignatureDoesNotMatch",
                       f"{MSG_BAD_SIGNATURE}\n\nThe Canonical String for this request should "
                       f"have been\n'{shown}'\n\nThe String-to-Sign should have been\n"
                       f"'{string_to_sign}'\n", 403)
    return principal
