/**
 * Names the session's own uncommitted change moved, attacked through the real tunnel with the
 * policy pack `none`. The catalog is read on a connection of its own, which sees only committed
 * state, so in a transaction that ran `ALTER TABLE orders RENAME TO orders_old; ALTER TABLE
 * customers RENAME TO orders; ALTER TABLE orders RENAME full_name TO status` the tunnel still read
 * `orders.status` as the clean order status. A plain column was caught by the server's row
 * description (it names customers' OID), but any expression the server does not attribute to a
 * column (`coalesce(status, 'x')`, `CASE`, a scalar subquery, `UNION ALL`, `ARRAY[…]`, `ROW(…)`,
 * `COLLATE`, a whole row) showed every customer's name and address in clear; so did a statement
 * prepared before the change and executed after it (the server analyses it again under the new
 * names), and the same change made by a DO block, a user function or a trigger. A temporary relation named like a table
 * (`CREATE TEMP VIEW orders AS SELECT id, full_name AS status FROM customers`) does the same for
 * the rest of the session, committed or not: it goes first on every search_path.
 *
 * Each step list runs in one session and rolls back; no full name or address may reach the client.
 */
import type pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {createMaskingFilterFactory} from '../../src/masking/filter.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import type {RawMessage} from '../helpers/raw-client.js'
import {withClient} from '../helpers/pg.js'
import {maskingFixture, NO_CONFIG, type MaskingFixture} from './fixture.js'
import {openUnseenCodeTunnel, rowsOf, simpleSend, type Send, type UnseenCodeTunnel} from './unseen-code.js'

const NAMES = sampleCustomers().flatMap((c) => [c.fullName, c.address])
const leaks = (seen: Buffer | string) => NAMES.filter((s) => Buffer.from(seen).includes(Buffer.from(s, 'utf8')))

/** A step sent with the extended protocol (unnamed statement). */
const EXT = 'ext:'
/** A step that runs the named protocol statement `name` (node-postgres Parses it once per connection, then only Binds it). */
const NAMED = 'named:'
const NAMED_TEXT = "select coalesce(status, 'x') as s from orders"

/** customers becomes `orders`, its full_name `status` and its address `total_cents`… in the open transaction. */
const SWAP = ['alter table orders rename to orders_old', 'alter table customers rename to orders', 'alter table orders rename column full_name to status']
const SWAP_DO = `do $$ begin ${SWAP.map((s) => `execute '${s}'`).join('; ')}; end $$`

/** The same change made by a user function, called directly or by a trigger on an ordinary write. */
const FUNCTIONS = [
  `create function ur_swap() returns int language plpgsql as $$ begin ${SWAP.map((x) => `execute '${x}'`).join('; ')}; return 1; end $$`,
  'create table ur_log (id int)',
  'create function ur_swap_trigger() returns trigger language plpgsql as $$ begin perform ur_swap(); return new; end $$',
  'create trigger ur_log_swaps after insert on ur_log for each row execute function ur_swap_trigger()',
  'create table ur_parts (id int, status text) partition by range (id)',
  'create table ur_parts_low partition of ur_parts for values from (0) to (100)',
  "insert into ur_parts values (1, 'open')",
]

const READS = [
  "select coalesce(status, 'x') as s from orders",
  'select case when true then status end as s from orders',
  'select (select status) as s from orders',
  "select status from orders union all select 'x'",
  'select array[status] as a from orders',
  'select row(status) as r from orders',
  'select status collate "C" as s from orders',
  "with q as (select status, address from orders) select * from q union select 'y', 'z'",
  'select o from orders o',
  'select status from orders union all select status from orders',
]

