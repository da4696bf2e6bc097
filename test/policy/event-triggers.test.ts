import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * DDL that keeps relations (relation-keeping.ts) leaves what is behind every relation as it was,
 * except that any DDL fires the database's event triggers, whose code may change any relation.
 * With one that runs `ALTER TABLE hr.salaries INHERIT public.parent` on ddl_command_end, a
 * `COMMENT` (or `CREATE TABLE`, `CREATE SEQUENCE`, `CREATE INDEX` …) followed by `SELECT * FROM
 * public.parent` returned hr's rows: in the same transaction, in the same text, and after the
 * COMMENT committed (no re-read, since it changed nothing as dbgate saw it).
 */
describe('event triggers make every DDL a change to what is behind relations', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const SECRET = 'EVENT-TRIGGER-SECRET'
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const RULES = ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', '  - id: ddl', '    match: {class: ddl}', '    action: allow'].join('\n')
  const unhook = () => direct((c) => c.query("do $$ begin if exists (select 1 from pg_inherits where inhrelid = 'hr.salaries'::regclass) then alter table hr.salaries no inherit public.parent; end if; end $$"))

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) =>
      c.query(`
        create schema hr;
        create table hr.salaries (id int, person text);
        insert into hr.salaries values (1, '${SECRET}');
        create table public.parent (id int, person text);
        create table public.notes (id int, body text);
        create function public.hook() returns event_trigger language plpgsql as $f$
        begin
          if not exists (select 1 from pg_inherits where inhrelid = 'hr.salaries'::regclass) then
            execute 'alter table hr.salaries inherit public.parent';
          end if;
        end $f$;
      `),
    )
    t = await openPipelineTunnel(db, RULES)
  }, 60_000)
  afterAll(() => t?.close())

  const KEEPING = ["comment on table public.notes is 'n'", 'create table public.made (id int)', 'create sequence public.made_seq', 'create index on public.notes (id)', 'alter table public.notes add column extra int']
  const READS = ['select * from public.parent', 'select person from parent']

  /** Runs each of `steps` on a fresh client; what it was shown, and the SQLSTATEs of what was refused. */
  const session = async (steps: readonly string[]): Promise<{shown: string; codes: string[]}> => {
    const c = await t.client()
    let shown = ''
    const codes: string[] = []
    try {
      for (const sql of steps) {
        await c.query(sql).then(
          (r) => (shown += JSON.stringify((Array.isArray(r) ? r : [r]).map((x: pg.QueryResult) => x.rows))),
          (e: Error & {code?: string}) => codes.push(e.code ?? '?'),
        )
      }
    } finally {
      await c.query('rollback').catch(() => {})
      await c.end()
    }
    return {shown, codes}
  }

  it('refuses the read after DDL that keeps relations, in its transaction, its text, and after its commit', async () => {
    await direct((c) => c.query('create event trigger hook on ddl_command_end execute function public.hook()'))
    try {
      for (const ddl of KEEPING) {
        for (const read of READS) {
          for (const steps of [['begin', ddl, read], [`${ddl}; ${read}`], [ddl, read]]) {
            // The reset is DDL too: with the trigger off, or it would hook hr.salaries in again.
            await direct((c) => c.query('alter event trigger hook disable; drop table if exists public.made; drop sequence if exists public.made_seq; alter table public.notes drop column if exists extra'))
            await unhook()
            await direct((c) => c.query('alter event trigger hook enable'))
            const {shown, codes} = await session(steps)
            expect(shown, steps.join(' | ')).not.toContain(SECRET)
            expect(codes, steps.join(' | ')).toContain('42501')
          }
        }
      }
    } finally {
      await direct((c) => c.query('drop event trigger if exists hook'))
      await unhook()
    }
    expect(await direct(async (c) => (await c.query("select count(*)::int n from pg_inherits where inhrelid = 'hr.salaries'::regclass")).rows[0].n)).toBe(0)
  })

  it('keeps relations where no event trigger is enabled: a migration reads what it made before its COMMIT', async () => {
    await direct((c) => c.query('create event trigger hook on ddl_command_end execute function public.hook(); alter event trigger hook disable'))
    try {
      const {shown, codes} = await session(['begin', 'create table public.fresh (id int)', 'insert into public.fresh values (7)', 'select * from public.fresh', 'select * from public.parent', 'commit'])
      expect(codes).toEqual([])
      // (Masking shows the new table's values as untraceable until the catalog knows it.)
      expect(shown).toContain('[[{"id":')
    } finally {
      await direct((c) => c.query('drop event trigger if exists hook'))
    }
  })
})
