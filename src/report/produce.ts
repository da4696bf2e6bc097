/**
 * The I/O around `buildReport`: read the period's sessions through the same cache as `sessions
 * search`, verify each against the bucket's published keys, and write report.html, report.json and
 * report.md into a directory.
 */
import {randomBytes} from 'node:crypto'
import {mkdir, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {UnreadableObjectError} from '../audit/index-cache.js'
import {SessionReader} from '../audit/read.js'
import {loadKeyRing, type KeyRing} from '../audit/signing.js'
import type {SignerTrust} from '../audit/trust.js'
import {verifySession} from '../audit/verify.js'
import type {Bucket} from '../bucket/index.js'
import {scanText} from '../masking/detectors.js'
import {loadParser} from '../sql/parser.js'
import {eventsFrom, ReportBuilder} from './build.js'
import {renderHtml} from './html.js'
import {renderMarkdown} from './markdown.js'
import type {Framework, Report} from './model.js'

export interface ProduceOptions {
  bucket: Bucket
  /** Default: the same cache as `dbgate sessions`. */
  cacheDir?: string
  since: Date
  until: Date
  target?: string
  frameworks: readonly Framework[]
  outDir: string
  fullSql?: boolean
  /** Trust these keys instead of the bucket's `keys/`. */
  keys?: KeyRing
  /** Only these signers count (src/audit/trust.ts). */
  trust?: SignerTrust
  /** Called with the key ring once it is read (to warn about named signers that match none). */
  onKeys?: (keys: KeyRing) => void
  generator: string
  now?: Date
  /** Called once per session read, for a progress line. */
  onSession?: (done: number, total: number) => void
}

export interface Produced {
  report: Report
  files: {html: string; json: string; md: string}
}

/** Statement text the parser rejected has no normalized form; the value scanner blanks what it recognises. */
export function redactFreeText(text: string): string {
  const found = scanText(text).sort((a, b) => b.start - a.start)
  let out = text
  for (const f of found) out = `${out.slice(0, f.start)}[${f.category}]${out.slice(f.end)}`
  return out
}

async function isEmpty(bucket: Bucket): Promise<boolean> {
  for await (const _ of bucket.list('')) return false
  return true
}

/** The UTC day of the bucket's first session log (`sessions/dt=…/`), read from the keys alone. */
async function firstRecordedDay(bucket: Bucket): Promise<string | undefined> {
  let first: string | undefined
  for await (const o of bucket.list('sessions/')) {
    const day = /(?:^|\/)dt=(\d{4}-\d{2}-\d{2})\//.exec(o.key)?.[1]
    if (day && (first === undefined || day < first)) first = day
  }
  return first
}

async function writeAtomic(path: string, body: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  // The report names people and what they ran: readable by its owner, who decides whom to share it with.
  await writeFile(tmp, body, {mode: 0o600})
  await rename(tmp, path)
}

export async function produceReport(opts: ProduceOptions): Promise<Produced> {
  if (opts.since.getTime() > opts.until.getTime()) throw new Error(`the period is empty: --since (${opts.since.toISOString()}) is after --until (${opts.until.toISOString()})`)
  // Before any reading: a bad --out should not cost a whole period's download.
  await mkdir(opts.outDir, {recursive: true}).catch((err: NodeJS.ErrnoException) => {
    throw new Error(err.code === 'EEXIST' || err.code === 'ENOTDIR' ? `--out ${opts.outDir} is a file; give a directory (it is created if missing)` : `cannot create --out ${opts.outDir}: ${err.message}`)
  })
  await loadParser()
  const reader = new SessionReader(opts.bucket, opts.cacheDir)
  const {keys, errors: keyErrors} = opts.keys ? {keys: opts.keys, errors: []} : await loadKeyRing(opts.bucket)
  opts.onKeys?.(keys)
  // With the sessions started before the period that were still recording in it (`eventsFrom` keeps their part of it).
  const {sessions: summaries, unreadable} = await reader.listing({since: opts.since, until: opts.until, target: opts.target, spanning: true})
  if (summaries.length === 0 && unreadable.length === 0 && (await isEmpty(opts.bucket))) {
    // Most likely a mistyped bucket or prefix: an empty report would read as "nobody connected".
    throw new Error(`${opts.bucket.url} holds no recordings at all (no sessions/, no keys/): check --bucket, DBGATE_BUCKET or the configuration's bucket`)
  }
  const builder = new ReportBuilder({
    since: opts.since,
    until: opts.until,
    target: opts.target,
    frameworks: opts.frameworks,
    sources: {bucket: opts.bucket.url, keys: [...keys.keys()].sort(), keyErrors, unreadableObjects: unreadable, ...(opts.trust ? {trustedSigners: [...opts.trust.names]} : {})},
    generatedAt: opts.now ?? new Date(),
    generator: opts.generator,
    fullSql: opts.fullSql,
    maskText: redactFreeText,
    recordingSince: await firstRecordedDay(opts.bucket),
  })
  for (const [i, summary] of summaries.entries()) {
    // One session's events at a time: a long period never sits in memory whole.
    let loaded
    try {
      loaded = await reader.loadSummary(summary)
    } catch (err) {
      // Replaced since it was listed, by something that cannot be read: a finding like the others.
      if (!(err instanceof UnreadableObjectError)) throw err
      unreadable.push({key: err.key, size: summary.size, problem: err.problem})
      continue
    }
    const {text, events} = loaded
    const before = summary.startedAt !== undefined && new Date(summary.startedAt).getTime() < opts.since.getTime()
    const inPeriod = before ? eventsFrom(events, opts.since) : events
    if (inPeriod) builder.add({summary, events: inPeriod, verification: verifySession(text, keys, {trust: opts.trust, objectKey: summary.key}), ...(before ? {startedBeforePeriod: true} : {})})
    opts.onSession?.(i + 1, summaries.length)
  }
  const report = builder.finish()
  const files = {html: join(opts.outDir, 'report.html'), json: join(opts.outDir, 'report.json'), md: join(opts.outDir, 'report.md')}
  await writeAtomic(files.json, JSON.stringify(report, null, 2) + '\n')
  await writeAtomic(files.md, renderMarkdown(report))
  await writeAtomic(files.html, renderHtml(report))
  return {report, files}
}
