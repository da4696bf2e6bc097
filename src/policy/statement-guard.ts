/**
 * The policy engine as the tunnel sees it: one `StatementHook`. It analyses (through the shared
 * cache), resolves EXECUTE against the session's prepared statements as the server acknowledged
 * them (`ctx.session`), evaluates the rules and answers with a verdict. It keeps no state of its
 * own: a PREPARE it allows exists for later texts only once the server has confirmed it.
 */
import type {SessionView, StatementContext} from '../proxy/seam.js'
import {DEFAULT_MAX_STATEMENT_SIZE} from './analyze.js'
import {AnalysisCache, sharedAnalysisCache} from './cache.js'
import {catalogKey, catalogKeys, judgeSettingsOnTarget, offlineCatalog, resolveCatalogCalls, type CatalogKey, type FunctionCatalog, type LoadingFunctionCatalog} from './catalog.js'
import {isBuiltinSchema} from './functions.js'
import {analyzeOffThread, OFFLOAD_THRESHOLD} from './offload.js'
import {loadParser, parserReady} from '../sql/parser.js'
import {applyToRegistry, preparedInSession, resolveExecutes, StagedRegistry, touchesRegistry} from './prepared.js'
import {evaluate, type EvaluateOptions} from './rules.js'
import {readingOf} from './text-shape.js'
import {CallChange, callChange, declaresHoldCursor, distrustCatalogCalls} from './unsettled-calls.js'
import {addTablesBehindViews, distrustTablesBehind, mayChangeTablesBehind} from './views.js'
import {settleWhereBasis} from './where-basis.js'
import type {Analysis, BuiltinRule, CatalogCall, ClientKind, Decision, PolicyPackName, PolicyRule, RuleDecision, StatementAnalysis} from './types.js'
import {decisionToVerdict, type PolicyVerdict} from './verdict.js'

export interface StatementHookOptions {
  rules: readonly PolicyRule[]
  pack: PolicyPackName | readonly BuiltinRule[]
  /** The connected identity's groups. */
  identityGroups: readonly string[]
  maxStatementSize?: number
  /** Defaults to the process-wide shared cache. */
  cache?: AnalysisCache
  /** Reviewer groups, named in require_approval messages. */
  reviewers?: readonly string[]
  /**
   * What functions, operators and casts resolve to in the target. The tunnel's loads what it has
   * not seen before the verdict; without one, only built-ins are known and other calls fail closed.
   */
  functions?: FunctionCatalog | LoadingFunctionCatalog
  /** Which client the tunnel's sessions come through, for rules that match `client`. */
  client?: ClientKind
  /**
   * Called when a statement that may change the catalog is let through (or held): a named
   * statement judged before it must be judged again at its next Bind (`verdictGeneration`), even
   * before the server has run the change (a pipeline sends Bind right behind it).
   */
  onCatalogChange?: () => void
}

/** Judges one statement text as the proxy's statement hook does, but may answer with a hold. */
export type PolicyStatementHook = (sql: string, ctx: StatementContext) => PolicyVerdict | Promise<PolicyVerdict>

/** The statement hook, and what it must hear of the session between statements. */
export interface StatementGuard extends PolicyStatementHook {
  /**
   * The server reported no transaction open (ReadyForQuery I): a change the session made is
   * committed or rolled back, and the catalog is read again for every session now, not only at
   * the session's own next statement (which may never come).
   */
  idle(session: SessionView): void
  /**
   * Whether the connection let through a change to what is behind a relation that it has not
   * settled yet: its transaction's end (a `COMMIT AND CHAIN` leaves it in a transaction) is when
   * every session must read the catalog again.
   */
  changing(connectionId: number): boolean
  /** The connection closed. */
  forget(connectionId: number): void
}

/**
 * What a session's uncommitted change may have changed: what calls run (`calls`), and whether what
 * is behind a relation (`tables`; not after DDL that keeps relations, relation-keeping.ts).
 */
interface Unsettled {
  calls: CallChange
  tables: boolean
}

export interface JudgedText {
  /** The statements as judged: EXECUTEs resolved against what was prepared. */
  statements: StatementAnalysis[]
  decision: Decision
}

