/**
 * One refresh at a time per sign-in, across every dbgate process of the person (two tunnels, the
 * approval screen, a CLI command). IdPs that rotate refresh tokens revoke the whole grant when a
 * spent refresh token is presented again, so two processes refreshing with the same token sign
 * the person out everywhere. The lock is a file created with O_EXCL next to the token store; a
 * holder that died (its pid is gone) or hung past `staleMs` is recovered from.
 */
import {randomBytes} from 'node:crypto'
import {link, mkdir, readFile, rename, unlink, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {dirname} from 'node:path'
import {TokenStoreError} from './errors.js'

export interface LockOptions {
  /** A holder older than this is presumed hung and its lock broken. Default 60 s (an IdP call times out well before). */
  staleMs?: number
  /** Give up waiting after this long. Default 90 s. */
  waitMs?: number
}

interface Holder {
  pid: number
  host: string
  nonce: string
  at: number
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the pid exists but belongs to someone else, which is alive all the same.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Partial<Holder>
    return typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.nonce === 'string' && typeof h.at === 'number' ? (h as Holder) : undefined
  } catch {
    return undefined
  }
}

function isStale(holder: Holder | undefined, staleMs: number, now: number): boolean {
  // An unreadable lock was written by nothing dbgate would write: treat it like a dead holder.
  if (!holder) return true
  if (holder.host === hostname() && !alive(holder.pid)) return true
  return now - holder.at > staleMs
}

/** Runs `fn` holding the lock file `file`; waits (polling) while another live process holds it. */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const staleMs = opts.staleMs ?? 60_000
  const deadline = Date.now() + (opts.waitMs ?? 90_000)
  const me: Holder = {pid: process.pid, host: hostname(), nonce: randomBytes(8).toString('hex'), at: Date.now()}
  await mkdir(dirname(file), {recursive: true, mode: 0o700})
  for (;;) {
    // Written whole to a private file first and then linked in: a reader never sees half a lock.
    const tmp = `${file}.${me.nonce}.tmp`
    await writeFile(tmp, JSON.stringify({...me, at: Date.now()}), {mode: 0o600})
    let acquired = false
    try {
      await link(tmp, file)
      acquired = true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new TokenStoreError(`Could not create the refresh lock ${file}.`, {cause: error})
    } finally {
      await unlink(tmp).catch(() => {})
    }
    if (acquired) break
    const text = await readFile(file, 'utf8').catch(() => undefined)
    if (text === undefined) continue // released meanwhile
    if (isStale(parseHolder(text), staleMs, Date.now())) {
      await breakStale(file, text)
      continue
    }
    if (Date.now() > deadline) {
      throw new TokenStoreError(`Another dbgate process has been renewing your sign-in for too long (it holds ${file}).`, {
        nextStep: `If no other dbgate process is running, remove ${file} and try again.`,
      })
    }
    await sleep(20 + Math.random() * 60)
  }
  try {
    return await fn()
  } finally {
    await release(file, me.nonce)
  }
}

/** Moves a stale lock aside; puts it back if, between reading and moving, a live process had taken it. */
async function breakStale(file: string, staleText: string): Promise<void> {
  const aside = `${file}.stale-${randomBytes(6).toString('hex')}`
  try {
    await rename(file, aside)
  } catch {
    return // someone else broke or released it first
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined)
  if (moved !== staleText) await link(aside, file).catch(() => {})
  await unlink(aside).catch(() => {})
}

async function release(file: string, nonce: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => undefined)
  // Only our own lock: if ours was broken as stale, the file now belongs to someone else.
  if (text !== undefined && parseHolder(text)?.nonce === nonce) await unlink(file).catch(() => {})
}
