import {beforeAll, describe, expect, it} from 'vitest'
import {analyze, decisionToVerdict, evaluate, loadParser, POLICY_SQLSTATE, type PolicyRule} from '../../src/policy/index.js'

beforeAll(async () => {
  await loadParser()
})

function verdictFor(sql: string, rules: PolicyRule[] = [], reviewers?: string[]) {
  const a = analyze(sql)
  return decisionToVerdict(evaluate(a, {rules}), {statements: a.statements, ...(reviewers ? {reviewers} : {})})
}

describe('decisionToVerdict', () => {
  it('rejects a denied statement with SQLSTATE 42501 and names the rule', () => {
    const v = verdictFor('TRUNCATE users')
    expect(v.action).toBe('reject')
    if (v.action !== 'reject') return
    expect(v.error).toMatchObject({
      severity: 'ERROR',
      code: '42501',
      message: 'dbgate: statement denied by rule default.no-truncate: TRUNCATE removes every row of a table',
      detail: 'statement: TRUNCATE users',
    })
    expect(v.error.hint).toMatch(/DELETE with a WHERE clause/)
    expect(POLICY_SQLSTATE).toBe('42501')
  })

  it('suggests adding a WHERE clause to an unfiltered delete', () => {
    const v = verdictFor('DELETE FROM users WHERE 1=1')
    expect(v.action === 'reject' && v.error.hint).toBe('add a WHERE clause that picks the rows to delete')
  })

  it('says which statement of several was refused', () => {
    const v = verdictFor('SELECT 1;\n  DROP   TABLE\n x; SELECT 2')
    expect(v.action === 'reject' && v.error.detail).toBe('statement 2 of 3: DROP TABLE x')
  })

  it('quotes a custom rule reason, and the parse error for unreadable SQL', () => {
    const v = verdictFor('SELECT * FROM salaries', [{id: 'hr-only', match: {tables: ['salaries']}, action: 'deny', reason: 'salaries are HR-only'}])
    expect(v.action === 'reject' && v.error.message).toBe('dbgate: statement denied by rule hr-only: salaries are HR-only')
    // Unreadable SQL is answered as the server answers it: 42601, the parser's message, the cursor.
    const bad = verdictFor('SELEC 1')
    expect(bad.action === 'reject' && bad.error).toEqual({severity: 'ERROR', code: '42601', message: 'syntax error at or near "SELEC"', position: '1'})
    const later = verdictFor("SELECT 'é€😀' FRM t")
    // Characters as the server counts them: the emoji is one, though it is two UTF-16 units and four bytes.
    expect(later.action === 'reject' && later.error.position).toBe('18')
  })

  it('holds a statement that needs approval, saying who reviews', () => {
    const v = verdictFor('CREATE TABLE t (a int)', [], ['dba', 'sre'])
    expect(v.action).toBe('hold')
    if (v.action !== 'hold') return
    expect(v.reviewers).toEqual(['dba', 'sre'])
    expect(v.rule).toMatchObject({ruleId: 'default.ddl-approval', class: 'ddl'})
    expect(v.error.code).toBe('42501')
    expect(v.error.message).toBe('dbgate: statement requires approval by a member of dba, sre (rule default.ddl-approval): schema changes need a reviewer')
    expect(v.error.hint).toBe('ask a member of dba, sre to approve it with `dbgate approve`, then run it again')
    const anonymous = verdictFor('DO $$ BEGIN END $$')
    expect(anonymous.action === 'hold' && anonymous.error.message).toMatch(/^dbgate: statement requires approval by a reviewer \(rule default\.opaque-approval\)/)
  })

  it('allows a warned statement with a WARNING notice per warning', () => {
    const v = verdictFor('SET work_mem = 1024; INSERT INTO t VALUES (1)', [
      {id: 'watch-settings', match: {class: 'session'}, action: 'warn', reason: 'settings changed'},
      {id: 'audit-writes', match: {class: 'write'}, action: 'warn', reason: 'writes to prod are reviewed weekly'},
    ])
    expect(v.action).toBe('allow')
    if (v.action !== 'allow') return
    expect(v.notices?.map((n) => [n.severity, n.code, n.message])).toEqual([
      ['WARNING', '01000', 'dbgate: settings changed (rule watch-settings)'],
      ['WARNING', '01000', 'dbgate: writes to prod are reviewed weekly (rule audit-writes)'],
    ])
    expect(v.notices?.[1]?.detail).toBe('statement 2 of 2: INSERT INTO t VALUES (1)')
  })

  it('allows a plain read with no notices and keeps the decision on the verdict', () => {
    const v = verdictFor('SELECT 1')
    expect(v).toMatchObject({action: 'allow', decision: {action: 'allow', decisive: {ruleId: 'default.allow-read'}}})
    expect(v.action === 'allow' && v.notices).toBeUndefined()
  })

  it('cuts long statements in the detail', () => {
    const long = `DROP TABLE ${'x'.repeat(500)}`
    const v = verdictFor(long)
    expect(v.action === 'reject' && v.error.detail?.length).toBeLessThan(230)
  })
})
