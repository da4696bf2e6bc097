/**
 * The step after analysis that needs the target's catalog: what each function, operator, attribute
 * call and cast in a statement may resolve to, and what that does. Analyses are cached for the
 * whole process (cache.ts) and know nothing of any target; this step runs per target, on top of
 * them, so the shared cache stays sound.
 *
 * A call is judged by the worst of everything it could resolve to: for an unqualified name, every
 * overload in every schema (PostgreSQL picks by argument types across the whole search_path, so a
 * `public.lower(integer)` can be what `lower(1)` runs). A function found nowhere fails closed.
 *
 * Pure: the catalog is an interface. `offlineCatalog` knows the built-ins only (for `dbgate policy
 * check`); the tunnel's implementation reads the target (src/connect/function-catalog.ts).
 */
import {mapStatements, withOperations} from './analyze.js'
import {isCustomSetting, judgeOnTarget, LIBRARY_SETTINGS_KEY, type ServerLibraries} from './settings.js'
import {builtinCandidates, isBuiltinOperator, isBuiltinType} from './builtins.js'
import type {FunctionBody} from './function-body.js'
import {arityFits, candidateEffect, EFFECT_RANK, extensionEffect, isBuiltinSchema, TYPE_CHOSEN_BY_DATA_BUILTINS, type FunctionCandidate, type FunctionEffect} from './functions.js'
import type {CatalogCall, Operation, StatementAnalysis, TableRef} from './types.js'
import {CallChange, operationCallChange, writesCatalog} from './unsettled-calls.js'
import {BEYOND_DEPTH_KIND, bodyKey, EVENT_TRIGGERS_KEY, PARTITION_KEY_VIA, VIEW_DEPTH_LIMIT, operationWithBehind, seesViews} from './views.js'

/** `f:name` functions (and attribute notation), `o:symbol` operators, `t:name` cast target types, `r:name` what reading or writing a relation runs, `w:name` the trigger functions writing it fires. */
export type CatalogKey = string

export function catalogKey(call: CatalogCall): CatalogKey {
  switch (call.kind) {
    case 'function':
    case 'attribute':
      return `f:${call.name}`
    case 'operator':
      return `o:${call.name}`
    case 'cast':
      return `t:${call.name}`
    case 'relation':
      return `r:${call.name}`
    case 'trigger':
      return `w:${call.name}`
  }
}

export interface FunctionCatalog {
  /**
   * Everything `key` may resolve to, in every schema; `[]` when nothing by that name exists;
   * undefined when this catalog cannot say (offline, or the lookup failed).
   */
  get(key: CatalogKey): readonly FunctionCandidate[] | undefined
  /** Why `key` is unknown, for the error. */
  unknownReason(key: CatalogKey): string
  /** True for the built-ins-only catalog of `dbgate policy check`: unknown is "could not look up", not "does not exist". */
  readonly offline: boolean
  /** Changes whenever an answer may have changed; resolutions are cached per generation. */
  readonly generation: number
  /**
   * A user function's body by pg_proc OID, read with its catalog entry; undefined when it could not
   * be read (then the function is judged unknown). A catalog without it (built-ins only) has no
   * user functions to judge.
   */
  body?(oid: number): FunctionBody | undefined
}

/** A catalog that loads what it does not know yet (the tunnel's). */
export interface LoadingFunctionCatalog extends FunctionCatalog {
  /** The keys among `keys` that must be loaded (or re-read) before `get` can answer them. */
  missing(keys: readonly CatalogKey[]): CatalogKey[]
  /** Loads `keys`; concurrent loads of the same key share one lookup. Never rejects: a failed key stays unknown. */
  load(keys: readonly CatalogKey[]): Promise<void>
  /** Forgets what was read, so that the next statement reads the catalog afresh. */
  invalidate?(): void
}

// ---- built-ins ---------------------------------------------------------------------------------

/**
 * The built-ins alone, as `dbgate policy check` sees them without a connection. Built-in
 * operators and casts between built-in types never call a volatile function (the generated tables
 * show it), so they resolve to nothing; anything else is unknown here.
 */
