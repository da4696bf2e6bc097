import {execFileSync} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {RawClient} from '../helpers/raw-client.js'

/**
 * A server library written against PostgreSQL 18's module ABI by hand (the embedded server ships
 * no server headers), as a target's own module or a less common extension would be: it defines
 * the boolean setting SETTING (on by default), reserves its prefix, and `guard_on()` says what the
 * setting is in this session.
 */
const moduleSource = (setting: string) => `
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
typedef struct { int version; int funcmaxargs; int indexmaxkeys; int namedatalen; int float8byval; char abi_extra[32]; } Pg_abi_values;
typedef struct { int len; Pg_abi_values abi_fields; const char *name; const char *version; } Pg_magic_struct;
static const Pg_magic_struct magic = {sizeof(Pg_magic_struct), {1800, 100, 32, 64, 1, "PostgreSQL"}, "test module", "1"};
const Pg_magic_struct *Pg_magic_func(void) { return &magic; }
typedef struct { int api_version; } Pg_finfo_record;
static const Pg_finfo_record finfo = {1};
extern void DefineCustomBoolVariable(const char *name, const char *short_desc, const char *long_desc, bool *valueAddr, bool bootValue, int context, int flags, void *check_hook, void *assign_hook, void *show_hook);
extern void MarkGUCPrefixReserved(const char *className);
static bool on = true;
void _PG_init(void) {
  DefineCustomBoolVariable("${setting}", "A guard of the database's.", NULL, &on, true, 6 /* PGC_USERSET */, 0, NULL, NULL, NULL);
  MarkGUCPrefixReserved("${setting.split('.')[0]}");
}
const Pg_finfo_record *pg_finfo_guard_on(void) { return &finfo; }
uintptr_t guard_on(void *fcinfo) { return on ? 1 : 0; }
`

/**
 * Settings under a prefix that no library on dbgate's list uses were taken for application state
 * (`app.tenant_id`) and allowed, even where the target loads a library that uses the prefix: here
 * the extension `rowguard`, whose `rowguard.enforce` decides whether a trigger keeps ledger rows,
 * and a module the database preloads (session_preload_libraries) whose file, `kit`, is named
 * unlike its setting `trail.record`. `SET rowguard.enforce = off` let the next DELETE through the
 * database's own guard. Now the tunnel reads from the server which prefixes its libraries use and
 * judges those settings as a library's (held for a reviewer), through every way to set them.
 */
