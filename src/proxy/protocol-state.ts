/**
 * The server's session state as the tunnel must believe it: prepared statements, portals and
 * cursors, the replies still owed, and the skip-till-Sync after an error. It mirrors PostgreSQL's
 * own state machine (src/backend/tcop/postgres.c: exec_simple_query, exec_parse_message,
 * exec_bind_message, exec_execute_message, the ignore_till_sync flag) and follows it only as the
 * server acknowledges each step:
 *
 * - A name exists here once the server confirmed it (ParseComplete, BindComplete, a PREPARE or
 *   DECLARE CURSOR tag). A failed definition (42P05, 42P03) leaves the old one in place.
 * - Later messages of the same segment (up to the next Sync or Query) may rely on what earlier
 *   extended-protocol messages of that segment define: if one of those fails, the server skips the
 *   rest of the segment, so nothing runs on a definition that did not happen.
 * - A name whose meaning is still in flight from an earlier segment is unsettled: the connection
 *   waits for the replies before it judges anything that reads that name, and hooks see it as
 *   unknown meanwhile.
 * - After an error in an extended-protocol message the server skips every message up to Sync,
 *   Query messages included; the replies those messages would have had are dropped from the
 *   queue, exactly those.
 * - Any reply that does not fit what is owed (a reply with nothing pending, the wrong kind of reply,
 *   rows for nothing) throws `ProtocolDesync`: the connection is closed rather than continued on a
 *   guess.
 *
 * Forgetting a name is always safe (using an unknown name is refused or masked as untraceable);
 * believing in one the server does not have is not. So where the server's outcome cannot be read
 * exactly (an error inside a savepoint, a text the parser cannot read), the tunnel forgets.
 *
 * Pure state, no I/O: the connection's dispatchers (client-messages.ts, server-messages.ts) call it.
 */
import type {BoundParams, NamedDefinition, ResultFilter, SessionView, StatementVerdict} from './seam.js'
import type {FieldDescription} from '../wire/fields.js'
import {tagMatches, type NameRef, type SqlEffect, type StatementShape, type TextShape} from './sql-effects.js'

/** The server's replies contradict what the tunnel expects. */
export class ProtocolDesync extends Error {
  override name = 'ProtocolDesync'
}

/** A lookup whose answer depends on replies still in flight. */
export const UNSETTLED: unique symbol = Symbol('unsettled')
export type Unsettled = typeof UNSETTLED

const NO_SHAPE: StatementShape = Object.freeze({})
const NO_REFS: readonly NameRef[] = Object.freeze([])

/** A prepared statement: a protocol Parse, or an SQL PREPARE (statement `statementIndex` of `sql`). */
export class StatementDef implements NamedDefinition {
  /** An approval covers one execution: set when the statement is bound the first time. */
  spent = false
  /** The hooks' `verdictGeneration` its verdict was judged under (a Parse's); judged again at Bind when it moved on. */
  judgedUnder: number | undefined = undefined
  /** The parameter types its Parse declared, for judging it again. */
  paramTypes: readonly number[] | undefined = undefined
  /** Its Parse takes values a reviewer must see: every Bind of it is judged again with them (`StatementVerdict.atBind`). */
  holdsAtBind = false
  /** Approved for one execution: the client messages sent on once its Parse was (ClientMessages.ran). */
  approvedAt: number | undefined = undefined
  /** Approved for one execution at its Parse: `readyAwaited` once its Parse was sent on. */
  approvedReady: number | undefined = undefined
  /** Its RowDescription from a Describe, for results of portals bound to it. */
  fields: FieldDescription[] | undefined
  /** See `NamedDefinition.readyAt`; 0 (the oldest) until stamped, so a definition not stamped is the least trusted. */
  readyAt = 0
  /** What each of `refs` was when its verdict was given (`ProtocolState.namesRead`); judged again when one moved. */
  readAs: NamesRead = undefined

  constructor(
    readonly name: string,
    readonly sql: string,
    readonly statementIndex: number,
    readonly definedBy: 'parse' | 'prepare',
    /** Replaced when it is judged again at Bind (`judgedUnder`). */
    public verdict: StatementVerdict,
    /** What running it does to named objects (a Parse of `PREPARE …` or `DECLARE …`). */
    readonly shape: StatementShape = NO_SHAPE,
    /** Names its text reads when it runs. */
    readonly refs: readonly NameRef[] = NO_REFS,
  ) {}
}

/**
 * A portal: bound by the protocol from a statement, or an SQL cursor (DECLARE). On the server both
 * live in one namespace, so FETCH reads protocol portals and Execute runs cursors.
 */
