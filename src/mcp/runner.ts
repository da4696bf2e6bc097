/**
 * Runs the agent's statements as an ordinary PostgreSQL client of the endpoint, so every statement
 * meets the same guardrails, approvals, masking and recording as any other client's. A few
 * sessions at most: one is usually enough, another opens while one holds a statement waiting for a
 * reviewer. Read-only agents' sessions start with `SET SESSION CHARACTERISTICS AS TRANSACTION
 * READ ONLY`, so the server refuses writes too.
 */
import {connect} from 'node:net'
import pg from 'pg'
import {builtinCandidates, isBuiltinOperator} from '../policy/builtins.js'
import {loadParser, parseSql} from '../sql/parser.js'
import {encodeCancelRequest} from '../wire/frontend.js'
import {TOOL_REFUSED} from '../audit/events.js'
import {names} from '../sql/tree.js'
import type {SqlEndpoint} from './endpoint.js'

export interface RunOptions {
  params?: unknown[]
  maxRows: number
  maxBytes: number
  timeoutMs: number
  /** How long a statement held for approval may keep the tool waiting before it answers "waiting". */
  approvalWaitMs: number
  /**
   * Runs the statement inside `BEGIN READ ONLY`, rolled back when the call ends: the server refuses
   * whatever it would write (a view's nextval, a function's DELETE), and a NOTIFY it sent is never
   * delivered. For what is promised not to change anything, whatever the target's rules allow.
   */
  readOnlyTransaction?: boolean
  /**
   * The agent's cancellation of the call (MCP `notifications/cancelled`): the statement is cancelled
   * on the server, and its session is not used again. Once the call answered "waiting", a held
   * statement no longer listens to it.
   */
  signal?: AbortSignal
}

export interface ColumnInfo {
  name: string
  type: string
}

export interface RowsResult {
  status: 'done'
  /** The command tag's verb (SELECT, INSERT, …); null when the row cap stopped the result early. */
  command: string | null
  rowCount: number | null
  columns: ColumnInfo[]
  /** Values as PostgreSQL's text output, as the tunnel returned them (masked). */
  rows: Record<string, string | null>[]
  truncated: boolean
  truncatedBy?: 'maxRows' | 'maxBytes'
  /** Notices and warnings the statement produced (e.g. "approval … granted by …"), the first of them within the caps. */
  notices: string[]
  /** How many notices past the caps (`MAX_NOTICES`, `maxBytes`) were dropped, when any were. */
  noticesDropped?: number
  /** The statement left a transaction open, and it was rolled back (see `endOpenTransaction`). */
  transactionRolledBack?: boolean
  /** The statement declared a cursor, and it was closed (see `endCursors`). */
  cursorClosed?: boolean
}

export interface WaitingResult {
  status: 'waiting'
  approvalId: string
  /** Who may decide, as the tunnel named them ("a member of dba"). */
  reviewers: string
  message: string
}

export type RunResult = RowsResult | WaitingResult

/** Every database session this server may open is taken: the call is refused before its statement reaches the endpoint. */
export class SessionsBusyError extends Error {}


type Settled = {ok: true; value: RowsResult} | {ok: false; error: unknown}

interface Pending {
  waiting: WaitingResult
  settled: Promise<Settled>
}

/** A handful of sessions: enough for a few held statements without letting an agent open hundreds. */
const MAX_SESSIONS = 4

/**
 * Notices one result keeps, besides their bytes counting against `maxBytes` apart from the rows. A
 * statement raises one per row it computes if it likes (`to_tsquery` of a stop word does, a user
 * function may): 2.5 million in a 30 s call were 220 MB of text for a 256 KiB result, and a
 * gigabyte in the process serving the agent (the gateway's, for remote MCP).
 */
export const MAX_NOTICES = 100

/** The notices a call keeps, within the caps, and how many it dropped. */
interface NoticeLog {
  kept: string[]
  bytes: number
  dropped: number
}

/** Every value as PostgreSQL's own text: exactly what the tunnel (and its masking) sent. */
const RAW_TEXT = {getTypeParser: () => (value: string) => value}

