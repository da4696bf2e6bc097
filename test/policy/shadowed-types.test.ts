/**
 * A temporary type or relation named like a built-in type takes the built-in's place for the rest
 * of the session: the temporary schema is searched before pg_catalog for type names. A domain
 * `pg_temp.text` whose check calls a function that runs DDL would then run it at every `::text`
 * and every write of a new `text` column, unseen by the tunnel, which judges them as the built-in
 * (its catalog connection cannot see another session's temporary objects). Every way of putting
 * such a name into the temporary schema is refused, whatever the target's rules allow.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {analyze, checkStartupParameters} from '../../src/policy/index.js'
import {loadParser} from '../../src/sql/parser.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/** Each way of making a type or relation named like a built-in type in the temporary schema. */
const SHADOWS = [
  'create domain pg_temp.text as pg_catalog.text check (length(value) < 100)',
  'create type pg_temp.date as (a int)',
  "create type pg_temp.uuid as enum ('a')",
  'create type pg_temp.int4 as range (subtype = pg_catalog.int8)',
  'create temp table text (a int)',
  'create table pg_temp.jsonb (a int)',
  'create temp view bytea as select 1 as a',
  'create temp sequence numeric',
  'create temp table timestamptz as select 1 as a',
  'select 1 as a into temp table inet',
  'explain analyze create temp table interval as select 1 as a',
  'create temp table made_here (a int); alter table made_here rename to bool',
  'create domain pg_temp.made_here2 as int; alter domain made_here2 rename to int8',
  // A range makes a second type, its multirange, under the name it is given.
  'create type pg_temp.made_range as range (subtype = pg_catalog.int4, multirange_type_name = pg_temp.int4multirange)',
  'create type pg_temp.made_range2 as range (subtype = pg_catalog.text, multirange_type_name = text)',
  "create type pg_temp.made_range3 as range (subtype = pg_catalog.text, multirange_type_name = 'date')",
  // ALTER INDEX … RENAME renames a table as well.
  'create temp table made_here3 (a int); alter index made_here3 rename to float8',
  // Foreign tables: made there, or imported under the names the foreign server lists (public.float4 of this very database).
  'create foreign table pg_temp.int2 (a int) server loop',
  'import foreign schema public limit to (float4) from server loop into pg_temp',
  'import foreign schema public from server loop into pg_temp',
]

/**
 * A search_path under which unqualified new objects go to the temporary schema: the first schema
 * of the path that exists, so pg_temp unless pg_catalog (the one that surely exists, where
 * nothing can be made) comes before it. `CREATE DOMAIN text …` then makes pg_temp.text, which
 * takes the built-in's place once the path is set back.
 */
const TEMP_PATHS = [
  'set search_path = pg_temp',
  'set search_path to "$user", pg_temp',
  'set search_path = pg_temp, pg_catalog, public',
  'set local search_path = public, pg_temp',
  "select set_config('search_path', 'pg_temp', false)",
  // A value dbgate cannot read may be any of these, whatever a rule allows.
  "select set_config('search_path', (select 'pg_temp'), false)",
  "select set_config('search_path', 'pg' || '_temp', false)",
  "select set_config('search_path', current_setting('search_path') || ', pg_temp', true)",
  // What the role's or database's later sessions start with.
  'alter role current_user set search_path = pg_temp',
  'alter role current_user in database postgres set search_path to public, pg_temp',
  'alter database postgres set search_path = pg_temp',
]

beforeAll(async () => {
  await loadParser()
})

