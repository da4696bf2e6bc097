/**
 * Event triggers: functions the server runs with DDL (`ddl_command_start`, `ddl_command_end`,
 * `sql_drop`, `table_rewrite`) and at login, which no statement names. Their notices and errors
 * arrive as the statement's (or the login's), and a statement that reads nothing sensitive kept
 * them as the server wrote them: `DROP TABLE scratch` answered `NOTICE: ddl by Alice Novak`, and a
 * login trigger's notice reached every client in clear. Each case is run directly first (it must
 * show a seeded value), then through the tunnel `dbgate connect` builds (policy pack none).
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'
import {directThenThrough, runSteps} from '../helpers/steps.js'

const SETUP = `
create table et_scratch (id int) with (autovacuum_enabled = false);
create function et_end() returns event_trigger language plpgsql as $$
begin
  raise notice 'ddl by %', (select full_name from customers where id = 1);
end $$;
create function et_start() returns event_trigger language plpgsql as $$
begin
  if tg_tag = 'COMMENT' then perform (select address from customers where id = 2)::int; end if;
  if tg_tag = 'GRANT' then raise exception using message = 'refused', table = (select full_name from customers where id = 3); end if;
end $$;
create function et_drop() returns event_trigger language plpgsql as $$
begin
  raise notice 'dropped while % watched', (select address from customers where id = 4);
end $$;
create function et_rewrite() returns event_trigger language plpgsql as $$
begin
  raise exception 'no rewrite for %', (select full_name from customers where id = 5);
end $$;
create function et_login() returns event_trigger language plpgsql as $$
begin
  if current_setting('application_name') like '%login-notice%' then raise notice 'welcome %', (select full_name from customers where id = 6); end if;
  if current_setting('application_name') like '%login-fail%' then raise exception 'no entry for %', (select address from customers where id = 7); end if;
  if current_setting('application_name') like '%login-set%' then
    perform set_config('et.greeting', (select full_name from customers where id = 8), false);
    perform set_config('application_name', (select full_name from customers where id = 9), false);
  end if;
end $$;
create event trigger et_end on ddl_command_end execute function et_end();
create event trigger et_start on ddl_command_start when tag in ('COMMENT', 'GRANT') execute function et_start();
create event trigger et_drop on sql_drop execute function et_drop();
create event trigger et_rewrite on table_rewrite execute function et_rewrite();
create event trigger et_login on login execute function et_login();
`

const CASES: {label: string; steps: string[]}[] = [
  {label: 'CREATE TABLE (ddl_command_end)', steps: ['create table et_made (id int)', 'drop table et_made']},
  {label: 'DROP TABLE (sql_drop, ddl_command_end)', steps: ['create table et_gone (id int)', 'drop table et_gone']},
  {label: 'COMMENT ON failing in ddl_command_start', steps: ["comment on table et_scratch is 'scratch'"]},
  {label: 'GRANT refused with a value as the table field', steps: ['grant select on et_scratch to public']},
  {label: 'ALTER TABLE … TYPE refused by table_rewrite', steps: ['alter table et_scratch alter column id type bigint']},
  {label: 'CREATE INDEX', steps: ['create index et_scratch_id on et_scratch (id)', 'drop index et_scratch_id']},
  {label: 'SELECT … INTO', steps: ['select 1 as id into et_into', 'drop table et_into']},
]

describe('masking: what event triggers print', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query(SETUP))
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  const direct = async (appName = 'direct'): Promise<pg.Client> => {
    const c = new pg.Client({connectionString: fx.db.url, application_name: appName})
    await c.connect()
    return c
  }

  it.each(CASES)('masks them at $label', async ({steps}) => {
    const {before, after} = await directThenThrough(await direct(), () => tunnel.client(), steps)
    // Not vacuous: the server itself says the value.
    expect(leaked(before.seen, fx.secrets)).not.toEqual([])
    expect(leaked(after.seen, fx.secrets)).toEqual([])
    expect(after.code).toBe(before.code)
  })

  it('masks them in the extended protocol too, and the DDL still runs', async () => {
    const c = await tunnel.client()
    const notices: string[] = []
    c.on('notice', (n) => notices.push(n.message ?? ''))
    await c.query({text: 'create table et_extended (id int)', name: 'et_ext'})
    await c.end()
    expect(notices.join('\n')).toContain('[masked]')
    expect(leaked(notices.join('\n'), fx.secrets)).toEqual([])
    const exists = await withClient(fx.db.url, (d) => d.query("select to_regclass('et_extended') is not null as made"))
    expect(exists.rows).toEqual([{made: true}])
  })

  it('masks a login trigger’s notice', async () => {
    const d = new pg.Client({connectionString: fx.db.url, application_name: 'login-notice'})
    const notices: string[] = []
    // Sent during the login, before the connection is ready.
    d.on('notice', (n) => notices.push(n.message ?? ''))
    await d.connect()
    await d.query('select 1')
    await d.end()
    const c = new pg.Client({connectionString: tunnel.info.url, application_name: 'login-notice'})
    const seen: string[] = []
    c.on('notice', (n) => seen.push(n.message ?? ''))
    await c.connect()
    await c.query('select 1')
    await c.end()
    expect(leaked(notices.join('\n'), fx.secrets)).not.toEqual([])
    expect(seen.length).toBeGreaterThan(0)
    expect(leaked(seen.join('\n'), fx.secrets)).toEqual([])
  })

  it('masks the settings a login trigger set: as reported, and as read back', async () => {
    const steps = ["select current_setting('et.greeting') as g", 'show et.greeting', 'show application_name', "select setting from pg_settings where name = 'application_name'"]
    const d = new pg.Client({connectionString: fx.db.url, application_name: 'login-set'})
    await d.connect()
    const before = await runSteps(d, steps).finally(() => d.end())
    expect(leaked(before.seen, fx.secrets)).not.toEqual([])
    // Every byte the client receives, the ParameterStatus messages of the login included.
    const relay = await recordingRelay(tunnel.info.port)
    const seen: Seen = {bytes: [], strings: []}
    const c = await relayedClient(tunnel.info.url, relay, seen, {application_name: 'login-set'})
    const after = await runSteps(c, steps)
    await c.end()
    await relay.close()
    expect(leaked(all(seen), fx.secrets)).toEqual([])
    expect(after.seen).toContain('[masked]')
    expect(after.code).toBeUndefined()
  })

  it('refuses a login that a login trigger fails without its message, saying why', async () => {
    const d = new pg.Client({connectionString: fx.db.url, application_name: 'login-fail'})
    const directError = await d.connect().then(
      () => undefined,
      (e: Error) => e.message,
    )
    await d.end().catch(() => {})
    expect(leaked(directError ?? '', fx.secrets)).not.toEqual([])
    const c = new pg.Client({connectionString: tunnel.info.url, application_name: 'login-fail'})
    c.on('error', () => {})
    const error = await c.connect().then(
      () => undefined,
      (e: pg.DatabaseError) => e,
    )
    await c.end().catch(() => {})
    expect(error?.message).toMatch(/raised by code the server ran at login/)
    expect(error?.code).toBe('P0001')
    expect(leaked(`${error?.message} ${error?.hint}`, fx.secrets)).toEqual([])
  })

  it('refuses such DDL under onUntraceable: deny, naming the event triggers, and still lets one be disabled', async () => {
    const strict = await openPipelineTunnel(fx.db, 'policy: none\nmasking:\n  onUntraceable: deny')
    try {
      const c = await strict.client()
      const refused = await c.query('create table et_strict (id int)').then(
        () => undefined,
        (e: pg.DatabaseError) => e,
      )
      expect(refused?.code).toBe('42501')
      expect(refused?.message).toMatch(/fires the database's event triggers/)
      const made = await withClient(fx.db.url, (d) => d.query("select to_regclass('et_strict') is null as refused"))
      expect(made.rows).toEqual([{refused: true}])
      expect((await c.query('select id, country from customers where id = 1')).rows).toEqual([{id: 1, country: 'US'}])
      await c.query('alter event trigger et_start disable')
      await c.query('alter event trigger et_start enable')
      await c.end()
    } finally {
      await strict.close()
    }
  })

  it('keeps ordinary work going: reads, writes and dropping an event trigger', async () => {
    const c = await tunnel.client()
    expect((await c.query('select id, country from customers where id = 1')).rows).toEqual([{id: 1, country: 'US'}])
    await c.query('insert into et_scratch values (1)')
    await c.query('drop event trigger et_rewrite')
    expect((await c.query('select count(*)::int as n from pg_event_trigger')).rows).toEqual([{n: 4}])
    await c.end()
  })
})
