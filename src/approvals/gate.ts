/**
 * Holding a statement for approval inside the tunnel. Policy answers `hold` (src/policy/verdict.ts);
 * this gate files a request in the bucket, tells the client and the tunnel's terminal who must
 * decide, and keeps the statement's promise open while it polls for a decision. Only a decision
 * it can verify itself (verify.ts) lets the statement through; everything else is recorded and
 * ignored. The proxy holds the client's later messages meanwhile, so the statement runs at most
 * once, and only if approved.
 */
import {hostname} from 'node:os'
import type {Bucket} from '../bucket/index.js'
import type {TargetConfig} from '../config/types.js'
import type {IdentityConfig} from '../identity/config.js'
import {agentLabel, identityLabel, type AgentInfo, type Identity} from '../identity/types.js'
import {sharedAnalysisCache} from '../policy/index.js'
import {parseTree} from '../sql/parser.js'
import {eachNode} from '../sql/tree.js'
import type {HoldVerdict, PolicyVerdict} from '../policy/verdict.js'
import type {Decision, StatementAnalysis} from '../policy/types.js'
import {cutText, RECORDED_VALUE_BYTES, type StatementContext, type StatementEvent, type StatementVerdict} from '../proxy/seam.js'
import type {PgNoticeFields} from '../wire/fields.js'
import {oneLine, oneLineSql, settingsLine, shortDuration} from './format.js'
import {generateSealKey} from './seal.js'
import {databaseObjects, objectsMoved, OBJECTS_SQL, type DatabaseObject} from './objects.js'
import {visible} from '../util/visible.js'
import {MAX_REQUEST_BYTES, moveAside, newApprovalId, pollDecision, requestBytes, requestDigest, windowKey, writeOutcome, writeRequest, writeWindow} from './store.js'
import type {ApprovalOutcome, ApprovalRequest, ApprovalSettlement, RecentStatement, GatewaySignature} from './types.js'
import type {VerifiedDecision} from './verify.js'
import type {UnsignedRequest} from './gateway-signature.js'
import {notifyWebhook, slackCode, slackPlain} from './webhook.js'

export type Log = (level: 'info' | 'warn' | 'error', message: string) => void

export interface ApprovalGateOptions {
  bucket: Bucket
  target: TargetConfig
  /** The tunnel user; approvals need a verified one. */
  identity?: Identity
  /** How reviewers' tokens are verified; absent when the configuration has no identity section. */
  identityConfig?: IdentityConfig
  /** Appends an event to the session's recording. */
  record: (sessionId: string, type: string, payload: unknown) => void
  log: Log
  /**
   * Where a held statement's story is told to whoever runs the tunnel (waiting, granted, denied,
   * expired, withdrawn). Default: a warning in the log. The client hears it all as NOTICEs anyway,
   * so a tunnel whose only client is the command it runs (`connect -- psql`) says it only in -v.
   */
  announce?: (message: string) => void
  /** Default 1 s: a decision reaches the tunnel within about that. */
  pollMs?: number
  now?: () => Date
  fetch?: typeof fetch
  /** The AI agent behind every session of this tunnel, shown to reviewers. */
  agent?: AgentInfo
  /** A gateway signs each request it files, so its reviewers seal their tokens only to it (gateway-signature.ts). */
  signRequest?: (request: UnsignedRequest) => GatewaySignature
  /**
   * Changes to the database's schema committed through other pipelines so far (another tunnel of the
   * same person, their agent, another gateway worker, another person): it moves when one commits.
   * This pipeline's own commits are the change gate's (src/pipeline/change-gate.ts).
   */
  catalogMoved?: () => number
  /**
   * Runs a query on the tunnel's catalog connection: the custom setting names the database's code
   * reads (CODE_NAMES_SQL), whose values a request shows. Without it (tests that build a gate by
   * hand), only the names the session and its text give are asked about.
   */
  catalogQuery?: (sql: string) => Promise<Record<string, unknown>[]>
}

interface LiveWindow {
  requestId: string
  class: string
  /** The rule the window was granted under: it covers what that rule holds, not its whole class. */
  ruleId: string
  until: Date
  reviewer: string
}

export interface ApprovalGate {
  /**
   * Settles a hold: waits for a verified decision and answers allow-once or reject; any other
   * verdict passes through unchanged (and synchronously).
   */
  settle(sql: string, ctx: StatementContext, verdict: PolicyVerdict): StatementVerdict | Promise<StatementVerdict>
  /** Remembers a session's statements, so a request shows what came just before it. */
  observe(event: StatementEvent): void
  forgetSession(sessionId: string): void
  /** Windows this tunnel verified and that are still open. */
  liveWindows(): readonly LiveWindow[]
}

const RECENT = 5

/**
 * Reported settings (ParameterStatus) that change what a statement's text means, or as whom it
 * runs, shown to reviewers with every request: a SET of one of them may have scrolled out of the
 * session's last statements, or come in the startup packet (PGOPTIONS) where no statement shows it.
 * application_name is any session's to set, and what a text or an audit trigger reads with
 * current_setting('application_name').
 */
export const REVIEWED_SETTINGS = ['DateStyle', 'IntervalStyle', 'TimeZone', 'search_path', 'session_authorization', 'standard_conforming_strings', 'client_encoding', 'application_name'] as const

/** The reviewed settings the server reported for this session (search_path from PostgreSQL 18 on). */
function reviewedSettings(parameters: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of REVIEWED_SETTINGS) {
    const value = parameters.get(name)
    if (value !== undefined) out[name] = value
  }
  return out
}
/** How many setting names a session's statements may add to what a request reads back: enough for any application, not a memory sink. */
const SESSION_NAMES = 200

/**
 * Settings the server does not report that a held statement may read (current_setting() in an RLS
 * policy, a view, a function, a default), and the role SET ROLE put in place, read back from the
 * server session the statement runs in. The names: `role`; those the session's statements set (SET,
 * set_config) and its startup packet placed; the settings ALTER ROLE / DATABASE … SET gives this
 * session; and every custom setting the database's code or the text names in a
 * current_setting('…') call (CODE_NAMES_SQL, read on the catalog connection). A custom setting is
 * hidden from SHOW ALL and pg_settings, so these are the names there are to ask about. It reads
 * system catalogs and current_setting(…, true) only: nothing in it changes the session, or locks a
 * table of the database's while the statement waits.
 *
 * current_setting(…, true) still fails on a setting only superusers and pg_read_all_settings may
 * read (ALTER DATABASE app SET session_preload_libraries = 'auto_explain' names one for every
 * session of the database), and with it every request of an ordinary role. So a setting is read
 * only where the server lets this role see it (`READABLE_SETTING`); the statement, running as the
 * same role, cannot read the others either.
 */
