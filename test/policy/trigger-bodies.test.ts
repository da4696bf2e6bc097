import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {from as copyFrom} from 'pg-copy-streams'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered, refusedByRule, type Refusal} from './unfiltered.js'

/**
 * A write fires the triggers of the relation it names, of the tables behind a view or rule, of a
 * parent's partitions and of the tables a cascading foreign key writes. Their code runs as part of
 * the client's statement and is judged as the client's own: before, `DELETE FROM v WHERE id = 5`
 * on a view whose INSTEAD OF trigger runs `DELETE FROM accounts` emptied accounts through the
 * tunnel as a "filtered" delete, and so did every other route here.
 */
describe('what a write\'s triggers run', () => {
  const {db, t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    insert into accounts select g, 100 from generate_series(1, 10) g;
    create schema hr;
    create table hr.salaries (id int primary key, amount int);
    insert into hr.salaries values (1, 5000);

    -- Bodies that change every account.
    create function wipe_accounts() returns trigger language plpgsql as $$ begin delete from accounts; return old; end $$;
    create function zero_accounts() returns trigger language plpgsql as $$ begin update accounts set balance = 0 where true; return new; end $$;
    create function truncate_accounts() returns trigger language plpgsql as $$ begin truncate accounts; return null; end $$;
    create function wipe_helper() returns void language plpgsql as $$ begin delete from accounts where 1 = 1; end $$;
    create function via_helper() returns trigger language plpgsql as $$ begin perform wipe_helper(); return new; end $$;
    create function dynamic_wipe() returns trigger language plpgsql as $$ begin execute 'delete from accounts'; return new; end $$;
    create function copy_salary() returns trigger language plpgsql as $$ begin new.note := (select amount::text from hr.salaries where id = new.id); return new; end $$;
    -- A column named like a variable, where the body lets columns win: accounts.id = id holds for every row.
    create function shadowed() returns trigger language plpgsql as $$
      #variable_conflict use_column
      declare id int := 1;
      begin delete from accounts where accounts.id = id; return old; end $$;

    create view accounts_v as select * from accounts;
    create function wipe_through_view() returns trigger language plpgsql as $$
      begin delete from accounts where id in (select v.id from accounts_v v); return new; end $$;
    create function wipe_or_true() returns trigger language plpgsql as $$
      begin update accounts set balance = 0 where id = new.id or true; return new; end $$;
    create table view_t (id int);
    create trigger view_t_t after insert on view_t for each row execute function wipe_through_view();
    create table or_t (id int);
    create trigger or_t_t before insert on or_t for each row execute function wipe_or_true();
    create view wipe_v as select * from accounts;
    create trigger wipe_v_t instead of delete on wipe_v for each row execute function wipe_accounts();
    create view zero_v as select * from accounts;
    create trigger zero_v_t instead of update on zero_v for each row execute function zero_accounts();
    create table log_t (id int, note text);
    insert into log_t select g, 'x' from generate_series(1, 10) g;
    create trigger log_t_wipe after delete on log_t for each statement execute function wipe_accounts();
    create table inbox (id int, note text);
    create trigger inbox_zero before insert on inbox for each row execute function zero_accounts();
    create table parted (id int, note text) partition by range (id);
    create table parted_1 partition of parted for values from (0) to (100);
    create trigger parted_1_t after insert on parted_1 for each row execute function zero_accounts();
    create table parents (id int primary key);
    insert into parents values (1), (2);
    create table children (id int, parent int references parents on delete cascade);
    insert into children values (1, 1), (2, 2);
    create trigger children_t after delete on children for each row execute function wipe_accounts();
    create table trunc_t (id int);
    create trigger trunc_t_t after insert on trunc_t for each statement execute function truncate_accounts();
    create table helper_t (id int);
    create trigger helper_t_t after insert on helper_t for each row execute function via_helper();
    create table dyn_t (id int);
    create trigger dyn_t_t after insert on dyn_t for each row execute function dynamic_wipe();
    create table shadow_t (id int);
    insert into shadow_t values (1);
    create trigger shadow_t_t after delete on shadow_t for each row execute function shadowed();
    create table hr_copy (id int, note text);
    create trigger hr_copy_t before insert on hr_copy for each row execute function copy_salary();

    -- Ordinary triggers: they keep running.
    create table orders (id int primary key, account int, note text, updated_at timestamptz);
    insert into orders values (1, 1, 'a', null), (2, 2, 'b', null);
    create table audit (op text, id int, at timestamptz default now());
    create function touch() returns trigger language plpgsql as $$ begin new.updated_at := now(); return new; end $$;
    create function audit_row() returns trigger language plpgsql as $$
      begin
        insert into audit (op, id) values (tg_op, coalesce(new.id, old.id));
        return coalesce(new, old);
      end $$;
    create function settle_account() returns trigger language plpgsql as $$
      declare v_account int := old.account;
      begin
        update accounts set balance = balance + 1 where id = v_account;
        delete from audit where id = old.id and op = 'pending';
        return old;
      end $$;
    create trigger orders_touch before update on orders for each row execute function touch();
    create trigger orders_audit after insert or update or delete on orders for each row execute function audit_row();
    create trigger orders_settle after delete on orders for each row execute function settle_account();
  `, 'rules:\n  - id: no-hr\n    match: {tables: ["hr.*"]}\n    action: deny\n    reason: hr data stays in hr')
  const state = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})
  const refusedBy = refusedByRule

  it('refuses a write whose trigger deletes or changes every row, on every route that fires it', async () => {
    const c = await t.client()
    for (const sql of [
      'delete from wipe_v where id = 5',
      'delete from public.wipe_v where id = 5',
      'update zero_v set balance = 1 where id = 5',
      'delete from log_t where id = 5',
      "insert into inbox values (1, 'x')",
      'insert into inbox select 1, null',
      "insert into parted values (1, 'x')",
      'delete from parents where id = 1',
      'with d as (delete from log_t where id = 3 returning id) select count(*) from d',
      'merge into wipe_v w using (select 5 as id) s on w.id = s.id when matched then delete',
      'delete from shadow_t where id = 1',
      'insert into view_t values (1)',
      'insert into or_t values (1)',
    ]) {
      const e = await refusedAsUnfiltered(c, sql)
      expect(e.detail, sql).toMatch(/run by the trigger \w+ on public\.\w+ \(public\.(wipe_accounts|zero_accounts|shadowed|wipe_through_view|wipe_or_true)\)/)
    }
    // COPY FROM fires the insert triggers too.
    const copied = (await pipeline(Readable.from(['1\tx\n']), c.query(copyFrom('copy inbox from stdin'))).catch((x: Error) => x)) as Refusal | undefined
    expect(copied?.message).toMatch(/rule default\.no-unfiltered-update/)
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('refuses a trigger that truncates, and holds one whose code it cannot see or that calls a function that wipes', async () => {
    const c = await t.client()
    await refusedBy(c, 'insert into trunc_t values (1)', /rule default\.no-truncate/)
    expect((await refusedBy(c, 'insert into helper_t values (1)', /rule default\.volatile-function/)).detail).toMatch(/wipe_helper .*deletes every row of accounts/)
    expect((await refusedBy(c, 'insert into dyn_t values (1)', /rule default\.volatile-function/)).detail).toMatch(/the trigger dyn_t_t on public\.dyn_t runs public\.dynamic_wipe, which runs SQL built at run time/)
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('applies tables rules to what a trigger reads', async () => {
    const c = await t.client()
    const e = await refusedBy(c, "insert into hr_copy values (1, 'x')", /rule no-hr/)
    expect(e.detail).toMatch(/copy_salary/)
    expect(await direct(async (d) => (await d.query('select count(*)::int n from hr_copy')).rows[0])).toEqual({n: 0})
    await c.end()
  })

  it('still runs writes whose triggers stamp, audit or write the rows they concern', async () => {
    const c = await t.client()
    await c.query("update orders set note = 'c' where id = 1")
    await c.query("insert into orders values (3, 3, 'd', null)")
    await c.query('delete from orders where id = 2')
    const after = await direct(async (d) => ({
      orders: (await d.query('select id, note, updated_at is not null as stamped from orders order by id')).rows,
      audit: (await d.query('select op, id from audit order by at, op')).rows.map((r: {op: string; id: number}) => `${r.op} ${r.id}`).sort(),
      accounts: (await d.query('select balance from accounts where id = 2')).rows[0],
    }))
    expect(after.orders).toEqual([
      {id: 1, note: 'c', stamped: true},
      {id: 3, note: 'd', stamped: false},
    ])
    expect(after.audit).toEqual(['DELETE 2', 'INSERT 3', 'UPDATE 1'])
    expect(after.accounts).toEqual({balance: 101})
    await c.end()
  })
})

describe('a trigger body where columns win over variables for the whole database', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct(async (c) => {
      await c.query(`alter database "${db.database}" set plpgsql.variable_conflict = use_column`)
      await c.query(`
        create table accounts (id int primary key, balance int);
        insert into accounts select g, 100 from generate_series(1, 10) g;
        create function shadowed() returns trigger language plpgsql as $$
          declare id int := old.id;
          begin delete from accounts where accounts.id = id; return old; end $$;
        create table shadow_t (id int);
        insert into shadow_t values (1);
        create trigger shadow_t_t after delete on shadow_t for each row execute function shadowed();
      `)
    })
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  it('judges `accounts.id = id` as the server runs it: the column compared with itself', async () => {
    const c = await t.client()
    await refusedAsUnfiltered(c, 'delete from shadow_t where id = 1')
    expect(await direct(async (d) => (await d.query('select count(*)::int n from accounts')).rows[0])).toEqual({n: 10})
    await c.end()
  })
})
