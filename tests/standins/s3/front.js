#!/usr/bin/env node
'use strict';
// The S3 stand-in: an HTTP front that behaves like Amazon S3 towards its clients and keeps the
// objects in s3rver (run as a child process, see s3rver-child.js). For every request the front
// resolves path-style or virtual-hosted-style addressing, looks up the access key (key file, the
// AWS stand-in's /_standin/keys/<akid>, or the world file), re-verifies the SigV4 signature with
// @smithy/signature-v4 (header auth and presigned URLs), checks the session token, clock skew,
// the payload hash and the key's allowed s3:// patterns, and answers failures with S3's codes and
// XML bodies. Accepted requests are forwarded path-style to s3rver under s3rver's own key, with
// bodies streamed both ways (a body whose SHA-256 must be checked is spooled to disk first, so a
// mismatch never reaches the store). Bucket lifecycle configuration is served by the front itself
// because s3rver has none. It does not implement aws-chunked (STREAMING-*) uploads or SigV4a.
//
// Usage: node front.js --port 0 --state world.json [--aws-control URL] [--keys keys.json]
//                      [--data-dir DIR] [--region R] [--vhost-domain D]... [--host 127.0.0.1]
// Prints "LISTENING <port>" on stdout once both the front and s3rver accept connections.

const http = require('http');
const fs = require('fs');
const fsp = require('fs/promises');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { fork } = require('child_process');
const { pipeline } = require('stream');
const { isIP } = require('net');
const he = require('he');

const { S3Error, sendError, newRequestId, newHostId, xmlEscape } = require('./lib/errors');
const sigv4 = require('./lib/sigv4');
const { KeyStore, allowed } = require('./lib/keys');
const { parseLifecycle, lifecycleXml } = require('./lib/lifecycle');
const { checkRequiredChecksum } = require('./lib/checksum');
const multipart = require('./lib/multipart');

const SMALL_BODY = 1 << 20; // bodies up to this size are checked in memory, larger ones on disk
const MAX_CONTROL_BODY = 1 << 20; // lifecycle configuration, DeleteObjects, control API
const PRESIGN_PARAMS = new Set(['x-amz-algorithm', 'x-amz-credential', 'x-amz-date', 'x-amz-expires',
  'x-amz-signedheaders', 'x-amz-signature', 'x-amz-security-token']);
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding',
  'upgrade', 'te', 'trailer', 'expect', 'host', 'authorization', 'x-amz-security-token',
  'x-amz-content-sha256', 'x-amz-date']);

