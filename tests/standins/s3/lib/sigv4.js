'use strict';
// SigV4 verification for the S3 front. Parsing the Authorization header or the presigned query
// and every protocol check S3 makes (scope, dates, skew, expiry, unsigned x-amz-* headers) live
// here; the signature itself is recomputed by @smithy/signature-v4 (its canonical headers, query,
// canonical request, string to sign and HMAC key chain), an implementation rsproxy does not
// share, so a bug in rsproxy's signer shows up as SignatureDoesNotMatch rather than being
// mirrored. Credentials lookup and authorization are the caller's business.

const {
  SignatureV4,
  getCanonicalHeaders,
  createScope,
  ALGORITHM_IDENTIFIER,
} = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');
const { S3Error } = require('./errors');

const MAX_SKEW_MS = 15 * 60 * 1000; // S3's documented/observed window (reference §6).
const MAX_PRESIGN_EXPIRES = 604800; // one week
const HEX64 = /^[0-9a-f]{64}$/;

// RFC 3986 encoding as S3 applies it to each path segment of the canonical URI.
function encodeRfc3986(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function decodeOrThrow(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    throw new S3Error('InvalidURI');
  }
}

// The canonical URI S3 computes: the path is decoded once and re-encoded segment by segment, so
// a client that sends `a%2Bb`, `a%2bb` or `a+b`... must have signed the one canonical form.
function canonicalPath(rawPath) {
  return rawPath.split('/').map((seg) => encodeRfc3986(decodeOrThrow(seg))).join('/');
}

// Parses a raw query string into {name: value | [values]} with names and values decoded.
function parseQuery(raw) {
  const query = {};
  if (!raw) return query;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeOrThrow(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : decodeOrThrow(part.slice(eq + 1));
    if (Object.prototype.hasOwnProperty.call(query, k)) {
      query[k] = [].concat(query[k], v);
    } else {
      query[k] = v;
    }
  }
  return query;
}

function first(v) {
  return Array.isArray(v) ? v[0] : v;
}

// "AKID/20130524/us-east-1/s3/aws4_request" -> parts, or an S3 error in S3's words.
function parseCredential(cred, inQuery) {
  const parts = (cred || '').split('/');
  if (parts.length !== 5 || !parts[0] || !/^\d{8}$/.test(parts[1]) || parts[4] !== 'aws4_request') {
    const msg = 'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".';
    if (inQuery) throw new S3Error('AuthorizationQueryParametersError', 'Error parsing the X-Amz-Credential parameter; ' + msg);
    throw new S3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; ' + msg);
  }
  return { akid: parts[0], shortDate: parts[1], region: parts[2], service: parts[3] };
}

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  const t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  return Number.isNaN(t) ? null : t;
}

function isoSeconds(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// Reads the authentication material of a request. Returns null for an anonymous request,
// otherwise {mode: 'header'|'query', akid, shortDate, region, service, longDate, dateMs,
// signedHeaders, signature, token, expires}. Throws S3Error for malformed input.
function parseAuth(req, query) {
  const auth = req.headers.authorization;
  const hasQuery = Object.prototype.hasOwnProperty.call(query, 'X-Amz-Algorithm');
  const hasV2Query = Object.prototype.hasOwnProperty.call(query, 'Signature') ||
                     Object.prototype.hasOwnProperty.call(query, 'AWSAccessKeyId');
  if ((auth !== undefined) + hasQuery + hasV2Query > 1) {
    throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
      { ArgumentName: 'Authorization', ArgumentValue: auth || '' });
  }
  if (hasV2Query || (auth !== undefined && /^AWS /.test(auth))) {
    throw new S3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  if (auth !== undefined) {
    const m = /^(\S+)\s+(.*)$/.exec(auth.trim());
    if (!m || m[1] !== ALGORITHM_IDENTIFIER) {
      throw new S3Error('InvalidArgument', 'Unsupported Authorization Type', {
        ArgumentName: 'Authorization', ArgumentValue: auth,
      });
    }
    const fields = {};
    for (const item of m[2].split(',')) {
      const eq = item.indexOf('=');
      if (eq < 0) continue;
      fields[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
    }
    for (const need of ['Credential', 'SignedHeaders', 'Signature']) {
      if (!fields[need]) {
        throw new S3Error('AuthorizationHeaderMalformed',
          `The authorization header is malformed; the authorization component "${need}" is missing.`);
      }
    }
    const cred = parseCredential(fields.Credential, false);
    const amzDate = req.headers['x-amz-date'];
    const dateMs = parseAmzDate(amzDate);
    if (dateMs === null) {
      // S3 also accepts an RFC 1123 Date header; smithy and botocore always send X-Amz-Date.
      throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
    }
    if (amzDate.slice(0, 8) !== cred.shortDate) {
      throw new S3Error('AuthorizationHeaderMalformed',
        `The authorization header is malformed; Invalid credential date "${cred.shortDate}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`);
    }
    return {
      mode: 'header',
      ...cred,
      longDate: amzDate,
      dateMs,
      signedHeaders: fields.SignedHeaders.split(';'),
      signature: fields.Signature,
      token: req.headers['x-amz-security-token'],
      payloadHash: req.headers['x-amz-content-sha256'],
    };
  }
  if (hasQuery) {
    const alg = first(query['X-Amz-Algorithm']);
    const missing = ['X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires']
      .filter((k) => !query[k]);
    if (alg !== ALGORITHM_IDENTIFIER) {
      throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    }
    if (missing.length) throw new S3Error('AuthorizationQueryParametersError');
    const cred = parseCredential(first(query['X-Amz-Credential']), true);
    const amzDate = first(query['X-Amz-Date']);
    const dateMs = parseAmzDate(amzDate);
    if (dateMs === null) {
      throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
    }
    const expires = Number(first(query['X-Amz-Expires']));
    if (!Number.isInteger(expires) || expires < 0) {
      throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Expires should be a number');
    }
    if (expires > MAX_PRESIGN_EXPIRES) {
      throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
    }
    return {
      mode: 'query',
      ...cred,
      longDate: amzDate,
      dateMs,
      signedHeaders: first(query['X-Amz-SignedHeaders']).split(';'),
      signature: first(query['X-Amz-Signature']),
      token: first(query['X-Amz-Security-Token']),
      expires,
      // S3 presigned URLs never sign the payload unless the client signed the header itself.
      payloadHash: req.headers['x-amz-content-sha256'] || 'UNSIGNED-PAYLOAD',
    };
  }
  return null;
}

// Time checks: skew for header auth, validity window for presigned URLs.
function checkTime(a, nowMs) {
  if (a.mode === 'header') {
    if (Math.abs(nowMs - a.dateMs) > MAX_SKEW_MS) {
      throw new S3Error('RequestTimeTooSkewed', undefined, {
        RequestTime: a.longDate,
        ServerTime: isoSeconds(nowMs),
        MaxAllowedSkewMilliseconds: String(MAX_SKEW_MS),
      });
    }
    return;
  }
  if (a.dateMs - nowMs > MAX_SKEW_MS) {
    throw new S3Error('AccessDenied', 'Request is not valid yet');
  }
  if (nowMs > a.dateMs + a.expires * 1000) {
    throw new S3Error('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(a.expires),
      Expires: isoSeconds(a.dateMs + a.expires * 1000),
      ServerTime: isoSeconds(nowMs),
    });
  }
}

// Structural checks S3 applies to the signed header list and the payload hash.
function checkSignedParts(req, a) {
  const signed = new Set(a.signedHeaders);
  if (!signed.has('host')) {
    throw new S3Error(a.mode === 'header' ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError',
      'The authorization header is malformed; the host header must be signed.');
  }
  // Every x-amz-* header sent must be signed (S3: "There were headers present in the request
  // which were not signed"). Otherwise a man in the middle could add them.
  const unsigned = Object.keys(req.headers).filter((h) => h.startsWith('x-amz-') && !signed.has(h));
  if (unsigned.length) {
    throw new S3Error('AccessDenied', 'There were headers present in the request which were not signed',
      { HeadersNotSigned: unsigned.join(', ') });
  }
  if (a.mode === 'header') {
    const ph = a.payloadHash;
    if (ph === undefined) {
      throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    }
    if (ph.startsWith('STREAMING-')) {
      throw new S3Error('NotImplemented', undefined, { Header: 'x-amz-content-sha256' });
    }
    if (ph !== 'UNSIGNED-PAYLOAD' && !HEX64.test(ph)) {
      throw new S3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.',
        { ArgumentName: 'x-amz-content-sha256', ArgumentValue: ph });
    }
  }
}

