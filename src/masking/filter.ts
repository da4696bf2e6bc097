/**
 * The tunnel's result filter for masking: one per statement run, created by the factory that
 * `createMaskingFilterFactory` returns. Identities in an unmask group get no filter at all, so
 * their results take the proxy's untouched fast path.
 */
import {randomBytes} from 'node:crypto'
import {LRUCache} from 'lru-cache'
import type {MaskingConfig} from '../config/types.js'
import type {MessageSink, NamedDefinition, ResultFilter, ResultFilterFactory, SessionView, StatementContext, StatementEvent} from '../proxy/seam.js'
import type {FieldDescription, PgNoticeFields} from '../wire/fields.js'
import {maskBinaryValue, binaryText} from './binary.js'
import type {Catalog, DerivedMarks, SensitiveMark} from './catalog.js'
import {DEFAULT_STRATEGIES, type MaskingCategory, type MaskingStrategy} from './categories.js'
import {copyEncodingRefusal, maskCopyInto, maskCopyMessage, type CopyMask, type CopyPlan} from './copy.js'
import {bufferNeeds, scanText, type Finding} from './detectors.js'
import {watchLiterals} from '../sql/parser.js'
import {MAX_SHAPED_TEXT} from '../policy/shape-cache.js'
import {readingOf, scanShape, type TextReading} from '../policy/text-shape.js'
import {throughUse} from './lineage-model.js'
import {analyzeText, bothMoved, rowsGainedBy, flatten, paramPlaces, settingsUntraceable, type MovedNames, type NamedLineage, type ParamPlace, type StatementLineage, type TextLineage} from './lineage.js'
import {maskNotice, maskNotification, maskUntracedNotification, messageProof, sensitiveNameRules, type MessageProof, type NoticeLike} from './messages.js'
import {planResult, strategyFor, type MaskedColumn, type ResultPlan} from './plan.js'
import {markOf, unkeptMarks, type UnkeptMark} from './lasting-marks.js'
import {createMasker, redacted, type Masker} from './strategies.js'
import {arena, OTHER, put, putInt32, reserve, rewriteMessages, rewritten, UNCHANGED, written, type MessageRewriter} from './arena.js'
import {byteMaskOf, emailCut, writeEmail, type ByteMask} from './byte-masks.js'
import {decodeDataRow, encodeDataRow} from '../wire/backend.js'
import {fieldRules, isBinaryText, maskComposite, maskTyped, scanAndMask, typeOf, type ValueMasking} from './values.js'

/**
 * Who the results are for. Only `groups` decides: `kind` is carried for audit, and a service
 * identity (CI, an AI agent) sees clear values only through an unmask group, like anyone else.
 */
export interface MaskingIdentity {
  groups: string[]
  kind: 'human' | 'service'
}

export interface MaskingFilterOptions {
  catalog: Catalog
  masking: MaskingConfig
  identity: MaskingIdentity
  /**
   * Key of the `hash` strategy. Use one key per installation so hashed values line up across
   * sessions; without one, a random key per factory keeps them consistent within one tunnel.
   */
  hashKey?: Buffer | string
}

export interface ScannerHit {
  category: MaskingCategory
  detector: string
  count: number
}

/** A result filter that also tells the recorder what it masked and why. */
export interface MaskingFilter extends ResultFilter {
  readonly maskedColumns: MaskedColumn[]
  /** Values replaced so far in this statement's output (result rows and COPY fields). */
  readonly maskedValues: number
  readonly scannerHits: ScannerHit[]
  /** The last error of this statement as the client received it (masked), for the recording. */
  readonly clientError?: {code: string; message: string}
}

/** `refusal`: a refusal of its own, not about the statement's output (`unkeptMarks`). */
export type MaskabilityVerdict = {ok: true} | {ok: false; reason: string; refusal?: UnkeptMark}

export interface MaskingFilterFactory extends ResultFilterFactory {
  /** Under `onUntraceable: deny`, whether a statement's output can be masked; for the statement hook. */
  checkMaskable(sql: string, ctx?: Pick<StatementContext, 'session' | 'connectionId'>): MaskabilityVerdict
  /**
   * For the statement hook, before a statement is sent: when it names relations or columns the
   * catalog does not know, or relies on views whose definitions changed, the catalog is re-read
   * first (see `Catalog.ensureFresh`). Undefined when nothing needs reading, which is the common
   * case. Rejects only when the catalog cannot be read; the statement may then still run, with
   * what is unknown masked as untraceable.
   */
  ensureFresh(sql: string, ctx?: Pick<StatementContext, 'session' | 'connectionId' | 'transactionStatus'>): Promise<void> | undefined
  /**
   * As of a ReadyForQuery that reported no transaction open: when the connection's catalog change
   * is over, the read of the catalog that settles it (never rejected by the connection's state:
   * it rejects only when the catalog cannot be read).
   */
  ended(connectionId: number, session: SessionView): Promise<void> | undefined
  /**
   * After a statement completed, on a connection that ran something which may have changed the
   * catalog (DDL, or code the analysis cannot see into) and has not settled: whether the catalog is
   * to be read again now (the statement may have committed the change). Undefined on other connections.
   */
  statementDone(event: Pick<StatementEvent, 'connectionId' | 'commandTags' | 'outcome'>): boolean | undefined
  /**
   * Drops what is remembered about a closed connection (whether unseen code ran in it). True when
   * it had a change to the catalog pending: the server may still commit it after the client has
   * gone, so the catalog is to be read again once the server has ended the session.
   */
  forgetConnection(connectionId: number): boolean
  /**
   * A connection's session has begun upstream. A login event trigger ran then, code the analysis
   * cannot see into that may have set the session's settings to any value it read
   * (`set_config('application_name', …)`): what the session reads back of them is not proven.
   */
  loggedIn(connectionId: number): void
  /** True when this identity sees clear values (the factory then returns no filters). */
  readonly unmasked: boolean
  /**
   * The value scanner over free text, with this target's strategies: for statement parameters and
   * other text the recorder keeps. Applies whatever the identity, since recordings outlive sessions.
   */
  maskText(text: string): string
  /**
   * A statement's bind parameters as the recording keeps them: in clear (through the value scanner)
   * only where the text proves each goes to a clean column or is a row count (`paramPlaces`); into
   * a sensitive column, masked with that column's strategy; anywhere else, masked. Applies whatever
   * the identity, as `maskText` does.
   */
  maskParams(sql: string, params: readonly (string | null)[], how?: ParamsRun): (string | null)[]
  /**
   * An error message of a statement whose recorded parameters are masked, as the recording keeps
   * it: the server quotes a value it could not take (`invalid input syntax for type integer:
   * "Dora Quill"`), so every quoted value and number not proven clean (a word of the statement
   * text, a catalog name) is masked, as for a statement that reads sensitive data.
   */
  maskParamEchoes(sql: string, message: string): string
}

/** How a statement's parameters were taken, for `maskParams`. */
export interface ParamsRun {
  /** The connection whose statement it was, whose own uncommitted changes may have made names mean what the catalog does not know. */
  connectionId?: number
  /**
   * The statement completed, so the server took each value where the text puts it (a value that
   * failed there, `where id = $1` bound to a name, never reached the column that proves it clean).
   */
  accepted?: boolean
  /** What ran is not the text (a prepared statement code may have replaced, `ResultFilter.paramsUnproven`): nothing is proven. */
  unproven?: boolean
  /**
   * The types the statement's Parse declared for its parameters (OIDs, 0 where it left one to the
   * server): the server converts each value to its type at Bind, and a domain's CHECK runs user
   * code on it there, wherever the text then puts it.
   */
  paramTypes?: readonly number[]
}

const LINEAGE_CACHE_SIZE = 1000
/**
 * Texts longer than this are not analysed on the tunnel's event loop (bulk INSERTs, giant IN
 * lists); their results are masked as untraceable, except columns the server reports as coming
 * straight from a known clean column.
 */
export const MAX_ANALYZED_SQL = 256 * 1024
const NOT_SHARED = {notShared: true} as const
const TOO_LARGE: TextLineage = {ok: false, error: 'the statement is too large to analyse'}

/**
 * A text not analysed has its columns masked as untraceable but where the server names a known
 * table's column as their origin. That naming proves the values are the column's own only in a
 * text that can have changed none before reading it: one statement (no \`;\` but at its end, which
 * may mask more, never less) that is a query (`SELECT`, `VALUES`, `TABLE`: a writing CTE's
 * `RETURNING status` is described as the table's column too, and `INSERT … RETURNING`, as is what a
 * child made earlier in the text adds to its parent).
 */
function notAnalysedVouches(sql: string): 'all' | undefined {
  const body = sql.replace(/[\s;]+$/, '')
  return body.includes(';') || !/^\s*(select|values|table)\b/i.test(body) ? 'all' : undefined
}
/** How deep a Parse of `EXECUTE p` or `FETCH c` is followed to what it runs before it counts as untraceable. */
const MAX_USE_DEPTH = 4

