import type pg from 'pg'

/** A step: a simple Query, or with `name` a prepared statement of the extended protocol. */
export type Step = string | {text: string; name: string}

/** What a client was shown while running some steps. */
export interface StepsOutcome {
  /** Every row, error and notice the client got, as text. */
  seen: string
  /** The SQLSTATE of the last error, if any. */
  code?: string
}

/** Runs `steps` one after the other, going on past errors, and keeps everything the client got. */
export async function runSteps(c: pg.Client, steps: readonly Step[]): Promise<StepsOutcome> {
  const seen: string[] = []
  const onNotice = (n: {message?: string}): void => {
    seen.push(JSON.stringify({...n, message: n.message}))
  }
  c.on('notice', onNotice)
  let code: string | undefined
  try {
    for (const s of steps) {
      try {
        seen.push(JSON.stringify((await c.query(s)).rows))
      } catch (e) {
        const err = e as pg.DatabaseError
        code = err.code
        seen.push(JSON.stringify({...err, message: err.message}))
      }
    }
  } finally {
    c.off('notice', onNotice)
  }
  return {seen: seen.join('\n'), code}
}

/**
 * Runs `steps` on a direct connection, then on one through the tunnel, ending both: what the
 * server itself says (the leak a test must show is real), and what a client of the tunnel is shown.
 */
export async function directThenThrough(direct: pg.Client, through: () => Promise<pg.Client>, steps: readonly Step[]): Promise<{before: StepsOutcome; after: StepsOutcome}> {
  const before = await runSteps(direct, steps).finally(() => direct.end())
  const c = await through()
  const after = await runSteps(c, steps).finally(() => c.end())
  return {before, after}
}
