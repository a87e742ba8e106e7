"""The HTTP front of the AWS stand-in: one port, plain HTTP or TLS, one thread per connection.

Requests are routed by shape, as the real endpoints would be reached by host name: /_standin/*
is the control API, /latest/* is IMDS, the world's container path is the container endpoint, and
everything else is an AWS API call, dispatched by X-Amz-Target (JSON 1.1) or Action (awsQuery).
An API call is counted, then authenticated (sigv4.py, botocore), then any armed fault fires,
then the operation runs. Every response carries Date (the stand-in's clock, which the proxy uses
to correct skew) and x-amzn-RequestId. Each request is logged to stderr in one line without
secrets: no query strings, bodies, tokens or keys other than access key ids.
"""

import argparse
import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from . import control, credendpoints, redshift, serverless, sigv4, sts
from .errors import ApiError, render_json, render_query
from .world import World, WorldError
from .wire import Response

MAX_BODY = 1 << 20
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class Op:
    """An API operation: its protocol, signing service and implementation."""

    def __init__(self, name, proto, service, version, namespace, fn, signed=True):
        self.name, self.proto, self.service = name, proto, service
        self.version, self.namespace, self.fn, self.signed = version, namespace, fn, signed


QUERY_OPS = {}
for _name, _fn in redshift.OPERATIONS.items():
    QUERY_OPS[_name] = Op(_name, "query", "redshift", redshift.VERSION, redshift.NAMESPACE, _fn)
for _name, _fn in sts.OPERATIONS.items():
    QUERY_OPS[_name] = Op(_name, "query", "sts", sts.VERSION, sts.NAMESPACE, _fn,
                          signed=_name not in sts.UNSIGNED)
JSON_OPS = {
    "RedshiftServerless." + _name: Op(_name, "json", "redshift-serverless", None,
                                      serverless.NAMESPACE, _fn)
    for _name, _fn in serverless.OPERATIONS.items()
}


_UNKNOWN_JSON_OP = Op("Unknown", "json", None, None, "com.amazon.coral.service", None)


class Request:
    """What handlers see of one HTTP request."""

    def __init__(self, world, method, target, headers, body):
        self.world = world
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.body = body
        self.request_id = str(uuid.uuid4())
        self.op = None
        self.api_op = None  # the Op whose protocol renders errors, once known
        self.akid = None
        self.principal = None
        self.params = None
        self.note = ""


def _render_error(op, err, request_id):
    if op is not None and op.proto == "json":
        status, headers, body, code = render_json(err, request_id, op.namespace)
    else:
        ns = op.namespace if op is not None else redshift.NAMESPACE
        status, headers, body, code = render_query(err, request_id, ns)
    resp = Response(status, body, headers["Content-Type"], code=code)
    resp.headers.update(headers)
    return resp


def _fault_error(op, fault):
    """The ApiError a fault stands for, in the operation's protocol."""
    mode = fault["mode"]
    if mode == "throttle":
        return ApiError("Throttling", "Rate exceeded", 400)
    if mode == "internal":
        return ApiError("InternalFailure", "We encountered an internal error. Please try "
                        "again.", 500)
    if mode == "unavailable":
        return ApiError("ServiceUnavailable", "Service is unavailable. Please try again.", 503)
    code, status = fault["code"], fault["status"]
    msg = fault["message"] or f"Injected {code} fault."
    # A JSON fault given with a query name is mapped as usual; an explicit *Exception name is
    # used as is in both protocols.
    if code.endswith("Exception"):
        return ApiError(code, msg, status, json_code=code, json_status=status)
    return ApiError(code, msg, status)


def _plain_fault(fault):
    mode = fault["mode"]
    if mode == "throttle":
        return Response(429, "Too Many Requests", code="Throttling")
    if mode == "internal":
        return Response(500, "Internal Server Error", code="InternalFailure")
    if mode == "unavailable":
        return Response(503, "Service Unavailable", code="ServiceUnavailable")
    body = json.dumps({"code": fault["code"], "message": fault["message"] or "Injected fault."})
    return Response(fault["status"], body, "application/json", code=fault["code"])


