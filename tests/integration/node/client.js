// node-postgres (npm `pg`, pinned by package-lock.json) through rsproxy, driven by
// tests/integration/test_node.py.
//
// Usage: node client.js <host> <port> <user> <database> <scenario>
// Each scenario checks its own results, prints "PASS <scenario>" and exits 0, or prints the
// failure and exits 1. No retries: a flaky relay shows up as a failure.
'use strict'

const assert = require('node:assert/strict')
const { pipeline } = require('node:stream/promises')
const { Readable, Writable } = require('node:stream')
const pg = require('pg')
const { from: copyFrom, to: copyTo } = require('pg-copy-streams')

const [host, port, user, database, scenario] = process.argv.slice(2)
const config = {
  host, port: Number(port), user, database, ssl: false,
  application_name: 'rsproxy-node', connectionTimeoutMillis: 10000,
}

async function connect (extra) {
  const c = new pg.Client({ ...config, ...(extra || {}) })
  await c.connect()
  return c
}

async function expectError (promise, sqlstate) {
  try {
    await promise
  } catch (e) {
    assert.equal(e.code, sqlstate, `expected ${sqlstate}, got ${e.code}: ${e.message}`)
    return e
  }
  throw new Error(`expected an error with SQLSTATE ${sqlstate}`)
}

