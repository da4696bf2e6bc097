/**
 * A reviewer approves a statement as it reads against the database's objects when it was held: the
 * function it calls, the table and view it names, the triggers that fire on its write. Someone
 * connected to the database directly (a migration tool, a colleague's psql, a cron job: not through
 * dbgate, so no pipeline hears of it) changed those objects while the statement waited, and the
 * approved statement ran with their new meaning: a function body replaced to read payroll, a
 * `public.lower(varchar)` overload that wins over pg_catalog's for a varchar column, a table renamed
 * and another put under its name, a view redefined, a trigger added that deletes payroll. Each is now
 * refused once approved, nothing runs, and the requester is told why. Real tunnel, real IdP, real
 * PostgreSQL, node-postgres for the requester and a direct connection for the one who moves things.
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

interface Variant {
  what: string
  /** Objects made before the statement is sent (each variant its own names). */
  setup: string
  statement: string
  /** What another connection, straight to the database, commits while the statement waits. */
  change: string
  /** What the server holds afterwards: the same before the change and after the refusal. */
  check: string
}

const VARIANTS: Variant[] = [
  {
    what: 'a function body replaced',
    setup: `create table orders_f (id int, amount int); insert into orders_f values (1, 10);
      create function public.tag(n int) returns text language sql immutable as $$ select 'ok' $$`,
    statement: 'create table report_f as select id, tag(id) as t from orders_f',
    change: `create or replace function public.tag(n int) returns text language sql immutable as $$ select salary::text from payroll limit 1 $$`,
    check: `select coalesce((select string_agg(t, ',') from report_f), 'none') as v`,
  },
  {
    what: 'an overload in public that wins over pg_catalog.lower for a varchar column',
    setup: `create table people_s (id int, name varchar(20)); insert into people_s values (1, 'Ann')`,
    statement: 'create table report_s as select id, lower(name) as n from people_s',
    change: `create function public.lower(v varchar) returns text language sql immutable as $$ select (select salary::text from payroll limit 1) $$`,
    check: `select coalesce((select string_agg(n, ',') from report_s), 'none') as v`,
  },
  {
    what: 'a table renamed and another put under its name',
    setup: `create table orders_r (id int, amount int); insert into orders_r values (1, 10)`,
    statement: 'create table report_r as select * from orders_r',
    change: `alter table orders_r rename to orders_r_old; create table orders_r as select id, salary as amount from payroll`,
    check: `select coalesce((select string_agg(amount::text, ',') from report_r), 'none') as v`,
  },
  {
    what: 'a view redefined',
    setup: `create table orders_v (id int, amount int); insert into orders_v values (1, 10); create view recent_v as select id, amount from orders_v`,
    statement: 'create table report_v as select * from recent_v',
    change: `create or replace view recent_v as select id, salary as amount from payroll`,
    check: `select coalesce((select string_agg(amount::text, ',') from report_v), 'none') as v`,
  },
  {
    what: 'a schema named as the role, first on the default search_path ("$user", public), holding a table of the same name',
    setup: `create table orders_u (id int, amount int); insert into orders_u values (1, 10)`,
    statement: 'create table report_u as select * from orders_u',
    change: `create schema "$ROLE"; create table "$ROLE".orders_u as select id, salary as amount from payroll`,
    check: `select coalesce((select string_agg(amount::text, ',') from report_u), 'none') as v`,
  },
  {
    what: 'a trigger added to the table the approved DELETE writes',
    setup: `create table orders_t (id int, amount int) with (autovacuum_enabled = false); insert into orders_t values (1, 10), (2, 20);
      create function public.wipe_payroll() returns trigger language plpgsql as $$ begin delete from payroll; return old; end $$`,
    statement: 'delete from orders_t where id = 1',
    change: `create trigger orders_t_wipe before delete on orders_t for each row execute function public.wipe_payroll()`,
    check: `select (select count(*) from payroll)::text || ' payroll rows, ' || (select count(*) from orders_t)::text || ' orders' as v`,
  },
]

describe('objects a held statement resolves to, changed outside dbgate while it waits', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'objects_moved', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) => c.query('create table payroll (id int, salary int) with (autovacuum_enabled = false); insert into payroll values (1, 100)'))
  })
  afterAll(() => s?.close())

  const serverSays = (sql: string) => withClient(s.db.url, async (c) => String((await c.query(sql)).rows[0].v))

  for (const v of VARIANTS) {
    it(`refuses the approved statement after ${v.what}`, async () => {
      await withClient(s.db.url, (c) => c.query(v.setup))
      const c = await s.t.client()
      const w = watchNotices(c)
      const held = c.query(v.statement).then(
        () => undefined,
        (e: Error & {code?: string}) => e,
      )
      const id = await w.approvalId()
      await withClient(s.db.url, (d) => d.query(v.change.replaceAll('$ROLE', s.db.user)))
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
      const error = await held
      await c.end()
      const after = await serverSays(v.check).catch((e: Error) => `error: ${e.message}`)
      expect({error: error?.message, code: error?.code, after}, v.what).toMatchObject({
        error: expect.stringMatching(new RegExp(`approval ${id} .*objects the statement .*changed while it waited`)),
        code: '55P03',
      })
      // Nothing ran: no copy was made, no payroll row went.
      expect(after, v.what).toMatch(/^(error: relation "report_\w" does not exist|1 payroll rows, 2 orders)$/)
    })
  }

  it('runs the approved statement when nothing it may resolve to moved: other sessions made their own temporary tables, unrelated tables and functions, indexes, and ran VACUUM and ANALYZE', async () => {
    await withClient(s.db.url, (c) => c.query('create table orders_n (id int, amount int); insert into orders_n values (1, 10)'))
    const c = await s.t.client()
    const w = watchNotices(c)
    const held = c.query('create table report_n as select * from orders_n')
    const id = await w.approvalId()
    await withClient(s.db.url, async (d) => {
      await d.query('create temp table scratch (id int primary key); insert into scratch values (1); analyze payroll')
      await d.query('vacuum full orders_n')
      await d.query('create index orders_n_id on orders_n (id)')
      await d.query("create table unrelated_n (id int primary key, note text default 'x'); create function unrelated_fn() returns int language sql as 'select 1'")
    })
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
    await held
    await c.end()
    expect(await serverSays('select count(*)::text as v from report_n')).toBe('1')
  })
})
