import {beforeAll, describe, expect, it} from 'vitest'
import type {RuleConfig} from '../../src/config/types.js'
import {parseConfigText} from '../../src/config/parse.js'
import {analyze, evaluate, offlineCatalog, resolveCatalogCalls, ruleMatches, type EvaluateOptions, type PolicyRule} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

const decide = (sql: string, opts: EvaluateOptions) => evaluate(resolveCatalogCalls(analyze(sql).statements, offlineCatalog), opts)
const rule = (id: string, match: PolicyRule['match'], action: PolicyRule['action'], reason?: string): PolicyRule => ({
  id,
  match,
  action,
  ...(reason ? {reason} : {}),
})

describe('rule order', () => {
  it('lets a target rule win over the pack', () => {
    const rules = [rule('dba-drop', {class: 'ddl', command: 'drop', groups: ['dba']}, 'require_approval')]
    const d = decide('DROP TABLE users', {rules, pack: 'default', groups: ['dba']})
    expect(d.action).toBe('require_approval')
    expect(d.decisive?.ruleId).toBe('dba-drop')
  })

  it('takes the first matching target rule, not the strictest', () => {
    const rules = [rule('first', {class: 'write'}, 'warn', 'writes are watched'), rule('second', {class: 'write'}, 'deny')]
    const d = decide('INSERT INTO t VALUES (1)', {rules, pack: 'default'})
    expect(d.action).toBe('warn')
    expect(d.decisive).toMatchObject({ruleId: 'first', reason: 'writes are watched'})
  })

  it('falls through to the pack when no target rule matches', () => {
    const rules = [rule('only-reads', {class: 'read', tables: ['audit.*']}, 'deny')]
    expect(decide('TRUNCATE users', {rules, pack: 'default'}).decisive?.ruleId).toBe('default.no-truncate')
  })

  it('with policy none, allows what no rule names but still refuses what it cannot read', () => {
    expect(decide('DROP TABLE users', {pack: 'none'})).toMatchObject({action: 'allow', decisive: {ruleId: 'fallback.allow'}})
    expect(decide('EXECUTE never_prepared', {pack: 'none'})).toMatchObject({action: 'deny', decisive: {ruleId: 'fallback.unknown'}})
    const allowUnknown = [rule('yolo', {class: 'unknown'}, 'allow')]
    expect(decide('EXECUTE never_prepared', {rules: allowUnknown, pack: 'none'}).action).toBe('allow')
    // Text that does not parse is not SQL: no rule lets it through, and it is answered as a syntax error.
    expect(decide('DELETE FRM users', {rules: allowUnknown, pack: 'none'})).toMatchObject({action: 'deny', decisive: {ruleId: 'syntax-error'}, syntaxError: {position: 8}})
  })

  it('accepts a single class or command as well as lists', () => {
    const r = rule('r', {class: ['ddl', 'write'], command: ['truncate', 'delete']}, 'warn')
    expect(decide('TRUNCATE t', {rules: [r]}).decisive?.ruleId).toBe('r')
    expect(decide('CREATE TABLE t (a int)', {rules: [r]}).decisive?.ruleId).toBe('default.ddl-approval')
    expect(decide('TRUNCATE t', {rules: [rule('one', {class: 'ddl', command: 'TRUNCATE'}, 'warn')]}).decisive?.ruleId).toBe('one')
  })
})

