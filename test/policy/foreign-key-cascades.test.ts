import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedByRule} from './unfiltered.js'

/**
 * Tables a statement writes without naming them: a foreign key's ON DELETE or ON UPDATE action
 * (CASCADE, SET NULL, SET DEFAULT) writes the referencing rows, and TRUNCATE … CASCADE empties
 * every referencing table. Before, `tables:` rules saw only the names written: with a rule that
 * keeps hr.* out of reach, `DELETE FROM scratch.src WHERE id = 1` deleted hr.cascaded's rows
 * through ON DELETE CASCADE, and a rule allowing TRUNCATE of scratch.* let `TRUNCATE scratch.tmp
 * CASCADE` empty public.orders and hr.salaries.
 */
describe('tables written through foreign keys', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const counts = () =>
    direct(async (c) => (await c.query(`select (select count(*)::int from hr.on_delete) d, (select count(*)::int from hr.set_null where src_id is not null) n, (select count(*)::int from hr.set_default where src_id = 1) sd,
      (select count(*)::int from hr.on_update where src_id = 1) u, (select count(*)::int from hr.chain_end) ce, (select count(*)::int from public.orders) o, (select count(*)::int from hr.salaries) s`)).rows[0])

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema scratch; create schema hr;
        create table scratch.src (id int primary key, note text); insert into scratch.src values (1, 'a'), (2, 'b'), (0, 'z');
        create table hr.on_delete (id int, src_id int references scratch.src on delete cascade); insert into hr.on_delete values (1, 1);
        create table hr.set_null (id int, src_id int references scratch.src on delete set null); insert into hr.set_null values (1, 1);
        create table hr.set_default (id int, src_id int default 0 references scratch.src on delete set default); insert into hr.set_default values (1, 1);
        create table scratch.usrc (id int primary key); insert into scratch.usrc values (1), (2);
        create table hr.on_update (id int, src_id int references scratch.usrc on update cascade); insert into hr.on_update values (1, 1);
        create view scratch.src_v as select * from scratch.src;
        -- Two keys deep: scratch.head to public.mid to hr.chain_end.
        create table scratch.head (id int primary key); insert into scratch.head values (1);
        create table public.mid (id int primary key, head_id int references scratch.head on delete cascade); insert into public.mid values (1, 1);
        create table hr.chain_end (id int, mid_id int references public.mid on delete cascade); insert into hr.chain_end values (1, 1);
        -- Referenced, but with keys that only check.
        create table scratch.checked (id int primary key); insert into scratch.checked values (1), (2);
        create table hr.checks (id int, checked_id int references scratch.checked on delete restrict on update no action); insert into hr.checks values (1, 1);
        -- A tree that refers to itself.
        create table scratch.tree (id int primary key, parent int references scratch.tree on delete cascade); insert into scratch.tree values (1, null), (2, 1), (3, 2);
        -- TRUNCATE … CASCADE reaches tables whatever their keys' actions.
        create table scratch.tmp (id int primary key); insert into scratch.tmp values (1);
        create table public.orders (id int, tmp_id int references scratch.tmp); insert into public.orders values (1, 1);
        create table hr.salaries (id int, tmp_id int references scratch.tmp); insert into hr.salaries values (1, 1);
        create table scratch.a (id int primary key); create table scratch.b (a_id int references scratch.a);
        insert into scratch.a values (1); insert into scratch.b values (1);
      `),
    )
    t = await openPipelineTunnel(
      db,
      [
        'rules:',
        '  - id: scratch-writes',
        '    match: {command: [truncate, delete, update, insert, merge], tables: ["scratch.*"]}',
        '    action: allow',
        '  - id: no-hr',
        '    match: {tables: ["hr.*"]}',
        '    action: deny',
        '    reason: HR data is not reachable from dbgate',
      ].join('\n'),
    )
  })
  afterAll(() => t.close())

  it('applies rules on a table to the writes a foreign key\'s action makes in it', async () => {
    const before = await counts()
    const c = await t.client()
    for (const [sql, table] of [
      ['delete from scratch.src where id = 1', 'hr.on_delete'],
      ['delete from scratch.src where id = 1', 'hr.set_null'],
      ['delete from scratch.src where id = 1', 'hr.set_default'],
      ['delete from scratch.src_v where id = 1', 'hr.on_delete'],
      ['update scratch.usrc set id = 5 where id = 1', 'hr.on_update'],
      ['insert into scratch.usrc values (1) on conflict (id) do update set id = 6', 'hr.on_update'],
      ['merge into scratch.src s using (values (1)) v(id) on s.id = v.id when matched then delete', 'hr.on_delete'],
      ['delete from scratch.head where id = 1', 'hr.chain_end'],
    ]) {
      const e = await refusedByRule(c, sql!, /rule no-hr: HR data is not reachable from dbgate/)
      expect(e.detail, sql).toContain(`${table}, through a foreign key cascading from`)
    }
    expect(await counts()).toEqual(before)
    await c.end()
  })

  it('refuses TRUNCATE … CASCADE under a rule that allows truncating named tables, and says to name them', async () => {
    const before = await counts()
    const c = await t.client()
    for (const sql of ['truncate scratch.tmp cascade', 'truncate table only scratch.tmp cascade', 'truncate scratch.a, scratch.tmp cascade']) {
      const e = await refusedByRule(c, sql, /rule (no-hr|default\.no-truncate)/)
      expect(`${e.message} ${e.detail ?? ''}`, sql).toMatch(/TRUNCATE … CASCADE also empties every table whose foreign keys refer to the ones named/)
    }
    expect(await counts()).toEqual(before)
    await c.end()
  })

  it('still allows writes whose keys only check, a tree that deletes its own children, and truncating each table by name', async () => {
    const c = await t.client()
    await c.query('update scratch.checked set id = 3 where id = 2')
    await c.query('delete from scratch.checked where id = 3')
    await c.query('delete from scratch.tree where id = 2')
    expect((await c.query('select id from scratch.tree order by id')).rows).toEqual([{id: 1}])
    await c.query('insert into scratch.src values (7, \'new\')')
    await c.query('update scratch.src set note = \'x\' where id = 7')
    await c.query('truncate scratch.a, scratch.b')
    expect((await c.query('select count(*)::int n from scratch.b')).rows[0].n).toBe(0)
    await c.end()
  })
})
