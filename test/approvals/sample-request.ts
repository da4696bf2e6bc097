import type {ApprovalRequest} from '../../src/approvals/types.js'

/** The moment the sample requests are rendered at. */
export const NOW = new Date('2026-11-22T10:00:00Z')

/** A held DDL statement of alice's, waiting for the dba group, with one earlier statement; `over` replaces any part. */
export function sampleRequest(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    v: 1,
    id: 'apr-k3x9m2p7qa',
    target: 'prod',
    database: 'app',
    requester: {subject: 'alice', email: 'alice@example.com', name: 'Alice Example', groups: ['engineering'], issuer: 'https://login.example.com', kind: 'human'},
    sessionId: 's-1',
    connectionId: 1,
    sql: 'create index concurrently orders_status on orders (status)',
    statements: [],
    class: 'ddl',
    ruleId: 'default.ddl-approval',
    reason: 'schema changes need a second pair of eyes',
    reviewers: ['dba'],
    createdAt: new Date(NOW.getTime() - 95_000).toISOString(),
    expiresAt: new Date(NOW.getTime() + 805_000).toISOString(),
    windows: true,
    sealKey: 'x',
    host: 'laptop',
    recent: [{sql: "select count(*) from orders where status = 'new'", decision: 'allow', outcome: 'ok', at: NOW.toISOString()}],
    ...over,
  }
}
