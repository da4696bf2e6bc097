/**
 * A verdict holds for the catalog it was judged against, but a statement already sent meets
 * another session's change the moment that change commits: a read that waits on the changing
 * session's lock runs after the commit, with what the commit made (a table put under the one it
 * reads, a function body replaced, a new overload that wins over a built-in). So within one
 * pipeline (one person's sessions, or one agent's) the commit of a change and the other sessions'
 * statements never overlap:
 *  - a text that may commit a change (the change itself outside a transaction block, a COMMIT, a
 *    DO or CALL, which may commit inside) is sent only once no other session has a statement in
 *    flight;
 *  - from then until that text is answered (its ReadyForQuery; the catalog is read again at the
 *    idle one, or at the COMMIT's tag) the other sessions' statements wait, and are judged after it.
 * A change made inside a transaction block is seen by no other session until its COMMIT, so the
 * others run on meanwhile. A commit that waits for a statement which itself waits on the
 * committing session's locks would wait forever: after `tunnel.changeWait` it is refused, so the
 * change is not committed (ROLLBACK, which runs no code, never waits).
 */
import type {PolicyVerdict} from '../policy/verdict.js'
import type {SessionView, StatementContext, StatementVerdict} from '../proxy/seam.js'
import type {StatementAnalysis} from '../policy/types.js'
import type {PgNoticeFields} from '../wire/fields.js'
import type {Admission} from './stage.js'

/** SQLSTATE 55P03 (lock_not_available): what a client already treats as "try again later". */
export const CHANGE_WAIT_SQLSTATE = '55P03'

/** SQLSTATE 55000 (object_not_in_prerequisite_state): the cursor must be opened again, not the statement retried. */
export const STALE_CURSOR_SQLSTATE = '55000'

/** How often a waiting statement looks again: replies that end another session's statement have no hook of their own. */
const POLL_MS = 10

interface Commit {
  readonly session: SessionView
  /** The ReadyForQuery count before the committing text's own; undefined while it waits to be sent. */
  since: number | undefined
  /** Since when its session has had nothing in flight and no Sync sent: an implicit transaction the client keeps open. */
  quietSince?: number
  /**
   * The client kept that transaction open past the gate's pause: the others run on meanwhile (the
   * change is not committed, so nothing of it is visible to them), and the Sync or Execute that may
   * commit it waits for their statements, as a COMMIT would (`commitPoint`).
   */
  released?: boolean
}

export interface ChangeGateOptions {
  /** How long a commit waits for the others' statements, and they for it (`tunnel.changeWait`). */
  waitMs: number
  /** The setting that says so, named in the refusals. */
  setting: string
  /** A commit sent through the gate is over (answered, or its connection closed): the catalog may have changed. */
  settled?: () => void
}

/** What the gate keeps of a connection that had a statement let through. */
class Tracked {
  /**
   * The epoch at which the connection's transaction (block, implicit, or a pipeline's) began: a
   * cursor it opened since (DECLARE, or a refcursor a function opened) was judged no earlier. Set at
   * the first statement after an idle ReadyForQuery (`fresh`), so it is never later than the truth.
   */
  began = 0
  /** The last reply was an idle ReadyForQuery and nothing ran since: no cursor is open but a materialized WITH HOLD one. */
  fresh = true
  /** The open transaction declared a cursor WITH HOLD: its COMMIT (or the Sync of an implicit transaction) runs that query to its end. */
  holdCursor = false

  constructor(readonly session: SessionView) {}
}

export class ChangeGate {
  /** Connections with a commit of a change waiting to be sent, or sent and not yet settled. */
  private readonly commits = new Map<number, Commit>()
  /** Every connection that had a statement let through, by id: what is in flight is read from its view. */
  private readonly tracked = new Map<number, Tracked>()
  /**
   * Connections whose verdict came asynchronously in this turn of the event loop: the proxy sends
   * the statement in the same turn, before any reply can be owed for it, so until the turn ends a
   * commit counts it as in flight.
   */
  private readonly reserved = new Set<number>()
  private reservedClearing = false
  private readonly waiters = new Set<() => void>()
  private ticker: NodeJS.Timeout | undefined
  /** Connections the client closed whose upstream the server has not closed yet: it may still run (and commit) what they sent. */
  private readonly lingering = new Set<number>()

  /** Commits sent so far: a verdict that came asynchronously is stale if one was sent while it was made. */
  epoch = 0

