/**
 * The one place that talks to libpg_query. The WASM module loads asynchronously once; after that
 * every call is synchronous, which keeps the statement hook on the fast path free of promises.
 */
import {loadModule, parseSync} from 'libpg-query'

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

/** A statement as the parser hands it over: its tree and its own slice of the text. */
export interface RawStatement {
  node: Record<string, unknown>
  text: string
}

export type ParseOutcome = {ok: true; statements: RawStatement[]} | {ok: false; error: string}

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
  let tree: {stmts?: {stmt?: Record<string, unknown>; stmt_location?: number; stmt_len?: number}[]}
  try {
    tree = parseSync(sql) as typeof tree
  } catch (err) {
    return {ok: false, error: err instanceof Error ? err.message : String(err)}
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
