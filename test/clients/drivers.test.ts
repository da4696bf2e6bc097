/**
 * Six real clients — node-postgres, postgres.js, psycopg 3, pgJDBC, psql and pgbench — run the same
 * transcript straight against PostgreSQL and through `dbgate connect`'s full pipeline (guardrails,
 * masking, recording). What an application sees must be identical, except that sensitive values
 * come back masked: ordinary data, errors with their SQLSTATE and cursor position, a table created
 * after the tunnel opened, JSON and rows built from ordinary data, maintenance that tools send.
 */
import {existsSync} from 'node:fs'
import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import pg from 'pg'
import postgres from 'postgres'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers, sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const PYTHON = '/usr/bin/python3'
const JDBC_JAR = '/usr/share/java/postgresql.jar'

interface Step {
  sql: string
  params?: string[]
}

/** `{fresh}` is a table each client's run creates straight on the server, after the tunnel opened. */
const STEPS: Step[] = [
  {sql: "select 1 as one, 'two'::text as two, null::int as three"},
  {sql: 'select * from ledger order by id'},
  {sql: 'select id, amount, label from ledger where id = $1', params: ['2']},
  {sql: 'select label, count(*) as n, sum(amount) as total from ledger group by label order by label'},
  {sql: 'SELEC 1'},
  {sql: 'select id from ledger where'},
  {sql: 'select 1/0'},
  {sql: 'select * from ledger_missing'},
  {sql: 'vacuum ledger'},
  {sql: 'analyze ledger'},
  {sql: 'select * from {fresh} order by id'},
  {sql: 'select f.id, f.title, l.label from {fresh} f join ledger l on l.id = f.id order by f.id'},
  {sql: 'with w as (select id, label, tags from ledger) select json_agg(w order by id) as doc from w'},
  {sql: 'select row(id, label) as r, to_jsonb(l) - \'meta\' as j from ledger l order by id'},
  {sql: 'insert into ledger_log(note) values ($1) returning id > 0 as inserted', params: ['hello']},
  {sql: 'update ledger set amount = amount where id = $1', params: ['1']},
]

/** Asked of `customers`, whose personal data must come back masked through the tunnel. */
const SENSITIVE: Step = {sql: 'select id, full_name, email, phone from customers order by id limit 3'}

const SCHEMA = `
create table ledger (
  id int primary key, amount numeric(10,2), ratio float8, ok boolean, booked_on date,
  booked_at timestamptz, span interval, ref uuid, meta jsonb, tags int[], label text, raw bytea
);
insert into ledger values
  (1, 12.50, 0.25, true, '2026-01-02', '2026-01-02 03:04:05+00', '1 day 2 hours', '00000000-0000-4000-8000-000000000001', '{"k": [1, 2]}', '{1,2}', 'widget', '\\x0102'),
  (2, -3.00, 1e-9, false, '2026-02-03', '2026-02-03 10:00:00+00', '5 minutes', '00000000-0000-4000-8000-000000000002', '{"k": null}', '{}', 'gadget', '\\x'),
  (3, null, null, null, null, null, null, null, null, null, null, null);
create table ledger_log (id serial primary key, note text);
`

type Transcript = unknown[]

interface Client {
  name: string
  /** Runs the steps against `target` and returns what the application saw. */
  run(target: Target, steps: Step[]): Promise<Transcript>
}

interface Target {
  host: string
  port: number
  user: string
  password: string
  database: string
}

const clients: Client[] = [
  {
    name: 'node-postgres',
    async run(t, steps) {
      const c = new pg.Client({...t, types: {getTypeParser: () => (v: string) => v}})
      await c.connect()
      const out: Transcript = []
      try {
        for (const s of steps) {
          try {
            const r = await c.query({text: s.sql, values: s.params, rowMode: 'array'})
            out.push(r.fields.length > 0 ? {columns: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows} : {command: r.command, rowCount: r.rowCount})
          } catch (e) {
            const err = e as pg.DatabaseError
            out.push({error: {code: err.code, message: err.message, position: err.position}})
          }
        }
      } finally {
        await c.end()
      }
      return out
    },
  },
  {
    name: 'postgres.js',
    async run(t, steps) {
      const sql = postgres({host: t.host, port: t.port, user: t.user, password: t.password, database: t.database, max: 1, onnotice: () => {}, transform: {undefined: null}})
      const out: Transcript = []
      try {
        for (const s of steps) {
          try {
            const r = s.params ? await sql.unsafe(s.sql, s.params, {prepare: true}) : await sql.unsafe(s.sql)
            out.push(r.columns ? {columns: r.columns.map((c) => [c.name, c.type]), rows: r.map((row) => JSON.parse(JSON.stringify(Object.values(row))))} : {command: r.command, count: r.count})
          } catch (e) {
            const err = e as {code?: string; message: string; position?: string}
            out.push({error: {code: err.code, message: err.message, position: err.position}})
          }
        }
      } finally {
        await sql.end()
      }
      return out
    },
  },
  {
    name: 'psycopg 3',
    async run(t, steps) {
      const dsn = `host=${t.host} port=${t.port} user=${t.user} password=${t.password} dbname=${t.database}`
      const r = await run(PYTHON, [path.join(here, 'drivers', 'transcript.py')], {env: {DBGATE_DSN: dsn, PYTHONPATH: ''}, input: JSON.stringify(steps)})
      if (r.code !== 0) throw new Error(`psycopg transcript failed (${r.code}): ${r.stderr}`)
      return JSON.parse(r.stdout) as Transcript
    },
  },
  {
    name: 'pgJDBC',
    async run(t, steps) {
      const input = steps.map((s) => [s.sql, ...(s.params ?? [])].join('\t')).join('\n')
      const env = {DBGATE_JDBC_URL: `jdbc:postgresql://${t.host}:${t.port}/${t.database}`, DBGATE_USER: t.user, DBGATE_PASSWORD: t.password}
      const r = await run('java', ['-cp', JDBC_JAR, path.join(here, 'drivers', 'Transcript.java')], {env, input, timeoutMs: 120_000})
      if (r.code !== 0) throw new Error(`pgJDBC transcript failed (${r.code}): ${r.stderr}`)
      return JSON.parse(r.stdout) as Transcript
    },
  },
  {
    name: 'psql',
    async run(t, steps) {
      // psql 15 has no \bind: parameters go through PREPARE and EXECUTE, as a psql user writes them.
      const script = steps
        .map((s, i) => {
          if (!s.params) return `${s.sql};`
          const args = s.params.map((p) => `'${p.replace(/'/g, "''")}'`).join(', ')
          return `prepare p${i} as ${s.sql};\nexecute p${i}(${args});\ndeallocate p${i};`
        })
        .join('\n')
      const file = path.join(await mkdtemp(path.join(tmpdir(), 'dbgate-drivers-')), 'transcript.sql')
      await writeFile(file, script)
      const env = {PGHOST: t.host, PGPORT: String(t.port), PGUSER: t.user, PGPASSWORD: t.password, PGDATABASE: t.database, PGCONNECT_TIMEOUT: '10'}
      // Errors go to stdout too (2>&1 order matters to a reader): -b echoes each failed statement.
      const r = await run('sh', ['-c', `psql -X -b -v ON_ERROR_STOP=0 -A -F '|' -f '${file}' 2>&1`], {env})
      return [r.code, ...r.stdout.split('\n').map((l) => l.replace(file, '<script>'))]
    },
  },
]

