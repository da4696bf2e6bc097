import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {exportSession, highlight, SessionReader} from '../../src/audit/read.js'
import {parseWhen} from '../../src/util/duration.js'
import {renderEvent, renderPreview, replay} from '../../src/audit/render.js'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import type {SessionInfo} from '../../src/proxy/seam.js'
import {alice, mallory, removeTempDirs, stmt, tempDir} from './helpers.js'

let key: InstallationKey
let bucket: FileBucket
let spoolDir: string
let cacheDir: string

interface PolicyTag {
  class: string
  rule?: string
  tables: string[]
}

/** Two sessions through the proxy hook adapter, the way the tunnel drives it. */
async function recordThroughHooks(sessionId: string, who: typeof alice, target: string, start: Date, statements: {sql: string; at: number; deny?: boolean; tag: PolicyTag; rows?: number}[]) {
  // What a stand-in policy said about each text, read back by `describe` as the recording stage reads the verdict.
  const tags = new Map(statements.map((s) => [s.sql, s.tag]))
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, previewRows: 2, checkpointEvery: 0, now: () => new Date(start.getTime() + 60_000)})
  const hooks = createRecordingHooks(rec, {
    identity: who,
    target,
    policy: {version: 'default@1'},
    describe: (ev) => {
      const tag = tags.get(ev.sql)!
      return {
        class: tag.class,
        ruleId: tag.rule,
        tables: tag.tables,
        maskedColumns: tag.tables.includes('public.users') ? ['public.users.email'] : [],
        preview: tag.class === 'select' ? {columns: ['id', 'email'], rows: [['1', 'a***@example.com'], ['2', 'b***@example.com'], ['3', 'c***@example.com']], truncated: false} : undefined,
      }
    },
  })
  const info: SessionInfo = {sessionId, connectionId: 7, database: 'app', user: 'app_rw', applicationName: 'psql', clientAddress: '127.0.0.1:5432', startedAt: start}
  hooks.onSessionStart(info)
  for (const s of statements) {
    hooks.onStatement(
      stmt(sessionId, s.sql, {
        startedAt: new Date(start.getTime() + s.at),
        rows: s.rows ?? 1,
        verdict: s.deny ? {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'denied by policy'}} : {action: 'allow'},
        outcome: s.deny ? 'rejected' : 'ok',
      }),
    )
  }
  hooks.onSessionEnd(info, 'client-closed')
  await rec.session(sessionId)?.end('client-closed')
}

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  bucket = new FileBucket(await tempDir('dbgate-bucket-'))
  spoolDir = await tempDir('dbgate-spool-')
  cacheDir = await tempDir('dbgate-cache-')
  await publishKey(bucket, alice, key)
  await recordThroughHooks('s-alice', alice, 'prod', new Date('2026-03-01T10:00:00Z'), [
    {sql: 'SELECT id, email FROM users WHERE id < 4', at: 1000, tag: {class: 'select', tables: ['public.users']}, rows: 3},
    {sql: 'DELETE FROM users', at: 2500, deny: true, tag: {class: 'delete', rule: 'no-unbounded-delete', tables: ['public.users']}, rows: 0},
    {sql: 'select count(*) from orders', at: 4000, tag: {class: 'select', tables: ['public.orders']}},
  ])
  await recordThroughHooks('s-mallory', mallory, 'staging', new Date('2026-03-05T08:00:00Z'), [
    {sql: 'update orders set state = 1 where id = 9', at: 500, tag: {class: 'update', tables: ['public.orders']}},
  ])
  const shipped = await shipPending({bucket, signer: key, spoolDir})
  expect(shipped.shipped).toHaveLength(2)
})
afterAll(removeTempDirs)

