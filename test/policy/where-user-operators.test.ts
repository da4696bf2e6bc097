import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof read `=`, `<>`, `IN`, `IS DISTINCT FROM`, `= ANY` and the like as the built-in
 * comparisons. But PostgreSQL picks a user's operator of the same symbol when it matches the
 * argument types exactly and the built-in one would need a cast (`=(int4, numeric)` for
 * `id = 5.0`), and `OPERATOR(public.=)` names one outright; such an operator may be true for every
 * row, and a user's `+` may compute any constant. Each of these rewrote the whole table through the tunnel as "filtered".
 */
describe('a WHERE whose comparisons a user-defined operator runs', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    insert into accounts select g, 100 from generate_series(1, 10) g;
    create table closed (id int);
    insert into closed values (3);
    create function always(int, numeric) returns bool language sql immutable as $$ select true $$;
    create operator public.= (leftarg = int, rightarg = numeric, function = always);
    create operator public.<> (leftarg = int, rightarg = numeric, function = always);
    create function thousand(int, numeric) returns numeric language sql immutable as $$ select 1000::numeric $$;
    create operator public.+ (leftarg = int, rightarg = numeric, function = thousand);
  `)
  const balances = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered, as DELETE, UPDATE, MERGE and ON CONFLICT, and says which operator', async () => {
    const c = await t.client()
    const wheres = [
      'id = 5.0',
      'id = 5::numeric',
      '5.0 = id',
      'id in (5.0, 6.0)',
      'id not in (5.0)',
      'id is not distinct from 5.0',
      'not (id is distinct from 5.0)',
      'id = any(array[5.0])',
      "id = any('{5.0}'::numeric[])",
      'id in (select 5.0)',
      'id = any(select c.id::numeric from closed c)',
      'exists (select 1 from closed c where accounts.id = c.id::numeric)',
      'id operator(public.=) 5',
      'id operator(public.=) 5.0 and id operator(public.<>) 6.0',
      '1 = 2.0',
      'id = 5.0 or 1 = 2.0',
      // Constant arithmetic a user's + computes: 1000 both times, not 1 and 1.
      'id < 1 + 0.0 or id > 0 + 1.0',
    ]
    for (const where of wheres) {
      for (const sql of [`delete from accounts where ${where}`, `update accounts set balance = 0 where ${where}`]) await refused(c, sql)
    }
    expect((await refused(c, 'update accounts set balance = 0 where id = 5.0')).detail).toMatch(/operator =, which this database also defines as public\.=.*OPERATOR\(pg_catalog\.=\)/)
    for (const sql of [
      'merge into accounts a using closed c on a.id = c.id::numeric when matched then update set balance = 0',
      'merge into accounts a using closed c on a.id = c.id when matched and a.id <> 3.0 then delete',
      'merge into accounts a using (select 1) s on true when not matched by source and a.id <> 3.0 then delete',
      'insert into accounts select * from accounts on conflict (id) do update set balance = 0 where accounts.id = 5.0',
    ]) {
      await refused(c, sql)
    }
    expect(await balances()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs comparisons written with the built-in operator, and those that need no operator', async () => {
    const c = await t.client()
    expect((await c.query('update accounts set balance = balance + 1 where id operator(pg_catalog.=) 5')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id operator(pg_catalog.=) 5.0')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where balance is null or id operator(pg_catalog.=) any(array[6, 7])')).rowCount).toBe(2)
    expect(await balances()).toEqual({n: 10, s: 1004})
    await c.end()
  })
})
