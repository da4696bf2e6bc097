/**
 * Attacks on the literal-insensitive caches: texts that scan alike (same shape) but whose analysis,
 * lineage, normalized text or fingerprint depends on a constant must never get another text's
 * answer. Every check compares the shared answer with the full analysis of the same text.
 */
import {fingerprintSync, normalizeSync} from 'libpg-query'
import {beforeAll, describe, expect, it} from 'vitest'
import {normalizeByShape as normalizeSql} from '../../src/audit/normalize-by-shape.js'
import {Catalog, classifySnapshot, type CatalogRelation} from '../../src/masking/catalog.js'
import {analyzeText} from '../../src/masking/lineage.js'
import {analyze} from '../../src/policy/analyze.js'
import {AnalysisCache, createStatementHook} from '../../src/policy/index.js'
import {loadParser, watchLiterals} from '../../src/sql/parser.js'
import {readingOf, scanShape} from '../../src/policy/text-shape.js'
import type {NamedDefinition, SessionView} from '../../src/proxy/seam.js'
import {corpus} from './corpus.js'
import {statementContext} from '../helpers/statement-context.js'

beforeAll(async () => {
  await loadParser()
})

const READING = readingOf(new Map([['standard_conforming_strings', 'on'], ['client_encoding', 'UTF8']]))!

/** Other values of each literal class, chosen to flip what a value could decide (truth, settings, sizes, names). */
const ALTERNATIVES: Record<string, string[]> = {
  i: ['0', '1', '2', '7', '42', '2147483647', '00'],
  l: ['2147483648', '9223372036854775807'],
  n: ['0.0', '1.5', '99999999999999999999', '.5', '1.'],
  s: ["''", "'x'", "'on'", "'off'", "'0'", "'1'", "'true'", "'f'", "'public'", "'pg_catalog'", "'a''b'", "'\\'", "'%'", "'10MB'", "'role'", "'pg_read_server_files'"],
}

/** `count` texts of the same shape as `sql`, each literal replaced by another value of its class. */
function siblings(sql: string, count = 6): string[] {
  const shape = scanShape(sql)
  if (!shape || shape.literals.length === 0) return []
  const classes = shape.key.split('\0').slice(1).map((part) => part[0]!)
  const out: string[] = []
  for (let j = 0; j < count; j++) {
    let text = ''
    let at = 0
    for (let k = 0; k < shape.literals.length; k += 2) {
      const alts = ALTERNATIVES[classes[k / 2]!]!
      text += sql.slice(at, shape.literals[k]) + alts[(j + k / 2) % alts.length]
      at = shape.literals[k + 1]!
    }
    text += sql.slice(at)
    if (text !== sql) out.push(text)
  }
  return out
}

/** Texts that scan alike and differ in what a constant decides, or that the grammar reads by value. */
const HOSTILE = [
  'DELETE FROM t WHERE 1 = 1',
  'DELETE FROM t WHERE 1 = 2',
  "DELETE FROM t WHERE 'a' = 'a'",
  'UPDATE t SET a = 1 WHERE 2 > 1',
  'DELETE FROM t WHERE id = 5 OR 1 = 1',
  'EXPLAIN ANALYZE DELETE FROM t WHERE 1 = 1',
  'WITH d AS (DELETE FROM t WHERE 0 = 0 RETURNING *) SELECT 1',
  'PREPARE p AS DELETE FROM t WHERE 1 = 1',
  "SET statement_timeout = '0'",
  'SET statement_timeout = 0',
  "SET role = 'postgres'",
  "SET session_authorization = 'x'",
  "SELECT set_config('role', 'postgres', false)",
  "SELECT set_config('application_name', 'x', false)",
  "SELECT current_setting('is_superuser')",
  'SELECT x::float(10) FROM t',
  'SELECT current_time(3)',
  "SELECT 'a'\n'b'",
  'FETCH 5 FROM c',
  'SELECT 1 LIMIT 0',
  'SELECT -5',
  'SELECT - 5',
  'SELECT 2147483647 + 1',
  "DO 'begin delete from t; end'",
  "COPY t FROM '/etc/passwd'",
  "COPY t TO STDOUT WITH (FORMAT csv, DELIMITER '|')",
  "SELECT pg_read_file('/etc/passwd')",
  "SELECT lo_import('/etc/passwd')",
  "SELECT 'pg_authid'::regclass",
  "SELECT * FROM t WHERE name = 'x' AND id = 3",
  'CREATE TABLE t2 (a varchar(10) DEFAULT 5)',
  "ALTER ROLE x PASSWORD 'secret'",
  "NOTIFY c, 'payload'",
  "COMMENT ON TABLE t IS 'note'",
  'SELECT $1, 5',
  'SELECT 1; DELETE FROM t WHERE 1 = 1',
  "SELECT 'x'; SELECT 2",
  'VACUUM t',
  "SELECT 'a' FROM t; COMMIT; SELECT 3",
]

