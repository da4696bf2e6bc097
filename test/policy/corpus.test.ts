import {beforeAll, describe, expect, it} from 'vitest'
import {analyze, evaluate, judgeStatements, offlineCatalog, PreparedRegistry, resolveCatalogCalls} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import {corpus} from './corpus.js'

beforeAll(async () => {
  await loadParser()
})

const label = (sql: string): string => (sql.length > 90 ? `${sql.slice(0, 90)}… (${sql.length} chars)` : sql).replace(/\s+/g, ' ')

describe('default pack corpus', () => {
  it('holds enough cases to mean something', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(150)
  })

  it.each(corpus.map((c) => [label(c.sql), c] as const))('%s', (_label, c) => {
    const {statements, decision} = judgeStatements(analyze(c.sql).statements, new PreparedRegistry().stage(), {pack: 'default'}, c.catalog ?? offlineCatalog)
    const decisive = decision.decisive!
    const stmt = statements[decisive.statementIndex]!
    expect({class: stmt.class, command: stmt.command, action: decision.action, rule: decisive.ruleId}).toEqual({
      class: c.class,
      command: c.command,
      action: c.action,
      rule: c.rule ?? decisive.ruleId,
    })
  })

  it('lets an empty or comment-only text through with no statements', () => {
    for (const sql of ['', '   ', '-- nothing here', '/* nor here */', ';;']) {
      const a = analyze(sql)
      expect(a.statements).toEqual([])
      expect(evaluate(a).action).toBe('allow')
    }
  })
})
