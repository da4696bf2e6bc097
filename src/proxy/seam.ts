/**
 * The seams between the tunnel and the rest of dbgate. The proxy calls these; policy, masking and
 * audit implement them. Data flows one way: client → statement hook → upstream; upstream → result
 * filter → client; every statement → event sink.
 */
import type {AssumedSetting} from '../policy/assumed-settings.js'
import type {ApprovalSettlement} from '../approvals/types.js'
import type {Identity} from '../identity/types.js'
import type {MaskedColumn} from '../masking/plan.js'
import type {Analysis, Decision, StatementAnalysis} from '../policy/types.js'
import type {FieldDescription, PgNoticeFields} from '../wire/fields.js'

export type ProtocolPath = 'simple' | 'parse' | 'function-call'

/**
 * What a named prepared statement, portal or cursor runs: statement `statementIndex` (0-based) of
 * `sql`. `definedBy` says how to read that statement: `parse` means the statement itself (a
 * protocol Parse); `prepare` and `declare` mean the inner query of that PREPARE or DECLARE.
 */
export interface NamedDefinition {
  readonly name: string
  readonly sql: string
  readonly statementIndex: number
  readonly definedBy: 'parse' | 'prepare' | 'declare'
  /** The verdict the defining text was let through with. */
  readonly verdict: StatementVerdict
  /**
   * ReadyForQuery messages the session had received when it was defined (when its Parse, Bind or
   * defining text was sent, or its PREPARE or DECLARE acknowledged). Code the tunnel cannot see
   * into that ran before the next one (a DO block, a function: `EXECUTE 'DEALLOCATE p'`, then
   * `EXECUTE 'PREPARE p AS …'`, or CLOSE and OPEN of a cursor) may have replaced what the name runs.
   */
  readonly readyAt?: number
  /** For a portal: the prepared statement it was bound from, as it was at Bind. */
  readonly statement?: NamedDefinition
}

/**
 * The session as the server acknowledged it, read-only. Prepared statements, portals and cursors
 * appear here only once the server has confirmed them (ParseComplete, BindComplete, a PREPARE or
 * DECLARE CURSOR command tag), or when an earlier message of the same pipeline segment defines them
 * (the server skips the rest of the segment if that message fails). A name whose meaning is still
 * in flight reads as unknown.
 */
export interface SessionView {
  /** A prepared statement ('' is the unnamed one): protocol Parse or SQL PREPARE, one namespace on the server. */
  statement(name: string): NamedDefinition | undefined
  /** A portal by name: a protocol portal (Bind) or an SQL cursor (DECLARE), one namespace on the server. */
  portal(name: string): NamedDefinition | undefined
  /**
   * Run-time parameters as the server last reported them (ParameterStatus): client_encoding,
   * standard_conforming_strings, is_superuser, session_authorization, search_path (PostgreSQL 18+),
   * and the rest the server reports.
   */
  readonly parameters: ReadonlyMap<string, string>
  /**
   * ReadyForQuery messages received so far. Each ends a simple Query or a Sync, and with it any
   * implicit transaction: what ran before it is committed when `transactionStatus` is then idle.
   */
  readonly readyCount?: number
  /**
   * What `readyCount` will be once every ReadyForQuery owed for what was already sent has arrived.
   * A statement judged now ends with a later one: a change it makes is behind that count, not
   * behind `readyCount` (a reply to an earlier text in a pipeline says nothing about it).
   */
  readonly readyAwaited?: number
  /** Replies the server still owes for what was sent: above 0, a statement of this session may be running. */
  readonly pendingCount?: number
  /** The transaction status of the last ReadyForQuery (what `StatementContext.transactionStatus` was made from). */
  readonly txStatus?: 'I' | 'T' | 'E'
  /**
   * False once an extended-protocol Execute was sent after that ReadyForQuery: it may have begun or
   * ended a transaction block, so `txStatus` may no longer be the session's until the next one.
   */
  readonly txStatusCurrent?: boolean
}