describe('maintenance without a table list', () => {
  it('counts a bare VACUUM or ANALYZE as every table for rules on tables, and a named table as itself', () => {
    const rules = [rule('no-hr', {tables: ['hr.*']}, 'deny', 'hr tables are not touched through this target')]
    for (const sql of ['ANALYZE', 'ANALYZE VERBOSE', 'VACUUM', 'VACUUM ANALYZE', 'VACUUM (ANALYZE, VERBOSE)', 'analyze; select 1']) {
      const d = decide(sql, {rules, pack: 'default'})
      expect(d.action, sql).toBe('deny')
      expect(d.decisive?.ruleId, sql).toBe('no-hr')
      expect(d.decisive?.detail, sql).toMatch(/without a table list processes every table/)
    }
    expect(decide('ANALYZE hr.salaries', {rules, pack: 'default'}).decisive?.ruleId).toBe('no-hr')
    expect(decide('ANALYZE public.teams', {rules, pack: 'default'}).action).toBe('allow')
    expect(decide('VACUUM public.teams', {rules, pack: 'default'}).action).toBe('allow')
  })
})

describe('commands as dbgate.yaml writes them', () => {
  const rulesOf = (command: string) =>
    parseConfigText(['targets:', '  prod:', '    host: db', '    database: app', '    user: app', '    rules:', `      - match: {command: ${command}}`, '        action: deny', ''].join('\n'), 'dbgate.yaml').config.targets.prod!.rules

  it('matches a kind of two words written with an underscore, a space, or in capitals', () => {
    for (const written of ['create_table', 'create table', 'CREATE TABLE', '[alter_table, create_index]']) {
      const rules = rulesOf(written)
      const sql = written.includes('alter') ? 'ALTER TABLE t ADD COLUMN b int' : 'CREATE TABLE t (a int)'
      const decision = decide(sql, {rules})
      // The target's rule decides, not the built-in pack's approval for DDL.
      expect(decision.action, written).toBe('deny')
      expect(decision.decisive?.ruleId, written).not.toMatch(/^default\./)
    }
  })
})

describe('groups', () => {
  const rules = [rule('dba-ddl', {class: 'ddl', groups: ['dba', 'sre']}, 'allow')]

  it('applies a rule only to identities in one of its groups', () => {
    expect(decide('CREATE INDEX i ON t (a)', {rules, groups: ['sre']}).action).toBe('allow')
    expect(decide('CREATE INDEX i ON t (a)', {rules, groups: ['engineering']}).action).toBe('require_approval')
    expect(decide('CREATE INDEX i ON t (a)', {rules}).action).toBe('require_approval')
  })
})

describe('tables', () => {
  it('matches an unqualified table as both name and public.name', () => {
    const byQualified = [rule('r', {tables: ['public.users']}, 'deny')]
    const byBare = [rule('r', {tables: ['users']}, 'deny')]
    expect(decide('SELECT * FROM users', {rules: byQualified}).decisive?.ruleId).toBe('r')
    expect(decide('SELECT * FROM public.users', {rules: byBare}).decisive?.ruleId).toBe('r')
    expect(decide('SELECT * FROM other.users', {rules: byBare}).decisive?.ruleId).toBe('default.allow-read')
  })

  it('matches schema globs without crossing the dot', () => {
    const rules = [rule('audit', {tables: ['audit.*']}, 'deny')]
    expect(decide('SELECT * FROM audit.log', {rules}).action).toBe('deny')
    expect(decide('SELECT * FROM audit_log', {rules}).action).toBe('allow')
    expect(decide('SELECT * FROM users u JOIN audit.log l ON l.uid = u.id', {rules}).action).toBe('deny')
    expect(decide('SELECT * FROM audit.log', {rules: [rule('star', {tables: ['*']}, 'deny')]}).action).toBe('allow')
  })

  it('sees tables in subqueries, CTEs and DML targets, but not CTE names', () => {
    const rules = [rule('secrets', {tables: ['secrets']}, 'deny')]
    expect(decide('SELECT * FROM t WHERE id IN (SELECT id FROM secrets)', {rules}).action).toBe('deny')
    expect(decide('WITH s AS (SELECT * FROM secrets) SELECT * FROM s', {rules}).action).toBe('deny')
    expect(decide('WITH secrets AS (SELECT 1) SELECT * FROM secrets', {rules}).action).toBe('allow')
    expect(decide('WITH secrets AS (SELECT 1) SELECT * FROM public.secrets', {rules}).action).toBe('deny')
    expect(decide('UPDATE secrets SET a = 1 WHERE id = 2', {rules}).action).toBe('deny')
  })

  it('requires an allow rule to cover every table the operation touches', () => {
    const rules = [rule('scratch', {class: 'write', tables: ['scratch.*']}, 'allow')]
    expect(decide('DELETE FROM scratch.tmp', {rules}).action).toBe('allow')
    expect(decide('DELETE FROM scratch.tmp USING public.users u WHERE true', {rules}).action).toBe('deny')
    // A CTE's delete is its own operation, judged on its own table.
    expect(decide('WITH d AS (DELETE FROM users RETURNING 1) INSERT INTO scratch.log SELECT * FROM d', {rules}).action).toBe('deny')
  })
})

