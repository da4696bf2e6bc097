import {createHash} from 'node:crypto'
import {userInfo} from 'node:os'
import {createRequire} from 'node:module'
import {createRecordingHooks} from '../audit/recording-hooks.js'
import type {RecordedDecision, StatementDetails} from '../audit/events.js'
import {normalizeByShape} from '../audit/normalize-by-shape.js'
import {Recorder, writtenBytesInProcess, type SessionRecorder} from '../audit/recorder.js'
import {Shipper, shipPending} from '../audit/shipper.js'
import {defaultKeyDir, loadOrCreateInstallationKey, publishKey} from '../audit/signing.js'
import {defaultSpoolDir} from '../audit/spool.js'
import {openBucket} from '../bucket/index.js'
import type {DbgateConfig, TargetConfig} from '../config/types.js'
import type {AgentInfo, Identity} from '../identity/types.js'
import {DEFAULT_MAX_STATEMENT_SIZE, sharedAnalysisCache} from '../policy/index.js'
import {cutMark, cutText, type BoundParams, type ProxyHooks, type StatementEvent} from '../proxy/seam.js'
import type {Analysis, Decision, StatementAnalysis, StatementClass} from '../policy/types.js'
import {formatMaskedColumn, redacted, type MaskingFilterFactory} from '../masking/index.js'
import {changeWeight, CursorLedger} from './cursor-ledger.js'

export interface RecordingSetup {
  hooks: Pick<ProxyHooks, 'onSessionStart' | 'onStatement' | 'onRowsReleased' | 'onSessionEnd' | 'beforeRelease' | 'logFull'>
  /** Ends open sessions, ships what it can, stops the shipper. */
  close(): Promise<void>
  /** A live session's recorder, for events other than statements (e.g. `approval.*`). */
  session(sessionId: string): SessionRecorder | undefined
}

export interface RecordingOptions {
  config: DbgateConfig
  target: TargetConfig
  identity?: Identity
  env?: NodeJS.ProcessEnv
  log: (level: 'info' | 'warn' | 'error', message: string) => void
  policy?: {hash: string; version: string}
  /** Masks sensitive values in free text the recording keeps (errors as the server wrote them). */
  maskText?: (text: string) => string
  /** Masks a statement's bind parameters by where they go (`MaskingFilterFactory.maskParams`); without it they are not recorded. */
  maskParams?: MaskParams
  /** Masks the values an error quotes back where the parameters are masked (`MaskingFilterFactory.maskParamEchoes`). */
  maskParamEchoes?: (sql: string, message: string) => string
  /** The AI agent every session of this tunnel belongs to (`dbgate mcp`). */
  agent?: AgentInfo
}

export function dbgateVersion(): string {
  return (createRequire(import.meta.url)('../../package.json') as {version: string}).version
}

/** A stable digest of the policy a target runs under, so auditors can tell which one applied. */
export function policyHash(target: TargetConfig): string {
  const rules = target.rules.map(({source: _source, ...rule}) => rule)
  return createHash('sha256').update(JSON.stringify({pack: target.policy, rules})).digest('hex')
}

/**
 * Stands for the person at the keyboard when the configuration has no identity section: the
 * recording says plainly that nobody was verified.
 */
export function unverifiedIdentity(): Identity {
  const name = safeUserName()
  return {subject: `local:${name}`, name, groups: [], issuer: 'unverified', kind: 'human', tokenHash: '', expiresAt: new Date(8.64e15)}
}

function safeUserName(): string {
  try {
    return userInfo().username
  } catch {
    return 'unknown'
  }
}

/** A statement's bind parameters as the recording may keep them (see `MaskingFilterFactory.maskParams`). */
export type MaskParams = MaskingFilterFactory['maskParams']

export interface DescribeOptions {
  /** Masks free text the recording keeps (an error the server wrote, when no filter saw it). */
  maskText?: (text: string) => string
  /** Masks bind parameters by where they go before they are recorded; without it they are not recorded. */
  maskParams?: MaskParams
  /** Masks the values an error quotes back where the parameters are masked; without it such an error is masked whole. */
  maskParamEchoes?: (sql: string, message: string) => string
  /**
   * The guardrails' size cap, so that the analysis they made of this text is found in the shared
   * cache instead of being made again (an entry made under another cap does not count as a hit).
   */
  maxStatementSize?: number
  /** The sessions' declared cursors, whose FETCHes and MOVEs run their queries. */
  cursors?: CursorLedger
}

/**
 * The recorded tables of an analysis, worked out once: per statement list for a text of one
 * statement (texts of one shape share it, `shape-cache.ts`), per analysis otherwise. Analyses are
 * never changed once made, so neither is this; it is frozen, as it is shared by every event.
 */