export interface StatementContext {
  sessionId: string
  connectionId: number
  protocol: ProtocolPath
  /** Prepared statement name for Parse ('' is the unnamed statement). */
  statementName?: string
  /**
   * For Parse: the parameter type OIDs the client declared (0 leaves a parameter's type to the
   * server). Each Bind converts its values into these types, running a domain's checks.
   */
  readonly paramTypes?: readonly number[]
  /**
   * When a protocol Bind is judged: the values it binds, in order, as text (a value sent in binary
   * format as `b64:` and its base64; NULL as null). A statement held for a reviewer then is shown,
   * and approved, with exactly these.
   */
  readonly bindValues?: readonly (string | null)[]
  /** Transaction status last reported by the server: I idle, T in a block, E failed block. */
  transactionStatus: 'I' | 'T' | 'E'
  database: string
  user: string
  applicationName?: string
  /** The acknowledged session state: prepared statements, portals, cursors, reported parameters. */
  readonly session: SessionView
  /**
   * For the results of an Execute or a Describe: the statement or portal they come from, as it was
   * when bound (later redefinitions of its name do not change what an existing portal runs). The
   * `sql` handed to a result filter with it is `definition.sql`.
   */
  readonly definition?: NamedDefinition
  /**
   * Aborted when the client gives up on this statement while its verdict is pending (a
   * CancelRequest, e.g. Ctrl-C in psql) or disconnects. A hook that waits (an approval) should
   * then answer with a rejection at once.
   */
  readonly signal: AbortSignal
  /**
   * Resolves once the server has answered everything this session sent before the statement (it
   * asks for its answers with a Flush, which an extended-protocol batch without a Sync needs), so
   * `session` shows what the statement will run under; rejects if the connection ends first. A
   * hook that shows the session to a person (an approval's settings) waits for it.
   */
  answered?(): Promise<void>
  /**
   * Runs read-only queries of the tunnel's own in this server session, once nothing of the
   * client's is in flight (after `answered`), and gives each one's rows as text: the session as
   * the server holds it (a custom setting, the role, a declared type's name), for a person to read.
   * Sent under names of their own, they leave the client's unnamed statement and portal alone;
   * their replies never reach the client. Rejects when the server refuses them or the session is
   * busy; one that would upset the client's batch or transaction ends the connection.
   */
  askSession?(statements: readonly string[]): Promise<(string | null)[][][]>
  /** The client's startup packet as the session began with it (names of settings it placed, `user`, `database`). */
  readonly startupParameters?: Readonly<Record<string, string>>
  /** Sends a NoticeResponse to the client now, e.g. "waiting for approval …". */
  notify(notice: PgNoticeFields): void
}

/**
 * What the stages in front of the proxy found out about a statement, carried on its verdict for
 * the stages after them (approvals, recording). The proxy hands it on and never reads it.
 */
export interface VerdictBasis {
  /** The guardrails' decision; absent where no guardrails ran (switched off, or the proxy's own refusal). */
  readonly decision?: Decision
  /** How the approval of a held statement ended, when it was held. */
  readonly approval?: ApprovalSettlement
  /**
   * The guardrails' analysis of the statement's text (before EXECUTEs were resolved), so the
   * recording finds its tables without looking the text up again: a text answered by its shape is
   * not kept in the text cache (`AnalysisCache.analyze`).
   */
  readonly analysis?: Analysis
  /** The statements as the guardrails judged them: calls resolved against the target's catalog (a view's functions included). */
  readonly judged?: readonly StatementAnalysis[]
}

/**
 * What the proxy does with a statement: run it, or answer with an error in its place. A statement
 * that needs approval never reaches the proxy as such (see `HoldVerdict` in src/policy/verdict.ts):
 * the approvals stage settles it into one of these first.
 */
export type StatementVerdict =
  /**
   * `once`: the statement may run exactly once (an approval covers one execution). A Parse
   * allowed this way can be bound once; binding it again is refused.
   */
  | ({
      action: 'allow'
      notices?: PgNoticeFields[]
      once?: boolean
      /**
       * With `once`: why the approval no longer covers the statement, when it does not (what it
       * calls changed since it was approved). A Parse is bound, and its portal executed, under the
       * approval without being judged again (it would be held again), so this is asked instead.
       * Without `once` (a reviewer's window): why the grant no longer covers it (the window has
       * closed); each later Bind and Execute of what it let through is then judged again.
       */
      lapsed?: () => PgNoticeFields | undefined
      /**
       * For a Parse: not yet decided, it takes values a reviewer must see (`$1`, declared parameter
       * types), so it is sent on (a Parse runs nothing) and each Bind of it is judged again with
       * its values (`StatementContext.bindValues`), and held there if need be.
       */
      atBind?: boolean
    } & VerdictBasis)
  | ({action: 'reject'; error: PgNoticeFields} & VerdictBasis)

