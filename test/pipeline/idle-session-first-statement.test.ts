/**
 * A session that logged in and then sat idle holds only what its login needed: the recording's
 * statement memo and totals, masking's filter for messages outside any statement, are made when
 * first used (docs/performance-history.md, "Seventh round"). Through the tunnel exactly as `dbgate connect`
 * builds it, over both protocols: a session whose start the background shipper has already shipped
 * (it then passes over it) gets its first statements judged, masked and recorded as any session's,
 * a notification that arrives outside any statement is masked, and the recording verifies with the
 * session's totals. Fails if any piece made on first use were skipped or made wrongly.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {loadKeyRing} from '../../src/audit/signing.js'
import {verifySession} from '../../src/audit/verify.js'
import {openBucket} from '../../src/bucket/index.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'

const ANN = 'ann@example.com'
const ANN_PRIVATE = 'ann.private@example.org'

describe('the first statements of a session that sat idle after login', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  let bucketUrl: string
  const reader = () => new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-idle-cache-')))
  const sessionOf = async (application: string) => (await reader().list()).find((s) => s.client?.application === application)

  beforeAll(async () => {
    db = await createTestDatabase('idlefirst')
    await withClient(db.url, (c) =>
      c.query(`create table members (id int primary key, email text, note text);
        insert into members values (1, '${ANN}', 'call me at ${ANN_PRIVATE}'), (2, 'ben@example.com', 'nothing to see')`),
    )
    bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-idle-bucket-'))}`
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
  })
  afterAll(() => t.close())

  it.each(['simple', 'extended'] as const)('are denied, masked and recorded as before, over the %s protocol', async (protocol) => {
    const application = `idle-${protocol}`
    const c: pg.Client = await t.client({application_name: application})
    const payloads: string[] = []
    c.on('notification', (n) => payloads.push(n.payload ?? ''))

    // The session's start is written and synced at login, and shipped by the background shipper
    // while the session does nothing: it sat idle through at least one pass.
    const started = await waitFor(() => sessionOf(application), `the start of the ${protocol} session shipped while it is idle`, {timeoutMs: 20_000})
    expect(started.status).toBe('in-progress')

    const extended = protocol === 'extended'
    // Guardrails: the first statement of the session is refused, and nothing reached the database.
    const denied = (await (extended ? c.query({name: 'wipe', text: 'delete from members'}) : c.query('delete from members')).catch((e: Error) => e)) as Error & {code?: string}
    expect(denied).toBeInstanceOf(Error)
    expect(denied.code).toBe('42501')
    expect(denied.message).toMatch(/^dbgate: statement denied by rule default\.no-unfiltered-delete: /)
    expect((await withClient(db.url, (a) => a.query('select count(*)::int n from members'))).rows[0].n).toBe(2)

    // Masking: a marked column and an address inside free text, masked in the first result.
    const rows = extended
      ? (await c.query({text: 'select id, email, note from members where id = $1', values: [1]})).rows
      : (await c.query('select id, email, note from members where id = 1')).rows
    expect(rows).toHaveLength(1)
    expect(rows[0].id).toBe(1)
    expect(JSON.stringify(rows)).not.toContain(ANN)
    expect(JSON.stringify(rows)).not.toContain(ANN_PRIVATE)

    // A notification arrives outside any statement: the session's filter (made on first use) masks it.
    await c.query('listen news')
    await withClient(db.url, (a) => a.query(`notify news, 'write to ${ANN_PRIVATE}'`))
    await waitFor(() => payloads.length > 0, 'the notification reached the client')
    expect(payloads[0]).toMatch(/^write to /)
    expect(payloads[0]).not.toContain(ANN_PRIVATE)

    await c.end()
    // Recording: every statement, with its decision, in a chain that verifies, and the totals of the end.
    const ended = await waitFor(async () => {
      const s = await sessionOf(application)
      return s?.status === 'ended' ? s : undefined
    }, `the ${protocol} session's end shipped`, {timeoutMs: 20_000})
    const r = reader()
    const {text, events} = await r.loadSummary(ended)
    expect(verifySession(text, (await loadKeyRing(openBucket(bucketUrl))).keys)).toMatchObject({ok: true, status: 'ended', problems: []})
    const statements = events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
    // The client sent Bind, Describe and Execute after the refused Parse in the same batch: each is refused and recorded too.
    const refusedBatch = extended
      ? [
          ['<Bind of prepared statement "wipe", unknown to the tunnel>', 'deny', 'rejected'],
          ['<Describe of portal "", unknown to the tunnel>', 'deny', 'rejected'],
          ['<Execute of portal "", unknown to the tunnel>', 'deny', 'rejected'],
        ]
      : []
    expect(statements.map((s) => [s.sql, s.decision, s.outcome])).toEqual([
      ['delete from members', 'deny', 'rejected'],
      ...refusedBatch,
      [extended ? 'select id, email, note from members where id = $1' : 'select id, email, note from members where id = 1', 'allow', 'ok'],
      ['listen news', 'allow', 'ok'],
    ])
    expect(statements[1 + refusedBatch.length]).toMatchObject({rows: 1, maskedValues: 2})
    expect(JSON.stringify(events)).not.toContain(ANN)
    expect(events.at(-1)).toMatchObject({type: 'session.end', data: {totals: {statements: 3 + refusedBatch.length, denied: 1 + refusedBatch.length, errors: 0, rows: 1}}})
  })
})
