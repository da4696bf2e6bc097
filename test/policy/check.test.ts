import {beforeAll, describe, expect, it} from 'vitest'
import {checkPolicy, lintRules, type PolicyRule} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

describe('checkPolicy', () => {
  it('judges each statement and reports rule, reason and tables', () => {
    const rules: PolicyRule[] = [{id: 'hr', match: {tables: ['salaries']}, action: 'warn', reason: 'salaries are sensitive'}]
    const r = checkPolicy('SELECT * FROM salaries; DELETE FROM users', {rules, pack: 'default', groups: []})
    expect(r.decision.action).toBe('deny')
    expect(r.statements.map((s) => [s.analysis.command, s.decision.action, s.decision.ruleId])).toEqual([
      ['select', 'warn', 'hr'],
      ['delete', 'deny', 'default.no-unfiltered-delete'],
    ])
    expect(r.report).toBe(
      [
        '[1] WARN     select (read)  rule hr',
        '    SELECT * FROM salaries',
        '    salaries are sensitive',
        '    tables: salaries (read)',
        '[2] DENY     delete (write, where none)  rule default.no-unfiltered-delete',
        '    DELETE FROM users',
        '    DELETE without a WHERE clause, or with one that is always true, removes every row',
        '    hint: add a WHERE clause that picks the rows to delete',
        '    tables: users (write)',
        // A rule matches tables, and without a connection no view can be seen through.
        'note: rules on tables judged salaries, users as written. `dbgate policy check` has no connection, so it',
        '      cannot see which of them are views or materialized views; through the tunnel the tables behind a',
        '      view count too (a read of a view over hr.salaries matches a rule on hr.*).',
        'result: DENY (strictest of 2 statements)',
      ].join('\n'),
    )
  })

  it('knows statements prepared earlier in the same text', () => {
    const r = checkPolicy('PREPARE p AS SELECT 1; EXECUTE p', {rules: [], pack: 'default', groups: []})
    expect(r.statements[1]?.analysis).toMatchObject({class: 'read', command: 'execute'})
    expect(r.decision.action).toBe('allow')
  })

  it('says when a verdict depends on a function it cannot look up without a connection', () => {
    const r = checkPolicy('SELECT archive_old_orders(30)', {rules: [], pack: 'default', groups: []})
    expect(r.decision.action).toBe('deny')
    expect(r.statements[0]?.decision.ruleId).toBe('default.unknown-function')
    expect(r.unresolved).toEqual(['function archive_old_orders'])
    expect(r.report).toMatch(/note: this verdict depends on what the target's catalog says about function archive_old_orders\./)
    // It does not promise that the tunnel trusts the function's declared volatility.
    expect(r.report).toMatch(/a user function is judged by what its body does/)
    expect(r.report).not.toMatch(/judged by their volatility/)
    // Built-ins are known offline, from the generated catalog table.
    expect(checkPolicy('SELECT lower(email), now() FROM users', {rules: [], pack: 'default', groups: []}).unresolved).toEqual([])
  })

  it('reports a syntax error as the server would, not as a denial', () => {
    const r = checkPolicy('SELEC 1', {rules: [], pack: 'default', groups: []})
    expect(r.decision.syntaxError).toEqual({message: 'syntax error at or near "SELEC"', position: 1})
    expect(r.report).toBe('ERROR    syntax error (SQLSTATE 42601) at character 1: syntax error at or near "SELEC"\nresult: SYNTAX ERROR (the server would refuse it too; it is never sent)')
  })

  it('says so when there is nothing to check', () => {
    expect(checkPolicy('-- nothing', {rules: [], pack: 'default', groups: []}).report).toBe('(no statements)\nresult: ALLOW')
  })
})

describe('lintRules', () => {
  const rule = (id: string, match: PolicyRule['match'], action: PolicyRule['action'] = 'deny'): PolicyRule => ({id, match, action})

  it('finds command typos, misplaced where, risky allows and shadowed rules', () => {
    const issues = lintRules([
      rule('typo', {command: ['dleete']}),
      rule('where', {class: 'ddl', where: 'none'}),
      rule('allow-all', {groups: ['dba']}, 'allow'),
      rule('broad', {class: 'ddl'}, 'require_approval'),
      rule('narrow', {class: 'ddl', command: 'drop'}),
      rule('fine', {class: 'write', command: ['delete', 'update'], where: 'none', tables: ['public.*']}),
    ])
    expect(issues.map((i) => [i.ruleId, i.severity])).toEqual([
      ['typo', 'error'],
      ['where', 'warning'],
      ['allow-all', 'warning'],
      ['narrow', 'warning'],
    ])
    expect(issues[3]?.message).toBe('rule broad comes first and matches everything this rule does, so it never fires')
  })

  it('accepts commands built from object kinds and warns about an empty policy', () => {
    expect(lintRules([rule('ok', {command: ['alter_table', 'create_index', 'drop', 'merge']})])).toEqual([])
    expect(lintRules([rule('w', {class: 'write'}, 'warn')], 'none').map((i) => i.ruleId)).toEqual(['(target)'])
  })
})