/** Command tags of the statements that may commit a transaction inside a pipeline. */
const MAY_COMMIT = /^(COMMIT|CALL|DO)\b/
const mayCommit = (tag: string): boolean => MAY_COMMIT.test(tag)

export function createMaskingFilterFactory(opts: MaskingFilterOptions): MaskingFilterFactory {
  const {catalog, masking} = opts
  const unmasked = opts.identity.groups.some((g) => masking.unmask.includes(g))
  const strategyOf = (c: MaskingCategory): MaskingStrategy => masking.strategies[c] ?? DEFAULT_STRATEGIES[c]
  const masker = createMasker(opts.hashKey ?? randomBytes(32))
  const maskUntraceable = masking.onUntraceable === 'mask'
  /** What every statement filter of this factory starts from, plans kept across them included. */
  const cache = new LRUCache<string, TextLineage>({max: LINEAGE_CACHE_SIZE})
  let cacheGeneration = catalog.generation
  /**
   * Connections that ran code the analysis cannot see into (DO, CALL, user functions, triggers,
   * text-executing built-ins): it may have written anything into the session's settings, so what
   * they read back from them is no longer proven clean. Never cleared while the connection lives.
   */
  const unprovenSettings = new Set<number>()
  /**
   * Per connection, what the statements of its open transaction read (`touches`) and whether they
   * ran code the analysis cannot see into (`opaque`), with the ReadyForQuery that ends the latest
   * of them (`by`): a statement that runs their deferred work (`runsDeferred`: a COMMIT runs the
   * queries of WITH HOLD cursors and deferred constraint triggers) has their messages arrive as its
   * own. Cleared by a ReadyForQuery that reports no transaction open, from `by` on (one of an
   * earlier text in a pipeline does not end theirs).
   */
  const transactionReads = new Map<number, {touches: boolean; opaque: boolean; by: number}>()
  const readsInTransaction = (connectionId: number, session: SessionView | undefined, touches: boolean, opaque: boolean): void => {
    if (!touches && !opaque) return
    const by = (session?.readyAwaited ?? session?.readyCount ?? 0) + 1
    const was = transactionReads.get(connectionId)
    if (was && was.by >= by && (was.touches || !touches) && (was.opaque || !opaque)) return
    transactionReads.set(connectionId, {touches: touches || (was?.touches ?? false), opaque: opaque || (was?.opaque ?? false), by: Math.max(by, was?.by ?? 0)})
  }
  /**
   * Connections that sent a statement which may have changed the catalog (`changesCatalog`: DDL,
   * or code the analysis cannot see into), with the ReadyForQuery count reached before that
   * statement's own (`readyAwaited`). What it created (a function shadowing a built-in's name) is
   * invisible to the catalog's own
   * connection until its transaction commits, and is read only after that, so until then the
   * connection's statements are analysed with names distrusted (`analyzeText`). The connection is
   * settled by its first statement after a ReadyForQuery that reported no transaction open, which
   * waits for a fresh read of the catalog (`ensureFresh`).
   */
  const unsettled = new Map<number, number>()
  /**
   * Unsettled connections whose change may also have moved relation or column names
   * (`StatementLineage.movesNames`), and which: until it settles, their texts read those tables'
   * columns as untraceable but where the server names them (`analyzeText`'s `moved`). Cleared
   * with `unsettled`.
   */
  const namesMoved = new Map<number, MovedNames>()
  const settle = (connectionId: number): boolean => {
    namesMoved.delete(connectionId)
    return unsettled.delete(connectionId)
  }
  const settles = (connectionId: number | undefined, ctx: Partial<Pick<StatementContext, 'session' | 'transactionStatus'>> | undefined): boolean => {
    const since = connectionId === undefined ? undefined : unsettled.get(connectionId)
    if (since === undefined) return false
    // The count and the status of the same ReadyForQuery, the last one: a statement's context keeps
    // the status as of when its judgement began, and a judgement that waited (a lookup, an approval)
    // would pair it with a count that moved on since (statement-guard.ts, `settledSince`).
    const ready = ctx?.session?.readyCount
    return ready !== undefined && ready > since && (ctx?.session?.txStatus ?? ctx?.transactionStatus) === 'I'
  }
  /**
   * Whether the session resolves unqualified relation names as the shared analysis does (public
   * first): its search_path, as the server reported it, is the default, and no schema is named
   * after its user (`"$user"` would come first). A server that does not report search_path
   * (before PostgreSQL 18) proves nothing.
   */
  const defaultPath = (session: SessionView | undefined): boolean => {
    if (session?.parameters.get('search_path') !== DEFAULT_SEARCH_PATH) return false
    const user = session.parameters.get('session_authorization')
    return user !== undefined && !catalog.hasSchema(user)
  }
  /** `l`, or when it names a relation several schemas hold and the session's search_path is not proven default, the text read with any of them meant. */
  const underPath = (sql: string, l: TextLineage, session: SessionView | undefined): TextLineage =>
    l.ok && l.statements.some((st) => st.shadowable) && !defaultPath(session) ? analyzeText(sql, catalog, false, true) : l
  /**
   * Connections running code that may COMMIT a change and go on running (a DO block, a CALL, or a
   * text that could not be analysed), with the ReadyForQuery count that ends it: another
   * connection's statement may run after that commit, before the catalog is read again. A change
   * waiting in an open transaction is seen by no other connection, so it needs no such care.
   */
  const committingInside = new Map<number, {session: SessionView | undefined; since: number}>()
  const inFlightCommit = (): boolean => {
    for (const [id, run] of committingInside) {
      // Without a session view (a filter built by hand) it lasts until the connection closes.
      if (run.session?.readyCount === undefined || run.session.readyCount <= run.since) return true
      committingInside.delete(id)
    }
    return false
  }
  /**
   * The lineage of a text as a connection's statement runs it: with names distrusted while the
   * connection is unsettled, or while any connection of this pipeline runs code that may commit
   * a change inside (`committingInside`).
   */
  /**
   * Whether names are distrusted for a connection's text (`names`), and whether relation and column
   * names are too (`relations`): a DO block or CALL of another connection may COMMIT a rename and
   * go on, so its names are distrusted with the rest.
   */
  const distrustOf = (connectionId: number | undefined): {names: boolean; moved: MovedNames} => {
    const inside = committingInside.size > 0 && inFlightCommit()
    const own = connectionId !== undefined && unsettled.has(connectionId)
    const moved = own ? namesMoved.get(connectionId) : undefined
    return {names: own || inside, moved: inside ? bothMoved(moved, 'all') : moved}
  }
  const distrustedText = (sql: string, connectionId: number | undefined, session: SessionView | undefined): TextLineage | undefined => {
    const distrust = distrustOf(connectionId)
    if (!distrust.names) return undefined
    return sql.length > MAX_ANALYZED_SQL ? TOO_LARGE : analyzeText(sql, catalog, true, !defaultPath(session), distrust.moved)
  }
  const lineageIn = (sql: string, connectionId: number | undefined, session: SessionView | undefined): TextLineage => {
    const distrusted = distrustedText(sql, connectionId, session)
    if (distrusted) return distrusted
    return underPath(sql, lineageOf(sql, readingOf(session?.parameters)), session)
  }
  const base: Base = {masker, catalog, strategyOf, plans: new KeptPlans(), unproven: unprovenSettings}

  /** Lineages shared by texts that differ only in constants, where no constant's value decides them (`watchLiterals`). */
  const shapes = new LRUCache<string, TextLineage | typeof NOT_SHARED>({max: LINEAGE_CACHE_SIZE})

  const lineageOfShape = (sql: string): TextLineage => {
    const shape = sql.length <= MAX_SHAPED_TEXT ? scanShape(sql) : undefined
    if (!shape) return analyzeText(sql, catalog)
    const known = shapes.get(shape.key)
    if (known !== undefined) return 'ok' in known ? known : analyzeText(sql, catalog)
    const {value, shared} = watchLiterals(sql, shape.literals, () => analyzeText(sql, catalog))
    shapes.set(shape.key, shared && value.ok ? value : NOT_SHARED)
    return value
  }

  /**
   * The last answer of `lineageOf`, for the same text under the same reading and catalog: a
   * statement asks three times in a row (`ensureFresh`, `checkMaskable`, its filter), and each
   * execution of a prepared statement asks again with the same text.
   */
  let lastSql: string | undefined
  let lastReading: TextReading | undefined
  let lastLineage: TextLineage | undefined

  /** `reading`: the session's text is read as `readingOf` accepts, so the text may share its shape's lineage. */
  const lineageOf = (sql: string, reading?: TextReading): TextLineage => {
    if (cacheGeneration !== catalog.generation) {
      cache.clear()
      shapes.clear()
      lastSql = lastLineage = undefined
      cacheGeneration = catalog.generation
    }
    if (sql === lastSql && reading === lastReading) return lastLineage!
    const l = lineageFor(sql, reading)
    // Made under the generation checked above: a re-read during the analysis clears it on the next call.
    lastSql = sql
    lastReading = reading
    lastLineage = l
    return l
  }

  const lineageFor = (sql: string, reading: TextReading | undefined): TextLineage => {
    if (sql.length > MAX_ANALYZED_SQL) return TOO_LARGE
    // A text of a shape known to share is answered by the shape, without a text cache entry:
    // every `-M simple` pgbench text is new, and each would only evict another.
    if (reading && sql.length <= MAX_SHAPED_TEXT) {
      const shape = scanShape(sql)
      const known = shape && shapes.get(shape.key)
      if (known && 'ok' in known) return known
    }
    let l = cache.get(sql)
    if (!l) {
      l = reading ? lineageOfShape(sql) : analyzeText(sql, catalog)
      cache.set(sql, l)
    }
    return l
  }

  /**
   * What a prepared statement or cursor runs, read from the text that defined it. Names come from
   * the session as the server acknowledged it: a PREPARE or DECLARE that failed (its name was in
   * use) never replaced the statement the name still runs.
   */
  const lineageOfDefinition = (def: NamedDefinition, session: SessionView | undefined, depth: number, connectionId: number | undefined): StatementLineage | undefined => {
    if (replaceable(def, session)) return replacedDefinition(def)
    // A prepared statement is parsed again under the search_path of each execution, and with the
    // names the session's uncommitted change made (`RevalidateCachedQuery` analyses the statement
    // afresh once what it read changed): read as the text itself would be now (`lineageIn`). A
    // cursor declared while names were distrusted was planned with them too.
    const text = distrustedText(def.sql, connectionId, session) ?? underPath(def.sql, lineageOf(def.sql), session)
    if (!text.ok) return undefined
    const st = text.statements[def.statementIndex]
    if (!st) return undefined
    if (def.definedBy !== 'parse') return st.defines?.lineage
    // A Parse of `EXECUTE p` or `FETCH c` runs whatever that name is when it runs.
    if (!st.uses) return st
    const used = definedInSession(st.uses, session, depth + 1, connectionId)
    return used && throughUse(st, used)
  }

  /**
   * Per session: the ReadyForQuery by which code the analysis cannot see into has run (a DO block,
   * CALL, a user function, a text it could not read). Such code may replace what a name runs
   * through dynamic SQL (`EXECUTE 'DEALLOCATE p'; EXECUTE 'PREPARE p AS SELECT full_name || …'`, or
   * CLOSE and OPEN of a cursor or protocol portal, one namespace), which the session's view, kept
   * from what the client sent and the server acknowledged, never shows.
   */
  const unseenCodeBy = new WeakMap<SessionView, number>()
  const unseenCodeRuns = (session: SessionView | undefined): void => {
    if (!session) return
    // Judged before it is sent: the ReadyForQuery that ends it is the next one owed.
    const by = (session.readyAwaited ?? session.readyCount ?? 0) + 1
    unseenCodeBy.set(session, Math.max(by, unseenCodeBy.get(session) ?? 0))
  }
  /** Whether a definition (or, for a portal, the statement it was bound from) was made before such code ended. */
  const replaceable = (def: NamedDefinition, session: SessionView | undefined): boolean => {
    const by = session && unseenCodeBy.get(session)
    if (by === undefined) return false
    return (def.readyAt ?? 0) < by || (def.statement !== undefined && (def.statement.readyAt ?? 0) < by)
  }

  const definedInSession = (uses: NonNullable<StatementLineage['uses']>, session: SessionView | undefined, depth: number, connectionId: number | undefined): StatementLineage | undefined => {
    if (!session || depth > MAX_USE_DEPTH) return undefined
    const def = uses.kind === 'cursor' ? session.portal(uses.name) : session.statement(uses.name)
    return def && lineageOfDefinition(def, session, depth, connectionId)
  }

  /**
   * Statements with cursors and prepared statements resolved: against names defined earlier in the
   * same text (the server runs a text's statements in order and stops at the first error), then
   * against the session's acknowledged state.
   */
  const resolve = (text: TextLineage, session: SessionView | undefined, connectionId: number | undefined): StatementLineage[] | undefined => {
    if (!text.ok) return undefined
    // Nothing to resolve (the common case): the analysis's own array, which no one modifies.
    let uses = false
    for (const s of text.statements) if (s.uses) uses = true
    if (!uses) return text.statements
    let local: Map<string, StatementLineage> | undefined
    return text.statements.map((s) => {
      if (s.defines) (local ??= new Map()).set(`${s.defines.kind}:${s.defines.name}`, s.defines.lineage)
      if (!s.uses) return s
      const used = local?.get(`${s.uses.kind}:${s.uses.name}`) ?? definedInSession(s.uses, session, 0, connectionId)
      return used ? throughUse(s, used) : s
    })
  }

  /**
   * Statements with what they read back from settings made untraceable where the session's
   * settings are unproven: after unseen code ran on this connection, or earlier in this text, or in
   * the same statement.
   */
  const settingsProof = (statements: StatementLineage[], connectionId: number | undefined): StatementLineage[] => {
    if (!statements.some((s) => s.readsSettings)) return statements
    let unproven = connectionId === undefined || unprovenSettings.has(connectionId)
    return statements.map((s) => {
      if (s.opaque) unproven = true
      return unproven && s.readsSettings ? untraceSettings(s) : s
    })
  }

  /** Whether a statement copies the session's settings into the catalog while they are unproven (see `settingsProof`). */
  const copiesUnprovenSettings = (statements: StatementLineage[], connectionId: number | undefined): boolean => {
    let unproven = connectionId === undefined || unprovenSettings.has(connectionId)
    for (const s of statements) {
      if (s.opaque) unproven = true
      if (unproven && s.copiesSettings) return true
    }
    return false
  }

  /** What running these statements tells the catalog and the session's state, before any of their rows arrive. */
  const running = (statements: StatementLineage[], connectionId: number, session: SessionView | undefined): void => {
    for (const s of statements) {
      const opaque = s.opaque || (s.defines?.lineage.opaque ?? false)
      if (opaque) unprovenSettings.add(connectionId)
      if (opaque) unseenCodeRuns(session)
      readsInTransaction(connectionId, session, s.touchesSensitive || (s.defines?.lineage.touchesSensitive ?? false), opaque)
      if (s.creates) catalog.markDerived(derivedMarks(s.creates))
      for (const f of s.fills ?? []) catalog.markDerived(derivedMarks(f))
      for (const r of s.renames ?? []) catalog.renameDerived(r)
    }
  }

  const checkMaskable = (sql: string, ctx?: Pick<StatementContext, 'session' | 'connectionId'>): MaskabilityVerdict => {
    if (unmasked) return {ok: true}
    const text = lineageIn(sql, ctx?.connectionId, ctx?.session)
    // The filter masks every untraceable column of a text it could not analyse, in either mode.
    if (text === TOO_LARGE) return {ok: true}
    if (!text.ok) return maskUntraceable ? {ok: true} : {ok: false, reason: `dbgate cannot tell which values this statement returns: ${text.error}`}
    for (const s of text.statements) {
      const encoding = copyEncodingRefusal(s.copy)
      if (encoding) return {ok: false, reason: encoding.message, refusal: encoding}
    }
    // Values sent through a side channel can never be masked, whatever onUntraceable says.
    const side = text.statements.find((s) => s.sideChannels.length > 0)
    if (side) return {ok: false, reason: side.sideChannels[0]!}
    const resolved = resolve(text, ctx?.session, ctx?.connectionId)
    const unkept = resolved && unkeptMarks(resolved, catalog, strategyOf)
    if (unkept) return {ok: false, reason: unkept.message, refusal: unkept}
    if (copiesUnprovenSettings(text.statements, ctx?.connectionId)) {
      return {
        ok: false,
        reason:
          "SET … FROM CURRENT would copy a setting that code the analysis cannot see into (a DO block, a function) may have set to any value it read into the catalog (pg_db_role_setting, pg_proc.proconfig), which every session reads back as a definition; give the value as a constant (SET x = 'value')",
      }
    }
    if (maskUntraceable) return {ok: true}
    // Cursors and prepared statements declared earlier in this text, or acknowledged in the session.
    const known = new Map<string, StatementLineage>()
    for (const s of settingsProof(text.statements, ctx?.connectionId)) {
      if (s.defines) known.set(`${s.defines.kind}:${s.defines.name}`, s.defines.lineage)
      const used = s.uses && (known.get(`${s.uses.kind}:${s.uses.name}`) ?? definedInSession(s.uses, ctx?.session, 0, ctx?.connectionId))
      const st = s.uses ? used && throughUse(s, used) : s
      if (!st) return {ok: false, reason: `the ${s.uses!.kind} "${s.uses!.name}" was not declared in this session, so its output cannot be traced`}
      if (st.untraceable.length > 0) return {ok: false, reason: `masking cannot trace this statement's output: ${st.untraceable[0]}`}
      if (st.opaque && st.touchesSensitive) return {ok: false, reason: 'the statement runs code (DO, CALL or a user-defined function) whose output masking cannot trace'}
    }
    return {ok: true}
  }

  const nameRules = () => sensitiveNameRules(catalog)

  const ensureFresh = (sql: string, ctx?: Pick<StatementContext, 'session' | 'connectionId' | 'transactionStatus'>): Promise<void> | undefined => {
    if (unmasked) return undefined
    // Until it settles, a connection's own changes are invisible to the catalog's connection, and a
    // read may wait on locks its open transaction holds (pg_get_viewdef behind its ALTER TABLE)
    // while the transaction waits on this statement: its texts are analysed with names and view
    // definitions distrusted (`lineageIn`) instead, so nothing it would learn is waited for.
    if (ctx && settles(ctx.connectionId, ctx)) {
      // What the connection changed is committed (or rolled back): read it before this statement.
      // Settled only once read: if the read fails, names stay distrusted.
      return catalog.refresh().then(() => {
        settle(ctx.connectionId)
        return ensureFresh(sql, ctx)
      })
    }
    if (ctx && unsettled.has(ctx.connectionId)) return undefined
    const text = lineageOf(sql, readingOf(ctx?.session.parameters))
    if (!text.ok) return undefined
    let misses: NonNullable<StatementLineage['misses']> | undefined
    let views: number[] | undefined
    let layouts: number[] | undefined
    for (const s of text.statements) {
      if (s.misses) (misses ??= []).push(...s.misses)
      if (s.views) (views ??= []).push(...s.views)
      if (s.layouts) (layouts ??= []).push(...s.layouts)
      // And what it defines (PREPARE, DECLARE).
      const d = s.defines?.lineage
      if (d?.misses) (misses ??= []).push(...d.misses)
      if (d?.views) (views ??= []).push(...d.views)
    }
    // A re-read under way (after DDL, or code that may have run DDL) may change what names mean.
    if (!misses && !views && !layouts) return catalog.settling()
    return catalog.ensureFresh({misses: misses ?? [], views: views ?? [], ...(layouts ? {layouts} : {})})
  }

  // Other sessions see the change once it is committed: the catalog is read again where the
  // connection's transaction may have committed, and only there (a read before the commit shows
  // nothing new, may wait up to lock_timeout on the connection's own locks, and every session's
  // statements wait for a read under way). Those places: a statement that commits inside a
  // pipeline (COMMIT, END, COMMIT PREPARED; CALL and DO, whose code may commit), and the
  // ReadyForQuery that reports no transaction open (`ended`; an Execute's event comes before the
  // Sync that commits it).
  const statementDone = (event: Pick<StatementEvent, 'connectionId' | 'commandTags' | 'outcome'>): boolean | undefined =>
    unsettled.has(event.connectionId) ? event.commandTags.some(mayCommit) : undefined
  // The ReadyForQuery that reports the change's transaction over has the catalog read, and the
  // connection is settled once it is: the other connections distrust names until then, even if
  // this one sends nothing more (its own next statement would settle it too, in `ensureFresh`).
  const ended = (connectionId: number, session: SessionView): Promise<void> | undefined => {
    const reads = transactionReads.get(connectionId)
    if (reads && (session.readyCount ?? 0) >= reads.by) transactionReads.delete(connectionId)
    if (!settles(connectionId, {session, transactionStatus: 'I'})) return undefined
    const since = unsettled.get(connectionId)
    return catalog.refresh().then(() => {
      if (unsettled.get(connectionId) === since) settle(connectionId)
    })
  }

  const factory = (sql: string | null, ctx: StatementContext): MaskingFilter | undefined => {
    if (unmasked) return undefined
    // The connection's id, not its context: a session's filter lives as long as the session.
    const connectionId = ctx.connectionId
    if (sql === null) return new SessionFilter({masker, catalog, strategyOf}, nameRules, () => unprovenSettings.has(connectionId))
    // A portal of a statement made by PREPARE, or a cursor: its rows come from the definition as bound.
    const def = ctx.definition
    const analyse = (): StatementLineage[] | undefined => {
      if (def && replaceable(def, ctx.session)) return [replacedDefinition(def)]
      if (def && def.definedBy !== 'parse') {
        const l = lineageOfDefinition(def, ctx.session, 0, connectionId)
        return l && [l]
      }
      return resolve(lineageIn(sql, connectionId, ctx.session), ctx.session, connectionId)
    }
    let statements = analyse()
    let unvouched: ReadonlySet<number> | 'all' | undefined
    if (statements) {
      statements = settingsProof(statements, ctx.connectionId)
      const generation = catalog.generation
      running(statements, ctx.connectionId, ctx.session)
      // What it fills changed the catalog's marks (`UPDATE … SET email = reverse(email)`): the
      // text's later statements read those columns as the marks now say.
      if (catalog.generation !== generation) statements = settingsProof(analyse() ?? statements, ctx.connectionId)
      const since = ctx.session?.readyAwaited ?? ctx.session?.readyCount ?? 0
      if (statements.some((s) => s.changesCatalog)) unsettled.set(connectionId, since)
      for (const s of statements) if (s.movesNames) namesMoved.set(connectionId, bothMoved(namesMoved.get(connectionId), s.movesNames === 'all' ? 'all' : new Set(s.movesNames)))
      if (statements.some((s) => s.commitsInside)) committingInside.set(connectionId, {session: ctx.session, since})
    } else {
      unvouched = notAnalysedVouches(sql)
      // What could not be analysed (a text over MAX_ANALYZED_SQL, one that does not parse) may run
      // anything, DDL included: a DO block that creates a function shadowing a built-in's name. It
      // unsettles the connection as a change the analysis saw does, so the catalog is read again.
      unprovenSettings.add(ctx.connectionId)
      unseenCodeRuns(ctx.session)
      readsInTransaction(connectionId, ctx.session, true, true)
      const since = ctx.session?.readyAwaited ?? ctx.session?.readyCount ?? 0
      unsettled.set(connectionId, since)
      namesMoved.set(connectionId, bothMoved(namesMoved.get(connectionId), 'all'))
      committingInside.set(connectionId, {session: ctx.session, since})
    }
    // A table a child joined in the open transaction (this text included): whatever the lineage of a
    // result says, the server naming its column vouches for nothing (a portal of a statement code
    // may have replaced has no columns the analysis could check).
    const gained = rowsGainedBy(namesMoved.get(connectionId), catalog)
    if (gained.length > 0 && unvouched !== 'all') unvouched = new Set([...(unvouched ?? []), ...gained])
    // What could not be analysed could not have been denied either: it is masked.
    const filter = new StatementFilter(statements, base, maskUntraceable || statements === undefined, sql, connectionId, unvouched)
    // A name a DO block may have prepared again (`EXECUTE 'PREPARE p AS INSERT …'`) runs what its
    // recorded text does not say: its values go wherever that runs.
    if (def && replaceable(def, ctx.session)) filter.paramsUnproven = true
    if (statements?.some((s) => s.runsDeferred)) filter.deferredReads = transactionReads.get(connectionId)
    return filter
  }
  const textMasking: ValueMasking = {masker, catalog, strategyOf}
  const maskText = (text: string) => scanAndMask(text, textMasking) ?? text
  /**
   * Where a text's parameters go, per text and per catalog read, and apart for connections whose
   * names are distrusted: it is asked at every Bind of a prepared statement, with the same text.
   */
  const trustedPlaces = new LRUCache<string, ReadonlyMap<number, ParamPlace> | typeof NOT_SHARED>({max: LINEAGE_CACHE_SIZE})
  const distrustedPlaces = new LRUCache<string, ReadonlyMap<number, ParamPlace> | typeof NOT_SHARED>({max: LINEAGE_CACHE_SIZE})
  let placesGeneration = catalog.generation
  const placesOf = (sql: string, distrust: {names: boolean; moved: MovedNames}): ReadonlyMap<number, ParamPlace> | undefined => {
    if (placesGeneration !== catalog.generation) {
      trustedPlaces.clear()
      distrustedPlaces.clear()
      placesGeneration = catalog.generation
    }
    if (sql.length > MAX_ANALYZED_SQL) return undefined
    // Where names moved, by this connection's own change: not shared with other connections.
    if (distrust.moved) return paramPlaces(sql, catalog, distrust.names, distrust.moved)
    const places = distrust.names ? distrustedPlaces : trustedPlaces
    let known = places.get(sql)
    if (known === undefined) {
      known = paramPlaces(sql, catalog, distrust.names) ?? NOT_SHARED
      places.set(sql, known)
    }
    return known === NOT_SHARED ? undefined : (known as ReadonlyMap<number, ParamPlace>)
  }
  const maskParams = (sql: string, params: readonly (string | null)[], how: ParamsRun = {}): (string | null)[] => {
    const {connectionId, accepted = false, unproven = false, paramTypes} = how
    const where = unproven ? undefined : placesOf(sql, distrustOf(connectionId))
    return params.map((p, i) => {
      if (p === null) return null
      const declared = paramTypes?.[i]
      // A declared type whose input runs user code (a domain's CHECK) had the value before any place did.
      const place = declared !== undefined && declared !== 0 && catalog.inputRunsCode(declared) ? 'masked' : where?.get(i + 1)
      return recordedParam(p, place === 'clean' && !accepted ? 'masked' : place, maskText, masker, strategyOf)
    })
  }
  const maskParamEchoes = (sql: string, message: string): string => {
    // A bound value is not in the text: only what the text or the catalog holds is proven.
    const proof = sql.length > MAX_ANALYZED_SQL ? {has: () => false} : messageProof(sql, catalog)
    const echoing: StatementLineage = {rows: 'no', touchesSensitive: true, opaque: false, untraceable: [], sideChannels: []}
    return maskNotice({message}, echoing, textMasking, proof)?.message ?? message
  }
  return Object.assign(factory, {
    checkMaskable,
    ensureFresh,
    statementDone,
    ended,
    loggedIn: (id: number): void => {
      if (!unmasked && catalog.firesAtLogin()) unprovenSettings.add(id)
    },
    forgetConnection: (id: number): boolean => {
      unprovenSettings.delete(id)
      transactionReads.delete(id)
      const pending = settle(id)
      return committingInside.delete(id) || pending
    },
    unmasked,
    maskText,
    maskParams,
    maskParamEchoes,
  })
}

