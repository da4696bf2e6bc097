import {beforeAll, describe, expect, it} from 'vitest'
import {AnalysisCache} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

describe('AnalysisCache', () => {
  it('returns the same analysis for the same text and counts hits', () => {
    const cache = new AnalysisCache()
    const a = cache.analyze('SELECT 1')
    const b = cache.analyze('SELECT 1')
    expect(b).toBe(a)
    expect(cache.analyze('select 1')).not.toBe(a)
    expect(cache.stats()).toMatchObject({entries: 2, hits: 1, misses: 2})
  })

  it('evicts the least recently used entry when full', () => {
    const cache = new AnalysisCache({maxEntries: 2})
    const one = cache.analyze('SELECT 1')
    cache.analyze('SELECT 2')
    cache.analyze('SELECT 1') // now most recent
    cache.analyze('SELECT 3') // evicts SELECT 2
    expect(cache.stats().entries).toBe(2)
    expect(cache.analyze('SELECT 1')).toBe(one)
    const before = cache.stats().misses
    cache.analyze('SELECT 2')
    expect(cache.stats().misses).toBe(before + 1)
  })

  it('stays within its byte budget and does not keep texts too big to share', () => {
    const cache = new AnalysisCache({maxBytes: 8 * 1024})
    for (let i = 0; i < 100; i++) cache.analyze(`SELECT ${i}, '${'x'.repeat(100)}'`)
    expect(cache.stats().bytes).toBeLessThanOrEqual(8 * 1024)
    expect(cache.stats().entries).toBeGreaterThan(0)
    const big = `SELECT '${'y'.repeat(2000)}'`
    cache.analyze(big)
    cache.analyze(big)
    expect(cache.stats().hits).toBe(0)
  })

  it('keys on the size cap, since the cap changes the answer', () => {
    const cache = new AnalysisCache()
    expect(cache.analyze('SELECT 12345', {maxStatementSize: 8}).statements[0]?.class).toBe('unknown')
    expect(cache.analyze('SELECT 12345', {maxStatementSize: 1024}).statements[0]?.class).toBe('read')
  })
})