export const offlineCatalog: FunctionCatalog = {
  offline: true,
  generation: 0,
  get(key) {
    const name = key.slice(2)
    if (key.startsWith('f:')) return builtinCandidates(name)
    if (key.startsWith('o:')) return isBuiltinOperator(name) ? [] : undefined
    if (key.startsWith('t:')) return isBuiltinType(name) ? [] : undefined
    return undefined
  },
  unknownReason() {
    return "dbgate policy check cannot look it up without a connection to the target; the tunnel judges it by what its body does (and an extension's function by its declared volatility)"
  },
}

// ---- resolution --------------------------------------------------------------------------------

/**
 * The keys a statement's calls need, deduplicated; `EVENT_TRIGGERS_KEY` for DDL that keeps
 * relations; `LIBRARY_SETTINGS_KEY` for a custom setting (`judgeSettingsOnTarget`).
 */
export function catalogKeys(statements: readonly StatementAnalysis[]): CatalogKey[] {
  const keys = new Set<CatalogKey>()
  for (const s of statements) {
    for (const o of s.operations) {
      for (const c of o.calls ?? []) keys.add(catalogKey(c))
      if (o.keepsRelations === true) keys.add(EVENT_TRIGGERS_KEY)
      if (o.setting && !o.setting.reset && isCustomSetting(o.setting.name)) keys.add(LIBRARY_SETTINGS_KEY)
    }
  }
  return [...keys]
}

/** What `catalog` knows of the target's libraries; undefined offline, where the list alone decides. */
export function serverLibrariesOf(catalog: FunctionCatalog): ServerLibraries | undefined {
  if (catalog.offline) return undefined
  const prefixes = catalog.get(LIBRARY_SETTINGS_KEY)
  return prefixes ? new Set(prefixes.map((c) => c.name)) : {unread: catalog.unknownReason(LIBRARY_SETTINGS_KEY)}
}

/**
 * The statements with every custom setting they change judged by the target's libraries
 * (`judgeOnTarget`): the analysis is shared by every target and knows only the list's, so a
 * setting of a library the target loads (`rowguard.enforce`) came out of it as application state.
 */
export function judgeSettingsOnTarget(statements: readonly StatementAnalysis[], catalog: FunctionCatalog): StatementAnalysis[] {
  if (!statements.some((s) => s.operations.some((o) => o.setting && !o.setting.reset && isCustomSetting(o.setting.name)))) return statements as StatementAnalysis[]
  const libraries = serverLibrariesOf(catalog)
  if (!libraries) return statements as StatementAnalysis[]
  return mapStatements(statements, (s) => {
    let changed = false
    const operations = s.operations.map((o) => {
      const verdict = o.setting ? judgeOnTarget(o.setting, libraries) : undefined
      if (!verdict) return o
      changed = true
      return {...o, flags: [...o.flags, verdict.flag], detail: verdict.reason}
    })
    return changed ? withOperations(s, operations) : s
  })
}

function schemaFits(call: CatalogCall, c: FunctionCandidate): boolean {
  if (call.schema === undefined) return true
  const schema = c.scope ?? c.schema
  if (call.schema === 'pg_temp') return schema.startsWith('pg_temp')
  return schema === call.schema
}

function qualified(c: FunctionCandidate): string {
  return `${c.schema}.${c.name}`
}

interface CallVerdict {
  effect: FunctionEffect
  /** The function whose effect decided, schema-qualified. */
  fn?: string
  detail: string
}

function describeCall(call: CatalogCall): string {
  const name = call.schema ? `${call.schema}.${call.name}` : call.name
  switch (call.kind) {
    case 'function':
      return `function ${name}`
    case 'attribute':
      return `${name} (attribute notation calls a function of that name)`
    case 'operator':
      return `operator ${name}`
    case 'cast':
      // `#<oid>`: a parameter type an extended-protocol Parse declared (statement-guard.ts).
      return name.startsWith('#') ? `a parameter of type OID ${name.slice(1)}` : `cast to ${name}`
    case 'relation':
      return `relation ${name}`
    case 'trigger':
      return `the triggers of ${name}`
  }
}

