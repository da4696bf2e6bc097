/**
 * PostgreSQL's own relations are read in clear only once reviewed (src/masking/system-relations.ts).
 * Checked against the server's catalog: every relation pg_catalog has is reviewed, so a release that
 * adds one fails here naming it; and through the tunnel `dbgate connect` builds, with the policy
 * pack `none`: the configuration files' values (passphrase commands, replication connection strings
 * with passwords) are masked while the catalog psql's `\d` reads stays in clear.
 */
import pg from 'pg'
import {beforeAll, describe, expect, it} from 'vitest'
import {REVIEWED_CATALOG_RELATIONS} from '../../src/masking/system-relations.js'
import {adminUrl, withClient} from '../helpers/pg.js'
import {maskedTunnel} from './fixture.js'

describe('the system relations masking reads in clear', () => {
  let server: string[]

  beforeAll(async () => {
    const c = new pg.Client({connectionString: adminUrl('postgres')})
    await c.connect()
    try {
      const rows = await c.query("select relname from pg_class where relnamespace = 'pg_catalog'::regnamespace and relkind in ('r', 'v', 'm', 'p', 'f') order by 1")
      server = rows.rows.map((r) => r.relname as string)
    } finally {
      await c.end()
    }
  })

  it('reviews every relation pg_catalog has, and only those', () => {
    expect(server.length).toBeGreaterThan(100)
    expect(server.filter((n) => !REVIEWED_CATALOG_RELATIONS.includes(n))).toEqual([])
    expect(REVIEWED_CATALOG_RELATIONS.filter((n) => !server.includes(n))).toEqual([])
  })
})

describe('masking: system relations through the tunnel', () => {
  const {fx, tunnel} = maskedTunnel()
  let c: pg.Client

  beforeAll(async () => {
    c = await tunnel.client()
  })

  it("masks the values of the server's configuration files, and keeps their names", async () => {
    const sql = "select name, setting from pg_file_settings where setting is not null and setting <> '' order by name, seqno"
    const direct = await withClient(fx.db.url, (d) => d.query(sql))
    expect(direct.rows.length).toBeGreaterThan(0)
    const through = await c.query(sql)
    expect(through.rows.map((r) => r.name)).toEqual(direct.rows.map((r) => r.name))
    for (const [i, row] of through.rows.entries()) expect(row.setting, row.name as string).not.toBe(direct.rows[i]!.setting)
  })

  it('keeps the catalog in clear: relation and column names, definitions, counters', async () => {
    const rows = await c.query(`select c.relname, a.attname, pg_get_viewdef('v_contacts'::regclass) as def, s.n_live_tup >= 0 as counted
      from pg_class c join pg_attribute a on a.attrelid = c.oid join pg_stat_user_tables s on s.relid = c.oid
      where c.relname = 'customers' and a.attname = 'email'`)
    expect(rows.rows).toEqual([{relname: 'customers', attname: 'email', def: expect.stringContaining('customers'), counted: true}])
    const tables = await c.query("select table_name, column_name from information_schema.columns where table_name = 'customers' and column_name = 'ssn'")
    expect(tables.rows).toEqual([{table_name: 'customers', column_name: 'ssn'}])
  })
})
