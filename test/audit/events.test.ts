import {readFile} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {Recorder} from '../../src/audit/recorder.js'
import {loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import type {AuditEvent, SessionStartData, StatementData} from '../../src/audit/events.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'

let key: InstallationKey
beforeAll(async () => {
  key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
})
afterAll(removeTempDirs)

async function open(previewRows = 20) {
  return Recorder.open({signer: key, dbgateVersion: '9.9.9', spoolDir: await tempDir('dbgate-spool-'), previewRows, checkpointEvery: 0})
}

async function events(path: string): Promise<AuditEvent[]> {
  return (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as AuditEvent)
}

const start = {identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {application: 'psql', address: '10.0.0.5:50000'}, policy: {hash: 'h1', version: 'v3'}}

describe('recorded events', () => {
  it('records the session start with the identity but never a token', async () => {
    const rec = await open()
    const s = rec.startSession({sessionId: 'e-1', ...start, identity: {...alice, token: 'eyJhbGciOi.secret'} as typeof alice})
    await s.end('done')
    const [first] = await events(s.spoolPath)
    const d = first!.data as SessionStartData
    expect(first!.type).toBe('session.start')
    expect(d).toMatchObject({sessionId: 'e-1', target: 'prod', database: 'app', dbUser: 'app_rw', client: start.client, dbgateVersion: '9.9.9', policy: start.policy, keyId: key.keyId})
    expect(d.identity).toEqual({subject: 'u-alice', email: 'alice@example.com', name: 'Alice', groups: ['engineering'], issuer: 'https://login.example.com', kind: 'human', tokenHash: 'a'.repeat(64), tokenId: 'jti-1', expiresAt: '2030-01-01T00:00:00.000Z'})
    expect(await readFile(s.spoolPath, 'utf8')).not.toContain('eyJhbGciOi')
  })

  it('records statements with normalized text, fingerprint, params as given, decision and error', async () => {
    const rec = await open()
    const s = rec.startSession({sessionId: 'e-2', ...start})
    s.statement(stmt('e-2', "select * from users where email = 'x@y.z'"), {class: 'select', tables: ['public.users'], maskedColumns: ['public.users.email']})
    s.statement(stmt('e-2', 'select * from users where email = $1', {protocol: 'parse', statementName: 's1', params: ['***']}))
    s.statement(stmt('e-2', 'selec garbage', {verdict: {action: 'reject', error: {severity: 'ERROR', code: '42601', message: 'cannot parse'}}, outcome: 'rejected', rows: 0}))
    await s.end('done')
    const st = (await events(s.spoolPath)).filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
    expect(st[0]).toMatchObject({normalized: 'select * from users where email = $1', class: 'select', decision: 'allow', tables: ['public.users'], maskedColumns: ['public.users.email'], startedAt: '2026-03-01T10:00:01.000Z', durationMs: 3, rows: 1, commandTags: ['SELECT 1'], outcome: 'ok'})
    expect(st[0]!.fingerprint).toMatch(/^[0-9a-f]{16}$/)
    // Same statement shape, same fingerprint: what search and dashboards group by.
    expect(st[1]!.fingerprint).toBe(st[0]!.fingerprint)
    expect(st[1]).toMatchObject({protocol: 'parse', statementName: 's1', params: ['***']})
    expect(st[2]).toMatchObject({normalized: null, fingerprint: null, decision: 'deny', error: {sqlstate: '42601', message: 'cannot parse'}})
    const end = (await events(s.spoolPath)).at(-1)!
    expect(end.data).toMatchObject({reason: 'done', totals: {statements: 3, denied: 1, errors: 0, rows: 2}})
  })

  it('bounds the preview to previewRows, and records none with 0', async () => {
    const preview = {columns: ['n'], rows: [['1'], ['2'], ['3']], truncated: false}
    const three = await open(2)
    const a = three.startSession({sessionId: 'e-3', ...start})
    a.statement(stmt('e-3', 'select n'), {preview})
    await a.end('done')
    expect(((await events(a.spoolPath))[1]!.data as StatementData).preview).toEqual({columns: ['n'], rows: [['1'], ['2']], truncated: true})

    const none = await open(0)
    const b = none.startSession({sessionId: 'e-4', ...start})
    b.statement(stmt('e-4', 'select n'), {preview})
    await b.end('done')
    expect((await events(b.spoolPath))[1]!.data).not.toHaveProperty('preview')
  })

  it('accepts any other event type and refuses the ones the recorder owns', async () => {
    const rec = await open()
    const s = rec.startSession({sessionId: 'e-5', ...start})
    s.recordEvent('approval.requested', {approvalId: 'ap-1', sql: 'drop table x'})
    s.recordEvent('approval.decided', {approvalId: 'ap-1', decision: 'approved', by: 'bob@example.com'})
    expect(() => s.recordEvent('session.end', {})).toThrow(/written by the recorder/)
    expect(() => s.recordEvent('Bad Type', {})).toThrow(/invalid event type/)
    await s.end('done')
    await s.end('again')
    expect(() => s.statement(stmt('e-5', 'select 1'))).toThrow(/has ended/)
    expect((await events(s.spoolPath)).map((e) => e.type)).toEqual(['session.start', 'approval.requested', 'approval.decided', 'session.end'])
  })

  it('hooks reject a statement for a session that never started instead of dropping it', async () => {
    const hooks = createRecordingHooks(await open(), {identity: alice, target: 'prod'})
    expect(() => hooks.onStatement(stmt('nobody', 'select 1'))).toThrow(/unknown session nobody/)
  })
})
