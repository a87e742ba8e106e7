"""The stand-in's state: the world file, temporary keys it minted, call counts and faults.

The world file (README "The world file") describes the AWS account: principals with long-term
keys, roles, clusters, workgroups and the credential endpoints. Everything the stand-in learns at
run time (temporary keys, IMDS tokens, call counts, armed faults, the request log) lives here too,
behind one lock, because requests are served on many threads. Nothing here does I/O beyond
reading the world file once at startup.
"""

import copy
import json
import secrets
import string
import threading
import time

DEFAULT_LIFETIMES = {
    # Seconds. "sts" and "db" are None: the caller's DurationSeconds decides. A number overrides
    # the real expiry (tests use a few seconds), while the API still validates DurationSeconds.
    "sts": None,
    "db": None,
    "container": 3600,
    "imds": 21600,
    "redshift_role": 3600,
}

# The request log and the temporary-key table are bounded so that a client polling in a loop
# cannot grow the stand-in without limit.
MAX_REQUEST_LOG = 10000
MAX_TEMP_KEYS = 100000

_KEY_ALPHABET = string.ascii_uppercase + "234567"


class WorldError(Exception):
    """The world file is malformed."""


def _expect(cond, msg):
    if not cond:
        raise WorldError(msg)


def validate(world):
    """Checks the shape of a world dict; raises WorldError naming the first bad field."""
    _expect(isinstance(world, dict), "the world must be a JSON object")
    _expect(isinstance(world.get("region"), str) and world["region"], "region: a string")
    acct = world.get("account")
    _expect(isinstance(acct, str) and len(acct) == 12 and acct.isdigit(),
            "account: a 12-digit string")
    for akid, p in world.get("principals", {}).items():
        _expect(isinstance(p, dict), f"principals.{akid}: an object")
        _expect(isinstance(p.get("secret"), str) and p["secret"], f"principals.{akid}.secret")
        _expect(isinstance(p.get("arn"), str) and p["arn"].startswith("arn:aws:iam::"),
                f"principals.{akid}.arn: an IAM ARN")
        _check_policy(p, f"principals.{akid}")
    for arn, r in world.get("roles", {}).items():
        _expect(arn.startswith("arn:aws:iam::") and ":role/" in arn, f"roles.{arn}: a role ARN")
        _expect(isinstance(r, dict), f"roles.{arn}: an object")
        _expect(isinstance(r.get("trust", []), list), f"roles.{arn}.trust: a list")
        _check_policy(r, f"roles.{arn}")
    for cid, c in world.get("clusters", {}).items():
        _expect(isinstance(c, dict), f"clusters.{cid}: an object")
        ep = c.get("endpoint")
        # null: a cluster still being created has no endpoint yet.
        _expect(ep is None or (isinstance(ep, dict) and "Address" in ep and "Port" in ep),
                f"clusters.{cid}.endpoint: {{\"Address\", \"Port\"}} or null")
        _expect(c.get("password_encryption", "md5") in ("md5", "scram-sha-256"),
                f"clusters.{cid}.password_encryption: md5 or scram-sha-256")
    for name, w in world.get("workgroups", {}).items():
        _expect(isinstance(w, dict), f"workgroups.{name}: an object")
        ep = w.get("endpoint", {})
        _expect(isinstance(ep, dict) and "address" in ep and "port" in ep,
                f"workgroups.{name}.endpoint: {{\"address\", \"port\"}}")
        _expect(w.get("password_encryption", "md5") in ("md5", "scram-sha-256"),
                f"workgroups.{name}.password_encryption: md5 or scram-sha-256")
    for key, val in world.get("lifetimes", {}).items():
        _expect(key in DEFAULT_LIFETIMES, f"lifetimes.{key}: unknown")
        _expect(val is None or (isinstance(val, (int, float)) and val > 0),
                f"lifetimes.{key}: a positive number or null")
    _expect(isinstance(world.get("clock_offset_seconds", 0), (int, float)),
            "clock_offset_seconds: a number")


def _check_policy(obj, where):
    for field in ("allow", "deny"):
        for i, stmt in enumerate(obj.get(field, [])):
            ok = isinstance(stmt, str) or (isinstance(stmt, dict) and "action" in stmt)
            _expect(ok, f"{where}.{field}[{i}]: \"service:Action\" or "
                        "{\"action\": ..., \"resource\": ...}")
    _expect(isinstance(obj.get("s3", []), list), f"{where}.s3: a list of s3:// patterns")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if val is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), val)
    return out


def random_secret(n=40):
    """A secret access key: base64-alphabet characters, like AWS's."""
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(n))