const UNKNOWN: FunctionEffect = {kind: 'unknown', class: 'opaque', flag: 'unknown_function', what: 'could not be found'}

/**
 * set_config reached by any route but a direct call the walker judged as a setting (a view that
 * calls it, a rule such as pg_settings' UPDATE rule): which setting it changes is not in the
 * statement, so nothing can say it is harmless.
 */
const HIDDEN_SETTING: FunctionEffect = {
  kind: 'denied',
  class: 'unknown',
  flag: 'hidden_setting',
  what: 'changes a setting that the statement does not show, so dbgate cannot judge it; change settings with SET or a direct set_config call',
}

/** A built-in converting into a type its arguments choose, which the walker judged as a cast to that type (`judgedAsCast`). */
function isTypeChosenByData(c: FunctionCandidate): boolean {
  return isBuiltinSchema(c.schema) && TYPE_CHOSEN_BY_DATA_BUILTINS.has(c.name.toLowerCase())
}

function isBuiltinSetConfig(c: FunctionCandidate): boolean {
  return c.name.toLowerCase() === 'set_config' && (c.schema === 'pg_catalog' || c.schema === 'information_schema')
}

/** The worst thing `call` may do, or undefined when it is a plain read. `stack`: the functions whose bodies are being judged, outermost first. */
function judgeCall(call: CatalogCall, catalog: FunctionCatalog, stack: readonly number[] = [], byBody = false): CallVerdict | undefined {
  // Extensions that run SQL text or touch server files are known by name wherever they live, and
  // whether or not the catalog can be read.
  const ext = call.kind === 'function' ? extensionEffect(call.name.toLowerCase()) : undefined
  if (ext) {
    const written = call.schema ? `${call.schema}.${call.name}` : call.name
    return {effect: ext, fn: written, detail: `${describeCall(call)} ${ext.what}`}
  }
  const key = catalogKey(call)
  const all = catalog.get(key)
  if (all === undefined) {
    // Offline, a qualified column may be a column, and a cast to an unknown type is the server's to
    // refuse: only calls and operators make a verdict depend on what could not be looked up.
    if (catalog.offline && (call.kind === 'attribute' || call.kind === 'cast' || call.kind === 'relation' || call.kind === 'trigger')) return undefined
    return {effect: UNKNOWN, detail: `${describeCall(call)} could not be looked up: ${catalog.unknownReason(key)}`}
  }
  const candidates = all.filter((c) => schemaFits(call, c) && (call.kind === 'cast' || call.kind === 'relation' || call.kind === 'trigger' || arityFits(c, call.args)))
  if (candidates.length === 0) {
    if (call.kind === 'relation' || call.kind === 'trigger') return undefined
    // Attribute notation that matches no function is a column; a cast with nothing to call is a
    // cast; built-in operators never call a volatile function (the generated tables show it).
    if (call.kind === 'attribute' || call.kind === 'cast') return undefined
    if (call.kind === 'operator' && isBuiltinOperator(call.name) && (call.schema === undefined || call.schema === 'pg_catalog')) return undefined
    return {effect: UNKNOWN, detail: `${describeCall(call)} does not exist in the target's catalog (with ${call.args} argument${call.args === 1 ? '' : 's'})`}
  }
  let worst: FunctionCandidate | undefined
  let worstEffect: FunctionEffect | undefined
  for (const c of candidates) {
    // A trigger function inside a body (a client's statement lifts its own: `triggerOperations`) is
    // judged by what its body does: every trigger function is volatile, and its write already is one.
    const e = !call.judgedAsSetting && isBuiltinSetConfig(c) ? HIDDEN_SETTING : call.judgedAsCast && isTypeChosenByData(c) ? READ_EFFECT : effectOf(c, catalog, stack, byBody || call.kind === 'trigger')
    if (!worstEffect || EFFECT_RANK[e.kind] > EFFECT_RANK[worstEffect.kind]) {
      worst = c
      worstEffect = e
    }
  }
  if (!worst || !worstEffect || worstEffect.kind === 'read') return undefined
  const fn = qualified(worst)
  const via = worst.via ? ` (${worst.via})` : ''
  const which = candidates.length > 1 && call.schema === undefined ? `; ${describeCall(call)} may resolve to ${fn}${via}, the worst of ${candidates.length} candidates` : ''
  return {effect: worstEffect, fn, detail: `${describeCall(call)}: ${fn}${via} ${worstEffect.what}${which}`}
}

