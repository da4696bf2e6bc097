/**
 * pg_attribute.attmissingval: the value every row that predates `ALTER TABLE … ADD COLUMN …
 * DEFAULT` has in the new column, computed once when the column was added (an immutable or stable
 * function's result: a name an immutable SQL function read, `current_setting('app.key')`) and kept
 * after `DROP DEFAULT`, when nothing else in the catalog shows it. It is a stored value of the
 * column, so it is masked however pg_attribute is read, while the rest of pg_attribute (what psql's
 * `\d` and ORMs read) stays in clear. The columns are added directly, as a migration would add them.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {copyOut, EXTRA, maskingFixture, type MaskingFixture} from './fixture.js'

const READS = [
  "select attname, attmissingval from pg_attribute where attname in ('mirror', 'vendor_key', 'contact_copy') order by 1",
  "select attmissingval::text as v from pg_catalog.pg_attribute where attname in ('mirror', 'vendor_key', 'contact_copy')",
  "select a.* from pg_attribute a where a.attname in ('mirror', 'vendor_key', 'contact_copy')",
  "select row_to_json(a)::text as j from pg_attribute a where a.attname in ('mirror', 'vendor_key', 'contact_copy')",
  'select string_agg(attmissingval::text, \',\') as v from pg_attribute where atthasmissing',
  "select (select attmissingval from pg_attribute where attname = 'mirror')::text as v",
  "select array_to_string(attmissingval::text::text[], '') as v from pg_attribute where atthasmissing",
]

describe('masking: values pg_attribute keeps for rows that predate a column', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let kept: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    kept = await withClient(fx.db.url, async (d) => {
      await d.query("create function name_of(i int) returns text language sql immutable as 'select full_name from customers where id = i'")
      await d.query('alter table notes add column mirror text default name_of(3)')
      await d.query(`select set_config('app.vendor_key', '${EXTRA.githubToken}', false)`)
      await d.query("alter table events add column vendor_key text default current_setting('app.vendor_key')")
      await d.query('alter table events alter column vendor_key drop default')
      await d.query("alter table accounts add column contact_copy text default name_of(5) || ' <' || 'c@x.org>'")
      const r = await d.query("select array_to_string(attmissingval::text::text[], '') as v from pg_attribute where attname in ('mirror', 'vendor_key', 'contact_copy')")
      return r.rows.map((row) => row.v as string)
    })
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  it('holds a customer and a key, read directly', () => {
    expect(kept).toHaveLength(3)
    expect(kept.filter((v) => fx.secrets.some((s) => v.includes(s)))).toHaveLength(3)
  })

  it.each(READS)('masks them through the tunnel: %s', async (sql) => {
    const c = await tunnel.client()
    try {
      const r = await c.query(sql)
      expect(r.rows.length).toBeGreaterThan(0)
      const seen = JSON.stringify(r.rows)
      expect(fx.secrets.filter((s) => seen.includes(s))).toEqual([])
      const copied = (await copyOut(c, `copy (${sql}) to stdout`)).toString('utf8')
      expect(fx.secrets.filter((s) => copied.includes(s))).toEqual([])
    } finally {
      await c.end()
    }
  })

  it('keeps the rest of pg_attribute in clear', async () => {
    const c = await tunnel.client()
    try {
      const r = await c.query("select attname, atttypid::regtype::text as t, atthasmissing from pg_attribute where attrelid = 'notes'::regclass and attnum > 0 order by attnum")
      expect(r.rows).toEqual([
        {attname: 'id', t: 'integer', atthasmissing: false},
        {attname: 'body', t: 'text', atthasmissing: false},
        {attname: 'mirror', t: 'text', atthasmissing: true},
      ])
    } finally {
      await c.end()
    }
  })
})
