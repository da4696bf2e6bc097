/**
 * The WHERE proof (where.ts) takes a relation of another name for other rows than the target's:
 * `DELETE FROM t WHERE id IN (SELECT v.id FROM v)` filters when `v` is another table. But `v` may
 * be a view over `t`, `t`'s parent (whose rows include `t`'s), or a foreign table; and a user's
 * function (`id = ANY(all_ids())`), operator or cast may compute its value from `t`'s rows. Then
 * the values are every row's own, and the condition may hold for every row. Likewise the proof
 * reads `=` as the built-in equality, but a user's `=` of the same symbol may be what PostgreSQL
 * runs (`userOperator`), and may hold for every row too.
 *
 * A per-target step, like the tables behind views (views.ts): the analysis keeps, with a
 * `filtered` judgment that leans on such things, what it leans on and the judgment made as if all
 * of it held the target's rows (`Operation.whereBasis`); the target's catalog says which holds.
 * Fails closed: what the catalog cannot say (not looked up, a body it cannot read, nesting deeper
 * than it follows, a catalog changed and not committed yet) counts as reaching the target.
 */
import {mapStatements, withOperations} from './analyze.js'
import {catalogKey, type FunctionCatalog} from './catalog.js'
import {isBuiltinSchema} from './functions.js'
import type {CatalogCall, Operation, StatementAnalysis, TableRef} from './types.js'
import {seesViews, type ViewAwareCatalog} from './views.js'

/** How deep function bodies are followed (each may call others). */
const MAX_DEPTH = 4

/** Relations whose rows a relation's rows include; a schema left out matches any, `every` matches all. */
interface Reach {
  relations: ReadonlyArray<{schema?: string; name: string}>
  every: boolean
}

/** Why a thing reaches the target, in words that follow its name; undefined when it does not. */
type Finding = string | undefined

/** The relation named (in whichever schema the name finds it) and everything behind it. */
function reachOf(name: string, schema: string | undefined, catalog: ViewAwareCatalog): Reach | undefined {
  const all = catalog.tablesBehind(`r:${name}`)
  if (all === undefined) return undefined
  const relations: Array<{schema?: string; name: string}> = [{...(schema !== undefined && schema !== 'pg_temp' ? {schema} : {}), name}]
  let every = false
  for (const b of all) {
    if (schema !== undefined && !(schema === 'pg_temp' ? b.scope.startsWith('pg_temp') : b.scope === schema)) continue
    // A table a foreign key's action writes holds none of this relation's rows.
    if (b.cascade !== undefined) continue
    // Nesting too deep or rows from another server: what is behind cannot be told, so it may be anything.
    if (b.tooDeep || b.foreign) every = true
    relations.push({schema: b.schema, name: b.name})
  }
  return {relations, every}
}

function overlaps(a: Reach, b: Reach): boolean {
  if (a.every || b.every) return true
  return a.relations.some((x) => b.relations.some((y) => x.name === y.name && (x.schema === undefined || y.schema === undefined || x.schema === y.schema)))
}

class Finder {
  constructor(
    private readonly catalog: ViewAwareCatalog,
    private readonly target: Reach,
    private readonly targetName: string,
  ) {}

  relation(name: string, schema: string | undefined): Finding {
    const written = schema ? `${schema}.${name}` : name
    const reach = reachOf(name, schema, this.catalog)
    if (reach === undefined) return `${written}, which dbgate could not look up in the target's catalog`
    return overlaps(reach, this.target) ? `${written}, which holds rows of ${this.targetName} (a view, rule, parent or foreign table over it, or the table itself)` : undefined
  }

  /** A call of a function, operator or cast: a user's body that reads the target (at any depth) reaches it. */
  call(c: CatalogCall, depth: number, stack: readonly number[]): Finding {
    if (c.kind === 'relation') return this.relation(c.name, c.schema)
    const written = c.schema ? `${c.schema}.${c.name}` : c.name
    const candidates = this.catalog.get(catalogKey(c))
    if (candidates === undefined) return `${written}, which dbgate could not look up in the target's catalog`
    for (const cand of candidates) {
      if (cand.oid === undefined || isBuiltinSchema(cand.schema)) continue
      const fn = `${cand.schema}.${cand.name}`
      if (stack.includes(cand.oid)) continue
      if (depth >= MAX_DEPTH) return `${written}, whose body calls functions nested deeper than dbgate follows`
      const body = this.catalog.body?.(cand.oid)
      // An extension's function is the DBA's installed code, trusted as catalog.ts trusts it.
      if (body?.extension) continue
      if (!body || body.unreadable || body.dynamic) return `${written}, whose body (${fn}) dbgate cannot read`
      for (const s of body.statements) {
        for (const o of s.operations) {
          const found = this.operation(o, depth + 1, [...stack, cand.oid])
          if (found) return `${written}, whose body (${fn}) reads ${found}`
        }
      }
    }
    return undefined
  }

