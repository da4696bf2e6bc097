import type {AgentInfo} from '../identity/types.js'
import {randomBytes} from 'node:crypto'
import {mkdir, readdir, readFile, rename, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import type {Bucket, ObjectInfo} from '../bucket/index.js'
import {BUCKET_ACCESS_DENIED, BUCKET_ERROR, INVALID_KEY, isBucketError, OBJECT_NOT_FOUND} from '../bucket/errors.js'
import {sessionCacheDir} from '../util/paths.js'
import {DocumentError} from '../util/document.js'
import {visible} from '../util/visible.js'
import {sha256hex} from './chain.js'
import {addToTotals, emptyTotals, parseEventLine, TOOL_REFUSED, type SessionEndData, type SessionStartData, type StatementData, type Totals} from './events.js'

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return sessionCacheDir(env)
}

export interface SessionSummary {
  key: string
  etag: string
  size: number
  sessionId: string
  target: string
  database?: string
  user?: string
  subject?: string
  identityKind?: string
  client?: {application?: string; user?: string; address: string}
  startedAt?: string
  endedAt?: string
  /** `in-progress`: a snapshot shipped while the session was live, or a log cut short. */
  status: 'ended' | 'interrupted' | 'in-progress'
  endReason?: string
  /**
   * The gateway refused this person's sign-in (their token verified): no statement ran.
   * `alsoRefused`: refusals of the same kind past the rate, counted into this one.
   */
  refused?: {reason: string; alsoRefused?: number}
  totals: Totals
  /** The policy the session ran under: its hash, and `vN (published)`, `local`, or a local override. */
  policy?: {hash?: string; version?: string}
  /** The AI agent that ran the session through `dbgate mcp`, for `user`. */
  agent?: AgentInfo
  /** Calls the agent's MCP tools refused themselves (`mcp.tool_refused`), when there were any. */
  toolRefusals?: number
}

/**
 * An object under `sessions/` that is not a readable session log: not gzip, cut short, empty, too
 * large, no dbgate event in it, or a key that does not parse. Whoever can write one object into the
 * bucket must not be able to hide every other session behind it, so readers list these apart and
 * go on with the rest; and never in silence, since one may be a damaged real log.
 */
export interface UnreadableObject {
  key: string
  size: number
  /** What is wrong, in a few words. */
  problem: string
}

/** What a listing found: the sessions it could read, and the objects it could not. */
export interface Listing {
  sessions: SessionSummary[]
  unreadable: UnreadableObject[]
}

/**
 * The largest session log read, compressed or inflated. A gzip of zeros inflates a thousandfold,
 * so without a bound one small object could exhaust the auditor's memory; a real log this large
 * would be millions of statements in one session.
 */
export const MAX_LOG_BYTES = 256 * 1024 * 1024

/** Thrown by `SessionCache.text` for an object whose content cannot be a session log. */
export class UnreadableObjectError extends Error {
  constructor(readonly key: string, readonly problem: string) {
    // Printed as an error when a session named by id is such an object: the key is its writer's text.
    super(`session object ${visible(key)} cannot be read as a session log: ${visible(problem)}`)
    this.name = 'UnreadableObjectError'
  }
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b])
const mib = (n: number) => `${Math.round(n / (1024 * 1024))} MiB`

/**
 * Inflates a session object (or a `.jsonl.gz` given to `verify --file`), naming what is wrong when
 * it cannot be a gzip log; never more than MAX_LOG_BYTES.
 */
export function inflate(key: string, body: Buffer): Buffer {
  if (body.length === 0) throw new UnreadableObjectError(key, 'empty object (0 bytes)')
  if (!body.subarray(0, 2).equals(GZIP_MAGIC)) throw new UnreadableObjectError(key, `not gzip (${body.length} bytes that do not start with the gzip header)`)
  try {
    return gunzipSync(body, {maxOutputLength: MAX_LOG_BYTES})
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) throw new UnreadableObjectError(key, `inflates to more than ${mib(MAX_LOG_BYTES)}, the most dbgate reads of one log`)
    if (e.code === 'Z_BUF_ERROR') throw new UnreadableObjectError(key, `gzip cut short (${body.length} bytes, the stream stops before its end)`)
    throw new UnreadableObjectError(key, `damaged gzip (${e.message})`)
  }
}

/**
 * Where a session key says the log belongs: `sessions/dt=…/target=…/<id>.jsonl.gz`. A key that is
 * not a log's name, or whose target is not valid URL encoding, gets a `problem` instead.
 */
export function parseSessionKey(key: string): {day?: string; target?: string; problem?: undefined} | {problem: string} {
  if (!key.endsWith('.jsonl.gz')) return {problem: 'not a session log name (logs are sessions/dt=<day>/target=<target>/<session>.jsonl.gz)'}
  const day = /\/?dt=(\d{4}-\d{2}-\d{2})\//.exec(key)?.[1]
  const encoded = /\/target=([^/]+)\//.exec(key)?.[1]
  let target: string | undefined
  if (encoded !== undefined) {
    try {
      target = decodeURIComponent(encoded)
    } catch {
      return {problem: 'target= in the key is not valid URL encoding'}
    }
  }
  return {day, target}
}

