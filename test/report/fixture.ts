/**
 * A month of generated sessions, recorded with the real recorder (hash chain, Ed25519 signatures),
 * shipped with the real shipper into any bucket. Each session is described as plain data, so a test
 * can compute the figures it expects from the description, independently of the report code.
 */
import {unlink} from 'node:fs/promises'
import {gunzipSync, gzipSync} from 'node:zlib'
import type {RecordedDecision} from '../../src/audit/events.js'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import type {Bucket} from '../../src/bucket/index.js'
import type {Identity} from '../../src/identity/types.js'
import type {StatementEvent} from '../../src/proxy/seam.js'

export interface FixtureApproval {
  id: string
  requestedAt: Date
  outcome: 'approved' | 'denied' | 'expired' | 'withdrawn'
  reviewer?: Identity
  reason?: string
  decidedAt: Date
  /** Decisions that failed verification before the real one arrived. */
  forged?: number
}

export interface FixtureStatement {
  sql: string
  at: Date
  class: string
  decision: RecordedDecision
  ruleId?: string
  rows?: number
  tables?: string[]
  maskedColumns?: string[]
  maskedValues?: number
  outcome?: StatementEvent['outcome']
  approval?: FixtureApproval
}

export interface FixtureSession {
  id: string
  identity: Identity
  target: string
  start: Date
  statements: FixtureStatement[]
  ending: 'ended' | 'interrupted' | 'in-progress'
  /** Edit a shipped line afterwards, so the log fails verification. */
  tamper?: boolean
}

const person = (subject: string, email: string, name: string, groups: string[], kind: Identity['kind'] = 'human'): Identity => ({
  subject,
  email,
  name,
  groups,
  issuer: 'https://login.example.com',
  kind,
  tokenHash: subject.padEnd(64, '0').slice(0, 64),
  tokenId: `jti-${subject}`,
  expiresAt: new Date('2030-01-01T00:00:00Z'),
})

export const ada = person('u-ada', 'ada@example.com', 'Ada Engineer', ['engineering'])
export const bob = person('u-bob', 'bob@example.com', 'Bob Reviewer', ['dba'])
export const ci = person('svc-ci', 'ci-deployer@clients.example.com', 'CI deployer', ['ci'], 'service')
/** What `dbgate connect` records when the target has no identity section (see unverifiedIdentity). */
export const nobody: Identity = {subject: 'local:root', name: 'root', groups: [], issuer: 'unverified', kind: 'human', tokenHash: '', expiresAt: new Date(8.64e15)}

const at = (day: number, hh: number, mm = 0, ss = 0) => new Date(Date.UTC(2026, 9, day, hh, mm, ss))

/**
 * October 2026 on two targets: reads, masked reads, denied destructive statements, approvals that
 * end every possible way (one with a forged decision refused first), a service identity, a session
 * without a verified identity, one interrupted, one still in progress, one tampered with, and no
 * logs at all on 10-11 October.
 */
