import type {AgentInfo} from '../identity/types.js'
import {randomBytes} from 'node:crypto'
import {mkdir, readdir, readFile, rename, unlink, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'
import type {Bucket, ObjectInfo} from '../bucket/index.js'
import {sessionCacheDir} from '../util/paths.js'
import {sha256hex} from './chain.js'
import {addToTotals, emptyTotals, parseEventLine, type SessionEndData, type SessionStartData, type StatementData, type Totals} from './events.js'

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
  client?: {application?: string; address: string}
  startedAt?: string
  endedAt?: string
  /** `in-progress`: a snapshot shipped while the session was live, or a log cut short. */
  status: 'ended' | 'interrupted' | 'in-progress'
  endReason?: string
  totals: Totals
  /** The policy the session ran under: its hash, and `vN (published)`, `local`, or a local override. */
  policy?: {hash?: string; version?: string}
  /** The AI agent that ran the session through `dbgate mcp`, for `user`. */
  agent?: AgentInfo
}

interface IndexFile {
  v: 3
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
    const text = (info.key.endsWith('.gz') ? gunzipSync(body) : body).toString('utf8')
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
      // Summaries written by an older dbgate lack fields (e.g. `agent`): read those sessions again.
      this.index = idx.v === 3 && idx.entries ? idx : {v: 3, entries: {}}
    } catch {
      this.index = {v: 3, entries: {}}
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

  /** Summaries of every session object under `sessions/` that `keep` accepts by key (cheap pruning on dt= and target=). */
  async summaries(keep: (key: string) => boolean = () => true): Promise<SessionSummary[]> {
    const idx = await this.loadIndex()
    const out: SessionSummary[] = []
    const present = new Set<string>()
    for await (const info of this.bucket.list('sessions/')) {
      present.add(info.key)
      if (!info.key.endsWith('.jsonl.gz') || !keep(info.key)) continue
      const cached = idx.entries[info.key]
      if (cached && cached.etag === info.etag) {
        out.push(cached.summary)
        continue
      }
      const summary = summarize(info, await this.text(info))
      idx.entries[info.key] = {etag: info.etag, summary}
      this.dirty = true
      out.push(summary)
    }
    // Objects removed from the bucket (lifecycle expiry) leave the index too.
    for (const key of Object.keys(idx.entries)) {
      if (!present.has(key)) {
        delete idx.entries[key]
        this.dirty = true
      }
    }
    await this.saveIndex()
    return out
  }
}

export function summarize(info: ObjectInfo, text: string): SessionSummary {
  const file = info.key.slice(info.key.lastIndexOf('/') + 1)
  const targetMatch = /\/target=([^/]+)\//.exec(info.key)
  const s: SessionSummary = {
    key: info.key,
    etag: info.etag,
    size: info.size,
    sessionId: file.replace(/\.jsonl\.gz$/, ''),
    target: targetMatch ? decodeURIComponent(targetMatch[1]!) : '_unknown',
    status: 'in-progress',
    totals: {statements: 0, denied: 0, errors: 0, rows: 0},
  }
  const counted = emptyTotals()
  for (const line of text.split('\n')) {
    if (!line) continue
    let ev
    try {
      ev = parseEventLine(line)
    } catch {
      continue // verify reports malformed lines; a summary shows what can be read
    }
    if (ev.type === 'session.start') {
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
    } else if (ev.type === 'session.end' || ev.type === 'session.interrupted') {
      s.status = ev.type === 'session.end' ? 'ended' : 'interrupted'
      s.endedAt = ev.ts
      s.endReason = (ev.data as Partial<SessionEndData>).reason
    }
  }
  // Counted from the statements themselves, so an in-progress snapshot has real numbers too.
  s.totals = counted
  return s
}