const WAITING = /^dbgate: waiting for approval (apr-[a-z0-9]+) by (.+?) \(rule/

/** Type names for the OIDs almost every result uses; the rest are looked up once. */
const KNOWN_TYPES: Record<number, string> = {
  16: 'boolean', 17: 'bytea', 18: 'char', 19: 'name', 20: 'bigint', 21: 'smallint', 23: 'integer', 25: 'text', 26: 'oid',
  114: 'json', 700: 'real', 701: 'double precision', 1042: 'character', 1043: 'character varying', 1082: 'date',
  1083: 'time', 1114: 'timestamp', 1184: 'timestamptz', 1186: 'interval', 1700: 'numeric', 2950: 'uuid', 3802: 'jsonb',
  1009: 'text[]', 1007: 'integer[]', 1016: 'bigint[]', 869: 'inet',
}

export class StatementRunner {
  private readonly idle: pg.Client[] = []
  private readonly broken = new WeakSet<pg.Client>()
  private readonly timeouts = new WeakMap<pg.Client, number>()
  /** Each session's transaction status from its last ReadyForQuery: I idle, T in a transaction, E failed one. */
  private readonly txStatus = new WeakMap<pg.Client, string>()
  private readonly all = new Set<pg.Client>()
  private readonly pending = new Map<string, Pending>()
  private readonly typeNames = new Map<number, string>(Object.entries(KNOWN_TYPES).map(([k, v]) => [Number(k), v]))
  /** Each session's call still under way (its statement, or the clean-up after it), until it settles. */
  private readonly running = new Map<pg.Client, Promise<unknown>>()
  /** The session `sessionForRefusals` is opening, while it opens. */
  private opening: Promise<pg.Client> | undefined

  constructor(
    private readonly endpoint: SqlEndpoint,
    private readonly opts: {readOnly: boolean; applicationName: string},
  ) {}

  /** Runs one statement. Resolves with its rows, or with "waiting" when a reviewer must decide first; rejects with the database's (or dbgate's) error. */
  async run(sql: string, o: RunOptions): Promise<RunResult> {
    if (o.signal?.aborted) throw new Error('the call was cancelled before its statement was sent')
    const client = await this.acquire()
    // Opening a session may wait (for a slot under tunnel.maxUpstreamSessions): a call cancelled
    // meanwhile must not go on to run its statement once a slot frees, for an agent that gave up on it.
    if (o.signal?.aborted) {
      this.release(client)
      throw new Error('the call was cancelled before its statement was sent')
    }
    const notices: NoticeLog = {kept: [], bytes: 0, dropped: 0}
    let held: ((w: WaitingResult) => void) | undefined
    const waiting = new Promise<WaitingResult>((resolve) => (held = resolve))
    const onNotice = (n: {message?: string; routine?: string}) => {
      const message = n.message ?? ''
      // Measured as the agent receives it (a JSON string); the rest are counted, not held.
      const size = Buffer.byteLength(JSON.stringify(message))
      if (notices.kept.length < MAX_NOTICES && notices.bytes + size <= o.maxBytes) {
        notices.kept.push(message)
        notices.bytes += size
      } else notices.dropped++
      // Only the tunnel's own notice holds a statement: PostgreSQL names the routine behind every
      // notice it sends, so a function RAISEing the same words cannot fake a hold (and make the
      // agent believe a statement that is running has not run, or take over another hold's id).
      const m = n.routine === undefined ? WAITING.exec(message) : null
      if (m) held?.({status: 'waiting', approvalId: m[1]!, reviewers: m[2]!, message: message.replace(/^dbgate: /, '')})
    }
    client.on('notice', onNotice)
    // The agent gave up on the call: a statement left running would go on to its timeout, holding its
    // locks and a database session for nobody. A session whose cancel was sent is not used again, so
    // a cancel arriving late cannot stop a later call's statement.
    let aborted = false
    const onAbort = () => {
      aborted = true
      void this.cancel(client)
    }
    o.signal?.addEventListener('abort', onAbort, {once: true})
    const settled: Promise<Settled> = this.execute(client, sql, o, notices)
      .then((value): Settled => ({ok: true, value}), (error: unknown): Settled => ({ok: false, error}))
      .then(async (s): Promise<Settled> => {
        o.signal?.removeEventListener('abort', onAbort)
        // A FATAL ends the session, though its socket may close only later (the tunnel keeps it until
        // the server has ended what it was sending): the next call must not be sent into it.
        if ((!s.ok && isFatal(s.error)) || aborted) this.discard(client)
        if ((await this.endOpenTransaction(client)) && s.ok) s.value.transactionRolledBack = true
        if (s.ok && (await this.endCursors(client, s.value.command))) s.value.cursorClosed = true
        return s
      })
      .finally(() => {
        client.off('notice', onNotice)
        this.running.delete(client)
        this.release(client)
      })
    this.running.set(client, settled)
    const first = await Promise.race([settled, waiting])
    if (!('status' in first)) return unwrap(first)
    // Held for a reviewer: a quick decision still comes back in this call; otherwise the agent gets
    // control back and the statement keeps waiting in the tunnel.
    const quick = await Promise.race([settled, sleep(o.approvalWaitMs)])
    if (quick) return unwrap(quick)
    o.signal?.removeEventListener('abort', onAbort)
    this.pending.set(first.approvalId, {waiting: first, settled})
    return first
  }

  /**
   * Sends the session's CancelRequest to the endpoint, which passes it to the server (or withdraws a
   * statement it holds for a reviewer). PostgreSQL answers a cancel with nothing and closes.
   */
  private cancel(c: pg.Client): Promise<void> {
    const {processID, secretKey} = c as unknown as {processID: number | null; secretKey: number | null}
    if (processID === null || secretKey === null) return Promise.resolve()
    const config = this.endpoint.clientConfig()
    const host = config.host ?? '127.0.0.1'
    const port = Number(config.port ?? 5432)
    return new Promise<void>((resolve) => {
      const socket = host.startsWith('/') ? connect(`${host}/.s.PGSQL.${port}`) : connect(port, host)
      const done = () => {
        socket.destroy()
        resolve()
      }
      socket.once('connect', () => socket.end(encodeCancelRequest(processID, secretKey)))
      socket.once('close', done)
      socket.once('error', done)
      socket.setTimeout(5000, done)
    })
  }

  /** A held statement's outcome: its result once decided, or "waiting" after `waitMs`. Undefined for an id this server is not holding. */
  async approvalStatus(id: string, waitMs: number): Promise<RunResult | undefined> {
    const p = this.pending.get(id)
    if (!p) return undefined
    const done = await Promise.race([p.settled, sleep(waitMs)])
    if (!done) return p.waiting
    this.pending.delete(id)
    return unwrap(done)
  }

  /**
   * Records what the tools refused themselves in the log of one of this server's database sessions,
   * with the agent's statements: an idle one, else a busy one, else one opened for it. Recorded by
   * the endpoint's own recording, so it is signed and chained as they are. A session whose log can
   * take no more (full, which ends it, or ending) is not used again, and the next one is tried, a
   * fresh one last: an agent that filled one log, with refusals of 64 KiB of SQL each or with large
   * statements, must not have its next refusals go unrecorded. False when there is no session to
   * record it in (the database cannot be reached) or the endpoint records nothing.
   */
  async recordRefusal(payload: Record<string, unknown>): Promise<boolean> {
    const record = this.endpoint.record?.bind(this.endpoint)
    if (!record) return false
    const live = (c: pg.Client) => !this.broken.has(c) && this.all.has(c) && keyOf(c) !== undefined
    // Each session at most once, and one opened for it last: bounded however many logs are full.
    for (let tries = 0; tries <= MAX_SESSIONS; tries++) {
      const client = this.idle.find(live) ?? [...this.all].find(live) ?? (await this.sessionForRefusals())
      const key = keyOf(client)
      if (key === undefined) return false
      const outcome = record(key, TOOL_REFUSED, payload)
      if (outcome === 'recorded') return true
      if (outcome !== 'session-ended') return false
      this.retire(client)
    }
    return false
  }

  /**
   * A session for refusals when no session is open: one opened for all of them, since an agent's
   * parallel calls refused before any session opened would each open one, and past the fourth they
   * went unrecorded (every session in use). When the sessions are all taken by calls still opening
   * theirs, the first of those calls to end frees one.
   */
  private sessionForRefusals(): Promise<pg.Client> {
    this.opening ??= (async () => {
      try {
        for (;;) {
          try {
            const c = await this.acquire()
            this.release(c)
            return c
          } catch (e) {
            const running = [...this.running.values()]
            if (!(e instanceof SessionsBusyError) || running.length === 0) throw e
            await Promise.race(running.map((r) => r.catch(() => {})))
          }
        }
      } finally {
        this.opening = undefined
      }
    })()
    return this.opening
  }

  pendingApprovals(): WaitingResult[] {
    return [...this.pending.values()].map((p) => p.waiting)
  }

  /**
   * Ends every session; statements still waiting for approval are withdrawn by the tunnel. A
   * statement still running is cancelled first: ending its session alone left it running on the
   * server to its timeout (PostgreSQL notices a client gone only when it next writes to it), after
   * the agent's session ended, its sign-in with it.
   */
  async close(): Promise<void> {
    const busy = [...this.running.entries()].filter(([c]) => this.all.has(c))
    await Promise.all(busy.map(([c]) => this.cancel(c)))
    // Its answer (the cancel's error) comes before the session ends, so the tunnel sees it through.
    await Promise.all(busy.map(([, settled]) => Promise.race([settled.catch(() => {}), sleep(5000)])))
    await Promise.all([...this.all].map((c) => c.end().catch(() => {})))
    this.all.clear()
  }

  private async acquire(): Promise<pg.Client> {
    for (;;) {
      const c = this.idle.pop()
      if (!c) break
      if (!this.broken.has(c)) return c
    }
    if (this.all.size >= MAX_SESSIONS) {
      // Say what holds them: statements waiting for a reviewer, or calls still running in parallel.
      const waiting = this.pending.size
      const running = this.all.size - this.idle.length - waiting
      const held = [waiting > 0 ? `${waiting} statement(s) waiting for approval (call approval_status for ${[...this.pending.keys()].join(', ')})` : '', running > 0 ? `${running} call(s) still running` : ''].filter(Boolean).join(' and ')
      throw new SessionsBusyError(`every database session this server may open (${MAX_SESSIONS}) is in use by ${held || 'other calls'}; wait for them to finish, then call again`)
    }
    const c = new pg.Client({...this.endpoint.clientConfig(), application_name: this.opts.applicationName})
    const lost = () => {
      this.broken.add(c)
      this.all.delete(c)
    }
    c.on('error', lost)
    c.on('end', lost)
    this.all.add(c)
    try {
      await c.connect()
      // node-postgres keeps the transaction status to itself; its connection reports every ReadyForQuery.
      ;(c as unknown as {connection: {on(event: 'readyForQuery', listener: (m: {status?: string}) => void): void}}).connection.on('readyForQuery', (m) => this.txStatus.set(c, m.status ?? 'I'))
      // Read-only on the server as well as in the guardrails: whatever slipped past one meets the other.
      if (this.opts.readOnly) await c.query('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY')
    } catch (e) {
      lost()
      await c.end().catch(() => {})
      throw e
    }
    return c
  }

  /**
   * Rolls back a transaction a call left open. Sessions are kept between calls and shared by them,
   * so an open transaction would otherwise outlive the call: holding its locks (an idle
   * `BEGIN; SELECT …` keeps an ALTER TABLE, and everything queued behind it, waiting), its snapshot
   * (vacuum), and putting the next call, maybe another task's, inside it. True when it rolled back.
   */
  private async endOpenTransaction(c: pg.Client): Promise<boolean> {
    if (this.broken.has(c) || (this.txStatus.get(c) ?? 'I') === 'I') return false
    try {
      await c.query('ROLLBACK')
      return true
    } catch {
      // A session that cannot leave its transaction is not used again.
      this.discard(c)
      return false
    }
  }

  /**
   * Closes the cursor a DECLARE made, as the server's command tag says it did. Only one declared
   * WITH HOLD outlives its transaction, and it would outlive the call too: its whole result kept by
   * the server (in temporary files past work_mem) for as long as the session lasts, however little
   * of it the caps let the agent read, and a state the next call, maybe another task's, finds. True
   * when it closed them.
   */
  private async endCursors(c: pg.Client, command: string | null): Promise<boolean> {
    if (command !== 'DECLARE' || this.broken.has(c)) return false
    try {
      await c.query('CLOSE ALL')
      return true
    } catch {
      // A session that cannot close its cursors is not used again: ending it frees them.
      this.discard(c)
      return false
    }
  }

  /**
   * Takes a session the endpoint is ending out of use; a statement it is running (one held for a
   * reviewer among them) finishes or is refused by the endpoint, and its call ends then.
   */
  private retire(c: pg.Client): void {
    this.broken.add(c)
    const i = this.idle.indexOf(c)
    if (i >= 0) this.idle.splice(i, 1)
    // A call still running on it keeps it among `all`, so that closing the server cancels its statement.
    if (this.running.has(c)) return
    this.all.delete(c)
    void c.end().catch(() => {})
  }

  /** Ends a session that must not be used again. */
  private discard(c: pg.Client): void {
    this.broken.add(c)
    this.all.delete(c)
    void c.end().catch(() => {})
  }

  private release(c: pg.Client): void {
    if (this.broken.has(c)) return
    this.idle.push(c)
  }

  private async execute(c: pg.Client, sql: string, o: RunOptions, notices: NoticeLog): Promise<RowsResult> {
    if (this.timeouts.get(c) !== o.timeoutMs) {
      await c.query(`SET statement_timeout = ${Math.floor(o.timeoutMs)}`)
      this.timeouts.set(c, o.timeoutMs)
    }
    if (o.readOnlyTransaction) {
      await c.query('BEGIN READ ONLY')
      // Only a transaction the server says it opened holds the statement (endOpenTransaction rolls it back).
      if (this.txStatus.get(c) !== 'T') {
        this.discard(c)
        throw new Error('the read-only transaction this call runs in did not open (the server did not report one after BEGIN READ ONLY); nothing was run')
      }
    }
    // Unless this statement is known to leave the timeout alone, the next one sets it again.
    await loadParser()
    if (!leavesSettings(sql)) this.timeouts.delete(c)
    const rows: (string | null)[][] = []
    let bytes = 0
    let truncatedBy: RowsResult['truncatedBy']
    // The row cap stops a plain SELECT at the server: one row more than the cap per Execute tells a
    // full page from a truncated one, and the portal is ended there. Anything else the server runs
    // whole at its first Execute, whatever the row limit (a write's RETURNING, a data-modifying WITH,
    // EXECUTE of one): ended early, its rows are all changed but the command tag that counts them is
    // never sent, and fetched in pieces, the tag counts only the last piece. It is executed without
    // a limit, its rows past the caps dropped here, so the agent and the recording get its real count.
    const stopEarly = readsIncrementally(sql)
    // `rows` (rows per Execute) is node-postgres's own option, missing from its type declarations.
    const query = new pg.Query({text: sql, values: o.params, queryMode: 'extended', ...(stopEarly ? {rows: o.maxRows + 1} : {}), rowMode: 'array', types: RAW_TEXT} as pg.QueryConfig)
    if (stopEarly) {
      const hooks = query as unknown as {handlePortalSuspended(connection: {sync(): void}): void; handleError(error: unknown, connection: {sync(): void}): void}
      // At the row cap the portal is suspended: end it there instead of fetching the rest.
      hooks.handlePortalSuspended = (connection) => connection.sync()
      // With a row count node-postgres does not send Sync up front, so after an ErrorResponse the
      // server would wait for one forever (and so would the next statement on this session).
      const handleError = hooks.handleError.bind(query)
      hooks.handleError = (error, connection) => {
        try {
          connection.sync()
        } catch {
          // The connection is gone; the error below says why.
        }
        handleError(error, connection)
      }
    }
    // The settings above took round trips: a cancel that came during them stopped nothing on the
    // server, and this statement, sent now, would run for an agent that gave up on it.
    if (o.signal?.aborted) throw new Error('the call was cancelled before its statement was sent')
    const result = await new Promise<pg.QueryResult>((resolve, reject) => {
      let keyBytes: number[] | undefined
      query.on('row', (row: (string | null)[], result?: {fields?: {name: string}[]}) => {
        if (truncatedBy) return
        if (rows.length >= o.maxRows) {
          truncatedBy = 'maxRows'
          return
        }
        // The cap is on the JSON the agent receives: keys, values and punctuation.
        keyBytes ??= uniqueNames((result?.fields ?? []).map((f) => f.name)).map((n) => Buffer.byteLength(JSON.stringify(n)) + 2)
        const size = row.reduce((n, v, i) => n + (keyBytes![i] ?? 8) + (v === null ? 4 : Buffer.byteLength(JSON.stringify(v))), 2)
        if (bytes + size > o.maxBytes) {
          truncatedBy = 'maxBytes'
          return
        }
        bytes += size
        rows.push(row)
      })
      query.on('end', resolve)
      query.on('error', reject)
      c.query(query)
    })
    const fields = result.fields ?? []
    const names = uniqueNames(fields.map((f) => f.name))
    const columns = await Promise.all(fields.map(async (f, i) => ({name: names[i]!, type: await this.typeName(c, f.dataTypeID)})))
    return {
      status: 'done',
      command: result.command ?? null,
      rowCount: result.command ? (result.rowCount ?? null) : rows.length,
      columns,
      rows: rows.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i] ?? null]))),
      truncated: truncatedBy !== undefined,
      ...(truncatedBy ? {truncatedBy} : {}),
      notices: notices.kept.map((n) => n.replace(/^dbgate: /, '')),
      ...(notices.dropped ? {noticesDropped: notices.dropped} : {}),
    }
  }

  private async typeName(c: pg.Client, oid: number): Promise<string> {
    const known = this.typeNames.get(oid)
    if (known) return known
    try {
      const r = await c.query({text: 'select typname from pg_catalog.pg_type where oid = $1', values: [oid], types: RAW_TEXT})
      const name = (r.rows[0] as {typname?: string} | undefined)?.typname ?? `oid ${oid}`
      this.typeNames.set(oid, name)
      return name
    } catch {
      return `oid ${oid}`
    }
  }
}

