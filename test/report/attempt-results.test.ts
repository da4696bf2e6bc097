/**
 * The report's attempts table said who tried what and the policy's decision, but not what the
 * server did with it: a DROP TABLE that failed, and a DELETE the server skipped after an error in
 * its pipeline, read "allow" like ones that ran. Nor did it say which lines no signature covers: a
 * log whose end was cut off and a forged `drop table payroll` chained on after its last signature
 * (which anyone who can write to the bucket can do, with no key) verifies as merely unfinished, and
 * its forged line was listed as the person's attempt like any other. report.json, report.md and
 * report.html now give each attempt its result, and mark an unsigned line.
 */
import {mkdtempSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {gunzipSync, gzipSync} from 'node:zlib'
import {serialize} from 'pg-protocol'
import {auditorEnv} from '../audit/helpers.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sealEvent, sha256hex} from '../../src/audit/chain.js'
import {parseEventLine} from '../../src/audit/events.js'
import {openBucket} from '../../src/bucket/index.js'
import ReportCommand from '../../src/commands/report.js'
import type {Attempt, Report} from '../../src/report/model.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'

const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
const RULES = ['rules:', ...['write', 'ddl'].flatMap((c) => [`  - id: allow-${c}`, `    match: {class: ${c}}`, '    action: allow'])].join('\n')
let report: Report
let markdown: string
let html: string

beforeAll(async () => {
  const db = await createTestDatabase('attempt_results')
  await withClient(db.url, (c) => c.query('create table items (id int primary key); insert into items values (1), (2)'))
  const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-attempt-results-'))}`
  const t = await openPipelineTunnel(db, RULES, {top: `bucket: ${bucketUrl}`})
  const c = await t.client({application_name: 'ran-and-failed'})
  await expect(c.query('drop table no_such_table')).rejects.toMatchObject({code: '42P01'})
  await c.query('delete from items where true')
  await c.end()
  const raw = await t.raw()
  raw.send(...['select 1/0', 'drop table items'].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]), serialize.sync())
  await raw.untilReady()
  const victim = await t.client({application_name: 'to-be-forged'})
  await victim.query('select 1')
  await victim.end()
  await t.close()
  // The server kept items: the DROP after the error never ran.
  await withClient(db.url, async (pg) => expect((await pg.query(`select to_regclass('items') is not null as kept`)).rows).toEqual([{kept: true}]))

  // Someone with write access to the bucket and no key cuts the victim's end off and chains a statement on.
  const bucket = openBucket(bucketUrl)
  let forged = false
  for await (const o of bucket.list('sessions/')) {
    const lines = gunzipSync((await bucket.get(o.key)).body).toString('utf8').trimEnd().split('\n')
    if (!lines[0]!.includes('to-be-forged')) continue
    const kept = lines.slice(0, -1)
    const last = parseEventLine(kept.at(-1)!)
    const statement = parseEventLine(kept.find((l) => l.includes('"type":"statement"'))!)
    const data = {...(statement.data as Record<string, unknown>), sql: 'drop table payroll', normalized: 'drop table payroll', class: 'ddl', commandTags: ['DROP TABLE'], tables: ['payroll']}
    const chain = (type: string, payload: unknown) => {
      const prev = parseEventLine(kept.at(-1)!)
      kept.push(sealEvent({type, session: prev.session, seq: prev.seq + 1, ts: last.ts, prev: sha256hex(kept.at(-1)!), data: payload}))
    }
    // An approval nobody asked for and nobody gave, and the statement it let through.
    chain('approval.requested', {approvalId: 'apr-forged0001', class: 'ddl', ruleId: 'default.no-drop', reason: 'drops need a reviewer', reviewers: ['dba'], expiresAt: last.ts})
    chain('approval.decided', {approvalId: 'apr-forged0001', decision: 'approved', reviewer: {email: 'bob@example.com', subject: 'u-bob', groups: ['dba']}, reason: 'ok', decidedAt: last.ts})
    chain('statement', {...data, decision: 'approved', approvalId: 'apr-forged0001'})
    await bucket.put(o.key, gzipSync(kept.join('\n') + '\n'))
    forged = true
  }
  expect(forged).toBe(true)

  auditorEnv({dataHome: true})
  const out = mkdtempSync(path.join(tmpdir(), 'dbgate-report-'))
  const since = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
  await captureCommand(() => ReportCommand.run(['--bucket', bucketUrl, '--since', since, '--out', out], {root}))
  report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report
  markdown = await readFile(path.join(out, 'report.md'), 'utf8')
  html = await readFile(path.join(out, 'report.html'), 'utf8')
}, 120_000)
afterAll(() => {
  process.env = savedEnv
})

const attempt = (sql: string): Attempt => {
  const found = report.attempts.filter((a) => a.sql === sql)
  expect(found, sql).toHaveLength(1)
  return found[0]!
}
/** The row of the attempts table (Markdown) that shows `sql`. */
const mdRow = (sql: string) => markdown.split('\n').find((l) => l.startsWith('|') && l.includes(`\`${sql}\``)) ?? ''

describe('the attempts of dbgate report', () => {
  it('say a DROP that failed failed, and a DROP the server never ran did not run', () => {
    expect(attempt('drop table no_such_table')).toMatchObject({outcome: 'error', signed: true})
    expect(mdRow('drop table no_such_table')).toMatch(/\| allow \| FAILED \|/)
    expect(attempt('drop table items')).toMatchObject({outcome: 'aborted', signed: true})
    expect(mdRow('drop table items')).toMatch(/\| allow \| NOT RUN \(aborted/)
    expect(mdRow('delete from items where $1')).toMatch(/\| allow \| completed \|/)
  })

  it('mark a line no signature covers, in report.json, report.md and report.html', () => {
    expect(attempt('drop table payroll')).toMatchObject({signed: false, approvalId: 'apr-forged0001'})
    expect(mdRow('drop table payroll')).toMatch(/NOT SIGNED/)
    expect(html).toMatch(/drop table payroll<\/span><\/td><td>[^]*?NOT SIGNED/)
    for (const sql of ['drop table no_such_table', 'drop table items', 'delete from items where $1']) expect(mdRow(sql), sql).not.toMatch(/NOT SIGNED/)
  })

  it('mark an approval whose request or decision no signature covers', () => {
    expect(report.approvals).toEqual([expect.objectContaining({approvalId: 'apr-forged0001', outcome: 'approved', reviewer: 'bob@example.com', signed: false})])
    const row = markdown.split('\n').find((l) => l.startsWith('|') && l.includes('bob@example.com'))
    expect(row).toMatch(/approved · NOT SIGNED/)
    expect(html).toMatch(/approved · NOT SIGNED/)
  })
})
