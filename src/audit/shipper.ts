import {constants as fsc} from 'node:fs'
import {open, stat, truncate, unlink, writeFile} from 'node:fs/promises'
import {constants as zlibConstants, createGzip} from 'node:zlib'
import {isBucketError, type Bucket} from '../bucket/index.js'
import {ChainState, sha256hex, type Signer} from './chain.js'
import {addToTotals, emptyTotals, parseEventLine, type SessionInterruptedData, type StatementData} from './events.js'
import {checkSpoolDirectory, currentLockInfo, defaultSpoolDir, isLockAlive, readLock, spoolPaths} from './spool.js'
import {concatPages, SMALL_CHUNK} from '../runtime/page-buffer.js'
import {readMark, readSnapshot, spooledSessions, SpoolListing, type KnownPrefix, type ShippedMark, type SpoolSnapshot, type SpoolState} from './spool-scan.js'

/** `sessions/dt=YYYY-MM-DD/target=NAME/<id>.jsonl.gz`: Hive-style partitions Athena, Trino and DuckDB prune on. */
export function sessionObjectKey(sessionId: string, target: string, startedAt: Date | string): string {
  const d = new Date(startedAt)
  const dt = Number.isNaN(d.getTime()) ? '1970-01-01' : d.toISOString().slice(0, 10)
  return `sessions/dt=${dt}/target=${encodeURIComponent(target)}/${sessionId}.jsonl.gz`
}

export interface ShipOptions {
  bucket: Bucket
  /** Seals sessions whose writer died (a signed `session.interrupted`); normally the installation key. */
  signer: Signer
  spoolDir?: string
  now?: () => Date
  /**
   * Spaces out the snapshots of a live session by its size: a new snapshot at most once per
   * `bytes / liveSnapshotBytesPerSecond` seconds. Each snapshot uploads the whole log (and reads
   * and compresses it whole unless `compressed` kept its earlier part), so without this a long
   * session's shipping cost grows with the square of its length.
   * Unset (`dbgate sessions sync`): every live session with new lines is shipped now.
   */
  liveSnapshotBytesPerSecond?: number
  /** Sessions to pass over in this run without opening anything (reported unchanged); see `Shipper`'s `writtenBytes`. */
  skip?: (sessionId: string) => boolean
  /** The spool's listing kept from one run to the next (a background shipper's), re-read when the directory changed. */
  listing?: SpoolListing
  /** What earlier runs compressed of each log (a background shipper's), so a snapshot compresses only the lines after it. */
  compressed?: CompressedLogs
}

/** Logs shorter than this are compressed whole each time: a kept prefix would cost more memory than the work it saves. */
const KEEP_COMPRESSED_FROM_BYTES = 64 * 1024

/** What a background shipper keeps of compressed logs, all sessions together. */
export const COMPRESSED_LOGS_BUDGET_BYTES = 32 * 1024 * 1024

/** Bytes of a log just before a kept prefix's end, compared before the prefix is reused: its last line's hash. */
const PREFIX_CHECK_BYTES = 80

/**
 * The gzip of each log as far as it was last shipped, kept between the runs of a background
 * shipper. A log only grows (its complete lines never change), so the next snapshot is that gzip
 * followed by a gzip member of the lines written since: a gzip file may hold several members, and
 * every reader (`gunzip`, Node's zlib, `sessions verify`) reads them as one stream. Each line is
 * then compressed once, where each snapshot used to compress the whole log again: a long session
 * re-shipped every few seconds compressed its first lines hundreds of times, and its final
 * shipping once more. What is kept also tells `readSnapshot` where the new lines start
 * (`prefix`), so a snapshot reads only those from disk.
 */
export class CompressedLogs {
  /** In the order they were last kept: the first is the one to drop when over the budget. */
  /** The gzip as zlib's output chunks (below 128 KiB each, see `gzipChunks`), joined only into each upload's body. */
  private readonly logs = new Map<string, KnownPrefix & {gz: Buffer[]; gzBytes: number}>()
  private keptBytes = 0