const sharedOf = (c: AnalysisCache) => c.stats().shared

/** The corpus's texts of a size clients repeat with other constants (its megabyte-sized cases test limits, not shapes). */
const CORPUS = corpus.map((c) => c.sql).filter((sql) => sql.length <= 2048)

describe('the shape of a text', () => {
  it('keeps everything but literals, and tells literal classes apart', () => {
    expect(scanShape('SELECT a FROM t WHERE id = 42')!.key).toBe(scanShape('SELECT a FROM t WHERE id = 7')!.key)
    expect(scanShape("SELECT 'a''b'")!.key).toBe(scanShape("SELECT ''")!.key)
    // int4, int8 and numeric constants are typed differently by the server: different shapes.
    const keys = ['SELECT 1', 'SELECT 2147483648', 'SELECT 1.5', "SELECT '1'"].map((s) => scanShape(s)!.key)
    expect(new Set(keys).size).toBe(4)
    expect(scanShape('SELECT 99999999999999999999')!.key).toBe(scanShape('SELECT 1.5')!.key)
    expect(scanShape('SELECT 1 ')!.key).not.toBe(scanShape('SELECT 1')!.key)
    expect(scanShape('SELECT "a1" FROM t1')!.literals).toEqual([])
    expect(scanShape('SELECT $1')!.literals).toEqual([])
  })

  it('leaves everything the server could read otherwise to the full parse', () => {
    for (const sql of [
      "SELECT E'\\''",
      "SELECT e'x'",
      "SELECT B'101'",
      "SELECT X'1F'",
      "SELECT N'x'",
      "SELECT U&'\\0041'",
      'SELECT U&"a" FROM t',
      'SELECT $$x$$',
      'SELECT $a$x$a$',
      'SELECT 1 -- c',
      'SELECT /* x */ 1',
      'SELECT 1e5',
      'SELECT 0x1F',
      'SELECT 1_000',
      'SELECT 123abc',
      'SELECT 1..2',
      "SELECT 'é'",
      'SELECT "é"',
      "SELECT 'unterminated",
      'SELECT "unterminated',
      'SELECT 1\0',
      "SELECT int4'5'",
    ]) {
      expect(scanShape(sql), sql).toBeUndefined()
    }
  })

  it('is read only under the settings the server acknowledged as the scan assumes', () => {
    expect(readingOf(new Map([['standard_conforming_strings', 'on'], ['client_encoding', 'UTF8']]))).toBeDefined()
    expect(readingOf(new Map([['standard_conforming_strings', 'off'], ['client_encoding', 'UTF8']]))).toBeUndefined()
    expect(readingOf(new Map([['standard_conforming_strings', 'on'], ['client_encoding', 'SJIS']]))).toBeUndefined()
    expect(readingOf(new Map([['standard_conforming_strings', 'on']]))).toBeUndefined()
    expect(readingOf(new Map())).toBeUndefined()
  })
})