export function sessionSettingsQuery(names: readonly string[]): string {
  const list = names.map(literal).join(', ')
  return `SELECT n, CASE WHEN ${READABLE_SETTING} THEN pg_catalog.current_setting(n, true) END FROM (
SELECT pg_catalog.unnest(ARRAY[${list}]::pg_catalog.text[])
UNION SELECT pg_catalog.split_part(c, '=', 1) FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) c
 WHERE s.setdatabase OPERATOR(pg_catalog.=) ANY (ARRAY[0::pg_catalog.oid, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())])
 AND s.setrole OPERATOR(pg_catalog.=) ANY (ARRAY[0::pg_catalog.oid, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) SESSION_USER)])
) names(n) WHERE n IS NOT NULL`
}

/**
 * Whether the session may read setting `n`: one pg_settings lists (it leaves out those hidden from
 * this role), a custom one (placeholders are hidden from pg_settings, and none is restricted), one
 * of the built-ins hidden from SHOW ALL that anyone may read, or any at all for a role with the
 * privileges of pg_read_all_settings (superusers have them).
 */
const READABLE_SETTING = `pg_catalog.lower(n) OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.lower(g.name) FROM pg_catalog.pg_settings g)
 OR pg_catalog.strpos(n, '.') OPERATOR(pg_catalog.>) 0
 OR pg_catalog.lower(n) OPERATOR(pg_catalog.=) ANY ('{role,session_authorization,is_superuser,seed}'::pg_catalog.text[])
 OR pg_catalog.pg_has_role('pg_read_all_settings', 'USAGE')`

/** pg_catalog.current_setting(text) and current_setting(text, boolean): pinned OIDs. */
const CURRENT_SETTING_OIDS = [2077, 3294]

/**
 * The custom settings the database's code names in a current_setting('…') call: in function
 * bodies as written, and in what the catalog keeps parsed (RLS policies, column defaults, checks,
 * views' and rules' queries, SQL functions' `BEGIN ATOMIC` bodies), as the call's constant argument.
 * Parsed trees are read as they are stored, never deparsed: deparsing locks each relation, and
 * waits behind a transaction altering one (a migration whose next statement is held). It runs on
 * the tunnel's catalog connection, never in the client's session.
 */
export const CODE_NAMES_SQL = `SELECT NULL::pg_catalog.text AS tree, (pg_catalog.regexp_matches(p.prosrc, 'current_setting\\s*\\(\\s*''([^'']+\\.[^'']+)''', 'gi'))[1] AS name FROM pg_catalog.pg_proc p
UNION ALL SELECT t, NULL FROM (
 SELECT pg_catalog.to_jsonb(p) OPERATOR(pg_catalog.->>) 'prosqlbody' FROM pg_catalog.pg_proc p
 UNION ALL SELECT o.polqual::pg_catalog.text FROM pg_catalog.pg_policy o
 UNION ALL SELECT o.polwithcheck::pg_catalog.text FROM pg_catalog.pg_policy o
 UNION ALL SELECT a.adbin::pg_catalog.text FROM pg_catalog.pg_attrdef a
 UNION ALL SELECT k.conbin::pg_catalog.text FROM pg_catalog.pg_constraint k
 UNION ALL SELECT r.ev_action::pg_catalog.text FROM pg_catalog.pg_rewrite r
) trees(t) WHERE t OPERATOR(pg_catalog.~) ':funcid (${CURRENT_SETTING_OIDS.join('|')}) '`

/**
 * The setting names a stored parse tree passes as constants to current_setting: the first argument
 * of its FUNCEXPR, a text CONST whose value the tree writes as the datum's bytes (varlena header first).
 */
export function namesInTree(tree: string): string[] {
  const out: string[] = []
  const call = new RegExp(`:funcid (?:${CURRENT_SETTING_OIDS.join('|')}) [^{]*?:args \\(\\{CONST :consttype 25 [^\\]{}]*?:constvalue \\d+ \\[ ([-0-9 ]+) \\]`, 'g')
  for (const m of tree.matchAll(call)) {
    const bytes = m[1]!.trim().split(/\s+/).map((b) => Number(b) & 0xff)
    // A 1-byte header (short varlena) has its low bit set; the 4-byte one, written in memory order, not.
    const value = Buffer.from(bytes.slice((bytes[0]! & 1) === 1 ? 1 : 4)).toString('utf8')
    if (value.includes('.')) out.push(value)
  }
  return out
}

/** The type names a Parse declared for its parameters, in order (OID 0, left to the server, is not asked). */
function paramTypesQuery(oids: readonly number[]): string {
  return `SELECT pg_catalog.format_type(t, NULL) FROM pg_catalog.unnest(ARRAY[${oids.map((o) => String(o >>> 0)).join(', ')}]::pg_catalog.oid[]) WITH ORDINALITY u(t, i) ORDER BY i`
}

function literal(v: string): string {
  return `'${v.replace(/'/g, "''")}'`
}

const REPORTED = new Set(REVIEWED_SETTINGS.map((n) => n.toLowerCase()))

/**
 * Of what the server answered, what a reviewer reads beside the reported settings: a custom setting
 * with a value, the role when SET ROLE (or ALTER ROLE … SET role) put one in place, and any setting
 * this session itself changed. A setting never given a value in the session reads NULL and is left out.
 */
function shownSettings(rows: readonly (string | null)[][], changed: ReadonlySet<string>, reported: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  const sorted = [...rows].sort((a, b) => String(a[0]).localeCompare(String(b[0])))
  const had = new Set(Object.keys(reported).map((k) => k.toLowerCase()))
  for (const [name, value] of sorted) {
    if (name == null || value == null) continue
    const lower = name.toLowerCase()
    if (had.has(lower)) continue
    // Reported from PostgreSQL 18 on; asked of an older server, which reports it not at all.
    if (lower === 'search_path') {
      out.search_path = value
      continue
    }
    if (REPORTED.has(lower)) continue
    if (lower === 'role') {
      if (value !== 'none') out.role = value
      continue
    }
    if (lower.includes('.') || changed.has(lower)) out[lower] = value
  }
  return out
}

/** Setting names a text sets (SET, set_config) or, with `calls`, names in a call (current_setting('…'), set_config('…', …)), lower-cased. */
export function settingNames(sql: string, maxStatementSize: number, calls = true): string[] {
  const names = new Set<string>()
  try {
    for (const st of sharedAnalysisCache.analyze(sql, {maxStatementSize}).statements) for (const o of st.operations) if (o.setting && o.setting.name !== 'all') names.add(o.setting.name.toLowerCase())
  } catch {
    // What the analysis cannot read policy refused; the catalog and startup names still count.
  }
  // The calls are found by walking the tree: the analysis (cached) has a text's SETs, not what a PREPARE's query calls.
  if (!calls) return [...names]
  try {
    eachNode(parseTree(sql), (node) => {
      const call = (node as {FuncCall?: {funcname?: {String?: {sval?: string}}[]; args?: {A_Const?: {sval?: {sval?: string}}}[]}}).FuncCall
      const fn = call?.funcname?.[call.funcname.length - 1]?.String?.sval?.toLowerCase()
      const first = call?.args?.[0]?.A_Const?.sval?.sval
      if ((fn === 'current_setting' || fn === 'set_config') && first !== undefined) names.add(first.toLowerCase())
    })
  } catch {
    // Refused by policy already.
  }
  return [...names]
}

