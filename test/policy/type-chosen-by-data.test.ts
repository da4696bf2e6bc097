import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'

/**
 * Built-ins that convert a value into a type the statement's text does not show run that type's
 * domain checks, which may call any function: a type name given as text (`pg_input_is_valid`,
 * `pg_input_error_info`), a type OID (`record_in`, `array_in`, `range_in`), or the row type of the
 * first argument (`json_populate_record(t, …) FROM t`). Each ran a domain check that writes
 * (here: a row into public.ran) through the real tunnel as a plain read.
 */
describe('conversions into a type the statement does not name', () => {
  const {t, direct} = seededTunnel(`
    create table public.ran (at timestamptz default now());
    create function public.note() returns boolean volatile language plpgsql as $$ begin insert into public.ran default values; return true; end $$;
    create domain public.noted as int check (public.note());
    create type public.noted_pair as (a public.noted, b int);
    create type public.noted_range as range (subtype = public.noted);
    create table public.holder (a public.noted);
    insert into public.holder values (1);
    create table public.plain (id int, v text);
    truncate public.ran;
  `)
  const ran = () => direct(async (c) => (await c.query('select count(*)::int n from public.ran')).rows[0].n as number)

  it('holds them for a reviewer, however the type is given, and runs no check', async () => {
    const c = await t.client()
    for (const [sql, params] of [
      ["select pg_input_is_valid('1', 'public.noted')"],
      ["select pg_input_is_valid('1', 'noted')"],
      [`select pg_catalog.pg_input_is_valid('1', '"public"."noted"')`],
      ["select pg_input_is_valid('{1}', 'noted[]')"],
      ["select pg_input_is_valid('(1,2)', 'public.noted_pair')"],
      ["select pg_input_is_valid('1', 'pub' || 'lic.noted')"],
      // The cast cuts the text to 'public.noted': read as written, it would be judged as the other type.
      ["select pg_input_is_valid('1', 'public.notedx'::varchar(12))"],
      ['select pg_input_is_valid($1, $2)', ['1', 'public.noted']],
      ["select pg_input_is_valid('1', (select 'public.noted'))"],
      ["select * from pg_input_error_info('1', 'public.noted')"],
      ["select pg_input_error_info('1', 'int4) , (1')"],
      ["select record_in('(1,2)', 'public.noted_pair'::regtype, -1)"],
      ["select array_in('{1}', 'public.noted'::regtype, -1)"],
      ["select range_in('[1,2]', 'public.noted_range'::regtype, -1)"],
      ["select json_populate_record(h, '{\"a\": 1}') from public.holder h"],
      ["select jsonb_populate_record_valid(h, '{\"a\": 1}') from public.holder h"],
      ["select * from jsonb_populate_recordset((select h from public.holder h), '[{\"a\": 1}]')"],
      ["select jsonb_populate_record(null::public.holder, '{\"a\": 1}')"],
    ] as [string, unknown[]?][]) {
      const e = (await c.query(sql, params).then(
        () => undefined,
        (x: Error & {code?: string}) => x,
      )) as (Error & {code?: string}) | undefined
      expect(e, sql).toBeInstanceOf(Error)
      expect(e!.code, sql).toBe('42501')
      expect(e!.message, sql).toMatch(/rule default\.volatile-function/)
    }
    expect(await ran()).toBe(0)
    await c.end()
  })

  it('judges a constant type name as a cast to it, also after a harmless text of the same shape', async () => {
    const c = await t.client()
    expect((await c.query("select pg_input_is_valid('1', 'integer') v")).rows).toEqual([{v: true}])
    expect((await c.query("select pg_input_is_valid('x', 'double precision') v")).rows).toEqual([{v: false}])
    expect((await c.query("select pg_input_is_valid('2020-01-01', 'timestamp with time zone') v")).rows).toEqual([{v: true}])
    expect((await c.query("select (pg_input_error_info('x', 'int4')).sql_error_code v")).rows).toEqual([{v: '22P02'}])
    expect((await c.query('select (json_populate_record(null::public.plain, \'{"id": 7}\')).id v')).rows).toEqual([{v: 7}])
    // The same shape as the first text, with a type that runs the check.
    const e = (await c.query("select pg_input_is_valid('1', 'public.noted') v").catch((x: Error) => x)) as Error
    expect(e.message).toMatch(/rule default\.volatile-function/)
    expect(await ran()).toBe(0)
    await c.end()
  })
})
