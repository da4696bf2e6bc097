/**
 * `INSERT … ON CONFLICT DO UPDATE SET status = excluded.status`, the upsert every ORM writes, read
 * `excluded` as a relation it did not know: the column it filled counted as filled with untraceable
 * values, and was masked for the tunnel's lifetime (`select status from orders` answered
 * `[masked]` on every connection). `excluded` is the row the statement proposed: each column
 * carries what the statement put there, so an upsert of clean values leaves the column clean,
 * and one of a name (`select …, full_name … on conflict … set status = excluded.status`) still
 * marks it, through the tunnel.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

describe('upserts through excluded', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase('upsertexcl')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query('create table tags (id int primary key, label text, note text)')
    })
    t = await openPipelineTunnel(db, '')
  })
  afterAll(async () => {
    await t?.close()
  })

  it('leaves a column clean when the values it upserts are', async () => {
    const c = await t.client()
    await c.query("insert into orders (id, customer_id, status, total_cents, placed_at) values (1, 1, $1, 1, now()) on conflict (id) do update set status = excluded.status", ['shipped'])
    await c.query("insert into orders (id, customer_id, status, total_cents, placed_at) values (2, 1, 'paid', 1, now()) on conflict (id) do update set status = excluded.status, total_cents = excluded.total_cents + 1")
    const other = await t.client()
    const r = await other.query('select id, status from orders where id in (1, 2) order by id')
    expect(r.rows).toEqual([{id: 1, status: 'shipped'}, {id: 2, status: 'paid'}])
  })

  it('marks a column when the value it upserts is a name', async () => {
    const c = await t.client()
    await c.query("insert into tags (id, label) values (1, 'a'), (2, 'b')")
    await c.query('insert into tags (id, label) select 1, full_name from customers where id = 1 on conflict (id) do update set note = excluded.label')
    const other = await t.client()
    const r = await other.query('select id, note from tags order by id')
    expect(r.rows).toEqual([
      {id: 1, note: '[redacted]'},
      {id: 2, note: null},
    ])
  })
})
