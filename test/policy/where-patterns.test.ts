import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof read LIKE and regular expression patterns into JavaScript and looked for a
 * string they do not match. But PostgreSQL reads some of them otherwise: `\b` is a backspace to
 * it (a word boundary to JavaScript), `\B` a backslash, `\x414` one character, `.` matches a
 * newline; its case folding outside ASCII is the locale's (`'İ' ILIKE 'i'`, `'I' ~* 'ı'`), and
 * citext's `~` and SIMILAR TO ignore case (`'A' ~ '^a$'`); a
 * nondeterministic collation makes LIKE and `=` match across case, accents, punctuation and
 * leading zeros (`'A' LIKE 'a'`, `'ø' = 'o'`, `'A4' LIKE 'a04'` with numeric ordering);
 * `COLLATE "C"` was taken for another column than the column itself. And a pattern computed
 * from constants it did not read (`LIKE '%' ESCAPE ''`, `'%'::varchar(3)`, `like_escape('%',
 * '')`) counted as an arbitrary value, like a parameter. Each of these rewrote every row through
 * the tunnel as "filtered".
 */
describe('a WHERE whose pattern or collation matches every row', () => {
  const {t, direct} = seededTunnel(`
    create table notes (id serial, name text, v int default 0);
    insert into notes (name) values ('a'), ('A'), ('I'), ('İ'), ('o'), ('ø'), (E'a\\nb'), ('A4'), ('x');
    create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    create collation loose (provider = icu, locale = 'und-u-ka-shifted-ks-level1', deterministic = false);
    create collation num (provider = icu, locale = 'und-u-kn-ks-level2', deterministic = false);
    create extension citext;
    create table tags (name citext, v int default 0);
    insert into tags (name) values ('a'), ('A'), ('b');
  `)
  const touched = () => direct(async (c) => (await c.query('select (select sum(v) from notes) + (select sum(v) from tags) s')).rows[0].s as string)
  const rows = 9

  const conditions = [
    // PostgreSQL's own escapes and modes
    "name !~ '\\b'",
    "name !~* '\\B'",
    "not (name ~ 'x\\b')",
    "name ~ '^.*$' or name <> E'a\\nb'",
    "name !~ '\\x414' or name <> 'A4'",
    // case folding outside ASCII
    "name ~* 'ı' or name <> 'I'",
    "name ilike 'i' or name <> 'İ'",
    // patterns computed from constants
    "name like '%' escape ''",
    "name like '%' escape '\\'",
    "name like '%' escape '#'",
    "name ~~ pg_catalog.like_escape('%', '')",
    "name ~ pg_catalog.similar_to_escape('%')",
    "name like '%'::varchar(3)",
    "name like concat('%', '')",
    "name ~ repeat('.', 0)",
    // collations
    `name collate "C" = 'a' or name <> 'a'`,
    "name collate ci like 'a' or name <> 'A'",
    `name collate ci like 'a' or name collate "C" <> 'A'`,
    "name collate loose like 'a-4' or name <> 'A4'",
    "name collate loose = 'ø' or name collate loose <> 'o'",
    "name collate num like 'a04' or name <> 'A4'",
  ]

  // citext's regular expression and SIMILAR TO operators ignore case.
  const onCitext = ["name ~ '^a$' or name <> 'A'", "name similar to 'a' or name <> 'A'"]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const where of conditions) expect((await c.query(`select count(*)::int n from notes where ${where}`)).rows[0].n, where).toBe(rows)
      for (const where of onCitext) expect((await c.query(`select count(*)::int n from tags where ${where}`)).rows[0].n, where).toBe(3)
    })
  })

  it('refuses them through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const where of conditions) {
      for (const sql of [`delete from notes where ${where}`, `update notes set v = v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    for (const where of onCitext) {
      for (const sql of [`delete from tags where ${where}`, `update tags set v = v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    expect(Number(await touched())).toBe(0)
    await c.end()
  })

  it('still runs patterns that leave a row alone', async () => {
    const c = await t.client()
    const ran = async (where: string, values: unknown[] = []) => (await c.query(`update notes set v = v + 1 where ${where}`, values)).rowCount
    expect(await ran("name like 'a%'")).toBe(2)
    expect(await ran("name like 'a#%' escape '#'")).toBe(0)
    expect(await ran("name not like 'x%' escape ''")).toBe(rows - 1)
    expect(await ran("name ~ '\\d'")).toBe(1)
    expect(await ran("name ~ '^a\\.'")).toBe(0)
    expect(await ran("name ilike 'a'")).toBe(2)
    expect(await ran('name like $1', ['x%'])).toBe(1)
    expect(await ran("name = 'ø'")).toBe(1)
    expect(await ran(`name collate "C" not in ('a', 'x')`)).toBe(rows - 2)
    expect((await c.query("update tags set v = v + 1 where name ~ '^b'")).rowCount).toBe(1)
    await c.end()
  })
})