/**
 * Resolves and evaluates a text's statements in order against `staged`, so a PREPARE earlier in
 * the same text is known to a later EXECUTE, then judges every call (the executed statements'
 * included) against `catalog`, and adds the tables behind the views they use (views.ts). After a
 * change to the catalog (`unsettled`, or earlier in the text) the calls are judged unknown as well
 * (unsettled-calls.ts). Shared by the hook and `dbgate policy check`.
 */
export function judgeStatements(
  statements: readonly StatementAnalysis[],
  staged: StagedRegistry | undefined,
  opts: EvaluateOptions,
  catalog: FunctionCatalog = offlineCatalog,
  unsettled = false,
  /** What the session's uncommitted change may have changed for calls (unsettled-calls.ts); any call, when only `unsettled` is said. */
  callsChanged: CallChange = unsettled ? CallChange.Code : CallChange.None,
  /** The open transaction declared a cursor WITH HOLD that calls something (unsettled-calls.ts). */
  holdCursor = false,
): JudgedText {
  // What a statement changes for calls is judged with its calls resolved: a function whose body runs DDL changes the catalog too.
  const changeOf = (s: StatementAnalysis) => callChange(resolveCatalogCalls([s], catalog)[0]!)
  const judgedAs = (judged: StatementAnalysis[]): JudgedText => {
    // What is behind a relation is read from committed state: it is not known after a change this
    // session has not committed, nor after one earlier in the same text (views.ts). The change may
    // be a call the catalog step judged (a volatile function that runs DDL), so it is looked for in
    // the statements as judged, not as written.
    const changing = judged.findIndex((s) => mayChangeTablesBehind(s, catalog))
    const from = unsettled ? 0 : changing < 0 ? judged.length : changing + 1
    const out = settleWhereBasis(distrustTablesBehind(judged, from, catalog), catalog, from)
    return {statements: out, decision: evaluate(out, opts)}
  }
  // The same holds for what any call runs (unsettled-calls.ts): those calls need a reviewer until it is committed.
  // (After the tables behind views are added: a write through a view over a system catalog changes it.)
  // And the custom settings they change by the target's libraries (the shared analysis knows only dbgate's list).
  const withCalls = (judged: readonly StatementAnalysis[]) =>
    judgeSettingsOnTarget(resolveCatalogCalls(distrustCatalogCalls(addTablesBehindViews(judged, catalog), callsChanged, holdCursor, reachesUserCode(catalog), changeOf), catalog), catalog)
  // The text's own calls first (an EXECUTE's parameters included: the EXECUTE itself is replaced below).
  const own = withCalls(statements)
  // No EXECUTE, PREPARE or DEALLOCATE (catalog calls add none): nothing below would change a statement.
  if (!touchesRegistry(own)) return judgedAs(own)
  // Fails closed: the hook's caller refuses a statement it could not judge.
  if (!staged) throw new Error('a text that runs or defines prepared statements was judged without the session\'s prepared statements')
  const resolved: StatementAnalysis[] = []
  let executes = false
  for (const stmt of own) {
    const r = resolveExecutes(stmt, staged)
    if (r !== stmt) executes = true
    resolved.push(r)
    applyToRegistry(r, staged)
  }
  // Then the calls of the prepared statements the EXECUTEs run, read back from their defining texts.
  return judgedAs(executes ? withCalls(resolved) : own)
}

/**
 * Whether a call may run a user's function, by what the committed catalog says it may resolve to
 * (every candidate, as catalog.ts judges it): a name it cannot answer may.
 */
function reachesUserCode(catalog: FunctionCatalog): (call: CatalogCall) => boolean {
  return (call) => {
    const all = catalog.get(catalogKey(call))
    return all === undefined || all.some((c) => !isBuiltinSchema(c.schema))
  }
}

/** The ReadyForQuery count that ends a statement judged now (in a pipeline, the reply to an earlier text says nothing about it). */
const readyAwaited = (session: SessionView): number => session.readyAwaited ?? session.readyCount ?? 0

/** DO blocks and procedures may COMMIT inside and go on running (functions may not). */
function runsTransactionControl(stmt: StatementAnalysis): boolean {
  return stmt.operations.some((o) => o.command === 'do' || o.command === 'call')
}

