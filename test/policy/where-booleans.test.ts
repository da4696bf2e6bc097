import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof looked for a row left alone among values other than the literals a column is
 * compared with. But a column compared with `'t'` and `'f'` (or `'yes'` and `'no'`, `'on'` and
 * `'off'`, `true`) may be a boolean, which has no other value: `b = 't' OR b = 'f'` holds for
 * every row of a NOT NULL boolean column. Each of these rewrote every row through the tunnel as
 * "filtered".
 */
describe('a WHERE that names both values of a boolean column', () => {
  const {t, direct} = seededTunnel(`
    create table flags (id int, b bool not null, v int default 0);
    insert into flags (id, b) values (1, true), (2, false), (3, true);
  `)
  const touched = () => direct(async (c) => (await c.query('select sum(v)::int s from flags')).rows[0].s as number)
  const rows = 3

  const conditions = [
    "b = 't' or b = 'f'",
    "b in ('yes', 'no')",
    "b = 'on' or b = 'off'",
    "b = true or b = 'f'",
    "not (b <> '1' and b <> '0')",
  ]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const where of conditions) expect((await c.query(`select count(*)::int n from flags where ${where}`)).rows[0].n, where).toBe(rows)
    })
  })

  it('refuses them through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const where of conditions) {
      for (const sql of [`delete from flags where ${where}`, `update flags set v = v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    expect(await touched()).toBe(0)
    await c.end()
  })

  it('still runs conditions that leave one of the values out', async () => {
    const c = await t.client()
    const ran = async (where: string) => (await c.query(`update flags set v = v + 1 where ${where}`)).rowCount
    expect(await ran("b = 't'")).toBe(2)
    expect(await ran("b is distinct from 't'")).toBe(1)
    expect(await ran("b not in ('1')")).toBe(1)
    expect(await ran("b = 'f' and id = 2")).toBe(1)
    expect(await ran("b in ('y', 'n') and id in (1, 2)")).toBe(2)
    await c.end()
  })
})
