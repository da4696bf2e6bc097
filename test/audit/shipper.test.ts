import {spawn, spawnSync} from 'node:child_process'
import {appendFile, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import net from 'node:net'
import {gunzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket, S3Bucket, type Bucket} from '../../src/bucket/index.js'
import {Recorder} from '../../src/audit/recorder.js'
import {sessionObjectKey, shipPending, Shipper, type ShipReport} from '../../src/audit/shipper.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {loadKeyRing, loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import {SpoolWriteError} from '../../src/audit/spool.js'
import {verifySession} from '../../src/audit/verify.js'
import {transpileForChild} from './compile.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'
import {TestS3} from './s3rver.js'
import {waitFor} from '../helpers/wait.js'

let key: InstallationKey
let keyDir: string
let s3: TestS3

beforeAll(async () => {
  keyDir = join(await tempDir('dbgate-keys-'), 'keys')
  key = await loadOrCreateInstallationKey(keyDir)
  s3 = await TestS3.start()
})
afterAll(async () => {
  await s3.dispose()
  await removeTempDirs()
})


async function record(spoolDir: string, sessionId: string, opts: {end?: boolean; statements?: number; startedAt?: Date} = {}) {
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: opts.startedAt ?? new Date('2026-03-01T23:59:59Z')})
  for (let i = 0; i < (opts.statements ?? 3); i++) s.statement(stmt(sessionId, `select ${i}`))
  if (opts.end ?? true) await s.end('client-closed')
  else await s.flush()
  return s
}

async function verifyShipped(bucket: Bucket, key: string) {
  const text = gunzipSync((await bucket.get(key)).body).toString('utf8')
  return {text, result: verifySession(text, (await loadKeyRing(bucket)).keys)}
}

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!
}

describe.each([
  ['file', async () => new FileBucket(await tempDir('dbgate-bucket-'))],
  ['s3', async () => s3.bucket(`ship-${Math.random().toString(36).slice(2)}`)],
] as [string, () => Promise<Bucket>][])('shipping to a %s bucket', (_n, make) => {
  it('ships an ended session gzipped under its start date and target, then clears the spool', async () => {
    const bucket = await make()
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-spool-')
    await record(spoolDir, 'sess-ended')
    const report = await shipPending({bucket, signer: key, spoolDir})
    const objectKey = 'sessions/dt=2026-03-01/target=prod/sess-ended.jsonl.gz'
    expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-ended', key: objectKey, state: 'ended'})])
    expect(report.failed).toEqual([])
    expect(await readdir(spoolDir)).toEqual([])
    const {result} = await verifyShipped(bucket, objectKey)
    expect(result).toMatchObject({ok: true, status: 'ended'})
  })

  it('ships a live session as snapshots and the final log once it ends', async () => {
    const bucket = await make()
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-spool-')
    const s = await record(spoolDir, 'sess-live', {end: false})
    const objectKey = sessionObjectKey('sess-live', 'prod', '2026-03-01T23:59:59Z')

    expect((await shipPending({bucket, signer: key, spoolDir})).shipped).toEqual([expect.objectContaining({state: 'live'})])
    expect((await verifyShipped(bucket, objectKey)).result.status).toBe('incomplete')
    expect((await spoolStatus(spoolDir)).unshippedBytes).toBe(0)
    expect((await shipPending({bucket, signer: key, spoolDir})).unchanged).toEqual(['sess-live'])

    s.statement(stmt('sess-live', 'select 99'))
    await s.end('client-closed')
    expect((await shipPending({bucket, signer: key, spoolDir})).shipped).toEqual([expect.objectContaining({state: 'ended'})])
    const {text, result} = await verifyShipped(bucket, objectKey)
    expect(result).toMatchObject({ok: true, status: 'ended'})
    expect(text).toContain('select 99')
  })
})

describe('snapshots of long live sessions', () => {
  it('waits longer between snapshots of a bigger log, but ships its end at once', async () => {
    const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
    const spoolDir = await tempDir('dbgate-spool-')
    const s = await record(spoolDir, 'sess-long', {end: false})
    let now = new Date()
    // 100 bytes per second: this log of a few KiB may be re-shipped every few tens of seconds.
    const ship = () => shipPending({bucket, signer: key, spoolDir, now: () => now, liveSnapshotBytesPerSecond: 100})
    const first = await ship()
    expect(first.shipped).toEqual([expect.objectContaining({state: 'live'})])
    const spacingMs = (first.shipped[0]!.bytes / 100) * 1000
    s.statement(stmt('sess-long', 'select 42'))
    await s.flush()
    now = new Date(now.getTime() + spacingMs / 2)
    expect((await ship()).unchanged).toEqual(['sess-long'])
    expect((await spoolStatus(spoolDir)).unshippedBytes).toBeGreaterThan(0)
    // `dbgate sessions sync` does not wait.
    expect((await shipPending({bucket, signer: key, spoolDir})).shipped).toEqual([expect.objectContaining({state: 'live'})])
    s.statement(stmt('sess-long', 'select 43'))
    await s.flush()
    expect((await ship()).unchanged).toEqual(['sess-long'])
    now = new Date(now.getTime() + spacingMs * 2)
    expect((await ship()).shipped).toEqual([expect.objectContaining({state: 'live'})])
    s.statement(stmt('sess-long', 'select 44'))
    await s.end('client-closed')
    expect((await ship()).shipped).toEqual([expect.objectContaining({state: 'ended'})])
  })
})