export function october(): FixtureSession[] {
  const s: FixtureSession[] = []
  for (let day = 1; day <= 30; day++) {
    if (day === 10 || day === 11) continue
    s.push({
      id: `ada-${String(day).padStart(2, '0')}`,
      identity: ada,
      target: 'prod',
      start: at(day, 9),
      ending: 'ended',
      statements: [
        {sql: 'SELECT id, email, name FROM customers WHERE id < 10', at: at(day, 9, 0, 5), class: 'read', decision: 'allow', rows: 9, tables: ['customers'], maskedColumns: ['email: email (catalog)'], maskedValues: 9},
        {sql: `SELECT count(*) FROM orders WHERE placed_at > now() - interval '${day} days'`, at: at(day, 9, 1), class: 'read', decision: 'allow', rows: 1, tables: ['orders']},
      ],
    })
  }
  s.push({
    id: 'ada-drop',
    identity: ada,
    target: 'prod',
    start: at(3, 14),
    ending: 'ended',
    statements: [
      {sql: 'DROP TABLE payments', at: at(3, 14, 0, 10), class: 'ddl', decision: 'deny', ruleId: 'default.no-drop', rows: 0, tables: ['payments'], outcome: 'rejected'},
      {sql: 'DELETE FROM orders', at: at(3, 14, 1), class: 'write', decision: 'deny', ruleId: 'default.no-unfiltered-delete', rows: 0, tables: ['orders'], outcome: 'rejected'},
      {sql: "DELETE FROM orders WHERE id = 42 AND note = '<script>alert(1)</script>'", at: at(3, 14, 2), class: 'write', decision: 'allow', rows: 1, tables: ['orders']},
      // A typo: answered with the parser's 42601 and never sent; not a denial.
      {sql: 'SELEC * FROM orders', at: at(3, 14, 3), class: 'unknown', decision: 'syntax_error', rows: 0, tables: [], outcome: 'rejected'},
    ],
  })
  s.push({
    id: 'ada-grant',
    identity: ada,
    target: 'staging',
    start: at(7, 16),
    ending: 'ended',
    statements: [
      {sql: 'GRANT SELECT ON payments TO analyst', at: at(7, 16, 0, 3), class: 'privilege', decision: 'deny', ruleId: 'default.no-privilege', rows: 0, tables: ['payments'], outcome: 'rejected'},
      {sql: 'TRUNCATE audit_scratch', at: at(7, 16, 1), class: 'ddl', decision: 'allow', rows: 0, tables: ['audit_scratch']},
    ],
  })
  const approval = (id: string, day: number, outcome: FixtureApproval['outcome'], reason?: string, forged?: number): FixtureApproval => ({
    id,
    requestedAt: at(day, 11),
    outcome,
    reviewer: outcome === 'approved' || outcome === 'denied' ? bob : undefined,
    reason,
    decidedAt: at(day, 11, 4),
    forged,
  })
  s.push({
    id: 'ada-ddl',
    identity: ada,
    target: 'prod',
    start: at(14, 10, 58),
    ending: 'ended',
    statements: [
      {sql: 'ALTER TABLE customers ADD COLUMN loyalty_tier text', at: at(14, 11, 4, 1), class: 'ddl', decision: 'approved', ruleId: 'prod.ddl-review', rows: 0, tables: ['customers'], approval: approval('ap-1', 14, 'approved', 'ticket OPS-42, reviewed migration', 1)},
      {sql: 'DROP INDEX orders_placed_at_idx', at: at(14, 11, 9), class: 'ddl', decision: 'approval_denied', ruleId: 'prod.ddl-review', rows: 0, tables: [], outcome: 'rejected', approval: {...approval('ap-2', 14, 'denied', 'needed by the nightly report'), requestedAt: at(14, 11, 5), decidedAt: at(14, 11, 8)}},
    ],
  })
  s.push({
    id: 'ada-expired',
    identity: ada,
    target: 'prod',
    start: at(21, 10, 59),
    ending: 'ended',
    statements: [{sql: 'CREATE INDEX CONCURRENTLY ON orders (customer_id)', at: at(21, 11, 15), class: 'ddl', decision: 'approval_timeout', ruleId: 'prod.ddl-review', rows: 0, tables: ['orders'], outcome: 'rejected', approval: {...approval('ap-3', 21, 'expired'), decidedAt: at(21, 11, 15)}}],
  })
  for (const day of [5, 12, 19, 26]) {
    s.push({
      id: `ci-${day}`,
      identity: ci,
      target: 'prod',
      start: at(day, 2),
      ending: 'ended',
      statements: [
        {sql: 'BEGIN', at: at(day, 2, 0, 1), class: 'transaction', decision: 'allow', rows: 0},
        {sql: 'INSERT INTO schema_migrations (version) VALUES (20261001)', at: at(day, 2, 0, 2), class: 'write', decision: 'allow', rows: 1, tables: ['schema_migrations']},
        {sql: 'COMMIT', at: at(day, 2, 0, 3), class: 'transaction', decision: 'allow', rows: 0},
      ],
    })
  }
  s.push({id: 'root-local', identity: nobody, target: 'staging', start: at(8, 20), ending: 'ended', statements: [{sql: 'SELECT 1', at: at(8, 20, 0, 1), class: 'read', decision: 'allow', rows: 1}]})
  s.push({id: 'ada-cut', identity: ada, target: 'prod', start: at(17, 15), ending: 'interrupted', statements: [{sql: 'SELECT * FROM payments LIMIT 5', at: at(17, 15, 0, 9), class: 'read', decision: 'allow', rows: 5, tables: ['payments'], maskedColumns: ['card: card (catalog)'], maskedValues: 5}]})
  s.push({id: 'ada-live', identity: ada, target: 'prod', start: at(30, 17), ending: 'in-progress', statements: [{sql: 'SELECT now()', at: at(30, 17, 0, 2), class: 'read', decision: 'allow', rows: 1}]})
  s.push({id: 'ada-tampered', identity: ada, target: 'prod', start: at(24, 13), ending: 'ended', tamper: true, statements: [{sql: 'SELECT id FROM customers', at: at(24, 13, 0, 4), class: 'read', decision: 'allow', rows: 120, tables: ['customers']}]})
  return s
}

