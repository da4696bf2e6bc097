import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {serialize} from 'pg-protocol'
import {decodeNotice} from '../../src/wire/backend.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {policyCheckOutput} from '../helpers/policy-check.js'
import {seededTunnel} from '../helpers/seeded-tunnel.js'

/**
 * Effects reached by a route the statement's text does not show: set_config under another name or
 * behind pg_settings' UPDATE rule, built-ins called by a view or a rule, and operators run by a
 * subquery comparison or a CASE. Each family got through the real tunnel before; the session's
 * settings and the database are read afterwards, not just the error.
 */
type Refusal = Error & {code?: string; detail?: string; hint?: string}

/** What a user reads when a statement changes settings without showing which. */
const HIDDEN_SETTING_REASON =
  'this statement changes session settings without showing which setting gets which value (a write to pg_settings runs set_config for each row it matches; so does a view or rule that calls set_config), so dbgate cannot judge it'
const HIDDEN_SETTING_HINT =
  "change the setting with SET name = value, or with set_config('name', 'value', false) called directly: dbgate judges those setting by setting. Reading pg_settings stays allowed"

async function outcome(c: pg.Client, sql: string): Promise<Refusal | undefined> {
  return (await c.query(sql).then(
    () => undefined,
    (e: Refusal) => e,
  )) as Refusal | undefined
}

/** The error the tunnel answered `sql` with, after checking it is a policy refusal (42501). */
async function refused(c: pg.Client, sql: string): Promise<Refusal> {
  const e = await outcome(c, sql)
  expect(e, sql).toBeInstanceOf(Error)
  expect(e!.code, sql).toBe('42501')
  return e!
}

