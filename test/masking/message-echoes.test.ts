/**
 * Values the server prints in an error without quoting them, attacked through the real tunnel with
 * the policy pack `none`:
 *
 * - numbers it computed from a sensitive column, beside dashes, dots or parentheses where a
 *   "number standing alone" was not looked for: `make_date(2000, <ssn as int>, 1)` fails with
 *   `date field value out of range: 2000-989846850-01`, `%g` prints `9.89847e+08`, `get_byte`
 *   prints the valid range `0..N`;
 * - `Failing row contains (…)` of a partition whose columns stand in another order than its
 *   parent's: PostgreSQL prints the row in the order of the table the statement named while the
 *   error names the partition, so masking by the partition's order put a full name under a clean
 *   column.
 *
 * - a row of a table that a foreign key cascades into (`UPDATE par SET id = …` writes `kid.pid`),
 *   whose CHECK constraint or index expression fails quoting its other columns, from a statement
 *   that names only a table without sensitive columns.
 *
 * Each case is first shown to reveal the value directly.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

const CUSTOMERS = sampleCustomers()
const digitsOf = (s: string) => s.replace(/\D/g, '')
/** The first five digits of customer `id`'s SSN: what a numeric echo of it would show. */
const ssnHead = (id: number) => digitsOf(CUSTOMERS.find((c) => c.id === id)!.ssn).slice(0, 5)
const SSN = "replace(ssn, '-', '')"

interface NumberCase {
  sql: string
  /** The digits that must not reach the client. */
  secret: string
}

const NUMBERS: NumberCase[] = [
  {sql: `select make_date(2000, ${SSN}::int, 1) from customers where id = 1`, secret: ssnHead(1)},
  {sql: `select make_date(2000, 1, ${SSN}::int) from customers where id = 2`, secret: ssnHead(2)},
  {sql: `select make_timestamp(2000, ${SSN}::int, 1, 0, 0, 0) from customers where id = 3`, secret: ssnHead(3)},
  {sql: `select make_timestamptz(2000, 1, ${SSN}::int, 0, 0, 0) from customers where id = 4`, secret: ssnHead(4)},
  // %g: six significant digits before the exponent
  {sql: `select make_time(0, 0, ${SSN}::float8) from customers where id = 5`, secret: ssnHead(5)},
  {sql: `select setseed(${SSN}::float8) from customers where id = 6`, secret: ssnHead(6)},
  {sql: `select make_timestamptz(2000, 1, 1, 0, 0, ${SSN}::float8) from customers where id = 7`, secret: ssnHead(7)},
  // the upper end of a valid range, after `..`: the length of a value built from the SSN
  {sql: `select get_byte(repeat('x', substr(${SSN}, 1, 5)::int)::bytea, 1000000) from customers where id = 8`, secret: String(Number(ssnHead(8)) - 1)},
  {sql: `select set_bit(repeat('x', substr(${SSN}, 1, 5)::int)::bytea, 1000000000, 1) from customers where id = 9`, secret: String(Number(ssnHead(9)) * 8 - 1)},
]

