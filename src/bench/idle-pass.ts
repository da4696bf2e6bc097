/**
 * The recordings' housekeeping with many idle sessions: a Recorder and a tunnel's background Shipper
 * (as `startRecording` wires them) over N open sessions after a few statements each, then passes
 * with nothing new. Prints bytes allocated and milliseconds per pass. Run with a large young
 * generation so that no scavenge falls inside a pass:
 * `node --max-semi-space-size=64 dist/bench/idle-pass.js --sessions 1000 --passes 20` (bytes are the
 * heap's growth over a pass; `--heap-profile FILE` writes a sampling profile of those passes).
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {FileBucket} from '../bucket/index.js'
import {Recorder, writtenBytesInProcess} from '../audit/recorder.js'
import {Shipper, type ShipReport} from '../audit/shipper.js'
import {loadOrCreateInstallationKey} from '../audit/signing.js'
import type {Identity} from '../identity/types.js'

const {values} = parseArgs({options: {'heap-profile': {type: 'string'}, sessions: {type: 'string', default: '1000'}, passes: {type: 'string', default: '20'}, statements: {type: 'string', default: '3'}}})
const n = Number(values.sessions)
const passes = Number(values.passes)
const statements = Number(values.statements)

const identity: Identity = {subject: 'u-bench', email: 'bench@example.com', name: 'Bench', groups: [], issuer: 'https://login.example.com', kind: 'human', tokenHash: 'a'.repeat(64), tokenId: 'jti-1', expiresAt: new Date('2030-01-01T00:00:00Z')}

// The shipper's timer is unref'd, as in a tunnel: this keeps the process up between passes.
const keepAlive = setInterval(() => undefined, 60_000)
const root = await mkdtemp(join(tmpdir(), 'dbgate-idle-pass-'))
try {
  const key = await loadOrCreateInstallationKey(join(root, 'keys'))
  const bucket = new FileBucket(join(root, 'bucket'))
  const spoolDir = join(root, 'spool')
  const recorder = await Recorder.open({signer: key, dbgateVersion: '0.0.0', spoolDir, onError: (e) => console.error(e.message)})
  for (let i = 0; i < n; i++) {
    const s = recorder.startSession({sessionId: `sess-${i}`, identity, target: 'bench', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}})
    for (let j = 0; j < statements; j++) {
      s.statement({sessionId: `sess-${i}`, connectionId: i, protocol: 'simple', sql: `select ${j} from t where id = ${i}`, verdict: {action: 'allow'}, startedAt: new Date(), durationMs: 1, commandTags: ['SELECT 1'], rows: 1, outcome: 'ok'})
    }
  }
  recorder.release()
  const reports: ShipReport[] = []
  const shipper = new Shipper({bucket, signer: key, spoolDir, intervalMs: 3_600_000, liveSnapshotBytesPerSecond: 1024 * 1024, beforeRun: () => recorder.checkpointLive(), writtenBytes: writtenBytesInProcess, onReport: (r) => {
    reports.push(r)
    wake?.()
  }, onError: (e) => console.error(e)})
  let wake: (() => void) | undefined
  const next = async (): Promise<{ms: number; cpu: number; bytes: number; report: ShipReport}> => {
    const k = reports.length
    const h0 = process.memoryUsage().heapUsed
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    const done = new Promise<void>((r) => (wake = r))
    if (k === 0) shipper.start()
    else shipper.kick()
    await done
    const ms = performance.now() - t0
    const c = process.cpuUsage(c0)
    return {ms, cpu: (c.user + c.system) / 1000, bytes: process.memoryUsage().heapUsed - h0, report: reports[k]!}
  }
  // The first passes ship every session (and the next settles them).
  for (let i = 0; i < 3; i++) {
    const r = await next()
    console.log(`warm-up pass ${i}: ${r.ms.toFixed(1)} ms, shipped ${r.report.shipped.length}, unchanged ${r.report.unchanged.length}`)
  }
  // A tunnel's passes are 5 s apart: the spool's listing is trusted once its last change is 3 s old.
  await new Promise((r) => setTimeout(r, 3_500))
  await next()
  // Every sampled allocation of the measured passes, collected or not (`--heap-profile FILE`).
  let prof: import('node:inspector/promises').Session | undefined
  if (values['heap-profile']) {
    const {Session} = await import('node:inspector/promises')
    prof = new Session()
    prof.connect()
    await prof.post('HeapProfiler.enable')
    await prof.post('HeapProfiler.startSampling', {samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true} as object)
  }
  const ms: number[] = []
  const cpu: number[] = []
  const bytes: number[] = []
  for (let i = 0; i < passes; i++) {
    const r = await next()
    if (r.report.shipped.length || r.report.failed.length) throw new Error('an idle pass shipped something')
    ms.push(r.ms)
    cpu.push(r.cpu)
    bytes.push(r.bytes)
  }
  if (prof) {
    const {profile} = (await prof.post('HeapProfiler.stopSampling')) as {profile: unknown}
    const {writeFileSync} = await import('node:fs')
    writeFileSync(values['heap-profile']!, JSON.stringify(profile))
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!
  console.log(`${n} idle sessions, ${passes} passes: median ${med(ms).toFixed(2)} ms (CPU ${med(cpu).toFixed(2)} ms), ${(med(bytes) / 1024).toFixed(1)} KB allocated per pass (min ${(Math.min(...bytes) / 1024).toFixed(1)}, max ${(Math.max(...bytes) / 1024).toFixed(1)} KB)`)
  await recorder.close()
  await shipper.stop()
} finally {
  await rm(root, {recursive: true, force: true})
  clearInterval(keepAlive)
}
