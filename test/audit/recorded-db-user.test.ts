/**
 * Which database user a session ran as, in its recording. The tunnel always logs in upstream as the
 * target's user (or the gateway's), whatever user name the client put in its startup packet: that
 * name only reaches the tunnel. The recording's `dbUser` must be the user the server says the
 * session is (its `session_authorization`), not the name the client chose, or any client could
 * have its session recorded, and shown by `sessions show`, as `postgres`.
 */
import {randomBytes} from 'node:crypto'
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SessionStartData} from '../../src/audit/events.js'
import {parseEvents} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {renderEvent} from '../../src/audit/render.js'
import {loadOrCreateInstallationKey} from '../../src/audit/signing.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {adminUrl, createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'

let db: UpstreamInfo
let t: TestTunnel
let spoolDir: string
const role = `app_rw_${randomBytes(4).toString('hex')}`
const password = randomBytes(12).toString('hex')

beforeAll(async () => {
  db = await createTestDatabase('recorded_user')
  await withClient(adminUrl('postgres'), (c) => c.query(`create role ${role} login password '${password}'`))
  const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  spoolDir = await tempDir('dbgate-spool-')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  // The target logs in as the unprivileged role, as a real target's app user.
  t = await startTunnel({...db, user: role, password}, {statement: () => ({action: 'allow'}), ...createRecordingHooks(recorder, {identity: alice, target: 'prod'})})
})
afterAll(async () => {
  await t?.close()
  await withClient(adminUrl('postgres'), (c) => c.query(`drop role if exists ${role}`)).catch(() => {})
  await removeTempDirs()
})

/** The session.start of the one session the client ran, once it has ended. */
async function startOf(session: () => Promise<string>): Promise<{start: SessionStartData; ranAs: string}> {
  const before = new Set(await readdir(spoolDir))
  const ranAs = await session()
  let file: string | undefined
  await waitFor(async () => {
    file = (await readdir(spoolDir)).find((f) => f.endsWith('.jsonl') && !before.has(f))
    return file !== undefined && (await spoolStatus(spoolDir)).sessions.every((s) => s.state === 'ended')
  }, 'the session is recorded and ended')
  const events = parseEvents(await readFile(join(spoolDir, file!), 'utf8'))
  return {start: events.find((e) => e.type === 'session.start')!.data as SessionStartData, ranAs}
}

/** Through node-postgres, with `user` as the startup user. */
const withPg = (user: string) => async () => {
  const c = new pg.Client({host: '127.0.0.1', port: t.port, user, password: t.secret, database: db.database})
  await c.connect()
  const ranAs = (await c.query<{u: string}>('select current_user as u')).rows[0]!.u
  await c.end()
  return ranAs
}

/** Through the raw wire client, with `user` as the startup user. */
const withRaw = (user: string) => async () => {
  const c = await RawClient.connect(t.port, {password: t.secret, database: db.database, params: {user}})
  c.send(serialize.query('select current_user'))
  await c.untilReady()
  const row = c.messages.find((m) => m.code === 'D')!.body
  c.end()
  // DataRow: field count (2 bytes), then the one field's length (4 bytes) and bytes.
  return row.subarray(6, 6 + row.readInt32BE(2)).toString('utf8')
}

const CLIENT_USERS: {name: string; session: () => Promise<string>; given: string}[] = [
  {name: 'a superuser name', session: withPg('postgres'), given: 'postgres'},
  {name: 'the name another role has', session: withPg('pg_read_all_data'), given: 'pg_read_all_data'},
  {name: 'the name of the URL the tunnel prints', session: withPg('dbgate'), given: 'dbgate'},
  {name: 'a name with a newline that forges a line', session: withRaw('admin\n    client psql from 10.0.0.1'), given: 'admin\n    client psql from 10.0.0.1'},
  {name: 'an e-mail address (a gateway client)', session: withRaw('bob@example.com'), given: 'bob@example.com'},
]

describe('the database user a session is recorded as', () => {
  for (const u of CLIENT_USERS) {
    it(`is the user the server ran it as, not the startup user the client gave: ${u.name}`, async () => {
      const {start, ranAs} = await startOf(u.session)
      expect(ranAs).toBe(role)
      expect(start.dbUser).toBe(role)
      // What the client asked for is kept, as the client's, apart from the identity of the session.
      expect(start.client.user).toBe(u.given)
      const shown = renderEvent({v: 1, type: 'session.start', session: start.sessionId, seq: 1, ts: start.startedAt, prev: '', data: start, hash: ''}).join('\n')
      expect(shown).toContain(`as ${role}`)
      expect(shown).not.toContain(`as ${u.given.split('\n')[0]}`)
      expect(shown.split('\n')).toHaveLength(2)
    })
  }

  it('shows the application name and startup user the client gave in quotes they cannot close', async () => {
    for (const application of ['psql from 10.0.0.7:5432 · dbgate 9.9.9 · policy v1 (published) ·', 'psql" from 10.0.0.7:5432 · "', 'psql\\" from 10.0.0.7:5432']) {
      const {start} = await startOf(async () => {
        const c = new pg.Client({host: '127.0.0.1', port: t.port, user: 'x" from 10.0.0.8:1 ·', password: t.secret, database: db.database, application_name: application})
        await c.connect()
        await c.end()
        return ''
      })
      expect(start.client.application).toBe(application)
      const line = renderEvent({v: 1, type: 'session.start', session: start.sessionId, seq: 1, ts: start.startedAt, prev: '', data: start, hash: ''})[1]!
      // Read back as JSON strings, the two quoted parts are exactly what the client sent, and the address follows them.
      const m = /^ {4}client ("(?:[^"\\]|\\.)*") \(startup user ("(?:[^"\\]|\\.)*"), not a role\) from (\S+) ·/.exec(line)
      expect(m, line).not.toBeNull()
      expect(JSON.parse(m![1]!)).toBe(application)
      expect(JSON.parse(m![2]!)).toBe('x" from 10.0.0.8:1 ·')
      expect(m![3]).toBe(start.client.address)
    }
  })

  it('the user the client gave is not recorded apart when it is the one the session ran as', async () => {
    const {start} = await startOf(withPg(role))
    expect(start.dbUser).toBe(role)
    expect(start.client.user).toBeUndefined()
  })
})
