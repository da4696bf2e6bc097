/**
 * What an auditor's tools say about statements whose text is not what the server did: a COMMIT (or
 * END, COMMIT AND CHAIN, PREPARE TRANSACTION, in either protocol) sent after an error in its
 * transaction block, which the server answers with ROLLBACK, and statements of a pipeline the server
 * skipped after an earlier error. The log holds the truth (`commandTags`, `outcome`); `sessions
 * show`, `replay`, `search` and `export --format csv` must show it, not a bare "ALLOW commit" that
 * reads as committed, or "ALLOW delete · 0 rows" for a DELETE that never ran.
 */
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync, gzipSync} from 'node:zlib'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sealEvent, sha256hex} from '../../src/audit/chain.js'
import {parseEventLine, type StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey} from '../../src/audit/signing.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import SessionsExport from '../../src/commands/sessions/export.js'
import SessionsReplay from '../../src/commands/sessions/replay.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsShow from '../../src/commands/sessions/show.js'
import {captureCommand} from '../helpers/capture.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'
import {TestS3} from './s3rver.js'

const root = join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
const classOf = (sql: string): string => /^\s*(\w+)/.exec(sql)?.[1]?.toLowerCase() ?? 'unknown'

let db: UpstreamInfo
let s3: TestS3
let t: TestTunnel
let config: string
let sessionIds: string[] = []

/** Each ends a transaction block that failed: the server answers every one with the tag ROLLBACK. */
const FINISHERS = ['commit', 'END', 'commit and chain', "prepare transaction 'tx_outcomes_1'", 'COMMIT WORK']

beforeAll(async () => {
  const dataHome = await tempDir('dbgate-data-')
  Object.assign(process.env, {XDG_DATA_HOME: dataHome, XDG_CACHE_HOME: await tempDir('dbgate-cache-'), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1'})
  delete process.env.DBGATE_BUCKET
  delete process.env.DBGATE_CONFIG
  s3 = await TestS3.start()
  const bucket = s3.bucket('audit')
  config = join(await tempDir('dbgate-config-'), 'dbgate.yaml')
  await writeFile(config, ['bucket:', `  url: s3://${s3.bucketName}/audit`, `  endpoint: ${s3.endpoint}`, '  forcePathStyle: true', '  region: us-east-1', 'targets:', '  prod: {host: 127.0.0.1, database: app, user: app_rw}', ''].join('\n'))

  db = await createTestDatabase('tx_outcomes')
  await withClient(db.url, (c) => c.query('create table u (id int primary key)'))
  const key = await loadOrCreateInstallationKey(join(dataHome, 'dbgate', 'keys'))
  await publishKey(bucket, alice, key)
  const spoolDir = await tempDir('dbgate-spool-')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
  t = await startTunnel(db, {statement: () => ({action: 'allow'}), ...createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: (ev) => ({class: classOf(ev.sql)})})})

  // The simple protocol, as psql sends it.
  const c = await t.client({application_name: 'tx-simple'})
  for (const [i, finisher] of FINISHERS.entries()) {
    await c.query('begin')
    await c.query(`insert into u values (${i + 1})`)
    await expect(c.query('select 1/0')).rejects.toMatchObject({code: '22012'})
    expect((await c.query(finisher)).command).toBe('ROLLBACK')
    if (finisher.includes('chain')) await c.query('rollback')
  }
  await c.end()

  // The extended protocol: the same COMMIT after a failed block, and a pipeline whose DELETE the server skips.
  const r = await RawClient.connect(t.port, {password: t.secret, database: db.database})
  const query = (sql: string) => {
    r.send(serialize.query(sql))
    return r.untilReady()
  }
  const extended = (...texts: string[]) => {
    r.send(...texts.flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]), serialize.sync())
    return r.untilReady()
  }
  await query('begin')
  await query('insert into u values (100)')
  await query('select 1/0')
  const commit = await extended('commit')
  expect(commit.filter((m) => m.code === 'C').map((m) => m.body.toString('utf8', 0, m.body.length - 1))).toEqual(['ROLLBACK'])
  await extended('insert into u values (200)', 'select 1/0', 'delete from u where id > 0')
  r.end()

  await waitFor(async () => {
    const st = await spoolStatus(spoolDir)
    return st.sessions.length === 2 && st.sessions.every((s) => s.state === 'ended')
  }, 'both sessions are recorded and sealed')
  sessionIds = (await spoolStatus(spoolDir)).sessions.map((s) => s.sessionId)
  expect((await shipPending({bucket, signer: key, spoolDir})).failed).toEqual([])
  // Nothing was committed: every block failed, and the pipeline's implicit transaction too.
  await withClient(db.url, async (pg) => expect((await pg.query('select count(*)::int as n from u')).rows).toEqual([{n: 0}]))
}, 120_000)
afterAll(async () => {
  process.env = savedEnv
  await t?.close()
  await s3?.dispose()
  await removeTempDirs()
})