describe('guardrail analyses shared by shape', () => {
  const texts = [...CORPUS, ...HOSTILE]

  it('are, for every corpus and hostile text, exactly the full analysis of that text, whichever sibling came first', () => {
    let shared = 0
    let shapes = 0
    for (const sql of texts) {
      const sibs = siblings(sql)
      if (sibs.length === 0) continue
      shapes++
      const full = analyze(sql)
      for (const first of sibs) {
        const cache = new AnalysisCache()
        expect(cache.analyze(first, {}, READING)).toEqual(analyze(first))
        expect(cache.analyze(sql, {}, READING), `${sql} after ${first}`).toEqual(full)
        shared += sharedOf(cache)
      }
    }
    // The property is not vacuous: most shapes are shared, and the value-dependent ones are not.
    expect(shapes).toBeGreaterThan(100)
    expect(shared).toBeGreaterThan(200)
  })

  it('are not shared where a constant decides: a WHERE that does not filter keeps its own verdict', () => {
    const cache = new AnalysisCache()
    cache.analyze('DELETE FROM t WHERE 1 = 2', {}, READING)
    const trivial = cache.analyze('DELETE FROM t WHERE 1 = 1', {}, READING)
    expect(cache.stats().shared).toBe(0)
    expect(trivial.statements[0]!.where).toBe(analyze('DELETE FROM t WHERE 1 = 1').statements[0]!.where)
  })

  it('are shared where nothing depends on a constant, with each text its own statement texts', () => {
    const cache = new AnalysisCache()
    cache.analyze("SELECT a FROM t WHERE id = 1 AND name = 'x'; SELECT 2", {}, READING)
    const b = cache.analyze("SELECT a FROM t WHERE id = 12345 AND name = 'longer value'; SELECT 3", {}, READING)
    expect(cache.stats().shared).toBe(1)
    expect(b.statements.map((s) => s.text)).toEqual(["SELECT a FROM t WHERE id = 12345 AND name = 'longer value'", 'SELECT 3'])
    expect(b).toEqual(analyze("SELECT a FROM t WHERE id = 12345 AND name = 'longer value'; SELECT 3"))
  })

  it('respect the size cap: a sibling over it is unknown, as in full', () => {
    const cache = new AnalysisCache()
    cache.analyze('SELECT 1', {maxStatementSize: 12}, READING)
    const over = cache.analyze('SELECT 123456789', {maxStatementSize: 12}, READING)
    expect(over.statements[0]!.class).toBe('unknown')
  })
})

class Session implements SessionView {
  readonly parameters: Map<string, string>
  constructor(parameters: [string, string][]) {
    this.parameters = new Map(parameters)
  }
  statement(): NamedDefinition | undefined {
    return undefined
  }
  portal() {
    return undefined
  }
}

const ctx = statementContext

describe('the statement hook', () => {
  it('shares by shape only in sessions whose acknowledged settings the scan reads as the server does', async () => {
    for (const [params, expected] of [
      [[['standard_conforming_strings', 'on'], ['client_encoding', 'UTF8']], 1],
      [[['standard_conforming_strings', 'off'], ['client_encoding', 'UTF8']], 0],
      [[['standard_conforming_strings', 'on'], ['client_encoding', 'GBK']], 0],
      [[], 0],
    ] as [[string, string][], number][]) {
      const cache = new AnalysisCache()
      const hook = createStatementHook({rules: [], pack: 'default', identityGroups: [], cache})
      const c = ctx(new Session(params))
      await hook('SELECT a FROM t WHERE id = 1', c)
      const v = await hook('SELECT a FROM t WHERE id = 2', c)
      expect(v.action).toBe('allow')
      expect(cache.stats().shared, JSON.stringify(params)).toBe(expected)
    }
  })

  it('gives a destructive sibling of a shared harmless text its own verdict', async () => {
    const cache = new AnalysisCache()
    const hook = createStatementHook({rules: [], pack: 'default', identityGroups: [], cache})
    const c = ctx(new Session([['standard_conforming_strings', 'on'], ['client_encoding', 'UTF8']]))
    // Same shape: the first filters (1 = 2 is false), the second deletes every row.
    expect((await hook('DELETE FROM t WHERE id = 1 OR 1 = 2', c)).action).toBe('allow')
    expect((await hook('DELETE FROM t WHERE id = 1 OR 1 = 1', c)).action).toBe('reject')
    expect((await hook("DELETE FROM t WHERE id = 1 OR 'a' = 'b'", c)).action).toBe('allow')
    expect((await hook("DELETE FROM t WHERE id = 1 OR 'a' = 'a'", c)).action).toBe('reject')
  })
})

