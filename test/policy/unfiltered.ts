import type pg from 'pg'
import {expect} from 'vitest'

export type Refusal = Error & {code?: string; detail?: string}

/** Runs `sql` on `c` and checks that the tunnel refused it (42501) with a message matching `rule`; the refusal, for its detail. */
export async function refusedByRule(c: pg.Client, sql: string, rule: RegExp): Promise<Refusal> {
  const e = (await c.query(sql).catch((x: Error) => x)) as Refusal | pg.QueryResult
  expect(e, sql).toBeInstanceOf(Error)
  const err = e as Refusal
  expect(err.code, sql).toBe('42501')
  expect(err.message, sql).toMatch(rule)
  return err
}

/**
 * Runs `sql` on `c` and checks that the tunnel refused it as an unfiltered write (42501, rule
 * default.no-unfiltered-delete or -update); the refusal, for its detail.
 */
export function refusedAsUnfiltered(c: pg.Client, sql: string): Promise<Refusal> {
  return refusedByRule(c, sql, /rule default\.no-unfiltered-(delete|update)/)
}
