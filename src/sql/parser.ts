/**
 * The one place that talks to libpg_query: the guardrails, masking's lineage, the recorder's
 * normalized text and reports all parse through here. The WASM module loads asynchronously once;
 * after that every call is synchronous, which keeps the tunnel's hot path free of promises.
 */
import {fingerprintSync, loadModule, normalizeSync, parseSync} from 'libpg-query'
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
const recentTrees: {sql: string; tree: ParseTree | undefined; error: unknown}[] = []

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
  for (const r of recentTrees) {
    if (r.sql !== sql) continue
    if (r.tree) return r.tree
    throw r.error
  }
  let tree: ParseTree | undefined
  let error: unknown
  try {
    tree = parseSync(sql) as ParseTree
    deepFreeze(tree)
  } catch (e) {
    error = e
  }
  if (sql.length <= RECENT_TREE_MAX_TEXT) {
    if (recentTrees.length >= RECENT_TREES) recentTrees.shift()
    recentTrees.push({sql, tree, error})
  }
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
