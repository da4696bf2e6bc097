import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import type {Refusal} from './unfiltered.js'

/**
 * The WHERE proof took a set of values for one value: an array parameter or subquery under ANY
 * or ALL, the partner rows of a correlated EXISTS, and the rows of a relation the statement joins
 * (USING, FROM). A row equal to "the" value looked left alone by `id <> ANY($1)`, `EXISTS (… WHERE
 * o.k <> t.id)` or `USING o WHERE t.id <> o.k`; but once the set holds two values every row has a
 * member it differs from, and `id < ANY(S) OR id > ANY(S)` compares with the largest and the
 * smallest member. Each of these rewrote every row through the tunnel as "filtered".
 */
describe('a WHERE that compares the row with a set as with one value', () => {
  const rows = 10
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, v int default 0);
    insert into accounts (id) select generate_series(1, ${rows});
    create table others (k int);
    insert into others values (1), (2);
  `)
  const touched = () => direct(async (c) => (await c.query('select sum(v)::int s from accounts')).rows[0].s as number)
  const keys = [1, 2]

  // [condition on accounts a, with `others o` joined when `using`, parameter values]
  const conditions: Array<{where: string; using?: true; values?: unknown[]}> = [
    {where: 'a.id <> any($1)', values: [keys]},
    {where: 'a.id <> any($1::int[])', values: [keys]},
    {where: 'a.id < any($1) or a.id > any($1)', values: [keys]},
    {where: 'a.id <> any(select o.k from others o)'},
    {where: 'a.id <> any(array(select o.k from others o))'},
    {where: 'a.id < any(select o.k from others o) or a.id > any(select o.k from others o)'},
    {where: 'not (a.id = all(select o.k from others o))'},
    {where: 'exists (select 1 from others o where o.k <> a.id)'},
    {where: 'exists (select 1 from others o where o.k < a.id) or exists (select 1 from others o where o.k > a.id)'},
    {where: 'a.id <> o.k', using: true},
    {where: 'not (a.id = o.k)', using: true},
    {where: 'a.id < o.k or a.id > o.k', using: true},
    {where: 'a.id is distinct from o.k', using: true},
    {where: 'a.id not in (o.k, o.k + 0)', using: true},
  ]
  const statements = ({where, using}: {where: string; using?: true}) =>
    using
      ? [`delete from accounts a using others o where ${where}`, `update accounts a set v = a.v + 1 from others o where ${where}`]
      : [`delete from accounts a where ${where}`, `update accounts a set v = a.v + 1 where ${where}`]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const cond of conditions) {
        const sql = `select count(distinct a.id)::int n from accounts a${cond.using ? ', others o' : ''} where ${cond.where}`
        expect((await c.query(sql, cond.values)).rows[0].n, cond.where).toBe(rows)
      }
    })
  })

  it('refuses them through the tunnel as unfiltered, simple and extended', async () => {
    const c = await t.client()
    for (const cond of conditions) {
      for (const sql of statements(cond)) {
        const e = (await c.query(sql, cond.values).catch((x: Error) => x)) as Refusal | pg.QueryResult
        expect(e, sql).toBeInstanceOf(Error)
        expect((e as Refusal).code, sql).toBe('42501')
        expect((e as Refusal).message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
      }
    }
    const e = (await c.query('prepare p(int[]) as delete from accounts a where a.id <> any($1)').catch((x: Error) => x)) as Refusal
    expect(e.message).toMatch(/rule default\.no-unfiltered-delete/)
    expect(await touched()).toBe(0)
    await c.end()
  })

  it('still runs comparisons with a set that leave a row alone', async () => {
    const c = await t.client()
    const ran = async (sql: string, values?: unknown[]) => (await c.query(sql, values)).rowCount
    expect(await ran('update accounts a set v = a.v + 1 where a.id = any($1)', [keys])).toBe(2)
    expect(await ran('update accounts a set v = a.v + 1 where a.id <> all($1)', [keys])).toBe(8)
    expect(await ran('update accounts a set v = a.v + 1 where a.id not in (select o.k from others o)')).toBe(8)
    expect(await ran('update accounts a set v = a.v + 1 where a.id < all(select o.k from others o)')).toBe(0)
    expect(await ran('update accounts a set v = a.v + 1 where not exists (select 1 from others o where o.k = a.id)')).toBe(8)
    expect(await ran('update accounts a set v = a.v + 1 where exists (select 1 from others o where o.k > a.id)')).toBe(1)
    expect(await ran('update accounts a set v = a.v + 1 from others o where a.id = o.k')).toBe(2)
    expect(await ran('update accounts a set v = a.v + 1 from others o where a.id < o.k')).toBe(1)
    expect(await ran('merge into accounts a using others o on a.id = o.k when matched then update set v = a.v + 1')).toBe(2)
    await c.end()
  })
})
