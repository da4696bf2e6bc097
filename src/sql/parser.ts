/**
 * The one place that talks to libpg_query: the guardrails, masking's lineage, the recorder's
 * normalized text and reports all parse through here. The WASM module loads asynchronously once;
 * after that every call is synchronous, which keeps the tunnel's hot path free of promises.
 */
// Before libpg-query, which compiles its WebAssembly as it loads: see wasm-baseline.ts.
import './wasm-baseline.js'
import {fingerprintSync, loadModule, normalizeSync, parsePlPgSQLSync, parseSync, scanSync} from 'libpg-query'
import {LRUCache} from 'lru-cache'
import type {Obj} from './tree.js'

let ready = false
let loading: Promise<void> | undefined

/** Loads the PostgreSQL parser. Safe to call many times; resolves once it is usable. */
export function loadParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    ready = true
  })
  return loading
}

export function parserReady(): boolean {
  return ready
}

/** The recorder's normalized text and fingerprint of a statement; both need `loadParser()` first. */
export {fingerprintSync, normalizeSync}

/**
 * PL/pgSQL's own parser over a whole `CREATE FUNCTION` text (as `pg_get_functiondef` gives it): the
 * function's tree, whose embedded SQL stays text (`PLpgSQL_expr.query`). Throws what it throws.
 */
export function parsePlpgsql(createFunction: string): unknown {
  if (!ready) throw new Error('the SQL parser is not loaded')
  return parsePlPgSQLSync(createFunction)
}

/** A token of PostgreSQL's own scanner: its text and where it is (`start`, `end`: offsets into the text). */
export interface ScanToken {
  start: number
  end: number
  text: string
  /** `IDENT`, `SCONST`, `ASCII_59` (`;`), … as libpg_query names them. */
  tokenName: string
  /** A keyword of the grammar (reserved or not): libpg_query names those `UNKNOWN`. */
  keyword: boolean
}

/** The text's tokens as PostgreSQL's scanner (which PL/pgSQL's builds on) reads them. Throws what it throws. */
export function scanTokens(text: string): ScanToken[] {
  if (!ready) throw new Error('the SQL parser is not loaded')
  return scanSync(text).tokens.map((t) => ({start: t.start, end: t.end, text: t.text, tokenName: t.tokenName, keyword: t.keywordKind > 0}))
}

export type ParseTree = {readonly stmts?: readonly {readonly stmt?: Record<string, unknown>; readonly stmt_location?: number; readonly stmt_len?: number}[]}

/**
 * The guardrails and masking's lineage both need the tree of every new text, one right after the
 * other (and the approval gate again when a reviewer allows it): the last few texts' trees are
 * kept so that a text is parsed once. Shared trees are frozen, so that neither reader can change
 * what the other sees: a write throws, and the statement is then judged unknown (refused) or
 * masked as untraceable.
 */
const RECENT_TREES = 8
/**
 * Larger texts are parsed each time rather than keeping their (large) trees alive: the guardrails
 * parse those on a worker thread anyway (`OFFLOAD_THRESHOLD`), so there is nothing to share.
 */
const RECENT_TREE_MAX_TEXT = 16 * 1024
const recentTrees = new LRUCache<string, {tree: ParseTree | undefined; error: unknown}>({max: RECENT_TREES})

/** A parse tree is plain JSON (no cycles, no prototypes of its own); indexed loops keep this at a few µs a tree. */
function deepFreeze(value: object): void {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i]
      if (typeof v === 'object' && v !== null) deepFreeze(v)
    }
  } else {
    for (const k in value) {
      const v: unknown = (value as Record<string, unknown>)[k]
      if (typeof v === 'object' && v !== null) deepFreeze(v)
    }
  }
  Object.freeze(value)
}

/** libpg_query's `parseSync`, remembered for the last few texts; throws what the parser throws. */
export function parseTree(sql: string): ParseTree {
  if (watched !== undefined && watched.sql === sql) return watched.tree
  const recent = recentTrees.get(sql)
  if (recent) {
    if (recent.tree) return recent.tree
    throw recent.error
  }
  let tree: ParseTree | undefined
  let error: unknown
  try {
    tree = parseSync(sql) as ParseTree
    deepFreeze(tree)
  } catch (e) {
    error = e
  }
  if (sql.length <= RECENT_TREE_MAX_TEXT) recentTrees.set(sql, {tree, error})
  if (!tree) throw error
  return tree
}

/**
 * A text's statements as bare nodes (each a `{SelectStmt: …}`-style node), or the parser's
 * complaint: what masking's lineage reads. Unlike `parseStatements`, no statement text is cut out.
 */
export function parseSql(sql: string): {ok: true; statements: Obj[]} | {ok: false; error: string} {
  if (!ready) return {ok: false, error: 'the SQL parser is not loaded'}
  if (sql.includes('\0')) return {ok: false, error: 'statement text contains a NUL byte'}
  try {
    const tree = parseTree(sql)
    return {ok: true, statements: (tree.stmts ?? []).map((s) => s.stmt ?? {})}
  } catch (error) {
    return {ok: false, error: error instanceof Error ? error.message : String(error)}
  }
}

/** While `watchLiterals` runs its reader: the instrumented tree that `parseTree` hands out for that text. */
let watched: {sql: string; tree: ParseTree} | undefined

const CONST_VALUE_KEYS = ['ival', 'fval', 'sval', 'bsval', 'boolval', 'isnull']

