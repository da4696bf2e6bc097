import {describe, expect, it} from 'vitest'
import {textOf} from './helpers.js'
import {explainAgent} from './explain-fixture.js'

/**
 * The explain tool is annotated read-only, so an agent's client may run it without asking the
 * user, and `analyze: true` promises to run only a statement that only reads. Its check judges the
 * text without the target's catalog, where a view is a plain table: `select * from bump`, a view
 * that calls nextval, read as a pure read and ran, advancing the sequence, and a view that calls
 * pg_notify delivered its notification, in read-write mode where policy lets the agent write (with
 * the user's consent, through the query tool). What analyze runs now runs in a read-only
 * transaction that is rolled back: the server refuses the change, and a notification is never sent.
 * So does a plan without analyze, for which the planner runs a function declared IMMUTABLE and
 * called with constants, whatever its body does.
 */
describe('explain with analyze changes nothing, whatever a view calls', () => {
  const {explain, state, heard, direct} = explainAgent('mcpexv', `
    create table notes (id serial primary key, body text) with (autovacuum_enabled = false);
    insert into notes (body) values ('a'), ('b');
    create view bump as select nextval('notes_id_seq') as n;
    create view reset_seq as select setval('notes_id_seq', 500) as n;
    create view kick as select 1 as kicked from (select pg_notify('jobs', 'from-a-view')) s;
    create view notes_bumped as select n.*, b.n as next from notes n, bump b;
    create view deeper as select * from notes_bumped where id > 0;
    create function planned() returns int language plpgsql immutable as $$ begin perform nextval('notes_id_seq'); perform pg_notify('jobs', 'planned'); return 1; end $$;
    create function planned_sql() returns bigint language sql immutable as $$ select nextval('notes_id_seq') $$;
    create function told() returns int language plpgsql immutable as $$ begin perform pg_notify('jobs', 'told'); return 1; end $$;
  `)

  it.each([
    'select * from bump',
    'table bump',
    'select * from reset_seq',
    'select id, next from notes_bumped order by id',
    'select count(*) from deeper',
    'with x as (select * from bump) select * from x',
    'select * from notes where id in (select n from bump)',
  ])('does not advance or reset the sequence through a view: %s', async (sql) => {
    const before = await state()
    const r = await explain(sql, true)
    expect(r.isError, textOf(r)).toBe(true)
    // The server's refusal, or policy's where a rule already refuses the call (setval).
    expect(textOf(r)).toMatch(/read-only transaction that is rolled back|dbgate policy refused/)
    expect(await state()).toEqual(before)
  })

  it.each(['select * from kick', 'select n.id, k.kicked from notes n, kick k', 'select exists (select 1 from kick)'])('sends no notification through a view: %s', async (sql) => {
    const before = await state()
    await explain(sql, true)
    expect(await heard()).toEqual([])
    expect(await state()).toEqual(before)
  })

  // The planner evaluates an IMMUTABLE function called with constants while it plans, so even
  // explain without analyze ran their bodies: the sequence advanced and listeners heard them.
  it.each([
    'select * from notes where id = planned()',
    'select * from notes where id = planned_sql()',
    'values (planned())',
    'select id from notes where id in (planned(), planned_sql())',
    'select * from notes where id = told()',
    "update notes set body = 'x' where id = told()",
  ])('runs nothing a plan evaluates ahead, without analyze: %s', async (sql) => {
    const before = await state()
    await explain(sql)
    expect(await heard()).toEqual([])
    expect(await state()).toEqual(before)
  })

  it('still analyzes reads of tables and views, and explains the rest without running it', async () => {
    await direct((c) => c.query('create or replace view plain_notes as select id, body from notes'))
    for (const sql of ['select count(*) from notes', 'select * from plain_notes where id = 1', "select id from notes where body like 'a%' order by id"]) {
      const r = await explain(sql, true)
      expect(r.isError, `${sql}: ${textOf(r)}`).toBeFalsy()
      expect(textOf(r)).toMatch(/actual time/)
    }
    const plan = await explain('select * from bump')
    expect(plan.isError, textOf(plan)).toBeFalsy()
    // The agent's next query is not inside the rolled-back transaction.
    const r = await explain('select count(*) from notes', true)
    expect(r.isError, textOf(r)).toBeFalsy()
    expect((await state()).seq).toBe(2)
  })
})