// ---- user functions' bodies --------------------------------------------------------------------

/** How deep calls from body to body are followed; deeper is unknown. */
const MAX_BODY_DEPTH = 4

const READ_EFFECT: FunctionEffect = {kind: 'read', class: 'read', what: 'reads'}

function opaque(what: string): FunctionEffect {
  return {kind: 'unknown', class: 'opaque', flag: 'unknown_function', what}
}

/**
 * What calling `c` does. A built-in, or an extension's function (the DBA's installed code), by
 * `candidateEffect`; any other user function by its body too, since its declared volatility is
 * only its author's word. A volatile function already needs a reviewer, who cannot see its body
 * either: only a body that does worse than that (signals server processes, touches server files,
 * changes settings) changes its verdict.
 */
function effectOf(c: FunctionCandidate, catalog: FunctionCatalog, stack: readonly number[], byBody = false): FunctionEffect {
  const declared = candidateEffect(c)
  if (c.oid === undefined || !catalog.body || isBuiltinSchema(c.schema) || declared.kind === 'denied') return declared
  const body = catalog.body(c.oid)
  if (body?.extension) return declared
  const found = bodyEffect(c, body, catalog, stack)
  // Called from a trigger's body (`triggerOperations`): no reviewer is asked for the write that
  // fires it, so the function is judged by what its body does, not by the volatility it declares.
  if (byBody) return found
  // The reviewer of a volatile call is told dbgate cannot see what it does: dynamic SQL or an
  // unreadable body says no more than that; an outright denial does. What dbgate cannot see may
  // be DDL, so the calls after it count as after a change to the catalog (unsettled-calls.ts).
  if (declared.kind === 'volatile' && (found.kind !== 'denied' || found.flag === 'dynamic_sql')) {
    const unseen = found.changesCatalog === true || EFFECT_RANK[found.kind] > EFFECT_RANK[declared.kind]
    return unseen ? {...declared, changesCatalog: true} : declared
  }
  return EFFECT_RANK[found.kind] > EFFECT_RANK[declared.kind] ? found : declared
}

/** Body verdicts of the functions a client's statement calls, per catalog generation (a body re-read is a new generation). */
const bodyMemo = new WeakMap<FunctionCatalog, {generation: number; byOid: Map<number, FunctionEffect>}>()

function bodyEffect(c: FunctionCandidate, body: FunctionBody | undefined, catalog: FunctionCatalog, stack: readonly number[]): FunctionEffect {
  if (stack.length > 0) return judgeBody(c, body, catalog, stack)
  let memo = bodyMemo.get(catalog)
  if (!memo || memo.generation !== catalog.generation) {
    memo = {generation: catalog.generation, byOid: new Map()}
    bodyMemo.set(catalog, memo)
  }
  let e = memo.byOid.get(c.oid!)
  if (!e) memo.byOid.set(c.oid!, (e = judgeBody(c, body, catalog, stack)))
  return e
}

/**
 * Whether a write in a body goes through a view or rule to a system catalog (`UPDATE public.procs`
 * over pg_proc). What is behind a relation the catalog has not read is judged by the body's
 * relation call, which is then unknown.
 */
function writesCatalogBehind(o: Operation, catalog: FunctionCatalog): boolean {
  if (!seesViews(catalog)) return false
  return o.tables.some((t) => t.access !== 'read' && (catalog.tablesBehind(`r:${t.name}`) ?? []).some((b) => b.schema === 'pg_catalog' && (t.schema === undefined || b.scope === t.schema)))
}

