/**
 * A whole row inside a row: `ROW(1, c)`, `(c, 2)`, `ROW(1, ROW(c.*))`, a subquery's row, a view's.
 * In a record's text form the inner row is one field, quoted, whose own fields the masker did not
 * look into: only the scanner read it, so names, addresses, dates of birth and password hashes went
 * out in clear. Through the tunnel `dbgate connect` builds (policy pack none), every form is now
 * masked field by field at any depth, in the simple and extended protocols and in COPY, and the
 * clean fields stay readable.
 */
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {withClient} from '../helpers/pg.js'
import {leaked, copyOut, maskedTunnel} from './fixture.js'

const READS: [string, string][] = [
  ['a row as a field', 'select row(1, c) as r from customers c'],
  ['a row as the only field', 'select row(c) as r from customers c'],
  ['an implicit row', 'select (c, 2) as r from customers c'],
  ['a row cast to text', 'select row(1, c)::text as r from customers c'],
  ['ROW(c.*) inside a row', 'select row(1, row(c.*)) as r from customers c'],
  ['two levels', 'select row(1, row(c, 2)) as r from customers c'],
  ['a subquery row', 'select row(1, (select c2 from customers c2 where c2.id = c.id)) as r from customers c'],
  ['a derived table row', 'select row(1, x) as r from (select full_name, address from customers) x'],
  ['a view row', 'select row(1, v) as r from v_contacts v'],
  ['secrets', 'select row(1, a) as r from accounts a'],
]

describe('masking: rows nested in rows', () => {
  const {fx, tunnel} = maskedTunnel()

  it.each(READS)('the server sends the values (%s)', async (_label, sql) => {
    const rows = await withClient(fx.db.url, (c) => c.query(sql))
    expect(leaked(JSON.stringify(rows.rows), fx.secrets).length).toBeGreaterThan(0)
  })

  it.each(READS)('masks the inner row field by field through the tunnel (%s)', async (_label, sql) => {
    const c = await tunnel.client()
    const simple = (await c.query(sql)).rows
    const extended = (await c.query({text: sql, values: []})).rows
    const copied = await copyOut(c, `copy (${sql}) to stdout`)
    const csv = await copyOut(c, `copy (${sql}) to stdout (format csv)`)
    expect(simple.length).toBeGreaterThan(0)
    expect(leaked(JSON.stringify(simple), fx.secrets)).toEqual([])
    expect(leaked(JSON.stringify(extended), fx.secrets)).toEqual([])
    expect(leaked(copied, fx.secrets)).toEqual([])
    expect(leaked(csv, fx.secrets)).toEqual([])
    await c.end()
  })

  it('keeps the clean fields of the inner row, and its shape', async () => {
    const c = await tunnel.client()
    const {rows} = await c.query('select row(1, c) as r from customers c where id = 3')
    expect(rows[0].r).toMatch(/^\(1,"\(3,\[redacted\],c\*\*\*@example\.com,[^,]+,[^,]+,\d{4}-01-01,\[redacted\],US,\\"[^"\\]+\\"\)"\)$/)
    const clean = await c.query('select row(c.id, c.country, row(c.id, c.country)) as r from customers c where id = 2')
    expect(clean.rows[0].r).toBe('(2,US,"(2,US)")')
    await c.end()
  })
})
