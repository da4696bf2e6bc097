import {close, constants as fsc, fdatasync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync} from 'node:fs'
import {mkdir, readFile, stat, unlink} from 'node:fs/promises'
import {hostname} from 'node:os'
import {dirname, join} from 'node:path'
import {promisify} from 'node:util'
import {spoolDir} from '../util/paths.js'
import {sharedDirectoryProblem} from '../util/private-dir.js'

/**
 * The local spool: one append-only `<session>.jsonl` per session, plus `<session>.lock` naming the
 * live writer. Events reach the disk before anything is shipped, so a dead bucket or network costs
 * nothing; they are written before the tunnel releases a result they describe, so a killed tunnel
 * loses nothing a client saw.
 */

export function defaultSpoolDir(env: NodeJS.ProcessEnv = process.env): string {
  return spoolDir(env)
}

/** A spool directory another user could write to, or replace: refused before anything records into it or ships from it. */
export class SharedSpoolError extends Error {}

/**
 * Makes sure the spool is this user's alone. Whoever can add files to it plants logs that the
 * shipper takes for a dead writer's, seals with this installation's key and ships as this
 * person's (and deletes once shipped, wherever a planted link leads); whoever can replace it swaps
 * the logs before they leave. Created (0700) when missing.
 */
export async function checkSpoolDirectory(dir: string): Promise<void> {
  const made = await mkdir(dir, {recursive: true, mode: 0o700}).then(() => true, () => false)
  // One that cannot be made (a file in its place, no space) fails each session as it opens its
  // log, and recovers once it can; the directories above it must still be this user's.
  const problem = made ? await sharedDirectoryProblem(dir, {stickyDirOk: false}) : await sharedDirectoryProblem(await nearestExisting(dirname(dir)), {stickyDirOk: true})
  if (problem === undefined) return
  throw new SharedSpoolError(
    `refusing to record sessions in the spool directory ${dir}: ${problem}; whoever can write there can plant session logs that dbgate would sign and ship as yours. Set DBGATE_SPOOL_DIR to a directory only you can write (mode 0700), or unset it for the default`,
  )
}

async function nearestExisting(dir: string): Promise<string> {
  for (let at = dir; ; at = dirname(at)) {
    if (await stat(at).then((st) => st.isDirectory(), () => false)) return at
    if (dirname(at) === at) return at
  }
}

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function checkSessionId(id: string): void {
  if (!SESSION_ID.test(id)) throw new Error(`session id ${JSON.stringify(id)} is not usable as a spool file name`)
}

export const spoolPaths = (dir: string, sessionId: string) => ({
  log: join(dir, `${sessionId}.jsonl`),
  lock: join(dir, `${sessionId}.lock`),
  shipped: join(dir, `${sessionId}.shipped`),
  shipLock: join(dir, `${sessionId}.shipping`),
})

export interface LockInfo {
  pid: number
  host: string
  /** Linux process start time (clock ticks since boot), so a recycled pid is not mistaken for the writer. */
  procStart?: string
  createdAt: string
}

export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // Field 22; the command name (field 2) may contain spaces, so count from the closing paren.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

export async function currentLockInfo(): Promise<LockInfo> {
  return {pid: process.pid, host: hostname(), procStart: await processStartTime(process.pid), createdAt: new Date().toISOString()}
}

/** Whether the process named in a lock file still runs. A lock from another host is treated as dead: spools are machine-local. */
export async function isLockAlive(lock: LockInfo | undefined): Promise<boolean> {
  if (!lock || lock.host !== hostname()) return false
  try {
    process.kill(lock.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  if (lock.procStart !== undefined) {
    const now = await processStartTime(lock.pid)
    if (now !== undefined && now !== lock.procStart) return false
  }
  return true
}

export async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockInfo
  } catch {
    return undefined
  }
}