/** What one of a body's own operations does, apart from its calls; undefined for a plain read. */
function operationEffect(o: Operation, catalog: FunctionCatalog): FunctionEffect | undefined {
  if (o.class === 'unknown') return opaque(`has a statement in its body that dbgate cannot judge (${o.detail ?? o.command})`)
  if (o.setting || o.command === 'set') {
    const which = o.setting ? `the setting ${o.setting.name}` : 'a setting'
    return {...HIDDEN_SETTING, what: `changes ${which} inside its body, which the calling statement does not show, so dbgate cannot judge it`}
  }
  if (o.class === 'read' && o.flags.length === 0) return undefined
  // A body that rewrites pg_proc (or any catalog) changes what later calls run, and the caller's
  // statement shows no change to the catalog: the calls after it would be judged by the old bodies.
  // Denied, not unknown: a volatile function's reviewer would not see that the calls after it run other bodies.
  if (o.class === 'write' && (writesCatalog(o) || writesCatalogBehind(o, catalog))) {
    const which = [...new Set(o.tables.filter((t) => t.access !== 'read').map((t) => t.name))].join(', ')
    return {kind: 'denied', class: 'unknown', what: `writes the system catalog ${which} inside its body, which changes functions, types or relations as DDL would, unseen by the statements after it; make the change with DDL`}
  }
  if (o.class === 'write' && (o.command === 'delete' || o.command === 'update') && o.where !== 'filtered') {
    // As the client's own would be refused; a volatile call needs a reviewer anyway, so this tells
    // only where no reviewer would be asked: a function a trigger calls.
    const which = [...new Set(o.tables.filter((t) => t.access === 'write').map((t) => (t.schema ? `${t.schema}.${t.name}` : t.name)))].join(', ')
    return {kind: 'volatile', class: 'write', flag: 'volatile_function', what: `${o.command === 'delete' ? 'deletes' : 'changes'} every row of ${which} inside its body (its WHERE does not pick rows)`}
  }
  if (o.class === 'write' && o.flags.length === 0) return {kind: 'data_write', class: 'write', what: `writes (${o.command}) inside its body`}
  return opaque(`runs ${o.command} (${o.class}) inside its body`)
}

/** The worst effect of a body's statements and of everything they call, followed through other bodies. */
function judgeBody(c: FunctionCandidate, body: FunctionBody | undefined, catalog: FunctionCatalog, stack: readonly number[]): FunctionEffect {
  const oid = c.oid!
  if (!body) return opaque('has a body dbgate could not read from the catalog')
  if (stack.includes(oid)) return opaque('calls itself (directly or through other functions), a cycle dbgate does not follow')
  if (stack.length >= MAX_BODY_DEPTH) return opaque(`is reached through functions nested more than ${MAX_BODY_DEPTH} deep, which dbgate does not follow`)
  if (body.unreadable) return opaque(body.unreadable)
  if (body.dynamic) {
    return {kind: 'denied', class: 'admin', flag: 'dynamic_sql', what: `runs SQL built at run time inside its body (${body.dynamic}), which dbgate cannot see into`}
  }
  let worst = READ_EFFECT
  // Kept apart from the worst effect, which a worse one elsewhere in the body may replace.
  let changesCatalog = false
  const consider = (e: FunctionEffect) => {
    if (e.changesCatalog) changesCatalog = true
    if (EFFECT_RANK[e.kind] > EFFECT_RANK[worst.kind]) worst = e
  }
  const inner = [...stack, oid]
  for (const s of body.statements) {
    for (const o of s.operations) {
      const own = operationEffect(o, catalog)
      if (own) consider(operationCallChange(o) === CallChange.None ? own : {...own, changesCatalog: true})
      for (const call of o.calls ?? []) {
        // Inside a body no setting a call changes is judged as a SET of the client's: the walker's
        // setting operation above already refused it, and set_config reached here is hidden.
        const {judgedAsSetting: _setting, ...plain} = call
        const v = judgeCall(plain, catalog, inner)
        if (!v) continue
        const name = v.fn ?? (call.schema ? `${call.schema}.${call.name}` : call.name)
        consider({...v.effect, what: `calls ${name} inside its body (${v.detail})`, through: [...(v.fn ? [v.fn] : []), ...(v.effect.through ?? [])]})
      }
    }
  }
  return changesCatalog && !worst.changesCatalog ? {...worst, changesCatalog: true} : worst
}

