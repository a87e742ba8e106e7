'use strict';
// Where the front learns secrets and permissions of access keys: a static key file given on the
// command line, the AWS stand-in's control API (GET /_standin/keys/<akid>, which also knows every
// temporary key it minted), or, with neither, the world file's static principals. Also the
// permission check against a key's allowed s3:// patterns. Never logs secrets or tokens.

const http = require('http');
const https = require('https');
const fs = require('fs');

const agentHttp = new http.Agent({ keepAlive: true, maxSockets: 16 });
const agentHttps = new https.Agent({ keepAlive: true, maxSockets: 16 });

// Normalises a key record to {secret, sessionToken, arn, s3: [patterns], expiration (epoch s)}.
function normalise(rec) {
  if (!rec || typeof rec.secret !== 'string') return null;
  let s3 = rec.s3;
  if (!Array.isArray(s3)) {
    // A world-file principal: an "allow" list of IAM actions. s3:* (or *) means every bucket.
    const allow = Array.isArray(rec.allow) ? rec.allow : [];
    s3 = allow.some((a) => a === '*' || a === 's3:*') ? ['s3://*'] : [];
  }
  return {
    secret: rec.secret,
    sessionToken: rec.session_token || rec.sessionToken || null,
    arn: rec.arn || null,
    s3: s3.map(String),
    expiration: typeof rec.expiration === 'number' ? rec.expiration : null,
  };
}

class KeyStore {
  // opts: {keysFile, awsControl, world}
  constructor(opts) {
    this.static = new Map();
    this.control = opts.awsControl ? new URL(opts.awsControl) : null;
    if (opts.keysFile) {
      const data = JSON.parse(fs.readFileSync(opts.keysFile, 'utf8'));
      for (const [akid, rec] of Object.entries(data)) this.static.set(akid, normalise(rec));
    }
    if (!opts.keysFile && !this.control && opts.world && opts.world.principals) {
      for (const [akid, rec] of Object.entries(opts.world.principals)) this.static.set(akid, normalise(rec));
    }
  }

  // Resolves to a normalised record or null for an unknown key. Errors talking to the control
  // API reject (the front answers 500 InternalError, which SDKs retry).
  async lookup(akid) {
    if (this.static.has(akid)) return this.static.get(akid);
    if (!this.control) return null;
    const url = new URL('/_standin/keys/' + encodeURIComponent(akid), this.control);
    const mod = url.protocol === 'https:' ? https : http;
    const agent = url.protocol === 'https:' ? agentHttps : agentHttp;
    return new Promise((resolve, reject) => {
      const r = mod.get(url, { agent, timeout: 5000 }, (res) => {
        const chunks = [];
        let size = 0;
        res.on('data', (c) => {
          size += c.length;
          if (size > 1 << 20) {
            res.destroy(new Error('key record too large'));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          if (res.statusCode === 404) return resolve(null);
          if (res.statusCode !== 200) return reject(new Error(`key lookup: HTTP ${res.statusCode}`));
          try {
            resolve(normalise(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
          } catch (e) {
            reject(new Error('key lookup: bad JSON'));
          }
        });
        res.on('error', reject);
      });
      r.on('timeout', () => r.destroy(new Error('key lookup timed out')));
      r.on('error', reject);
    });
  }
}

// Glob over an s3:// URL: '*' matches any run of characters (including '/'), '?' one character.
function globToRegExp(glob) {
  let re = '^';
  for (const ch of glob) {
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else re += ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

// "s3://bucket/key*" or "arn:aws:s3:::bucket/key*" -> {bucket glob, key glob}.
function splitPattern(p) {
  let rest = p;
  if (rest.startsWith('arn:aws:s3:::')) rest = rest.slice('arn:aws:s3:::'.length);
  else if (rest.startsWith('s3://')) rest = rest.slice(5);
  else if (rest === '*') return { bucket: '*', key: '*' };
  const slash = rest.indexOf('/');
  if (slash < 0) {
    // "s3://bucket" alone: bucket-level only; "s3://*" or "s3://buck*": every key too.
    return { bucket: rest, key: rest.endsWith('*') ? '*' : null };
  }
  return { bucket: rest.slice(0, slash), key: rest.slice(slash + 1) };
}

function literalHead(glob) {
  const i = glob.search(/[*?]/);
  return i < 0 ? glob : glob.slice(0, i);
}

// What a request needs, as the front classifies it:
//   {kind: 'service'}                          ListBuckets
//   {kind: 'bucket', bucket}                   bucket-level operations (lifecycle, location, ...)
//   {kind: 'list', bucket, prefix}             ListObjects(V2), ListMultipartUploads
//   {kind: 'object', bucket, key}              object-level operations
//   {kind: 'any'}                              checked later, per key (DeleteObjects)
// The approximation of IAM: a pattern grants its objects, the bucket-level operations of its
// bucket, and listing under a prefix its key pattern covers (IAM's s3:prefix condition).
function allowed(patterns, need) {
  if (need.kind === 'any') return true; // checked per key by the operation itself
  for (const p of patterns) {
    const sp = splitPattern(p);
    if (need.kind === 'service') return true;
    if (!globToRegExp(sp.bucket).test(need.bucket)) continue;
    if (need.kind === 'bucket') return true;
    if (sp.key === null) continue;
    if (need.kind === 'object' && globToRegExp(sp.key).test(need.key)) return true;
    if (need.kind === 'list' && (need.prefix || '').startsWith(literalHead(sp.key))) return true;
  }
  return false;
}

module.exports = { KeyStore, allowed, globToRegExp, splitPattern };
