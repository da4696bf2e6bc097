/**
 * A background shipper compresses each line of a live session once: every snapshot is the gzip it
 * shipped last time followed by a gzip member of the lines written since. What lands in the bucket
 * must still be exactly the log (every reader decompresses all members), verify as before, and
 * never reuse a kept prefix for a log whose bytes before that point are not the ones it compressed.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Bucket} from '../../src/bucket/index.js'
import {CompressedLogs, sessionObjectKey, shipPending} from '../../src/audit/shipper.js'
import {loadKeyRing, loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import {verifySession} from '../../src/audit/verify.js'
import {liveSession, removeTempDirs, tempDir} from './helpers.js'

let key: InstallationKey

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
})
afterAll(removeTempDirs)

const startedAt = new Date('2026-03-01T10:00:00Z')
const objectKey = (sessionId: string) => sessionObjectKey(sessionId, 'prod', startedAt)

const setup = (sessionId: string, shared?: {bucket: Bucket; spoolDir: string}) => liveSession(key, sessionId, startedAt, shared)

async function shipped(bucket: Bucket, sessionId: string): Promise<Buffer> {
  return (await bucket.get(objectKey(sessionId))).body
}

/** The complete lines of the log on disk now. */
async function onDisk(path: string): Promise<Buffer> {
  const buf = await readFile(path)
  return buf.subarray(0, buf.lastIndexOf(0x0a) + 1)
}

describe('a background shipper keeps what it compressed', () => {
  it('ships snapshots that are the last one plus the new lines, each exactly the log, and a final log that verifies', async () => {
    const {bucket, spoolDir, session, write} = await setup('sess-grow')
    const compressed = new CompressedLogs()
    let previous: Buffer | undefined
    for (let round = 0; round < 4; round++) {
      await write(150)
      const report = await shipPending({bucket, signer: key, spoolDir, compressed})
      expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-grow', state: 'live'})])
      const body = await shipped(bucket, 'sess-grow')
      expect(gunzipSync(body).equals(await onDisk(session.spoolPath))).toBe(true)
      // Past the first 64 KiB, the earlier object is reused as it was: only the new lines are compressed.
      if (previous && previous.length > 0 && round >= 2) expect(body.subarray(0, previous.length).equals(previous)).toBe(true)
      previous = body
    }
    expect(compressed.size).toBe(1)
    await session.end('client-closed')
    const report = await shipPending({bucket, signer: key, spoolDir, compressed})
    expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-grow', state: 'ended'})])
    const body = await shipped(bucket, 'sess-grow')
    expect(body.subarray(0, previous!.length).equals(previous!)).toBe(true)
    const text = gunzipSync(body).toString('utf8')
    expect(text.trim().split('\n')).toHaveLength(602 + 12)
    expect(verifySession(text, (await loadKeyRing(bucket)).keys)).toMatchObject({ok: true, status: 'ended'})
    // Shipped and removed from the spool: nothing is kept for it.
    expect(compressed.size).toBe(0)
  })

  it('compresses the whole log again when the bytes before the kept part are not the ones it compressed', async () => {
    const {bucket, spoolDir, session, write} = await setup('sess-changed')
    const compressed = new CompressedLogs()
    await write(300)
    await shipPending({bucket, signer: key, spoolDir, compressed})
    const first = await shipped(bucket, 'sess-changed')
    expect(compressed.size).toBe(1)
    // The last line's hash on disk changed under the shipper (same length, so only the bytes tell).
    const log = await readFile(session.spoolPath)
    const at = log.lastIndexOf('"hash":"') + 8
    log[at] = log[at] === 0x30 ? 0x31 : 0x30
    await writeFile(session.spoolPath, log)
    await write(50)
    await shipPending({bucket, signer: key, spoolDir, compressed})
    const second = await shipped(bucket, 'sess-changed')
    expect(second.subarray(0, first.length).equals(first)).toBe(false)
    expect(gunzipSync(second).equals(await onDisk(session.spoolPath))).toBe(true)
    await session.end('client-closed')
  })

  it('keeps nothing for small logs, nor for logs that left the spool', async () => {
    const small = await setup('sess-small')
    const compressed = new CompressedLogs()
    await small.write(3)
    await shipPending({bucket: small.bucket, signer: key, spoolDir: small.spoolDir, compressed})
    expect(compressed.size).toBe(0)
    expect(gunzipSync(await shipped(small.bucket, 'sess-small')).equals(await onDisk(small.session.spoolPath))).toBe(true)

    const big = await setup('sess-gone')
    await big.write(300)
    await shipPending({bucket: big.bucket, signer: key, spoolDir: big.spoolDir, compressed})
    expect(compressed.size).toBe(1)
    await big.session.end('client-closed')
    // Shipped by someone else (`dbgate sessions sync`): the next run finds it gone and forgets it.
    await shipPending({bucket: big.bucket, signer: key, spoolDir: big.spoolDir})
    await shipPending({bucket: big.bucket, signer: key, spoolDir: big.spoolDir, compressed})
    expect(compressed.size).toBe(0)
  })

  it('keeps at most its budget of gzip, dropping the least recently kept log, and still ships every log exactly', async () => {
    const a = await setup('sess-budget-a')
    const b = await setup('sess-budget-b', a)
    await a.write(300)
    await b.write(300)
    const probe = new CompressedLogs()
    const sizes = [
      (await probe.compress('a', await onDisk(a.session.spoolPath))).length,
      (await probe.compress('b', await onDisk(b.session.spoolPath))).length,
    ]
    // Room for either log, not for both.
    const budget = Math.max(...sizes) + 100
    expect(sizes[0]! + sizes[1]!).toBeGreaterThan(budget)
    const compressed = new CompressedLogs(budget)
    const report = await shipPending({bucket: a.bucket, signer: key, spoolDir: a.spoolDir, compressed})
    expect(report.shipped.map((s) => s.sessionId).sort()).toEqual(['sess-budget-a', 'sess-budget-b'])
    expect(compressed.size).toBe(1)
    expect(compressed.bytes).toBeLessThanOrEqual(budget)
    // Whichever was dropped is compressed whole at its next snapshot; both stay exact.
    await a.write(20)
    await b.write(20)
    await shipPending({bucket: a.bucket, signer: key, spoolDir: a.spoolDir, compressed})
    for (const [id, s] of [['sess-budget-a', a], ['sess-budget-b', b]] as const) {
      expect(gunzipSync(await shipped(a.bucket, id)).equals(await onDisk(s.session.spoolPath))).toBe(true)
    }
    expect(compressed.bytes).toBeLessThanOrEqual(budget)
    await a.session.end('client-closed')
    await b.session.end('client-closed')
  })
})
