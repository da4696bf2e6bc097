/**
 * `rows` is what a statement returned or affected, and the session's and the report's row figures
 * add it up. It was read from the number ending any command tag, and `MOVE 1000000` (a cursor moved
 * past a million rows, none of them sent or changed) counted a million: a client could make its
 * session look as heavy as it liked, or bury a real figure. Only the tags whose number is rows sent
 * or changed count.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SessionEndData, StatementData} from '../../src/audit/events.js'
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
let statements: StatementData[]
let end: SessionEndData

beforeAll(async () => {
  db = await createTestDatabase('row_counts')
  await withClient(db.url, (c) => c.query('create table u (id int)'))
  const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  const spoolDir = await tempDir('dbgate-spool-')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  t = await startTunnel(db, {statement: () => ({action: 'allow'}), ...createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: () => ({class: 'read'})})})
  const c = await RawClient.connect(t.port, {password: t.secret, database: db.database})
  const q = (sql: string) => {
    c.send(serialize.query(sql))
    return c.untilReady()
  }
  await q('begin')
  await q('declare c1 scroll cursor for select generate_series(1, 200000)')
  await q('move forward all in c1')
  await q('move backward 150000 in c1')
  await q('fetch 3 from c1')
  await q('move absolute 0 in c1; move relative 100 in c1; fetch 2 from c1')
  // The extended protocol.
  c.send(serialize.parse({text: 'move forward all in c1'}), serialize.bind({}), serialize.execute({}), serialize.sync())
  await c.untilReady()
  await q('commit')
  await q('insert into u values (1), (2)')
  c.end()
  await waitFor(async () => (await spoolStatus(spoolDir)).sessions.every((s) => s.state === 'ended') && (await readdir(spoolDir)).some((f) => f.endsWith('.jsonl')), 'the session is sealed')
  const file = (await readdir(spoolDir)).find((f) => f.endsWith('.jsonl'))!
  const events = parseEvents(await readFile(join(spoolDir, file), 'utf8'))
  statements = events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
  end = events.find((e) => e.type === 'session.end')!.data as SessionEndData
})
afterAll(async () => {
  await t?.close()
  await removeTempDirs()
})

describe('rows of a statement', () => {
  it('are none for MOVE, however far it moved, in either protocol', () => {
    const moves = statements.filter((s) => /^move/.test(s.sql) && !s.sql.includes('fetch'))
    expect(moves).toHaveLength(3)
    for (const s of moves) {
      expect(s.commandTags[0], s.sql).toMatch(/^MOVE [1-9]\d*$/)
      expect(s.rows, s.sql).toBe(0)
    }
  })

  it('are what FETCH sent and INSERT wrote, also beside a MOVE in the same text', () => {
    expect(statements.find((s) => s.sql === 'fetch 3 from c1')?.rows).toBe(3)
    expect(statements.find((s) => s.sql.startsWith('move absolute'))?.rows).toBe(2)
    expect(statements.find((s) => s.sql.startsWith('insert'))?.rows).toBe(2)
  })

  it('add up in the session totals to the rows sent and written', () => {
    expect(end.totals.rows).toBe(3 + 2 + 2)
  })
})
