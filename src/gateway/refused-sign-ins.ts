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
 */
import {randomUUID} from 'node:crypto'
import type {Recorder} from '../audit/recorder.js'
import type {Identity} from '../identity/types.js'

/** The target recorded for a name no configured target has: the name itself is in `database`. */
export const NO_SUCH_TARGET = '_unknown'

export interface RefusedSignIn {
  identity: Identity
  /** The configured target asked for; undefined when no target has the name given. */
  target?: string
  /** The database name the client sent (it picks the target), as sent. */
  database: string
  client: {application?: string; user?: string; address: string}
  /** The gateway's fixed reason word (`not-allowed`, `unknown-target`, `too-many-sessions`). */
  reason: string
  /** What the client was told. */
  message: string
}

/** The refusals being written, so that a stopping gateway waits for them before its last shipment. */
export class RefusedSignIns {
  private readonly writing = new Set<Promise<void>>()

  constructor(
    private readonly recorder: Recorder,
    private readonly onError: (error: Error) => void,
  ) {}

  record(r: RefusedSignIn): void {
    const session = this.recorder.startSession({
      sessionId: randomUUID(),
      identity: r.identity,
      target: r.target ?? NO_SUCH_TARGET,
      database: r.database,
      // No database session was opened, so it ran as no role.
      dbUser: '',
      client: r.client,
    })
    const done = session.end(`sign-in refused (${r.reason})`, {reason: r.reason, message: r.message}).catch((e: Error) => this.onError(e))
    this.writing.add(done)
    void done.finally(() => this.writing.delete(done))
  }

  /** Resolves once every refusal recorded so far is in the spool. */
  async settled(): Promise<void> {
    await Promise.all([...this.writing])
  }
}
