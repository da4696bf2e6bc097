import {beforeAll, describe, expect, it} from 'vitest'
import {analyze, checkStartupParameters, dangerousSetting, offlineCatalog, resolveCatalogCalls} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

const one = (sql: string) => {
  const a = analyze(sql)
  expect(a.statements).toHaveLength(1)
  return a.statements[0]!
}

describe('analyze', () => {
  it('splits every statement of a simple query and cuts each one its own text', () => {
    const a = analyze("SELECT 'héllo wörld';  INSERT INTO t VALUES ('ü') ;\n DELETE FROM t WHERE id = 1")
    expect(a.statements.map((s) => [s.index, s.command, s.text])).toEqual([
      [0, 'select', "SELECT 'héllo wörld'"],
      [1, 'insert', "INSERT INTO t VALUES ('ü')"],
      [2, 'delete', 'DELETE FROM t WHERE id = 1'],
    ])
  })

  it('reports tables schema-qualified where written, with how they are accessed', () => {
    const s = one('INSERT INTO audit.log (who) SELECT u.email FROM public.users u JOIN orders o ON o.uid = u.id')
    expect(s.tables).toEqual([
      {schema: 'audit', name: 'log', access: 'write'},
      {schema: 'public', name: 'users', access: 'read'},
      {name: 'orders', access: 'read'},
    ])
    // A dropped table's partitions go with it: the names are also looked up as reads (what is behind them).
    expect(one('DROP TABLE a.b, c').tables).toEqual([
      {schema: 'a', name: 'b', access: 'ddl'},
      {name: 'c', access: 'ddl'},
      {schema: 'a', name: 'b', access: 'read'},
      {name: 'c', access: 'read'},
    ])
    expect(one('COPY t FROM STDIN').tables).toEqual([{name: 't', access: 'write'}])
    expect(one('SELECT * INTO archive.old FROM t').tables).toEqual([
      {schema: 'archive', name: 'old', access: 'ddl'},
      {name: 't', access: 'read'},
    ])
    expect(one('TRUNCATE x').tables).toEqual([{name: 'x', access: 'write'}])
    expect(one('CREATE VIEW v AS SELECT * FROM t').tables).toEqual([
      {name: 'v', access: 'ddl'},
      {name: 't', access: 'read'},
    ])
  })

  it('resolves U& and quoted identifiers the way the server does', () => {
    expect(one('SELECT * FROM U&"\\0075sers"').tables).toEqual([{name: 'users', access: 'read'}])
    expect(one('SELECT * FROM U&"!0075sers" UESCAPE \'!\'').tables).toEqual([{name: 'users', access: 'read'}])
    expect(one('SELECT * FROM "Users"').tables).toEqual([{name: 'Users', access: 'read'}])
    expect(one('SELECT * FROM USERS').tables).toEqual([{name: 'users', access: 'read'}])
  })

  it('lists functions called anywhere, as written', () => {
    const s = one('SELECT lower(x), pg_catalog.upper(y) FROM t WHERE z = ANY (SELECT my.fn(1))')
    expect(s.functions).toEqual(['lower', 'pg_catalog.upper', 'my.fn'])
  })

  it('keeps a writable CTE apart from the query that reads it', () => {
    const s = one('WITH gone AS (DELETE FROM sessions WHERE expires < now() RETURNING id) SELECT count(*) FROM gone')
    expect(s.operations.map((o) => [o.class, o.command, o.where])).toEqual([
      ['read', 'select', undefined],
      ['write', 'delete', 'filtered'],
    ])
    expect(s.tables).toEqual([{name: 'sessions', access: 'write'}])
  })

  it('scopes CTE names: a later CTE name in an earlier body is the real table', () => {
    expect(one('WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b').tables).toEqual([{name: 'b', access: 'read'}])
    expect(one('WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT * FROM r) SELECT * FROM r').tables).toEqual([])
    expect(one('SELECT * FROM (WITH users AS (SELECT 1) SELECT * FROM users) x, users').tables).toEqual([{name: 'users', access: 'read'}])
  })

  it('records what a SET changes', () => {
    expect(one("SET LOCAL statement_timeout = '1s'").operations[0]?.setting).toEqual({name: 'statement_timeout', value: '1s', reset: false, dynamic: false})
    expect(one('RESET ALL').operations[0]?.setting).toEqual({name: 'all', value: undefined, reset: true, dynamic: false})
    const viaFunction = one("SELECT set_config('search_path', 'evil', false)").operations[1]!
    expect(viaFunction).toMatchObject({class: 'session', command: 'set', flags: ['search_path'], setting: {name: 'search_path', value: 'evil'}})
  })

  it('flags rules, triggers and server-side effects', () => {
    expect(one('CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING').operations[0]?.flags).toEqual(['rule'])
    expect(one('CREATE TRIGGER x AFTER INSERT ON t EXECUTE FUNCTION audit.f()').operations[0]).toMatchObject({flags: ['trigger'], functions: ['audit.f']})
    expect(one("COPY t TO PROGRAM 'gzip > /tmp/t.gz'").operations[0]).toMatchObject({class: 'admin', flags: ['program'], detail: 'gzip > /tmp/t.gz'})
    const [dblink] = resolveCatalogCalls(analyze("SELECT public.dblink_connect('x')").statements, offlineCatalog)
    expect(dblink!.operations[1]).toMatchObject({class: 'admin', command: 'function', flags: ['dynamic_sql']})
  })

  it('fails closed on what it cannot read', () => {
    expect(one('SELEC 1')).toMatchObject({class: 'unknown', error: expect.stringMatching(/^could not parse: syntax error/)})
    expect(one('SELECT 1\u0000')).toMatchObject({class: 'unknown', error: 'could not parse: statement text contains a NUL byte'})
    expect(analyze('SELECT 12345', {maxStatementSize: 8}).statements[0]).toMatchObject({class: 'unknown', error: "statement text is 12 bytes, over the 8-byte limit (the target's tunnel.maxStatementSize): send it in smaller statements, or raise the limit"})
    // Multi-byte text is measured in bytes, as the wire carries it.
    expect(analyze("SELECT 'éé'", {maxStatementSize: 12}).statements[0]?.class).toBe('unknown')
    expect(analyze("SELECT 'ee'", {maxStatementSize: 12}).statements[0]?.class).toBe('read')
  })

  it('refuses a tree too deep to walk rather than half-judging it', () => {
    // Deep enough for the walker's stack, shallow enough for the parser.
    expect(one(`SELECT ${'NOT '.repeat(4000)}true`)).toMatchObject({class: 'unknown', error: expect.stringMatching(/^could not (analyse|parse)/)})
    // Deeper still, the parser gives up first.
    expect(one(`SELECT ${'ARRAY['.repeat(20000)}1${']'.repeat(20000)}`).class).toBe('unknown')
  })
})

