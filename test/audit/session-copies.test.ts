import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import SessionsExport from '../../src/commands/sessions/export.js'
import SessionsReplay from '../../src/commands/sessions/replay.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import SessionsVerify from '../../src/commands/sessions/verify.js'
import {FileBucket} from '../../src/bucket/index.js'
import {captureCommand} from '../helpers/capture.js'
import {ada, recordFixture} from '../report/fixture.js'
import {removeTempDirs, tempDir} from './helpers.js'

/**
 * Someone who can write the bucket copies a session's log under another key (another day, another
 * target). Every summary of a log carries the id its session.start says, so `show`, `replay`,
 * `verify` and `export` by id found two sessions with that id and stopped: "matches 2 sessions:
 * X, X; give more of the id", which no longer id can answer. The real session could no longer be
 * shown, replayed or verified by id. Now the log stored where the shipper stores it is read, and
 * `verify` checks every copy, failing the others with OBJECT_KEY_MISMATCH.
 */
const root = join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
const ID = 'copied-session'
const PLACED = `sessions/dt=2026-10-03/target=prod/${ID}.jsonl.gz`

describe('a session log copied under other keys', () => {
  let bucket: FileBucket
  const copies = [`sessions/dt=2026-09-01/target=prod/${ID}.jsonl.gz`, `sessions/dt=2026-10-03/target=staging/${ID}.jsonl.gz`, `sessions/dt=2026-10-03/target=prod/${ID}-2.jsonl.gz`]

  beforeAll(async () => {
    Object.assign(process.env, {XDG_CACHE_HOME: await tempDir('dbgate-copies-cache-')})
    delete process.env.DBGATE_BUCKET
    delete process.env.DBGATE_CONFIG
    bucket = new FileBucket(await tempDir('dbgate-copies-bucket-'))
    await recordFixture([{id: ID, identity: ada, target: 'prod', start: new Date('2026-10-03T09:00:00Z'), ending: 'ended', statements: [{sql: 'DELETE FROM carts WHERE id = 7', at: new Date('2026-10-03T09:00:05Z'), class: 'write', decision: 'allow', rows: 1}]}], bucket, tempDir)
    const body = (await bucket.get(PLACED)).body
    for (const key of copies) await bucket.put(key, body)
  })
  afterAll(async () => {
    process.env = savedEnv
    await removeTempDirs()
  })

  const run = (cmd: {run: (argv: string[], opts: {root: string}) => Promise<unknown>}, ...argv: string[]) => captureCommand(() => cmd.run([...argv, '--bucket', bucket.url], {root}))

  it('sessions show and replay read the log stored where the shipper stores it', async () => {
    for (const r of [await run(SessionsShow, ID), await run(SessionsReplay, ID, '--no-wait')]) {
      expect(r.stdout).toContain('DELETE FROM carts WHERE id = 7')
      expect(r.stdout).not.toContain('NOT SIGNED')
    }
  })

  it('sessions export by id writes the session once', async () => {
    const r = await run(SessionsExport, ID)
    expect(r.stdout.split('\n').filter((l) => l.includes('"type":"session.start"'))).toHaveLength(1)
  })

  it('sessions verify by id checks every copy, and fails the misplaced ones', async () => {
    const r = await run(SessionsVerify, ID, '--json')
    const results = (r.result as {sessions: {source: string; ok: boolean; problems: {code: string}[]}[]}).sessions
    expect(results.map((x) => x.source).sort()).toEqual([PLACED, ...copies].sort())
    expect(results.find((x) => x.source === PLACED)).toMatchObject({ok: true})
    for (const key of copies) expect(results.find((x) => x.source === key)?.problems.map((p) => p.code), key).toContain('OBJECT_KEY_MISMATCH')
    expect(r.exitCode).toBe(1)
  })

  it('sessions verify --file fails every log of the session after the first, in an export of the whole bucket', async () => {
    const file = join(await tempDir('dbgate-copies-export-'), 'all.jsonl')
    await run(SessionsExport, '-o', file)
    const r = await run(SessionsVerify, '--file', file, '--json')
    const results = (r.result as {sessions: {source: string; sessionId?: string; ok: boolean; problems: {code: string}[]}[]}).sessions
    expect(results.filter((x) => x.sessionId === ID)).toHaveLength(4)
    expect(results.filter((x) => x.ok)).toHaveLength(1)
    expect(results.filter((x) => x.problems.some((p) => p.code === 'DUPLICATE_SESSION'))).toHaveLength(3)
    expect(r.exitCode).toBe(1)
  })

  it('with no copy where the shipper stores it, says which objects hold the session instead of guessing', async () => {
    await bucket.delete(PLACED)
    const r = (await run(SessionsShow, ID).catch((e: Error) => e)) as Error
    expect(r).toBeInstanceOf(Error)
    expect(r.message).toMatch(new RegExp(`session ${ID} is held by 3 objects .*none is stored under the key the shipper gives it`))
    for (const key of copies) expect(r.message).toContain(key)
  })
})