interface IndexFile {
  v: 7
  entries: Record<string, {etag: string; summary: SessionSummary}>
}

/**
 * Local cache of shipped session objects, keyed by key + etag, with an index of their summaries.
 * Searching a thousand sessions twice downloads each one once; a re-shipped (longer) in-progress
 * session has a new etag and is fetched again.
 */
export class SessionCache {
  readonly dir: string
  downloads = 0
  hits = 0
  private index?: IndexFile
  private dirty = false

  constructor(readonly bucket: Bucket, dir = defaultCacheDir()) {
    // One namespace per bucket, so two buckets with the same keys never mix.
    this.dir = join(dir, sha256hex(bucket.url).slice(0, 16))
  }

  private objectPath(key: string, etag: string): string {
    return join(this.dir, 'objects', `${sha256hex(key).slice(0, 32)}-${sha256hex(etag).slice(0, 16)}.jsonl`)
  }

  /** The uncompressed log of one shipped session. */
  async text(info: ObjectInfo): Promise<string> {
    if (info.size > MAX_LOG_BYTES) throw new UnreadableObjectError(info.key, `${mib(info.size)}, more than the ${mib(MAX_LOG_BYTES)} dbgate reads of one log`)
    const path = this.objectPath(info.key, info.etag)
    try {
      const text = await readFile(path, 'utf8')
      this.hits += 1
      return text
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const {body, info: got} = await this.bucket.get(info.key)
    this.downloads += 1
    // Stored only once whole: a half-read object never reaches the cache.
    const text = (info.key.endsWith('.gz') ? inflate(info.key, body) : body).toString('utf8')
    await this.store(info.key, got.etag || info.etag, text)
    return text
  }

  private async store(key: string, etag: string, text: string): Promise<void> {
    const objects = join(this.dir, 'objects')
    // Recorded SQL can hold literal personal data; the cache is as private as the spool.
    await mkdir(objects, {recursive: true, mode: 0o700})
    const prefix = sha256hex(key).slice(0, 32) + '-'
    const path = this.objectPath(key, etag)
    // Older versions of this key (earlier in-progress snapshots) are dead weight now.
    for (const name of await readdir(objects)) {
      if (name.startsWith(prefix) && join(objects, name) !== path) await unlink(join(objects, name)).catch(() => undefined)
    }
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(tmp, text, {mode: 0o600})
    await rename(tmp, path)
  }

  private async loadIndex(): Promise<IndexFile> {
    if (this.index) return this.index
    try {
      const idx = JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as IndexFile
      // Summaries written by an older dbgate lack fields (e.g. `agent`), were read from lines it did not yet check (v3), took a later session.start's identity (v4), lack a refused sign-in (v5) or the refusals counted into it (v6): read those sessions again.
      this.index = idx.v === 7 && idx.entries ? idx : {v: 7, entries: {}}
    } catch {
      this.index = {v: 7, entries: {}}
    }
    return this.index
  }

  async saveIndex(): Promise<void> {
    if (!this.dirty || !this.index) return
    await mkdir(this.dir, {recursive: true, mode: 0o700})
    const tmp = join(this.dir, `index.json.${randomBytes(6).toString('hex')}.tmp`)
    await writeFile(tmp, JSON.stringify(this.index), {mode: 0o600})
    await rename(tmp, join(this.dir, 'index.json'))
    this.dirty = false
  }

  /**
   * Summaries of every session object under `sessions/` that `keep` accepts by key (cheap pruning
   * on dt= and target=), and every object there that cannot be read as a session log. Objects
   * whose key does not parse are never pruned: nothing says which period or target they are in.
   */
  async scan(keep: (key: string, info: ObjectInfo) => boolean = () => true): Promise<Listing> {
    const idx = await this.loadIndex()
    const sessions: SessionSummary[] = []
    const unreadable: UnreadableObject[] = []
    const present = new Set<string>()
    for await (const info of this.bucket.list('sessions/')) {
      present.add(info.key)
      // A folder marker (what consoles create for "new folder") holds nothing to read.
      if (info.key.endsWith('/') && info.size === 0) continue
      const parsed = parseSessionKey(info.key)
      if (parsed.problem !== undefined) {
        unreadable.push({key: info.key, size: info.size, problem: parsed.problem})
        continue
      }
      if (!keep(info.key, info)) continue
      const cached = idx.entries[info.key]
      if (cached && cached.etag === info.etag) {
        sessions.push(cached.summary)
        continue
      }
      let text: string
      try {
        text = await this.text(info)
      } catch (err) {
        const problem = err instanceof UnreadableObjectError ? err.problem : fetchProblem(err)
        if (problem === undefined) throw err
        unreadable.push({key: info.key, size: info.size, problem})
        continue
      }
      const {summary, events} = summarizeCounting(info, text)
      if (events === 0) {
        // Not indexed: only a summary read from real events may stand for the object.
        unreadable.push({key: info.key, size: info.size, problem: noEventsProblem(text)})
        continue
      }
      idx.entries[info.key] = {etag: info.etag, summary}
      this.dirty = true
      sessions.push(summary)
    }
    // Objects removed from the bucket (lifecycle expiry) leave the index too.
    for (const key of Object.keys(idx.entries)) {
      if (!present.has(key)) {
        delete idx.entries[key]
        this.dirty = true
      }
    }
    await this.saveIndex()
    return {sessions, unreadable}
  }
}

/**
 * What stops one listed object from being fetched when the bucket itself answers: a key dbgate
 * refuses to use, an object removed since the listing, one the auditor may not read (an object ACL,
 * a KMS key they cannot use), or one the store will not serve (archived, encrypted with a
 * customer key). Undefined for failures of the whole bucket (unreachable, throttled, gone), which
 * stop the command as before.
 */
function fetchProblem(err: unknown): string | undefined {
  if (!isBucketError(err)) return undefined
  const cause = (err.cause as {name?: string; status?: number} | undefined) ?? {}
  const answered = cause.name ? ` (${cause.name}${cause.status ? `, HTTP ${cause.status}` : ''})` : ''
  switch (err.code) {
    case INVALID_KEY:
      return 'a key dbgate does not read (an empty, `.` or `..` segment, a backslash, NUL, or over 1024 characters)'
    case OBJECT_NOT_FOUND:
      return 'removed between the listing and the read'
    case BUCKET_ACCESS_DENIED:
      return `access denied when reading it${answered}: an object ACL, encryption with a key these credentials cannot use, or credentials without read access to objects`
    case BUCKET_ERROR:
      return `the bucket refused to serve it${answered}`
    default:
      return undefined
  }
}

/** Why a log with no readable event is no session, from its first line. */
function noEventsProblem(text: string): string {
  const first = text.split('\n').find((l) => l.length > 0)
  if (first === undefined) return 'inflates to nothing (no lines)'
  try {
    parseEventLine(first)
  } catch (err) {
    const why = err instanceof DocumentError ? err.problems[0] : (err as Error).message
    return `no line is a dbgate event (line 1: ${shorten(why ?? 'not an event', 80)})`
  }
  return 'no line is a dbgate event'
}

function shorten(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

export function summarize(info: ObjectInfo, text: string): SessionSummary {
  return summarizeCounting(info, text).summary
}

function summarizeCounting(info: ObjectInfo, text: string): {summary: SessionSummary; events: number} {
  const file = info.key.slice(info.key.lastIndexOf('/') + 1)
  const {target} = parseSessionKey(info.key) as {target?: string}
  const s: SessionSummary = {
    key: info.key,
    etag: info.etag,
    size: info.size,
    sessionId: file.replace(/\.jsonl\.gz$/, ''),
    target: target ?? '_unknown',
    status: 'in-progress',
    totals: {statements: 0, denied: 0, errors: 0, rows: 0},
  }
  const counted = emptyTotals()
  let events = 0
  let started = false
  for (const line of text.split('\n')) {
    if (!line) continue
    let ev
    try {
      ev = parseEventLine(line)
    } catch {
      continue // verify reports malformed lines; a summary shows what can be read
    }
    events += 1
    // The first start is the session's, as the report reads it; a second one (which verify flags) changes nothing here.
    if (ev.type === 'session.start' && !started) {
      started = true
      const d = ev.data as SessionStartData
      Object.assign(s, {
        sessionId: d.sessionId ?? s.sessionId,
        target: d.target ?? s.target,
        database: d.database,
        user: d.identity?.email ?? d.identity?.subject,
        subject: d.identity?.subject,
        identityKind: d.identity?.kind,
        client: d.client,
        startedAt: d.startedAt ?? ev.ts,
        policy: d.policy,
        ...(d.agent && typeof d.agent.name === 'string' ? {agent: d.agent} : {}),
      })
    } else if (ev.type === 'statement') {
      addToTotals(counted, ev.data as StatementData)
    } else if (ev.type === TOOL_REFUSED) {
      s.toolRefusals = (s.toolRefusals ?? 0) + 1
    } else if (ev.type === 'session.end' || ev.type === 'session.interrupted') {
      s.status = ev.type === 'session.end' ? 'ended' : 'interrupted'
      s.endedAt = ev.ts
      s.endReason = (ev.data as Partial<SessionEndData>).reason
      const refused = (ev.data as Partial<SessionEndData>).refused
      if (ev.type === 'session.end' && refused) {
        const also = refused.alsoRefused
        s.refused = {reason: refused.reason, ...(typeof also === 'number' && also > 0 ? {alsoRefused: also} : {})}
      }
    }
  }
  // Counted from the statements themselves, so an in-progress snapshot has real numbers too.
  s.totals = counted
  return {summary: s, events}
}