const viewers: Record<string, (id: string) => Promise<unknown>> = {show: (id: string) => SessionsShow.run([id, '--config', config], {root}), replay: (id: string) => SessionsReplay.run([id, '--config', config, '--no-wait'], {root})}

/** The lines of one statement's block in `show` or `replay` output: its head and the indented lines under it. */
function blockOf(out: string, sql: string): string[] {
  const lines = out.split('\n')
  const at = lines.findIndex((l, i) => l === `    ${sql}` && /^\+\d\d:/.test(lines[i - 1] ?? ''))
  expect(at, `the statement ${sql} is shown`).toBeGreaterThan(0)
  const block = [lines[at - 1]!]
  for (let i = at; i < lines.length && lines[i]!.startsWith('    '); i++) block.push(lines[i]!)
  return block
}

describe('a COMMIT the server answered with ROLLBACK', () => {
  it('is recorded with the server\'s tag', async () => {
    const reader = new SessionReader(s3.bucket('audit'), await tempDir('dbgate-cache-'))
    const statements: StatementData[] = []
    for (const id of sessionIds) statements.push(...(await reader.load(id)).events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData))
    for (const sql of FINISHERS) expect(statements.find((s) => s.sql === sql)).toMatchObject({outcome: 'ok', commandTags: ['ROLLBACK']})
    expect(statements.filter((s) => s.sql === 'commit').map((s) => s.commandTags)).toEqual([['ROLLBACK'], ['ROLLBACK']])
  })

  for (const [name, view] of Object.entries(viewers)) {
    it(`sessions ${name} says ROLLBACK beside it, in both protocols`, async () => {
      for (const id of sessionIds) {
        const r = await captureCommand(() => view(id))
        const out = r.stdout
        const finishers = out.includes('tx-simple') ? FINISHERS : ['commit']
        for (const sql of finishers) {
          const [head] = blockOf(out, sql)
          expect(head, `${sql} in ${id}`).toMatch(/ROLLBACK/)
        }
        // A statement that did what it says is not cluttered with its tag.
        if (out.includes('tx-simple')) expect(blockOf(out, 'begin')[0]).not.toMatch(/BEGIN/)
      }
    })
  }

  it('sessions export --format csv has the server\'s tags beside the outcome', async () => {
    const r = await captureCommand(() => SessionsExport.run(['--config', config, '--format', 'csv'], {root}))
    const [header, ...rows] = r.stdout.trim().split('\n')
    const cols = header!.split(',')
    const tagsAt = cols.indexOf('command_tags')
    expect(tagsAt).toBeGreaterThan(0)
    const commits = rows.filter((row) => /,commit$/.test(row))
    expect(commits).toHaveLength(2)
    for (const row of commits) expect(row.split(',')[tagsAt]).toBe('ROLLBACK')
  })

  it('sessions search shows the tag on a terminal, and --json has the outcome and the tags', async () => {
    const tty = process.stdout.isTTY
    Object.defineProperty(process.stdout, 'isTTY', {value: true, configurable: true})
    try {
      const r = await captureCommand(() => SessionsSearch.run(['commit', '--config', config], {root}))
      // commit, commit and chain and COMMIT WORK in the simple protocol, commit in the extended one.
      expect(r.stdout.match(/server answered ROLLBACK/g), r.stdout).toHaveLength(4)
    } finally {
      Object.defineProperty(process.stdout, 'isTTY', {value: tty, configurable: true})
    }
    const json = await captureCommand(() => SessionsSearch.run(['commit', '--config', config, '--json'], {root}))
    const {matches} = JSON.parse(json.stdout) as {matches: {sql: string; outcome?: string; commandTags?: string[]}[]}
    expect(matches).toHaveLength(4)
    for (const m of matches) expect(m).toMatchObject({outcome: 'ok', commandTags: ['ROLLBACK']})
  })
})

