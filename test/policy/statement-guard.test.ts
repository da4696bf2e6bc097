import {beforeAll, describe, expect, it} from 'vitest'
import type {NamedDefinition, SessionView, StatementContext} from '../../src/proxy/seam.js'
import {AnalysisCache, createStatementHook, offlineCatalog, type CatalogKey, type FunctionCandidate, type LoadingFunctionCatalog, type PolicyStatementHook, type PolicyVerdict} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import {statementContext} from '../helpers/statement-context.js'

beforeAll(async () => {
  await loadParser()
})

/** A session's acknowledged prepared statements, as the tunnel's protocol state would hold them. */
class Session implements SessionView {
  readonly statements = new Map<string, NamedDefinition>()
  readonly parameters = new Map<string, string>()
  statement(name: string) {
    return this.statements.get(name)
  }
  portal() {
    return undefined
  }
  /** What the tunnel records once the server confirms statement `index` of `sql` (a PREPARE). */
  prepared(name: string, sql: string, index = 0): this {
    this.statements.set(name, {name, sql, statementIndex: index, definedBy: 'prepare', verdict: {action: 'allow'}})
    return this
  }
  /** What the tunnel records once the server confirms a protocol Parse. */
  parsed(name: string, sql: string): this {
    this.statements.set(name, {name, sql, statementIndex: 0, definedBy: 'parse', verdict: {action: 'allow'}})
    return this
  }
}

const ctx = (session: SessionView = new Session(), extra: Partial<StatementContext> = {}): StatementContext => statementContext(session, extra)

function newHook(extra: Partial<Parameters<typeof createStatementHook>[0]> = {}): PolicyStatementHook {
  return createStatementHook({rules: [], pack: 'default', identityGroups: [], cache: new AnalysisCache(), ...extra})
}

async function run(hook: PolicyStatementHook, sql: string, c: StatementContext): Promise<PolicyVerdict> {
  return await hook(sql, c)
}

const ruleOf = (v: PolicyVerdict): string | undefined => v.decision?.decisive?.ruleId
/** The rule that decided statement `index` of a text. */
const ruleOfStatement = (v: PolicyVerdict, index: number): string | undefined => v.decision?.statements.find((s) => s.statementIndex === index)?.ruleId

/**
 * A target catalog that holds one volatile user function, `public.purge(int)`, and answers only
 * what was loaded: as the tunnel's catalog does, a key the hook never asked for stays unknown.
 */
function purgeCatalog(): LoadingFunctionCatalog & {loaded: CatalogKey[]} {
  const purge: FunctionCandidate = {schema: 'public', name: 'purge', args: 'integer', volatility: 'v', kind: 'f', nargs: 1, ndefaults: 0, variadic: false}
  const loaded: CatalogKey[] = []
  const answer = (key: CatalogKey) => (key === 'f:purge' ? [purge] : (offlineCatalog.get(key) ?? (key.startsWith('r:') ? [] : undefined)))
  return {
    loaded,
    offline: false,
    generation: 1,
    unknownReason: () => 'not loaded',
    get: (key) => (loaded.includes(key) ? answer(key) : undefined),
    missing: (keys) => keys.filter((k) => !loaded.includes(k)),
    load: async (keys) => void loaded.push(...keys),
  }
}