/** Partitions and children whose columns stand in another order than their parent's. */
const HIERARCHIES = `
create table pr (id int, full_name text, note text) partition by list (id);
create table pr1 (full_name text, id int, note text);
alter table pr attach partition pr1 for values in (1);
insert into pr select 1, full_name, 'ok' from customers where id = 11;
alter table pr add constraint pr_note check (note <> 'boom');
create table pn (id int, note text, full_name text) partition by list (id);
create table pn1 (full_name text, note text, id int);
alter table pn attach partition pn1 for values in (1);
insert into pn select 1, 'ok', full_name from customers where id = 12;
alter table pn alter column note set not null;
create table pm (id int, full_name text, note text) partition by range (id);
create table pm1 (note text, id int, full_name text) partition by list (id);
create table pm11 (id int, note text, full_name text);
alter table pm1 attach partition pm11 for values in (1);
alter table pm attach partition pm1 for values from (0) to (10);
insert into pm select 1, full_name, 'ok' from customers where id = 13;
alter table pm add constraint pm_note check (note <> 'boom');
create table ip (id int, full_name text, note text constraint ip_note check (note <> 'boom'));
create table ip1 (note text constraint ip_note check (note <> 'boom'), full_name text, id int);
insert into ip1 select 'ok', full_name, 1 from customers where id = 14;
alter table ip1 inherit ip;
create table vt (id int, code varchar(7), full_name varchar(7));
create table par (id int primary key);
insert into par select id from customers;
create table kid (pid int default 0 references par on update cascade on delete set default, full_name text, address text);
insert into kid select id, full_name, address from customers;
alter table kid add constraint kid_moved check (pid < 1000 or full_name::int > 0) not valid;
alter table kid add constraint kid_orphan check (pid <> 0 or address::numeric > 0) not valid;
create table top (id int primary key);
insert into top select id from customers;
create table mid (id int primary key references top on update cascade);
insert into mid select id from customers;
create table leaf (mid int references mid on update cascade, full_name text);
insert into leaf select id, full_name from customers;
create index leaf_moved on leaf ((case when mid >= 1000 then full_name::int end));
create table ihp (id int, note text);
create table ihc (full_name text, constraint ihc_note check (note <> 'boom' or full_name::int > 0)) inherits (ihp);
insert into ihc (id, note, full_name) select id, 'ok', full_name from customers;
create table ihg (id int, note text);
create table ihm () inherits (ihg);
create table ihl (full_name text, constraint ihl_note check (note <> 'boom' or full_name::int > 0)) inherits (ihm);
insert into ihl (id, note, full_name) select id, 'ok', full_name from customers;
create domain person_t as text;
create table people (id int, full_name person_t);
insert into people select id, full_name from customers;
create materialized view mv_numbered as select id from customers where full_name::int > 0 with no data;
`

const ROWS: {sql: string; name: string}[] = [
  {sql: "update pr set note = 'boom'", name: CUSTOMERS[10]!.fullName},
  {sql: 'update pn set note = null', name: CUSTOMERS[11]!.fullName},
  {sql: "update pm set note = 'boom'", name: CUSTOMERS[12]!.fullName},
  {sql: "update pm1 set note = 'boom'", name: CUSTOMERS[12]!.fullName},
  {sql: "update ip set note = 'boom'", name: CUSTOMERS[13]!.fullName},
]

/**
 * Statements that name no table with sensitive columns, yet run expressions on the rows of one:
 * an UPDATE of a parent whose child has columns of its own, maintenance of every table, a
 * materialized view's refresh (its filter reads what its output does not have), and a domain's
 * new constraint (checked on every column of that domain).
 */
const UNNAMED: {sql: string; setup?: string}[] = [
  {sql: "update ihp set note = 'boom' where id = 1"},
  {sql: "update ihg set note = 'boom'"},
  {sql: 'analyze', setup: 'create statistics st_names on ((full_name)::int) from customers'},
  {sql: 'vacuum analyze', setup: 'create statistics st_addresses on ((address)::numeric) from customers'},
  {sql: 'vacuum (analyze, verbose)'},
  {sql: 'refresh materialized view mv_numbered'},
  {sql: 'alter domain person_t add constraint person_numeric check (value::int > 0)'},
  {sql: 'alter domain person_t validate constraint person_later', setup: 'alter domain person_t add constraint person_later check (value::numeric > 0) not valid'},
]
const FULL_NAMES = CUSTOMERS.flatMap((c) => [c.fullName, c.address])

/** Statements that name only a table without sensitive columns, whose foreign keys cascade into one that has them. */
const CASCADES: {sql: string; name: string}[] = [
  {sql: 'update par set id = 5001 where id = 1', name: CUSTOMERS[0]!.fullName},
  {sql: 'delete from par where id = 2', name: CUSTOMERS[1]!.address},
  {sql: 'merge into par p using (select 3 as id) s on p.id = s.id when matched then update set id = 5003', name: CUSTOMERS[2]!.fullName},
  {sql: 'insert into par values (4) on conflict (id) do update set id = 5004', name: CUSTOMERS[3]!.fullName},
  {sql: 'update top set id = 5005 where id = 5', name: CUSTOMERS[4]!.fullName},
]

