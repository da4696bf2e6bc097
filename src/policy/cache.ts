/**
 * Parsing is the expensive step and applications send the same texts over and over (ORMs, health
 * checks, prepared texts), so analyses are cached by their exact text and shared by every
 * connection. Analyses are plain data and are never mutated after they are built, which is what
 * makes sharing them safe. Texts that differ only in their constants share one analysis too,
 * when that is sound (`shape-cache.ts`).
 */
import {LRUCache} from 'lru-cache'
import {analyze} from './analyze.js'
import {parserReady} from '../sql/parser.js'
import {ShapeCache} from './shape-cache.js'
import type {TextReading} from './text-shape.js'
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
  /** Misses answered with the analysis of another text of the same shape, without a parse. */
  shared: number
}

/** Texts over this share of the byte budget are analysed but not kept: one would evict everything. */
const MAX_ENTRY_SHARE = 8

interface Entry {
  analysis: Analysis
  bytes: number
  cap: number | undefined
}

export class AnalysisCache {
  readonly maxEntries: number
  readonly maxBytes: number
  private readonly entries: LRUCache<string, Entry> | undefined
  private readonly shapes = new ShapeCache()
  private hits = 0
  private misses = 0

  constructor(opts: AnalysisCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
    this.entries =
      this.maxEntries > 0 && this.maxBytes > 0
        ? new LRUCache({max: this.maxEntries, maxSize: this.maxBytes, maxEntrySize: Math.floor(this.maxBytes / MAX_ENTRY_SHARE), sizeCalculation: (e) => e.bytes})
        : undefined
  }

  /**
   * The analysis of `sql`, from the cache or freshly made (and then kept). With `reading` (the
   * session's text is read as `readingOf` accepts), a text of a shape already analysed shares that
   * analysis where it does not depend on the constants.
   */
  analyze(sql: string, opts: AnalyzeOptions = {}, reading?: TextReading): Analysis {
    const hit = this.peek(sql, opts)
    if (hit) return hit
    if (!reading) return this.store(sql, opts, analyze(sql, opts))
    const shared = this.shapes.shared
    const analysis = this.shapes.analyze(sql, opts)
    // A text answered by its shape is not kept by its text too: the shape answers it again without
    // a parse, and every `-M simple` text is new, so each entry would only evict another. (Its
    // statement carries the analysis on its verdict, for the recording: `VerdictBasis.analysis`.)
    return this.shapes.shared !== shared ? analysis : this.store(sql, opts, analysis)
  }

  /** The cached analysis of `sql`, or undefined (counted as a miss). */
  peek(sql: string, opts: AnalyzeOptions = {}): Analysis | undefined {
    // The size cap changes the answer for large texts, so an entry made under another cap is a
    // miss. (Keying on cap + text would copy every text, megabytes at a time, on each lookup.)
    const hit = this.entries?.get(sql)
    if (hit && hit.cap === opts.maxStatementSize) {
      this.hits++
      return hit.analysis
    }
    this.misses++
    if (hit) this.entries!.delete(sql)
    return undefined
  }

  /** Keeps an analysis made elsewhere (e.g. off the main thread) and returns it. */
  store(sql: string, opts: AnalyzeOptions, analysis: Analysis): Analysis {
    // Twice the text: the analysis holds each statement's own copy of it.
    const bytes = 2 * Buffer.byteLength(sql, 'utf8') + 256
    // Before the parser loads every answer is `unknown`; keeping that would outlive the cause.
    // Over its share of the budget the cache refuses the entry (and drops an older one under that key).
    if (parserReady()) this.entries?.set(sql, {analysis, bytes, cap: opts.maxStatementSize})
    return analysis
  }

  stats(): CacheStats {
    return {entries: this.entries?.size ?? 0, bytes: this.entries?.calculatedSize ?? 0, hits: this.hits, misses: this.misses, shared: this.shapes.shared}
  }

  clear(): void {
    this.entries?.clear()
    this.shapes.clear()
  }
}

/** The cache every hook shares unless it is given its own. */
export const sharedAnalysisCache = new AnalysisCache()
