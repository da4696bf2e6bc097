/**
 * A statement is recorded when it finishes, but its rows reach the client as the server sends
 * them: a read whose rows come before a wait (a pg_sleep after them, a lock, a slow last row) had
 * its rows on the client's screen while the log held nothing of it, and a tunnel killed then (its
 * user's own `kill -9`) left an interrupted session with no statement at all. Rows of a statement
 * still running are now preceded in the log by a `statement.streaming` event, written before the
 * client gets them, in every way a statement sends rows: simple and extended, COPY TO STDOUT,
 * FETCH, a multi-statement text, masked or not, and the notices it raises.
 */
import {spawn} from 'node:child_process'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import path, {join} from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseEvents, statementsOf} from '../../src/audit/read.js'
import type {StatementData, StatementStreamingData} from '../../src/audit/events.js'
import {isolatedEnv, openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')
const RULES = ['rules:', ...['read', 'write', 'ddl', 'admin', 'opaque'].flatMap((c) => [`  - id: allow-${c}`, `    match: {class: ${c}}`, '    action: allow'])].join('\n')
/** Enough rows to pass the server's 8 KiB send buffer, so they are sent before what comes after them. */
const ROWS = `select 'row-' || g || repeat('x', 1000) as v, email from generate_series(1, 40) g cross join people`
const WAIT = 'select pg_sleep(1.5)::text, null::text'

/** Every way a statement's rows reach the client before it finishes; `first` is the message that carries them. */
const FAMILY: {name: string; tag: string; messages: (tag: string) => Buffer[]; before?: (tag: string) => Buffer[]; first: string}[] = [
  {name: 'a simple query', tag: 'sq', messages: (t) => [serialize.query(`${ROWS.replace('row-', `${t}-`)} union all ${WAIT}`)], first: 'D'},
  {name: 'a multi-statement simple query whose first part returns rows', tag: 'mq', messages: (t) => [serialize.query(`${ROWS.replace('row-', `${t}-`)}; select pg_sleep(1.5)`)], first: 'D'},
  {
    name: 'an extended-protocol Execute',
    tag: 'ex',
    messages: (t) => [serialize.parse({text: `${ROWS.replace('row-', `${t}-`)} union all ${WAIT}`}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}), serialize.sync()],
    first: 'D',
  },
  {
    name: 'a NOTICE a running statement raised',
    tag: 'nt',
    messages: (t) => [serialize.query(`do $$ begin raise notice '${t}-%', (select string_agg(email, ',') from people); perform pg_sleep(1.5); end $$`)],
    first: 'N',
  },
  {name: 'COPY TO STDOUT', tag: 'cp', messages: (t) => [serialize.query(`copy (${ROWS.replace('row-', `${t}-`)} union all ${WAIT}) to stdout`)], first: 'd'},
  {
    name: 'a FETCH from a cursor',
    tag: 'fe',
    before: (t) => [serialize.query(`begin; declare c_${t} cursor for ${ROWS.replace('row-', `${t}-`)} union all ${WAIT}`)],
    messages: (t) => [serialize.query(`fetch all from c_${t}`)],
    first: 'D',
  },
]

describe('rows of a statement that has not finished', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel & {env: NodeJS.ProcessEnv}
  let spool: string

  beforeAll(async () => {
    db = await createTestDatabase('streamed_rows')
    await withClient(db.url, (c) => c.query("create table people (email text); insert into people values ('first.person@example.org')"))
    t = await openPipelineTunnel(db, RULES)
    spool = join(t.env.XDG_STATE_HOME!, 'dbgate', 'spool')
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  /** Every event of every session in the spool, as written so far. */
  async function spooled() {
    const events = []
    for (const f of (await readdir(spool)).filter((f) => f.endsWith('.jsonl'))) {
      // An earlier case's session may end and be shipped (its spool file removed) between the listing and the read.
      const text = await readFile(join(spool, f), 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e)))
      events.push(...parseEvents(text))
    }
    return events
  }

  for (const k of FAMILY) {
    it(`${k.name}: is in the log before the client has its first row, and recorded again when it ends`, async () => {
      const c = await t.raw()
      if (k.before) {
        c.send(...k.before(k.tag))
        await c.untilReady()
      }
      c.send(...k.messages(k.tag))
      for (let m = await c.next(); m.code !== k.first; m = await c.next()) expect(m.code).not.toBe('Z')
      // The client holds rows now; a tunnel killed at this moment leaves the log as it is.
      const ours = (sql: string) => sql.includes(`${k.tag}-`) || sql.includes(`c_${k.tag}`)
      const now = (await spooled()).filter((e) => e.type === 'statement.streaming' && ours((e.data as StatementStreamingData).sql))
      expect(now, 'a statement.streaming event of the running statement').toHaveLength(1)
      const early = now[0]!.data as StatementStreamingData
      // Rows sent so far: DataRows, or a COPY's CopyData messages (one a row), which a COPY that fails has no tag to count.
      if (k.first === 'D' || k.first === 'd') expect(early.rows).toBeGreaterThan(0)
      else expect(early.rows).toBe(0)
      expect(early.decision).toBe('allow')
      // It carries no values: the masked ones are only in the final event's preview.
      expect(JSON.stringify(early)).not.toContain('first.person')

      await c.untilReady()
      const events = await spooled()
      const done = events.filter((e) => e.type === 'statement' && ours((e.data as StatementData).sql) && !(e.data as StatementData).sql.startsWith('begin'))
      expect(done).toHaveLength(1)
      expect((done[0]!.data as StatementData).outcome).toBe('ok')
      // Once per statement, however many chunks its rows took.
      expect(events.filter((e) => e.type === 'statement.streaming' && ours((e.data as StatementStreamingData).sql))).toHaveLength(1)
      // Searched once: the streaming event stands for its statement only when that never ended.
      expect(statementsOf(events).filter((e) => ours((e.data as StatementData).sql) && !(e.data as StatementData).sql.startsWith('begin')).map((e) => e.type)).toEqual(['statement'])
      c.end()
    }, 30_000)
  }

  it('a statement whose rows and end come in one chunk gets no early event', async () => {
    const c = await t.raw()
    c.send(serialize.query("select 'one-chunk' as v"))
    await c.untilReady()
    c.end()
    const events = await spooled()
    expect(events.filter((e) => e.type === 'statement' && (e.data as StatementData).sql.includes('one-chunk'))).toHaveLength(1)
    expect(events.filter((e) => e.type === 'statement.streaming' && (e.data as StatementStreamingData).sql.includes('one-chunk'))).toHaveLength(0)
  })
})

