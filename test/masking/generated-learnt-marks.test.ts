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
 * receives may hold a name or an address's local part. Names copied into a lasting table's clean
 * column are refused now (a read from scratch would show them); a temporary table takes them, and
 * its generated columns are masked as they were.
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

/** The copies of STEPS into temporary tables, which no other session reads. */
const TEMP_STEPS: string[][] = [
  ['create temp table gt_ins (id int, a text, g text generated always as (a) stored, v text generated always as (upper(a)) virtual)', 'insert into gt_ins (id, a) select id, full_name from customers', 'select g from gt_ins', 'select v from gt_ins', 'select g, v from gt_ins where id = 1'],
  ["create temp table gt_upd (id int, a text, g text generated always as (a || '') stored)", "insert into gt_upd (id, a) values (1, 'one')", 'update gt_upd set a = (select full_name from customers where id = 1)', 'select g from gt_upd'],
  ['create temp table gt_kid () inherits (gl_par)', 'insert into gt_kid (id, a) select id, full_name from customers', 'select g from gl_par', 'select g from gt_kid'],
  ['begin', 'create temp table gt_tx (id int, a text)', 'alter table gt_tx add column g text generated always as (a) virtual', 'commit', 'insert into gt_tx (id, a) select id, full_name from customers', 'select g from gt_tx'],
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
      for (const steps of TEMP_STEPS) {
        const seen: unknown[] = []
        for (const sql of steps) seen.push(rowsOf(await c.query(sql)))
        out.push(JSON.stringify(seen))
      }
      // Back to what the tunnel's steps start from.
      await c.query("truncate gl_ins, gl_par, gl_kid; update gl_upd set a = 'one'; drop table gl_new, gl_tx, gt_kid")
      return out
    })
    shown.forEach((seen, i) => expect(leaks(seen), [...STEPS, ...TEMP_STEPS][i]!.join('; ')).not.toEqual([]))
  })

  it('refuses names copied into the clean columns of lasting tables, and redacts a transformed generated column', async () => {
    const leaking: string[] = []
    for (const [i, steps] of STEPS.entries()) {
      const {seen, errors} = await t.run(steps)
      if (i < STEPS.length - 1) expect(errors.join('\n'), steps.join('; ')).toMatch(/masking refuses writing to (public\.)?gl_\w+: it copies values from public\.customers\.full_name/)
      else expect(errors, steps.join('; ')).toEqual([])
      if (leaks(seen).length > 0) leaking.push(steps.join('; '))
    }
    expect(leaking).toEqual([])
  })

  it('masks the generated column of a temporary table wherever its inputs were filled from', async () => {
    const leaking: string[] = []
    for (const steps of TEMP_STEPS) {
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
