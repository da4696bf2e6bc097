import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync, gzipSync} from 'node:zlib'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {keyObjectKey, loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import SessionsExport from '../../src/commands/sessions/export.js'
import SessionsList from '../../src/commands/sessions/list.js'
import SessionsSearch from '../../src/commands/sessions/search.js'
import SessionsStatus from '../../src/commands/sessions/status.js'
import SessionsSync from '../../src/commands/sessions/sync.js'
import SessionsVerify from '../../src/commands/sessions/verify.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'

const root = join(import.meta.dirname, '..', '..')
let key: InstallationKey
let dataHome: string
let bucketDir: string
let bucketUrl: string
const savedEnv = {...process.env}

async function record(spoolDir: string, sessionId: string, sqls: string[]) {
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-01T10:00:00Z')})
  for (const sql of sqls) s.statement(stmt(sessionId, sql))
  await s.end('client-closed')
}

/** Runs a command in-process and returns what it printed and returned. */
async function capture<T>(fn: () => Promise<T>): Promise<{result: Awaited<T>; stdout: string; exitCode: number}> {
  let stdout = ''
  // oclif prints through console.log; export streams straight to process.stdout.
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void (stdout += args.join(' ') + '\n'))
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString()
    return true
  })
  const before = process.exitCode
  try {
    const result = await fn()
    return {result, stdout, exitCode: Number(process.exitCode ?? 0)}
  } finally {
    log.mockRestore()
    write.mockRestore()
    process.exitCode = before
  }
}

beforeAll(async () => {
  dataHome = await tempDir('dbgate-data-')
  // The commands find the installation key and default dirs through the XDG variables.
  process.env.XDG_DATA_HOME = dataHome
  process.env.XDG_CACHE_HOME = await tempDir('dbgate-cache-')
  delete process.env.DBGATE_BUCKET
  delete process.env.DBGATE_CONFIG
  key = await loadOrCreateInstallationKey(join(dataHome, 'dbgate', 'keys'))
  bucketDir = await tempDir('dbgate-bucket-')
  bucketUrl = `file://${bucketDir}`
  await publishKey(new FileBucket(bucketDir), alice, key)
})
afterEach(() => {
  vi.restoreAllMocks()
})
afterAll(async () => {
  process.env = savedEnv
  await removeTempDirs()
})

describe('sessions commands', () => {
  it('status shows what waits, sync ships it, verify passes, list and search find it', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    await record(spoolDir, 'cmd-1', ['select * from users', 'drop table users'])

    const status = await capture(() => SessionsStatus.run(['--spool-dir', spoolDir, '--json'], {root}))
    expect(status.result).toMatchObject({count: 1, oldest: '2026-03-01T10:00:00.000Z', sessions: [{sessionId: 'cmd-1', state: 'ended'}]})
    expect(JSON.parse(status.stdout)).toMatchObject({count: 1})

    const sync = await capture(() => SessionsSync.run(['--spool-dir', spoolDir, '--bucket', bucketUrl], {root}))
    expect(sync.exitCode).toBe(0)
    expect(sync.stdout).toContain('shipped cmd-1 (ended')

    const verify = await capture(() => SessionsVerify.run(['--bucket', bucketUrl], {root}))
    expect(verify.exitCode).toBe(0)
    expect(verify.stdout).toMatch(/OK .* cmd-1 ended, 4 lines, signed through seq 4/)

    const list = await capture(() => SessionsList.run(['--bucket', bucketUrl, '--since', '2026-02-01'], {root}))
    expect(list.stdout.trim()).toBe('cmd-1\t2026-03-01T10:00:00.000Z\talice@example.com\tprod\t2\t0\t0\tended')

    const search = await capture(() => SessionsSearch.run(['DROP', '--bucket', bucketUrl], {root}))
    expect(search.stdout.trim()).toBe('cmd-1\t3\t2026-03-01T10:00:01.000Z\talice@example.com\tprod\tallow\t\tdrop table users')
  })

  it('verify exits 1 and names the line when a shipped object was altered', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    const bucket = new FileBucket(bucketDir)
    await record(spoolDir, 'cmd-2', ['select 1', 'select 2'])
    const [shipped] = (await shipPending({bucket, signer: key, spoolDir})).shipped
    const text = gunzipSync((await bucket.get(shipped!.key!)).body).toString().replace('select 2', 'select 3')
    await bucket.put(shipped!.key!, gzipSync(text))

    const verify = await capture(() => SessionsVerify.run(['cmd-2', '--bucket', bucketUrl, '--json'], {root}))
    expect(verify.exitCode).toBe(1)
    expect(verify.result.ok).toBe(false)
    expect(verify.result.sessions[0]!.problems.map((p) => [p.line, p.seq, p.code])).toEqual([
      [3, 3, 'HASH_MISMATCH'],
      [4, 4, 'PREV_MISMATCH'],
    ])
  })

  it('exports jsonl that verifies offline with only the key file', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    await record(spoolDir, 'cmd-3', ['select 42'])
    await capture(() => SessionsSync.run(['--spool-dir', spoolDir, '--bucket', bucketUrl], {root}))
    const out = join(await tempDir('dbgate-export-'), 'evidence.jsonl')
    await capture(() => SessionsExport.run(['cmd-1', 'cmd-3', '--bucket', bucketUrl, '-o', out], {root}))
    const keyFile = join(await tempDir('dbgate-keys-'), 'key.json')
    await mkdir(join(keyFile, '..'), {recursive: true})
    await writeFile(keyFile, await readFile(join(bucketDir, ...keyObjectKey(key.keyId).split('/'))))

    const ok = await capture(() => SessionsVerify.run(['--file', out, '--key', keyFile, '--json'], {root}))
    expect(ok.result.sessions.map((s) => [s.sessionId, s.ok])).toEqual([
      ['cmd-1', true],
      ['cmd-3', true],
    ])
    expect(ok.exitCode).toBe(0)

    const lines = (await readFile(out, 'utf8')).split('\n')
    lines.splice(2, 1)
    await writeFile(out, lines.join('\n'))
    const bad = await capture(() => SessionsVerify.run(['--file', out, '--key', keyFile, '--json'], {root}))
    expect(bad.exitCode).toBe(1)
    expect(bad.result.sessions[0]!.problems.map((p) => p.code)).toEqual(['PREV_MISMATCH', 'SEQ_GAP', 'TOTALS_MISMATCH'])
  })
})
