import {open, readdir, readFile, stat, type FileHandle} from 'node:fs/promises'
import {join} from 'node:path'
import {pageBuffer} from '../runtime/page-buffer.js'
import {parseEventLine} from './events.js'
import {defaultSpoolDir, isLockAlive, readLock, spoolPaths} from './spool.js'

/** Reading the spool without changing it: what is there, in what state, and what the bucket already has. */

export type SpoolState = 'ended' | 'interrupted' | 'live' | 'orphaned'

/** `<session>.shipped`: how much of a live session the bucket already has. */
export interface ShippedMark {
  bytes: number
  key: string
  at: string
}

/**
 * Ids of the sessions with a log in the spool, oldest first. `passOver` (the background shipper's
 * idle sessions) is asked once per id; the ids it claims are left out without their log's `stat`,
 * the one per-session cost of a listing.
 */
export async function spooledSessions(dir: string, passOver?: (sessionId: string) => boolean, listing?: SpoolListing): Promise<string[]> {
  const all = await (listing ? listing.read(dir) : readLogIds(dir))
  const ids: string[] = []
  for (let i = 0; i < all.length; i++) if (!passOver?.(all[i]!)) ids.push(all[i]!)
  const withTimes = await Promise.all(ids.map(async (id) => ({id, t: (await stat(join(dir, `${id}.jsonl`)).catch(() => undefined))?.mtimeMs ?? 0})))
  // Oldest first, so a backlog drains in the order it was written.
  return withTimes.sort((a, b) => a.t - b.t).map((x) => x.id)
}

async function readLogIds(dir: string): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const ids: string[] = []
  for (const n of names) if (n.endsWith('.jsonl')) ids.push(n.slice(0, -'.jsonl'.length))
  return ids
}

/**
 * The spool's log ids, read again only when the directory changed: a background shipper lists a
 * spool of a thousand idle sessions (three or four files each) every few seconds. The directory's
 * modification time (to the nanosecond, with its change time) decides; a listing is reused only if
 * that time was already `racyMs` old when the listing was read, so an entry created in the same
 * clock tick as the last change seen (file systems stamp times from a coarse clock) cannot hide.
 */
export class SpoolListing {
  private ids?: string[]
  private mtimeNs = -1n
  private ctimeNs = -1n
  private ino = -1n
  /** Directory reads so far (the listing's own test counts them). */
  reads = 0

  constructor(private readonly racyMs = 3_000) {}

  async read(dir: string): Promise<string[]> {
    let st: import('node:fs').BigIntStats
    try {
      st = await stat(dir, {bigint: true})
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      this.ids = undefined
      return []
    }
    if (this.ids && st.mtimeNs === this.mtimeNs && st.ctimeNs === this.ctimeNs && st.ino === this.ino) return this.ids
    const now = Date.now()
    this.reads += 1
    const ids = await readLogIds(dir)
    // Trusted next time only if no later change can share the stamp this stat read.
    const settled = Number(st.mtimeMs) < now - this.racyMs && Number(st.ctimeMs) < now - this.racyMs
    this.ids = settled ? ids : undefined
    this.mtimeNs = st.mtimeNs
    this.ctimeNs = st.ctimeNs
    this.ino = st.ino
    return ids
  }
}

export interface SpoolSnapshot {
  /** The complete lines from `from` on: bytes up to and including the last newline. */
  complete: Buffer
  /** Where `complete` starts in the log: 0, or the end of a prefix the caller holds already (`readSnapshot`'s `known`). */
  from: number
  /** Bytes of complete lines in the log, `from + complete.length`: what a snapshot of it holds. */
  completeBytes: number
  tornTail: Buffer
  /** Every complete line of the log, split on first use: only sealing a dead writer's log reads them all (a whole read's only). */
  lines(): string[]
  lastType?: string
  start?: {target: string; startedAt: string}
  /** The log's inode when read: a later read may start after a known prefix only in the same file. */
  ino: number
}

/**
 * What a reader already holds of a log (the background shipper's kept gzip): its first `bytes`
 * bytes, which end on a newline, the `end` just before that point (the last line's hash, which
 * chains every line before it), the file they came from, and what the first and last lines said.
 */
export interface KnownPrefix {
  bytes: number
  end: Buffer
  ino?: number
  start?: SpoolSnapshot['start']
  lastType?: string
}

/**
 * A spool log split at its last newline: the complete lines, which may be shipped, and a torn tail.
 * The shipper reads a live session's log every few seconds; only its first and last lines are
 * decoded, so that a long session is not turned into strings and split on every pass. Given a
 * `known` prefix, only the bytes after it are read, if the file is the same one (inode), at least
 * that long, and still has the same bytes just before the prefix's end; anything else (a log
 * rewritten, truncated or replaced under the reader) reads the whole log.
 */
