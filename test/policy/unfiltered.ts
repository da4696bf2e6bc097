import type pg from 'pg'
import {expect} from 'vitest'

/**
 * Runs `sql` on `c` and checks that the tunnel refused it as an unfiltered write (42501, rule
 * default.no-unfiltered-delete or -update); the refusal, for its detail.
 */
export async function refusedAsUnfiltered(c: pg.Client, sql: string): Promise<Error & {code?: string; detail?: string}> {
  const e = (await c.query(sql).catch((x: Error) => x)) as (Error & {code?: string; detail?: string}) | pg.QueryResult
  expect(e, sql).toBeInstanceOf(Error)
  const err = e as Error & {code?: string; detail?: string}
  expect(err.code, sql).toBe('42501')
  expect(err.message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
  return err
}
