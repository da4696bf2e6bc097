import {describe, expect, it} from 'vitest'
import {ConfigError} from '../../src/config/errors.js'
import {parseConfigText} from '../../src/config/parse.js'

/** `keyPath kind: message` of every error parseConfigText reports for `lines`. */
function errors(lines: string[]): string[] {
  try {
    parseConfigText(lines.join('\n') + '\n', 'dbgate.yaml')
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).issues.map((i) => `${i.line}:${i.column} ${i.keyPath} ${i.kind}: ${i.message}`)
  }
  throw new Error('accepted')
}

const prod = ['targets:', '  prod:', '    host: db.internal', '    database: app', '    user: app_rw']

describe('dbgate.yaml keys that are object properties in JavaScript', () => {
  it('refuses __proto__ as a target name, rather than dropping the target', () => {
    expect(errors([...prod, '  __proto__:', '    host: a', '    database: b', '    user: c'])).toEqual(['6:3 targets.__proto__ format: invalid name "__proto__" in targets'])
  })

  it('reports __proto__ inside a section as an unknown key', () => {
    expect(errors([...prod, '    __proto__: {host: elsewhere}'])).toEqual(['6:5 targets.prod.__proto__ unknown-key: unknown key "__proto__" in targets.prod'])
  })

  it('takes constructor as an ordinary target name', () => {
    const {config} = parseConfigText([...prod, '  constructor: {host: a, database: b, user: c}'].join('\n'), 'dbgate.yaml')
    expect(Object.keys(config.targets)).toEqual(['prod', 'constructor'])
  })
})

describe('aliases', () => {
  it('says an alias inside its own anchor is one, instead of recursing', () => {
    expect(errors([...prod, '    reviewers: &r [dba, *r]'])).toEqual(['6:25 targets.prod.reviewers[1] syntax: alias *r refers to the value it is part of'])
  })

  it('reports a broken alias once, and runs no cross-field rule on the section it breaks', () => {
    expect(errors([...prod, '    rules:', '      - match: {class: *nope, where: none}', '        action: deny'])).toEqual([
      '7:24 targets.prod.rules[0].match.class syntax: alias *nope refers to no anchor',
    ])
  })
})

describe('lists of rules', () => {
  it('finds a duplicate rule id even when the first rule has other errors', () => {
    expect(errors([...prod, '    rules:', '      - id: r', '        match: {class: ddl}', '        action: nope', '      - id: r', '        match: {class: ddl}', '        action: deny'])).toEqual([
      '9:17 targets.prod.rules[0].action enum: expected one of allow, deny, require_approval, warn, got "nope"',
      '10:13 targets.prod.rules[1].id duplicate: duplicate rule id "r" in targets.prod.rules (first used at line 7)',
    ])
  })
})
