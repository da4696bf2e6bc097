import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedByRule} from './unfiltered.js'

/**
 * Sequences named as text. `nextval('hr.salaries_id_seq')` names a relation of hr as a string, not
 * as a table: with `tables: ["hr.*"]` denied, it moved hr's sequence (the next salary row gets
 * another id), `setval` set it back (the next insert collides), and `currval` and
 * `pg_sequence_last_value` said how many rows hr has inserted; a rule allowing inserts into
 * scratch.* carried an insert whose default came from hr's sequence.
 */
describe('sequences named by sequence functions', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const last = () => direct(async (d) => (await d.query('select last_value::int v from hr.salaries_id_seq')).rows[0].v as number)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr; create schema scratch;
        create table hr.salaries (id serial primary key, amount int); insert into hr.salaries (amount) values (9000), (7000);
        create table scratch.items (id serial primary key, n int);
      `),
    )
    t = await openPipelineTunnel(
      db,
      ['rules:', '  - id: no-hr', '    match: {tables: ["hr.*"]}', '    action: deny', '  - id: scratch', '    match: {command: [insert, select], tables: ["scratch.*"]}', '    action: allow'].join('\n'),
    )
  }, 60_000)
  afterAll(() => t?.close())

  it('refuses reading or moving a denied sequence, in every spelling of its name', async () => {
    const before = await last()
    const c = await t.client()
    for (const sql of [
      "select nextval('hr.salaries_id_seq')",
      "select pg_catalog.nextval('HR.Salaries_Id_Seq'::regclass)",
      `select nextval('"hr"."salaries_id_seq"')`,
      "select setval('hr.salaries_id_seq', 1)",
      "select currval('hr.salaries_id_seq')",
      "select pg_sequence_last_value('hr.salaries_id_seq')",
      "insert into scratch.items (id, n) values (nextval('hr.salaries_id_seq'), 1)",
      "select n from scratch.items where id < nextval('hr.salaries_id_seq')",
    ]) {
      const e = await refusedByRule(c, sql, /rule no-hr/)
      expect(`${e.message} ${e.detail ?? ''}`, sql).not.toMatch(/9000/)
    }
    // An OID or a computed name may be any sequence, hr's included.
    for (const sql of ["select nextval('hr.salaries_id_seq'::regclass::oid)", "select nextval(c.oid) from pg_class c where c.relname = 'salaries_id_seq'", "select nextval('hr.' || 'salaries_id_seq')"]) {
      const e = await refusedByRule(c, sql, /rule no-hr/)
      expect(e.detail ?? '', sql).toMatch(/sequence dbgate cannot read from the statement/)
    }
    expect(await last()).toBe(before)
    await c.end()
  })

  it("lets an allowed table's own sequence be used", async () => {
    const c = await t.client()
    await c.query("insert into scratch.items (id, n) values (nextval('scratch.items_id_seq'), 1)")
    await c.query('insert into scratch.items (n) values (2)')
    expect((await c.query("select currval('scratch.items_id_seq')::int v")).rows).toEqual([{v: 2}])
    await c.end()
  })
})
