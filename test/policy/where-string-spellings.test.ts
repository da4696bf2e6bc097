import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof took two different string literals for two different values, apart from case
 * and accents. But the column's type reads many spellings as one value: `'01'` and `'1'` as an
 * integer, `'t'` and `'true'` as a boolean, `'Jan 1 2020'` and `'2020-01-01'` as a date, a uuid with
 * or without braces and hyphens, jsonb with its keys in another order, char(n) with trailing
 * spaces. So `id = '01' OR id <> '1'` holds for every row, and each of these rewrote the whole
 * table through the tunnel as "filtered".
 */
describe('a WHERE whose string literals the column type reads as one value', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int, status text, v int default 0);
    insert into accounts (id, status) select g, case when g < 5 then 'active' else 'closed' end from generate_series(1, 10) g;
    create table flags (b bool, v int default 0);
    insert into flags (b) values (true), (false), (true);
    create table days (d date, v int default 0);
    insert into days (d) values ('2020-01-01'), ('2021-06-01');
    create table ids (u uuid, v int default 0);
    insert into ids (u) values ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), (gen_random_uuid());
    create table docs (j jsonb, v int default 0);
    insert into docs (j) values ('{"a": "x", "b": "y"}'), ('{"c": "z"}');
    create table codes (c char(3), v int default 0);
    insert into codes (c) values ('ab'), ('cd');
  `)
  const touched = () => direct(async (c) => (await c.query('select sum(v)::int s from (select v from accounts union all select v from flags union all select v from days union all select v from ids union all select v from docs union all select v from codes) x')).rows[0].s as number)

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered', async () => {
    const c = await t.client()
    const cases: Array<[string, string]> = [
      ['accounts', "id = '01' or id <> '1'"],
      ['accounts', "id = '+1' or id <> '1'"],
      ['accounts', "id = ' 1' or id <> '1'"],
      ['accounts', "id not in ('1', '01') or id = '1'"],
      ['flags', "b = 't' or b <> 'true'"],
      ['flags', "b = 'yes' or b <> 'on'"],
      ['flags', "b = '1' or b <> 'true'"],
      ['days', "d = '2020-01-01' or d <> '2020-1-1'"],
      ['days', "d = 'Jan 1 2020' or d <> '2020-01-01'"],
      ['ids', "u = '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}' or u <> 'A0EEBC999C0B4EF8BB6D6BB9BD380A11'"],
      ['docs', `j = '{"a":"x","b":"y"}' or j <> '{"b": "y", "a": "x"}'`],
      ['codes', "c = 'ab' or c <> 'ab '"],
    ]
    for (const [table, where] of cases) {
      for (const sql of [`delete from ${table} where ${where}`, `update ${table} set v = v + 1 where ${where}`]) await refused(c, sql)
    }
    expect(await touched()).toBe(0)
    await c.end()
  })

  it('still runs conditions on literals no type reads as one', async () => {
    const c = await t.client()
    expect((await c.query("update accounts set v = v + 1 where status not in ('active', 'pending')")).rowCount).toBe(6)
    expect((await c.query("update accounts set v = v + 1 where id = '5'")).rowCount).toBe(1)
    expect((await c.query("update accounts set v = v + 1 where status <> 'active' and status <> 'closed'")).rowCount).toBe(0)
    await c.end()
  })
})
