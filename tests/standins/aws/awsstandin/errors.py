"""AWS error codes and how each wire protocol renders them.

An operation raises ApiError with a *query-protocol* code (the names Redshift and STS use); the
protocol layer renders it. awsQuery errors become
`<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`; JSON 1.1
errors become `{"__type": "<namespace>#<Code>", "message": ...}` plus the x-amzn-ErrorType header,
with the code renamed where JSON services use a different name (AccessDenied ->
AccessDeniedException, InvalidClientTokenId -> UnrecognizedClientException, ...).
"""

import json
from xml.sax.saxutils import escape

# awsQuery code -> (JSON 1.1 code, JSON HTTP status). awsJson services answer client errors with
# 400 (botocore's JSON parser reads the code from __type, never from the status); the query status
# is carried by the ApiError itself.
_JSON_NAMES = {
    "MissingAuthenticationToken": ("MissingAuthenticationTokenException", 400),
    "InvalidClientTokenId": ("UnrecognizedClientException", 400),
    "SignatureDoesNotMatch": ("InvalidSignatureException", 400),
    "IncompleteSignature": ("IncompleteSignatureException", 400),
    "ExpiredToken": ("ExpiredTokenException", 400),
    "AccessDenied": ("AccessDeniedException", 400),
    "Throttling": ("ThrottlingException", 400),
    "InvalidParameterValue": ("ValidationException", 400),
    "ValidationError": ("ValidationException", 400),
    "MissingParameter": ("ValidationException", 400),
    "InternalFailure": ("InternalServerException", 500),
    "ServiceUnavailable": ("ServiceUnavailableException", 503),
    "InvalidAction": ("UnknownOperationException", 400),
}

# Errors raised by the request-authentication layer come from AWS's shared front end, whose JSON
# namespace differs from the service's own.
_COMMON_JSON_CODES = {
    "MissingAuthenticationTokenException", "UnrecognizedClientException",
    "InvalidSignatureException", "IncompleteSignatureException", "ExpiredTokenException",
    "ThrottlingException", "ServiceUnavailableException", "UnknownOperationException",
}

MSG_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                     "provided. Check your AWS Secret Access Key and signing method. Consult the "
                     "service documentation for details.")
MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"


class ApiError(Exception):
    """An AWS error. `code` is the awsQuery name; `status` the awsQuery HTTP status.

    `json_code`/`json_status` override the automatic JSON mapping for errors that exist only in
    JSON services (ResourceNotFoundException, ...); `extra` adds members to the JSON body.
    """

    def __init__(self, code, message, status=400, json_code=None, json_status=None, extra=None):
        super().__init__(f"{code}: {message}")
        self.extra = extra or {}
        self.code = code
        self.message = message
        self.status = status
        self.json_code = json_code
        self.json_status = json_status

    def for_json(self):
        if self.json_code:
            return self.json_code, self.json_status or self.status
        name, status = _JSON_NAMES.get(self.code, (self.code, self.status))
        return name, status


def render_query(err, request_id, namespace):
    """(status, headers, body) of an awsQuery ErrorResponse."""
    kind = "Receiver" if err.status >= 500 else "Sender"
    body = (f'<ErrorResponse xmlns="{namespace}">\n'
            f'  <Error>\n'
            f'    <Type>{kind}</Type>\n'
            f'    <Code>{escape(err.code)}</Code>\n'
            f'    <Message>{escape(err.message)}</Message>\n'
            f'  </Error>\n'
            f'  <RequestId>{request_id}</RequestId>\n'
            f'</ErrorResponse>\n').encode()
    return err.status, {"Content-Type": "text/xml"}, body, err.code


def render_json(err, request_id, namespace):
    """(status, headers, body) of a JSON 1.1 error."""
    code, status = err.for_json()
    ns = "com.amazon.coral.service" if code in _COMMON_JSON_CODES else namespace
    doc = {"__type": f"{ns}#{code}", "message": err.message}
    doc.update(err.extra)
    body = json.dumps(doc).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}
    return status, headers, body, code