describe('a temporary type or relation named like a built-in type', () => {
  it('is flagged in every form, and nothing else is', () => {
    for (const sql of SHADOWS) {
      const flagged = analyze(sql).statements.some((s) => s.operations.some((o) => o.flags.includes('shadows_builtin_type')))
      expect(flagged, sql).toBe(true)
    }
    for (const sql of TEMP_PATHS) {
      const flagged = analyze(sql).statements.some((s) => s.operations.some((o) => o.flags.includes('shadows_builtin_type')))
      expect(flagged, sql).toBe(true)
    }
    // Even where a target's rules allow setting search_path, a startup parameter cannot do it either.
    expect(checkStartupParameters({search_path: 'pg_temp'}, () => true).map((p) => p.parameter)).toEqual(['search_path'])
    expect(checkStartupParameters({search_path: 'pg_catalog, pg_temp'}, () => true)).toEqual([])
    for (const sql of [
      'set search_path = pg_catalog, pg_temp',
      'reset search_path',
      'alter role current_user set search_path = pg_catalog, pg_temp',
      'alter role current_user reset search_path',
      "alter database postgres set work_mem = '64MB'",
      'create type pg_temp.my_range as range (subtype = int4)',
      'create type public.my_range as range (subtype = int4, multirange_type_name = public.text)',
      'alter index made_here3 rename to made_here4',
      'create foreign table public.int2 (a int) server loop',
      'import foreign schema public limit to (float4) from server loop into public',
      'create domain pg_temp.my_text as text', 'create temp table teams (a text)', 'create table public.text (a int)', 'create type public.date as (a int)', 'alter table t rename to t2', 'alter table public.t rename to text', 'alter table t rename column a to text',
    ]) {
      const flagged = analyze(sql).statements.some((s) => s.operations.some((o) => o.flags.includes('shadows_builtin_type')))
      expect(flagged, sql).toBe(false)
    }
  })

  describe('through the tunnel, under rules that allow every change', () => {
    let db: UpstreamInfo
    let t: PipelineTunnel
    beforeAll(async () => {
      db = await createTestDatabase()
      await withClient(db.url, (d) =>
        d.query(`
          create extension postgres_fdw;
          create server loop foreign data wrapper postgres_fdw options (host '${db.host}', port '${db.port}', dbname '${db.database}');
          create user mapping for current_user server loop options (user '${db.user}', password '${db.password}');
          create table public.float4 (a int);
        `),
      )
      // No pack and no rules: everything is allowed but what no rule can allow.
      t = await openPipelineTunnel(db, 'policy: none')
    }, 120_000)
    afterAll(async () => {
      await t?.close()
    })

    it('is refused, says why, and the built-in keeps its meaning', async () => {
      const c = await t.client()
      try {
        for (const sql of [...SHADOWS, ...TEMP_PATHS]) {
          const refused = await c.query(sql).then(
            () => undefined,
            (e: Error & {code?: string; detail?: string; hint?: string}) => e,
          )
          expect(refused?.code, sql).toBe('42501')
          expect(refused?.message, sql).toContain('guard.shadowed-type')
          expect(refused?.hint, sql).toContain('no rule can allow this')
        }
        // A value given as a parameter is one dbgate cannot read when it judges the Parse.
        const bound = await c.query("select set_config('search_path', $1, false)", ['pg_temp']).then(
          () => undefined,
          (e: Error) => e,
        )
        expect(bound?.message).toContain('guard.shadowed-type')
        // Nothing was made: every name still means the built-in.
        const meanings = await c.query<{t: string | null}>(
          `select to_regtype(n) is not null and (select nspname from pg_namespace where oid = (select typnamespace from pg_type where oid = to_regtype(n))) = 'pg_catalog' as t
           from unnest(array['text', 'date', 'uuid', 'int4', 'jsonb', 'bytea', 'numeric', 'timestamptz', 'inet', 'interval', 'bool', 'int8', 'int4multirange', 'float8', 'int2', 'float4']) n`,
        )
        expect(meanings.rows.every((r) => r.t)).toBe(true)
        // The path was never set: unqualified new objects still go to public, and text is the built-in.
        expect((await c.query('show search_path')).rows).toEqual([{search_path: '"$user", public'}])
        await c.query('create domain made_in_public as int')
        expect((await c.query("select typnamespace::regnamespace::text as s from pg_type where typname = 'made_in_public'")).rows).toEqual([{s: 'public'}])
        // Names of their own are fine.
        await c.query('create domain pg_temp.my_text as text check (length(value) < 100)')
        await c.query('create temp table teams (a my_text)')
        expect((await c.query("select 'x'::text as v")).rows).toEqual([{v: 'x'}])
      } finally {
        await c.end()
      }
    })

    it('ends a session the server reports under such a search_path (set by code dbgate cannot see into)', async () => {
      const c = await t.client()
      const ended = new Promise<Error>((resolve) => c.on('error', resolve))
      const failed = await c.query("do $$ begin perform set_config('search_path', 'pg_temp', false); end $$").then(
        () => undefined,
        (e: Error & {code?: string}) => e,
      )
      expect(failed?.message).toContain('search_path = pg_temp')
      expect((await ended).message).toBeTruthy()
      // A new session is not affected.
      const next = await t.client()
      expect((await next.query('show search_path')).rows).toEqual([{search_path: '"$user", public'}])
      await next.end()
    })

    it("refuses a session that would start with such a search_path, naming where it was set and how to undo it", async () => {
      await withClient(db.url, (d) => d.query(`alter role current_user in database "${db.database}" set search_path = pg_temp, public`))
      try {
        const refused = await t.client().then(
          async (c) => {
            await c.end()
            return undefined
          },
          (e: Error & {code?: string; hint?: string}) => e,
        )
        expect(refused?.code).toBe('55000')
        expect(refused?.message).toContain('search_path = pg_temp, public')
        expect(refused?.hint).toContain('RESET search_path')
      } finally {
        await withClient(db.url, (d) => d.query(`alter role current_user in database "${db.database}" reset search_path`))
      }
      const c = await t.client()
      expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
      await c.end()
    })
  })
})

