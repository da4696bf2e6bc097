import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof told two string literals apart unless they differed only in case, accents,
 * digits or a few special words. But an ICU collation's rules may make any two strings equal
 * (`&a = b`, on a column or under COLLATE), and a type's input may read two spellings with no
 * digit as one value (bytea's `'\x'` and `''`). `w = 'a' OR w <> 'b'` then holds for every row,
 * and each of these rewrote every row through the tunnel as "filtered".
 */
describe('a WHERE whose two string literals are one value to the column', () => {
  const {t, direct} = seededTunnel(`
    create collation ab (provider = icu, locale = 'und', rules = '&a = b', deterministic = false);
    create table words (w text collate ab, v int default 0);
    insert into words (w) values ('a'), ('b'), ('c');
    create table notes (name text, v int default 0);
    insert into notes (name) values ('a'), ('b'), ('c');
    create table blobs (b bytea, v int default 0);
    insert into blobs (b) values (''), ('ab'), ('\\x00');
  `)
  const touched = () => direct(async (c) => (await c.query('select (select sum(v) from words) + (select sum(v) from blobs) + (select sum(v) from notes) s')).rows[0].s as string)

  const conditions: Array<[string, string]> = [
    ['words', "w = 'a' or w <> 'b'"],
    ['words', "w not in ('b') or w = 'a'"],
    ['words', "w is not distinct from 'a' or w is distinct from 'b'"],
    ['notes', "name collate ab = 'a' or name collate ab <> 'b'"],
    ['blobs', "b = '' or b <> '\\x'"],
  ]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const [table, where] of conditions) expect((await c.query(`select count(*)::int n from ${table} where ${where}`)).rows[0].n, where).toBe(3)
    })
  })

  it('refuses them through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const [table, where] of conditions) {
      for (const sql of [`delete from ${table} where ${where}`, `update ${table} set v = v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    expect(Number(await touched())).toBe(0)
    await c.end()
  })

  it('still runs conditions that leave a named value alone', async () => {
    const c = await t.client()
    expect((await c.query("update notes set v = v + 1 where name not in ('a', 'b')")).rowCount).toBe(1)
    expect((await c.query("update notes set v = v + 1 where name <> 'a' and name <> 'c'")).rowCount).toBe(1)
    expect((await c.query("update words set v = v + 1 where w = 'c'")).rowCount).toBe(1)
    expect((await c.query("update blobs set v = v + 1 where b <> ''")).rowCount).toBe(2)
    await c.end()
  })
})