// The server loads the modules from files this test writes: it must run on this machine (the embedded one).
describe.skipIf(process.env.DBGATE_TEST_PG_URL !== undefined)("settings of a library the target loads that dbgate's list does not know", () => {
  let dir: string
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const rows = () => direct(async (d) => (await d.query('select count(*)::int n from ledger')).rows[0].n as number)
  type PgError = Error & {code?: string; detail?: string}
  const failure = async (c: pg.Client, sql: string, values?: unknown[]): Promise<PgError> => {
    const e = (await c.query(sql, values).catch((x: PgError) => x)) as PgError
    expect(e, sql).toBeInstanceOf(Error)
    return e
  }
  const held = async (c: pg.Client, sql: string, setting: string, values?: unknown[]) => {
    const e = await failure(c, sql, values)
    expect(e.message, sql).toMatch(/requires approval .*\(rule default\.setting-approval\)/)
    expect(e.detail, sql).toContain(`${setting} is a setting of the ${setting.split('.')[0]} library`)
  }
  /** The database's guard still keeps the row: the trigger ran with rowguard.enforce on. */
  const kept = async (c: pg.Client, id: number, what: string) => {
    const e = await failure(c, `delete from ledger where id = ${id}`)
    expect(e.code, what).toBe('RGKEP')
    expect(await rows(), what).toBe(10)
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dbgate-libs-'))
    mkdirSync(join(dir, 'extension'))
    for (const [file, setting] of [
      ['rowguard', 'rowguard.enforce'],
      ['kit', 'trail.record'],
    ] as const) {
      writeFileSync(join(dir, `${file}.c`), moduleSource(setting))
      execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, `${file}.so`), join(dir, `${file}.c`)])
    }
    writeFileSync(join(dir, 'extension', 'rowguard.control'), `default_version = '1'\nmodule_pathname = '${join(dir, 'rowguard.so')}'\nrelocatable = true\n`)
    writeFileSync(join(dir, 'extension', 'rowguard--1.sql'), "create function rowguard_enforced() returns bool as 'MODULE_PATHNAME', 'guard_on' language c stable;\n")
    // The server may run as another user (PostgreSQL refuses to run as root).
    chmodSync(dir, 0o755)
    chmodSync(join(dir, 'extension'), 0o755)
    db = await createTestDatabase()
    await direct(async (c) => {
      await c.query(`set extension_control_path = '${dir}:$system'`)
      await c.query('create extension rowguard')
      await c.query(`alter database "${db.database}" set session_preload_libraries = '${join(dir, 'kit.so')}'`)
      await c.query(`
        create table ledger (id int primary key, amount int) with (autovacuum_enabled = false);
        insert into ledger select g, 10 from generate_series(1, 10) g;
        create function keep_ledger() returns trigger language plpgsql as $$
          begin if rowguard_enforced() then raise exception 'rowguard keeps ledger rows' using errcode = 'RGKEP'; end if; return old; end $$;
        create trigger keep_ledger before delete on ledger for each row execute function keep_ledger();
      `)
    })
    t = await openPipelineTunnel(db)
  })
  afterAll(async () => {
    await t?.close()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it("holds the extension's setting however it is set, and the database's guard keeps working", async () => {
    const variants: [string, unknown[]?][] = [
      ['SET rowguard.enforce = off'],
      ['SET SESSION "ROWGUARD".enforce TO false'],
      ["SELECT set_config('rowguard.enforce', 'off', false)"],
      ["SELECT pg_catalog.set_config('RowGuard.Enforce', $1, false)", ['off']],
      ["SELECT 1 WHERE set_config('rowguard.enforce', 'no', false) IS NOT NULL"],
    ]
    let id = 0
    for (const [sql, values] of variants) {
      // A fresh session each time: the library reads the setting when it loads, on the first call.
      const c = await t.client()
      await held(c, sql, 'rowguard.enforce', values)
      await kept(c, ++id, sql)
      await c.end()
    }
    const c = await t.client()
    await c.query('begin')
    await held(c, 'SET LOCAL rowguard.enforce = off', 'rowguard.enforce')
    await c.query('rollback')
    // A prepared statement is judged by what it runs.
    await c.query("PREPARE off_switch AS SELECT set_config('rowguard.enforce', 'off', false)").catch(() => undefined)
    await failure(c, 'EXECUTE off_switch')
    await kept(c, ++id, 'PREPARE/EXECUTE')
    await c.end()
    // As a startup parameter the connection is refused, naming it.
    const raw = RawClient.connect(t.info.port, {password: t.info.password, database: t.info.database, params: {'rowguard.enforce': 'off'}})
    await expect(raw).rejects.toThrow(/rowguard\.enforce is a setting of the rowguard library/)
  })

  it("holds the setting of a preloaded module whose prefix is neither its file's nor an extension's name", async () => {
    const c = await t.client()
    await held(c, 'SET trail.record = off', 'trail.record')
    await held(c, "SELECT set_config('TRAIL.record', 'off', true)", 'trail.record')
    expect((await c.query('SHOW trail.record')).rows[0]['trail.record']).toBe('on')
    await c.end()
    const raw = RawClient.connect(t.info.port, {password: t.info.password, database: t.info.database, params: {'trail.record': 'off'}})
    await expect(raw).rejects.toThrow(/trail\.record is a setting of the trail library/)
  })

  it('keeps application settings, reading and resetting the libraries\' settings working', async () => {
    const c = await t.client()
    for (const sql of [
      "SET app.tenant_id = '42'",
      'SET myapp.user_id = 7',
      "SELECT set_config('request.jwt.claims', '{}', false)",
      // The extension's module loads on its first call; then its setting can be read.
      'SELECT rowguard_enforced()',
      'SHOW rowguard.enforce',
      "SELECT current_setting('rowguard.enforce', true)",
      'RESET rowguard.enforce',
      'SET rowguard.enforce TO DEFAULT',
      'RESET ALL',
    ]) {
      await c.query(sql)
    }
    await c.end()
    const raw = await RawClient.connect(t.info.port, {password: t.info.password, database: t.info.database, params: {'app.tenant': '9'}})
    raw.end()
  })
})
