import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isDenied} from '../../src/audit/events.js'
import {FileBucket} from '../../src/bucket/index.js'
import {daysBetween, dayRanges} from '../../src/report/build.js'
import {FRAMEWORKS, type Report} from '../../src/report/model.js'
import {produceReport} from '../../src/report/produce.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {TestS3} from '../audit/s3rver.js'
import {october, recordFixture, type FixtureSession} from './fixture.js'

const since = new Date('2026-10-01T00:00:00Z')
const until = new Date('2026-10-31T23:59:59.999Z')
const fixture = october()
let fileReport: Report
let fileDir: string
let s3: TestS3 | undefined

async function reportOf(bucket: FileBucket | ReturnType<TestS3['bucket']>, frameworks = [...FRAMEWORKS]): Promise<{report: Report; dir: string}> {
  const dir = await tempDir('dbgate-report-out-')
  const {report} = await produceReport({bucket, cacheDir: await tempDir('dbgate-report-cache-'), since, until, frameworks, outDir: dir, generator: 'dbgate test', now: new Date('2026-11-01T08:00:00Z')})
  return {report, dir}
}

/** The figures a report must show, worked out from the fixture's own description. */
function expected(sessions: readonly FixtureSession[]) {
  const statements = sessions.flatMap((s) => s.statements.map((st) => ({...st, session: s})))
  const approvals = statements.flatMap((st) => (st.approval ? [st.approval] : []))
  const days = daysBetween(since, until)
  return {
    sessions: sessions.length,
    statements: statements.length,
    denied: statements.filter((st) => isDenied(st.decision)).length,
    syntaxErrors: statements.filter((st) => st.decision === 'syntax_error').length,
    maskedValues: statements.reduce((n, st) => n + (st.maskedValues ?? 0), 0),
    approvalsRequested: approvals.length,
    approved: approvals.filter((a) => a.outcome === 'approved').length,
    approvalsDenied: approvals.filter((a) => a.outcome === 'denied').length,
    approvalsExpired: approvals.filter((a) => a.outcome === 'expired').length,
    identities: new Set(sessions.map((s) => s.identity.subject)).size,
    daily: days.map((day) => ({
      day,
      sessions: sessions.filter((s) => s.start.toISOString().startsWith(day)).length,
      statements: statements.filter((st) => st.at.toISOString().startsWith(day)).length,
      denied: statements.filter((st) => st.at.toISOString().startsWith(day) && isDenied(st.decision)).length,
      approved: approvals.filter((a) => a.outcome === 'approved' && a.decidedAt.toISOString().startsWith(day)).length,
    })),
    emptyDays: days.filter((day) => !sessions.some((s) => s.start.toISOString().startsWith(day))),
  }
}

beforeAll(async () => {
  const bucket = new FileBucket(await tempDir('dbgate-report-bucket-'))
  await recordFixture(fixture, bucket, tempDir)
  ;({report: fileReport, dir: fileDir} = await reportOf(bucket))
})

afterAll(async () => {
  await s3?.dispose()
  await removeTempDirs()
})

