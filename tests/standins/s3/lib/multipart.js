'use strict';
// The multipart-upload checks and operations s3rver 3.7.1 lacks, served by the front from
// s3rver's own store layout (<store>/<bucket>/._S3rver_uploads/<uploadId>/{key,metadata,N,N.md5}):
// NoSuchUpload for an unknown or finished upload (s3rver would silently create one), the part
// rules CompleteMultipartUpload enforces on S3 (ascending part numbers, existing parts with the
// right ETag, every part but the last at least 5 MiB), AbortMultipartUpload, ListParts and
// ListMultipartUploads. rsproxy stages COPY FROM STDIN through multipart uploads, so these are
// exactly the rules its s3/ module must respect.

const crypto = require('crypto');
const fsp = require('fs/promises');
const path = require('path');
const { S3Error, xmlEscape } = require('./errors');

const MIN_PART = 5 * 1024 * 1024;
const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const OWNER = '<ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>' +
  '<DisplayName>S3rver</DisplayName>';

function uploadsDir(store, bucket) {
  return path.join(store, bucket, '._S3rver_uploads');
}

function noSuchUpload(uploadId) {
  return new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    { UploadId: uploadId }, 404);
}

// Resolves when uploadId is an upload in progress for exactly this key; NoSuchUpload otherwise.
async function checkUpload(store, bucket, key, uploadId) {
  if (!/^[0-9a-f]{32}$/.test(uploadId || '')) throw noSuchUpload(uploadId);
  const dir = path.join(uploadsDir(store, bucket), uploadId);
  let storedKey;
  try {
    storedKey = await fsp.readFile(path.join(dir, 'key'), 'utf8');
  } catch (e) {
    throw noSuchUpload(uploadId);
  }
  if (storedKey !== key) throw noSuchUpload(uploadId);
  return dir;
}

function text(s) {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

// Checks a CompleteMultipartUpload body against the stored parts as S3 does; returns the
// object's ETag as S3 computes it for multipart objects: the MD5 of the parts' binary MD5s,
// then "-" and the number of parts.
async function checkComplete(dir, xml) {
  const parts = [];
  const re = /<Part>([\s\S]*?)<\/Part>/g;
  let m;
  while ((m = re.exec(xml)) !== null) {
    const num = /<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(m[1]);
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(m[1]);
    if (!num || !etag) throw new S3Error('MalformedXML');
    parts.push({ number: Number(num[1]), etag: text(etag[1]).replace(/"/g, '').trim() });
  }
  if (!/<CompleteMultipartUpload[\s>]/.test(xml) || parts.length === 0) throw new S3Error('MalformedXML');
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].number <= parts[i - 1].number) {
      throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.', {}, 400);
    }
  }
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    let size;
    let md5;
    try {
      size = (await fsp.stat(path.join(dir, String(p.number)))).size;
      md5 = (await fsp.readFile(path.join(dir, `${p.number}.md5`), 'utf8')).trim();
    } catch (e) {
      throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.',
        { UploadId: path.basename(dir), PartNumber: String(p.number), ETag: p.etag }, 400);
    }
    if (md5 !== p.etag) {
      throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.',
        { UploadId: path.basename(dir), PartNumber: String(p.number), ETag: p.etag }, 400);
    }
    if (i < parts.length - 1 && size < MIN_PART) {
      throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size',
        { ProposedSize: String(size), MinSizeAllowed: String(MIN_PART), PartNumber: String(p.number), ETag: p.etag }, 400);
    }
  }
  const md5 = crypto.createHash('md5');
  for (const p of parts) md5.update(Buffer.from(p.etag, 'hex'));
  return `${md5.digest('hex')}-${parts.length}`;
}

// Where s3rver keeps an object's MD5, which it serves as the ETag.
function md5Path(store, bucket, key) {
  const parts = key.split('/');
  const last = parts.pop();
  return path.join(store, bucket, ...parts, `${last}._S3rver_object.md5`);
}

async function abort(dir) {
  await fsp.rm(dir, { recursive: true, force: true });
}

async function listParts(dir, bucket, key, uploadId) {
  const names = (await fsp.readdir(dir)).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
  let body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="${NS}">` +
    `<Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId>` +
    `<Initiator>${OWNER}</Initiator><Owner>${OWNER}</Owner><StorageClass>STANDARD</StorageClass>` +
    `<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker>${names.length ? names[names.length - 1] : 0}</NextPartNumberMarker>` +
    `<MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated>`;
  for (const n of names) {
    const st = await fsp.stat(path.join(dir, String(n)));
    const md5 = (await fsp.readFile(path.join(dir, `${n}.md5`), 'utf8').catch(() => '')).trim();
    body += `<Part><PartNumber>${n}</PartNumber><LastModified>${st.mtime.toISOString()}</LastModified>` +
      `<ETag>"${md5}"</ETag><Size>${st.size}</Size></Part>`;
  }
  return body + '</ListPartsResult>';
}

async function listUploads(store, bucket, prefix) {
  let ids = [];
  try {
    ids = await fsp.readdir(uploadsDir(store, bucket));
  } catch (e) {
    ids = [];
  }
  const uploads = [];
  for (const id of ids) {
    try {
      const dir = path.join(uploadsDir(store, bucket), id);
      const key = await fsp.readFile(path.join(dir, 'key'), 'utf8');
      if (!key.startsWith(prefix || '')) continue;
      const st = await fsp.stat(dir);
      uploads.push({ key, id, initiated: st.birthtime.getTime() ? st.birthtime : st.mtime });
    } catch (e) {
      // completed or aborted meanwhile
    }
  }
  uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1));
  let body = `<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="${NS}">` +
    `<Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
    `<NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker>` +
    `<Prefix>${xmlEscape(prefix || '')}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>`;
  for (const u of uploads) {
    body += `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.id}</UploadId>` +
      `<Initiator>${OWNER}</Initiator><Owner>${OWNER}</Owner><StorageClass>STANDARD</StorageClass>` +
      `<Initiated>${u.initiated.toISOString()}</Initiated></Upload>`;
  }
  return body + '</ListMultipartUploadsResult>';
}

module.exports = { checkUpload, checkComplete, abort, listParts, listUploads, md5Path, MIN_PART };