/** A row count as the server read it: a decimal integer, or a binary int2, int4 or int8. */
const DECIMAL_COUNT = /^\s*[+-]?\d+\s*$/
function countText(value: string): string | undefined {
  if (DECIMAL_COUNT.test(value)) return value
  if (!value.startsWith('b64:')) return undefined
  const b = Buffer.from(value.slice(4), 'base64')
  if (b.length === 8) return String(b.readBigInt64BE())
  if (b.length === 4) return String(b.readInt32BE())
  if (b.length === 2) return String(b.readInt16BE())
  return undefined
}

/**
 * One parameter as recorded, by where it goes (`paramPlaces`): without proof of clean origin it is
 * never kept in clear. A clean place still goes through the scanner, as any recorded text does.
 */
function recordedParam(value: string, place: ParamPlace | undefined, maskText: (text: string) => string, masker: Masker, strategyOf: (c: MaskingCategory) => MaskingStrategy): string {
  if (place === 'clean') return value.startsWith('b64:') ? scannedBinary(value, maskText) : maskText(value)
  if (place === 'count') {
    // A number is no proof: a card number is a count the server takes (`limit 4111111111111111`).
    const count = countText(value)
    return count === undefined ? redacted('untraceable') : maskText(count)
  }
  if (place === undefined || place === 'masked') return redacted('untraceable')
  // A binary value is not text a strategy can keep part of.
  if (value.startsWith('b64:')) return redacted(place.category)
  return masker.text(value, place.category, strategyOf(place.category)) ?? redacted(place.category)
}

