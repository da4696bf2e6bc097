import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import type {Refusal} from './unfiltered.js'
import {expectEachRefused, wipedAccounts} from './wiping-code.js'

/**
 * A domain's check (or default) runs wherever a value is converted into it, also when the domain
 * is a part of the type written rather than the type itself: a domain over it, an array or a
 * domain over an array of it, a composite type with a field of it, a range over it (range_in reads
 * each bound as the subtype) and that range's multirange. And a column of a domain type that the
 * INSERT leaves out takes the domain's default. Before, what a write runs was read one level deep
 * (the checks of the column's own type only, no domain's default) and a cast followed no range, so
 * with the default pack `insert into t_arr values (1, '{5}')`, `insert into t_ddef (id) values
 * (1)` and even `select '[1,5)'::wr` ran wipe(), which deletes every account, with no reviewer.
 */
describe('code a write or a cast runs through the parts of a type', () => {
  const {db, t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    create function wipe() returns int language plpgsql as $$ begin delete from accounts; return 1; end $$;
    -- Declared IMMUTABLE: its body calls one that deletes every account.
    create function quiet(int) returns int language plpgsql immutable as $$ begin perform wipe(); return $1; end $$;
    create domain wiping_int as int check (quiet(value) > 0);
    create domain over_domain as wiping_int;
    create domain over_array as wiping_int[];
    create type comp as (x wiping_int);
    create type wr as range (subtype = wiping_int);
    create domain wiping_default as int default wipe();
    create domain inherits_default as wiping_default;
    -- A domain whose check converts its value into the wiping one.
    create domain converting as int check ((value::wiping_int) > 0);
    create table t_converting (id int, x converting);
    create table t_over (id int, x over_domain);
    create table t_arr (id int, x wiping_int[]);
    create table t_over_arr (id int, x over_array);
    create table t_comp (id int, x comp);
    create table t_range (id int, x wr);
    create table t_multi (id int, x wr_multirange);
    create table t_default (id int, x wiping_default);
    create table t_inherited (id int, x inherits_default);
    -- A table's row type as a column's type: its columns' domains are converted into too.
    create table t_row (id int, x t_over);
  `)
  const {accounts, refill} = wipedAccounts(() => db.url)

  const writes: Record<string, string> = {
    'a domain over the domain': 'insert into t_over values (1, 5)',
    'an array of the domain': "insert into t_arr values (1, '{5}')",
    'an array of the domain, by ARRAY[]': 'update t_arr set x = array[5] where id = 1',
    'an array of the domain, by COPY': 'copy t_arr from stdin',
    'an array of the domain, by MERGE': "merge into t_arr a using (select 1 as id) s on a.id = s.id when not matched then insert values (1, '{5}')",
    'a domain over an array of the domain': "insert into t_over_arr values (1, '{5}')",
    'a composite with a field of the domain': "insert into t_comp values (1, '(5)')",
    'a range over the domain': "insert into t_range values (1, '[1,5)')",
    'a multirange of that range': "insert into t_multi values (1, '{[1,5)}')",
    "another table's row type": "insert into t_row values (1, '(1,5)')",
    "the domain's default, column left out": 'insert into t_default (id) values (1)',
    "the domain's default, DEFAULT": 'update t_default set x = default where id = 1',
    "a base domain's default": 'insert into t_inherited (id) values (1)',
    'a cast to a range over the domain': "select '[1,5)'::wr",
    "a domain whose check converts into the domain": 'insert into t_converting values (1, 5)',
    'a cast to that domain': 'select 5::converting',
    'a cast to its multirange': "select '{[1,5)}'::wr_multirange",
  }

  /** Runs `sql` as a simple query or through Parse/Bind/Execute; the refusal. */
  const refused = async (c: pg.Client, sql: string, extended: boolean): Promise<Refusal> => {
    const e = (await (extended ? c.query({name: `s${Math.random().toString(36).slice(2)}`, text: sql}) : c.query(sql)).catch((x: Error) => x)) as Refusal
    expect(e, sql).toBeInstanceOf(Error)
    return e
  }

  it('refuses each, as a simple query and in the extended protocol, and no account is deleted', async () => {
    await expectEachRefused(t, writes, {accounts, refill})
  })

  it('names what runs the code', async () => {
    const c = await t.client()
    const e = await refused(c, 'insert into t_inherited (id) values (1)', false)
    expect(e.detail).toMatch(/the default of a column's domain of public\.t_inherited/)
    const f = await refused(c, "insert into t_arr values (1, '{5}')", false)
    expect(f.detail).toMatch(/public\.wipe/)
    await c.end()
  })

  it('still lets writes and casts of types whose parts run no user code through', async () => {
    await direct((c) =>
      c.query(`
        create domain plain_int as int check (value > 0) default 7;
        create domain plain_over as plain_int;
        create type plain_range as range (subtype = int8);
        create table t_plain (id int, a plain_over, b plain_int[], r plain_range);
      `),
    )
    const c = await t.client()
    await c.query("insert into t_plain (id, b, r) values (1, '{5}', '[1,5)')")
    expect((await c.query('select a from t_plain')).rows).toEqual([{a: 7}])
    expect((await c.query("select '[1,5)'::plain_range::text r")).rows).toEqual([{r: '[1,5)'}])
    await c.end()
  })
})