describe('six clients see the same through dbgate as straight from PostgreSQL', () => {
  let db: UpstreamInfo
  let tunnel: PipelineTunnel
  let direct: Target
  let through: Target
  const secrets = sampleCustomers().flatMap((c) => [c.email, c.phone, c.fullName])

  beforeAll(async () => {
    for (const [what, file, pkg] of [
      ['python3 with psycopg 3', PYTHON, 'python3-psycopg'],
      ['pgJDBC', JDBC_JAR, 'libpostgresql-jdbc-java'],
    ] as const) {
      if (!existsSync(file)) throw new Error(`${what} is needed for the driver comparison: install the Debian package ${pkg} (.ci/run does)`)
    }
    db = await createTestDatabase('drivers')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(SCHEMA)
    })
    tunnel = await openPipelineTunnel(db)
    const url = new URL(tunnel.info.url)
    direct = {host: db.host, port: db.port, user: db.user, password: db.password, database: db.database}
    through = {host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: db.database}
  })
  afterAll(() => tunnel?.close())

  for (const client of clients) {
    it(`${client.name}: identical transcripts, personal data masked`, async () => {
      // A migration that did not go through this tunnel adds a table of ordinary data.
      const fresh = `fresh_${client.name.replace(/\W+/g, '_')}`
      await withClient(db.url, (c) => c.query(`create table ${fresh} (id int primary key, title text, made date); insert into ${fresh} values (1, 'first', '2026-03-04'), (2, 'second', null)`))
      const steps = STEPS.map((s) => ({...s, sql: s.sql.replace('{fresh}', fresh)}))

      const viaTunnel = await client.run(through, steps)
      const straight = await client.run(direct, steps)
      expect(viaTunnel).toEqual(straight)

      const sensitiveDirect = JSON.stringify(await client.run(direct, [SENSITIVE]))
      const sensitiveTunnel = JSON.stringify(await client.run(through, [SENSITIVE]))
      // The data is really there (the comparison would prove nothing otherwise) ...
      expect(secrets.filter((s) => sensitiveDirect.includes(s)).length).toBeGreaterThanOrEqual(9)
      // ... and none of it passes the tunnel.
      expect(secrets.filter((s) => sensitiveTunnel.includes(s))).toEqual([])
    })
  }

  it('pgbench runs through the tunnel, its VACUUM step with no reviewer; only its TRUNCATE is refused', async () => {
    const init = await run('pgbench', ['-i', '-s', '1', '-q'], {env: {PGHOST: direct.host, PGPORT: String(direct.port), PGUSER: direct.user, PGPASSWORD: direct.password, PGDATABASE: db.database}, timeoutMs: 120_000})
    expect(init.code).toBe(0)
    const env = {PGHOST: through.host, PGPORT: String(through.port), PGUSER: through.user, PGPASSWORD: through.password, PGDATABASE: db.database}
    // Without -n, pgbench first vacuums pgbench_branches and pgbench_tellers and truncates pgbench_history.
    const r = await run('pgbench', ['-S', '-M', 'prepared', '-c', '2', '-t', '50'], {env, timeoutMs: 120_000})
    expect(r.stdout).toMatch(/number of transactions actually processed: 100\/100/)
    expect(r.code).toBe(0)
    const refused = r.stderr.split('\n').filter((l) => /ERROR/.test(l))
    expect(refused).toEqual([expect.stringMatching(/denied by rule default\.no-truncate/)])

  })
})