export class PortalDef implements NamedDefinition {
  fields: FieldDescription[] | undefined
  /** Created in the transaction still open: gone if that transaction aborts. */
  txnLocal = true
  /** The hooks' `verdictGeneration` when it was bound (a protocol portal's); judged again at Execute when it moved on. */
  judgedUnder: number | undefined = undefined
  /** Bound from an approval for one execution: the client messages sent on once its Bind (or last Execute) was. */
  approvedAt: number | undefined = undefined
  /** See `NamedDefinition.readyAt`; 0 (the oldest) until stamped. */
  readyAt = 0
  /** What each of `refs` was when its verdict was given (its statement's, or its own once judged again at Execute). */
  readAs: NamesRead = undefined
  /** An Execute named it: its run is recorded by that Execute, not as a Bind no Execute ran. */
  executed = false

  constructor(
    readonly name: string,
    readonly sql: string,
    readonly statementIndex: number,
    readonly definedBy: 'parse' | 'prepare' | 'declare',
    readonly verdict: StatementVerdict,
    /** WITH HOLD: survives the commit of the transaction that declared it. */
    readonly hold: boolean,
    /** The statement it was bound from, as it was at Bind. */
    readonly statement: StatementDef | undefined,
    /** Bind parameters as text, for the statement event. */
    readonly params: BoundParams | undefined,
    readonly resultFormats: readonly number[],
  ) {}

  get shape(): StatementShape {
    return this.statement?.shape ?? NO_SHAPE
  }

  get refs(): readonly NameRef[] {
    return this.statement?.refs ?? NO_REFS
  }
}

export function portalFromStatement(name: string, s: StatementDef, params: BoundParams | undefined, resultFormats: readonly number[]): PortalDef {
  const p = new PortalDef(name, s.sql, s.statementIndex, s.definedBy, s.verdict, false, s, params, resultFormats)
  p.readAs = s.readAs
  return p
}

/**
 * The definitions the names a text reads (`EXECUTE p`, `FETCH c`, `WHERE CURRENT OF c`) had when
 * the text was judged, in the order of its refs; undefined for a text that reads none.
 */
export type NamesRead = readonly (StatementDef | PortalDef | undefined)[] | undefined

/** One reply the server owes, in the order the client's messages were sent. */
export type Entry<R> =
  | QueryEntry<R>
  | {kind: 'parse'; def: StatementDef | undefined; name: string; run: R | undefined; defines: Defines; state: EntryState}
  | {kind: 'bind'; def: PortalDef | undefined; name: string; run: R | undefined; defines: Defines; state: EntryState}
  | {kind: 'describe'; target: 'S' | 'P'; def: StatementDef | PortalDef | undefined; filter: ResultFilter | undefined; run: undefined; defines: Defines; state: EntryState}
  | {kind: 'execute'; def: PortalDef | undefined; run: R; defines: Defines; state: EntryState; copy?: boolean}
  | {kind: 'close'; target: 'S' | 'P'; name: string; run: undefined; defines: Defines; state: EntryState}
  | {kind: 'sync'; run: undefined; defines: Defines; state: EntryState}

export interface QueryEntry<R> {
  kind: 'query'
  sql: string
  shape: TextShape
  verdict: StatementVerdict
  /** CommandCompletes seen so far. */
  completed: number
  run: R
  defines: Defines
  state: EntryState
  /** It may read COPY data from the client, and has not finished: see `copyPending`. */
  copy?: boolean
}

/**
 * Names an entry may define once acknowledged. Only definitions are tracked in flight: a removal
 * the tunnel has not seen yet can only make the server refuse a name the tunnel still knows.
 */
interface Defines {
  statement?: string
  portal?: string
  /** An opaque text: it may define anything. */
  any?: boolean
}

/** `open`: sent, in the segment still being written; `counted`: in flight, counted as unsettled; `done`: answered or skipped. */
type EntryState = 'open' | 'counted' | 'done'

const NOTHING: Defines = Object.freeze({})
const ANYTHING: Defines = Object.freeze({any: true})

