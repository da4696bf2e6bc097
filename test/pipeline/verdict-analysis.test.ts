/**
 * A text the guardrails answer by its shape (every `-M simple` pgbench text) is no longer kept in
 * the shared text cache: its verdict carries the analysis instead, and the recording reads the
 * statement's tables from there. Attacks on that: a verdict carrying another text's analysis, a
 * session whose settings change between two texts of one shape, an EXECUTE of a statement whose
 * PREPARE was answered by its shape, and a tunnel without guardrails (the recording analyses).
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {describeStatement} from '../../src/connect/recording.js'
import {assemble, buildPipeline} from '../../src/pipeline/index.js'
import {analyze, sharedAnalysisCache} from '../../src/policy/index.js'
import type {NamedDefinition, ProxyHooks, SessionView, StatementContext, StatementEvent, StatementVerdict} from '../../src/proxy/seam.js'
import {loadParser} from '../../src/sql/parser.js'
import {sessionWith, statementContext} from '../helpers/statement-context.js'

let dir: string
let guarded: ProxyHooks
let unguarded: ProxyHooks

const CONFIG = 'targets:\n  app:\n    host: 127.0.0.1\n    port: 5432\n    database: app\n    user: app\n    tls: disable\n'

beforeAll(async () => {
  await loadParser()
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate-verdict-analysis-'))
  const env = {XDG_DATA_HOME: dir, XDG_STATE_HOME: dir, XDG_CACHE_HOME: dir}
  const loaded = parseConfigText(CONFIG, path.join(dir, 'dbgate.yaml'), {env, homeDir: dir})
  const target = loaded.config.targets.app!
  guarded = assemble(await buildPipeline({config: loaded.config, target, features: {guardrails: true, masking: false}, env}))
  unguarded = assemble(await buildPipeline({config: loaded.config, target, features: {guardrails: false, masking: false}, env}))
})

afterAll(async () => {
  await guarded?.dispose?.()
  await unguarded?.dispose?.()
  await rm(dir, {recursive: true, force: true})
})

const READ_AS_SCANNED: [string, string][] = [
  ['standard_conforming_strings', 'on'],
  ['client_encoding', 'UTF8'],
]
const ctxWith = (parameters: [string, string][], session?: SessionView): StatementContext =>
  statementContext(session ?? sessionWith(parameters), {sessionId: 's', user: 'app'})

const event = (sql: string, verdict: StatementVerdict): StatementEvent => ({sessionId: 's', connectionId: 1, protocol: 'simple', sql, verdict, startedAt: new Date(), durationMs: 0, commandTags: ['SELECT 1'], rows: 1, outcome: 'ok'})
const tablesOf = (sql: string) => [...new Set(analyze(sql).statements.flatMap((s) => s.tables.map((t) => (t.schema ? `${t.schema}.${t.name}` : t.name))))]
const judge = async (hooks: ProxyHooks, sql: string, ctx: StatementContext): Promise<StatementVerdict> => hooks.statement!(sql, ctx)

describe('the analysis a verdict carries', () => {
  it('is that of the very text judged, for texts answered by their shape, which the text cache does not keep', async () => {
    const ctx = ctxWith(READ_AS_SCANNED)
    const texts = [1, 22, 333, 4444].map((n) => `SELECT name FROM verdict_analysis_a JOIN verdict_analysis_b USING (id) WHERE id = ${n} AND tag = 't${n}'`)
    const shared = sharedAnalysisCache.stats().shared
    for (const [i, sql] of texts.entries()) {
      const verdict = await judge(guarded, sql, ctx)
      expect(verdict.action).toBe('allow')
      expect(verdict.analysis?.sql).toBe(sql)
      // Each statement's own text, cut from this text, not the first text of the shape.
      expect(verdict.analysis?.statements.map((s) => s.text)).toEqual(analyze(sql).statements.map((s) => s.text))
      expect(describeStatement(event(sql, verdict)).tables).toEqual(tablesOf(sql))
      // The first text of the shape is analysed in full and kept; the others are answered by the shape only.
      expect(sharedAnalysisCache.peek(sql, {maxStatementSize: 1024 ** 2}) !== undefined, sql).toBe(i === 0)
    }
    expect(sharedAnalysisCache.stats().shared - shared).toBe(texts.length - 1)
  })

  it('is not used for another text: the recording then reads the text itself', async () => {
    const ctx = ctxWith(READ_AS_SCANNED)
    const other = await judge(guarded, "SELECT secret FROM verdict_analysis_other WHERE id = 7 AND k = 'x'", ctx)
    expect(other.analysis).toBeDefined()
    // A verdict handed on with another text's analysis (a bug in a stage, or a Parse's verdict on a
    // different text) must not put that text's tables in this statement's record.
    const sql = 'SELECT note FROM verdict_analysis_mine WHERE id = 7'
    expect(describeStatement(event(sql, other)).tables).toEqual(['verdict_analysis_mine'])
    expect(describeStatement(event(sql, {action: 'allow'})).tables).toEqual(['verdict_analysis_mine'])
  })

  it('is made in full when the session stops reading text as the scan does, between two texts of one shape', async () => {
    const shape = (n: number) => `SELECT v FROM verdict_analysis_c WHERE id = ${n} AND s = 'q${n}'`
    const on = ctxWith(READ_AS_SCANNED)
    expect((await judge(guarded, shape(1), on)).analysis?.sql).toBe(shape(1))
    expect((await judge(guarded, shape(2), on)).analysis?.sql).toBe(shape(2))
    for (const parameters of [
      [['standard_conforming_strings', 'off'], ['client_encoding', 'UTF8']],
      [['standard_conforming_strings', 'on'], ['client_encoding', 'LATIN1']],
      [],
    ] as [string, string][][]) {
      const shared = sharedAnalysisCache.stats().shared
      const sql = shape(100 + parameters.length)
      const verdict = await judge(guarded, sql, ctxWith(parameters))
      // Not shared with the shape: parsed on its own, and so kept by its text as before.
      expect(sharedAnalysisCache.stats().shared, JSON.stringify(parameters)).toBe(shared)
      expect(verdict.analysis?.sql).toBe(sql)
      expect(sharedAnalysisCache.peek(sql, {maxStatementSize: 1024 ** 2})).toBe(verdict.analysis)
      expect(describeStatement(event(sql, verdict)).tables).toEqual(['verdict_analysis_c'])
    }
  })

  it('resolves an EXECUTE against a PREPARE answered by its shape (which the text cache does not keep)', async () => {
    const ctx = ctxWith(READ_AS_SCANNED)
    const prepare = (n: number, what: string) => `PREPARE verdict_p AS ${what} WHERE id = ${n}`
    for (const [what, action] of [
      ['SELECT v FROM verdict_analysis_d', 'allow'],
      ['DELETE FROM verdict_analysis_d', 'allow'],
      ['SELECT v FROM pg_read_file(\'/etc/passwd\') AS f(v)', 'reject'],
    ] as const) {
      await judge(guarded, prepare(1, what), ctx)
      const second = prepare(2, what)
      const shared = sharedAnalysisCache.stats().shared
      expect((await judge(guarded, second, ctx)).analysis?.sql).toBe(second)
      const byShape = sharedAnalysisCache.stats().shared !== shared
      const def = {sql: second, statementIndex: 0, definedBy: 'prepare'} as unknown as NamedDefinition
      const session = {...sessionWith(READ_AS_SCANNED), statement: (name: string) => (name === 'verdict_p' ? def : undefined)} as unknown as SessionView
      const verdict = await judge(guarded, 'EXECUTE verdict_p', ctxWith(READ_AS_SCANNED, session))
      // Judged as what the PREPARE defines: the same as the PREPARE text itself.
      expect(verdict.action, `${what} (by shape: ${byShape})`).toBe((await judge(guarded, second, ctx)).action)
      expect(verdict.action, what).toBe(action)
      // Unknown to the session: refused, whatever the cache holds.
      expect((await judge(guarded, 'EXECUTE verdict_p', ctx)).action).toBe('reject')
    }
  })

  it('is carried by the recording stage itself when no guardrails run', async () => {
    const ctx = ctxWith(READ_AS_SCANNED)
    for (const n of [1, 2, 3]) {
      const sql = `SELECT w FROM verdict_analysis_e JOIN verdict_analysis_f USING (id) WHERE id = ${n}`
      const verdict = await judge(unguarded, sql, ctx)
      expect(verdict.action).toBe('allow')
      expect(verdict.analysis?.sql).toBe(sql)
      expect(describeStatement(event(sql, verdict)).tables).toEqual(tablesOf(sql))
    }
  })
})
