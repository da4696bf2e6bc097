import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey} from '../../src/audit/signing.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import {FileBucket} from '../../src/bucket/index.js'
import {captureCommand} from '../helpers/capture.js'
import {alice, mallory, removeTempDirs, stmt, tempDir, auditorEnv} from './helpers.js'

/**
 * `sessions search` stops at --limit (200) and searches the newest sessions first. A client that
 * filled a newer session with statements holding the words searched for (`select 1 -- drop table`,
 * 250 times) hid the real `DROP TABLE` of an older session behind the limit, and the search said
 * nothing of it: 200 harmless lines and exit 0. It now says more statements match than it shows
 * (`truncated` in --json).
 */
const root = join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}

describe('sessions search at its limit', () => {
  let bucket: FileBucket

  beforeAll(async () => {
    auditorEnv()
    bucket = new FileBucket(await tempDir('dbgate-limit-bucket-'))
    const key = await loadOrCreateInstallationKey(await tempDir('dbgate-limit-key-'))
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-limit-spool-')
    const rec = await Recorder.open({signer: key, dbgateVersion: 'test', spoolDir})
    const base = {target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}}
    const real = rec.startSession({...base, sessionId: 'older-real', identity: alice, startedAt: new Date('2026-03-01T10:00:00Z')})
    real.statement(stmt('older-real', 'DROP TABLE customers', {startedAt: new Date('2026-03-01T10:00:01Z'), commandTags: ['DROP TABLE']}))
    await real.end('client-closed')
    const flood = rec.startSession({...base, sessionId: 'newer-flood', identity: mallory, startedAt: new Date('2026-03-02T10:00:00Z')})
    for (let i = 0; i < 250; i++) flood.statement(stmt('newer-flood', `select ${i} -- drop table`, {startedAt: new Date(Date.UTC(2026, 2, 2, 10, 0, 1, i))}))
    await flood.end('client-closed')
    // Sixty short sessions, newer than both.
    for (let i = 0; i < 60; i++) {
      const id = `short-${String(i).padStart(2, '0')}`
      const short = rec.startSession({...base, sessionId: id, identity: mallory, startedAt: new Date(Date.UTC(2026, 2, 3, 10, i))})
      short.statement(stmt(id, 'select 1', {startedAt: new Date(Date.UTC(2026, 2, 3, 10, i, 1))}))
      await short.end('client-closed')
    }
    await shipPending({bucket, signer: key, spoolDir})
  })
  afterAll(async () => {
    process.env = savedEnv
    await removeTempDirs()
  })

  it('says that more statements match than it shows', async () => {
    const text = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, 'drop table'], {root}))
    expect(text.stdout.trim().split('\n')).toHaveLength(200)
    expect(text.stdout).not.toContain('DROP TABLE customers')
    expect(text.stderr).toMatch(/More statements match than the 200 shown \(--limit 200\).*raise --limit, or narrow the search/)
    const json = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, '--json', 'drop table'], {root}))
    expect(JSON.parse(json.stdout)).toMatchObject({truncated: true})
  })

  it('sessions list says that older sessions match too and are not shown', async () => {
    const r = await captureCommand(() => SessionsList.run(['--bucket', bucket.url], {root}))
    expect(r.stdout).not.toContain('older-real')
    expect(r.stderr).toMatch(/12 older sessions match too and are not shown \(--limit 50\)/)
    const json = await captureCommand(() => SessionsList.run(['--bucket', bucket.url, '--json', '--limit', '62'], {root}))
    const out = JSON.parse(json.stdout) as {sessions: {sessionId: string}[]; notShown?: number}
    expect(out.sessions.map((x) => x.sessionId)).toContain('older-real')
    expect(out.notShown).toBeUndefined()
  })

  it('says nothing of the kind when every match is shown', async () => {
    const r = await captureCommand(() => SessionsSearch.run(['--bucket', bucket.url, '--json', '--limit', '251', 'drop table'], {root}))
    const out = JSON.parse(r.stdout) as {matches: {sql: string}[]; truncated?: boolean}
    expect(out.matches).toHaveLength(251)
    expect(out.matches.map((m) => m.sql)).toContain('DROP TABLE customers')
    expect(out.truncated).toBeUndefined()
    expect(r.stderr).not.toMatch(/More statements match/)
  })
})
