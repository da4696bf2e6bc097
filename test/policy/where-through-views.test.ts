import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * A WHERE compares the target's rows with values read from a relation of another name, or from
 * a user's function. The proof took these for other rows; but a view over the target, a view on
 * that view, the target's parent (whose rows include a partition's or an inheritance child's), a
 * CTE or subquery that renames the target's column, or a function whose body reads the target
 * (SQL or PL/pgSQL, directly, through a view or through another function) gives every row's own
 * value, and each of these emptied or rewrote the whole table through the tunnel as "filtered".
 */
describe('a WHERE against values read through views, parents and functions over the target', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const state = () =>
    direct(async (c) => {
      const a = (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number}
      const l = (await c.query('select count(*)::int n from ledger_low')).rows[0] as {n: number}
      const i = (await c.query('select count(*)::int n from only child_items')).rows[0] as {n: number}
      return {accounts: a, ledgerLow: l.n, childItems: i.n}
    })
  const untouched = {accounts: {n: 10, s: 1000}, ledgerLow: 10, childItems: 10}

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create table accounts (id int primary key, parent int, balance int);
        insert into accounts select g, g - 1, 100 from generate_series(1, 10) g;
        create view accounts_v as select * from accounts;
        create view accounts_keys as select id as k from accounts_v;
        create table closed (id int);
        insert into closed values (3);
        create view closed_v as select id from closed;
        create function all_ids() returns setof int language sql stable as $$ select id from accounts $$;
        create function nested_ids() returns setof int language sql stable as $$ select * from all_ids() $$;
        create function ids_via_view() returns int[] language sql stable as $$ select array_agg(k) from accounts_keys $$;
        create function lowest() returns int language plpgsql stable as $$ begin return (select min(id) from accounts); end $$;
        create function closed_ids() returns setof int language sql stable as $$ select id from closed $$;
        create function current_account() returns int language sql stable as $$ select 4 $$;
        create table ledger (id int, amount int) partition by range (id);
        create table ledger_low partition of ledger for values from (0) to (100);
        create table ledger_high partition of ledger for values from (100) to (1000);
        insert into ledger select g, 1 from generate_series(1, 10) g;
        insert into ledger select g, 1 from generate_series(100, 109) g;
        create table stamped (id int primary key, touched timestamptz);
        insert into stamped select generate_series(1, 3);
        create function touch() returns trigger language plpgsql as $$ begin new.touched := now(); return new; end $$;
        create trigger stamped_touch before update on stamped for each row execute function touch();
        create table base_items (id int);
        create table child_items () inherits (base_items);
        insert into child_items select generate_series(1, 10);
      `),
    )
    // DDL allowed, so a view can be made inside a transaction (the default holds DDL for a reviewer).
    t = await openPipelineTunnel(db, 'rules:\n  - id: views\n    match: {class: ddl}\n    action: allow')
  })
  afterAll(() => t.close())

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered, as DELETE, UPDATE, USING, MERGE and ON CONFLICT, and says what the WHERE reads', async () => {
    const c = await t.client()
    const wheres = [
      'id in (select v.id from accounts_v v)',
      'id in (select v.k from accounts_keys v)',
      'id = any(array(select v.k from accounts_keys v))',
      'id in (select all_ids())',
      'id in (select x.x from all_ids() x)',
      'id = any(array(select nested_ids()))',
      'id = any(ids_via_view())',
      'id >= lowest()',
      'id in (select c.k from (select a2.id as k from accounts a2) c)',
      'exists (select 1 from accounts_v v where v.id = accounts.id)',
    ]
    for (const where of wheres) {
      for (const sql of [`delete from accounts where ${where}`, `update accounts set balance = 0 where ${where}`]) await refused(c, sql)
    }
    const detail = await refused(c, 'delete from accounts where id in (select v.id from accounts_v v)')
    expect(detail.detail).toMatch(/accounts_v, which holds rows of accounts/)
    expect((await refused(c, 'update accounts set balance = 0 where id >= lowest()')).detail).toMatch(/lowest, whose body \(public\.lowest\) reads accounts/)
    for (const sql of [
      'with c as (select id as k from accounts) delete from accounts where id in (select c.k from c)',
      'with c as (select * from accounts_v) delete from accounts where id in (select c.id from c)',
      'delete from accounts a using accounts_v v where a.id = v.id',
      'update accounts a set balance = 0 from accounts_keys v where a.id = v.k',
      'merge into accounts a using accounts_v v on a.id = v.id when matched then delete',
      'merge into accounts a using (select all_ids() as id) v on a.id = v.id when matched then update set balance = 0',
      'insert into accounts select * from accounts_v on conflict (id) do update set balance = 0',
      'delete from ledger_low where id in (select l.id from ledger l)',
      'update ledger_low set amount = 0 where id in (select l.id from ledger l)',
      'delete from child_items where id in (select b.id from base_items b)',
    ]) {
      await refused(c, sql)
    }
    expect(await state()).toEqual(untouched)
    await c.end()
  })

  it('refuses them after a view made in the same, uncommitted transaction, and through a temporary view', async () => {
    const c = await t.client()
    await c.query('begin')
    await c.query('create view fresh_v as select * from accounts')
    const e = await refused(c, 'delete from accounts where id in (select f.id from fresh_v f)')
    expect(e.detail).toMatch(/not committed/)
    await c.query('rollback').catch(() => undefined)
    // A temporary view, committed: only this session sees it by name, the catalog sees what is behind it.
    await c.query('create temp view mine_v as select * from accounts')
    await refused(c, 'delete from accounts where id in (select m.id from mine_v m)')
    await refused(c, 'delete from accounts where id in (select m.id from pg_temp.mine_v m)')
    expect(await state()).toEqual(untouched)
    await c.end()
  })

  it('still runs conditions on views and functions over other tables, and filtered reads of the target', async () => {
    const c = await t.client()
    expect((await c.query('update accounts set balance = balance + 1 where id in (select v.id from closed_v v)')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id in (select closed_ids())')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id = current_account()')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id in (select v.id from accounts_v v where v.id = 5)')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id = $1 and id in (select v.id from accounts_v v)', [6])).rowCount).toBe(1)
    expect((await c.query('delete from ledger where id in (select h.id from ledger_high h where h.id > 107)')).rowCount).toBe(2)
    // A table whose trigger runs code: each write leaves the catalog unsettled, and the next
    // UPDATE through the extended protocol (an ORM's) still runs.
    for (const id of [1, 2, 3]) expect((await c.query('update stamped set touched = null where id = $1', [id])).rowCount).toBe(1)
    expect((await c.query('update stamped set touched = null where id = $1 and id in (select s.id from stamped s where s.id = $1)', [1])).rowCount).toBe(1)
    expect((await state()).accounts).toEqual({n: 10, s: 1005})
    await c.end()
  })
})
