"""The response object every handler returns, and the faults that can mangle it on the way out.

Handlers build a Response; the HTTP layer (server.py) writes it, adding Date, x-amzn-RequestId and
Content-Length. `mangle` carries a fault that must act on the bytes themselves: "garbage" (a 200
with noise instead of the document), "partial" (the document cut in half, with a matching
Content-Length) or "truncated" (the full Content-Length announced, half the body sent, then the
connection closed).
"""

import json


class Response:
    def __init__(self, status, body=b"", content_type="text/plain", headers=None, code=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = {"Content-Type": content_type}
        self.headers.update(headers or {})
        self.code = code          # AWS error code, for the request log
        self.mangle = None


def json_response(status, doc, code=None, content_type="application/json"):
    return Response(status, json.dumps(doc, indent=1).encode(), content_type, code=code)