describe('functions', () => {
  it('matches calls anywhere in the statement, qualified or not', () => {
    const rules = [rule('no-sleep', {functions: ['pg_sleep*']}, 'deny', 'no sleeping on prod')]
    expect(decide('SELECT pg_sleep(10)', {rules}).decisive).toMatchObject({ruleId: 'no-sleep', reason: 'no sleeping on prod'})
    expect(decide('SELECT pg_catalog.pg_sleep_for(interval \'1s\')', {rules}).action).toBe('deny')
    expect(decide('SELECT * FROM t WHERE x = (SELECT pg_sleep(1))', {rules}).action).toBe('deny')
    expect(decide('SELECT now()', {rules}).action).toBe('allow')
  })

  it('lets a group be allowed a server function the pack denies', () => {
    const rules = [rule('sre-cancel', {class: 'admin', functions: ['pg_cancel_backend'], groups: ['sre']}, 'allow')]
    expect(decide('SELECT pg_cancel_backend(42)', {rules, groups: ['sre']}).action).toBe('allow')
    expect(decide('SELECT pg_cancel_backend(42)', {rules, groups: ['dev']}).action).toBe('deny')
    expect(decide('SELECT pg_terminate_backend(42)', {rules, groups: ['sre']}).action).toBe('deny')
  })
})

describe('where', () => {
  it('treats where: none as "not filtered", which includes an always-true WHERE', () => {
    const rules = [rule('unfiltered', {class: 'write', where: 'none'}, 'require_approval')]
    expect(decide('DELETE FROM t', {rules}).decisive?.ruleId).toBe('unfiltered')
    expect(decide('DELETE FROM t WHERE 1=1', {rules}).decisive?.ruleId).toBe('unfiltered')
    expect(decide('UPDATE t SET a = 1 WHERE true', {rules}).decisive?.ruleId).toBe('unfiltered')
    expect(decide('DELETE FROM t WHERE id = 3', {rules}).decisive?.ruleId).toBe('default.allow-write')
  })

  it('treats where: trivial as only the written-but-always-true WHERE', () => {
    const rules = [rule('sneaky', {where: 'trivial'}, 'warn')]
    expect(decide('DELETE FROM t WHERE 1=1', {rules}).decisive?.ruleId).toBe('sneaky')
    expect(decide('DELETE FROM t', {rules}).decisive?.ruleId).toBe('default.no-unfiltered-delete')
  })

  it('never matches statements that have no WHERE to judge', () => {
    const rules = [rule('r', {where: 'none'}, 'deny')]
    expect(decide('INSERT INTO t VALUES (1)', {rules}).action).toBe('allow')
    expect(decide('SELECT * FROM t', {rules}).action).toBe('allow')
  })

  it('sees MERGE actions as the deletes and updates they are', () => {
    const rules = [rule('no-merge-delete', {command: 'delete'}, 'deny')]
    expect(decide('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE', {rules}).decisive?.ruleId).toBe('no-merge-delete')
  })
})