const STEPS: string[][] = [
  ...READS.map((read) => ['begin', ...SWAP, read, 'rollback']),
  ...READS.slice(0, 3).map((read) => ['begin', SWAP_DO, read, 'rollback']),
  [[...SWAP, READS[0]!].join('; ') + '; rollback'],
  ['begin', 'select ur_swap()', READS[0]!, 'rollback'],
  ['begin', 'select 1 from (select ur_swap()) s', READS[1]!, 'rollback'],
  ['begin', 'insert into ur_log values (1)', READS[2]!, 'rollback'],
  ['begin', ...SWAP, `${EXT}${READS[1]}`, 'rollback'],
  // The columns of one table swapped: full_name is called country, country full_name.
  ['begin', 'alter table customers rename full_name to tmp', 'alter table customers rename country to full_name', 'alter table customers rename tmp to country', "select coalesce(country, '') as s from customers", 'rollback'],
  ["prepare ur1 as select coalesce(status, 'x') as s from orders", 'begin', ...SWAP, 'execute ur1', 'rollback', 'deallocate ur1'],
  ["prepare ur2 as select coalesce(status, 'x') as s from orders", 'begin', ...SWAP, `${EXT}execute ur2`, 'rollback', 'deallocate ur2'],
  [`${NAMED}ur3`, 'begin', ...SWAP, `${NAMED}ur3`, 'rollback'],
  ['begin', ...SWAP, "declare ur4 cursor for select coalesce(status, 'x') as s from orders", 'fetch all from ur4', 'rollback'],
]

const TEMP_STEPS: string[][] = [
  // A temporary relation goes first on every search_path, committed or not; the catalog reads it
  // as pg_temp_N.orders beside public.orders, and took the name for public's.
  ['create temp view orders as select id, full_name as status from customers', READS[0]!, READS[1]!],
  ['create temp table orders as select id, address as status from customers', READS[0]!, 'select status from orders'],
  ['create temp table orders (id int, status text)', 'insert into orders select id, full_name from customers', READS[2]!],
  ['begin', 'create temp view orders as select id, full_name as status from customers', READS[0]!, 'rollback'],
]

/**
 * A table made or altered in the open transaction to inherit from a known one, or attached to it as
 * a partition, adds its rows to the parent's; the server describes their columns as the parent's,
 * which the catalog (committed state) holds clean, and that description counted as proof: the
 * child's names came out of `select status from orders` in clear, until the COMMIT. Copying names
 * into such a child, a table the catalog does not know yet, is now refused before it runs.
 */
const FILL_CHILD = (child: string) => `insert into ${child} select id + 1000, id, full_name, 0, now() from customers`
const CHILD_STEPS: string[][] = [
  ['begin', 'create table ur_kid () inherits (orders)', FILL_CHILD('ur_kid'), 'select status from orders', 'rollback'],
  ['begin', 'create table ur_kid (like orders)', FILL_CHILD('ur_kid'), 'alter table ur_kid inherit orders', 'select * from orders', 'rollback'],
  ['begin', 'create table ur_kid (like orders)', 'alter table ur_kid inherit orders', FILL_CHILD('ur_kid'), `${EXT}select status from orders`, 'rollback'],
  ['begin', 'create table ur_kid () inherits (orders)', FILL_CHILD('ur_kid'), 'declare ur5 cursor for select status from orders', 'fetch all from ur5', 'rollback'],
  ['begin', 'create table ur_kid () inherits (orders)', FILL_CHILD('ur_kid'), 'alter table orders add column ur_extra int', 'select * from orders', 'rollback'],
  [`create table ur_kid () inherits (orders); ${FILL_CHILD('ur_kid')}; select status from orders; rollback`],
  ['begin', 'create table ur_part (id int, status text)', 'insert into ur_part select id + 1000, address from customers', 'alter table ur_parts attach partition ur_part for values from (100) to (100000)', 'select status from ur_parts', 'rollback'],
  ['begin', 'create table ur_part partition of ur_parts for values from (100) to (100000)', 'insert into ur_part select id + 1000, full_name from customers', 'select id, status from ur_parts', 'rollback'],
  // Prepared before: the server plans it again over the parent and its new child.
  ['prepare ur6 as select status from orders', 'begin', 'create table ur_kid () inherits (orders)', FILL_CHILD('ur_kid'), 'execute ur6', 'rollback', 'deallocate ur6'],
  ['prepare ur7 as select status from orders where id > $1', 'begin', 'create table ur_kid () inherits (orders)', FILL_CHILD('ur_kid'), 'execute ur7(0)', 'rollback', 'deallocate ur7'],
]