describe('dangerous settings', () => {
  it('knows which values are safe', () => {
    expect(dangerousSetting('client_encoding', 'UTF8')).toBeUndefined()
    expect(dangerousSetting('client_encoding', 'unicode')).toBeUndefined()
    expect(dangerousSetting('client_encoding', 'WIN1252')?.flag).toBe('assumed_setting')
    expect(dangerousSetting('standard_conforming_strings', 'on')).toBeUndefined()
    expect(dangerousSetting('standard_conforming_strings', 'of')?.flag).toBe('assumed_setting')
    expect(dangerousSetting('session_replication_role', 'origin')?.flag).toBe('dangerous_setting')
    expect(dangerousSetting('work_mem', '64MB')).toBeUndefined()
  })
})

describe('checkStartupParameters', () => {
  it('lets an ordinary libpq startup through', () => {
    expect(checkStartupParameters({user: 'app', database: 'app', application_name: 'psql', client_encoding: 'UTF8', search_path: 'public', DateStyle: 'ISO', TimeZone: 'UTC', extra_float_digits: '3'})).toEqual([])
    // A search_path naming other schemas is refused unless a rule allows it.
    expect(checkStartupParameters({search_path: 'app'}).map((p) => p.parameter)).toEqual(['search_path'])
    expect(checkStartupParameters({search_path: 'app'}, (change) => change.name === 'search_path')).toEqual([])
  })

  it('refuses options, replication and settings that change how statements are read', () => {
    const problems = checkStartupParameters({
      user: 'app',
      options: '-c session_replication_role=replica',
      replication: 'database',
      client_encoding: 'SQL_ASCII',
      standard_conforming_strings: 'off',
      session_replication_role: 'replica',
      role: 'postgres',
    })
    expect(problems.map((p) => p.parameter)).toEqual([
      'options',
      'replication',
      'client_encoding',
      'standard_conforming_strings',
      'session_replication_role',
      'role',
    ])
    expect(problems[0]?.reason).toMatch(/options/)
  })
})
