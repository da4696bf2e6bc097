/**
 * Sequences set back through the tunnel. `setval` moves a sequence to a value the statement
 * chooses: set back, the application's next inserts take keys that exist and fail until someone
 * sets it right, and one statement over pg_class resets every sequence. The default pack holds
 * every such call for a reviewer (default.sequence-reset-approval); `nextval` stays allowed. The
 * sequences are read back directly afterwards, not just the error.
 */
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {policyCheckOutput} from '../helpers/policy-check.js'

type Refusal = Error & {code?: string}

describe('sequences set back through the tunnel', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  /** Each sequence's last value, as the server has it. */
  const positions = () => direct(async (c) => (await c.query('select sequencename::text as name, last_value::int as at from pg_sequences order by 1')).rows as {name: string; at: number}[])

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct(async (c) => {
      await c.query('create table orders (id serial primary key, note text)')
      await c.query("insert into orders (note) select 'order ' || g from generate_series(1, 50) g")
      await c.query('create sequence invoice_seq start 1000')
      await c.query('select nextval($1)', ['invoice_seq'])
      await c.query('create view seq_rewinder as select setval(c.oid, 1) as at from pg_class c where c.relkind = $$S$$')
    })
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  it('holds every call that sets a sequence for a reviewer, and every sequence stays where it was', async () => {
    const before = await positions()
    expect(before).toEqual([{name: 'invoice_seq', at: 1000}, {name: 'orders_id_seq', at: 50}])
    const statements: [string, unknown[]?][] = [
      ["select setval('orders_id_seq', 1)"],
      ["select pg_catalog.setval('orders_id_seq'::regclass, 1, false)"],
      ['select setval($1::regclass, $2)', ['orders_id_seq', 1]],
      ["select setval(c.oid, 1) from pg_class c where c.relkind = 'S'"],
      ["select id, setval('invoice_seq', id) from orders where id = 3"],
      ["with r as (select setval('orders_id_seq', 1)) select * from r"],
      ["explain analyze select setval('orders_id_seq', 1)"],
      ["prepare rewind as select setval('orders_id_seq', 1)"],
      ['select * from seq_rewinder'],
    ]
    const c = await t.client()
    const outcomes: [string, Refusal | undefined][] = []
    for (const [sql, params] of statements) {
      outcomes.push([sql, (await c.query(sql, params).then(() => undefined, (error: Refusal) => error)) as Refusal | undefined])
    }
    await c.end()
    expect(await positions()).toEqual(before)
    for (const [sql, e] of outcomes) {
      expect(e, sql).toBeInstanceOf(Error)
      expect(e!.code, sql).toBe('42501')
      expect(e!.message, sql).toMatch(/requires approval by a reviewer \(rule default\.sequence-reset-approval\): this statement sets a sequence to a value it chooses/)
    }
  })

  it('still lets the application take the next value', async () => {
    const c = await t.client()
    const {rows} = await c.query("select nextval('orders_id_seq')::int as id")
    await c.end()
    expect(rows).toEqual([{id: 51}])
  })

  it('shows the rule in `dbgate policy check`', async () => {
    const out = await policyCheckOutput("select setval('orders_id_seq', 1); select nextval('orders_id_seq')")
    expect(out).toContain('[1] APPROVAL select (write)  rule default.sequence-reset-approval')
    expect(out).toContain('[2] ALLOW    select (write)  rule default.allow-write')
    expect(out).toMatch(/pg_catalog\.setval sets a sequence to a value the statement chooses/)
    expect(out).toContain('`- match: {class: write, command: function, functions: [pg_catalog.setval]}` with `action: allow`')
  })
})