def _apply_fault(world, req, render):
    """Consumes an armed fault for req.op. Returns (error Response or None, mangle or None).

    A stall waits (interruptibly, so SIGTERM is not held up) and then lets the call proceed.
    """
    fault = world.take_fault(req.op)
    if fault is None:
        return None, None
    req.note = (req.note + f" fault={fault['mode']}").strip()
    mode = fault["mode"]
    if mode == "stall":
        world.stop.wait(fault["seconds"])
        return None, None
    if mode in ("garbage", "truncated", "partial"):
        return None, mode
    return render(fault), None


def _api_params(req):
    """(Op, params) of an AWS API request, or raises ApiError (op may be known by then)."""
    target = req.headers.get("X-Amz-Target")
    if target is not None:
        op = JSON_OPS.get(target)
        # Errors from here on are rendered in the JSON protocol.
        req.api_op = op or _UNKNOWN_JSON_OP
        if op is None:
            raise ApiError("InvalidAction", f"Unknown operation {target}", 400,
                           json_code="UnknownOperationException")
        req.op = op.name
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        if req.method != "POST" or ctype != JSON_CONTENT_TYPE:
            raise ApiError("SerializationException",
                           f"JSON 1.1 requests are POST with Content-Type {JSON_CONTENT_TYPE}",
                           400, json_code="SerializationException")
        try:
            params = json.loads(req.body) if req.body else {}
        except ValueError as e:
            raise ApiError("SerializationException", f"Malformed JSON: {e}", 400,
                           json_code="SerializationException") from e
        return op, params

    pairs = parse_qsl(req.query or "", keep_blank_values=True)
    if req.method == "POST":
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        if req.body and ctype != FORM_CONTENT_TYPE:
            raise ApiError("InvalidParameterValue",
                           f"awsQuery POST bodies must be {FORM_CONTENT_TYPE}, not '{ctype}'.",
                           400)
        try:
            pairs += parse_qsl(req.body.decode("utf-8"), keep_blank_values=True,
                               strict_parsing=bool(req.body))
        except (UnicodeDecodeError, ValueError) as e:
            raise ApiError("MalformedQueryString", f"Malformed form body: {e}", 400) from e
    elif req.method != "GET":
        raise ApiError("InvalidAction", f"Method {req.method} is not supported.", 400)
    params = {}
    for key, val in pairs:
        if key in params:
            raise ApiError("InvalidParameterValue",
                           f"The parameter {key} was given more than once.", 400)
        params[key] = val
    action = params.get("Action")
    if not action:
        raise ApiError("MissingAction", "Missing Action", 400)
    op = QUERY_OPS.get(action)
    if op is None:
        raise ApiError("InvalidAction", f"Could not find operation {action} for version "
                       f"{params.get('Version', 'NO_VERSION_SPECIFIED')}", 400)
    req.op = op.name
    req.api_op = op
    if params.get("Version") != op.version:
        raise ApiError("NoSuchVersion", f"The requested version ({params.get('Version')}) of "
                       f"service {op.service} does not exist", 400)
    return op, params


def handle_api(world, req):
    op = None
    try:
        try:
            op, params = _api_params(req)
        finally:
            req.akid = sigv4.access_key_of(req.headers)
            world.count(req.op or "Unknown", req.akid)
        if op.signed:
            req.principal = sigv4.verify(world, req.method, req.path, req.query, req.headers,
                                         req.body, op.service)
        req.params = params
        err, mangle = _apply_fault(world, req,
                                   lambda f: _render_error(op, _fault_error(op, f),
                                                           req.request_id))
        if err is not None:
            return err
        result = op.fn(req)
        if op.proto == "json":
            resp = Response(200, json.dumps(result), JSON_CONTENT_TYPE)
        else:
            resp = Response(200, result, "text/xml")
        resp.mangle = mangle
        return resp
    except ApiError as e:
        return _render_error(op or req.api_op, e, req.request_id)


