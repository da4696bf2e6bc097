/**
 * Definitions the catalog keeps that later fill rows or are read back as clean catalog text,
 * attacked through the real tunnel with the policy pack `none`:
 *
 * - a column or domain DEFAULT that runs SQL text (`query_to_xml('select full_name from
 *   customers', …)`): every later INSERT that leaves the column out fills it with values no
 *   statement names, and `ADD COLUMN … DEFAULT` fills every existing row at once;
 * - a partition bound computed the same way, kept in the catalog as a constant;
 * - a rewrite rule whose actions, written in the CREATE RULE the tunnel sees, copy sensitive
 *   columns into another table whenever its event fires;
 * - `SET x FROM CURRENT` in ALTER ROLE, ALTER DATABASE, CREATE or ALTER FUNCTION, which copies
 *   a setting that a DO block set to a name into pg_db_role_setting or pg_proc.proconfig, read by
 *   every session as a definition (the session's own settings are masked after such code ran).
 *
 * Each step list runs in one session; no full name or address may reach the client.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

const NAMES = sampleCustomers().flatMap((c) => [c.fullName, c.address])
const XML = (col: string) => `query_to_xml('select ${col} from customers', true, false, '')::text`
const UNSEEN = (id: number) => `do $$ begin perform set_config('x.copied', (select full_name from customers where id = ${id}), false); end $$`

const DEFAULTS: string[][] = [
  [`create table d1 (id int, a text default ${XML('full_name')})`, 'insert into d1 (id) values (1)', 'select a from d1'],
  ['create table d2 (id int)', 'insert into d2 values (1)', `alter table d2 add column a text default ${XML('address')}`, 'select a from d2'],
  ['create table d3 (id int, a text)', `alter table d3 alter column a set default ${XML('full_name')}`, 'insert into d3 default values', 'select a from d3'],
  ['create table d4 (id int, a text)', 'insert into d4 values (1, null)', `alter table d4 alter column a set default ${XML('full_name')}`, 'update d4 set a = default', 'select a from d4'],
  [`create table d5 (id int, a xml default table_to_xml('customers', true, false, ''))`, 'insert into d5 (id) values (1)', 'select a::text from d5'],
  [`create domain dd6 as text default ${XML('full_name')}`, 'create table d6 (id int, a dd6)', 'insert into d6 (id) values (1)', 'select a from d6'],
  ['create domain dd7 as text', `alter domain dd7 set default ${XML('address')}`, 'create table d7 (id int, a dd7)', 'insert into d7 (id) values (1)', 'select a from d7'],
  [`create table d8 (id int, a text default ${XML('full_name')})`, 'merge into d8 t using (select 1 as id) s on false when not matched then insert (id) values (s.id)', 'select a from d8'],
  // in one text
  [`create table d9 (id int, a text default ${XML('full_name')}); insert into d9 (id) values (1); select a from d9`],
]

/** A partition bound is evaluated once and kept as a constant: pg_get_expr(relpartbound), pg_get_partition_constraintdef, psql's `\\d+`. */
const BOUNDS: string[][] = [
  ['create table b1 (a text) partition by list (a)', `create table b11 partition of b1 for values in ((${XML('full_name')}))`, "select pg_get_expr(relpartbound, oid) from pg_class where relname = 'b11'"],
  ['create table b2 (a text) partition by list (a)', 'create table b21 (a text)', `alter table b2 attach partition b21 for values in ((${XML('address')}))`, "select pg_get_partition_constraintdef('b21'::regclass)"],
  ['create table b3 (a text) partition by range (a)', `create table b31 partition of b3 for values from (minvalue) to ((${XML('full_name')}))`, "select pg_get_expr(relpartbound, oid) from pg_class where relname = 'b31'"],
]

const RULES: string[][] = [
  ['create table r1 (id int, a text)', 'create table r1e (id int)', 'create rule r1r as on insert to r1e do also insert into r1 select id, full_name from customers', 'insert into r1e values (1)', 'select a from r1'],
  ['create table r2 (id int, a text)', 'insert into r2 values (1, null)', 'create table r2e (id int)', 'create rule r2r as on insert to r2e do also update r2 set a = (select address from customers where id = new.id)', 'insert into r2e values (1)', 'select a from r2'],
  ['create table r3 (id int, a text)', 'create table r3e (id int)', 'create rule r3r as on update to r3e do instead insert into r3 select c.id, c.full_name from customers c', 'insert into r3e values (1)', 'update r3e set id = 2', 'select a from r3'],
]

