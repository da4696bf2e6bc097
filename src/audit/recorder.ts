import {hostname} from 'node:os'
import type {AgentInfo, Identity} from '../identity/types.js'
import type {StatementEvent} from '../proxy/seam.js'
import {ChainState, type Signer} from './chain.js'
import {
  addToTotals,
  emptyTotals,
  recordIdentity,
  statementData,
  statementJson,
  StatementJsonMemo,
  type KnownEventType,
  type Normalized,
  type SessionStartData,
  type SignInRefusalRecord,
  type StatementDetails,
  type StatementStreamingData,
  type Totals,
} from './events.js'
import {checkSpoolDirectory, defaultSpoolDir, SpoolFile, SpoolWriteError, type SpoolFileOptions} from './spool.js'
import {loadParser} from '../sql/parser.js'
import {MAX_LOG_BYTES} from './index-cache.js'

export interface RecorderOptions {
  signer: Signer
  dbgateVersion: string
  spoolDir?: string
  /** Result rows kept per statement preview; 0 records no previews at all. */
  previewRows?: number
  /** A signed checkpoint every this many events, so a session still in progress is provable. */
  checkpointEvery?: number
  flushIntervalMs?: number
  /**
   * Every failed spool write or close, loudly; events are kept and retried, never dropped. Defaults
   * to a process warning so a misconfigured caller still sees it on stderr.
   */
  onError?: (err: Error) => void
  now?: () => Date
  /** A statement's normalized text and fingerprint; `normalizeSql` by default. */
  normalize?: (sql: string) => Normalized
  /** The size at which a session's log is full (`SessionRecorder.full`); `MAX_SESSION_LOG_BYTES` by default. */
  maxSessionLogBytes?: number
}

/**
 * The most a session's log may grow to before its connection is ended: half of what the auditor's
 * tools read of one log (`MAX_LOG_BYTES`), which leaves room for what was in flight when it was
 * reached. Past that size every tool refuses the whole log as unreadable, so a client that padded
 * its session (a thousand statements of 1 MiB comments, or a million of `select 1`) hid every
 * statement of it, the write before the padding included.
 */
export const MAX_SESSION_LOG_BYTES = MAX_LOG_BYTES / 2

export interface SessionStartInput {
  sessionId: string
  identity: Identity
  target: string
  database: string
  dbUser: string
  client: {application?: string; user?: string; address: string}
  connectionId?: number
  startedAt?: Date
  policy?: {hash?: string; version?: string}
  agent?: AgentInfo
}

/** Event types whose invariants the recorder owns; `recordEvent` refuses them. */
const RESERVED = new Set<string>(['session.start', 'statement', 'statement.streaming', 'session.end', 'session.interrupted', 'checkpoint'] satisfies KnownEventType[])

/** Every live session recorded by this process, whichever recorder writes it (a gateway has one per pipeline). */
const liveInProcess = new Map<string, SessionRecorder>()

/**
 * Bytes written so far to the log of a session this process is recording; undefined for any other
 * session. What a background shipper (`Shipper`'s `writtenBytes`) needs to pass over idle ones.
 */
export function writtenBytesInProcess(sessionId: string): number | undefined {
  return liveInProcess.get(sessionId)?.writtenBytes
}

export class Recorder {
  private readonly sessions = new Map<string, SessionRecorder>()
  /**
   * Sessions with events appended since the last `release`, each once (`SessionRecorder.noted`),
   * in `unwritten[0 .. unwrittenCount)`. Slots are reused: a `Set` cleared after every release made
   * a new table each time, per chunk of replies.
   */
  private readonly unwritten: (SessionRecorder | undefined)[] = []
  private unwrittenCount = 0

  /** Every session's spool takes the same options: one object for all of them. */
  readonly spoolOptions: SpoolFileOptions

  private constructor(readonly opts: Required<Pick<RecorderOptions, 'previewRows' | 'checkpointEvery' | 'spoolDir'>> & RecorderOptions) {
    this.spoolOptions = {flushIntervalMs: opts.flushIntervalMs, onError: opts.onError}
  }

  /** Loads the SQL parser (for normalized text and fingerprints) before any hook can fire. */
  static async open(opts: RecorderOptions): Promise<Recorder> {
    await loadParser()
    const recorder = new Recorder({previewRows: 20, checkpointEvery: 100, spoolDir: defaultSpoolDir(), onError: (err) => process.emitWarning(err), ...opts})
    await checkSpoolDirectory(recorder.opts.spoolDir)
    return recorder
  }

