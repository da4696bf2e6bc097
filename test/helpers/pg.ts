import {randomBytes} from 'node:crypto'
import pg from 'pg'
import {inject} from 'vitest'
import {waitFor} from './wait.js'

/** The suite's real PostgreSQL (embedded, or DBGATE_TEST_PG_URL). */
export function adminUrl(database?: string, server?: string): string {
  const url = new URL(server ?? inject('pgUrl'))
  if (database) url.pathname = `/${database}`
  return url.toString()
}

export interface UpstreamInfo {
  host: string
  port: number
  user: string
  password: string
  database: string
  url: string
}

export function upstreamInfo(database: string, server?: string): UpstreamInfo {
  const u = new URL(adminUrl(database, server))
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database,
    url: u.toString(),
  }
}

/**
 * Creates a fresh database so test files never see each other's tables; on the suite's server, or
 * on `server` (an admin URL) for a file whose locks or settings would reach every other file's.
 */
export async function createTestDatabase(prefix = 't', server?: string): Promise<UpstreamInfo> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`
  const admin = new pg.Client({connectionString: adminUrl('postgres', server)})
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  return upstreamInfo(name, server)
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({connectionString: url})
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

/** One row of pg_stat_activity, matched by backend pid or by application_name. */
export type BackendOf = {pid: number} | {applicationName: string}

// Only this database's backends: other test files run beside this one on the same server.
const backendFilter = (b: BackendOf): [string, unknown] => ('pid' in b ? ['a.pid = $1', b.pid] : ['a.datname = current_database() and a.application_name = $1', b.applicationName])

/**
 * Waits until the server shows that backend running a statement inside pg_sleep: only then has
 * the statement surely started (a cancel sent earlier would find nothing to cancel).
 */
export async function waitUntilSleeping(url: string, backend: BackendOf): Promise<void> {
  const [where, value] = backendFilter(backend)
  await withClient(url, (c) =>
    waitFor(
      async () => (await c.query(`select 1 from pg_stat_activity a where ${where} and a.state = 'active' and a.wait_event = 'PgSleep'`, [value])).rowCount === 1,
      `the server shows backend ${JSON.stringify(backend)} inside pg_sleep`,
    ),
  )
}

/** Waits until the server shows that backend holding a granted lock of `mode` on `table` (pg_locks). */
export async function waitUntilLockHeld(url: string, backend: BackendOf, table: string, mode = 'AccessExclusiveLock'): Promise<void> {
  const [where, value] = backendFilter(backend)
  await withClient(url, (c) =>
    waitFor(
      async () =>
        (await c.query(`select 1 from pg_locks l join pg_stat_activity a on a.pid = l.pid where ${where} and l.relation = $2::regclass and l.mode = $3 and l.granted`, [value, table, mode]))
          .rowCount === 1,
      `the server shows backend ${JSON.stringify(backend)} holding ${mode} on ${table}`,
    ),
  )
}

