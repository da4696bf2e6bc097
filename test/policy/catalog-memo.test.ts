/**
 * Texts of one shape share their statements' operations, and the statement hook keeps per
 * operations list whether its calls only read (and which catalog keys it needs). Attacks: the same
 * shape judged after the target's catalog changed, and under two catalogs at once (two targets
 * sharing the analysis cache), must get the verdict a fresh hook gives that text there and then.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {SessionView} from '../../src/proxy/seam.js'
import {AnalysisCache, createStatementHook, offlineCatalog, type CatalogKey, type FunctionCandidate, type LoadingFunctionCatalog, type PolicyVerdict} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import {statementContext} from '../helpers/statement-context.js'

beforeAll(async () => {
  await loadParser()
})

/** A session the shape cache may share analyses in (the settings the scan assumes). */
const session: SessionView = {
  statements: new Map(),
  parameters: new Map([
    ['standard_conforming_strings', 'on'],
    ['client_encoding', 'UTF8'],
  ]),
  statement: () => undefined,
  portal: () => undefined,
} as unknown as SessionView

const ctx = statementContext(session)

/** A target catalog with `public.purge(int)` of the given volatility; `become` changes it, as a re-read of the catalog would. */
function catalog(volatility: 's' | 'v'): LoadingFunctionCatalog & {become(v: 's' | 'v'): void} {
  const loaded = new Set<CatalogKey>()
  const state = {volatility, generation: 1}
  const purge = (): FunctionCandidate => ({schema: 'public', name: 'purge', args: 'integer', volatility: state.volatility, kind: 'f', nargs: 1, ndefaults: 0, variadic: false})
  return {
    offline: false,
    get generation() {
      return state.generation
    },
    unknownReason: () => 'not loaded',
    get: (key) => (!loaded.has(key) ? undefined : key === 'f:purge' ? [purge()] : (offlineCatalog.get(key) ?? (key.startsWith('r:') ? [] : undefined))),
    missing: (keys) => keys.filter((k) => !loaded.has(k)),
    load: async (keys) => void keys.forEach((k) => loaded.add(k)),
    become(v) {
      state.volatility = v
      state.generation++
    },
  }
}

const hookOf = (functions: LoadingFunctionCatalog, cache: AnalysisCache) => createStatementHook({rules: [], pack: 'default', identityGroups: [], cache, functions})
const summary = (v: PolicyVerdict) => ({action: v.action, rule: v.decision?.decisive?.ruleId})

/** The verdict a hook with nothing cached gives `sql` under a catalog like `functions` is now. */
async function fresh(sql: string, volatility: 's' | 'v'): Promise<ReturnType<typeof summary>> {
  return summary(await hookOf(catalog(volatility), new AnalysisCache())(sql, ctx))
}

describe('what a shape’s operations need from the catalog', () => {
  it('is judged again when the catalog changes: a function that turned volatile is not let through as a read', async () => {
    const cache = new AnalysisCache()
    const functions = catalog('s')
    const hook = hookOf(functions, cache)
    const read = await hook('SELECT purge(1) FROM t WHERE id = 10', ctx)
    expect(summary(read)).toEqual(await fresh('SELECT purge(1) FROM t WHERE id = 10', 's'))
    expect(read.action).toBe('allow')
    functions.become('v')
    const sibling = summary(await hook('SELECT purge(2) FROM t WHERE id = 11', ctx))
    expect(cache.stats().shared).toBeGreaterThan(0)
    expect(sibling).toEqual(await fresh('SELECT purge(2) FROM t WHERE id = 11', 'v'))
    expect(sibling.rule).toBe('default.volatile-function')
    // And back: a sibling after the function is stable again is a read once more.
    functions.become('s')
    expect(summary(await hook('SELECT purge(3) FROM t WHERE id = 12', ctx))).toEqual(await fresh('SELECT purge(3) FROM t WHERE id = 12', 's'))
  })

  it('is kept per catalog: two targets sharing one analysis cache each judge a shape by their own', async () => {
    const cache = new AnalysisCache()
    const stable = hookOf(catalog('s'), cache)
    const volatile = hookOf(catalog('v'), cache)
    for (let i = 0; i < 6; i++) {
      const sql = `SELECT purge(${i}) FROM t WHERE id = ${100 + i}`
      const [hook, kind] = i % 2 === 0 ? ([stable, 's'] as const) : ([volatile, 'v'] as const)
      expect(summary(await hook(sql, ctx)), `${sql} (${kind})`).toEqual(await fresh(sql, kind))
    }
    expect(cache.stats().shared).toBeGreaterThan(0)
  })
})
