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

// A small text's copy of names into a clean column of a lasting table is refused too (lasting-marks.ts).
const COPY_REFUSED = /masking cannot follow what this (INSERT … SELECT|UPDATE|MERGE|CREATE TABLE … AS) copies into the table it writes: texts over 256 KiB are not analysed|masking refuses writing to lt_kid: it copies values from public\.customers\.full_name/

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
      // A text over the size that copies from a table into the one it writes is refused (below), and the rest of its transaction with it.
      const refusedCopy = errors.some((e) => COPY_REFUSED.test(e))
      expect(errors.filter((e) => !COPY_REFUSED.test(e) && !(refusedCopy && /current transaction is aborted/.test(e))).map((e) => e.slice(-300)), steps.join('; ').slice(0, 200)).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; ').slice(0, 200))
    }
    expect(leaking).toEqual([])
  })

  it('still shows a clean column a plain query alone in its text reads', async () => {
    const status = await withClient(t.fx.db.url, async (c) => (await c.query('select status from orders where id = 1')).rows[0].status as string)
    const {rows} = await t.run([`select status from orders where id = 1${PAD};`])
    expect(rows).toEqual([[{status}]])
  })

  // Before, a text over the size that copied a sensitive column into a clean one was let through,
  // and once it committed, masking, which had not analysed it, went on reading the clean column as
  // clean: the names copied into lt_target.status came out in clear in any later, small query.
  const COPIES: string[] = [
    `insert into lt_target select id, full_name from customers${PAD}`,
    `update lt_target set status = c.full_name from customers c where c.id = lt_target.id${PAD}`,
    `merge into lt_target o using customers c on c.id = o.id when matched then update set status = c.full_name${PAD}`,
    `create table lt_copy as select id, full_name as status from customers${PAD}`,
    `select id, full_name as status into lt_into from customers${PAD}`,
  ]
  const readBack = (copy: string) => `select coalesce(status, '-') as s from ${copy.includes('lt_copy') ? 'lt_copy' : copy.includes('lt_into') ? 'lt_into' : 'lt_target'}`
  const reset = () => withClient(t.fx.db.url, (c) => c.query("drop table if exists lt_target, lt_copy, lt_into; create table lt_target as select id, 'new'::text as status from customers"))

  it('has no vacuous copy: directly, the copied names show in a later read', async () => {
    for (const copy of COPIES) {
      await reset()
      await withClient(t.fx.db.url, async (c) => {
        await c.query(copy)
        expect(leaks(JSON.stringify((await c.query(readBack(copy))).rows)), copy.slice(0, 100)).not.toEqual([])
      })
    }
  })

  it('refuses a text over the size that copies from a table into the one it writes, so nothing copied reads as clean', async () => {
    for (const copy of COPIES) {
      await reset()
      const {errors} = await t.run([copy])
      const later = await t.run([readBack(copy)])
      expect(leaks(later.seen), copy.slice(0, 100)).toEqual([])
      expect(errors[0], copy.slice(0, 100)).toMatch(COPY_REFUSED)
    }
    await withClient(t.fx.db.url, (c) => c.query('drop table if exists lt_target, lt_copy, lt_into'))
  })

  it('still runs a bulk INSERT of values and a large read of any size', async () => {
    const values = Array.from({length: 6000}, (_, i) => `(${900000 + i}, 1, 'bulk-${i}-${'y'.repeat(40)}', 0, now())`).join(', ')
    expect(values.length).toBeGreaterThan(300 * 1024)
    const {rows, errors} = await t.run(['begin', `insert into orders values ${values}`, `select id from orders where id >= 900000 order by id limit 1${PAD}`, 'select count(*)::int as n from orders where id >= 900000', 'rollback'])
    expect(errors).toEqual([])
    expect(rows[3]).toEqual([{n: 6000}])
  })
})