/** What makes a SELECT's portal run whole: a data-modifying statement (in a WITH), an INTO that makes a table. */
const RUNS_WHOLE = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'intoClause'])

function runsWhole(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(runsWhole)
  if (typeof node !== 'object' || node === null) return false
  return Object.entries(node).some(([k, v]) => RUNS_WHOLE.has(k) || runsWhole(v))
}

/**
 * Whether the server computes the text's rows only as they are fetched, so that a portal suspended
 * at the row cap has run no further than the rows read: one SELECT (or VALUES, TABLE) that writes
 * nothing and makes no table (`SELECT … INTO`). Everything else the server runs whole at the first
 * Execute (PostgreSQL's PORTAL_ONE_RETURNING, PORTAL_ONE_MOD_WITH and utility portals), whatever
 * the row limit: ended early, its effects are all done but its command tag, the count of the rows
 * it changed, is never sent. A text that does not parse is not known to be such a SELECT.
 */
export function readsIncrementally(sql: string): boolean {
  const parsed = parseSql(sql)
  if (!parsed.ok || parsed.statements.length !== 1) return false
  const select = parsed.statements[0]!.SelectStmt
  return select !== undefined && !runsWhole(select)
}

/** Whether every call in a tree is a built-in function or operator other than set_config. */
function callsOnlyBuiltins(node: unknown): boolean {
  if (Array.isArray(node)) return node.every(callsOnlyBuiltins)
  if (typeof node !== 'object' || node === null) return true
  return Object.entries(node).every(([k, v]) => {
    const body = v as {funcname?: unknown; name?: unknown}
    if (k === 'FuncCall') {
      const [name, schema] = names(body.funcname).reverse()
      if (name === undefined || name === 'set_config' || (schema !== undefined && schema !== 'pg_catalog') || builtinCandidates(name) === undefined) return false
    }
    if (k === 'A_Expr' && !names(body.name).every((op) => isBuiltinOperator(op))) return false
    return callsOnlyBuiltins(v)
  })
}

