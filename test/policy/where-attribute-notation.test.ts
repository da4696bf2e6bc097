import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * PostgreSQL reads `t.x` as the call `x(t)` when `t` has no column `x` (attribute notation). The
 * WHERE proof took every qualified name of the target for a column, so `t.to_json IS NOT NULL`
 * (a built-in function of the whole row, never null) or `t.flag` (a user's `flag(t)` that returns
 * true) counted as a condition a row could fail, and the whole table was rewritten through the
 * tunnel as "filtered".
 */
describe('a WHERE that calls a function of the row in attribute notation', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    insert into accounts select g, 100 from generate_series(1, 10) g;
    create table closed (id int);
    insert into closed values (3);
    create function flag(accounts) returns bool language sql immutable as $$ select true $$;
    create function tier(r accounts, k int default 0) returns int language sql immutable as $$ select 7 $$;
  `)
  const balances = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered, built-in and user functions, as DELETE, UPDATE, USING and MERGE', async () => {
    const c = await t.client()
    const wheres = [
      'id = 5 or accounts.to_json is not null',
      'accounts.to_jsonb is not null',
      'accounts.row_to_json is not null',
      'accounts.num_nonnulls > 0',
      'accounts.pg_column_size > 0',
      "accounts.quote_nullable <> 'NULL'",
      'accounts.hash_record is not null or id = 0',
      'public.accounts.to_json is not null',
      'id = 5 or exists (select 1 from closed c where c.id = 3 and accounts.to_jsonb is not null)',
      'accounts.flag',
      'accounts.flag = true',
      'id = 5 or accounts.flag is not false',
      'accounts.tier = 7',
    ]
    for (const where of wheres) {
      for (const sql of [`delete from accounts where ${where}`, `update accounts set balance = 0 where ${where}`]) await refused(c, sql)
    }
    expect((await refused(c, 'update accounts set balance = 0 where accounts.flag')).detail).toMatch(/flag after a table or alias, which may call the function public\.flag/)
    for (const sql of [
      'update accounts a set balance = 0 where a.to_json is not null',
      'delete from accounts a where a.flag',
      'delete from accounts a using closed c where a.to_json is not null and c.id = 3',
      'update accounts a set balance = 0 from closed c where a.tier = 7 and c.id is not null',
      'merge into accounts a using closed c on a.to_json is not null when matched then delete',
      'merge into accounts a using closed c on a.flag when matched then update set balance = 0',
      'merge into accounts a using closed c on a.id = c.id when not matched by source and a.to_json is not null then delete',
    ]) {
      await refused(c, sql)
    }
    expect(await balances()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs conditions on the columns the table has, qualified or not', async () => {
    const c = await t.client()
    expect((await c.query('update accounts set balance = balance + 1 where accounts.id = 5')).rowCount).toBe(1)
    expect((await c.query('update accounts a set balance = balance + 1 where a.id = 6 and a.balance is not null')).rowCount).toBe(1)
    expect((await c.query('delete from accounts a using closed c where a.id = c.id')).rowCount).toBe(1)
    expect(await balances()).toEqual({n: 9, s: 902})
    await c.end()
  })
})
