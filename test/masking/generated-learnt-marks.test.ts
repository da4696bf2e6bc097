/**
 * A generated column is computed by the server from its row's other columns, on every write
 * (`STORED`) or read (`VIRTUAL`). It was marked only from what the dictionary said of those columns
 * when the catalog was read: a clean-named column this tunnel then saw filled with names
 * (`INSERT … SELECT full_name`, `UPDATE … SET a = full_name`, a child's rows shared with its
 * parent) was masked, but the generated column computed from it (`g text GENERATED ALWAYS AS (a)`)
 * showed every name in clear. And a generated column computed from a sensitive one by a
 * transformation was shown `partial`, which keeps the wrong part of it: `'x@' || replace(email,
 * '@', '.')` kept the whole address as the "domain".
 *
 * Each step list runs in one session through the tunnel (policy pack `none`); nothing the client
 * receives may hold a name or an address's local part.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {withClient} from '../helpers/pg.js'
import {rowsOf} from './unseen-code.js'
import {openUnseenCodeTunnel, type UnseenCodeTunnel} from './unseen-code.js'

const NAMES = sampleCustomers().map((c) => c.fullName)
const LOCAL_PARTS = sampleCustomers().map((c) => c.email.split('@')[0]!)
const leaks = (seen: Buffer | string) => [...NAMES, ...LOCAL_PARTS].filter((s) => Buffer.from(seen).includes(Buffer.from(s, 'utf8')))

/** Tables made before the tunnel opened: the catalog reads their generated columns from its first read. */
const TABLES = [
  'create table gl_ins (id int, a text, g text generated always as (a) stored, v text generated always as (upper(a)) virtual)',
  'create table gl_upd (id int, a text, g text generated always as (a || \'\') stored)',
  "insert into gl_upd (id, a) values (1, 'one')",
  "create table gl_par (id int, a text, g text generated always as (a || '') stored)",
  'create table gl_kid () inherits (gl_par)',
  'create table gl_mail (id int, email text, g text generated always as (\'x@\' || replace(email, \'@\', \'.\')) stored)',
  'insert into gl_mail (id, email) select id, email from customers',
  'create table gl_clean (id int, n int, s text, g int generated always as (n * 2) stored, h text generated always as (s || \'!\') stored)',
]

const STEPS: string[][] = [
  ['insert into gl_ins (id, a) select id, full_name from customers', 'select g from gl_ins', 'select v from gl_ins', 'select g, v from gl_ins where id = 1'],
  ['update gl_upd set a = (select full_name from customers where id = 1)', 'select g from gl_upd'],
  ['insert into gl_kid (id, a) select id, full_name from customers', 'select g from gl_par', 'select g from gl_kid'],
  // A table made through the tunnel, its generated column added before it is filled.
  ['create table gl_new (id int, a text)', 'alter table gl_new add column g text generated always as (a) stored', 'insert into gl_new (id, a) select id, full_name from customers', 'select g from gl_new'],
  ['begin', 'create table gl_tx (id int, a text)', 'alter table gl_tx add column g text generated always as (a) virtual', 'commit', 'insert into gl_tx (id, a) select id, full_name from customers', 'select g from gl_tx'],
  ['select g from gl_mail', 'select g from gl_mail where id = 2'],
]

describe('generated columns computed from columns this tunnel learnt hold sensitive values', () => {
  let t: UnseenCodeTunnel

  beforeAll(async () => {
    t = await openUnseenCodeTunnel(TABLES)
  })
  afterAll(() => t?.close())

  it('has no vacuous case: directly, each shows names or addresses', async () => {
    const shown = await withClient(t.fx.db.url, async (c) => {
      const out: string[] = []
      for (const steps of STEPS) {
        const seen: unknown[] = []
        for (const sql of steps) seen.push(rowsOf(await c.query(sql)))
        out.push(JSON.stringify(seen))
      }
      // Back to what the tunnel's steps start from.
      await c.query("truncate gl_ins, gl_par, gl_kid; update gl_upd set a = 'one'; drop table gl_new, gl_tx")
      return out
    })
    shown.forEach((seen, i) => expect(leaks(seen), STEPS[i]!.join('; ')).not.toEqual([]))
  })

  it('masks the generated column wherever its inputs were filled from, and redacts a transformed one', async () => {
    const leaking: string[] = []
    for (const steps of STEPS) {
      const {seen, errors} = await t.run(steps)
      expect(errors, steps.join('; ')).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    expect(leaking).toEqual([])
  })

  it('still shows a generated column of clean values', async () => {
    const {rows, errors} = await t.run(["insert into gl_clean (id, n, s) values (1, 21, 'ok')", 'select g, h from gl_clean'])
    expect(errors).toEqual([])
    expect(rows[1]).toEqual([{g: 42, h: 'ok!'}])
  })
})