export class ProtocolState<R> implements SessionView {
  /** Acknowledged by the server. */
  private readonly statements = new Names<StatementDef>()
  private readonly portals = new Names<PortalDef>()
  /** WITH HOLD cursors among `portals`; when there are none a transaction end empties the map. */
  private holdCount = 0
  /** What this segment's extended-protocol messages define, ahead of their replies (null: dropped). */
  private readonly segmentStatements = new Names<StatementDef | null>()
  private readonly segmentPortals = new Names<PortalDef | null>()
  private segmentDroppedAllStatements = false
  private segmentDroppedAllPortals = false
  private readonly segment: Entry<R>[] = []
  /** Definitions in flight from closed segments, by name. */
  private readonly unsettledStatements = new Counts()
  private readonly unsettledPortals = new Counts()
  private unsettledAny = 0
  private readonly queue: Entry<R>[] = []
  /** The server reported an error in an extended-protocol message and skips everything up to Sync. */
  private skippingToSync = false
  /**
   * An extended-protocol message was sent after the last Sync or Query: a Query now would drop the
   * unnamed statement and end the batch's implicit transaction under it.
   */
  extendedSinceSync = false
  /** Entries whose `copy` is set. */
  private copyCandidates = 0
  /**
   * The server reads the client's messages as COPY data: it sent CopyInResponse, and neither the
   * client (CopyDone, CopyFail) nor the server (an error) has ended the COPY since.
   */
  copyIn = false
  /** CopyDone and CopyFail the client sent for a COPY the server has not started yet. */
  private copyEndsAhead = 0
  /** Transaction status from the last ReadyForQuery. */
  txStatus: 'I' | 'T' | 'E' = 'I'
  /**
   * Whether `txStatus` is still the session's: no Execute was sent since the last ReadyForQuery. An
   * extended-protocol Execute may begin or end a transaction block (`BEGIN`, `COMMIT`, `ROLLBACK`),
   * and its segment has no ReadyForQuery until its Sync.
   */
  txStatusCurrent = true
  readonly parameters = new Map<string, string>()
  readyCount = 0

  get readyAwaited(): number {
    let n = this.readyCount
    for (const e of this.queue) if (e.kind === 'query' || e.kind === 'sync') n++
    return n
  }

  /**
   * A statement that may read COPY data from the client is still running. The server reads a Sync
   * sent during its COPY as data and ignores it, but answers one sent before or after, and a
   * message other than COPY data ends the session: the client's messages other than COPY data
   * wait until the server says which (CopyInResponse, or the end of the statement), so that no Sync
   * is counted as owed a reply it never gets.
   */
  get copyPending(): boolean {
    return this.copyCandidates > 0
  }

  /** Replies still owed. */
  get pendingCount(): number {
    return this.queue.length
  }

  get head(): Entry<R> | undefined {
    return this.queue[0]
  }

  // ---- the session view (hooks read it) ---------------------------------------------------

  statement(name: string): StatementDef | undefined {
    const s = this.statementAt(name)
    return s === UNSETTLED ? undefined : s
  }

  portal(name: string): PortalDef | undefined {
    const p = this.portalAt(name)
    return p === UNSETTLED ? undefined : p
  }

  /** The server refused a message of the current extended segment and ignores what comes until Sync. */
  get skipping(): boolean {
    return this.skippingToSync
  }

  /** The statement `name` will be when the next message reaches the server. */
  statementAt(name: string): StatementDef | undefined | Unsettled {
    const seg = this.segmentStatements.get(name)
    if (seg !== undefined) return seg ?? undefined
    if (this.segmentDroppedAllStatements) return undefined
    if (this.unsettledAny > 0 || this.unsettledStatements.get(name) > 0) return UNSETTLED
    return this.statements.get(name)
  }

  portalAt(name: string): PortalDef | undefined | Unsettled {
    const seg = this.segmentPortals.get(name)
    if (seg !== undefined) return seg ?? undefined
    if (this.segmentDroppedAllPortals) return undefined
    if (this.unsettledAny > 0 || this.unsettledPortals.get(name) > 0) return UNSETTLED
    return this.portals.get(name)
  }

  /** Whether every name in `refs` has a settled meaning (an opaque text needs everything settled). */
  settled(refs: readonly NameRef[], opaque = false): boolean {
    if (opaque) return this.unsettledAny === 0 && this.unsettledStatements.empty && this.unsettledPortals.empty
    for (const r of refs) if ((r.kind === 'statement' ? this.statementAt(r.name) : this.portalAt(r.name)) === UNSETTLED) return false
    return true
  }

  /**
   * What each of `refs` means when the next message reaches the server, for a verdict given now
   * (the names are settled: `settled(refs)`). The server looks an `EXECUTE p` up when the statement
   * runs, not when it is parsed or bound, so a verdict holds only while these stay what they were.
   */
  namesRead(refs: readonly NameRef[]): NamesRead {
    if (refs.length === 0) return undefined
    return refs.map((r) => {
      const d = r.kind === 'statement' ? this.statementAt(r.name) : this.portalAt(r.name)
      return d === UNSETTLED ? undefined : d
    })
  }