/**
 * Runs `read`, a pure function of `sql`'s parse tree (reached through `parseTree`), and says whether
 * its answer holds for every text of the same shape (`literals`: the literal tokens' offsets). It
 * does when, by construction:
 * - every literal token became an `A_Const` at its own offset (or at a minus sign right before it,
 *   which the grammar folds into the constant), so a literal's value reaches the tree nowhere else
 *   (the grammar builds other nodes from some literals: `float(10)`, `FETCH 5`, `current_time(3)`,
 *   adjacent strings; those texts are not shared);
 * - `read` never looked at one of those constants' values (each is behind a getter that notes the
 *   read; its kind, which the shape fixes, stays visible as a key);
 * - the answer holds no node of the tree (through which a later reader could see this text's values).
 * Everything else in the tree (node kinds, names, operators, keywords) is fixed by the shape; node
 * locations move with literal lengths, and no reader of the policy or masking analysis reads them.
 * Returns `shared: false` whenever anything is not so, and the answer for this text in every case.
 */
export function watchLiterals<T>(sql: string, literals: readonly number[], read: () => T): {value: T; shared: boolean} {
  let tree: ParseTree
  try {
    tree = parseTree(sql)
  } catch {
    return {value: read(), shared: false}
  }
  // Where each literal's constant may sit: its own offset, or a minus sign before it (doNegate).
  const at = new Map<number, number>()
  for (let k = 0; k < literals.length; k += 2) {
    const start = literals[k]!
    at.set(start, k)
    let m = start - 1
    while (m >= 0 && /\s/.test(sql[m]!)) m--
    if (m >= 0 && sql[m] === '-') at.set(m, k)
  }
  const covered = new Set<number>()
  const made = new Set<object>()
  let valueRead = false
  let watching = true
  const copy = (value: unknown, key: string | undefined): unknown => {
    if (typeof value !== 'object' || value === null) return value
    if (Array.isArray(value)) {
      const out = value.map((v) => copy(v, undefined))
      made.add(out)
      return Object.freeze(out)
    }
    const src = value as Record<string, unknown>
    const out: Record<string, unknown> = {}
    const literal = key === 'A_Const' && typeof src.location === 'number' ? at.get(src.location) : undefined
    for (const k in src) {
      const v = copy(src[k], k)
      if (literal !== undefined && CONST_VALUE_KEYS.includes(k)) {
        Object.defineProperty(out, k, {
          enumerable: true,
          get() {
            if (watching) valueRead = true
            return v
          },
        })
      } else out[k] = v
    }
    if (literal !== undefined) covered.add(literal)
    made.add(out)
    return Object.freeze(out)
  }
  const instrumented = copy(tree, undefined) as ParseTree
  const previous = watched
  watched = {sql, tree: instrumented}
  let value: T
  try {
    value = read()
  } finally {
    watched = previous
    watching = false
  }
  const shared = covered.size * 2 === literals.length && !valueRead && !holdsAny(value, made)
  return {value, shared}
}

/** Whether `value`'s object graph reaches any of `objects`. */
function holdsAny(value: unknown, objects: Set<object>): boolean {
  const seen = new Set<object>()
  const visit = (v: unknown): boolean => {
    if (typeof v !== 'object' || v === null) return false
    if (objects.has(v)) return true
    if (seen.has(v)) return false
    seen.add(v)
    if (Array.isArray(v)) return v.some(visit)
    if (v instanceof Map) return [...v.entries()].some(([k, x]) => visit(k) || visit(x))
    if (v instanceof Set) return [...v].some(visit)
    for (const k in v) if (visit((v as Record<string, unknown>)[k])) return true
    return false
  }
  return visit(value)
}

/** A statement as the parser hands it over: its tree and its own slice of the text. */
export interface RawStatement {
  /** Frozen: shared with other readers of the same text's tree. */
  node: Record<string, unknown>
  text: string
}

export type ParseOutcome = {ok: true; statements: RawStatement[]} | {ok: false; error: string; syntax?: {message: string; position: number}}

/**
 * The parser's error as PostgreSQL reports it: its message and the 1-based character position of
 * the cursor (the parser counts characters, as the server does, not bytes or UTF-16 units).
 */
function syntaxErrorOf(err: unknown): {message: string; position: number} | undefined {
  const details = (err as {sqlDetails?: {message?: unknown; cursorPosition?: unknown}} | undefined)?.sqlDetails
  if (!details || typeof details.message !== 'string' || typeof details.cursorPosition !== 'number') return undefined
  return {message: details.message, position: details.cursorPosition + 1}
}

/**
 * Splits and parses a text. Locations in the tree are UTF-8 byte offsets, so slicing happens on
 * bytes; a JS string index would cut multi-byte text in the wrong place.
 */
export function parseStatements(sql: string): ParseOutcome {
  if (!ready) return {ok: false, error: 'the SQL parser is not loaded'}
  // The server stops reading a query at a NUL; the parser is handed a C string too. Text past a NUL
  // would be judged by neither, so such text is refused rather than guessed at.
  if (sql.includes('\0')) return {ok: false, error: 'statement text contains a NUL byte'}
  if (sql.trim() === '') return {ok: true, statements: []}
  let tree: ParseTree
  try {
    tree = parseTree(sql)
  } catch (err) {
    const syntax = syntaxErrorOf(err)
    return {ok: false, error: err instanceof Error ? err.message : String(err), ...(syntax ? {syntax} : {})}
  }
  const bytes = Buffer.from(sql, 'utf8')
  const statements: RawStatement[] = []
  for (const raw of tree.stmts ?? []) {
    if (!raw.stmt) return {ok: false, error: 'the parser returned an empty statement'}
    const start = raw.stmt_location ?? 0
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length
    statements.push({node: raw.stmt, text: bytes.subarray(start, end).toString('utf8').trim()})
  }
  return {ok: true, statements}
}
