/**
 * The objects an approval is bound to (objects.ts) are those the held statement can reach, not the
 * whole database: on a busy database someone is always replacing a function or redefining a view
 * somewhere, and an approval voided by any such change would rarely survive its wait. Changes out
 * of the statement's reach (another schema's function replaced, an unrelated view redefined, a
 * trigger or policy on a table it never touches, an overload of a function it never calls) let the
 * approved statement run. Changes it reaches only through other objects stay refused: a function
 * a trigger function calls by name, the view a view reads, the table a foreign key cascades into, a
 * child of the table it deletes from, an overload of a function a trigger body calls. Real tunnel,
 * real IdP, real PostgreSQL, node-postgres for the requester and a direct connection for the one
 * who moves things.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {withClient} from '../helpers/pg.js'
import {approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'

const TARGET = [
  'allow: [engineering]',
  'reviewers: [dba]',
  'approvals:',
  '  expiry: 15m',
  'rules:',
  '  - id: deletes-review',
  '    match: {class: write, command: [delete]}',
  '    action: require_approval',
].join('\n')

const WIPE = (name: string) => `create function public.${name}() returns trigger language plpgsql as $$ begin delete from payroll; return old; end $$`

interface Variant {
  what: string
  setup: string
  statement: string
  change: string
  /** What the refusal names as moved. */
  names: string
  /** Reaches it by a name made at run time: the whole database is compared, the change out of reach named too. */
  dynamic?: boolean
  check: string
  /** Run once checked, so what the change left behind cannot reach the variants after it. */
  cleanup?: string
}

