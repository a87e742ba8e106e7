"""S3 and credentials for COPY / UNLOAD, the way Redshift reaches them on a user's behalf.

Credentials: IAM_ROLE chains are assumed through the AWS stand-in's control API
(POST /_standin/assume-for-redshift, which answers Redshift's own error texts); key credentials
are used as given. S3: boto3 clients signed with those credentials against the S3 stand-in, so
its front verifies every signature and enforces the role's bucket patterns. botocore's silent
region redirect is switched off, because Redshift fails on a bucket in another region unless
the statement says REGION. Failures become Redshift's S3ServiceException texts. Everything here
blocks; the session runs it in worker threads.
"""

import json
import threading
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

from .commands import internal_error


class CredentialError(Exception):
    pass


def assume_for_redshift(control_url, cluster, roles, user, timeout=15):
    """Temporary keys for the last role of a chain, or CredentialError(Redshift's text)."""
    if not control_url:
        raise CredentialError("IAM_ROLE needs the AWS stand-in: start the Redshift stand-in "
                              "with --aws-control")
    body = json.dumps({"cluster": cluster, "roles": roles, "user": user}).encode()
    req = urllib.request.Request(control_url.rstrip("/") + "/_standin/assume-for-redshift",
                                 data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            doc = json.loads(resp.read(1 << 20))
    except urllib.error.HTTPError as e:
        raise CredentialError(f"AWS stand-in answered HTTP {e.code}") from e
    except (OSError, ValueError) as e:
        raise CredentialError(f"AWS stand-in unreachable: {e}") from e
    if "error" in doc:
        raise CredentialError(doc["error"])
    return {"access_key_id": doc["access_key_id"], "secret_access_key": doc["secret_access_key"],
            "session_token": doc.get("session_token")}


class S3Failure(Exception):
    """An S3 error as Redshift reports it."""

    def __init__(self, code, message, status, request_id="", host_id=""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.host_id = host_id

    def redshift_text(self):
        code, message, status = self.code, self.message, self.status
        if code in ("AuthorizationHeaderMalformed", "PermanentRedirect"):
            # The S3 stand-in has a single endpoint, so a bucket in another region shows up as
            # a wrong signing region; Redshift reports S3's 301 (reference §7.4).
            code, status = "PermanentRedirect", 301
            message = ("The bucket you are attempting to access must be addressed using the "
                       "specified endpoint. Please send all future requests to this endpoint.")
        return (f"S3ServiceException:{message},Status {status},Error {code},"
                f"Rid {self.request_id},ExtRid {self.host_id},CanRetry 1")

    def to_rs_error(self, context, location="s3_utility.cpp:634"):
        return internal_error(self.redshift_text(), context=context, location=location)


_HEAD_MESSAGES = {403: ("AccessDenied", "Access Denied"), 404: ("NoSuchKey",
                  "The specified key does not exist."), 301: ("PermanentRedirect", "Moved")}


def _failure(e):
    if isinstance(e, botocore.exceptions.ClientError):
        err = e.response.get("Error", {})
        meta = e.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode", 0)
        code = err.get("Code", str(status))
        message = err.get("Message")
        if not message and status in _HEAD_MESSAGES:
            code, message = _HEAD_MESSAGES[status]
        return S3Failure(code, message or code, status, meta.get("RequestId", ""),
                         meta.get("HostId", ""))
    if isinstance(e, botocore.exceptions.BotoCoreError):
        return S3Failure("ClientError", str(e), 0)
    raise e


def _no_redirect(params, **kwargs):
    # botocore skips its region redirect for requests already marked as redirected (the
    # endpoint-ruleset redirector reads s3_redirect.redirected, the older one s3_redirected).
    ctx = params.setdefault("context", {})
    ctx.setdefault("s3_redirect", {})["redirected"] = True
    ctx["s3_redirected"] = True


def split_url(url):
    """'s3://bucket/key' -> (bucket, key)."""
    rest = url[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


class S3Access:
    """One set of credentials, one region, against the S3 stand-in."""

    _lock = threading.Lock()

    def __init__(self, endpoint, region, creds, ca_bundle=None):
        cfg = botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                     retries={"max_attempts": 3, "mode": "standard"},
                                     connect_timeout=10, read_timeout=120)
        # boto3's default session is not thread safe to create clients from.
        with S3Access._lock:
            session = boto3.session.Session()
            self.client = session.client(
                "s3", endpoint_url=endpoint, region_name=region, config=cfg,
                aws_access_key_id=creds["access_key_id"],
                aws_secret_access_key=creds["secret_access_key"],
                aws_session_token=creds.get("session_token"),
                verify=ca_bundle if ca_bundle else True)
        self.client.meta.events.register("before-call.s3", _no_redirect)

    def list(self, bucket, prefix):
        """[(key, size)] of every object under prefix, in key order."""
        out, token = [], None
        try:
            while True:
                kw = {"Bucket": bucket, "Prefix": prefix}
                if token:
                    kw["ContinuationToken"] = token
                r = self.client.list_objects_v2(**kw)
                out.extend((o["Key"], o["Size"]) for o in r.get("Contents", []))
                if not r.get("IsTruncated"):
                    return out
                token = r["NextContinuationToken"]
        except Exception as e:  # noqa: BLE001 - translated below
            raise _failure(e) from e

    def open(self, bucket, key):
        """A file-like streaming body."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as e:  # noqa: BLE001
            raise _failure(e) from e

    def read_small(self, bucket, key, limit=16 << 20):
        body = self.open(bucket, key)
        try:
            data = body.read(limit + 1)
        except Exception as e:  # noqa: BLE001
            raise _failure(e) from e
        finally:
            body.close()
        if len(data) > limit:
            raise S3Failure("EntityTooLarge", "manifest too large", 400)
        return data

    def upload_file(self, bucket, key, path):
        try:
            self.client.upload_file(path, bucket, key)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, boto3.exceptions.S3UploadFailedError) and \
                    isinstance(e.__cause__, botocore.exceptions.ClientError):
                raise _failure(e.__cause__) from e
            if isinstance(e, boto3.exceptions.S3UploadFailedError):
                raise S3Failure("UploadFailed", str(e), 0) from e
            raise _failure(e) from e

    def put_bytes(self, bucket, key, data, content_type=None):
        try:
            kw = {"Bucket": bucket, "Key": key, "Body": data}
            if content_type:
                kw["ContentType"] = content_type
            self.client.put_object(**kw)
        except Exception as e:  # noqa: BLE001
            raise _failure(e) from e

    def delete(self, bucket, keys):
        try:
            for i in range(0, len(keys), 1000):
                chunk = keys[i:i + 1000]
                r = self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
                errs = r.get("Errors") or []
                if errs:
                    raise S3Failure(errs[0].get("Code", "AccessDenied"),
                                    errs[0].get("Message", "Access Denied"), 403)
        except S3Failure:
            raise
        except Exception as e:  # noqa: BLE001
            raise _failure(e) from e
