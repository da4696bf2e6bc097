import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import type {Refusal} from './unfiltered.js'
import {wipedAccounts, WIPING_CODE} from './wiping-code.js'

/**
 * ALTER TABLE that runs the code stored on a table over its rows, which the statement does not
 * show: a rewrite (SET UNLOGGED, a column's new type, a column added with a volatile default)
 * rebuilds every index, evaluating index expressions; VALIDATE CONSTRAINT runs a stored check (of
 * a table, or of a domain on every column of it);
 * ATTACH PARTITION builds the parent's indexes on the attached table; CREATE TABLE … PARTITION OF
 * checks the default partition's rows against the new bound, evaluating the parent's key. And ALTER COLUMN … TYPE reads
 * the table's checks and index expressions again by name, so `check (length(x) > 0)` on a text
 * column calls a user's public.length(int) once x is an integer, on the rows there and on every
 * later write (in the same transaction too, where dbgate still reads the committed catalog).
 * Before, with DDL allowed by a rule (or approved by a reviewer shown only `alter table r_idx set
 * unlogged`), each ran a function that deletes every account.
 */
describe('DDL that runs the code stored on a table over its rows', () => {
  // Qualified: PostgreSQL runs index expressions of a rebuild with search_path set to pg_catalog.
  const {db, t, direct} = seededTunnel([
    `
      ${WIPING_CODE}
      create table r_idx (id int, y int);
      insert into r_idx values (1, 1);
      create index on r_idx ((public.quiet(id)));
      create table r_check (id int, y int);
      insert into r_check values (1, 1);
      alter table r_check add constraint c check (public.quiet(id) > 0) not valid;
      create table parted (id int, y int) partition by range (id);
      create index on parted ((public.quiet(id)));
      create domain later_checked as int;
      create table t_later (id int, x later_checked);
      insert into t_later values (1, 1);
      alter domain later_checked add constraint quiet_check check (public.quiet(value) > 0) not valid;
      create table to_attach (id int, y int);
      -- Partitioned by a key that calls quiet, with rows in its default partition.
      create table keyed (id int, y int) partition by range (public.quiet(id));
      create table keyed_default partition of keyed default;
      insert into keyed values (1, 1);
      insert into to_attach values (1, 1);
      -- Checks and an index expression over a text column that call the built-in length(text).
      create table r_len (id int, x text check (length(x) > 0));
      insert into r_len values (1, '5');
      create table e_len (id int, x text check (length(x) > 0));
      create table e_len_idx (id int, x text);
      create index on e_len_idx (length(x));
      -- Made last: the inserts above would have run it.
      create function public.length(int) returns int language plpgsql immutable as $$ begin perform public.wipe(); return $1; end $$;
    `,
    'delete from accounts',
  ], ['rules:', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n'))
  const {accounts, refill} = wipedAccounts(() => db.url)
  const session = async (fn: (c: pg.Client) => Promise<void>) => {
    const c = await t.client()
    try {
      await fn(c)
    } finally {
      await c.end()
    }
  }
  const refusedBy = async (c: pg.Client, sql: string, extended = false): Promise<Refusal> => {
    const e = (await (extended ? c.query({name: 'x', text: sql}) : c.query(sql)).catch((x: Error) => x)) as Refusal
    expect(e, sql).toBeInstanceOf(Error)
    expect(e.code, sql).toBe('42501')
    expect(e.message, sql).toMatch(/rule default\.(volatile-function|no-unfiltered-delete|unsettled-catalog-approval)/)
    return e
  }


  it('judges a rewrite, a validation, an attach and a new partition by what a write to the table runs', async () => {
    const alters = [
      'alter table r_idx set unlogged',
      'alter table r_idx alter column y type bigint',
      'alter table r_idx add column z float8 default random()',
      'alter table r_idx add column g int generated always as (y + 1) stored',
      'alter table r_check validate constraint c',
      'alter domain later_checked validate constraint quiet_check',
      'alter domain public.later_checked validate constraint quiet_check',
      'alter table parted attach partition to_attach for values from (0) to (100)',
      'create table keyed_new partition of keyed for values from (100) to (200)',
      'alter table r_len alter column x type int using x::int',
    ]
    for (const extended of [false, true]) {
      for (const sql of alters) {
        await refill()
        await session(async (c) => void (await refusedBy(c, sql, extended)))
        expect(await accounts(), sql).toBe(10)
      }
    }
  })

  it('judges a column\'s new type by what its checks and index expressions may then call, on an empty table too', async () => {
    const routes: [string, string][] = [
      ['alter table e_len alter column x type int using x::int', 'insert into e_len values (1, 5)'],
      ['alter table e_len_idx alter column x type int using x::int', 'insert into e_len_idx values (1, 5)'],
    ]
    for (const [alter, write] of routes) {
      await refill()
      await session(async (c) => {
        await c.query('begin')
        await refusedBy(c, alter)
        await c.query('rollback')
      })
      await session(async (c) => void (await refusedBy(c, `${alter}; ${write}`)))
      await session(async (c) => void (await refusedBy(c, alter, true)))
      expect(await accounts(), write).toBe(10)
    }
  })

  it('still runs plain alters, and a migration that adds a column and fills it', async () => {
    await direct((c) => c.query("create table plain (id int primary key, x text check (x <> '')); insert into plain values (1, 'a')"))
    await session(async (c) => {
      await c.query('begin')
      await c.query('alter table plain add column n int not null default 0')
      await c.query('alter table plain alter column x type varchar(50)')
      await c.query('update plain set n = 1 where id = 1')
      await c.query('commit')
      await c.query('alter table plain set unlogged')
      expect((await c.query('select id, x, n from plain')).rows).toEqual([{id: 1, x: 'a', n: 1}])
    })
  })
})