export async function readSnapshot(path: string, known?: KnownPrefix): Promise<SpoolSnapshot> {
  const fh = await open(path, 'r')
  try {
    const st = await fh.stat()
    if (known?.ino !== undefined && st.ino === known.ino && st.size >= known.bytes) {
      const at = known.bytes - known.end.length
      const buf = await readFrom(fh, at, st.size)
      if (buf.length >= known.end.length && buf.subarray(0, known.end.length).equals(known.end)) return split(buf.subarray(known.end.length), known.bytes, st.ino, known)
    }
    return split(await readFrom(fh, 0, st.size), 0, st.ino)
  } finally {
    await fh.close()
  }
}

/**
 * The file from `position` to its end, read while it may still grow: as many reads as it takes,
 * usually one. Into pages of its own when large: a freed malloc'd one would raise glibc's mmap
 * threshold (src/runtime/page-buffer.ts).
 */
async function readFrom(fh: FileHandle, position: number, size: number): Promise<Buffer> {
  let buf = pageBuffer(Math.max(size - position, 0) + 4096)
  let filled = 0
  for (;;) {
    if (filled === buf.length) {
      const bigger = pageBuffer(buf.length * 2)
      buf.copy(bigger, 0, 0, filled)
      buf = bigger
    }
    const {bytesRead} = await fh.read(buf, filled, buf.length - filled, position + filled)
    if (bytesRead === 0) return buf.subarray(0, filled)
    filled += bytesRead
  }
}

/** `buf` is the log from byte `from` (0, or the end of `known`) to its end. */
function split(buf: Buffer, from: number, ino: number, known?: KnownPrefix): SpoolSnapshot {
  const cut = buf.lastIndexOf(0x0a) + 1
  const complete = buf.subarray(0, cut)
  const lastLine = cut > 0 ? complete.subarray(cut >= 2 ? complete.lastIndexOf(0x0a, cut - 2) + 1 : 0, cut - 1).toString('utf8') : undefined
  let start: SpoolSnapshot['start']
  let lastType: string | undefined
  if (from === 0) {
    const firstLine = cut > 0 ? complete.subarray(0, complete.indexOf(0x0a)).toString('utf8') : undefined
    try {
      const first = firstLine ? parseEventLine(firstLine) : undefined
      if (first?.type === 'session.start') {
        const d = first.data as {target?: string; startedAt?: string}
        start = {target: d.target ?? '_unknown', startedAt: d.startedAt ?? first.ts}
      }
    } catch {
      /* a corrupt first line still ships; verify will report it */
    }
  } else {
    start = known?.start
  }
  if (lastLine === undefined) lastType = from === 0 ? undefined : known?.lastType
  else {
    try {
      lastType = parseEventLine(lastLine).type
    } catch {
      lastType = undefined
    }
  }
  let lines: string[] | undefined
  return {
    complete,
    from,
    completeBytes: from + complete.length,
    tornTail: buf.subarray(cut),
    lines: () => {
      if (from !== 0) throw new Error('internal: the lines of a log read after a known prefix are not all there; read it whole')
      return (lines ??= complete.length ? complete.toString('utf8').slice(0, -1).split('\n') : [])
    },
    lastType,
    start,
    ino,
  }
}

export async function readMark(path: string): Promise<ShippedMark | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as ShippedMark
  } catch {
    return undefined
  }
}

export interface SpoolEntry {
  sessionId: string
  state: SpoolState
  bytes: number
  /** Bytes the bucket does not have yet. */
  unshippedBytes: number
  startedAt?: string
  target?: string
}

export interface SpoolStatus {
  dir: string
  count: number
  bytes: number
  unshippedBytes: number
  oldest?: string
  sessions: SpoolEntry[]
}

/** What is waiting to be shipped (`dbgate sessions status`). A dead writer's session shows as `orphaned` until shipped. */
export async function spoolStatus(spoolDir = defaultSpoolDir()): Promise<SpoolStatus> {
  const sessions: SpoolEntry[] = []
  for (const sessionId of await spooledSessions(spoolDir)) {
    const paths = spoolPaths(spoolDir, sessionId)
    let snap: SpoolSnapshot
    try {
      snap = await readSnapshot(paths.log)
    } catch {
      continue // shipped and removed between listing and reading
    }
    const bytes = snap.complete.length + snap.tornTail.length
    const state: SpoolState =
      snap.lastType === 'session.end' ? 'ended' : snap.lastType === 'session.interrupted' ? 'interrupted' : (await isLockAlive(await readLock(paths.lock))) ? 'live' : 'orphaned'
    const mark = state === 'live' ? await readMark(paths.shipped) : undefined
    sessions.push({sessionId, state, bytes, unshippedBytes: bytes - (mark?.bytes ?? 0), startedAt: snap.start?.startedAt, target: snap.start?.target})
  }
  const starts = sessions.map((s) => s.startedAt).filter((s): s is string => !!s).sort()
  return {
    dir: spoolDir,
    count: sessions.length,
    bytes: sessions.reduce((a, s) => a + s.bytes, 0),
    unshippedBytes: sessions.reduce((a, s) => a + s.unshippedBytes, 0),
    oldest: starts[0],
    sessions,
  }
}
