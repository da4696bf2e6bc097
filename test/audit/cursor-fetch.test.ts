/**
 * The server runs a cursor's query as its rows are fetched: `declare c cursor for select
 * wipe_one(id) from items` deletes at each `fetch 2 from c`. The FETCH names no table, and was
 * recorded as a read of nothing, so the statements that deleted were found by no `sessions search
 * --table items` or `--class write`. A FETCH or MOVE is now recorded with the tables of the cursor
 * it runs and, where that query changes something, its class; a cursor closed or declared again
 * under its name no longer lends them.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import SessionsSearch from '../../src/commands/sessions/search.js'
import type {StatementData} from '../../src/audit/events.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'
import {auditorEnv, recordedStatements} from './helpers.js'

const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

/** Texts sent one by one, in one session; the FETCHes and MOVEs below are checked. */
const SESSION = [
  'begin',
  'declare c cursor for select wipe_one(id) from items order by id',
  'fetch 2 from c',
  'move 1 in c',
  'fetch next from c',
  'close c',
  'commit',
  // Declared again under the same names: what it runs now is what counts.
  'begin',
  'declare c cursor for select 1 as one',
  'fetch 1 from c',
  'declare "Big" scroll cursor for select full_name from people order by id',
  'fetch 1 from "Big"',
  'fetch absolute 2 from "Big"',
  'close all',
  'commit',
]

let statements: StatementData[]
let bucketUrl: string
/** The recorded statement of the nth text of that SQL (texts repeat). */
const nth = (sql: string, n = 0) => statements.filter((s) => s.sql === sql)[n]

beforeAll(async () => {
  const db = await createTestDatabase('cursor_fetch')
  await withClient(db.url, (c) =>
    c.query(`create table items (id int primary key) with (autovacuum_enabled = false); insert into items select generate_series(1, 9);
      create table people (id int primary key, full_name text) with (autovacuum_enabled = false); insert into people values (1, 'Ann'), (2, 'Bo');
      create function wipe_one(x int) returns int language plpgsql volatile as $$ begin delete from items where id = x; return x; end $$`),
  )
  bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-cursor-fetch-'))}`
  // The team allows its cleanup function, which the default pack would hold as a volatile call.
  const t = await openPipelineTunnel(db, ['rules:', '  - id: allow-wipe', '    match: {functions: [wipe_one]}', '    action: allow'].join('\n'), {top: `bucket: ${bucketUrl}`})
  const c = await t.client()
  for (const sql of SESSION) await c.query(sql)
  await t.close()
  // The FETCHes and the MOVE deleted the four rows they ran over, and nothing else did.
  expect(await withClient(db.url, async (x) => (await x.query('select array_agg(id order by id) as ids from items')).rows[0].ids)).toEqual([5, 6, 7, 8, 9])
  auditorEnv({dataHome: true})
  statements = await recordedStatements(bucketUrl)
}, 120_000)
afterAll(() => {
  process.env = savedEnv
})

describe('a FETCH or MOVE is recorded with what its cursor runs', () => {
  it('is a write of the tables the cursor writes, when its query writes', () => {
    for (const sql of ['fetch 2 from c', 'move 1 in c', 'fetch next from c']) {
      const st = nth(sql)
      expect(st?.class, sql).toBe('write')
      expect(st?.tables, sql).toContain('items')
    }
  })

  it('reads the tables of a cursor that only reads, under a quoted name', () => {
    for (const sql of ['fetch 1 from "Big"', 'fetch absolute 2 from "Big"']) {
      const st = nth(sql)
      expect(st?.class, sql).toBe('read')
      expect(st?.tables, sql).toEqual(['people'])
    }
  })

  it('takes nothing from a cursor closed and declared again under its name', () => {
    const st = nth('fetch 1 from c')
    expect(st?.class).toBe('read')
    expect(st?.tables).toEqual([])
  })

  it('is found by sessions search --table and --class write', async () => {
    const byTable = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--table', 'items', '--json'], {root}))
    const tableSql = (JSON.parse(byTable.stdout) as {matches: {sql: string}[]}).matches.map((m) => m.sql)
    for (const sql of ['fetch 2 from c', 'move 1 in c', 'fetch next from c']) expect(tableSql, sql).toContain(sql)
    const byClass = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--class', 'write', '--json'], {root}))
    const classSql = (JSON.parse(byClass.stdout) as {matches: {sql: string}[]}).matches.map((m) => m.sql)
    expect(classSql).toContain('fetch 2 from c')
    expect(classSql).not.toContain('fetch 1 from c')
  })
})