  /**
   * @param budgetBytes what all kept gzips together may hold: a gateway with many long sessions
   *   would otherwise keep a compressed copy of every live log in memory. A log dropped from the
   *   budget is read and compressed whole at its next snapshot, as without this class.
   */
  constructor(private readonly budgetBytes = COMPRESSED_LOGS_BUDGET_BYTES) {}

  /** What is kept of a log, for `readSnapshot` to read only what follows it. */
  prefix(sessionId: string): KnownPrefix | undefined {
    return this.logs.get(sessionId)
  }

  /**
   * The gzip of a log's complete lines, reusing and then keeping what was compressed of it before.
   * `log` is a snapshot (read after `prefix(sessionId)`, or whole) or the complete lines themselves.
   */
  async compress(sessionId: string, log: Buffer | SpoolSnapshot): Promise<Buffer> {
    const snap = Buffer.isBuffer(log) ? undefined : log
    const complete = snap ? snap.complete : (log as Buffer)
    const bytes = snap ? snap.completeBytes : complete.length
    const kept = this.logs.get(sessionId)
    let gz: Buffer[]
    let end: Buffer
    if (snap && snap.from > 0) {
      // Read after the kept prefix, whose last bytes `readSnapshot` found unchanged on disk.
      if (!kept || kept.bytes !== snap.from) throw new Error(`internal: session ${sessionId} was read after ${snap.from} bytes, but no gzip of them is kept`)
      gz = complete.length > 0 ? [...kept.gz, ...(await gzipChunks(complete))] : kept.gz
      end = complete.length >= PREFIX_CHECK_BYTES ? complete.subarray(complete.length - PREFIX_CHECK_BYTES) : Buffer.concat([kept.end, complete]).subarray(-PREFIX_CHECK_BYTES)
    } else {
      // Never across files: a log replaced under the shipper (another inode) is compressed whole.
      const reuse =
        kept !== undefined &&
        (snap === undefined || kept.ino === undefined || snap.ino === kept.ino) &&
        complete.length >= kept.bytes &&
        complete.subarray(kept.bytes - kept.end.length, kept.bytes).equals(kept.end)
      gz = reuse ? [...kept.gz, ...(await gzipChunks(complete.subarray(kept.bytes)))] : await gzipChunks(complete)
      end = complete.subarray(complete.length - PREFIX_CHECK_BYTES)
    }
    let gzBytes = 0
    for (const c of gz) gzBytes += c.length
    this.forget(sessionId)
    if (bytes >= KEEP_COMPRESSED_FROM_BYTES && gzBytes <= this.budgetBytes) {
      // A copy: `end` would otherwise hold the whole read buffer it is a view of.
      this.logs.set(sessionId, {bytes, gz, gzBytes, end: Buffer.from(end), ino: snap?.ino, start: snap?.start, lastType: snap?.lastType})
      this.keptBytes += gzBytes
      for (const [oldest, entry] of this.logs) {
        if (this.keptBytes <= this.budgetBytes) break
        this.logs.delete(oldest)
        this.keptBytes -= entry.gzBytes
      }
    }
    return concatPages(gz)
  }

  forget(sessionId: string): void {
    const entry = this.logs.get(sessionId)
    if (!entry) return
    this.logs.delete(sessionId)
    this.keptBytes -= entry.gzBytes
  }

  /** Forgets the logs that are no longer in the spool (shipped by someone else, or removed). */
  keepOnly(present: ReadonlySet<string>): void {
    for (const sessionId of [...this.logs.keys()]) if (!present.has(sessionId)) this.forget(sessionId)
  }

  get size(): number {
    return this.logs.size
  }

  /** Bytes of gzip kept, at most the budget. */
  get bytes(): number {
    return this.keptBytes
  }
}