  /** For failures found outside a write (e.g. in a synchronous hook); spool write failures are reported where they happen. */
  reportError(err: unknown): void {
    if (err instanceof SpoolWriteError) return
    this.opts.onError!(err instanceof Error ? err : new Error(String(err)))
  }

  startSession(input: SessionStartInput): SessionRecorder {
    if (this.sessions.has(input.sessionId)) throw new Error(`session ${input.sessionId} is already being recorded`)
    const s = new SessionRecorder(this, input)
    this.sessions.set(input.sessionId, s)
    liveInProcess.set(input.sessionId, s)
    return s
  }

  /** @internal A session's spool is closed: it is no longer live. */
  closed(s: SessionRecorder): void {
    this.sessions.delete(s.sessionId)
    liveInProcess.delete(s.sessionId)
  }

  session(sessionId: string): SessionRecorder | undefined {
    return this.sessions.get(sessionId)
  }

  /**
   * Writes every event recorded since the last call, one write per session. The tunnel calls it
   * before it sends a client replies, so that no client sees a result whose event a killed process
   * could lose; the disk syncs stay batched (`flushIntervalMs`).
   */
  release(): void {
    if (this.unwrittenCount === 0) return
    const list = this.unwritten
    // The count is read each time: a session noted during the loop (an error's report recording
    // something) is written in this release too.
    for (let i = 0; i < this.unwrittenCount; i++) {
      const s = list[i]!
      list[i] = undefined
      s.noted = false
      s.writeNow()
    }
    this.unwrittenCount = 0
  }

  /** @internal */
  noteUnwritten(s: SessionRecorder): void {
    if (s.noted) return
    s.noted = true
    this.unwritten[this.unwrittenCount++] = s
  }

  now(): Date {
    return this.opts.now?.() ?? new Date()
  }

  /** `now()` in milliseconds: a statement's event time makes no Date (the chain formats a new millisecond only). */
  nowTime(): number {
    return this.opts.now ? this.opts.now().getTime() : Date.now()
  }

  /** Resolves once every session's appended events are on disk; sessions with nothing unsynced cost nothing. */
  async flush(): Promise<void> {
    let pending: Promise<void>[] | undefined
    this.sessions.forEach((s) => {
      if (!s.settled) (pending ??= []).push(s.flush())
    })
    if (pending) await Promise.all(pending)
  }

  /**
   * Signs a checkpoint in every live session with events since its last signed line, and flushes.
   * The tunnel's shipper calls this before each run, so every shipped snapshot ends on a signature.
   */
  async checkpointLive(): Promise<void> {
    this.sessions.forEach((s) => s.checkpointIfNeeded())
    await this.flush()
  }

  /** Ends every open session (e.g. on tunnel shutdown). */
  async close(reason = 'shutdown'): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.end(reason)))
  }
}

/**
 * One session's recording. A tunnel keeps one per open session, most of them idle: what only a
 * statement needs (its totals, the memo of the last statement's encoding) is made with the first
 * statement, and the object holds no closure of its own.
 */
export class SessionRecorder {
  readonly sessionId: string
  private counts: Totals | undefined
  private readonly chain: ChainState
  private readonly spool: SpoolFile
  private sinceCheckpoint = 0
  /** What the last statement event was made and encoded from (`statementData`, `statementJson`). */
  private jsonMemo: StatementJsonMemo | undefined
  private ended?: Promise<void>
  /** @internal On the recorder's list of sessions to write at the next `release`. */
  noted = false

  constructor(private readonly rec: Recorder, input: SessionStartInput) {
    this.sessionId = input.sessionId
    this.spool = new SpoolFile(rec.opts.spoolDir, input.sessionId, rec.spoolOptions)
    this.chain = new ChainState(input.sessionId)
    const startedAt = input.startedAt ?? rec.now()
    const data: SessionStartData = {
      sessionId: input.sessionId,
      identity: recordIdentity(input.identity),
      target: input.target,
      database: input.database,
      dbUser: input.dbUser,
      client: input.client,
      connectionId: input.connectionId ?? 0,
      startedAt: startedAt.toISOString(),
      dbgateVersion: rec.opts.dbgateVersion,
      ...(input.policy ? {policy: input.policy} : {}),
      keyId: rec.opts.signer.keyId,
      host: hostname(),
      ...(input.agent ? {agent: {client: input.agent.client, name: input.agent.name, ...(input.agent.version ? {version: input.agent.version} : {})}} : {}),
    }
    // Signed from the first line: even a session killed after one statement names its signer.
    this.write('session.start', data, startedAt, true)
  }

