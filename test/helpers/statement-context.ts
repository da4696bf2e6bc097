/** A StatementContext as the tunnel hands one to its hooks, for tests that call a hook directly. */
import type {SessionView, StatementContext} from '../../src/proxy/seam.js'

/** A session with no prepared statements or portals and these acknowledged parameters. */
export function sessionWith(parameters: [string, string][]): SessionView {
  return {statement: () => undefined, portal: () => undefined, parameters: new Map(parameters)} as unknown as SessionView
}

export function statementContext(session: SessionView, extra: Partial<StatementContext> = {}): StatementContext {
  return {
    sessionId: 's1',
    connectionId: 1,
    protocol: 'simple',
    transactionStatus: 'I',
    database: 'app',
    user: 'app_rw',
    session,
    signal: new AbortController().signal,
    notify: () => {},
    // A server session with no custom settings and no role set: each query of the tunnel's own answers no rows.
    askSession: async (statements) => statements.map(() => []),
    ...extra,
  }
}