// Fast: at the default level a session's final log cost ~15 µs of CPU per recorded statement, more
// than the statement's whole trip through the tunnel, for objects only ~7% smaller (the lines'
// hashes do not compress; their repeats, `prev` after `hash`, are found at any level).
//
// The output comes back to the event loop one `chunkSize` at a time (a callback, a pool hand-off
// and a 'data' event each): at zlib's default 16 KiB, ~110 for 12 MB of log (~4 ms of the tunnel's
// main thread), against ~30 with chunks of 64 KiB. Not larger: a malloc'd chunk of 128 KiB or
// more, once freed, raises glibc's mmap threshold and the process keeps tens of MB more after its
// load (src/runtime/page-buffer.ts); so the chunks are kept as they are, and only an upload's body
// is joined, into pages of its own.
function gzipChunks(bytes: Buffer): Promise<Buffer[]> {
  const chunkSize = Math.min(SMALL_CHUNK, Math.max(zlibConstants.Z_DEFAULT_CHUNK, Math.ceil(bytes.length / 4 / 1024) * 1024))
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    const z = createGzip({level: zlibConstants.Z_BEST_SPEED, chunkSize})
    z.on('data', (c: Buffer) => out.push(c))
    z.once('error', reject)
    z.once('end', () => {
      // The last chunk is a view of a whole `chunkSize` buffer: copied when that would hold much more than it (it may be kept).
      const last = out.length - 1
      if (last >= 0 && out[last]!.buffer.byteLength > 2 * out[last]!.length + 4096) out[last] = Buffer.from(out[last]!)
      resolve(out)
    })
    z.end(bytes)
  })
}

async function gzipLog(bytes: Buffer): Promise<Buffer> {
  return concatPages(await gzipChunks(bytes))
}

export interface ShipOutcome {
  sessionId: string
  key?: string
  state: SpoolState
  bytes: number
  error?: {code: string; message: string}
}

export interface ShipReport {
  shipped: ShipOutcome[]
  failed: ShipOutcome[]
  /** Live sessions with nothing new since their last snapshot, or held by another shipper. */
  unchanged: string[]
  /** Of `unchanged`, the live sessions whose every complete line is in the bucket already. */
  upToDate: string[]
}


/**
 * Ships everything in the spool: ended sessions (then removes them locally), live ones as a
 * snapshot of their complete lines, and sessions whose writer died, after sealing them with a
 * signed `session.interrupted`. Nothing is deleted before the bucket has accepted it, so a failed
 * run leaves the spool as it was for the next one.
 */
export async function shipPending(opts: ShipOptions): Promise<ShipReport> {
  const dir = opts.spoolDir ?? defaultSpoolDir()
  await checkSpoolDirectory(dir)
  const report: ShipReport = {shipped: [], failed: [], unchanged: [], upToDate: []}
  const skip = opts.skip
  const passOver = skip && ((sessionId: string): boolean => {
    if (!skip(sessionId)) return false
    report.unchanged.push(sessionId)
    return true
  })
  const listed = await spooledSessions(dir, passOver, opts.listing)
  if (opts.compressed) opts.compressed.keepOnly(new Set([...listed, ...report.unchanged]))
  for (const sessionId of listed) {
    const release = await acquireShipLock(dir, sessionId)
    if (!release) {
      report.unchanged.push(sessionId)
      continue
    }
    try {
      const out = await shipOne(dir, sessionId, opts)
      if (out === 'unchanged') report.unchanged.push(sessionId)
      else if (out === 'up-to-date') {
        report.unchanged.push(sessionId)
        report.upToDate.push(sessionId)
      }
      else if (out.error) report.failed.push(out)
      else report.shipped.push(out)
    } finally {
      await release()
    }
  }
  return report
}

/** One shipper per session at a time (a tunnel's background shipper and `sessions sync` may overlap). */
async function acquireShipLock(dir: string, sessionId: string): Promise<(() => Promise<void>) | undefined> {
  const path = spoolPaths(dir, sessionId).shipLock
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600)
      try {
        await fh.writeFile(JSON.stringify(await currentLockInfo()))
      } finally {
        await fh.close()
      }
      return () => unlink(path).catch(() => undefined)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      if (await isLockAlive(await readLock(path))) return undefined
      await unlink(path).catch(() => undefined)
    }
  }
  return undefined
}

