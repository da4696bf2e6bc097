/**
 * The shipper's large buffers (a log's snapshot, its gzip, an upload's body) never come from
 * malloc: a freed malloc'd chunk of 128 KiB or more raises glibc's mmap threshold, and the tunnel
 * then keeps tens of MB after its load (src/runtime/page-buffer.ts). Node's Buffers of that size
 * are malloc'd; the shipper's must be on pages of their own or below 128 KiB, and what it ships
 * must still be exactly the log.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {CompressedLogs, sessionObjectKey, shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import {concatPages, pageBuffer, PAGE_BUFFER_FROM} from '../../src/runtime/page-buffer.js'
import {liveSession, removeTempDirs, tempDir} from './helpers.js'

let key: InstallationKey

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
})
afterAll(removeTempDirs)

const startedAt = new Date('2026-03-01T10:00:00Z')
const LARGE = 128 * 1024

/** Sizes of the malloc'd Buffers of 128 KiB or more made through Node's Buffer functions (zlib's output and joins use them too) while `watching`. */
const large: number[] = []
let watching = false
const originals = {allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow, alloc: Buffer.alloc, concat: Buffer.concat}
function watchLargeBuffers(): void {
  large.length = 0
  watching = true
  for (const name of ['allocUnsafe', 'allocUnsafeSlow', 'alloc'] as const) {
    const orig = originals[name] as (size: number, ...rest: unknown[]) => Buffer
    ;(Buffer as unknown as Record<string, unknown>)[name] = (size: number, ...rest: unknown[]) => {
      if (watching && size >= LARGE) large.push(size)
      return orig.call(Buffer, size, ...rest)
    }
  }
  Buffer.concat = ((list: readonly Uint8Array[], total?: number) => {
    const out = originals.concat.call(Buffer, list, total)
    if (watching && out.length >= LARGE) large.push(out.length)
    return out
  }) as typeof Buffer.concat
}
afterEach(() => {
  watching = false
  Object.assign(Buffer, originals)
})

/**
 * A buffer on pages of its own: a WebAssembly memory's, which a transfer leaves in place (a
 * malloc'd one it detaches: never ask this of a buffer in use, or of Node's small-buffer pool).
 */
function onOwnPages(buf: Buffer): boolean {
  const ab = buf.buffer as ArrayBuffer
  structuredClone(ab, {transfer: [ab]})
  return ab.byteLength > 0
}

describe('page buffers', () => {
  it('holds what is written to it, at the size asked, on pages of its own from 64 KiB', () => {
    for (const size of [0, 1, PAGE_BUFFER_FROM - 1, PAGE_BUFFER_FROM, LARGE + 1, 3 * 1024 * 1024 + 5]) {
      const buf = pageBuffer(size)
      expect(buf.length).toBe(size)
      buf.fill(0x5a)
      expect(buf.every((b) => b === 0x5a)).toBe(true)
      if (size >= PAGE_BUFFER_FROM) expect(onOwnPages(buf)).toBe(true)
    }
    // The check itself: a malloc'd buffer of the same size is transferable.
    expect(onOwnPages(Buffer.allocUnsafeSlow(LARGE))).toBe(false)
  })

  it('joins buffers byte for byte', () => {
    const parts = [Buffer.from('abc'), Buffer.alloc(70 * 1024, 1), Buffer.alloc(0), Buffer.alloc(90 * 1024, 2), Buffer.from('xyz')]
    const joined = concatPages(parts)
    expect(joined.equals(Buffer.concat(parts))).toBe(true)
    expect(onOwnPages(joined)).toBe(true)
    expect(concatPages([Buffer.from('small')]).toString()).toBe('small')
  })
})

describe('the shipper and large native buffers', () => {
  it('reads, compresses and uploads a growing log of several MB with no malloc of 128 KiB or more, and ships it exactly', async () => {
    const {bucket, spoolDir, session, write} = await liveSession(key, 'sess-big', startedAt)
    const compressed = new CompressedLogs()
    const objectKey = sessionObjectKey('sess-big', 'prod', startedAt)
    for (let round = 0; round < 3; round++) {
      await write(4000)
      watchLargeBuffers()
      const report = await shipPending({bucket, signer: key, spoolDir, compressed})
      watching = false
      expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-big', state: 'live'})])
      const log = await readFile(session.spoolPath)
      expect(log.length).toBeGreaterThan((round + 1) * 1024 * 1024)
      // FileBucket reads the object whole: outside the watch.
      const body = (await bucket.get(objectKey)).body
      expect(gunzipSync(body).equals(log.subarray(0, log.lastIndexOf(0x0a) + 1))).toBe(true)
      expect(large).toEqual([])
    }
    // Without a kept prefix (`dbgate sessions sync`): the whole log read and compressed.
    await write(100)
    watchLargeBuffers()
    const report = await shipPending({bucket, signer: key, spoolDir})
    watching = false
    expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-big', state: 'live'})])
    expect(large).toEqual([])
    const log = await readFile(session.spoolPath)
    expect(gunzipSync((await bucket.get(objectKey)).body).equals(log.subarray(0, log.lastIndexOf(0x0a) + 1))).toBe(true)
    await session.end('client-closed')
  })
})