/** How many parts, and how much of each part's finding, a request carries: enough to say what runs, not a copy of the catalog. */
const HELD_PARTS = 20
const HELD_DETAIL_CHARS = 1000

/**
 * What needs a reviewer in a held text, part by part, for the request: the reviewer of `insert into
 * audited values (1)` reads which trigger runs which function and why it is held, which the text
 * does not show. Parts alike (the same rule and finding) are listed once.
 */
export function heldParts(decision: Decision): ApprovalRequest['held'] {
  const out: NonNullable<ApprovalRequest['held']> = []
  const seen = new Set<string>()
  const all = decision.holds ?? decision.statements.filter((s) => s.action === 'require_approval')
  for (const h of all) {
    const detail = h.detail === undefined ? undefined : h.detail.length > HELD_DETAIL_CHARS ? `${h.detail.slice(0, HELD_DETAIL_CHARS)}…` : h.detail
    const key = `${h.ruleId}\u0000${detail ?? ''}`
    if (seen.has(key)) continue
    seen.add(key)
    if (out.length === HELD_PARTS) {
      out.push({ruleId: h.ruleId, reason: `and ${all.length - HELD_PARTS} more parts that need a reviewer, not listed here`})
      break
    }
    out.push({ruleId: h.ruleId, reason: h.reason, ...(detail !== undefined ? {detail} : {})})
  }
  return out
}

/** How deep `EXECUTE p` inside a prepared statement is followed for the reviewer (as policy follows it). */
const PREPARED_DEPTH = 4

/**
 * The texts of the prepared statements a held text executes (`EXECUTE p`, the `EXECUTE p($1)` a
 * Bind of an SQL-prepared statement is judged as), and those they execute in turn, as the session
 * holds them now: what runs is that text, which policy judged, and the reviewer must read it too.
 */
function preparedShown(texts: readonly StatementAnalysis[], ctx: StatementContext, maxStatementSize: number): Pick<ApprovalRequest, 'prepared'> {
  const out: NonNullable<ApprovalRequest['prepared']> = []
  // A name the text itself prepares or deallocates (`DEALLOCATE p; PREPARE p AS …; EXECUTE p`) runs
  // what the text shows, not what the session holds under it now.
  if (texts.some((t) => t.deallocate?.all)) return {}
  const seen = new Set<string>(texts.flatMap((t) => [t.prepare?.name, t.deallocate?.name].filter((n): n is string => n !== undefined)))
  let names = texts.flatMap((t) => t.operations.flatMap((o) => (o.executes !== undefined ? [o.executes] : [])))
  for (let depth = 0; depth < PREPARED_DEPTH && names.length > 0; depth++) {
    const next: string[] = []
    for (const name of names) {
      if (seen.has(name)) continue
      seen.add(name)
      const def = ctx.session.statement(name)
      if (!def) continue
      const stmt = sharedAnalysisCache.analyze(def.sql, {maxStatementSize}).statements[def.statementIndex]
      out.push({name, sql: stmt?.text ?? def.sql})
      for (const o of stmt?.operations ?? []) if (o.executes !== undefined) next.push(o.executes)
    }
    names = next
  }
  return out.length > 0 ? {prepared: out} : {}
}

const WAIT_NOTICE = '00000'
const POLICY = '42501'
const CANCELED = '57014'

function clip(v: unknown): string | undefined {
  return typeof v === 'string' ? (v.length > 200 ? `${v.slice(0, 200)}…` : v) : undefined
}

/** Why the wait was withdrawn, when the session is ending rather than the client cancelling (ClientMessages.withdrawVerdict). */
function sessionEnding(signal: AbortSignal): string | undefined {
  const reason: unknown = signal.reason
  return reason instanceof Error && reason.message.startsWith('the session is ending') ? reason.message : undefined
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, {once: true})
  })
}