function table(oid: number, name: string, cols: [string, string][]): CatalogRelation {
  return {oid, schema: 'public', name, kind: 'table', rowTypeOid: oid + 1, columns: cols.map(([n, t], i) => ({name: n, attnum: i + 1, typeOid: t === 'int4' ? 23 : 25, typeName: t}))}
}

const catalog = new Catalog(
  classifySnapshot(
    {
      relations: [table(100, 'users', [['id', 'int4'], ['email', 'text'], ['nickname', 'text']]), table(200, 't', [['id', 'int4'], ['a', 'text'], ['name', 'text']])],
      types: [],
      functions: [],
    },
    {mask: ['public.users.nickname'], unmaskColumns: []},
  ),
)

const MASKING = [
  'SELECT email FROM users WHERE id = 5',
  "SELECT CASE WHEN 1 = 1 THEN email ELSE 'x' END FROM users",
  "SELECT current_setting('my.email')",
  "SELECT set_config('my.email', email, false) FROM users",
  "SELECT (SELECT email FROM users LIMIT 1) || 'x'",
  'SELECT substr(email, 1, 3) FROM users',
  'SELECT email::varchar(3) FROM users',
  "SELECT * FROM json_to_record('{\"a\":1}') AS x(a int)",
  "COPY (SELECT email FROM users WHERE id = 1) TO STDOUT WITH (FORMAT csv, DELIMITER '|')",
  "COPY users TO STDOUT WITH (FORMAT csv, DELIMITER ',', NULL 'x')",
  "SELECT nickname, 'literal@example.com' FROM users",
  "PREPARE p AS SELECT email FROM users WHERE id = 1; EXECUTE p",
  "NOTIFY c, 'x'",
  "SELECT pg_notify('c', email) FROM users",
  'SELECT email FROM users ORDER BY 1 LIMIT 10 OFFSET 2',
]

describe('masking lineage shared by shape', () => {
  it('is, for every text a shape would share, the lineage of each sibling', () => {
    let shared = 0
    for (const sql of [...MASKING, ...HOSTILE, ...CORPUS]) {
      const shape = scanShape(sql)
      if (!shape) continue
      const watched = watchLiterals(sql, shape.literals, () => analyzeText(sql, catalog))
      expect(watched.value).toEqual(analyzeText(sql, catalog))
      if (!watched.shared) continue
      shared++
      for (const sib of siblings(sql)) expect(analyzeText(sib, catalog), `${sib} shares ${sql}`).toEqual(watched.value)
    }
    expect(shared).toBeGreaterThan(50)
  })

  it('is not shared for COPY options the grammar keeps as plain strings', () => {
    const sql = "COPY users TO STDOUT WITH (FORMAT csv, DELIMITER '|')"
    expect(watchLiterals(sql, scanShape(sql)!.literals, () => analyzeText(sql, catalog)).shared).toBe(false)
  })
})

describe('normalized text and fingerprint shared by shape', () => {
  it('are, for every corpus and hostile text, what libpg_query gives for that text', () => {
    for (const sql of [...HOSTILE, ...MASKING, ...CORPUS]) {
      for (const text of [...siblings(sql), sql]) {
        let expected: {normalized: string | null; fingerprint: string | null}
        try {
          expected = {normalized: normalizeSync(text), fingerprint: fingerprintSync(text)}
        } catch {
          expected = {normalized: null, fingerprint: null}
        }
        expect(normalizeSql(text), text).toEqual(expected)
      }
    }
  })

  it('keep a password change apart from another: its string is not a constant libpg_query fingerprints away', () => {
    const a = normalizeSql("ALTER ROLE x PASSWORD 'one'")
    const b = normalizeSql("ALTER ROLE x PASSWORD 'two'")
    expect(a.normalized).toBe(b.normalized)
    expect(a.fingerprint).not.toBe(b.fingerprint)
  })
})
