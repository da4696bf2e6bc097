/**
 * What the recording says about a statement whose Parse or Bind fails in an extended-protocol
 * pipeline. The server reports the error on that Parse or Bind and skips everything up to Sync, so
 * the statement's Execute never runs: the recording must still say the statement failed, with the
 * server's error, and not that it was skipped because of something else (which would hide the
 * error from the session's totals, `sessions search --decision`, and the report).
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
  db = await createTestDatabase('pipeline_outcomes')
  await withClient(db.url, (c) => c.query('create table u (id int primary key)'))
  const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
  spoolDir = await tempDir('dbgate-spool-')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  t = await startTunnel(db, {statement: () => ({action: 'allow'}), ...createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: () => ({class: 'read'})})})
})
afterAll(async () => {
  await t?.close()
  await removeTempDirs()
})

/** Runs one pipeline (ending in Sync) in its own session and returns the statements recorded. */
async function recorded(messages: Buffer[]): Promise<{statements: StatementData[]; totals: {errors: number}}> {
  const before = new Set(await readdir(spoolDir))
  const c = await RawClient.connect(t.port, {password: t.secret, database: db.database})
  c.send(...messages, serialize.sync())
  await c.untilReady()
  c.end()
  let file: string | undefined
  await waitFor(async () => {
    file = (await readdir(spoolDir)).find((f) => f.endsWith('.jsonl') && !before.has(f))
    return file !== undefined && (await spoolStatus(spoolDir)).sessions.every((s) => s.state === 'ended')
  }, 'the session is recorded and ended')
  const events = parseEvents(await readFile(join(spoolDir, file!), 'utf8'))
  const end = events.find((e) => e.type === 'session.end')!.data as {totals: {errors: number}}
  return {statements: events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData), totals: end.totals}
}

const run = (text: string, opts: {name?: string; portal?: string; values?: (string | null)[]} = {}) => [
  serialize.parse({name: opts.name ?? '', text}),
  serialize.bind({statement: opts.name ?? '', portal: opts.portal ?? '', values: opts.values ?? []}),
  serialize.execute({portal: opts.portal ?? ''}),
]

/** Each fails on its Parse or its Bind, never reaching Execute. */
const FAILING: {name: string; messages: Buffer[]; sqlstate: string}[] = [
  {name: 'a missing table (Parse)', messages: run('select * from no_such_table'), sqlstate: '42P01'},
  {name: 'a missing column (Parse)', messages: run('select no_such_column from u'), sqlstate: '42703'},
  {name: 'a syntax error (Parse)', messages: run('selec 1'), sqlstate: '42601'},
  {name: 'a bad parameter value (Bind)', messages: run('select $1::int', {values: ['x']}), sqlstate: '22P02'},
  {name: 'an error while planning (Bind)', messages: run('select 1/0'), sqlstate: '22012'},
  {name: 'a named statement and portal (Bind)', messages: run('select $1::int', {name: 's1', portal: 'p1', values: ['nope']}), sqlstate: '22P02'},
  {name: 'a write with a bad parameter (Bind)', messages: run('insert into u values ($1)', {values: ['1.5']}), sqlstate: '22P02'},
]

describe('a statement whose Parse or Bind fails in a pipeline', () => {
  for (const f of FAILING) {
    it(`${f.name}: recorded as an error with the server's error, the ones after it as aborted`, async () => {
      const {statements, totals} = await recorded([...run('insert into u values (1) on conflict do nothing'), ...f.messages, ...run('insert into u values (2)')])
      expect(statements.map((s) => [s.outcome, s.error?.sqlstate])).toEqual([
        ['ok', undefined],
        ['error', f.sqlstate],
        ['aborted', undefined],
      ])
      expect(totals.errors).toBe(1)
    })
  }

  it('a failed Bind marks only the Execute of its own portal, not an earlier portal skipped with it', async () => {
    const {statements} = await recorded([
      serialize.parse({name: 'ok', text: 'select 1'}),
      serialize.parse({name: 'bad', text: 'select $1::int'}),
      serialize.bind({portal: 'p1', statement: 'ok'}),
      serialize.bind({portal: 'p2', statement: 'bad', values: ['x']}),
      serialize.execute({portal: 'p1'}),
      serialize.execute({portal: 'p2'}),
    ])
    expect(statements.map((s) => [s.sql, s.outcome, s.error?.sqlstate])).toEqual([
      ['select 1', 'aborted', undefined],
      ['select $1::int', 'error', '22P02'],
    ])
  })
})
