import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedByRule} from './unfiltered.js'


/**
 * Routes from a write to a trigger that the trigger lookup did not follow. Before, relations more
 * than 8 levels behind the one written (views over views, partitions of partitions, a chain of
 * cascading foreign keys) were left out of the lookup without a word: `DELETE FROM v9 WHERE id = 1`
 * on the ninth view over a table whose trigger deletes every account emptied accounts. And a
 * trigger's WHEN condition, which runs on every row before the trigger, was not looked at:
 * `WHEN (wipe())` deleted every account, `WHEN (set_config(…))` changed the session's settings.
 * Nor were a rule's actions on an INSERT, which has no WHERE they could take as a condition:
 * `ON INSERT TO t DO ALSO DELETE FROM accounts` emptied accounts on `INSERT INTO t VALUES (1)`.
 * Nor a user's function in a default, generated column, check, index expression or domain check:
 * one declared IMMUTABLE that calls a volatile one deleting every account ran on every insert.
 */
describe('routes from a write to the triggers it fires', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const accounts = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})
  const refused = refusedByRule

  beforeAll(async () => {
    db = await createTestDatabase()
    const chain = (make: (i: number) => string) => Array.from({length: 9}, (_, i) => make(i + 1)).join('\n')
    await direct((c) =>
      c.query(`
        create table accounts (id int primary key, balance int);
        insert into accounts select g, 100 from generate_series(1, 10) g;
        create function wipe_accounts() returns trigger language plpgsql as $$ begin delete from accounts; return null; end $$;

        -- Nine views over a table.
        create table v0 (id int);
        insert into v0 values (1);
        create trigger v0_t after delete on v0 for each row execute function wipe_accounts();
        ${chain((i) => `create view v${i} as select * from v${i - 1};`)}

        -- Partitions nine levels down.
        create table p0 (id int) partition by range (id);
        ${chain((i) => (i < 9 ? `create table p${i} partition of p${i - 1} for values from (0) to (100) partition by range (id);` : `create table p9 partition of p8 for values from (0) to (100);`))}
        create trigger p9_t after insert on p9 for each row execute function wipe_accounts();

        -- Nine tables, each deleted with the one before by a cascading key.
        create table k0 (id int primary key);
        insert into k0 values (1);
        ${chain((i) => `create table k${i} (id int primary key references k${i - 1} on delete cascade); insert into k${i} values (1);`)}
        create trigger k9_t after delete on k9 for each row execute function wipe_accounts();

        -- A WHEN condition runs before its trigger, on every row: what it calls is the write's too.
        create function noop() returns trigger language plpgsql as $$ begin return new; end $$;
        create function wipe_bool() returns boolean language plpgsql as $$ begin delete from accounts; return true; end $$;
        create function wipe_op(int, int) returns boolean language plpgsql as $$ begin update accounts set balance = 0; return true; end $$;
        create operator === (function = wipe_op, leftarg = int, rightarg = int);
        create table when_f (id int);
        create trigger when_f_t before insert on when_f for each row when (wipe_bool()) execute function noop();
        create table when_op (id int);
        create trigger when_op_t before insert on when_op for each row when (new.id === 1) execute function noop();
        create table when_set (id int);
        create trigger when_set_t before insert on when_set for each row when (set_config('search_path', 'pg_catalog', false) <> '') execute function noop();
        create function is_even(int) returns boolean language sql immutable as 'select $1 % 2 = 0';
        create table when_ok (id int, note text);
        create trigger when_ok_t before update on when_ok for each row when (old.* is distinct from new.* and is_even(new.id)) execute function noop();
        insert into when_ok values (2, 'a');

        -- A rule on a write runs its actions with it: an INSERT has no WHERE the actions could inherit.
        create table rule_also (id int);
        create rule rule_also_r as on insert to rule_also do also delete from accounts;
        create table rule_instead (id int);
        create rule rule_instead_r as on insert to rule_instead do instead update accounts set balance = 0 where accounts.id = accounts.id;
        create table rule_sink (id int);
        create view rule_v as select id from rule_sink;
        create rule rule_v_r as on insert to rule_v do instead (insert into rule_sink values (new.id); delete from accounts where true);
        -- The usual rule of an insertable view keeps running.
        create table base (id int);
        create view base_v as select id from base;
        create rule base_v_r as on insert to base_v do instead insert into base values (new.id);

        -- What else a write runs: a function declared IMMUTABLE may call a volatile one that deletes.
        create function wipe_v() returns void language plpgsql as $$ begin delete from accounts; end $$;
        create function wipe_int(int) returns int language plpgsql immutable as $$ begin perform wipe_v(); return $1; end $$;
        create function wipe_ok(int) returns boolean language plpgsql immutable as $$ begin perform wipe_v(); return true; end $$;
        create table code_default (id int, x int default wipe_int(1));
        create table code_generated (id int, x int generated always as (wipe_int(id)) stored);
        create table code_check (id int check (wipe_ok(id)));
        create table code_index (id int);
        create index on code_index (wipe_int(id));
        create domain wiping_int as int check (wipe_ok(value));
        create table code_domain (id wiping_int);
        create table code_updated (id int, x int default wipe_int(1));
        insert into code_updated values (1, 1);
        -- Ordinary ones keep running: a built-in default, a user's function that computes.
        create function shout(text) returns text language sql immutable as 'select upper($1)';
        create table code_ok (id serial, note text default shout('x') check (is_even(length(note) + 1)), at timestamptz default now());

        -- A tree whose cascading key refers to its own table, with an ordinary audit trigger.
        create table tree (id int primary key, parent int references tree on delete cascade);
        insert into tree values (1, null), (2, 1), (3, 2);
        create table tree_log (id int);
        create function log_tree() returns trigger language plpgsql as $$ begin insert into tree_log values (old.id); return old; end $$;
        create trigger tree_t after delete on tree for each row execute function log_tree();
      `),
    )
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  it('holds a write that reaches relations deeper than the lookup follows, whose triggers it cannot see', async () => {
    const c = await t.client()
    for (const sql of ['delete from v9 where id = 1', 'insert into p0 values (1)', 'delete from k0 where id = 1']) {
      const e = await refused(c, sql, /rule default\.volatile-function/)
      expect(e.detail, sql).toMatch(/a write to public\.\w+ reaches public\.\w+ through more than 8 views, rules, partitions or cascading foreign keys/)
    }
    expect(await accounts()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('judges what a trigger\'s WHEN condition calls as the write\'s own', async () => {
    const c = await t.client()
    expect((await refused(c, 'insert into when_f values (1)', /rule default\.no-unfiltered-delete/)).detail).toMatch(/run by the WHEN condition of the trigger when_f_t on public\.when_f \(public\.wipe_bool\)/)
    expect((await refused(c, 'insert into when_op values (1)', /rule default\.no-unfiltered-update/)).detail).toMatch(/when_op_t .*public\.wipe_op/)
    expect((await refused(c, 'insert into when_set values (1)', /rule default\.volatile-function/)).detail).toMatch(/when_set_t on public\.when_set runs pg_catalog\.set_config, which is a volatile built-in function/)
    expect(await accounts()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('judges the functions a write runs through defaults, generated columns, constraints, index expressions and domains by their bodies', async () => {
    const c = await t.client()
    for (const sql of [
      'insert into code_default (id) values (1)',
      'insert into code_generated (id) values (1)',
      'insert into code_check values (1)',
      'insert into code_index values (1)',
      'insert into code_domain values (1)',
      'update code_updated set x = default where id = 1',
    ]) {
      const e = await refused(c, sql, /rule default\.volatile-function/)
      expect(e.detail, sql).toMatch(/public\.wipe_v .*deletes every row of accounts/)
    }
    expect(await accounts()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('judges the actions of a rule on an INSERT as the write\'s own', async () => {
    const c = await t.client()
    expect((await refused(c, 'insert into rule_also values (1)', /rule default\.no-unfiltered-delete/)).detail).toMatch(/DELETE run by the rule rule_also_r on public\.rule_also/)
    expect((await refused(c, 'insert into public.rule_instead select 1', /rule default\.no-unfiltered-update/)).detail).toMatch(/UPDATE run by the rule rule_instead_r on public\.rule_instead/)
    expect((await refused(c, 'insert into rule_v values (1)', /rule default\.no-unfiltered-delete/)).detail).toMatch(/rule_v_r/)
    expect(await accounts()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs a write to a table whose cascading key refers to itself, or whose trigger\'s WHEN condition only computes, or through an insertable view\'s rule', async () => {
    const c = await t.client()
    await c.query('insert into base_v values (4)')
    await c.query('insert into code_ok default values')
    expect(await direct(async (d) => (await d.query('select note from code_ok')).rows)).toEqual([{note: 'X'}])
    expect(await direct(async (d) => (await d.query('select array_agg(id) ids from base')).rows[0])).toEqual({ids: [4]})
    await c.query("update when_ok set note = 'b' where id = 2")
    await c.query('delete from tree where id = 2')
    expect(await direct(async (d) => (await d.query('select array_agg(id order by id) ids from tree_log')).rows[0])).toEqual({ids: [2, 3]})
    await c.end()
  })
})