const scenarios = {
  async queries () {
    const c = await connect()
    try {
      const r = await c.query("SELECT 1 AS one, 'two' AS two, NULL::int AS n, '{1,2}'::int[] AS a")
      assert.deepEqual(r.rows, [{ one: 1, two: 'two', n: null, a: [1, 2] }])
      const big = await c.query('SELECT g, md5(g::text) FROM generate_series(1, 20000) g')
      assert.equal(big.rowCount, 20000)
      // Parameters go through Parse/Bind/Execute.
      const p = await c.query('SELECT $1::int + $2::int AS s, $3::text AS t', [40, 2, 'x'])
      assert.deepEqual(p.rows, [{ s: 42, t: 'x' }])
      // rowMode array and several queries queued at once on one connection.
      const all = await Promise.all([...Array(50).keys()].map(i =>
        c.query({ text: 'SELECT $1::int * 2', values: [i], rowMode: 'array' })))
      assert.deepEqual(all.map(x => x.rows[0][0]), [...Array(50).keys()].map(i => i * 2))
    } finally {
      await c.end()
    }
  },

  async transactions () {
    const c = await connect()
    try {
      await c.query('CREATE TEMP TABLE n_tx (id int PRIMARY KEY)')
      await c.query('BEGIN')
      await c.query('INSERT INTO n_tx VALUES (1)')
      await expectError(c.query('INSERT INTO n_tx VALUES (1)'), '23505')
      await expectError(c.query('SELECT 1'), '25P02')
      await c.query('ROLLBACK')
      assert.equal((await c.query('SELECT count(*)::int AS n FROM n_tx')).rows[0].n, 0)
      await c.query('BEGIN')
      await c.query('INSERT INTO n_tx VALUES (2)')
      await c.query('SAVEPOINT s')
      await expectError(c.query('SELECT 1/0'), '22012')
      await c.query('ROLLBACK TO SAVEPOINT s')
      await c.query('INSERT INTO n_tx VALUES (3)')
      await c.query('COMMIT')
      assert.equal((await c.query('SELECT sum(id)::int AS s FROM n_tx')).rows[0].s, 5)
    } finally {
      await c.end()
    }
  },

  async prepared () {
    const c = await connect()
    try {
      for (let i = 0; i < 10; i++) {
        const r = await c.query({ name: 'n_prep', text: 'SELECT $1::int * 3 AS v', values: [i] })
        assert.equal(r.rows[0].v, i * 3)
      }
      const ps = await c.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'n_prep'")
      assert.equal(ps.rows[0].n, 1)
      // An error in a named statement's execution leaves the statement and session usable.
      await expectError(c.query({ name: 'n_div', text: 'SELECT 1 / $1::int AS v', values: [0] }), '22012')
      const ok = await c.query({ name: 'n_div', text: 'SELECT 1 / $1::int AS v', values: [1] })
      assert.equal(ok.rows[0].v, 1)
    } finally {
      await c.end()
    }
  },

  async pipeline () {
    // pg >= 8.21 pipelines queries (many Parse/Bind/Execute/Sync in flight) when asked to.
    const c = await connect({ pipeline: true })
    try {
      const results = await Promise.all([...Array(200).keys()].map(i =>
        c.query('SELECT $1::int AS v', [i])))
      assert.deepEqual(results.map(r => r.rows[0].v), [...Array(200).keys()])
      const mixed = await Promise.allSettled([
        c.query('SELECT 1 AS v'), c.query('SELECT 1/0'), c.query('SELECT 3 AS v')])
      assert.equal(mixed[0].value.rows[0].v, 1)
      assert.equal(mixed[1].reason.code, '22012')
      assert.equal(mixed[2].value.rows[0].v, 3)
    } finally {
      await c.end()
    }
  },

  async cancel () {
    const c = await connect()
    const watcher = await connect()
    try {
      const q = new pg.Query('SELECT pg_sleep(60)')
      const done = new Promise((resolve, reject) => {
        q.on('error', resolve)
        q.on('end', () => reject(new Error('pg_sleep was not cancelled')))
      })
      c.query(q)
      const deadline = Date.now() + 20000
      for (;;) {
        const r = await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'")
        if (r.rows[0].n > 0) break
        assert.ok(Date.now() < deadline, 'pg_sleep never started')
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      const t0 = Date.now()
      new pg.Client(config).cancel(c, q)
      const err = await done
      assert.equal(err.code, '57014', err.message)
      assert.ok(Date.now() - t0 < 10000, `cancel took ${Date.now() - t0} ms`)
      assert.equal((await c.query('SELECT 5 AS v')).rows[0].v, 5)
    } finally {
      await c.end()
      await watcher.end()
    }
  },

  async copy () {
    const c = await connect()
    try {
      await c.query('CREATE TEMP TABLE n_copy (id int, txt text)')
      const lines = [...Array(5000).keys()].map(i => `${i}\tnœud ${i}\n`)
      await pipeline(Readable.from(lines), c.query(copyFrom('COPY n_copy FROM STDIN')))
      assert.equal((await c.query('SELECT count(*)::int AS n FROM n_copy')).rows[0].n, 5000)
      const chunks = []
      await pipeline(c.query(copyTo('COPY (SELECT * FROM n_copy ORDER BY id) TO STDOUT')),
        new Writable({ write (chunk, enc, cb) { chunks.push(chunk); cb() } }))
      assert.equal(Buffer.concat(chunks).toString('utf8'), lines.join(''))
      // A malformed row: the COPY fails with the server's error and the session continues.
      await expectError(pipeline(Readable.from(['1\tok\n', 'x\ty\n']),
        c.query(copyFrom('COPY n_copy FROM STDIN'))), '22P02')
      assert.equal((await c.query('SELECT count(*)::int AS n FROM n_copy')).rows[0].n, 5000)
    } finally {
      await c.end()
    }
  },

  async unicode () {
    const c = await connect()
    try {
      await c.query('CREATE TEMP TABLE "nœud_表" ("値" text)')
      const vals = ['Русский', 'हिन्दी', '🦄 unicorn', 'plain']
      for (const v of vals) await c.query('INSERT INTO "nœud_表" VALUES ($1)', [v])
      const r = await c.query('SELECT "値" FROM "nœud_表"')
      assert.deepEqual(r.rows.map(x => x['値']), vals)
      assert.equal(r.fields[0].name, '値')
    } finally {
      await c.end()
    }
  },

  async notifications () {
    const listener = await connect()
    const notifier = await connect()
    try {
      const got = new Promise((resolve, reject) => {
        listener.on('notification', resolve)
        setTimeout(() => reject(new Error('no notification within 10 s')), 10000).unref()
      })
      await listener.query('LISTEN n_chan')
      await notifier.query("NOTIFY n_chan, 'from node ✓'")
      const n = await got
      assert.equal(n.channel, 'n_chan')
      assert.equal(n.payload, 'from node ✓')
    } finally {
      await listener.end()
      await notifier.end()
    }
  },
}

async function main () {
  const fn = scenarios[scenario]
  if (!fn) throw new Error(`unknown scenario ${scenario}`)
  await fn()
  console.log(`PASS ${scenario}`)
}

main().catch(e => {
  console.log(`FAIL ${scenario}: ${e.stack || e}`)
  process.exit(1)
})
