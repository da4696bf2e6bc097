import {beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {ConfigError} from '../../src/config/errors.js'
import {checkPolicy} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import type {PolicyRule} from '../../src/policy/types.js'

const asPerson = (sql: string, rules: PolicyRule[] = []) => checkPolicy(sql, {rules, pack: 'default', groups: []})
const asAgent = (sql: string, rules: PolicyRule[] = [], readOnly = true) => checkPolicy(sql, {rules, pack: 'default', groups: [], client: 'mcp', readOnly})

/** Everything a read-only agent might send to write, or to get out of read-only first. */
const WAYS_OUT = [
  'set session characteristics as transaction read write',
  'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE',
  'set transaction read write',
  'begin read write',
  'begin transaction read only, read write',
  'start transaction isolation level serializable, read write',
  'set default_transaction_read_only = off',
  'set default_transaction_read_only to default',
  'reset default_transaction_read_only',
  'set local transaction_read_only = off',
  "select set_config('default_transaction_read_only', 'off', false)",
  "select 1, set_config('transaction_read_only', 'off', true)",
  'reset all',
  'discard all',
  'reset session authorization',
  'set session authorization default',
  'commit; insert into notes values (1)',
  'select 1; delete from notes where id = 1',
  'with d as (delete from notes where id = 1 returning *) select * from d',
  'insert into notes select * from notes',
  'update notes set body = null where id = 1',
  'copy notes from stdin',
  'do $$ begin delete from notes; end $$',
  'prepare p as delete from notes where id = 1',
  'execute p',
  'listen changes',
  'lock table notes',
  'explain analyze delete from notes where id = 1',
  'create temp table scratch (i int)',
  'select * into copy_of_notes from notes',
  'prepare transaction $$x$$',
  // Built-ins whose effects reach other sessions, or write, behind a plain SELECT.
  "select pg_notify('jobs', 'run')",
  'select 1 from notes where pg_try_advisory_lock(id)',
  'select pg_advisory_lock(42)',
  'select pg_advisory_lock_shared(42)',
  'select pg_advisory_xact_lock(42)',
  'select * from (select pg_try_advisory_xact_lock_shared(1, 2)) s',
  'select pg_advisory_unlock_all()',
  "select nextval('notes_id_seq')",
  "select id, setval('notes_id_seq', 1) from notes",
]

/** What an agent in read-only mode needs, including what `dbgate mcp` itself sends. */
const STILL_FINE = [
  'select * from notes where id = $1',
  'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
  'set transaction isolation level repeatable read, read only',
  'begin',
  'begin read only',
  'start transaction isolation level repeatable read',
  'commit',
  'rollback',
  'set statement_timeout = 30000',
  'show transaction_read_only',
  'explain select * from notes',
  "select set_config('statement_timeout', '5000', false)",
  "select currval('notes_id_seq'), pg_sleep(0), random()",
]

describe('read-only agent sessions', () => {
  beforeAll(() => loadParser())

  it.each(WAYS_OUT)('refuses %s for a read-only agent, naming agent.read-only', (sql) => {
    const r = asAgent(sql)
    expect(r.decision.action).toBe('deny')
    expect(r.decision.decisive?.ruleId === 'agent.read-only' || r.decision.decisive?.ruleId.startsWith('default.')).toBe(true)
  })

  it('refuses, by the read-only rule itself, ways out that policy lets a person run', () => {
    // The attack works without the read-only rule: a person's session (or an agent in read-write
    // mode) may run these, so only the agent allow-list stands between them and the server.
    const allowedForPeople = WAYS_OUT.filter((sql) => ['allow', 'warn'].includes(asPerson(sql).decision.action))
    expect(allowedForPeople.length).toBeGreaterThan(15)
    for (const sql of allowedForPeople) {
      expect(['allow', 'warn'], sql).toContain(asAgent(sql, [], false).decision.action)
      expect(asAgent(sql).decision.decisive?.ruleId, sql).toBe('agent.read-only')
    }
  })

  it.each(STILL_FINE)('lets a read-only agent run %s', (sql) => {
    expect(['allow', 'warn']).toContain(asAgent(sql).decision.action)
  })
})

describe('rules that match agent sessions (client: mcp)', () => {
  beforeAll(() => loadParser())
  const rules: PolicyRule[] = [
    {id: 'agents-need-review', match: {class: 'write', client: 'mcp'}, action: 'require_approval', reason: 'an agent wants to change data'},
    {id: 'agents-no-ddl', match: {class: 'ddl', client: ['mcp']}, action: 'deny', reason: 'agents never change the schema'},
  ]

  it('applies only to agent sessions', () => {
    const sql = "update orders set status = 'shipped' where id = 7"
    expect(asPerson(sql, rules).decision.action).toBe('allow')
    expect(asAgent(sql, rules, false).decision).toMatchObject({action: 'require_approval', decisive: {ruleId: 'agents-need-review'}})
    expect(asPerson('create index on orders (status)', rules).decision.decisive?.ruleId).not.toBe('agents-no-ddl')
    expect(asAgent('create index on orders (status)', rules, false).decision).toMatchObject({action: 'deny', decisive: {ruleId: 'agents-no-ddl'}})
  })

  it('is read from dbgate.yaml, and a wrong client is named with the values it may take', () => {
    const text = (match: string, extra = '') =>
      `targets:\n  prod:\n    host: db\n    database: app\n    user: app\n    rules:\n      - match: ${match}\n        action: deny\n${extra}`
    const {config} = parseConfigText(text('{class: write, client: mcp}', '    mcp:\n      mode: read-write\n      maxRows: 50\n      timeout: 10s\n'), '/x/dbgate.yaml')
    expect(config.targets.prod!.rules[0]!.match.client).toEqual(['mcp'])
    expect(config.targets.prod!.mcp).toEqual({mode: 'read-write', maxRows: 50, maxBytes: 256 * 1024, timeoutMs: 10_000, approvalWaitMs: 5000})
    expect(parseConfigText(text('{class: write}'), '/x/dbgate.yaml').config.targets.prod!.mcp).toBeUndefined()
    let error: unknown
    try {
      parseConfigText(text('{class: write, client: robot}', '    mcp:\n      mode: yolo\n'), '/x/dbgate.yaml')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    const message = String((error as Error).message) + JSON.stringify((error as {issues?: unknown}).issues ?? '')
    expect(message).toMatch(/targets\.prod\.rules\[0\]\.match\.client/)
    expect(message).toMatch(/mcp/)
    expect(message).toMatch(/targets\.prod\.mcp\.mode/)
    expect(message).toMatch(/read-only/)
  })
})

describe('dbgate policy check --client mcp', () => {
  it('judges SQL as an agent would be judged: the read-only allow-list, then the rules', async () => {
    const {mkdtempSync, writeFileSync} = await import('node:fs')
    const {tmpdir} = await import('node:os')
    const path = await import('node:path')
    const {run} = await import('../helpers/run.js')
    const dir = mkdtempSync(path.join(tmpdir(), 'dbgate-check-'))
    const file = path.join(dir, 'dbgate.yaml')
    writeFileSync(file, 'targets:\n  prod:\n    host: db\n    database: app\n    user: app\n  rw:\n    host: db\n    database: app\n    user: app\n    mcp: {mode: read-write}\n    rules:\n      - {id: agent-writes, match: {class: write, client: mcp}, action: require_approval}\n')
    const bin = path.resolve('bin/run.js')
    const sql = "update orders set status = 'x' where id = 1"
    const check = (target: string, client: string) => run('node', [bin, 'policy', 'check', target, '--client', client, '--sql', sql, '--config', file])
    const person = await check('prod', 'connect')
    expect(person.code).toBe(0)
    const readOnly = await check('prod', 'mcp')
    expect(readOnly.code).toBe(1)
    expect(readOnly.stdout).toMatch(/agent\.read-only/)
    const held = await check('rw', 'mcp')
    expect(held.code).toBe(1)
    expect(held.stdout).toMatch(/agent-writes/)
    expect((await check('rw', 'connect')).code).toBe(0)
  })
})