describe('multi-statement texts', () => {
  it('takes the strictest statement and records each one', () => {
    const rules = [rule('watch', {class: 'write'}, 'warn')]
    const d = decide('SELECT 1; INSERT INTO t VALUES (1); CREATE TABLE x (a int); SELECT 2', {rules})
    expect(d.action).toBe('require_approval')
    expect(d.decisive).toMatchObject({ruleId: 'default.ddl-approval', statementIndex: 2})
    expect(d.statements.map((s) => [s.statementIndex, s.action, s.ruleId])).toEqual([
      [0, 'allow', 'default.allow-read'],
      [1, 'warn', 'watch'],
      [2, 'require_approval', 'default.ddl-approval'],
      [3, 'allow', 'default.allow-read'],
    ])
    expect(d.warnings.map((w) => w.ruleId)).toEqual(['watch'])
  })

  it('ranks deny over require_approval over warn over allow', () => {
    expect(decide('CREATE TABLE x (a int); DROP TABLE y', {}).decisive).toMatchObject({action: 'deny', statementIndex: 1})
    expect(decide('SET search_path = public; CREATE TABLE x (a int)', {}).decisive).toMatchObject({action: 'require_approval', statementIndex: 1})
    const watch = [rule('watch-settings', {class: 'session'}, 'warn')]
    expect(decide('SELECT 1; SET work_mem = 1024', {rules: watch}).decisive).toMatchObject({action: 'warn', statementIndex: 1})
  })

  it('carries the analyser detail into the decision', () => {
    const d = decide('SELECT pg_catalog.no_such_function()', {})
    expect(d.decisive).toMatchObject({ruleId: 'default.unknown-function', detail: expect.stringMatching(/no_such_function/)})
  })
})

describe('settings', () => {
  it('lets a target rule allow a setting off the list, but never one the parser depends on', () => {
    const allowSchema = [rule('app-schema', {class: 'session', settings: ['search_path']}, 'allow')]
    expect(decide('SET search_path = app, public', {}).decisive).toMatchObject({action: 'deny', ruleId: 'default.no-dangerous-setting'})
    expect(decide('SET search_path = app, public', {rules: allowSchema}).decisive).toMatchObject({action: 'allow', ruleId: 'app-schema'})
    const allowAll = [rule('anything', {class: 'session', settings: ['*']}, 'allow')]
    expect(decide('SET standard_conforming_strings = off', {rules: allowAll}).decisive).toMatchObject({action: 'deny', ruleId: 'guard.assumed-setting'})
    expect(decide('SET standard_conforming_strings = off', {rules: allowAll, pack: 'none'}).decisive).toMatchObject({action: 'deny', ruleId: 'guard.assumed-setting'})
  })
})

describe('ruleMatches', () => {
  it('needs every condition of the match to hold', () => {
    const [stmt] = analyze('DELETE FROM app.orders WHERE true').statements
    const op = stmt!.operations[0]!
    expect(ruleMatches(rule('a', {class: 'write', command: 'delete', tables: ['app.*'], where: 'trivial'}, 'deny'), op)).toBe(true)
    expect(ruleMatches(rule('b', {class: 'write', command: 'update', tables: ['app.*']}, 'deny'), op)).toBe(false)
    expect(ruleMatches(rule('c', {class: 'write', tables: ['public.*']}, 'deny'), op)).toBe(false)
    expect(ruleMatches(rule('d', {class: 'write', groups: ['x']}, 'deny'), op, ['y'])).toBe(false)
  })

  it('accepts the validated rules the config loader produces', () => {
    const fromConfig: RuleConfig = {
      id: 'prod.rules[0]',
      match: {class: ['ddl'], command: ['drop']},
      action: 'deny',
      source: {file: 'dbgate.yaml', line: 3, column: 7},
    }
    const asPolicy: PolicyRule = fromConfig
    expect(decide('DROP INDEX i', {rules: [asPolicy]}).decisive?.ruleId).toBe('prod.rules[0]')
  })
})
