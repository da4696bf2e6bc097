/**
 * A statement that policy holds for a reviewer but that cannot be held (the tunnel has no signed-in
 * identity, the target names no reviewers, it comes as a named prepared statement, a cursor, COPY
 * FROM STDIN) is refused by the tunnel: it never runs. Such refusals were recorded with the policy's
 * own `require_approval` as their decision, which no reader counts as denied: the session's totals
 * counted them as errors, `sessions list --denied` and `sessions search --denied` passed over them,
 * and the report's "statements denied" left them out. They are denials, and are recorded as such.
 */
import {mkdtempSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {serialize} from 'pg-protocol'
import {auditorEnv} from './helpers.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SessionEndData, StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import ReportCommand from '../../src/commands/report.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import type {Report} from '../../src/report/model.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'

const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
let bucketUrl: string
let statements: StatementData[]
let end: SessionEndData
let sessionId: string

/** Each needs a reviewer under the default rules, and the tunnel has no signed-in identity to ask one for. */
const HELD = ['select bump()', 'create table later_t (id int)', 'alter table items add column note text']

beforeAll(async () => {
  const db = await createTestDatabase('refused_holds')
  await withClient(db.url, (c) =>
    c.query(`create table items (id int primary key);
      create function bump() returns int language plpgsql as $$ begin insert into items values (1); return 1; end $$`),
  )
  bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-refused-holds-'))}`
  const t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  const c = await t.client()
  for (const sql of HELD) await expect(c.query(sql)).rejects.toMatchObject({code: '42501'})
  // The same through the extended protocol, as a named prepared statement.
  const raw = await t.raw()
  raw.send(serialize.parse({name: 'named', text: 'select bump()'}), serialize.bind({statement: 'named'}), serialize.execute({}), serialize.sync())
  await raw.untilReady()
  await t.close()
  expect(await withClient(db.url, (c) => c.query('select count(*)::int as n from items')).then((r) => r.rows[0].n)).toBe(0)

  auditorEnv({dataHome: true})
  const reader = new SessionReader(openBucket(bucketUrl))
  const sessions = await reader.list()
  const events = (await Promise.all(sessions.map(async (s) => (await reader.loadSummary(s)).events))).flat()
  statements = events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
  end = events.find((e) => e.type === 'session.end' && (e.data as SessionEndData).totals.statements === HELD.length)!.data as SessionEndData
  sessionId = sessions.find((s) => s.totals.statements === HELD.length)!.sessionId
}, 120_000)
afterAll(() => {
  process.env = savedEnv
})

describe('a statement held for approval that could not be held', () => {
  it('is recorded as denied, by the rule that held it, with the reason it was refused', () => {
    const held = statements.filter((s) => s.ruleId?.startsWith('default.'))
    expect(held.map((s) => s.sql).sort()).toEqual([...HELD, 'select bump()'].sort())
    for (const s of held) {
      expect(s.decision, s.sql).toBe('deny')
      expect(s.outcome, s.sql).toBe('rejected')
      expect(s.error?.sqlstate, s.sql).toBe('42501')
    }
  })

  it('counts in the session totals as denied, not as errors', () => {
    expect(end.totals).toMatchObject({statements: HELD.length, denied: HELD.length, errors: 0})
  })

  it('is found by sessions list --denied and sessions search --denied', async () => {
    const list = await captureCommand(() => SessionsList.run(['--bucket', bucketUrl, '--denied'], {root}))
    expect(list.stdout).toContain(sessionId)
    const search = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--denied', '--json'], {root}))
    const found = (JSON.parse(search.stdout) as {matches: {sql: string}[]}).matches.map((m) => m.sql)
    for (const sql of HELD) expect(found, sql).toContain(sql)
    expect(found.filter((sql) => sql === 'select bump()')).toHaveLength(2)
  })

  it('counts in dbgate report as denied', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'dbgate-report-'))
    const since = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
    await captureCommand(() => ReportCommand.run(['--bucket', bucketUrl, '--since', since, '--out', out], {root}))
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report
    expect(report.summary).toMatchObject({denied: statements.filter((s) => s.outcome === 'rejected').length, errors: 0})
  })
})