export function createApprovalGate(opts: ApprovalGateOptions): ApprovalGate {
  const now = opts.now ?? (() => new Date())
  const pollMs = opts.pollMs ?? 1000
  const say = opts.announce ?? ((message: string) => opts.log('warn', message))
  // Announcements name the requester, the reviewer and their reasons: printed, never obeyed.
  const announce = (message: string) => say(visible(message))
  // Kept with their Date: turned into text only for the rare statement that asks for approval.
  const recent = new Map<string, (Omit<RecentStatement, 'at'> & {startedAt: Date})[]>()
  // Settings each session's statements set: what a request reads back from the server for the reviewer.
  const setNames = new Map<string, Set<string>>()
  const windows: LiveWindow[] = []
  const hook = {url: opts.target.approvals.webhook, log: opts.log, fetch: opts.fetch}
  const reviewers = opts.target.reviewers
  const who = reviewers.length > 0 ? `a member of ${reviewers.join(', ')}` : 'a reviewer'

  const record = (sessionId: string, type: string, payload: unknown) => {
    try {
      opts.record(sessionId, type, payload)
    } catch (e) {
      opts.log('error', `recording ${type}: ${(e as Error).message}`)
    }
  }

  const openWindow = (decision: Decision): LiveWindow | undefined => {
    const at = now().getTime()
    for (let i = windows.length - 1; i >= 0; i--) if (windows[i]!.until.getTime() <= at) windows.splice(i, 1)
    // Every operation that needs a reviewer, not each statement's primary one: `create table x as
    // select wipe()` is DDL held by the schema-change rule, and its call is held by another rule,
    // which a window granted on a CREATE INDEX never covered. A decision that does not list them
    // (none made by policy) opens no window.
    const held = decision.holds ?? []
    // A class holds statements for several reasons (DDL: a schema change, a rule or a trigger that
    // runs code later); the reviewer granted the window on one of them, so only that one is waived.
    return windows.find((w) => held.length > 0 && held.every((s) => s.class === w.class && s.ruleId === w.ruleId))
  }

  /** Why a window no longer covers what it let through: it has closed. */
  const windowClosed = (id: string, until: Date): PgNoticeFields | undefined =>
    now().getTime() < until.getTime()
      ? undefined
      : {severity: 'ERROR', code: POLICY, message: `dbgate: the window ${id} closed at ${until.toISOString()}, so it no longer covers this statement`, hint: 'It is judged again, and held for a reviewer if it needs one.'}

  const refuse = (decision: Decision, message: string, hint?: string, detail?: string): StatementVerdict => ({
    action: 'reject',
    error: {severity: 'ERROR', code: POLICY, message, ...(detail ? {detail} : {}), ...(hint ? {hint} : {})},
    decision,
  })

  const unknownSettings = (decision: Decision, ruleId: string): StatementVerdict =>
    refuse(
      decision,
      `dbgate: statement requires approval (rule ${ruleId}) and was sent behind statements the server has not finished answering (no Sync came between), so the session settings it would run under, which the reviewer reads with it, are not known`,
      'send it after a Sync, once the statements before it have been answered (what drivers do outside pipeline mode)',
    )

  async function hold(sql: string, ctx: StatementContext, held: HoldVerdict): Promise<StatementVerdict> {
    const {decision, rule: d} = held
    // The schema the statement was judged against, and the reviewer reads it against.
    const movedAt = opts.catalogMoved?.()
    if (!opts.identity || !opts.identityConfig || opts.identity.issuer === 'unverified') {
      // The hold's detail (the statement, what it reaches) says what would have needed approval.
      return refuse(decision, `${held.error.message}; approvals need signed-in users`, 'add an `identity:` section to dbgate.yaml so reviewers can be verified (see docs/approvals.md)', held.error.detail)
    }
    if (reviewers.length === 0) {
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) but target ${opts.target.name} names no reviewers`, `add \`reviewers: [group]\` to targets.${opts.target.name} in dbgate.yaml`)
    }
    // Values a reviewer must see come in the Bind: `… where id > $1` (or `setval('s', $1)`, or the
    // `EXECUTE p($1)` a Bind of an SQL-prepared statement is judged as), and any Parse that declares
    // parameter types, whose Bind converts a value for each (a domain's CHECK runs with it) even
    // where the text names none. Such a Parse is sent on (it runs nothing) and each of its Binds is
    // judged again with its values, and held there: the reviewer approves the values that run.
    const parameterised = takesParameters(sql) || (ctx.protocol === 'parse' && (ctx.paramTypes?.length ?? 0) > 0)
    if (parameterised && ctx.bindValues === undefined && ctx.protocol === 'parse') return {action: 'allow', decision, atBind: true}
    // Held at a Bind, the approval covers that Bind's one execution, whatever the statement's name.
    if (ctx.protocol === 'parse' && ctx.statementName && ctx.bindValues === undefined) {
      // A named statement can be bound and executed again and again without another Parse, so
      // approving it would approve every later execution, not the one a reviewer read.
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) and cannot be approved as the named prepared statement "${ctx.statementName}"`, 'send it as a simple query or an unnamed statement, so it is approved for exactly one execution')
    }
    const window = openWindow(decision)
    if (window) {
      const notice: PgNoticeFields = {severity: 'NOTICE', code: WAIT_NOTICE, message: `dbgate: running under the window ${window.requestId} granted by ${window.reviewer} until ${window.until.toISOString()}`}
      const approval: ApprovalSettlement = {id: window.requestId, decision: 'approved', reviewer: window.reviewer, window: true}
      return {action: 'allow', notices: [notice], decision, approval, lapsed: () => windowClosed(window.requestId, window.until)}
    }

    if (parameterised && ctx.bindValues === undefined) {
      // Parameters whose values the tunnel never sees before the statement runs (none come this way today).
      return refuse(
        decision,
        `dbgate: statement requires approval (rule ${d.ruleId}) and cannot be approved with bind parameters ($1, …): a reviewer would approve it without the values it runs with`,
        'write the values into the statement text (a simple query, or a Parse without parameters), or PREPARE it and EXECUTE it with its values, which is judged with them',
      )
    }

    if (declaresCursor(sql)) {
      // A cursor's query runs at each FETCH, later in the transaction, with whatever the session
      // set meanwhile (a setting current_setting() reads, the search_path a function body resolves
      // names with): values chosen after the reviewer has decided.
      return refuse(
        decision,
        `dbgate: statement requires approval (rule ${d.ruleId}) and cannot be approved as a cursor (DECLARE): its query runs at each FETCH, after the reviewer has decided`,
        'send the query itself, so it runs once, right after the decision',
      )
    }
    if (copiesFromClient(sql)) {
      // COPY … FROM STDIN takes its rows from the client after the statement has started, so after
      // the reviewer has decided: approving `copy accounts from stdin` would approve any rows at all.
      return refuse(
        decision,
        `dbgate: statement requires approval (rule ${d.ruleId}) and cannot be approved as COPY … FROM STDIN: its rows come from the client after the reviewer has decided`,
        'write the rows into the statement (INSERT … VALUES), so the reviewer reads what will be written',
      )
    }

    if ((ctx.session.pendingCount ?? 0) > 0) {
      // The reviewer reads the statement with the session's settings as the server reported them
      // (DateStyle decides what '01/02/2026' is, search_path which table `orders` is). Pipelined
      // behind statements the server has not answered yet (`SET DateStyle = 'ISO, DMY'` in the same
      // write), the request would show the settings from before the SET, and the statement would
      // run under the new ones: it is filed once those answers are in.
      const answered = ctx.answered ? await ctx.answered().then(() => true, () => false) : false
      if (!answered || ctx.signal.aborted) return unknownSettings(decision, d.ruleId)
    }
    // The server reports a changed setting with its next ReadyForQuery, not with the SET: behind an
    // extended-protocol Execute with no Sync after it, what the session runs under is not known.
    if (ctx.session.txStatusCurrent === false) return unknownSettings(decision, d.ruleId)
    // A failed transaction runs nothing but its ROLLBACK; its settings cannot be read to be shown.
    if (ctx.session.txStatus === 'E') {
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) in a transaction that has already failed, where it cannot run`, 'roll the transaction back (ROLLBACK), then run the statement again')
    }
    // What the session runs under that the server does not report (a custom setting an RLS policy
    // reads, the role SET ROLE put in place) and the types the Parse declared, as the server answers.
    let codeNames: string[] = []
    try {
      codeNames = opts.catalogQuery ? (await opts.catalogQuery(CODE_NAMES_SQL)).flatMap((r) => (typeof r.name === 'string' ? [r.name] : typeof r.tree === 'string' ? namesInTree(r.tree) : [])) : []
    } catch (e) {
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) but the settings the database's code reads, which the reviewer is shown, could not be read from the catalog: ${(e as Error).message}`, "run the statement again; if it keeps failing, report it with the tunnel's log")
    }
    if (ctx.signal.aborted) return unknownSettings(decision, d.ruleId)
    // The objects the statement resolves to as the reviewer reads it (objects.ts): taken again
    // before it is sent, since a change made without dbgate reaches no pipeline.
    let objects: Map<string, DatabaseObject> | undefined
    try {
      objects = opts.catalogQuery ? databaseObjects(await opts.catalogQuery(OBJECTS_SQL)) : undefined
    } catch (e) {
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) but the database's objects it may resolve to, which its approval is bound to, could not be read from the catalog: ${(e as Error).message}`, "run the statement again; if it keeps failing, report it with the tunnel's log")
    }
    if (ctx.signal.aborted) return unknownSettings(decision, d.ruleId)
    const names = [...new Set(['role', 'search_path', ...(setNames.get(ctx.sessionId) ?? []), ...startupNames(ctx), ...settingNames(sql, opts.target.tunnel.maxStatementSize), ...codeNames.map((n) => n.toLowerCase())])]
    const declared = ctx.bindValues !== undefined ? (ctx.paramTypes ?? []) : []
    // The text and the prepared statements it executes name the relations a temporary one may stand in for.
    const reviewedTexts = [sql, ...(preparedShown(sharedAnalysisCache.analyze(sql, {maxStatementSize: opts.target.tunnel.maxStatementSize}).statements, ctx, opts.target.tunnel.maxStatementSize).prepared ?? []).map((p) => p.sql)]
    let read: SessionRead
    try {
      read = await readSession(ctx, names, declared, reviewedTexts)
    } catch (e) {
      // The client's cancel reached the tunnel's query too (it may have been waiting for a lock).
      if (ctx.signal.aborted) {
        const message = `dbgate: statement requires approval (rule ${d.ruleId}) and was cancelled before it was filed for a reviewer: ${sessionEnding(ctx.signal) ?? 'cancelled by the client'}`
        return {action: 'reject', error: {severity: 'ERROR', code: CANCELED, message}, decision}
      }
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) but the session's settings, which the reviewer reads with it, could not be read from the server: ${(e as Error).message}`, "run the statement again; if it keeps failing, report it with the tunnel's log")
    }
    if (ctx.signal.aborted) return unknownSettings(decision, d.ruleId)

    const requester = opts.identity
    // As the webhook names them: no backtick of theirs pairs with the statement's code span.
    const asker = slackPlain(identityLabel(requester))
    const created = now()
    const key = generateSealKey()
    // Already analysed by policy moments ago, so this is a cache hit.
    const texts = sharedAnalysisCache.analyze(sql, {maxStatementSize: opts.target.tunnel.maxStatementSize}).statements
    const unsigned: UnsignedRequest = {
      v: 1,
      id: newApprovalId(),
      target: opts.target.name,
      database: ctx.database,
      requester: {subject: requester.subject, email: requester.email, name: requester.name, groups: [...requester.groups], issuer: requester.issuer, kind: requester.kind},
      sessionId: ctx.sessionId,
      connectionId: ctx.connectionId,
      sql,
      ...(ctx.bindValues !== undefined ? {params: ctx.bindValues.map(reviewedValue)} : {}),
      ...(read.paramTypes ? {paramTypes: read.paramTypes} : {}),
      settings: read.settings,
      ...(read.temporary ? {temporary: read.temporary} : {}),
      statements: decision.statements.map((s) => ({text: texts[s.statementIndex]?.text ?? sql, class: s.class, command: s.command, action: s.action, ruleId: s.ruleId})),
      held: heldParts(decision),
      ...preparedShown(texts, ctx, opts.target.tunnel.maxStatementSize),
      class: d.class,
      ruleId: d.ruleId,
      reason: d.reason,
      reviewers: [...reviewers],
      createdAt: created.toISOString(),
      expiresAt: new Date(created.getTime() + opts.target.approvals.expiryMs).toISOString(),
      windows: opts.target.approvals.windows,
      sealKey: key.publicKey,
      host: hostname(),
      recent: (recent.get(ctx.sessionId) ?? []).map(({startedAt, ...r}) => ({...r, at: startedAt.toISOString()})),
      ...(opts.agent ? {agent: {...opts.agent}} : {}),
    }
    const request: ApprovalRequest = opts.signRequest ? {...unsigned, gatewaySignature: opts.signRequest(unsigned)} : unsigned
    const id = request.id
    // The decision's checker (reviewers' tokens: jose, the IdP's keys) loads with the first request
    // filed, not with every tunnel. If it cannot load, no request is filed and the statement is refused.
    let verifyDecision: typeof import('./verify.js').verifyDecision
    try {
      ;({verifyDecision} = await import('./verify.js'))
    } catch (e) {
      opts.log('error', `could not load the approval checker: ${(e as Error).message}`)
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) but the approval checker could not be loaded: ${(e as Error).message}`, 'reinstall dbgate, then run the statement again')
    }
    // A request no reviewer's list would show (a text near its cap with thousands of long values)
    // would wait unseen until it expired: it is refused now, saying so.
    const bytes = requestBytes(request)
    if (bytes > MAX_REQUEST_BYTES) {
      return refuse(
        decision,
        `dbgate: statement requires approval (rule ${d.ruleId}) but is too large to show reviewers: its request would take ${(bytes / 1048576).toFixed(1)} MiB, and reviewers' lists leave out requests over ${MAX_REQUEST_BYTES / 1048576} MiB`,
        'send it with fewer or shorter bound values, or split it into several statements, then run it again',
      )
    }
    try {
      await writeRequest(opts.bucket, request)
    } catch (e) {
      opts.log('error', `could not file approval request: ${(e as Error).message}`)
      return refuse(decision, `dbgate: statement requires approval (rule ${d.ruleId}) but the request could not be filed: ${(e as Error).message}`, 'check that the bucket is reachable, then run the statement again')
    }
    const digest = requestDigest(request)
    const expiresIn = shortDuration(opts.target.approvals.expiryMs)
    record(ctx.sessionId, 'approval.requested', {approvalId: id, class: d.class, ruleId: d.ruleId, reason: d.reason, reviewers: request.reviewers, expiresAt: request.expiresAt})
    const waiting = `waiting for approval ${id} by ${who} (rule ${d.ruleId}: ${d.reason}); run \`dbgate approve ${id}\` or review it in \`dbgate approve\`. It expires in ${expiresIn}; Ctrl-C withdraws it.`
    ctx.notify({severity: 'NOTICE', code: WAIT_NOTICE, message: `dbgate: ${waiting}`})
    announce(`${identityLabel(requester)}: ${oneLineSql(sql, 80)} — ${waiting}`)
    void notifyWebhook(hook, `dbgate: ${asker}${opts.agent ? ` (through the agent ${slackPlain(agentLabel(opts.agent))})` : ''} asks to run a ${d.class} statement on ${opts.target.name} (rule ${d.ruleId}): ${slackCode(oneLineSql(sql))}${ctx.bindValues ? ` with ${ctx.bindValues.length} bound value(s), shown in \`dbgate approve\`` : ''}${unreported(request.settings)}. Approval ${id} by ${who}, expires in ${expiresIn}. Review it with \`dbgate approve\`.`)

    const settle = (outcome: Omit<ApprovalOutcome, 'v' | 'requestId' | 'at'>) =>
      writeOutcome(opts.bucket, {v: 1, requestId: id, at: now().toISOString(), ...outcome}).catch((e: Error) => opts.log('warn', `could not record the outcome of ${id} in the bucket: ${e.message}`))

    /** The statement was given up (a cancel, a disconnect) or its session is ending: it runs nothing, whatever was decided. */
    const withdrawn = async (): Promise<StatementVerdict> => {
      await settle({state: 'withdrawn'})
      const ending = sessionEnding(ctx.signal)
      record(ctx.sessionId, 'approval.withdrawn', {approvalId: id, reason: ending ?? 'the client cancelled the statement or disconnected'})
      announce(`approval ${id} withdrawn: ${ending ?? 'the client cancelled'}`)
      const approval: ApprovalSettlement = {id, decision: 'approval_withdrawn'}
      const message = ending ? `dbgate: approval ${id} withdrawn: ${ending}` : `dbgate: approval ${id} withdrawn: the statement was cancelled while waiting`
      return {action: 'reject', error: {severity: 'ERROR', code: CANCELED, message}, decision, approval}
    }

    /** The request's validity ended before a decision took effect: what the reviewer approved was a statement to run by then. */
    const expired = async (late = false): Promise<StatementVerdict> => {
      await settle({state: 'expired'})
      record(ctx.sessionId, 'approval.expired', {approvalId: id, expiresAt: request.expiresAt})
      const how = late ? 'before the decision on it took effect' : 'with no decision'
      announce(`approval ${id} expired ${how}`)
      void notifyWebhook(hook, `dbgate: approval ${id} (${asker} on ${opts.target.name}) expired ${how}.`)
      const approval: ApprovalSettlement = {id, decision: 'approval_timeout'}
      return {action: 'reject', error: {severity: 'ERROR', code: POLICY, message: `dbgate: approval ${id} expired after ${expiresIn} ${late ? how : `${how} by ${who}`}`, hint: 'run the statement again to ask again'}, decision, approval}
    }
    const pastExpiry = () => Date.parse(request.expiresAt) <= now().getTime()

    let lastPollError: string | undefined
    let lastVerifyProblem: string | undefined
    for (;;) {
      if (ctx.signal.aborted) return withdrawn()
      const left = Date.parse(request.expiresAt) - now().getTime()
      if (left <= 0) return expired()
      let raw: unknown
      try {
        raw = await pollDecision(opts.bucket, id)
        lastPollError = undefined
      } catch (e) {
        const message = (e as Error).message
        if (message !== lastPollError) opts.log('warn', `waiting for approval ${id}: ${message} (still waiting)`)
        lastPollError = message
      }
      if (raw !== undefined) {
        const check = await verifyDecision(raw, {request, digest, privateKey: key.privateKey, identityConfig: opts.identityConfig, reviewers, now})
        // Withdrawn while the decision was read and checked (the IdP asked, the bucket read): the
        // withdrawal came first, and an approval now would run what the client gave up, or run it
        // for a session that is ending.
        if (ctx.signal.aborted) return withdrawn()
        // Likewise a request that expired meanwhile: a decision takes effect within its validity or not at all.
        if (pastExpiry()) return expired(check.ok)
        if (check.ok) return decided(check.verified)
        if (check.transient) {
          // A genuine decision must not be thrown away because the IdP blinked: keep it and look again.
          if (check.problem !== lastVerifyProblem) opts.log('warn', `waiting for approval ${id}: ${check.problem} (will retry)`)
          lastVerifyProblem = check.problem
          await sleep(Math.min(pollMs, left), ctx.signal)
          continue
        }
        // Whoever wrote the file chose these fields: keep them short and typed before they reach a log.
        const claim = (raw ?? {}) as {reviewer?: {email?: unknown; subject?: unknown}; action?: unknown}
        const claimed = {subject: clip(claim.reviewer?.subject), email: clip(claim.reviewer?.email)}
        const claimedBy = claimed.email ?? claimed.subject ?? 'someone'
        record(ctx.sessionId, 'approval.rejected_decision', {approvalId: id, claimedReviewer: claimed, action: clip(claim.action) ?? null, problem: check.problem})
        opts.log('warn', `refused a decision on ${id} claiming to be from ${claimedBy}: ${check.problem}`)
        ctx.notify({severity: 'WARNING', code: '01000', message: `dbgate: a decision on ${id} claiming to be from ${claimedBy} was refused (${check.problem}); still waiting`})
        await moveAside(opts.bucket, id, raw, check.problem, now()).catch((e: Error) => opts.log('warn', `could not move the refused decision on ${id} aside: ${e.message}`))
        continue
      }
      await sleep(Math.min(pollMs, left), ctx.signal)
    }

    async function decided(v: VerifiedDecision): Promise<StatementVerdict> {
      const reviewer = identityLabel(v.reviewer)
      const dec = v.decision
      record(ctx.sessionId, 'approval.decided', {
        approvalId: id,
        decision: dec.action === 'approve' ? 'approved' : dec.action === 'deny' ? 'denied' : 'window',
        reviewer: {subject: v.reviewer.subject, email: v.reviewer.email, name: v.reviewer.name, groups: v.reviewer.groups, issuer: v.reviewer.issuer, tokenHash: v.reviewer.tokenHash, tokenId: v.reviewer.tokenId, tokenIssuedAt: v.tokenIssuedAt.toISOString()},
        ...(dec.reason ? {reason: dec.reason} : {}),
        ...(dec.windowMs ? {windowMs: dec.windowMs} : {}),
        decidedAt: dec.decidedAt,
      })
      const because = dec.reason ? `: ${dec.reason}` : ''
      if (dec.action === 'deny') {
        await settle({state: 'denied', reviewer, reason: dec.reason})
        announce(`approval ${id} denied by ${reviewer}${because}`)
        void notifyWebhook(hook, `dbgate: ${slackPlain(reviewer)} denied ${id} (${asker} on ${opts.target.name})${because}`)
        const approval: ApprovalSettlement = {id, decision: 'approval_denied', reviewer}
        return {action: 'reject', error: {severity: 'ERROR', code: POLICY, message: `dbgate: approval ${id} denied by ${reviewer}${because}`}, decision, approval}
      }
      // What the statement resolves to, read again before a window's clock starts (the read takes a
      // moment on a large catalog). A change through another dbgate pipeline is named as such below.
      const objectsNow = objects === undefined ? undefined : await opts.catalogQuery!(OBJECTS_SQL).then(databaseObjects, (e: Error) => e)
      const movedObjects = objects === undefined || objectsNow === undefined ? [] : objectsNow instanceof Error ? objectsNow : objectsMoved(objects, objectsNow, reviewedTexts)
      if ((movedObjects instanceof Error || movedObjects.length > 0) && !ctx.signal.aborted && opts.catalogMoved?.() === movedAt) {
        await settle({state: dec.action === 'window' ? 'window' : 'approved', reviewer, reason: dec.reason})
        const why = movedObjects instanceof Error ? `could not be read again from the catalog (${movedObjects.message})` : `changed while it waited (${movedObjects.join(', ')})`
        announce(`approval ${id} granted by ${reviewer}, but the database's objects the statement may resolve to ${why}; it was not sent`)
        return {action: 'reject', error: objectsChanged(id, why), decision, approval: {id, decision: 'approved', reviewer}}
      }
      const until = dec.action === 'window' ? new Date(now().getTime() + dec.windowMs!) : undefined
      if (until) {
        await writeWindow(opts.bucket, {v: 1, requestId: id, target: request.target, class: request.class, requester: identityLabel(requester), reviewer, from: now().toISOString(), until: until.toISOString()}).catch((e: Error) =>
          opts.log('warn', `could not publish window ${id}: ${e.message}`),
        )
      }
      await settle({state: dec.action === 'window' ? 'window' : 'approved', reviewer, reason: dec.reason})
      // The last moment before the statement goes on: a withdrawal (or the expiry) that came while
      // the bucket was written wins, and a window granted on a statement that never ran opens nothing.
      // The session as the reviewer read it is what the approval covers: a setting that moved while
      // the statement waited (a configuration reload, a reported setting) voids it.
      const again = await readSession(ctx, names, declared, reviewedTexts).then(
        (r) => r,
        () => undefined,
      )
      if (again === undefined || ctx.signal.aborted || canonical(again.settings) !== canonical(request.settings ?? {}) || JSON.stringify(again.temporary ?? []) !== JSON.stringify(request.temporary ?? [])) {
        if (ctx.signal.aborted) {
          if (until) await opts.bucket.delete(windowKey(id)).catch((e: Error) => opts.log('warn', `could not take back window ${id}: ${e.message}`))
          return withdrawn()
        }
        // Nothing ran: a window granted on it opens nothing, as for a withdrawal.
        if (until) await opts.bucket.delete(windowKey(id)).catch((e: Error) => opts.log('warn', `could not take back window ${id}: ${e.message}`))
        announce(`approval ${id} granted by ${reviewer}, but the session's settings changed while the statement waited; it was not sent`)
        return {
          action: 'reject',
          error: {severity: 'ERROR', code: POLICY, message: `dbgate: approval ${id} covers the statement under the session settings the reviewer read, and the session's settings (or its temporary relations) changed while it waited, so it was not sent`, hint: 'Run it again: it is held again, with the settings as they are now.'},
          decision,
          approval: {id, decision: 'approved', reviewer},
        }
      }
      if (ctx.signal.aborted || pastExpiry()) {
        if (until) await opts.bucket.delete(windowKey(id)).catch((e: Error) => opts.log('warn', `could not take back window ${id}: ${e.message}`))
        return ctx.signal.aborted ? withdrawn() : expired(true)
      }
      if (until) windows.push({requestId: id, class: request.class, ruleId: request.ruleId, until, reviewer})
      const scope = dec.action === 'window' ? ` with a window for ${request.class} statements that rule ${request.ruleId} holds, for ${shortDuration(dec.windowMs!)}` : ''
      announce(`approval ${id} granted by ${reviewer}${scope}${because}`)
      void notifyWebhook(hook, `dbgate: ${slackPlain(reviewer)} approved ${id} (${asker} on ${opts.target.name})${scope}${because}`)
      const approval: ApprovalSettlement = {id, decision: 'approved', reviewer}
      const moved = (): PgNoticeFields | undefined => (opts.catalogMoved?.() === movedAt ? undefined : movedElsewhere())
      const lapsed = moved()
      if (lapsed) return {action: 'reject', error: lapsed, decision, approval}
      // One approval covers one execution; a window covers its class for its duration. A Parse
      // approved is bound later: the approval lapses if the schema moved on before then too.
      // A window's statement is let through for the window's duration: bound or executed again after
      // it closes (the unnamed statement, a portal), it is judged again (windowClosed).
      const lapsedNow = until ? () => windowClosed(id, until) ?? moved() : moved
      return {action: 'allow', notices: [{severity: 'NOTICE', code: WAIT_NOTICE, message: `dbgate: approval ${id} granted by ${reviewer}${scope}; running the statement`}], decision, approval, once: dec.action !== 'window', lapsed: lapsedNow}
    }
  }

  return {
    // Keep the common case synchronous: only a held statement becomes a promise.
    settle: (sql, ctx, verdict) => (verdict.action === 'hold' ? hold(sql, ctx, verdict) : verdict),
    observe(event) {
      if (event.verdict.action === 'allow' && event.outcome !== 'rejected' && event.outcome !== 'aborted') {
        const names = setNames.get(event.sessionId) ?? new Set<string>()
        for (const text of [event.sql, ...(event.executes ?? []).map((e) => e.sql)]) {
          // Every statement comes here: only a text that can set one (SET, set_config) is read again.
          if (!/set/i.test(text)) continue
          for (const n of settingNames(text, opts.target.tunnel.maxStatementSize, /set_config/i.test(text))) if (names.size < SESSION_NAMES) names.add(n)
        }
        if (names.size > 0) setNames.set(event.sessionId, names)
      }
      const list = recent.get(event.sessionId) ?? []
      const approval = event.verdict.approval
      list.push({sql: event.sql, decision: approval?.decision ?? (event.verdict.action === 'allow' ? 'allow' : 'deny'), outcome: event.outcome, startedAt: event.startedAt})
      if (list.length > RECENT) list.shift()
      recent.set(event.sessionId, list)
    },
    forgetSession(sessionId) {
      recent.delete(sessionId)
      setNames.delete(sessionId)
    },
    liveWindows: () => windows.filter((w) => w.until.getTime() > now().getTime()),
  }
}

