import type {AgentInfo, Identity} from '../identity/types.js'
import type {ProxyHooks, SessionInfo, StatementEvent} from '../proxy/seam.js'
import type {StatementDetails} from './events.js'
import type {Recorder} from './recorder.js'

export interface RecordingExtra {
  identity: Identity
  target: string
  policy?: {hash?: string; version?: string}
  /** Every session of this tunnel is this agent's (`dbgate mcp`). */
  agent?: AgentInfo
  /**
   * Extracts class, decision, rule, tables, masked columns and preview for a statement (the
   * pipeline's recording stage reads them from the verdict's `decision` and `approval`); the
   * recorder itself stores what it is given and knows no policy.
   */
  describe?: (event: StatementEvent) => StatementDetails | undefined
}

/** Why a session whose log is full ends (`SessionRecorder.full`). */
const LOG_FULL =
  "dbgate: this session's audit log has reached the most dbgate records of one session, so the session ends once what is in flight has finished; reconnect to go on in a new session (with a log of its own)"

/** The tunnel's event hooks, writing into `recorder`. */
export function createRecordingHooks(recorder: Recorder, extra: RecordingExtra): Required<Pick<ProxyHooks, 'onSessionStart' | 'onStatement' | 'onRowsReleased' | 'onSessionEnd' | 'beforeRelease' | 'logFull'>> {
  return {
    // Group commit: the events of a chunk of replies are written before the client gets them.
    beforeRelease(sessionId: string) {
      recorder.release()
      return recorder.session(sessionId)?.unwritten
    },
    onSessionStart(session: SessionInfo) {
      recorder.startSession({
        sessionId: session.sessionId,
        identity: session.identity ?? extra.identity,
        target: extra.target,
        database: session.database,
        dbUser: session.user,
        // The client's own user name only where it differs from the one the session ran as: it is the client's text, never an identity.
        client: {
          application: session.applicationName,
          ...(session.clientUser !== undefined && session.clientUser !== session.user ? {user: session.clientUser} : {}),
          address: session.clientAddress,
        },
        connectionId: session.connectionId,
        startedAt: session.startedAt,
        policy: extra.policy,
        agent: extra.agent,
      })
    },
    onStatement(event: StatementEvent) {
      const s = recorder.session(event.sessionId)
      // A statement for a session we never saw start is a tunnel bug; losing it silently would hide it.
      if (!s) throw new Error(`audit: statement for unknown session ${event.sessionId}`)
      s.statement(event, extra.describe?.(event) ?? {})
    },
    logFull(sessionId: string) {
      return recorder.session(sessionId)?.full === true ? LOG_FULL : undefined
    },
    // Before the rows go out, in the same write as the events of their chunk (beforeRelease).
    onRowsReleased(event: StatementEvent) {
      const s = recorder.session(event.sessionId)
      if (!s) throw new Error(`audit: rows for unknown session ${event.sessionId}`)
      s.streaming(event, extra.describe?.(event) ?? {})
    },
    onSessionEnd(session: SessionInfo, reason: string) {
      const s = recorder.session(session.sessionId)
      if (!s) throw new Error(`audit: end of unknown session ${session.sessionId}`)
      // The hook is synchronous, so failures go to the recorder's onError rather than a lost promise.
      s.end(reason).catch((err: unknown) => recorder.reportError(err))
    },
  }
}