  operation(o: Operation, depth: number, stack: readonly number[]): Finding {
    for (const t of o.tables) {
      if (t.access === 'ddl') continue
      const found = this.relation(t.name, t.schema)
      if (found) return found
    }
    for (const c of o.calls ?? []) {
      if (c.kind === 'relation') continue
      const found = this.call(c, depth, stack)
      if (found) return found
    }
    return undefined
  }
}

/**
 * Why the condition's operator `symbol`, named without a schema, may not be the built-in one, or
 * undefined. A user's operator of that symbol in any schema may be the one PostgreSQL picks for
 * the argument types (an exact match beats the built-in reached by a cast: a user's `=(int4,
 * numeric)` runs for `id = 5.0`), and what it computes is its author's: `true` for every row, say.
 * An extension's operators (citext's `=`) are the DBA's installed code, trusted as elsewhere.
 */
function userOperator(symbol: string, catalog: ViewAwareCatalog): Finding {
  const candidates = catalog.get(catalogKey({kind: 'operator', name: symbol, args: 2}))
  if (candidates === undefined) return `the operator ${symbol}, which dbgate could not look up in the target's catalog`
  for (const cand of candidates) {
    // The other rows are what the operator's arguments run (domain checks, casts), not operators.
    if (!cand.via?.startsWith('operator ')) continue
    if (cand.oid !== undefined && catalog.body?.(cand.oid)?.extension) continue
    return `the operator ${symbol}, which this database also defines as ${cand.via.slice('operator '.length)} (running ${cand.schema}.${cand.name}): PostgreSQL may pick it over the built-in one, and it may hold for every row; write OPERATOR(pg_catalog.${symbol}) to compare with the built-in one`
  }
  return undefined
}

/**
 * Why `t.x` in the condition may not be a column, or undefined. PostgreSQL reads `t.x` as a call
 * `x(t)` when `t` has no column `x` (attribute notation), and a user's function of one argument
 * by that name may return what it likes for every row (`t.flag` where `flag(t)` returns true).
 * dbgate does not know the target's columns, so such a function counts, an extension's too.
 */
function userAttribute(name: string, catalog: ViewAwareCatalog): Finding {
  const candidates = catalog.get(catalogKey({kind: 'attribute', name, args: 1}))
  if (candidates === undefined) return `${name}, which dbgate could not look up in the target's catalog`
  for (const cand of candidates) {
    if (cand.via !== undefined || isBuiltinSchema(cand.schema)) continue
    if (cand.nargs - cand.ndefaults > 1 || (cand.nargs < 1 && !cand.variadic)) continue
    return `the name ${name} after a table or alias, which may call the function ${cand.schema}.${cand.name} with the whole row rather than read a column (attribute notation); write it as a column the table has, or call the function with a value you can show`
  }
  return undefined
}

/**
 * The rules on writes of the relation a statement writes, in words, or undefined. PostgreSQL
 * rewrites an UPDATE or DELETE of a relation with such rules into the rules' actions, with the
 * statement's WHERE added to them as a condition, not as a pick of the rows they touch:
 * `DELETE FROM v WHERE id = 5` with `ON DELETE TO v DO INSTEAD DELETE FROM accounts` deletes every
 * account while a row with id 5 exists. The catalog names what such rules reach (views.ts).
 */
function rulesOnWrites(target: TableRef, catalog: ViewAwareCatalog): string | undefined {
  const behind = catalog.tablesBehind(`r:${target.name}`)
  if (behind === undefined) return 'which dbgate could not look up'
  const fits = (scope: string) => target.schema === undefined || (target.schema === 'pg_temp' ? scope.startsWith('pg_temp') : scope === target.schema)
  // (A foreign key's action writes the rows that referred to those the statement picked: no rule's.)
  const ruled = behind.filter((b) => !b.selectOnly && b.cascade === undefined && fits(b.scope))
  return ruled.length > 0 ? ruled.map((b) => `${b.schema}.${b.name} through ${b.via}`).join('; ') : undefined
}

