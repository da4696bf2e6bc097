import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedByRule} from './unfiltered.js'

/**
 * A foreign key's action reached through a rule that turns one kind of write into another.
 *
 * A cascading key was followed only for the client's own command: a DELETE through ON DELETE
 * actions, an UPDATE through ON UPDATE ones. But a rule on a write runs its actions instead of (or
 * beside) the client's statement: `INSERT INTO scratch.inbox VALUES (1)`, whose rule deletes the
 * scratch.src row 1, deleted hr.on_delete's rows through ON DELETE CASCADE, under a rule that keeps
 * hr.* out of reach and one that allows inserts into scratch.*. So did a trigger whose body
 * deleted that row: the tables behind a trigger body's writes were not looked at.
 */
describe('foreign keys cascading past a rule on a write', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const hrRows = () =>
    direct(async (c) => (await c.query('select (select count(*)::int from hr.on_delete where src_id = 1) d, (select count(*)::int from hr.on_update where src_id = 1) u')).rows[0])

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema scratch; create schema hr;
        create table scratch.src (id int primary key); insert into scratch.src values (1), (2);
        create table hr.on_delete (id int, src_id int references scratch.src on delete cascade); insert into hr.on_delete values (1, 1);
        create table scratch.usrc (id int primary key); insert into scratch.usrc values (1), (2);
        create table hr.on_update (id int, src_id int references scratch.usrc on update cascade); insert into hr.on_update values (1, 1);
        -- A view whose INSERT deletes, whose UPDATE deletes, whose DELETE updates the key.
        create view scratch.inbox as select id from scratch.src;
        create rule ins as on insert to scratch.inbox do instead delete from scratch.src where id = new.id;
        create rule upd as on update to scratch.inbox do instead delete from scratch.src where id = old.id;
        create rule del as on delete to scratch.inbox do instead update scratch.usrc set id = id + 100 where id = old.id;
        -- A table whose INSERT also updates the key.
        create table scratch.log (id int);
        create rule also_move as on insert to scratch.log do also update scratch.usrc set id = id + 1000 where id = new.id;
        -- Two levels: a view over a view with a rule that inserts into the first.
        create view scratch.outer_v as select id from scratch.src;
        create rule fwd as on insert to scratch.outer_v do instead insert into scratch.inbox values (new.id);
        create table scratch.plain (id int);
        -- Triggers whose bodies write the referenced rows.
        create table scratch.tlog (id int);
        create function scratch.drop_src() returns trigger language plpgsql as $$ begin delete from scratch.src where id = new.id; return new; end $$;
        create trigger drop_src after insert on scratch.tlog for each row execute function scratch.drop_src();
        create view scratch.tview as select id from scratch.usrc;
        create function scratch.move_usrc() returns trigger language plpgsql as $$ begin update scratch.usrc set id = id + 10 where id = old.id; return old; end $$;
        create trigger move_usrc instead of delete on scratch.tview for each row execute function scratch.move_usrc();
      `),
    )
    t = await openPipelineTunnel(
      db,
      [
        'rules:',
        '  - id: scratch-writes',
        '    match: {command: [insert, update, delete], tables: ["scratch.*"]}',
        '    action: allow',
        '  - id: no-hr',
        '    match: {tables: ["hr.*"]}',
        '    action: deny',
      ].join('\n'),
    )
  }, 60_000)
  afterAll(() => t?.close())

  it('refuses a write whose rule runs another kind of write that a foreign key cascades from', async () => {
    const before = await hrRows()
    const c = await t.client()
    for (const [sql, table] of [
      ['insert into scratch.inbox values (1)', 'hr.on_delete'],
      ['INSERT INTO Scratch.Inbox SELECT 1', 'hr.on_delete'],
      ['update scratch.inbox set id = id where id = 1', 'hr.on_delete'],
      ['delete from scratch.inbox where id = 1', 'hr.on_update'],
      ['insert into scratch.log values (1)', 'hr.on_update'],
      ['with w as (insert into scratch.log values (1) returning id) select * from w', 'hr.on_update'],
      ['insert into scratch.outer_v values (1)', 'hr.on_delete'],
      ['insert into scratch.tlog values (1)', 'hr.on_delete'],
      ['delete from scratch.tview where id = 1', 'hr.on_update'],
    ]) {
      const e = await refusedByRule(c, sql!, /rule no-hr/)
      expect(e.detail, sql).toContain(`${table}, through a foreign key cascading from`)
    }
    expect(await hrRows()).toEqual(before)
    await c.end()
  })

  it('still allows writes through tables and views whose rules reach no cascading key', async () => {
    const c = await t.client()
    await c.query('insert into scratch.plain values (1)')
    await c.query('update scratch.plain set id = 2 where id = 1')
    await c.query('delete from scratch.plain where id = 2')
    await c.end()
  })
})
