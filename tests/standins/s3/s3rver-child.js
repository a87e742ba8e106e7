'use strict';
// Runs s3rver, the object store behind the front, in its own process. It must run under
// `node --openssl-legacy-provider` (s3rver encrypts ListObjectsV2 continuation tokens with DES,
// which OpenSSL 3 only offers through the legacy provider; without it paging answers 500), and
// the front should not run with legacy algorithms enabled, hence the separate process.
// Protocol with the parent (front.js, via fork's IPC channel): receives nothing, sends
// {port} once listening; exits when the parent goes away or on SIGTERM.

const S3rver = require('s3rver');

const directory = process.argv[2];
const buckets = JSON.parse(process.argv[3] || '[]');

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  vhostBuckets: false, // the front always forwards path-style requests to 127.0.0.1
  configureBuckets: buckets.map((name) => ({ name })),
});

server.run().then((addr) => {
  process.send({ port: addr.port });
}).catch((err) => {
  process.stderr.write(`s3rver: ${err.stack || err}\n`);
  process.exit(1);
});

function stop() {
  server.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('disconnect', stop);
