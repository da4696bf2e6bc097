/**
 * A background shipper reads only the lines after the part of a log it compressed before. Every
 * object it ships must still be exactly the complete lines on disk: when the log grows, when it is
 * truncated or rewritten under the shipper, when it is replaced by another file, and when its
 * writer dies after a snapshot and the log is sealed and shipped (by the same shipper, or by a new
 * process that kept nothing).
 */
import {spawnSync} from 'node:child_process'
import {appendFile, readFile, rename, truncate, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {CompressedLogs, sessionObjectKey, shipPending} from '../../src/audit/shipper.js'
import {readSnapshot} from '../../src/audit/spool-scan.js'
import {loadKeyRing, loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import {verifySession} from '../../src/audit/verify.js'
import {liveSession, removeTempDirs, tempDir} from './helpers.js'

let key: InstallationKey

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
})
afterAll(removeTempDirs)

const startedAt = new Date('2026-03-01T10:00:00Z')

async function setup(sessionId: string) {
  const {bucket, spoolDir, session, write} = await liveSession(key, sessionId, startedAt)
  const compressed = new CompressedLogs()
  const ship = (kept: CompressedLogs | undefined = compressed) => shipPending({bucket, signer: key, spoolDir, compressed: kept})
  /** The object in the bucket, decompressed. */
  const shipped = async () => gunzipSync((await bucket.get(sessionObjectKey(sessionId, 'prod', startedAt))).body)
  return {bucket, spoolDir, session, write, compressed, ship, shipped, path: session.spoolPath}
}

/** The complete lines of the log on disk now. */
async function onDisk(path: string): Promise<Buffer> {
  const buf = await readFile(path)
  return buf.subarray(0, buf.lastIndexOf(0x0a) + 1)
}

