/**
 * Analyses shared by texts that differ only in their constants. The first text of a shape is
 * analysed in full, under `watchLiterals`; if the analysis provably does not depend on any
 * literal's value, the next texts of that shape get it without a parse (with their own statement
 * texts cut in); if it does (`WHERE 1 = 1`, `SET x = …`, `set_config('…', …)`, `float(10)`), the
 * shape is remembered as not shared and each of its texts is analysed on its own.
 */
import {LRUCache} from 'lru-cache'
import {analyze} from './analyze.js'
import {parserReady, watchLiterals} from '../sql/parser.js'
import {mapOffset, scanShape} from './text-shape.js'
import type {Analysis, AnalyzeOptions} from './types.js'

/** Longer texts are rarely repeated with other constants, and their scan would cost more than it saves. */
export const MAX_SHAPED_TEXT = 16 * 1024

interface Template {
  analysis: Analysis
  /** The literal offsets of the text the analysis was made from. */
  literals: readonly number[]
  /** Each statement's text, as start and end offsets in that text. */
  ranges: readonly number[]
  cap: number | undefined
}

/** A shape whose analysis depends on a constant's value (or that could not be checked). */
const NOT_SHARED = {notShared: true} as const

export interface ShapeCacheOptions {
  maxEntries?: number
  /** Most characters of shape keys kept. */
  maxChars?: number
}

export class ShapeCache {
  private readonly shapes: LRUCache<string, Template | typeof NOT_SHARED>
  /** Analyses handed out from another text's (no parse). */
  shared = 0

  constructor(opts: ShapeCacheOptions = {}) {
    this.shapes = new LRUCache({max: Math.max(1, opts.maxEntries ?? 4096), maxSize: opts.maxChars ?? 4 * 1024 * 1024, sizeCalculation: (_v, key) => key.length + 64})
  }

  /**
   * The analysis of `sql`: shared with an earlier text of the same shape when that is sound,
   * made in full otherwise. Call it only for sessions whose text `readingOf` accepts.
   */
  analyze(sql: string, opts: AnalyzeOptions): Analysis {
    // Over the cap the answer depends on the length; before the parser loads, everything is unknown.
    if (sql.length > MAX_SHAPED_TEXT || (opts.maxStatementSize !== undefined && sql.length > opts.maxStatementSize) || !parserReady()) return analyze(sql, opts)
    const shape = scanShape(sql)
    if (!shape) return analyze(sql, opts)
    const known = this.shapes.get(shape.key)
    if (known !== undefined && !('analysis' in known)) return analyze(sql, opts)
    if (known && known.cap === opts.maxStatementSize) {
      this.shared++
      return instantiate(known, sql, shape.literals)
    }
    const {value: analysis, shared} = watchLiterals(sql, shape.literals, () => analyze(sql, opts))
    const ranges = shared ? statementRanges(sql, analysis) : undefined
    this.shapes.set(shape.key, ranges ? {analysis, literals: shape.literals, ranges, cap: opts.maxStatementSize} : NOT_SHARED)
    return analysis
  }

  clear(): void {
    this.shapes.clear()
  }
}

/**
 * Where each statement's text sits in `sql`: statements come in order, separated only by
 * semicolons and white space (the shape has no comments). Undefined if they are not found so.
 */
function statementRanges(sql: string, analysis: Analysis): number[] | undefined {
  const ranges: number[] = []
  let cursor = 0
  for (const st of analysis.statements) {
    const at = st.text === '' ? -1 : sql.indexOf(st.text, cursor)
    if (at < 0 || !/^[\s;]*$/.test(sql.slice(cursor, at))) return undefined
    ranges.push(at, at + st.text.length)
    cursor = at + st.text.length
  }
  return /^[\s;]*$/.test(sql.slice(cursor)) ? ranges : undefined
}

function instantiate(t: Template, sql: string, literals: readonly number[]): Analysis {
  const statements = t.analysis.statements.map((st, i) => {
    const text = sql.slice(mapOffset(t.literals, literals, t.ranges[2 * i]!), mapOffset(t.literals, literals, t.ranges[2 * i + 1]!))
    return {...st, text}
  })
  return {...t.analysis, sql, statements}
}
