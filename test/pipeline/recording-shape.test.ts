/**
 * A tunnel that records without guardrails: a statement's recorded tables come from the shared
 * analysis cache, which only the guardrails used to fill, so every new text was parsed in full
 * when recorded. The recording stage now analyses the text when it is judged, where the session's
 * acknowledged settings are known. Attacks: a session whose settings the shape scan does not read
 * as the server does must not share, and a shared text must record its own tables.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {describeStatement} from '../../src/connect/recording.js'
import {assemble, buildPipeline} from '../../src/pipeline/index.js'
import {analyze, sharedAnalysisCache} from '../../src/policy/index.js'
import type {ProxyHooks, StatementContext, StatementEvent} from '../../src/proxy/seam.js'
import {loadParser} from '../../src/sql/parser.js'
import {sessionWith, statementContext} from '../helpers/statement-context.js'

let dir: string
let hooks: ProxyHooks

beforeAll(async () => {
  await loadParser()
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate-recording-shape-'))
  const env = {XDG_DATA_HOME: dir, XDG_STATE_HOME: dir, XDG_CACHE_HOME: dir}
  const file = path.join(dir, 'dbgate.yaml')
  const loaded = parseConfigText('targets:\n  app:\n    host: 127.0.0.1\n    port: 5432\n    database: app\n    user: app\n    tls: disable\n', file, {env, homeDir: dir})
  hooks = assemble(await buildPipeline({config: loaded.config, target: loaded.config.targets.app!, features: {guardrails: false, masking: false}, env}))
})

afterAll(async () => {
  await hooks?.dispose?.()
  await rm(dir, {recursive: true, force: true})
})

const ctxWith = (parameters: [string, string][]): StatementContext => statementContext(sessionWith(parameters), {sessionId: 's', user: 'app'})

const event = (sql: string): StatementEvent => ({sessionId: 's', connectionId: 1, protocol: 'simple', sql, verdict: {action: 'allow'}, startedAt: new Date(), durationMs: 0, commandTags: ['SELECT 1'], rows: 1, outcome: 'ok'})
const tablesOf = (sql: string) => [...new Set(analyze(sql).statements.flatMap((s) => s.tables.map((t) => (t.schema ? `${t.schema}.${t.name}` : t.name))))]

describe('recording without guardrails', () => {
  it('analyses a text of a known shape once per shape, in a session read as the scan reads it, recording its own tables', async () => {
    const ctx = ctxWith([['standard_conforming_strings', 'on'], ['client_encoding', 'UTF8']])
    const texts = [1, 2, 3, 4].map((n) => `SELECT name FROM recording_shape_a JOIN recording_shape_b USING (id) WHERE id = ${n}`)
    const before = sharedAnalysisCache.stats().shared
    for (const sql of texts) {
      expect((await hooks.statement!(sql, ctx)).action).toBe('allow')
      expect(describeStatement(event(sql)).tables).toEqual(tablesOf(sql))
    }
    expect(sharedAnalysisCache.stats().shared - before).toBe(texts.length - 1)
  })

  it('does not share in a session whose settings the scan does not read as the server does', async () => {
    for (const parameters of [
      [['standard_conforming_strings', 'off'], ['client_encoding', 'UTF8']],
      [['standard_conforming_strings', 'on'], ['client_encoding', 'SQL_ASCII']],
      [],
    ] as [string, string][][]) {
      const ctx = ctxWith(parameters)
      const before = sharedAnalysisCache.stats().shared
      for (const n of [1, 2, 3]) {
        const sql = `SELECT note FROM recording_shape_c WHERE id = ${n} AND tag = 'x${parameters.length}'`
        expect((await hooks.statement!(sql, ctx)).action).toBe('allow')
        expect(describeStatement(event(sql)).tables).toEqual(['recording_shape_c'])
      }
      expect(sharedAnalysisCache.stats().shared, JSON.stringify(parameters)).toBe(before)
    }
  })
})