// Recomputes the signature with @smithy/signature-v4 for the request as received.
// rawPath: the path of the request line (without the query), query: parsed query.
async function computeSignature(req, rawPath, query, a, secret) {
  const signer = new SignatureV4({
    credentials: { accessKeyId: a.akid, secretAccessKey: secret },
    region: a.region,
    service: a.service,
    sha256: Sha256,
    uriEscapePath: false, // S3 never double-encodes; canonicalPath() already encoded once
    applyChecksum: false,
  });
  const headers = {};
  for (const name of a.signedHeaders) {
    const values = req.headersDistinct[name];
    if (values !== undefined) headers[name] = values.map((v) => v.trim()).join(',');
  }
  // signableHeaders = exactly the client's list: smithy would otherwise drop headers such as
  // user-agent or expect that it never signs itself, and the signatures could not agree.
  const canonicalHeaders = getCanonicalHeaders({ headers }, undefined, new Set(a.signedHeaders));
  const request = { method: req.method, path: canonicalPath(rawPath), query };
  const canonicalRequest = signer.createCanonicalRequest(request, canonicalHeaders, a.payloadHash);
  const scope = createScope(a.shortDate, a.region, a.service);
  const stringToSign = await signer.createStringToSign(a.longDate, scope, canonicalRequest, ALGORITHM_IDENTIFIER);
  const key = signer.getSigningKey({ accessKeyId: a.akid, secretAccessKey: secret }, a.region, a.shortDate, a.service);
  const signature = await signer.getSignature(a.longDate, scope, key, canonicalRequest);
  return { signature, stringToSign, canonicalRequest };
}

function hexBytes(s) {
  return Buffer.from(s, 'utf8').toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

// Throws SignatureDoesNotMatch with the diagnostic fields S3 returns.
async function verifySignature(req, rawPath, query, a, secret) {
  const got = await computeSignature(req, rawPath, query, a, secret);
  const provided = String(a.signature);
  const ok = provided.length === got.signature.length &&
    require('crypto').timingSafeEqual(Buffer.from(provided), Buffer.from(got.signature));
  if (!ok) {
    throw new S3Error('SignatureDoesNotMatch', undefined, {
      AWSAccessKeyId: a.akid,
      StringToSign: got.stringToSign,
      SignatureProvided: provided,
      StringToSignBytes: hexBytes(got.stringToSign),
      CanonicalRequest: got.canonicalRequest,
      CanonicalRequestBytes: hexBytes(got.canonicalRequest),
    });
  }
}

module.exports = {
  parseAuth, parseQuery, checkTime, checkSignedParts, verifySignature, computeSignature,
  canonicalPath, encodeRfc3986, parseAmzDate, MAX_SKEW_MS, HEX64,
};