function effectOperation(v: CallVerdict, call: CatalogCall): Operation {
  const written = call.schema ? `${call.schema}.${call.name}` : call.name
  // A target rule about a function matches it wherever it runs, inside another's body too.
  const named = v.fn ? [v.fn, ...(call.kind === 'function' ? [written] : []), ...(v.effect.through ?? [])] : call.kind === 'function' ? [written] : []
  const functions = [...new Set(named)]
  return {
    class: v.effect.class,
    command: 'function',
    tables: [],
    functions,
    flags: [...(v.effect.flag ? [v.effect.flag] : []), ...(v.effect.changesCatalog ? (['changes_catalog'] as const) : [])],
    detail: v.detail,
  }
}

function resolveStatement(stmt: StatementAnalysis, catalog: FunctionCatalog, onlyRead: WeakMap<readonly Operation[], boolean>): StatementAnalysis {
  if (!stmt.operations.some((o) => o.calls !== undefined)) return stmt
  // The common case (tables and built-ins that only read): nothing to add, and nothing to rebuild.
  // Whether it is depends on the operations alone, which texts of one shape share (`shape-cache.ts`).
  let reads = onlyRead.get(stmt.operations)
  if (reads === undefined) {
    reads = stmt.operations.every((o) => !o.calls || o.calls.every((c) => (c.kind === 'trigger' ? triggerOperations(c, catalog, [], new Set()).length === 0 : judgeCall(c, catalog) === undefined && bodyTables(c, catalog).length === 0)))
    onlyRead.set(stmt.operations, reads)
  }
  if (reads) return stmt
  const operations: Operation[] = []
  const extra: Operation[] = []
  const seen = new Set<string>()
  // The statement's own operations, then those its writes' triggers run (`triggerOperations`),
  // whose calls and writes are followed in turn.
  const work: Lifted[] = stmt.operations.map((operation) => ({operation, stack: []}))
  const fired = new Set<number>()
  for (let i = 0; i < work.length; i++) {
    const {operation: o, stack} = work[i]!
    const into = i < stmt.operations.length ? operations : extra
    if (!o.calls) {
      into.push(o)
      continue
    }
    const {calls, ...rest} = o
    into.push(rest)
    for (const call of calls) {
      if (call.kind === 'trigger') {
        work.push(...triggerOperations(call, catalog, stack, fired))
        continue
      }
      const v = judgeCall(call, catalog, [], stack.length > 0)
      const key = v && `${v.effect.kind}|${v.fn ?? ''}|${catalogKey(call)}`
      if (v && key && !seen.has(key)) {
        seen.add(key)
        extra.push(effectOperation(v, call))
      }
      // After the call's effect, whose detail says what the body does: where it does it.
      const tables = bodyTables(call, catalog)
      const where = `tables|${catalogKey(call)}`
      if (tables.length > 0 && !seen.has(where)) {
        seen.add(where)
        extra.push(bodyTablesOperation(call, tables))
      }
    }
  }
  operations.push(...extra)
  return withOperations(stmt, operations)
}

// ---- tables in bodies ---------------------------------------------------------------------------

/**
 * The relations the bodies `call` may run read and write, with what is behind them, through the
 * functions those bodies call in turn (to MAX_BODY_DEPTH), each marked with its route (`the body of
 * public.reader`). A call's effect is judged by its body (`effectOf`), but that says what kind of
 * thing it does, not where: `SELECT public.reader()`, a STABLE function over hr.salaries, is a read
 * like any other, and a `tables:` rule must see hr.salaries in it. Bodies dbgate cannot read are
 * judged unknown by `judgeCall`, so they add nothing here.
 */
