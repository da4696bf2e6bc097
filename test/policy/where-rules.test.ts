import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * PostgreSQL rewrites an UPDATE or DELETE of a relation that has rules on writes into the rules'
 * actions, and the statement's WHERE becomes a condition added to them, not a pick of the rows
 * they touch: `DELETE FROM v WHERE id = 5` with `ON DELETE TO v DO INSTEAD DELETE FROM accounts`
 * deleted every account through the tunnel as "filtered".
 */
describe('a filtered WHERE on a relation whose rules run other writes', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    insert into accounts select g, 100 from generate_series(1, 10) g;
    create view del_v as select * from accounts;
    create rule del_r as on delete to del_v do instead delete from accounts;
    create view upd_v as select * from accounts;
    create rule upd_r as on update to upd_v do instead update accounts set balance = new.balance;
    create table log_t (id int, note text);
    insert into log_t select g, 'x' from generate_series(1, 10) g;
    create rule log_r as on delete to log_t do also update accounts set balance = 0;
    create view plain_v as select * from accounts;
  `)
  const state = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered, and names the rules', async () => {
    const c = await t.client()
    for (const sql of [
      'delete from del_v where id = 5',
      'delete from public.del_v where id = 5',
      'delete from del_v d where d.id = 5 and d.balance is not null',
      'update upd_v set balance = 0 where id = 5',
      'update upd_v set balance = 0 where id in (select 5)',
      'delete from log_t where id = 5',
      'merge into del_v d using (select 5 as id) s on d.id = s.id when matched then delete',
    ]) {
      await refused(c, sql)
    }
    expect((await refused(c, 'delete from del_v where id = 5')).detail).toMatch(/del_v has rules on writes/)
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs filtered writes through views and tables without such rules', async () => {
    const c = await t.client()
    expect((await c.query('update plain_v set balance = balance + 1 where id = 5')).rowCount).toBe(1)
    expect((await c.query('delete from accounts where id = 6')).rowCount).toBe(1)
    expect(await state()).toEqual({n: 9, s: 901})
    await c.end()
  })
})