describe('dbgate report figures', () => {
  it('counts identities, sessions, statements, denials, approvals and masked values as the sessions hold them', () => {
    const want = expected(fixture)
    expect(fileReport.summary).toMatchObject({
      sessions: want.sessions,
      statements: want.statements,
      denied: want.denied,
      syntaxErrors: want.syntaxErrors,
      maskedValues: want.maskedValues,
      approvalsRequested: want.approvalsRequested,
      approved: want.approved,
      approvalsDenied: want.approvalsDenied,
      approvalsExpired: want.approvalsExpired,
      identities: want.identities,
      humanIdentities: 1,
      serviceIdentities: 1,
      unverifiedIdentities: 1,
      forgedDecisionsRefused: 1,
      interruptedSessions: 1,
      inProgressSessions: 1,
      logsFailingVerification: 1,
    })
    expect(fileReport.daily).toEqual(want.daily)
    // Typos are not denials: counted apart, and among the statements that failed.
    expect(want.syntaxErrors).toBe(1)
    expect(fileReport.summary.errors).toBeGreaterThanOrEqual(1)
  })

  it('states the period, the sources and every gap', () => {
    expect(fileReport.period).toEqual({since: since.toISOString(), until: until.toISOString(), days: 31})
    expect(fileReport.sources.sessionLogs).toBe(fixture.length)
    expect(fileReport.sources.keys).toHaveLength(3)
    const byKind = Object.fromEntries(fileReport.gaps.map((g) => [g.kind, g]))
    expect(byKind['no-sessions-on-day']!.days).toEqual(expected(fixture).emptyDays)
    expect(byKind['no-sessions-on-day']!.message).toContain('2026-10-10 to 2026-10-11, 2026-10-31')
    expect(byKind['verification-failed']!.sessions).toEqual(['ada-tampered'])
    expect(byKind['interrupted']!.sessions).toEqual(['ada-cut'])
    expect(byKind['in-progress']!.sessions).toEqual(['ada-live'])
    expect(byKind['unverified-identity']!.sessions).toEqual(['root-local'])
    const tampered = fileReport.integrity.find((i) => i.sessionId === 'ada-tampered')!
    expect(tampered.ok).toBe(false)
    expect(tampered.problems.map((p) => p.code)).toContain('HASH_MISMATCH')
    expect(fileReport.integrity.filter((i) => i.result === 'verified')).toHaveLength(fixture.length - 2)
    expect(fileReport.integrity.find((i) => i.sessionId === 'ada-live')).toMatchObject({result: 'unfinished', signedThroughSeq: 1, lines: 2})
  })

  it('lists every privileged and destructive attempt with its outcome, read with the guardrails\' own parser', () => {
    expect(fileReport.attempts.map((a) => [a.sessionId, a.risk, a.what, a.decision])).toEqual([
      ['ada-drop', 'destructive', 'DROP TABLE', 'deny'],
      ['ada-drop', 'destructive', 'DELETE without WHERE', 'deny'],
      ['ada-grant', 'privileged', 'GRANT TABLE', 'deny'],
      ['ada-grant', 'destructive', 'TRUNCATE', 'allow'],
      ['ada-ddl', 'destructive', 'DROP INDEX', 'approval_denied'],
    ])
    expect(fileReport.summary).toMatchObject({destructiveAttempts: 4, privilegedAttempts: 1})
  })

  it('shows statements normalized, so literals typed by an engineer stay out of the report', () => {
    const del = fileReport.attempts.find((a) => a.what === 'DELETE without WHERE')!
    expect(del.sql).toBe('DELETE FROM orders')
    const all = JSON.stringify(fileReport)
    expect(all).not.toContain('<script>alert(1)</script>')
    expect(fileReport.approvals[0]!.sql).toBe('ALTER TABLE customers ADD COLUMN loyalty_tier text')
  })

  it('lists every approval with requester, reviewer, reason and how it ended', () => {
    expect(fileReport.approvals.map((a) => [a.approvalId, a.requester, a.outcome, a.reviewer, a.decisionReason, a.statementOutcome, a.forgedDecisionsRefused])).toEqual([
      ['ap-1', 'ada@example.com', 'approved', 'bob@example.com', 'ticket OPS-42, reviewed migration', 'ok', 1],
      ['ap-2', 'ada@example.com', 'denied', 'bob@example.com', 'needed by the nightly report', 'rejected', 0],
      ['ap-3', 'ada@example.com', 'expired', undefined, undefined, 'rejected', 0],
    ])
  })

  it('separates service from human identities', () => {
    expect(fileReport.identities.map((i) => [i.identity, i.kind, i.issuer === 'unverified', i.sessions])).toEqual([
      ['ada@example.com', 'human', false, fixture.filter((s) => s.identity.subject === 'u-ada').length],
      ['ci-deployer@clients.example.com', 'service', false, 4],
      ['local:root', 'human', true, 1],
    ])
  })

  it('maps evidence to every control of the three frameworks, with exceptions and supporting sessions', () => {
    expect(fileReport.controls.map((c) => c.id)).toEqual(['CC6.1', 'CC6.2', 'CC6.3', 'CC7.2', 'CC8.1', 'A.5.15', 'A.5.18', 'A.8.2', 'A.8.11', 'A.8.15', 'A.8.16', 'AC-2', 'AC-3', 'AC-6', 'AU-2', 'AU-3', 'AU-6', 'AU-9', 'AU-12'])
    const c = (id: string) => fileReport.controls.find((x) => x.id === id)!
    expect(c('AU-9')).toMatchObject({status: 'exceptions', sessions: ['ada-tampered']})
    expect(c('AU-9').figures).toContainEqual({label: 'logs failing verification', value: 1})
    expect(c('CC6.3').exceptions).toEqual(['TRUNCATE ran without approval: ada@example.com, session ada-grant (#3)', '1 decision that failed verification was refused'])
    expect(c('CC6.2').exceptions).toEqual(['1 session ran without a verified identity'])
    expect(c('CC6.1')).toMatchObject({status: 'evidence', sessions: ['ada-drop', 'ada-grant', 'ada-ddl', 'ada-expired']})
    expect(c('A.8.11').figures).toContainEqual({label: 'values masked', value: expected(fixture).maskedValues})
    expect(c('CC8.1').sessions).toEqual(['ada-ddl', 'ada-expired'])
  })

  it('asks for one framework and gets only its controls', async () => {
    const bucket = new FileBucket(await tempDir('dbgate-report-bucket-'))
    await recordFixture(fixture.slice(0, 2), bucket, tempDir)
    const {report} = await reportOf(bucket, ['soc2'])
    expect(report.controls.map((c) => c.id)).toEqual(['CC6.1', 'CC6.2', 'CC6.3', 'CC7.2', 'CC8.1'])
  })

  it('writes report.json, report.md and a self-contained report.html', async () => {
    const json = JSON.parse(await readFile(join(fileDir, 'report.json'), 'utf8')) as Report
    expect(json.summary).toEqual(fileReport.summary)
    const md = await readFile(join(fileDir, 'report.md'), 'utf8')
    expect(md).toContain(`| statements denied | ${fileReport.summary.denied} |`)
    expect(md).toContain('| CC6.1 Logical access security | evidence |')
    const html = await readFile(join(fileDir, 'report.html'), 'utf8')
    expect(html).not.toMatch(/<script|<link|src=|url\(/i)
    expect(html).toContain(`default-src 'none'`)
  })

  it('gives the same figures from an S3 bucket as from a directory', async () => {
    s3 = await TestS3.start('evidence')
    const bucket = s3.bucket('dbgate')
    await recordFixture(fixture, bucket, tempDir)
    const {report} = await reportOf(bucket)
    const comparable = (r: Report) => ({...r, sources: {...r.sources, bucket: '', keys: r.sources.keys.length}, integrity: r.integrity.map((i) => ({...i, keyIds: i.keyIds.length})), controls: r.controls.map((c) => ({...c, figures: c.figures.filter((f) => f.label !== 'policy versions in force')}))})
    expect(report.sources.bucket).toBe('s3://evidence/dbgate/')
    expect(comparable(report)).toEqual(comparable(fileReport))
  })
})

describe('day ranges', () => {
  it('folds consecutive days into ranges', () => {
    expect(dayRanges(['2026-10-01', '2026-10-02', '2026-10-03', '2026-10-05', '2026-10-31'])).toEqual(['2026-10-01 to 2026-10-03', '2026-10-05', '2026-10-31'])
  })
})
