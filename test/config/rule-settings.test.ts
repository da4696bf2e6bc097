import {beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {analyze, evaluate, offlineCatalog, resolveCatalogCalls} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'

beforeAll(async () => {
  await loadParser()
})

/** A rule read from dbgate.yaml keeps every condition of its match: dropping one widens what it allows. */
describe('rules read from dbgate.yaml', () => {
  const yaml = [
    'targets:',
    '  prod:',
    '    host: db.internal',
    '    database: app',
    '    user: app_rw',
    '    rules:',
    '      - id: app-schema',
    '        match: {class: session, settings: [search_path]}',
    '        action: allow',
  ].join('\n')

  it('allow only the settings their match names', () => {
    const target = parseConfigText(yaml, 'dbgate.yaml').config.targets.prod!
    expect(target.rules[0]!.match).toEqual({class: ['session'], settings: ['search_path']})
    const decide = (sql: string) => evaluate(resolveCatalogCalls(analyze(sql).statements, offlineCatalog), {rules: target.rules, pack: target.policy}).decisive
    expect(decide('SET search_path = app, public')).toMatchObject({action: 'allow', ruleId: 'app-schema'})
    for (const sql of ['SET session_replication_role = replica', 'SET statement_timeout = 0', "SELECT set_config('app.tenant', '1', false)"]) {
      expect(decide(sql)?.ruleId, sql).not.toBe('app-schema')
    }
  })
})
