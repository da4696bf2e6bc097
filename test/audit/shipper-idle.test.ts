import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {Recorder, writtenBytesInProcess, type SessionRecorder} from '../../src/audit/recorder.js'
import {sessionObjectKey, Shipper, type ShipReport} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

let key: InstallationKey

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
})
afterAll(async () => {
  await removeTempDirs()
})

/**
 * A tunnel's background shipper over a recorder, driven pass by pass with `kick()`, the way
 * `startRecording` builds it (`writtenBytes` of any session this process records).
 */
async function setup(sessionId: string, opts: {now?: () => Date; bytesPerSecond?: number} = {}) {
  const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
  await publishKey(bucket, alice, key)
  const spoolDir = await tempDir('dbgate-spool-')
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const startedAt = new Date('2026-03-02T00:00:00Z')
  const s: SessionRecorder = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}, startedAt})
  const reports: ShipReport[] = []
  const shipper = new Shipper({
    bucket,
    signer: key,
    spoolDir,
    intervalMs: 3_600_000,
    now: opts.now,
    liveSnapshotBytesPerSecond: opts.bytesPerSecond,
    beforeRun: () => rec.checkpointLive(),
    writtenBytes: writtenBytesInProcess,
    onReport: (r) => reports.push(r),
  })
  shipper.start()
  await waitFor(() => reports.length === 1, 'the first pass has run')
  /** Runs one more pass and returns its report. */
  const pass = async (): Promise<ShipReport> => {
    const n = reports.length
    shipper.kick()
    return waitFor(() => reports[n], 'the next pass has run')
  }
  const shipped = async () => gunzipSync((await bucket.get(sessionObjectKey(sessionId, 'prod', startedAt))).body).toString('utf8')
  return {s, shipper, pass, reports, shipped, spoolDir}
}

describe('the background shipper and idle sessions', () => {
  it('passes over an idle live session without opening its files, and ships it again as soon as it has new events', async () => {
    const {s, shipper, pass, reports, shipped, spoolDir} = await setup('sess-idle')
    try {
      expect(reports[0]!.shipped).toEqual([expect.objectContaining({sessionId: 'sess-idle', state: 'live'})])
      // Nothing new since that snapshot: later passes do not even open it. Without its shipped mark
      // a pass that opened it would ship the whole log again.
      await rm(join(spoolDir, 'sess-idle.shipped'))
      for (let i = 0; i < 2; i++) expect(await pass()).toMatchObject({shipped: [], unchanged: ['sess-idle'], upToDate: []})

      // A statement (and the checkpoint the pass signs after it) moves the count: shipped at once.
      s.statement(stmt('sess-idle', 'select 4242'))
      expect((await pass()).shipped).toEqual([expect.objectContaining({sessionId: 'sess-idle', state: 'live'})])
      expect(await shipped()).toContain('select 4242')
      expect(await pass()).toMatchObject({shipped: [], unchanged: ['sess-idle']})

      // Its end is new bytes too, and an ended session is no longer the recorder's to vouch for.
      await s.end('client-closed')
      expect((await pass()).shipped).toEqual([expect.objectContaining({sessionId: 'sess-idle', state: 'ended'})])
      expect(await shipped()).toContain('"session.end"')
    } finally {
      await shipper.stop()
    }
  })

  it('keeps looking at a session whose snapshot waited for its turn, and ships it when due though nothing else arrives', async () => {
    let now = new Date('2026-03-02T00:00:10Z')
    // 10 bytes per second: a log of a few hundred bytes waits tens of seconds between snapshots.
    const {s, shipper, pass, reports, shipped} = await setup('sess-due', {now: () => now, bytesPerSecond: 10})
    try {
      expect(reports[0]!.shipped).toEqual([expect.objectContaining({state: 'live'})])
      s.statement(stmt('sess-due', 'select 777'))
      // Too soon for another snapshot: unchanged, but not up to date, so it must not be passed over.
      for (let i = 0; i < 2; i++) expect(await pass()).toMatchObject({shipped: [], unchanged: ['sess-due'], upToDate: []})
      expect(await shipped()).not.toContain('select 777')
      now = new Date(now.getTime() + 3_600_000)
      expect((await pass()).shipped).toEqual([expect.objectContaining({sessionId: 'sess-due', state: 'live'})])
      expect(await shipped()).toContain('select 777')
    } finally {
      await s.end('client-closed')
      await shipper.stop()
    }
  })
})
