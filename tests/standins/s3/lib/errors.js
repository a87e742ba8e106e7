'use strict';
// S3 error responses for the front: the codes, HTTP statuses, messages and XML body shape that
// Amazon S3 documents ("Error responses" in the S3 API reference), so that clients under test
// (botocore, rsproxy's s3/ module) see exactly what they would see from AWS. This module only
// formats errors; it decides nothing about when to raise them.

const crypto = require('crypto');

// Status and default message for every code the front raises itself. s3rver's own errors
// (NoSuchKey, NoSuchBucket, NoSuchUpload, ...) are relayed untouched.
const CODES = {
  AccessDenied: [403, 'Access Denied'],
  AuthorizationHeaderMalformed: [400, 'The authorization header is malformed.'],
  AuthorizationQueryParametersError: [400, 'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.'],
  BadDigest: [400, 'The Content-MD5 you specified did not match what we received.'],
  ExpiredToken: [400, 'The provided token has expired.'],
  IncompleteBody: [400, 'You did not provide the number of bytes specified by the Content-Length HTTP header.'],
  InternalError: [500, 'We encountered an internal error. Please try again.'],
  InvalidAccessKeyId: [403, 'The AWS Access Key Id you provided does not exist in our records.'],
  InvalidArgument: [400, 'Invalid Argument'],
  InvalidDigest: [400, 'The Content-MD5 you specified is not valid.'],
  InvalidRange: [416, 'The requested range is not satisfiable'],
  InvalidRequest: [400, 'Invalid Request'],
  InvalidToken: [400, 'The provided token is malformed or otherwise invalid.'],
  InvalidURI: [400, "Couldn't parse the specified URI."],
  MalformedXML: [400, 'The XML you provided was not well-formed or did not validate against our published schema'],
  MaxMessageLengthExceeded: [400, 'Your request was too big.'],
  MethodNotAllowed: [405, 'The specified method is not allowed against this resource.'],
  MissingContentLength: [411, 'You must provide the Content-Length HTTP header.'],
  MissingSecurityHeader: [400, 'Your request was missing a required header'],
  NoSuchBucket: [404, 'The specified bucket does not exist'],
  NoSuchLifecycleConfiguration: [404, 'The lifecycle configuration does not exist'],
  NotImplemented: [501, 'A header you provided implies functionality that is not implemented'],
  RequestTimeTooSkewed: [403, 'The difference between the request time and the current time is too large.'],
  ServiceUnavailable: [503, 'Please reduce your request rate.'],
  SignatureDoesNotMatch: [403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'],
  SlowDown: [503, 'Please reduce your request rate.'],
  XAmzContentSHA256Mismatch: [400, "The provided 'x-amz-content-sha256' header does not match what was computed."],
};

class S3Error extends Error {
  // detail: extra child elements of <Error>, in order (e.g. {StringToSign: ...}).
  constructor(code, message, detail = {}, status) {
    const known = CODES[code] || [500, code];
    super(message || known[1]);
    this.code = code;
    this.status = status || known[0];
    this.detail = detail;
  }
}

function xmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  }[c]));
}

function newRequestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
}

function newHostId() {
  return crypto.randomBytes(48).toString('base64');
}

// The <Error> document. RequestId and HostId come last, as S3 sends them.
function errorXml(err, requestId, hostId) {
  let body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>';
  body += `<Code>${xmlEscape(err.code)}</Code><Message>${xmlEscape(err.message)}</Message>`;
  for (const [k, v] of Object.entries(err.detail || {})) {
    if (v === undefined || v === null) continue;
    body += `<${k}>${xmlEscape(v)}</${k}>`;
  }
  body += `<RequestId>${requestId}</RequestId><HostId>${xmlEscape(hostId)}</HostId></Error>`;
  return body;
}

// Writes the error to an http.ServerResponse. HEAD responses carry no body (S3 sends the status
// and x-amz-* headers only). The connection is closed when the request body was not read, so a
// rejected upload cannot leave bytes in the pipe that would be parsed as the next request.
function sendError(req, res, err, requestId) {
  if (!(err instanceof S3Error)) {
    err = new S3Error('InternalError');
  }
  const hostId = newHostId();
  const body = req.method === 'HEAD' ? '' : errorXml(err, requestId, hostId);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers = {
    'Content-Type': 'application/xml',
    'Content-Length': Buffer.byteLength(body),
    'x-amz-request-id': requestId,
    'x-amz-id-2': hostId,
    Date: new Date().toUTCString(),
    Server: 'AmazonS3',
  };
  if (!req.complete) headers.Connection = 'close';
  res.writeHead(err.status, headers);
  res.end(body);
}

module.exports = { S3Error, CODES, xmlEscape, errorXml, sendError, newRequestId, newHostId };