export class SpoolWriteError extends Error {
  override readonly name = 'SpoolWriteError'
  readonly code = 'SPOOL_WRITE_FAILED'
  constructor(readonly sessionId: string, readonly path: string, cause: unknown) {
    super(`cannot write audit spool ${path}: ${(cause as Error).message}; events are held in memory and retried`, {cause})
  }
}

export interface SpoolFileOptions {
  /** Longest time an appended event waits before it is written and fsynced. */
  flushIntervalMs?: number
  /** Called on every failed write; the events stay queued and are retried. */
  onError?: (err: SpoolWriteError) => void
}

/**
 * Append queue for one session's spool file. `append` is synchronous (proxy hooks are) and never
 * drops. Writes are grouped: the tunnel calls `writeNow` before it sends a client the replies of a
 * chunk of server messages, so the events of that turn go out in one write, before any result they
 * describe is released (a killed process loses nothing a client saw); the fdatasync that makes them
 * survive a machine crash follows within `flushIntervalMs`, one for every group of writes. Without
 * a `writeNow`, the timer writes too. A failed write keeps the unwritten bytes and retries with
 * backoff, reporting each failure.
 */
export class SpoolFile {
  private fd?: number
  private queue: Buffer[] = []
  private queued = 0
  /** Written but not yet fdatasync'ed. */
  private unsynced = false
  private timer?: NodeJS.Timeout
  /** The last flush's settling, while one is in progress: flushes run one after the other. */
  private chain: Promise<void> | undefined
  /** Flushes started and not yet settled. */
  private flushing = 0
  private failures = 0
  private closed = false
  private locked = false
  private closeFailed = false
  private written = 0
  lastError?: SpoolWriteError

  constructor(readonly dir: string, readonly sessionId: string, private readonly opts: SpoolFileOptions = {}) {
    checkSessionId(sessionId)
  }

  /** Made when asked (opening, an error, the end): an open log is written through its descriptor, and a tunnel keeps one spool per idle session. */
  get paths(): ReturnType<typeof spoolPaths> {
    return spoolPaths(this.dir, this.sessionId)
  }

  get pendingBytes(): number {
    return this.queued
  }

  /** Bytes this writer has put in the log so far (the kernel holds them). */
  get writtenBytes(): number {
    return this.written
  }

  append(line: string): void {
    this.appendBytes(Buffer.from(line + '\n'))
  }

  /** `append` for a line already encoded, its newline included. */
  appendBytes(buf: Buffer): void {
    if (this.closed) throw new Error(`audit spool for session ${this.sessionId} is closed; event not recorded`)
    this.queue.push(buf)
    this.queued += buf.length
    this.schedule(this.opts.flushIntervalMs ?? 50)
  }

  /**
   * Writes everything appended so far, now, in one write. Once it returns true the kernel holds the
   * events (a killed process loses none of them); the disk sync follows with the next timer. False
   * when the write failed: the events stay queued, the failure is reported and retried.
   */
  writeNow(): boolean {
    if (this.queue.length === 0) return true
    try {
      this.writeQueued()
    } catch (cause) {
      this.failed(cause)
      return false
    }
    this.schedule(this.opts.flushIntervalMs ?? 50)
    return true
  }

  /**
   * Nothing to flush: every appended byte written and fdatasync'ed, no flush in progress, no failure
   * waiting for a retry. `flush()` would then resolve at once having done nothing; a caller with
   * many idle spools (the shipper's `checkpointLive`) passes over these without a promise each.
   */
  get settled(): boolean {
    return this.queue.length === 0 && !this.unsynced && this.flushing === 0 && !this.closeFailed && this.lastError === undefined
  }

  /** Resolves once everything appended so far is on disk; rejects if it could not be written. */
  flush(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    this.flushing += 1
    const run = (this.chain ?? RESOLVED).then(() => this.writeAndSync())
    const settle = (): void => {
      this.flushing -= 1
      // Nothing left to wait for: an idle spool keeps no settled promise.
      if (this.chain === chain) this.chain = undefined
    }
    const chain = run.then(settle, settle)
    this.chain = chain
    return run
  }

