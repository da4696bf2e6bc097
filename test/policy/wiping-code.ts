import type pg from 'pg'
import {expect} from 'vitest'
import type {PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import type {Refusal} from './unfiltered.js'

/**
 * For tests of code a statement runs without naming it: a table of ten `accounts`, which the
 * stored code under attack deletes (`public.wipe()`), and how to count and refill them.
 */
export interface WipedAccounts {
  direct<T>(fn: (c: pg.Client) => Promise<T>): Promise<T>
  accounts(): Promise<number>
  refill(): Promise<unknown>
}

/**
 * The table and the code under attack, qualified throughout: PostgreSQL evaluates index, partition
 * and statistics expressions with search_path set to pg_catalog in some routes, and an attacker
 * would write them so. `public.quiet(n)` is declared IMMUTABLE, returns n, and deletes every account.
 */
export const WIPING_CODE = `
create table accounts (id int primary key, balance int);
create function public.wipe() returns int language plpgsql as $$ begin delete from public.accounts; return 1; end $$;
create function public.quiet(int) returns int language plpgsql immutable as $$ begin perform public.wipe(); return $1; end $$;
`

/**
 * A composite type `boxed` ordered by a btree operator class of a user's, `boxed_ops`, whose
 * comparison function deletes every account (making one takes a superuser). Needs WIPING_CODE.
 */
export const BOXED_OPCLASS = `
create type boxed as (v int);
create function public.boxed_cmp(boxed, boxed) returns int language plpgsql immutable as $$ begin perform public.wipe(); return btint4cmp($1.v, $2.v); end $$;
create function public.boxed_lt(boxed, boxed) returns bool language sql immutable as $$ select $1.v < $2.v $$;
create function public.boxed_le(boxed, boxed) returns bool language sql immutable as $$ select $1.v <= $2.v $$;
create function public.boxed_eq(boxed, boxed) returns bool language sql immutable as $$ select $1.v = $2.v $$;
create function public.boxed_ge(boxed, boxed) returns bool language sql immutable as $$ select $1.v >= $2.v $$;
create function public.boxed_gt(boxed, boxed) returns bool language sql immutable as $$ select $1.v > $2.v $$;
create operator public.<<< (leftarg = boxed, rightarg = boxed, function = public.boxed_lt);
create operator public.<<= (leftarg = boxed, rightarg = boxed, function = public.boxed_le);
create operator public.=== (leftarg = boxed, rightarg = boxed, function = public.boxed_eq);
create operator public.>>= (leftarg = boxed, rightarg = boxed, function = public.boxed_ge);
create operator public.>>> (leftarg = boxed, rightarg = boxed, function = public.boxed_gt);
create operator class boxed_ops for type boxed using btree as
  operator 1 <<<, operator 2 <<=, operator 3 ===, operator 4 >>=, operator 5 >>>, function 1 public.boxed_cmp(boxed, boxed);
`

export function wipedAccounts(url: () => string): WipedAccounts {
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(url(), fn)
  return {
    direct,
    accounts: () => direct(async (c) => (await c.query('select count(*)::int n from accounts')).rows[0].n as number),
    refill: () => direct((c) => c.query('delete from accounts; insert into accounts select g, 100 from generate_series(1, 10) g')),
  }
}

/**
 * Sends each statement through `t`, as a simple query and through the extended protocol, each on a
 * new connection: each must be refused by the default rule for code (or for an unfiltered delete)
 * and leave the ten accounts.
 */
export async function expectEachRefused(t: PipelineTunnel, statements: Record<string, string>, w: Pick<WipedAccounts, 'accounts' | 'refill'>): Promise<void> {
  for (const extended of [false, true]) {
    for (const [name, sql] of Object.entries(statements)) {
      await w.refill()
      const c = await t.client()
      const e = (await (extended ? c.query({name: 'x', text: sql}) : c.query(sql)).catch((x: Error) => x)) as Refusal
      await c.end()
      expect(e, name).toBeInstanceOf(Error)
      expect(e.code, name).toBe('42501')
      expect(e.message, `${name}: ${e.detail}`).toMatch(/rule default\.(volatile-function|no-unfiltered-delete)/)
      expect(await w.accounts(), name).toBe(10)
    }
  }
}

/** Sends `sql` on `c`, as a simple query or as prepared statement `name`, and expects policy's refusal. */
export async function refusedByPolicy(c: pg.Client, sql: string, extended = false, name = 'x'): Promise<Refusal> {
  const e = (await (extended ? c.query({name, text: sql}) : c.query(sql)).catch((x: Error) => x)) as Refusal
  expect(e, sql).toBeInstanceOf(Error)
  expect(e.code, sql).toBe('42501')
  return e
}
