/**
 * `INSERT … ON CONFLICT DO UPDATE SET status = excluded.status`, the upsert every ORM writes, read
 * `excluded` as a relation it did not know: the column it filled counted as filled with untraceable
 * values, and was masked for the tunnel's lifetime (`select status from orders` answered
 * `[masked]` on every connection). `excluded` is the row the statement proposed: each column
 * carries what the statement put there, so an upsert of clean values leaves the column clean,
 * and one that puts a name into a column no read masks (`select …, full_name … on conflict … set
 * note = excluded.full_name`) is refused, through the tunnel.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/**
 * The server computes a generated column for the proposed row too: `excluded.g` of `g … AS (full_name)`
 * is the proposed name. Read as the table's own `g`, it let names into `note`.
 */
const GENERATED_SETS = ['note = excluded.g', 'note = excluded.v', "note = excluded.g || ''", 'note = (select excluded.v)', "(note, full_name) = (excluded.g, 'tag')"]

describe('upserts through excluded', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase('upsertexcl')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query('create table tags (id int primary key, full_name text, note text)')
      // One table per case: a column once marked stays so for the tunnel's lifetime.
      for (let i = 0; i < GENERATED_SETS.length; i++) {
        await c.query(`create table gen_tags_${i} (id int primary key, full_name text, note text, g text generated always as (full_name) stored, v text generated always as (full_name || '') virtual);
          insert into gen_tags_${i} (id, full_name) select id, 'tag' from customers`)
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

  it('refuses an upsert that puts a name into a column no read masks, and lets one keep it in a name column', async () => {
    const c = await t.client()
    await c.query("insert into tags (id, full_name) values (1, 'a'), (2, 'b')")
    await c.query('insert into tags (id, full_name) select 1, full_name from customers where id = 1 on conflict (id) do update set full_name = excluded.full_name')
    await expect(c.query('insert into tags (id, full_name) select 1, full_name from customers where id = 1 on conflict (id) do update set note = excluded.full_name')).rejects.toThrow(
      /masking refuses writing to public\.tags: it copies values from public\.customers\.full_name into public\.tags\.note/,
    )
    const other = await t.client()
    const r = await other.query('select id, note from tags order by id')
    expect(r.rows).toEqual([
      {id: 1, note: null},
      {id: 2, note: null},
    ])
  })

  it('has no vacuous generated case: directly, each writes names into note', async () => {
    await withClient(db.url, async (c) => {
      for (const [i, set] of GENERATED_SETS.entries()) {
        await c.query(`insert into gen_tags_${i} (id, full_name) select id, full_name from customers on conflict (id) do update set ${set}`)
        expect((await c.query(`select note from gen_tags_${i} where id = 1`)).rows[0].note, set).toMatch(/^[A-Z][a-z]+ [A-Z]/)
        await c.query(`update gen_tags_${i} set note = null, full_name = 'tag'`)
      }
    })
  })

  it('refuses an upsert that fills a column from a generated column of the proposed row', async () => {
    const c = await t.client()
    const names = (await withClient(db.url, (d) => d.query('select full_name from customers'))).rows.map((r) => r.full_name as string)
    const leaking: string[] = []
    for (const [i, set] of GENERATED_SETS.entries()) {
      await expect(c.query(`insert into gen_tags_${i} (id, full_name) select id, full_name from customers on conflict (id) do update set ${set}`), set).rejects.toThrow(/masking refuses writing to public\.gen_tags_\d: it copies values from .*public\.gen_tags_\d\.note/)
      const seen = JSON.stringify((await withClient(db.url, (d) => d.query(`select id, note from gen_tags_${i} order by id`))).rows)
      if (names.some((n) => seen.includes(n))) leaking.push(set)
    }
    expect(leaking).toEqual([])
  })
})
