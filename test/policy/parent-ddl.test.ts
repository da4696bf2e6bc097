import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * DDL on a parent that removes its partitions' or children's data.
 *
 * `DROP TABLE public.payroll` drops every partition of a partitioned table with it (no CASCADE
 * needed), and `ALTER TABLE public.people DROP COLUMN salary` drops the inherited column from every
 * child. With `tables: ["hr.*"]` denied and DDL allowed, both were DDL of a public table only, and
 * removed hr.payroll_hr and hr.staff.salary with their values.
 */
describe('DDL on a parent reaches its partitions and children', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const RULES = ['rules:', '  - id: no-hr', '    match: {tables: ["hr.*"]}', '    action: deny', '  - id: migrations', '    match: {class: ddl}', '    action: allow'].join('\n')

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr;
        create table public.payroll (dept text, person text, amount int) partition by list (dept);
        create table public.payroll_ops partition of public.payroll for values in ('ops');
        create table hr.payroll_hr partition of public.payroll for values in ('hr');
        insert into public.payroll values ('hr', 'alice', 9000), ('ops', 'bob', 5000);
        create table public.people (id int, salary int, note text);
        create table hr.staff () inherits (public.people);
        insert into hr.staff values (1, 9000, 'x');
        create table public.plain (id int, note text);
      `),
    )
    t = await openPipelineTunnel(db, RULES)
  }, 60_000)
  afterAll(() => t?.close())

  const hrIntact = async () => {
    const payroll = await direct(async (d) => (await d.query('select person, amount from hr.payroll_hr')).rows)
    expect(payroll).toEqual([{person: 'alice', amount: 9000}])
    const staff = await direct(async (d) => (await d.query('select id, salary from hr.staff')).rows)
    expect(staff).toEqual([{id: 1, salary: 9000}])
  }

  it('refuses dropping a parent or a parent column that hr partitions and children hold', async () => {
    const c = await t.client()
    const attacks = [
      'drop table public.payroll',
      'DROP TABLE IF EXISTS Payroll',
      'drop table public.plain, public.payroll',
      'alter table public.payroll drop column amount',
      'alter table public.people drop column salary',
      'alter table if exists people drop column if exists salary, add column z int',
      'alter table public.people* drop column salary',
    ]
    for (const sql of attacks) {
      for (const text of [sql, `begin; ${sql}; rollback`]) {
        const e = (await c.query(text).catch((x: Error) => x)) as Error & {code?: string; detail?: string}
        await c.query('rollback').catch(() => {})
        expect(e, text).toBeInstanceOf(Error)
        expect(e.code, `${text}: ${e.message}`).toBe('42501')
        expect(e.message, text).toMatch(/no-hr/)
        expect(e.detail ?? '', text).toMatch(/hr\.(payroll_hr|staff), through the (partitioned )?table public\.(payroll|people)/)
      }
    }
    await hrIntact()
    await c.end()
  })

  it('lets DDL that leaves the children alone run', async () => {
    const c = await t.client()
    await c.query('begin')
    await c.query('alter table only public.people drop column note')
    await c.query('alter table public.plain drop column note')
    await c.query('rollback')
    // A DROP changes the catalog: in the same transaction a later one could not be judged by it.
    await c.query('drop table public.payroll_ops')
    await c.query('drop table public.plain')
    await c.end()
    await hrIntact()
  })
})