function bodyTables(call: CatalogCall, catalog: FunctionCatalog, stack: readonly number[] = []): TableRef[] {
  // (A relation's candidates are the functions its view or rules call; a trigger's bodies are lifted whole: `triggerOperations`.)
  if (!catalog.body || call.kind === 'trigger') return []
  const all = catalog.get(catalogKey(call))
  if (!all) return []
  const out: TableRef[] = []
  const add = (t: TableRef) => {
    if (!out.some((x) => x.schema === t.schema && x.name === t.name && x.access === t.access && x.via === t.via)) out.push(t)
  }
  for (const c of all) {
    if (!schemaFits(call, c) || !(call.kind === 'cast' || call.kind === 'relation' || arityFits(c, call.args))) continue
    if (c.oid === undefined || isBuiltinSchema(c.schema) || stack.includes(c.oid) || stack.length >= MAX_BODY_DEPTH) continue
    const body = catalog.body(c.oid)
    if (!body || body.extension || body.unreadable || body.dynamic) continue
    const where = `the body of ${qualified(c)}${c.via ? ` (${c.via})` : ''}`
    for (const s of body.statements) {
      for (const o of s.operations) {
        for (const t of operationWithBehind(o, catalog).tables) add({...t, via: t.via ? `${t.via}, in ${where}` : where})
        for (const inner of o.calls ?? []) for (const t of bodyTables(inner, catalog, [...stack, c.oid])) add({...t, via: `${t.via}, called from ${where}`})
      }
    }
  }
  return out
}

/** An operation carrying the relations a call's bodies reach (`bodyTables`), for `tables:` rules. */
function bodyTablesOperation(call: CatalogCall, tables: TableRef[]): Operation {
  const written = call.schema ? `${call.schema}.${call.name}` : call.name
  return {
    class: tables.some((t) => t.access !== 'read') ? 'write' : 'read',
    command: 'function',
    tables,
    functions: [written],
    flags: [],
    detail: `${describeCall(call)} runs a body that reaches ${[...new Set(tables.map((t) => (t.schema ? `${t.schema}.${t.name}` : t.name)))].join(', ')}`,
  }
}

// ---- triggers -----------------------------------------------------------------------------------

/** An operation a trigger's body runs, with the trigger functions it was reached through, outermost first. */
interface Lifted {
  operation: Operation
  stack: readonly number[]
}

/** How deep triggers fired by other triggers' writes are followed; deeper needs a reviewer. */
const MAX_TRIGGER_DEPTH = 4

/**
 * What a write's triggers run, as operations of the statement itself: each trigger function's body
 * statements as if the client had sent them. So an `INSTEAD OF` trigger whose body deletes every
 * row is an unfiltered DELETE the rules refuse, a `tables:` rule sees what a trigger reads and
 * writes, and a trigger's DDL needs a reviewer as the client's would. Functions the body calls are
 * judged by their bodies (`effectOf` with `byBody`), the triggers its writes fire by theirs. A
 * body dbgate cannot see into (another language, SQL built at run time, nested too deep) makes the
 * write need a reviewer; an extension's C trigger function is the DBA's installed code, trusted as
 * a call of it is. Empty when the relation fires no trigger of a user's.
 */
function triggerOperations(
  call: CatalogCall,
  catalog: FunctionCatalog,
  stack: readonly number[],
  /** Trigger functions already lifted for this statement: fired again (by another write, or by its own), its body says nothing new. */
  fired: Set<number>,
): Lifted[] {
  const key = catalogKey(call)
  const all = catalog.get(key)
  const written = call.schema ? `${call.schema}.${call.name}` : call.name
  if (all === undefined) {
    if (catalog.offline) return []
    return [{operation: unseenTrigger(`the triggers of ${written} could not be looked up: ${catalog.unknownReason(key)}`, []), stack}]
  }
  const out: Lifted[] = []
  for (const c of all) {
    if (!schemaFits(call, c)) continue
    if (call.partitionKeyOnly && !c.via?.startsWith(PARTITION_KEY_VIA)) continue
    const fn = qualified(c)
    const via = c.via ?? `a trigger of ${written}`
    const unseen = (why: string): Lifted => ({operation: unseenTrigger(`${via} runs ${fn}, which ${why}`, [fn]), stack})
    if (c.kind === BEYOND_DEPTH_KIND) {
      out.push({operation: unseenTrigger(`${via} through more than ${VIEW_DEPTH_LIMIT} views, rules, partitions or cascading foreign keys, beyond which dbgate does not read triggers`, []), stack})
      continue
    }
    if (isBuiltinSchema(c.schema)) {
      // Only a WHEN condition brings one here: built-in trigger functions are not looked up.
      out.push(unseen('is a volatile built-in function, which dbgate does not judge there'))
      continue
    }
    const stored = bodyKey(c)
    if (stored === undefined || !catalog.body) {
      out.push(unseen('dbgate could not find in the catalog'))
      continue
    }
    if (fired.has(stored)) continue
    fired.add(stored)
    const body = catalog.body(stored)
    if (body?.extension) continue
    if (!body) out.push(unseen('has a body dbgate could not read from the catalog'))
    else if (body.unreadable) out.push(unseen(body.unreadable))
    else if (body.dynamic) out.push(unseen(`runs SQL built at run time inside its body (${body.dynamic})`))
    else if (stack.length >= MAX_TRIGGER_DEPTH) out.push(unseen(`is fired through triggers nested more than ${MAX_TRIGGER_DEPTH} deep, which dbgate does not follow`))
    else {
      const inner = [...stack, stored]
      for (const s of body.statements) {
        for (const o of s.operations) {
          // What the body's writes reach (a cascading foreign key, a view's table) is the statement's too.
          const operation = liftedOperation(operationWithBehind(o, catalog), via, fn)
          if (operation) out.push({operation, stack: inner})
        }
      }
    }
  }
  return out
}

