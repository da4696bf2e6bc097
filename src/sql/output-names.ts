import {isObj, list, str, svalOf, unwrap, type Obj} from './tree.js'

/**
 * The names PostgreSQL gives a query's output columns (FigureColname, parse_target.c), for the
 * forms whose name is certain: an `AS` name, a column's or a field's own name, a function's name,
 * a constant's `?column?`, VALUES' `column1`…. A position whose name dbgate cannot tell is
 * undefined; the whole is undefined when even the number of columns is not known (`SELECT *`).
 */
export function outputColumnNames(query: unknown): Array<string | undefined> | undefined {
  const u = unwrap(query)
  const select = u ? (u[0] === 'SelectStmt' ? u[1] : undefined) : isObj(query) && 'op' in query ? query : undefined
  if (!select) return undefined
  // A set operation's columns are named by its leftmost query.
  if (select.op !== undefined && select.op !== 'SETOP_NONE') return outputColumnNames(select.larg)
  const values = list(select.valuesLists)
  if (values.length > 0) {
    const first = unwrap(values[0])
    return first ? list(first[1].items).map((_, i) => `column${i + 1}`) : undefined
  }
  const out: Array<string | undefined> = []
  for (const t of list(select.targetList)) {
    const rt = unwrap(t)
    if (!rt || rt[0] !== 'ResTarget') return undefined
    const name = str(rt[1].name)
    if (name !== undefined) {
      out.push(name)
      continue
    }
    const figured = figure(rt[1].val)
    if (figured === STAR) return undefined
    out.push(figured)
  }
  return out
}

const STAR = Symbol('star')

function figure(val: unknown): string | undefined | typeof STAR {
  const u = unwrap(val)
  if (!u) return undefined
  const [type, body] = u
  switch (type) {
    case 'ColumnRef':
      return lastName(body.fields)
    case 'A_Indirection':
      return lastName(body.indirection)
    case 'FuncCall':
      return svalOf(list(body.funcname).at(-1))
    case 'A_Const':
      return '?column?'
    default:
      return undefined
  }
}

/** The last element of a name path: a field's name, `*` (columns not known), or a subscript (a name not told). */
function lastName(path: unknown): string | undefined | typeof STAR {
  const last = unwrap(list(path).at(-1))
  if (!last) return undefined
  if (last[0] === 'A_Star') return STAR
  return last[0] === 'String' ? str((last[1] as Obj).sval) : undefined
}
