'use strict';
// Bucket lifecycle configuration, which s3rver 3.7.1 does not implement (it answers 501): the
// front stores one configuration per bucket in memory and serves Get/Put/DeleteBucketLifecycle-
// Configuration with S3's XML shapes, validation errors and 404 NoSuchLifecycleConfiguration.
// Validation follows the S3 API reference for LifecycleRule; it checks shape, not storage-class
// semantics, because rsproxy only reads rules (Status, Filter/Prefix) to warn about cleanup.

const { XMLParser, XMLValidator } = require('fast-xml-parser');
const { S3Error, xmlEscape } = require('./errors');

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const ARRAYS = new Set(['Rule', 'Transition', 'NoncurrentVersionTransition', 'Tag']);

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  removeNSPrefix: true,
  isArray: (name) => ARRAYS.has(name),
});

function malformed() {
  return new S3Error('MalformedXML');
}

function isObj(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// Only these children are allowed in each element; anything else is MalformedXML, as S3's
// schema validation does.
const ALLOWED = {
  Rule: ['ID', 'Prefix', 'Filter', 'Status', 'Expiration', 'Transition', 'NoncurrentVersionTransition',
    'NoncurrentVersionExpiration', 'AbortIncompleteMultipartUpload'],
  Filter: ['Prefix', 'Tag', 'And', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan'],
  And: ['Prefix', 'Tag', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan'],
  Tag: ['Key', 'Value'],
  Expiration: ['Date', 'Days', 'ExpiredObjectDeleteMarker'],
  Transition: ['Date', 'Days', 'StorageClass'],
  NoncurrentVersionTransition: ['NoncurrentDays', 'StorageClass', 'NewerNoncurrentVersions'],
  NoncurrentVersionExpiration: ['NoncurrentDays', 'NewerNoncurrentVersions'],
  AbortIncompleteMultipartUpload: ['DaysAfterInitiation'],
};

function checkChildren(name, obj) {
  if (obj === '') return {}; // an empty element such as <Filter></Filter>
  if (!isObj(obj)) throw malformed();
  for (const k of Object.keys(obj)) {
    if (!ALLOWED[name].includes(k)) throw malformed();
  }
  return obj;
}

function text(v) {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw malformed();
  return v;
}

function positiveInt(v, what) {
  if (!/^\d+$/.test(v) || Number(v) <= 0) {
    throw new S3Error('InvalidArgument', `'${what}' must be a positive integer`, { ArgumentName: what, ArgumentValue: v });
  }
  return v;
}

function isoMidnight(v) {
  if (!/^\d{4}-\d{2}-\d{2}T00:00:00(\.000)?Z$/.test(v) || Number.isNaN(Date.parse(v))) {
    throw new S3Error('InvalidArgument', "'Date' must be at midnight GMT", { ArgumentName: 'Date', ArgumentValue: v });
  }
  return v;
}

function parseTag(t) {
  checkChildren('Tag', t);
  if (text(t.Key) === undefined) throw malformed();
  return { Key: t.Key, Value: text(t.Value) || '' };
}

function parseFilter(f) {
  f = checkChildren('Filter', f);
  const keys = Object.keys(f);
  if (keys.length > 1) throw malformed();
  const out = {};
  if (f.Prefix !== undefined) out.Prefix = text(f.Prefix);
  if (f.Tag !== undefined) {
    if (f.Tag.length !== 1) throw malformed();
    out.Tag = parseTag(f.Tag[0]);
  }
  for (const k of ['ObjectSizeGreaterThan', 'ObjectSizeLessThan']) {
    if (f[k] !== undefined) out[k] = positiveInt(text(f[k]), k);
  }
  if (f.And !== undefined) {
    const a = checkChildren('And', f.And);
    out.And = {};
    if (a.Prefix !== undefined) out.And.Prefix = text(a.Prefix);
    if (a.Tag !== undefined) out.And.Tag = a.Tag.map(parseTag);
    for (const k of ['ObjectSizeGreaterThan', 'ObjectSizeLessThan']) {
      if (a[k] !== undefined) out.And[k] = positiveInt(text(a[k]), k);
    }
  }
  return out;
}

function parseRule(r, ids) {
  r = checkChildren('Rule', r);
  const rule = {};
  if (r.ID !== undefined) {
    rule.ID = text(r.ID);
    if (rule.ID.length > 255) {
      throw new S3Error('InvalidArgument', 'ID length should not exceed allowed limit of 255', { ArgumentName: 'ID', ArgumentValue: rule.ID });
    }
    if (ids.has(rule.ID)) {
      throw new S3Error('InvalidArgument', 'Rule ID must be unique. Found same ID for more than one rule', { ArgumentName: 'ID', ArgumentValue: rule.ID });
    }
    ids.add(rule.ID);
  }
  if ((r.Filter !== undefined) === (r.Prefix !== undefined)) throw malformed();
  if (r.Prefix !== undefined) rule.Prefix = text(r.Prefix);
  if (r.Filter !== undefined) rule.Filter = parseFilter(r.Filter);
  rule.Status = text(r.Status);
  if (rule.Status !== 'Enabled' && rule.Status !== 'Disabled') throw malformed();
  let actions = 0;
  if (r.Expiration !== undefined) {
    const e = checkChildren('Expiration', r.Expiration);
    if (Object.keys(e).length !== 1) throw malformed();
    rule.Expiration = {};
    if (e.Days !== undefined) rule.Expiration.Days = positiveInt(text(e.Days), 'Days');
    if (e.Date !== undefined) rule.Expiration.Date = isoMidnight(text(e.Date));
    if (e.ExpiredObjectDeleteMarker !== undefined) {
      const v = text(e.ExpiredObjectDeleteMarker);
      if (v !== 'true' && v !== 'false') throw malformed();
      rule.Expiration.ExpiredObjectDeleteMarker = v;
    }
    actions++;
  }
  if (r.Transition !== undefined) {
    rule.Transition = r.Transition.map((t) => {
      t = checkChildren('Transition', t);
      if (text(t.StorageClass) === undefined || (t.Days === undefined) === (t.Date === undefined)) throw malformed();
      const o = {};
      if (t.Date !== undefined) o.Date = isoMidnight(text(t.Date));
      if (t.Days !== undefined) {
        if (!/^\d+$/.test(text(t.Days))) throw malformed();
        o.Days = t.Days;
      }
      o.StorageClass = t.StorageClass;
      return o;
    });
    actions++;
  }
  if (r.NoncurrentVersionTransition !== undefined) {
    rule.NoncurrentVersionTransition = r.NoncurrentVersionTransition.map((t) => {
      t = checkChildren('NoncurrentVersionTransition', t);
      if (text(t.StorageClass) === undefined || text(t.NoncurrentDays) === undefined) throw malformed();
      return { ...t };
    });
    actions++;
  }
  if (r.NoncurrentVersionExpiration !== undefined) {
    const n = checkChildren('NoncurrentVersionExpiration', r.NoncurrentVersionExpiration);
    if (text(n.NoncurrentDays) === undefined) throw malformed();
    rule.NoncurrentVersionExpiration = { NoncurrentDays: positiveInt(n.NoncurrentDays, 'NoncurrentDays') };
    if (n.NewerNoncurrentVersions !== undefined) rule.NoncurrentVersionExpiration.NewerNoncurrentVersions = text(n.NewerNoncurrentVersions);
    actions++;
  }
  if (r.AbortIncompleteMultipartUpload !== undefined) {
    const a = checkChildren('AbortIncompleteMultipartUpload', r.AbortIncompleteMultipartUpload);
    rule.AbortIncompleteMultipartUpload = {
      DaysAfterInitiation: positiveInt(text(a.DaysAfterInitiation) || '', 'DaysAfterInitiation'),
    };
    actions++;
  }
  if (actions === 0) {
    throw new S3Error('InvalidRequest', 'At least one action needs to be specified in a rule');
  }
  return rule;
}

// Parses and validates a PutBucketLifecycleConfiguration body; returns the normalised rules.
function parseLifecycle(xml) {
  if (XMLValidator.validate(xml) !== true) throw malformed();
  let doc;
  try {
    doc = parser.parse(xml);
  } catch (e) {
    throw malformed();
  }
  const keys = Object.keys(doc).filter((k) => k !== '?xml');
  if (keys.length !== 1 || keys[0] !== 'LifecycleConfiguration') throw malformed();
  const root = doc.LifecycleConfiguration;
  if (!isObj(root) || !Array.isArray(root.Rule) || Object.keys(root).length !== 1) throw malformed();
  if (root.Rule.length > 1000) {
    throw new S3Error('InvalidRequest', 'The number of lifecycle rules must not exceed the allowed limit of 1000 rules');
  }
  const ids = new Set();
  return root.Rule.map((r) => parseRule(r, ids));
}

function el(name, value) {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => el(name, v)).join('');
  if (isObj(value)) {
    return `<${name}>` + Object.entries(value).map(([k, v]) => el(k, v)).join('') + `</${name}>`;
  }
  return `<${name}>${xmlEscape(value)}</${name}>`;
}

// GetBucketLifecycleConfiguration's body for stored rules.
function lifecycleXml(rules) {
  return '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<LifecycleConfiguration xmlns="${NS}">` + rules.map((r) => el('Rule', r)).join('') +
    '</LifecycleConfiguration>';
}

module.exports = { parseLifecycle, lifecycleXml };
