/**
 * What a SQL text does to the session's named objects, read from the real parser's tree: which
 * prepared statements and cursors each statement defines or drops, which ones the text reads, and
 * which command tag the server completes each statement with. The protocol state machine
 * (protocol-state.ts) applies these effects only as the server acknowledges each statement.
 */
import {parseStatements} from '../sql/parser.js'

export type SqlEffect =
  | {kind: 'prepare'; name: string}
  | {kind: 'deallocate'; name: string}
  | {kind: 'deallocate-all'}
  | {kind: 'declare'; name: string; hold: boolean}
  | {kind: 'close'; name: string}
  | {kind: 'close-all'}
  | {kind: 'discard-all'}

/** A name a text reads: a prepared statement (EXECUTE) or a portal (FETCH, MOVE, WHERE CURRENT OF). */
export interface NameRef {
  kind: 'statement' | 'portal'
  name: string
  /** A FETCH or MOVE: it runs the portal's query (WHERE CURRENT OF only reads its position). */
  runs?: true
}

export interface StatementShape {
  effect?: SqlEffect
  /** It may touch named objects, but the parser could not read it: what it does to them is unknown. */
  opaque?: boolean
  /** The command tags (or their first words) the server may complete it with; undefined: any. */
  tags?: readonly string[]
  /**
   * `COPY … FROM STDIN`: while it runs the server reads the client's messages as COPY data, and
   * ignores a Sync or Flush among them (copyfromparse.c, CopyGetData).
   */
  copyIn?: true
}

export interface TextShape {
  /**
   * One entry per statement, in order. Undefined when the text cannot touch named objects, so it
   * was never parsed here (most texts).
   */
  statements?: readonly StatementShape[]
  /** Names the text reads, whose meaning must be settled before it is judged. */
  refs: readonly NameRef[]
  /** The text may touch named objects but could not be parsed: what it does to them is unknown. */
  opaque: boolean
  /** One of its statements is a `COPY … FROM STDIN`. */
  copyIn?: true
}

/**
 * Every statement that defines, drops or reads a named object, or reads COPY data from the client,
 * contains one of these keywords as written (keywords cannot be quoted or escaped). Texts without
 * any are not parsed at all.
 */
const MAY_TOUCH_NAMES = /prepare|deallocate|declare|close|discard|execute|fetch|move|current|copy/i

const NOTHING: TextShape = Object.freeze({refs: Object.freeze([]) as readonly NameRef[], opaque: false})
const OPAQUE: TextShape = Object.freeze({refs: Object.freeze([]) as readonly NameRef[], opaque: true})

/** CURSOR_OPT_HOLD in PostgreSQL's parsenodes.h. */
const CURSOR_OPT_HOLD = 0x0020

type Node = Record<string, unknown>

/** Drivers send the same few texts again and again (a cursor's FETCH, a pool's DISCARD ALL): each is parsed once. */
const SHAPES = 512
const shapes = new Map<string, TextShape>()

export function textShape(sql: string): TextShape {
  if (!MAY_TOUCH_NAMES.test(sql)) return NOTHING
  const known = shapes.get(sql)
  if (known) return known
  const parsed = parseStatements(sql)
  // Not cached: a parser that was not loaded yet will be.
  if (!parsed.ok) return OPAQUE
  const refs: NameRef[] = []
  const statements = parsed.statements.map((s) => {
    collectRefs(s.node, refs)
    return statementShape(s.node)
  })
  const shape: TextShape = statements.some((s) => s.copyIn) ? {statements, refs, opaque: false, copyIn: true} : {statements, refs, opaque: false}
  if (sql.length <= 16 * 1024) {
    if (shapes.size >= SHAPES) shapes.delete(shapes.keys().next().value!)
    shapes.set(sql, shape)
  }
  return shape
}

function statementShape(node: Node): StatementShape {
  const key = Object.keys(node)[0]
  const body = (key ? node[key] : undefined) as Node | undefined
  if (!key || !body) return {}
  switch (key) {
    case 'PrepareStmt':
      return {effect: {kind: 'prepare', name: String(body.name ?? '')}, tags: ['PREPARE']}
    case 'DeallocateStmt':
      return {effect: body.isall || body.name === undefined ? {kind: 'deallocate-all'} : {kind: 'deallocate', name: String(body.name)}, tags: ['DEALLOCATE']}
    case 'DeclareCursorStmt':
      return {effect: {kind: 'declare', name: String(body.portalname ?? ''), hold: ((Number(body.options) || 0) & CURSOR_OPT_HOLD) !== 0}, tags: ['DECLARE CURSOR']}
    case 'ClosePortalStmt':
      return {effect: body.portalname === undefined ? {kind: 'close-all'} : {kind: 'close', name: String(body.portalname)}, tags: ['CLOSE CURSOR']}
    case 'DiscardStmt':
      return body.target === 'DISCARD_ALL' ? {effect: {kind: 'discard-all'}, tags: ['DISCARD ALL']} : {tags: ['DISCARD']}
    case 'FetchStmt':
      return {tags: [body.ismove ? 'MOVE' : 'FETCH']}
    case 'CopyStmt':
      // No file name and no PROGRAM: the data comes from the client.
      return body.is_from === true && body.filename === undefined && body.is_program !== true ? {copyIn: true} : {}
    default:
      return {}
  }
}

/** Walks the whole tree: EXECUTE hides in EXPLAIN and CREATE TABLE AS, CURRENT OF in any DML. */
function collectRefs(value: unknown, out: NameRef[]): void {
  if (Array.isArray(value)) {
    for (const v of value) collectRefs(v, out)
    return
  }
  if (typeof value !== 'object' || value === null) return
  const node = value as Node
  for (const key in node) {
    const v = node[key]
    if (key === 'ExecuteStmt') out.push({kind: 'statement', name: String((v as Node).name ?? '')})
    else if (key === 'FetchStmt') out.push({kind: 'portal', name: String((v as Node).portalname ?? ''), runs: true})
    else if (key === 'CurrentOfExpr') out.push({kind: 'portal', name: String((v as Node).cursor_name ?? '')})
    if (typeof v === 'object' && v !== null) collectRefs(v, out)
  }
}

/** True when `tag` is one of `expected`, or starts with one followed by a space ("FETCH 5"). */
export function tagMatches(tag: string, expected: readonly string[]): boolean {
  for (const e of expected) if (tag === e || (tag.length > e.length && tag.startsWith(e) && tag.charCodeAt(e.length) === 0x20)) return true
  return false
}