describe('values an error prints unquoted', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let relay: Awaited<ReturnType<typeof recordingRelay>>

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query(HIERARCHIES))
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
    relay = await recordingRelay(tunnel.info.port)
  })

  afterAll(async () => {
    await relay?.close()
    await tunnel?.close().catch(() => {})
    await fx?.close()
  })

  /** The error `sql` gives, as text, and every byte the client received. */
  async function failing(sql: string, binary = false): Promise<{error: string; seen: Buffer}> {
    const seen: Seen = {bytes: [], strings: []}
    const c = await relayedClient(tunnel.info.url, relay, seen, {binary} as Partial<pg.ClientConfig>)
    let error = ''
    try {
      await c.query(binary ? ({text: sql, queryMode: 'extended'} as pg.QueryConfig) : sql)
    } catch (e) {
      const x = e as pg.DatabaseError
      error = [x.message, x.detail, x.hint, x.where].filter(Boolean).join(' | ')
    }
    await c.end()
    return {error, seen: all(seen)}
  }

  async function direct(sql: string): Promise<string> {
    return withClient(fx.db.url, async (c) => {
      try {
        await c.query(sql)
        return ''
      } catch (e) {
        const x = e as pg.DatabaseError
        return [x.message, x.detail].filter(Boolean).join(' | ')
      }
    })
  }

  it('has no vacuous case: directly, each error shows the value', async () => {
    for (const {sql, secret} of NUMBERS) expect(digitsOf(await direct(sql)), sql).toContain(secret)
    for (const {sql, name} of [...ROWS, ...CASCADES]) expect(await withClient(fx.db.url, async (c) => {
      await c.query('begin')
      try {
        await c.query(sql)
        return ''
      } catch (e) {
        const x = e as pg.DatabaseError
        return [x.message, x.detail].filter(Boolean).join(' | ')
      } finally {
        await c.query('rollback')
      }
    }), sql).toContain(name)
  })

  it('masks numbers computed from sensitive values, whatever stands beside them', async () => {
    for (const {sql, secret} of NUMBERS) {
      for (const binary of [false, true]) {
        const {error, seen} = await failing(sql, binary)
        expect(error, sql).not.toBe('')
        expect(digitsOf(error), `${sql}: ${error}`).not.toContain(secret)
        expect(seen.includes(Buffer.from(secret)), sql).toBe(false)
      }
    }
  })

  it('keeps type modifiers and the numbers the statement wrote', async () => {
    const {error} = await failing("select 'abcdef'::varchar(3)::char(2)::numeric(5, 2)")
    expect(error).toMatch(/invalid input syntax for type numeric/)
    // the modifier comes from the catalog, not the statement
    const tooLong = await failing('insert into vt (id, full_name) select id, full_name from customers where id = 1')
    expect(tooLong.error).toBe('value too long for type character varying(7)')
  })

  it('masks what an error of a table that foreign keys cascade into echoes', async () => {
    for (const {sql, name} of CASCADES) {
      const {error, seen} = await failing(sql)
      expect(error, sql).toMatch(/invalid input syntax/)
      expect(error, sql).not.toContain(name)
      expect(seen.includes(Buffer.from(name)), sql).toBe(false)
    }
  })

  it('masks what expressions on the rows of a table the statement does not name echo', async () => {
    for (const {sql, setup} of UNNAMED) {
      if (setup) await withClient(fx.db.url, (c) => c.query(setup))
      expect(await direct(sql), sql).toMatch(/invalid input syntax/)
      const {error, seen} = await failing(sql)
      expect(error, sql).toMatch(/invalid input syntax/)
      expect(FULL_NAMES.filter((n) => error.includes(n) || seen.includes(Buffer.from(n))), sql).toEqual([])
    }
  })

  it('masks a failing row by every column order it may be printed in', async () => {
    for (const {sql, name} of ROWS) {
      const {error, seen} = await failing(sql)
      expect(error, sql).toMatch(/Failing row contains/)
      expect(error, sql).not.toContain(name)
      expect(seen.includes(Buffer.from(name)), sql).toBe(false)
    }
  })
})
