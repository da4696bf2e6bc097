import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {expectEachRefused, wipedAccounts, WIPING_CODE} from './wiping-code.js'

/**
 * A stored expression that converts into a domain (`x::wiping_int` in a column default, a generated
 * column, a check, an index expression, a trigger's WHEN condition, a view, a row security policy
 * or a function's default argument) runs the domain's checks
 * on every value it converts. PostgreSQL records a dependency on the domain, not on the functions
 * its checks call, and what a write or a read runs was read from dependencies on functions and
 * from the function calls in the trees, so with the default pack `insert into g_def (x) values (1)`
 * and `select * from v_cast` ran a check that deletes every account, with no reviewer.
 */
describe('conversions to a domain in stored expressions', () => {
  const {db, t, direct} = seededTunnel([
    `
      ${WIPING_CODE}
      create domain wiping_int as int check (public.quiet(value) > 0);
      create domain over_wiping as wiping_int;
      create table g_def (x int, y int default (5::wiping_int));
      create table g_gen (x int, y int generated always as ((x::wiping_int) + 0) stored);
      create table g_chk (x int check ((x::over_wiping) > 0));
      create table g_idx (x int);
      create table g_rows (x int);
      create view v_cast as select (x::wiping_int) as w from g_rows;
      create table g_pol (x int);
      create policy p on g_pol using ((x::wiping_int) > 0);
      alter table g_pol enable row level security;
      alter table g_pol force row level security;
      create function public.noop() returns trigger language plpgsql as $$ begin return new; end $$;
      create table g_when (x int);
      create trigger t before insert on g_when for each row when ((new.x::wiping_int) > 0) execute function public.noop();
      create function public.with_default(a int default (5::wiping_int)) returns int language sql stable as $$ select a $$;
    `,
    // Built from rows (which runs the check once, as setup) so that a write evaluates the expression again.
    'insert into g_rows values (1); insert into g_idx values (1); create index on g_idx (((x::wiping_int)))',
  ])
  const {accounts, refill} = wipedAccounts(() => db.url)

  const statements: Record<string, string> = {
    'a column default': 'insert into g_def (x) values (1)',
    'a generated column': 'insert into g_gen (x) values (1)',
    'a check, through a domain over the domain': 'insert into g_chk values (1)',
    'an index expression': 'insert into g_idx values (2)',
    'a view': 'select * from v_cast',
    'a row security policy': 'select * from g_pol',
    "a trigger's WHEN condition": 'insert into g_when values (1)',
    "a function's default argument": 'select public.with_default()',
  }

  it('refuses each, as a simple query and in the extended protocol, and no account is deleted', async () => {
    await expectEachRefused(t, statements, {accounts, refill})
  })

  it('still writes and reads through conversions to domains whose checks are built in', async () => {
    await direct((c) => c.query('create domain positive as int check (value > 0); create table p_def (x int, y int default (5::positive), check ((x::positive) > 0)); create view p_view as select (x::positive) as p from p_def'))
    const c = await t.client()
    await c.query('insert into p_def (x) values (1)')
    expect((await c.query('select count(*)::int n from p_view')).rows).toEqual([{n: 1}])
    await c.end()
  })
})