  constructor(private readonly opts: ChangeGateOptions) {}

  /** Whether a commit of another connection's change is waiting or running: this connection's statements wait for it. */
  blocked(connectionId: number): boolean {
    if (this.commits.size === 0) return false
    this.settleAnswered()
    for (const [id, c] of this.commits) if (id !== connectionId && !this.paused(id, c)) return true
    return false
  }

  /**
   * Whether a commit is one of an extended-protocol implicit transaction whose client has stopped
   * short of the Sync (everything sent is answered, nothing more comes) for longer than a client
   * sending a pipeline ever does: holding the others until it goes on would let one session hold
   * the rest for as long as it stays connected. What it sends next that may commit waits instead.
   */
  private paused(id: number, c: Commit): boolean {
    if (c.released) return true
    const s = c.session
    // A client that hung up left its session's view empty, while the server may still run (and commit) what it sent.
    if (c.since === undefined || this.lingering.has(id) || (s.pendingCount ?? 0) > 0 || (s.readyAwaited ?? s.readyCount ?? 0) !== c.since) {
      c.quietSince = undefined
      return false
    }
    const now = Date.now()
    if (c.quietSince === undefined) c.quietSince = now
    if (now - c.quietSince < this.pauseMs) return false
    c.released = true
    return true
  }

  /** How long a committing session may stop short of its Sync before the others go on: a tenth of the wait. */
  private get pauseMs(): number {
    return this.opts.waitMs / 10
  }

  /** Whether the connection's commit of a change is waiting or under way: the others wait on it. */
  committingNow(connectionId: number): boolean {
    return this.commits.has(connectionId)
  }

  /** Whether the connection stopped short of the Sync that commits its change, and the others went on. */
  released(connectionId: number): boolean {
    return this.commits.get(connectionId)?.released === true
  }

  /**
   * Commits whose text has been answered (a ReadyForQuery after `since`, whatever the status: a
   * `COMMIT AND CHAIN` leaves its session in a transaction) are over; their tags had the catalog
   * read again as they came (src/pipeline/policy.ts).
   */
  private settleAnswered(): void {
    for (const [id, c] of this.commits) {
      if (c.since === undefined || (c.session.readyCount ?? 0) <= c.since) continue
      this.commits.delete(id)
      this.opts.settled?.()
    }
  }

  /** The connection had a statement let through (its view tells from now on whether it has one in flight). */
  seen(connectionId: number, session: SessionView): void {
    let t = this.tracked.get(connectionId)
    if (!t) this.tracked.set(connectionId, (t = new Tracked(session)))
    if (t.fresh) {
      t.fresh = false
      t.began = this.epoch
    }
  }

  /**
   * A statement of the connection ran (its event): a Bind and Execute of a statement judged before
   * runs without being judged again (no change since), so it may be the first of a transaction,
   * and may have declared a cursor WITH HOLD. While it ran no commit of a change was sent (it was
   * in flight), so the epoch now is the one it ran under.
   */
  ran(connectionId: number, declaredHoldCursor: boolean): void {
    const t = this.tracked.get(connectionId)
    if (!t) return
    if (t.fresh) {
      t.fresh = false
      t.began = this.epoch
    }
    if (declaredHoldCursor) t.holdCursor = true
  }

  /**
   * Whether a commit of a change was sent since the connection's transaction began: a cursor it
   * opened before that commit runs its query, at each FETCH or MOVE, with what the commit made.
   */
  cursorsStale(connectionId: number): boolean {
    const t = this.tracked.get(connectionId)
    return t !== undefined && !t.fresh && t.began !== this.epoch
  }

  /** The connection's verdict came asynchronously: it counts as in flight until this turn ends. */
  reserve(connectionId: number): void {
    this.reserved.add(connectionId)
    if (this.reservedClearing) return
    this.reservedClearing = true
    setImmediate(() => {
      this.reservedClearing = false
      this.reserved.clear()
      this.wake()
    })
  }

  /**
   * Another connection whose statement may be running, or whose transaction holds a cursor WITH
   * HOLD whose query its COMMIT (or the Sync of its implicit transaction) runs: the id of one, or undefined.
   */
  inFlightBesides(connectionId: number): number | undefined {
    for (const [id, t] of this.tracked) if (id !== connectionId && ((t.session.pendingCount ?? 0) > 0 || this.reserved.has(id) || t.holdCursor)) return id
    for (const id of this.lingering) if (id !== connectionId) return id
    return undefined
  }

