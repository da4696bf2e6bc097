/**
 * `COPY … TO STDOUT` fields are masked by position, so the tunnel must split each line where the
 * server put its fields and count the columns as the server counts them. Through the tunnel
 * `dbgate connect` builds (policy pack none), two ways put a sensitive value at a clean column's
 * place, where only the scanner read it and every customer's name passed in clear:
 *
 * - CSV with an ESCAPE other than the QUOTE: inside quotes the server writes the escape character
 *   before every quote *and every escape character* of the value, and the tunnel took `\\"`, the
 *   escaped backslash before the closing quote, for an escaped quote. A constant ending in the
 *   escape character (`'a,\'`, `'x\'` with FORCE_QUOTE, `'e;'` with ESCAPE ';' and DELIMITER ';')
 *   left its field open, which then swallowed the name after it;
 * - `COPY t TO STDOUT` of a table with a generated column: the server leaves generated columns out
 *   of a COPY without a column list, and the tunnel counted them, so every column after one was
 *   masked as its left neighbour (`full_name` as `g`, clean).
 *
 * Now the CSV line is read as the server writes it, generated columns are not counted, and a line
 * whose fields do not come out as the copied columns is masked whole.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {copyOut, leaked, maskingFixture, type MaskingFixture} from './fixture.js'

const TABLES = `
create table gen_before (id int, g text generated always as ('gen ' || id) stored, full_name text, country text) with (autovacuum_enabled = false);
insert into gen_before (id, full_name, country) select id, full_name, country from customers;
create table gen_virtual (id int, v int generated always as (id * 2) virtual, address text, note text, full_name text) with (autovacuum_enabled = false);
insert into gen_virtual (id, address, note, full_name) select id, address, 'plain', full_name from customers;
create table gen_two (g1 text generated always as ('a') stored, id int, g2 text generated always as ('b') stored, full_name text, address text, country text) with (autovacuum_enabled = false);
insert into gen_two (id, full_name, address, country) select id, full_name, address, country from customers;
create table dropped_later (id int, full_name text, country text) with (autovacuum_enabled = false);
insert into dropped_later select id, full_name, country from customers;
create table moved_later (id int, full_name text, country text) with (autovacuum_enabled = false);
insert into moved_later select id, full_name, country from customers;
`

const ATTACKS: [string, string][] = [
  ['CSV, ESCAPE backslash, a constant ending in it', "copy (select 'a,\\'::text as a, full_name, id from customers) to stdout (format csv, escape '\\')"],
  ['CSV, ESCAPE backslash, FORCE_QUOTE of the constant', "copy (select 'x\\'::text as a, full_name, id from customers) to stdout (format csv, escape '\\', force_quote (a))"],
  ['CSV, ESCAPE backslash, FORCE_QUOTE *', "copy (select id, 'x\\'::text as a, 'y'::text as b, address, country from customers) to stdout (format csv, escape '\\', force_quote *)"],
  ['CSV, ESCAPE the delimiter', "copy (select 'e;'::text as a, full_name, id from customers) to stdout (format csv, delimiter ';', escape ';')"],
  ['CSV, ESCAPE a letter', "copy (select 'he,e'::text as a, full_name, address, id from customers) to stdout (format csv, escape 'e')"],
  ['CSV, ESCAPE and QUOTE chosen', "copy (select '|q'::text as a, full_name, id from customers) to stdout (format csv, quote '|', escape 'q', header)"],
  ['a stored generated column, text', 'copy gen_before to stdout'],
  ['a stored generated column, CSV with a header', 'copy gen_before to stdout (format csv, header)'],
  ['a stored generated column, binary', 'copy gen_before to stdout (format binary)'],
  ['a virtual generated column', "copy gen_virtual to stdout (delimiter '|')"],
  ['two generated columns', 'copy public.gen_two to stdout (format csv)'],
]

describe('masking: COPY fields at their places', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let names: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query(TABLES))
    names = (await withClient(fx.db.url, (c) => c.query('select full_name, address from customers'))).rows.flatMap((r) => [r.full_name as string, r.address as string])
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  it.each(ATTACKS)('the server sends the values (%s)', async (_label, sql) => {
    const direct = await withClient(fx.db.url, (c) => copyOut(c, sql))
    expect(leaked(direct, names).length).toBeGreaterThan(0)
  })

  it.each(ATTACKS)('nothing reaches the client through the tunnel (%s)', async (_label, sql) => {
    const c = await tunnel.client()
    const out = await copyOut(c, sql)
    expect(out.length).toBeGreaterThan(0)
    expect(leaked(out, [...names, ...fx.secrets])).toEqual([])
    await c.end()
  })

  it('keeps clean columns in clear, in their places, and the CSV readable as the server wrote it', async () => {
    const c = await tunnel.client()
    const run = async (sql: string) => (await copyOut(c, sql)).toString('utf8').split('\n').filter((l) => l !== '')
    // The generated column left out, the name masked, the country in clear at its own place.
    expect((await run('copy gen_before to stdout (format csv) '))[0]).toBe('1,[redacted],US')
    expect((await run("copy gen_virtual to stdout (delimiter '|')"))[0]).toBe('1|[redacted]|plain|[redacted]')
    // A column list may name the generated column.
    expect((await run('copy (select id, g, country from gen_before where id = 1) to stdout'))[0]).toBe('1\tgen 1\tUS')
    // ESCAPE other than QUOTE: the clean constant and the clean number come back as sent, the name masked.
    expect((await run("copy (select 'a,\\'::text as a, full_name, id from customers where id = 2) to stdout (format csv, escape '\\')"))[0]).toBe('"a,\\\\",[redacted],2')
    expect((await run("copy (select 'e;'::text as a, full_name, id from customers where id = 3) to stdout (format csv, delimiter ';', escape ';')"))[0]).toBe('"e;;";[redacted];3')
    // A masked value holding the escape character is written with it escaped, so a CSV reader takes it back.
    expect((await run("copy (select 'x' as a, full_name || '\\\"' as n from customers where id = 4) to stdout (format csv, escape '\\')"))[0]).toBe('x,[redacted]')
    // Ordinary exports are unchanged.
    expect((await run('copy (select id, country from customers where id = 5) to stdout (format csv, header, force_quote *)'))).toEqual(['id,country', '"5","US"'])
    expect((await run('copy notes to stdout')).length).toBe(4)
    // A header asked for in capitals or as 1 is the server's header line, not a row to mask.
    expect((await run("copy (select id, full_name from customers where id = 1) to stdout (format csv, header 'ON')"))).toEqual(['id,full_name', '1,[redacted]'])
    expect((await run('copy (select id, full_name from customers where id = 1) to stdout (header 1)'))).toEqual(['id\tfull_name', '1\t[redacted]'])
    await c.end()
  })

  it('masks a line whole when its fields are not the copied columns', async () => {
    // A column dropped by another connection after the catalog was read: the server sends one field
    // fewer than the catalog has columns, so the name comes first, at the place of the clean `id`.
    const c = await tunnel.client()
    expect((await copyOut(c, 'copy dropped_later to stdout')).toString('utf8').split('\n')[0]).toBe('1\t[redacted]\tUS')
    await withClient(fx.db.url, (d: pg.Client) => d.query('alter table dropped_later drop column id'))
    const direct = await withClient(fx.db.url, (d) => copyOut(d, 'copy dropped_later to stdout'))
    expect(leaked(direct, names).length).toBeGreaterThan(0)
    for (const sql of ['copy dropped_later to stdout', 'copy dropped_later to stdout (format csv)', 'copy dropped_later to stdout (format binary)']) {
      const out = await copyOut(c, sql)
      expect(out.length, sql).toBeGreaterThan(0)
      expect(leaked(out, names), sql).toEqual([])
    }
    await c.end()
  })

  // The same count in another order: a column dropped and added again under its name by another
  // connection. Placed by the order read before, `full_name` took the clean `id`'s mask.
  it('reads the order of the columns again when another connection moved them, before the COPY runs', async () => {
    const c = await tunnel.client()
    const first = async (sql: string) => (await copyOut(c, sql)).toString('utf8').split('\n')[0]
    expect(await first('copy moved_later to stdout')).toBe('1\t[redacted]\tUS')
    await withClient(fx.db.url, (d: pg.Client) => d.query('alter table moved_later drop column id; alter table moved_later add column id int; update moved_later set id = 7'))
    const direct = await withClient(fx.db.url, (d) => copyOut(d, 'copy moved_later to stdout'))
    expect(leaked(direct, names).length).toBeGreaterThan(0)
    for (const sql of ['copy moved_later to stdout', 'copy moved_later to stdout (format csv)', 'copy public.moved_later to stdout (format binary)']) {
      const out = await copyOut(c, sql)
      expect(out.length, sql).toBeGreaterThan(0)
      expect(leaked(out, names), sql).toEqual([])
    }
    // Each column is masked as the one now at its place.
    expect(await first('copy moved_later to stdout')).toBe('[redacted]\tUS\t7')
    await withClient(fx.db.url, (d: pg.Client) => d.query("alter table moved_later drop column country; alter table moved_later add column country text default 'DE'"))
    expect(await first('copy moved_later to stdout (format csv)')).toBe('[redacted],7,DE')
    await c.end()
  })
})
