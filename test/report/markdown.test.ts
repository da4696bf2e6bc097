import {describe, expect, it} from 'vitest'
import {mdCell, mdCode} from '../../src/report/markdown.js'

describe('report.md cells', () => {
  it('keeps a cell on one line and its pipes and tags from breaking the table', () => {
    expect(mdCell('a | b\n<img src=x>')).toBe('a \\| b &lt;img src=x&gt;')
    expect(mdCell(undefined)).toBe('')
  })

  it('wraps SQL holding backticks in a longer fence', () => {
    expect(mdCode('select 1')).toBe('`select 1`')
    expect(mdCode('select `x`')).toBe('`` select `x` ``')
    expect(mdCode('a ``b`` | c')).toBe('```a ``b`` \\| c```')
  })
})
