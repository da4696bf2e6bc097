/**
 * A text over 256 KiB is not analysed: its columns are masked as untraceable, except where the
 * server names a known table's column as their origin, taken for proof that the values are that
 * column's own. In a text that wrote the table first, or added a child to it, they are not:
 * `insert into orders … select …, full_name … returning status` is described as `orders.status`, so
 * are a writing CTE's rows, and a child made earlier in the text or in the open transaction adds
 * its rows to the parent's `status`. Each showed every name in clear.
 *
 * Each step list runs in one session through the tunnel (policy pack `none`) and rolls back.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {withClient} from '../helpers/pg.js'
import {openUnseenCodeTunnel, rowsOf, type UnseenCodeTunnel} from './unseen-code.js'

const NAMES = sampleCustomers().flatMap((c) => [c.fullName, c.address])
const leaks = (seen: Buffer | string) => NAMES.filter((s) => Buffer.from(seen).includes(Buffer.from(s, 'utf8')))
/** Past the size the analysis reads (`MAX_ANALYZED_SQL`). */
const PAD = ` /* ${'x'.repeat(300 * 1024)} */`
const FILL = (table: string, offset: number) => `insert into ${table} select id + ${offset}, id, full_name, 0, now() from customers`

const STEPS: string[][] = [
  ['begin', `${FILL('orders', 2000)} returning status${PAD}`, 'rollback'],
  ['begin', `with i as (${FILL('orders', 3000)} returning status) select status from i${PAD}`, 'rollback'],
  ['begin', `update orders set status = c.address from customers c where c.id = orders.customer_id returning orders.status${PAD}`, 'rollback'],
  ['begin', `${FILL('orders', 4000)}; select status from orders${PAD}`, 'rollback'],
  ['begin', `create table lt_kid () inherits (orders); ${FILL('lt_kid', 1000)}; select status from orders${PAD}`, 'rollback'],
  // A child the open transaction added before: a plain query, alone in its text, still reads its rows.
  ['begin', 'create table lt_kid () inherits (orders)', FILL('lt_kid', 1000), `select status from orders${PAD}`, 'rollback'],
]

describe('texts too large to analyse', () => {
  let t: UnseenCodeTunnel

  beforeAll(async () => {
    t = await openUnseenCodeTunnel()
  })
  afterAll(() => t?.close())

  it('has no vacuous case: directly, each shows names or addresses', async () => {
    await withClient(t.fx.db.url, async (c) => {
      for (const steps of STEPS) {
        const seen: unknown[] = []
        for (const sql of steps) seen.push(rowsOf(await c.query(sql)))
        expect(leaks(JSON.stringify(seen)), steps.join('; ').slice(0, 200)).not.toEqual([])
      }
    })
  })

  it('masks what a text that wrote a table, or gave it a child, reads of it', async () => {
    const leaking: string[] = []
    for (const steps of STEPS) {
      const {seen, errors} = await t.run(steps)
      expect(errors.map((e) => e.slice(-300)), steps.join('; ').slice(0, 200)).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; ').slice(0, 200))
    }
    expect(leaking).toEqual([])
  })

  it('still shows a clean column a plain query alone in its text reads', async () => {
    const status = await withClient(t.fx.db.url, async (c) => (await c.query('select status from orders where id = 1')).rows[0].status as string)
    const {rows} = await t.run([`select status from orders where id = 1${PAD};`])
    expect(rows).toEqual([[{status}]])
  })
})