/** Each reaches what moved only through another object; each would empty payroll or copy it. */
const REACHED: Variant[] = [
  {
    what: 'a function that the trigger function of the table it deletes from calls by name, replaced',
    setup: `create table orders_c (id int) with (autovacuum_enabled = false); insert into orders_c values (1), (2);
      create function public.note_c() returns int language sql as $$ select 1 $$;
      create function public.audit_c() returns trigger language plpgsql as $$ begin perform note_c(); return old; end $$;
      create trigger orders_c_audit before delete on orders_c for each row execute function public.audit_c()`,
    statement: 'delete from orders_c where id = 1',
    change: `create or replace function public.note_c() returns int language sql as $$ delete from payroll; select 1 $$`,
    names: 'note_c',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_c)::text || ' orders' as v`,
  },
  {
    what: 'an overload of the function a trigger function calls, made in the schema it resolves in',
    setup: `create table orders_o (id int) with (autovacuum_enabled = false); insert into orders_o values (1), (2);
      create function public.note_o(n bigint) returns int language sql as $$ select 1 $$;
      create function public.audit_o() returns trigger language plpgsql as $$ begin perform note_o(old.id); return old; end $$;
      create trigger orders_o_audit before delete on orders_o for each row execute function public.audit_o()`,
    statement: 'delete from orders_o where id = 1',
    change: `create function public.note_o(n int) returns int language sql as $$ delete from payroll; select 1 $$`,
    names: 'note_o',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_o)::text || ' orders' as v`,
  },
  {
    what: 'the view that the view it reads selects from, redefined',
    setup: `create table orders_w (id int, amount int); insert into orders_w values (1, 10);
      create view inner_w as select id, amount from orders_w; create view outer_w as select id, amount from inner_w`,
    statement: 'create table report_w as select * from outer_w',
    change: `create or replace view inner_w as select id, salary as amount from payroll`,
    names: 'inner_w',
    check: `select coalesce((select string_agg(amount::text, ',') from report_w), 'none') as v`,
  },
  {
    what: 'a trigger added to the table a foreign key of the table it deletes from cascades into',
    setup: `create table orders_k (id int primary key) with (autovacuum_enabled = false); insert into orders_k values (1), (2);
      create table lines_k (order_id int references orders_k on delete cascade) with (autovacuum_enabled = false); insert into lines_k values (1), (2);
      ${WIPE('wipe_k')}`,
    statement: 'delete from orders_k where id = 1',
    change: `create trigger lines_k_wipe before delete on lines_k for each row execute function public.wipe_k()`,
    names: 'lines_k',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_k)::text || ' orders' as v`,
  },
  {
    what: 'a trigger added to a child of the table it deletes from',
    setup: `create table orders_i (id int) with (autovacuum_enabled = false); create table orders_i_2026 () inherits (orders_i) with (autovacuum_enabled = false);
      insert into orders_i_2026 values (1), (2); ${WIPE('wipe_i')}`,
    statement: 'delete from orders_i where id = 1',
    change: `create trigger orders_i_wipe before delete on orders_i_2026 for each row execute function public.wipe_i()`,
    names: 'orders_i_2026',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_i)::text || ' orders' as v`,
  },
  {
    what: 'a column of the table it reads renamed, and another put under its name',
    setup: `create table orders_a (id int, amount int, secret int); insert into orders_a values (1, 10, 100)`,
    statement: 'create table report_a as select id, amount from orders_a',
    change: `alter table orders_a rename column amount to amount_old; alter table orders_a rename column secret to amount`,
    names: 'orders_a',
    check: `select coalesce((select string_agg(amount::text, ',') from report_a), 'none') as v`,
  },
  {
    what: 'the function behind an operator its condition uses, replaced',
    setup: `create table orders_z (id int) with (autovacuum_enabled = false); insert into orders_z values (1), (2);
      create function public.same_z(a int, b int) returns boolean language sql as $$ select a = b $$;
      create operator public.=== (leftarg = int, rightarg = int, function = public.same_z)`,
    statement: 'delete from orders_z where id === 1',
    change: `create or replace function public.same_z(a int, b int) returns boolean language sql as $$ delete from payroll; select a = b $$`,
    names: 'same_z',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_z)::text || ' orders' as v`,
  },
  {
    what: 'the function of an event trigger that its DDL fires, replaced',
    setup: `create table orders_e (id int); insert into orders_e values (1), (2);
      create function public.ddl_e() returns event_trigger language plpgsql as $$ begin null; end $$;
      create event trigger ddl_e_end on ddl_command_end execute function public.ddl_e()`,
    statement: 'create table report_e as select * from orders_e',
    change: `create or replace function public.ddl_e() returns event_trigger language plpgsql as $$ begin if tg_tag = 'CREATE TABLE AS' then delete from payroll; end if; end $$`,
    names: 'ddl_e',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_e)::text || ' orders' as v`,
    cleanup: 'drop event trigger ddl_e_end',
  },
  {
    what: 'a trigger added to the table it deletes from, named in quotes by a name that is no word',
    setup: `create table "Orders-Q 2026" (id int) with (autovacuum_enabled = false); insert into "Orders-Q 2026" values (1), (2); ${WIPE('wipe_q')}`,
    statement: 'delete from "Orders-Q 2026" where id = 1',
    change: `create trigger orders_q_wipe before delete on "Orders-Q 2026" for each row execute function public.wipe_q()`,
    names: 'Orders-Q 2026',
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from "Orders-Q 2026")::text || ' orders' as v`,
  },
  {
    what: 'a trigger added to the table it deletes from, named in Unicode escapes (U&"…")',
    setup: `create table orders_uu (id int) with (autovacuum_enabled = false); insert into orders_uu values (1), (2); ${WIPE('wipe_uu')}`,
    statement: 'delete from U&"orders\\005fuu" where id = 1',
    change: `create trigger orders_uu_wipe before delete on orders_uu for each row execute function public.wipe_uu()`,
    names: 'orders_uu',
    dynamic: true,
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_uu)::text || ' orders' as v`,
  },
  {
    what: 'a trigger added to a table that the trigger function of the table it deletes from writes by a name made at run time (EXECUTE)',
    setup: `create table orders_x (id int) with (autovacuum_enabled = false); insert into orders_x values (1), (2);
      create table audit_x (id int) with (autovacuum_enabled = false); ${WIPE('wipe_x')};
      create function public.audit_x() returns trigger language plpgsql as $$ begin execute format('insert into %I values (1)', 'aud' || 'it_x'); return old; end $$;
      create trigger orders_x_audit before delete on orders_x for each row execute function public.audit_x()`,
    statement: 'delete from orders_x where id = 1',
    change: `create trigger audit_x_wipe before insert on audit_x for each row execute function public.wipe_x()`,
    names: 'audit_x',
    dynamic: true,
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_x)::text || ' orders' as v`,
  },
  {
    what: 'a view redefined that a function it calls reads through query_to_xml, by a name made at run time',
    setup: `create view payroll_q as select 1 as salary;
      create function public.read_q() returns text language sql as $$ select query_to_xml('select * from pay' || 'roll_q', true, false, '')::text $$`,
    statement: `create table report_q as select read_q() as amount`,
    change: `create or replace view payroll_q as select salary from payroll`,
    names: 'payroll_q',
    dynamic: true,
    check: `select coalesce((select string_agg(amount::text, ',') from report_q), 'none') as v`,
  },
]

describe('the objects an approval is bound to are those the held statement can reach', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'objects_reach', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) =>
      c.query(`create table payroll (id int, salary int) with (autovacuum_enabled = false); insert into payroll values (1, 100);
        create schema billing; create function billing.rate() returns int language sql as 'select 1';
        create table unrelated_t (id int) with (autovacuum_enabled = false); create view unrelated_v as select 1 as x;
        create function unrelated_fn(n int) returns int language sql as 'select n';
        create function public.unrelated_trg() returns trigger language plpgsql as $$ begin return new; end $$`),
    )
  })
  afterAll(() => s?.close())

  const serverSays = (sql: string) => withClient(s.db.url, async (c) => String((await c.query(sql)).rows[0].v))

  /** Holds `statement`, commits `change` straight to the database, approves; the client's error, if any. */
  async function approveAcross(statement: string, change: string): Promise<{id: string; error?: Error & {code?: string}}> {
    const c = await s.t.client()
    const w = watchNotices(c)
    const held = c.query(statement).then(
      () => undefined,
      (e: Error & {code?: string}) => e,
    )
    const id = await w.approvalId()
    await withClient(s.db.url, (d) => d.query(change))
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
    const error = await held
    await c.end()
    return {id, error}
  }

  it('runs the approved statement when what changed is out of its reach', async () => {
    await withClient(s.db.url, (c) => c.query('create table orders_u (id int, amount int); insert into orders_u values (1, 10)'))
    const {error} = await approveAcross(
      'create table report_u as select * from orders_u',
      [
        `create or replace function billing.rate() returns int language sql as 'select 2'`,
        'create or replace view unrelated_v as select 2 as x',
        'create trigger unrelated_t_trg before insert on unrelated_t for each row execute function public.unrelated_trg()',
        'alter table unrelated_t enable row level security; create policy unrelated_p on unrelated_t using (id > 0)',
        'alter table unrelated_t add column note text',
        `create function unrelated_fn(n bigint) returns int language sql as 'select 2'`,
        'create table billing.unrelated_t (id int)',
      ].join(';\n'),
    )
    expect(error?.message).toBeUndefined()
    expect(await serverSays('select count(*)::text as v from report_u')).toBe('1')
  })

  for (const v of REACHED) {
    it(`refuses the approved statement after ${v.what}`, async () => {
      await withClient(s.db.url, (c) => c.query(v.setup))
      // Committed with it, a change out of its reach: the refusal names what the statement reaches only.
      const {id, error} = await approveAcross(v.statement, `${v.change}; create or replace function billing.rate() returns int language sql as 'select 3'`)
      const after = await serverSays(v.check).catch((e: Error) => `error: ${e.message}`)
      if (v.cleanup) await withClient(s.db.url, (c) => c.query(v.cleanup!))
      expect({error: error?.message, code: error?.code}, v.what).toMatchObject({
        error: expect.stringMatching(new RegExp(`approval ${id} .*objects the statement .*changed while it waited`)),
        code: '55P03',
      })
      expect(error?.message, v.what).toContain(v.names)
      if (!v.dynamic) expect(error?.message, v.what).not.toMatch(/billing\.rate|\d+ more/)
      expect(after, v.what).toMatch(/^(error: relation "report_\w" does not exist|1 payroll rows, 2 orders)$/)
    })
  }
})
