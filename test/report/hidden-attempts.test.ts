/**
 * The report's list of destructive and privileged attempts reads each recorded text again. A text
 * that runs what another text defined was read on its own: `EXECUTE wipe` (a DELETE without WHERE
 * prepared earlier in the session) read as nothing, and so did code the parser never sees into (a
 * DO block, a CALL). The guardrails judged each of them as what it runs; the report listed none,
 * so a table emptied through a prepared statement, or dropped inside an approved DO block, was
 * missing from the attempts an auditor reads.
 */
import {mkdtempSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {serialize} from 'pg-protocol'
import {auditorEnv} from '../audit/helpers.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import ReportCommand from '../../src/commands/report.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import type {Attempt, Report} from '../../src/report/model.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'

const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
const RULES = ['rules:', ...['write', 'ddl', 'opaque', 'session'].flatMap((c) => [`  - id: allow-${c}`, `    match: {class: ${c}}`, '    action: allow'])].join('\n')
let attempts: Attempt[]
let bucketUrl: string

beforeAll(async () => {
  const db = await createTestDatabase('hidden_attempts')
  await withClient(db.url, (c) =>
    c.query(`create table items (id int primary key);
      create table spare (id int);
      create table spare2 (id int);
      create function wipe_fn() returns int language plpgsql as $$ begin delete from items; return 1; end $$;
      create function add_item(n int) returns int language plpgsql as $$ begin insert into items values (n); return n; end $$;
      create function count_fn() returns int language sql stable as $$ select count(*)::int from items $$;
      create sequence seq;
      create procedure wipe_items() language plpgsql as $$ begin delete from items; end $$`),
  )
  const fill = () => withClient(db.url, (c) => c.query('insert into items select generate_series(1, 5)'))
  const count = () => withClient(db.url, (c) => c.query('select count(*)::int as n from items')).then((r) => r.rows[0].n as number)
  bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-hidden-attempts-'))}`
  const t = await openPipelineTunnel(db, RULES, {top: `bucket: ${bucketUrl}`})
  const c = await t.client()
  // A prepared DELETE without WHERE, run by name later in the session.
  await fill()
  await c.query('prepare wipe as delete from items')
  await c.query('select 1')
  await c.query('execute wipe')
  expect(await count()).toBe(0)
  // Prepared and run in the same text.
  await fill()
  await c.query('prepare wipe2 as delete from items; execute wipe2')
  expect(await count()).toBe(0)
  // A name prepared again as something harmless is that, from then on.
  await c.query('deallocate wipe')
  await c.query('prepare wipe as select 1')
  await c.query('execute wipe')
  // Code dbgate does not see into.
  await c.query(`do $$ begin execute 'drop table spare'; end $$`)
  await fill()
  await c.query('call wipe_items()')
  expect(await count()).toBe(0)
  // A function whose body deletes every row; one that only reads, and a built-in that writes, beside it.
  await fill()
  await c.query('select wipe_fn()')
  expect(await count()).toBe(0)
  await c.query('select count_fn()')
  await c.query(`select nextval('seq')`)
  // The extended protocol: EXECUTE sent as a Parse.
  await fill()
  const raw = await t.raw()
  raw.send(serialize.query('prepare wipe3 as delete from items'))
  await raw.untilReady()
  raw.send(serialize.parse({text: 'execute wipe3'}), serialize.bind({}), serialize.execute({}), serialize.sync())
  await raw.untilReady()
  expect(await count()).toBe(0)
  // A statement a protocol Parse made, run by an SQL EXECUTE: its text is in the log only with the EXECUTE.
  await fill()
  raw.send(serialize.parse({name: 'wipe4', text: 'delete from items'}), serialize.sync())
  await raw.untilReady()
  raw.send(serialize.query('execute wipe4'))
  await raw.untilReady()
  expect(await count()).toBe(0)
  await t.close()
  // Under the built-in rules alone, a call of a volatile function of the user's is held for a reviewer (and refused: no one is signed in).
  await fill()
  const strict = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  const s = await strict.client()
  await expect(s.query('select wipe_fn()')).rejects.toMatchObject({code: '42501'})
  await expect(s.query('select add_item(100)')).rejects.toMatchObject({code: '42501'})
  await strict.close()

  auditorEnv({dataHome: true})
  const out = mkdtempSync(path.join(tmpdir(), 'dbgate-report-'))
  const since = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
  await captureCommand(() => ReportCommand.run(['--bucket', bucketUrl, '--since', since, '--out', out], {root}))
  attempts = (JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report).attempts
}, 120_000)
afterAll(() => {
  process.env = savedEnv
})

const listed = (sql: string) => attempts.filter((a) => a.sql === sql)

describe('dbgate report attempts', () => {
  it('list an EXECUTE as the destructive statement it ran, in either protocol, in the text that prepared it, and made by a protocol Parse', () => {
    for (const sql of ['execute wipe', 'execute wipe3', 'execute wipe4']) {
      expect(listed(sql).map((a) => [a.risk, a.what, a.outcome]), sql).toContainEqual(['destructive', 'DELETE without WHERE', 'ok'])
    }
    expect(listed('prepare wipe2 as delete from items; execute wipe2').map((a) => a.risk)).toEqual(['destructive'])
  })

  it('do not list an EXECUTE of a name prepared again as something harmless', () => {
    // Two texts read `execute wipe`: the first ran the DELETE, the second `select 1`.
    expect(listed('execute wipe')).toHaveLength(1)
  })

  it('list a call of a user function the guardrails judged by a body that writes, and not one that reads', () => {
    // Allowed by a target's own rule, and refused under the built-in rules, which hold it for a reviewer.
    expect(listed('select wipe_fn()').map((a) => [a.risk, a.what, a.decision])).toEqual([
      ['privileged', 'calls code the guardrails judged as write', 'allow'],
      ['privileged', 'calls code the guardrails judged as write', 'deny'],
    ])
    expect(listed('select add_item($1)').map((a) => [a.risk, a.ruleId])).toEqual([['privileged', 'default.volatile-function']])
    expect(listed('select count_fn()')).toEqual([])
    expect(listed("select nextval($1)")).toEqual([])
  })

  it('list code the parser cannot see into: a DO block and a CALL', () => {
    expect(listed('do $1').map((a) => a.risk)).toEqual(['privileged'])
    expect(listed('call wipe_items()').map((a) => a.risk)).toEqual(['privileged'])
  })
})

describe('sessions search --table', () => {
  it('finds an EXECUTE by the table the statement it ran touched, in either protocol', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucketUrl, '--table', 'items', '--json'], {root}))
    const found = (JSON.parse(r.stdout) as {matches: {sql: string}[]}).matches.map((m) => m.sql)
    for (const sql of ['execute wipe', 'execute wipe3', 'prepare wipe2 as delete from items; execute wipe2']) expect(found, sql).toContain(sql)
    // `execute wipe` once it ran `select 1` touched no table.
    expect(found.filter((sql) => sql === 'execute wipe')).toHaveLength(1)
  })
})
