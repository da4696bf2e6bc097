import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof looked for a row the condition leaves alone among numbers half-way between the
 * constants, and read numeric literals as JavaScript doubles. An integer column has no value
 * between 1 and 2, so `id <= 1 OR id >= 2` holds for every row; and `9007199254740993` or
 * `1.00000000000000001` rounded onto their neighbours, so a gap appeared where there is none.
 * Each of these rewrote the whole table through the tunnel as "filtered".
 */
describe('a WHERE that leaves no integer out, or that reads past what a double holds', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, v int);
    insert into accounts select g, 0 from generate_series(1, 10) g;
    create table big (id int8 primary key, v int);
    insert into big values (1, 0), (9007199254740992, 0), (9007199254740993, 0);
    create table measures (x numeric, v int);
    insert into measures values (1, 0), (1.00000000000000001, 0), (2, 0);
  `)
  const state = () =>
    direct(async (c) => (await c.query('select (select sum(v)::int from accounts) a, (select sum(v)::int from big) b, (select sum(v)::int from measures) m')).rows[0] as {a: number; b: number; m: number})

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered', async () => {
    const c = await t.client()
    for (const where of ['id <= 1 or id >= 2', 'id < 2 or id > 1', 'not (id > 1 and id < 2)', 'id not between 1.1 and 1.9', 'id < 1.5 or id > 1.5', 'id <> 3 or id between 2.5 and 3.5', '(id, 0) <= (1, 0) or (id, 0) >= (2, 0)']) {
      for (const sql of [`delete from accounts where ${where}`, `update accounts set v = v + 1 where ${where}`]) await refused(c, sql)
    }
    for (const where of ['id < 9007199254740993 or id > 9007199254740992', 'id < 9007199254740993::int8 or id > 9007199254740992', "id < '9007199254740993'::int8 or id > 9007199254740992"]) {
      for (const sql of [`delete from big where ${where}`, `update big set v = v + 1 where ${where}`]) await refused(c, sql)
    }
    for (const where of ['x < 1.00000000000000001 or x > 1 and x <> 2 or x = 2', 'x <= 1 or x >= 1.00000000000000001 and x <> 2 or x = 2']) {
      for (const sql of [`delete from measures where ${where}`, `update measures set v = v + 1 where ${where}`]) await refused(c, sql)
    }
    expect(await state()).toEqual({a: 0, b: 0, m: 0})
    await c.end()
  })

  it('still runs conditions that leave an integer out', async () => {
    const c = await t.client()
    expect((await c.query('update accounts set v = v + 1 where id < 3 or id > 7')).rowCount).toBe(5)
    expect((await c.query('update accounts set v = v + 1 where id not between 2 and 9')).rowCount).toBe(2)
    expect((await c.query('update accounts set v = v + 1 where id < 1.5 or id > 2.5')).rowCount).toBe(9)
    expect((await c.query('update big set v = v + 1 where id > 9007199254740992')).rowCount).toBe(1)
    expect((await c.query('update measures set v = v + 1 where x < 1.5')).rowCount).toBe(2)
    await c.end()
  })
})