describe('settings changed by a route the statement does not show', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create role hidden_routes_nobody;
        create view settings_view as select name, setting from pg_settings;
        create view settings_view2 as select * from settings_view;
        create view nulls_on as select set_config('transform_null_equals', 'on', false) as s;
        create view nulls_on2 as select * from nulls_on;
      `),
    )
    t = await openPipelineTunnel(db, 'rules:\n  - id: ddl-approval\n    match: {class: ddl}\n    action: require_approval')
  })
  afterAll(async () => {
    await t.close()
    await direct((c) => c.query('drop owned by hidden_routes_nobody; drop role hidden_routes_nobody').catch(() => {}))
  })

  /** The settings an attack aims at, as the server has them for this session. */
  const state = async (c: pg.Client) =>
    (
      await c.query(
        "select current_user::text u, current_setting('session_replication_role') r, current_setting('transform_null_equals') n, current_setting('search_path') p",
      )
    ).rows[0] as {u: string; r: string; n: string; p: string}

  it('judges set_config under every name the server accepts, catalog-qualified included', async () => {
    const names = ['set_config', 'pg_catalog.set_config', `${db.database}.pg_catalog.set_config`, `"${db.database}"."pg_catalog"."set_config"`]
    for (const fn of names) {
      for (const sql of [
        `select ${fn}('role', 'hidden_routes_nobody', false)`,
        `select ${fn}('session_replication_role', 'replica', false)`,
        `select ${fn}('transform_null_equals', 'on', true)`,
        `select * from (select ${fn}('search_path', 'evil, public', false)) s`,
        `with s as (select ${fn}('session_replication_role', 'replica', false)) select * from s`,
        `explain analyze select ${fn}('transform_null_equals', 'on', false)`,
      ]) {
        const c = await t.client()
        const e = await refused(c, sql)
        expect(await state(c), sql).toEqual({u: db.user, r: 'origin', n: 'off', p: '"$user", public'})
        await c.end()
      }
      // An ordinary setting still goes through by the same name (read back directly: masking may
      // hide a value set by a call it does not recognise).
      const c = await t.client()
      const app = `hidden-routes-${names.indexOf(fn)}`
      await c.query(`select ${fn}('application_name', '${app}', false)`)
      expect(await direct(async (d) => (await d.query('select count(*)::int n from pg_stat_activity where application_name = $1', [app])).rows[0].n)).toBe(1)
      await c.end()
    }
  })

  it('refuses writes to pg_settings, directly or through views, and still lets it be read', async () => {
    for (const target of ['pg_settings', 'pg_catalog.pg_settings', `${db.database}.pg_catalog.pg_settings`, 'settings_view', 'settings_view2']) {
      for (const [name, value] of [
        ['session_replication_role', 'replica'],
        ['transform_null_equals', 'on'],
        ['search_path', 'evil, public'],
        ['role', 'hidden_routes_nobody'],
      ]) {
        const sql = `update ${target} set setting = '${value}' where name = '${name}'`
        const c = await t.client()
        const e = await refused(c, sql)
        expect(e.message, sql).toBe(`dbgate: statement denied by rule default.no-hidden-setting: ${HIDDEN_SETTING_REASON}`)
        expect(e.hint, sql).toBe(HIDDEN_SETTING_HINT)
        expect(await state(c), sql).toEqual({u: db.user, r: 'origin', n: 'off', p: '"$user", public'})
        await c.end()
      }
    }
    const c = await t.client()
    const {rows} = await c.query("select setting from pg_settings where name = 'transform_null_equals'")
    expect(rows).toEqual([{setting: 'off'}])
    await c.end()
  })

  it('says what is refused and what to do instead in `dbgate policy check` too', async () => {
    const out = await policyCheckOutput("update pg_settings set setting = 'on' where name = 'transform_null_equals'; update pg_catalog.pg_settings set setting = 'replica' where name = 'session_replication_role'")
    for (const n of [1, 2]) expect(out).toContain(`[${n}] DENY     set (unknown)  rule default.no-hidden-setting`)
    expect(out).toContain(`    ${HIDDEN_SETTING_REASON}\n`)
    expect(out).toContain(`    hint: ${HIDDEN_SETTING_HINT}\n`)
    expect(out).not.toMatch(/syntax/)
  })

  it('refuses a view that calls set_config, however deep', async () => {
    for (const sql of ['select * from nulls_on', 'table nulls_on2', 'select 1 from nulls_on2 where false union all select 1 from nulls_on', 'select (select s from nulls_on)']) {
      const c = await t.client()
      const e = await refused(c, sql)
      expect(e.detail ?? e.message, sql).toMatch(/set_config/)
      expect(e.message, sql).toMatch(/^dbgate: statement denied by rule default\.no-hidden-setting: this statement changes session settings without showing which setting/)
      expect(e.hint, sql).toBe(HIDDEN_SETTING_HINT)
      expect((await state(c)).n, sql).toBe('off')
      await c.end()
    }
  })
})

describe('built-ins called by views and rules', () => {
  const {db, t, direct} = seededTunnel(`
    create table notes (id int primary key, body text);
    insert into notes values (1, 'a'), (2, 'b');
    create view killer as select pg_terminate_backend(pid) as k from pg_stat_activity where application_name = 'hidden-routes-victim';
    create view killer2 as select * from killer;
    create view cancel_all as select pg_cancel_backend(pid) as k from pg_stat_activity where application_name = 'hidden-routes-victim';
    create view reload as select pg_reload_conf() as r;
    create view passwd as select pg_read_file('postgresql.conf') as f;
    create view dump as select query_to_xml('select 1', true, false, '') as x;
    create view counted as select count(*) as n, max(id) as m from notes;
    create view shout as select upper(body) as b from notes;
    create table audit_me (id int);
    create rule kill_on_insert as on insert to audit_me do also select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'hidden-routes-victim';
  `)

  it('judges a view or rule by the built-ins it calls, not only by user functions', async () => {
    {
      const victim = await t.client({application_name: 'hidden-routes-victim'})
      for (const [sql, rule] of [
        ['select * from killer', /default\.no-server-functions/],
        ['select * from killer2', /default\.no-server-functions/],
        ['select k from cancel_all', /default\.no-server-functions/],
        ['select * from reload', /default\.no-server-functions/],
        ['select * from passwd', /default\.no-server-functions/],
        ['select * from dump', /default\.no-dynamic-sql/],
        ['insert into audit_me values (1)', /default\.no-server-functions/],
      ] as const) {
        const c = await t.client()
        const e = await refused(c, sql)
        expect(e.message, sql).toMatch(rule)
        await c.end()
      }
      // The victim's session is still there.
      expect((await victim.query('select 1 as one')).rows).toEqual([{one: 1}])
      expect(await direct(async (c) => (await c.query('select count(*)::int n from audit_me')).rows[0].n)).toBe(0)
      await victim.end()
    }
  })

  it('still lets views over stable and immutable built-ins and aggregates be read', async () => {
    const c = await t.client()
    expect((await c.query('select n, m from counted')).rows).toEqual([{n: '2', m: 2}])
    expect((await c.query('select b from shout order by b')).rows).toEqual([{b: 'A'}, {b: 'B'}])
    // Ordered-set and hypothetical-set aggregates are found with their WITHIN GROUP arguments.
    const sets = await c.query('select percentile_cont(0.5) within group (order by id) p, mode() within group (order by body) m, rank(2) within group (order by id) r from notes')
    expect(sets.rowCount).toBe(1)
    await c.end()
  })
})

describe('operators run by subquery comparisons and CASE', () => {
  const {db, t, direct} = seededTunnel(`
    create table op_log (x text);
    create function noisy_eq(int, int) returns bool language plpgsql as $$ begin insert into op_log values ('ran'); return $1 = $2; end $$;
    create operator === (leftarg = int, rightarg = int, function = noisy_eq);
    create domain tag as int;
    create function tag_eq(tag, tag) returns bool language plpgsql as $$ begin insert into op_log values ('tag'); return $1::int = $2::int; end $$;
    create operator = (leftarg = tag, rightarg = tag, function = tag_eq);
    create table tagged (t tag);
    insert into tagged values (1), (2);
  `)
  const logged = () => direct(async (c) => (await c.query('select count(*)::int n from op_log')).rows[0].n as number)

  it('judges the operator of ANY, ALL, IN and row comparisons with a subquery, and of CASE x WHEN', async () => {
    const c = await t.client()
    for (const sql of [
      'select 1 where 1 === any (select 1)',
      'select 1 where 1 === some (select 1)',
      'select 1 where 1 operator(public.===) all (select 1)',
      'select 1 where not (2 === any (select 1))',
      'select 1 where (1, 1) === any (select 1, 1)',
      'select (select 1) === (select 1) where (1, 2) === (select 1, 2)',
      'select t from tagged where t in (select t from tagged)',
      'select t from tagged where t not in (select t from tagged where false)',
      'select exists (select 1 from tagged where t = any (select t from tagged))',
      'select case t when t then 1 else 0 end from tagged',
      "select case (select t from tagged limit 1) when 1::tag then 'one' end",
    ]) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/default\.volatile-function/)
    }
    expect(await logged()).toBe(0)
    await c.end()
  })
})

describe('what a call runs on its behalf: argument defaults and domain checks', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const state = () =>
    direct(async (c) => (await c.query("select (select count(*)::int from side_log) n, (select last_value::int from ticket) s")).rows[0] as {n: number; s: number})

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create table side_log (x text);
        create sequence ticket;
        select setval('ticket', 1);
        create function noisy(int) returns int language plpgsql as $$ begin insert into side_log values ('noisy'); return $1; end $$;
        create function with_default(a int default noisy(1)) returns int language plpgsql stable as $$ begin return a; end $$;
        create function with_default2(a int, b int default 0, c bigint default nextval('ticket')) returns bigint language plpgsql immutable as $$ begin return c; end $$;
        create domain checked as int check (noisy(value) > 0);
        create domain checked_builtin as bigint check (value < nextval('ticket'));
        create domain checked_deep as checked;
        create function takes_checked(x checked) returns int language plpgsql stable as $$ begin return x; end $$;
        create function takes_deep(x int, y checked_deep) returns int language plpgsql stable as $$ begin return y; end $$;
        create function takes_builtin(x checked_builtin) returns bigint language plpgsql stable as $$ begin return x; end $$;
        create function plain(x int default 1) returns int language plpgsql stable as $$ begin return x; end $$;
      `),
    )
    // nextval is a write the default pack allows; a target rule that refuses it must see it too.
    t = await openPipelineTunnel(db, 'rules:\n  - id: no-ticket-writes\n    match: {class: write, command: function, functions: ["pg_catalog.nextval"]}\n    action: deny')
  })
  afterAll(() => t.close())

  it('judges a function by its argument defaults and the checks of the domains its arguments are coerced to', async () => {
    const c = await t.client()
    for (const sql of [
      'select with_default()',
      'select * from with_default()',
      'select with_default2(1)',
      'select with_default2(a => 1, b => 2)',
      'select takes_checked(5)',
      'select takes_deep(1, 5)',
      'select takes_builtin(1)',
      'select 1::checked_builtin',
    ]) {
      await refused(c, sql)
    }
    expect(await state()).toEqual({n: 0, s: 1})
    // A constant default and a plain argument are still reads.
    expect((await c.query('select plain() as p, plain(2) as q')).rowCount).toBe(1)
    await c.end()
  })
})