  /**
   * Whether a name `refs` reads means something else now than in `readAs` (what it meant when the
   * verdict was given): defined again (DEALLOCATE and PREPARE, CLOSE and DECLARE), dropped, or made.
   */
  namesMoved(refs: readonly NameRef[], readAs: NamesRead): boolean {
    if (refs.length === 0) return false
    if (readAs === undefined || readAs.length !== refs.length) return true
    for (let i = 0; i < refs.length; i++) {
      const r = refs[i]!
      const d = r.kind === 'statement' ? this.statementAt(r.name) : this.portalAt(r.name)
      if (d === UNSETTLED || d !== readAs[i]) return true
    }
    return false
  }

  /**
   * Forgets every reply still owed (the connection is closing); returns the runs they carried, each
   * with whether its message was among the first `sent` owed (the ones written upstream).
   */
  drain(sent: number): {run: R; sent: boolean}[] {
    this.copyIn = false
    const runs: {run: R; sent: boolean}[] = []
    const entries = this.queue.splice(0)
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!
      this.settle(e)
      if (e.run !== undefined) runs.push({run: e.run, sent: i < sent})
    }
    return runs
  }

  /** Acknowledged names, for tests and diagnostics. */
  acknowledged(): {statements: ReadonlyNames<StatementDef>; portals: ReadonlyNames<PortalDef>} {
    return {statements: this.statements, portals: this.portals}
  }

  // ---- the client's messages, as they are forwarded -----------------------------------------

  /** A simple Query (or the refusal that replaces one). It ends the segment: its effects are never relied on ahead of its replies. */
  sendQuery(sql: string, shape: TextShape, verdict: StatementVerdict, run: R): boolean {
    this.closeSegment()
    const entry: QueryEntry<R> = {kind: 'query', sql, shape, verdict, completed: 0, run, defines: definesOfText(shape), state: 'open', copy: shape.copyIn === true}
    if (!this.push(entry)) return false
    this.count(entry)
    return true
  }

  /** A Parse; `def` is undefined when the tunnel sent a refusal in its place (it fails on the server). */
  sendParse(name: string, def: StatementDef | undefined, run?: R): boolean {
    const entry: Entry<R> = {kind: 'parse', def, name, run, defines: def ? {statement: name} : NOTHING, state: 'open'}
    if (!this.push(entry)) return false
    // A refusal sent in its place fails on the server, and with it the rest of the segment: nothing
    // later in it may be judged as the statement the name had before.
    this.segmentStatements.set(name, def ?? null)
    return true
  }

  /** A Bind; `def` is undefined when the tunnel sent a refusal in its place. */
  sendBind(name: string, def: PortalDef | undefined, run?: R): boolean {
    const entry: Entry<R> = {kind: 'bind', def, name, run, defines: def ? {portal: name} : NOTHING, state: 'open'}
    if (!this.push(entry)) return false
    if (def) this.segmentPortals.set(name, def)
    return true
  }

  /**
   * A message the tunnel refused and replaced with one the server rejects while reading it (a
   * Describe it must not send): the server answers with an error, and skips to Sync.
   */
  sendRefused(run: R): boolean {
    return this.push({kind: 'bind', def: undefined, name: '', run, defines: NOTHING, state: 'open'})
  }

  sendDescribe(target: 'S' | 'P', def: StatementDef | PortalDef | undefined, filter: ResultFilter | undefined): boolean {
    return this.push({kind: 'describe', target, def, filter, run: undefined, defines: NOTHING, state: 'open'})
  }

  /** An Execute; `def` is undefined when the tunnel sent a refusal in its place. */
  sendExecute(def: PortalDef | undefined, run: R): boolean {
    const effect = def?.shape.effect
    const entry: Entry<R> = {kind: 'execute', def, run, defines: def?.shape.opaque ? ANYTHING : definesOfEffect(effect), state: 'open', copy: def?.shape.copyIn === true}
    if (!this.push(entry)) return false
    this.txStatusCurrent = false
    if (def && effect) this.stageEffect(effect, def)
    return true
  }

  /** What an executed statement will have done by the time a later message of this segment runs. */
  private stageEffect(effect: SqlEffect, def: PortalDef): void {
    switch (effect.kind) {
      case 'prepare':
        this.segmentStatements.set(effect.name, this.stamped(new StatementDef(effect.name, def.sql, def.statementIndex, 'prepare', def.verdict)))
        return
      case 'deallocate':
        this.segmentStatements.set(effect.name, null)
        return
      case 'deallocate-all':
        this.dropSegmentStatements(false)
        return
      case 'declare':
        this.segmentPortals.set(effect.name, this.stamped(new PortalDef(effect.name, def.sql, def.statementIndex, 'declare', def.verdict, effect.hold, undefined, undefined, [])))
        return
      case 'close':
        this.segmentPortals.set(effect.name, null)
        return
      case 'close-all':
        this.segmentPortals.clear()
        this.segmentDroppedAllPortals = true
        return
      case 'discard-all':
        this.dropSegmentStatements(true)
        this.segmentPortals.clear()
        this.segmentDroppedAllPortals = true
        return
    }
  }

  sendClose(target: 'S' | 'P', name: string): boolean {
    if (!this.push({kind: 'close', target, name, run: undefined, defines: NOTHING, state: 'open'})) return false
    if (target === 'S') this.segmentStatements.set(name, null)
    else this.segmentPortals.set(name, null)
    return true
  }

  sendSync(): void {
    this.extendedSinceSync = false
    this.closeSegment()
    // Sync ends the skipping on the server before it is processed.
    this.skippingToSync = false
    this.queue.push({kind: 'sync', run: undefined, defines: NOTHING, state: 'done'})
  }

  /**
   * Queues a reply, unless the server is known to be skipping to Sync: then nothing will answer
   * it. Returns whether the server will answer.
   */
  private push(entry: Entry<R>): boolean {
    this.extendedSinceSync = entry.kind !== 'query' && entry.kind !== 'sync'
    if (this.skippingToSync) {
      entry.state = 'done'
      return false
    }
    this.queue.push(entry)
    if (entry.kind !== 'query' && entry.kind !== 'sync') this.segment.push(entry)
    if ((entry.kind === 'query' || entry.kind === 'execute') && entry.copy) this.copyCandidates++
    return true
  }

  private dropSegmentStatements(unnamedToo: boolean): void {
    const unnamed = this.segmentStatements.get('')
    this.segmentStatements.clear()
    this.segmentDroppedAllStatements = true
    if (!unnamedToo) {
      // DEALLOCATE ALL leaves the unnamed statement alone.
      const keep = unnamed === undefined ? this.statementAt('') : unnamed
      this.segmentStatements.set('', keep === UNSETTLED ? null : (keep ?? null))
    }
  }

  /** The segment's definitions are no longer relied on ahead of their replies: they are in flight. */
  private closeSegment(): void {
    const segment = this.segment
    if (segment.length === 0) return
    for (let i = 0; i < segment.length; i++) if (segment[i]!.state === 'open') this.count(segment[i]!)
    segment.length = 0
    if (this.segmentStatements.size > 0) this.segmentStatements.clear()
    if (this.segmentPortals.size > 0) this.segmentPortals.clear()
    this.segmentDroppedAllStatements = false
    this.segmentDroppedAllPortals = false
  }

  private count(e: Entry<R>): void {
    e.state = 'counted'
    const d = e.defines
    if (d.statement !== undefined) this.unsettledStatements.increment(d.statement)
    if (d.portal !== undefined) this.unsettledPortals.increment(d.portal)
    if (d.any) this.unsettledAny++
  }

  /** An entry is answered, failed or skipped: its definitions are no longer in flight. */
  private settle(e: Entry<R>): void {
    if ((e.kind === 'query' || e.kind === 'execute') && e.copy) this.endCandidate(e)
    if (e.state === 'counted') {
      const d = e.defines
      if (d.statement !== undefined) this.unsettledStatements.decrement(d.statement)
      if (d.portal !== undefined) this.unsettledPortals.decrement(d.portal)
      if (d.any) this.unsettledAny--
    }
    e.state = 'done'
  }

  private endCandidate(e: Entry<R> & {kind: 'query' | 'execute'}): void {
    e.copy = false
    this.copyCandidates--
    // The messages after a candidate wait for it, so there is one at a time: the client's ends were all for it.
    this.copyEndsAhead = 0
  }

  /** The client ended a COPY (CopyDone, CopyFail) before the server started it: CopyInResponse will not open one. */
  copyEndedAhead(): void {
    this.copyEndsAhead++
  }

  /** The client ended the COPY the server is reading (CopyDone or CopyFail). */
  endCopyFromClient(): void {
    this.copyIn = false
    // An Execute runs one statement, so no other COPY can follow; a simple query's next statement may be one.
    const head = this.queue[0]
    if (head?.kind === 'execute' && head.copy) this.endCandidate(head)
  }

  // ---- the server's replies -----------------------------------------------------------------

  /** The entry a reply answers, which must be of kind `a` or `b` (fixed arguments: this runs for every row). */
  private expect(what: string, a: Entry<R>['kind'], b?: Entry<R>['kind']): Entry<R> {
    const head = this.queue[0]
    if (!head || (head.kind !== a && head.kind !== b)) {
      throw new ProtocolDesync(`the server sent ${what} while ${head ? `a reply to ${describe(head)}` : 'no reply'} was expected`)
    }
    return head
  }

  private shift(): Entry<R> {
    const e = this.queue.shift()!
    this.settle(e)
    return e
  }

  onParseComplete(): Entry<R> & {kind: 'parse'} {
    const head = this.expect('ParseComplete', 'parse') as Entry<R> & {kind: 'parse'}
    if (!head.def) throw new ProtocolDesync('the server accepted a statement the tunnel replaced with one that cannot parse')
    this.shift()
    this.statements.set(head.name, head.def)
    return head
  }

  onBindComplete(): Entry<R> & {kind: 'bind'} {
    const head = this.expect('BindComplete', 'bind') as Entry<R> & {kind: 'bind'}
    if (!head.def) throw new ProtocolDesync('the server bound a statement the tunnel replaced with one that does not exist')
    this.shift()
    this.definePortal(head.def)
    return head
  }

  onCloseComplete(): void {
    const head = this.expect('CloseComplete', 'close') as Entry<R> & {kind: 'close'}
    this.shift()
    if (head.target === 'S') this.statements.delete(head.name)
    else this.dropPortal(head.name)
  }

  /** CopyInResponse: the server now reads the client's messages as COPY data. */
  onCopyInResponse(): Entry<R> & {kind: 'query' | 'execute'} {
    const head = this.onResultPart('CopyInResponse')
    if (!head.copy) throw new ProtocolDesync('the server started COPY FROM STDIN for a statement the tunnel did not read as one')
    // The client's messages after a statement that may COPY wait for this reply, so none can be in flight.
    if (this.queue.length !== 1) throw new ProtocolDesync('the server started COPY FROM STDIN with client messages in flight after it')
    if (this.copyEndsAhead === 0) this.copyIn = true
    else {
      // The server reads the data the client already sent, up to its CopyDone or CopyFail.
      this.copyEndsAhead--
      if (head.kind === 'execute') this.endCandidate(head)
    }
    return head
  }

  /** ParameterDescription: the first half of the answer to Describe of a statement. */
  onParameterDescription(): void {
    const head = this.expect('ParameterDescription', 'describe') as Entry<R> & {kind: 'describe'}
    if (head.target !== 'S') throw new ProtocolDesync('the server sent ParameterDescription for a Describe of a portal')
  }

  /** RowDescription: answers a Describe (shifted and returned), or starts a simple query's result. */
  onRowDescription(): Entry<R> {
    const head = this.expect('RowDescription', 'describe', 'query')
    if (head.kind === 'describe') this.shift()
    return head
  }

  onNoData(): Entry<R> {
    this.expect('NoData', 'describe')
    return this.shift()
  }

  /** DataRow, CopyData, CopyDone, CopyIn/OutResponse: part of a result, of a query or an Execute. */
  onResultPart(what: string): Entry<R> & {kind: 'query' | 'execute'} {
    const head = this.expect(what, 'query', 'execute') as Entry<R> & {kind: 'query' | 'execute'}
    if (head.kind === 'execute' && !head.def) throw new ProtocolDesync(`the server sent ${what} for a portal the tunnel does not know`)
    return head
  }

  /**
   * Whether the next CommandComplete's tag must be read: the statement it completes has a tag to
   * check or an effect to apply. (Transaction tags are recognised by the caller from their bytes.)
   */
  tagNeeded(): boolean {
    const head = this.queue[0]
    if (!head) return false
    if (head.kind === 'query') return head.shape.statements !== undefined
    return head.kind === 'execute' && head.def !== undefined && (head.def.shape.tags !== undefined || head.def.shape.opaque === true)
  }

  /** `tag` may be undefined when `tagNeeded()` said so and it is not a transaction tag. */
  onCommandComplete(tag: string | undefined): Entry<R> & {kind: 'query' | 'execute'} {
    const head = this.onResultPart('CommandComplete')
    if (head.kind === 'execute') {
      const def = head.def!
      const shape = def.shape
      if (shape.tags && (tag === undefined || !tagMatches(tag, shape.tags))) throw new ProtocolDesync(`the server completed "${def.sql.slice(0, 60)}" with the tag "${tag}"`)
      this.shift()
      if (shape.effect) this.apply(shape.effect, def.sql, def.statementIndex, def.verdict)
      if (shape.opaque) this.forgetAll()
    } else {
      const i = head.completed++
      const statements = head.shape.statements
      if (statements) {
        const st = statements[i]
        if (!st) throw new ProtocolDesync(`the server completed ${i + 1} statements of a text that holds ${statements.length}`)
        if (st.tags && (tag === undefined || !tagMatches(tag, st.tags))) throw new ProtocolDesync(`the server completed statement ${i + 1} with the tag "${tag}", not ${st.tags.join(' or ')}`)
        if (st.effect) this.apply(st.effect, head.sql, i, head.verdict)
      }
    }
    if (tag !== undefined) this.transactionTag(tag)
    return head
  }

  onEmptyQuery(): Entry<R> & {kind: 'query' | 'execute'} {
    const head = this.onResultPart('EmptyQueryResponse')
    if (head.kind === 'query' && head.shape.statements && head.shape.statements.length > 0) throw new ProtocolDesync('the server found no statement in a text that holds some')
    if (head.kind === 'execute') this.shift()
    return head
  }

  onPortalSuspended(): Entry<R> & {kind: 'execute'} {
    const head = this.expect('PortalSuspended', 'execute') as Entry<R> & {kind: 'execute'}
    if (!head.def) throw new ProtocolDesync('the server suspended a portal the tunnel does not know')
    this.shift()
    return head
  }

  /**
   * An ErrorResponse. Returns the entry it answers (undefined when none was owed: only a FATAL may
   * arrive so) and the entries the server now skips without a reply.
   */
  onError(fatal: boolean): {head: Entry<R> | undefined; skipped: Entry<R>[]} {
    // An error ends a COPY on the server: what the client sends next is read as messages again.
    this.copyIn = false
    const head = this.queue[0]
    if (!head) {
      if (fatal) return {head: undefined, skipped: []}
      throw new ProtocolDesync('the server reported an error when no reply was expected')
    }
    // Every error aborts the transaction (or marks its block failed): its portals and cursors go.
    this.abortTransaction()
    if (head.kind === 'query' || head.kind === 'sync') return {head, skipped: []}
    this.shift()
    // exec_parse_message drops the unnamed statement before it parses the new one.
    if (head.kind === 'parse' && head.name === '') this.statements.delete('')
    const skipped: Entry<R>[] = []
    while (this.queue.length > 0 && this.queue[0]!.kind !== 'sync') skipped.push(this.shift())
    if (this.queue.length === 0) this.skippingToSync = true
    return {head, skipped}
  }

  onReadyForQuery(status: 'I' | 'T' | 'E'): Entry<R> & {kind: 'query' | 'sync'} {
    const head = this.expect('ReadyForQuery', 'query', 'sync') as Entry<R> & {kind: 'query' | 'sync'}
    this.shift()
    this.txStatus = status
    this.txStatusCurrent = true
    this.readyCount++
    if (head.kind === 'query') {
      // exec_simple_query drops the unnamed statement first, and runs in the unnamed portal.
      this.statements.delete('')
      this.dropPortal('')
      if (head.shape.opaque) this.forgetAll()
    }
    if (status === 'I') this.commitTransaction()
    return head
  }

  // ---- effects ------------------------------------------------------------------------------

  private apply(effect: SqlEffect, sql: string, index: number, verdict: StatementVerdict): void {
    switch (effect.kind) {
      case 'prepare':
        this.statements.set(effect.name, this.stamped(new StatementDef(effect.name, sql, index, 'prepare', verdict)))
        return
      case 'deallocate':
        this.statements.delete(effect.name)
        return
      case 'deallocate-all':
        for (const name of [...this.statements.keys()]) if (name !== '') this.statements.delete(name)
        return
      case 'declare':
        this.definePortal(this.stamped(new PortalDef(effect.name, sql, index, 'declare', verdict, effect.hold, undefined, undefined, [])))
        return
      case 'close':
        this.dropPortal(effect.name)
        return
      case 'close-all':
        this.portals.clear()
        this.holdCount = 0
        return
      case 'discard-all':
        this.statements.clear()
        this.portals.clear()
        this.holdCount = 0
        return
    }
  }

  /** A definition made now, stamped with the ReadyForQuery messages received so far (`NamedDefinition.readyAt`). */
  stamped<D extends StatementDef | PortalDef>(d: D): D {
    d.readyAt = this.readyCount
    return d
  }

  /** What a text did to named objects is unknown: forget them all (using a forgotten name is refused). */
  private forgetAll(): void {
    this.statements.clear()
    this.portals.clear()
    this.holdCount = 0
  }

  private definePortal(p: PortalDef): void {
    this.dropPortal(p.name)
    this.portals.set(p.name, p)
    if (p.hold) this.holdCount++
  }

  private dropPortal(name: string): void {
    const old = this.portals.get(name)
    if (!old) return
    this.portals.delete(name)
    if (old.hold) this.holdCount--
  }

  /** COMMIT, ROLLBACK and PREPARE TRANSACTION end the transaction wherever they run. */
  private transactionTag(tag: string): void {
    if (tag === 'COMMIT') this.commitTransaction()
    else if (tag === 'ROLLBACK' || tag === 'PREPARE TRANSACTION') this.abortTransaction()
  }

  /** Only WITH HOLD cursors outlive a commit. */
  private commitTransaction(): void {
    if (this.holdCount === 0) {
      if (this.portals.size > 0) this.portals.clear()
      return
    }
    for (const p of [...this.portals.values()]) {
      if (p.hold) p.txnLocal = false
      else this.portals.delete(p.name)
    }
  }

  /**
   * Only WITH HOLD cursors of committed transactions outlive an abort. A ROLLBACK TO SAVEPOINT
   * keeps cursors declared before the savepoint on the server; they are forgotten here, which is safe.
   */
  private abortTransaction(): void {
    if (this.holdCount === 0) {
      if (this.portals.size > 0) this.portals.clear()
      return
    }
    for (const p of [...this.portals.values()]) {
      if (p.hold && !p.txnLocal) continue
      this.dropPortal(p.name)
    }
  }
}

