/**
 * Prepared statements and cursors that code the analysis cannot see into replaced, attacked through
 * the real tunnel with the policy pack `none`. The session's view of what a name runs is kept from
 * what the client sent and the server acknowledged; a DO block, a procedure or a function that runs
 * `EXECUTE 'DEALLOCATE p'; EXECUTE 'PREPARE p AS SELECT full_name || '''' …'` (or CLOSE and OPEN of
 * a cursor by name) changes it on the server without a word to the tunnel, which went on reading
 * `EXECUTE p` as the client's clean `PREPARE p AS SELECT 'x'::text` and showed every name.
 *
 * Each step list runs in one session; no full name or address may reach the client.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {withClient} from '../helpers/pg.js'
import {openUnseenCodeTunnel, rowsOf, simpleSend, type Send, type UnseenCodeTunnel} from './unseen-code.js'

const NAMES = sampleCustomers().flatMap((c) => [c.fullName, c.address])
/** Dynamic SQL that makes `name` run `SELECT full_name || ' ' || address AS v FROM customers`. */
const REPREPARE = (name: string) => `execute 'deallocate ${name}'; execute 'prepare ${name} as select full_name || '' '' || address as v from customers'`
const DO = (body: string) => `do $$ begin ${body}; end $$`
/** A step sent with the extended protocol. */
const EXT = 'ext:'
/** A step that runs the named query `name` (node-postgres Parses it once per connection, then only Binds it). */
const NAMED = 'named:'

const FUNCTIONS = [
  'create or replace function rd_swap(n text) returns void language plpgsql as $$begin execute format(\'deallocate %I\', n); ' +
    "execute format('prepare %I as select full_name || '' '' || address as v from customers', n); end$$",
  'create or replace procedure rd_swap_proc(n text) language plpgsql as $$begin perform rd_swap(n); end$$',
  "create or replace function rd_reopen(n text) returns void language plpgsql as $$declare r refcursor := n; begin close r; open r for select full_name || ' ' || address as v from customers; end$$",
]

const STEPS: string[][] = [
  ["prepare rd1 as select 'x'::text as v", DO(REPREPARE('rd1')), 'execute rd1'],
  ["prepare rd2 as select 'x'::text as v", DO(REPREPARE('rd2')), `${EXT}execute rd2`],
  [`prepare rd3 as select 'x'::text as v; ${DO(REPREPARE('rd3'))}`, 'execute rd3'],
  ["prepare rd4 as select 'x'::text as v", "select rd_swap('rd4')", 'execute rd4'],
  ["prepare rd5 as select 'x'::text as v", "call rd_swap_proc('rd5')", 'execute rd5'],
  [`${NAMED}rd6`, DO(REPREPARE('rd6')), `${NAMED}rd6`],
  [`${NAMED}rd7`, "select rd_swap('rd7')", `${NAMED}rd7`],
  ['begin', "declare rd8 cursor for select 'x'::text as v from generate_series(1, 3)", "select rd_reopen('rd8')", 'fetch all from rd8', 'commit'],
  ['begin', "declare rd9 cursor for select 'x'::text as v from generate_series(1, 3)", "select rd_reopen('rd9')", `${EXT}fetch all from rd9`, 'commit'],
]

describe('prepared statements and cursors replaced by code the analysis cannot see into', () => {
  let t: UnseenCodeTunnel

  beforeAll(async () => {
    t = await openUnseenCodeTunnel(FUNCTIONS)
  })
  afterAll(() => t?.close())

  const send: Send = (c, sql) => {
    if (sql.startsWith(EXT)) return c.query({name: `e${Math.random().toString(36).slice(2)}`, text: sql.slice(EXT.length), values: []})
    if (sql.startsWith(NAMED)) return c.query({name: sql.slice(NAMED.length), text: "select 'x'::text as v", values: []})
    return simpleSend(c, sql)
  }
  const run = (steps: string[]) => t.run(steps, send)

  const leaks = (seen: Buffer | string) => NAMES.filter((s) => Buffer.from(seen).includes(Buffer.from(s, 'utf8')))

  it('has no vacuous case: directly, each shows names and addresses', async () => {
    for (const steps of STEPS) {
      const seen = await withClient(t.fx.db.url, async (c) => {
        const out: unknown[] = []
        for (const sql of steps) {
          out.push(rowsOf(await send(c, sql)))
        }
        return JSON.stringify(out)
      })
      expect(leaks(seen), steps.join('; ')).not.toEqual([])
    }
  })

  it('masks what a name runs once such code ran after it was defined', async () => {
    const leaking: string[] = []
    for (const steps of STEPS) {
      const {seen, errors} = await run(steps)
      if (leaks(seen).length > 0) leaking.push(`${steps.join('; ')} ${errors.join(' ')}`)
    }
    expect(leaking).toEqual([])
  })

  it('reads a name defined after such code ran, and every name of a session that ran none, as it is', async () => {
    const {rows, errors} = await run([
      DO('perform 1'),
      "prepare ok1 as select 'x'::text as v",
      'execute ok1',
      `${NAMED}ok2`,
      `${NAMED}ok2`,
    ])
    expect(errors).toEqual([])
    expect(rows.slice(2)).toEqual([[{v: 'x'}], [{v: 'x'}], [{v: 'x'}]])
    const quiet = await run(["prepare ok3 as select 'y'::text as v", 'execute ok3', 'execute ok3'])
    expect(quiet.rows.slice(1)).toEqual([[{v: 'y'}], [{v: 'y'}]])
  })
})
