import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {parseConfigText} from '../../src/config/parse.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {openTunnel, type OpenedTunnel, type OpenTunnelOptions} from '../../src/connect/open.js'
import type {UpstreamInfo} from './pg.js'
import {RawClient} from './raw-client.js'

/** XDG directories of a throwaway home, so tests never touch the real user's spool, keys or bucket. */
export function isolatedEnv(): NodeJS.ProcessEnv {
  const home = mkdtempSync(path.join(tmpdir(), 'dbgate-home-'))
  return {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_DATA_HOME: path.join(home, 'data'),
    XDG_STATE_HOME: path.join(home, 'state'),
    XDG_CACHE_HOME: path.join(home, 'cache'),
    DBGATE_KEYRING: 'off',
  }
}

/**
 * The YAML of one target in front of a test database, indented under `targets:`, with extra
 * target keys (one per line) after the connection keys. The password comes from `passwordEnv`.
 */
export function targetConfigText(name: string, db: UpstreamInfo, targetExtra = '', passwordEnv = 'TEST_APP_PASSWORD'): string[] {
  const extra = targetExtra.split('\n').filter(Boolean)
  return [
    `  ${name}:`,
    `    host: ${db.host}`,
    // A target that names its own port (one nothing listens on) keeps it.
    ...(extra.some((l) => /^port:/.test(l)) ? [] : [`    port: ${db.port}`]),
    `    database: ${db.database}`,
    `    user: ${db.user}`,
    `    password: env:${passwordEnv}`,
    '    tls: disable',
    ...extra.map((l) => `    ${l}`),
  ]
}

/** A dbgate.yaml for one target `app` in front of a test database, with extra target keys. */
export function loadedConfig(db: UpstreamInfo, targetExtra = '', top = '', env: NodeJS.ProcessEnv = isolatedEnv()): LoadedConfig {
  const text = [top, 'targets:', ...targetConfigText('app', db, targetExtra), ''].join('\n')
  const parsed = parseConfigText(text, '/test/dbgate.yaml', {env, homeDir: env.HOME})
  return {path: '/test/dbgate.yaml', ...parsed}
}

export interface PipelineTunnel extends OpenedTunnel {
  client(extra?: Partial<pg.ClientConfig>): Promise<pg.Client>
  /** A wire-level client signed in through the tunnel, ended when the tunnel closes. */
  raw(): Promise<RawClient>
}

/** Who the tunnel runs as: an `identity:` section for `issuer`, and the token store of a signed-in user. */
export interface PipelineIdentity {
  issuer: string
  clientId: string
  /** The user's environment: XDG_CONFIG_HOME holds their token store (see test/identity/helpers.ts). */
  env: NodeJS.ProcessEnv
}

/** The tunnel exactly as `dbgate connect` builds it, for end-to-end tests; with `identity`, bound to a signed-in user. */
export async function openPipelineTunnel(
  db: UpstreamInfo,
  targetExtra = '',
  opts: Partial<OpenTunnelOptions> & {top?: string; identity?: PipelineIdentity} = {},
): Promise<PipelineTunnel & {env: NodeJS.ProcessEnv}> {
  const {identity, ...rest} = opts
  const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password, ...(identity ? {...identity.env, DBGATE_TOKEN: ''} : {}), ...opts.env}
  const top = [identity ? `identity:\n  issuer: ${identity.issuer}\n  clientId: ${identity.clientId}` : '', opts.top ?? ''].filter(Boolean).join('\n')
  const opened = await openTunnel({loaded: loadedConfig(db, targetExtra, top, env), targetName: 'app', ...rest, env})
  const clients: pg.Client[] = []
  const raws: RawClient[] = []
  return {
    ...opened,
    env,
    async client(extra = {}) {
      const c = new pg.Client({connectionString: opened.info.url, ...extra})
      c.on('error', () => {})
      await c.connect()
      clients.push(c)
      return c
    },
    async raw() {
      const r = await RawClient.connect(opened.info.port, {password: opened.info.password, database: opened.info.database})
      raws.push(r)
      return r
    },
    async close(graceMs?: number, message?: string) {
      for (const r of raws) r.end()
      await Promise.all(clients.map((c) => c.end().catch(() => {})))
      await opened.close(graceMs ?? 500, message)
    },
  }
}
