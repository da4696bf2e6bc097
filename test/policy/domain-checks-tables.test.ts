import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import type {Refusal} from './unfiltered.js'

/**
 * ALTER DOMAIN that checks the values already stored (ADD CONSTRAINT, VALIDATE CONSTRAINT, SET NOT
 * NULL) reads every column of the domain, in tables the statement does not name, and fails on the
 * first value that does not fit: `alter domain person add constraint probe check (value <> 'Alice
 * Secret')` fails exactly when hr.salaries holds that name. Before, with a rule keeping hr.* out
 * of reach and DDL allowed, it ran, answering the question; it now counts as a read of every table.
 */
describe('ALTER DOMAIN checks of values in tables it does not name', () => {
  let db: UpstreamInfo
  let guarded: PipelineTunnel
  let open: PipelineTunnel
  const ddl = ['  - id: ddl', '    match: {class: ddl}', '    action: allow']

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) =>
      c.query(`
        create schema hr;
        create domain person as text;
        create table hr.salaries (id int, name person);
        insert into hr.salaries values (1, 'Alice Secret');
        alter domain person add constraint later check (value <> 'Alice Secret') not valid;
        create domain plain_d as int;
      `),
    )
    guarded = await openPipelineTunnel(db, ['rules:', '  - id: no-hr', '    match: {tables: ["hr.*"]}', '    action: deny', ...ddl].join('\n'))
    open = await openPipelineTunnel(db, ['rules:', ...ddl].join('\n'))
  })
  afterAll(async () => {
    await guarded.close()
    await open.close()
  })

  const probes = [
    "alter domain person add constraint probe check (value <> 'Alice Secret')",
    'alter domain person validate constraint later',
    'alter domain public.person set not null',
  ]

  it('answers whether hr.salaries holds a name when nothing guards hr (the leak)', async () => {
    const c = await open.client()
    const e = (await c.query(probes[0]!).catch((x: Error) => x)) as Refusal
    await c.end()
    expect(e).toBeInstanceOf(Error)
    expect(e.code).toBe('23514')
  })

  it('refuses each probe by the rule on hr.*, as a simple query and in the extended protocol', async () => {
    for (const extended of [false, true]) {
      for (const sql of probes) {
        const c = await guarded.client()
        const e = (await (extended ? c.query({name: 'p', text: sql}) : c.query(sql)).catch((x: Error) => x)) as Refusal
        await c.end()
        expect(e, sql).toBeInstanceOf(Error)
        expect(e.code, sql).toBe('42501')
        expect(e.message, sql).toMatch(/rule no-hr/)
        expect(e.detail, sql).toMatch(/ALTER DOMAIN checks every value of the domain in every column of it/)
      }
    }
  })

  it('still runs ALTER DOMAIN that checks no stored value', async () => {
    const c = await guarded.client()
    await c.query("alter domain person add constraint unchecked check (value <> '') not valid")
    await c.query("alter domain person set default 'x'")
    await c.query('alter domain plain_d drop not null')
    await c.end()
  })
})
