/**
 * The masking catalog is read with unqualified names (`pg_class`, `pg_attribute`, `pg_get_viewdef`)
 * over a connection of the tunnel's own role. A client of that role can give the role a
 * search_path (`ALTER ROLE current_user [IN DATABASE …] SET search_path = evil, pg_catalog`) that
 * puts its own relations and functions before pg_catalog's, for every connection opened after:
 * views named `pg_attribute` or `pg_proc` in that schema would tell the next catalog read that
 * `customers.full_name` is called something else, or that no function shadows a built-in. The
 * catalog connection must read pg_catalog whatever the role's settings say.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'

/** pg_attribute as the catalog read would see it, with every sensitive-looking column renamed. */
const SPOOF = `
create schema evil;
create view evil.pg_attribute as
  select a.attrelid, a.attnum, a.attisdropped, a.atttypid, a.attgenerated,
         case when a.attrelid = 'public.customers'::regclass and a.attnum > 1 then ('c' || a.attnum)::name else a.attname end as attname
  from pg_catalog.pg_attribute a;
`

describe('the catalog connection under a search_path the role was given', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, async (c) => {
      await c.query(SPOOF)
      // Per database: the role is shared with every other test database of the cluster.
      await c.query(`alter role current_user in database ${fx.db.database} set search_path = evil, pg_catalog, public`)
    })
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close().catch(() => {})
    await withClient(fx.db.url, (c) => c.query(`alter role current_user in database ${fx.db.database} reset search_path`)).catch(() => {})
    await fx?.close()
  })

  it('is spoofed for ordinary connections: the setting took hold', async () => {
    await withClient(fx.db.url, async (c) => {
      const {rows} = await c.query("select attname from pg_attribute where attrelid = 'public.customers'::regclass and attnum = 2")
      expect(rows[0].attname).toBe('c2')
    })
  })

  it('still classifies the columns as pg_catalog describes them', async () => {
    const c = await tunnel.client()
    const {rows} = await c.query('select * from public.customers')
    expect(leaked(JSON.stringify(rows), fx.secrets)).toEqual([])
  })
})
