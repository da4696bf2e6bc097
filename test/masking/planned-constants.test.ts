/**
 * Values the server computes into a statement's constants, attacked through the real tunnel with
 * the policy pack `none`:
 *
 * - `EXECUTE p(…)`'s arguments are expressions the server evaluates into the prepared statement's
 *   parameters (`query_to_xml('select full_name from customers', …)`, `current_setting(…)` after
 *   a DO block set it to a name), which the statement's analysis reads as the client's own values:
 *   `PREPARE p(text) AS SELECT $1` then returned every name, in one text or two, through the simple
 *   or the extended protocol, and into a table `CREATE TABLE … AS EXECUTE` filled;
 * - EXPLAIN prints the plan's constants, and the planner makes constants of more than the
 *   statement's text: an immutable function called with constants is evaluated while planning (a
 *   user function declared immutable may read any table: `body = f()` printed as `body = 'Alice
 *   Novak,…'::text`), and a custom plan of `EXPLAIN EXECUTE p(…)` prints the arguments;
 * - EXPLAIN (SETTINGS) prints the planner settings the session changed: `search_path =
 *   '"Alice Novak", public'` after a DO block set it so (SHOW and current_setting were masked);
 * - with debug_print_plan and client_min_messages = log, the server sends the plan's node tree
 *   as a LOG notice, every constant in it as its bytes in decimal.
 *
 * Each step list runs in one session; no full name or address may reach the client.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {withClient} from '../helpers/pg.js'
import {openUnseenCodeTunnel, rowsOf, simpleSend, type Send, type UnseenCodeTunnel} from './unseen-code.js'

const NAMES = sampleCustomers().flatMap((c) => [c.fullName, c.address])
const XML = (col: string) => `query_to_xml('select ${col} from customers', true, false, '')`
const SET_NAME = (id: number) => `do $$ begin perform set_config('x.held', (select full_name from customers where id = ${id}), false); end $$`
/** A DO block that sets search_path to a schema named after a value (a quoted identifier may hold anything). */
const SET_PATH = (id: number, col: string) => `do $$ begin perform set_config('search_path', '"' || (select ${col} from customers where id = ${id}) || '", public', false); end $$`
/** A step sent with the extended protocol (Parse, Bind, Execute of a named statement). */
const EXT = 'ext:'

const FUNCTIONS = [
  "create or replace function pc_names() returns text immutable language plpgsql as $$begin return (select string_agg(full_name || ' ' || address, ',') from customers); end$$",
  'create or replace function pc_name(int) returns text immutable language sql as $$select full_name from customers where id = $1$$',
]

const ARGUMENTS: string[][] = [
  ['prepare pa1(text) as select $1 as v', `execute pa1(${XML('full_name')}::text)`],
  [`prepare pa2(text) as select $1 as v; execute pa2(${XML('address')}::text)`],
  ['prepare pa3(text) as select $1 as v', `${EXT}execute pa3(${XML('full_name')}::text)`],
  ['prepare pa4(xml) as select id, $1::text as v from notes', "execute pa4(table_to_xml('customers', true, false, ''))"],
  ["prepare pa5(text) as select $1 || '' as v, 1 as n", `create table pa5t as execute pa5(${XML('address')}::text)`, 'select v from pa5t'],
  [SET_NAME(3), 'prepare pa6(text) as select $1 as v', "execute pa6(current_setting('x.held'))"],
  [SET_NAME(4), 'prepare pa7(int) as select $1 as v', "execute pa7(current_setting('x.held')::int)"],
  ['prepare pa8(text) as select $1 as v', 'execute pa8(pc_name(2))'],
]

