/**
 * The endpoint `dbgate mcp` uses without a gateway: the very tunnel `dbgate connect` opens, in this
 * process, on a 0600 unix socket in a private directory (loopback TCP where there are no unix
 * sockets), protected by its per-tunnel secret, which never leaves the process.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {LoadedConfig} from '../config/types.js'
import {openTunnel} from '../connect/open.js'
import type {AgentInfo} from '../identity/types.js'
import type {SqlEndpoint} from './endpoint.js'

export interface LocalEndpointOptions {
  loaded: LoadedConfig
  targetName: string
  agent: AgentInfo
  env?: NodeJS.ProcessEnv
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  localPolicy?: boolean
}

export async function openLocalEndpoint(opts: LocalEndpointOptions): Promise<SqlEndpoint> {
  const unix = process.platform !== 'win32'
  const dir = unix ? await mkdtemp(path.join(tmpdir(), 'dbgate-mcp-')) : undefined
  try {
    const opened = await openTunnel({
      loaded: opts.loaded,
      targetName: opts.targetName,
      listen: dir ? {socket: dir} : {host: '127.0.0.1', port: 0},
      env: opts.env,
      log: opts.log,
      localPolicy: opts.localPolicy,
      agent: opts.agent,
    })
    const {info} = opened
    const closed = opened.closed.finally(() => (dir ? rm(dir, {recursive: true, force: true}) : undefined))
    return {
      clientConfig: () => ({host: info.host, port: info.port, user: info.user, password: info.password, database: info.database, ssl: false}),
      identity: () => opened.identity?.current(),
      record: (key, type, payload) => opened.tunnel.recordFor(key, type, payload),
      endSessions: (message) => opened.tunnel.endSessions(message),
      closed,
      close: async () => {
        await opened.close(1000)
        await closed
      },
    }
  } catch (e) {
    if (dir) await rm(dir, {recursive: true, force: true})
    throw e
  }
}
