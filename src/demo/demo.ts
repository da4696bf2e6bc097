import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {loadConfig} from '../config/load.js'
import {openTunnel, type OpenedTunnel} from '../connect/open.js'
import {startEmbeddedPg, type EmbeddedPg} from '../dev/embedded-pg.js'
import {sampleSchemaSql} from './sample-data.js'

export interface DemoEnvironment {
  dir: string
  configPath: string
  database: EmbeddedPg
  tunnel: OpenedTunnel
  stop(): Promise<void>
}

export interface DemoOptions {
  log?: (line: string) => void
  /** Keep the tunnel on a fixed port. */
  port?: number
}

/**
 * Everything the demo needs, on loopback, with nothing installed beforehand: an embedded
 * PostgreSQL holding the sample shop, a dbgate.yaml for it in a fresh directory, and a tunnel.
 */
export async function startDemo(opts: DemoOptions = {}): Promise<DemoEnvironment> {
  const log = opts.log ?? (() => {})
  const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-demo-'))
  const cleanups: (() => Promise<void>)[] = [() => rm(dir, {recursive: true, force: true})]
  const stop = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {})
  }
  try {
    log('starting an embedded PostgreSQL on 127.0.0.1 …')
    const database = await startEmbeddedPg({password: `demo-${Math.random().toString(36).slice(2)}`})
    cleanups.push(() => database.stop())
    const admin = new pg.Client({connectionString: database.url()})
    await admin.connect()
    await admin.query('create database shop')
    await admin.end()
    const shop = new pg.Client({connectionString: database.url('shop')})
    await shop.connect()
    await shop.query(sampleSchemaSql())
    await shop.end()
    log('loaded the sample shop: customers, orders and payments with fake personal data')

    const configPath = path.join(dir, 'dbgate.yaml')
    await writeFile(
      configPath,
      [
        '# Written by `dbgate demo`: a throwaway configuration for the embedded database.',
        'targets:',
        '  shop:',
        `    host: ${database.host}`,
        `    port: ${database.port}`,
        '    database: shop',
        `    user: ${database.user}`,
        `    password: file:${path.join(dir, 'shop.password')}`,
        '    tls: disable',
        '',
      ].join('\n'),
    )
    await writeFile(path.join(dir, 'shop.password'), database.password, {mode: 0o600})
    const loaded = await loadConfig({configPath})
    const tunnel = await openTunnel({loaded, targetName: 'shop', listen: {port: opts.port}})
    cleanups.push(() => tunnel.close(2000))
    return {dir, configPath, database, tunnel, stop}
  } catch (error) {
    await stop()
    throw error
  }
}