function parseArgs(argv) {
  const o = { port: 0, host: '127.0.0.1', vhostDomains: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--port': o.port = Number(val()); break;
      case '--host': o.host = val(); break;
      case '--state': o.state = val(); break;
      case '--aws-control': o.awsControl = val(); break;
      case '--keys': o.keysFile = val(); break;
      case '--data-dir': o.dataDir = val(); break;
      case '--region': o.region = val(); break;
      case '--vhost-domain': o.vhostDomains.push(val().toLowerCase()); break;
      case '--quiet': o.quiet = true; break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('bad --port');
  return o;
}

function usage(msg) {
  if (msg) process.stderr.write(`s3-standin: ${msg}\n`);
  process.stderr.write('usage: node front.js --port N --state WORLD.json [--aws-control URL] [--keys FILE] ' +
    '[--data-dir DIR] [--region R] [--vhost-domain D] [--host ADDR] [--quiet]\n');
  process.exit(msg ? 2 : 0);
}

const opts = parseArgs(process.argv.slice(2));
const world = opts.state ? JSON.parse(fs.readFileSync(opts.state, 'utf8')) : {};
const defaultRegion = opts.region || world.region || 'us-east-1';

// Buckets of the world file: names, or {"name": ..., "region": ...} for a bucket elsewhere.
const bucketRegions = new Map();
const initialBuckets = [];
for (const b of world.buckets || []) {
  const name = typeof b === 'string' ? b : b.name;
  initialBuckets.push(name);
  if (typeof b === 'object' && b.region) bucketRegions.set(name, b.region);
}

const keys = new KeyStore({ keysFile: opts.keysFile, awsControl: opts.awsControl, world });
const lifecycles = new Map(); // bucket -> normalised rules
const calls = {}; // operation -> count
const faults = []; // {op, mode, remaining, code, status, seconds}
const vhostDomains = [...opts.vhostDomains, 's3.localhost', 'localhost']
  .sort((a, b) => b.length - a.length);

let upstreamPort = 0;
const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let spoolDir = null;
let storeDir = null;
let ownDataDir = null;

function log(line) {
  if (!opts.quiet) process.stderr.write(`s3-standin: ${line}\n`);
}

// The bucket named by a virtual-hosted-style Host header, or null for path-style.
function hostBucket(hostHeader) {
  if (!hostHeader) return null;
  let host = hostHeader.toLowerCase();
  if (host.startsWith('[')) return null; // IPv6 literal
  host = host.replace(/:\d+$/, '');
  if (isIP(host)) return null;
  const aws = /^(.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com$/.exec(host);
  if (aws) return aws[1];
  for (const d of vhostDomains) {
    if (host.endsWith('.' + d)) return host.slice(0, -d.length - 1);
  }
  return null;
}

function decodeSeg(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    throw new S3Error('InvalidURI');
  }
}

function has(q, k) {
  return Object.prototype.hasOwnProperty.call(q, k);
}

function first(v) {
  return Array.isArray(v) ? v[0] : v;
}

// Names the S3 operation and what it needs from the key's permissions (see keys.allowed).
function classify(method, bucket, key, q, headers) {
  if (bucket === null) {
    return { op: method === 'GET' ? 'ListBuckets' : 'UnknownServiceOperation', need: { kind: 'service' } };
  }
  const b = { kind: 'bucket', bucket };
  if (key === null) {
    const sub = ['lifecycle', 'location', 'versioning', 'acl', 'cors', 'policy', 'tagging', 'website',
      'logging', 'notification', 'encryption', 'replication', 'ownershipControls', 'publicAccessBlock']
      .find((s) => has(q, s));
    if (sub) {
      const cap = sub.charAt(0).toUpperCase() + sub.slice(1);
      const verb = { GET: 'Get', PUT: 'Put', DELETE: 'Delete' }[method] || method;
      const suffix = sub === 'lifecycle' ? 'LifecycleConfiguration' : cap;
      return { op: `${verb}Bucket${suffix}`, need: b, sub };
    }
    // DeleteObjects is authorized key by key (s3:DeleteObject), answered per key.
    if (method === 'POST' && has(q, 'delete')) return { op: 'DeleteObjects', need: { kind: 'any' } };
    if (method === 'GET' && has(q, 'uploads')) {
      return { op: 'ListMultipartUploads', need: { kind: 'list', bucket, prefix: first(q.prefix) || '' } };
    }
    if (method === 'GET' && has(q, 'versions')) {
      return { op: 'ListObjectVersions', need: { kind: 'list', bucket, prefix: first(q.prefix) || '' } };
    }
    if (method === 'GET') {
      return {
        op: first(q['list-type']) === '2' ? 'ListObjectsV2' : 'ListObjects',
        need: { kind: 'list', bucket, prefix: first(q.prefix) || '' },
      };
    }
    const op = { HEAD: 'HeadBucket', PUT: 'CreateBucket', DELETE: 'DeleteBucket' }[method] || 'UnknownBucketOperation';
    return { op, need: b };
  }
  const o = { kind: 'object', bucket, key };
  const copy = headers['x-amz-copy-source'];
  let op;
  if (method === 'GET') op = has(q, 'uploadId') ? 'ListParts' : has(q, 'tagging') ? 'GetObjectTagging' : has(q, 'acl') ? 'GetObjectAcl' : 'GetObject';
  else if (method === 'HEAD') op = 'HeadObject';
  else if (method === 'PUT') {
    if (has(q, 'partNumber') && has(q, 'uploadId')) op = copy ? 'UploadPartCopy' : 'UploadPart';
    else if (has(q, 'tagging')) op = 'PutObjectTagging';
    else if (has(q, 'acl')) op = 'PutObjectAcl';
    else op = copy ? 'CopyObject' : 'PutObject';
  } else if (method === 'POST') {
    op = has(q, 'uploads') ? 'CreateMultipartUpload' : has(q, 'uploadId') ? 'CompleteMultipartUpload' : 'PostObjectOperation';
  } else if (method === 'DELETE') op = has(q, 'uploadId') ? 'AbortMultipartUpload' : has(q, 'tagging') ? 'DeleteObjectTagging' : 'DeleteObject';
  else op = 'UnknownObjectOperation';
  const extra = [];
  if (copy) {
    // x-amz-copy-source: "/bucket/key" or "bucket/key", URL-encoded, optional ?versionId=.
    const src = decodeSeg(copy.split('?')[0]).replace(/^\//, '');
    const slash = src.indexOf('/');
    if (slash <= 0) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey', { ArgumentName: 'x-amz-copy-source', ArgumentValue: copy });
    extra.push({ kind: 'object', bucket: src.slice(0, slash), key: src.slice(slash + 1) });
  }
  return { op, need: o, extra };
}

// Reads a whole (small) body, bounded.
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        req.pause();
        reject(new S3Error('MaxMessageLengthExceeded'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new S3Error('IncompleteBody')));
  });
}

