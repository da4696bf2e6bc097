import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {openPipelineTunnel} from '../helpers/open.js'
import {pgEnv, run} from '../helpers/run.js'
import {seededTunnel} from '../helpers/seeded-tunnel.js'

/**
 * Issue 13's guardrail families, attacked through the real tunnel with real clients, each with its
 * siblings. Every attack here got through before functions, settings and WHERE clauses were judged
 * by allow-list and proof; the database is checked afterwards, not just the error.
 */
describe('guardrails that cannot be talked around', () => {
  const {db, t, direct} = seededTunnel(`
    create table accounts (id int primary key, owner text, balance int, active bool default true);
    insert into accounts select g, 'owner' || g, 100 from generate_series(1, 10) g;
    create sequence invoice_seq;
    create function archive_accounts() returns int language plpgsql as $$ begin delete from accounts; return 0; end $$;
    create function wipe(accounts) returns int language plpgsql as $$ begin delete from accounts; return 0; end $$;
    create function owner_of(int) returns text language sql stable as $$ select owner from accounts where id = $1 $$;
    create schema other;
    create function other.owner_of(int) returns text language plpgsql as $$ begin delete from accounts; return 'x'; end $$;
  `, 'rules:\n  - id: no-function-writes\n    match: {class: write, command: function, functions: ["pg_catalog.lo_*", "pg_catalog.lowrite", "pg_catalog.setval"]}\n    action: deny\n    reason: large objects and sequences are written by the application only')
  const count = () => direct(async (c) => (await c.query('select count(*)::int n from accounts')).rows[0].n as number)
  const refused = async (c: pg.Client, sql: string): Promise<Error & {code?: string; hint?: string; detail?: string; position?: string}> => {
    const e = (await c.query(sql).catch((x: Error) => x)) as Error & {code?: string}
    expect(e, sql).toBeInstanceOf(Error)
    return e
  }

  it('holds a plpgsql function whose body deletes, however it is called, and lets a stable one read', async () => {
    const c = await t.client()
    for (const sql of ['select archive_accounts()', 'select public.archive_accounts()', 'select * from accounts where id = (select archive_accounts())', 'select a.wipe from accounts a', 'select (a).wipe from accounts a', 'select wipe(a) from accounts a']) {
      const e = await refused(c, sql)
      expect(e.code, sql).toBe('42501')
      expect(e.message, sql).toMatch(/rule default\.volatile-function/)
    }
    expect(await count()).toBe(10)
    // `owner_of` is stable in public but volatile in schema `other`: the worst candidate decides,
    // unless the call names the schema.
    expect((await refused(c, 'select owner_of(1)')).message).toMatch(/default\.volatile-function/)
    expect((await c.query('select public.owner_of(1) as o')).rows).toHaveLength(1)
    expect(await count()).toBe(10)
  })

  it('refuses a function that exists nowhere, naming it and the rule that would allow it', async () => {
    const c = await t.client()
    const e = await refused(c, 'select no_such_function(1)')
    expect(e.code).toBe('42501')
    expect(e.message).toMatch(/default\.unknown-function/)
    expect(e.detail).toMatch(/function no_such_function does not exist/)
    expect(e.hint).toMatch(/functions: \[no_such_function\]/)
  })

  it('refuses every text-executing built-in, including the full-text search ones', async () => {
    const c = await t.client()
    const sneaky = "select set_config(''standard_conforming_strings'', ''off'', false)"
    for (const sql of [
      `select * from ts_stat('${sneaky}::tsvector')`,
      `select * from ts_stat('select ''a''::tsvector', 'a')`,
      `select ts_rewrite('a'::tsquery, 'select ''a''::tsquery, ''b''::tsquery from (select pg_terminate_backend(pg_backend_pid())) x')`,
      `select table_to_xml('accounts', true, false, '')`,
      `select schema_to_xml('public', true, false, '')`,
      `select database_to_xml(true, false, '')`,
      `select query_to_xml('${sneaky}', true, false, '')`,
      `select query_to_xmlschema('select 1', true, false, '')`,
      `select query_to_xml_and_xmlschema('select 1', true, false, '')`,
    ]) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/rule default\.no-dynamic-sql/)
    }
    // The lexer setting never moved, so later statements are still read as dbgate reads them.
    expect((await c.query('show standard_conforming_strings')).rows[0].standard_conforming_strings).toBe('on')
  })

  it('classes large-object writers and sequence setters as writes, and statistics writers as maintenance', async () => {
    const c = await t.client()
    for (const sql of ['select lo_create(0)', "select lo_from_bytea(0, 'x')", 'select lo_unlink(1)', "select setval('invoice_seq', 1000)"]) {
      expect((await refused(c, sql)).message, sql).toMatch(/rule no-function-writes/)
    }
    for (const sql of ["select pg_restore_relation_stats('schemaname', 'public', 'relname', 'accounts', 'reltuples', 1e9::real)", "select pg_clear_relation_stats('public', 'accounts')"]) {
      expect((await refused(c, sql)).message, sql).toMatch(/requires approval .*\(rule default\.admin-approval\)/)
    }
    expect((await direct((d) => d.query('select count(*)::int n from pg_largeobject_metadata'))).rows[0].n).toBe(0)
    expect((await direct((d) => d.query("select reltuples from pg_class where relname = 'accounts'"))).rows[0].reltuples).toBeLessThan(1e6)
    // Reading state stays a read.
    expect((await c.query("select nextval('invoice_seq') as n")).rows[0].n).toBe('1')
  })

  it('refuses settings that change what statements mean, so WHERE NULL = NULL deletes nothing', async () => {
    const c = await t.client()
    for (const sql of ['set transform_null_equals = on', "select set_config('transform_null_equals', 'on', false)", 'set local session_replication_role = replica', 'set search_path = other, public']) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/rule default\.no-dangerous-setting/)
      expect(e.hint, sql).toMatch(/settings: \[/)
    }
    // A search_path read from data may name pg_temp first: refused whatever a rule allows.
    const fromData = await refused(c, "select set_config('search_path', owner, false) from accounts limit 1")
    expect(fromData.message).toMatch(/rule guard\.shadowed-type/)
    for (const sql of ['set backslash_quote = off', "select set_config('client_encoding', 'SJIS', false)"]) {
      expect((await refused(c, sql)).message, sql).toMatch(/rule guard\.assumed-setting/)
    }
    expect((await refused(c, 'delete from accounts where null = null')).message).toMatch(/no-unfiltered-delete/)
    expect((await c.query('show transform_null_equals')).rows[0].transform_null_equals).toBe('off')
    expect(await count()).toBe(10)
    // What drivers and ORMs send still runs.
    for (const sql of ["set application_name = 'orm'", 'set extra_float_digits = 3', "set time zone 'UTC'", 'set statement_timeout = 5000', 'set search_path = "$user", public', "select set_config('app.tenant', '7', false)"]) await c.query(sql)
  })

  it('refuses always-true WHERE clauses of every family, and upserts that rewrite the table from itself', async () => {
    const c = await t.client()
    for (const sql of [
      'delete from accounts where id + 0 = id',
      'delete from accounts where balance * 0 = 0',
      'update accounts set balance = 0 where id in (id)',
      'delete from accounts where id = any(array[id])',
      'delete from accounts where id between id and id',
      'delete from accounts where id = (select id)',
      'delete from accounts where id in (select id from pg_class)',
      'delete from accounts where case when id > 5 then true else true end',
      'delete from accounts where ctid is not null',
      // tableoid is the same for every row of a plain table.
      "delete from accounts where tableoid = 'accounts'::regclass",
      'update accounts set balance = 0 where tableoid > 0',
      // An empty array written in the statement: ALL of nothing holds for every row.
      "delete from accounts where id <> all('{}'::int[])",
      'delete from accounts where not (id = any(array[]::int[]))',
      'delete from accounts a where a is not null',
      'delete from accounts where (id = 1) is not null',
      'delete from accounts where owner like \'%\'',
      'delete from accounts where balance >= 100 or balance < 200',
      'delete from accounts a using accounts b where a.id = b.id',
      'update accounts a set balance = 0 from accounts b where a.id = b.id',
      'merge into accounts t using accounts s on t.id = s.id when matched then delete',
      'insert into accounts select * from accounts on conflict (id) do update set balance = 0',
    ]) {
      const e = await refused(c, sql)
      expect(e.message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
    }
    expect(await count()).toBe(10)
    expect((await direct((d) => d.query('select sum(balance)::int s from accounts'))).rows[0].s).toBe(1000)
    // Real filters and ordinary upserts run.
    expect((await c.query('update accounts set balance = balance + $1 where id = $2', [1, 1])).rowCount).toBe(1)
    expect((await c.query('insert into accounts values ($1, $2, $3) on conflict (id) do update set balance = excluded.balance', [2, 'owner2', 101])).rowCount).toBe(1)
    expect((await c.query('delete from accounts a where not exists (select 1 from accounts b where b.id = a.id + 100) and a.id > 10')).rowCount).toBe(0)
  })

  it('answers a typo as PostgreSQL does: 42601, its message and position, to node-postgres and psql', async () => {
    const c = await t.client()
    for (const sql of ['SELEC 1', "select 'é€😀' frm accounts", 'select 1;\nselect * fro accounts']) {
      const viaTunnel = await refused(c, sql)
      const viaServer = (await direct((d) => d.query(sql).catch((x: Error) => x))) as Error & {code?: string; position?: string}
      expect({code: viaTunnel.code, message: viaTunnel.message, position: viaTunnel.position}, sql).toEqual({code: '42601', message: viaServer.message, position: viaServer.position})
    }
    // The extended protocol (a Parse) gets the same answer.
    const parsed = (await c.query('selec $1::int', [1]).catch((x: Error) => x)) as Error & {code?: string; position?: string}
    expect({code: parsed.code, message: parsed.message, position: parsed.position}).toEqual({code: '42601', message: 'syntax error at or near "selec"', position: '1'})
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1)
    const script = "SELEC 1;\nselect 'ünïcödé' frm accounts;\n"
    const tunnelPsql = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0'], {env: pgEnv(t.info.port, t.info.password, db.database), input: script})
    const url = new URL(db.url)
    const directPsql = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0'], {env: {PGHOST: url.hostname, PGPORT: url.port, PGUSER: decodeURIComponent(url.username), PGPASSWORD: decodeURIComponent(url.password), PGDATABASE: db.database}, input: script})
    expect(tunnelPsql.stderr).toContain('LINE 1: SELEC 1;\n        ^')
    expect(tunnelPsql.stderr).toBe(directPsql.stderr)
  })

  it('runs plain VACUUM and ANALYZE at once and holds VACUUM FULL, CLUSTER and REINDEX for a reviewer', async () => {
    const c = await t.client()
    for (const sql of ['vacuum accounts', 'vacuum', 'vacuum verbose accounts', 'vacuum analyze accounts', 'analyze accounts', 'analyze verbose accounts (owner)']) await c.query(sql)
    // (ANALYZE without a table list runs every table's index and statistics expressions, held: test/policy/analyze-every-table.test.ts.)
    for (const sql of ['vacuum full accounts', 'vacuum freeze accounts', 'cluster accounts using accounts_pkey', 'reindex table accounts']) {
      expect((await refused(c, sql)).message, sql).toMatch(/requires approval .*\(rule default\.admin-approval\)/)
    }
  })

  it('lets pgbench initialise and run through the tunnel with no reviewer', async () => {
    const bench = await openPipelineTunnel(db, 'rules:\n  - id: bench-tables\n    match: {class: ddl, tables: ["pgbench_*"]}\n    action: allow')
    try {
      const env = pgEnv(bench.info.port, bench.info.password, db.database)
      const init = await run('pgbench', ['-i', '-s', '1', '-q'], {env, timeoutMs: 120_000})
      expect(init.stderr).toMatch(/done in/)
      expect(init.code).toBe(0)
      const select = await run('pgbench', ['-S', '-t', '50', '-c', '2'], {env, timeoutMs: 120_000})
      expect(select.stdout).toMatch(/number of transactions actually processed: 100\/100/)
      expect(select.code).toBe(0)
    } finally {
      await bench.close()
    }
  })
})
