import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * Statements that act on every relation of a schema, or on columns of tables they do not name.
 *
 * With `tables: ["hr.*"]` denied and DDL allowed, `ALTER SCHEMA hr RENAME TO x` named no table, so
 * no rule on hr.* spoke, and `SELECT * FROM x.salaries` then read hr's rows under another name;
 * `DROP SCHEMA hr CASCADE` dropped them. `DROP DOMAIN public.amount CASCADE` dropped the column
 * hr.salaries.bonus of that domain with its values, and a rule allowing DROP of scratch.* carried
 * `DROP TABLE scratch.card CASCADE`, which dropped hr's column of that row type.
 */
describe('statements that act on a whole schema, or on what depends on what they name', () => {
  let db: UpstreamInfo
  let open: PipelineTunnel
  let narrow: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const NO_HR = ['rules:', '  - id: no-hr', '    match: {tables: ["hr.*"]}', '    action: deny']
  const MIGRATIONS = ['  - id: migrations', '    match: {class: [ddl, admin, privilege]}', '    action: allow']
  const SCRATCH = ['  - id: scratch-drops', '    match: {command: [drop], tables: ["scratch.*"]}', '    action: allow']

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr;
        create schema scratch;
        create domain public.amount as int;
        create type public.contact as (phone text, email text);
        create table scratch.card (n text);
        create table scratch.tmp (n int);
        create table hr.salaries (id int primary key, person text, bonus public.amount, card scratch.card);
        insert into hr.salaries values (1, 'alice', 500, row('4111')), (2, 'bob', 700, row('5500'));
        create table hr.contacts of public.contact;
        insert into hr.contacts values ('555-0100', 'alice@example.com');
      `),
    )
    open = await openPipelineTunnel(db, [...NO_HR, ...MIGRATIONS].join('\n'))
    narrow = await openPipelineTunnel(db, [...NO_HR, ...SCRATCH].join('\n'))
  }, 60_000)
  afterAll(async () => {
    await open?.close()
    await narrow?.close()
  })

  const refused = async (c: pg.Client, sql: string): Promise<Error & {code?: string; detail?: string}> => {
    await c.query('begin')
    const e = (await c.query(sql).catch((x: Error) => x)) as Error & {code?: string; detail?: string}
    await c.query('rollback').catch(() => {})
    expect(e, sql).toBeInstanceOf(Error)
    expect(e.code, `${sql}: ${e.message}`).toBe('42501')
    expect(e.message, sql).toMatch(/no-hr/)
    return e
  }

  const hrIntact = async () => {
    const rows = await direct(async (d) => (await d.query('select id, person, bonus, (card).n as card from hr.salaries order by id')).rows)
    expect(rows).toEqual([
      {id: 1, person: 'alice', bonus: 500, card: '4111'},
      {id: 2, person: 'bob', bonus: 700, card: '5500'},
    ])
    const contacts = await direct(async (d) => (await d.query('select phone from hr.contacts')).rows)
    expect(contacts).toEqual([{phone: '555-0100'}])
    const schemas = await direct(async (d) => (await d.query("select nspname from pg_namespace where nspname in ('hr', 'scratch') order by 1")).rows.map((r) => r.nspname as string))
    expect(schemas).toEqual(['hr', 'scratch'])
  }

  it('refuses acting on the denied schema as a whole, in every spelling, where DDL and grants are allowed', async () => {
    const c = await open.client()
    const attacks = [
      'alter schema hr rename to hr_moved',
      'ALTER SCHEMA HR RENAME TO "Payroll"',
      'alter schema "hr" rename to x',
      'drop schema hr cascade',
      'drop schema if exists nothing_here, hr cascade',
      'alter schema hr owner to current_user',
      'grant select on all tables in schema hr to public',
      'revoke all on all tables in schema hr from public',
      'grant usage, create on schema hr to public',
      'alter default privileges in schema hr grant select on tables to public',
    ]
    for (const sql of attacks) {
      const e = await refused(c, sql)
      expect(e.detail ?? '', sql).toMatch(/every relation of the schema hr/)
    }
    // REINDEX SCHEMA cannot run in a transaction block: refused before it reaches the server.
    const e = (await c.query('reindex schema hr').catch((x: Error) => x)) as Error & {code?: string}
    expect(e.code, e.message).toBe('42501')
    await hrIntact()
    await c.end()
  })

  it('refuses dropping what columns of tables it does not name depend on (CASCADE, DROP OWNED)', async () => {
    const c = await open.client()
    for (const sql of [
      'drop domain public.amount cascade',
      'drop type public.contact cascade',
      'alter type public.contact drop attribute phone cascade',
      'drop table scratch.card cascade',
      'drop schema scratch cascade',
      'drop owned by current_user',
    ]) {
      await refused(c, sql)
    }
    await hrIntact()
    await c.end()
  })

  it('does not let an allow rule on scratch.* carry a DROP … CASCADE that reaches hr', async () => {
    const c = await narrow.client()
    await refused(c, 'drop table scratch.card cascade')
    await refused(c, 'drop table scratch.tmp, scratch.card cascade')
    await hrIntact()
    await c.end()
  })

  it('lets the same statements act on schemas and objects the rules allow', async () => {
    const c = await open.client()
    await c.query('create schema other')
    await c.query('alter schema other rename to other2')
    await c.query('grant select on all tables in schema other2 to public')
    await c.query('alter default privileges in schema other2 grant select on tables to public')
    await c.query('drop schema other2')
    await c.query('create domain public.unused as int')
    await c.query('drop domain public.unused')
    await c.end()
    const n = await narrow.client()
    await n.query('drop table scratch.tmp')
    await n.end()
    await hrIntact()
  })
})
