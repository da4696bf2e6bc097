/**
 * The tunnel's own connection for reading the catalog, separate from every client session so that
 * discovery never runs inside (or waits behind) a user's transaction.
 */
import pg from 'pg'
import type {UpstreamTarget} from '../proxy/upstream.js'
import type {CatalogQuery, Row} from './catalog.js'

export interface ClosableCatalogQuery extends CatalogQuery {
  close(): Promise<void>
}

function sslOptions(target: UpstreamTarget): pg.ClientConfig['ssl'] {
  switch (target.tls) {
    case 'disable':
      return false
    case 'prefer':
    case 'require':
      return {rejectUnauthorized: target.tls === 'require' && !!target.tlsCa, ca: target.tlsCa, checkServerIdentity: () => undefined}
    case 'verify-full':
      return {rejectUnauthorized: true, ca: target.tlsCa, servername: target.host}
  }
}

/**
 * `run` called for one query at a time, in order: discovery asks several at once, and one pg
 * connection runs one query at a time (pg warns, and will refuse in pg 9, when given a query
 * while busy).
 */
export function oneAtATime(run: CatalogQuery): CatalogQuery {
  let queue: Promise<unknown> = Promise.resolve()
  return (sql) => {
    const next = queue.then(() => run(sql))
    queue = next.catch(() => {})
    return next
  }
}

/**
 * A query function over one lazily opened connection, reopened after a failure. `prefer` tries TLS
 * first and falls back to plain text only when the server has no TLS at all, as libpq does.
 */
export function catalogQueryFor(target: UpstreamTarget): ClosableCatalogQuery {
  let client: Promise<pg.Client> | undefined
  const open = async (ssl: pg.ClientConfig['ssl']): Promise<pg.Client> => {
    const c = new pg.Client({
      host: target.host,
      port: target.port,
      database: target.database,
      user: target.user,
      password: target.password,
      ssl,
      application_name: 'dbgate masking discovery',
      connectionTimeoutMillis: target.connectTimeoutMs ?? 10_000,
      statement_timeout: 30_000,
    })
    c.on('error', () => {
      client = undefined
    })
    await c.connect()
    return c
  }
  const connect = async (): Promise<pg.Client> => {
    try {
      return await open(sslOptions(target))
    } catch (error) {
      if (target.tls === 'prefer' && /does not support SSL/i.test((error as Error).message)) return open(false)
      throw error
    }
  }
  const query = oneAtATime((sql) => runOne(sql))
  const runOne = async (sql: string): Promise<Row[]> => {
    client ??= connect()
    const c = client
    try {
      return (await (await c).query(sql)).rows as Row[]
    } catch (error) {
      if (client === c) client = undefined
      await c.then((x) => x.end()).catch(() => {})
      throw error
    }
  }
  return Object.assign(query, {
    async close() {
      const c = client
      client = undefined
      if (c) await c.then((x) => x.end()).catch(() => {})
    },
  })
}
