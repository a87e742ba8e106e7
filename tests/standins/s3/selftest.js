'use strict';
// Checks the front's verification path (lib/sigv4.js: canonical URI handling plus
// @smithy/signature-v4) against the signatures published in the S3 API reference and the
// derived vectors of reference/redshift-aws.md §6, and the lifecycle/keys helpers against
// fixed cases. Run by tests/integration/test_standin_s3.py; exits 1 on the first mismatch.

const assert = require('assert');
const sigv4 = require('./lib/sigv4');
const { allowed } = require('./lib/keys');
const { parseLifecycle, lifecycleXml } = require('./lib/lifecycle');
const { crc32 } = require('./lib/checksum');

const AK = 'AKIAIOSFODNN7EXAMPLE';
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function fakeReq(method, headers) {
  const lower = {};
  const distinct = {};
  for (const [k, v] of Object.entries(headers)) {
    lower[k.toLowerCase()] = v;
    distinct[k.toLowerCase()] = [v];
  }
  return { method, headers: lower, headersDistinct: distinct };
}

async function vector(name, method, rawPath, rawQuery, headers, signed, expected) {
  const req = fakeReq(method, headers);
  const a = {
    akid: AK, shortDate: '20130524', region: 'us-east-1', service: 's3', longDate: '20130524T000000Z',
    signedHeaders: signed.split(';'), payloadHash: req.headers['x-amz-content-sha256'],
  };
  const got = await sigv4.computeSignature(req, rawPath, sigv4.parseQuery(rawQuery), a, SK);
  assert.strictEqual(got.signature, expected, `${name}: signature\n${got.canonicalRequest}`);
  process.stdout.write(`ok ${name}\n`);
}

async function main() {
  const host = 'examplebucket.s3.amazonaws.com';
  await vector('GET Object (S3 docs)', 'GET', '/test.txt', '',
    { Host: host, Range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY, 'x-amz-date': '20130524T000000Z' },
    'host;range;x-amz-content-sha256;x-amz-date', 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41');
  await vector('PUT Object (S3 docs)', 'PUT', '/test%24file.text', '',
    { Host: host, Date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072', 'x-amz-date': '20130524T000000Z' },
    'date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class', '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
  await vector('GET Bucket Lifecycle (S3 docs)', 'GET', '/', 'lifecycle',
    { Host: host, 'x-amz-content-sha256': EMPTY, 'x-amz-date': '20130524T000000Z' },
    'host;x-amz-content-sha256;x-amz-date', 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
  await vector('List Objects (S3 docs)', 'GET', '/', 'max-keys=2&prefix=J',
    { Host: host, 'x-amz-content-sha256': EMPTY, 'x-amz-date': '20130524T000000Z' },
    'host;x-amz-content-sha256;x-amz-date', '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  await vector('UNSIGNED-PAYLOAD (derived)', 'GET', '/test.txt', '',
    { Host: host, Range: 'bytes=0-9', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': '20130524T000000Z' },
    'host;range;x-amz-content-sha256;x-amz-date', 'edacce68e5445863e1f916719fac26d3be9c1581fccd7878ade0879597fc0dc1');
  await vector('encoded key, no double encoding (derived)', 'PUT', '/stage/my%20folder/a%2Bb%3Dc.csv', '',
    { Host: host, 'x-amz-content-sha256': '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', 'x-amz-date': '20130524T000000Z' },
    'host;x-amz-content-sha256;x-amz-date', '5f9650c0b5383af7b3d19c5ff9856be0d6453abfb2e57af734ad36fb19b764c4');
  // The same key sent with lower-case hex escapes canonicalises to the same URI.
  await vector('lower-case escapes canonicalise', 'PUT', '/stage/my%20folder/a%2bb%3dc.csv', '',
    { Host: host, 'x-amz-content-sha256': '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824', 'x-amz-date': '20130524T000000Z' },
    'host;x-amz-content-sha256;x-amz-date', '5f9650c0b5383af7b3d19c5ff9856be0d6453abfb2e57af734ad36fb19b764c4');

  // Permissions.
  const p = ['s3://rsproxy-test/tmp/*'];
  assert.ok(allowed(p, { kind: 'object', bucket: 'rsproxy-test', key: 'tmp/a/b' }));
  assert.ok(!allowed(p, { kind: 'object', bucket: 'rsproxy-test', key: 'other' }));
  assert.ok(!allowed(p, { kind: 'object', bucket: 'rsproxy-test2', key: 'tmp/x' }));
  assert.ok(allowed(p, { kind: 'list', bucket: 'rsproxy-test', prefix: 'tmp/x' }));
  assert.ok(!allowed(p, { kind: 'list', bucket: 'rsproxy-test', prefix: '' }));
  assert.ok(allowed(p, { kind: 'bucket', bucket: 'rsproxy-test' }));
  assert.ok(allowed(['s3://*'], { kind: 'object', bucket: 'x', key: 'y' }));
  assert.ok(allowed(['arn:aws:s3:::b/*'], { kind: 'object', bucket: 'b', key: 'k' }));
  assert.ok(!allowed([], { kind: 'bucket', bucket: 'b' }));
  assert.ok(!allowed(['s3://b'], { kind: 'object', bucket: 'b', key: 'k' }));
  process.stdout.write('ok permissions\n');

  // Lifecycle round trip and validation.
  const xml = '<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>a&amp;b</ID>' +
    '<Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>' +
    '</Rule></LifecycleConfiguration>';
  const rules = parseLifecycle(xml);
  assert.deepStrictEqual(rules, [{ ID: 'a&b', Filter: { Prefix: 'tmp/' }, Status: 'Enabled', Expiration: { Days: '1' } }]);
  assert.ok(lifecycleXml(rules).includes('<ID>a&amp;b</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status>'));
  for (const [bad, code] of [
    ['<LifecycleConfiguration></LifecycleConfiguration>', 'MalformedXML'],
    ['<LifecycleConfiguration><Rule><Status>On</Status><Prefix/><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>', 'MalformedXML'],
    ['<LifecycleConfiguration><Rule><Status>Enabled</Status><Prefix/></Rule></LifecycleConfiguration>', 'InvalidRequest'],
    ['<LifecycleConfiguration><Rule><Status>Enabled</Status><Prefix/><Expiration><Days>0</Days></Expiration></Rule></LifecycleConfiguration>', 'InvalidArgument'],
    ['<LifecycleConfiguration><Rule><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>', 'MalformedXML'],
    ['<LifecycleConfiguration><Rule><ID>x</ID><Status>Enabled</Status><Prefix/><Expiration><Days>1</Days></Expiration></Rule>' +
     '<Rule><ID>x</ID><Status>Enabled</Status><Prefix/><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>', 'InvalidArgument'],
    ['<Lifecycle><Rule/></Lifecycle>', 'MalformedXML'],
    ['<LifecycleConfiguration><Rule>', 'MalformedXML'],
  ]) {
    assert.throws(() => parseLifecycle(bad), (e) => e.code === code, bad);
  }
  process.stdout.write('ok lifecycle\n');

  assert.strictEqual(crc32(Buffer.from('123456789')), Buffer.from('cbf43926', 'hex').toString('base64'));
  process.stdout.write('ok crc32\n');
}

main().catch((e) => {
  process.stderr.write(`FAIL ${e.message}\n`);
  process.exit(1);
});