/**
 * A value sent in binary format (`b64:…`), kept in clear: the scanner reads text, and base64 hides
 * it, though a text type's binary form is its UTF-8 bytes (`4111 1111 1111 1111` bound in binary into
 * `status`). Kept only when the scanner finds nothing in those bytes read as text.
 */
function scannedBinary(value: string, maskText: (text: string) => string): string {
  const text = Buffer.from(value.slice(4), 'base64').toString('utf8')
  return maskText(text) === text ? maskText(value) : redacted('untraceable')
}

/** What a definition that code the analysis cannot see into may have replaced runs: anything (see `replaceable`). */
function replacedDefinition(def: NamedDefinition): StatementLineage {
  const what = def.definedBy === 'declare' ? `cursor "${def.name}"` : def.definedBy === 'prepare' ? `prepared statement "${def.name}"` : def.name === '' ? 'unnamed statement or portal' : `statement or portal "${def.name}"`
  return {
    rows: 'maybe',
    touchesSensitive: true,
    untraceable: [`the ${what} was defined before code the analysis cannot see into (a DO block, CALL or user function) ran in this session, and such code may have replaced it through dynamic SQL; define it again to have its output traced`],
    // It may now run any code, whose plan (EXPLAIN EXECUTE) and messages are that code's.
    opaque: true,
    sideChannels: [],
  }
}

