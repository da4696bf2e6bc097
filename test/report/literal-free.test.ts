/**
 * `dbgate report` shows statements normalized, "literals replaced by $1, $2, …", because an
 * engineer's literals can be personal data and a report travels further than the log. libpg_query's
 * normalized text replaces only the constants it normalizes: comments stay, and so do the literals
 * of PREPARE bodies, COPY … PROGRAM, ALTER SYSTEM, view and default definitions. Each statement here
 * runs through the real tunnel, is recorded with its literal (the log is the evidence), and must
 * reach report.json, report.html and report.md without it.
 */
import {mkdtempSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {auditorEnv} from '../audit/helpers.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import ReportCommand from '../../src/commands/report.js'
import type {Report} from '../../src/report/model.js'
import {captureCommand} from '../helpers/capture.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'

const root = path.join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

/** Each carries personal data or a secret where normalizing leaves it, in a statement the report lists. */
const STATEMENTS: {name: string; sql: string; secret: string}[] = [
  {name: 'a line comment', sql: 'delete from customers -- jane.doe@example.com asked to be forgotten', secret: 'jane.doe@example.com'},
  {name: 'a block comment', sql: 'drop table customers /* for Jane Roe, 555-867-5309 */', secret: 'Jane Roe'},
  {name: 'a PREPARE body', sql: "prepare wipe as update customers set note = 'Card 4111 1111 1111 1111 on file'", secret: '4111 1111'},
  {name: 'COPY to a program', sql: "copy customers to program 'mail -s dump ops+pii@example.com'", secret: 'ops+pii@example.com'},
  {name: 'ALTER SYSTEM', sql: "alter system set log_line_prefix = 'hunter2-prod-password'", secret: 'hunter2-prod-password'},
  {name: 'a dollar-quoted PREPARE body', sql: 'prepare wipe2 as delete from customers where $q$x$q$ = $q$Mallory Smith$q$ or true', secret: 'Mallory Smith'},
]

let report: Report
let html: string
let md: string
let recorded: StatementData[]

beforeAll(async () => {
  const db = await createTestDatabase('literal_free')
  await withClient(db.url, (c) => c.query('create table customers (id int primary key, email text, note text)'))
  const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-literal-free-'))}`
  const t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  const c = await t.client()
  // The default guardrails refuse or hold most of these; refused or not, each is recorded and listed.
  for (const s of STATEMENTS) await c.query(s.sql).catch(() => undefined)
  await c.query("update public.customers set note = note || 'Jane Q. Public' where customers.id >= 0 or true").catch(() => undefined)
  await t.close()
  auditorEnv({dataHome: true})
  const reader = new SessionReader(openBucket(bucketUrl))
  const [session] = await reader.list()
  recorded = (await reader.loadSummary(session!)).events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
  const out = mkdtempSync(path.join(tmpdir(), 'dbgate-report-'))
  const since = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
  await captureCommand(() => ReportCommand.run(['--bucket', bucketUrl, '--since', since, '--out', out], {root}))
  report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report
  html = await readFile(path.join(out, 'report.html'), 'utf8')
  md = await readFile(path.join(out, 'report.md'), 'utf8')
}, 120_000)
afterAll(() => {
  process.env = savedEnv
})

describe('statements in dbgate report', () => {
  for (const s of STATEMENTS) {
    it(`hold no literal or comment left by normalizing: ${s.name}`, () => {
      // The log keeps the text as sent: the report is where it must not travel.
      expect(recorded.find((r) => r.sql === s.sql)).toBeDefined()
      const listed = report.attempts.filter((a) => a.sql !== undefined && (a.sql.includes('customers') || /copy|alter system/i.test(a.sql)))
      expect(listed.length).toBeGreaterThan(0)
      // Booleans, so a failure does not print the whole report.
      expect(JSON.stringify(report).includes(s.secret), 'report.json').toBe(false)
      expect(html.includes(s.secret), 'report.html').toBe(false)
      expect(md.includes(s.secret), 'report.md').toBe(false)
    })
  }

  it('still shows what each statement did: its words, names and parameters', () => {
    const shown = report.attempts.map((a) => a.sql)
    expect(shown).toContainEqual(expect.stringMatching(/^delete from customers\s*$/))
    expect(shown).toContainEqual(expect.stringMatching(/^drop table customers\s*$/))
    expect(shown).toContainEqual(expect.stringMatching(/^prepare wipe as update customers set note = /))
    expect(shown).toContainEqual(expect.stringMatching(/^copy customers to program /))
    // Qualified names and operators are the statement's, not values: they stay.
    expect(shown).toContain('update public.customers set note = note || $1 where customers.id >= $2 or $3')
  })
})