/**
 * Whether what a session started at ReadyForQuery count `since` is over: a later one came and
 * reported no transaction open. The count and the status are read together, from the session as
 * it is now: a context's `transactionStatus` is as of the moment its judgement began, and one that
 * waited since (a catalog lookup, the change gate, a text parsed off the event loop) would pair the
 * count after the reply to `BEGIN; <change>` with the status before it.
 */
function settledSince(session: SessionView, since: number, transactionStatus: StatementContext['transactionStatus']): boolean {
  const ready = session.readyCount
  return ready !== undefined && ready > since && (session.txStatus ?? transactionStatus) === 'I'
}

/** The first OID of objects created after initdb: a type below it is built in. */
const FIRST_NORMAL_OBJECT_ID = 16384

/** How many times a statement's catalog keys are read when other sessions' commits keep forgetting them. */
const CATALOG_READS = 3

/**
 * A Parse that declares parameter types that are not built in (a domain, a user's composite or
 * enum type) has every Bind convert its values into them, running a domain's checks: those
 * conversions are judged as casts of the statement (catalog key `t:#<oid>`). Built-in and
 * unspecified (0) types run nothing a user wrote.
 */
function withDeclaredParams(analysis: Analysis, ctx: StatementContext): Analysis {
  const declared = ctx.protocol === 'parse' ? [...new Set(ctx.paramTypes ?? [])].filter((t) => t >= FIRST_NORMAL_OBJECT_ID) : []
  const first = analysis.statements[0]
  const owner = first?.operations[0]
  if (declared.length === 0 || !first || !owner) return analysis
  const calls: CatalogCall[] = [...(owner.calls ?? []), ...declared.map((oid) => ({kind: 'cast' as const, name: `#${oid}`, args: 1}))]
  const operations = [{...owner, calls}, ...first.operations.slice(1)]
  return {...analysis, statements: [{...first, operations}, ...analysis.statements.slice(1)]}
}

const MULTI_PARSE: RuleDecision = {
  action: 'deny',
  ruleId: 'protocol.single-statement-parse',
  reason: 'an extended-protocol Parse may hold only one statement',
  hint: 'send one statement per Parse, or use a simple query',
  statementIndex: 0,
  operationIndex: 0,
  command: 'parse',
  class: 'unknown',
}

