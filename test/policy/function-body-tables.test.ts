import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedByRule} from './unfiltered.js'

/**
 * The tables a called function's body reads and writes, seen by `tables:` rules.
 *
 * A user function's body was judged for what kind of thing it does (a read, a write, DDL), not for
 * where: with `tables: ["hr.*"]` denied, `SELECT public.salary_of(1)`, a STABLE function over
 * hr.salaries, was a read like any other and its comparisons answered questions about hr's rows
 * (`SELECT 1 / (public.salary_of(1) - 9000)` fails with division by zero exactly when the salary is
 * 9000), and `SELECT public.purge(1)`, whose body deletes a scratch.src row, deleted hr rows
 * through ON DELETE CASCADE once a reviewer approved the volatile call.
 */
describe('tables reached through function bodies', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr; create schema scratch;
        create table hr.salaries (id int primary key, amount int); insert into hr.salaries values (1, 9000);
        create view public.pay as select id, amount from hr.salaries;
        create table scratch.src (id int primary key); insert into scratch.src values (1);
        create table hr.on_delete (id int, src_id int references scratch.src on delete cascade); insert into hr.on_delete values (1, 1);
        create table public.teams (id int, name text); insert into public.teams values (1, 'ops');
        create function public.salary_of(i int) returns int language sql stable as $$ select amount from hr.salaries where id = i $$;
        create function public.pay_of(i int) returns int language plpgsql stable as $$ begin return (select amount from public.pay where id = i); end $$;
        create function public.outer_pay(i int) returns int language sql stable as $$ select public.salary_of(i) + 0 $$;
        create function public.purge(i int) returns int language sql as $$ delete from scratch.src where id = i returning id $$;
        create function public.is_rich(i int, floor int) returns boolean language sql stable as $$ select exists (select 1 from hr.salaries s where s.id = i and s.amount > floor) $$;
        create operator public.>>> (leftarg = int, rightarg = int, function = public.is_rich);
        create view public.team_pay as select t.id, public.salary_of(t.id) as pay from public.teams t;
        create function public.team_of(i int) returns text language sql stable as $$ select name from public.teams where id = i $$;
      `),
    )
    t = await openPipelineTunnel(db, ['rules:', '  - id: no-hr', '    match: {tables: ["hr.*"]}', '    action: deny', '    reason: HR data is not reachable from dbgate'].join('\n'))
  }, 60_000)
  afterAll(() => t?.close())

  it('refuses calls whose bodies read or write a denied table, by every route into the body', async () => {
    const c = await t.client()
    for (const [sql, route] of [
      ['select public.salary_of(1)', 'hr.salaries, through the body of public.salary_of'],
      ['select 1 / (salary_of(1) - 9000)', 'hr.salaries, through the body of public.salary_of'],
      ['select * from public.teams where id = public.salary_of(1) / 9000', 'hr.salaries, through the body of public.salary_of'],
      ['select public.pay_of(1)', 'hr.salaries, through the view public.pay, in the body of public.pay_of'],
      ['select public.outer_pay(1)', 'hr.salaries, through the body of public.salary_of, called from the body of public.outer_pay'],
      ['select 1 operator(public.>>>) 8999', 'hr.salaries, through the body of public.is_rich'],
      ['select count(*) from public.team_pay where pay = 9000', 'hr.salaries, through the body of public.salary_of (view public.team_pay)'],
      ['select public.purge(1)', 'hr.on_delete, through a foreign key cascading from the table scratch.src, in the body of public.purge'],
    ]) {
      const e = await refusedByRule(c, sql!, /rule no-hr: HR data is not reachable from dbgate/)
      expect(e.detail, sql).toContain(route)
    }
    const left = await direct(async (d) => (await d.query('select count(*)::int n from hr.on_delete')).rows[0].n as number)
    expect(left).toBe(1)
    await c.end()
  })

  it('lets functions whose bodies reach only allowed tables run', async () => {
    const c = await t.client()
    // (Its value is masked: a user function's result has no proven clean origin.)
    expect((await c.query('select public.team_of(1) as t')).rowCount).toBe(1)
    expect((await c.query('select count(*)::int as n from public.teams where public.team_of(id) is not null')).rows).toEqual([{n: 1}])
    expect((await c.query('select lower(name) as n from public.teams')).rows).toEqual([{n: 'ops'}])
    await c.end()
  })
})