/** The relation the operation writes (an UPDATE's, DELETE's or MERGE action's target). */
function writtenTable(o: Operation): TableRef | undefined {
  return o.tables.find((t) => t.access === 'write' && t.via === undefined && t.every === undefined)
}

function judged(o: Operation, catalog: ViewAwareCatalog, distrusted: boolean): Operation {
  const basis = o.whereBasis!
  const {whereBasis: _basis, ...rest} = o
  const target = writtenTable(o)
  const judgedAs = (where: Operation['where'], why: string): Operation => ({...rest, where, detail: [o.detail, why].filter(Boolean).join('; ')})
  // What dbgate cannot look up counts as the worst: relations over the target and users' operators.
  const pessimistic = (why: string, where = basis.userCodeOtherwise): Operation => judgedAs(where, `its WHERE compares the rows with values read from ${why}, so it may pick every row`)
  if (!target) return pessimistic('relations dbgate could not tell apart from the target')
  const targetName = target.schema ? `${target.schema}.${target.name}` : target.name
  // After a change not committed yet (DDL, code that may run DDL, a write to a table whose
  // triggers run code) the relations the proof leans on may be other than the catalog says. Not
  // every operator: that would refuse every UPDATE with `=` after a write to a table with an
  // updated_at trigger, and an operator made in the open transaction was DDL a reviewer saw.
  if (distrusted) return pessimistic(`relations or functions whose definitions this session may have changed in a transaction that is not committed yet (send it after the COMMIT)`, basis.otherwise)
  const reach = reachOf(target.name, target.schema, catalog)
  if (reach === undefined) return pessimistic(`${targetName}'s catalog entry, which dbgate could not look up`)
  const rules = rulesOnWrites(target, catalog)
  if (rules) return judgedAs('trivial', `${targetName} has rules on writes (${rules}): they run other statements, whose rows its WHERE does not pick (a DO INSTEAD DELETE without a WHERE empties the table), so dbgate cannot show a row is left alone`)
  const finder = new Finder(catalog, reach, targetName)
  for (const symbol of basis.operators) {
    const found = userOperator(symbol, catalog)
    if (found) return judgedAs(basis.userCodeOtherwise, `its WHERE compares the rows with ${found}`)
  }
  for (const name of basis.attributes) {
    const found = userAttribute(name, catalog)
    if (found) return judgedAs(basis.userCodeOtherwise, `its WHERE reads ${found}`)
  }
  for (const c of basis.calls) {
    // The target's own name the proof reads as the target already (where.ts).
    if (c.kind === 'relation' && c.name === target.name && (c.schema === undefined || c.schema === target.schema)) continue
    const found = finder.call(c, 0, [])
    if (found) return pessimistic(found, basis.otherwise)
  }
  return rest
}

/**
 * Settles every `filtered` WHERE that leans on other relations or user code against `catalog`:
 * the judgment made as if they held the target's rows holds where any of them does. Statements
 * from position `distrustFrom` on follow a catalog change that is not committed, so what the
 * catalog says does not hold for them. Offline catalogs (`dbgate policy check`) see no views: the
 * judgment stays as written.
 */
export function settleWhereBasis(statements: readonly StatementAnalysis[], catalog: FunctionCatalog, distrustFrom = statements.length): StatementAnalysis[] {
  if (!seesViews(catalog) || !statements.some((s) => s.operations.some((o) => o.whereBasis))) return statements as StatementAnalysis[]
  let m = memo.get(catalog)
  if (!m || m.generation !== catalog.generation) {
    m = {generation: catalog.generation, trusted: new WeakMap(), distrusted: new WeakMap()}
    memo.set(catalog, m)
  }
  const kept = m
  return mapStatements(statements, (s, i) => {
    if (!s.operations.some((o) => o.whereBasis)) return s
    const distrusted = i >= distrustFrom
    // Texts of one shape share their operations, and every UPDATE or DELETE carries a basis: one
    // settling per (operations, catalog generation), so the rules' kept decisions keep hitting.
    const byOps = distrusted ? kept.distrusted : kept.trusted
    let operations = byOps.get(s.operations)
    if (!operations) {
      operations = s.operations.map((o) => (o.whereBasis ? judged(o, catalog, distrusted) : o))
      byOps.set(s.operations, operations)
    }
    return withOperations(s, operations)
  })
}

const memo = new WeakMap<FunctionCatalog, {generation: number; trusted: WeakMap<readonly Operation[], Operation[]>; distrusted: WeakMap<readonly Operation[], Operation[]>}>()
