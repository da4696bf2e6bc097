import {beforeAll, describe, expect, it} from 'vitest'
import type {StatementContext, StatementVerdict} from '../../src/proxy/hooks.js'
import {AnalysisCache, ConnectionRegistries, createStatementHook, loadParser, type PolicyStatementHook} from '../../src/policy/index.js'

beforeAll(async () => {
  await loadParser()
})

const ctx = (connectionId: number, extra: Partial<StatementContext> = {}): StatementContext => ({
  sessionId: `s${connectionId}`,
  connectionId,
  protocol: 'simple',
  transactionStatus: 'I',
  database: 'app',
  user: 'app_rw',
  signal: new AbortController().signal,
  notify: () => {},
  ...extra,
})

function newHook(extra: Partial<Parameters<typeof createStatementHook>[0]> = {}): PolicyStatementHook {
  return createStatementHook({rules: [], pack: 'default', identityGroups: [], cache: new AnalysisCache(), ...extra})
}

async function run(hook: PolicyStatementHook, sql: string, c: StatementContext): Promise<StatementVerdict> {
  return await hook(sql, c)
}

const ruleOf = (v: StatementVerdict): string | undefined => (v.tag as {decisive?: {ruleId: string}} | undefined)?.decisive?.ruleId

describe('createStatementHook', () => {
  it('judges EXECUTE by what the same connection prepared earlier', async () => {
    const hook = newHook()
    expect((await run(hook, 'PREPARE del (int) AS DELETE FROM users WHERE id = $1', ctx(1))).action).toBe('allow')
    expect((await run(hook, 'EXECUTE del(5)', ctx(1))).action).toBe('allow')
    // Another connection never prepared it: the name means nothing there.
    const other = await run(hook, 'EXECUTE del(5)', ctx(2))
    expect(other.action).toBe('reject')
    expect(ruleOf(other)).toBe('default.unknown')
  })

  it('does not remember a PREPARE it refused, so EXECUTE of it stays unknown', async () => {
    const hook = newHook()
    const prep = await run(hook, 'PREPARE wipe AS DELETE FROM users', ctx(1))
    expect(ruleOf(prep)).toBe('default.no-unfiltered-delete')
    expect(ruleOf(await run(hook, 'EXECUTE wipe', ctx(1)))).toBe('default.unknown')
  })

  it('keeps the first definition of a name, as the server does', async () => {
    const hook = newHook({rules: [{id: 'watch-deletes', match: {command: 'delete'}, action: 'warn'}]})
    await run(hook, 'PREPARE p AS SELECT 1', ctx(1))
    // The server refuses this PREPARE ("already exists"), so p still runs SELECT 1.
    await run(hook, 'PREPARE p (int) AS DELETE FROM t WHERE id = $1', ctx(1))
    expect(ruleOf(await run(hook, 'EXECUTE p', ctx(1)))).toBe('default.allow-read')
  })

  it('forgets on DEALLOCATE, DEALLOCATE ALL, DISCARD ALL and a closed connection', async () => {
    const hook = newHook()
    const prepare = () => run(hook, 'PREPARE p AS SELECT 1', ctx(1))
    for (const forget of ['DEALLOCATE p', 'DEALLOCATE PREPARE p', 'DEALLOCATE ALL', 'DISCARD ALL']) {
      await prepare()
      expect((await run(hook, 'EXECUTE p', ctx(1))).action).toBe('allow')
      await run(hook, forget, ctx(1))
      expect((await run(hook, 'EXECUTE p', ctx(1))).action).toBe('reject')
    }
    await prepare()
    hook.dropConnection(1)
    expect((await run(hook, 'EXECUTE p', ctx(1))).action).toBe('reject')
    await prepare()
    hook.closeStatement(1, 'p')
    expect((await run(hook, 'EXECUTE p', ctx(1))).action).toBe('reject')
  })

  it('does not apply bookkeeping from a refused text', async () => {
    const hook = newHook()
    await run(hook, 'PREPARE p AS SELECT 1', ctx(1))
    expect((await run(hook, 'DEALLOCATE p; DROP TABLE users', ctx(1))).action).toBe('reject')
    expect((await run(hook, 'EXECUTE p', ctx(1))).action).toBe('allow')
  })

  it('registers named extended-protocol statements for SQL EXECUTE', async () => {
    const hook = newHook()
    const parse = ctx(1, {protocol: 'parse', statementName: 'S_1'})
    expect((await run(hook, 'DELETE FROM users WHERE id = $1', parse)).action).toBe('allow')
    expect((await run(hook, 'EXECUTE "S_1"(3)', ctx(1))).action).toBe('allow')
    expect((await run(hook, 'EXPLAIN ANALYZE EXECUTE "S_1"(3)', ctx(1))).action).toBe('allow')
  })

  it('refuses a Parse that holds more than one statement', async () => {
    const hook = newHook()
    const v = await run(hook, 'SELECT 1; SELECT 2', ctx(1, {protocol: 'parse', statementName: ''}))
    expect(v.action).toBe('reject')
    expect(v.action === 'reject' && v.error.message).toMatch(/^dbgate: statement denied by rule protocol\.single-statement-parse/)
    expect((await run(hook, 'SELECT 1; SELECT 2', ctx(1))).action).toBe('allow')
  })

  it('applies the identity groups and reviewers it was built with', async () => {
    const rules = [{id: 'dba-ddl', match: {class: 'ddl' as const, groups: ['dba']}, action: 'allow' as const}]
    const dba = newHook({rules, identityGroups: ['dba']})
    const dev = newHook({rules, identityGroups: ['dev'], reviewers: ['dba']})
    expect((await run(dba, 'CREATE INDEX i ON t (a)', ctx(1))).action).toBe('allow')
    const v = await run(dev, 'CREATE INDEX i ON t (a)', ctx(1))
    expect(v.action === 'reject' && v.error.message).toMatch(/requires approval by a member of dba/)
  })

  it('refuses statements over the configured size', async () => {
    const hook = newHook({maxStatementSize: 64})
    const v = await run(hook, `SELECT '${'x'.repeat(100)}'`, ctx(1))
    expect(v.action === 'reject' && v.error.detail).toMatch(/over the 64-byte limit/)
    expect((await run(hook, 'SELECT 1', ctx(1))).action).toBe('allow')
  })

  it('shares a registry set handed in by the proxy', async () => {
    const prepared = new ConnectionRegistries()
    const hook = newHook({prepared})
    await run(hook, 'PREPARE p AS SELECT 1', ctx(7))
    expect(prepared.for(7).get('p')?.[0]?.command).toBe('select')
    expect(hook.prepared).toBe(prepared)
  })
})

describe('very large statements', () => {
  it('are judged asynchronously (off the main thread) with the same verdict as small ones', async () => {
    const hook = newHook()
    const big = `delete from accounts where true or id in (${Array.from({length: 5000}, (_, i) => i).join(',')})`
    const pending = hook(big, ctx(90))
    expect(pending).toBeInstanceOf(Promise)
    const verdict = await pending
    expect(verdict).toMatchObject({action: 'reject', error: {code: '42501'}})
    expect((verdict as {error: {message: string}}).error.message).toMatch(/default\.no-unfiltered-delete/)
    // Once analysed, the same text is answered from the cache, synchronously.
    expect(hook(big, ctx(90))).not.toBeInstanceOf(Promise)
  })
})
