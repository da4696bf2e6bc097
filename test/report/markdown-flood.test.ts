import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {produceReport} from '../../src/report/produce.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {ada, bob, recordFixture, type FixtureSession, type FixtureStatement} from './fixture.js'

/**
 * report.md, the version pasted into tickets, lists at most 50 attempts and 50 approvals, in time
 * order. A client that made fifty refused attempts (a GRANT, a SET ROLE: each a privileged attempt)
 * before its DROP, or fifty approval requests it withdrew before the one a reviewer granted, pushed
 * what ran below the cut: "…and 1 more in report.json". Those that ran come first now.
 */
const since = new Date('2026-10-01T00:00:00Z')
const until = new Date('2026-10-31T23:59:59.999Z')
const at = (minute: number) => new Date(Date.UTC(2026, 9, 7, 10, minute))

const refused = (i: number): FixtureStatement => ({sql: `GRANT SELECT ON customers TO role_${i}`, at: at(i), class: 'privilege', decision: 'deny', outcome: 'rejected'})
const withdrawn = (i: number): FixtureStatement => ({
  sql: `ALTER TABLE t${i} ADD COLUMN c int`,
  at: at(i),
  class: 'ddl',
  decision: 'approval_withdrawn',
  outcome: 'rejected',
  ruleId: 'default.ddl-approval',
  approval: {id: `ap-w-${i}`, requestedAt: at(i), outcome: 'withdrawn', decidedAt: at(i)},
})

const allowedGrant = (i: number): FixtureStatement => ({sql: `GRANT SELECT ON orders TO reporting_${i}`, at: at(i), class: 'privilege', decision: 'allow'})

const SESSIONS: FixtureSession[] = [
  // Allowed privileged statements (a rule lets GRANTs through), then a DROP nobody approved.
  {id: 'allowed', identity: bob, target: 'prod', start: at(0), ending: 'ended', statements: [...Array.from({length: 5}, (_, i) => allowedGrant(i)), {sql: 'DROP TABLE invoices', at: at(30), class: 'ddl', decision: 'allow'}]},
  {id: 'flood', identity: ada, target: 'prod', start: at(0), ending: 'ended', statements: [
    ...Array.from({length: 55}, (_, i) => refused(i)),
    ...Array.from({length: 55}, (_, i) => withdrawn(i)),
    {sql: 'DROP TABLE customers', at: at(58), class: 'ddl', decision: 'approved', ruleId: 'default.ddl-approval', approval: {id: 'ap-granted', requestedAt: at(57), outcome: 'approved', reviewer: bob, reason: 'ok', decidedAt: at(58)}},
  ]},
]

describe('report.md when a client floods it', () => {
  let md: string

  beforeAll(async () => {
    const bucket = new FileBucket(await tempDir('dbgate-flood-bucket-'))
    await recordFixture(SESSIONS, bucket, tempDir)
    const out = await tempDir('dbgate-flood-out-')
    await produceReport({bucket, cacheDir: await tempDir('dbgate-flood-cache-'), since, until, frameworks: ['soc2'], outDir: out, generator: 'dbgate test', now: new Date('2026-11-01T08:00:00Z')})
    md = await readFile(join(out, 'report.md'), 'utf8')
  })
  afterAll(removeTempDirs)

  const section = (title: string) => md.slice(md.indexOf(`## ${title}`), md.indexOf('\n## ', md.indexOf(`## ${title}`) + 3))

  it('lists the DROP that ran before the refused attempts', () => {
    const attempts = section('Privileged and destructive attempts')
    expect(attempts).toContain('`DROP TABLE customers`')
    expect(attempts.indexOf('DROP TABLE customers')).toBeLessThan(attempts.indexOf('GRANT SELECT'))
    expect(attempts).toMatch(/…and \d+ more in report\.json/)
  })

  it('names the DROP that ran without approval among the first exceptions of CC6.3', () => {
    const row = md.split('\n').find((l) => l.startsWith('| CC6.3'))!
    expect(row).toContain('DROP TABLE ran without approval: bob@example.com, session allowed')
  })

  it('lists the granted approval before the withdrawn ones', () => {
    const approvals = section('Approvals')
    expect(approvals).toContain('DROP TABLE customers')
    expect(approvals.indexOf('DROP TABLE customers')).toBeLessThan(approvals.indexOf('ALTER TABLE'))
  })
})
