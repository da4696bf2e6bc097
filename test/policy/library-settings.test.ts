import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {RawClient} from '../helpers/raw-client.js'

/**
 * Settings under a prefix a server library reserves (`plpgsql.*`, `pltcl.*`, `pgaudit.*`) are that
 * library's, not application state like `app.tenant_id`: they change what the database's own code
 * does. Before they were judged, every dotted name passed as a custom setting, so a session could
 * make a trigger's filtered DELETE remove every row (variable_conflict) or switch off the ASSERTs a
 * trigger guards its table with (check_asserts), through SET, set_config and startup parameters.
 */
describe("settings of the server's libraries, through the tunnel", () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const count = (table: string) => direct(async (d) => (await d.query(`select count(*)::int n from ${table}`)).rows[0].n as number)
  const balance = () => direct(async (d) => (await d.query('select balance from wallet where id = 1')).rows[0].balance as number)
  type PgError = Error & {code?: string; detail?: string; hint?: string}
  const failure = async (c: pg.Client, sql: string, values?: unknown[]): Promise<PgError> => {
    const e = (await c.query(sql, values).catch((x: PgError) => x)) as PgError
    expect(e, sql).toBeInstanceOf(Error)
    return e
  }
  const denied = async (c: pg.Client, sql: string, setting: string, values?: unknown[]) => {
    const e = await failure(c, sql, values)
    expect(e.code, sql).toBe('42501')
    expect(e.message, sql).toContain('default.no-dangerous-setting')
    expect(e.detail, sql).toContain(setting)
  }

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct(async (c) => {
      // The database lets PL/pgSQL variables win; dbgate reads that default from the catalog.
      await c.query(`alter database "${db.database}" set plpgsql.variable_conflict = use_variable`)
      await c.query(`
        create table accounts (id int primary key, balance int);
        insert into accounts select g, 100 from generate_series(1, 20) g;
        create function close_account() returns trigger language plpgsql as $$
          declare id int := old.id;
          begin delete from accounts where accounts.id = id; return old; end $$;
        create table closures (id int);
        insert into closures select g from generate_series(1, 20) g;
        create trigger closures_close after delete on closures for each row execute function close_account();
        create table wallet (id int primary key, balance int);
        insert into wallet select g, 100 from generate_series(1, 5) g;
        create function wallet_check() returns trigger language plpgsql as $$
          begin assert new.balance >= 0, 'balance must not go negative'; return new; end $$;
        create trigger wallet_check before update on wallet for each row execute function wallet_check();
      `)
    })
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  it("keeps a trigger's variables winning over columns: its filtered DELETE removes one row, not all", async () => {
    const variants: [string, unknown[]?][] = [
      ['SET plpgsql.variable_conflict = use_column'],
      ["SET SESSION plpgsql.variable_conflict TO 'USE_COLUMN'"],
      ['SET "plpgsql".variable_conflict = use_column'],
      ["SELECT set_config('plpgsql.variable_conflict', 'use_column', false)"],
      ["SELECT pg_catalog.set_config('PLPGSQL.Variable_Conflict', $1, false)", ['use_column']],
    ]
    let id = 0
    for (const [sql, values] of variants) {
      // A fresh session each time: PL/pgSQL reads the setting when it first compiles the trigger.
      const c = await t.client()
      await denied(c, sql, 'plpgsql.variable_conflict', values)
      id++
      await c.query(`delete from closures where id = ${id}`)
      expect(await count('accounts'), sql).toBe(20 - id)
      await c.end()
    }
    // Inside a transaction, SET LOCAL is refused the same way.
    const c = await t.client()
    await c.query('begin')
    await denied(c, 'SET LOCAL plpgsql.variable_conflict = use_column', 'plpgsql.variable_conflict')
    await c.query('rollback')
    // As a startup parameter the connection is refused, naming it.
    const raw = RawClient.connect(t.info.port, {password: t.info.password, database: t.info.database, params: {'plpgsql.variable_conflict': 'use_column'}})
    await expect(raw).rejects.toThrow(/plpgsql\.variable_conflict/)
    expect(await count('accounts')).toBe(20 - id)
  })

  it("keeps a trigger's ASSERT checks running", async () => {
    const variants: [string, unknown[]?][] = [
      ['SET plpgsql.check_asserts = off'],
      ['SET plpgsql.check_asserts TO false'],
      ["SET plpgsql.check_asserts = 'of'"],
      ['SET plpgsql.check_asserts = 0'],
      ["SELECT set_config('plpgsql.check_asserts', 'no', false)"],
      ["SELECT set_config('plpgsql.check_asserts', $1, false)", ['off']],
    ]
    for (const [sql, values] of variants) {
      const c = await t.client()
      await denied(c, sql, 'plpgsql.check_asserts', values)
      const e = await failure(c, 'update wallet set balance = -5 where id = 1')
      expect(e.code, sql).toBe('P0004') // assert_failure: the trigger's check ran
      expect(await balance(), sql).toBe(100)
      await c.end()
    }
    const raw = RawClient.connect(t.info.port, {password: t.info.password, database: t.info.database, params: {'plpgsql.check_asserts': 'off'}})
    await expect(raw).rejects.toThrow(/plpgsql\.check_asserts/)
  })

  it('denies or holds the other library settings that change what code does or shows', async () => {
    const c = await t.client()
    await denied(c, "SET pltcl.start_proc = 'public.boot'", 'pltcl.start_proc')
    await denied(c, "SET plperl.on_plperl_init = 'system(1)'", 'plperl.on_plperl_init')
    await denied(c, "SELECT set_config('plv8.start_proc', 'public.boot', false)", 'plv8.start_proc')
    await denied(c, "SET pgaudit.log = 'none'", 'pgaudit')
    const held = await failure(c, 'SET plpgsql.print_strict_params = on')
    expect(held.message).toMatch(/requires approval .*\(rule default\.setting-approval\)/)
    expect(held.detail).toContain('plpgsql.print_strict_params')
    const unknown = await failure(c, 'SET auto_explain.log_parameter_max_length = -1')
    expect(unknown.message).toMatch(/requires approval .*\(rule default\.setting-approval\)/)
    expect(unknown.detail).toContain('auto_explain library')
  })

  it('keeps application settings and the harmless library settings working', async () => {
    const c = await t.client()
    for (const sql of [
      "SET app.tenant_id = '42'",
      'SET myapp.user_id = 7',
      "SELECT set_config('request.jwt.claims', '{}', false)",
      "SET plpgsql.extra_warnings = 'shadowed_variables'",
      "SET plpgsql.extra_errors = 'none'",
      'SET plpgsql.check_asserts = on',
      "SELECT set_config('plpgsql.check_asserts', 'true', false)",
      'SET plpgsql.variable_conflict = use_variable',
      'SET pg_trgm.similarity_threshold = 0.2',
      'RESET plpgsql.check_asserts',
      'SET plpgsql.check_asserts TO DEFAULT',
      'RESET ALL',
    ]) {
      await c.query(sql)
    }
    expect((await c.query("select current_setting('app.tenant_id', true) v")).rows[0].v).toBe('')
  })
})