class World:
    """All state, guarded by `lock` (an RLock: helpers may nest)."""

    def __init__(self, data):
        validate(data)
        self.lock = threading.RLock()
        self.data = data
        self.temp_keys = {}        # akid -> dict (see mint_temp)
        self.imds_tokens = {}      # token -> expiry (epoch, stand-in clock)
        self.calls = {}            # op -> count
        self.calls_by_key = {}     # akid -> {op -> count}
        self.faults = []           # dicts, see control.py
        self.requests = []         # recent request log entries
        self.stop = threading.Event()

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise WorldError(f"{path}: not JSON: {e}") from e
        return cls(data)

    # -- clock ------------------------------------------------------------------------------

    def now(self):
        """The stand-in's clock: real time plus clock_offset_seconds (to test skew handling)."""
        return time.time() + float(self.data.get("clock_offset_seconds", 0))

    # -- world lookups ----------------------------------------------------------------------

    @property
    def region(self):
        return self.data["region"]

    @property
    def account(self):
        return self.data["account"]

    def section(self, name):
        return self.data.get(name) or {}

    def lifetime(self, kind, requested=None):
        """Seconds a credential of `kind` lives: the world's override, else `requested`."""
        lifetimes = dict(DEFAULT_LIFETIMES)
        lifetimes.update(self.data.get("lifetimes") or {})
        val = lifetimes.get(kind)
        return float(val) if val is not None else float(requested)

    def patch(self, patch):
        with self.lock:
            new = merge_patch(self.data, patch)
            validate(new)
            self.data = new

    # -- keys -------------------------------------------------------------------------------

    def mint_temp(self, arn, role_arn, lifetime, source, chained=False):
        """Mints and records temporary keys for an assumed role; returns the record."""
        akid = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        # Session tokens are long opaque base64 blobs; the length resembles AWS's.
        token = "IQoJb3JpZ2luX2Vj" + secrets.token_urlsafe(240).replace("-", "+").replace("_", "/")
        rec = {
            "access_key_id": akid,
            "secret": random_secret(),
            "session_token": token,
            "arn": arn,
            "role_arn": role_arn,
            "expiration": self.now() + lifetime,
            "source": source,
            "chained": chained,
        }
        with self.lock:
            if len(self.temp_keys) >= MAX_TEMP_KEYS:
                # Drop the oldest-expiring half; tests never hold that many live keys.
                keep = sorted(self.temp_keys.values(), key=lambda r: r["expiration"])
                for old in keep[: MAX_TEMP_KEYS // 2]:
                    del self.temp_keys[old["access_key_id"]]
            self.temp_keys[akid] = rec
        return rec

    def lookup_key(self, akid):
        """The principal behind an access key id, or None. Returns a fresh dict."""
        with self.lock:
            p = self.section("principals").get(akid)
            if p is not None:
                return {
                    "access_key_id": akid, "secret": p["secret"], "session_token": None,
                    "arn": p["arn"], "role_arn": None, "expiration": None,
                    "temporary": False, "chained": False, "policy": p,
                }
            t = self.temp_keys.get(akid)
            if t is None:
                return None
            role = self.section("roles").get(t["role_arn"]) or {}
            out = dict(t)
            out["temporary"] = True
            out["policy"] = role
            return out

    def expire_key(self, akid):
        with self.lock:
            t = self.temp_keys.get(akid)
            if t is None:
                return False
            t["expiration"] = self.now() - 1
            return True

    def s3_patterns(self, principal):
        """The s3:// patterns a key may reach, for the S3 front."""
        policy = principal["policy"]
        if "s3" in policy:
            return list(policy["s3"])
        # A static principal without an explicit list but with s3 actions allowed reaches all.
        for stmt in policy.get("allow", []):
            action = stmt if isinstance(stmt, str) else stmt.get("action")
            actions = action if isinstance(action, list) else [action]
            if any(a in ("*", "s3:*") for a in actions):
                return ["s3://*"]
        return []

    # -- accounting -------------------------------------------------------------------------

    def count(self, op, akid):
        with self.lock:
            self.calls[op] = self.calls.get(op, 0) + 1
            if akid:
                per = self.calls_by_key.setdefault(akid, {})
                per[op] = per.get(op, 0) + 1

    def log_request(self, entry):
        with self.lock:
            self.requests.append(entry)
            if len(self.requests) > MAX_REQUEST_LOG:
                del self.requests[: len(self.requests) - MAX_REQUEST_LOG]

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.calls_by_key.clear()
            self.requests.clear()
            self.faults.clear()

    # -- faults -----------------------------------------------------------------------------

    def take_fault(self, op):
        """The next armed fault for `op` (or "*"), consuming one of its count; else None."""
        with self.lock:
            for f in self.faults:
                if f["op"] in (op, "*") and f["remaining"] != 0:
                    if f["remaining"] > 0:
                        f["remaining"] -= 1
                    f["fired"] += 1
                    return dict(f)
            return None