/**
 * Whether a statement text refers to bind parameters (`$1`) whose values the client sends apart
 * from it (in a Bind): a parameter reference in its tree (never one in a string, a quoted name or
 * a function body), outside a `PREPARE`, whose parameters are its own (each `EXECUTE` gives them).
 * A text the parser refuses counts as taking them.
 */
function takesParameters(sql: string): boolean {
  try {
    return (parseTree(sql).stmts ?? []).some((s) => s.stmt !== undefined && !('PrepareStmt' in s.stmt) && hasParamRef(s.stmt))
  } catch {
    return true
  }
}

/**
 * The refusal of an approved statement after a change to the schema was committed through another
 * pipeline since it was judged: what it calls (a function body, a view) may not be what the
 * reviewer read, nor what policy judged. 55P03, as for a change of the same person's pipeline.
 */
function movedElsewhere(): PgNoticeFields {
  return {
    severity: 'ERROR',
    code: '55P03',
    message: 'dbgate: a change to the schema was committed through another dbgate session (another tunnel or gateway worker of yours, your agent, or another person) while this statement waited for its approval, so the approval no longer covers what it would run; it was not sent',
    hint: 'Run it again: it is judged, and if need be held, against the schema as changed.',
  }
}

/**
 * The refusal of an approved statement whose database objects (objects.ts) moved while it waited: a
 * function body replaced, an overload created ahead of the one it called, a table renamed and
 * another put in its place, a view redefined, a trigger or policy added, perhaps on a connection
 * that never went through dbgate. What it would run is not what the reviewer approved.
 */
