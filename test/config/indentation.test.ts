/** One space of wrong indentation is one mistake: one error, saying where the line belongs. */
import {describe, expect, it} from 'vitest'
import {ConfigError} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'

function issues(text: string) {
  try {
    parseConfigText(text, 'dbgate.yaml', {env: {}})
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => ({line: i.line, keyPath: i.keyPath, message: i.message, fix: i.fix}))
    throw error
  }
  return []
}

describe('indentation mistakes', () => {
  it('a key one space short of its siblings gives one error, not a cascade', () => {
    const found = issues('targets:\n  shop:\n    host: 127.0.0.1\n    port: 5432\n   database: shop\n    user: shop_app\n    tls: disable\n    allow: [engineering]\n')
    expect(found).toEqual([
      {
        line: 5,
        keyPath: '',
        message: '"database" is indented 3 spaces, but the line before it is at 4; YAML reads the indentation as the structure',
        fix: 'indent "database" 4 spaces, like the keys next to it',
      },
    ])
  })

  it('a key dedented out of its target says to indent it under that target', () => {
    const found = issues('targets:\n  shop:\n    host: 127.0.0.1\n    database: shop\n  user: shop_app\n')
    expect(found).toEqual([
      {
        line: 5,
        keyPath: 'targets.user',
        message: '"user" is a setting of a target, but it is indented as if it were a target of its own (it is at the level of "shop")',
        fix: "indent it under shop, in line with shop's other keys",
      },
    ])
  })

  it('still reports real mistakes in the rest of the file once the key is put back', () => {
    const found = issues('targets:\n  shop:\n    host: 127.0.0.1\n    database: shop\n  user: shop_app\n  prod:\n    host: db\n    database: app\n    user: u\n    tls: nope\n')
    expect(found.map((i) => i.keyPath)).toEqual(['targets.user', 'targets.prod.tls'])
  })

  it('an unclosed [ or { at the end of the file says to close it, not to indent an empty key', () => {
    for (const [text, bracket] of [['targets:\n  prod:\n    host: [a\n', ']'], ['targets:\n  prod: {host: a\n', '}']]) {
      const [found, ...rest] = issues(text)
      expect(rest).toEqual([])
      expect(found.message).toContain(`end with a ${bracket}`)
      expect(found.message).not.toContain('is indented')
      expect(found.fix).toContain('close any [ or {')
    }
  })
})