describe('names moved by the session\'s uncommitted change', () => {
  let t: UnseenCodeTunnel

  beforeAll(async () => {
    t = await openUnseenCodeTunnel(FUNCTIONS)
  })
  afterAll(() => t?.close())

  const send: Send = (c, sql) => {
    if (sql.startsWith(EXT)) return c.query({text: sql.slice(EXT.length), values: []})
    if (sql.startsWith(NAMED)) return c.query({name: sql.slice(NAMED.length), text: NAMED_TEXT, values: []})
    return simpleSend(c, sql)
  }

  it('has no vacuous case: directly, each shows names or addresses', async () => {
    for (const steps of [...STEPS, ...TEMP_STEPS, ...CHILD_STEPS]) {
      const seen = await withClient(t.fx.db.url, async (c) => {
        const out: unknown[] = []
        for (const sql of steps) out.push(rowsOf(await send(c, sql)))
        return JSON.stringify(out)
      })
      expect(leaks(seen), steps.join('; ')).not.toEqual([])
    }
  })

  /**
   * The step lists that leaked. Each must run without an error, except a copy of names into a
   * lasting table, which is refused before it runs (lasting-marks.ts), with the rest of its transaction.
   */
  const leakingOf = async (all: string[][]): Promise<string[]> => {
    const leaking: string[] = []
    for (const steps of all) {
      const {seen, errors} = await t.run(steps, send)
      const copies = steps.some((sql) => /\binsert into (orders|ur_kid|ur_part)\b/.test(sql))
      if (copies) expect(errors[0], steps.join('; ')).toMatch(/masking refuses writing to (orders|ur_kid|ur_part): it copies values from public\.customers\.(full_name|address)/)
      expect(errors.filter((e) => !copies || !/masking refuses writing to|current transaction is aborted/.test(e)), steps.join('; ')).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    return leaking
  }

  it('masks what a name holds until the change is committed, over both protocols, prepared, in a cursor, and after a DO block, a function or a trigger', async () => {
    expect(await leakingOf(STEPS)).toEqual([])
  })

  it('masks it in pipelines of the extended protocol, with a Sync after each statement or one at the end', async () => {
    const leaking: string[] = []
    const ext = (sql: string) => [serialize.parse({text: sql}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({})]
    const steps = ['begin', ...SWAP, READS[0]!, READS[8]!, 'rollback']
    for (const between of ['sync', 'none'] as const) {
      const raw = await t.tunnel.raw()
      const got: RawMessage[] = []
      if (between === 'sync') {
        for (const sql of steps) {
          raw.send(...ext(sql), serialize.sync())
          got.push(...(await raw.untilReady()))
        }
      } else {
        raw.send(...steps.flatMap(ext), serialize.sync())
        got.push(...(await raw.untilReady()))
      }
      expect(got.filter((m) => m.code === 'E'), between).toEqual([])
      if (leaks(Buffer.concat(got.map((m) => m.body))).length > 0) leaking.push(between)
    }
    expect(leaking).toEqual([])
  })

  it('still shows the columns the server names as their origin, tables whose names stayed, and every read once the change is committed', async () => {
    const {rows, errors} = await t.run([
      'begin',
      'alter table customers rename column full_name to nm',
      "select coalesce(status, 'x') as s from orders order by id limit 1",
      'select id, country from customers order by id limit 1',
      "select coalesce(country, 'x') as l from customers order by id limit 1",
      'rollback',
      "select coalesce(country, 'x') as l from customers order by id limit 1",
    ])
    expect(errors).toEqual([])
    const status = await withClient(t.fx.db.url, async (c) => (await c.query('select status from orders order by id limit 1')).rows[0].status as string)
    expect(rows.slice(2)).toEqual([[{s: status}], [{id: 1, country: 'US'}], [{l: '[masked]'}], [], [{l: 'US'}]])
  })

  it('refuses expressions over moved names under onUntraceable: deny, and lets plain columns through to the server\'s description', () => {
    const factory = createMaskingFilterFactory({catalog: t.fx.catalog, masking: {...NO_CONFIG, onUntraceable: 'deny'}, identity: {groups: [], kind: 'human'}})
    expect(factory.checkMaskable(`${SWAP.join('; ')}; ${READS[0]}`)).toMatchObject({ok: false, reason: expect.stringMatching(/may mean another one/)})
    expect(factory.checkMaskable(`${SWAP.join('; ')}; select id, status from orders`)).toEqual({ok: true})
  })

  it('masks what a child or partition the transaction added holds, read through its parent, until the change is committed', async () => {
    expect(await leakingOf(CHILD_STEPS)).toEqual([])
    const factory = createMaskingFilterFactory({catalog: t.fx.catalog, masking: {...NO_CONFIG, onUntraceable: 'deny'}, identity: {groups: [], kind: 'human'}})
    expect(factory.checkMaskable(`create table ur_kid () inherits (orders); select status from orders`)).toMatchObject({ok: false, reason: expect.stringMatching(/may mean another one/)})
    expect(factory.checkMaskable(`alter table ur_kid inherit orders; select status from orders`)).toMatchObject({ok: false})
  })

  // Last: the catalog keeps the temporary relations these sessions made until it is next read, and
  // reads `orders` as any of them and public's meanwhile (more is masked, never less).
  it('masks what a temporary relation named like a table holds, for the rest of the session', async () => {
    expect(await leakingOf(TEMP_STEPS)).toEqual([])
  })
})

/**
 * Under `onUntraceable: deny` a statement the analysis can follow is let through, and its result
 * was masked only where a column was sensitive: when the server then described it otherwise (a view
 * renamed to a table's name, `ALTER VIEW v_contacts RENAME TO orders`, its `who` renamed `status`),
 * the analysis's proof was of another relation, and the view's full names came out in clear.
 */
describe('a result the server describes otherwise than the analysis, under onUntraceable: deny', () => {
  let fx: MaskingFixture
  let t: PipelineTunnel
  beforeAll(async () => {
    fx = await maskingFixture()
    t = await openPipelineTunnel(fx.db, 'policy: none\nmasking:\n  onUntraceable: deny')
  }, 120_000)
  afterAll(async () => {
    await t?.close()
    await fx?.close()
  })

  const VIEW_AS_TABLE = ['alter table orders rename to orders_old', 'alter view v_contacts rename to orders', 'alter view orders rename column who to status']
  const CASES: string[][] = [
    ['begin', ...VIEW_AS_TABLE, 'select status from orders', 'rollback'],
    ['begin', ...VIEW_AS_TABLE, 'select id, status from orders o order by id', 'rollback'],
    ['begin', ...VIEW_AS_TABLE, 'select s.status from (select status from orders) s', 'rollback'],
    ['begin', ...SWAP, 'select status from orders', 'rollback'],
  ]

  /** The cases that show a name, each run in one session: through the tunnel, or with `url` directly. */
  const runAll = async (url?: string): Promise<string[]> => {
    const leaking: string[] = []
    for (const steps of CASES) {
      const session = async (c: pg.Client): Promise<string> => {
        const out: unknown[] = []
        for (const sql of steps) out.push(await c.query(sql).then((r) => r.rows, (e: Error) => e.message))
        return JSON.stringify(out)
      }
      const seen = url ? await withClient(url, session) : await t.client().then(async (c) => session(c).finally(() => c.end()))
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    return leaking
  }

  it('has no vacuous case: directly, each shows names', async () => {
    expect(await runAll(fx.db.url)).toEqual(CASES.map((steps) => steps.join('; ')))
  })

  it('masks it as untraceable, as it would without deny', async () => {
    expect(await runAll(undefined)).toEqual([])
  })
})