describe('list', () => {
  it('filters by user, target, time and denied statements', async () => {
    const r = new SessionReader(bucket, cacheDir)
    const ids = async (f: Parameters<SessionReader['list']>[0]) => (await r.list(f)).map((s) => s.sessionId)
    expect(await ids({})).toEqual(['s-mallory', 's-alice'])
    expect(await ids({user: 'ALICE@'})).toEqual(['s-alice'])
    // One person's whole e-mail, subject or the e-mail's part before the @; part of a name is nobody's.
    expect(await ids({user: 'Alice@Example.com'})).toEqual(['s-alice'])
    expect(await ids({user: alice.subject})).toEqual(['s-alice'])
    for (const part of ['lice', 'lice@example.com', 'example.com', '@example.com', 'ali', 'u-al']) expect(await ids({user: part}), part).toEqual([])
    expect(await ids({target: 'staging'})).toEqual(['s-mallory'])
    expect(await ids({since: new Date('2026-03-02T00:00:00Z')})).toEqual(['s-mallory'])
    expect(await ids({until: new Date('2026-03-02T00:00:00Z')})).toEqual(['s-alice'])
    expect(await ids({denied: true})).toEqual(['s-alice'])
    const [alices] = await r.list({user: 'alice'})
    expect(alices).toMatchObject({status: 'ended', target: 'prod', database: 'app', totals: {statements: 3, denied: 1, errors: 0, rows: 4}})
  })

  it('reads durations and ISO dates for --since/--until', () => {
    const now = new Date('2026-03-08T00:00:00Z')
    expect(parseWhen('7d', now).toISOString()).toBe('2026-03-01T00:00:00.000Z')
    expect(parseWhen('12h', now).toISOString()).toBe('2026-03-07T12:00:00.000Z')
    expect(parseWhen('2026-03-02', now).toISOString()).toBe('2026-03-02T00:00:00.000Z')
    expect(() => parseWhen('last week', now)).toThrow(/a duration before now/)
  })
})

describe('search', () => {
  it('finds statements by text with highlight spans, and by table, class and user', async () => {
    const r = new SessionReader(bucket, cacheDir)
    const hits = await r.search({text: 'orders'})
    expect(hits.map((h) => [h.sessionId, h.seq, h.sql, h.spans])).toEqual([
      ['s-mallory', 2, 'update orders set state = 1 where id = 9', [[7, 13]]],
      ['s-alice', 4, 'select count(*) from orders', [[21, 27]]],
    ])
    expect(highlight(hits[1]!.sql, hits[1]!.spans, (s) => `[${s}]`)).toBe('select count(*) from [orders]')
    expect((await r.search({text: 'USERS', class: 'delete'})).map((h) => [h.seq, h.decision, h.spans])).toEqual([[3, 'deny', [[12, 17]]]])
    expect((await r.search({table: 'users'})).map((h) => h.seq)).toEqual([2, 3])
    expect((await r.search({text: 'orders', user: 'mallory'})).map((h) => h.sessionId)).toEqual(['s-mallory'])
    expect((await r.search({text: 'from\\s+\\w+', regex: true, user: 'alice'})).map((h) => h.spans)).toEqual([[[17, 27]], [[7, 17]], [[16, 27]]])
  })

  it('never downloads the same object twice', async () => {
    const fresh = await tempDir('dbgate-cache-')
    const first = new SessionReader(bucket, fresh)
    await first.search({text: 'select'})
    await first.search({text: 'orders'})
    expect(first.cache.downloads).toBe(2)
    const second = new SessionReader(bucket, fresh)
    await second.search({text: 'delete'})
    expect(second.cache.downloads).toBe(0)
  })

  it('downloads a session again only when it was re-shipped', async () => {
    const own = new FileBucket(await tempDir('dbgate-bucket-'))
    const dir = await tempDir('dbgate-spool-')
    const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir: dir, checkpointEvery: 0})
    const s = rec.startSession({sessionId: 's-growing', identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}})
    s.statement(stmt('s-growing', 'select 1'))
    await s.flush()
    await shipPending({bucket: own, signer: key, spoolDir: dir})
    const reader = new SessionReader(own, await tempDir('dbgate-cache-'))
    expect((await reader.search({text: 'select'})).length).toBe(1)
    s.statement(stmt('s-growing', 'select 2'))
    await s.end('done')
    await shipPending({bucket: own, signer: key, spoolDir: dir})
    expect((await reader.search({text: 'select'})).length).toBe(2)
    expect((await reader.list({}))[0]!.status).toBe('ended')
    expect(reader.cache.downloads).toBe(2)
  })
})

