/**
 * A foreign table's rows come from another server, or from this one through a loopback server,
 * under any column name: `create foreign table ft (id int, nm text options (column_name
 * 'full_name')) server loop options (table_name 'customers')`. Its columns were classified by
 * their own names, like a table's, so `select nm from ft` showed every customer's name in clear;
 * so did a foreign table over a view that renames its columns, and one `IMPORT FOREIGN SCHEMA`
 * made. A foreign table's column is now untraceable unless `unmaskColumns:` names it.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {openUnseenCodeTunnel, rowsOf, type UnseenCodeTunnel} from './unseen-code.js'

const NAMES = sampleCustomers().flatMap((c) => [c.fullName, c.address])
const leaks = (seen: Buffer | string) => NAMES.filter((s) => Buffer.from(seen).includes(Buffer.from(s, 'utf8')))

/** Made through the tunnel, after the loopback server exists. */
const STEPS: string[][] = [
  ["create foreign table ft_renamed (id int, nm text options (column_name 'full_name')) server loop options (table_name 'customers')", 'select nm from ft_renamed', "select nm || '' as n from ft_renamed", 'select f from ft_renamed f'],
  ["create foreign table ft_view (id int, who text) server loop options (table_name 'v_contacts')", 'select who from ft_view', 'select upper(who) as w from ft_view'],
  ['create schema imported', 'import foreign schema public limit to (v_contacts) from server loop into imported', 'select who from imported.v_contacts'],
  // A foreign partition's rows are the partitioned table's.
  ['create view names_src as select id, full_name as nm from customers', 'create table parted (id int, nm text) partition by range (id)', "create foreign table parted_remote partition of parted for values from (0) to (100000) server loop options (table_name 'names_src')", 'select nm from parted'],
  // A foreign child joined in the open transaction: its rows are the parent's, which the server describes as the parent's column.
  ['begin', "create foreign table ft_kid () inherits (orders) server loop options (table_name 'orders_src')", 'select status from orders', 'rollback'],
  // Made outside the tunnel (another session), learnt by the catalog when a statement names it.
  ['select nm from ft_outside', 'copy (select nm from ft_outside) to stdout'],
]

describe('foreign tables', () => {
  let t: UnseenCodeTunnel
  let shown: PipelineTunnel | undefined

  beforeAll(async () => {
    t = await openUnseenCodeTunnel()
    const db = t.fx.db
    await withClient(db.url, (c) =>
      c.query(`
        create extension if not exists postgres_fdw;
        create server loop foreign data wrapper postgres_fdw options (host '${db.host}', port '${db.port}', dbname '${db.database}');
        create user mapping for current_user server loop options (user '${db.user}', password '${db.password}');
        create view orders_src as select id + 1000 as id, id as customer_id, full_name as status, 0 as total_cents, now() as placed_at from customers;
        create foreign table ft_outside (id int, nm text options (column_name 'address')) server loop options (table_name 'customers');
      `),
    )
  })
  afterAll(async () => {
    await shown?.close()
    await t?.close()
  })

  it('has no vacuous case: directly, each shows names or addresses', async () => {
    await withClient(t.fx.db.url, async (c) => {
      for (const steps of STEPS) {
        const seen: unknown[] = []
        for (const sql of steps) {
          if (sql.startsWith('copy')) continue
          seen.push(rowsOf(await c.query(sql)))
        }
        expect(leaks(JSON.stringify(seen)), steps.join('; ')).not.toEqual([])
      }
      await c.query('drop foreign table ft_renamed, ft_view; drop schema imported cascade; drop table parted; drop view names_src')
    })
  })

  it('masks what a foreign table reads, made through the tunnel or outside it', async () => {
    const leaking: string[] = []
    for (const steps of STEPS) {
      const {seen, errors} = await t.run(steps)
      expect(errors, steps.join('; ')).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    expect(leaking).toEqual([])
  })

  it('shows a foreign table column that unmaskColumns names', async () => {
    await withClient(t.fx.db.url, (c) => c.query("create foreign table ft_status (id int, status text) server loop options (table_name 'orders')"))
    const status = await withClient(t.fx.db.url, async (c) => (await c.query('select status from orders order by id limit 1')).rows[0].status as string)
    const read = 'select status from ft_status order by id limit 1'
    const {rows} = await t.run([read])
    expect(rows).toEqual([[{status: '[masked]'}]])
    shown = await openPipelineTunnel(t.fx.db, 'policy: none\nmasking:\n  unmaskColumns: [public.ft_status.status]')
    const c = await shown.client()
    expect((await c.query(read)).rows).toEqual([{status}])
    await c.end()
  })
})
