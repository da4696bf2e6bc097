import {afterAll, beforeAll} from 'vitest'
import type pg from 'pg'
import {openPipelineTunnel, type PipelineTunnel} from './open.js'
import {later} from './later.js'
import {createTestDatabase, withClient, type UpstreamInfo} from './pg.js'

export interface SeededTunnel {
  /** The test database; read it inside tests and hooks, it exists once `beforeAll` has run. */
  db: UpstreamInfo
  /** The tunnel in front of it, opened in `beforeAll` and closed in `afterAll`. */
  t: PipelineTunnel
  /** Runs `fn` on a connection straight to the database, around the tunnel. */
  direct: <T>(fn: (c: pg.Client) => Promise<T>) => Promise<T>
}

/**
 * The fixture most policy tests share: a fresh database with `schema` run in it (each text of a
 * list as a query of its own, in order), and the tunnel exactly as `dbgate connect` builds it,
 * with `targetExtra` added to the target.
 */
export function seededTunnel(schema: string | string[], targetExtra = ''): SeededTunnel {
  let db: UpstreamInfo | undefined
  let t: PipelineTunnel | undefined
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db!.url, fn)
  beforeAll(async () => {
    db = await createTestDatabase()
    for (const sql of [schema].flat()) await direct((c) => c.query(sql))
    t = await openPipelineTunnel(db, targetExtra)
  })
  afterAll(() => t?.close())
  return {db: later(() => db, 'the test database'), t: later(() => t, 'the tunnel'), direct}
}