  /** A connection committing or waiting to commit, other than this one. */
  committerBesides(connectionId: number): number | undefined {
    for (const id of this.commits.keys()) if (id !== connectionId) return id
    return undefined
  }

  /** The connection's commit waits for the others' statements: theirs wait for it from now on. */
  admitting(connectionId: number, session: SessionView): void {
    this.commits.set(connectionId, {session, since: undefined})
  }

  /** The connection's commit is sent now: it is over at its session's first ReadyForQuery after what was sent before it. */
  committing(connectionId: number, session: SessionView): void {
    this.epoch++
    this.commits.set(connectionId, {session, since: session.readyAwaited ?? session.readyCount ?? 0})
  }

  /** The connection's commit was refused before it was sent. */
  withdraw(connectionId: number): void {
    if (this.commits.delete(connectionId)) this.wake()
  }

  /** The server reported no transaction open on the connection (after the catalog was marked for reading again): a commit sent before is over. */
  idle(connectionId: number, session: SessionView): void {
    const t = this.tracked.get(connectionId)
    if (t) {
      t.fresh = true
      // Its cursors WITH HOLD have run their queries to the end (or are gone). Only here: a text may
      // COMMIT, then open a transaction and declare another (`COMMIT AND CHAIN` too).
      if (t.holdCursor) {
        t.holdCursor = false
        this.wake()
      }
    }
    const c = this.commits.get(connectionId)
    if (c?.since === undefined || (session.readyCount ?? 0) <= c.since) return
    this.commits.delete(connectionId)
    this.opts.settled?.()
    this.wake()
  }

  /**
   * The client's connection closed. What the server still runs for it (a text that ends in a
   * COMMIT, a DO block, a statement waiting on a lock) goes on until the server closes the upstream
   * socket (`upstreamClosed`): until then it counts as in flight, and a commit it sent as running.
   */
  forget(connectionId: number): void {
    this.tracked.delete(connectionId)
    this.reserved.delete(connectionId)
    this.lingering.add(connectionId)
    // A commit still waiting to be sent never will be.
    if (this.commits.get(connectionId)?.since === undefined && this.commits.delete(connectionId)) this.wake()
  }

  /** The server closed the connection's upstream socket: nothing of it runs any more. */
  upstreamClosed(connectionId: number): void {
    const lingered = this.lingering.delete(connectionId)
    const c = this.commits.get(connectionId)
    if (c) {
      this.commits.delete(connectionId)
      // A commit it sent has run by now, though its reply never came.
      if (c.since !== undefined) this.opts.settled?.()
    }
    if (c || lingered) this.wake()
  }

  /**
   * Resolves with undefined once `ready()` holds, or with the refusal once `opts.waitMs` has passed
   * or the client has withdrawn the statement. `refusal` words it (given the other connection's id).
   */
  waitUntil(ready: () => boolean, signal: AbortSignal, refusal: () => PgNoticeFields): Promise<PgNoticeFields | undefined> {
    if (ready()) return Promise.resolve(undefined)
    return new Promise((resolve) => {
      const done = (result: PgNoticeFields | undefined) => {
        clearTimeout(timer)
        signal.removeEventListener('abort', aborted)
        this.waiters.delete(check)
        if (this.waiters.size === 0 && this.ticker) {
          clearInterval(this.ticker)
          this.ticker = undefined
        }
        resolve(result)
      }
      const check = () => {
        if (ready()) done(undefined)
      }
      const aborted = () => done({severity: 'ERROR', code: '57014', message: 'dbgate: the statement was cancelled while it waited for another session\'s change to commit'})
      const timer = setTimeout(() => done(refusal()), this.opts.waitMs)
      signal.addEventListener('abort', aborted, {once: true})
      if (signal.aborted) return aborted()
      this.waiters.add(check)
      this.ticker ??= setInterval(() => this.wake(), POLL_MS)
    })
  }

  /** The refusal of a statement that waited for another connection's commit. */
  waitedForCommit(other: number | undefined): PgNoticeFields {
    return {
      severity: 'ERROR',
      code: CHANGE_WAIT_SQLSTATE,
      message: `dbgate: another of your sessions through dbgate${other === undefined ? '' : ` (connection ${other})`} is committing a change to the schema; this statement waited ${seconds(this.opts.waitMs)} (${this.opts.setting}) for it and was not sent`,
      hint: 'It is judged against the schema as changed once that commit ends: run it again then. ROLLBACK never waits.',
    }
  }