describe('a writer that dies', () => {
  it('loses nothing when SIGKILLed mid-session: the next run seals and ships it as interrupted', async () => {
    const libDir = await transpileForChild()
    const spoolDir = await tempDir('dbgate-spool-')
    const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'record-child.mjs'), libDir, spoolDir, keyDir, 'sess-killed', '40'], {stdio: ['ignore', 'pipe', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('flushed 40') && resolve())
      child.on('exit', (code) => reject(new Error(`child exited early (${code}): ${stderr}`)))
    })
    // Let it write a few more batches, then kill it without any chance to clean up.
    const before = (await readFile(join(spoolDir, 'sess-killed.jsonl'), 'utf8')).split('\n').length
    await waitFor(async () => (await readFile(join(spoolDir, 'sess-killed.jsonl'), 'utf8')).split('\n').length >= before + 5, 'the child has spooled five more lines')
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    await rm(join(libDir, '..'), {recursive: true, force: true})

    const onDisk = (await readFile(join(spoolDir, 'sess-killed.jsonl'), 'utf8')).split('\n').filter((l) => l.endsWith('}')).length
    expect((await spoolStatus(spoolDir)).sessions).toEqual([expect.objectContaining({sessionId: 'sess-killed', state: 'orphaned'})])

    const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishKey(bucket, alice, key)
    const report = await shipPending({bucket, signer: key, spoolDir})
    expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-killed', state: 'interrupted'})])
    const {text, result} = await verifyShipped(bucket, report.shipped[0]!.key!)
    expect(result.problems).toEqual([])
    expect(result.status).toBe('interrupted')
    const events = text.trim().split('\n').map((l) => JSON.parse(l) as {type: string; data: {totals?: {statements: number}}})
    const statements = events.filter((e) => e.type === 'statement').length
    expect(statements).toBeGreaterThanOrEqual(45)
    // Every complete line on disk was shipped (+1 for the seal).
    expect(events.length).toBe(onDisk + 1)
    expect(events.at(-1)!.data.totals!.statements).toBe(statements)
  })

  it('cuts a torn last line before sealing and keeps its size and hash as evidence', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    await record(spoolDir, 'sess-torn', {end: false})
    await appendFile(join(spoolDir, 'sess-torn.jsonl'), '{"v":1,"type":"statement","sess')
    await writeFile(join(spoolDir, 'sess-torn.lock'), JSON.stringify({pid: deadPid(), host: (await import('node:os')).hostname(), createdAt: new Date().toISOString()}))
    const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishKey(bucket, alice, key)
    const report = await shipPending({bucket, signer: key, spoolDir})
    const {text, result} = await verifyShipped(bucket, report.shipped[0]!.key!)
    expect(result).toMatchObject({ok: true, status: 'interrupted'})
    const seal = JSON.parse(text.trim().split('\n').at(-1)!) as {type: string; data: {tornBytes: number; tornSha256: string}}
    expect(seal.type).toBe('session.interrupted')
    expect(seal.data.tornBytes).toBe(Buffer.byteLength('{"v":1,"type":"statement","sess'))
    expect(seal.data.tornSha256).toMatch(/^[0-9a-f]{64}$/)
  })
})

describe('a bucket that is down', () => {
  it('is tried by one layer of retries only: the S3 client\'s attempts, not the shipper\'s on top', async () => {
    // An endpoint that accepts each connection and drops it at once: every attempt is counted.
    let attempts = 0
    const dead = net.createServer((socket) => {
      attempts++
      socket.destroy()
    })
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
    const port = (dead.address() as net.AddressInfo).port
    try {
      const spoolDir = await tempDir('dbgate-spool-')
      await record(spoolDir, 'sess-dead-endpoint')
      const bucket = new S3Bucket('s3://audit/x', {endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, region: 'us-east-1', credentials: {accessKeyId: 'AKID', secretAccessKey: 'secret'}})
      const report = await shipPending({bucket, signer: key, spoolDir})
      expect(report.failed.map((f) => f.error?.code)).toEqual(['BUCKET_UNREACHABLE'])
      // The S3 client's default of three attempts, once: the log stays in the spool for the next pass.
      expect(attempts).toBe(3)
      expect((await spoolStatus(spoolDir)).count).toBe(1)
    } finally {
      await new Promise((r) => dead.close(r))
    }
  })


  it('keeps everything in the spool while it is down and ships it all when it is back', async () => {
    const bucket = s3.bucket('outage')
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-spool-')
    await s3.down()
    try {
      await record(spoolDir, 'sess-outage-1')
      await record(spoolDir, 'sess-outage-2', {statements: 5})
      const failed = await shipPending({bucket, signer: key, spoolDir})
      expect(failed.shipped).toEqual([])
      expect(failed.failed.map((f) => [f.sessionId, f.error?.code])).toEqual([
        ['sess-outage-1', 'BUCKET_UNREACHABLE'],
        ['sess-outage-2', 'BUCKET_UNREACHABLE'],
      ])
      const status = await spoolStatus(spoolDir)
      expect(status).toMatchObject({count: 2, oldest: '2026-03-01T23:59:59.000Z'})
      expect(status.bytes).toBeGreaterThan(0)
    } finally {
      await s3.up()
    }
    const report = await shipPending({bucket, signer: key, spoolDir})
    expect(report.shipped.map((s) => s.sessionId)).toEqual(['sess-outage-1', 'sess-outage-2'])
    for (const s of report.shipped) expect((await verifyShipped(bucket, s.key!)).result).toMatchObject({ok: true, status: 'ended'})
    expect((await spoolStatus(spoolDir)).count).toBe(0)
  })
})

