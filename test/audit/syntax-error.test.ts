import {beforeAll, describe, expect, it} from 'vitest'
import {addToTotals, emptyTotals, isDenied, type AuditEvent, type StatementData} from '../../src/audit/events.js'
import {renderEvent} from '../../src/audit/render.js'
import {describeStatement} from '../../src/connect/recording.js'
import {createStatementHook} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import type {StatementContext, StatementEvent, StatementVerdict} from '../../src/proxy/seam.js'

beforeAll(async () => {
  await loadParser()
})

const session = {statement: () => undefined, portal: () => undefined, parameters: new Map<string, string>()}
const ctx = {sessionId: 's', connectionId: 1, protocol: 'simple', transactionStatus: 'I', database: 'app', user: 'u', session, signal: new AbortController().signal, notify: () => {}} as StatementContext

describe('a typo in the session log', () => {
  it('is recorded as a syntax error, not a denial, and counted apart', async () => {
    const hook = createStatementHook({rules: [], pack: 'default', identityGroups: []})
    const verdict = (await hook('SELEC 1', ctx)) as StatementVerdict
    expect(verdict).toMatchObject({action: 'reject', error: {code: '42601', message: 'syntax error at or near "SELEC"', position: '1'}})
    const event: StatementEvent = {sessionId: 's', connectionId: 1, protocol: 'simple', sql: 'SELEC 1', verdict, startedAt: new Date(), durationMs: 0, commandTags: [], rows: 0, outcome: 'rejected'}
    const details = describeStatement(event)
    expect(details.decision).toBe('syntax_error')
    expect(isDenied(details.decision!)).toBe(false)
    const totals = emptyTotals()
    addToTotals(totals, {decision: 'syntax_error', outcome: 'rejected', rows: 0, error: {sqlstate: '42601', message: 'syntax error at or near "SELEC"'}})
    addToTotals(totals, {decision: 'deny', outcome: 'rejected', rows: 0})
    expect(totals).toEqual({statements: 2, denied: 1, errors: 1, rows: 0, syntaxErrors: 1})
    const line = (data: Partial<StatementData>): AuditEvent => ({v: 1, type: 'statement', session: 's', seq: 1, ts: new Date().toISOString(), prev: '', hash: '', data: {sql: 'SELEC 1', rows: 0, durationMs: 0, decision: 'syntax_error', ...data}})
    expect(renderEvent(line({}))[0]).toMatch(/SYNTAX ERROR/)
    const end: AuditEvent = {v: 1, type: 'session.end', session: 's', seq: 2, ts: new Date().toISOString(), prev: '', hash: '', data: {reason: 'bye', endedAt: '', totals}}
    expect(renderEvent(end)[0]).toMatch(/2 statements, 1 denied, 1 errors \(1 syntax\), 0 rows/)
  })
})