/** A pid that certainly belonged to a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!

describe('a snapshot read after the kept part of a log', () => {
  it('reads exactly the bytes after that part, and every object is exactly the log', async () => {
    const t = await setup('sess-offset')
    await t.write(300)
    await t.ship()
    const prefix = t.compressed.prefix('sess-offset')!
    expect(prefix.bytes).toBe((await onDisk(t.path)).length)

    await t.write(120)
    const disk = await onDisk(t.path)
    const snap = await readSnapshot(t.path, prefix)
    expect(snap.from).toBe(prefix.bytes)
    expect(snap.completeBytes).toBe(disk.length)
    expect(snap.complete.equals(disk.subarray(prefix.bytes))).toBe(true)
    expect(snap.tornTail.length).toBe(0)
    expect(snap.lastType).toBe('statement')
    expect(snap.start).toEqual({target: 'prod', startedAt: startedAt.toISOString()})
    // A partial read cannot stand in for the whole log where every line counts.
    expect(() => snap.lines()).toThrow(/read it whole/)
    // Nothing new: no lines, and the last one's type is the kept one's.
    const whole = await readSnapshot(t.path)
    expect(whole.from).toBe(0)
    expect(whole.complete.equals(disk)).toBe(true)

    for (let round = 0; round < 3; round++) {
      await t.write(round === 1 ? 0 : 70)
      const report = await t.ship()
      const unchanged = round === 1
      expect(report.shipped.length).toBe(unchanged ? 0 : 1)
      expect((await t.shipped()).equals(await onDisk(t.path))).toBe(true)
      expect(t.compressed.prefix('sess-offset')!.bytes).toBe((await onDisk(t.path)).length)
    }
    await t.session.end('client-closed')
    const report = await t.ship()
    expect(report.shipped).toEqual([expect.objectContaining({sessionId: 'sess-offset', state: 'ended'})])
    const text = (await t.shipped()).toString('utf8')
    expect(text.trim().split('\n')).toHaveLength(1 + 560 + 11 + 1)
    expect(verifySession(text, (await loadKeyRing(t.bucket)).keys)).toMatchObject({ok: true, status: 'ended'})
    expect(t.compressed.size).toBe(0)
  })

  it('ships exactly the log when it was truncated under the shipper, whether it grew past the kept part again or not', async () => {
    const t = await setup('sess-truncated')
    await t.write(300)
    await t.ship()
    let kept = t.compressed.prefix('sess-truncated')!.bytes
    // Cut in the middle of a line well before the kept end; the writer appends after the cut, past
    // the old kept end before the shipper looks again, with other bytes there.
    await truncate(t.path, kept - 5000)
    await t.write(200)
    expect((await readFile(t.path)).length).toBeGreaterThan(kept + 1000)
    await t.ship()
    expect((await t.shipped()).equals(await onDisk(t.path))).toBe(true)
    // Cut again, and shipped while shorter than the kept part.
    kept = t.compressed.prefix('sess-truncated')!.bytes
    await truncate(t.path, kept - 3000)
    await t.write(1)
    await t.ship()
    expect((await t.shipped()).equals(await onDisk(t.path))).toBe(true)
    await t.session.end('client-closed')
  })

  it('ships exactly the log when it was rewritten in place with other bytes before the kept end', async () => {
    const t = await setup('sess-rewritten')
    await t.write(300)
    await t.ship()
    const kept = t.compressed.prefix('sess-rewritten')!.bytes
    // The same length, one byte changed in the last shipped line's hash (the bytes the check reads).
    const log = await readFile(t.path)
    const at = log.lastIndexOf('"hash":"', kept - 1) + 8
    log[at] = log[at] === 0x30 ? 0x31 : 0x30
    await writeFile(t.path, log)
    await t.write(40)
    await t.ship()
    expect((await t.shipped()).equals(await onDisk(t.path))).toBe(true)
    await t.session.end('client-closed')
  })

  it('ships exactly the log when another file replaced it, even one with the same bytes before the kept end', async () => {
    const t = await setup('sess-replaced')
    await t.write(300)
    await t.ship()
    const kept = t.compressed.prefix('sess-replaced')!.bytes
    // Another file: the first line differs, the lines around the kept end are the same bytes.
    const log = await readFile(t.path)
    const other = Buffer.from(log)
    const at = other.indexOf('"dbUser":"app_rw"') + 14
    other[at] = 0x41
    expect(other.subarray(kept - 200, kept).equals(log.subarray(kept - 200, kept))).toBe(true)
    await writeFile(`${t.path}.new`, Buffer.concat([other, Buffer.from('{"v":1,"type":"note"}\n')]))
    await rename(`${t.path}.new`, t.path)
    await t.ship()
    const shipped = await t.shipped()
    expect(shipped.equals(await onDisk(t.path))).toBe(true)
    expect(shipped.includes('"dbUser":"app_Aw"')).toBe(true)
  })
})

describe('a writer that dies after a snapshot', () => {
  /** Leaves the session as a killed writer would: a torn line after its last one, a lock naming a dead process. */
  async function kill(path: string, spoolDir: string, sessionId: string): Promise<void> {
    await appendFile(path, '{"v":1,"type":"statement","sess')
    await writeFile(join(spoolDir, `${sessionId}.lock`), JSON.stringify({pid: deadPid(), host: hostname(), createdAt: new Date().toISOString()}))
  }

  for (const who of ['the same shipper, which kept the gzip of its first part', 'a new process, which kept nothing'] as const) {
    it(`is sealed and shipped whole by ${who}`, async () => {
      const sessionId = who.startsWith('the same') ? 'sess-died-same' : 'sess-died-new'
      const t = await setup(sessionId)
      await t.write(300)
      await t.ship()
      expect(t.compressed.size).toBe(1)
      await t.write(80)
      await kill(t.path, t.spoolDir, sessionId)
      const shipper = who.startsWith('the same') ? t.compressed : new CompressedLogs()
      const report = await t.ship(shipper)
      expect(report.shipped).toEqual([expect.objectContaining({sessionId, state: 'interrupted'})])
      // Sealed on disk (torn line cut, seal appended), shipped, then removed: the object is what was there.
      const text = (await t.shipped()).toString('utf8')
      const lines = text.trim().split('\n')
      expect(lines).toHaveLength(1 + 380 + 7 + 1)
      const result = verifySession(text, (await loadKeyRing(t.bucket)).keys)
      expect(result).toMatchObject({ok: true, status: 'interrupted'})
      const seal = JSON.parse(lines.at(-1)!) as {type: string; data: {tornBytes: number; totals: {statements: number}}}
      expect(seal.type).toBe('session.interrupted')
      expect(seal.data.tornBytes).toBe(Buffer.byteLength('{"v":1,"type":"statement","sess'))
      expect(seal.data.totals.statements).toBe(380)
      expect(shipper.prefix(sessionId)).toBeUndefined()
    })
  }
})
