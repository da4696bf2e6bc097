/**
 * Normalized text and fingerprint shared by texts that differ only in constants (pgbench
 * -M simple, ORMs that inline values), so that a new text of a known shape is not parsed twice
 * more for its statement event. A shape shares them only when neither can depend on a constant's
 * value: every literal is an `A_Const` in the tree (libpg_query's fingerprint ignores those values,
 * and only those: `ALTER ROLE … PASSWORD '…'` keeps its string in a `DefElem`, and its fingerprint
 * changes with it), and the normalized text holds no literal (normalize replaced every one; it
 * keeps some, such as `varchar(10)` or a column DEFAULT in DDL). Kept apart from `events.ts`,
 * which must not need the policy parser.
 */
import {LRUCache} from 'lru-cache'
import {watchLiterals} from '../sql/parser.js'
import {scanShape} from '../policy/text-shape.js'
import {normalizeNow, normalizeSql, NORMALIZED_CACHE_MAX_TEXT, type Normalized} from './events.js'

const NOT_SHARED = {notShared: true} as const
const shapes = new LRUCache<string, Normalized | typeof NOT_SHARED>({max: 4096})

function byShape(sql: string): Normalized {
  // libpg_query reads every text with standard_conforming_strings on, as the scan does.
  const shape = scanShape(sql)
  if (!shape || shape.literals.length === 0) return normalizeNow(sql)
  const known = shapes.get(shape.key)
  if (known !== undefined) return 'fingerprint' in known ? known : normalizeNow(sql)
  const out = normalizeNow(sql)
  const shared = out.normalized !== null && scanShape(out.normalized)?.literals.length === 0 && watchLiterals(sql, shape.literals, () => undefined).shared
  shapes.set(shape.key, shared ? out : NOT_SHARED)
  return out
}

/** The last shape answered from `shapes` with a shared answer: statements mostly repeat the last one's shape. */
let lastKey = ''
let lastShared: Normalized | undefined

/** `normalizeSql`, with a text of a known shape answered without a parse where that is sound. */
export function normalizeByShape(sql: string): Normalized {
  // A shape that shares its answer is asked first: keeping every such text in the text cache too
  // would only evict others (every `-M simple` pgbench text is new).
  if (sql.length <= NORMALIZED_CACHE_MAX_TEXT) {
    const shape = scanShape(sql)
    if (shape && shape.literals.length > 0) {
      // A shape's shared answer never changes (it is the same for every text of the shape).
      if (lastShared !== undefined && shape.key === lastKey) return lastShared
      const known = shapes.get(shape.key)
      if (known !== undefined && 'fingerprint' in known) {
        lastKey = shape.key
        lastShared = known
        return known
      }
    }
  }
  return normalizeSql(sql, byShape)
}