function sha256Hex(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function mismatch(client, computed) {
  return new S3Error('XAmzContentSHA256Mismatch', undefined, {
    ClientComputedContentSHA256: client,
    S3ComputedContentSHA256: computed,
  });
}

// Body of an accepted request, as something forward() can send: {buffer} or {file, length} or
// {stream}. A body with a real x-amz-content-sha256 is read completely and checked before any
// byte reaches s3rver; small bodies in memory, large ones spooled to a temp file.
async function takeBody(req, auth) {
  const declared = req.headers['content-length'];
  const hasBody = declared !== undefined ? Number(declared) > 0 : req.headers['transfer-encoding'] !== undefined;
  if (!hasBody) {
    if (auth.payloadHash && sigv4.HEX64.test(auth.payloadHash) && auth.payloadHash !== sha256Hex(Buffer.alloc(0))) {
      throw mismatch(auth.payloadHash, sha256Hex(Buffer.alloc(0)));
    }
    return { buffer: Buffer.alloc(0) };
  }
  if (declared === undefined && (req.method === 'PUT' || req.method === 'POST')) {
    throw new S3Error('MissingContentLength');
  }
  const length = Number(declared);
  if (!sigv4.HEX64.test(auth.payloadHash || '')) {
    return { stream: req, length };
  }
  if (length <= SMALL_BODY) {
    const buf = await readBody(req, SMALL_BODY);
    if (buf.length !== length) throw new S3Error('IncompleteBody');
    const got = sha256Hex(buf);
    if (got !== auth.payloadHash) throw mismatch(auth.payloadHash, got);
    return { buffer: buf };
  }
  const file = path.join(spoolDir, crypto.randomBytes(12).toString('hex'));
  const hash = crypto.createHash('sha256');
  let received = 0;
  await new Promise((resolve, reject) => {
    const out = fs.createWriteStream(file, { mode: 0o600 });
    req.on('data', (c) => {
      hash.update(c);
      received += c.length;
    });
    req.on('aborted', () => reject(new S3Error('IncompleteBody')));
    pipeline(req, out, (err) => (err ? reject(err) : resolve()));
  }).catch(async (e) => {
    await fsp.rm(file, { force: true });
    throw e instanceof S3Error ? e : new S3Error('IncompleteBody');
  });
  const got = hash.digest('hex');
  if (received !== length || got !== auth.payloadHash) {
    await fsp.rm(file, { force: true });
    if (received !== length) throw new S3Error('IncompleteBody');
    throw mismatch(auth.payloadHash, got);
  }
  return { file, length };
}

// Headers that make s3rver accept the request as its own default account (s3rver does not
// verify V4 signatures; it only checks the key exists, see reference/test-environment.md).
function upstreamAuthHeaders(region) {
  const now = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=S3RVER/${now.slice(0, 8)}/${region}/s3/aws4_request, ` +
      `SignedHeaders=host, Signature=${'0'.repeat(64)}`,
    'x-amz-date': now,
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
  };
}

function upstreamPath(bucket, key, rawQuery) {
  let p = '/' + sigv4.encodeRfc3986(bucket);
  if (key !== null) p += '/' + key.split('/').map(sigv4.encodeRfc3986).join('/');
  // Keep the client's own encoding of every parameter except the presigned-URL ones.
  const kept = (rawQuery || '').split('&').filter((part) => {
    if (!part) return false;
    const name = decodeSeg(part.split('=')[0]).toLowerCase();
    return !PRESIGN_PARAMS.has(name);
  });
  return kept.length ? p + '?' + kept.join('&') : p;
}

// Sends one request to s3rver; resolves with the upstream response (not yet consumed).
function upstreamRequest(method, upath, headers, body) {
  return new Promise((resolve, reject) => {
    const h = { ...headers, host: `127.0.0.1:${upstreamPort}` };
    if (body && body.buffer) h['content-length'] = String(body.buffer.length);
    else if (body && body.length !== undefined) h['content-length'] = String(body.length);
    const ureq = http.request({ host: '127.0.0.1', port: upstreamPort, method, path: upath, headers: h, agent: upstreamAgent }, resolve);
    ureq.on('error', reject);
    if (!body || body.buffer) {
      ureq.end(body ? body.buffer : undefined);
    } else if (body.file) {
      pipeline(fs.createReadStream(body.file), ureq, (err) => {
        fsp.rm(body.file, { force: true }).catch(() => {});
        if (err) reject(err);
      });
    } else {
      pipeline(body.stream, ureq, (err) => {
        if (err) reject(err);
      });
    }
  });
}

function drain(ures) {
  return new Promise((resolve) => {
    ures.resume();
    ures.on('end', resolve);
    ures.on('error', resolve);
  });
}

async function bucketExists(bucket) {
  const ures = await upstreamRequest('HEAD', '/' + sigv4.encodeRfc3986(bucket), upstreamAuthHeaders(defaultRegion));
  await drain(ures);
  return ures.statusCode === 200;
}

function s3Headers(requestId, extra = {}) {
  return {
    'x-amz-request-id': requestId,
    'x-amz-id-2': newHostId(),
    Date: new Date().toUTCString(),
    Server: 'AmazonS3',
    ...extra,
  };
}

// Multipart operations s3rver lacks or gets wrong (see lib/multipart.js). Returns the status
// when the front answered the request itself, or 0 to let s3rver handle it.
async function serveMultipart(req, res, op, bucket, key, query, requestId) {
  const uploadId = first(query.uploadId);
  const xml = (status, body) => {
    res.writeHead(status, s3Headers(requestId, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) }));
    res.end(body);
    return status;
  };
  if (op === 'UploadPart') {
    const n = Number(first(query.partNumber));
    if (!Number.isInteger(n) || n < 1 || n > 10000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive',
        { ArgumentName: 'partNumber', ArgumentValue: String(first(query.partNumber)) });
    }
    await multipart.checkUpload(storeDir, bucket, key, uploadId);
    return 0;
  }
  if (op === 'AbortMultipartUpload') {
    await multipart.abort(await multipart.checkUpload(storeDir, bucket, key, uploadId));
    res.writeHead(204, s3Headers(requestId));
    res.end();
    return 204;
  }
  if (op === 'ListParts') {
    const dir = await multipart.checkUpload(storeDir, bucket, key, uploadId);
    return xml(200, await multipart.listParts(dir, bucket, key, uploadId));
  }
  if (op === 'ListMultipartUploads') {
    if (!(await bucketExists(bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
    return xml(200, await multipart.listUploads(storeDir, bucket, first(query.prefix)));
  }
  return 0;
}

async function serveLifecycle(req, res, ctx, auth) {
  const { bucket, requestId } = ctx;
  if (!(await bucketExists(bucket))) {
    throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
  }
  if (req.method === 'GET') {
    const rules = lifecycles.get(bucket);
    if (!rules) throw new S3Error('NoSuchLifecycleConfiguration', undefined, { BucketName: bucket });
    const body = lifecycleXml(rules);
    res.writeHead(200, s3Headers(requestId, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) }));
    res.end(body);
    return 200;
  }
  if (req.method === 'PUT') {
    const buf = await readBody(req, MAX_CONTROL_BODY);
    if (sigv4.HEX64.test(auth.payloadHash) && sha256Hex(buf) !== auth.payloadHash) {
      throw mismatch(auth.payloadHash, sha256Hex(buf));
    }
    checkRequiredChecksum(req.headers, buf);
    lifecycles.set(bucket, parseLifecycle(buf.toString('utf8')));
    res.writeHead(200, s3Headers(requestId, { 'Content-Length': 0 }));
    res.end();
    return 200;
  }
  if (req.method === 'DELETE') {
    lifecycles.delete(bucket);
    res.writeHead(204, s3Headers(requestId));
    res.end();
    return 204;
  }
  throw new S3Error('MethodNotAllowed', undefined, { Method: req.method, ResourceType: 'LIFECYCLEPOLICY' });
}

// An S3Error from an s3rver error response (its Code, Message and detail elements).
async function s3rverError(ures) {
  let xml = '';
  try {
    xml = (await readBody(ures, MAX_CONTROL_BODY)).toString('utf8');
  } catch (e) {
    return new S3Error('InternalError');
  }
  const fields = {};
  const re = /<(\w+)>([\s\S]*?)<\/\1>/g;
  const inner = (/<Error>([\s\S]*)<\/Error>/.exec(xml) || [null, ''])[1];
  let m;
  while ((m = re.exec(inner)) !== null) fields[m[1]] = he.decode(m[2]);
  const code = fields.Code || `Http${ures.statusCode}`;
  const message = fields.Message || '';
  for (const k of ['Code', 'Message', 'RequestId', 'HostId']) delete fields[k];
  return new S3Error(code, message, fields, ures.statusCode);
}

const bucketLocks = new Map(); // bucket -> tail of the promise chain

function lockBucket(bucket) {
  const prev = bucketLocks.get(bucket) || Promise.resolve();
  let release;
  const mine = new Promise((r) => { release = r; });
  const tail = prev.then(() => mine);
  bucketLocks.set(bucket, tail);
  tail.then(() => { if (bucketLocks.get(bucket) === tail) bucketLocks.delete(bucket); });
  return prev.then(() => release);
}

// Reads a (bodiless) DeleteObject response fully so the lock covers s3rver's whole handling;
// keeps the bytes to replay to the client.
function drainStatusOnly(ures) {
  return new Promise((resolve) => {
    const chunks = [];
    ures.on('data', (c) => chunks.push(c));
    ures.on('end', () => {
      ures.replayBody = Buffer.concat(chunks);
      resolve();
    });
    ures.on('error', resolve);
  });
}

// DeleteObjects, done here as one DeleteObject after the other: s3rver runs them concurrently
// and its empty-directory cleanup then races with itself (ENOENT -> 500 InternalError).
async function serveDeleteObjects(req, res, bucket, buf, rec, requestId) {
  checkRequiredChecksum(req.headers, buf);
  const xml = buf.toString('utf8');
  if (!/<Delete[\s>]/.test(xml)) throw new S3Error('MalformedXML');
  const keysToDelete = deleteObjectsKeys(xml);
  if (keysToDelete.length === 0 || keysToDelete.length > 1000) throw new S3Error('MalformedXML');
  if (!(await bucketExists(bucket))) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket });
  const quiet = /<Quiet>\s*true\s*<\/Quiet>/i.test(xml);
  let out = '<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">';
  for (const k of keysToDelete) {
    if (!allowed(rec.s3, { kind: 'object', bucket, key: k })) {
      out += `<Error><Key>${xmlEscape(k)}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`;
      continue;
    }
    const release = await lockBucket(bucket);
    let ures;
    try {
      ures = await upstreamRequest('DELETE', upstreamPath(bucket, k, ''), upstreamAuthHeaders(defaultRegion));
      await drain(ures);
    } finally {
      release();
    }
    if (ures.statusCode === 204 || ures.statusCode === 200) {
      if (!quiet) out += `<Deleted><Key>${xmlEscape(k)}</Key></Deleted>`;
    } else {
      out += `<Error><Key>${xmlEscape(k)}</Key><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>`;
    }
  }
  out += '</DeleteResult>';
  res.writeHead(200, s3Headers(requestId, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(out) }));
  res.end(out);
  return 200;
}

// The keys a DeleteObjects body names (each needs permission).
function deleteObjectsKeys(xml) {
  const keysFound = [];
  const re = /<Key>([\s\S]*?)<\/Key>/g;
  let m;
  while ((m = re.exec(xml)) !== null) {
    keysFound.push(m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
      .replace(/&apos;/g, "'").replace(/&amp;/g, '&'));
  }
  return keysFound;
}

function takeFault(op) {
  const f = faults.find((x) => (x.op === op || x.op === '*') && x.remaining > 0);
  if (!f) return null;
  f.remaining--;
  return f;
}

async function handleControl(req, res, rawPath) {
  const json = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (req.method === 'GET' && rawPath === '/_standin/calls') return json(200, calls);
  if (req.method === 'GET' && rawPath === '/_standin/health') return json(200, { ok: true });
  if (req.method === 'POST' && rawPath === '/_standin/reset') {
    for (const k of Object.keys(calls)) delete calls[k];
    faults.length = 0;
    return json(200, {});
  }
  if (req.method === 'POST' && rawPath === '/_standin/faults') {
    let f;
    try {
      f = JSON.parse((await readBody(req, MAX_CONTROL_BODY)).toString('utf8'));
    } catch (e) {
      return json(400, { error: 'body must be JSON' });
    }
    const modes = ['error', 'stall', 'reset'];
    if (typeof f.op !== 'string' || !modes.includes(f.mode)) {
      return json(400, { error: `need {"op": "<S3 operation>|*", "mode": "${modes.join('|')}", "count": N}` });
    }
    faults.push({
      op: f.op, mode: f.mode, remaining: Number.isInteger(f.count) ? f.count : 1,
      code: f.code || 'InternalError', status: f.status, message: f.message, seconds: f.seconds || 30,
    });
    return json(200, {});
  }
  return json(404, { error: 'unknown control path' });
}

async function handle(req, res) {
  const requestId = newRequestId();
  const started = Date.now();
  let op = '-';
  let akid = '-';
  let where = '';
  const finish = (status, code) => {
    log(`${requestId} ${req.method} ${op} ${where} akid=${akid} -> ${status}${code ? ' ' + code : ''} (${Date.now() - started} ms)`);
  };
  try {
    const qpos = req.url.indexOf('?');
    const rawPath = qpos < 0 ? req.url : req.url.slice(0, qpos);
    const rawQuery = qpos < 0 ? '' : req.url.slice(qpos + 1);
    if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI');
    const vbucket = hostBucket(req.headers.host);
    if (vbucket === null && rawPath.startsWith('/_standin/')) {
      await handleControl(req, res, rawPath);
      return;
    }
    let bucket = vbucket;
    let key = null;
    if (vbucket !== null) {
      if (rawPath.length > 1) key = decodeSeg(rawPath.slice(1));
    } else {
      const rest = rawPath.slice(1);
      const slash = rest.indexOf('/');
      const b = slash < 0 ? rest : rest.slice(0, slash);
      bucket = b === '' ? null : decodeSeg(b);
      if (slash >= 0 && slash + 1 < rest.length) key = decodeSeg(rest.slice(slash + 1));
    }
    where = bucket === null ? '/' : `${bucket}/${key === null ? '' : key}`;
    if ((key !== null && key.split('/').some((seg) => seg === '.' || seg === '..')) ||
        (bucket !== null && (bucket === '.' || bucket === '..' || bucket.includes('/')))) {
      // s3rver maps keys to file paths with path.join, which would resolve these segments and
      // leave its store; S3 itself accepts them as plain names.
      throw new S3Error('InvalidArgument', 'The S3 stand-in does not accept "." or ".." as a key segment',
        { ArgumentName: 'key', ArgumentValue: key || bucket });
    }
    const query = sigv4.parseQuery(rawQuery);
    const cls = classify(req.method, bucket, key, query, req.headers);
    op = cls.op;
    calls[op] = (calls[op] || 0) + 1;

    const fault = takeFault(op);
    if (fault) {
      if (fault.mode === 'reset') {
        finish('reset');
        req.socket.destroy();
        return;
      }
      if (fault.mode === 'stall') await new Promise((r) => setTimeout(r, fault.seconds * 1000));
      if (fault.mode === 'error') throw new S3Error(fault.code, fault.message, {}, fault.status);
    }

    // Authentication: who is this, and is the signature theirs?
    const auth = sigv4.parseAuth(req, query);
    if (auth === null) throw new S3Error('AccessDenied');
    akid = auth.akid;
    const rec = await keys.lookup(auth.akid).catch((e) => {
      log(`${requestId} key lookup failed: ${e.message}`);
      throw new S3Error('InternalError');
    });
    if (rec === null) throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: auth.akid });
    if (auth.service !== 's3') {
      throw new S3Error(auth.mode === 'header' ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError',
        `The authorization header is malformed; incorrect service "${auth.service}". This endpoint belongs to "s3".`);
    }
    const expectRegion = bucket === null ? auth.region : (bucketRegions.get(bucket) || defaultRegion);
    if (auth.region !== expectRegion) {
      if (auth.mode === 'header') {
        throw new S3Error('AuthorizationHeaderMalformed',
          `The authorization header is malformed; the region '${auth.region}' is wrong; expecting '${expectRegion}'`,
          { Region: expectRegion });
      }
      throw new S3Error('AuthorizationQueryParametersError',
        `Error parsing the X-Amz-Credential parameter; the region '${auth.region}' is wrong; expecting '${expectRegion}'`,
        { Region: expectRegion });
    }
    sigv4.checkTime(auth, Date.now());
    if (rec.sessionToken) {
      if (auth.token === undefined) {
        throw new S3Error('MissingSecurityHeader', undefined, { MissingHeaderName: 'x-amz-security-token' });
      }
      if (auth.token !== rec.sessionToken) throw new S3Error('InvalidToken', undefined, { Token: '(redacted)' });
      if (rec.expiration !== null && Date.now() / 1000 > rec.expiration) {
        throw new S3Error('ExpiredToken', undefined, { Token: '(redacted)' });
      }
    } else if (auth.token !== undefined) {
      throw new S3Error('InvalidToken', undefined, { Token: '(redacted)' });
    }
    sigv4.checkSignedParts(req, auth);
    await sigv4.verifySignature(req, rawPath, query, auth, rec.secret);

    // Authorization against the key's s3:// patterns.
    for (const need of [cls.need, ...(cls.extra || [])]) {
      if (!allowed(rec.s3, need)) throw new S3Error('AccessDenied');
    }
    if (req.headers.expect && req.headers.expect.toLowerCase() === '100-continue') res.writeContinue();

    if (cls.sub === 'lifecycle') {
      const status = await serveLifecycle(req, res, { bucket, requestId }, auth);
      finish(status);
      return;
    }
    const local = await serveMultipart(req, res, op, bucket, key, query, requestId);
    if (local) {
      finish(local);
      return;
    }
    let body = await takeBody(req, auth);
    let multipartEtag = null;
    if (op === 'CompleteMultipartUpload') {
      if (!body.buffer) body = { buffer: await readBody(body.stream, MAX_CONTROL_BODY) };
      const dir = await multipart.checkUpload(storeDir, bucket, key, first(query.uploadId));
      multipartEtag = await multipart.checkComplete(dir, body.buffer.toString('utf8'));
    }
    if (op === 'DeleteObjects') {
      if (!body.buffer) body = { buffer: await readBody(body.stream, MAX_CONTROL_BODY) };
      const status = await serveDeleteObjects(req, res, bucket, body.buffer, rec, requestId);
      finish(status);
      return;
    }

    const headers = { ...upstreamAuthHeaders(expectRegion) };
    for (const [name, values] of Object.entries(req.headersDistinct)) {
      if (!HOP_HEADERS.has(name) && !name.startsWith('proxy-')) headers[name] = values.join(',');
    }
    const suffix = op === 'GetObject' && /^bytes=-(\d+)$/.exec(headers.range || '');
    if (suffix) {
      // s3rver reads "bytes=-N" as "bytes=0-N"; S3 means the last N bytes.
      const head = await upstreamRequest('HEAD', upstreamPath(bucket, key, ''), upstreamAuthHeaders(expectRegion));
      await drain(head);
      const size = Number(head.headers['content-length'] || 0);
      if (head.statusCode === 200) {
        if (size === 0 || Number(suffix[1]) === 0) {
          throw new S3Error('InvalidRange', 'The requested range is not satisfiable',
            { RangeRequested: headers.range, ActualObjectSize: String(size) }, 416);
        }
        headers.range = `bytes=${Math.max(0, size - Number(suffix[1]))}-`;
      }
    }
    // s3rver's DeleteObject removes emptied directories with a check-then-act race, so two
    // deletes in one bucket at once can fail with 500: one at a time per bucket.
    const release = op === 'DeleteObject' ? await lockBucket(bucket) : null;
    let ures;
    try {
      ures = await upstreamRequest(req.method, upstreamPath(bucket, key, rawQuery), headers, body);
      if (release) await drainStatusOnly(ures);
    } finally {
      if (release) release();
    }
    const out = s3Headers(requestId);
    for (let i = 0; i < ures.rawHeaders.length; i += 2) {
      const n = ures.rawHeaders[i];
      const ln = n.toLowerCase();
      if (['connection', 'keep-alive', 'transfer-encoding', 'date', 'x-amz-request-id', 'x-amz-id-2'].includes(ln)) continue;
      out[n] = ures.rawHeaders[i + 1];
    }
    if (op === 'DeleteBucket' && ures.statusCode === 204) lifecycles.delete(bucket);
    if (op === 'GetObject' && ures.statusCode === 206 && /\/0$/.test(ures.headers['content-range'] || '')) {
      // s3rver answers a range on an empty object with 206 and a body shorter than its
      // Content-Length; S3 answers 416.
      await drain(ures);
      throw new S3Error('InvalidRange', 'The requested range is not satisfiable',
        { RangeRequested: req.headers.range, ActualObjectSize: '0' }, 416);
    }
    if (ures.statusCode >= 400 && req.method !== 'HEAD') {
      // s3rver's error documents encode non-ASCII text as HTML entities (&eacute;), which is
      // not XML: re-render them as S3 would.
      throw await s3rverError(ures);
    }
    if (multipartEtag !== null && ures.statusCode === 200) {
      // s3rver gives a multipart object the MD5 of its bytes; S3 gives "<md5 of md5s>-<n>".
      const xml = (await readBody(ures, MAX_CONTROL_BODY)).toString('utf8');
      await fsp.writeFile(multipart.md5Path(storeDir, bucket, key), multipartEtag);
      ures.replayBody = Buffer.from(xml.replace(/<ETag>[\s\S]*?<\/ETag>/, `<ETag>&quot;${multipartEtag}&quot;</ETag>`));
      for (const n of Object.keys(out)) if (n.toLowerCase() === 'content-length') delete out[n];
      out['Content-Length'] = ures.replayBody.length;
    }
    res.writeHead(ures.statusCode, out);
    if (ures.replayBody !== undefined) res.end(ures.replayBody);
    else pipeline(ures, res, () => {});
    finish(ures.statusCode, ures.headers['x-amz-error-code']);
  } catch (err) {
    if (!(err instanceof S3Error)) log(`${requestId} internal error: ${err && err.stack ? err.stack : err}`);
    const e = err instanceof S3Error ? err : new S3Error('InternalError');
    finish(e.status, e.code);
    sendError(req, res, e, requestId);
  }
}

async function startUpstream(dataDir) {
  const child = fork(path.join(__dirname, 's3rver-child.js'), [dataDir, JSON.stringify(initialBuckets)], {
    execArgv: ['--openssl-legacy-provider'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
  });
  return { child, port };
}

async function main() {
  let dataDir = opts.dataDir;
  if (!dataDir) {
    ownDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 's3-standin-'));
    dataDir = ownDataDir;
  }
  await fsp.mkdir(dataDir, { recursive: true });
  storeDir = path.join(dataDir, 'store');
  spoolDir = path.join(dataDir, 'spool');
  await fsp.mkdir(spoolDir, { recursive: true, mode: 0o700 });

  const { child, port } = await startUpstream(storeDir);
  upstreamPort = port;

  const server = http.createServer({ keepAliveTimeout: 30000 });
  server.on('request', (req, res) => handle(req, res));
  // With a listener here Node does not answer "100 Continue" on its own: the front answers it
  // only after authentication, so a rejected upload is refused before its body is sent.
  server.on('checkContinue', (req, res) => handle(req, res));
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, resolve);
  });
  process.stdout.write(`LISTENING ${server.address().port}\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeAllConnections();
    upstreamAgent.destroy();
    const done = async () => {
      if (ownDataDir) await fsp.rm(ownDataDir, { recursive: true, force: true }).catch(() => {});
      process.exit(0);
    };
    child.once('exit', done);
    child.kill('SIGTERM');
    setTimeout(() => {
      child.kill('SIGKILL');
      done();
    }, 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  child.on('exit', (code) => {
    if (!stopping) {
      log(`s3rver exited unexpectedly (${code})`);
      process.exit(1);
    }
  });
}

main().catch((err) => {
  process.stderr.write(`s3-standin: ${err.stack || err}\n`);
  process.exit(1);
});
