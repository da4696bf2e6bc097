import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * DDL that reads the rows of a table, judged as the read it also is.
 *
 * A foreign key reads the table it references: its validation scans it, and every write to the
 * referencing table asks it whether a key is there. With reads of hr.* denied and DDL allowed,
 * `CREATE TABLE public.probe (x int REFERENCES hr.salaries (id))` was DDL only, and each
 * `INSERT INTO public.probe VALUES (n)` then said whether hr.salaries has the row n (and, on a
 * unique text column, whether a guessed name is in it).
 */
describe('DDL that reads a table is a read of it', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const RULES = ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n')

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr;
        create table hr.salaries (id int primary key, person text unique);
        insert into hr.salaries values (1, 'alice'), (2, 'bob');
        create table public.teams (id int primary key);
        create table public.q (id int, x int, p text);
      `),
    )
    t = await openPipelineTunnel(db, RULES)
  }, 60_000)
  afterAll(() => t?.close())

  it('refuses every way of making one into a denied table, alone, in a transaction or beside other DDL', async () => {
    const c = await t.client()
    const attacks = [
      'create table public.p1 (x int references hr.salaries (id))',
      'create table public.p2 (x int, foreign key (x) references hr.salaries (id))',
      'create table public.p3 (p text references hr.salaries (person) on delete cascade)',
      'create table public.p4 (x int references hr.salaries)',
      'create table public.p5 (x int constraint k references hr.salaries (id) match full deferrable initially deferred)',
      'alter table public.q add foreign key (x) references hr.salaries (id)',
      'alter table public.q add constraint k foreign key (p) references hr.salaries (person) not valid',
      'alter table public.q add column y int references hr.salaries (id)',
      'alter table public.q add column z int, add constraint k2 foreign key (x) references hr.salaries (id)',
      'create table public.p6 (id int primary key); alter table public.p6 add foreign key (id) references hr.salaries (id)',
    ]
    for (const sql of attacks) {
      for (const text of [sql, `begin; ${sql}; commit`]) {
        const e = (await c.query(text).catch((x: Error) => x)) as Error & {code?: string}
        expect(e, text).toBeInstanceOf(Error)
        expect(e.code, text).toBe('42501')
        expect(e.message, text).toMatch(/no-hr-reads/)
        await c.query('rollback').catch(() => {})
      }
    }
    const made = await direct(async (d) => (await d.query("select count(*)::int n from pg_constraint where contype = 'f' and confrelid = 'hr.salaries'::regclass")).rows[0].n as number)
    expect(made).toBe(0)
    const tables = await direct(async (d) => (await d.query("select count(*)::int n from pg_class where relname ~ '^p[0-9]$'")).rows[0].n as number)
    expect(tables).toBe(0)
    await c.end()
  })

  it('lets a foreign key into a table the rules allow be made', async () => {
    const c = await t.client()
    await c.query('create table public.members (team int references public.teams (id), x int)')
    await c.query('alter table public.members add foreign key (x) references public.teams (id)')
    const n = await direct(async (d) => (await d.query("select count(*)::int n from pg_constraint where contype = 'f' and conrelid = 'public.members'::regclass")).rows[0].n as number)
    expect(n).toBe(2)
    await c.end()
  })

  it('refuses DDL on a denied table whose errors would show its rows: indexes, checks, new types, NOT NULL', async () => {
    // Each of these, run, fails on hr's first row with an error that shows it (or whether one
    // matches): `invalid input syntax for type integer: "alice"`, `Key (…)=(ali) is duplicated`.
    const c = await t.client()
    const attacks = [
      'create index on hr.salaries ((person::int))',
      'create unique index concurrently on hr.salaries (substr(person, 1, 3))',
      'create index on hr.salaries (id) where person::int > 0',
      'alter table hr.salaries add constraint c check (person::int > 0)',
      "alter table hr.salaries add check (person not like 'a%') not valid, validate constraint c",
      'alter table hr.salaries validate constraint salaries_pkey',
      'alter table hr.salaries alter column person type int using person::int',
      'alter table hr.salaries alter column person type varchar(2)',
      'alter table hr.salaries alter column person set not null',
      'alter table hr.salaries add column z int not null',
      'alter table hr.salaries add column g int generated always as (person::int) stored',
      'alter table hr.salaries add unique (person)',
    ]
    for (const sql of attacks) {
      for (const text of [sql, `begin; ${sql}; commit`]) {
        if (text.includes('concurrently') && text.startsWith('begin')) continue
        const e = (await c.query(text).catch((x: Error) => x)) as Error & {code?: string}
        expect(e, text).toBeInstanceOf(Error)
        expect(e.code, text).toBe('42501')
        expect(e.message, text).toMatch(/no-hr-reads/)
        expect(e.message, text).not.toMatch(/alice/)
        await c.query('rollback').catch(() => {})
      }
    }
    const indexes = await direct(async (d) => (await d.query("select count(*)::int n from pg_index where indrelid = 'hr.salaries'::regclass")).rows[0].n as number)
    expect(indexes).toBe(2)
    await c.end()
  })

  it('lets the same DDL run on a table the rules allow, and DDL that reads no row run on a denied one', async () => {
    const c = await t.client()
    await c.query('create index on public.q ((x + 1)) where x > 0')
    await c.query('alter table public.q add check (x > 0), alter column p set not null, alter column id type bigint')
    await c.query("comment on table hr.salaries is 'payroll'")
    await c.query('alter table hr.salaries alter column person set statistics 200')
    await c.end()
  })
})
