/**
 * The server plans a statement at its Bind, and planning evaluates what it can fold into a
 * constant: an IMMUTABLE function called with constants runs then, body and all (`set_config`,
 * `setval`, `pg_notify`, …). A client that sends Parse, Bind and Sync, and never Execute, ran that
 * code, and the recording, which wrote a statement only for an Execute, had no line for it; nor
 * for a Bind that failed while planning with no Execute behind it. Both are recorded now.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {AuditEvent, StatementData} from '../../src/audit/events.js'
import {parseEvents} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {renderEvent} from '../../src/audit/render.js'
import {loadOrCreateInstallationKey} from '../../src/audit/signing.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient, errorOf} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'

let db: UpstreamInfo
let t: TestTunnel
let spoolDir: string

beforeAll(async () => {
  db = await createTestDatabase('bind_only')
  await withClient(db.url, (c) =>
    c.query(`create function mark(v text) returns int immutable language plpgsql as $$ begin perform set_config('app.mark', v, false); return 1; end $$`),
  )
  const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  spoolDir = await tempDir('dbgate-spool-')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  t = await startTunnel(db, {statement: () => ({action: 'allow'}), ...createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: () => ({class: 'read'})})})
})
afterAll(async () => {
  await t?.close()
  await removeTempDirs()
})

/** Sends each pipeline (a Sync is added) in one session, then the mark the server holds; returns it and the session's statement events. */
async function session(pipelines: Buffer[][]): Promise<{mark: string | undefined; errors: (string | undefined)[]; events: AuditEvent[]}> {
  const before = new Set(await readdir(spoolDir))
  const c = await RawClient.connect(t.port, {password: t.secret, database: db.database})
  const errors: (string | undefined)[] = []
  for (const p of pipelines) {
    c.send(...p, serialize.sync())
    errors.push(errorOf(await c.untilReady())?.code)
  }
  c.send(serialize.query(`select coalesce(current_setting('app.mark', true), '') as m`))
  const rows = (await c.untilReady()).filter((m) => m.code === 'D')
  const mark = rows[0] ? rows[0].body.toString('utf8', 6) : undefined
  c.end()
  let file: string | undefined
  await waitFor(async () => {
    file = (await readdir(spoolDir)).find((f) => f.endsWith('.jsonl') && !before.has(f))
    return file !== undefined && (await spoolStatus(spoolDir)).sessions.every((s) => s.state === 'ended')
  }, 'the session is recorded and ended')
  const events = parseEvents(await readFile(join(spoolDir, file!), 'utf8')).filter((e) => e.type === 'statement' && !(e.data as StatementData).sql.includes('app.mark'))
  return {mark: mark || undefined, errors, events}
}

const data = (e: AuditEvent) => e.data as StatementData

/** Each binds `select mark(…)` and never executes it. */
const BIND_ONLY: {name: string; messages: (v: string) => Buffer[]}[] = [
  {name: 'Parse, Bind, Sync', messages: (v) => [serialize.parse({text: `select mark('${v}')`}), serialize.bind({})]},
  {name: 'a named statement and portal, closed', messages: (v) => [serialize.parse({name: 's1', text: `select mark('${v}')`}), serialize.bind({statement: 's1', portal: 'p1'}), serialize.close({type: 'P', name: 'p1'})]},
  {name: 'a Describe of the portal', messages: (v) => [serialize.parse({text: `select mark('${v}')`}), serialize.bind({}), serialize.describe({type: 'P', name: ''})]},
  {name: 'a parameter, a Bind and a Flush', messages: (v) => [serialize.parse({text: `select mark($1 || '')`}), serialize.bind({values: [v]}), serialize.flush()]},
]

describe('a Bind no Execute follows', () => {
  for (const [i, k] of BIND_ONLY.entries()) {
    it(`${k.name}: ran the code its planning folds, and is recorded as bound, not executed`, async () => {
      const v = `ran-${i}`
      const r = await session([k.messages(v)])
      // The function ran: the server says so. (A parameter is not folded: that one did not run.)
      if (!k.name.startsWith('a parameter')) expect(r.mark).toBe(v)
      expect(r.events.map((e) => [data(e).sql.startsWith('select mark('), data(e).outcome, data(e).rows])).toEqual([[true, 'bound', 0]])
      expect(renderEvent(r.events[0]!)[0]).toMatch(/BOUND, NEVER EXECUTED/)
    })
  }

  it('a Bind that fails while planning, with no Execute after it, is recorded with its error', async () => {
    const r = await session([[serialize.parse({text: 'select 1/0'}), serialize.bind({})]])
    expect(r.errors).toEqual(['22012'])
    expect(r.events.map((e) => [data(e).sql, data(e).outcome, data(e).error?.sqlstate])).toEqual([['select 1/0', 'error', '22012']])
  })

  it('a Bind the server completed before the client hung up, with no Sync, is recorded as bound', async () => {
    const before = new Set(await readdir(spoolDir))
    const c = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    c.send(serialize.parse({text: `select mark('gone')`}), serialize.bind({}), serialize.flush())
    for (;;) if ((await c.next()).code === '2') break
    c.end()
    let file: string | undefined
    await waitFor(async () => {
      file = (await readdir(spoolDir)).find((f) => f.endsWith('.jsonl') && !before.has(f))
      return file !== undefined && (await spoolStatus(spoolDir)).sessions.every((s) => s.state === 'ended')
    }, 'the session is recorded and ended')
    const statements = parseEvents(await readFile(join(spoolDir, file!), 'utf8')).filter((e) => e.type === 'statement')
    expect(statements.map((e) => [data(e).sql, data(e).outcome])).toEqual([[`select mark('gone')`, 'bound']])
  })

  it('a Bind whose portal an Execute runs is recorded once, by that Execute', async () => {
    const r = await session([
      [serialize.parse({text: `select mark('x')`}), serialize.bind({}), serialize.execute({})],
      [serialize.parse({name: 's2', text: 'select 1/0'}), serialize.bind({statement: 's2', portal: 'p2'}), serialize.execute({portal: 'p2'})],
    ])
    expect(r.events.map((e) => [data(e).sql, data(e).outcome])).toEqual([
      [`select mark('x')`, 'ok'],
      ['select 1/0', 'error'],
    ])
  })
})