const tablesOf = new WeakMap<object, readonly string[]>()
function recordedTables(analysis: Analysis): string[] {
  const key = analysis.statements.length === 1 ? analysis.statements[0]!.tables : analysis
  let tables = tablesOf.get(key)
  if (!tables) {
    const names = new Set<string>()
    for (const s of analysis.statements) for (const t of s.tables) names.add(t.schema ? `${t.schema}.${t.name}` : t.name)
    tables = Object.freeze([...names])
    tablesOf.set(key, tables)
  }
  return tables as string[]
}

/**
 * `tables` with the tables of the prepared statements the text's EXECUTEs ran, as the guardrails
 * resolved them (`judged`, statement by statement): the text `execute wipe` names no table, and
 * recorded so, the DELETE it ran was found by no `sessions search --table` and no report's tables.
 * The common text runs no EXECUTE and gets `tables` itself, unchanged.
 */
function withExecutedTables(tables: string[], analysis: Analysis, judged: readonly StatementAnalysis[] | undefined): string[] {
  if (judged === undefined || !analysis.statements.some((st) => st.operations.some((o) => o.executes !== undefined))) return tables
  const names = new Set(tables)
  for (const st of analysis.statements) {
    if (!st.operations.some((o) => o.executes !== undefined)) continue
    for (const t of judged.find((j) => j.index === st.index)?.tables ?? []) names.add(t.schema ? `${t.schema}.${t.name}` : t.name)
  }
  return [...names]
}

/**
 * `tables` with every relation the guardrails judged the text to reach, as `tables:` rules saw
 * them (each operation's, `StatementVerdict.judged`): behind the views and rules it reads or writes
 * through, in the bodies of the functions and operators it calls, written by the triggers and the
 * foreign keys cascading from its writes. Recorded as the text names them only, `select
 * public.salary_of(1)` over hr.salaries, refused by a rule on hr.*, was found by no `sessions search
 * --table hr.salaries` and counted in no report's tables.
 */
function withJudgedTables(tables: string[], judged: readonly StatementAnalysis[] | undefined): string[] {
  if (judged === undefined) return tables
  // Runs for every statement, and nearly always adds nothing: compared in place, a copy made only to add.
  let out: string[] | undefined
  for (const st of judged) {
    for (const op of st.operations) {
      for (const t of op.tables) {
        if (!holds(out ?? tables, t)) (out ??= [...tables]).push(t.schema ? `${t.schema}.${t.name}` : t.name)
      }
    }
  }
  return out ?? tables
}

/** Whether `names` holds table `t` as the recording writes it (`schema.name`, or the name alone). */
function holds(names: readonly string[], t: {schema?: string; name: string}): boolean {
  for (const n of names) {
    if (!t.schema ? n === t.name : n.length === t.schema.length + 1 + t.name.length && n.startsWith(t.schema) && n.charCodeAt(t.schema.length) === 46 && n.endsWith(t.name)) return true
  }
  return false
}

/**
 * The analysis of the event's text: the one the guardrails judged it by, carried on its verdict
 * (a text answered by its shape is not in the text cache), else the shared cache's. The verdict's
 * is used only when it is of this very text; the cap is the target's for both.
 */
function analysisOf(event: StatementEvent, maxStatementSize: number | undefined): Analysis {
  const carried = event.verdict.analysis
  if (carried !== undefined && carried.sql === event.sql) return carried
  return sharedAnalysisCache.analyze(event.sql, {maxStatementSize})
}

/**
 * The class of a whole text. The policy's decisive statement is the first of a text whose
 * statements were all allowed, so `select 1; delete from orders` and `begin; insert …; commit` were
 * recorded as a read and as a transaction: a text recorded as a read, a transaction or a session
 * setting takes the weightiest class that changes something among every operation of its
 * statements and of what the guardrails judged it to reach (function bodies, rules, triggers).
 */
function textClass(analysis: Analysis | undefined, judged: readonly StatementAnalysis[] | undefined, decided: StatementClass | undefined): StatementClass | undefined {
  if (decided !== undefined && decided !== 'read' && decided !== 'session' && decided !== 'transaction') return decided
  let cls: StatementClass | undefined = decided
  let weight = 0
  for (const list of [analysis?.statements, judged]) {
    for (const st of list ?? []) {
      for (const op of st.operations) {
        const w = changeWeight(op.class)
        if (w > weight) {
          weight = w
          cls = op.class
        }
      }
    }
  }
  return cls
}

