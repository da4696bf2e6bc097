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

/**
 * The server computes a generated column for the proposed row too: `excluded.g` of `g … AS (label)`
 * is the proposed label. Read as the table's own `g`, clean, it left `note` clean, full of names.
 */
const GENERATED_SETS = ['note = excluded.g', 'note = excluded.v', "note = excluded.g || ''", 'note = (select excluded.v)', "(note, label) = (excluded.g, 'tag')"]

describe('upserts through excluded', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase('upsertexcl')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query('create table tags (id int primary key, label text, note text)')
      // One table per case: a column once marked stays so for the tunnel's lifetime.
      for (let i = 0; i < GENERATED_SETS.length; i++) {
        await c.query(`create table gen_tags_${i} (id int primary key, label text, note text, g text generated always as (label) stored, v text generated always as (label || '') virtual);
          insert into gen_tags_${i} (id, label) select id, 'tag' from customers`)
      }
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

  it('has no vacuous generated case: directly, each writes names into note', async () => {
    await withClient(db.url, async (c) => {
      for (const [i, set] of GENERATED_SETS.entries()) {
        await c.query(`insert into gen_tags_${i} (id, label) select id, full_name from customers on conflict (id) do update set ${set}`)
        expect((await c.query(`select note from gen_tags_${i} where id = 1`)).rows[0].note, set).toMatch(/^[A-Z][a-z]+ [A-Z]/)
        await c.query(`update gen_tags_${i} set note = null, label = 'tag'`)
      }
    })
  })

  it('marks a column an upsert fills from a generated column of the proposed row', async () => {
    const c = await t.client()
    const names = (await withClient(db.url, (d) => d.query('select full_name from customers'))).rows.map((r) => r.full_name as string)
    const leaking: string[] = []
    for (const [i, set] of GENERATED_SETS.entries()) {
      await c.query(`insert into gen_tags_${i} (id, label) select id, full_name from customers on conflict (id) do update set ${set}`)
      const seen = JSON.stringify((await c.query(`select id, note from gen_tags_${i} order by id`)).rows)
      if (names.some((n) => seen.includes(n))) leaking.push(set)
    }
    expect(leaking).toEqual([])
  })
})
