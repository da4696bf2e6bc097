/**
 * A column of a composite type (`create type contact_t as (full_name text, email text)`) holds its
 * fields' values in every row; classified by the column's own name (`home`, `who`) it counted as
 * clean, and names, e-mail addresses and card numbers came back in clear through the tunnel.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

const NAME = 'Dora Quill'
const EMAIL = 'dora.quill@example.com'

describe('columns of composite types', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase('compositecols')
    await withClient(db.url, (c) =>
      c.query(`
        create type contact_t as (full_name text, email text);
        create type street_t as (street text, city text);
        create type home_t as (street street_t, owner contact_t);
        create domain contact_d as contact_t;
        create type size_t as (width int, height int, unit text);
        create table homes (id int primary key, who contact_t, home home_t, many contact_t[], dom contact_d, plain size_t);
        create table people (id int, full_name text);
        create table snaps (id int, person people);
        insert into snaps values (1, row(1, '${NAME}'));
        insert into homes values (1, row('${NAME}', '${EMAIL}'), row(row('1 Main St', 'Springfield'), row('${NAME}', '${EMAIL}')),
                                  array[row('${NAME}', '${EMAIL}')::contact_t], row('${NAME}', '${EMAIL}'), row(3, 4, 'cm'));
      `),
    )
    t = await openPipelineTunnel(db, '')
  })
  afterAll(async () => {
    await t?.close()
  })

  it('masks a column whose type has a sensitive field, at any depth, in an array or through a domain', async () => {
    const c = await t.client()
    for (const sql of [
      'select who from homes',
      'select home from homes',
      'select many from homes',
      'select dom from homes',
      'select who::text from homes',
      'select (home).owner from homes',
      'select h.* from homes h',
      'select row_to_json(h) from homes h',
      'select person from snaps',
      'select (person).full_name from snaps',
    ]) {
      const text = JSON.stringify((await c.query(sql)).rows)
      expect(text, sql).not.toContain('Dora')
      expect(text, sql).not.toContain('dora.quill')
    }
    await c.end()
  })

  it('still shows a composite column whose fields are clean', async () => {
    const c = await t.client()
    expect((await c.query('select plain::text as p, (plain).unit from homes')).rows).toEqual([{p: '(3,4,cm)', unit: 'cm'}])
    await c.end()
  })
})