function objectsChanged(id: string, why: string): PgNoticeFields {
  return {
    severity: 'ERROR',
    code: '55P03',
    message: `dbgate: approval ${id} covers the statement as it read against the database's objects when it was held, and the objects the statement may resolve to (functions, operators, types, tables, columns, views, triggers, policies, schemas) ${why}, so it was not sent`,
    hint: 'Run it again: it is judged, and held for a reviewer, against the database as it is now. If this keeps happening, something changes the schema often (a migration, partitions made on a schedule): wait until it is done.',
  }
}

/** Whether a statement text declares a cursor. A text the parser refuses counts as declaring one. */
function declaresCursor(sql: string): boolean {
  try {
    return (parseTree(sql).stmts ?? []).some((s) => s.stmt !== undefined && 'DeclareCursorStmt' in s.stmt)
  } catch {
    return true
  }
}

/**
 * Whether a statement text holds a `COPY … FROM STDIN`, whose rows the client sends after it has
 * started. A text the parser refuses counts as holding one.
 */
function copiesFromClient(sql: string): boolean {
  try {
    return (parseTree(sql).stmts ?? []).some((s) => s.stmt !== undefined && 'CopyStmt' in s.stmt && isCopyFromClient(s.stmt.CopyStmt))
  } catch {
    return true
  }
}