/**
 * Judges one statement text (a whole simple Query message, which may hold several statements, or
 * one Parse) before it reaches the server. Throwing counts as a rejection (fail closed).
 */
export type StatementHook = (sql: string, ctx: StatementContext) => StatementVerdict | Promise<StatementVerdict>

/**
 * Where a result filter's batch of messages goes (`dataRowMessages`, `copyDataMessages`), in order:
 * buffers pushed, and where the sink can (`passRange`, the tunnel's outbox), runs of unchanged
 * messages named as ranges of their source, which then need no view of their own.
 */
export interface MessageSink {
  push(message: Buffer): unknown
  passRange?(source: Buffer, start: number, end: number): void
}

/**
 * Rewrites one statement's results as they leave the server. Every method may return `undefined`
 * for "unchanged" so the proxy forwards the original bytes untouched (the fast path).
 */
export interface ResultFilter {
  rowDescription?(fields: FieldDescription[]): FieldDescription[] | undefined
  /**
   * `fields` describes the columns where the tunnel saw a RowDescription for this result (simple
   * queries always; extended ones when the client described the statement or portal).
   */
  dataRow?(values: (Buffer | null)[], fields: FieldDescription[] | undefined): (Buffer | null)[] | undefined
  /**
   * `dataRow` on the DataRow message's body as it arrived: the whole rewritten message (type byte
   * and length included), or undefined for unchanged. Where present the proxy calls this instead,
   * so that a filter can copy clean columns through without splitting the row into values. The
   * body is `body[from, end)` (the proxy passes the chunk the message lies in, saving views per row).
   */
  dataRowMessage?(body: Buffer, fields: FieldDescription[] | undefined, from?: number, end?: number): Buffer | undefined
  /**
   * `dataRowMessage` on the consecutive DataRow messages that lie whole in `source` from `start`
   * on (each no longer than `maxBody`, as the framer requires): appends what the client gets for
   * them, in order, to `out` (rewritten rows as few views as their bytes allow, unchanged ones as
   * views of `source`) and returns where the last message it took ends. It stops before anything
   * that is not such a message; the proxy hands it only a `source` that holds received bytes to
   * its end. Saves the proxy a call, a view and a write entry per row.
   */
  dataRowMessages?(source: Buffer, fields: FieldDescription[] | undefined, start: number, maxBody: number, out: MessageSink): number
  copyData?(chunk: Buffer): Buffer | undefined
  /** `copyData` returning the whole rewritten CopyData message; the proxy prefers it where present. The payload is `chunk[from, end)`. */
  copyDataMessage?(chunk: Buffer, from?: number, end?: number): Buffer | undefined
  /** `copyDataMessage` on consecutive CopyData messages, as `dataRowMessages`. */
  copyDataMessages?(source: Buffer, start: number, maxBody: number, out: MessageSink): number
  notice?(fields: PgNoticeFields & Record<string, string | undefined>): (PgNoticeFields & Record<string, string | undefined>) | undefined
  error?(fields: PgNoticeFields & Record<string, string | undefined>): (PgNoticeFields & Record<string, string | undefined>) | undefined
  notification?(channel: string, payload: string): string | undefined
  /** A setting the server reports changed (`application_name` set by a function): its value as the client may see it. */
  parameterStatus?(name: string, value: string): string | undefined
  /*
   * What the filter did to this statement's results, for the recording (never the values). A
   * masking filter reports them; absent means nothing was masked here, not that nothing needed it.
   */
  /** The output columns it masked, and why. */
  readonly maskedColumns?: readonly MaskedColumn[]
  /** Values replaced in this statement's output. */
  readonly maskedValues?: number
  /** The statement's last error as the client received it (masked). */
  readonly clientError?: {code: string; message: string}
  /**
   * The statement runs a prepared statement or portal that code the analysis cannot see into may
   * have replaced since it was defined: where its parameters go is not what its recorded text says.
   */
  readonly paramsUnproven?: boolean
}

/**
 * Called once per statement run (and once per session with `sql === null` for what arrives outside
 * any statement: notifications, asynchronous notices).
 */
export type ResultFilterFactory = (sql: string | null, ctx: StatementContext, verdict: StatementVerdict) => ResultFilter | undefined

