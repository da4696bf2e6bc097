/**
 * The masking layer's own handle on libpg_query: loaded once, synchronous afterwards, so lineage
 * runs on the tunnel's hot path without promises. Kept apart from src/policy's analysis on
 * purpose: masking must not depend on how policy evolves its analysis cache. It shares only the
 * raw (frozen) parse tree, so that a text the guardrails just parsed is not parsed again.
 */
import {loadModule} from 'libpg-query'
import {parseTree} from '../policy/parser.js'

let ready = false
let loading: Promise<void> | undefined

export function loadSqlParser(): Promise<void> {
  loading ??= loadModule().then(() => {
    ready = true
  })
  return loading
}

export type Node = Record<string, unknown>

/** Parsed statements (each a `{SelectStmt: …}`-style node), or the parser's complaint. */
export function parseSql(sql: string): {ok: true; statements: Node[]} | {ok: false; error: string} {
  if (!ready) return {ok: false, error: 'the SQL parser is not loaded'}
  if (sql.includes('\0')) return {ok: false, error: 'statement text contains a NUL byte'}
  try {
    const tree = parseTree(sql)
    return {ok: true, statements: (tree.stmts ?? []).map((s) => s.stmt ?? {})}
  } catch (error) {
    return {ok: false, error: error instanceof Error ? error.message : String(error)}
  }
}

/** The single `{Kind: body}` entry of a node. */
export function unwrap(node: unknown): [string, Node] | undefined {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return undefined
  const keys = Object.keys(node)
  if (keys.length !== 1) return undefined
  const kind = keys[0]!
  if (!/^[A-Z]/.test(kind)) return undefined
  return [kind, (node as Record<string, Node>)[kind]!]
}

export function str(node: unknown): string | undefined {
  const u = unwrap(node)
  return u && u[0] === 'String' ? (u[1].sval as string | undefined) : undefined
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}