describe('dbgate connect killed with SIGKILL while the client reads', () => {
  it('the shipped, verified log names the statement whose rows the client had', async () => {
    const db = await createTestDatabase('streamed_kill')
    await withClient(db.url, (c) => c.query("create table people (email text); insert into people values ('first.person@example.org')"))
    const env: NodeJS.ProcessEnv = {...isolatedEnv(), APP_DB_PASSWORD: db.password, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: ''}
    const configPath = path.join(env.HOME!, 'dbgate.yaml')
    const rules = RULES.split('\n').map((l) => `    ${l}`).join('\n')
    await writeFile(configPath, `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n${rules}\n`)
    env.DBGATE_CONFIG = configPath

    const tunnel = spawn('node', [BIN, 'connect', 'app', '--json'], {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    const exited = new Promise((r) => tunnel.once('exit', r))
    let out = ''
    const info = await new Promise<{port: number; password: string; database: string}>((resolve, reject) => {
      tunnel.stdout.on('data', (d) => {
        out += d
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!))
      })
      tunnel.once('exit', (code) => reject(new Error(`dbgate connect exited (${code}) before it was ready`)))
    })
    const c = await RawClient.connect(info.port, {password: info.password, database: info.database})
    c.send(serialize.query(`${ROWS.replace('row-', 'killed-')} union all select pg_sleep(5)::text, null`))
    for (let m = await c.next(); m.code !== 'D'; m = await c.next()) expect(m.code).not.toBe('Z')
    tunnel.kill('SIGKILL')
    await exited
    c.end()

    expect((await run('node', [BIN, 'sessions', 'sync'], {env})).code).toBe(0)
    const exported = await run('node', [BIN, 'sessions', 'export', '--format', 'jsonl'], {env})
    expect(exported.code, exported.stderr).toBe(0)
    const events = exported.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as {type: string; data: {sql?: string}})
    expect(events.map((e) => e.type)).toEqual(['session.start', 'statement.streaming', 'session.interrupted'])
    expect(events[1]!.data.sql).toContain('killed-')
    const verify = await run('node', [BIN, 'sessions', 'verify', '--all'], {env})
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
    const show = await run('node', [BIN, 'sessions', 'show', verify.stdout.split(/\s+/)[1]!], {env})
    expect(show.stdout).toMatch(/rows sent .*sent before it finished/)
    expect(show.stdout).toContain('killed-')
    // Searched and exported as the statement it stands for, its outcome unknown.
    const search = await run('node', [BIN, 'sessions', 'search', 'killed-'], {env})
    expect(search.stdout.trim().split('\n')).toHaveLength(1)
    expect(search.stdout).toContain('killed-')
    const csv = await run('node', [BIN, 'sessions', 'export', '--format', 'csv'], {env})
    const rows = csv.stdout.trim().split('\n').slice(1)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatch(/,unfinished,.*killed-/)
    // And counted in the auditors' report, as the statement it stands for.
    const reportDir = path.join(env.HOME!, 'report')
    const rep = await run('node', [BIN, 'report', '--out', reportDir], {env})
    expect(rep.code, rep.stderr).toBe(0)
    const report = JSON.parse(await readFile(path.join(reportDir, 'report.json'), 'utf8')) as {summary: {statements: number}; sessions: {statements: number}[]; byClass: {class: string; statements: number}[]}
    expect(report.summary.statements).toBe(1)
    expect(report.sessions.map((x) => x.statements)).toEqual([1])
    expect(report.byClass).toEqual([{class: 'read', statements: 1}])
  }, 90_000)
})