const FROM_CURRENT: string[][] = [
  [UNSEEN(1), 'alter role current_user set x.copied from current', 'select setconfig from pg_db_role_setting', 'select rolconfig from pg_roles'],
  [UNSEEN(2), 'alter database postgres set x.copied from current', 'select setconfig from pg_db_role_setting'],
  [UNSEEN(3), 'create function fc3() returns int language sql set x.copied from current as $$select 1$$', "select proconfig from pg_proc where proname = 'fc3'"],
  ['create function fc4() returns int language sql as $$select 1$$', UNSEEN(4), 'alter function fc4() set x.copied from current', "select pg_get_functiondef('fc4'::regproc)"],
  [UNSEEN(5), 'create procedure fc5() language sql set x.copied from current as $$select 1$$', "select proconfig from pg_proc where proname = 'fc5'"],
  // in one text with the code that set it
  [`${UNSEEN(6)}; alter role current_user in database postgres set x.copied from current`, 'select setconfig from pg_db_role_setting'],
]

describe('definitions that fill rows or hold copies of settings', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let relay: Awaited<ReturnType<typeof recordingRelay>>

  beforeAll(async () => {
    fx = await maskingFixture()
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
    relay = await recordingRelay(tunnel.info.port)
  })

  afterAll(async () => {
    await withClient(fx.db.url, (c) => c.query('alter role current_user reset all; alter database postgres reset all')).catch(() => {})
    await relay?.close()
    await tunnel?.close().catch(() => {})
    await fx?.close()
  })

  async function run(steps: string[]): Promise<{seen: Buffer; errors: string[]}> {
    const seen: Seen = {bytes: [], strings: []}
    const c = await relayedClient(tunnel.info.url, relay, seen)
    const errors: string[] = []
    for (const sql of steps) {
      try {
        await c.query(sql)
      } catch (error) {
        errors.push(`${sql}: ${String(error)}`)
      }
    }
    await c.end()
    return {seen: all(seen), errors}
  }

  const leaks = (seen: Buffer) => NAMES.filter((s) => seen.includes(Buffer.from(s, 'utf8')))

  it('has no vacuous case: directly, each shows names or addresses', async () => {
    for (const [i, steps] of [...DEFAULTS, ...BOUNDS, ...RULES, ...FROM_CURRENT].entries()) {
      const seen = await withClient(fx.db.url, async (c) => {
        await c.query('begin')
        const out: unknown[] = []
        for (const sql of steps) {
          const r = await c.query(sql)
          out.push(Array.isArray(r) ? r.map((x: pg.QueryResult) => x.rows) : r.rows)
        }
        await c.query('rollback')
        return Buffer.from(JSON.stringify(out))
      })
      expect(leaks(seen), `${i}: ${steps.join('; ')}`).not.toEqual([])
    }
  })

  it('refuses a default or a partition bound that is not proven clean', async () => {
    for (const steps of [...DEFAULTS, ...BOUNDS]) {
      const {seen, errors} = await run(steps)
      expect(errors.join('\n'), steps.join('; ')).toMatch(/DEFAULT, or a partition bound, that is not proven clean/)
      expect(leaks(seen), steps.join('; ')).toEqual([])
    }
  })

  it('keeps defaults and bounds that are constants and server facts', async () => {
    const {errors} = await run([
      "create table ok (id serial, a text default 'x', b timestamptz default now(), c uuid default gen_random_uuid(), d text default current_user, e int default nextval('ok_id_seq'), f text default 'a' || 'b')",
      'insert into ok default values',
      "alter table ok alter column a set default 'y'",
      "create domain okd as text default 'z'",
      'create table okr (a date) partition by range (a)',
      "create table okr1 partition of okr for values from (minvalue) to ('2020-01-01')",
      "create table okr2 partition of okr for values from ('2020-01-01') to (current_date + 1)",
      'create table okr3 partition of okr default',
      'create table okh (a int) partition by hash (a)',
      'create table okh1 partition of okh for values with (modulus 2, remainder 0)',
    ])
    expect(errors).toEqual([])
  })

  it('refuses a rule whose actions would copy names into a clean column, as the copy itself is refused', async () => {
    for (const steps of RULES) {
      const {seen, errors} = await run(steps)
      expect(errors[0], steps.join('; ')).toMatch(/masking refuses writing to (public\.)?r\d: it copies values from public\.customers\.(full_name|address) into public\.r\d\.a/)
      expect(leaks(seen), steps.join('; ')).toEqual([])
    }
  })

  it('refuses SET … FROM CURRENT once code the analysis cannot see into ran', async () => {
    for (const steps of FROM_CURRENT) {
      const {seen, errors} = await run(steps)
      expect(errors.join('\n'), steps.join('; ')).toMatch(/FROM CURRENT would copy a setting/)
      expect(leaks(seen), steps.join('; ')).toEqual([])
    }
    // A session whose settings are its own may copy them.
    const {errors} = await run(["set x.own = 'mine'", 'create function fc_own() returns int language sql set x.own from current as $$select 1$$'])
    expect(errors).toEqual([])
  })
})