/**
 * Whether a statement is known to leave the session's settings (its statement_timeout among them)
 * as they were: one SELECT that writes nothing and calls only built-in functions and operators
 * other than set_config, as the server reads its text (`U&"s\0065t_config"` is set_config, which a
 * word match missed, so the agent's next call ran with no timeout). Anything else may change them:
 * a SET, set_config however spelled, a function of the database's own whose body may call it.
 */
export function leavesSettings(sql: string): boolean {
  if (!readsIncrementally(sql)) return false
  const parsed = parseSql(sql)
  return parsed.ok && callsOnlyBuiltins(parsed.statements)
}

/** The cancel key the endpoint gave a session (BackendKeyData), which names it to the endpoint. */
function keyOf(c: pg.Client): {processId: number; secretKey: number} | undefined {
  const {processID, secretKey} = c as unknown as {processID: number | null; secretKey: number | null}
  return processID === null || secretKey === null || processID === undefined || secretKey === undefined ? undefined : {processId: processID, secretKey}
}

function isFatal(error: unknown): boolean {
  const severity = (error as {severity?: unknown} | null)?.severity
  return severity === 'FATAL' || severity === 'PANIC'
}

function unwrap(s: Settled): RowsResult {
  if (s.ok) return s.value
  throw s.error
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms).unref())
}

/**
 * Duplicate output names (`select 1 as a, 2 as a`) get a suffix, so every value keeps its key: one
 * no other column has, since a result may name a column `a_2` itself (and the row would otherwise
 * show one column's value under the other's name, and lose the first).
 */
export function uniqueNames(names: string[]): string[] {
  const taken = new Set(names)
  const kept = new Set<string>()
  return names.map((n) => {
    if (!kept.has(n)) {
      kept.add(n)
      return n
    }
    let k = 2
    while (taken.has(`${n}_${k}`)) k++
    taken.add(`${n}_${k}`)
    return `${n}_${k}`
  })
}