/** A trigger body's operation as one of the statement's, saying where it runs; undefined for plain computation. */
function liftedOperation(o: Operation, via: string, fn: string): Operation | undefined {
  if (o.class === 'read' && o.flags.length === 0 && o.tables.length === 0 && (o.calls?.length ?? 0) === 0) return undefined
  return {...o, functions: [...new Set([...o.functions, fn])], detail: `${o.command.toUpperCase()} run by ${via} (${fn})${o.detail ? `: ${o.detail}` : ''}`}
}

/** A trigger whose code dbgate cannot see: the write that fires it needs a reviewer, who is told why. */
function unseenTrigger(why: string, functions: string[]): Operation {
  return {
    class: 'write',
    command: 'function',
    tables: [],
    functions,
    flags: ['volatile_function'],
    detail: `${why}; dbgate cannot see what that trigger does, so the write needs a reviewer`,
  }
}

const resolved = new WeakMap<
  FunctionCatalog,
  {generation: number; byList: WeakMap<readonly StatementAnalysis[], readonly StatementAnalysis[]>; onlyRead: WeakMap<readonly Operation[], boolean>}
>()

/**
 * Adds an operation for every call that does more than read, judged against `catalog`. Results
 * are kept per (catalog generation, analysis): analyses are shared and never change, so a hot
 * text costs one WeakMap lookup; a text whose calls only read comes back as it went in.
 */
export function resolveCatalogCalls(statements: readonly StatementAnalysis[], catalog: FunctionCatalog): StatementAnalysis[] {
  let memo = resolved.get(catalog)
  if (!memo || memo.generation !== catalog.generation) {
    memo = {generation: catalog.generation, byList: new WeakMap(), onlyRead: new WeakMap()}
    resolved.set(catalog, memo)
  }
  // A cached analysis hands out the same statements array every time: one lookup for the whole text.
  const whole = memo.byList.get(statements)
  if (whole) return whole as StatementAnalysis[]
  const out = mapStatements(statements, (s) => resolveStatement(s, catalog, memo.onlyRead))
  // Texts that only read need no entry: their statements answer from `onlyRead` (a text of a known
  // shape brings a new statements array every time, and an entry each would only feed the GC).
  if (out === statements) return out
  memo.byList.set(statements, out)
  return out
}

/** The functions a statement's verdict depends on but `catalog` could not look up (for `policy check`). */
export function unresolvedCalls(statements: readonly StatementAnalysis[], catalog: FunctionCatalog): string[] {
  const out = new Set<string>()
  for (const s of statements) {
    for (const o of s.operations) {
      for (const c of o.calls ?? []) {
        if (catalog.get(catalogKey(c)) === undefined && !(catalog.offline && (c.kind === 'attribute' || c.kind === 'relation' || c.kind === 'trigger'))) out.add(describeCall(c))
      }
    }
  }
  return [...out]
}
