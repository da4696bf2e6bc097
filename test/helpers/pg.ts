import {randomBytes} from 'node:crypto'
import pg from 'pg'
import {inject} from 'vitest'

/** The suite's real PostgreSQL (embedded, or DBGATE_TEST_PG_URL). */
export function adminUrl(database?: string): string {
  const url = new URL(inject('pgUrl'))
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

export function upstreamInfo(database: string): UpstreamInfo {
  const u = new URL(adminUrl(database))
  return {
    host: u.hostname,
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database,
    url: u.toString(),
  }
}

/** Creates a fresh database so test files never see each other's tables. */
export async function createTestDatabase(prefix = 't'): Promise<UpstreamInfo> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`
  const admin = new pg.Client({connectionString: adminUrl('postgres')})
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  return upstreamInfo(name)
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