function untraceSettings(s: StatementLineage): StatementLineage {
  return {
    ...s,
    // Settings another session's code wrote, or this session's unseen code: as if read from a sensitive relation.
    touchesSensitive: true,
    ...(s.columns ? {columns: s.columns.map(settingsUntraceable)} : {}),
    ...(s.copy?.columns ? {copy: {...s.copy, columns: s.copy.columns.map(settingsUntraceable)}} : {}),
    untraceable: [...s.untraceable, 'it reads settings which code the analysis cannot see into may have written'],
  }
}

/** How the columns of a relation created from a query are to be classified, from that query's lineage. */
function derivedMarks(creates: NonNullable<StatementLineage['creates']>): DerivedMarks {
  const {name, columns} = creates
  // `pg_temp` is the session's temporary schema by another name (the catalog knows it as
  // pg_temp_<n>): the marks go to the relation of that name in whichever schema holds it.
  const schema = creates.schema === 'pg_temp' ? undefined : creates.schema
  if (!columns) return {schema, name, columns: 'all'}
  const marks = new Map<string, SensitiveMark>()
  for (const c of columns) {
    const mark = markOf(c)
    if (mark) marks.set(c.name, mark)
  }
  return {schema, name, columns: marks}
}


/** A filter's scanner hits so far: none for most statements, so the list is made with the first. */
const NO_HITS: readonly ScannerHit[] = Object.freeze([])
/** A filter's masked columns while it has none (most statements). */
const NO_MASKED_COLUMNS: readonly MaskedColumn[] = Object.freeze([])

class Hits {
  list: ScannerHit[] | undefined
  add(f: Finding): void {
    const list = (this.list ??= [])
    const hit = list.find((h) => h.detector === f.detector)
    if (hit) hit.count++
    else list.push({category: f.category, detector: f.detector, count: 1})
  }
}

/**
 * A filter's `ValueMasking`, and its count of replaced values. Its callbacks are methods of this
 * one class, never closures made per filter, and they touch nothing but this object: COPY's line
 * code inlines them, and optimized code that inlines a statement's own closure, or checks the map
 * of a statement's own objects, is deoptimized by the next statement, or by a mark-compact once
 * that statement is gone (V8 drops a map with its last object). After a load that makes
 * mark-compacts frequent (pgbench), every large COPY recompiled its line code and ran its first
 * rows unoptimized meanwhile (docs/performance-history.md, "Sixth round").
 */
class FilterMasking implements ValueMasking {
  /** Values replaced, for the recording (`MaskingFilter.maskedValues`). */
  maskedValues = 0

  constructor(
    readonly masker: ValueMasking['masker'],
    readonly catalog: Catalog,
    readonly strategyOf: (c: MaskingCategory) => MaskingStrategy,
    private readonly hits: Hits,
  ) {}

  onFinding(f: Finding): void {
    this.hits.add(f)
  }

  onMasked(): void {
    this.maskedValues++
  }
}

/** Keeps `FilterMasking`'s map for the process (see `KEPT_SHAPES` in copy.ts); exported so that it is kept. */
export const KEPT_MASKING = new FilterMasking(undefined as never, undefined as never, () => 'redact', new Hits())

const NO_BYTE_MASKS: (ByteMask | undefined)[] = []

/** The row scratch filters start with (see `StatementFilter.starts`); a filter that needs more grows its own. */
const SHARED_SCRATCH = {starts: new Int32Array(16), lengths: new Int32Array(16), outcome: new Uint8Array(16), cuts: new Int32Array(48)}

interface Base {
  masker: ValueMasking['masker']
  catalog: Catalog
  strategyOf(c: MaskingCategory): MaskingStrategy
  /** Plans kept across the filters of one factory (`KeptPlans`). */
  plans?: KeptPlans
  /** The factory's connections whose settings are unproven (see `unprovenSettings` in the factory). */
  unproven?: ReadonlySet<number>
}

/** What a plan was made from, besides its statement's lineage (the key of `KeptPlans`). */
interface KeptPlan {
  generation: number
  result: number
  width: number
  maskUntraceable: boolean
  /** The description's members `planResult` reads, copied (undefined: rows without a description). */
  fields: Pick<FieldDescription, 'name' | 'tableOid' | 'columnAttr' | 'typeOid' | 'format'>[] | undefined
  plan: ResultPlan
}

/**
 * The last plan made for each statement lineage: a prepared statement's executions (each its own
 * filter, each result described anew) get the same plan for the same description, lineage and
 * catalog. A plan is reused only when every input of `planResult` is the same: the lineage object
 * (analyses are immutable; a re-analysis is another object), the result's index and width, the
 * description's members it reads, the catalog's generation (bumped by every re-read and derived
 * mark) and the untraceable mode. A plan that asked the catalog for a re-read is not kept, so each
 * result naming an unknown table still asks.
 */