/** Whether a live session's last snapshot is too recent for its size to be worth redoing yet. */
async function snapshotTooRecent(paths: ReturnType<typeof spoolPaths>, opts: ShipOptions): Promise<boolean> {
  const rate = opts.liveSnapshotBytesPerSecond
  if (!rate) return false
  const mark = await readMark(paths.shipped)
  if (!mark) return false
  const age = (opts.now?.() ?? new Date()).getTime() - Date.parse(mark.at)
  if (age >= (mark.bytes / rate) * 1000) return false
  // Checked last: only a live writer's log may wait (an ended or orphaned one ships at once).
  return isLockAlive(await readLock(paths.lock))
}

async function shipOne(dir: string, sessionId: string, opts: ShipOptions): Promise<ShipOutcome | 'unchanged' | 'up-to-date'> {
  const paths = spoolPaths(dir, sessionId)
  if (await snapshotTooRecent(paths, opts)) return 'unchanged'
  // Only the lines after what an earlier snapshot compressed, when the log still starts with those.
  let snap = await readSnapshot(paths.log, opts.compressed?.prefix(sessionId))
  let state: SpoolState
  if (snap.lastType === 'session.end') state = 'ended'
  else if (snap.lastType === 'session.interrupted') state = 'interrupted'
  else if (await isLockAlive(await readLock(paths.lock))) state = 'live'
  else {
    // The seal counts every statement of the log: it needs all of it.
    if (snap.from > 0) snap = await readSnapshot(paths.log)
    await sealInterrupted(paths, sessionId, snap, opts)
    snap = await readSnapshot(paths.log)
    state = 'interrupted'
  }

  const mark = await readMark(paths.shipped)
  if (state === 'live' && (snap.completeBytes === 0 || mark?.bytes === snap.completeBytes)) return snap.completeBytes === 0 ? 'unchanged' : 'up-to-date'

  const start = snap.start ?? {target: '_unknown', startedAt: (await stat(paths.log)).mtime.toISOString()}
  const key = sessionObjectKey(sessionId, start.target, start.startedAt)
  // Off the event loop: the tunnel's statements would wait behind a synchronous gzip of a whole log.
  const body = opts.compressed ? await opts.compressed.compress(sessionId, snap) : await gzipLog(snap.complete)
  try {
    // One layer of retries: the bucket's client (the S3 SDK's backoff for network errors, throttling
    // and 5xx). What still fails stays in the spool for the next pass, so nothing retries on top.
    await opts.bucket.put(key, body, {contentType: 'application/x-ndjson'})
  } catch (err) {
    const e = err as {code?: string; message: string}
    return {sessionId, key, state, bytes: snap.completeBytes, error: {code: e.code ?? 'ERROR', message: e.message}}
  }
  if (state === 'live') {
    await writeFile(paths.shipped, JSON.stringify({bytes: snap.completeBytes, key, at: (opts.now?.() ?? new Date()).toISOString()} satisfies ShippedMark))
  } else {
    opts.compressed?.forget(sessionId)
    await unlink(paths.log)
    await unlink(paths.shipped).catch(() => undefined)
    await unlink(paths.lock).catch(() => undefined)
  }
  return {sessionId, key, state, bytes: snap.completeBytes}
}

/**
 * Closes the log of a dead writer with a signed `session.interrupted`. The event is appended to the
 * log itself, not kept beside it, so the shipped object explains itself and its chain stays whole;
 * the signature is the shipper's (same machine, normally the same installation key) and attests
 * only what was on disk. A torn final line is cut off first, its size and hash kept as evidence.
 */
async function sealInterrupted(paths: ReturnType<typeof spoolPaths>, sessionId: string, snap: SpoolSnapshot, opts: ShipOptions): Promise<void> {
  const path = paths.log
  const lock = await readLock(paths.lock)
  const totals = emptyTotals()
  const lines = snap.lines()
  for (const l of lines) {
    try {
      const ev = parseEventLine(l)
      if (ev.type === 'statement') addToTotals(totals, ev.data as StatementData)
    } catch {
      /* counted as what it is by verify */
    }
  }
  const last = lines[lines.length - 1]
  let seq = 0
  if (last !== undefined) {
    try {
      seq = parseEventLine(last).seq
    } catch {
      seq = lines.length
    }
  }
  const chain = new ChainState(sessionId, last !== undefined ? {seq, prev: sha256hex(last)} : undefined)
  const now = opts.now?.() ?? new Date()
  const data: SessionInterruptedData = {
    reason: 'writer-died',
    detectedAt: now.toISOString(),
    ...(lock ? {lastWriterPid: lock.pid} : {}),
    tornBytes: snap.tornTail.length,
    ...(snap.tornTail.length ? {tornSha256: sha256hex(snap.tornTail)} : {}),
    totals,
  }
  const line = chain.append('session.interrupted', data, now, opts.signer)
  if (snap.tornTail.length) await truncate(path, snap.completeBytes)
  const fh = await open(path, 'a')
  try {
    await fh.write(line + '\n')
    await fh.datasync()
  } finally {
    await fh.close()
  }
}