/**
 * Bind parameters as a statement event carries them. A value longer than `RECORDED_VALUE_BYTES`
 * (and the margin a scanner needs to see a value cut at that point whole) is cut there, and
 * `cutFrom[i]` holds its full length in bytes (0 for a value kept whole): a log line holds a prefix
 * of a 300 MB value, not the value.
 */
export type BoundParams = (string | null)[] & {cutFrom?: number[]}

/** Bytes of one value (a preview cell, a bind parameter) the recording keeps; the rest is counted, not kept. */
export const RECORDED_VALUE_BYTES = 2048
/**
 * Bytes kept past that before masking, so that a sensitive value the cut falls inside is still
 * whole for the scanner (e-mails, phone numbers, card numbers are far shorter) and masked whole.
 */
export const RECORDED_VALUE_MARGIN = 256

/** What follows a recorded value that was cut: how long the whole was. */
export function cutMark(fullBytes: number): string {
  return `…[cut, ${fullBytes} bytes in all]`
}

/** `text` (of a value `fullBytes` long) as kept: its first `RECORDED_VALUE_BYTES` characters, never half a surrogate pair, and the mark. */
export function cutText(text: string, fullBytes: number): string {
  let end = Math.min(RECORDED_VALUE_BYTES, text.length)
  const last = text.charCodeAt(end - 1)
  if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--
  return `${text.slice(0, end)}${cutMark(fullBytes)}`
}

/** A prepared statement a text EXECUTEs: its name, and its text as the server holds it. */
export interface ExecutedStatement {
  name: string
  sql: string
}

/** One statement's outcome, emitted once it completes (or is rejected). */
export interface StatementEvent {
  sessionId: string
  connectionId: number
  protocol: ProtocolPath
  statementName?: string
  sql: string
  /** Bind parameters as text where known (extended protocol); binary ones as base64 with a `b64:` prefix. Long ones are cut (`BoundParams`). */
  params?: BoundParams
  /** The parameter types its Parse declared (OIDs, 0 for one left to the server), where it declared any. */
  paramTypes?: readonly number[]
  verdict: StatementVerdict
  startedAt: Date
  durationMs: number
  /** CommandComplete tags, one per statement that completed (a simple Query may hold several). */
  commandTags: string[]
  rows: number
  /**
   * `aborted`: the server skipped it (after an earlier error up to Sync), or it was never sent, so
   * it never ran. `unanswered`: it was sent, and the connection closed (the client hung up) before
   * the server answered: the server runs it to its end (or its first error) all the same, so it may
   * have run and committed; the tunnel does not know.
   */
  outcome: 'ok' | 'error' | 'rejected' | 'cancelled' | 'aborted' | 'unanswered' | 'bound'
  /**
   * The Execute stopped at the client's row limit (PortalSuspended): `rows` and `commandTags` are
   * this part's, and a later Execute of the portal is its own statement event. A write with
   * RETURNING changed all its rows at the first part, however few the client fetched.
   */
  suspended?: boolean
  /**
   * The statements made by a protocol Parse that its text EXECUTEs by SQL (`execute wipe(5)`), and
   * those they EXECUTE in turn: the session's log has no other record of their text. A statement
   * made by SQL `PREPARE` is not listed: its PREPARE is in the log.
   */
  executes?: readonly ExecutedStatement[]
  error?: {code: string; message: string}
  /** The result filter that saw this statement's results, so the recorder can ask what it masked. */
  resultFilter?: ResultFilter
  /** The first rows as the client received them, when a result filter (masking) handled them. */
  preview?: {columns: string[]; rows: (string | null)[][]; truncated: boolean}
}

export interface SessionInfo {
  sessionId: string
  connectionId: number
  database: string
  /** The database user the session runs as, as the server reported it at login. */
  user: string
  /** The user name in the client's startup packet: only the tunnel reads it, it names no role. */
  clientUser?: string
  applicationName?: string
  clientAddress: string
  startedAt: Date
  /**
   * The identity this session signed in with, where it is its own (the gateway: a person's sessions
   * share one pipeline, each signed in with its own token); the recording names it, token and all.
   */
  identity?: Identity
}