function definesOfText(shape: TextShape): Defines {
  if (shape.opaque) return ANYTHING
  const statements = shape.statements
  if (!statements) return NOTHING
  let d: Defines | undefined
  for (const s of statements) {
    const e = s.effect
    if (!e) continue
    if (e.kind === 'prepare' || e.kind === 'declare') {
      // Several definitions in one text: treat as "anything", rather than keeping a list per entry.
      if (d) return ANYTHING
      d = definesOfEffect(e)
    }
  }
  return d ?? NOTHING
}

function definesOfEffect(effect: SqlEffect | undefined): Defines {
  if (effect?.kind === 'prepare') return {statement: effect.name}
  if (effect?.kind === 'declare') return {portal: effect.name}
  return NOTHING
}

export interface ReadonlyNames<T> {
  get(name: string): T | undefined
  keys(): IterableIterator<string>
  readonly size: number
}

/**
 * Names of one namespace. Most traffic uses the unnamed statement and portal, which get a slot of
 * their own: binding and executing them costs no map operation. The map for named ones is made
 * on first use, so that an idle session (or one that never names anything) carries none.
 */
class Names<T> implements ReadonlyNames<T> {
  private unnamed: T | undefined
  private hasUnnamed = false
  private named: Map<string, T> | undefined

  get(name: string): T | undefined {
    return name === '' ? this.unnamed : this.named?.get(name)
  }