/** Runs `shipPending` in the background of a tunnel: on an interval, and soon after `kick()`. */
export class Shipper {
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private stopped = true
  /** This process's live sessions found up to date, with their `writtenBytes` at the time. */
  private readonly settled = new Map<string, number>()
  /** Of a pass's sessions not passed over, their `writtenBytes` before their log was read. */
  private readonly atStart = new Map<string, number>()
  private readonly listing = new SpoolListing()
  private readonly compressed = new CompressedLogs()

  constructor(
    private readonly opts: ShipOptions & {
      intervalMs?: number
      /** Runs before each shipping pass, e.g. `() => recorder.checkpointLive()`. */
      beforeRun?: () => void | Promise<void>
      /**
       * Bytes this process has written to a live session's log (`SessionRecorder.writtenBytes`);
       * undefined for any other session. A session found up to date is passed over, without a file
       * opened, until the count moves: a thousand idle sessions then cost the shipper nothing
       * instead of a lock, a mark and a log read each every pass (and the memory that churn holds).
       */
      writtenBytes?: (sessionId: string) => number | undefined
      onReport?: (r: ShipReport) => void
      onError?: (err: Error) => void
    },
  ) {}

  start(): void {
    this.stopped = false
    this.schedule(0)
  }

  /** Ship soon, e.g. right after a session ends. */
  kick(): void {
    if (this.stopped) return
    clearTimeout(this.timer)
    this.timer = undefined
    this.schedule(0)
  }

  /** Stops the loop and waits for a run in progress; what is not shipped stays in the spool. */
  async stop(): Promise<void> {
    this.stopped = true
    clearTimeout(this.timer)
    await this.running
  }

  private schedule(ms: number): void {
    if (this.timer || this.stopped) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (this.running) return this.schedule(100)
      this.running = Promise.resolve()
        .then(() => this.opts.beforeRun?.())
        .then(() => this.pass())
        .then((r) => this.opts.onReport?.(r))
        .catch((err: unknown) => this.opts.onError?.(err as Error))
        .finally(() => {
          this.running = undefined
          this.schedule(this.opts.intervalMs ?? 30_000)
        })
    }, ms)
    this.timer.unref?.()
  }

  private async pass(): Promise<ShipReport> {
    const written = this.opts.writtenBytes
    if (!written) return shipPending({...this.opts, compressed: this.compressed})
    // Counted before the log is read (after `beforeRun` flushed): a snapshot holds at least these bytes.
    const {settled, atStart} = this
    atStart.clear()
    const skip = (sessionId: string): boolean => {
      const bytes = written(sessionId)
      if (bytes === undefined) return false
      const was = settled.get(sessionId)
      if (was === bytes) return true
      if (was !== undefined) settled.delete(sessionId)
      atStart.set(sessionId, bytes)
      return false
    }
    const report = await shipPending({...this.opts, skip, listing: this.listing, compressed: this.compressed})
    const settle = (sessionId: string): void => {
      const bytes = atStart.get(sessionId)
      if (bytes !== undefined) settled.set(sessionId, bytes)
    }
    for (const sessionId of report.upToDate) settle(sessionId)
    for (const o of report.shipped) if (o.state === 'live') settle(o.sessionId)
    atStart.clear()
    // Sessions this process no longer records (ended, or moved on since) drop out here.
    settled.forEach((bytes, sessionId) => {
      if (written(sessionId) !== bytes) settled.delete(sessionId)
    })
    return report
  }
}