describe('the spool', () => {
  it('keeps events appended while a write is in flight', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0, flushIntervalMs: 0})
    const s = rec.startSession({sessionId: 'sess-busy', identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}})
    for (let i = 0; i < 2000; i++) {
      s.statement(stmt('sess-busy', `select ${i}`))
      // Yield now and then so flushes run between appends, as they do under a live tunnel.
      if (i % 7 === 0) await new Promise((r) => setImmediate(r))
    }
    await s.end('done')
    const text = await readFile(s.spoolPath, 'utf8')
    expect(verifySession(text, new Map()).problems.filter((p) => p.code !== 'UNKNOWN_KEY')).toEqual([])
    expect(text.trim().split('\n')).toHaveLength(2002)
  })

  it('reports a failed disk write loudly, keeps the events, and writes them once the disk is back', async () => {
    const parent = await tempDir('dbgate-spool-')
    const spoolDir = join(parent, 'spool')
    // A file where the spool directory should be makes every write fail.
    await writeFile(spoolDir, 'not a directory')
    const errors: Error[] = []
    const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0, onError: (e) => errors.push(e)})
    const s = rec.startSession({sessionId: 'sess-disk', identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}})
    s.statement(stmt('sess-disk', 'select 1'))
    await expect(s.flush()).rejects.toBeInstanceOf(SpoolWriteError)
    expect(errors[0]).toBeInstanceOf(SpoolWriteError)
    expect(errors[0]!.message).toContain(spoolDir)

    await rm(spoolDir)
    s.statement(stmt('sess-disk', 'select 2'))
    await s.end('client-closed')
    const text = await readFile(join(spoolDir, 'sess-disk.jsonl'), 'utf8')
    const types = text.trim().split('\n').map((l) => JSON.parse(l).type)
    expect(types).toEqual(['session.start', 'statement', 'statement', 'session.end'])
    expect(await readdir(spoolDir)).toEqual(['sess-disk.jsonl'])
    expect(verifySession(text, new Map()).problems.every((p) => p.code === 'UNKNOWN_KEY')).toBe(true)
  })
})


describe('the background shipper', () => {
  it('checkpoints and ships a live session, then ships its end after kick()', async () => {
    const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-spool-')
    const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
    const s = rec.startSession({sessionId: 'sess-bg', identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-02T00:00:00Z')})
    s.statement(stmt('sess-bg', 'select 1'))
    s.statement(stmt('sess-bg', 'select 2'))
    const reports: ShipReport[] = []
    const shipper = new Shipper({bucket, signer: key, spoolDir, intervalMs: 3_600_000, beforeRun: () => rec.checkpointLive(), onReport: (r) => reports.push(r)})
    shipper.start()
    try {
      await waitFor(() => reports.length > 0, 'the shipper reports a checkpoint')
      const objectKey = sessionObjectKey('sess-bg', 'prod', '2026-03-02T00:00:00Z')
      const live = (await verifyShipped(bucket, objectKey)).result
      // The snapshot ends on the checkpoint the shipper asked for, so all of it is signed.
      expect(live.problems.map((p) => p.code)).toEqual(['MISSING_END'])
      expect(live.signedThroughSeq).toBe(live.lines)

      await s.end('client-closed')
      shipper.kick()
      await waitFor(() => reports.some((r) => r.shipped.some((x) => x.state === 'ended')), 'the shipper reports the ended session shipped')
      expect((await verifyShipped(bucket, objectKey)).result).toMatchObject({ok: true, status: 'ended'})
    } finally {
      await shipper.stop()
    }
  })
})

describe('session ids', () => {
  it('refuse to record a second log under an id that is already spooled', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    await record(spoolDir, 'sess-dup', {end: false})
    const errors: Error[] = []
    const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0, onError: (e) => errors.push(e)})
    const s = rec.startSession({sessionId: 'sess-dup', identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}})
    await expect(s.flush()).rejects.toThrow(/EEXIST/)
    expect(errors).toHaveLength(1)
    // The first writer's log and lock are untouched.
    expect((await spoolStatus(spoolDir)).sessions).toEqual([expect.objectContaining({sessionId: 'sess-dup', state: 'live'})])
  })
})