class KeptPlans {
  private readonly byLineage = new WeakMap<StatementLineage, KeptPlan>()

  get(lineage: StatementLineage, fields: FieldDescription[] | undefined, width: number, result: number, generation: number, maskUntraceable: boolean): ResultPlan | undefined {
    const k = this.byLineage.get(lineage)
    if (!k || k.generation !== generation || k.result !== result || k.width !== width || k.maskUntraceable !== maskUntraceable) return undefined
    const a = k.fields
    if (a === undefined || fields === undefined) return a === fields ? k.plan : undefined
    if (a.length !== fields.length) return undefined
    for (let i = 0; i < a.length; i++) {
      const x = a[i]!
      const y = fields[i]!
      if (x.name !== y.name || x.tableOid !== y.tableOid || x.columnAttr !== y.columnAttr || x.typeOid !== y.typeOid || x.format !== y.format) return undefined
    }
    return k.plan
  }

  set(lineage: StatementLineage, fields: FieldDescription[] | undefined, width: number, result: number, generation: number, maskUntraceable: boolean, plan: ResultPlan): void {
    if (plan.notedUnknown) return
    const copied = fields?.map((f) => ({name: f.name, tableOid: f.tableOid, columnAttr: f.columnAttr, typeOid: f.typeOid, format: f.format}))
    this.byLineage.set(lineage, {generation, result, width, maskUntraceable, fields: copied, plan})
  }
}

class StatementFilter implements MaskingFilter, MessageRewriter {
  /** Made with the first masked column (most statements have none): read as `maskedColumns`. */
  private masked: MaskedColumn[] | undefined
  private hits: Hits | undefined
  /** Made on first need (a value to mask or scan, a COPY): a statement of clean columns never needs it. */
  private filterMasking: FilterMasking | undefined
  private readonly base: Base
  private readonly keptPlans: KeptPlans | undefined
  /**
   * The plans of descriptions before the last (`lastFields`, `lastPlan`): made with the second
   * description, which most statements never get.
   */
  private plans: WeakMap<FieldDescription[], ResultPlan> | undefined
  private results = 0
  private copyPlan: CopyPlan | undefined
  private copyRows = 0
  private proof: MessageProof | undefined
  clientError: {code: string; message: string} | undefined
  paramsUnproven: boolean | undefined
  /** Of a statement that runs its transaction's deferred work: what that transaction's statements read (`transactionReads`). */
  deferredReads: {touches: boolean; opaque: boolean} | undefined

  constructor(
    /** Undefined when the text could not be parsed: every result is then untraceable. */
    private readonly statements: StatementLineage[] | undefined,
    base: Base,
    private readonly maskUntraceable: boolean,
    /** The statement's text: what proves a value quoted in a message clean is built from it on the first message, which most statements never get. */
    private readonly sql: string,
    private readonly connectionId: number,
    /** Tables the server's naming of a column does not vouch for (`all`: none, for a text not analysed, `notAnalysedVouches`). */
    private readonly unvouched?: ReadonlySet<number> | 'all',
  ) {
    this.base = base
    this.keptPlans = base.plans
    this.unproven = base.unproven
  }

  private get m(): FilterMasking {
    return (this.filterMasking ??= new FilterMasking(this.base.masker, this.base.catalog, this.base.strategyOf, (this.hits ??= new Hits())))
  }

  get maskedColumns(): MaskedColumn[] {
    return (this.masked ?? NO_MASKED_COLUMNS) as MaskedColumn[]
  }

  private noteMasked(columns: readonly MaskedColumn[]): void {
    if (columns.length > 0) (this.masked ??= []).push(...columns)
  }

  private readonly unproven: ReadonlySet<number> | undefined

  /** Whether code the analysis cannot see into ran on this connection (read when a setting is reported, never cached). */
  private settingsUnproven(): boolean {
    return this.unproven?.has(this.connectionId) ?? true
  }

  get maskedValues(): number {
    return this.filterMasking?.maskedValues ?? 0
  }

  get scannerHits(): ScannerHit[] {
    return (this.hits?.list ?? NO_HITS) as ScannerHit[]
  }

  /** The statement whose rows the `index`-th RowDescription describes. */
  private statementFor(index: number, width: number): StatementLineage | undefined {
    const s = this.statements
    if (!s) return undefined
    // The common case (the index-th statement that may return rows, of this width) without arrays.
    let k = 0
    let firstMaybe = -1
    let at: StatementLineage | undefined
    for (const x of s) {
      if (x.rows === 'no') continue
      if (x.rows === 'maybe' && firstMaybe === -1) firstMaybe = k
      if (k === index) at = x
      k++
    }
    if ((firstMaybe === -1 || firstMaybe >= index) && at && (!at.columns || at.columns.length === width)) return at
    const candidates = s.filter((x) => x.rows !== 'no')
    const certain = candidates.findIndex((x) => x.rows === 'maybe') === -1 || candidates.findIndex((x) => x.rows === 'maybe') >= index
    const exact = candidates[index]
    if (certain && exact && (!exact.columns || exact.columns.length === width)) return exact
    // Which statement answered is ambiguous (EXECUTE, CALL may or may not return rows): take every
    // candidate of the same width, so a column is masked if it is sensitive in any of them.
    const same = candidates.filter((c) => c.columns?.length === width)
    if (same.length === 0) {
      // No analysis of this shape: the server's description decides (plan.ts), but not for a table
      // that may have gained a child's rows (`ALTER TABLE orders ADD COLUMN x` after one was made).
      const unvouched = candidates.flatMap((x) => x.unvouched ?? [])
      return unvouched.length === 0 ? undefined : {rows: 'yes', touchesSensitive: true, opaque: candidates.some((x) => x.opaque), untraceable: ['the result has another shape than the analysis read'], sideChannels: [], unvouched}
    }
    const columns = same[0]!.columns!.map((c, i) => {
      const all = same.map((x) => x.columns![i]!)
      return {...c, sources: all.flatMap(flatten), unknown: all.some((x) => x.unknown), fields: all.find((x) => x.fields)?.fields}
    })
    const unvouched = same.flatMap((x) => x.unvouched ?? [])
    return {rows: 'yes', columns, touchesSensitive: same.some((x) => x.touchesSensitive), opaque: same.some((x) => x.opaque), untraceable: same.flatMap((x) => x.untraceable), sideChannels: [], ...(unvouched.length > 0 ? {unvouched} : {})}
  }

  private plan(fields: FieldDescription[] | undefined, width: number): ResultPlan {
    // Row after row of one result: the plan of the last description, without a WeakMap lookup.
    if (fields !== undefined && fields === this.lastFields) return this.lastPlan!
    const cached = fields && this.plans?.get(fields)
    if (cached) {
      this.keepLast(fields!, cached)
      return cached
    }
    // Rows without a description: one plan per result and width, not one per row (each would
    // record its masked columns again, a million times for a million rows).
    const u = this.undescribed
    if (!fields && u && u.width === width && u.results === this.results && u.generation === this.base.catalog.generation) return u.plan
    const index = fields ? this.results++ : Math.max(0, this.results - 1)
    const plan = this.keptOrNewPlan(fields, width, index)
    this.noteMasked(plan.masked)
    if (fields) {
      this.keepLast(fields, plan)
    } else {
      this.undescribed = {width, results: this.results, generation: this.base.catalog.generation, plan}
    }
    return plan
  }

  private undescribed: {width: number; results: number; generation: number; plan: ResultPlan} | undefined

  private keptOrNewPlan(fields: FieldDescription[] | undefined, width: number, index: number): ResultPlan {
    const lineage = this.statementFor(index, width)
    const kept = this.keptPlans
    const generation = this.base.catalog.generation
    // Plans kept across statements are of lineage alone: not for a connection whose tables gained rows.
    const plan = lineage && !this.unvouched && kept?.get(lineage, fields, width, index, generation, this.maskUntraceable)
    if (plan) return plan
    const made = planResult(fields, width, lineage, index, {catalog: this.base.catalog, maskUntraceable: this.maskUntraceable, strategyOf: this.base.strategyOf, unvouched: this.unvouched})
    if (lineage && kept && !this.unvouched) kept.set(lineage, fields, width, index, generation, this.maskUntraceable, made)
    return made
  }

  private lastFields: FieldDescription[] | undefined
  private lastPlan: ResultPlan | undefined

  /** Makes `plan` the last one; the one before goes into `plans`, so that every description keeps its plan. */
  private keepLast(fields: FieldDescription[], plan: ResultPlan): void {
    const before = this.lastFields
    if (before !== undefined && before !== fields) (this.plans ??= new WeakMap()).set(before, this.lastPlan!)
    this.lastFields = fields
    this.lastPlan = plan
  }

