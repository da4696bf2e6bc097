import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {SessionReader} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadKeyRing, loadOrCreateInstallationKey, publishKey} from '../../src/audit/signing.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {verifySession} from '../../src/audit/verify.js'
import type {StatementData} from '../../src/audit/events.js'
import type {StatementVerdict} from '../../src/proxy/seam.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'
import {TestS3} from './s3rver.js'
import {waitFor} from '../helpers/wait.js'

/** Stands in for policy: refuses statements naming forbidden_t, and classes every statement by its first word. */
function policy(sql: string): StatementVerdict {
  if (/forbidden_t/.test(sql)) return {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'forbidden by test policy'}}
  return {action: 'allow'}
}
const classOf = (sql: string): string => /^\s*(\w+)/.exec(sql)?.[1]?.toLowerCase() ?? 'unknown'

let db: UpstreamInfo
let s3: TestS3
let t: TestTunnel | undefined

beforeAll(async () => {
  db = await createTestDatabase('audit')
  await withClient(db.url, (c) => c.query('create table forbidden_t (id int); create table items (id int, name text); insert into items values (1, $$a$$), (2, $$b$$)'))
  s3 = await TestS3.start()
})
afterAll(async () => {
  await t?.close()
  await s3.dispose()
  await removeTempDirs()
})

describe('recording a real tunnel session', () => {
  it('records what psql-like clients do, ships it to S3, and it verifies and searches', async () => {
    const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
    const spoolDir = await tempDir('dbgate-spool-')
    const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
    const recording = createRecordingHooks(recorder, {
      identity: alice,
      target: 'prod',
      describe: (ev) => {
        return {class: classOf(ev.sql), ruleId: ev.verdict.action === 'reject' ? 'no-forbidden' : undefined}
      },
    })
    t = await startTunnel(db, {statement: policy, ...recording})

    const c = await t.client({application_name: 'e2e-client'})
    expect((await c.query('select id, name from items order by id')).rowCount).toBe(2)
    expect((await c.query('select name from items where id = $1', ['2'])).rows).toEqual([{name: 'b'}])
    await expect(c.query('drop table forbidden_t')).rejects.toMatchObject({code: '42501'})
    await expect(c.query('select * from no_such_table')).rejects.toMatchObject({code: '42P01'})
    await c.end()

    // The session ends when the tunnel sees the client go; wait for the recorder to seal it.
    await waitFor(async () => (await spoolStatus(spoolDir)).sessions[0]?.state === 'ended', 'the recorder has sealed the session')
    expect((await spoolStatus(spoolDir)).sessions).toEqual([expect.objectContaining({state: 'ended', target: 'prod'})])

    const bucket = s3.bucket('e2e')
    await publishKey(bucket, alice, key)
    const report = await shipPending({bucket, signer: key, spoolDir})
    expect(report.failed).toEqual([])

    const reader = new SessionReader(bucket, await tempDir('dbgate-cache-'))
    const [session] = await reader.list({user: 'alice', target: 'prod'})
    expect(session).toMatchObject({status: 'ended', database: db.database, client: {application: 'e2e-client'}, totals: {statements: 4, denied: 1, errors: 1, rows: 3}})

    const {text, events} = await reader.loadSummary(session!)
    expect(verifySession(text, (await loadKeyRing(bucket)).keys)).toMatchObject({ok: true, status: 'ended', problems: []})
    const statements = events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
    expect(statements.map((s) => [s.class, s.decision, s.outcome, s.rows, s.error?.sqlstate])).toEqual([
      ['select', 'allow', 'ok', 2, undefined],
      ['select', 'allow', 'ok', 1, undefined],
      ['drop', 'deny', 'rejected', 0, '42501'],
      ['select', 'allow', 'error', 0, '42P01'],
    ])
    expect(statements[1]).toMatchObject({protocol: 'parse', params: ['2'], normalized: 'select name from items where id = $1'})
    expect(statements[2]!.ruleId).toBe('no-forbidden')

    const hits = await reader.search({text: 'forbidden_t', decision: 'deny'})
    expect(hits.map((h) => [h.sessionId, h.sql, h.spans])).toEqual([[session!.sessionId, 'drop table forbidden_t', [[11, 22]]]])
  })
})
