/**
 * A statement event's `class` is what auditors count changes by: `sessions search --class write`,
 * and the report's "data and schema changes (write, ddl statements)". It was the class of the
 * policy's decisive statement, which in a text whose statements were all allowed is the first one:
 * `select 1; delete from items …` was recorded as a read, `begin; insert …; commit` as a
 * transaction and `set …; update …` as a session setting, so every write sent behind a harmless
 * first statement was missing from both. The text's class is now the weightiest change among its
 * statements.
 */
import {mkdtempSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import ReportCommand from '../../src/commands/report.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import type {StatementData} from '../../src/audit/events.js'
import type {Report} from '../../src/report/model.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'
import {auditorEnv, recordedStatements} from './helpers.js'

const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

/** Each changes the table behind a first statement that changes nothing. */
const WRITES = [
  'select 1; delete from items where id = 1',
  'begin; insert into items values (10); commit',
  "set statement_timeout = '5s'; update items set id = 20 where id = 2",
  'values (1); insert into items values (11)',
  'select 1 as one; with d as (delete from items where id = 3 returning id) select * from d',
  "show search_path; select nextval('seq')",
  'start transaction; select 1; delete from items where id = 4; commit',
]
/** Ordinary texts that change nothing keep the class they had. */
const UNCHANGED: [string, string][] = [
  ['select 1; select 2', 'read'],
  ['begin; select count(*) from items; commit', 'transaction'],
  ["set application_name = 'x'; select 1", 'session'],
  ['select pg_advisory_lock(7); select pg_advisory_unlock(7)', 'session'],
  ['delete from items where id = 5', 'write'],
]

let statements: StatementData[]
let bucketUrl: string
let report: Report

beforeAll(async () => {
  const db = await createTestDatabase('text_class')
  await withClient(db.url, (c) => c.query('create table items (id int primary key) with (autovacuum_enabled = false); insert into items select generate_series(1, 9); create sequence seq'))
  bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-text-class-'))}`
  const t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  const c = await t.client()
  for (const sql of [...WRITES, ...UNCHANGED.map(([sql]) => sql)]) await c.query(sql)
  await t.close()
  // The server did what each text says.
  expect(await withClient(db.url, async (x) => (await x.query('select array_agg(id order by id) as ids from items')).rows[0].ids)).toEqual([6, 7, 8, 9, 10, 11, 20])
  expect(await withClient(db.url, async (x) => (await x.query('select last_value from seq')).rows[0].last_value)).toBe('1')

  auditorEnv({dataHome: true})
  statements = await recordedStatements(bucketUrl)
  const out = mkdtempSync(path.join(tmpdir(), 'dbgate-report-'))
  const since = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
  await captureCommand(() => ReportCommand.run(['--bucket', bucketUrl, '--since', since, '--out', out], {root}))
  report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report
}, 120_000)
afterAll(() => {
  process.env = savedEnv
})

describe('the class of a text of several statements', () => {
  it('is a write when any of its statements wrote, whatever came first', () => {
    for (const sql of WRITES) expect(statements.find((s) => s.sql === sql)?.class, sql).toBe('write')
  })

  it('is as before for texts that change nothing, and for a text of one statement', () => {
    for (const [sql, cls] of UNCHANGED) expect(statements.find((s) => s.sql === sql)?.class, sql).toBe(cls)
  })

  it('sessions search --class write finds every one of them', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--class', 'write', '--json'], {root}))
    const found = (JSON.parse(r.stdout) as {matches: {sql: string}[]}).matches.map((m) => m.sql)
    expect(found.sort()).toEqual([...WRITES, 'delete from items where id = 5'].sort())
  })

  it("the report counts them among the data and schema changes", () => {
    expect(report.byClass.find((c) => c.class === 'write')?.statements).toBe(WRITES.length + 1)
    const figure = report.controls.flatMap((c) => c.figures).find((f) => f.label === 'data and schema changes (write, ddl statements)')
    expect(figure?.value).toBe(WRITES.length + 1)
  })
})