  /**
   * Flushes, closes and releases the lock. If the final flush fails this rejects and keeps the lock
   * (the session is still being written, from memory); the retries go on and finish the close.
   */
  async close(): Promise<void> {
    this.closed = true
    try {
      await this.flush()
    } catch (err) {
      this.closeFailed = true
      throw err
    }
    await this.finish()
  }

  private async finish(): Promise<void> {
    const fd = this.fd
    this.fd = undefined
    if (fd !== undefined) await closeFd(fd)
    if (this.locked) {
      this.locked = false
      await unlink(this.paths.lock).catch(() => undefined)
    }
  }

  private schedule(ms: number): void {
    if (this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.flush().catch(() => {
        /* reported through onError; the retry is scheduled by failed() */
      })
    }, ms)
    // The recorder's owner decides process lifetime; a pending flush must not keep Node alive alone.
    this.timer.unref?.()
  }

  /** Opened on the first write, synchronously, since `writeNow` runs before a client may see a result. */
  private open(): number {
    if (this.fd !== undefined) return this.fd
    mkdirSync(this.dir, {recursive: true, mode: 0o700})
    const paths = this.paths
    // The lock goes first: a log without a live lock is what the shipper treats as interrupted.
    // Both are create-exclusive, so a reused session id fails loudly instead of mixing two logs.
    if (!this.locked) {
      writeFileSync(paths.lock, JSON.stringify(currentLockInfoNow()) + '\n', {mode: 0o600, flag: 'wx'})
      this.locked = true
    }
    this.fd = openSync(paths.log, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY | fsc.O_APPEND, 0o600)
    return this.fd
  }

  /** Every queued byte in one write (a short write continues where it stopped); throws what the write throws. */
  private writeQueued(): void {
    if (this.queue.length === 0) return
    const fd = this.open()
    const batch = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue)
    this.queue = []
    let offset = 0
    try {
      while (offset < batch.length) {
        const written = writeSync(fd, batch, offset, batch.length - offset)
        offset += written
        this.queued -= written
        this.written += written
      }
    } catch (err) {
      // Exactly the unwritten bytes go back in front, so a retry continues the same line.
      this.queue.unshift(batch.subarray(offset))
      throw err
    } finally {
      if (offset > 0) this.unsynced = true
    }
  }

  private async writeAndSync(): Promise<void> {
    try {
      this.writeQueued()
      if (this.unsynced && this.fd !== undefined) {
        this.unsynced = false
        try {
          await datasyncFd(this.fd)
        } catch (err) {
          this.unsynced = true
          throw err
        }
      }
      this.failures = 0
      this.lastError = undefined
      if (this.closeFailed && this.queue.length === 0) {
        this.closeFailed = false
        await this.finish()
      }
    } catch (cause) {
      throw this.failed(cause)
    }
  }

  private failed(cause: unknown): SpoolWriteError {
    const err = new SpoolWriteError(this.sessionId, this.paths.log, cause)
    this.lastError = err
    this.failures += 1
    this.opts.onError?.(err)
    this.schedule(Math.min(5_000, 100 * 2 ** Math.min(this.failures, 6)))
    return err
  }
}

const RESOLVED: Promise<void> = Promise.resolve()
const datasyncFd = promisify(fdatasync)
const closeFd = promisify(close)

/** This process's start time never changes: read once, synchronously, for the locks `open` writes. */
let ownStart: string | undefined | null = null
function currentLockInfoNow(): LockInfo {
  if (ownStart === null) {
    try {
      const stat = readFileSync('/proc/self/stat', 'utf8')
      ownStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    } catch {
      ownStart = undefined
    }
  }
  return {pid: process.pid, host: hostname(), procStart: ownStart, createdAt: new Date().toISOString()}
}
