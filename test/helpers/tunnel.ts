import pg from 'pg'
import type {ProxyHooks} from '../../src/proxy/seam.js'
import {Tunnel, type TunnelOptions} from '../../src/proxy/tunnel.js'
import type {UpstreamInfo} from './pg.js'

export interface TestTunnel {
  tunnel: Tunnel
  url: string
  port: number
  secret: string
  logs: string[]
  client(extra?: Partial<pg.ClientConfig>): Promise<pg.Client>
  close(): Promise<void>
}

/** A tunnel in front of a test database, on a free loopback port. */
export async function startTunnel(db: UpstreamInfo, hooks: ProxyHooks = {}, extra: Partial<TunnelOptions> = {}): Promise<TestTunnel> {
  const logs: string[] = []
  const tunnel = new Tunnel({
    target: {host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'},
    listen: {kind: 'tcp', host: '127.0.0.1', port: 0},
    hooks,
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...extra,
  })
  const addr = await tunnel.listen()
  const url = `postgresql://dbgate:${encodeURIComponent(tunnel.secret)}@127.0.0.1:${addr.port}/${db.database}`
  const clients: pg.Client[] = []
  return {
    tunnel,
    url,
    port: addr.port,
    secret: tunnel.secret,
    logs,
    async client(extraConfig = {}) {
      const c = new pg.Client({connectionString: url, ...extraConfig})
      c.on('error', () => {})
      await c.connect()
      clients.push(c)
      return c
    },
    async close() {
      await Promise.all(clients.map((c) => c.end().catch(() => {})))
      await tunnel.close(1000)
    },
  }
}