/** What the recorder stores for a statement, from the policy decision and approval on its verdict. */
export function describeStatement(event: StatementEvent, opts: DescribeOptions = {}): StatementDetails {
  const {maskText} = opts
  const {decision, approval} = event.verdict
  const decisive = decision?.decisive ?? decision?.statements[0]
  const analysis = event.sql ? analysisOf(event, opts.maxStatementSize) : undefined
  // What was judged is this text's only when the verdict's analysis is (a stage may hand on another text's verdict).
  const judgedHere = event.verdict.analysis?.sql === event.sql ? event.verdict.judged : undefined
  const tables = analysis ? withJudgedTables(withExecutedTables(recordedTables(analysis), analysis, event.verdict.judged), judgedHere) : undefined
  // Member by member, not with spreads: this runs for every statement.
  let details: StatementDetails
  if (decision?.syntaxError) {
    // A typo, answered as the server would answer it: not a policy decision, so no class or rule.
    details = {decision: 'syntax_error', tables: []}
  } else {
    details = {
      class: textClass(analysis, judgedHere, decisive?.class),
      // A held statement is recorded with how its approval ended, not as the policy's `require_approval`.
      decision: approval ? approval.decision : decision ? recordedAction(decision.action, event.verdict.action) : event.verdict.action === 'reject' ? 'deny' : 'allow',
      ruleId: decisive?.ruleId,
      tables,
    }
    if (approval) details.approvalId = approval.id
    if (event.preview) details.preview = event.preview
    if (opts.cursors && analysis) opts.cursors.apply(event, analysis, details)
  }
  addMaskingDetails(details, event, maskText, opts)
  const cut = event.verdict.action === 'reject' ? cutRefusedText(event.sql, opts.maxStatementSize) : undefined
  if (cut !== undefined) details.sql = cut
  return details
}

/** How much of a text refused for its size the recording keeps. */
const REFUSED_TEXT_KEPT = 64 * 1024

/**
 * A text the tunnel refused because it is over `tunnel.maxStatementSize` never ran: its beginning
 * and its length are the evidence. Kept whole, one such text (a client may send up to
 * maxMessageSize, 1 GiB) made the session's log too large for the tools that read it (list,
 * search, replay, verify, report stop at 256 MiB), hiding every other statement of the session.
 */
export function cutRefusedText(sql: string, maxStatementSize = DEFAULT_MAX_STATEMENT_SIZE): string | undefined {
  if (sql.length <= REFUSED_TEXT_KEPT) return undefined
  // A UTF-16 code unit is at most 3 bytes of UTF-8: a text this short is surely under the size.
  if (sql.length * 3 <= maxStatementSize) return undefined
  const bytes = Buffer.byteLength(sql)
  if (bytes <= maxStatementSize) return undefined
  let end = REFUSED_TEXT_KEPT
  const last = sql.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${sql.slice(0, end)}${cutMark(bytes)}`
}

/**
 * The decision recorded for a statement no reviewer decided on. A statement policy holds for a
 * reviewer that the tunnel refuses without asking one (no signed-in identity, no reviewers, a named
 * prepared statement, a cursor, COPY FROM STDIN) never ran: it is a denial by the rule that held it,
 * and counts as one in the totals, `--denied` and the report. Recorded as `require_approval`, which
 * no reader counts as denied, it was counted as an error.
 */
function recordedAction(action: Decision['action'], verdict: StatementEvent['verdict']['action']): RecordedDecision {
  if (action === 'warn') return 'allow'
  if (action === 'require_approval' && verdict === 'reject') return 'deny'
  return action
}

/** How the recording writes a value it has no proof of clean origin for. */
const UNPROVEN = redacted('untraceable')

/**
 * Which output columns were masked and why (never the values), the bind parameters as masked, and
 * the error as the client received it: a recording never holds more than the client was shown.
 */
function addMaskingDetails(details: StatementDetails, event: StatementEvent, maskText: ((text: string) => string) | undefined, opts: DescribeOptions): void {
  const filter = event.resultFilter
  const masked = filter?.maskedColumns
  // The server's own text of an error can quote values the client only saw masked.
  let error = event.error && (filter?.clientError ?? (maskText ? {code: event.error.code, message: maskText(event.error.message)} : undefined))
  if (masked && masked.length > 0) details.maskedColumns = masked.map(formatMaskedColumn)
  // Counted only where a masking filter ran: absent means "not masked here", not "nothing to mask".
  if (typeof filter?.maskedValues === 'number') details.maskedValues = filter.maskedValues
  // Without a masker the recorder must not see clear parameters at all.
  if (event.params) {
    const params = recordedParams(event, event.params, opts.maskParams)
    details.params = params
    // The client's own value, quoted back by the error it caused (`invalid input syntax for type
    // integer: "Dora Quill"`), is shown to the client as it was sent, since the statement read
    // nothing sensitive; the recording keeps it no more than it keeps the parameter.
    if (error && params.some((p, i) => p !== event.params![i])) error = {code: error.code, message: opts.maskParamEchoes ? opts.maskParamEchoes(event.sql, error.message) : UNPROVEN}
    // A value the statement used where nothing proves it clean may be in its output (`select $1`,
    // `returning label` of a table whose CHECK ran code on it): the client is shown its own value,
    // as a clean one, and the preview keeps what the client was shown. Its cells are masked.
    if (details.preview && params.includes(UNPROVEN)) details.preview = {...details.preview, rows: details.preview.rows.map((r) => r.map((c) => (c === null ? null : UNPROVEN)))}
  }
  if (error) details.error = error
}

