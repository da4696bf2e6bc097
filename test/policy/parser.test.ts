import {beforeAll, describe, expect, it} from 'vitest'
import {loadParser, parseStatements, parseTree} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

describe('parseTree', () => {
  it('parses a text once for every reader of it, and no reader can change what the others see', () => {
    const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 4242'
    const tree = parseTree(sql)
    expect(parseTree(sql)).toBe(tree)
    const stmt = tree.stmts![0]!.stmt as {SelectStmt: {whereClause: Record<string, unknown>}}
    expect(Object.isFrozen(stmt.SelectStmt.whereClause)).toBe(true)
    const select: Record<string, unknown> = stmt.SelectStmt
    expect(() => {
      select.whereClause = null
    }).toThrow(TypeError)
    // The guardrails' statements are views of the same frozen tree.
    const parsed = parseStatements(sql)
    expect(parsed.ok && parsed.statements[0]!.node).toBe(tree.stmts![0]!.stmt)
  })

  it('gives every reader the same complaint about a text that does not parse', () => {
    expect(() => parseTree('SELEC 1')).toThrow(/syntax error/)
    expect(() => parseTree('SELEC 1')).toThrow(/syntax error/)
    expect(parseStatements('SELEC 1')).toMatchObject({ok: false})
  })
})
