/**
 * The gateway's readiness checks and scrape-time gauges, apart from the server so each can be
 * tested alone. Every check has its own deadline: a bucket that hangs makes `/readyz` say
 * `degraded` about the bucket, not time the whole answer out into `not-ready`.
 */
import {mkdir, open, stat, unlink} from 'node:fs/promises'
import {join} from 'node:path'
import net from 'node:net'
import {spoolPaths} from '../audit/spool.js'
import {readMark, spooledSessions} from '../audit/spool-scan.js'
import type {Bucket} from '../bucket/index.js'
import type {ReadinessCheck} from './observer.js'

export const CHECK_TIMEOUT_MS = 2000

/** Resolves with what went wrong, or undefined when `fn` finished within `ms`. */
async function failureWithin(ms: number, what: string, fn: () => Promise<unknown>): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`${what} did not answer within ${ms} ms`), ms)
  })
  try {
    return await Promise.race([fn().then(() => undefined, (e: Error) => `${what}: ${e.message}`), timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A TCP connection to the database's port: reachable, without signing in (no credentials spent). */
function tcpConnect(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({host, port})
    s.once('connect', () => {
      s.destroy()
      resolve()
    })
    s.once('error', (e) => {
      s.destroy()
      reject(e)
    })
  })
}

/**
 * One check per target, `upstream:<name>`. A target that cannot be reached only degrades the
 * gateway while another one can (its clients get 08006 naming it; the others are served); when
 * none can, the gateway has nothing to serve and is not ready.
 */
export async function upstreamChecks(targets: readonly {name: string; host: string; port: number}[], timeoutMs = CHECK_TIMEOUT_MS): Promise<ReadinessCheck[]> {
  const checks = await Promise.all(
    targets.map(async (t): Promise<ReadinessCheck> => {
      const failure = await failureWithin(timeoutMs, `${t.host}:${t.port}`, () => tcpConnect(t.host, t.port))
      return {name: `upstream:${t.name}`, ok: failure === undefined, detail: failure ?? `${t.host}:${t.port} reachable`}
    }),
  )
  const anyReachable = checks.some((c) => c.ok)
  return checks.map((c) => (c.ok ? c : {...c, degradesOnly: anyReachable}))
}

/**
 * The bucket takes a write: a small object under `health/` named after the gateway. A failure
 * degrades only: sessions go on, recordings wait in the spool, nothing is lost.
 */
export async function bucketCheck(bucket: Bucket, gatewayName: string, timeoutMs = CHECK_TIMEOUT_MS): Promise<ReadinessCheck> {
  const key = `health/gateways/${encodeURIComponent(gatewayName)}.json`
  const failure = await failureWithin(timeoutMs, `writing ${bucket.url}/${key}`, () => bucket.put(key, `${JSON.stringify({at: new Date().toISOString()})}\n`, {contentType: 'application/json'}))
  return {
    name: 'bucket',
    ok: failure === undefined,
    degradesOnly: true,
    detail: failure ? `${failure}; sessions continue and recordings wait in the spool` : `${bucket.url} writable`,
  }
}

/** What the probe writes: a block, so a disk with no room for one more is found before sessions are. */
const SPOOL_PROBE = Buffer.alloc(4096, 0x20)

/**
 * The spool takes a write and a sync, as every session's log must: a file written, synced and
 * removed. A failure makes the gateway not ready, since it refuses every session whose log it
 * cannot write (a full disk, a read-only or missing volume).
 */
export async function spoolCheck(dir: string, gatewayName: string, timeoutMs = CHECK_TIMEOUT_MS): Promise<ReadinessCheck> {
  const probe = join(dir, `.readyz-${encodeURIComponent(gatewayName)}-${process.pid}`)
  const failure = await failureWithin(timeoutMs, `writing ${dir}`, async () => {
    await mkdir(dir, {recursive: true, mode: 0o700})
    const fh = await open(probe, 'w', 0o600)
    try {
      await fh.write(SPOOL_PROBE)
      await fh.datasync()
    } finally {
      await fh.close()
      await unlink(probe).catch(() => undefined)
    }
  })
  return {
    name: 'spool',
    ok: failure === undefined,
    degradesOnly: false,
    detail: failure ? `${failure}; sessions are refused until their recordings can be written` : `${dir} writable`,
  }
}

/**
 * Bytes of the spool the bucket does not have yet: each log's size less what its last snapshot
 * shipped. Sizes and the small `.shipped` marks only, so a scrape never reads the logs themselves.
 */
export async function spoolBacklogBytes(dir: string): Promise<number> {
  let total = 0
  for (const sessionId of await spooledSessions(dir)) {
    const paths = spoolPaths(dir, sessionId)
    const size = (await stat(paths.log).catch(() => undefined))?.size ?? 0
    const mark = await readMark(paths.shipped)
    total += Math.max(0, size - (mark?.bytes ?? 0))
  }
  return total
}