describe('row-level security policies', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const role = `hidden_routes_app_${Math.random().toString(36).slice(2, 8)}`
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const logged = () => direct(async (c) => (await c.query('select count(*)::int n from policy_log')).rows[0].n as number)

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create role ${role} login password 'app-password';
        create table policy_log (x text);
        create function noisy_check(int) returns bool language plpgsql security definer as $$ begin insert into policy_log values ('ran'); return true; end $$;
        create function tenant_ok(int) returns bool language sql stable as $$ select $1 > 0 $$;
        create table ledger (id int, amount int);
        insert into ledger values (1, 10), (2, 20);
        alter table ledger enable row level security;
        create policy every_row on ledger using (noisy_check(id));
        create view ledger_view with (security_invoker) as select * from ledger;
        create table tenants (id int);
        insert into tenants values (1);
        alter table tenants enable row level security;
        create policy by_tenant on tenants using (tenant_ok(id));
        grant select, update on ledger, ledger_view, tenants to ${role};
      `),
    )
    // As an ordinary role: the owner and superusers skip row-level security.
    t = await openPipelineTunnel({...db, user: role, password: 'app-password'}, '', {env: {TEST_APP_PASSWORD: 'app-password'}})
  })
  afterAll(async () => {
    await t.close()
    await direct((c) => c.query(`drop owned by ${role}; drop role ${role}`).catch(() => {}))
  })

  it('judges a table by the functions its policies call', async () => {
    const c = await t.client()
    for (const sql of ['select * from ledger', 'select count(*) from ledger_view', 'update ledger set amount = 0 where id = 1', 'select 1 where exists (select 1 from ledger)']) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/default\.volatile-function/)
    }
    expect(await logged()).toBe(0)
    // A policy over a stable function is a read.
    expect((await c.query('select id from tenants')).rowCount).toBe(1)
    await c.end()
  })
})

describe('what handing over arguments runs: implicit casts and domains of parameters, shadowed types', () => {
  const {db, t, direct} = seededTunnel(`
    create table arg_log (x text);
    create function noisy(int) returns bool language plpgsql as $$ begin insert into arg_log values ('noisy'); return true; end $$;
    create type money_box as (cents int);
    create function to_box(int) returns money_box language plpgsql as $$ begin insert into arg_log values ('cast'); return row($1)::money_box; end $$;
    create cast (int as money_box) with function to_box(int) as implicit;
    create function box_total(b money_box) returns int language plpgsql stable as $$ begin return (b).cents; end $$;
    create function box_eq(money_box, money_box) returns bool language sql immutable as 'select true';
    create operator ~~~ (leftarg = money_box, rightarg = money_box, function = box_eq);
    create domain positive as int check (noisy(value));
    create function pos_eq(positive, int) returns bool language sql immutable as 'select true';
    create operator ~=~ (leftarg = positive, rightarg = int, function = pos_eq);
    create domain public.int4 as integer check (noisy(value));
    create domain public.text as pg_catalog.text check (noisy(length(value)));
    create function box_text(money_box) returns pg_catalog.text language plpgsql as $$ begin insert into arg_log values ('to text'); return 'box'; end $$;
    create cast (money_box as pg_catalog.text) with function box_text(money_box);
    create function box_int(money_box) returns integer language plpgsql as $$ begin insert into arg_log values ('to int'); return 1; end $$;
    create cast (money_box as integer) with function box_int(money_box) as implicit;
    create table boxes (b money_box);
    insert into boxes values (row(7));
  `)
  const logged = () => direct(async (c) => (await c.query('select count(*)::int n from arg_log')).rows[0].n as number)

  it('judges a call by the implicit casts and domain checks that coerce its arguments', async () => {
    const c = await t.client()
    for (const sql of [
      'select box_total(5)',
      'select 1 ~~~ 2',
      'select 5 ~=~ 1',
      // A user's cast from a user's type into a built-in one, explicit or implicit.
      'select b::pg_catalog.text from boxes',
      'select b::text from boxes',
      'select cast(b as pg_catalog.text) from boxes',
      'select abs(b) from boxes',
      'select b + 1 from boxes',
    ]) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/default\.volatile-function/)
    }
    expect(await logged()).toBe(0)
    await c.end()
  })

  it('refuses a search_path that lets public shadow built-in type names', async () => {
    for (const path of ['public, pg_catalog', '"$user", public, pg_catalog', 'pg_temp, public, pg_catalog']) {
      const c = await t.client()
      const e = await outcome(c, `set search_path = ${path}`)
      expect(e, path).toBeInstanceOf(Error)
      // pg_temp first is also where new objects would go: the guard that no rule lifts refuses it first.
      expect(e!.message, path).toMatch(path.startsWith('pg_temp') ? /guard\.shadowed-type/ : /default\.no-dangerous-setting/)
      await outcome(c, "select '1'::int4, 'abc'::text")
      await c.end()
    }
    expect(await logged()).toBe(0)
    const c = await t.client()
    await c.query('set search_path = pg_catalog, public')
    // The built-in int4 is what this means now, but a cast to any type of that name is judged by
    // the worst of them, like a function name.
    expect((await outcome(c, "select '1'::int4 as i"))?.message).toMatch(/default\.volatile-function/)
    expect((await c.query("select '1'::pg_catalog.int8 as i")).rowCount).toBe(1)
    await c.end()
    expect(await logged()).toBe(0)
  })
})

describe('conversions into a type named outside a cast', () => {
  const {db, t, direct} = seededTunnel(`
    create table conv_log (x text);
    create function noisy(int) returns bool language plpgsql as $$ begin insert into conv_log values ('noisy'); return true; end $$;
    create domain checked as int check (noisy(value));
    create type holder as (a checked);
    create type holders as (h holder, hs checked[]);
  `)
  const logged = () => direct(async (c) => (await c.query('select count(*)::int n from conv_log')).rows[0].n as number)

  it("judges column definition lists, RETURNING types, table-function columns and composite types by their types' checks", async () => {
    const c = await t.client()
    for (const sql of [
      `select * from json_to_record('{"a":5}') as x(a checked)`,
      `select * from rows from (json_to_record('{"a":5}') as (a checked))`,
      `select * from jsonb_to_recordset('[{"a":5}]') as x(b int, a checked)`,
      `select json_value('5'::jsonb, '$' returning checked)`,
      `select json_query('[5]'::jsonb, '$[0]' returning checked)`,
      `select * from json_table('[5]'::jsonb, '$[*]' columns (a checked path '$'))`,
      `select * from xmltable('/a' passing xmlparse(document '<a>5</a>') columns a checked path '.')`,
      `select * from json_populate_record(null::holder, '{"a":6}')`,
      `select row(7)::holder`,
      `select row(row(7), array[1])::holders`,
      `select '{1}'::checked[]`,
      // EXECUTE converts its arguments into the parameter types.
      'prepare typed_param(checked) as select $1',
      'prepare typed_param2(int, holder) as select 1',
    ]) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/default\.volatile-function/)
    }
    expect(await logged()).toBe(0)
    // Built-in types there are plain reads.
    expect((await c.query(`select * from json_to_record('{"a":5}') as x(a int, b text)`)).rowCount).toBe(1)
    await c.query('prepare plain_param(int, text) as select $1, $2')
    expect((await c.query("execute plain_param(1, 'a')")).rowCount).toBe(1)
    await c.end()
  })

  it('judges the parameter types an extended-protocol Parse declares as conversions of every Bind', async () => {
    const oids = await direct(async (d) => (await d.query("select 'checked'::regtype::oid::int c, 'holder'::regtype::oid::int h, 'int4'::regtype::oid::int i")).rows[0] as {c: number; h: number; i: number})
    const r = await t.raw()
    for (const types of [[oids.c], [0, oids.h], [oids.i, oids.c]]) {
      r.send(serialize.parse({name: '', text: 'select $1::text', types}), serialize.bind({portal: '', statement: '', values: ['5']}), serialize.execute({portal: '', rows: 0}), serialize.sync())
      const replies = await r.untilReady()
      const error = replies.find((m) => m.code === 'E')
      expect(error, JSON.stringify(types)).toBeDefined()
      const fields = decodeNotice(error!.body)
      expect(fields.code, JSON.stringify(types)).toBe('42501')
      expect(fields.message, JSON.stringify(types)).toMatch(/default\.volatile-function/)
      expect(replies.some((m) => m.code === 'D')).toBe(false)
    }
    expect(await logged()).toBe(0)
    // Built-in and unspecified parameter types convert nothing a user wrote.
    r.send(serialize.parse({name: '', text: 'select $1::text, $2::text', types: [oids.i, 0]}), serialize.bind({portal: '', statement: '', values: ['5', 'x']}), serialize.execute({portal: '', rows: 0}), serialize.sync())
    const replies = await r.untilReady()
    expect(replies.map((m) => m.code)).toContain('D')
    expect(replies.some((m) => m.code === 'E')).toBe(false)
  })
})

/**
 * A rule's NOTIFY action is a utility statement in its tree, not a function call, so the rule's
 * functions showed nothing: `INSERT INTO t` sent a notification that `NOTIFY` itself and
 * `pg_notify(…)` were refused. It is now judged as the pg_notify call it amounts to.
 */
describe('NOTIFY in a rule', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const RULES = ['rules:', '  - id: no-notify', '    match: {command: notify}', '    action: deny', '  - id: no-notify-function', '    match: {class: session, command: function, functions: [pg_catalog.pg_notify]}', '    action: deny'].join('\n')

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((d) =>
      d.query(`
        create table public.n_also (id int); create rule n_also as on insert to public.n_also do also notify n_chan;
        create table public.n_inst (id int); insert into public.n_inst values (1); create rule n_inst as on update to public.n_inst do instead notify n_chan, 'payload';
        create table public.n_base (id int); create view public.n_view as select id from public.n_base;
        create rule n_view as on insert to public.n_view do instead (insert into public.n_base values (new.id); notify n_chan);
        create view public.n_over as select * from public.n_view;
      `),
    )
    t = await openPipelineTunnel(db, RULES)
  })
  afterAll(() => t?.close())

  it('judges the statement that fires it as a pg_notify call: nothing is sent', async () => {
    const {default: pgLib} = await import('pg')
    const listener = new pgLib.Client({connectionString: db.url})
    await listener.connect()
    const got: string[] = []
    listener.on('notification', (n) => got.push(n.channel))
    await listener.query('listen n_chan')
    const c = await t.client()
    for (const sql of ['notify n_chan', "select pg_notify('n_chan', 'x')", 'insert into public.n_also values (1)', 'update public.n_inst set id = 2 where id = 1', 'insert into public.n_view values (1)', 'insert into public.n_over values (1)']) {
      const e = await outcome(c, sql)
      expect(e?.code, sql).toBe('42501')
    }
    await new Promise((r) => setTimeout(r, 100))
    expect(got).toEqual([])
    expect(await direct(async (d) => (await d.query('select count(*)::int n from public.n_base')).rows[0].n)).toBe(0)
    await listener.end()
    await c.end()
  })
})
