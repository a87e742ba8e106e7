'use strict';
// Integrity headers S3 checks on small request bodies the front consumes itself (lifecycle
// configuration): Content-MD5 and the x-amz-checksum-* family. CRC32 and CRC32C are table-driven
// here because Node 20 has neither; SHA-1/SHA-256 come from node:crypto.

const crypto = require('crypto');
const { S3Error } = require('./errors');

function crcTable(poly) {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (poly ^ (c >>> 1)) >>> 0 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}
const CRC32 = crcTable(0xedb88320);
const CRC32C = crcTable(0x82f63b78);

function crc(table, buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = table[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  const out = Buffer.alloc(4);
  out.writeUInt32BE((c ^ 0xffffffff) >>> 0);
  return out.toString('base64');
}

const ALGOS = {
  'x-amz-checksum-crc32': (b) => crc(CRC32, b),
  'x-amz-checksum-crc32c': (b) => crc(CRC32C, b),
  'x-amz-checksum-sha1': (b) => crypto.createHash('sha1').update(b).digest('base64'),
  'x-amz-checksum-sha256': (b) => crypto.createHash('sha256').update(b).digest('base64'),
};

// For operations where S3 requires an integrity header (httpChecksumRequired in the model):
// verifies Content-MD5 or one x-amz-checksum-* header against the body.
function checkRequiredChecksum(headers, body) {
  const md5 = headers['content-md5'];
  if (md5 !== undefined) {
    if (!/^[A-Za-z0-9+/]{22}==$/.test(md5)) throw new S3Error('InvalidDigest');
    if (crypto.createHash('md5').update(body).digest('base64') !== md5) throw new S3Error('BadDigest');
    return;
  }
  for (const [h, f] of Object.entries(ALGOS)) {
    if (headers[h] !== undefined) {
      if (f(body) !== headers[h]) {
        throw new S3Error('BadDigest', `The ${h.slice('x-amz-checksum-'.length).toUpperCase()} you specified did not match the calculated checksum.`);
      }
      return;
    }
  }
  throw new S3Error('InvalidRequest', 'Missing required header for this request: Content-Md5');
}

module.exports = { checkRequiredChecksum, crc32: (b) => crc(CRC32, b) };
