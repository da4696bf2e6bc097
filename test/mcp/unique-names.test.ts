import {describe, expect, it} from 'vitest'
import {uniqueNames} from '../../src/mcp/runner.js'

/** The rows an agent gets are objects by column name: every column must keep a key of its own. */
describe('MCP rows: output column names', () => {
  it.each([
    [['a', 'a'], ['a', 'a_2']],
    [['a', 'a', 'a'], ['a', 'a_2', 'a_3']],
    // A result that names a column like the suffix itself.
    [['a', 'a', 'a_2'], ['a', 'a_3', 'a_2']],
    [['a_2', 'a', 'a'], ['a_2', 'a', 'a_3']],
    [['ssn', 'ssn', 'ssn_2', 'ssn_3'], ['ssn', 'ssn_4', 'ssn_2', 'ssn_3']],
    [['a_2', 'a_2', 'a', 'a'], ['a_2', 'a_2_2', 'a', 'a_3']],
    [['x', 'y'], ['x', 'y']],
    [['?column?', '?column?'], ['?column?', '?column?_2']],
  ])('names %j apart as %j', (names, expected) => {
    const out = uniqueNames(names)
    expect(out).toEqual(expected)
    expect(new Set(out).size).toBe(names.length)
  })
})