  rowDescription(fields: FieldDescription[]): undefined {
    this.plan(fields, fields.length)
    return undefined
  }

  dataRow(values: (Buffer | null)[], fields: FieldDescription[] | undefined): (Buffer | null)[] | undefined {
    try {
      return this.maskRow(values, fields)
    } catch (error) {
      return this.failedRow(error, values.length, values.filter((v) => v !== null).length)
    }
  }

  /** A bug here must neither leak the row nor end the session: the row goes out empty. */
  private failedRow(error: unknown, width: number, nonNull: number): null[] {
    this.noteMasked([{result: this.results, column: -1, name: '*', category: 'untraceable', strategy: 'null', how: 'untraceable', reasons: [`masking failed: ${(error as Error).message}`]}])
    this.m.maskedValues += nonNull
    return new Array<null>(width).fill(null)
  }

  private maskRow(values: (Buffer | null)[], fields: FieldDescription[] | undefined): (Buffer | null)[] | undefined {
    const plan = this.plan(fields, values.length)
    let out: (Buffer | null)[] | undefined
    for (const w of plan.work) {
      const v = values[w.index]
      if (v === null || v === undefined) continue
      const masked = this.maskValue(v, w)
      if (masked === undefined) continue
      this.m.maskedValues++
      out ??= values.slice()
      out[w.index] = masked
    }
    return out
  }

  /**
   * `dataRow` on the message's bytes: columns without work, and values the prefilter finds clean,
   * are copied through as they are; values a byte mask covers are rewritten without decoding; the
   * rest go through `maskValue` as in `dataRow`. A row it cannot read the usual way (truncated,
   * a bad length) takes `dataRow`'s path, which fails it the same way.
   */
  dataRowMessage(body: Buffer, fields: FieldDescription[] | undefined, from = 0, end = body.length): Buffer | undefined {
    return rewritten(this.rowBytes(body, fields, from, end))
  }

  dataRowMessages(source: Buffer, fields: FieldDescription[] | undefined, start: number, maxBody: number, out: MessageSink): number {
    this.batchFields = fields
    this.batchCopy = false
    return rewriteMessages(0x44, source, start, maxBody, out, this)
  }

  /** What `rewrite` does for the batch under way: its rows' description, or COPY's lines. */
  private batchFields: FieldDescription[] | undefined
  private batchCopy = false

  /** `MessageRewriter`: one message of the batch under way (`dataRowMessages`, `copyDataMessages`). */
  rewrite(b: Buffer, from: number, end: number): number {
    return this.batchCopy ? maskCopyInto(b, this.copyPlan!, this.copyRows++ === 0, this.m, from, end) : this.rowBytes(b, this.batchFields, from, end)
  }

  /** `dataRowMessage`, its result as `rewriteMessages` takes it. */
  private rowBytes(body: Buffer, fields: FieldDescription[] | undefined, from: number, end: number): number {
    const n = end >= from + 2 ? body.readInt16BE(from) : -1
    if (n < 0) return this.viaValues(body.subarray(from, end), fields)
    if (this.starts.length < n) {
      this.starts = new Int32Array(n)
      this.lengths = new Int32Array(n)
    }
    const {starts, lengths} = this
    let at = from + 2
    for (let i = 0; i < n; i++) {
      if (at + 4 > end) return this.viaValues(body.subarray(from, end), fields)
      const len = (body[at]! << 24) | (body[at + 1]! << 16) | (body[at + 2]! << 8) | body[at + 3]!
      at += 4
      if (len < -1 || at + Math.max(len, 0) > end) return this.viaValues(body.subarray(from, end), fields)
      starts[i] = at
      lengths[i] = len
      if (len > 0) at += len
    }
    const used = at
    try {
      return this.maskRowBytes(body, from, n, used, fields)
    } catch (error) {
      let nonNull = 0
      for (let i = 0; i < n; i++) if (lengths[i]! >= 0) nonNull++
      written.other = encodeDataRow(this.failedRow(error, n, nonNull))
      return OTHER
    }
  }

  private viaValues(body: Buffer, fields: FieldDescription[] | undefined): number {
    const out = this.dataRow(decodeDataRow(body), fields)
    if (!out) return UNCHANGED
    written.other = encodeDataRow(out)
    return OTHER
  }

  // Shared by every filter until a row needs more (a filter is made per statement, most see one
  // row): a row's offsets and outcomes are written and read within one synchronous call.
  private starts = SHARED_SCRATCH.starts
  private lengths = SHARED_SCRATCH.lengths
  /** Per work item of the current row: 0 kept, 1 NULL, 2 `replaced[j]`, 3 the e-mail cut at `cuts[3j…]`. */
  private outcome = SHARED_SCRATCH.outcome
  private replaced: (Buffer | undefined)[] | undefined
  private cuts = SHARED_SCRATCH.cuts
  private bytePlan: ResultPlan | undefined
  private byteMasks: (ByteMask | undefined)[] = NO_BYTE_MASKS

  private byteMasksOf(plan: ResultPlan): (ByteMask | undefined)[] {
    return this.bytePlan === plan ? this.byteMasks : this.newByteMasks(plan)
  }

  /**
   * `byteMasksOf` for a plan not met before. A method of its own: its arrow function captures
   * `this`, which gives the method a context allocated on every call, before any early return;
   * once per plan here, in `byteMasksOf` it was an object per row for the collector.
   */
  private newByteMasks(plan: ResultPlan): (ByteMask | undefined)[] {
    this.bytePlan = plan
    // A plan without work (every column proven clean) has no masks to make.
    if (plan.work.length === 0) return (this.byteMasks = NO_BYTE_MASKS)
    this.byteMasks = plan.work.map((w) =>
      // `maskTyped` gives a string type's value `Masker.text` of it; the text format is the value's UTF-8.
      w.format === 0 && w.mask?.kind === 'value' && typeOf(w.typeOid, this.base.catalog).category === 'S' ? byteMaskOf(w.mask.category, w.mask.strategy, this.base.masker) : undefined,
    )
    const k = plan.work.length
    if (this.outcome.length < k) {
      this.outcome = new Uint8Array(k)
      this.cuts = new Int32Array(3 * k)
    }
    return this.byteMasks
  }

  /** Writes the rewritten row into `arena` from `written.start`; returns its end, or UNCHANGED. */
  private maskRowBytes(body: Buffer, base: number, n: number, used: number, fields: FieldDescription[] | undefined): number {
    const plan = this.plan(fields, n)
    const work = plan.work
    // Every column proven clean: the row goes through as it came (its lengths were checked in `rowBytes`).
    if (work.length === 0) return UNCHANGED
    const masks = this.byteMasksOf(plan)
    const {starts, lengths, outcome, cuts} = this
    const replaced = (this.replaced ??= [])
    let size = used - base
    let changed = false
    for (let j = 0; j < work.length; j++) {
      const w = work[j]!
      outcome[j] = 0
      // A row shorter than its description: what it lacks is not masked, as in `maskRow`.
      if (w.index >= n) continue
      const start = starts[w.index]!
      const len = lengths[w.index]!
      if (len === -1) continue
      const bm = masks[j]
      if (bm) {
        if (bm.kind === 'null') {
          outcome[j] = 1
          size -= len
        } else if (bm.kind === 'constant') {
          outcome[j] = 2
          replaced[j] = bm.bytes
          size += bm.bytes.length - len
        } else {
          const cutSize = emailCut(body, start, start + len, cuts, 3 * j)
          if (cutSize > 0) {
            outcome[j] = 3
            size += cutSize - len
          } else if (cutSize === 0) {
            outcome[j] = 2
            replaced[j] = bm.fallback
            size += bm.fallback.length - len
          }
        }
      }
      if (outcome[j] === 0) {
        if (!w.mask && bufferNeeds(body, start, start + len) === 0) continue
        const masked = this.maskValue(body.subarray(start, start + len), w)
        if (masked === undefined) continue
        if (masked === null) {
          outcome[j] = 1
          size -= len
        } else {
          outcome[j] = 2
          replaced[j] = masked
          size += masked.length - len
        }
      }
      changed = true
      this.m.maskedValues++
    }
    if (!changed) return UNCHANGED
    const at0 = reserve(1 + 4 + size)
    const out = arena
    out[at0] = 0x44
    putInt32(out, at0 + 1, 4 + size)
    let at = at0 + 5
    let from = base
    for (let j = 0; j < work.length; j++) {
      const o = outcome[j]!
      if (o === 0) continue
      const start = starts[work[j]!.index]!
      at = put(out, at, body, from, start - 4)
      from = start + lengths[work[j]!.index]!
      if (o === 1) {
        at = putInt32(out, at, -1)
        continue
      }
      const lenAt = at
      at += 4
      if (o === 2) {
        const r = replaced[j]!
        replaced[j] = undefined
        at = put(out, at, r, 0, r.length)
      } else {
        at = writeEmail(body, cuts, 3 * j, out, at)
      }
      putInt32(out, lenAt, at - lenAt - 4)
    }
    at = put(out, at, body, from, used)
    written.start = at0
    return at
  }

