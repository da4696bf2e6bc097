/**
 * Keys whose parts are index expressions: `Key (lower(nm))=(alice novak) already exists`,
 * `Key (public.f_name(id))=(Alice Novak) is duplicated`, `Partition key of the failing row contains
 * (lower(nm)) = (…)`. The masker read a key part as a column's name, and one it did not know as a
 * clean column, so the value an expression computed from a sensitive column, or that a user function
 * the index calls read from any table, reached the client in clear. Through the tunnel
 * `dbgate connect` builds (policy pack none), such a value is now masked unless the expression is
 * proven clean, as a query's column would be; a clean table's expression keys keep their values.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'

const SETUP = `
create function f_name(i int) returns text language sql immutable as 'select full_name from public.customers where id = i';
create table people_u (id int, full_name text);
create unique index on people_u (lower(full_name));
insert into people_u select id, full_name from customers;
create table labels (id int, label text);
insert into labels values (1, 'a'), (1, 'b');
create table tags (name text);
create unique index on tags (lower(name));
insert into tags values ('Foo');
create table pairs (id int, label text);
create unique index on pairs ((id + 0), (label || ''));
insert into pairs values (1, 'a');
`

/** Each case: steps in one session; the last fails with a key in its detail. */
const CASES: [string, string[]][] = [
  ['a temporary column filled with names, under lower()', ['create temp table q1 (nm text)', 'create unique index on q1 (lower(nm))', 'insert into q1 select full_name from customers', 'insert into q1 select upper(full_name) from customers']],
  ['the same, failing in the statement that fills it', ['create temp table q2 (nm text)', 'create unique index on q2 (lower(nm))', 'insert into q2 select full_name from customers union all select full_name from customers']],
  ['an index built over duplicated names', ['create temp table q3 (nm text)', 'insert into q3 select full_name from customers', 'insert into q3 select upper(full_name) from customers', 'create unique index on q3 (lower(nm))']],
  ['a partition key', ['create temp table pt (nm text) partition by list (lower(nm))', "create temp table pt_x partition of pt for values in ('x')", 'insert into pt select full_name from customers']],
  ['a sensitive column of a lasting table', ['insert into people_u select id + 100, upper(full_name) from customers']],
  ['a user function the index calls', ['create unique index on labels (f_name(id))']],
  ['a user function the index calls, schema-qualified', ['create unique index on labels (public.f_name(id))']],
  ['an exclusion constraint calling a user function', ['alter table labels add constraint labels_x exclude using btree (public.f_name(id) with =)']],
]

describe('masking: index expressions in keys', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let names: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query(SETUP))
    names = (await withClient(fx.db.url, (c) => c.query('select full_name from customers'))).rows.map((r) => (r.full_name as string).toLowerCase())
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  /** The error the last step ends with; every earlier step must succeed. */
  async function failure(c: pg.Client, steps: string[]): Promise<pg.DatabaseError> {
    for (const s of steps.slice(0, -1)) await c.query(s)
    const e = await c.query(steps.at(-1)!).then(
      () => undefined,
      (err: pg.DatabaseError) => err,
    )
    expect(e).toBeDefined()
    return e!
  }

  const seenNames = (e: pg.DatabaseError) => names.filter((n) => JSON.stringify([e.message, e.detail, e.hint, e.where]).toLowerCase().includes(n))

  it.each(CASES)('the server prints the value (%s)', async (_label, steps) => {
    const e = await withClient(fx.db.url, async (c) => {
      await c.query('begin')
      try {
        return await failure(c, steps)
      } finally {
        await c.query('rollback')
      }
    })
    expect(e.detail).toMatch(/[Kk]ey .*\(.*\(/)
    expect(seenNames(e).length).toBeGreaterThan(0)
  })

  it.each(CASES)('masks the value through the tunnel (%s)', async (_label, steps) => {
    const c = await tunnel.client()
    const e = await failure(c, steps)
    expect(e.detail).toMatch(/[Kk]ey .*\(.*\) ?= ?\(\[(masked|redacted)\]\)/)
    expect(seenNames(e)).toEqual([])
    await c.end()
  })

  it('pairs each value with its column when a quoted column name holds ", "', async () => {
    const steps = ['create temp table kq (address text, "k, id" int, "a""b" text, unique (address, "k, id", "a""b"))', "insert into kq select address, 5, 'z' from customers where id = 1", "insert into kq select address, 5, 'z' from customers where id = 1"]
    const address = (await withClient(fx.db.url, (c) => c.query('select address from customers where id = 1'))).rows[0].address as string
    const parts = address.split(', ')
    expect(parts.length).toBeGreaterThan(1)
    const direct = await withClient(fx.db.url, (c) => failure(c, steps))
    expect(direct.detail).toContain(address)
    const c = await tunnel.client()
    const e = await failure(c, steps)
    expect(e.detail).toMatch(/^Key \(address, .*\)=\(.*\) already exists\.$/)
    for (const p of parts) expect(e.detail).not.toContain(p)
    await c.end()
  })

  it('keeps the values of keys over clean columns', async () => {
    const c = await tunnel.client()
    const tag = await failure(c, ["insert into tags values ('FOO')"])
    expect(tag.detail).toBe('Key (lower(name))=(foo) already exists.')
    const pair = await failure(c, ["insert into pairs values (1, 'a')"])
    expect(pair.detail).toBe("Key ((id + 0), (label || ''::text))=(1, a) already exists.")
    await c.query('create temp table qk ("k, id" int, "a""b" text, unique ("k, id", "a""b"))')
    await c.query("insert into qk values (5, 'z')")
    const quoted = await failure(c, ["insert into qk values (5, 'z')"])
    expect(quoted.detail).toBe('Key ("k, id", "a""b")=(5, z) already exists.')
    await c.end()
  })
})