describe('createStatementHook', () => {
  it('judges the calls in an EXECUTE\'s parameters and in the prepared statement it runs', async () => {
    const functions = purgeCatalog()
    const hook = newHook({functions})
    // A function in the parameters runs whatever the prepared statement is.
    const param = await run(hook, "PREPARE p AS SELECT $1::text; EXECUTE p(pg_read_file('/etc/passwd'))", ctx())
    expect(param.action).toBe('reject')
    expect(ruleOfStatement(param, 1)).toBe('default.no-server-functions')
    expect(ruleOf(await run(hook, 'EXECUTE q(purge(1))', ctx(new Session().prepared('q', 'PREPARE q (int) AS SELECT $1'))))).toBe('default.volatile-function')
    // A volatile user function inside a statement the session prepared earlier (its keys loaded now).
    const held = new Session().prepared('r', 'PREPARE r AS SELECT purge(1)')
    const v = await run(hook, 'EXECUTE r', ctx(held))
    expect(ruleOf(v)).toBe('default.volatile-function')
    expect(functions.loaded).toContain('f:purge')
  })

  it('reads the catalog again when another session\'s commit forgets what a lookup read before the statement is judged, and refuses only past the bounded reads', async () => {
    // A load that waits for lookups other statements started: the first ends, another session's
    // commit clears the catalog (invalidate), and the statement's keys are gone when it is judged.
    const forgetful = (forgets: number): LoadingFunctionCatalog & {loads: number} => {
      const base = purgeCatalog()
      let generation = 1
      const c = {
        ...base,
        loads: 0,
        get generation() {
          return generation
        },
        load: async (keys: readonly CatalogKey[]) => {
          c.loads++
          await base.load(keys)
          if (c.loads <= forgets) {
            base.loaded.length = 0
            generation++
          }
        },
      }
      return c
    }
    const twice = forgetful(2)
    const v = await run(newHook({functions: twice}), 'SELECT purge(1)', ctx())
    expect(ruleOf(v)).toBe('default.volatile-function')
    expect(v.decision?.decisive?.reason).not.toMatch(/could not be looked up/)
    expect(twice.loads).toBe(3)
    // Forgotten at every read: refused as unknown, never judged on what was not read.
    const always = forgetful(Infinity)
    const refused = await run(newHook({functions: always}), 'SELECT purge(1)', ctx())
    expect(refused.action).toBe('reject')
    expect(always.loads).toBe(3)
  })

  it('judges EXECUTE by what the session acknowledged under that name', async () => {
    const hook = newHook()
    const prepare = 'PREPARE del (int) AS DELETE FROM users WHERE id = $1'
    expect((await run(hook, prepare, ctx())).action).toBe('allow')
    expect((await run(hook, 'EXECUTE del(5)', ctx(new Session().prepared('del', prepare)))).action).toBe('allow')
    // Before the server confirms the PREPARE (or in another session) the name means nothing.
    const other = await run(hook, 'EXECUTE del(5)', ctx())
    expect(other.action).toBe('reject')
    expect(ruleOf(other)).toBe('default.unknown')
  })

  it('keeps no state of its own: an allowed PREPARE is unknown to EXECUTE until the session has it', async () => {
    const hook = newHook()
    const session = new Session()
    expect((await run(hook, 'PREPARE p AS SELECT 1', ctx(session))).action).toBe('allow')
    expect(ruleOf(await run(hook, 'EXECUTE p', ctx(session)))).toBe('default.unknown')
    const prep = await run(hook, 'PREPARE wipe AS DELETE FROM users', ctx(session))
    expect(ruleOf(prep)).toBe('default.no-unfiltered-delete')
  })

  it('keeps the first definition of a name within one text, as the server does', async () => {
    const hook = newHook({rules: [{id: 'watch-deletes', match: {command: 'delete'}, action: 'warn'}]})
    // The second PREPARE fails on the server ("already exists"), so p still runs SELECT 1.
    const v = await run(hook, 'PREPARE p AS SELECT 1; PREPARE p (int) AS DELETE FROM t WHERE id = $1; EXECUTE p', ctx())
    expect(ruleOfStatement(v, 2)).toBe('default.allow-read')
    // Likewise a name the session already holds.
    const held = new Session().prepared('p', 'PREPARE p AS SELECT 1')
    expect(ruleOfStatement(await run(hook, 'PREPARE p (int) AS DELETE FROM t WHERE id = $1; EXECUTE p(1)', ctx(held)), 1)).toBe('default.allow-read')
  })

  it('forgets a name within the text after DEALLOCATE, DEALLOCATE ALL and DISCARD ALL', async () => {
    const hook = newHook()
    const session = new Session().prepared('p', 'PREPARE p AS SELECT 1')
    expect((await run(hook, 'EXECUTE p', ctx(session))).action).toBe('allow')
    for (const forget of ['DEALLOCATE p', 'DEALLOCATE PREPARE p', 'DEALLOCATE ALL', 'DISCARD ALL']) {
      expect((await run(hook, `${forget}; EXECUTE p`, ctx(session))).action, forget).toBe('reject')
    }
  })

  it('resolves EXECUTE of a named extended-protocol statement', async () => {
    const hook = newHook()
    const session = new Session().parsed('S_1', 'DELETE FROM users WHERE id = $1')
    expect((await run(hook, 'EXECUTE "S_1"(3)', ctx(session))).action).toBe('allow')
    expect((await run(hook, 'EXPLAIN ANALYZE EXECUTE "S_1"(3)', ctx(session))).action).toBe('allow')
  })

  it('resolves a Parse of EXECUTE by what the other name runs now, not when it was parsed', async () => {
    const hook = newHook()
    const session = new Session().parsed('s', 'EXECUTE p').prepared('p', 'PREPARE p AS SELECT 1')
    expect((await run(hook, 'EXECUTE s', ctx(session))).action).toBe('allow')
    session.prepared('p', 'PREPARE p AS DELETE FROM users')
    expect(ruleOf(await run(hook, 'EXECUTE s', ctx(session)))).toBe('default.no-unfiltered-delete')
    // A name that runs itself is not followed for ever.
    const loop = new Session().parsed('a', 'EXECUTE b').parsed('b', 'EXECUTE a')
    expect(ruleOf(await run(hook, 'EXECUTE a', ctx(loop)))).toBe('default.unknown')
  })

  it('refuses a Parse that holds more than one statement', async () => {
    const hook = newHook()
    const v = await run(hook, 'SELECT 1; SELECT 2', ctx(undefined, {protocol: 'parse', statementName: ''}))
    expect(v.action).toBe('reject')
    expect(v.action === 'reject' && v.error.message).toMatch(/^dbgate: statement denied by rule protocol\.single-statement-parse/)
    expect((await run(hook, 'SELECT 1; SELECT 2', ctx())).action).toBe('allow')
  })

  it('applies the identity groups and reviewers it was built with', async () => {
    const rules = [{id: 'dba-ddl', match: {class: 'ddl' as const, groups: ['dba']}, action: 'allow' as const}]
    const dba = newHook({rules, identityGroups: ['dba']})
    const dev = newHook({rules, identityGroups: ['dev'], reviewers: ['dba']})
    expect((await run(dba, 'CREATE INDEX i ON t (a)', ctx())).action).toBe('allow')
    const v = await run(dev, 'CREATE INDEX i ON t (a)', ctx())
    expect(v.action === 'hold' && v.error.message).toMatch(/requires approval by a member of dba/)
  })

  it('refuses statements over the configured size', async () => {
    const hook = newHook({maxStatementSize: 64})
    const v = await run(hook, `SELECT '${'x'.repeat(100)}'`, ctx())
    expect(v.action === 'reject' && v.error.detail).toMatch(/over the 64-byte limit/)
    expect((await run(hook, 'SELECT 1', ctx())).action).toBe('allow')
  })
})

describe('very large statements', () => {
  it('are judged asynchronously (off the main thread) with the same verdict as small ones', async () => {
    const hook = newHook()
    const big = `delete from accounts where true or id in (${Array.from({length: 5000}, (_, i) => i).join(',')})`
    const pending = hook(big, ctx())
    expect(pending).toBeInstanceOf(Promise)
    const verdict = await pending
    expect(verdict).toMatchObject({action: 'reject', error: {code: '42501'}})
    expect((verdict as {error: {message: string}}).error.message).toMatch(/default\.no-unfiltered-delete/)
    // Once analysed, the same text is answered from the cache, synchronously.
    expect(hook(big, ctx())).not.toBeInstanceOf(Promise)
  })
})