function statementEvent(sessionId: string, st: FixtureStatement): StatementEvent {
  const outcome = st.outcome ?? 'ok'
  return {
    sessionId,
    connectionId: 1,
    protocol: 'simple',
    sql: st.sql,
    verdict: outcome === 'rejected' ? {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'dbgate: denied'}} : {action: 'allow'},
    startedAt: st.at,
    durationMs: 2,
    commandTags: outcome === 'ok' ? ['OK'] : [],
    rows: st.rows ?? 0,
    outcome,
  }
}

/**
 * Records and ships `sessions` into `bucket`, each identity with its own installation key (published
 * and bound to it, as `dbgate connect` does), then applies the tampering they ask for.
 */
export async function recordFixture(sessions: readonly FixtureSession[], bucket: Bucket, makeDir: (prefix: string) => Promise<string>): Promise<void> {
  const bySubject = new Map<string, FixtureSession[]>()
  for (const f of sessions) bySubject.set(f.identity.subject, [...(bySubject.get(f.identity.subject) ?? []), f])
  for (const group of bySubject.values()) {
    const key = await loadOrCreateInstallationKey(await makeDir('dbgate-report-key-'))
    await publishKey(bucket, group[0]!.identity, key)
    await recordAndShip(group, bucket, key, await makeDir('dbgate-report-spool-'))
  }
}

async function recordAndShip(sessions: readonly FixtureSession[], bucket: Bucket, key: InstallationKey, spoolDir: string): Promise<void> {
  let clock = new Date(0)
  const rec = await Recorder.open({signer: key, dbgateVersion: 'test', spoolDir, checkpointEvery: 0, now: () => clock})
  const live: Promise<void>[] = []
  for (const f of sessions) {
    clock = f.start
    const s = rec.startSession({sessionId: f.id, identity: f.identity, target: f.target, database: 'shop', dbUser: 'app', client: {application: 'psql', address: '127.0.0.1:50000'}, startedAt: f.start, policy: {version: 'v3 (published)', hash: 'f'.repeat(64)}})
    for (const st of f.statements) {
      const a = st.approval
      if (a) {
        clock = a.requestedAt
        s.recordEvent('approval.requested', {approvalId: a.id, class: st.class, ruleId: st.ruleId, reason: 'schema changes on prod need a DBA', reviewers: ['group:dba'], expiresAt: a.decidedAt.toISOString()})
        for (let i = 0; i < (a.forged ?? 0); i++) s.recordEvent('approval.rejected_decision', {approvalId: a.id, claimedReviewer: {email: 'bob@example.com'}, action: 'approve', problem: 'the reviewer token signature does not verify'})
        clock = a.decidedAt
        if (a.outcome === 'approved' || a.outcome === 'denied') {
          s.recordEvent('approval.decided', {approvalId: a.id, decision: a.outcome, reviewer: {subject: a.reviewer!.subject, email: a.reviewer!.email, name: a.reviewer!.name}, ...(a.reason ? {reason: a.reason} : {}), decidedAt: a.decidedAt.toISOString()})
        } else if (a.outcome === 'expired') s.recordEvent('approval.expired', {approvalId: a.id, expiresAt: a.decidedAt.toISOString()})
        else s.recordEvent('approval.withdrawn', {approvalId: a.id, reason: 'the client cancelled the statement or disconnected'})
      }
      clock = st.at
      s.statement(statementEvent(f.id, st), {
        class: st.class,
        decision: st.decision,
        ruleId: st.ruleId,
        ...(a ? {approvalId: a.id} : {}),
        tables: st.tables ?? [],
        maskedColumns: st.maskedColumns ?? [],
        ...(st.maskedValues !== undefined ? {maskedValues: st.maskedValues} : {}),
      })
    }
    clock = new Date(f.start.getTime() + 30 * 60_000)
    if (f.ending === 'ended') live.push(s.end('client-closed'))
    else {
      await s.flush()
      // Without its lock the log looks like a dead writer's, which the shipper seals as interrupted.
      if (f.ending === 'interrupted') await unlink(`${spoolDir}/${f.id}.lock`)
    }
  }
  await Promise.all(live)
  const shipped = await shipPending({bucket, signer: key, spoolDir, now: () => clock})
  if (shipped.failed.length) throw new Error(`fixture shipping failed: ${JSON.stringify(shipped.failed)}`)
  for (const f of sessions.filter((x) => x.tamper)) {
    const key = shipped.shipped.find((x) => x.sessionId === f.id)!.key!
    const text = gunzipSync((await bucket.get(key)).body).toString('utf8')
    await bucket.put(key, gzipSync(text.replace(/"rows":(\d+)/, (_m, n: string) => `"rows":${Number(n) - 100}`)))
  }
}