export interface ProxyHooks {
  /** Judges the client's startup parameters; returning an error refuses the connection. */
  startup?: (params: Record<string, string>) => PgNoticeFields | undefined
  /**
   * Settings the hooks depend on besides the tunnel's own (masking's `lc_messages`): read before
   * every session starts and followed through ParameterStatus, as those are.
   */
  assumedSettings?: readonly AssumedSetting[]
  statement?: StatementHook
  /**
   * A number that changes whenever what `statement` judges against may have changed (policy's view
   * of the target's functions, after DDL or a re-read). A named prepared statement judged under
   * another number is judged again when it is bound: the server runs the function bodies it has
   * then, not the ones the statement was judged by.
   */
  verdictGeneration?: () => number
  /**
   * Called before a Sync or an Execute is sent (either may commit what the session sent before it:
   * the Sync its implicit transaction, an Execute a COMMIT). Undefined lets it go at once; a promise
   * holds it, and what the client sends after it, until it settles: with undefined it goes, with an
   * error the connection ends with it (the server rolls back what the message would have committed).
   * `signal` is made only for a message held: it aborts when the client cancels or leaves.
   */
  commitPoint?: (connectionId: number, session: SessionView, signal: () => AbortSignal) => Promise<PgNoticeFields | undefined> | undefined
  /**
   * Whether other sessions wait on what this connection runs (its change's commit). An Execute it
   * sends with no Sync or Flush after it is then followed by a Flush, so that the server answers it
   * rather than keep its replies: the tunnel then knows whether it still runs.
   */
  awaited?: (connectionId: number) => boolean
  resultFilter?: ResultFilterFactory
  onStatement?: (event: StatementEvent) => void
  /**
   * Called when the server reports no transaction open (a ReadyForQuery with status I), before the
   * client sees it: whatever the connection changed is committed (or rolled back) by now, while a
   * statement's own event may come before its commit (an extended-protocol Execute's ends at its
   * CommandComplete; the Sync commits).
   */
  onIdle?: (connectionId: number, session: SessionView) => void
  /**
   * Called before the tunnel writes a client replies that may answer statements reported through
   * `onStatement` (once per chunk of replies, not per statement): what must be recorded before a
   * client sees a result is written here, all of it at once. An error back means the events of
   * `sessionId` could not be written: the replies are withheld and the connection ends, so that no
   * client sees a result its record would not survive.
   */
  beforeRelease?: (sessionId: string) => Error | undefined
  /**
   * Asked after each chunk of replies: a message when the session's record has grown as large as
   * one session's may (past it, the tools that read it would refuse all of it). The connection then
   * ends as at a shutdown: what is in flight finishes and is recorded, nothing new is sent on, and
   * the client gets the message.
   */
  logFull?: (sessionId: string) => string | undefined
  /**
   * Called before `beforeRelease` when the replies about to reach the client hold rows (DataRow,
   * CopyData) or a notice of a statement that has not finished: its `onStatement` comes later, and a tunnel
   * killed meanwhile would leave no trace of what the client has already read. Once per statement;
   * `event.outcome` is not known yet and `rows` counts the rows sent so far.
   */
  onRowsReleased?: (event: StatementEvent) => void
  /**
   * Records an event of another kind (`mcp.tool_refused`) in a live session's log, chained and
   * signed like its statements, and writes it at once. False when that session is not recorded.
   */
  recordEvent?: (sessionId: string, type: string, payload: unknown) => boolean
  onSessionStart?: (session: SessionInfo) => void
  onSessionEnd?: (session: SessionInfo, reason: string) => void
  /** Drops whatever per-connection state a hook keeps. */
  onConnectionClosed?: (connectionId: number) => void
  /**
   * Called once after `onConnectionClosed`, when the server has closed the connection's upstream
   * socket: a client that hangs up does not stop what the server is running for it (a text that
   * ends in COMMIT runs on, and commits), so until then it may still change the catalog.
   */
  onUpstreamClosed?: (connectionId: number) => void
  /** Called once when the tunnel has closed every connection: flush, ship, release. */
  dispose?: () => Promise<void>
  /** How many rows of each result to keep for `StatementEvent.preview` (0: none). */
  previewRows?: number
  /**
   * The memory the result filter writes rewritten messages into, given back once they are
   * written: `mark` before the connection handles a chunk of replies, `written` after it has
   * written what the chunk produced to a client socket that holds none of it (its write is not
   * queued). Everything the filter wrote in between went only to that write.
   */
  outputMemory?: {mark(): void; written(): void}
}