  set(name: string, value: T): void {
    if (name !== '') (this.named ??= new Map()).set(name, value)
    else {
      this.unnamed = value
      this.hasUnnamed = true
    }
  }

  delete(name: string): void {
    if (name !== '') this.named?.delete(name)
    else {
      this.unnamed = undefined
      this.hasUnnamed = false
    }
  }

  clear(): void {
    this.unnamed = undefined
    this.hasUnnamed = false
    if (this.named !== undefined && this.named.size > 0) this.named.clear()
  }

  get size(): number {
    return (this.hasUnnamed ? 1 : 0) + (this.named?.size ?? 0)
  }

  *keys(): IterableIterator<string> {
    if (this.hasUnnamed) yield ''
    if (this.named) yield* this.named.keys()
  }

  *values(): IterableIterator<T> {
    if (this.hasUnnamed) yield this.unnamed!
    if (this.named) yield* [...this.named.values()]
  }
}

/** How many definitions of each name are in flight (the map for named ones made on first use). */
class Counts {
  private unnamed = 0
  private named: Map<string, number> | undefined

  get(name: string): number {
    return name === '' ? this.unnamed : (this.named?.get(name) ?? 0)
  }

  get empty(): boolean {
    return this.unnamed === 0 && (this.named === undefined || this.named.size === 0)
  }

  increment(name: string): void {
    if (name === '') this.unnamed++
    else {
      const named = (this.named ??= new Map())
      named.set(name, (named.get(name) ?? 0) + 1)
    }
  }

  decrement(name: string): void {
    if (name === '') {
      this.unnamed--
      return
    }
    if (this.named === undefined) return
    const n = (this.named.get(name) ?? 0) - 1
    if (n <= 0) this.named.delete(name)
    else this.named.set(name, n)
  }
}

function describe(e: Entry<unknown>): string {
  switch (e.kind) {
    case 'query':
      return 'a query'
    case 'parse':
      return `Parse of statement "${e.name}"`
    case 'bind':
      return `Bind of portal "${e.name}"`
    case 'describe':
      return 'Describe'
    case 'execute':
      return `Execute of portal "${e.def?.name ?? '?'}"`
    case 'close':
      return `Close of ${e.target === 'S' ? 'statement' : 'portal'} "${e.name}"`
    case 'sync':
      return 'Sync'
  }
}