  /** The refusal of a commit that waited for the others' statements. */
  waitedForOthers(other: number | undefined): PgNoticeFields {
    if (other !== undefined && this.lingering.has(other)) {
      return {
        severity: 'ERROR',
        code: CHANGE_WAIT_SQLSTATE,
        message: `dbgate: this statement commits a change to the schema while the server still runs what another of your sessions through dbgate (connection ${other}) sent before its client went away; it waited ${seconds(this.opts.waitMs)} (${this.opts.setting}) for the server to end that session and was not sent, so the change is not committed`,
        hint: 'That statement may be waiting for a lock this session holds: ROLLBACK here, then make the change again.',
      }
    }
    const t = other === undefined ? undefined : this.tracked.get(other)
    if (t?.holdCursor && (t.session.pendingCount ?? 0) === 0) {
      return {
        severity: 'ERROR',
        code: CHANGE_WAIT_SQLSTATE,
        message: `dbgate: this statement commits a change to the schema while another of your sessions through dbgate (connection ${other}) has a cursor WITH HOLD declared in a transaction it has not ended, whose query runs to its end when that transaction commits, as judged before this change; it waited ${seconds(this.opts.waitMs)} (${this.opts.setting}) and was not sent, so the change is not committed`,
        hint: 'End that transaction (COMMIT or ROLLBACK there), or ROLLBACK here, then make the change again.',
      }
    }
    return {
      severity: 'ERROR',
      code: CHANGE_WAIT_SQLSTATE,
      message: `dbgate: this statement commits a change to the schema while another of your sessions through dbgate${other === undefined ? '' : ` (connection ${other})`} runs a statement judged before it; it waited ${seconds(this.opts.waitMs)} (${this.opts.setting}) for that statement to end and was not sent, so the change is not committed`,
      hint: 'That statement may be waiting for a lock this session holds: ROLLBACK here (or end the other statement), then make the change again.',
    }
  }

  /** The end of a connection whose change would commit at a Sync or Execute that waited for the others' statements. */
  waitedAtCommitPoint(other: number | undefined): PgNoticeFields {
    return {
      severity: 'FATAL',
      code: CHANGE_WAIT_SQLSTATE,
      message: `dbgate: this session changed the schema in an implicit transaction and stopped short of its Sync, so your other sessions through dbgate went on; what it sent next would commit that change while one of them${other === undefined ? '' : ` (connection ${other})`} runs a statement judged before it. It waited ${seconds(this.opts.waitMs)} (${this.opts.setting}) for that statement to end, and the connection is closed, so the change is rolled back`,
      hint: 'Send the Sync together with the change (as drivers do), or make the change inside BEGIN … COMMIT; then make it again.',
    }
  }

  /** The refusal of a FETCH or MOVE after a commit of a change sent since the connection's transaction began. */
  staleCursor(): PgNoticeFields {
    return {
      severity: 'ERROR',
      code: STALE_CURSOR_SQLSTATE,
      message:
        'dbgate: a session through dbgate committed a change to the schema since this transaction began, so a cursor opened in it was judged before that change, but FETCH or MOVE would run its query with the functions, operators and casts as changed; it was not sent',
      hint: 'End the transaction (ROLLBACK or COMMIT) and open the cursor again: it is judged against the schema as changed.',
    }
  }