function isCopyFromClient(copy: unknown): boolean {
  const c = (copy ?? {}) as {is_from?: boolean; filename?: string}
  return c.is_from === true && c.filename === undefined
}

function hasParamRef(tree: object): boolean {
  return eachNode(tree, (node) => 'ParamRef' in node)
}

/**
 * A bound value as the request shows it to reviewers: whole up to `RECORDED_VALUE_BYTES`, else cut
 * with its length, so that one huge value cannot make every reviewer's list (and the bucket's copy
 * of the request) that large. The statement runs with the whole value the Bind held; a reviewer
 * sees that part of it was cut, and can deny it.
 */
function reviewedValue(v: string | null): string | null {
  if (v === null || v.length * 3 <= RECORDED_VALUE_BYTES) return v
  const bytes = Buffer.byteLength(v)
  return bytes <= RECORDED_VALUE_BYTES ? v : cutText(v, bytes)
}

/** Startup packet settings: the server applied them, and the session reads them as its own. */
function startupNames(ctx: StatementContext): string[] {
  return Object.keys(ctx.startupParameters ?? {})
    .map((k) => k.toLowerCase())
    .filter((k) => k !== 'user' && k !== 'database' && k !== 'options' && k !== 'replication' && !k.startsWith('_pq_.'))
}

