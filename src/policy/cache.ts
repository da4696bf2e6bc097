/**
 * Parsing is the expensive step and applications send the same texts over and over (ORMs, health
 * checks, prepared texts), so analyses are cached by their exact text and shared by every
 * connection. Analyses are plain data and are never mutated after they are built, which is what
 * makes sharing them safe.
 */
import {analyze} from './analyze.js'
import {parserReady} from './parser.js'
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

export class AnalysisCache {
  readonly maxEntries: number
  readonly maxBytes: number
  // A Map iterates in insertion order, so re-inserting on every hit keeps the least recently used first.
  private readonly entries = new Map<string, {analysis: Analysis; bytes: number; cap: number | undefined}>()
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
      this.entries.delete(key)
      this.entries.set(key, hit)
      return hit.analysis
    }
    this.misses++
    if (hit) {
      this.entries.delete(key)
      this.bytes -= hit.bytes
    }
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
      this.entries.set(key, {analysis, bytes, cap})
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
    this.bytes = 0
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break
      this.entries.delete(key)
      this.bytes -= entry.bytes
    }
  }
}

/** The cache every hook shares unless it is given its own. */
export const sharedAnalysisCache = new AnalysisCache()