  private wake(): void {
    this.settleAnswered()
    for (const w of [...this.waiters]) w()
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`
}

/** A text that may FETCH or MOVE contains the keyword as written (keywords cannot be quoted). */
const MAY_RUN_CURSOR = /fetch|move/i

/** Statements that run a cursor's query, which was judged when the cursor was opened. */
const RUNS_CURSOR: ReadonlySet<string> = new Set(['fetch', 'move'])

/** Whether a text declares a cursor WITH HOLD: its transaction's COMMIT runs the cursor's query to its end. */
export function declaresHoldCursor(statements: readonly StatementAnalysis[]): boolean {
  return statements.some((s) => s.operations.some((o) => o.command === 'declare' && o.object === 'hold_cursor'))
}

/** Whether a text runs (part of) a cursor's query: a FETCH or MOVE. */
export function runsCursor(statements: readonly StatementAnalysis[]): boolean {
  return statements.some((s) => s.operations.some((o) => RUNS_CURSOR.has(o.command)))
}

/** Transaction control that runs no code and commits nothing: it never waits for another session's commit. */
const RUNS_NOTHING: ReadonlySet<string> = new Set(['begin', 'rollback', 'savepoint', 'release', 'rollback_to', 'rollback_prepared'])

/** Whether every statement of a text is transaction control that runs no code (a ROLLBACK must never wait: it is how a session lets go of its locks). */
export function runsNothing(statements: readonly StatementAnalysis[]): boolean {
  return statements.length > 0 && statements.every((s) => s.operations.length === 1 && RUNS_NOTHING.has(s.operations[0]!.command) && s.operations[0]!.class === 'transaction')
}

/** Statements after which code may have committed: a DO block or a procedure may COMMIT inside; COMMIT PREPARED commits what was prepared. */
const MAY_COMMIT_INSIDE: ReadonlySet<string> = new Set(['do', 'call', 'commit_prepared'])

/**
 * Whether a text may commit what its session changed: run outside a transaction block (its
 * implicit transaction commits at its end, or at the Sync), or holding a COMMIT of the block, a
 * DO or a CALL. `inBlock` is the session's transaction status when it is known (nothing of the
 * session in flight), undefined when it is not: then any text may commit.
 */
export function mayCommit(statements: readonly StatementAnalysis[], inBlock: boolean | undefined): boolean {
  if (inBlock === undefined) return true
  let block = inBlock
  for (const s of statements) {
    const top = s.operations[0]
    if (!top || s.operations.some((o) => o.class === 'unknown' || MAY_COMMIT_INSIDE.has(o.command))) return true
    switch (top.command) {
      case 'begin':
        block = true
        continue
      case 'commit':
        if (block) return true
        continue
      case 'rollback':
      case 'prepare_transaction':
        block = false
        continue
      case 'savepoint':
      case 'release':
      case 'rollback_to':
        continue
    }
    if (!block) return true
  }
  return false
}

/** The context of a statement judged again after a wait: the session's transaction status as it is now. */
export function contextNow(ctx: StatementContext): StatementContext {
  const status = ctx.session.txStatus
  return status === undefined || status === ctx.transactionStatus ? ctx : Object.create(ctx, {transactionStatus: {value: status}})
}

/** A refusal as a verdict. */
export function refusedWith(error: PgNoticeFields): StatementVerdict {
  return {action: 'reject', error}
}

export interface GateDeps {
  /** Whether the connection let through a change it has not settled (the guard's `changing`). */
  changing(connectionId: number): boolean
  /** The statements of a text, as the guard analysed them. */
  statementsOf(sql: string, ctx: StatementContext): readonly StatementAnalysis[]
  /** A commit is about to be sent: what was judged before it must be judged again where it is bound or run. */
  committing(): void
}

/**
 * The policy stage's side of the gate: its judgement waits while another connection commits, and
 * every verdict of the pipeline is admitted last (`Admission`), where a commit waits for the others.
 */
export function gatedStatements(gate: ChangeGate, deps: GateDeps): {
  judge(sql: string, ctx: StatementContext, judge: (sql: string, ctx: StatementContext) => PolicyVerdict | Promise<PolicyVerdict>): PolicyVerdict | Promise<PolicyVerdict | StatementVerdict>
  admission: Admission
} {
  /** Waits for another connection's commit, then goes on (with the session as it is then). */
  const afterCommits = <V extends PolicyVerdict | StatementVerdict>(ctx: StatementContext, then: (now: StatementContext) => V | Promise<V>): Promise<V | StatementVerdict> =>
    gate
      .waitUntil(() => !gate.blocked(ctx.connectionId), ctx.signal, () => gate.waitedForCommit(gate.committerBesides(ctx.connectionId)))
      .then((refusal) => (refusal ? refusedWith(refusal) : then(contextNow(ctx))))
  const waits = (sql: string, ctx: StatementContext) => !runsNothing(deps.statementsOf(sql, ctx))
  /**
   * Judges a text, unless it runs a cursor opened before a commit of a change sent since its
   * transaction began: the cursor's query was judged then, and would run with what the commit made.
   * (A cheap look at the text first: most texts name no cursor.)
   */
  const judgeNow = <V extends PolicyVerdict>(sql: string, ctx: StatementContext, judge: (sql: string, ctx: StatementContext) => V | Promise<V>): V | StatementVerdict | Promise<V> =>
    gate.cursorsStale(ctx.connectionId) && MAY_RUN_CURSOR.test(sql) && runsCursor(deps.statementsOf(sql, ctx)) ? refusedWith(gate.staleCursor()) : judge(sql, ctx)
  /**
   * An approval for one execution is bound (a Parse's) later without being judged again: it lapses
   * once a commit of a change is sent after it was let through (the reviewer saw what it called
   * before). Taken after the statement's own commit, if it is one.
   */
  const lapsing = (verdict: StatementVerdict): StatementVerdict => {
    if (verdict.action !== 'allow' || !verdict.approval || !verdict.once) return verdict
    const epoch = gate.epoch
    // The approvals stage's own (a change committed through another pipeline) stands beside this one.
    const before = verdict.lapsed
    const lapsed = (): PgNoticeFields | undefined =>
      gate.epoch === epoch
        ? before?.()
        : {
            ...gate.waitedForCommit(undefined),
            message: 'dbgate: another of your sessions through dbgate committed a change to the schema after this statement was approved, so the approval no longer covers what it would run; it was not sent',
            hint: 'Send it again (Parse): it is judged, and if need be held, against the schema as changed.',
          }
    return {...verdict, lapsed}
  }

  const admit: Admission['admit'] = (sql, ctx, verdict, began, again) => {
    if (verdict.action !== 'allow') return verdict
    const id = ctx.connectionId
    gate.seen(id, ctx.session)
    if ((gate.blocked(id) || (began !== undefined && began !== gate.epoch)) && waits(sql, ctx)) {
      // Another connection's commit began (or was sent) while this statement was judged: its verdict may be stale.
      if (verdict.approval) {
        return refusedWith({
          ...gate.waitedForCommit(gate.committerBesides(id)),
          message: 'dbgate: another of your sessions through dbgate committed a change to the schema while this statement waited for its approval, so the approval no longer covers what it would run; it was not sent',
          hint: 'Run it again once that commit ends: it is judged, and if need be held, against the schema as changed.',
        })
      }
      return afterCommits(ctx, (now) => again(sql, now))
    }
    if (deps.changing(id)) {
      // Known only at a ReadyForQuery with nothing sent since that may have moved it: an Execute
      // of `ROLLBACK` (or `COMMIT`) answered without a Sync leaves the session outside the block the
      // last ReadyForQuery reported, and its next Sync or simple Query commits what ran meanwhile.
      const known = (ctx.session.pendingCount ?? 0) === 0 && ctx.session.txStatusCurrent !== false
      const status = ctx.session.txStatus ?? ctx.transactionStatus
      if (mayCommit(deps.statementsOf(sql, ctx), known ? status !== 'I' : undefined)) {
        deps.committing()
        if (gate.inFlightBesides(id) === undefined) {
          gate.committing(id, ctx.session)
          return lapsing(verdict)
        }
        gate.admitting(id, ctx.session)
        return gate
          .waitUntil(() => gate.inFlightBesides(id) === undefined, ctx.signal, () => gate.waitedForOthers(gate.inFlightBesides(id)))
          .then((refusal) => {
            if (refusal) {
              gate.withdraw(id)
              return refusedWith(refusal)
            }
            gate.committing(id, ctx.session)
            return lapsing(verdict)
          })
      }
    }
    if (began !== undefined) gate.reserve(id)
    return lapsing(verdict)
  }

  /**
   * A Sync or Execute of a connection whose client stopped short of the Sync of its change, so the
   * others went on (`ChangeGate.paused`): either may commit the change, so it waits for their
   * statements as a COMMIT would, and is then the commit under way.
   */
  const commitPoint: NonNullable<Admission['commitPoint']> = (id, session, signal) => {
    if (!gate.released(id)) return undefined
    const commit = (): undefined => {
      deps.committing()
      gate.committing(id, session)
      return undefined
    }
    if (gate.inFlightBesides(id) === undefined) return commit()
    return gate.waitUntil(() => gate.inFlightBesides(id) === undefined, signal(), () => gate.waitedAtCommitPoint(gate.inFlightBesides(id))).then((refusal) => (refusal ? {...refusal, severity: 'FATAL'} : commit()))
  }

  return {
    judge: (sql, ctx, judge) => (gate.blocked(ctx.connectionId) && waits(sql, ctx) ? afterCommits(ctx, (now) => judgeNow(sql, now, judge)) : judgeNow(sql, ctx, judge)),
    admission: {epoch: () => gate.epoch, admit, commitPoint, awaited: (id) => gate.committingNow(id)},
  }
}