describe('a statement of a pipeline the server skipped after an error', () => {
  it('is recorded aborted, and show, replay and search say it never ran', async () => {
    for (const sid of sessionIds) {
      const show = (await captureCommand(() => SessionsShow.run([sid, '--config', config], {root}))).stdout
      if (!show.includes('delete from u where id > 0')) continue
      expect(blockOf(show, 'delete from u where id > 0')[0]).toMatch(/NOT RUN/)
      const replay = (await captureCommand(() => SessionsReplay.run([sid, '--config', config, '--no-wait'], {root}))).stdout
      expect(blockOf(replay, 'delete from u where id > 0')[0]).toMatch(/NOT RUN/)
      // What did run is not marked so.
      expect(blockOf(show, 'insert into u values (200)')[0]).not.toMatch(/NOT RUN/)
    }
    const tty = process.stdout.isTTY
    Object.defineProperty(process.stdout, 'isTTY', {value: true, configurable: true})
    try {
      const r = await captureCommand(() => SessionsSearch.run(['delete from u', '--config', config], {root}))
      expect(r.stdout).toMatch(/allow NOT RUN \(aborted/)
    } finally {
      Object.defineProperty(process.stdout, 'isTTY', {value: tty, configurable: true})
    }
    const json = await captureCommand(() => SessionsSearch.run(['delete from u', '--config', config, '--json'], {root}))
    expect((JSON.parse(json.stdout) as {matches: unknown[]}).matches).toEqual([expect.objectContaining({outcome: 'aborted'})])
  })
})

describe('lines chained on after a log\'s last signature', () => {
  it('are marked NOT SIGNED by sessions show and replay, and an untouched log has no such mark', async () => {
    // Someone with write access to the bucket, and no key, cuts a log's signed end off and chains a statement on.
    const bucket = s3.bucket('audit')
    let victim: string | undefined
    for await (const o of bucket.list('sessions/')) {
      const lines = gunzipSync((await bucket.get(o.key)).body).toString('utf8').trimEnd().split('\n')
      if (lines[0]!.includes('tx-simple')) continue
      const kept = lines.slice(0, -1)
      const last = parseEventLine(kept.at(-1)!)
      const data = {...(parseEventLine(kept.find((l) => l.includes('"type":"statement"'))!).data as Record<string, unknown>), sql: 'drop table payroll', commandTags: ['DROP TABLE'], outcome: 'ok'}
      kept.push(sealEvent({type: 'statement', session: last.session, seq: last.seq + 1, ts: last.ts, prev: sha256hex(kept.at(-1)!), data}))
      await bucket.put(o.key, gzipSync(kept.join('\n') + '\n'))
      victim = last.session
    }
    expect(victim).toBeDefined()
    const untouched = sessionIds.find((id) => id !== victim)!
    for (const view of Object.values(viewers)) {
      const forged = (await captureCommand(() => view(victim!))).stdout
      expect(blockOf(forged, 'drop table payroll').join('\n')).toMatch(/NOT SIGNED/)
      const clean = (await captureCommand(() => view(untouched))).stdout
      expect(clean).toContain('session end')
      expect(clean).not.toMatch(/NOT SIGNED/)
    }
  })
})
