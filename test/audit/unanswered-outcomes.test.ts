/**
 * What the recording says about a statement the server had been sent but had not answered when the
 * connection closed. The server runs it to its end all the same (its implicit COMMIT too) and only
 * then reads the Terminate behind it, so it may well have changed the database: recorded `aborted`
 * ("never ran") it would hide a write that happened. It is `unanswered` ("sent; whether it ran is
 * not known"), and `aborted` stays for what surely never ran: messages the tunnel never sent
 * because the connection failed in the same write. Each case checks the database directly.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {parseEvents} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {loadOrCreateInstallationKey} from '../../src/audit/signing.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'

let db: UpstreamInfo
let t: TestTunnel
let spoolDir: string

beforeAll(async () => {
  db = await createTestDatabase('unanswered_outcomes')
  await withClient(db.url, (c) => c.query('create table u (id int primary key)'))
  const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  spoolDir = await tempDir('dbgate-spool-')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  // Everything runs but texts naming `refused`, which stand for a policy refusal.
  const statement = (sql: string) => (/refused/.test(sql) ? {action: 'reject' as const, error: {severity: 'ERROR' as const, code: '42501', message: 'refused by the test'}} : {action: 'allow' as const})
  t = await startTunnel(db, {statement, ...createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: () => ({class: 'write'})})})
})
afterAll(async () => {
  await t?.close()
  await removeTempDirs()
})

/** Sends `messages` in one write, then hangs up (or not, after a Terminate among them); returns what was recorded. */
async function hungUp(messages: Buffer[], opts: {hangUp?: boolean} = {}): Promise<StatementData[]> {
  const before = new Set(await readdir(spoolDir))
  const c = await RawClient.connect(t.port, {password: t.secret, database: db.database})
  c.send(...messages)
  // Long enough for the tunnel to forward what it was sent, far shorter than the statements run.
  await new Promise((r) => setTimeout(r, 50))
  if (opts.hangUp !== false) c.end()
  let file: string | undefined
  await waitFor(async () => {
    file = (await readdir(spoolDir)).find((f) => f.endsWith('.jsonl') && !before.has(f))
    return file !== undefined && (await spoolStatus(spoolDir)).sessions.every((s) => s.state === 'ended')
  }, 'the session is recorded and ended')
  return parseEvents(await readFile(join(spoolDir, file!), 'utf8'))
    .filter((e) => e.type === 'statement')
    .map((e) => e.data as StatementData)
}

const rowsWith = (id: number) => withClient(db.url, async (d) => (await d.query('select count(*)::int as n from u where id = $1', [id])).rows[0].n as number)
/** The server has run what it was sent once the row is there (it commits before it reads the Terminate). */
const committed = (id: number) => waitFor(async () => (await rowsWith(id)) === 1, `row ${id} is committed`)

const slowInsert = (id: number) => `insert into u select ${id} from pg_sleep(0.3)`
const extended = (text: string) => [serialize.parse({text}), serialize.bind({}), serialize.execute({}), serialize.sync()]

describe('a statement sent and not yet answered when the client hangs up', () => {
  const CASES: {name: string; id: number; messages: (id: number) => Buffer[]; hangUp?: boolean}[] = [
    {name: 'a simple query', id: 1, messages: (id) => [serialize.query(slowInsert(id))]},
    {name: 'a simple query whose write comes after a wait', id: 2, messages: (id) => [serialize.query(`select pg_sleep(0.3); insert into u values (${id})`)]},
    {name: 'an extended-protocol Execute and its Sync', id: 3, messages: (id) => extended(slowInsert(id))},
    {name: 'an Execute whose segment runs on after it', id: 4, messages: (id) => [serialize.parse({text: `insert into u values (${id})`}), serialize.bind({}), serialize.execute({}), serialize.parse({text: 'select pg_sleep(0.3)'}), serialize.bind({}), serialize.execute({}), serialize.sync()]},
    {name: 'a text that commits, then waits', id: 5, messages: (id) => [serialize.query(`begin; insert into u values (${id}); commit; select pg_sleep(0.3)`)]},
    {name: 'a simple query followed by Terminate in the same write', id: 6, messages: (id) => [serialize.query(slowInsert(id)), serialize.end()], hangUp: false},
    {name: 'a quick simple query followed by Terminate in the same write', id: 7, messages: (id) => [serialize.query(`insert into u values (${id})`), serialize.end()], hangUp: false},
    {name: 'an extended segment followed by Terminate in the same write', id: 8, messages: (id) => [...extended(`insert into u values (${id})`), serialize.end()], hangUp: false},
  ]
  for (const k of CASES) {
    it(`${k.name}: ran, and is recorded unanswered, not aborted`, async () => {
      const statements = await hungUp(k.messages(k.id), k.hangUp === undefined ? {} : {hangUp: k.hangUp})
      await committed(k.id)
      const write = statements.find((s) => s.sql.includes(`${k.id}`))!
      expect(write.outcome).toBe('unanswered')
      expect(statements.map((s) => s.outcome)).not.toContain('aborted')
    })
  }

  it('a statement the tunnel refused is still recorded rejected', async () => {
    const statements = await hungUp([serialize.query('select pg_sleep(0.3)'), serialize.query('select 1 as refused')])
    expect(statements.map((s) => [s.sql, s.outcome])).toEqual([
      ['select pg_sleep(0.3)', 'unanswered'],
      ['select 1 as refused', 'rejected'],
    ])
  })

  it('what the tunnel never sent (a protocol error in the same write) did not run, and is recorded aborted', async () => {
    const statements = await hungUp([serialize.query('insert into u values (20)'), Buffer.from([0x7e, 0, 0, 0, 4])], {hangUp: false})
    expect(statements.map((s) => [s.sql, s.outcome])).toEqual([['insert into u values (20)', 'aborted']])
    await new Promise((r) => setTimeout(r, 300))
    expect(await rowsWith(20)).toBe(0)
  })
})