/**
 * Each parameter masked by where the statement uses it (a value is kept in clear only where it
 * provably goes to a clean column or is a row count), then cut to what the recording keeps of a
 * value (masked first: the cut must not split a value the scanner would have found).
 */
function recordedParams(event: StatementEvent, params: BoundParams, maskParams: MaskParams | undefined): (string | null)[] {
  if (!maskParams) return params.map((p) => (p === null ? null : '<not recorded>'))
  const cutFrom = params.cutFrom
  // A statement that did not complete may have failed on a value (`where id = $1` bound to a
  // name): it never reached the column that would prove it clean.
  // A prepared statement code the analysis cannot see into may have replaced runs what its text does not say.
  const masked = maskParams(event.sql, params, {
    connectionId: event.connectionId,
    accepted: event.outcome === 'ok',
    unproven: event.resultFilter?.paramsUnproven === true,
    paramTypes: event.paramTypes,
  })
  return masked.map((m, i) => {
    const full = cutFrom?.[i]
    return m !== null && full ? cutText(m, full) : m
  })
}

/**
 * Records every session of the tunnel into the local spool (signed with this installation's key)
 * and ships it to the bucket in the background; anything left by an earlier run is shipped too.
 */
export async function startRecording(opts: RecordingOptions): Promise<RecordingSetup> {
  const env = opts.env ?? process.env
  const key = await loadOrCreateInstallationKey(defaultKeyDir(env))
  const bucket = openBucket(opts.config.bucket)
  const identity = opts.identity ?? unverifiedIdentity()
  // Auditors verify logs against keys bound to identities in the bucket; publishing is idempotent.
  await publishKey(bucket, identity, key).catch((e: Error) => opts.log('warn', `could not publish this machine's signing key to the bucket yet: ${e.message}`))
  const spoolDir = defaultSpoolDir(env)
  const recorder = await Recorder.open({
    signer: key,
    dbgateVersion: dbgateVersion(),
    spoolDir,
    previewRows: opts.config.recording.previewRows,
    onError: (e) => opts.log('error', `recording: ${e.message} (events are kept and retried)`),
    normalize: normalizeByShape,
  })
  const shipper = new Shipper({
    bucket,
    signer: key,
    spoolDir,
    intervalMs: 5000,
    // A 1 MiB log is re-shipped every 5 s at most, a 60 MiB one (a day-long session) every minute.
    liveSnapshotBytesPerSecond: 1024 * 1024,
    beforeRun: () => recorder.checkpointLive(),
    // Any session this process records: a gateway's pipelines share one spool.
    writtenBytes: writtenBytesInProcess,
    onError: (e) => opts.log('warn', `shipping recordings: ${e.message} (will retry)`),
  })
  shipper.start()
  // One options object for every statement's description, not one per statement.
  const cursors = new CursorLedger()
  const describeOpts: DescribeOptions = {maskText: opts.maskText, maskParams: opts.maskParams, maskParamEchoes: opts.maskParamEchoes, maxStatementSize: opts.target.tunnel.maxStatementSize, cursors}
  const hooks = createRecordingHooks(recorder, {
    identity,
    target: opts.target.name,
    policy: opts.policy ?? {hash: policyHash(opts.target), version: 'local'},
    agent: opts.agent,
    describe: (event) => describeStatement(event, describeOpts),
  })
  return {
    session: (sessionId) => recorder.session(sessionId),
    hooks: {
      ...hooks,
      onSessionEnd: (session, reason) => {
        hooks.onSessionEnd(session, reason)
        cursors.end(session.sessionId)
        shipper.kick()
      },
    },
    async close() {
      await recorder.close('tunnel closed')
      await shipper.stop()
      // One last, short attempt so a clean exit leaves nothing waiting; what fails stays spooled
      // and ships on the next run (`dbgate sessions sync`, or any tunnel).
      const last = await shipPending({bucket, signer: key, spoolDir}).catch((e: Error) => {
        opts.log('warn', `recordings stay in the local spool for now: ${e.message}`)
        return undefined
      })
      if (last && last.failed.length > 0) opts.log('warn', `${last.failed.length} recording(s) stay in the local spool until the bucket is reachable; \`dbgate sessions sync\` ships them`)
    },
  }
}