  private maskValue(v: Buffer, w: ResultPlan['work'][number]): Buffer | null | undefined {
    // Which detectors could match, from the bytes: most values need no decoding at all.
    const needs = w.mask ? undefined : bufferNeeds(v)
    if (needs === 0) return undefined
    if (w.format === 1 && !isBinaryText(w.typeOid, this.m.catalog)) {
      if (w.mask) return w.mask.kind === 'document' ? null : maskBinaryValue(v, w.typeOid, w.mask.category, w.mask.strategy)
      // Binary arrays and records carry their text among length words: rewriting a value in
      // place would break the encoding, so a value the scanner objects to is dropped whole.
      return scanText(v.toString('utf8'), needs).length > 0 ? null : undefined
    }
    if (w.format === -1) {
      // Without a RowDescription the encoding is unknown: NULL is valid in both.
      if (w.mask) return null
      // Bytes that are not text may be a binary record or array holding text among length words:
      // dropped whole when the scanner objects to them, as a binary value is above.
      if (!printableUtf8(v)) return scanText(v.toString('utf8'), needs).length > 0 ? null : undefined
    }
    const inner = w.format === 1 ? binaryText(v, w.typeOid) : {text: v.toString('utf8'), wrap: (t: string) => Buffer.from(t, 'utf8')}
    if (!inner) return w.mask ? null : undefined
    let text: string | null | undefined
    if (w.mask?.kind === 'value') text = maskTyped(inner.text, w.typeOid, w.mask.category, this.m, w.mask.strategy)
    else if (w.mask?.kind === 'document') text = maskComposite(inner.text, w.typeOid, w.mask.rules, this.m)
    // The bytes' needs hold for their text only when the text is all of the bytes.
    else text = scanAndMask(inner.text, this.m, w.format === 1 ? undefined : needs)
    if (text === undefined) return undefined
    return text === null ? null : inner.wrap(text)
  }

  copyData(chunk: Buffer): Buffer | undefined {
    return this.copyDataMessage(chunk)?.subarray(5)
  }

  copyDataMessage(chunk: Buffer, from = 0, end = chunk.length): Buffer | undefined {
    const first = this.copyRows++ === 0
    this.copyPlan ??= this.planCopy()
    return maskCopyMessage(chunk, this.copyPlan, first, this.m, from, end)
  }

  copyDataMessages(source: Buffer, start: number, maxBody: number, out: MessageSink): number {
    this.copyPlan ??= this.planCopy()
    this.batchCopy = true
    return rewriteMessages(0x64, source, start, maxBody, out, this)
  }

  private planCopy(): CopyPlan {
    const copies = (this.statements ?? []).filter((s) => s.copy)
    const shape = copies[0]?.copy ?? {format: 'text' as const, delimiter: '\t', quote: '"', escape: '"', nullString: '\\N', header: false}
    // Several COPYs in one text, or one whose columns are unknown: every field is masked.
    if (copies.length !== 1 || !shape.columns) {
      this.noteMasked([{result: 0, column: -1, name: '*', category: 'untraceable', strategy: this.base.strategyOf('untraceable'), how: 'copy', reasons: ['the columns of this COPY could not be traced']}])
      return {shape, categories: 'all'}
    }
    const categories = shape.columns.map((c, i): CopyMask | undefined => {
      const sources = flatten(c)
      const src = sources[0]
      if (c.fields && src) {
        this.noteMasked([{result: 0, column: i, name: c.name, category: 'document', strategy: 'per-field', how: 'copy', reasons: sources.map((s) => `${s.relation}.${s.column}: ${s.reason}`)}])
        return {rules: fieldRules(c.fields, this.maskUntraceable)}
      }
      if (src) {
        const exact = c.direct && sources.every((x) => x.category === src.category)
        const strategy = strategyFor(src.category, exact, this.m)
        this.noteMasked([{result: 0, column: i, name: c.name, category: src.category, strategy, how: 'copy', reasons: sources.map((s) => `${s.relation}.${s.column}: ${s.reason}`)}])
        return {category: src.category, strategy}
      }
      if (c.unknown && this.maskUntraceable && copies[0]!.touchesSensitive) return {category: 'untraceable' as const, strategy: 'redact' as const}
      return undefined
    })
    return {shape, categories}
  }

  notice(fields: PgNoticeFields & NoticeLike): (PgNoticeFields & NoticeLike) | undefined {
    this.proof ??= messageProof(this.sql, this.m.catalog)
    return maskNotice(fields, this.statementLineage(), this.m, this.proof) as (PgNoticeFields & NoticeLike) | undefined
  }

  parameterStatus(name: string, value: string): string | undefined {
    return reportedSetting(name, value, this.settingsUnproven())
  }

  error(fields: PgNoticeFields & NoticeLike): (PgNoticeFields & NoticeLike) | undefined {
    const out = this.notice(fields)
    const sent = out ?? fields
    this.clientError = {code: sent.code, message: sent.message}
    return out
  }

  /** For messages: the statements merged, since a message does not say which statement raised it. */
  private statementLineage(): StatementLineage | undefined {
    const s = this.statements
    if (!s) return undefined
    // A COMMIT's messages are those of the work it runs for the transaction's earlier statements.
    const d = this.deferredReads
    return {rows: 'no', touchesSensitive: s.some((x) => x.touchesSensitive) || (d?.touches ?? false), opaque: s.some((x) => x.opaque) || (d?.opaque ?? false), untraceable: [], sideChannels: []}
  }
}

/**
 * Keeps `StatementFilter`'s map for the process: the batch rewriters' closures read the filter for
 * every row (see `KEPT_MASKING`); exported so that it is kept.
 */
export const KEPT_FILTER = new StatementFilter(undefined, {masker: undefined as never, catalog: undefined as never, strategyOf: () => 'redact'}, false, '', 0)

/**
 * Reported settings whose values come from a fixed vocabulary the server checks (encodings, styles,
 * booleans, its version, an existing role). Every other one may carry free text or digits a value
 * lent it: application_name, search_path, TimeZone (a POSIX zone such as 'ALICENOVAK5'),
 * scram_iterations, and any an extension reports.
 */
const VOCABULARY_SETTINGS = new Set(['client_encoding', 'datestyle', 'default_transaction_read_only', 'in_hot_standby', 'integer_datetimes', 'intervalstyle', 'is_superuser', 'server_encoding', 'server_version', 'session_authorization', 'standard_conforming_strings'])

/** search_path's default as PostgreSQL 18 reports it in ParameterStatus. */
const DEFAULT_SEARCH_PATH = '"$user", public'

/**
 * A ParameterStatus value as the client may see it: a setting not of a fixed vocabulary, changed
 * while the session's settings are unproven (code the analysis cannot see into ran), may hold any
 * value that code read. What the analysis saw written is clean: `set_config` with untraced values
 * is refused before it runs.
 */
function reportedSetting(name: string, value: string, unproven: boolean): string | undefined {
  return unproven && !VOCABULARY_SETTINGS.has(name.toLowerCase()) && value !== '' ? '[masked]' : undefined
}

function printableUtf8(b: Buffer): boolean {
  for (const c of b) if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) return false
  return true
}

/** What arrives outside any statement: notifications, asynchronous notices. */
class SessionFilter implements MaskingFilter {
  readonly maskedColumns: MaskedColumn[] = []
  readonly maskedValues = 0
  private readonly hits = new Hits()
  private readonly m: ValueMasking

  constructor(
    base: Base,
    private readonly rules: () => ReturnType<typeof sensitiveNameRules>,
    private readonly settingsUnproven: () => boolean,
  ) {
    this.m = new FilterMasking(base.masker, base.catalog, base.strategyOf, this.hits)
  }

  get scannerHits(): ScannerHit[] {
    return (this.hits.list ?? NO_HITS) as ScannerHit[]
  }

  dataRow(values: (Buffer | null)[]): (Buffer | null)[] | undefined {
    // A DataRow outside any statement has no description to go by: nothing of it passes.
    return values.some((v) => v !== null) ? values.map(() => null) : undefined
  }

  notice(fields: PgNoticeFields & NoticeLike): (PgNoticeFields & NoticeLike) | undefined {
    return maskNotice(fields, undefined, this.m) as (PgNoticeFields & NoticeLike) | undefined
  }

  error(fields: PgNoticeFields & NoticeLike): (PgNoticeFields & NoticeLike) | undefined {
    return this.notice(fields)
  }

  notification(_channel: string, payload: string): string | undefined {
    // This session ran code the analysis cannot see into: its own payloads may hold anything it read.
    if (this.settingsUnproven()) {
      const masked = maskUntracedNotification(payload, this.m)
      return masked === payload ? undefined : masked
    }
    return maskNotification(payload, this.rules(), this.m)
  }

  parameterStatus(name: string, value: string): string | undefined {
    return reportedSetting(name, value, this.settingsUnproven())
  }
}
