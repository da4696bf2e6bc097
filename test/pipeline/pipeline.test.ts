import {beforeAll, describe, expect, it} from 'vitest'
import {assemble, buildPipeline, STAGE_ORDER, type Pipeline, type Stage, type TunnelHooksContext} from '../../src/pipeline/index.js'
import {AnalysisCache, createStatementHook} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import type {StatementContext, StatementEvent, StatementHook} from '../../src/proxy/seam.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {startTunnel} from '../helpers/tunnel.js'

beforeAll(async () => {
  await loadParser()
})

const session = {statement: () => undefined, portal: () => undefined, parameters: new Map<string, string>()}
const ctx: StatementContext = {sessionId: 's', connectionId: 1, protocol: 'simple', transactionStatus: 'I', database: 'app', user: 'u', session, signal: new AbortController().signal, notify: () => {}}
const pipeline = (...stages: Stage[]): Pipeline => ({stages, release: async () => {}})
const policy = (reviewers: string[] = ['dba']): Stage => {
  const judge = createStatementHook({rules: [], pack: 'default', identityGroups: [], reviewers, cache: new AnalysisCache()})
  return {name: 'policy', statement: (sql, c, v) => (v.action === 'allow' ? judge(sql, c) : v)}
}

/** Statements the default pack holds for approval, of every kind it holds. */
const HELD = ['CREATE TABLE t (a int)', 'DROP VIEW v', 'DO $$ BEGIN DELETE FROM users; END $$', 'CALL archive_orders(30)', "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", 'SELECT 1; ALTER TABLE users DROP COLUMN email']

describe('a hold with no approvals stage', () => {
  it('is refused with the message policy wrote for it, never handed to the proxy', async () => {
    const judge = createStatementHook({rules: [], pack: 'default', identityGroups: [], reviewers: ['dba'], cache: new AnalysisCache()})
    const hooks = assemble(pipeline(policy()))
    for (const sql of HELD) {
      // Policy on its own says hold: a proxy that ran what it was given would run the statement.
      const held = await judge(sql, ctx)
      expect(held.action, sql).toBe('hold')
      const v = await hooks.statement!(sql, ctx)
      expect(v.action, sql).toBe('reject')
      if (v.action !== 'reject' || held.action !== 'hold') continue
      expect(v.error, sql).toEqual(held.error)
      expect(v.error.message, sql).toMatch(/^dbgate: statement requires approval by a member of dba \(rule default\.[a-z-]+\): /)
      expect(v.decision?.action, sql).toBe('require_approval')
    }
  })

  it('is refused on the asynchronous path too (a statement parsed off the main thread)', async () => {
    const hooks = assemble(pipeline(policy()))
    const big = `CREATE TABLE t AS SELECT ${Array.from({length: 5000}, (_, i) => i).join(' + ')} AS n`
    const pending = hooks.statement!(big, ctx)
    expect(pending).toBeInstanceOf(Promise)
    expect(await pending).toMatchObject({action: 'reject', error: {code: '42501', message: expect.stringMatching(/requires approval/)}})
  })
})

describe('assembling stages', () => {
  it('refuses stages out of the written order, or twice', () => {
    const named = (name: Stage['name']): Stage => ({name})
    expect(() => assemble(pipeline(named('recording'), named('policy')))).toThrow(/stage policy is out of order \(the order is identity, policy, approvals, masking, recording/)
    expect(() => assemble(pipeline(named('policy'), named('policy')))).toThrow(/out of order/)
    expect(() => assemble(pipeline(...STAGE_ORDER.map(named)))).not.toThrow()
  })

  it('asks a later stage about a statement only while it is allowed, and tells every stage each outcome in order', async () => {
    const asked: string[] = []
    const told: string[] = []
    const later = (name: Stage['name']): Stage => ({
      name,
      statement: (sql, _c, v) => {
        asked.push(`${name}: ${sql}`)
        return v
      },
      onStatement: () => void told.push(name),
    })
    const hooks = assemble(pipeline({...policy(), onStatement: () => void told.push('policy')}, later('masking'), later('recording')))
    expect((await hooks.statement!('TRUNCATE users', ctx)).action).toBe('reject')
    expect((await hooks.statement!('SELECT 1', ctx)).action).toBe('allow')
    expect(asked).toEqual(['masking: TRUNCATE users', 'recording: TRUNCATE users', 'masking: SELECT 1', 'recording: SELECT 1'])
    hooks.onStatement!({sessionId: 's', connectionId: 1, protocol: 'simple', sql: 'SELECT 1', verdict: {action: 'allow'}, startedAt: new Date(), durationMs: 0, commandTags: ['SELECT 1'], rows: 1, outcome: 'ok'} satisfies StatementEvent)
    expect(told).toEqual(['policy', 'masking', 'recording'])
  })

  it('releases stages newest first, then what they share', async () => {
    const order: string[] = []
    const stage = (name: Stage['name']): Stage => ({name, dispose: async () => void order.push(name)})
    const hooks = assemble({stages: [stage('policy'), stage('masking'), stage('recording')], release: async () => void order.push('catalog')})
    await hooks.dispose!()
    expect(order).toEqual(['recording', 'masking', 'policy', 'catalog'])
  })
})

describe('the tunnel without an approvals stage', () => {
  let db: UpstreamInfo
  beforeAll(async () => {
    db = await createTestDatabase()
  })
  const exists = (table: string) => withClient(db.url, async (c) => (await c.query('select to_regclass($1) is not null as e', [table])).rows[0].e as boolean)

  it('refuses what policy holds, and the database never sees it', async () => {
    // Without guardrails the statement runs: this is what a hold must never turn into.
    const open = await openPipelineTunnel(db, '', {hooks: (c: TunnelHooksContext) => buildPipeline({...c, features: {guardrails: false}}).then(assemble)})
    try {
      const c = await open.client()
      await c.query('create table unguarded (a int)')
      expect(await exists('unguarded')).toBe(true)
    } finally {
      await open.close()
    }
    const held = await openPipelineTunnel(db, '', {
      hooks: async (c: TunnelHooksContext) => {
        const p = await buildPipeline(c)
        return assemble({...p, stages: p.stages.filter((s) => s.name !== 'approvals')})
      },
    })
    try {
      const c = await held.client()
      await expect(c.query('create table held (a int)')).rejects.toMatchObject({code: '42501', message: expect.stringMatching(/^dbgate: statement requires approval by a reviewer \(rule default\.ddl-approval\)/)})
      expect(await exists('held')).toBe(false)
      // The session goes on.
      expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    } finally {
      await held.close()
    }
  })

  it('and a proxy handed a hold by a hook that is not the pipeline runs nothing', async () => {
    const judge = createStatementHook({rules: [], pack: 'default', identityGroups: [], cache: new AnalysisCache()})
    // A hook written without the pipeline's types (plain JavaScript) passing policy's answer straight on.
    const untyped = judge as unknown as StatementHook
    const t = await startTunnel(db, {statement: untyped})
    try {
      const c = await t.client()
      await expect(c.query('create table handed_on (a int)')).rejects.toMatchObject({code: '42501', message: 'dbgate: the statement could not be judged, so it was not run'})
      expect(await exists('handed_on')).toBe(false)
      expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    } finally {
      await t.close()
    }
  })
})