def handle_credendpoint(world, req):
    world.count(req.op, None)
    err = credendpoints.authorize(world, req)
    if err is not None:
        return err
    err, mangle = _apply_fault(world, req, _plain_fault)
    if err is not None:
        return err
    resp = credendpoints.serve(world, req)
    resp.mangle = mangle
    return resp


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AWSStandin/1.0"
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 120

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # http.server's own access log: replaced by _log
        pass

    def date_time_string(self, timestamp=None):
        return formatdate(self.server.world.now() if timestamp is None else timestamp,
                          usegmt=True)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding"):
            return None, Response(411, "Length Required")
        length = self.headers.get("Content-Length")
        if length is None:
            return b"", None
        if not length.isdigit() or int(length) > MAX_BODY:
            return None, Response(413, "Payload Too Large")
        return self.rfile.read(int(length)), None

    def _dispatch(self):
        world = self.server.world
        started = time.monotonic()
        body, early = self._read_body()
        req = Request(world, self.command, self.path, self.headers, body or b"")
        if early is not None:
            self.close_connection = True
            resp = early
        elif req.path.startswith("/_standin/"):
            req.op = "control"
            status, doc = control.handle(world, req)
            resp = Response(status, json.dumps(doc, indent=1), "application/json")
        else:
            try:
                req.op = credendpoints.identify(world, req.method, req.path)
                if req.op is not None:
                    resp = handle_credendpoint(world, req)
                else:
                    resp = handle_api(world, req)
            except Exception:  # noqa: BLE001 - a stand-in bug: answer, and make it visible
                # The traceback in the log fails the test that caused it (fixtures_aws.py).
                traceback.print_exc(file=sys.stderr)
                resp = _render_error(None, ApiError("InternalFailure", "The stand-in failed; "
                                                    "see its log.", 500), req.request_id)
        # Record before answering: a client that reads the log right after its response (or
        # resets it) must see this request.
        if req.op != "control":
            world.log_request(self._entry(req, resp))
        self._send(resp, req)
        self._log(req, resp, started)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _send(self, resp, req):
        body = resp.body
        if resp.mangle == "garbage":
            body = bytes(random.getrandbits(8) for _ in range(64)) + b"<<not a document>>"
        elif resp.mangle == "partial":
            body = body[: len(body) // 2]
        try:
            self.send_response(resp.status)
            for key, val in resp.headers.items():
                self.send_header(key, val)
            self.send_header("x-amzn-RequestId", req.request_id)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if resp.mangle == "truncated":
                # Announce the whole body, send half, and hang up: a transfer error.
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    @staticmethod
    def _entry(req, resp):
        return {
            "time": round(time.time(), 3), "method": req.method, "path": req.path,
            "op": req.op, "access_key_id": req.akid,
            "principal": req.principal["arn"] if req.principal else None,
            "status": resp.status, "code": resp.code, "note": req.note,
        }

    def _log(self, req, resp, started):
        who = req.principal["arn"] if req.principal else "-"
        ms = (time.monotonic() - started) * 1000
        print(f"aws-standin: {req.method} {req.path} op={req.op or '-'} key={req.akid or '-'} "
              f"principal={who} -> {resp.status} {resp.code or ''} {req.note} ({ms:.0f} ms)",
              file=sys.stderr, flush=True)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, addr, world, tls_context=None):
        self.world = world
        self.tls_context = tls_context
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, on the connection's own thread, so a slow or broken
        # client cannot hold up accept().
        if self.tls_context is not None:
            try:
                request.settimeout(10)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                print(f"aws-standin: TLS handshake with {client_address[0]} failed: {e}",
                      file=sys.stderr, flush=True)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        print(f"aws-standin: error serving {client_address[0]}: {sys.exc_info()[1]!r}",
              file=sys.stderr, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="AWS stand-in for rsproxy's tests")
    ap.add_argument("--port", type=int, default=0, help="port to bind (0: pick a free one)")
    ap.add_argument("--bind", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--state", required=True, help="the world JSON file")
    ap.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS instead of HTTP")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = ap.parse_args(argv)

    try:
        world = World.load(args.state)
    except (OSError, WorldError) as e:
        print(f"aws-standin: {args.state}: {e}", file=sys.stderr)
        return 2
    ctx = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("aws-standin: --tls-cert and --tls-key go together", file=sys.stderr)
            return 2
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server = Server((args.bind, args.port), world, ctx)

    def on_signal(signum, frame):
        world.stop.set()
        # shutdown() waits for serve_forever() to return, so it must not run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    print(f"aws-standin: serving {'https' if ctx else 'http'}://{args.bind}:"
          f"{server.server_address[1]} region={world.region} account={world.account} "
          f"pid={os.getpid()}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print("aws-standin: stopped", file=sys.stderr, flush=True)
    return 0