  /** The session's totals so far (a copy, as checkpoints and the end record them). */
  get totals(): Totals {
    return this.counts ? {...this.counts} : emptyTotals()
  }

  /** The session's log has reached `maxSessionLogBytes` (written or still queued): its connection must end. */
  get full(): boolean {
    return this.spool.writtenBytes + this.spool.pendingBytes >= (this.rec.opts.maxSessionLogBytes ?? MAX_SESSION_LOG_BYTES)
  }

  /** Bytes of this session's log written so far; the background shipper skips a session whose count has not moved. */
  get writtenBytes(): number {
    return this.spool.writtenBytes
  }

  get spoolPath(): string {
    return this.spool.paths.log
  }

  statement(ev: StatementEvent, details: StatementDetails = {}): void {
    const memo = (this.jsonMemo ??= new StatementJsonMemo())
    const data = statementData(ev, details, this.rec.opts.previewRows, this.rec.opts.normalize, memo)
    addToTotals((this.counts ??= emptyTotals()), data)
    this.write('statement', data, this.rec.nowTime(), false, statementJson(data, memo))
  }

  /**
   * Rows of a statement still running are about to reach the client: its `statement` event is
   * written at its end, which a tunnel killed meanwhile never reaches, so this says now what it is.
   * Its parameters, preview and outcome wait for that event; totals count only that one.
   */
  streaming(ev: StatementEvent, details: StatementDetails = {}): void {
    const {outcome: _o, commandTags: _t, durationMs: _d, params: _p, preview: _v, error: _e, maskedValues: _m, ...data} = statementData(ev, details, 0, this.rec.opts.normalize)
    const out: StatementStreamingData = data
    this.write('statement.streaming', out, this.rec.nowTime())
  }

  /** Any other event type (e.g. `approval.requested`), chained and spooled like the rest. */
  recordEvent(type: string, payload: unknown): void {
    if (!/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/.test(type)) throw new Error(`invalid event type ${JSON.stringify(type)}`)
    if (RESERVED.has(type)) throw new Error(`event type ${type} is written by the recorder itself`)
    this.write(type, payload ?? null, this.rec.now())
  }

  /** A signed checkpoint now, e.g. before shipping an in-progress session. */
  checkpoint(): void {
    this.write('checkpoint', {totals: this.totals}, this.rec.now(), true)
  }

  checkpointIfNeeded(): void {
    if (this.sinceCheckpoint > 0 && !this.ended) this.checkpoint()
  }

  flush(): Promise<void> {
    return this.spool.flush()
  }

  /** Every event written and synced, nothing in progress (`SpoolFile.settled`): a flush would do nothing. */
  get settled(): boolean {
    return this.spool.settled
  }

  /** Why events of this session are still only in memory after a write (the failed write's error), if they are. */
  get unwritten(): SpoolWriteError | undefined {
    return this.spool.pendingBytes > 0 ? this.spool.lastError : undefined
  }

  /** Writes this session's appended events now (see `Recorder.release`); false if the write failed (they stay queued). */
  writeNow(): boolean {
    return this.spool.writeNow()
  }

  /** Writes the signed `session.end`, flushes and releases the spool lock. Idempotent. */
  end(reason: string, refused?: SignInRefusalRecord): Promise<void> {
    this.ended ??= (async () => {
      const now = this.rec.now()
      this.write('session.end', {reason, endedAt: now.toISOString(), totals: this.totals, ...(refused ? {refused} : {})}, now, true)
      try {
        await this.spool.close()
      } finally {
        this.rec.closed(this)
      }
    })()
    return this.ended
  }

  private write(type: string, data: unknown, ts: Date | number, sign = false, dataJson?: string): void {
    if (this.ended && type !== 'session.end') throw new Error(`session ${this.sessionId} has ended; ${type} event not recorded`)
    const every = this.rec.opts.checkpointEvery
    this.spool.appendBytes(this.chain.appendBytes(type, data, ts, sign ? this.rec.opts.signer : undefined, dataJson))
    this.rec.noteUnwritten(this)
    this.sinceCheckpoint = sign ? 0 : this.sinceCheckpoint + 1
    if (!sign && every > 0 && this.sinceCheckpoint >= every) this.checkpoint()
  }
}
