/**
 * Parsing is the expensive step and applications send the same texts over and over (ORMs, health
 * checks, prepared texts), so analyses are cached by their exact text and shared by every
 * connection. Analyses are plain data and are never mutated after they are built, which is what
 * makes sharing them safe.
 */
import {analyze} from './analyze.js'
import {parserReady} from '../sql/parser.js'
import type {Analysis, AnalyzeOptions} from './types.js'

export interface AnalysisCacheOptions {
  /** Most entries kept. */
  maxEntries?: number
  /** Most bytes of SQL text kept (the analyses are roughly proportional to it). */
  maxBytes?: number
}

export interface CacheStats {
  entries: number
  bytes: number
  hits: number
  misses: number
}

/** Texts over this share of the byte budget are analysed but not kept: one would evict everything. */
const MAX_ENTRY_SHARE = 8

/** An entry, and its place in the recency list (least recently used at the head). */
interface Entry {
  key: string
  analysis: Analysis
  bytes: number
  cap: number | undefined
  newer: Entry | undefined
  older: Entry | undefined
}

export class AnalysisCache {
  readonly maxEntries: number
  readonly maxBytes: number
  // The map finds entries; a linked list keeps their recency. (Keeping recency by re-inserting
  // into the Map and evicting from its start made every eviction walk past the deleted slots
  // V8 leaves at the front of a Map until it rehashes: ~8 % of the tunnel's time on pgbench -S.)
  private readonly entries = new Map<string, Entry>()
  private oldest: Entry | undefined
  private newest: Entry | undefined
  private bytes = 0
  private hits = 0
  private misses = 0

  constructor(opts: AnalysisCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
  }

  /** The analysis of `sql`, from the cache or freshly made (and then kept). */
  analyze(sql: string, opts: AnalyzeOptions = {}): Analysis {
    return this.peek(sql, opts) ?? this.store(sql, opts, analyze(sql, opts))
  }

  /** The cached analysis of `sql`, or undefined (counted as a miss). */
  peek(sql: string, opts: AnalyzeOptions = {}): Analysis | undefined {
    // The size cap changes the answer for large texts, so an entry made under another cap is a
    // miss. (Keying on cap + text would copy every text, megabytes at a time, on each lookup.)
    const key = sql
    const hit = this.entries.get(key)
    if (hit && hit.cap === opts.maxStatementSize) {
      this.hits++
      this.unlink(hit)
      this.append(hit)
      return hit.analysis
    }
    this.misses++
    if (hit) this.remove(hit)
    return undefined
  }

  /** Keeps an analysis made elsewhere (e.g. off the main thread) and returns it. */
  store(sql: string, opts: AnalyzeOptions, analysis: Analysis): Analysis {
    const key = sql
    const cap = opts.maxStatementSize
    // Twice the text: the analysis holds each statement's own copy of it.
    const bytes = 2 * Buffer.byteLength(sql, 'utf8') + 256
    // Before the parser loads every answer is `unknown`; keeping that would outlive the cause.
    if (parserReady() && bytes * MAX_ENTRY_SHARE <= this.maxBytes && this.maxEntries > 0) {
      const old = this.entries.get(key)
      if (old) this.remove(old)
      const entry: Entry = {key, analysis, bytes, cap, newer: undefined, older: undefined}
      this.entries.set(key, entry)
      this.append(entry)
      this.bytes += bytes
      this.evict()
    }
    return analysis
  }

  stats(): CacheStats {
    return {entries: this.entries.size, bytes: this.bytes, hits: this.hits, misses: this.misses}
  }

  clear(): void {
    this.entries.clear()
    this.oldest = this.newest = undefined
    this.bytes = 0
  }

  private evict(): void {
    while (this.oldest && (this.entries.size > this.maxEntries || this.bytes > this.maxBytes)) this.remove(this.oldest)
  }

  private remove(entry: Entry): void {
    this.unlink(entry)
    this.entries.delete(entry.key)
    this.bytes -= entry.bytes
  }

  /** Makes `entry` the most recently used. */
  private append(entry: Entry): void {
    entry.older = this.newest
    entry.newer = undefined
    if (this.newest) this.newest.newer = entry
    else this.oldest = entry
    this.newest = entry
  }

  private unlink(entry: Entry): void {
    if (entry.older) entry.older.newer = entry.newer
    else this.oldest = entry.newer
    if (entry.newer) entry.newer.older = entry.older
    else this.newest = entry.older
    entry.newer = entry.older = undefined
  }
}

/** The cache every hook shares unless it is given its own. */
export const sharedAnalysisCache = new AnalysisCache()