/** The session's settings a reviewer reads (reported and asked for) and the declared parameter types, from the server. */
/** What a request shows of the session, as its server answered. */
interface SessionRead {
  settings: Record<string, string>
  paramTypes?: string[]
  temporary?: NonNullable<ApprovalRequest['temporary']>
}

/**
 * The session's temporary relations: an unqualified name finds one before the table of the same
 * name (pg_temp comes first for relations), so `orders` in a held text may be a view of this
 * session's over any table, made long before the statements the reviewer is shown.
 */
const TEMPORARY_SQL = `SELECT c.relname, c.relkind::pg_catalog.text, CASE WHEN c.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog."char"[]) THEN pg_catalog.pg_get_viewdef(c.oid) END
FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema() AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,v,m,p,f,S}'::pg_catalog."char"[]) ORDER BY 1`

const RELKINDS: Record<string, string> = {r: 'table', p: 'table', v: 'view', m: 'materialized view', f: 'foreign table', S: 'sequence'}

/** The relation names a text (and the prepared statements it executes) names without a schema, or in pg_temp. */
function unqualifiedRelations(texts: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (const sql of texts) {
    try {
      eachNode(parseTree(sql), (node) => {
        const rv = (node as {RangeVar?: {relname?: string; schemaname?: string}}).RangeVar
        if (rv?.relname !== undefined && (rv.schemaname === undefined || rv.schemaname === 'pg_temp')) out.add(rv.relname)
      })
    } catch {
      // Refused by policy already.
    }
  }
  return out
}

async function readSession(ctx: StatementContext, names: readonly string[], declared: readonly number[], texts: readonly string[]): Promise<SessionRead> {
  if (!ctx.askSession) throw new Error('this connection cannot ask its server session')
  const named = declared.filter((t) => t !== 0)
  const results = await ctx.askSession([sessionSettingsQuery(names), TEMPORARY_SQL, ...(named.length > 0 ? [paramTypesQuery(named)] : [])])
  // Read after the queries' answers: a setting they reported came with them.
  const reported = reviewedSettings(ctx.session.parameters)
  const settings = {...reported, ...shownSettings(results[0] ?? [], new Set(names), reported)}
  const relations = unqualifiedRelations(texts)
  const temporary = (results[1] ?? [])
    .filter((r) => r[0] !== null && relations.has(r[0]!))
    .map(([name, kind, definition]) => ({name: name!, kind: RELKINDS[kind ?? ''] ?? 'relation', ...(definition ? {definition} : {})}))
  const out: SessionRead = {settings, ...(temporary.length > 0 ? {temporary} : {})}
  if (declared.length === 0) return out
  const typeNames = (results[2] ?? []).map((r) => r[0] ?? '')
  let next = 0
  // A type named like nothing the server knows reads as its OID: the reviewer is not shown a blank.
  return {...out, paramTypes: declared.map((t) => (t === 0 ? '' : typeNames[next++] || `oid ${t >>> 0}`))}
}

/**
 * For the webhook: the settings the server does not report (a custom setting, the role), which
 * change what the text reads without showing in it, each as the server answered.
 */
function unreported(settings: Record<string, string> | undefined): string {
  const shown = Object.entries(settings ?? {}).filter(([k]) => !REPORTED.has(k.toLowerCase()))
  return shown.length === 0 ? '' : `, under the session settings ${slackCode(oneLine(settingsLine(Object.fromEntries(shown)), 300))}`
}

function canonical(settings: Record<string, string>): string {
  return JSON.stringify(Object.entries(settings).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
