/**
 * A scratch database with pgbench's tables for the benchmark's side tools (`real-tx.js`,
 * `idle-heap.js`): on the server `DBGATE_BENCH_PG_URL` names, or on an embedded PostgreSQL the
 * tool starts and stops.
 */
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import pg from 'pg'
import {startEmbeddedPg} from '../dev/embedded-pg.js'
import type {Endpoint} from './client.js'

export interface PgbenchDatabase {
  db: Endpoint
  /** Drops the database and stops the embedded server, if one was started. */
  drop(): Promise<void>
}

/** Creates `<prefix>_<random>` and runs `pgbench -i -s 1` in it. */
export async function openPgbenchDatabase(prefix: string, maxConnections: number): Promise<PgbenchDatabase> {
  const external = process.env.DBGATE_BENCH_PG_URL
  let admin: Endpoint
  let stopPg = async (): Promise<void> => {}
  if (external) {
    const u = new URL(external)
    admin = {host: u.hostname, port: Number(u.port || 5432), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1) || 'postgres'}
  } else {
    const server = await startEmbeddedPg({settings: {max_connections: String(maxConnections)}})
    stopPg = () => server.stop()
    admin = {host: server.host, port: server.port, user: server.user, password: server.password, database: 'postgres'}
  }
  const dbName = `${prefix}_${randomBytes(4).toString('hex')}`
  const adminClient = new pg.Client(admin)
  await adminClient.connect()
  await adminClient.query(`CREATE DATABASE ${dbName}`)
  const db = {...admin, database: dbName}
  const drop = async (): Promise<void> => {
    await adminClient.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined)
    await adminClient.end()
    await stopPg()
  }
  const init = spawnSync('pgbench', ['-i', '-s', '1', '-q', '-h', db.host, '-p', String(db.port), '-U', db.user, db.database], {env: {...process.env, PGPASSWORD: db.password}, encoding: 'utf8'})
  if (init.status !== 0) {
    await drop()
    throw new Error(`pgbench -i failed: ${init.stderr}`)
  }
  return {db, drop}
}