describe('show and replay', () => {
  it('renders statements, decisions and masked previews as plain lines', async () => {
    const {events} = await new SessionReader(bucket, cacheDir).load('s-al')
    const steps = [...replay(events, {speed: 2})]
    expect(steps.map((s) => s.delayMs)).toEqual([0, 500, 750, 750, 28000])
    expect(steps.flatMap((s) => s.lines)).toEqual([
      '+00:00.000 #1 session start s-alice by alice@example.com (human) on prod/app as app_rw',
      '    client "psql" from 127.0.0.1:5432 · dbgate 0.1.0 · policy default@1',
      '+00:01.000 #2 ALLOW select · 3 rows · 3 ms',
      '    SELECT id, email FROM users WHERE id < 4',
      '    tables: public.users',
      '    masked: public.users.email',
      '    id │ email',
      '    ───┼─────────────────',
      '    1  │ a***@example.com',
      '    2  │ b***@example.com',
      '    (preview: first 2 rows)',
      '+00:02.500 #3 DENY delete · rule no-unbounded-delete · 0 rows · 3 ms',
      '    DELETE FROM users',
      '    tables: public.users',
      '    masked: public.users.email',
      '    error 42501: denied by policy',
      '+00:04.000 #4 ALLOW select · 1 row · 3 ms',
      '    select count(*) from orders',
      '    tables: public.orders',
      '    id │ email',
      '    ───┼─────────────────',
      '    1  │ a***@example.com',
      '    2  │ b***@example.com',
      '    (preview: first 2 rows)',
      '+01:00.000 #5 session end (client-closed): 3 statements, 1 denied, 0 errors, 4 rows',
    ])
    expect([...replay(events, {noWait: true})].every((s) => s.delayMs === 0)).toBe(true)
    expect([...replay(events, {maxDelayMs: 1000})].map((s) => s.delayMs)).toEqual([0, 1000, 1000, 1000, 1000])
  })

  it('colours only when asked and renders generic events', () => {
    const ev = {v: 1 as const, type: 'approval.granted', session: 's', seq: 9, ts: '2026-03-01T10:00:00.000Z', prev: '', hash: '', data: {approvalId: 'ap-1'}}
    expect(renderEvent(ev)).toEqual(['+00:00.000 #9 approval.granted {"approvalId":"ap-1"}'])
    expect(renderEvent(ev, {color: true})[0]).toContain('\u001b[')
    expect(renderPreview({columns: ['note'], rows: [['x'.repeat(50)]], truncated: false}, 10)[2]).toBe('xxxxxxxxx…')
  })
})

describe('export', () => {
  it('keeps jsonl byte-exact and writes csv with one row per statement', async () => {
    const s = await new SessionReader(bucket, cacheDir).load('s-alice')
    expect([...exportSession(s, 'jsonl', true)].join('')).toBe(s.text)
    const csv = [...exportSession(s, 'csv', true)].join('').trim().split('\n')
    expect(csv[0]).toBe('session,seq,started_at,user,agent,target,database,class,decision,rule,approval,duration_ms,rows,outcome,command_tags,tables,sqlstate,error,sql')
    expect(csv[2]).toBe('s-alice,3,2026-03-01T10:00:02.500Z,alice@example.com,,prod,app,delete,deny,no-unbounded-delete,,3,0,rejected,SELECT 1,public.users,42501,denied by policy,DELETE FROM users')
    expect(csv).toHaveLength(4)
  })
})
