import {describe, expect, it} from 'vitest'
import {mdCell, mdCode, mdProse} from '../../src/report/markdown.js'

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

describe("report.md's own sentences", () => {
  it("shows dbgate's backticked commands as code and what they quote as inert text", () => {
    expect(mdProse('Run `dbgate sessions verify` with the session id.')).toBe('Run `dbgate sessions verify` with the session id.')
    // An identity from the IdP, quoted in a gap: links, emphasis and tags stay text.
    expect(mdProse('sessions without identity (eve [x](https://evil.example) *y* <b>): run `dbgate login`')).toBe(
      'sessions without identity (eve \\[x\\](https://evil.example) \\*y\\* &lt;b&gt;): run `dbgate login`',
    )
  })

  it('turns backticks smuggled into quoted text into code spans at most, never markup', () => {
    const out = mdProse('key `a` [link](https://evil.example) `<img src=x>` done')
    expect(out).toBe('key `a` \\[link\\](https://evil.example) `<img src=x>` done')
    // An odd count: nothing becomes code, every backtick is escaped.
    expect(mdProse('one ` [x](y)')).toBe('one \\` \\[x\\](y)')
  })
})
