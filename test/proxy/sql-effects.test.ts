import {beforeAll, describe, expect, it} from 'vitest'
import {loadParser} from '../../src/sql/parser.js'
import {tagMatches, textShape} from '../../src/proxy/sql-effects.js'

beforeAll(() => loadParser())

describe('what a text does to named objects', () => {
  it('reads definitions, drops and their command tags, statement by statement', () => {
    const shape = textShape('PREPARE p AS SELECT 1; DEALLOCATE p; deallocate prepare all; DECLARE c BINARY CURSOR WITH HOLD FOR SELECT 1; declare d cursor for select 2; CLOSE c; close all; DISCARD ALL; DISCARD PLANS; FETCH 2 FROM d; MOVE d; SELECT 1')
    expect(shape.opaque).toBe(false)
    expect(shape.statements).toEqual([
      {effect: {kind: 'prepare', name: 'p'}, tags: ['PREPARE']},
      {effect: {kind: 'deallocate', name: 'p'}, tags: ['DEALLOCATE']},
      {effect: {kind: 'deallocate-all'}, tags: ['DEALLOCATE']},
      {effect: {kind: 'declare', name: 'c', hold: true}, tags: ['DECLARE CURSOR']},
      {effect: {kind: 'declare', name: 'd', hold: false}, tags: ['DECLARE CURSOR']},
      {effect: {kind: 'close', name: 'c'}, tags: ['CLOSE CURSOR']},
      {effect: {kind: 'close-all'}, tags: ['CLOSE CURSOR']},
      {effect: {kind: 'discard-all'}, tags: ['DISCARD ALL']},
      {tags: ['DISCARD']},
      {tags: ['FETCH']},
      {tags: ['MOVE']},
      {},
    ])
  })

  it('finds every name a text reads, however deep', () => {
    const shape = textShape('EXPLAIN ANALYZE EXECUTE a(1); CREATE TABLE t AS EXECUTE b; DELETE FROM x WHERE CURRENT OF c; FETCH ALL IN d; WITH w AS (UPDATE y SET v = 1 WHERE CURRENT OF e RETURNING 1) SELECT * FROM w')
    expect(shape.refs).toEqual([
      {kind: 'statement', name: 'a'},
      {kind: 'statement', name: 'b'},
      {kind: 'portal', name: 'c'},
      {kind: 'portal', name: 'd', runs: true},
      {kind: 'portal', name: 'e'},
    ])
  })

  it('does not parse texts that cannot touch a named object, and calls unreadable ones opaque', () => {
    expect(textShape('SELECT abalance FROM pgbench_accounts WHERE aid = 1')).toEqual({refs: [], opaque: false})
    expect(textShape('PREPARE p AS SELEC 1').opaque).toBe(true)
    expect(textShape('execute p\0; drop table t').opaque).toBe(true)
    // Quoted, the word is a name, not a keyword: parsed, and nothing is defined.
    expect(textShape('SELECT 1 AS "prepare"').statements).toEqual([{}])
  })

  it('matches command tags by their words', () => {
    expect(tagMatches('FETCH 5', ['FETCH'])).toBe(true)
    expect(tagMatches('DEALLOCATE ALL', ['DEALLOCATE'])).toBe(true)
    expect(tagMatches('FETCHED', ['FETCH'])).toBe(false)
    expect(tagMatches('SELECT 1', ['PREPARE'])).toBe(false)
  })
})
