/**
 * Sign-ins the gateway refused to someone whose token it verified: a person outside a target's
 * `allow`, asking for a target no one serves, signing in as another user name, or past
 * `server.maxSessionsPerPerson`. Each is recorded as a session of that person that never reached
 * the database (a `session.start`, then a signed `session.end` saying why), so it ships, verifies
 * and lists like any other session: an auditor asked for denied access attempts finds them in the
 * bucket, by person and target, not only in the gateway's log (which summarises repeats).
 *
 * A token that did not verify names nobody: those refusals stay in the log and the
 * `dbgate_gateway_sign_in_failures_total` counter, as anyone on the network can cause them.
 *
 * One person's refusals (under every subject that proves the same verified mailbox) are recorded
 * one by one up to `perMinute` a minute; past that they are counted, and the count goes into the
 * next one recorded of the same kind (the same target, or any target no one serves, and the same
 * reason: `alsoRefused`), at the latest a minute on or when the gateway stops: a loop of refused sign-ins cannot fill the spool and the bucket with a
 * session each, and none goes unrecorded. Counted by kind, one refusal cannot stand for attempts
 * at another target (a last refusal for a harmless name hiding those at the one that matters);
 * the kinds are bounded by the configured targets and the reasons.
 */
import {randomUUID} from 'node:crypto'
import type {SignInRefusalRecord} from '../audit/events.js'
import type {Recorder} from '../audit/recorder.js'
import type {Identity} from '../identity/types.js'
import {personKeys} from './session-caps.js'

/** The target recorded for a name no configured target has: the name itself is in `database`. */
export const NO_SUCH_TARGET = '_unknown'

export interface RefusedSignIn {
  identity: Identity
  /** The configured target asked for; undefined when no target has the name given. */
  target?: string
  /** The database name the client sent (it picks the target), as sent. */
  database: string
  client: {application?: string; user?: string; address: string}
  /** The gateway's fixed reason word (`not-allowed`, `unknown-target`, `too-many-sessions`, `startup-parameter`). */
  reason: string
  /** What the client was told. */
  message: string
}

/** Refusals of one kind counted, not recorded, since `since`; the last of them is `last`. */
interface Held {
  count: number
  since: string
  last: RefusedSignIn
}

interface PersonWindow {
  startedAt: number
  recorded: number
  /** By kind (`kindOf`). */
  held: Map<string, Held>
}

const WINDOW_MS = 60_000

/** What a count may be folded into: the same target (any name no target has counts as one) and reason. */
function kindOf(r: RefusedSignIn): string {
  return JSON.stringify([r.target ?? NO_SUCH_TARGET, r.reason])
}

export class RefusedSignIns {
  private readonly writing = new Set<Promise<void>>()
  private readonly windows = new Map<string, PersonWindow>()
  private readonly sweep: NodeJS.Timeout

  constructor(
    private readonly recorder: Recorder,
    private readonly onError: (error: Error) => void,
    private readonly opts: {perMinute?: number; now?: () => number} = {},
  ) {
    this.sweep = setInterval(() => this.writeHeld(false), WINDOW_MS)
    this.sweep.unref()
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now()
  }

  record(r: RefusedSignIn): void {
    // The verified mailbox where there is one: a person's several subjects (a pairwise `sub` per
    // client) share one rate, as they share one session cap.
    const key = personKeys(r.identity).at(-1)!
    const kind = kindOf(r)
    const now = this.now()
    let w = this.windows.get(key)
    if (!w || now - w.startedAt >= WINDOW_MS) {
      const before = w?.held
      w = {startedAt: now, recorded: 0, held: new Map()}
      this.windows.set(key, w)
      if (before && before.size > 0) {
        // What the window over held: the count of this one's kind rides on it, the others are written as they are.
        const same = before.get(kind)
        before.delete(kind)
        this.writeAll(before)
        if (same) return this.write(r, {held: same.count, since: same.since}, w)
      }
    }
    if (w.recorded < (this.opts.perMinute ?? 20)) return this.write(r, undefined, w)
    const held = w.held.get(kind)
    if (held) {
      held.count += 1
      held.last = r
    } else w.held.set(kind, {count: 1, since: new Date(now).toISOString(), last: r})
  }

  /** Writes, as one record per kind, the refusals held back: those of windows over (`all`: every window, as the gateway stops). */
  private writeHeld(all: boolean): void {
    const now = this.now()
    for (const [key, w] of this.windows) {
      if (!all && now - w.startedAt < WINDOW_MS) continue
      this.windows.delete(key)
      this.writeAll(w.held)
    }
  }

  /** The last one held of each kind is the record; the others it counts. */
  private writeAll(held: Map<string, Held>): void {
    for (const h of held.values()) this.write(h.last, h.count > 1 ? {held: h.count - 1, since: h.since} : undefined, undefined)
  }

  private write(r: RefusedSignIn, held: {held: number; since: string} | undefined, w: PersonWindow | undefined): void {
    if (w) w.recorded += 1
    const refused: SignInRefusalRecord = {reason: r.reason, message: r.message, ...(held ? {alsoRefused: held.held, alsoRefusedSince: held.since} : {})}
    const session = this.recorder.startSession({
      sessionId: randomUUID(),
      identity: r.identity,
      target: r.target ?? NO_SUCH_TARGET,
      database: r.database,
      // No database session was opened, so it ran as no role.
      dbUser: '',
      client: r.client,
    })
    const done = session.end(`sign-in refused (${r.reason})`, refused).catch((e: Error) => this.onError(e))
    this.writing.add(done)
    void done.finally(() => this.writing.delete(done))
  }

  /** Records what is held back, and resolves once every refusal is in the spool: for a gateway that stops. */
  async settled(): Promise<void> {
    clearInterval(this.sweep)
    this.writeHeld(true)
    await Promise.all([...this.writing])
  }
}
