/**
 * The decision for a text of one statement is kept per options object and statement operations
 * (texts of one shape share their operations, so every `-M simple` text after the first is judged
 * without evaluating the rules again). A kept decision must be exactly the one evaluating anew
 * would give: for every corpus text, for texts of one shape with other constants, after the
 * options' groups or rules changed in place, and across hooks with other options; and nobody can
 * change it for the next statement.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import {analyze, evaluate, offlineCatalog, resolveCatalogCalls, sharedAnalysisCache, type EvaluateOptions, type PolicyRule} from '../../src/policy/index.js'
import {readingOf} from '../../src/policy/text-shape.js'
import {loadParser} from '../../src/sql/parser.js'
import {corpus} from './corpus.js'

beforeAll(async () => {
  await loadParser()
})

const judged = (sql: string) => resolveCatalogCalls(analyze(sql).statements, offlineCatalog)
const READING = readingOf(
  new Map([
    ['standard_conforming_strings', 'on'],
    ['client_encoding', 'UTF8'],
  ]),
)
const rule = (id: string, match: PolicyRule['match'], action: PolicyRule['action']): PolicyRule => ({id, match, action})

describe('decisions kept per operations', () => {
  it('are what a fresh evaluation gives, for every corpus text, judged twice', () => {
    const opts: EvaluateOptions = {pack: 'default', rules: [rule('dba-ddl', {class: 'ddl', groups: ['dba']}, 'require_approval')], groups: ['dev']}
    for (const c of corpus) {
      const statements = resolveCatalogCalls(analyze(c.sql).statements, c.catalog ?? offlineCatalog)
      const first = evaluate(statements, opts)
      const again = evaluate(statements, opts)
      expect(again, c.sql).toEqual(evaluate(statements, {...opts}))
      expect(first, c.sql).toEqual(again)
    }
  })

  it('are those of each text for texts of one shape, shared operations and all', () => {
    const opts: EvaluateOptions = {pack: 'default'}
    for (const sqls of [
      [1, 2, 3].map((n) => `SELECT abalance FROM kept_accounts WHERE aid = ${n}`),
      [1, 2, 3].map((n) => `DELETE FROM kept_accounts WHERE aid = ${n}`),
      [1, 2, 3].map((n) => `UPDATE kept_accounts SET v = ${n} WHERE id = ${n}`),
      // Constants that decide: each text of these shapes is analysed on its own.
      [1, 2].map((n) => `DELETE FROM kept_accounts WHERE ${n} = 1`),
      ['on', 'off'].map((v) => `SET standard_conforming_strings = ${v}`),
    ]) {
      for (const sql of sqls) {
        const statements = resolveCatalogCalls(sharedAnalysisCache.analyze(sql, {}, READING).statements, offlineCatalog)
        expect(evaluate(statements, opts), sql).toEqual(evaluate(judged(sql), {...opts}))
      }
    }
  })

  it('follow options changed in place: groups and rules', () => {
    const groups: string[] = []
    const rules: PolicyRule[] = [rule('dba-drop', {class: 'ddl', groups: ['dba']}, 'allow')]
    const opts: EvaluateOptions = {pack: 'default', rules, groups}
    const drop = judged('DROP TABLE kept_users')
    expect(evaluate(drop, opts).decisive?.ruleId).not.toBe('dba-drop')
    groups.push('dba')
    expect(evaluate(drop, opts)).toMatchObject({action: 'allow', decisive: {ruleId: 'dba-drop'}})
    groups.length = 0
    expect(evaluate(drop, opts).decisive?.ruleId).not.toBe('dba-drop')
    opts.rules = [rule('no-drop', {class: 'ddl'}, 'deny')]
    expect(evaluate(drop, opts)).toMatchObject({action: 'deny', decisive: {ruleId: 'no-drop'}})
    opts.pack = 'none'
    opts.rules = []
    expect(evaluate(drop, opts)).toMatchObject({action: 'allow', decisive: {ruleId: 'fallback.allow'}})
  })

  it('are not shared between options objects (two hooks, two identities)', () => {
    const rules = [rule('dba-drop', {class: 'ddl', groups: ['dba']}, 'allow')]
    const dba: EvaluateOptions = {pack: 'default', rules, groups: ['dba']}
    const dev: EvaluateOptions = {pack: 'default', rules, groups: ['dev']}
    const drop = judged('DROP TABLE kept_users2')
    for (let i = 0; i < 2; i++) {
      expect(evaluate(drop, dba).decisive?.ruleId).toBe('dba-drop')
      expect(evaluate(drop, dev).decisive?.ruleId).not.toBe('dba-drop')
    }
  })

  it('cannot be changed by whoever receives one', () => {
    const opts: EvaluateOptions = {pack: 'default'}
    const del = judged('DELETE FROM kept_users')
    const d = evaluate(del, opts)
    expect(d.action).toBe('deny')
    expect(() => {
      ;(d as {action: string}).action = 'allow'
    }).toThrow()
    expect(() => {
      ;(d.decisive as {action: string}).action = 'allow'
    }).toThrow()
    expect(() => d.statements.push(d.statements[0]!)).toThrow()
    expect(evaluate(del, opts).action).toBe('deny')
  })
})