const PLANS: string[][] = [
  ['explain (costs off) select 1 from notes where body = pc_names()'],
  ['explain (costs off, verbose, format json) select * from notes where body = pc_name(2)'],
  ['explain (costs off, verbose, format yaml) select pc_name(5)'],
  ['explain (analyze, costs off, timing off, summary off) select * from notes where body = pc_name(6)'],
  ['prepare pp1 as select 1 from notes where body = pc_names()', 'explain (costs off) execute pp1'],
  ['prepare pp2(text) as select 1 from notes where body = $1', "set plan_cache_mode = force_custom_plan", `explain (costs off) execute pp2(${XML('full_name')}::text)`],
  [SET_NAME(7), 'prepare pp3(text) as select 1 from notes where body = $1', "set plan_cache_mode = force_custom_plan", "explain (costs off) execute pp3(current_setting('x.held'))"],
  // SETTINGS prints the planner settings the session changed, as a DO block set them.
  [SET_PATH(8, 'full_name'), 'select 1', 'explain (settings, costs off) select 1'],
  [SET_PATH(9, 'address'), 'explain (settings true, costs off, format json) select id from notes'],
  [SET_PATH(10, 'full_name'), 'prepare pp4 as select 1', 'explain (settings on) execute pp4'],
  // The planner's node tree, sent as a LOG notice, prints every constant as its bytes in decimal.
  ['set debug_print_plan = on', 'set client_min_messages = log', 'select 1 from notes where body = pc_names()'],
  ['set debug_print_plan = on', 'set client_min_messages = debug1', 'prepare pp5(text) as select 1 from notes where body = $1', 'set plan_cache_mode = force_custom_plan', `execute pp5(${XML('address')}::text)`],
]

describe('values the server computes into constants: EXECUTE arguments and plans', () => {
  let t: UnseenCodeTunnel

  beforeAll(async () => {
    t = await openUnseenCodeTunnel(FUNCTIONS)
  })
  afterAll(() => t?.close())

  const send: Send = (c, sql) => (sql.startsWith(EXT) ? c.query({name: `s${Math.random().toString(36).slice(2)}`, text: sql.slice(EXT.length), values: []}) : simpleSend(c, sql))
  const run = (steps: string[]) => t.run(steps, send)

  /** Clear values in `seen`, also as the bytes of a node tree's constants (`:constvalue 15 [ 60 0 0 0 65 108 … ]`). */
  const leaks = (seen: Buffer | string) => {
    const text = Buffer.from(seen).toString('utf8')
    const constants = [...text.matchAll(/:constvalue \d+ \[([^\]]*)\]/g)].map((c) => Buffer.from((c[1]!.match(/\d+/g) ?? []).map(Number)))
    const hay = Buffer.concat([Buffer.from(seen), ...constants])
    return NAMES.filter((s) => hay.includes(Buffer.from(s, 'utf8')))
  }

  it('has no vacuous case: directly, each shows names or addresses', async () => {
    for (const steps of [...ARGUMENTS, ...PLANS]) {
      const seen = await withClient(t.fx.db.url, async (c) => {
        await c.query('begin')
        const out: unknown[] = []
        c.on('notice', (n) => out.push(n.detail))
        for (const sql of steps) {
          try {
            out.push(rowsOf(await send(c, sql)))
          } catch (error) {
            out.push(String(error))
          }
        }
        await c.query('rollback')
        return JSON.stringify(out)
      })
      expect(leaks(seen), steps.join('; ')).not.toEqual([])
    }
  })

  it('masks what EXECUTE’s arguments carry into the prepared statement’s output', async () => {
    const leaking: string[] = []
    for (const steps of ARGUMENTS) {
      const {seen} = await run(steps)
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    expect(leaking).toEqual([])
  })

  it('masks a plan that may print constants computed by unseen code or from EXECUTE’s arguments', async () => {
    const leaking: string[] = []
    for (const steps of PLANS) {
      const {seen, errors} = await run(steps)
      expect(errors, steps.join('; ')).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    expect(leaking).toEqual([])
  })

  it('keeps clean arguments and plans in clear', async () => {
    const {rows, errors} = await run([
      'prepare ok1(text, int) as select $1 as v, $2 + 1 as n',
      "execute ok1('plain ' || 'text', length('abc'))",
      'prepare ok2(text) as select 1 from customers where full_name = $1',
      'set plan_cache_mode = force_custom_plan',
      "explain (costs off) execute ok2('Somebody Else')",
      "explain (costs off) select id from customers where full_name = upper('someone')",
      "set work_mem = '5MB'",
      'explain (settings, costs off) select 1',
    ])
    expect(errors).toEqual([])
    const text = JSON.stringify(rows)
    expect(text).toContain('"v":"plain text","n":4')
    expect(text).toContain("Filter: (full_name = 'Somebody Else'::text)")
    expect(text).toContain("Filter: (full_name = 'SOMEONE'::text)")
    expect(text).toContain("work_mem = '5MB'")
  })
})
