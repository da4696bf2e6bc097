import {copyFile, mkdir, readdir, rm, writeFile} from 'node:fs/promises'
import {spawnSync} from 'node:child_process'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {Recorder, writtenBytesInProcess, type SessionRecorder} from '../../src/audit/recorder.js'
import {sessionObjectKey, Shipper, type ShipReport} from '../../src/audit/shipper.js'
import {loadKeyRing, loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import {SpoolListing} from '../../src/audit/spool-scan.js'
import {verifySession} from '../../src/audit/verify.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

let key: InstallationKey

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
})
afterAll(async () => {
  await removeTempDirs()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const startedAt = new Date('2026-03-02T00:00:00Z')

describe('the spool listing a background shipper keeps', () => {
  it('is read again whenever a log comes or goes, and reused only while the directory is unchanged', async () => {
    const dir = await tempDir('dbgate-spool-')
    await writeFile(join(dir, 'a.jsonl'), '')
    await writeFile(join(dir, 'a.lock'), '')
    const listing = new SpoolListing(0)
    await sleep(20)
    expect(await listing.read(dir)).toEqual(['a'])
    expect(await listing.read(dir)).toEqual(['a'])
    expect(listing.reads).toBe(1)
    await writeFile(join(dir, 'b.jsonl'), '')
    expect([...(await listing.read(dir))].sort()).toEqual(['a', 'b'])
    expect(listing.reads).toBe(2)
    await rm(join(dir, 'a.jsonl'))
    expect(await listing.read(dir)).toEqual(['b'])
    await rm(dir, {recursive: true})
    expect(await listing.read(dir)).toEqual([])
    await mkdir(dir)
    await writeFile(join(dir, 'c.jsonl'), '')
    expect(await listing.read(dir)).toEqual(['c'])
  })

  it('is not reused while the directory changed within the racy interval of its reading (a later change may share its time stamp)', async () => {
    const dir = await tempDir('dbgate-spool-')
    await writeFile(join(dir, 'a.jsonl'), '')
    const listing = new SpoolListing(60_000)
    await listing.read(dir)
    await listing.read(dir)
    expect(listing.reads).toBe(2)
  })
})

describe('the background shipper over many idle sessions', () => {
  it('after many idle passes, still ships at once a session with one new event, one that ended, and a dead writer\'s log dropped in the spool', async () => {
    const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishKey(bucket, alice, key)
    const spoolDir = await tempDir('dbgate-spool-')
    const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
    const sessions: SessionRecorder[] = []
    for (let i = 0; i < 40; i++) {
      const id = `sess-${i}`
      const s = rec.startSession({sessionId: id, identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}, startedAt})
      for (let j = 0; j < 3; j++) s.statement(stmt(id, `select ${j}`))
      sessions.push(s)
    }
    const reports: ShipReport[] = []
    const shipper = new Shipper({
      bucket,
      signer: key,
      spoolDir,
      intervalMs: 3_600_000,
      liveSnapshotBytesPerSecond: 1024 * 1024,
      beforeRun: () => rec.checkpointLive(),
      writtenBytes: writtenBytesInProcess,
      onReport: (r) => reports.push(r),
    })
    const pass = async (): Promise<ShipReport> => {
      const n = reports.length
      shipper.kick()
      return waitFor(() => reports[n], 'the next pass has run')
    }
    const shipped = async (id: string) => gunzipSync((await bucket.get(sessionObjectKey(id, 'prod', startedAt))).body).toString('utf8')
    try {
      shipper.start()
      await waitFor(() => reports.length === 1, 'the first pass has run')
      expect(reports[0]!.shipped).toHaveLength(40)
      // Idle passes, the later ones with the spool's listing old enough to be reused.
      await pass()
      await sleep(3_200)
      for (let i = 0; i < 6; i++) expect(await pass()).toMatchObject({shipped: [], failed: []})

      // One event, not even written yet (no release): the pass's flush writes it, its checkpoint signs it.
      sessions[17]!.statement(stmt('sess-17', 'select 4242'))
      const one = await pass()
      expect(one.shipped).toEqual([expect.objectContaining({sessionId: 'sess-17', state: 'live'})])
      const text = await shipped('sess-17')
      expect(text).toContain('select 4242')
      const lines = text.trim().split('\n').map((l) => JSON.parse(l) as {type: string; seq: number})
      expect(lines.at(-1)!.type).toBe('checkpoint')
      const result = verifySession(text, (await loadKeyRing(bucket)).keys)
      expect(result.problems.filter((p) => p.code !== 'MISSING_END')).toEqual([])
      expect(result.signedThroughSeq).toBe(lines.at(-1)!.seq)
      for (let i = 0; i < 3; i++) expect(await pass()).toMatchObject({shipped: [], failed: []})

      // Ended between passes (no kick from a tunnel here): shipped and cleared on the next pass.
      await sessions[3]!.end('client-closed')
      expect((await pass()).shipped).toEqual([expect.objectContaining({sessionId: 'sess-3', state: 'ended'})])
      expect(await shipped('sess-3')).toContain('"session.end"')
      expect((await readdir(spoolDir)).filter((n) => n.startsWith('sess-3.'))).toEqual([])
      for (let i = 0; i < 3; i++) expect(await pass()).toMatchObject({shipped: [], failed: []})

      // Another process's log whose writer died, dropped in while the listing is reused: sealed and shipped.
      await copyFile(join(spoolDir, 'sess-5.jsonl'), join(spoolDir, 'sess-orphan.jsonl'))
      const deadPid = spawnSync(process.execPath, ['-e', '']).pid!
      await writeFile(join(spoolDir, 'sess-orphan.lock'), JSON.stringify({pid: deadPid, host: hostname(), createdAt: new Date().toISOString()}))
      expect((await pass()).shipped).toEqual([expect.objectContaining({sessionId: 'sess-orphan', state: 'interrupted'})])

      // Two events in two sessions at once, after all that: both shipped.
      sessions[0]!.statement(stmt('sess-0', 'select 1001'))
      sessions[39]!.statement(stmt('sess-39', 'select 1039'))
      rec.release()
      const two = await pass()
      expect(two.shipped.map((o) => o.sessionId).sort()).toEqual(['sess-0', 'sess-39'])
      expect(await shipped('sess-39')).toContain('select 1039')
    } finally {
      await rec.close()
      await shipper.stop()
    }
  }, 30_000)
})
