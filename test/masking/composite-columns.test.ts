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

/** A range's bounds and a multirange's ranges are values of the subtype, in a field, an array or a domain too. */
const RANGE_READS = [
  'select span from spans',
  'select many from spans',
  'select list from spans',
  'select inside from spans',
  'select dom from spans',
  'select rows from spans',
  'select lower(span) as l, upper(rows) as u from spans',
  'select (lower(span)).full_name from spans',
  'select range_merge(many)::text as m from spans',
  "select array_to_string(array[span], ',') as s from spans",
]

/** A view's row type names its columns as its definition does (`full_name as who`): only lineage knows what they hold. */
const VIEW_READS = ['select v from viewed', 'select (v).who from viewed', 'select m from viewed', 'select vs from viewed', 'select (vs[1]).who as w from viewed']

/** A table's row type whose table has a column of such a type (`h homes`, homes having `who contact_t`). */
const NESTED_READS = ['select h from holder', 'select (h).who from holder', 'select hh from holder2', 'select (hh[1]).h as x from holder2']

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
        create type size_r as range (subtype = size_t);
        create table sized (id int, sizes size_r_multirange);
        insert into sized values (1, size_r_multirange(size_r(row(1, 2, 'cm'), row(3, 4, 'cm'))));
        create table homes (id int primary key, who contact_t, home home_t, many contact_t[], dom contact_d, plain size_t);
        create table people (id int, full_name text);
        create table snaps (id int, person people);
        insert into snaps values (1, row(1, '${NAME}'));
        create type contact_r as range (subtype = contact_t);
        create type people_r as range (subtype = people);
        create type span_t as (around contact_r);
        create domain contact_rd as contact_r;
        create table spans (id int, span contact_r, many contact_r_multirange, list contact_r[], inside span_t, dom contact_rd, rows people_r);
        insert into spans values (1, contact_r(row('${NAME}', 'a'), row('${NAME}', 'b')), contact_r_multirange(contact_r(row('${NAME}', 'a'), row('${NAME}', 'b'))),
          array[contact_r(row('${NAME}', 'a'), row('${NAME}', 'b'))], row(contact_r(row('${NAME}', 'a'), row('${NAME}', 'b'))),
          contact_r(row('${NAME}', 'a'), row('${NAME}', 'b')), people_r(row(1, '${NAME}'), row(2, '${NAME}')));
        insert into people values (1, '${NAME}');
        create view people_v as select id, full_name as who from people;
        create materialized view people_m as select id, full_name as nm from people;
        create table viewed (id int, v people_v, m people_m, vs people_v[]);
        insert into viewed select 1, v, m, array[v] from people_v v, people_m m;
        insert into homes values (1, row('${NAME}', '${EMAIL}'), row(row('1 Main St', 'Springfield'), row('${NAME}', '${EMAIL}')),
                                  array[row('${NAME}', '${EMAIL}')::contact_t], row('${NAME}', '${EMAIL}'), row(3, 4, 'cm'));
        create table holder (id int, h homes);
        insert into holder select 1, h from homes h;
        create table holder2 (id int, hh holder[]);
        insert into holder2 select 1, array[x] from holder x;
        create table roles_kept (id int, r pg_authid, rs pg_authid[]);
        insert into roles_kept select 1, a, array[a] from pg_authid a where a.rolpassword is not null;
      `),
    )
    t = await openPipelineTunnel(db, '')
  })
  afterAll(async () => {
    await t?.close()
  })

  it('has no vacuous range, view or nested case: directly, each shows a name', async () => {
    await withClient(db.url, async (c) => {
      for (const sql of [...RANGE_READS, ...VIEW_READS, ...NESTED_READS]) expect(JSON.stringify((await c.query(sql)).rows), sql).toContain('Dora')
    })
  })

  it('masks a column whose type has a sensitive field, at any depth, in an array, a range, a multirange, through a domain, of a view\'s row type, or of a table\'s row type whose columns are of such a type', async () => {
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
      ...RANGE_READS,
      ...VIEW_READS,
      ...NESTED_READS,
    ]) {
      const text = JSON.stringify((await c.query(sql)).rows)
      expect(text, sql).not.toContain('Dora')
      expect(text, sql).not.toContain('dora.quill')
    }
    await c.end()
  })

  it('masks a column of a system relation\'s row type, which the catalog does not read: pg_authid holds password hashes', async () => {
    const hash = await withClient(db.url, async (c) => String((await c.query('select (r).rolpassword as p from roles_kept')).rows[0].p))
    expect(hash).toMatch(/^(SCRAM-SHA-256|md5)/)
    const tail = hash.slice(-16)
    const c = await t.client()
    for (const sql of ['select r from roles_kept', 'select (r).rolpassword as p from roles_kept', 'select rs from roles_kept', 'select r::text as t from roles_kept']) {
      expect(JSON.stringify((await c.query(sql)).rows), sql).not.toContain(tail)
    }
    await c.end()
  })

  it('still shows a composite column whose fields are clean, and a range of a clean type', async () => {
    const c = await t.client()
    expect((await c.query('select plain::text as p, (plain).unit from homes')).rows).toEqual([{p: '(3,4,cm)', unit: 'cm'}])
    expect((await c.query('select sizes::text as s, lower(sizes)::text as l from sized')).rows).toEqual([{s: '{["(1,2,cm)","(3,4,cm)")}', l: '(1,2,cm)'}])
    await c.end()
  })
})