export function createStatementHook(opts: StatementHookOptions): StatementGuard {
  const cache = opts.cache ?? sharedAnalysisCache
  const maxStatementSize = opts.maxStatementSize ?? DEFAULT_MAX_STATEMENT_SIZE
  const evalOpts: EvaluateOptions = {rules: opts.rules, pack: opts.pack, groups: opts.identityGroups, client: opts.client}
  const catalog = opts.functions ?? offlineCatalog
  const loading = 'load' in catalog ? (catalog as LoadingFunctionCatalog) : undefined
  // Analyses are shared and immutable: their catalog keys are worked out once, per operations list
  // for a text of one statement (texts of one shape share it, `shape-cache.ts`), per analysis otherwise.
  const keysOf = new WeakMap<object, CatalogKey[]>()

  // The session's acknowledged settings say whether its texts may share an analysis by shape.
  const judge = (sql: string, ctx: StatementContext): PolicyVerdict | Promise<PolicyVerdict> => decide(cache.analyze(sql, {maxStatementSize}, readingOf(ctx.session.parameters)), ctx)

  /**
   * The analysis of a prepared statement's defining text, as libpg_query reads it (as it was when
   * judged): by its shape where the session's settings allow, since a text answered by its shape
   * is not in the text cache, and parsing it in full for every EXECUTE would cost a parse each.
   */
  const definitions = (ctx: StatementContext): ((sql: string) => Analysis) => {
    const reading = readingOf(ctx.session.parameters)
    return (sql) => cache.analyze(sql, {maxStatementSize}, reading)
  }

  /**
   * Sessions that let through a statement which may change the catalog: what is behind a relation
   * (`mayChangeTablesBehind`), or what a call runs (`callChange`, with how wide that change is), with
   * the ReadyForQuery count reached before that statement's own (`readyAwaited`). The catalog's own
   * connection sees the change only once it commits: until then the session's relations count as
   * every table, and its calls as unknown (unsettled-calls.ts). Settled at the first ReadyForQuery
   * from then on that reports no transaction open (`idle`, or the next statement), which reads the
   * catalog afresh (what was read meanwhile showed the state before the change).
   */
  const unsettledSince = new WeakMap<SessionView, Unsettled & {since: number; connectionId: number}>()
  /** Connections with an unsettled change: their transaction's end has every session read the catalog again (`changing`). */
  const changingConnections = new Set<number>()
  const unsettledIn = (session: SessionView, transactionStatus: StatementContext['transactionStatus']): Unsettled | undefined => {
    const u = unsettledSince.get(session)
    if (u === undefined) return undefined
    if (!settledSince(session, u.since, transactionStatus)) return u
    unsettledSince.delete(session)
    changingConnections.delete(u.connectionId)
    loading?.invalidate?.()
    return undefined
  }

  /**
   * Connections running a DO block or a CALL, until the ReadyForQuery after it: its code may
   * COMMIT a change and go on, so another session's statement may run after the change is committed
   * but before this connection (or the catalog) hears of it. Meanwhile every session's judgement
   * counts as unsettled. Only while such code runs: a change waiting in an open transaction is seen
   * by no other session, and the catalog's committed state is right for them.
   */
  const committingInside = new Map<number, {session: SessionView; since: number}>()
  const inFlightCommit = (): boolean => {
    for (const [id, run] of committingInside) {
      if ((run.session.readyCount ?? 0) <= run.since) return true
      committingInside.delete(id)
    }
    return false
  }
  const ANY_CALL: Unsettled = {calls: CallChange.Code, tables: true}
  const unsettled = (ctx: StatementContext): Unsettled | undefined =>
    unsettledIn(ctx.session, ctx.transactionStatus) ?? (committingInside.size > 0 && inFlightCommit() ? ANY_CALL : undefined)

  /**
   * Sessions whose open transaction (or the implicit one of a text or pipeline still running)
   * declared a cursor WITH HOLD that calls something, with their ReadyForQuery count then: its
   * query runs at COMMIT, so a change to what calls run meanwhile is held (unsettled-calls.ts).
   */
  const holdCursorSince = new WeakMap<SessionView, number>()
  const holdCursorOpenIn = (session: SessionView, transactionStatus: StatementContext['transactionStatus']): boolean => {
    const since = holdCursorSince.get(session)
    if (since === undefined) return false
    if (!settledSince(session, since, transactionStatus)) return true
    holdCursorSince.delete(session)
    return false
  }
  const holdCursorOpen = (ctx: StatementContext): boolean => holdCursorOpenIn(ctx.session, ctx.transactionStatus)

  /** Loads what the catalog has not seen yet (one lookup shared by concurrent misses), then judges. */
  const decide = (shared: Analysis, ctx: StatementContext): PolicyVerdict | Promise<PolicyVerdict> => {
    const analysis = withDeclaredParams(shared, ctx)
    const before = unsettled(ctx)
    return loading ? loadThenDecide(loading, analysis, ctx, before, 1) : decideNow(analysis, ctx, before)
  }

  /**
   * A load waits for lookups other statements started too, and a change committed by another
   * session between the first of them ending and the last (`invalidate`) forgets what the first
   * read: read again, a bounded number of times, rather than refuse the statement as "not looked
   * up". A lookup that failed is not repeated: its key stays unknown, and the statement is refused.
   */
  const loadThenDecide = (l: LoadingFunctionCatalog, analysis: Analysis, ctx: StatementContext, before: Unsettled | undefined, attempt: number): PolicyVerdict | Promise<PolicyVerdict> => {
    const missing = l.missing(keysFor(analysis, ctx))
    if (missing.length === 0) return decideNow(analysis, ctx, before)
    const generation = l.generation
    return l.load(missing).then(() => (l.generation !== generation && attempt < CATALOG_READS ? loadThenDecide(l, analysis, ctx, before, attempt + 1) : decideNow(analysis, ctx, before)))
  }

  /** The catalog keys a text's verdict needs, those of the prepared statements its EXECUTEs run included. */
  const keysFor = (analysis: Analysis, ctx: StatementContext): CatalogKey[] => {
    const id = analysis.statements.length === 1 ? analysis.statements[0]!.operations : analysis
    let keys = keysOf.get(id)
    if (!keys) keysOf.set(id, (keys = catalogKeys(analysis.statements)))
    if (!analysis.statements.some((st) => st.operations.some((o) => o.executes !== undefined))) return keys
    const staged = new StagedRegistry(() => preparedInSession(ctx.session, definitions(ctx)))
    const resolved = analysis.statements.map((st) => {
      const r = resolveExecutes(st, staged)
      applyToRegistry(r, staged)
      return r
    })
    return [...keys, ...catalogKeys(resolved)]
  }

  const decideNow = (analysis: Analysis, ctx: StatementContext, unsettledBefore: Unsettled | undefined): PolicyVerdict => {
    // A text that neither runs nor defines prepared statements never reads the session's (`judgeStatements`).
    const staged = touchesRegistry(analysis.statements) ? new StagedRegistry(() => preparedInSession(ctx.session, definitions(ctx))) : undefined
    if (ctx.protocol === 'parse' && analysis.statements.length > 1) {
      // The server would refuse it too; refusing here keeps a second statement from ever being judged as the first.
      const decision: Decision = {action: 'deny', decisive: MULTI_PARSE, statements: [MULTI_PARSE], warnings: []}
      return decisionToVerdict(decision, {reviewers: opts.reviewers, statements: analysis.statements, analysis})
    }
    const {statements, decision} = judgeStatements(analysis.statements, staged, evalOpts, catalog, unsettledBefore?.tables === true, unsettledBefore?.calls ?? CallChange.None, holdCursorOpen(ctx))
    const verdict = decisionToVerdict(decision, {reviewers: opts.reviewers, statements, analysis, judged: statements})
    // A change that may run (now, or once approved) leaves the session unsettled; a refused one changed nothing.
    if (verdict.action !== 'reject') {
      // One pass over what was judged: what it changes, and whether its code may commit inside.
      let calls: CallChange = unsettledBefore?.calls ?? CallChange.None
      let tablesBehind = unsettledBefore?.tables === true
      let commits = false
      for (const st of statements) {
        calls = Math.max(calls, callChange(st)) as CallChange
        tablesBehind ||= mayChangeTablesBehind(st, catalog)
        commits ||= runsTransactionControl(st)
      }
      if (commits) committingInside.set(ctx.connectionId, {session: ctx.session, since: readyAwaited(ctx.session)})
      if (!holdCursorSince.has(ctx.session) && analysis.statements.some(declaresHoldCursor)) holdCursorSince.set(ctx.session, readyAwaited(ctx.session))
      if (calls > CallChange.None || tablesBehind) {
        unsettledSince.set(ctx.session, {since: readyAwaited(ctx.session), calls, tables: tablesBehind, connectionId: ctx.connectionId})
        changingConnections.add(ctx.connectionId)
        opts.onCatalogChange?.()
      }
    }
    return verdict
  }

  const hook = (sql: string, ctx: StatementContext): PolicyVerdict | Promise<PolicyVerdict> => {
    if (!parserReady()) return loadParser().then(() => judge(sql, ctx))
    if (sql.length < OFFLOAD_THRESHOLD) return judge(sql, ctx)
    const cached = cache.peek(sql, {maxStatementSize})
    if (cached) return decide(cached, ctx)
    // Over the cap the analysis is an instant `unknown`; only real parses go to the worker.
    if (Buffer.byteLength(sql) > maxStatementSize) return judge(sql, ctx)
    return analyzeOffThread(sql, {maxStatementSize}).then((analysis) => decide(cache.store(sql, {maxStatementSize}, analysis), ctx))
  }
  const idle = (session: SessionView): void => {
    unsettledIn(session, 'I')
    holdCursorOpenIn(session, 'I')
  }
  return Object.assign(hook, {
    idle,
    changing: (connectionId: number) => changingConnections.has(connectionId),
    forget: (connectionId: number) => {
      changingConnections.delete(connectionId)
      committingInside.delete(connectionId)
    },
  })
}
